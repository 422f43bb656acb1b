//! `cargo xtask up` as a user runs it, as a subprocess: it serves until
//! stopped, and every signal that stops it, to the `cargo xtask up` process
//! or to Envoy or httpbin, stops everything it started; a plugin config
//! Envoy refuses, a port that is taken, and a broken YAML file each come back
//! as the first line of the error, in the user's terms.
//!
//! Each case runs the real command (which also checks the installs and
//! rebuilds `dist/` if a plugin changed) on free loopback ports, one case at
//! a time: they all write `dist/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::process::free_port;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Up to the build of every plugin on a cold machine, then Envoy's start.
const START_DEADLINE: Duration = Duration::from_secs(900);
/// For everything to be gone after a stop signal (Envoy drains, gunicorn stops its workers).
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// One `cargo xtask up` at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running `cargo xtask up`, killed (and its processes with it) if the test fails.
struct Up {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    fn spawn(args: &[&str]) -> Up {
        let mut child = Command::new(env!("CARGO"))
            .args(["xtask", "up"])
            .args(args)
            .current_dir(e2e::paths::repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cargo xtask up");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Up { child, stdout, stderr, seen: Vec::new() }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Waits until it prints that it serves; panics with what it printed if it exits first.
    fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            match self.stdout.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let done = line.contains("Ctrl-C stops everything");
                    self.seen.push(line);
                    if done {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = self.child.try_wait().ok().flatten();
        panic!("cargo xtask up is not serving ({status:?}):\n{}\n{}", self.seen.join("\n"), self.stderr_text());
    }

    /// Waits for the exit; panics if it does not come.
    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cargo xtask up did not exit in {deadline:?}:\n{}", self.stderr_text());
    }

    /// All of stderr (once it has exited: the pipe is closed).
    fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGKILL: Envoy and httpbin get theirs from the kernel (PR_SET_PDEATHSIG).
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// `(pid, parent pid, command name)` of every process, from `/proc/*/stat`.
fn processes() -> Vec<(i32, i32, String)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map(|(_, name)| name.to_string()).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let Some(ppid) = fields.get(1).and_then(|p| p.parse().ok()) else { continue };
        all.push((pid, ppid, name));
    }
    all
}

/// `pid` and every process below it, with their names.
fn tree(pid: i32) -> Vec<(i32, String)> {
    let all = processes();
    let mut found: Vec<(i32, String)> = all.iter().filter(|p| p.0 == pid).map(|p| (p.0, p.2.clone())).collect();
    let mut index = 0;
    while let Some(&(parent, _)) = found.get(index) {
        found.extend(all.iter().filter(|p| p.1 == parent).map(|p| (p.0, p.2.clone())));
        index += 1;
    }
    found
}

fn alive(pids: &BTreeSet<i32>) -> Vec<(i32, String)> {
    processes().into_iter().filter(|p| pids.contains(&p.0)).map(|p| (p.0, p.2)).collect()
}

fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) touches no memory.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
}

/// Who gets the signal: the `cargo xtask up` process itself, or one it started.
#[derive(Clone, Copy, Debug)]
enum Target {
    Up,
    Envoy,
    Httpbin,
}

/// Serves, sends `sig` to `target`, and checks that `up` exits and leaves no process behind.
fn stop_with(target: Target, sig: libc::c_int) {
    let _one = one_at_a_time();
    let (port, admin) = (free_port().unwrap(), free_port().unwrap());
    let mut up = Up::spawn(&["--port", &port.to_string(), "--admin-port", &admin.to_string()]);
    up.wait_serving();
    let answer = e2e::http::get(&format!("http://127.0.0.1:{port}/hello-world")).send().unwrap();
    assert_eq!((answer.status, answer.text()), (200, "hello world".to_string()));

    let processes = tree(up.pid());
    let names: Vec<&str> = processes.iter().map(|(_, name)| name.as_str()).collect();
    assert!(names.contains(&"envoy") && names.contains(&"gunicorn"), "processes of up: {processes:?}");
    let pids: BTreeSet<i32> = processes.iter().map(|(pid, _)| *pid).collect();
    let pid_of = |wanted: &str| {
        // The child of `up` with that name (gunicorn's master, not a worker).
        let direct: Vec<(i32, i32, String)> = self::processes().into_iter().filter(|p| p.1 == up.pid()).collect();
        direct.iter().find(|p| p.2 == wanted).map(|p| p.0).unwrap_or_else(|| panic!("no {wanted} under up"))
    };
    let pid = match target {
        Target::Up => up.pid(),
        Target::Envoy => pid_of("envoy"),
        Target::Httpbin => pid_of("gunicorn"),
    };
    signal(pid, sig);

    let status = up.wait_exit(STOP_DEADLINE);
    let stderr = up.stderr_text();
    match target {
        // Asked to stop: a clean exit.
        Target::Up => assert!(status.success(), "up exited {status} on signal {sig}:\n{stderr}"),
        // Something it started died: it stops the rest and says so.
        Target::Envoy => {
            assert!(!status.success(), "{status}\n{stderr}");
            assert!(stderr.contains("gateway-up: Envoy exited"), "{stderr}");
        }
        Target::Httpbin => {
            assert!(!status.success(), "{status}\n{stderr}");
            assert!(stderr.contains("gateway-up: httpbin exited"), "{stderr}");
        }
    }
    let end = Instant::now() + STOP_DEADLINE;
    let mut left = alive(&pids);
    while !left.is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        left = alive(&pids);
    }
    assert!(left.is_empty(), "{target:?} got signal {sig}; still running: {left:?} (of {processes:?})");
}

#[test]
fn sigint_to_up_stops_everything() {
    stop_with(Target::Up, libc::SIGINT);
}

#[test]
fn sigterm_to_up_stops_everything() {
    stop_with(Target::Up, libc::SIGTERM);
}

#[test]
fn sigint_to_envoy_stops_everything() {
    stop_with(Target::Envoy, libc::SIGINT);
}

#[test]
fn sigterm_to_envoy_stops_everything() {
    stop_with(Target::Envoy, libc::SIGTERM);
}

#[test]
fn sigint_to_httpbin_stops_everything() {
    stop_with(Target::Httpbin, libc::SIGINT);
}

#[test]
fn sigterm_to_httpbin_stops_everything() {
    stop_with(Target::Httpbin, libc::SIGTERM);
}

/// Runs `up` on a config file expected to fail; its `gateway-up:` lines (the error).
fn failing_up(config: &Path, extra: &[&str]) -> Vec<String> {
    let _one = one_at_a_time();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend(extra);
    let ports = [free_port().unwrap().to_string(), free_port().unwrap().to_string()];
    if !extra.contains(&"--port") {
        args.extend(["--port", &ports[0]]);
    }
    args.extend(["--admin-port", &ports[1]]);
    let mut up = Up::spawn(&args);
    let status = up.wait_exit(START_DEADLINE);
    let stderr = up.stderr_text();
    assert!(!status.success(), "up succeeded on {}:\n{stderr}", config.display());
    let from = stderr.lines().position(|line| line.starts_with("gateway-up: "));
    let error: Vec<String> = stderr.lines().skip(from.unwrap_or(usize::MAX)).map(str::to_string).collect();
    assert!(!error.is_empty(), "no gateway-up error in:\n{stderr}");
    error
}

/// `envoy.yaml` with `from` replaced by `to`, in a temp dir.
fn edited_envoy_yaml(dir: &Path, from: &str, to: &str) -> PathBuf {
    let yaml = std::fs::read_to_string(e2e::paths::envoy_yaml()).unwrap();
    assert!(yaml.contains(from), "envoy.yaml has no {from:?}");
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, yaml.replacen(from, to, 1)).unwrap();
    path
}

/// The kept log the error names (`Envoy's log: PATH`), read and then removed.
fn kept_log(error: &[String]) -> String {
    let line = error.iter().find_map(|line| line.strip_prefix("Envoy's log: ")).expect("no log path");
    let path = Path::new(line);
    let log = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    log
}

#[test]
fn a_refused_plugin_config_is_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_envoy_yaml(dir.path(), r#""mockEnable": false,"#, r#""mockEnable": fals,"#);
    let error = failing_up(&config, &[]);
    let expected = format!(
        "gateway-up: {}: filter \"mock\" refused its configuration: \
         [mock] [nil] [nil] invalid configuration: malformed JSON: expected a value at line 2",
        config.display()
    );
    assert!(error[0].starts_with(&expected), "first line {:?}, expected {expected:?}", error[0]);
    let text = error.join("\n");
    assert!(!text.contains("is something else using port"), "{text}");
    assert!(kept_log(&error).contains("invalid configuration"), "{text}");
}

#[test]
fn a_taken_port_is_the_first_line_with_the_port_hint() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_envoy_yaml(dir.path(), "listener_0", "listener_0");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let error = failing_up(&config, &["--port", &port]);
    assert!(error[0].starts_with("gateway-up: Envoy cannot listen: "), "{error:?}");
    assert!(error[0].contains(&port) || error.join("\n").contains(&port), "{error:?}");
    assert!(error.iter().any(|line| line.contains(&format!("is something else using port {port}"))), "{error:?}");
    kept_log(&error);
    drop(taken);
}

#[test]
fn broken_yaml_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.yaml");
    std::fs::write(&config, "static_resources:\n  listeners: [\n").unwrap();
    let error = failing_up(&config, &[]);
    let expected = format!("gateway-up: {} is not valid YAML: ", config.display());
    assert!(error[0].starts_with(&expected), "first line {:?}, expected {expected:?}", error[0]);
}
