//! Builds the plugins into `dist/`: `<name>.wasm` and `<name>.wasm.sha256`.
//!
//! Every crate under `plugins/` is a plugin; crates under `e2e/fixtures/` are
//! test fixtures, built alongside but not shipped. After cargo's release
//! build, `wasm-opt -Oz` shrinks each module (about a fifth smaller; see
//! bench/RESULTS.md for what it does to speed).

use crate::sh;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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
fn packages_in(root: &Path, dir: &str) -> Result<Vec<String>, String> {
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
    all.push("gateway-sdk".to_string());
    Ok(all)
}

pub fn run(root: &Path) -> Result<(), String> {
    let plugins = packages_in(root, "plugins")?;
    let fixtures = packages_in(root, "e2e/fixtures")?;
    // One cargo run per crate: in a single run cargo unifies the SDK's
    // features across crates, and every module would import the Redis host
    // functions that only the Redis plugin needs (and upstream Envoy refuses).
    for package in plugins.iter().chain(&fixtures) {
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
    }
    Ok(())
}

fn optimize(root: &Path, input: &Path, output: &Path) -> Result<(), String> {
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
