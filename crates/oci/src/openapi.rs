//! OpenAPI 3.0 Schema Objects from the JSON Schemas (2020-12) of `dist/`.
//!
//! `spec.yaml` carries its configuration schemas as `openAPIV3Schema`, the
//! OpenAPI 3.0 dialect (Higress's console reads its built-in plugins' specs
//! with swagger's OpenAPI 3.0 models). The plugins' schemas are JSON Schema
//! 2020-12, which editors and validators read; [`convert`] rewrites one into
//! the 3.0 dialect, keeping its meaning wherever 3.0 can say it:
//!
//! | 2020-12 | OpenAPI 3.0 |
//! |---|---|
//! | `type: [T, "null"]` | `type: T`, `nullable: true` |
//! | `type: [T, U]` | `anyOf` of one `type` each |
//! | `type: "null"` | `not` any of the five non-null types (`string`, `number`, `boolean`, `array`, `object`) |
//! | `const: v` | `enum: [v]` |
//! | `if`/`then`/`else` | `anyOf: [allOf: [if, then], allOf: [not: if, else]]`, added to `allOf` |
//! | `$ref: #/$defs/X` | the definition, inlined (3.0 has no `$defs`) |
//! | `true` / `false` (boolean schemas) | `{}` / `not: {}` |
//! | `exclusiveMinimum: n` (a number) | `minimum: n`, `exclusiveMinimum: true` (likewise for the maximum) |
//! | `examples: [a, ...]` | `example: a` |
//!
//! What 3.0 has no word for is left out and reported in
//! [`Converted::lost`]: `propertyNames` (e.g. a pattern for the keys of a
//! header map), `patternProperties`, `contains`, `prefixItems`,
//! `dependentRequired`/`dependentSchemas`, `unevaluated*`. The schema left is
//! then looser than the 2020-12 one, never stricter.

use serde_json::{json, Map, Value};

/// A schema in the OpenAPI 3.0 dialect, and what of the source it could not keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The Schema Object.
    pub schema: Value,
    /// `<JSON pointer>: <keyword>` of every keyword left out, in document order.
    pub lost: Vec<String>,
}

/// Keywords both dialects share with the same meaning: copied as they are.
const SHARED: &[&str] = &[
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "format",
    "readOnly",
    "writeOnly",
    "deprecated",
    "nullable",
    "example",
];

/// Keywords about the schema document, not about values: dropped without loss.
const DOCUMENT: &[&str] = &["$schema", "$id", "$comment", "$anchor", "$defs", "definitions"];

/// The non-null types of OpenAPI 3.0 (`integer` is a `number`).
const NON_NULL_TYPES: [&str; 5] = ["string", "number", "boolean", "array", "object"];

/// `{"type": name}`; an array type needs `items` in 3.0.
fn non_null_type(name: &str) -> Value {
    if name == "array" {
        json!({"type": name, "items": {}})
    } else {
        json!({"type": name})
    }
}

/// How deep `$ref`s may nest before the conversion gives up on a branch (a
/// recursive schema has no finite inlined form).
const MAX_REF_DEPTH: usize = 16;

/// Converts `schema`, resolving its `$ref`s against `root` (the document it
/// comes from, which holds the `$defs`).
pub fn convert(schema: &Value, root: &Value) -> Converted {
    let mut converter = Converter { root, lost: Vec::new() };
    let schema = converter.schema(schema, "", 0);
    Converted { schema, lost: converter.lost }
}

struct Converter<'a> {
    root: &'a Value,
    lost: Vec<String>,
}

impl Converter<'_> {
    fn lose(&mut self, path: &str, keyword: &str) {
        self.lost.push(format!("{}: {keyword}", if path.is_empty() { "/" } else { path }));
    }

    fn schema(&mut self, value: &Value, path: &str, depth: usize) -> Value {
        match value {
            Value::Bool(true) => json!({}),
            Value::Bool(false) => json!({"not": {}}),
            Value::Object(object) => self.object(object, path, depth),
            _ => {
                self.lose(path, "a schema that is neither an object nor a boolean");
                json!({})
            }
        }
    }

    fn object(&mut self, object: &Map<String, Value>, path: &str, depth: usize) -> Value {
        let mut out = Map::new();
        let mut all_of: Vec<Value> = Vec::new();
        for (key, value) in object {
            let here = format!("{path}/{key}");
            match key.as_str() {
                key if SHARED.contains(&key) || key.starts_with("x-") => {
                    out.insert(key.to_string(), value.clone());
                }
                key if DOCUMENT.contains(&key) => {}
                "$ref" => match self.resolve(value, depth) {
                    Some(target) => {
                        let inlined = self.schema(&target, &here, depth + 1);
                        all_of.push(inlined);
                    }
                    None => self.lose(path, "$ref"),
                },
                "type" => self.types(value, path, &mut out, &mut all_of),
                "const" => {
                    out.insert("enum".to_string(), json!([value]));
                }
                "enum" => {
                    out.insert("enum".to_string(), value.clone());
                }
                "required" => {
                    if value.as_array().is_some_and(|list| !list.is_empty()) {
                        out.insert("required".to_string(), value.clone());
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => self.exclusive(key, value, object, path, &mut out),
                "examples" => match value.as_array().and_then(|list| list.first()) {
                    Some(first) => {
                        out.entry("example").or_insert_with(|| first.clone());
                    }
                    None => self.lose(path, "examples"),
                },
                "properties" => {
                    let mut properties = Map::new();
                    for (name, property) in value.as_object().into_iter().flatten() {
                        let converted = self.schema(property, &format!("{here}/{name}"), depth);
                        properties.insert(name.clone(), converted);
                    }
                    out.insert("properties".to_string(), Value::Object(properties));
                }
                "additionalProperties" => {
                    let converted = match value {
                        Value::Bool(allowed) => Value::Bool(*allowed),
                        schema => self.schema(schema, &here, depth),
                    };
                    out.insert("additionalProperties".to_string(), converted);
                }
                "items" if value.is_object() || value.is_boolean() => {
                    let converted = self.schema(value, &here, depth);
                    out.insert("items".to_string(), converted);
                }
                "not" => {
                    let converted = self.schema(value, &here, depth);
                    // `not: {not: x}` (from `not: {type: "null"}`) is `x`.
                    match converted.as_object().and_then(|inner| inner.get("not").filter(|_| inner.len() == 1)) {
                        Some(double) => all_of.push(double.clone()),
                        None => {
                            out.insert("not".to_string(), converted);
                        }
                    }
                }
                "allOf" | "anyOf" | "oneOf" => {
                    let list: Vec<Value> = value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .map(|(index, branch)| self.schema(branch, &format!("{here}/{index}"), depth))
                        .collect();
                    if key == "allOf" {
                        all_of.extend(list);
                    } else if !list.is_empty() {
                        out.insert(key.to_string(), Value::Array(list));
                    }
                }
                "if" => {
                    if let Some(condition) = self.condition(object, path, depth) {
                        all_of.push(condition);
                    }
                }
                "then" | "else" => {} // with `if`
                _ => self.lose(path, key),
            }
        }
        if out.get("enum").and_then(Value::as_array).is_some_and(|list| list.contains(&Value::Null)) {
            out.insert("nullable".to_string(), Value::Bool(true));
        }
        // `allOf: [x]` alone is `x` (a `$ref` by itself, inlined).
        if out.is_empty() && all_of.len() == 1 {
            return all_of.pop().unwrap_or_default();
        }
        if !all_of.is_empty() {
            out.insert("allOf".to_string(), Value::Array(all_of));
        }
        Value::Object(out)
    }

    /// `type`: one OpenAPI type, `nullable` for `"null"` among others.
    fn types(&mut self, value: &Value, path: &str, out: &mut Map<String, Value>, all_of: &mut Vec<Value>) {
        let names: Vec<&str> = match value {
            Value::String(name) => vec![name.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => {
                self.lose(path, "type");
                return;
            }
        };
        let nullable = names.contains(&"null");
        let others: Vec<&str> = names.iter().copied().filter(|name| *name != "null").collect();
        match others.as_slice() {
            [] if nullable => {
                let non_null: Vec<Value> = NON_NULL_TYPES.iter().map(|name| non_null_type(name)).collect();
                out.insert("not".to_string(), json!({"anyOf": non_null}));
            }
            [] => self.lose(path, "type"),
            [single] => {
                out.insert("type".to_string(), json!(single));
                if nullable {
                    out.insert("nullable".to_string(), Value::Bool(true));
                }
            }
            several => {
                let branches: Vec<Value> = several
                    .iter()
                    .map(|name| if nullable { json!({"type": name, "nullable": true}) } else { json!({"type": name}) })
                    .collect();
                all_of.push(json!({"anyOf": branches}));
            }
        }
    }

    /// A numeric `exclusiveMinimum`/`exclusiveMaximum` as 3.0's bound plus flag.
    fn exclusive(
        &mut self,
        key: &str,
        value: &Value,
        object: &Map<String, Value>,
        path: &str,
        out: &mut Map<String, Value>,
    ) {
        let bound = if key == "exclusiveMinimum" { "minimum" } else { "maximum" };
        let Some(limit) = value.as_f64() else {
            self.lose(path, key);
            return;
        };
        // With both bounds given, the tighter one wins.
        let tighter = match object.get(bound).and_then(Value::as_f64) {
            None => true,
            Some(inclusive) if bound == "minimum" => limit >= inclusive,
            Some(inclusive) => limit <= inclusive,
        };
        if tighter {
            out.insert(bound.to_string(), value.clone());
            out.insert(key.to_string(), Value::Bool(true));
        }
    }

    /// `if`/`then`/`else` as the `anyOf` that means the same.
    fn condition(&mut self, object: &Map<String, Value>, path: &str, depth: usize) -> Option<Value> {
        let condition = self.schema(object.get("if")?, &format!("{path}/if"), depth);
        let then = object.get("then").map(|then| self.schema(then, &format!("{path}/then"), depth));
        let otherwise = object.get("else").map(|otherwise| self.schema(otherwise, &format!("{path}/else"), depth));
        let negated = json!({"not": condition});
        match (then, otherwise) {
            (None, None) => None,
            (Some(then), None) => Some(json!({"anyOf": [negated, then]})),
            (None, Some(otherwise)) => Some(json!({"anyOf": [condition, otherwise]})),
            (Some(then), Some(otherwise)) => {
                Some(json!({"anyOf": [{"allOf": [condition, then]}, {"allOf": [negated, otherwise]}]}))
            }
        }
    }

    /// The target of a local `$ref` (`#/...`, a JSON pointer into the root).
    fn resolve(&self, reference: &Value, depth: usize) -> Option<Value> {
        if depth >= MAX_REF_DEPTH {
            return None;
        }
        let pointer = reference.as_str()?.strip_prefix('#')?;
        self.root.pointer(pointer).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converted(schema: Value) -> Converted {
        convert(&schema, &schema)
    }

    #[test]
    fn nullable_types_and_consts() {
        let out = converted(json!({
            "type": "object",
            "properties": {
                "port": {"type": ["integer", "null"], "minimum": 1},
                "window": {"type": ["string", "null"], "enum": ["second", "minute", null]},
                "mode": {"oneOf": [{"const": "open", "type": "string"}, {"const": "closed", "type": "string"}]},
            },
        }));
        assert!(out.lost.is_empty(), "{:?}", out.lost);
        let properties = &out.schema["properties"];
        assert_eq!(properties["port"], json!({"type": "integer", "nullable": true, "minimum": 1}));
        assert_eq!(properties["window"]["nullable"], json!(true));
        assert_eq!(properties["window"]["enum"], json!(["second", "minute", null]));
        assert_eq!(properties["mode"]["oneOf"][1], json!({"enum": ["closed"], "type": "string"}));
    }

    #[test]
    fn null_is_no_other_type() {
        let null = converted(json!({"type": "null"}));
        let others = &null.schema["not"]["anyOf"];
        assert_eq!(others.as_array().map(Vec::len), Some(5));
        assert_eq!(others[0], json!({"type": "string"}));
        assert_eq!(others[3], json!({"type": "array", "items": {}}));
        let not_null = converted(json!({"not": {"type": "null"}}));
        assert_eq!(&not_null.schema["anyOf"], others, "not null: one of the other types");
    }

    #[test]
    fn if_then_else_becomes_any_of() {
        let out = converted(json!({
            "if": {"required": ["a"]},
            "then": {"required": ["b"]},
            "else": {"required": ["c"]},
        }));
        assert_eq!(
            out.schema,
            json!({"anyOf": [
                {"allOf": [{"required": ["a"]}, {"required": ["b"]}]},
                {"allOf": [{"not": {"required": ["a"]}}, {"required": ["c"]}]},
            ]})
        );
        let only_then = converted(json!({"if": {"required": ["a"]}, "then": {"required": ["b"]}}));
        assert_eq!(only_then.schema, json!({"anyOf": [{"not": {"required": ["a"]}}, {"required": ["b"]}]}));
    }

    #[test]
    fn refs_are_inlined_and_booleans_become_objects() {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"Port": {"type": "integer", "maximum": 65535}},
            "properties": {"port": {"$ref": "#/$defs/Port"}, "any": true, "none": false},
        });
        let out = converted(root);
        assert!(out.lost.is_empty(), "{:?}", out.lost);
        assert_eq!(out.schema.get("$schema"), None);
        assert_eq!(out.schema.get("$defs"), None);
        assert_eq!(out.schema["properties"]["port"], json!({"type": "integer", "maximum": 65535}));
        assert_eq!(out.schema["properties"]["any"], json!({}));
        assert_eq!(out.schema["properties"]["none"], json!({"not": {}}));
    }

    #[test]
    fn recursive_refs_stop() {
        let root =
            json!({"$defs": {"Node": {"properties": {"next": {"$ref": "#/$defs/Node"}}}}, "$ref": "#/$defs/Node"});
        let out = converted(root);
        assert_eq!(out.lost.len(), 1, "{:?}", out.lost);
        assert!(out.lost.iter().all(|lost| lost.ends_with(": $ref")));
    }

    #[test]
    fn what_has_no_word_is_reported() {
        let out = converted(json!({
            "type": "object",
            "properties": {"headers": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}},
            "exclusiveMinimum": 0,
            "examples": [{"headers": {}}],
        }));
        assert_eq!(out.lost, ["/properties/headers: propertyNames"]);
        assert_eq!(out.schema["properties"]["headers"], json!({"type": "object"}));
        assert_eq!(out.schema["minimum"], json!(0));
        assert_eq!(out.schema["exclusiveMinimum"], json!(true));
        assert_eq!(out.schema["example"], json!({"headers": {}}));
    }

    #[test]
    fn several_types_become_any_of() {
        let out = converted(json!({"type": ["string", "integer", "null"]}));
        assert_eq!(
            out.schema,
            json!({"anyOf": [{"type": "string", "nullable": true}, {"type": "integer", "nullable": true}]})
        );
    }
}
