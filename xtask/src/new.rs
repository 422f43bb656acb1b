//! `cargo xtask new NAME`: a new plugin, made from the template below, wired
//! into everything the workspace ships and tests:
//!
//! * `plugins/NAME/`: `Cargo.toml` (with the `[package.metadata.gateway]`
//!   table its image's `spec.yaml` is made from), `src/lib.rs` (a config
//!   struct, which also gives its JSON Schema, and one hook, as hello-world),
//!   `README.md` (with its config table), `icon.svg` and `tests/testhost.rs`;
//! * `e2e/tests/plugin_NAME.rs`: the plugin on a real Envoy, on its route;
//! * the root `Cargo.toml`: nothing when its members include `plugins/*` (as
//!   this workspace's do), else `plugins/NAME` among them;
//! * `envoy.yaml`: a Wasm filter `NAME` (`disabled: true`) and a route
//!   `/NAME/` enabling it (so `docker compose up`, `cargo xtask up` and the
//!   e2e tests serve it);
//! * `deploy/higress/NAME.yaml` and `deploy/istio/NAME.yaml`: its `WasmPlugin`s.
//!
//! `cargo xtask build` then puts `NAME.wasm`, its sha256 and schema into
//! `dist/` and `dist/manifest.json`. Nothing needs editing by hand.

use std::path::Path;

/// Names cargo refuses for a package, or that would shadow a crate.
const RESERVED: &[&str] = &[
    "test",
    "core",
    "std",
    "alloc",
    "proc-macro",
    "build",
    "deps",
    "examples",
    "incremental",
    "self",
    "super",
    "crate",
];

/// Rust keywords (a package name becomes a crate name).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "dyn", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static", "struct",
    "trait", "true", "try", "type", "unsafe", "use", "where", "while", "yield", "abstract", "become", "do", "final",
    "macro", "override", "priv", "typeof", "unsized", "virtual", "gen",
];

pub fn run(root: &Path, name: &str) -> Result<(), String> {
    check_name(root, name)?;
    let files = render(name);

    // Everything is checked before anything is written.
    let cargo_toml = read(root, "Cargo.toml")?;
    let cargo_toml = add_member(&cargo_toml, name)?;
    let envoy_yaml = read(root, "envoy.yaml")?;
    let envoy_yaml = add_to_envoy_yaml(&envoy_yaml, name)?;
    for (path, _) in &files {
        if root.join(path).exists() {
            return Err(format!("{path} exists already"));
        }
    }

    for (path, text) in &files {
        write(root, path, text)?;
    }
    write(root, "Cargo.toml", &cargo_toml)?;
    write(root, "envoy.yaml", &envoy_yaml)?;
    eprintln!(
        "plugins/{name} is ready. Next:\n  cargo xtask build {name}        # dist/{name}.wasm, schema, manifest\n  \
         cargo test -p {name}             # its test-host tests\n  \
         cargo test -p e2e --test plugin_{snake}   # on a real Envoy: curl localhost:10000/{name}/",
        snake = name.replace('-', "_")
    );
    Ok(())
}

/// Lowercase ASCII letters, digits and single dashes, starting with a letter,
/// at most 63 characters (an OCI repository name and a DNS label), not a
/// keyword and not a package of the workspace already.
pub(crate) fn check_name(root: &Path, name: &str) -> Result<(), String> {
    let valid = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "{name:?} is not a plugin name: use lowercase letters, digits and single dashes, starting with a \
             letter (at most 63 characters), e.g. `header-echo`"
        ));
    }
    if RESERVED.contains(&name) || KEYWORDS.contains(&name) {
        return Err(format!("{name:?} is reserved by Rust or cargo: choose another name"));
    }
    if root.join("plugins").join(name).exists() {
        return Err(format!("plugins/{name} exists already"));
    }
    let taken = workspace_packages(root)?;
    if taken.iter().any(|package| package == name || package.replace('-', "_") == name.replace('-', "_")) {
        return Err(format!("a package named {name:?} is in the workspace already"));
    }
    Ok(())
}

/// Package names of the workspace members listed in the root `Cargo.toml`.
fn workspace_packages(root: &Path) -> Result<Vec<String>, String> {
    let manifest = read(root, "Cargo.toml")?;
    let mut names = Vec::new();
    for member in members(&manifest) {
        let Ok(text) = std::fs::read_to_string(root.join(&member).join("Cargo.toml")) else { continue };
        if let Some(name) = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("name = ").map(|n| n.trim().trim_matches('"').to_string()))
        {
            names.push(name);
        }
    }
    Ok(names)
}

/// The quoted entries of `members = [...]`.
fn members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members = [") else { return Vec::new() };
    let rest = manifest.get(start + "members = [".len()..).unwrap_or_default();
    let list = rest.split(']').next().unwrap_or_default();
    list.split(',').map(|entry| entry.trim().trim_matches('"').to_string()).filter(|entry| !entry.is_empty()).collect()
}

/// The root `Cargo.toml` with `"plugins/<name>"` among the members, in order
/// after the other plugins (nothing to do when a glob covers it).
fn add_member(manifest: &str, name: &str) -> Result<String, String> {
    if members(manifest).iter().any(|m| m == "plugins/*") {
        return Ok(manifest.to_string());
    }
    let start = manifest.find("members = [").ok_or("the root Cargo.toml has no `members = [` list")?;
    let end = start + manifest.get(start..).and_then(|rest| rest.find(']')).ok_or("unterminated members list")?;
    let entry = format!("\"plugins/{name}\"");
    let mut lines: Vec<String> = Vec::new();
    let mut inserted = false;
    let mut offset = 0;
    let mut last_plugin_line = None;
    for line in manifest.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if line_start > start && line_start < end && trimmed.starts_with("\"plugins/") {
            if !inserted && trimmed.trim_end_matches(',') > entry.as_str() {
                let indent = &line[..line.len() - line.trim_start().len()];
                lines.push(format!("{indent}{entry},\n"));
                inserted = true;
            }
            last_plugin_line = Some(lines.len());
        }
        lines.push(line.to_string());
    }
    if !inserted {
        // After the last plugin, or first in the list.
        let (at, indent) = match last_plugin_line {
            Some(index) => {
                let line = lines.get(index).cloned().unwrap_or_default();
                (index + 1, line[..line.len() - line.trim_start().len()].to_string())
            }
            None => {
                let index = lines
                    .iter()
                    .position(|line| line.contains("members = ["))
                    .ok_or("the root Cargo.toml has no `members = [` line")?;
                (index + 1, "    ".to_string())
            }
        };
        lines.insert(at, format!("{indent}{entry},\n"));
    }
    Ok(lines.concat())
}

/// `envoy.yaml` with a disabled Wasm filter `name` before the router, and a
/// route `/<name>/` (to httpbin, with the filter enabled and mock disabled)
/// before the catch-all route.
fn add_to_envoy_yaml(yaml: &str, name: &str) -> Result<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent_of = |line: &str| line.len() - line.trim_start().len();
    let router = lines
        .iter()
        .position(|line| line.trim() == "- name: envoy.filters.http.router")
        .ok_or("envoy.yaml has no `- name: envoy.filters.http.router` filter to add the plugin before")?;
    let catch_all = lines
        .iter()
        .position(|line| line.trim() == "match: { prefix: / }")
        .filter(|&at| at > 0 && lines.get(at - 1).is_some_and(|prev| prev.trim_start().starts_with("- name:")))
        .map(|at| at - 1)
        .ok_or(
            "envoy.yaml has no catch-all route (`- name: ...` then `match: { prefix: / }`) to add the route before",
        )?;
    let has_mock = lines.iter().any(|line| line.trim() == "- name: mock");

    let pad = |n: usize| " ".repeat(n);
    let r = pad(lines.get(catch_all).map_or(0, |l| indent_of(l)));
    let mut route = format!(
        "{r}- name: {name}\n{r}  match: {{ prefix: /{name}/ }}\n{r}  route: {{ cluster: httpbin, prefix_rewrite: / }}\n\
         {r}  typed_per_filter_config:\n"
    );
    if has_mock {
        route.push_str(&format!(
            "{r}    mock: {{ \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }}\n"
        ));
    }
    route.push_str(&format!(
        "{r}    {name}: {{ \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {{}} }}\n"
    ));
    let f = pad(lines.get(router).map_or(0, |l| indent_of(l)));
    let filter = format!(
        "{f}# Made by `cargo xtask new {name}`: enabled on its route only.\n\
         {f}- name: {name}\n\
         {f}  disabled: true\n\
         {f}  typed_config:\n\
         {f}    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n\
         {f}    config:\n\
         {f}      name: {name}\n\
         {f}      vm_config:\n\
         {f}        vm_id: {name}\n\
         {f}        runtime: envoy.wasm.runtime.v8\n\
         {f}        code: {{ local: {{ filename: /etc/envoy/plugins/{name}.wasm }} }}\n\
         {f}      configuration:\n\
         {f}        \"@type\": type.googleapis.com/google.protobuf.StringValue\n\
         {f}        value: \"{{}}\"\n"
    );

    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        if index == catch_all {
            out.push_str(&route);
        }
        if index == router {
            out.push_str(&filter);
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// The files of a new plugin, with their paths from the workspace root.
fn render(name: &str) -> Vec<(String, String)> {
    let snake = name.replace('-', "_");
    let camel: String = name
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    let fill =
        |template: &str| template.replace("{{name}}", name).replace("{{snake}}", &snake).replace("{{Type}}", &camel);
    vec![
        (format!("plugins/{name}/Cargo.toml"), fill(CARGO_TOML)),
        (format!("plugins/{name}/src/lib.rs"), fill(LIB_RS)),
        (format!("plugins/{name}/README.md"), fill(README)),
        (format!("plugins/{name}/icon.svg"), fill(ICON).replace("{{Initials}}", &initials(name))),
        (format!("plugins/{name}/tests/testhost.rs"), fill(TESTHOST)),
        (format!("e2e/tests/plugin_{snake}.rs"), fill(E2E)),
        (format!("deploy/higress/{name}.yaml"), fill(HIGRESS)),
        (format!("deploy/istio/{name}.yaml"), fill(ISTIO)),
    ]
}

/// `header-echo` -> `HE`: the letters of the new plugin's icon.
fn initials(name: &str) -> String {
    name.split('-').filter_map(|word| word.chars().next()).take(2).collect::<String>().to_uppercase()
}

fn read(root: &Path, path: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(path)).map_err(|err| format!("cannot read {path}: {err}"))
}

fn write(root: &Path, path: &str, text: &str) -> Result<(), String> {
    let full = root.join(path);
    if let Some(dir) = full.parent() {
        std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    }
    std::fs::write(&full, text).map_err(|err| format!("cannot write {path}: {err}"))?;
    eprintln!("wrote {path}");
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
description = "Answers every request with a configurable message (made by `cargo xtask new`)."
version.workspace = true
edition.workspace = true
license.workspace = true
rust-version.workspace = true
repository.workspace = true
publish = false

[lib]
# cdylib: the Wasm module; rlib: the config types for native tools and tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
# Add `features = ["redis"]` for the Redis client (the module then loads on Higress only).
gateway-sdk.workspace = true
serde.workspace = true

[dev-dependencies]
gateway-testhost = { path = "../../crates/testhost" }

[lints]
workspace = true

# How the plugin is shown (its image's spec.yaml) and deployed
# (deploy/higress/{{name}}.yaml uses the same phase and priority).
[package.metadata.gateway]
category = "custom"
phase = "UNSPECIFIED_PHASE"
priority = 100
icon = "icon.svg"
example = { message = "hello from {{name}}" }
route-example = { message = "hello from {{name}} (route)" }
i18n.zh-CN = { title = "{{name}}", description = "以配置的 message 应答每个请求（由 cargo xtask new 生成）。" }

[package.metadata.gateway.fields.message]
title = "Message"
i18n.zh-CN = { title = "消息", description = "应答的 Body。" }
"#;

const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="42" height="42" viewBox="0 0 42 42"><rect width="42" height="42" rx="8" fill="#4a5568"/><text x="21" y="27" font-family="sans-serif" font-size="16" font-weight="bold" fill="#fff" text-anchor="middle">{{Initials}}</text></svg>
"##;

const LIB_RS: &str = r#"//! # {{name}}
//!
//! Answers every request with `200` and the configured `message`; the
//! upstream is never called. Made by `cargo xtask new`: change the config and
//! the hook to make it yours (see the SDK's `Plugin` for every hook).

use gateway_sdk::prelude::*;

/// The configuration (unknown keys are refused, to catch typos); its doc
/// comments are the descriptions of `dist/{{name}}.schema.json`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Body of the answer.
    #[serde(default = "default_message")]
    message: String,
}

fn default_message() -> String {
    "hello from {{name}}".to_string()
}

pub struct {{Type}};

impl Plugin for {{Type}} {
    const NAME: &'static str = "{{name}}";
    type Config = Config;
    type State = ();

    fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        req.respond(200, &[], &config.message)
    }
}

gateway_sdk::main!({{Type}});
"#;

const README: &str = r#"# {{name}}

Answers every request with `200` and the configured `message`; the upstream
is never called. Made by `cargo xtask new {{name}}`.

Loads on upstream Envoy, Istio and Higress.

## Configuration

| field | type | default | meaning |
|---|---|---|---|
| `message` | string | `"hello from {{name}}"` | body of the answer |
| `_rules_` | array | none | per route/domain/service configs, each with the fields above |

Unknown fields are refused. The JSON Schema is `dist/{{name}}.schema.json`
(`cargo xtask build`).

The image's `spec.yaml` (`cargo xtask package`) carries the same configuration
as two OpenAPI 3.0 schemas, Higress's format: `configSchema` (the global config)
and `routeConfigSchema` (one `matchRules` entry's `config`), with titles,
Chinese texts and examples from `[package.metadata.gateway]` in `Cargo.toml`.
They leave out `_rules_` and the match keys, which Higress writes itself; use
the JSON Schema to validate a config.

## Examples

```json
{"message": "hello from {{name}}"}
```

Another message on route `special`:

```json
{"_rules_": [{"_match_route_": ["special"], "message": "special route"}]}
```

```console
$ curl -i localhost:10000/{{name}}/
HTTP/1.1 200 OK
content-length: ...

hello from {{name}}
```

## Build and test

```sh
cargo xtask build {{name}}                 # dist/{{name}}.wasm, .sha256, .schema.json, manifest.json
cargo test -p {{name}}                     # on the test host (builds the module from the source)
cargo test -p e2e --test plugin_{{snake}}   # on a real Envoy, through envoy.yaml
```
"#;

const TESTHOST: &str = r##"//! {{name}} on the test host (`gateway-testhost`): no gateway needed.
//! `TestHost::plugin` builds the module from the current source first.

use gateway_testhost::{Error, TestHost};

#[test]
fn answers_with_the_default_message() -> Result<(), Error> {
    let host = TestHost::plugin("{{name}}")?.config("{}")?;
    let out = host.request().path("/anything").send()?;
    let answer = out.local_response().ok_or_else(|| Error::Setup(format!("no local response: {out:?}")))?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_text(), "hello from {{name}}");
    assert!(out.upstream_request().is_none(), "the upstream must not be called");
    Ok(())
}

#[test]
fn answers_with_the_configured_message() -> Result<(), Error> {
    let host = TestHost::plugin("{{name}}")?.config(r#"{"message": "hi"}"#)?;
    assert_eq!(host.request().send()?.local_response().map(|a| a.body_text()).as_deref(), Some("hi"));
    Ok(())
}

#[test]
fn unknown_keys_are_refused() -> Result<(), Error> {
    let err = match TestHost::plugin("{{name}}")?.config(r#"{"mesage": "typo"}"#) {
        Err(err) => err,
        Ok(_) => return Err(Error::Setup("a config with an unknown key was accepted".into())),
    };
    assert!(matches!(err, Error::ConfigRejected { .. }), "{err}");
    assert!(err.to_string().contains("mesage"), "{err}");
    Ok(())
}
"##;

const E2E: &str = r#"//! {{name}} on a real Envoy, through the repository's `envoy.yaml` (the file
//! `docker compose` runs), where `cargo xtask new` enabled it on `/{{name}}/`.
//! Needs `dist/` (`cargo xtask build`) and the venv (see `e2e/src/paths.rs`).

use e2e::Gateway;

#[test]
fn answers_on_its_route() {
    let gw = Gateway::start().unwrap();
    let resp = gw.get("/{{name}}/anything", &[]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello from {{name}}"));
    // The filter is disabled elsewhere: httpbin answers.
    let resp = gw.get("/anything/{{name}}", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["method"], "GET");
}
"#;

const HIGRESS: &str = r#"# {{name}} on Higress. Push the image first (see deploy/README.md):
#   cargo xtask push {{name}} <registry>/gateway-plugins/{{name}}:0.1.0
# then replace <registry> below and `kubectl apply -f deploy/higress/{{name}}.yaml`.
apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
metadata:
  name: {{name}}
  namespace: higress-system
spec:
  url: oci://<registry>/gateway-plugins/{{name}}:0.1.0
  imagePullPolicy: IfNotPresent
  phase: UNSPECIFIED_PHASE
  priority: 100
  # Off by default; on for the routes and domains of matchRules.
  defaultConfigDisable: true
  defaultConfig:
    message: hello from {{name}}
  matchRules:
  # Per route: the Ingress default/{{name}}.
  - ingress:
    - default/{{name}}
    config:
      message: hello from {{name}} (route)
  # Per domain.
  - domain:
    - "*.example.com"
    config:
      message: hello from {{name}} (domain)
"#;

const ISTIO: &str = r#"# {{name}} on Istio's ingress gateway. Push the image first (see deploy/README.md):
#   cargo xtask push {{name}} <registry>/gateway-plugins/{{name}}:0.1.0
# then replace <registry> below and `kubectl apply -f deploy/istio/{{name}}.yaml`.
# Istio has no per-route matchRules: per-route configs are `_rules_` in pluginConfig.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: {{name}}
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: oci://<registry>/gateway-plugins/{{name}}:0.1.0
  imagePullPolicy: IfNotPresent
  phase: UNSPECIFIED_PHASE
  priority: 100
  pluginConfig:
    message: hello from {{name}}
    _rules_:
    - _match_domain_: ["*.example.com"]
      message: hello from {{name}} (domain)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        crate::root()
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "Foo", "1abc", "-a", "a-", "a--b", "a_b", "a.b", "test", "match", "mock", "e2e", "xtask"] {
            assert!(check_name(&root(), bad).is_err(), "{bad:?} was accepted");
        }
        let long = "a".repeat(64);
        assert!(check_name(&root(), &long).is_err());
        for good in ["header-echo", "a", "x2", "auth-v2-check"] {
            assert_eq!(check_name(&root(), good), Ok(()), "{good:?}");
        }
        assert!(check_name(&root(), "gateway-sdk").is_err());
        assert!(check_name(&root(), "gateway_sdk").is_err());
    }

    #[test]
    fn members_get_the_plugin_in_order() {
        let manifest = "[workspace]\nmembers = [\n    \"crates/sdk\",\n    \"plugins/hello-world\",\n    \
                        \"plugins/mock\",\n    \"e2e\",\n]\n";
        let added = add_member(manifest, "header-echo").unwrap();
        assert!(
            added.contains("\"crates/sdk\",\n    \"plugins/header-echo\",\n    \"plugins/hello-world\""),
            "{added}"
        );
        let added = add_member(manifest, "zzz").unwrap();
        assert!(added.contains("\"plugins/mock\",\n    \"plugins/zzz\",\n    \"e2e\""), "{added}");
        assert_eq!(members(&added).len(), 5);
        let glob = "[workspace]\nmembers = [\"plugins/*\"]\n";
        assert_eq!(add_member(glob, "x").unwrap(), glob);
    }

    #[test]
    fn envoy_yaml_gets_a_filter_and_a_route() {
        let yaml = std::fs::read_to_string(root().join("envoy.yaml")).unwrap();
        let added = add_to_envoy_yaml(&yaml, "header-echo").unwrap();
        let filter = added.find("- name: header-echo\n            disabled: true").unwrap();
        assert!(filter < added.find("- name: envoy.filters.http.router").unwrap());
        let route = added.find("- name: header-echo\n                match: { prefix: /header-echo/ }").unwrap();
        assert!(route < added.find("match: { prefix: / }").unwrap());
        assert!(added.contains(
            "header-echo: { \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {} }"
        ));
        assert!(add_to_envoy_yaml("admin: {}\n", "x").is_err());
    }

    #[test]
    fn templates_are_filled() {
        let files = render("header-echo");
        let lib = &files.iter().find(|(path, _)| path == "plugins/header-echo/src/lib.rs").unwrap().1;
        assert!(lib.contains("pub struct HeaderEcho;") && lib.contains("\"hello from header-echo\""), "{lib}");
        assert!(files.iter().any(|(path, _)| path == "e2e/tests/plugin_header_echo.rs"));
        assert!(files.iter().all(|(_, text)| !text.contains("{{")), "unfilled placeholder");
    }
}
