//! JSON Schemas of plugin configurations (native builds only).
//!
//! A plugin's settings derive `JsonSchema` (see [`settings`](crate::settings));
//! [`config_schema`] wraps its schema into the schema of the whole document the plugin is given,
//! as [`Rules::parse`](crate::config::Rules::parse) reads it:
//!
//! * `_plugin_id_`: a string;
//! * `_rules_`: an array of rules, each the config's keys plus the match keys
//!   (`_match_route_`, `_match_domain_`, `_match_service_`,
//!   `_match_route_prefix_`: arrays of strings), at least one of them with a
//!   non-empty entry;
//! * the other keys are the global config: required to be a valid config when
//!   there are no rules (`{}` included), optional when there are (but valid if
//!   given); `_rules_: []` without global keys is refused.
//!
//! The field types of [`fields`](crate::fields) describe exactly what they
//! accept, unsigned and 32/64-bit integers get their ranges (`u32` has a
//! `maximum`), and the helpers below let a plugin say what its `try_from`
//! checks across fields (`#[schemars(transform = ...)]` on its settings).
//!
//! ## How `dist/<name>.schema.json` is made
//!
//! [`main!`](crate::main) gives every native build of a plugin library a
//! `main` that prints [`config_schema`]; `cargo xtask build` builds the
//! library as a program and runs it:
//!
//! ```text
//! cargo rustc -p <name> --lib --crate-type bin && target/debug/<name_with_underscores>
//! ```
//!
//! That compiles the plugin and its dependencies only, natively (no
//! dev-dependencies such as the test host, as an example would), needs no
//! file per plugin and no list of plugins, and runs plain Rust: nothing is
//! loaded at run time. The other ways weighed: an example per plugin (a file
//! each, and it compiles dev-dependencies); a printer crate that depends on
//! every plugin (a list to keep); a symbol read from a native `cdylib` with
//! `libloading` (the library then has the host functions of Envoy as
//! unresolved symbols, and loads only with lazy binding). A library build
//! never calls that `main` (a private function, unused). A plugin whose
//! config does not implement `JsonSchema` still builds: its `main` prints
//! nothing, and it has no schema.
//!
//! What JSON Schema cannot say, so the schema accepts and the plugin refuses:
//! a number with a fraction or exponent for an integer field (`1.0`, `1e2`;
//! JSON Schema calls them integers), duplicate keys (not representable in a
//! JSON value), and an unsigned 64-bit value just above `u64::MAX` (it rounds
//! to it as a float).

use crate::config::RuleMode;
use crate::Plugin;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

const RULES: &str = "_rules_";
const PLUGIN_ID: &str = "_plugin_id_";
const MATCH_KEYS: [&str; 4] = ["_match_route_", "_match_domain_", "_match_service_", "_match_route_prefix_"];

/// What [`Cluster::service`](crate::Cluster::service) accepts as a service
/// name: no `|` or NUL, no surrounding whitespace, not empty.
pub const SERVICE_NAME_PATTERN: &str = r"^[^|\x00\s]([^|\x00]*[^|\x00\s])?$";

/// The schema of everything plugin `P` accepts as its configuration
/// (`_rules_` included), from its config type's (or settings') schema.
pub fn config_schema<P: Plugin>() -> Value
where
    P::Config: JsonSchema,
{
    plugin_schema::<P::Config>(P::NAME, P::RULE_MODE)
}

/// Prints [`config_schema`], for `cargo xtask build` (see the module docs).
pub fn print<P: Plugin>()
where
    P::Config: JsonSchema,
{
    println!("{:#}", config_schema::<P>());
}

/// What the `main` of [`main!`](crate::main) prints: the schema when the
/// plugin's config implements `JsonSchema` ([`PrintSchema`]), else nothing
/// but a note on stderr ([`NoSchema`]), so that a plugin or test fixture
/// without a schema still builds. The choice is made by method lookup on the
/// concrete type: `(&SchemaOf::<P>::new()).print()` finds [`PrintSchema`] on
/// `SchemaOf<P>` first, when its bound holds, and [`NoSchema`] on
/// `&SchemaOf<P>` otherwise.
#[doc(hidden)]
pub struct SchemaOf<P>(std::marker::PhantomData<P>);

impl<P> SchemaOf<P> {
    pub fn new() -> Self {
        SchemaOf(std::marker::PhantomData)
    }
}

impl<P> Default for SchemaOf<P> {
    fn default() -> Self {
        Self::new()
    }
}

#[doc(hidden)]
pub trait PrintSchema {
    fn print(&self);
}

impl<P: Plugin> PrintSchema for SchemaOf<P>
where
    P::Config: JsonSchema,
{
    fn print(&self) {
        print::<P>();
    }
}

#[doc(hidden)]
pub trait NoSchema {
    fn print(&self);
}

impl<P: Plugin> NoSchema for &SchemaOf<P> {
    fn print(&self) {
        eprintln!("{}: its config does not implement JsonSchema, so it has no schema", P::NAME);
    }
}

/// The schema of everything plugin `name` accepts as its configuration:
/// `Raw` is the type serde reads, `mode` the plugin's
/// [`RULE_MODE`](crate::Plugin::RULE_MODE).
///
/// With [`RuleMode::OverrideGlobal`] a rule is completed by the global keys,
/// which a schema of the rule alone cannot see: there, neither the global
/// config nor a rule is required to have the config's required fields.
pub fn plugin_schema<Raw: JsonSchema>(name: &str, mode: RuleMode) -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .with_transform(RecursiveTransform(integer_ranges))
        .into_generator();
    let mut config = generator.into_root_schema_for::<Raw>().to_value();
    let mut defs = Map::new();
    let mut description = None;
    if let Value::Object(object) = &mut config {
        object.remove("$schema");
        object.remove("title");
        description = object.remove("description");
        if let Some(Value::Object(found)) = object.remove("$defs") {
            defs = found;
        }
        if mode == RuleMode::OverrideGlobal {
            object.remove("required");
        }
    }

    let mut global = config.clone();
    add_properties(&mut global, [(RULES, json!(true)), (PLUGIN_ID, json!(true))]);

    let mut rule = config;
    let match_list = json!({"type": "array", "items": {"type": "string"}});
    add_properties(&mut rule, MATCH_KEYS.map(|key| (key, match_list.clone())));
    let non_empty: Vec<Value> = MATCH_KEYS
        .iter()
        .map(|key| json!({"required": [key], "properties": {*key: {"contains": {"type": "string", "minLength": 1}}}}))
        .collect();
    push_all_of(&mut rule, json!({"anyOf": non_empty}));

    defs.insert("Global".to_string(), global);
    defs.insert("Rule".to_string(), rule);
    let only_meta_keys = json!({"propertyNames": {"enum": [RULES, PLUGIN_ID]}});
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{name} configuration"),
        "type": "object",
        "properties": {
            PLUGIN_ID: {"description": "Id of this configuration in the plugin's log lines.", "type": "string"},
            RULES: {
                "description": "Per route, domain, service or route prefix configs: the first rule that matches a \
                    request applies, else the global config (the other keys).",
                "type": "array",
                "items": {"$ref": "#/$defs/Rule"}
            }
        },
        // With rules, global keys are optional (but must form a config if given);
        // without, they must form a config, and `_rules_: []` alone is refused.
        "if": {"required": [RULES], "properties": {RULES: {"minItems": 1}}},
        "then": {"anyOf": [only_meta_keys, {"$ref": "#/$defs/Global"}]},
        "else": {"allOf": [{"$ref": "#/$defs/Global"}, {"not": {"required": [RULES], "propertyNames": {"enum": [RULES, PLUGIN_ID]}}}]},
        "$defs": defs,
    });
    if let (Some(description), Value::Object(object)) = (description, &mut schema) {
        object.insert("description".to_string(), description);
    }
    schema
}

/// `{"required": [field], "properties": {field: {"not": {"type": "null"}}}}`:
/// the field is given (serde reads a `null` `Option` as not given).
pub fn given(field: &str) -> Value {
    json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}})
}

/// Adds a condition the whole object must meet (to its `allOf`).
pub fn require(schema: &mut Schema, condition: Value) {
    if let Some(object) = schema.as_object_mut() {
        push_all_of_map(object, condition);
    }
}

/// Sets the `minimum` of property `field` (an integer or optional integer).
pub fn minimum(schema: &mut Schema, field: &str, minimum: i64) {
    if let Some(Value::Object(property)) = schema.get_mut("properties").and_then(|p| p.get_mut(field)) {
        property.insert("minimum".to_string(), json!(minimum));
    }
}

/// A transform: property `port` is given unless property `name` is of a
/// `.static` service (which defaults to port 80), as
/// [`ServiceName::cluster`](crate::fields::ServiceName::cluster) requires.
pub fn port_given_unless_static(name: &'static str, port: &'static str) -> impl FnMut(&mut Schema) {
    move |schema| require(schema, json!({"anyOf": [given(port), {"properties": {name: {"pattern": "\\.static$"}}}]}))
}

/// A transform: exactly one of properties `a` and `b` is given.
pub fn one_given(a: &'static str, b: &'static str) -> impl FnMut(&mut Schema) {
    move |schema| require(schema, json!({"oneOf": [given(a), given(b)]}))
}

/// A transform: `forbidden` is not given when `field` is.
pub fn not_together(field: &'static str, forbidden: &'static str) -> impl FnMut(&mut Schema) {
    move |schema| require(schema, json!({"if": given(field), "then": {"not": given(forbidden)}}))
}

fn add_properties<'a>(schema: &mut Value, properties: impl IntoIterator<Item = (&'a str, Value)>) {
    let Value::Object(object) = schema else { return };
    let entry = object.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(map) = entry {
        for (key, value) in properties {
            map.insert(key.to_string(), value);
        }
    }
}

fn push_all_of(schema: &mut Value, condition: Value) {
    if let Value::Object(object) = schema {
        push_all_of_map(object, condition);
    }
}

fn push_all_of_map(object: &mut Map<String, Value>, condition: Value) {
    let entry = object.entry("allOf").or_insert_with(|| json!([]));
    if let Value::Array(list) = entry {
        list.push(condition);
    }
}

/// Gives integers of a known width the range serde enforces (schemars gives
/// `u32` and the 32/64-bit types only a `format`).
fn integer_ranges(schema: &mut Schema) {
    let (minimum, maximum): (Value, Value) = match schema.get("format").and_then(Value::as_str) {
        Some("uint32") => (json!(0), json!(u32::MAX)),
        Some("uint64" | "uint") => (json!(0), json!(u64::MAX)),
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64" | "int") => (json!(i64::MIN), json!(i64::MAX)),
        _ => return,
    };
    if let Some(object) = schema.as_object_mut() {
        object.entry("minimum").or_insert(minimum);
        object.entry("maximum").or_insert(maximum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        name: String,
        #[serde(default)]
        count: u32,
    }

    #[test]
    fn wraps_the_config_with_rules() {
        let schema = plugin_schema::<Config>("demo", RuleMode::Standalone);
        assert_eq!(schema["title"], "demo configuration");
        let global = &schema["$defs"]["Global"];
        assert_eq!(global["required"], json!(["name"]));
        assert_eq!(global["properties"]["count"]["maximum"], json!(u32::MAX));
        assert_eq!(global["properties"]["_rules_"], json!(true));
        let rule = &schema["$defs"]["Rule"];
        assert_eq!(rule["properties"]["_match_route_"]["type"], "array");
        assert_eq!(rule["allOf"][0]["anyOf"].as_array().map(Vec::len), Some(4));
        let loose = plugin_schema::<Config>("demo", RuleMode::OverrideGlobal);
        assert_eq!(loose["$defs"]["Global"].get("required"), None);
    }
}
