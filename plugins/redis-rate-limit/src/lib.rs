//! # redis-rate-limit
//!
//! The Redis limiter of the Higress Go plugin guide: at most `qpm` requests per minute, counted in
//! Redis under the minute-aligned Unix time. Over the limit the gateway answers
//! `429 Too many requests` with headers `timeStamp` and `callTimeLeft: 0`;
//! admitted requests get `timeStamp` and `callTimeLeft` on their response. If
//! Redis cannot answer, requests go through (fail-open) and an error is logged.
//!
//! Beyond the guide's, all opt-in: windows of a second, minute, hour or day; one
//! counter per header, query parameter, client IP or route; a key prefix; the
//! IETF `RateLimit-*` headers; fail-closed. Each request costs one Redis round
//! trip: a script increments the counter and sets its expiry together, so no
//! counter is ever left without one. Needs Higress: upstream Envoy has no Redis
//! calls for plugins.

use gateway_sdk::limit::{rate_limit_headers, FixedWindow, LimitBy, Window};
use gateway_sdk::prelude::*;
use gateway_sdk::{Log, RedisClient, RedisOptions};

/// The JSON the plugin accepts; see the README for each field.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = gateway_sdk::schema::one_given("qpm", "limit"))]
#[schemars(transform = gateway_sdk::schema::not_together("qpm", "window"))]
struct Settings {
    /// The Redis service, full name with its registry suffix (`redis.dns`, `10.0.0.7.static`, ...).
    service_name: ServiceName,
    /// Its port (default `6379`, or `80` for `.static` services).
    service_port: Option<Port>,
    /// Redis ACL user.
    #[serde(default)]
    username: String,
    /// Redis password (never logged).
    #[serde(default)]
    password: String,
    /// Per-command timeout, in milliseconds.
    #[serde(default = "Millis::second")]
    timeout: Millis,
    /// Redis database number.
    #[serde(default)]
    database: u32,
    /// Requests per minute (the setting of the Higress Go plugin guide); give this or `limit`.
    qpm: Option<Limit>,
    /// Requests per `window`; give this or `qpm`.
    limit: Option<Limit>,
    /// Window of `limit` (default: minute), aligned to Unix time.
    window: Option<Window>,
    /// What requests share a counter.
    #[serde(default)]
    limit_by: LimitBy,
    /// Prefix of every key (`<prefix><window start>[:<value>]`).
    #[serde(default)]
    key_prefix: String,
    /// When Redis cannot answer: let requests through (`open`) or answer 503 (`closed`).
    #[serde(default)]
    failure_mode: FailureMode,
    /// Also send `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (and `Retry-After` on 429).
    #[serde(default)]
    rate_limit_headers: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
enum FailureMode {
    /// Let requests through when Redis cannot answer.
    #[default]
    Open,
    /// Answer 503 when Redis cannot answer.
    Closed,
}

// What the hooks use, with the limit per window chosen (no doc comment: it would
// replace the schema's description).
#[derive(Deserialize, JsonSchema)]
#[serde(try_from = "Settings")]
#[schemars(with = "Settings")]
pub struct Config {
    redis: RedisClient,
    limit: u64,
    window: Window,
    limit_by: LimitBy,
    key_prefix: String,
    failure_mode: FailureMode,
    rate_limit_headers: bool,
}

impl TryFrom<Settings> for Config {
    type Error = String;

    fn try_from(s: Settings) -> Result<Self, String> {
        let (limit, window) = match (s.qpm, s.limit, s.window) {
            (Some(_), Some(_), _) => return Err("give qpm or limit, not both".to_string()),
            (None, None, _) => return Err("qpm (or limit with window) is required".to_string()),
            (Some(_), _, Some(_)) => {
                return Err("qpm counts per minute; use limit with window for other windows".to_string())
            }
            (Some(qpm), None, None) => (qpm, Window::Minute),
            (None, Some(limit), window) => (limit, window.unwrap_or(Window::Minute)),
        };
        let options = RedisOptions {
            username: s.username,
            password: s.password,
            timeout_ms: s.timeout.get(),
            database: s.database,
        };
        Ok(Config {
            redis: RedisClient::for_service(&s.service_name, s.service_port, options)?,
            limit: limit.get(),
            window,
            limit_by: s.limit_by,
            key_prefix: s.key_prefix,
            failure_mode: s.failure_mode,
            rate_limit_headers: s.rate_limit_headers,
        })
    }
}

/// This request's window and its count after this request, for its response headers.
pub type Counted = Option<(FixedWindow, u64)>;

pub struct RedisRateLimit;

impl Plugin for RedisRateLimit {
    const NAME: &'static str = "redis-rate-limit";
    type Config = Config;
    type State = Counted;

    fn on_configure(config: &Config, log: &Log<'_>) -> Result<(), String> {
        config.redis.init_or_warn(log);
        Ok(())
    }

    fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        let window = config.window.current();
        let key = config.limit_by.key(req, &config.key_prefix, window);
        let sent =
            config.redis.incr_with_expiry(req, &key, config.window.seconds(), move |req, config, count| match count {
                Ok(count) => {
                    let count = u64::try_from(count).unwrap_or(0);
                    req.state = Some((window, count));
                    if count > config.limit {
                        let headers = limit_headers(config, window, 0, true);
                        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        req.respond(429, &pairs, "Too many requests\n");
                    } else {
                        req.resume();
                    }
                }
                Err(err) => {
                    redis_failed(req, config, &err);
                }
            });
        match sent {
            Ok(()) => HeaderAction::StopAllIterationAndWatermark,
            Err(err) => redis_failed(req, config, &err),
        }
    }

    fn on_response_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        if let Some((window, count)) = req.state {
            for (name, value) in limit_headers(config, window, config.limit.saturating_sub(count), false) {
                req.add_response_header(name, &value);
            }
        }
        HeaderAction::Continue
    }
}

/// Fail open (let the request go on) or closed (503), as configured.
fn redis_failed(req: &mut Request<RedisRateLimit>, config: &Config, err: &dyn std::fmt::Display) -> HeaderAction {
    match config.failure_mode {
        FailureMode::Open => {
            req.log().error(format_args!("call redis error: {err}; letting the request through"));
            req.resume();
            HeaderAction::Continue
        }
        FailureMode::Closed => {
            req.log().error(format_args!("call redis error: {err}; refusing the request (failureMode closed)"));
            req.respond(503, &[], "rate limiter unavailable\n")
        }
    }
}

/// The Go guide's headers, and the IETF ones when enabled.
fn limit_headers(config: &Config, window: FixedWindow, left: u64, limited: bool) -> Vec<(&'static str, String)> {
    let mut headers = vec![("timeStamp", window.start.to_string()), ("callTimeLeft", left.to_string())];
    if config.rate_limit_headers {
        headers.extend(rate_limit_headers(config.limit, left, window, limited));
    }
    headers
}

gateway_sdk::main!(RedisRateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::config::Rules;

    fn parse(json: &str) -> Result<Rules<Config>, String> {
        Rules::parse(json.as_bytes(), RuleMode::Standalone).map_err(|e| e.to_string())
    }

    #[test]
    fn guide_config_and_defaults() {
        let rules = parse(r#"{"serviceName": "redis.dns", "qpm": 10}"#).unwrap();
        let config = rules.global().unwrap();
        assert_eq!((config.limit, config.window), (10, Window::Minute));
        assert_eq!(
            config.redis.upstream(),
            "outbound|6379||redis.dns?buffer_flush_timeout=3&max_buffer_size_before_flush=1024"
        );
        assert_eq!(config.limit_by, LimitBy::Global);
        assert_eq!(config.failure_mode, FailureMode::Open);
        assert!(!config.rate_limit_headers);
        let rules = parse(r#"{"serviceName": "10.0.0.9.static", "qpm": 1}"#).unwrap();
        assert!(rules.global().unwrap().redis.upstream().starts_with("outbound|80||10.0.0.9.static?"));
    }

    #[test]
    fn windows_and_keys() {
        let rules = parse(
            r#"{"serviceName": "r.dns", "limit": 5, "window": "second", "limitBy": {"header": "X-Api-Key"},
                "keyPrefix": "rl:", "failureMode": "closed", "rateLimitHeaders": true, "database": 3}"#,
        )
        .unwrap();
        let config = rules.global().unwrap();
        assert_eq!((config.limit, config.window), (5, Window::Second));
        assert_eq!(config.limit_by, LimitBy::Header(gateway_sdk::fields::HeaderName::new("x-api-key").unwrap()));
        assert!(config.redis.upstream().contains("?db=3&"));
        assert!(parse(r#"{"serviceName": "r.dns", "limit": 1, "limitBy": "clientIp"}"#).is_ok());
        assert!(parse(r#"{"serviceName": "r.dns", "limit": 1, "limitBy": {"query": "key"}}"#).is_ok());
        assert!(parse(r#"{"serviceName": "r.dns", "limit": 1, "window": "day", "limitBy": "route"}"#).is_ok());
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            (r#"{"qpm": 1}"#, "missing field `serviceName`"),
            (r#"{"serviceName": "r.dns"}"#, "qpm (or limit with window) is required"),
            (r#"{"serviceName": "r.dns", "qpm": 1, "limit": 2}"#, "give qpm or limit, not both"),
            (r#"{"serviceName": "r.dns", "qpm": 1, "window": "hour"}"#, "qpm counts per minute"),
            (r#"{"serviceName": "r.dns", "qpm": 0}"#, "the limit must be at least 1"),
            (r#"{"serviceName": "r.dns", "qpm": "10"}"#, "qpm: invalid type: string \"10\""),
            (r#"{"serviceName": "r.dns", "limit": 1, "window": "week"}"#, "window: unknown variant `week`"),
            (r#"{"serviceName": "r.dns", "qpm": 1, "limitBy": "ip"}"#, "limitBy: unknown variant `ip`"),
            (r#"{"serviceName": "r.dns", "qpm": 1, "timeout": 0}"#, "timeout: must be at least 1"),
            (r#"{"serviceName": "", "qpm": 1}"#, "serviceName: must not be empty"),
        ];
        for (json, expected) in cases {
            let err = parse(json).err().unwrap_or_default();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
