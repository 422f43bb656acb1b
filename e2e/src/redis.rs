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
            match Redis::try_start() {
                Ok(redis) => return Ok(redis),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    fn try_start() -> Result<Redis> {
        let binary = paths::redis_server()?;
        let dir = tempfile::Builder::new().prefix("e2e-redis-").tempdir().context(|| "creating a temp dir".into())?;
        let port = free_port()?;
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
        let mut process = ChildProcess::spawn("redis", command, &dir.path().join("redis.log"), libc::SIGTERM)?;
        let ponged = wait_for(START_DEADLINE, || {
            if let Some(status) = process.exit_status() {
                return Err(process.error(format!("exited at start ({status})")));
            }
            Ok(ping(port).then_some(()))
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
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
