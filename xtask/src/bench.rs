//! `cargo xtask bench [ARGS]`: measures every plugin against native Envoy
//! filters and raw `proxy-wasm` modules, and writes `bench/RESULTS.md` and
//! `bench/results.svg` (see `bench/src/lib.rs`).
//!
//! It runs setup (Envoy, wrk, redis-server), builds `dist/` as `build` does,
//! builds the raw modules of `bench/raw/` the same way (release profile, then
//! the same `wasm-opt -Oz`) into `<target>/bench/raw-<name>.wasm`, then runs
//! the `gateway-bench` binary with ARGS (`--smoke` for one short round into a
//! temp dir; `--help` for the rest).

use crate::bench_cli::BenchArgs;
use crate::{build, setup, sh};
use std::path::Path;

/// `args` are checked already; `raw` is them as typed, for `gateway-bench`.
pub fn run(root: &Path, args: &BenchArgs, raw: &[String]) -> Result<(), String> {
    if args.list {
        // Needs no module: only the runner.
        return sh(root, "cargo", &["run", "--quiet", "-p", "gateway-bench", "--", "--list"]);
    }
    setup::run(root)?;
    build::run(root)?;
    let raw_dir = build::target_dir(root).join("bench");
    std::fs::create_dir_all(&raw_dir).map_err(|err| format!("cannot create {}: {err}", raw_dir.display()))?;
    let target = build::target_dir(root).join("wasm32-wasip1/release");
    // One cargo run per crate, as for the plugins.
    for package in build::packages_in(root, "bench/raw")? {
        sh(root, "cargo", &["build", "--release", "--target", "wasm32-wasip1", "-p", &package])?;
        let compiled = target.join(format!("{}.wasm", package.replace('-', "_")));
        build::optimize(root, &compiled, &raw_dir.join(format!("{package}.wasm")))?;
    }
    let raw_dir = raw_dir.to_string_lossy();
    // The smoke run needs no optimized runner; the full one runs the test host's interpreter.
    let smoke = args.smoke;
    let mut cargo = vec!["run", "--quiet", "-p", "gateway-bench"];
    if !smoke {
        cargo.push("--release");
    }
    cargo.extend(["--", "--raw-dir", raw_dir.as_ref()]);
    cargo.extend(raw.iter().map(String::as_str));
    sh(root, "cargo", &cargo)
}
