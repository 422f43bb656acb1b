//! A small JSON reader for plugin configurations, and a serde `Deserializer` over it.
//!
//! `serde_json` costs about 60 KB in a Wasm module, most of it float parsing
//! and formatting that a gateway config never needs; that alone would make a
//! hello-world plugin larger than the whole rest of the module. This reader
//! keeps numbers as their text and converts them only into the type a config
//! field asks for, so float code is linked only into plugins whose config has
//! a float field. It is strict JSON (RFC 8259): no comments, no trailing
//! commas, and duplicate keys are refused, since a config with two values for
//! one key is ambiguous.
//!
//! Errors carry the JSON path of the value that was wrong (`headers.x-a`,
//! `list[2]`), added as the error travels up from where it happened.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
use std::fmt;

/// Deepest nesting accepted; deeper documents are refused instead of
/// exhausting the VM's stack.
const MAX_DEPTH: usize = 64;

/// A parsed JSON value. Numbers keep their source text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A document that is not JSON, with where it stopped making sense.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.message, self.line, self.column)
    }
}

/// Parses one JSON document (surrounding whitespace allowed).
pub(crate) fn parse(input: &[u8]) -> Result<Json, SyntaxError> {
    let mut parser = Parser { input, at: 0 };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at < input.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, message: &'static str) -> SyntaxError {
        let before = self.input.get(..self.at).unwrap_or(self.input);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        SyntaxError { line, column: self.at - line_start + 1, message }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, message: &'static str) -> Result<(), SyntaxError> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &[u8], value: Json) -> Result<Json, SyntaxError> {
        if self.input.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Json, SyntaxError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = self.input.get(start..self.at).unwrap_or_default();
        // Only ASCII digits and signs were accepted above.
        Ok(Json::Number(String::from_utf8_lossy(text).into_owned()))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.at += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else { return Err(self.error("unterminated string")) };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0x00..=0x1f => {
                    self.at -= 1;
                    return Err(self.error("control character in string"));
                }
                _ => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("string is not valid UTF-8"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), SyntaxError> {
        let Some(byte) = self.peek() else { return Err(self.error("unterminated string")) };
        self.at += 1;
        let simple = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut code = u32::from(self.hex4()?);
                if (0xd800..0xdc00).contains(&code) {
                    // A high surrogate must be followed by `\u` and a low one.
                    if self.input.get(self.at..self.at + 2) != Some(b"\\u") {
                        return Err(self.error("lone surrogate in string"));
                    }
                    self.at += 2;
                    let low = u32::from(self.hex4()?);
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.error("lone surrogate in string"));
                    }
                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                }
                let ch = char::from_u32(code).ok_or_else(|| self.error("lone surrogate in string"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let digits = self.input.get(self.at..self.at + 4).unwrap_or_default();
        if digits.len() != 4 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(self.error("invalid \\u escape"));
        }
        let code = digits.iter().fold(0u16, |code, &d| {
            // `d` is an ASCII hex digit, so `to_digit` cannot fail.
            (code << 4) | (char::from(d).to_digit(16).unwrap_or(0) as u16)
        });
        self.at += 4;
        Ok(code)
    }

    fn array(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        self.at += 1;
        let mut entries: Vec<(String, Json)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key_at = self.at;
            let key = self.string()?;
            if entries.iter().any(|(k, _)| *k == key) {
                self.at = key_at;
                return Err(self.error("duplicate key"));
            }
            self.expect(b':', "expected `:`")?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(entries));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }
}

/// A value a config type refused, with the path to it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Error {
    /// Path segments, innermost first (they are added while unwinding).
    path: Vec<Segment>,
    message: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Error {
    fn at(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }

    /// The path as `a.b[0].c`; empty for the document itself.
    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error { path: Vec::new(), message: message.to_string() }
    }

    // serde's default formats floats in these messages, which would link the
    // float formatting code into every plugin; describe them in words instead.
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Error::custom(format_args!("invalid type: {}, expected {}", Describe(unexpected), expected))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Error::custom(format_args!("invalid value: {}, expected {}", Describe(unexpected), expected))
    }
}

struct Describe<'a>(Unexpected<'a>);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            Unexpected::Float(_) => f.write_str("a number with a fraction or exponent"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string \"{s}\""),
            Unexpected::Bytes(_) => f.write_str("bytes"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("an optional value"),
            Unexpected::NewtypeStruct => f.write_str("a newtype struct"),
            Unexpected::Seq => f.write_str("an array"),
            Unexpected::Map => f.write_str("an object"),
            Unexpected::Enum => f.write_str("an enum"),
            Unexpected::UnitVariant => f.write_str("a unit variant"),
            Unexpected::NewtypeVariant => f.write_str("a newtype variant"),
            Unexpected::TupleVariant => f.write_str("a tuple variant"),
            Unexpected::StructVariant => f.write_str("a struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

impl Json {
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Json::Null => Unexpected::Unit,
            Json::Bool(b) => Unexpected::Bool(*b),
            Json::Number(text) => match (text.parse::<u64>(), text.parse::<i64>()) {
                (Ok(n), _) => Unexpected::Unsigned(n),
                (_, Ok(n)) => Unexpected::Signed(n),
                _ => Unexpected::Other("a number with a fraction or exponent"),
            },
            Json::String(s) => Unexpected::Str(s),
            Json::Array(_) => Unexpected::Seq,
            Json::Object(_) => Unexpected::Map,
        }
    }

    fn is_integer(text: &str) -> bool {
        !text.contains(['.', 'e', 'E'])
    }
}

macro_rules! deserialize_integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self {
                Json::Number(text) if Json::is_integer(text) => match text.parse::<u64>() {
                    Ok(n) => visitor.visit_u64(n),
                    Err(_) => match text.parse::<i64>() {
                        Ok(n) => visitor.visit_i64(n),
                        Err(_) => Err(Error::custom(format_args!("integer {text} is out of range"))),
                    },
                },
                Json::Number(_) => Err(Error::invalid_type(Unexpected::Float(0.0), &visitor)),
                other => Err(Error::invalid_type(other.unexpected(), &visitor)),
            }
        }
    )*};
}

use de::Error as _;

impl<'de> de::Deserializer<'de> for &'de Json {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(text) if Json::is_integer(text) => self.deserialize_i64(visitor),
            Json::Number(_) => self.deserialize_f64(visitor),
            Json::String(s) => visitor.visit_borrowed_str(s),
            Json::Array(items) => visitor.visit_seq(Items { items: items.iter(), index: 0 }),
            Json::Object(entries) => visitor.visit_map(Entries { entries: entries.iter(), value: None }),
        }
    }

    deserialize_integer!(deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64);

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Number(text) => match text.parse::<f64>() {
                Ok(n) if n.is_finite() => visitor.visit_f64(n),
                _ => Err(Error::custom(format_args!("number {text} is out of range"))),
            },
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Bool(b) => visitor.visit_bool(*b),
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::String(s) => visitor.visit_borrowed_str(s),
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::String(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Array(items) => visitor.visit_seq(Items { items: items.iter(), index: 0 }),
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Object(entries) => visitor.visit_map(Entries { entries: entries.iter(), value: None }),
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            // A unit variant: `"Name"`.
            Json::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            // A variant with data: `{"Name": value}`.
            Json::Object(entries) => match entries.as_slice() {
                [(name, value)] => visitor.visit_enum(Variant { name, value }),
                _ => Err(Error::custom("expected an object with exactly one key (the variant)")),
            },
            other => Err(Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Items<'de> {
    items: std::slice::Iter<'de, Json>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.next() else { return Ok(None) };
        let index = self.index;
        self.index += 1;
        seed.deserialize(item).map(Some).map_err(|e| e.at(Segment::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'de> {
    entries: std::slice::Iter<'de, (String, Json)>,
    value: Option<&'de (String, Json)>,
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        self.value = Some(entry);
        let key: de::value::BorrowedStrDeserializer<'de, Error> = de::value::BorrowedStrDeserializer::new(&entry.0);
        seed.deserialize(key).map(Some).map_err(|e| e.at(Segment::Key(entry.0.clone())))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.value.take() else {
            return Err(Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(value).map_err(|e| e.at(Segment::Key(key.clone())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Variant<'de> {
    name: &'de str,
    value: &'de Json,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = &'de Json;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, &'de Json), Error> {
        let name: de::value::BorrowedStrDeserializer<'de, Error> = de::value::BorrowedStrDeserializer::new(self.name);
        Ok((seed.deserialize(name)?, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for &'de Json {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    fn syntax(input: &str) -> String {
        parse(input.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_kind_of_value() {
        let doc = parse(br#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\"\u00e9\ud83d\ude00"}} "#).unwrap();
        assert_eq!(
            doc,
            Json::Object(vec![
                (
                    "a".into(),
                    Json::Array(vec![
                        Json::Number("1".into()),
                        Json::Number("-2.5e3".into()),
                        Json::Bool(true),
                        Json::Bool(false),
                        Json::Null
                    ])
                ),
                ("b".into(), Json::Object(vec![("c".into(), Json::String("x\"é😀".into()))])),
            ])
        );
    }

    #[test]
    fn refuses_what_is_not_json() {
        assert_eq!(syntax(""), "unexpected end of input at line 1 column 1");
        assert_eq!(syntax("{\"a\": tru}"), "expected a value at line 1 column 7");
        assert_eq!(syntax("{\"a\": 1,}"), "expected a string key at line 1 column 9");
        assert_eq!(syntax("[1 2]"), "expected `,` or `]` at line 1 column 4");
        assert_eq!(syntax("{\"a\" 1}"), "expected `:` at line 1 column 6");
        assert_eq!(syntax("{\"a\":1,\n\"a\":2}"), "duplicate key at line 2 column 1");
        assert_eq!(syntax("01"), "trailing characters at line 1 column 2");
        assert_eq!(syntax("1."), "invalid number at line 1 column 3");
        assert_eq!(syntax("-"), "invalid number at line 1 column 2");
        assert_eq!(syntax("\"a\nb\""), "control character in string at line 1 column 3");
        assert_eq!(syntax("\"\\x\""), "invalid escape at line 1 column 4");
        assert_eq!(syntax("\"\\ud800\""), "lone surrogate in string at line 1 column 8");
        assert_eq!(syntax("\"\\u12g4\""), "invalid \\u escape at line 1 column 4");
        assert_eq!(syntax("\"abc"), "unterminated string at line 1 column 5");
        assert_eq!(syntax("/* */ {}"), "expected a value at line 1 column 1");
        assert!(parse(b"\"\xff\"").is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(syntax(&deep), "nested too deeply at line 1 column 66");
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Config {
        port: u16,
        #[serde(default)]
        enabled: bool,
        name: Option<String>,
        tags: Vec<String>,
        limits: BTreeMap<String, u32>,
        mode: Mode,
        ratio: Option<f64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Open,
        Closed { code: u16 },
    }

    fn config(json: &str) -> Result<Config, String> {
        let doc = parse(json.as_bytes()).unwrap();
        Config::deserialize(&doc).map_err(|e| e.to_string())
    }

    #[test]
    fn deserializes_typed_configs() {
        let c =
            config(r#"{"port": 80, "name": null, "tags": ["a"], "limits": {"x": 3}, "mode": "open", "ratio": 0.5}"#)
                .unwrap();
        assert_eq!(c.port, 80);
        assert!(!c.enabled);
        assert_eq!(c.name, None);
        assert_eq!(c.tags, vec!["a"]);
        assert_eq!(c.limits.get("x"), Some(&3));
        assert_eq!(c.mode, Mode::Open);
        assert_eq!(c.ratio, Some(0.5));
        let c = config(r#"{"port": 1, "tags": [], "limits": {}, "mode": {"closed": {"code": 403}}}"#).unwrap();
        assert_eq!(c.mode, Mode::Closed { code: 403 });
    }

    #[test]
    fn errors_carry_the_path() {
        let base = r#""tags": [], "limits": {}, "mode": "open""#;
        assert_eq!(
            config(&format!(r#"{{"port": 70000, {base}}}"#)).unwrap_err(),
            "port: invalid value: integer `70000`, expected u16"
        );
        assert_eq!(
            config(&format!(r#"{{"port": -1, {base}}}"#)).unwrap_err(),
            "port: invalid value: integer `-1`, expected u16"
        );
        assert_eq!(
            config(&format!(r#"{{"port": 1.5, {base}}}"#)).unwrap_err(),
            "port: invalid type: a number with a fraction or exponent, expected u16"
        );
        assert_eq!(
            config(&format!(r#"{{"port": "80", {base}}}"#)).unwrap_err(),
            "port: invalid type: string \"80\", expected u16"
        );
        assert_eq!(
            config(r#"{"port": 1, "tags": ["a", 2], "limits": {}, "mode": "open"}"#).unwrap_err(),
            "tags[1]: invalid type: integer `2`, expected a string"
        );
        assert_eq!(
            config(r#"{"port": 1, "tags": [], "limits": {"k": true}, "mode": "open"}"#).unwrap_err(),
            "limits.k: invalid type: boolean `true`, expected u32"
        );
        assert_eq!(
            config(r#"{"port": 1, "tags": [], "limits": {}, "mode": "half"}"#).unwrap_err(),
            "mode: unknown variant `half`, expected `open` or `closed`"
        );
        assert_eq!(
            config(r#"{"port": 1, "tags": [], "limits": {}, "mode": "open", "extra": 1}"#).unwrap_err(),
            "extra: unknown field `extra`, expected one of `port`, `enabled`, `name`, `tags`, `limits`, `mode`, `ratio`"
        );
        assert_eq!(config(r#"{"tags": [], "limits": {}, "mode": "open"}"#).unwrap_err(), "missing field `port`");
        assert_eq!(
            config(r#"{"port": 99999999999999999999, "tags": [], "limits": {}, "mode": "open"}"#).unwrap_err(),
            "port: integer 99999999999999999999 is out of range"
        );
    }
}
