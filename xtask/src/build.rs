//! Builds the plugins into `dist/`, the release artefacts:
//!
//! * `<name>.wasm` and `<name>.wasm.sha256`;
//! * `<name>.schema.json`, the JSON Schema of its configuration, printed by
//!   the plugin's library built natively as a program (the module never
//!   contains schema code);
//! * `manifest.json`: every plugin's name, version, size, sha256, schema, and
//!   the hosts it loads on, read from the module's imports (a module importing
//!   a Higress-only host function, such as `proxy_redis_*`, loads on Higress
//!   only).
//!
//! Every crate under `plugins/` is a plugin; crates under `e2e/fixtures/` are
//! test fixtures, built alongside but not shipped. After cargo's release
//! build, `wasm-opt -Oz` shrinks each module (about a fifth smaller; see
//! bench/RESULTS.md for what it does to speed). `cargo xtask build NAME...`
//! builds only those plugins (no fixtures) and rewrites the manifest, which
//! lists every plugin whose module is in `dist/` (so a subset build works on
//! a clean `dist/`). `cargo xtask up` builds the modules alone (no schemas:
//! their example programs would compile the test host).
//!
//! Packages and versions come from `cargo metadata`, the hosts from the
//! modules' imports (`gateway-host-imports`, shared with the e2e suite and
//! the test host).

use crate::sh;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `wasm-opt` may assume: the features rustc enables for wasm32-wasip1.
const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// A package of the workspace, as `cargo metadata` tells it.
struct Package {
    name: String,
    version: String,
    /// Its directory, relative to the workspace root (`plugins/mock`).
    dir: PathBuf,
}

/// Every package of the workspace (`cargo metadata --no-deps`).
fn workspace_packages(root: &Path) -> Result<Vec<Package>, String> {
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("cannot run cargo metadata: {err}"))?;
    if !output.status.success() {
        return Err(format!("`cargo metadata` failed ({})", output.status));
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).map_err(|err| format!("cargo metadata printed no JSON: {err}"))?;
    let root = Path::new(metadata["workspace_root"].as_str().unwrap_or_default()).to_path_buf();
    let packages = metadata["packages"].as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(packages
        .iter()
        .filter_map(|package| {
            let manifest = Path::new(package["manifest_path"].as_str()?);
            Some(Package {
                name: package["name"].as_str()?.to_string(),
                version: package["version"].as_str()?.to_string(),
                dir: manifest.parent()?.strip_prefix(&root).ok()?.to_path_buf(),
            })
        })
        .collect())
}

/// Package names of the workspace's crates in `dir` (one level deep), sorted.
pub(crate) fn packages_in(root: &Path, dir: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = workspace_packages(root)?
        .into_iter()
        .filter(|package| package.dir.parent() == Some(Path::new(dir)))
        .map(|package| package.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Every crate that compiles to a Wasm module: plugins and fixtures.
pub fn wasm_packages(root: &Path) -> Result<Vec<String>, String> {
    let mut all = packages_in(root, "plugins")?;
    all.extend(packages_in(root, "e2e/fixtures")?);
    all.extend(packages_in(root, "bench/raw")?);
    all.push("gateway-sdk".to_string());
    Ok(all)
}

pub fn run(root: &Path) -> Result<(), String> {
    run_only(root, &[])
}

/// What `cargo xtask up` serves: every plugin's module (with its sha256)
/// and the manifest, without schemas or fixtures; the `.so` builds only
/// when they are the ones served (`native`).
pub fn for_serving(root: &Path, native: bool) -> Result<(), String> {
    build(root, &[], false, native)
}

/// Builds the plugins named in `only` (every plugin and fixture when empty).
pub fn run_only(root: &Path, only: &[String]) -> Result<(), String> {
    build(root, only, true, true)
}

fn build(root: &Path, only: &[String], everything: bool, native: bool) -> Result<(), String> {
    let all = packages_in(root, "plugins")?;
    if let Some(unknown) = only.iter().find(|name| !all.contains(name)) {
        return Err(format!("no plugin {unknown:?} in plugins/ (there are: {})", all.join(", ")));
    }
    let plugins = if only.is_empty() { all.clone() } else { only.to_vec() };
    let fixtures = if only.is_empty() && everything { packages_in(root, "e2e/fixtures")? } else { Vec::new() };
    // One cargo run per crate: in a single run cargo unifies the SDK's
    // features across crates, and every module would import the Redis host
    // functions that only the Redis plugin needs (and upstream Envoy refuses).
    // A plugin (and the probe fixture) is also an rlib (for native tools and
    // tests), and cargo does no LTO for a library built as both: `cargo rustc
    // --crate-type cdylib` builds the module alone, as a cdylib-only crate would be.
    for package in plugins.iter().chain(&fixtures) {
        let args =
            ["rustc", "--release", "--target", "wasm32-wasip1", "-p", package, "--lib", "--crate-type", "cdylib"];
        sh(root, "cargo", &args)?;
    }

    let target = target_dir(root).join("wasm32-wasip1/release");
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist).map_err(|err| format!("cannot create dist/: {err}"))?;
    for name in &plugins {
        let compiled = target.join(format!("{}.wasm", name.replace('-', "_")));
        let wasm = dist.join(format!("{name}.wasm"));
        optimize(root, &compiled, &wasm)?;
        let bytes = std::fs::read(&wasm).map_err(|err| format!("cannot read {}: {err}", wasm.display()))?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let sum_file = dist.join(format!("{name}.wasm.sha256"));
        std::fs::write(&sum_file, format!("{sha256}  {name}.wasm\n"))
            .map_err(|err| format!("cannot write {}: {err}", sum_file.display()))?;
        eprintln!("dist/{name}.wasm  {} bytes  sha256 {sha256}", bytes.len());
        if everything {
            write_schema(root, name, &dist)?;
        }
    }
    if native {
        build_native(root, &plugins, &fixtures, &dist)?;
    }
    write_manifest(root, &dist)
}

/// The Envoy dynamic modules (`native.rs`): plugins to `dist/<name>.so`,
/// fixtures to `target/native/lib<name>.so` only (tests load them from there).
fn build_native(root: &Path, plugins: &[String], fixtures: &[String], dist: &Path) -> Result<(), String> {
    let native: Vec<String> =
        plugins.iter().filter(|name| crate::native::builds_natively(root, name)).cloned().collect();
    crate::native::build(root, &native, dist)?;
    let fixtures: Vec<String> =
        fixtures.iter().filter(|name| crate::native::builds_natively(root, name)).cloned().collect();
    crate::native::build_fixtures(root, &fixtures)
}

/// `dist/<name>.schema.json`, printed by the plugin's library built natively
/// as a program: `gateway_sdk::main!` gives it a `main` for that (see the SDK's
/// `schema` module). Only the plugin and its dependencies are compiled. A
/// plugin whose config does not implement `JsonSchema` gets no schema.
fn write_schema(root: &Path, name: &str, dist: &Path) -> Result<(), String> {
    let schema_file = dist.join(format!("{name}.schema.json"));
    sh(root, "cargo", &["rustc", "--quiet", "-p", name, "--lib", "--crate-type", "bin"])?;
    let program = target_dir(root).join("debug").join(name.replace('-', "_"));
    eprintln!("$ {} > dist/{name}.schema.json", program.display());
    let output = Command::new(&program)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("cannot run {}: {err}", program.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", program.display(), output.status));
    }
    let schema = String::from_utf8(output.stdout).map_err(|_| format!("the schema of {name} is not UTF-8"))?;
    if schema.is_empty() {
        // Its config does not implement `JsonSchema` (the program said so).
        return match std::fs::remove_file(&schema_file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {err}", schema_file.display()))
            }
            _ => Ok(()),
        };
    }
    if !schema.trim_start().starts_with('{') {
        return Err(format!("{} printed no JSON object: {schema:?}", program.display()));
    }
    std::fs::write(&schema_file, schema).map_err(|err| format!("cannot write {}: {err}", schema_file.display()))
}

/// `dist/manifest.json`: one entry per plugin of `plugins/` whose module is
/// in `dist/`, from the files there.
fn write_manifest(root: &Path, dist: &Path) -> Result<(), String> {
    let mut plugins: Vec<Package> = workspace_packages(root)?
        .into_iter()
        .filter(|package| package.dir.parent() == Some(Path::new("plugins")))
        .collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    let mut entries = Vec::new();
    for plugin in &plugins {
        let name = &plugin.name;
        let wasm = dist.join(format!("{name}.wasm"));
        let bytes = match std::fs::read(&wasm) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(format!("cannot read {}: {err}", wasm.display())),
        };
        let higress_only = gateway_host_imports::higress_only_import(&bytes)
            .map_err(|err| format!("{}: {err}", wasm.display()))?
            .is_some();
        let hosts = if higress_only { json!(["higress"]) } else { json!(["envoy", "istio", "higress"]) };
        let schema_name = format!("{name}.schema.json");
        let schema = if dist.join(&schema_name).is_file() { json!(schema_name) } else { Value::Null };
        entries.push(json!({
            "name": name,
            "version": plugin.version,
            "file": format!("{name}.wasm"),
            "size": bytes.len(),
            "sha256": format!("{:x}", Sha256::digest(&bytes)),
            "hosts": hosts,
            "schema": schema,
            "native": crate::native::manifest_entry(dist, name)?,
        }));
    }
    let count = entries.len();
    let text = serde_json::to_string_pretty(&json!({ "plugins": entries }))
        .map_err(|err| format!("cannot write the manifest: {err}"))?;
    let path = dist.join("manifest.json");
    std::fs::write(&path, text + "\n").map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    eprintln!("dist/manifest.json  {count} plugins");
    Ok(())
}

pub(crate) fn optimize(root: &Path, input: &Path, output: &Path) -> Result<(), String> {
    let (input, output) = (input.to_string_lossy(), output.to_string_lossy());
    let mut args = vec!["-Oz", "--strip-debug", "--strip-producers"];
    args.extend(WASM_OPT_FEATURES);
    args.extend([input.as_ref(), "-o", output.as_ref()]);
    sh(root, "wasm-opt", &args)
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_come_from_cargo_metadata() {
        let root = crate::root();
        let plugins = packages_in(&root, "plugins").unwrap();
        assert!(plugins.contains(&"mock".to_string()) && plugins.contains(&"redis-rate-limit".to_string()));
        assert!(!plugins.contains(&"gateway-sdk".to_string()));
        let mock = workspace_packages(&root).unwrap().into_iter().find(|p| p.name == "mock").unwrap();
        assert_eq!((mock.version.as_str(), mock.dir.as_path()), (env!("CARGO_PKG_VERSION"), Path::new("plugins/mock")));
    }
}
