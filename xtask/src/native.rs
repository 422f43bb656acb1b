//! The native builds: each plugin (and test fixture) as an Envoy dynamic
//! module, `dist/<name>.so` beside `dist/<name>.wasm`, with its sha256.
//!
//! Built with the SDK's `native` feature and the `native` profile (release,
//! `opt-level = 3`, panics unwind so that hooks can catch them), one cargo
//! run per crate for the same reason as the Wasm builds (no feature
//! unification), as a cdylib only so that LTO applies. A plugin that enables
//! the SDK's `redis` feature has no native build: the Redis host calls exist
//! on Higress only, and the SDK refuses the combination at compile time.
//!
//! The module's glibc baseline (the newest `GLIBC_x.y` symbol version it
//! needs) goes into the manifest beside the Envoy versions it was checked on.

use crate::sh;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The native test host: a workspace of its own that links the plugins built
/// with the SDK's `native` feature (`cargo xtask test` lints and runs it).
pub const TEST_HOST_MANIFEST: &str = "crates/native-testhost/Cargo.toml";

/// The dynamic module ABI the SDK's bindings are written for.
pub const ABI_VERSION: &str = "v0.2.0";
/// Envoy releases the native builds are tested on (`e2e`, Envoy of the venv).
pub const ENVOY_VERSIONS: &[&str] = &["1.40"];
/// What the modules are built for (the machine's own target).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Whether a plugin or fixture can build natively: not when it turns on the
/// SDK's Redis client, and not for packages outside `plugins/` and `e2e/fixtures/`.
pub fn builds_natively(root: &Path, package: &str) -> bool {
    let manifest = ["plugins", "e2e/fixtures"]
        .iter()
        .map(|dir| root.join(dir).join(package).join("Cargo.toml"))
        .find(|m| m.is_file());
    // Only the project's plugins and fixtures (not the raw modules of bench/raw/, which use no SDK).
    let Some(text) = manifest.and_then(|m| std::fs::read_to_string(m).ok()) else { return false };
    // The `redis` and `higress` features need Higress's host functions.
    !text.lines().any(|line| {
        line.trim_start().starts_with("gateway-sdk") && (line.contains("\"redis\"") || line.contains("\"higress\""))
    })
}

/// Builds `packages` natively and copies each module to `dist/<name>.so` (+ `.so.sha256`).
pub fn build(root: &Path, packages: &[String], dist: &Path) -> Result<(), String> {
    for package in packages {
        compile(root, package)?;
        let compiled = built(root, package);
        let module = dist.join(format!("{package}.so"));
        std::fs::copy(&compiled, &module)
            .map_err(|err| format!("cannot copy {} to {}: {err}", compiled.display(), module.display()))?;
        let bytes = std::fs::read(&module).map_err(|err| format!("cannot read {}: {err}", module.display()))?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let sum_file = dist.join(format!("{package}.so.sha256"));
        std::fs::write(&sum_file, format!("{sha256}  {package}.so\n"))
            .map_err(|err| format!("cannot write {}: {err}", sum_file.display()))?;
        let glibc = glibc_baseline(&bytes).unwrap_or_else(|| "none".to_string());
        eprintln!("dist/{package}.so  {} bytes  sha256 {sha256}  glibc >= {glibc}", bytes.len());
    }
    Ok(())
}

/// Builds test fixtures natively; they stay in `target/native/` (`built`).
pub fn build_fixtures(root: &Path, packages: &[String]) -> Result<(), String> {
    packages.iter().try_for_each(|package| compile(root, package))
}

/// Where cargo puts a crate's native module.
pub fn built(root: &Path, package: &str) -> std::path::PathBuf {
    crate::build::target_dir(root).join("native").join(format!("lib{}.so", package.replace('-', "_")))
}

fn compile(root: &Path, package: &str) -> Result<(), String> {
    let args = [
        "rustc",
        "--profile",
        "native",
        "-p",
        package,
        "--lib",
        "--crate-type",
        "cdylib",
        "--features",
        "gateway-sdk/native",
    ];
    sh(root, "cargo", &args)
}

/// The e2e suites that run plugins on Envoy, run again on the `.so` builds
/// (`E2E_BUILD=native`): they must pass on both. Where the dynamic module ABI
/// cannot behave as the Wasm filter, `actions` says what the native build does
/// instead (see its module docs and the README). The reliability suites
/// record their `.so` rows of `RELIABILITY.md` in this run.
pub const E2E_SUITES: &[&str] = &[
    "seed",
    "rules",
    "bad_config",
    "log_format",
    "http_call",
    "parity",
    "native",
    "actions",
    "trailers",
    "reliability_faults",
    "reliability_input",
    "reliability_security",
    "reliability_soak",
];

/// Runs [`E2E_SUITES`] on the native builds.
pub fn test(root: &Path) -> Result<(), String> {
    let mut args = vec!["test", "-p", "e2e", "--no-fail-fast"];
    for suite in E2E_SUITES {
        args.extend(["--test", suite]);
    }
    eprintln!("$ E2E_BUILD=native cargo {}", args.join(" "));
    let status = std::process::Command::new("cargo")
        .args(&args)
        .env("E2E_BUILD", "native")
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the e2e suites failed on the native builds ({status})"))
    }
}

/// The manifest's `native` member for a plugin: its `.so` with size, sha256,
/// ABI, target, glibc baseline and Envoy versions; `null` when it has none.
pub fn manifest_entry(dist: &Path, name: &str) -> Result<serde_json::Value, String> {
    let module = dist.join(format!("{name}.so"));
    if !module.is_file() {
        return Ok(serde_json::Value::Null);
    }
    let bytes = std::fs::read(&module).map_err(|err| format!("cannot read {}: {err}", module.display()))?;
    Ok(serde_json::json!({
        "file": format!("{name}.so"),
        "size": bytes.len(),
        "sha256": format!("{:x}", Sha256::digest(&bytes)),
        "abi": ABI_VERSION,
        "target": TARGET,
        "glibc": glibc_baseline(&bytes),
        "envoy": ENVOY_VERSIONS,
    }))
}

/// The newest `GLIBC_x.y[.z]` version named in a module (its dynamic string
/// table holds the versions of the C library symbols it needs).
pub fn glibc_baseline(module: &[u8]) -> Option<String> {
    let needle = b"GLIBC_";
    let mut newest: Option<Vec<u32>> = None;
    let mut at = 0;
    while let Some(offset) = module.get(at..)?.windows(needle.len()).position(|w| w == needle) {
        let start = at + offset + needle.len();
        let digits: Vec<u8> =
            module.get(start..)?.iter().take_while(|b| b.is_ascii_digit() || **b == b'.').copied().collect();
        let version: Option<Vec<u32>> =
            String::from_utf8_lossy(&digits).split('.').map(|part| part.parse().ok()).collect();
        if let Some(version) = version.filter(|v| v.len() >= 2) {
            if newest.as_ref().is_none_or(|n| version > *n) {
                newest = Some(version);
            }
        }
        at = start;
    }
    newest.map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_glibc_version_is_the_baseline() {
        let module = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.3\0GLIBC_PRIVATE\0";
        assert_eq!(glibc_baseline(module).as_deref(), Some("2.34"));
        assert_eq!(glibc_baseline(b"no versions"), None);
    }
}
