//! Config field types that check their value when the config is parsed.
//!
//! Use them in a plugin's settings so that a bad value fails plugin start with
//! an error naming the field, instead of failing (or misbehaving) per request.
//! Each type also describes what it accepts in the settings' JSON Schema
//! (native builds), so the check is written once, here, for both:
//!
//! ```
//! # use gateway_sdk::fields::{HeaderName, Millis, StatusCode};
//! # use gateway_sdk::prelude::*;
//! #[derive(Deserialize, JsonSchema)]
//! struct Settings {
//!     token_header: HeaderName,
//!     status: StatusCode,
//!     #[serde(default)]
//!     timeout: Millis,
//! }
//! ```

use crate::{Cluster, HttpClient};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::ops::Deref;

/// An HTTP status a plugin may answer with: 200 to 599.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 200, the usual answer of a plugin that serves a request itself.
    pub const OK: StatusCode = StatusCode(200);

    /// `code` if it is 200 to 599; otherwise an error saying the range.
    pub fn new(code: u16) -> Result<Self, String> {
        if (200..=599).contains(&code) {
            Ok(StatusCode(code))
        } else {
            Err(format!("{code} is not an HTTP status a plugin can answer with (200-599)"))
        }
    }

    /// The status as a number, for [`Request::respond`](crate::Request::respond).
    pub fn get(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(deserializer)?;
        StatusCode::new(code).map_err(serde::de::Error::custom)
    }
}

/// A header name: a non-empty HTTP token (RFC 9110), stored lowercase as
/// HTTP/2 and Envoy carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderName(String);

impl HeaderName {
    /// `name` in lowercase, if it is a non-empty token (letters, digits and
    /// ``!#$%&'*+-.^_`|~``); otherwise an error saying which rule it broke.
    pub fn new(name: &str) -> Result<Self, String> {
        let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() {
            return Err("a header name must not be empty".to_string());
        }
        if !name.chars().all(is_token_char) {
            return Err(format!("`{name}` is not a valid header name"));
        }
        Ok(HeaderName(name.to_ascii_lowercase()))
    }

    /// The name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for HeaderName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        HeaderName::new(&name).map_err(serde::de::Error::custom)
    }
}

/// A header value without CR, LF or NUL, so it cannot split a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderValue(String);

impl HeaderValue {
    /// `value` as given, if it has no CR, LF or NUL; otherwise an error.
    pub fn new(value: &str) -> Result<Self, String> {
        if value.contains(['\r', '\n', '\0']) {
            return Err("the value contains CR, LF or NUL".to_string());
        }
        Ok(HeaderValue(value.to_string()))
    }

    /// The value as given in the config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for HeaderValue {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        HeaderValue::new(&value).map_err(serde::de::Error::custom)
    }
}

/// Headers given as a JSON object (`{"content-type": "text/plain"}`). The
/// order is not kept (JSON objects have none); names are unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    /// Pairs ready for [`Request::respond`](crate::Request::respond).
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// The (name, value) pairs, names lowercase, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the object had no headers (`{}`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names to string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = map.next_entry::<HeaderName, HeaderValue>()? {
                    out.push((name, value));
                }
                Ok(Headers(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A string that must not be empty (after trimming spaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonEmpty(String);

impl NonEmpty {
    /// The string as given, spaces included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for NonEmpty {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<NonEmpty> for String {
    fn from(value: NonEmpty) -> String {
        value.0
    }
}

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(value))
    }
}

/// A duration in milliseconds, at least 1 (a timeout of 0 would never let
/// anything finish). The default is [`Millis::DEFAULT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis(u32);

impl Millis {
    /// What an HTTP call waits when not told ([`http::DEFAULT_TIMEOUT_MS`](crate::http::DEFAULT_TIMEOUT_MS)).
    pub const DEFAULT: Millis = Millis(crate::http::DEFAULT_TIMEOUT_MS);
    /// One second (1000 ms).
    pub const SECOND: Millis = Millis(1000);

    /// [`Millis::SECOND`], for a field's `#[serde(default = "Millis::second")]`
    /// (serde takes a function there, not a constant).
    pub const fn second() -> Millis {
        Millis::SECOND
    }

    /// `ms` milliseconds, if at least 1; 0 is an error.
    pub fn new(ms: u32) -> Result<Self, String> {
        if ms == 0 {
            return Err("must be at least 1 (milliseconds)".to_string());
        }
        Ok(Millis(ms))
    }

    /// The duration in milliseconds (at least 1), as HTTP calls take it.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Millis {
    fn default() -> Self {
        Millis::DEFAULT
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Millis::new(u32::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A TCP port: 1 to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(u16);

impl Port {
    /// `port`, if not 0; 0 is an error.
    pub fn new(port: u16) -> Result<Self, String> {
        if port == 0 {
            return Err("port 0 is not a port".to_string());
        }
        Ok(Port(port))
    }

    /// The port number (1 to 65535).
    pub fn get(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Port::new(u16::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A limit on a count: a whole number of at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(u64);

impl Limit {
    /// `limit`, if at least 1; 0 is an error.
    pub fn new(limit: u64) -> Result<Self, String> {
        if limit == 0 {
            return Err("the limit must be at least 1".to_string());
        }
        Ok(Limit(limit))
    }

    /// The limit (at least 1).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Limit::new(u64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A service as the Higress Go plugin guide's configs name it (`auth.dns`,
/// `10.0.0.5.static`, `svc.ns.svc.cluster.local`): what
/// [`Cluster::service`] accepts as a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName(String);

impl ServiceName {
    /// `name`, if it is not blank and is a service name a [`Cluster`] can
    /// be made of; otherwise an error saying what is wrong with it.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err("must not be empty".to_string());
        }
        Cluster::check_service_name(&name)?;
        Ok(ServiceName(name))
    }

    /// The name as given in the config.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is of a `.static` service (one without a port gets 80).
    pub fn is_static(&self) -> bool {
        self.0.ends_with(".static")
    }

    /// The cluster of this service at `port`, with `host` as the calls'
    /// `:authority` (default: the name); without a port only a `.static`
    /// service has one (80). Errors say what is wrong, for the name's field.
    pub fn cluster(&self, port: Option<Port>, host: Option<&str>) -> Result<Cluster, String> {
        Ok(match Cluster::service(&self.0, port.map(Port::get))? {
            Cluster::Fqdn { fqdn, port, .. } => Cluster::Fqdn { fqdn, port, host: host.map(str::to_string) },
            other => other,
        })
    }

    /// A client for this service, made as [`ServiceName::cluster`] makes its
    /// cluster, for a config's `try_from`: there the error names no field,
    /// so it is prefixed with `serviceName: `, the field the Higress Go
    /// plugin guide's configs give the service (`serviceName: needs a port:
    /// ...`).
    pub fn http_client(&self, port: Option<Port>, host: Option<&str>) -> Result<HttpClient, String> {
        let cluster = self.cluster(port, host).map_err(|err| format!("serviceName: {err}"))?;
        Ok(HttpClient::new(cluster))
    }
}

impl Deref for ServiceName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ServiceName::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// JSON Schemas of the field types (native builds): each accepts exactly
/// the values its `Deserialize` accepts.
#[cfg(not(target_family = "wasm"))]
mod schema {
    use super::{HeaderName, HeaderValue, Headers, Limit, Millis, NonEmpty, Port, ServiceName, StatusCode};
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    /// An RFC 9110 token: what [`HeaderName::new`] accepts.
    const HEADER_NAME_PATTERN: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";
    /// No CR, LF or NUL: what [`HeaderValue::new`] accepts.
    const HEADER_VALUE_PATTERN: &str = "^[^\\r\\n\\x00]*$";
    /// Something besides whitespace: what [`NonEmpty`] accepts.
    const NON_BLANK_PATTERN: &str = "\\S";

    impl JsonSchema for StatusCode {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "StatusCode".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "An HTTP status a plugin can answer with.",
                "type": "integer",
                "minimum": 200,
                "maximum": 599
            })
        }
    }

    impl JsonSchema for HeaderName {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "HeaderName".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A header name (an HTTP token; stored lowercase).",
                "type": "string",
                "pattern": HEADER_NAME_PATTERN
            })
        }
    }

    impl JsonSchema for HeaderValue {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "HeaderValue".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A header value without CR, LF or NUL.",
                "type": "string",
                "pattern": HEADER_VALUE_PATTERN
            })
        }
    }

    impl JsonSchema for Headers {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "Headers".into()
        }
        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "Headers: an object of header names to values.",
                "type": "object",
                "propertyNames": generator.subschema_for::<HeaderName>(),
                "additionalProperties": generator.subschema_for::<HeaderValue>()
            })
        }
    }

    impl JsonSchema for NonEmpty {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "NonEmpty".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A string that is not empty or only whitespace.",
                "type": "string",
                "pattern": NON_BLANK_PATTERN
            })
        }
    }

    /// An unsigned integer of `format` from `minimum` to `maximum`.
    fn integer(format: &str, minimum: u64, maximum: u64) -> Schema {
        json_schema!({"type": "integer", "format": format, "minimum": minimum, "maximum": maximum})
    }

    impl JsonSchema for Millis {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "Millis".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            integer("uint32", 1, u32::MAX.into())
        }
    }

    /// For the `default` of a field: schemars writes it from `Serialize`.
    impl serde::Serialize for Millis {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_u32(self.0)
        }
    }

    impl JsonSchema for Port {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "Port".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            integer("uint16", 1, u16::MAX.into())
        }
    }

    impl JsonSchema for Limit {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "Limit".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            integer("uint64", 1, u64::MAX)
        }
    }

    impl JsonSchema for ServiceName {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "ServiceName".into()
        }
        // Not blank, and what `Cluster::service` takes for a name.
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "pattern": NON_BLANK_PATTERN,
                "allOf": [{"pattern": crate::schema::SERVICE_NAME_PATTERN}]
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: for<'de> Deserialize<'de>>(value: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn status_codes() {
        assert_eq!(parse::<StatusCode>(json!(404)).unwrap().get(), 404);
        assert!(parse::<StatusCode>(json!(99)).unwrap_err().contains("200-599"));
        assert!(parse::<StatusCode>(json!(600)).is_err());
        assert!(parse::<StatusCode>(json!("200")).is_err());
    }

    #[test]
    fn header_names_and_values() {
        assert_eq!(parse::<HeaderName>(json!("X-Token")).unwrap().as_str(), "x-token");
        assert!(parse::<HeaderName>(json!("")).is_err());
        assert!(parse::<HeaderName>(json!("a b")).is_err());
        assert!(parse::<HeaderName>(json!("a:b")).is_err());
        assert!(parse::<HeaderValue>(json!("ok value")).is_ok());
        assert!(parse::<HeaderValue>(json!("a\r\nx-evil: 1")).is_err());
    }

    #[test]
    fn header_objects() {
        let h: Headers = parse(json!({"b": "2", "A": "1"})).unwrap();
        let mut pairs = h.pairs();
        pairs.sort();
        assert_eq!(pairs, vec![("a", "1"), ("b", "2")]);
        assert!(parse::<Headers>(json!({"bad name": "1"})).is_err());
        assert!(parse::<Headers>(json!(["a"])).is_err());
    }

    #[test]
    fn non_empty_strings() {
        assert!(parse::<NonEmpty>(json!("  ")).is_err());
        assert_eq!(parse::<NonEmpty>(json!("/token")).unwrap().as_str(), "/token");
    }

    #[test]
    fn numbers_with_a_floor() {
        assert_eq!(parse::<Millis>(json!(1)).unwrap().get(), 1);
        assert_eq!(parse::<Millis>(json!(0)).unwrap_err(), "must be at least 1 (milliseconds)");
        assert!(parse::<Millis>(json!("1s")).unwrap_err().contains("expected u32"));
        assert_eq!(Millis::default().get(), crate::http::DEFAULT_TIMEOUT_MS);
        assert_eq!(Millis::second().get(), 1000);
        assert_eq!(parse::<Port>(json!(65535)).unwrap().get(), 65535);
        assert_eq!(parse::<Port>(json!(0)).unwrap_err(), "port 0 is not a port");
        assert!(parse::<Port>(json!(65536)).unwrap_err().contains("expected u16"));
        assert_eq!(parse::<Limit>(json!(u64::MAX)).unwrap().get(), u64::MAX);
        assert_eq!(parse::<Limit>(json!(0)).unwrap_err(), "the limit must be at least 1");
    }

    #[test]
    fn service_names() {
        let name: ServiceName = parse(json!("auth.dns")).unwrap();
        assert!(!name.is_static());
        assert!(name.cluster(None, None).unwrap_err().contains("needs a port"));
        let cluster = name.cluster(Port::new(8080).ok(), Some("auth.example")).unwrap();
        assert_eq!(cluster.cluster_name(|| None).as_deref(), Some("outbound|8080||auth.dns"));
        assert_eq!(cluster.host_name(|| None).as_deref(), Some("auth.example"));
        let name: ServiceName = parse(json!("10.0.0.5.static")).unwrap();
        assert!(name.is_static() && name.cluster(None, None).is_ok());
        assert_eq!(parse::<ServiceName>(json!(" ")).unwrap_err(), "must not be empty");
        assert!(parse::<ServiceName>(json!("a|b.dns")).unwrap_err().contains("is not a service name"));
        assert!(parse::<ServiceName>(json!(" padded.dns")).is_err());
        let name: ServiceName = parse(json!("auth.dns")).unwrap();
        assert_eq!(name.http_client(Port::new(81).ok(), None).unwrap().cluster_name(), Some("outbound|81||auth.dns"));
        assert!(name.http_client(None, None).unwrap_err().starts_with("serviceName: needs a port"));
    }
}
