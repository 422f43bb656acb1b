//! Config field types that check their value when the config is parsed.
//!
//! Use them in a plugin's config so that a bad value fails plugin start with
//! an error naming the field, instead of failing (or misbehaving) per request:
//!
//! ```
//! # use gateway_sdk::fields::{HeaderName, StatusCode};
//! #[derive(serde::Deserialize)]
//! struct Config { token_header: HeaderName, status: StatusCode }
//! ```

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::ops::Deref;

/// An HTTP status a plugin may answer with: 200 to 599.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCode(u16);

impl StatusCode {
    pub const OK: StatusCode = StatusCode(200);

    pub fn new(code: u16) -> Result<Self, String> {
        if (200..=599).contains(&code) {
            Ok(StatusCode(code))
        } else {
            Err(format!("{code} is not an HTTP status a plugin can answer with (200-599)"))
        }
    }

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
    pub fn new(value: &str) -> Result<Self, String> {
        if value.contains(['\r', '\n', '\0']) {
            return Err("the value contains CR, LF or NUL".to_string());
        }
        Ok(HeaderValue(value.to_string()))
    }

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

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

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

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(value))
    }
}

/// JSON Schemas of the field types (feature `schema`): each accepts exactly
/// the values its `Deserialize` accepts.
#[cfg(feature = "schema")]
mod schema {
    use super::{HeaderName, HeaderValue, Headers, NonEmpty, StatusCode};
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
}
