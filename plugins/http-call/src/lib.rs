//! # http-call
//!
//! The seed's token injector: for each request, GETs `requestPath` from another
//! service, copies the header `tokenHeader` of its answer into the request, and
//! lets the request go on.
//!
//! * the service answers 200: the token header is set on the request (replacing
//!   any value the client sent) and the request goes on;
//! * any other status (a timeout arrives as 504 on Envoy): `500 http call failed`;
//! * the call cannot be dispatched (unknown cluster): the request goes on
//!   without a token and an error is logged.
//!
//! The token's value never appears in logs.

use gateway_sdk::fields::{HeaderName, NonEmpty};
use gateway_sdk::prelude::*;

/// The JSON the plugin accepts; see the README for each field.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = schema_checks))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    /// Header copied from the token service's answer into the request.
    token_header: HeaderName,
    /// Path (with query) to GET, or an absolute URL whose host becomes the `:authority`.
    request_path: NonEmpty,
    /// The token service, full name with its registry suffix (`auth.dns`, `10.0.0.5.static`, ...).
    service_name: NonEmpty,
    /// The service's port (`80` for `.static` services when not given).
    service_port: Option<u16>,
    /// `:authority` of the call (default: `serviceName`).
    service_host: Option<NonEmpty>,
    /// How long the call may take, in milliseconds.
    #[serde(default = "default_timeout")]
    timeout: u32,
}

fn default_timeout() -> u32 {
    gateway_sdk::http::DEFAULT_TIMEOUT_MS
}

/// What `TryFrom<RawConfig>` checks, for the schema.
#[cfg(feature = "schema")]
fn schema_checks(schema: &mut schemars::Schema) {
    gateway_sdk::schema::minimum(schema, "timeout", 1);
    gateway_sdk::schema::service(schema, "serviceName", "servicePort", true);
}

#[derive(Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct Config {
    token_header: HeaderName,
    request_path: String,
    timeout: u32,
    client: HttpClient,
}

impl TryFrom<RawConfig> for Config {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        if raw.timeout == 0 {
            return Err("timeout: must be at least 1 (milliseconds)".to_string());
        }
        let cluster =
            match Cluster::service(&raw.service_name, raw.service_port).map_err(|err| format!("serviceName: {err}"))? {
                Cluster::Fqdn { fqdn, port, .. } => {
                    Cluster::Fqdn { fqdn, port, host: raw.service_host.map(|h| h.to_string()) }
                }
                other => other,
            };
        Ok(Config {
            token_header: raw.token_header,
            request_path: raw.request_path.to_string(),
            timeout: raw.timeout,
            client: HttpClient::new(cluster),
        })
    }
}

pub struct HttpCall;

impl Plugin for HttpCall {
    const NAME: &'static str = "http-call";
    type Config = Config;
    type State = ();

    fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        let sent = config.client.get(&config.request_path).timeout_ms(config.timeout).send(req, on_token);
        match sent {
            Ok(()) => HeaderAction::StopAllIterationAndWatermark,
            Err(err) => {
                req.log().error(format_args!("{err}; letting the request through without a token"));
                HeaderAction::Continue
            }
        }
    }
}

fn on_token(req: &mut Request<HttpCall>, config: &Config, resp: &HttpResponse) {
    if resp.status() != 200 {
        req.log().error(format_args!("http call failed, status: {}", resp.status()));
        req.respond(500, &[], "http call failed");
        return;
    }
    match resp.header(&config.token_header) {
        Some(token) if !token.is_empty() => {
            req.log().debug(format_args!("token received in {}: {}", config.token_header, Redacted(&token)));
            req.set_header(&config.token_header, &token);
        }
        _ => req.log().warn(format_args!("token service answered 200 without {}", config.token_header)),
    }
    req.resume();
}

gateway_sdk::main!(HttpCall);

/// The JSON Schema of everything this plugin accepts as its configuration
/// (`_rules_` included), made from `RawConfig` (feature `schema`).
#[cfg(feature = "schema")]
pub fn config_schema() -> serde_json::Value {
    gateway_sdk::schema::plugin_schema::<RawConfig>(HttpCall::NAME, HttpCall::RULE_MODE)
}
