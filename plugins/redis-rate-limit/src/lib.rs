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

use gateway_sdk::fields::{HeaderName, Limit, Millis, NonEmpty, Port, ServiceName};
use gateway_sdk::prelude::*;
use gateway_sdk::redis::Value;
use gateway_sdk::{Log, RedisClient, RedisOptions};
use std::time::UNIX_EPOCH;

/// Increments the window's counter and makes sure it expires, in one round trip.
const COUNT_SCRIPT: &str = "local n = redis.call('INCR', KEYS[1]) \
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end \
return n";

/// Longest request value used verbatim in a key; longer ones are hashed.
const MAX_KEY_VALUE: usize = 64;

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
    #[serde(default = "one_second")]
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

fn one_second() -> Millis {
    Millis::SECOND
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
enum Window {
    Second,
    Minute,
    Hour,
    Day,
}

impl Window {
    fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86400,
        }
    }
}

/// What requests share a counter.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
enum LimitBy {
    /// One counter for all requests (as in the Higress Go plugin guide).
    #[default]
    Global,
    /// One per value of this request header.
    Header(HeaderName),
    /// One per value of this query parameter.
    Query(NonEmpty),
    /// One per client address (Envoy's `source.address`).
    ClientIp,
    /// One per route.
    Route,
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
    window: u64,
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
        let port = s.service_port.or(Port::new(if s.service_name.is_static() { 80 } else { 6379 }).ok());
        let cluster = s.service_name.cluster(port, None).map_err(|err| format!("serviceName: {err}"))?;
        let options = RedisOptions {
            username: s.username,
            password: s.password,
            timeout_ms: s.timeout.get(),
            database: s.database,
        };
        Ok(Config {
            redis: RedisClient::new(&cluster, options)?,
            limit: limit.get(),
            window: window.seconds(),
            limit_by: s.limit_by,
            key_prefix: s.key_prefix,
            failure_mode: s.failure_mode,
            rate_limit_headers: s.rate_limit_headers,
        })
    }
}

/// What this request's window looked like, for its response headers.
#[derive(Default)]
pub struct Counted {
    window: Option<Tally>,
}

/// A window's start (Unix seconds), its count after this request, and seconds to its end.
struct Tally {
    start: u64,
    count: u64,
    reset: u64,
}

pub struct RedisRateLimit;

impl Plugin for RedisRateLimit {
    const NAME: &'static str = "redis-rate-limit";
    type Config = Config;
    type State = Counted;

    fn on_configure(config: &Config, log: &Log<'_>) -> Result<(), String> {
        // Redis may come up after the gateway: commands retry the init.
        if let Err(err) = config.redis.init() {
            log.warn(format_args!("{err}; will retry on the first request"));
        }
        Ok(())
    }

    fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        let now = gateway_sdk::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let start = now - now % config.window;
        let reset = start + config.window - now;
        let key = counter_key(req, config, start);
        let window = config.window.to_string();
        let sent = config.redis.eval(req, COUNT_SCRIPT, &[&key], &[&window], move |req, config, answer| {
            match answer.and_then(Value::into_int) {
                Ok(count) => {
                    let count = u64::try_from(count).unwrap_or(0);
                    req.state.window = Some(Tally { start, count, reset });
                    if count > config.limit {
                        let headers = limit_headers(config, start, 0, reset, true);
                        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        req.respond(429, &pairs, "Too many requests\n");
                    } else {
                        req.resume();
                    }
                }
                Err(err) => {
                    redis_failed(req, config, &err);
                }
            }
        });
        match sent {
            Ok(()) => HeaderAction::StopAllIterationAndWatermark,
            Err(err) => redis_failed(req, config, &err),
        }
    }

    fn on_response_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        if let Some(w) = &req.state.window {
            let left = config.limit.saturating_sub(w.count);
            for (name, value) in limit_headers(config, w.start, left, w.reset, false) {
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
fn limit_headers(config: &Config, start: u64, left: u64, reset: u64, limited: bool) -> Vec<(&'static str, String)> {
    let mut headers = vec![("timeStamp", start.to_string()), ("callTimeLeft", left.to_string())];
    if config.rate_limit_headers {
        headers.push(("RateLimit-Limit", config.limit.to_string()));
        headers.push(("RateLimit-Remaining", left.to_string()));
        headers.push(("RateLimit-Reset", reset.to_string()));
        if limited {
            headers.push(("Retry-After", reset.to_string()));
        }
    }
    headers
}

/// `<prefix><window start>` (the Go guide's key), then `:<value>` when counting per value.
fn counter_key(req: &Request<RedisRateLimit>, config: &Config, start: u64) -> String {
    let value = match &config.limit_by {
        LimitBy::Global => None,
        // Raw bytes: two header values that differ only in bytes that are not
        // UTF-8 must not share a counter.
        LimitBy::Header(name) => Some(req.header_bytes(name).unwrap_or_default()),
        LimitBy::Query(name) => {
            Some(query_value(&req.path().unwrap_or_default(), name).unwrap_or_default().into_bytes())
        }
        LimitBy::ClientIp => Some(client_ip(req).unwrap_or_default().into_bytes()),
        LimitBy::Route => Some(req.route_name().unwrap_or_default().into_bytes()),
    };
    let mut key = format!("{}{start}", config.key_prefix);
    if let Some(value) = value {
        key.push(':');
        key.push_str(&bounded(&value));
    }
    key
}

/// A request value as a key part: verbatim when short UTF-8, hashed otherwise,
/// so a client cannot make keys of any size.
fn bounded(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if text.len() <= MAX_KEY_VALUE && !text.starts_with('#') => text.to_string(),
        // FNV-1a, 64 bits: stable across VMs and gateways, which is what a
        // shared counter needs. The `#` keeps hashes apart from verbatim values.
        _ => {
            let hash =
                value.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
            format!("#{hash:016x}")
        }
    }
}

/// The first value of query parameter `name` in `path` (not percent-decoded).
fn query_value(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.to_string())
    })
}

/// The client's address without its port (`source.address` is `ip:port`).
fn client_ip(req: &Request<RedisRateLimit>) -> Option<String> {
    let address = String::from_utf8(req.property(&["source", "address"])?).ok()?;
    Some(gateway_sdk::config::strip_port(&address).trim_start_matches('[').trim_end_matches(']').to_string())
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
        assert_eq!((config.limit, config.window), (10, 60));
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
        assert_eq!((config.limit, config.window), (5, 1));
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

    #[test]
    fn long_values_are_hashed_into_bounded_keys() {
        assert_eq!(bounded(b"abc"), "abc");
        let long = "x".repeat(10_000);
        let key = bounded(long.as_bytes());
        assert_eq!(key.len(), 17);
        assert_eq!(key, bounded(long.as_bytes()));
        assert_ne!(key, bounded("y".repeat(10_000).as_bytes()));
        // Values that are not UTF-8 are hashed from their bytes, each apart.
        assert_ne!(bounded(b"k\xff"), bounded(b"k\xfe"));
        // A value cannot pass for a hash.
        assert_ne!(bounded(b"#0123456789abcdef"), "#0123456789abcdef");
    }

    #[test]
    fn query_values() {
        assert_eq!(query_value("/a?x=1&key=abc&key=2", "key").as_deref(), Some("abc"));
        assert_eq!(query_value("/a?flag&key=", "flag").as_deref(), Some(""));
        assert_eq!(query_value("/a?key=1#frag", "key").as_deref(), Some("1"));
        assert_eq!(query_value("/a", "key"), None);
        assert_eq!(query_value("/a?other=1", "key"), None);
    }
}
