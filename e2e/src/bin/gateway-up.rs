//! `cargo xtask up`: the gateway of `envoy.yaml` on local processes, until stopped.
//!
//! httpbin runs on a port of its choosing; Envoy serves `listener_0` on
//! 127.0.0.1:10000 and its admin on 127.0.0.1:9901, as in `docker compose`.
//! Filters upstream Envoy cannot load (the Higress-only Redis limiter) are left
//! out, and said so. `--native` (or `E2E_BUILD=native`) serves the `.so`
//! builds (Envoy dynamic modules) instead of the `.wasm` ones.
//!
//! It stops everything it started when it gets SIGINT (Ctrl-C), SIGTERM or
//! SIGHUP, and also when Envoy or httpbin exits (killed, or stopped by a
//! signal of their own): serving half a gateway helps no one. xtask `exec`s
//! into this program, so a signal to the `cargo xtask up` process reaches it.
//!
//! When Envoy does not start, the first line says why in the user's terms: a
//! plugin's `invalid configuration` line with the filter of `envoy.yaml` it
//! came from, or the port that is taken; Envoy's log is kept and named.

#[path = "../up_cli.rs"]
mod up_cli;

use clap::Parser;
use e2e::{Build, Envoy, EnvoyConfig, Httpbin, StartFailure, Upstreams};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;
use up_cli::UpArgs as Args;

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-up: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (listener_port, admin_port) = (args.port, args.admin_port);
    let config_path = args.config.clone().unwrap_or_else(e2e::paths::envoy_yaml);
    let (stop, stopped) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .map_err(|err| format!("cannot catch SIGINT/SIGTERM: {err}"))?;

    let mut config = EnvoyConfig::load_file(&config_path).map_err(|e| e.to_string())?;
    if args.native {
        config.set_build(Build::Native);
    }
    config.bind_port(Some("listener_0"), listener_port).map_err(|e| e.to_string())?;
    config.bind_port(None, admin_port).map_err(|e| e.to_string())?;
    let mut httpbin = Httpbin::start().map_err(|e| e.to_string())?;
    let mut envoy = match Envoy::start_keeping_log(&config, &Upstreams::httpbin(httpbin.port())) {
        Ok(envoy) => envoy,
        Err(failure) => return Err(explain(&config, &config_path, &failure, [listener_port, admin_port])),
    };

    let base = format!("http://127.0.0.1:{listener_port}");
    println!("httpbin  http://127.0.0.1:{}", httpbin.port());
    println!("envoy    {base}  (admin http://127.0.0.1:{admin_port}), plugins: {:?} builds", config.build());
    for removed in config.removed() {
        println!("not loaded: {} ({})", removed.filter, removed.reason);
    }
    println!();
    println!("Try:");
    println!("  curl {base}/get                 # mock adds `hello: world`: httpbin echoes \"Hello\": \"world\"");
    println!("  curl {base}/mock/answer         # mock with mockEnable (a _rules_ entry): hello world");
    println!("  curl {base}/hello-world         # hello-world: hello world");
    println!("  curl {base}/http-call/headers   # http-call: httpbin echoes \"X-Token\": \"demo-token\"");
    println!();
    println!("Plugin logs: {}/envoy.log. Ctrl-C stops everything.", envoy.dir().display());

    // Until a signal, or until one of the two exits on its own.
    let exited = loop {
        match stopped.recv_timeout(Duration::from_millis(200)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(status) = envoy.exit_status() {
            break Some(format!("Envoy exited ({status}); its last lines:\n{}", tail(&envoy.log(), 20)));
        }
        if let Some(status) = httpbin.exit_status() {
            break Some(format!("httpbin exited ({status})"));
        }
    };
    println!("\nstopping");
    // Envoy first, then its upstream (drop order of the bindings is reversed).
    drop(envoy);
    drop(httpbin);
    match exited {
        None => Ok(()),
        Some(why) => Err(format!("{why}\nstopped everything")),
    }
}

/// The last `lines` lines of `log`.
fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all.get(all.len().saturating_sub(lines)..).unwrap_or_default().join("\n")
}

/// What to tell a person whose Envoy did not start: the cause first.
fn explain(config: &EnvoyConfig, config_path: &Path, failure: &StartFailure, ports: [u16; 2]) -> String {
    let log_path = failure.log_path.as_ref().map(|path| format!("\nEnvoy's log: {}", path.display()));
    let log_path = log_path.unwrap_or_default();
    let refusals = refused_configurations(config, &failure.log);
    if !refusals.is_empty() {
        let mut text = String::new();
        for (filter, line) in &refusals {
            text.push_str(&format!("{}: filter {filter:?} refused its configuration: {line}\n", config_path.display()));
        }
        text.push_str("(fix the filter's `configuration` value there; no rebuild needed)");
        return text + &log_path;
    }
    if let Some(line) = failure.log.lines().find(|line| is_bind_error(line)) {
        return format!(
            "Envoy cannot listen: {}\n(is something else using port {} or {}?){log_path}",
            line.trim(),
            ports[0],
            ports[1]
        );
    }
    format!("{}{log_path}", failure.error)
}

/// `(filter name, plugin line)` for each plugin that refused its
/// configuration: the line `[mock] [nil] [nil] invalid configuration: ...`,
/// and the filter from Envoy's `Unable to create Wasm plugin <name>` (the
/// filter whose `typed_config.config.name` it is).
fn refused_configurations(config: &EnvoyConfig, log: &str) -> Vec<(String, String)> {
    let lines: Vec<String> =
        e2e::envoy::plugin_lines(log).into_iter().filter(|line| line.contains("invalid configuration")).collect();
    let failed_plugins: Vec<&str> = log
        .lines()
        .filter_map(|line| line.split("Unable to create Wasm plugin ").nth(1))
        .filter_map(|rest| rest.split(['`', ' ', '\'']).next())
        .collect();
    lines
        .into_iter()
        .map(|line| {
            // `[mock] ...`: the plugin's own name, and the filter whose
            // plugin Envoy could not create, when it says so.
            let plugin = line.trim_start_matches('[').split(']').next().unwrap_or_default().to_string();
            let filter = filter_of(config, &plugin)
                .or_else(|| failed_plugins.iter().find_map(|name| filter_of(config, name)))
                .unwrap_or(plugin);
            (filter, line)
        })
        .collect()
}

/// The name of the HTTP filter whose Wasm plugin is named `plugin`.
fn filter_of(config: &EnvoyConfig, plugin: &str) -> Option<String> {
    let listeners = config.json().pointer("/static_resources/listeners")?.as_array()?;
    listeners
        .iter()
        .flat_map(|listener| listener.get("filter_chains").and_then(|c| c.as_array()).into_iter().flatten())
        .flat_map(|chain| chain.get("filters").and_then(|f| f.as_array()).into_iter().flatten())
        .flat_map(|filter| {
            filter.pointer("/typed_config/http_filters").and_then(|f| f.as_array()).into_iter().flatten()
        })
        .find(|filter| filter.pointer("/typed_config/config/name").and_then(|n| n.as_str()) == Some(plugin))
        .and_then(|filter| filter.get("name").and_then(|n| n.as_str()))
        .map(str::to_string)
}

/// Whether an Envoy log line says a socket could not be bound.
fn is_bind_error(line: &str) -> bool {
    line.contains("cannot bind") || line.contains("Address already in use") || line.contains("unable to bind")
}
