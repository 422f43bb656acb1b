//! The harness itself: servers start, and nothing outlives its handle.

use e2e::{http, Httpbin, Redis};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// Whether process `pid` is still there (and not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses: `123 (envoy) S ...`.
    !stat.is_empty() && !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

/// The process ids in process group `group`.
fn group_members(group: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command: state, ppid, pgrp.
            let fields: Vec<&str> =
                stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
            fields.get(2).and_then(|pgrp| pgrp.parse::<u32>().ok()) == Some(group) && running(*pid)
        })
        .collect()
}

#[test]
fn httpbin_and_envoy_stop_with_their_handles() {
    let gw = e2e::Gateway::start().unwrap();
    let (envoy_pid, httpbin_pid) = (gw.envoy.pid(), gw.httpbin.pid());
    // gunicorn's master and its worker share the group.
    assert!(group_members(httpbin_pid).len() >= 2, "{:?}", group_members(httpbin_pid));
    assert_eq!(http::get(&gw.httpbin.url("/status/418")).send().unwrap().status, 418);
    let envoy_dir = gw.envoy.dir().to_path_buf();
    assert!(envoy_dir.join("config.json").is_file());
    drop(gw);
    assert!(group_members(envoy_pid).is_empty() && group_members(httpbin_pid).is_empty());
    assert!(!Path::new(&envoy_dir).exists(), "temp dir left: {}", envoy_dir.display());
}

#[test]
fn processes_stop_when_a_test_panics() {
    let pids = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let httpbin = Httpbin::start().unwrap();
        *pids.lock().unwrap() = Some(httpbin.pid());
        panic!("a failing test");
    });
    assert!(result.is_err());
    let pid = pids.lock().unwrap().unwrap();
    assert!(group_members(pid).is_empty());
}

#[test]
fn redis_answers_ping() {
    let redis = Redis::start().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    stream.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"+OK\r\n$1\r\nv\r\n");
    let pid = redis.pid();
    drop(redis);
    assert!(group_members(pid).is_empty());
}
