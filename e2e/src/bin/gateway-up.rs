//! `cargo xtask up`: the gateway of `envoy.yaml` on local processes, until Ctrl-C.
//!
//! httpbin runs on a port of its choosing; Envoy serves `listener_0` on
//! 127.0.0.1:10000 and its admin on 127.0.0.1:9901, as in `docker compose`.
//! Filters upstream Envoy cannot load (the Higress-only Redis limiter) are left
//! out, and said so. `--native` (or `E2E_BUILD=native`) serves the `.so`
//! builds (Envoy dynamic modules) instead of the `.wasm` ones.

use e2e::{Build, Envoy, EnvoyConfig, Httpbin, Upstreams};
use std::process::ExitCode;
use std::sync::mpsc;

const LISTENER_PORT: u16 = 10000;
const ADMIN_PORT: u16 = 9901;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-up: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let (stop, stopped) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .map_err(|err| format!("cannot catch Ctrl-C: {err}"))?;

    let mut config = EnvoyConfig::load().map_err(|e| e.to_string())?;
    if std::env::args().skip(1).any(|arg| arg == "--native") {
        config.set_build(Build::Native);
    }
    config.bind_port(Some("listener_0"), LISTENER_PORT).map_err(|e| e.to_string())?;
    config.bind_port(None, ADMIN_PORT).map_err(|e| e.to_string())?;
    let httpbin = Httpbin::start().map_err(|e| e.to_string())?;
    let envoy = Envoy::start(&config, &Upstreams::httpbin(httpbin.port()))
        .map_err(|e| format!("{e}\n(is something else using port {LISTENER_PORT} or {ADMIN_PORT}?)"))?;

    let base = format!("http://127.0.0.1:{LISTENER_PORT}");
    println!("httpbin  http://127.0.0.1:{}", httpbin.port());
    println!("envoy    {base}  (admin http://127.0.0.1:{ADMIN_PORT}), plugins: {:?} builds", config.build());
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

    let _ = stopped.recv();
    println!("\nstopping");
    // Envoy first, then its upstream (drop order of the bindings is reversed).
    drop(envoy);
    drop(httpbin);
    Ok(())
}
