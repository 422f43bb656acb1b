//! User attributes: key/value pairs a plugin adds to the gateway's access
//! log and to the request's trace span (Go: `SetUserAttribute`,
//! `WriteUserAttributeToLog`, `WriteUserAttributeToLogWithKey`,
//! `WriteUserAttributeToTrace`).
//!
//! The attributes are a value the plugin owns, usually in its per-request
//! state, and are written when the plugin says so:
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # use gateway_sdk::Attributes;
//! # #[derive(Deserialize)]
//! # struct Config {}
//! #[derive(Default)]
//! struct State { attributes: Attributes }
//!
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = Config;
//! #     type State = State;
//! fn on_response_headers(req: &mut Request<Self>, _config: &Config) -> HeaderAction {
//!     req.state.attributes.set("model", "qwen-max");
//!     req.state.attributes.set("input_tokens", 42);
//!     req.write_attributes_to_log(&req.state.attributes);
//!     req.write_attributes_to_trace(&req.state.attributes);
//!     HeaderAction::Continue
//! }
//! # }
//! ```
//!
//! What is written, as the Go SDK writes it:
//!
//! * **Log**: the property `custom_log` ([`CUSTOM_LOG`]; AI plugins use
//!   [`AI_LOG`], `ai_log`) is set to the attributes as a JSON object, merged
//!   over the object already there (so several plugins, or several phases,
//!   add to one object), and escaped as the content of a JSON string, because
//!   Higress's access log format embeds it in a JSON line as
//!   `"custom_log": "%FILTER_STATE(wasm.custom_log:PLAIN)%"`. On upstream
//!   Envoy the same filter state exists: an access log shows it with the same
//!   `%FILTER_STATE(wasm.custom_log:PLAIN)%`.
//! * **Trace**: each attribute becomes the property `trace_span_tag.<key>`
//!   with its value as text. Higress adds each as a tag to the request's
//!   span; upstream Envoy keeps them only as filter state
//!   (`%FILTER_STATE(wasm.trace_span_tag.<key>:PLAIN)%`), and its tracers do
//!   not read them.

use crate::json::{self, Json};
use crate::{Plugin, Request};
use std::fmt::Write as _;

/// The property Higress's access log reads plugin attributes from.
pub const CUSTOM_LOG: &str = "custom_log";
/// The property Higress's AI plugins write their attributes to.
pub const AI_LOG: &str = "ai_log";
/// The prefix of the properties Higress turns into trace span tags.
pub const TRACE_SPAN_TAG_PREFIX: &str = "trace_span_tag.";

/// One attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeValue {
    /// Text (a JSON string in the log).
    Text(String),
    /// A whole number (a JSON number in the log).
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        AttributeValue::Text(value.to_string())
    }
}
impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        AttributeValue::Text(value)
    }
}
impl From<i64> for AttributeValue {
    fn from(value: i64) -> Self {
        AttributeValue::Int(value)
    }
}
impl From<i32> for AttributeValue {
    fn from(value: i32) -> Self {
        AttributeValue::Int(i64::from(value))
    }
}
impl From<u32> for AttributeValue {
    fn from(value: u32) -> Self {
        AttributeValue::Int(i64::from(value))
    }
}
impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        AttributeValue::Bool(value)
    }
}

impl AttributeValue {
    /// The value as a trace tag shows it (Go's `fmt.Sprint`).
    fn to_text(&self) -> String {
        match self {
            AttributeValue::Text(text) => text.clone(),
            AttributeValue::Int(n) => n.to_string(),
            AttributeValue::Bool(b) => b.to_string(),
        }
    }

    fn write_json(&self, out: &mut String) {
        match self {
            AttributeValue::Text(text) => write_json_string(out, text),
            AttributeValue::Int(n) => {
                let _ = write!(out, "{n}");
            }
            AttributeValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

/// A request's user attributes, in the order first set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    entries: Vec<(String, AttributeValue)>,
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Self {
        Attributes::default()
    }
    /// Sets `key` (Go: `SetUserAttribute`), replacing its value if it had one.
    pub fn set(&mut self, key: &str, value: impl Into<AttributeValue>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }
    /// The value of `key` (Go: `GetUserAttribute`).
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }
    /// Every attribute, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<P: Plugin> Request<P> {
    /// Writes `attributes` to the access log property `custom_log` (Go:
    /// `WriteUserAttributeToLog`); see the [module docs](crate::attributes).
    pub fn write_attributes_to_log(&self, attributes: &Attributes) {
        self.write_attributes_to_log_with_key(CUSTOM_LOG, attributes);
    }

    /// Writes `attributes` to the access log property `key`, e.g. [`AI_LOG`]
    /// (Go: `WriteUserAttributeToLogWithKey`): merged over the JSON object
    /// already there. A value already there that is not such an object is
    /// replaced, with a warning.
    pub fn write_attributes_to_log_with_key(&self, key: &str, attributes: &Attributes) {
        let previous = self.property_as::<String>(&[key]).unwrap_or_default();
        let (merged, replaced) = merge_log(&previous, attributes);
        if replaced {
            self.log().warn(format_args!("{key} held no JSON object; it is replaced"));
        }
        if let Err(err) = self.set_property(&[key], merged) {
            self.log().warn(format_args!("attributes not written to {key}: {err}"));
        }
    }

    /// Writes each attribute as the property `trace_span_tag.<key>`, its value
    /// as text (Go: `WriteUserAttributeToTrace`). Empty values are skipped, as
    /// the Go SDK skips them.
    pub fn write_attributes_to_trace(&self, attributes: &Attributes) {
        for (key, value) in attributes.iter() {
            let text = value.to_text();
            if text.is_empty() {
                continue;
            }
            let name = format!("{TRACE_SPAN_TAG_PREFIX}{key}");
            if let Err(err) = self.set_property(&[&name], text) {
                self.log().warn(format_args!("attribute {key} not written to the trace: {err}"));
            }
        }
    }
}

/// The new property value: `previous` (an escaped JSON object, or empty)
/// with `attributes` set over it, escaped again; and whether `previous` was
/// not such an object and so was dropped.
fn merge_log(previous: &str, attributes: &Attributes) -> (String, bool) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut replaced = false;
    if !previous.is_empty() {
        match unescape_object(previous) {
            Some(existing) => fields = existing,
            None => replaced = true,
        }
    }
    for (key, value) in attributes.iter() {
        let mut encoded = String::new();
        value.write_json(&mut encoded);
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = encoded,
            None => fields.push((key.to_string(), encoded)),
        }
    }
    let mut object = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            object.push(',');
        }
        write_json_string(&mut object, key);
        object.push(':');
        object.push_str(value);
    }
    object.push('}');
    // The content of a JSON string: the object with its quotes escaped.
    let mut escaped = String::with_capacity(object.len() + 16);
    write_json_string(&mut escaped, &object);
    let content = escaped.get(1..escaped.len().saturating_sub(1)).unwrap_or_default().to_string();
    (content, replaced)
}

/// The fields of an escaped JSON object, each value re-encoded as JSON text.
fn unescape_object(escaped: &str) -> Option<Vec<(String, String)>> {
    let quoted = format!("\"{escaped}\"");
    let Ok(Json::String(object)) = json::parse(quoted.as_bytes()) else { return None };
    let Ok(Json::Object(fields)) = json::parse(object.as_bytes()) else { return None };
    Some(fields.into_iter().map(|(k, v)| (k, encode(&v))).collect())
}

fn encode(value: &Json) -> String {
    let mut out = String::new();
    encode_into(value, &mut out);
    out
}

fn encode_into(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(text) => out.push_str(text),
        Json::String(text) => write_json_string(out, text),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(item, out);
            }
            out.push(']');
        }
        Json::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                encode_into(item, out);
            }
            out.push('}');
        }
    }
}

/// `text` as a JSON string, quotes included.
fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::{merge_log, Attributes};

    #[test]
    fn the_log_property_is_an_escaped_object_merged_over_the_last() {
        let mut attributes = Attributes::new();
        attributes.set("model", "qwen");
        attributes.set("tokens", 42);
        let (first, replaced) = merge_log("", &attributes);
        assert_eq!(first, r#"{\"model\":\"qwen\",\"tokens\":42}"#);
        assert!(!replaced);

        let mut more = Attributes::new();
        more.set("tokens", 50);
        more.set("cached", true);
        more.set("quote", "a\"b\nc");
        let (second, _) = merge_log(&first, &more);
        assert_eq!(second, r#"{\"model\":\"qwen\",\"tokens\":50,\"cached\":true,\"quote\":\"a\\\"b\\nc\"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&format!("\"{second}\"")).unwrap();
        let object: serde_json::Value = serde_json::from_str(parsed.as_str().unwrap()).unwrap();
        assert_eq!(object["quote"], "a\"b\nc");
        assert_eq!(object["tokens"], 50);
    }

    #[test]
    fn a_previous_value_that_is_no_object_is_replaced() {
        let mut attributes = Attributes::new();
        attributes.set("k", "v");
        assert_eq!(merge_log("not json", &attributes), (r#"{\"k\":\"v\"}"#.to_string(), true));
        assert_eq!(merge_log("[1]", &attributes), (r#"{\"k\":\"v\"}"#.to_string(), true));
    }

    #[test]
    fn attributes_keep_their_first_order_and_replace_values() {
        let mut attributes = Attributes::new();
        attributes.set("a", 1);
        attributes.set("b", "x");
        attributes.set("a", false);
        let keys: Vec<&str> = attributes.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(attributes.get("a"), Some(&super::AttributeValue::Bool(false)));
        attributes.remove("a");
        assert_eq!(attributes.iter().count(), 1);
    }
}
