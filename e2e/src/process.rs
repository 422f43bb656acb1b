//! Child processes that never outlive their test, and waiting with deadlines.
//!
//! A [`ChildProcess`] runs in a process group of its own (gunicorn's workers
//! and anything else it forks are in it too), with stdout and stderr in a log
//! file. Dropping it signals the whole group, waits a moment, then kills the
//! group, so an `Envoy` or `Httpbin` that goes out of scope, including during a
//! test's panic, leaves nothing running. On Linux the child also gets
//! `SIGKILL` if the *thread* that spawned it dies (`PR_SET_PDEATHSIG`), which
//! covers a test binary killed from outside: keep a process in the thread that
//! started it.

use crate::error::{Context, Error, Result};
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for anything to start on a loaded 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(90);

/// A started process, its group killed on drop.
pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    stop_signal: libc::c_int,
    exited: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `command` in a new process group, stdout and stderr appended to
    /// `log_path`, stdin closed. `stop_signal` is sent to the group first on
    /// drop (`SIGKILL` follows if the group is still there after 5 s).
    pub fn spawn(name: &str, mut command: Command, log_path: &Path, stop_signal: libc::c_int) -> Result<ChildProcess> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context(|| format!("opening {}", log_path.display()))?;
        command.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes one async-signal-safe system call.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(ChildProcess { name: name.to_string(), child, log_path: log_path.to_path_buf(), stop_signal, exited: None })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// The last `lines` lines of [`ChildProcess::log`], for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all.get(all.len().saturating_sub(lines)..).unwrap_or_default().join("\n")
    }

    /// The exit status, if the process has exited.
    ///
    /// When it has, whatever is left of its group is killed first and only
    /// then is the process reaped: until it is reaped its id stays taken, so
    /// the group id cannot have passed to someone else's processes.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() && self.leader_exited() {
            signal_group(self.child.id(), libc::SIGKILL);
            self.exited = self.child.wait().ok();
        }
        self.exited
    }

    /// Whether the process has exited, without reaping it.
    fn leader_exited(&self) -> bool {
        // SAFETY: siginfo_t is plain data, valid all zero.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child waitable.
        let found = unsafe { libc::waitid(libc::P_PID, self.child.id(), &mut info, options) };
        // SAFETY: waitid filled `info` (si_pid stays 0 when the child has not exited).
        found == 0 && unsafe { info.si_pid() } != 0
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An error about this process, with the tail of its log.
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::new(format!(
            "{}: {message}\n--- last lines of {} ({}) ---\n{}\n---",
            self.name,
            self.name,
            self.log_path.display(),
            self.log_tail(40)
        ))
    }

    /// Stops the whole process group: the stop signal, then `SIGKILL`.
    pub fn stop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        signal_group(self.child.id(), self.stop_signal);
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            signal_group(self.child.id(), libc::SIGKILL);
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` to process group `group` (the id of a child not yet reaped).
fn signal_group(group: u32, signal: libc::c_int) {
    if let Ok(group) = libc::pid_t::try_from(group) {
        if group > 0 {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
            unsafe {
                libc::kill(-group, signal);
            }
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Prefer letting a server bind port 0 and asking it which port it got
/// (`Envoy` and `Httpbin` do); this is for servers that cannot (`redis-server`)
/// or for a port where nothing listens.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context(|| "binding 127.0.0.1:0".to_string())?;
    let port = listener.local_addr().context(|| "reading a bound address".to_string())?.port();
    Ok(port)
}

/// Calls `probe` every 50 ms until it returns `Some`, an error, or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Result<Option<T>>) -> Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
