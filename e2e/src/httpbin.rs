//! httpbin, served by the venv's gunicorn on a port of its choosing.
//!
//! gunicorn binds `127.0.0.1:0` and says in its log which port it got, so no
//! other process can take the port between choosing and binding. It runs
//! threaded (`--threads 8`) so that a slow request (`/delay/1`) does not hold
//! up the others.

use crate::error::{Context, Result};
use crate::process::{wait_for, ChildProcess, START_DEADLINE};
use crate::{http, paths};
use std::process::Command;
use tempfile::TempDir;

/// A running httpbin, stopped on drop.
pub struct Httpbin {
    process: ChildProcess,
    port: u16,
    _dir: TempDir,
}

impl Httpbin {
    /// Starts httpbin and waits until it answers `GET /status/200`.
    pub fn start() -> Result<Httpbin> {
        let gunicorn = paths::gunicorn()?;
        let dir = tempfile::Builder::new().prefix("e2e-httpbin-").tempdir().context(|| "creating a temp dir".into())?;
        let mut command = Command::new(gunicorn);
        command
            .current_dir(dir.path())
            .args(["--bind", "127.0.0.1:0", "--threads", "8", "--graceful-timeout", "1"])
            .args(["--log-level", "info", "--error-logfile", "-", "--access-logfile", "-"])
            .arg("httpbin:app");
        let mut process = ChildProcess::spawn("httpbin", command, &dir.path().join("httpbin.log"), libc::SIGINT)?;

        let port = wait_for(START_DEADLINE, || {
            if let Some(status) = process.exit_status() {
                return Err(process.error(format!("exited at start ({status})")));
            }
            Ok(listening_port(&process.log()))
        })?
        .ok_or_else(|| process.error("did not say which port it listens on"))?;

        let url = format!("http://127.0.0.1:{port}/status/200");
        let ready = wait_for(START_DEADLINE, || {
            if let Some(status) = process.exit_status() {
                return Err(process.error(format!("exited at start ({status})")));
            }
            Ok(http::get(&url).send().ok().filter(|resp| resp.status == 200))
        })?;
        if ready.is_none() {
            return Err(process.error(format!("GET {url} did not answer 200 in {START_DEADLINE:?}")));
        }
        Ok(Httpbin { process, port, _dir: dir })
    }

    /// The process id (also the id of its process group).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The exit status, once gunicorn has exited (stopped from outside).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exit_status()
    }

    /// The port httpbin listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`, straight to httpbin.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// gunicorn's log so far (access lines included).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The port of gunicorn's `Listening at: http://127.0.0.1:PORT (pid)` line.
fn listening_port(log: &str) -> Option<u16> {
    log.lines().find_map(|line| {
        let rest = line.split("Listening at: http://127.0.0.1:").nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_from_gunicorn_log() {
        let log = "[2026-01-01 00:00:00 +0000] [1] [INFO] Starting gunicorn 27.0.1\n\
                   [2026-01-01 00:00:00 +0000] [1] [INFO] Listening at: http://127.0.0.1:41234 (1)\n";
        assert_eq!(super::listening_port(log), Some(41234));
        assert_eq!(super::listening_port("nothing"), None);
    }
}
