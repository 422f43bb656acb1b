//! `gateway-bench`: the runner behind `cargo xtask bench` (see the crate
//! docs; `--help` for the arguments, defined in `cli.rs`).

#[path = "cli.rs"]
mod cli;

use clap::Parser;
use cli::BenchArgs;
use gateway_bench::variants::{self, Modules};
use gateway_bench::{Options, Result};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = BenchArgs::parse();
    match run(parsed, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: BenchArgs, raw_args: &[String]) -> Result<()> {
    if args.list {
        for v in variants::ALL {
            println!("{:18} {:6} {:24} {}", v.id, v.kind.label(), v.job.label(), v.label);
        }
        return Ok(());
    }
    let root = gateway_bench::repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir));
    let mut modules = Modules { dist: e2e::paths::dist_dir(), raw: target.join("bench") };
    if let Some(raw) = &args.raw_dir {
        modules.raw = raw.clone();
    }
    let mut options = if args.smoke {
        Options::smoke(PathBuf::new(), modules.clone())
    } else {
        Options::new(root.join("bench"), modules.clone())
    };
    options.command = shown_command(raw_args);
    if let Some(rounds) = args.rounds {
        options.rounds = rounds;
    }
    if let Some(seconds) = args.seconds {
        options.seconds = seconds;
    }
    if let Some(warmup) = args.warmup {
        options.warmup_seconds = warmup;
    }
    if let Some(connections) = args.connections {
        options.connections = connections;
    }
    if let Some(seconds) = args.limiter_seconds {
        options.limiter_seconds = seconds;
    }
    if let Some(cpu) = args.envoy_cpu {
        options.envoy_cpu = cpu.0;
    }
    if let Some(cpu) = args.wrk_cpu {
        options.wrk_cpu = cpu.0;
    }
    if args.no_all_plugins {
        options.all_plugins = false;
    }
    if let Some(ids) = &args.variants {
        options.variants = ids.iter().map(|id| variant(id.trim())).collect::<Result<_>>()?;
    }
    for spec in &args.also {
        let (id, path) = spec.split_once('=').ok_or_else(|| format!("--also wants ID=PATH, not {spec:?}"))?;
        let path = std::fs::canonicalize(path).map_err(|err| format!("--also {spec}: {err}"))?;
        options.variants.push(variants::with_module(variant(id)?, &path)?);
    }
    options.modules = modules;
    if args.work {
        return print_work(&options);
    }
    // The smoke run writes into a temp dir, never over bench/RESULTS.md.
    let _temp;
    options.out = match (args.out, args.smoke) {
        (Some(out), _) => out,
        (None, true) => {
            let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
            let path = dir.path().to_path_buf();
            _temp = dir;
            options.out_is_temporary = true;
            path
        }
        (None, false) => options.out,
    };
    let results = gateway_bench::run(&options)?;
    if args.smoke {
        println!("{}", gateway_bench::report::markdown(&results));
    }
    Ok(())
}

/// The command as the user typed it, for RESULTS.md (xtask adds `--raw-dir`).
fn shown_command(args: &[String]) -> String {
    let mut shown = vec!["cargo xtask bench".to_string()];
    let mut skip = false;
    for arg in args {
        match (skip, arg.as_str()) {
            (true, _) => skip = false,
            (false, "--raw-dir") => skip = true,
            (false, other) if other.starts_with("--raw-dir=") => {}
            (false, _) => shown.push(arg.clone()),
        }
    }
    shown.join(" ")
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
