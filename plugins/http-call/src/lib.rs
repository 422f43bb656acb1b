//! # http-call
//!
//! The token injector of the Higress Go plugin guide: for each request, GETs `requestPath` from another
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

use gateway_sdk::prelude::*;

/// The JSON the plugin accepts; see the README for each field.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = gateway_sdk::schema::port_given_unless_static("serviceName", "servicePort"))]
struct Settings {
    /// Header copied from the token service's answer into the request.
    token_header: HeaderName,
    /// Path (with query) to GET, or an absolute URL whose host becomes the `:authority`.
    request_path: NonEmpty,
    /// The token service, full name with its registry suffix (`auth.dns`, `10.0.0.5.static`, ...).
    service_name: ServiceName,
    /// The service's port (`80` for `.static` services when not given).
    service_port: Option<Port>,
    /// `:authority` of the call (default: `serviceName`).
    service_host: Option<NonEmpty>,
    /// How long the call may take, in milliseconds.
    #[serde(default)]
    timeout: Millis,
}

// What the hooks use (no doc comment: it would replace the schema's description).
#[derive(Deserialize, JsonSchema)]
#[serde(try_from = "Settings")]
#[schemars(with = "Settings")]
pub struct Config {
    token_header: HeaderName,
    request_path: String,
    client: HttpClient,
}

impl TryFrom<Settings> for Config {
    type Error = String;

    fn try_from(s: Settings) -> Result<Self, String> {
        let client = s.service_name.http_client(s.service_port, s.service_host.as_deref())?.with_timeout(s.timeout);
        Ok(Config { token_header: s.token_header, request_path: s.request_path.to_string(), client })
    }
}

pub struct HttpCall;

impl Plugin for HttpCall {
    const NAME: &'static str = "http-call";
    type Config = Config;
    type State = ();

    fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        let call = config.client.get(&config.request_path);
        call.send_or_continue(req, on_token, "letting the request through without a token")
    }
}

fn on_token(req: &mut Request<HttpCall>, config: &Config, resp: &HttpResponse) {
    if resp.status() != 200 {
        req.log().error(format_args!("http call failed, status: {}", resp.status()));
        req.respond(500, &[], "http call failed");
        return;
    }
    match req.set_header_from(resp, &config.token_header) {
        Some(token) => req.log().debug(format_args!("token received in {}: {}", config.token_header, Redacted(&token))),
        None => req.log().warn(format_args!("token service answered 200 without {}", config.token_header)),
    }
    req.resume();
}

gateway_sdk::main!(HttpCall);
