//! A throw-away Redis (Debian's `redis-server`) for plugins that use Redis.
//!
//! `redis-server` cannot bind port 0 and report it, so the port comes from
//! [`crate::process::free_port`]; if another process takes it first,
//! the start is tried again on another port. Nothing is saved to disk.

use crate::error::{Context, Error, Result};
use crate::paths;
use crate::process::{free_port, wait_for, ChildProcess, START_DEADLINE};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running Redis, stopped on drop.
pub struct Redis {
    process: ChildProcess,
    port: u16,
    _dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port and waits for `PING`.
    pub fn start() -> Result<Redis> {
        let mut last = Error::new("redis-server did not start");
        for _ in 0..3 {
            match free_port().and_then(|port| Redis::start_on(port, &[])) {
                Ok(redis) => return Ok(redis),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// Starts `redis-server` on `port` with extra arguments (e.g.
    /// `["--requirepass", "s3cret"]`): for tests that stop Redis and bring it
    /// back where the gateway expects it.
    pub fn start_on(port: u16, extra_args: &[&str]) -> Result<Redis> {
        let binary = paths::redis_server()?;
        let dir = tempfile::Builder::new().prefix("e2e-redis-").tempdir().context(|| "creating a temp dir".into())?;
        let mut command = Command::new(binary);
        command.current_dir(dir.path()).args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]);
        command.args(extra_args);
        let mut process = ChildProcess::spawn("redis", command, &dir.path().join("redis.log"), libc::SIGTERM)?;
        let ponged = wait_for(START_DEADLINE, || {
            if let Some(status) = process.exit_status() {
                return Err(process.error(format!("exited at start ({status})")));
            }
            Ok(answers(port).then_some(()))
        })?;
        if ponged.is_none() {
            return Err(process.error(format!("no PONG on port {port} within {START_DEADLINE:?}")));
        }
        Ok(Redis { process, port, _dir: dir })
    }

    /// The process id (also the id of its process group).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The port Redis listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Redis's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Runs `redis-cli` against this server (`--raw`, so answers are plain
    /// text); extra arguments go before the command, e.g. `["-a", "pw"]`.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let binary = paths::redis_server()?.with_file_name("redis-cli");
        let port = self.port.to_string();
        let output = Command::new(&binary)
            .args(["-h", "127.0.0.1", "-p", &port, "--raw", "--no-auth-warning"])
            .args(args)
            .output()
            .context(|| format!("running {}", binary.display()))?;
        if !output.status.success() {
            return Err(Error::new(format!("redis-cli {args:?} failed: {}", String::from_utf8_lossy(&output.stderr))));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim_end().to_string())
    }
}

/// Whether something on `port` speaks Redis (`PONG`, or `NOAUTH` when a
/// password is required).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && (&answer == b"+PONG\r\n" || answer.starts_with(b"-NOAUTH"))
}
