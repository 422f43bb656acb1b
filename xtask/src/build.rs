//! Builds the plugins into `dist/`, the release artefacts:
//!
//! * `<name>.wasm` and `<name>.wasm.sha256`;
//! * `<name>.schema.json`, the JSON Schema of its configuration, printed by
//!   the plugin's `config-schema` example (feature `schema`, a native build:
//!   the module never contains schema code);
//! * `manifest.json`: every plugin's name, version, size, sha256, schema, and
//!   the hosts it loads on, read from the module's imports (a module importing
//!   a Higress-only host function, such as `proxy_redis_*`, loads on Higress
//!   only).
//!
//! Every crate under `plugins/` is a plugin; crates under `e2e/fixtures/` are
//! test fixtures, built alongside but not shipped. After cargo's release
//! build, `wasm-opt -Oz` shrinks each module (about a fifth smaller; see
//! bench/RESULTS.md for what it does to speed). `cargo xtask build NAME...`
//! builds only those plugins (no fixtures) and rewrites the manifest.

use crate::sh;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
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

/// Package names of the crates in `dir` (one level deep).
pub(crate) fn packages_in(root: &Path, dir: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(root.join(dir)).map_err(|err| format!("cannot list {dir}: {err}"))?;
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let name = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("name = ").map(|n| n.trim_matches('"').to_string()))
            .ok_or_else(|| format!("{} has no package name", manifest.display()))?;
        names.push(name);
    }
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

/// Builds the plugins named in `only` (every plugin and fixture when empty).
pub fn run_only(root: &Path, only: &[String]) -> Result<(), String> {
    let all = packages_in(root, "plugins")?;
    if let Some(unknown) = only.iter().find(|name| !all.contains(name)) {
        return Err(format!("no plugin {unknown:?} in plugins/ (there are: {})", all.join(", ")));
    }
    let plugins = if only.is_empty() { all.clone() } else { only.to_vec() };
    let fixtures = if only.is_empty() { packages_in(root, "e2e/fixtures")? } else { Vec::new() };
    // One cargo run per crate: in a single run cargo unifies the SDK's
    // features across crates, and every module would import the Redis host
    // functions that only the Redis plugin needs (and upstream Envoy refuses).
    // A plugin is also an rlib (for native tools and tests), and cargo does no
    // LTO for a library built as both: `cargo rustc --crate-type cdylib`
    // builds the module alone, as a cdylib-only crate would be.
    for package in &plugins {
        let args =
            ["rustc", "--release", "--target", "wasm32-wasip1", "-p", package, "--lib", "--crate-type", "cdylib"];
        sh(root, "cargo", &args)?;
    }
    for package in &fixtures {
        sh(root, "cargo", &["build", "--release", "--target", "wasm32-wasip1", "-p", package])?;
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
        write_schema(root, name, &dist)?;
    }
    build_native(root, &plugins, &fixtures, &dist)?;
    write_manifest(root, &all, &dist)
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

/// `dist/<name>.schema.json`, from the plugin's `config-schema` example (run
/// natively with the feature `schema`, one plugin per cargo run as above).
/// A plugin without the example gets no schema.
fn write_schema(root: &Path, name: &str, dist: &Path) -> Result<(), String> {
    let schema_file = dist.join(format!("{name}.schema.json"));
    if !root.join("plugins").join(name).join("examples/config-schema.rs").is_file() {
        eprintln!("plugins/{name} has no examples/config-schema.rs: no schema for it");
        return match std::fs::remove_file(&schema_file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {err}", schema_file.display()))
            }
            _ => Ok(()),
        };
    }
    let args = ["run", "--quiet", "-p", name, "--example", "config-schema", "--features", "schema"];
    eprintln!("$ cargo {} > dist/{name}.schema.json", args.join(" "));
    let output = Command::new("cargo")
        .args(args)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !output.status.success() {
        return Err(format!("`cargo {}` failed ({})", args.join(" "), output.status));
    }
    let schema = String::from_utf8(output.stdout).map_err(|_| format!("the schema of {name} is not UTF-8"))?;
    if !schema.trim_start().starts_with('{') {
        return Err(format!("the config-schema example of {name} printed no JSON object: {schema:?}"));
    }
    std::fs::write(&schema_file, schema).map_err(|err| format!("cannot write {}: {err}", schema_file.display()))
}

/// `dist/manifest.json`: one entry per plugin of `plugins/`, from the files in `dist/`.
fn write_manifest(root: &Path, plugins: &[String], dist: &Path) -> Result<(), String> {
    let workspace_version = workspace_version(root)?;
    let mut json = String::from("{\n  \"plugins\": [");
    for (index, name) in plugins.iter().enumerate() {
        let wasm = dist.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&wasm).map_err(|err| {
            format!("cannot read {}: {err} (run `cargo xtask build` for every plugin)", wasm.display())
        })?;
        let version = package_version(root, name)?.unwrap_or_else(|| workspace_version.clone());
        let hosts = if higress_only_import(&bytes).map_err(|err| format!("{}: {err}", wasm.display()))?.is_some() {
            "[\"higress\"]"
        } else {
            "[\"envoy\", \"istio\", \"higress\"]"
        };
        let schema_name = format!("{name}.schema.json");
        let schema = if dist.join(&schema_name).is_file() { quote(&schema_name) } else { "null".to_string() };
        let native = crate::native::manifest_entry(dist, name)?;
        let _ = write!(
            json,
            "{}\n    {{\"name\": {}, \"version\": {}, \"file\": {}, \"size\": {}, \"sha256\": {}, \
             \"hosts\": {hosts}, \"schema\": {schema}, \"native\": {native}}}",
            if index == 0 { "" } else { "," },
            quote(name),
            quote(&version),
            quote(&format!("{name}.wasm")),
            bytes.len(),
            quote(&format!("{:x}", Sha256::digest(&bytes))),
        );
    }
    json.push_str("\n  ]\n}\n");
    let path = dist.join("manifest.json");
    std::fs::write(&path, json).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    eprintln!("dist/manifest.json  {} plugins", plugins.len());
    Ok(())
}

/// A JSON string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `version = "..."` of `plugins/<name>/Cargo.toml`, or `None` for `version.workspace = true`.
fn package_version(root: &Path, name: &str) -> Result<Option<String>, String> {
    let manifest = root.join("plugins").join(name).join("Cargo.toml");
    let text =
        std::fs::read_to_string(&manifest).map_err(|err| format!("cannot read {}: {err}", manifest.display()))?;
    Ok(toml_string(&text, "package", "version"))
}

/// `[workspace.package] version` of the root `Cargo.toml`.
fn workspace_version(root: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(root.join("Cargo.toml")).map_err(|err| format!("cannot read Cargo.toml: {err}"))?;
    toml_string(&text, "workspace.package", "version")
        .ok_or_else(|| "the root Cargo.toml has no [workspace.package] version".to_string())
}

/// The string value of `key = "..."` in table `[table]` (enough TOML for Cargo manifests).
fn toml_string(text: &str, table: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            current = header.trim().to_string();
            continue;
        }
        if current != table {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        if k.trim() == key {
            let v = v.trim();
            return v.strip_prefix('"').and_then(|rest| rest.split_once('"')).map(|(value, _)| value.to_string());
        }
    }
    None
}

/// Host functions of Higress that upstream Envoy and Istio do not have: they
/// refuse to load a module that imports one (section 4 of the host reference).
const HIGRESS_ONLY_PREFIX: &str = "proxy_redis_";
const HIGRESS_ONLY: &[&str] =
    &["proxy_get_upstream_hosts", "proxy_set_upstream_override_host", "proxy_inject_encoded_data_to_filter_chain"];

/// The first import of the module that only Higress provides, if any.
fn higress_only_import(module: &[u8]) -> Result<Option<String>, String> {
    Ok(wasm_imports(module)?
        .into_iter()
        .find(|(module, name)| {
            module == "env" && (name.starts_with(HIGRESS_ONLY_PREFIX) || HIGRESS_ONLY.contains(&name.as_str()))
        })
        .map(|(module, name)| format!("{module}.{name}")))
}

/// `(module, name)` of every import of a Wasm module: a small reader of the
/// binary format's import section (xtask stays free of a Wasm parser crate;
/// the e2e tests check it against `wasmparser`).
fn wasm_imports(module: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut reader = Reader { bytes: module, at: 0 };
    if reader.take(8)? != b"\0asm\x01\0\0\0" {
        return Err("not a Wasm module (version 1)".to_string());
    }
    let mut imports = Vec::new();
    while reader.at < module.len() {
        let id = reader.byte()?;
        let size = reader.leb()? as usize;
        let body = reader.take(size)?;
        if id != 2 {
            continue;
        }
        let mut section = Reader { bytes: body, at: 0 };
        for _ in 0..section.leb()? {
            let module = section.name()?;
            let name = section.name()?;
            match section.byte()? {
                0x00 => {
                    section.leb()?;
                }
                0x01 => {
                    section.byte()?;
                    section.limits()?;
                }
                0x02 => section.limits()?,
                0x03 => {
                    section.take(2)?;
                }
                0x04 => {
                    section.byte()?;
                    section.leb()?;
                }
                kind => return Err(format!("unknown import kind {kind:#x}")),
            }
            imports.push((module, name));
        }
    }
    Ok(imports)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self.bytes.get(self.at..self.at.saturating_add(n)).ok_or("truncated Wasm module")?;
        self.at += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn leb(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("malformed LEB128 number".to_string())
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self.leb()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "an import name is not UTF-8".to_string())
    }

    fn limits(&mut self) -> Result<(), String> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 != 0 {
            self.leb()?;
        }
        Ok(())
    }
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

    /// A module importing `env.<name>` as a function, after a memory and a global import.
    fn module_importing(name: &str) -> Vec<u8> {
        let mut imports = vec![3];
        // env.memory: memory with min 1, max 2.
        imports.extend([3, b'e', b'n', b'v', 6, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x01, 1, 2]);
        // env.g: an immutable i32 global.
        imports.extend([3, b'e', b'n', b'v', 1, b'g', 0x03, 0x7f, 0]);
        imports.extend([3, b'e', b'n', b'v', name.len() as u8]);
        imports.extend(name.as_bytes());
        imports.extend([0x00, 0]);
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.extend([1, 4, 1, 0x60, 0, 0]);
        bytes.extend([2, imports.len() as u8]);
        bytes.extend(imports);
        bytes
    }

    #[test]
    fn imports_tell_the_hosts() {
        let redis = module_importing("proxy_redis_init");
        assert_eq!(wasm_imports(&redis).unwrap().len(), 3);
        assert_eq!(higress_only_import(&redis).unwrap().as_deref(), Some("env.proxy_redis_init"));
        let upstream = module_importing("proxy_get_upstream_hosts");
        assert_eq!(higress_only_import(&upstream).unwrap().as_deref(), Some("env.proxy_get_upstream_hosts"));
        assert_eq!(higress_only_import(&module_importing("proxy_log")).unwrap(), None);
        assert!(wasm_imports(b"not wasm").is_err());
        let mut truncated = module_importing("proxy_log");
        truncated.pop();
        assert!(wasm_imports(&truncated).is_err());
    }

    #[test]
    fn manifest_values() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let toml = "[package]\nname = \"x\"\nversion = \"1.2.3\"\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(toml_string(toml, "package", "version").as_deref(), Some("1.2.3"));
        assert_eq!(toml_string("[package]\nversion.workspace = true\n", "package", "version"), None);
        assert_eq!(workspace_version(&crate::root()).unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
