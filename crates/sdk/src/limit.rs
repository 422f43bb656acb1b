//! Counting requests per key and fixed window: the pieces a rate limiter or
//! a quota needs besides its store.
//!
//! * [`Window`], a config field: a second, minute, hour or day, aligned to
//!   Unix time; [`Window::current`] is the [`FixedWindow`] a request falls in
//!   (its start, the Higress Go plugin guide's key, and the seconds left).
//! * [`LimitBy`], a config field: what requests share a counter (all, or one
//!   per header value, query parameter, client address or route);
//!   [`LimitBy::key`] is the counter's key, `<prefix><window start>[:<value>]`,
//!   bounded in size whatever the request sends ([`key_part`]).
//! * [`rate_limit_headers`]: the IETF `RateLimit-*` headers of a count.
//!
//! With Redis, [`RedisClient::incr_with_expiry`](crate::RedisClient::incr_with_expiry)
//! counts a request in one round trip:
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # use gateway_sdk::limit::{LimitBy, Window};
//! # struct Limiter;
//! # pub struct Config { limit_by: LimitBy, window: Window }
//! # impl Plugin for Limiter {
//! #     const NAME: &'static str = "limiter";
//! #     type Config = ();
//! #     type State = ();
//! # }
//! # fn demo(req: &mut Request<Limiter>, config: &Config) {
//! let window = config.window.current();
//! let key = config.limit_by.key(req, "rl:", window);
//! // redis.incr_with_expiry(req, &key, config.window.seconds(), |req, config, count| ...)
//! # }
//! ```
//!
//! Both field types describe themselves in the settings' JSON Schema.

use crate::{Plugin, Request};
use serde::Deserialize;

/// Longest request value [`key_part`] keeps verbatim; longer ones are hashed.
pub const KEY_PART_MAX: usize = 64;

/// A fixed window of time a limit counts over, aligned to Unix time (a
/// minute starts at a whole minute), written `"second"`, `"minute"`,
/// `"hour"` or `"day"` in a config.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Window {
    /// One second.
    Second,
    /// One minute (the window of the Higress Go plugin guide's limiter).
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Window {
    /// Its length in seconds, also the expiry a counter of it gets.
    pub fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86400,
        }
    }

    /// The window of this length that holds `now` (Unix seconds).
    pub fn at(self, now: u64) -> FixedWindow {
        let seconds = self.seconds();
        let start = now - now % seconds;
        FixedWindow { start, reset: start + seconds - now }
    }

    /// The window of this length that holds the host's clock
    /// ([`now`](crate::now)); a clock before 1970 counts as 1970.
    pub fn current(self) -> FixedWindow {
        let now = crate::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(0);
        self.at(now)
    }
}

/// One window of a [`Window`]: when it started and how long it has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    /// Its start in Unix seconds (the Higress Go plugin guide's key).
    pub start: u64,
    /// Seconds until it ends (1 to its length): what `RateLimit-Reset` and
    /// `Retry-After` say.
    pub reset: u64,
}

/// What requests share a counter, written `"global"`, `{"header": name}`,
/// `{"query": name}`, `"clientIp"` or `"route"` in a config. Requests
/// without the header or parameter share one counter (value empty).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(not(target_family = "wasm"), derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum LimitBy {
    /// One counter for all requests (as in the Higress Go plugin guide).
    #[default]
    Global,
    /// One per value of this request header.
    Header(crate::fields::HeaderName),
    /// One per value of this query parameter.
    Query(crate::fields::NonEmpty),
    /// One per client address (Envoy's `source.address`).
    ClientIp,
    /// One per route.
    Route,
}

impl LimitBy {
    /// The request's value this counts by: `None` for [`LimitBy::Global`],
    /// else the header's raw bytes (two values that differ only in bytes that
    /// are not UTF-8 must not share a counter), the query parameter (not
    /// percent-decoded), the client's IP or the route's name; empty when the
    /// request has none.
    pub fn value<P: Plugin>(&self, req: &Request<P>) -> Option<Vec<u8>> {
        Some(match self {
            LimitBy::Global => return None,
            LimitBy::Header(name) => req.header_bytes(name).unwrap_or_default(),
            LimitBy::Query(name) => req.query_param(name).unwrap_or_default().into_bytes(),
            LimitBy::ClientIp => req.client_ip().unwrap_or_default().into_bytes(),
            LimitBy::Route => req.route_name().unwrap_or_default().into_bytes(),
        })
    }

    /// The key of the request's counter in `window`: `<prefix><window
    /// start>` (the Higress Go plugin guide's key, prefixed), then
    /// `:<value>` when counting per value, as [`key_part`] writes it.
    pub fn key<P: Plugin>(&self, req: &Request<P>, prefix: &str, window: FixedWindow) -> String {
        let mut key = format!("{prefix}{}", window.start);
        if let Some(value) = self.value(req) {
            key.push(':');
            key.push_str(&key_part(&value));
        }
        key
    }
}

/// A request value as part of a key: verbatim when it is UTF-8 of at most
/// [`KEY_PART_MAX`] bytes, else `#` and its 64-bit FNV-1a hash in hex, so a
/// client cannot make keys of any size. The hash is stable across VMs and
/// gateways, as a shared counter needs; a value starting with `#` is hashed
/// too, so that none passes for another's hash.
pub fn key_part(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if text.len() <= KEY_PART_MAX && !text.starts_with('#') => text.to_string(),
        _ => {
            let hash =
                value.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
            format!("#{hash:016x}")
        }
    }
}

/// The IETF headers of a count (`RateLimit-Limit`, `RateLimit-Remaining`,
/// `RateLimit-Reset`, and `Retry-After` on a refused request), for a
/// limiter's answers.
pub fn rate_limit_headers(limit: u64, left: u64, window: FixedWindow, limited: bool) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("RateLimit-Limit", limit.to_string()),
        ("RateLimit-Remaining", left.to_string()),
        ("RateLimit-Reset", window.reset.to_string()),
    ];
    if limited {
        headers.push(("Retry-After", window.reset.to_string()));
    }
    headers
}

/// The schema of [`Window`] (native builds): its four names, without the
/// variants' docs, as a plain string enum.
#[cfg(not(target_family = "wasm"))]
impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "enum": ["second", "minute", "hour", "day"]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_unix_time() {
        assert_eq!(Window::Minute.at(1_764_072_030), FixedWindow { start: 1_764_072_000, reset: 30 });
        assert_eq!(Window::Second.at(7), FixedWindow { start: 7, reset: 1 });
        assert_eq!(Window::Hour.at(3600), FixedWindow { start: 3600, reset: 3600 });
        assert_eq!(Window::Day.seconds(), 86400);
        assert_eq!(serde_json::from_str::<Window>(r#""hour""#).unwrap(), Window::Hour);
        assert!(serde_json::from_str::<Window>(r#""week""#).unwrap_err().to_string().contains("unknown variant"));
    }

    #[test]
    fn limit_by_reads_its_config_forms() {
        let parse = |json: &str| serde_json::from_str::<LimitBy>(json).map_err(|e| e.to_string());
        assert_eq!(parse(r#""global""#).unwrap(), LimitBy::Global);
        assert_eq!(parse(r#""clientIp""#).unwrap(), LimitBy::ClientIp);
        let header = parse(r#"{"header": "X-Api-Key"}"#).unwrap();
        assert_eq!(header, LimitBy::Header(crate::fields::HeaderName::new("x-api-key").unwrap()));
        assert!(parse(r#"{"query": " "}"#).is_err());
        assert!(parse(r#""ip""#).unwrap_err().contains("unknown variant `ip`"));
    }

    #[test]
    fn long_values_are_hashed_into_bounded_key_parts() {
        assert_eq!(key_part(b"abc"), "abc");
        let long = "x".repeat(10_000);
        let part = key_part(long.as_bytes());
        assert_eq!(part.len(), 17);
        assert_eq!(part, key_part(long.as_bytes()));
        assert_ne!(part, key_part("y".repeat(10_000).as_bytes()));
        assert_eq!(key_part("z".repeat(KEY_PART_MAX).as_bytes()).len(), KEY_PART_MAX);
        // Values that are not UTF-8 are hashed from their bytes, each apart.
        assert_ne!(key_part(b"k\xff"), key_part(b"k\xfe"));
        // A value cannot pass for a hash.
        assert_ne!(key_part(b"#0123456789abcdef"), "#0123456789abcdef");
    }

    #[test]
    fn ietf_headers() {
        let window = FixedWindow { start: 60, reset: 12 };
        let names = |limited| rate_limit_headers(5, 0, window, limited).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(names(false), ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]);
        assert_eq!(rate_limit_headers(5, 2, window, true).last(), Some(&("Retry-After", "12".to_string())));
    }
}
