//! `gateway-bench`: the runner behind `cargo xtask bench` (see the crate docs).
//!
//! ```text
//! gateway-bench [--smoke] [--out DIR] [--raw-dir DIR] [--rounds N] [--seconds N]
//!               [--warmup N] [--connections N] [--variants ID,ID,...]
//!               [--envoy-cpu N|none] [--wrk-cpu N|none] [--no-all-plugins]
//!               [--also ID=PATH] [--limiter-seconds S] [--list] [--work]
//! ```

use gateway_bench::variants::{self, Modules};
use gateway_bench::{Options, Result};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: gateway-bench [--smoke] [--out DIR] [--raw-dir DIR] [--rounds N] [--seconds N] \
[--warmup N] [--connections N] [--variants ID,ID,...] [--envoy-cpu N|none] [--wrk-cpu N|none] \
[--also ID=PATH] [--no-all-plugins] [--limiter-seconds S] [--list] [--work]

  --smoke   one 1-second round of `none` and `mock`, no Redis, no all-plugins start,
            written to a temp dir unless --out is given (what CI runs)
  --out     where RESULTS.md and results.svg go (default: bench/ of the repository)
  --raw-dir where the raw modules raw-<name>.wasm are (default: <target dir>/bench)
  --also    also measure variant ID with the module at PATH (another build of it), as ID@<file stem>;
            repeatable, e.g. --also mock=/tmp/mock-O3.wasm
  --list    print the variants and exit
  --work    print the Wasm instructions and host calls per request of the chosen variants (counted on
            a minimal host, no Envoy; a second or two) and exit";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let root = gateway_bench::repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir));
    let mut modules = Modules { dist: e2e::paths::dist_dir(), raw: target.join("bench") };
    let smoke = args.iter().any(|a| a == "--smoke");
    let work_only = args.iter().any(|a| a == "--work");
    let mut out = None;
    let mut options = Options::new(root.join("bench"), modules.clone());
    if smoke {
        options = Options::smoke(PathBuf::new(), modules.clone());
    }
    // The command as the user typed it (xtask adds `--raw-dir`).
    let mut shown = vec!["cargo xtask bench".to_string()];
    let mut skip = false;
    for arg in &args {
        match (skip, arg.as_str()) {
            (true, _) => skip = false,
            (false, "--raw-dir") => skip = true,
            (false, _) => shown.push(arg.clone()),
        }
    }
    options.command = shown.join(" ");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "--smoke" | "--work" => {}
            "--list" => {
                for v in variants::ALL {
                    println!("{:18} {:6} {:24} {}", v.id, v.kind.label(), v.job.label(), v.label);
                }
                return Ok(());
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--raw-dir" => modules.raw = PathBuf::from(value()?),
            "--rounds" => options.rounds = number(&arg, &value()?)?,
            "--seconds" => options.seconds = number(&arg, &value()?)?,
            "--warmup" => options.warmup_seconds = number(&arg, &value()?)?,
            "--connections" => options.connections = number(&arg, &value()?)?,
            "--limiter-seconds" => options.limiter_seconds = number(&arg, &value()?)?,
            "--envoy-cpu" => options.envoy_cpu = cpu(&arg, &value()?)?,
            "--wrk-cpu" => options.wrk_cpu = cpu(&arg, &value()?)?,
            "--no-all-plugins" => options.all_plugins = false,
            "--variants" => {
                let list = value()?;
                options.variants = list.split(',').map(|id| variant(id.trim())).collect::<Result<_>>()?;
            }
            "--also" => {
                let spec = value()?;
                let (id, path) = spec.split_once('=').ok_or_else(|| format!("--also wants ID=PATH, not {spec:?}"))?;
                let path = std::fs::canonicalize(path).map_err(|err| format!("--also {spec}: {err}"))?;
                options.variants.push(variants::with_module(variant(id)?, &path)?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    options.modules = modules;
    if work_only {
        return print_work(&options);
    }
    // The smoke run writes into a temp dir, never over bench/RESULTS.md.
    let _temp;
    options.out = match (out, smoke) {
        (Some(out), _) => out,
        (None, true) => {
            let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
            let path = dir.path().to_path_buf();
            _temp = dir;
            path
        }
        (None, false) => options.out,
    };
    let results = gateway_bench::run(&options)?;
    if smoke {
        println!("{}", gateway_bench::report::markdown(&results));
    }
    Ok(())
}

/// `--work`: the exact per-request counts, the quick check while changing the SDK.
fn print_work(options: &Options) -> Result<()> {
    for v in &options.variants {
        let Some(module) = v.module(&options.modules) else { continue };
        if module.extension().is_some_and(|e| e == "so") {
            println!("{:24} native build: no Wasm instructions to count", v.id);
            continue;
        }
        let work = gateway_bench::work::measure(&module, v.plugin_config().unwrap_or_default().as_bytes())?;
        println!("{:24} {:>6} instructions/request", v.id, work.fuel);
        for (callback, fuel) in &work.by_callback {
            println!("    {:32} {fuel:>6}", callback.trim_start_matches("proxy_on_"));
        }
        let calls: Vec<String> = work.host_calls.iter().map(|(name, n)| format!("{n} {name}")).collect();
        println!("    host calls: {}", calls.join(", "));
    }
    Ok(())
}

fn variant(id: &str) -> Result<&'static variants::Variant> {
    variants::by_id(id).ok_or_else(|| format!("no variant {id:?} (see --list)"))
}

fn number<T: std::str::FromStr>(arg: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| format!("{arg}: not a number: {value:?}"))
}

fn cpu(arg: &str, value: &str) -> Result<Option<usize>> {
    if value == "none" {
        Ok(None)
    } else {
        number(arg, value).map(Some)
    }
}
