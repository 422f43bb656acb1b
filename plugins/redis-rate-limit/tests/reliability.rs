//! Reliability of redis-rate-limit on the test host against a real
//! `redis-server`: Redis killed while requests flow, restarted (with a
//! password, directly and behind a proxy that keeps the connection, which
//! makes the SDK's NOAUTH re-init path run), full (`maxmemory` with
//! `noeviction`); fail-open and fail-closed as configured, and exact
//! limiting once Redis is back. Also: many gateways (test hosts, one per
//! thread) sharing one counter admit exactly the limit in every window;
//! request values cannot inject Redis commands or grow keys; the password
//! never reaches the logs.
//!
//! Each case writes its row of `RELIABILITY.md` (see `e2e::reliability`).
//! `many_gateways_share_one_counter_exactly_long` is the long run (`#[ignore]`,
//! run by `cargo xtask reliability --long`).
//!
//! Needs `redis-server`; builds the module from the current source first (`TestHost::plugin`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::reliability::Case;
use e2e::Redis;
use gateway_testhost::{Exchange, LogLevel, RedisUpstream, TestHost};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLUSTER: &str = "outbound|6379||redis.dns";

/// A minute start in the near past (windows are aligned as the plugin aligns them).
fn some_minute() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    now - now % 60 - 600
}

/// 10 s into the minute `minute`: far from a window's edges.
fn in_minute(minute: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(minute + 10)
}

fn host_on(port: u16, config: &str) -> TestHost {
    TestHost::plugin("redis-rate-limit")
        .unwrap()
        .log_level(LogLevel::Trace)
        .start_time(in_minute(some_minute()))
        .redis_upstream(CLUSTER, RedisUpstream::forward(format!("127.0.0.1:{port}")))
        .config(config)
        .unwrap()
}

/// What happened to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Counted and let through (`callTimeLeft` on the answer).
    Admitted,
    /// Counted and refused: 429.
    Limited,
    /// Redis could not answer; let through (fail-open).
    FailedOpen,
    /// Redis could not answer; 503 (fail-closed).
    FailedClosed,
    /// Anything else.
    Other,
}

fn fate(out: &Exchange) -> Fate {
    assert!(!out.stalled(), "a request stalled: {:?}", out.events());
    match (out.status(), out.local_response().is_some()) {
        (Some(200), false) if out.response().and_then(|r| r.header("callTimeLeft")).is_some() => Fate::Admitted,
        (Some(200), false) if out.logged_anywhere("letting the request through") => Fate::FailedOpen,
        (Some(429), true) => Fate::Limited,
        (Some(503), true) if out.logged_anywhere("refusing the request (failureMode closed)") => Fate::FailedClosed,
        _ => Fate::Other,
    }
}

fn send(host: &TestHost, headers: &[(&str, &str)]) -> Fate {
    let mut request = host.request().path("/get");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    fate(&request.send().unwrap())
}

/// `n` requests' fates, counted.
fn fates(host: &TestHost, n: usize) -> std::collections::BTreeMap<Fate, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        *counts.entry(send(host, &[])).or_default() += 1;
    }
    counts
}

fn said(counts: &std::collections::BTreeMap<Fate, usize>) -> String {
    counts.iter().map(|(fate, n)| format!("{n} {fate:?}")).collect::<Vec<_>>().join(", ")
}

fn exactly(counts: &std::collections::BTreeMap<Fate, usize>, expected: &[(Fate, usize)]) -> bool {
    counts.len() == expected.len() && expected.iter().all(|(fate, n)| counts.get(fate) == Some(n))
}

/// Moves the host to the next minute window.
fn next_window(host: &TestHost) {
    host.advance(Duration::from_secs(60)).unwrap();
}

/// A Redis that lives in a thread of its own (a child process dies with the
/// thread that started it), so that it can be stopped and started again on
/// the same port while the test thread sends requests.
struct RedisKeeper {
    port: u16,
    orders: mpsc::Sender<Option<Vec<String>>>,
    done: std::sync::Mutex<mpsc::Receiver<Result<(), String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RedisKeeper {
    fn start(args: &[&str]) -> RedisKeeper {
        let port = e2e::process::free_port().unwrap();
        let (orders, inbox) = mpsc::channel::<Option<Vec<String>>>();
        let (report, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut redis: Option<Redis> = None;
            // `Some(args)`: (re)start with these args; `None`: stop. The channel closing ends the thread.
            for order in inbox {
                redis = None;
                let outcome = match order {
                    Some(args) => {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        Redis::start_on(port, &args).map(|r| redis = Some(r)).map_err(|e| e.to_string())
                    }
                    None => Ok(()),
                };
                let _ = report.send(outcome);
            }
            drop(redis);
        });
        let keeper = RedisKeeper { port, orders, done: std::sync::Mutex::new(done), thread: Some(thread) };
        keeper.order(Some(args));
        keeper
    }

    fn order(&self, args: Option<&[&str]>) {
        self.orders.send(args.map(|a| a.iter().map(|s| s.to_string()).collect())).unwrap();
        self.done.lock().unwrap().recv().unwrap().unwrap();
    }

    /// Kills Redis (its data is gone: nothing is saved).
    fn kill(&self) {
        self.order(None);
    }

    /// Starts Redis again on the same port.
    fn restart(&self, args: &[&str]) {
        self.order(Some(args));
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--raw", "--no-auth-warning"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim_end().to_string()
    }
}

impl Drop for RedisKeeper {
    fn drop(&mut self) {
        let (orders, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.orders, orders));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ----- Redis down, back, with a password, full -----

#[test]
fn redis_killed_while_requests_flow_then_restarted() {
    for mode in ["open", "closed"] {
        let redis = RedisKeeper::start(&[]);
        let host =
            host_on(redis.port, &format!(r#"{{"serviceName": "redis.dns", "qpm": 5, "failureMode": "{mode}"}}"#));
        let case = Case::start(
            "fault",
            &format!(
                "redis-rate-limit (failureMode {mode}): Redis killed between requests, then restarted on its port"
            ),
            &format!(
                "while down: every request {}; once back: exactly 5 admitted per window, then 429",
                if mode == "open" { "let through (fail-open), error logged" } else { "503 (fail-closed)" }
            ),
        );
        let before = fates(&host, 3);
        redis.kill();
        let down = fates(&host, 20);
        redis.restart(&[]);
        // Same window: Redis lost the count with its restart, so a full window's worth again.
        let back = fates(&host, 8);
        next_window(&host);
        let next = fates(&host, 8);
        let failed = if mode == "open" { Fate::FailedOpen } else { Fate::FailedClosed };
        let ok = exactly(&before, &[(Fate::Admitted, 3)])
            && exactly(&down, &[(failed, 20)])
            && exactly(&back, &[(Fate::Admitted, 5), (Fate::Limited, 3)])
            && exactly(&next, &[(Fate::Admitted, 5), (Fate::Limited, 3)]);
        let text = format!(
            "before: {}; down: {}; back (same window): {}; next window: {}",
            said(&before),
            said(&down),
            said(&back),
            said(&next)
        );
        assert!(case.finish(39, &text, ok), "{text}");
    }
}

#[test]
fn redis_killed_from_another_thread_mid_traffic() {
    let redis = RedisKeeper::start(&[]);
    let host = host_on(redis.port, r#"{"serviceName": "redis.dns", "limit": 1000000, "window": "minute"}"#);
    let case = Case::start(
        "fault",
        "redis-rate-limit: Redis killed, then restarted 300 ms later, by another thread while requests are sent \
         back to back (500 before, 1,000 after the restart)",
        "every request admitted or let through (fail-open); none stalls, traps or errs; counting resumes after the restart",
    );
    let sent = AtomicU64::new(0);
    let restarted = AtomicBool::new(false);
    let (counts, total) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while sent.load(Ordering::Relaxed) < 500 {
                std::thread::sleep(Duration::from_millis(2));
            }
            redis.kill();
            std::thread::sleep(Duration::from_millis(300));
            redis.restart(&[]);
            restarted.store(true, Ordering::Relaxed);
        });
        let mut counts = std::collections::BTreeMap::new();
        let mut after = 0;
        while after < 1000 {
            *counts.entry(send(&host, &[])).or_default() += 1;
            sent.fetch_add(1, Ordering::Relaxed);
            if restarted.load(Ordering::Relaxed) {
                after += 1;
            }
        }
        (counts, sent.load(Ordering::Relaxed))
    });
    let counted: usize = redis.cli(&["GET", &some_minute().to_string()]).parse().unwrap_or(0);
    let admitted = counts.get(&Fate::Admitted).copied().unwrap_or(0);
    let failed_open = counts.get(&Fate::FailedOpen).copied().unwrap_or(0);
    let text = format!("{total} requests: {}; the restarted Redis counted {counted}", said(&counts));
    let ok = admitted + failed_open == total as usize && failed_open > 0 && counted >= 999 && counted <= admitted;
    assert!(case.finish(total, &text, ok), "{text}");
}

#[test]
fn redis_restarted_with_a_password() {
    let password = "pw-restart-5e1f";
    let redis = RedisKeeper::start(&[]);
    let config = format!(r#"{{"serviceName": "redis.dns", "qpm": 4, "password": "{password}"}}"#);
    let host = host_on(redis.port, &config);
    let case = Case::start(
        "fault",
        "redis-rate-limit: Redis restarted with --requirepass (the plugin has that password)",
        "the host reconnects and authenticates; exactly 4 admitted per window again; the password in no log line",
    );
    let before = fates(&host, 2);
    redis.kill();
    redis.restart(&["--requirepass", password]);
    // The first command after the restart finds the old connection closed (fail-open),
    // the next ones go over a new, authenticated one.
    let first = fates(&host, 1);
    next_window(&host);
    let after = fates(&host, 6);
    let logs = host.logs();
    let leaked: Vec<_> = logs.iter().filter(|l| l.message.contains(password)).collect();
    let (stdout, stderr) = host.output();
    let leaked_output = stdout.contains(password) || stderr.contains(password);
    let text = format!(
        "before: {}; first after restart: {}; next window: {}; {} log lines at Trace, {} with the password{}",
        said(&before),
        said(&first),
        said(&after),
        logs.len(),
        leaked.len(),
        if leaked_output { "; the password is in the module's stdout/stderr" } else { "" }
    );
    let ok = exactly(&before, &[(Fate::Admitted, 2)])
        && first.keys().all(|f| matches!(f, Fate::Admitted | Fate::FailedOpen))
        && exactly(&after, &[(Fate::Admitted, 4), (Fate::Limited, 2)])
        && leaked.is_empty()
        && !leaked_output;
    assert!(case.finish(9, &text, ok), "{text}");
}

/// A TCP relay that keeps its client's connection when the server side
/// drops, and opens a new server connection (without replaying anything)
/// when the client sends again: a Redis failover behind a proxy.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let stopped = Arc::clone(&stopped);
                        std::thread::spawn(move || pump(client, target, &stopped));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Relay { port, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(mut client: TcpStream, target: u16, stop: &AtomicBool) {
    client.set_nonblocking(true).unwrap();
    let mut server: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        match client.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                idle = false;
                if server.is_none() {
                    server = TcpStream::connect(("127.0.0.1", target)).ok();
                    if let Some(s) = &server {
                        s.set_nonblocking(true).unwrap();
                    }
                }
                let Some(s) = server.as_mut() else { return };
                s.set_nonblocking(false).unwrap();
                let written = s.write_all(&buf[..n]);
                s.set_nonblocking(true).unwrap();
                if written.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        if let Some(s) = server.as_mut() {
            match s.read(&mut buf) {
                Ok(0) => server = None,
                Ok(n) => {
                    idle = false;
                    client.set_nonblocking(false).unwrap();
                    let written = client.write_all(&buf[..n]);
                    client.set_nonblocking(true).unwrap();
                    if written.is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => server = None,
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn redis_restarted_with_a_password_behind_a_proxy_takes_the_noauth_path() {
    let password = "pw-noauth-77ab";
    let redis = RedisKeeper::start(&[]);
    let relay = Relay::start(redis.port);
    let host = host_on(relay.port, &format!(r#"{{"serviceName": "redis.dns", "qpm": 4, "password": "{password}"}}"#));
    let case = Case::start(
        "fault",
        "redis-rate-limit: Redis restarted with --requirepass behind a proxy that keeps the plugin's connection \
         (the old connection answers NOAUTH)",
        "the SDK re-inits once and resends: the request is counted, not failed; exactly 4 per window after",
    );
    let before = fates(&host, 2);
    redis.kill();
    redis.restart(&["--requirepass", password]);
    let calls_before = host.redis_calls().len();
    let first = fates(&host, 1);
    let resent = host.redis_calls().len() - calls_before;
    let more = fates(&host, 4);
    next_window(&host);
    let after = fates(&host, 6);
    let leaked = host.logs().iter().filter(|l| l.message.contains(password)).count();
    let text = format!(
        "before: {}; first after restart: {} ({resent} EVALs sent for it); rest of the window: {}; next window: {}; \
         password in {leaked} log lines",
        said(&before),
        said(&first),
        said(&more),
        said(&after)
    );
    // The count restarted from zero with Redis: 1 (first) + 3 admitted + 1 limited in that window.
    let ok = exactly(&first, &[(Fate::Admitted, 1)])
        && resent == 2
        && exactly(&more, &[(Fate::Admitted, 3), (Fate::Limited, 1)])
        && exactly(&after, &[(Fate::Admitted, 4), (Fate::Limited, 2)])
        && leaked == 0;
    assert!(case.finish(13, &text, ok), "{text}");
}

#[test]
fn a_password_the_plugin_lacks_fails_as_configured_without_looping() {
    for mode in ["open", "closed"] {
        let redis = RedisKeeper::start(&["--requirepass", "only-redis-knows"]);
        let host =
            host_on(redis.port, &format!(r#"{{"serviceName": "redis.dns", "qpm": 4, "failureMode": "{mode}"}}"#));
        let case = Case::start(
            "fault",
            &format!("redis-rate-limit (failureMode {mode}): Redis requires a password the plugin does not have"),
            &format!(
                "NOAUTH: one re-init and one resend per request, then {}",
                if mode == "open" { "let through, error logged" } else { "503" }
            ),
        );
        let counts = fates(&host, 10);
        let evals = host.redis_calls().len();
        let failed = if mode == "open" { Fate::FailedOpen } else { Fate::FailedClosed };
        let text = format!("{}; {evals} EVALs for 10 requests", said(&counts));
        assert!(case.finish(10, &text, exactly(&counts, &[(failed, 10)]) && evals == 20), "{text}");
    }
}

#[test]
fn redis_out_of_memory_then_freed() {
    for mode in ["open", "closed"] {
        let redis = RedisKeeper::start(&["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"]);
        let host =
            host_on(redis.port, &format!(r#"{{"serviceName": "redis.dns", "qpm": 5, "failureMode": "{mode}"}}"#));
        let case = Case::start(
            "fault",
            &format!(
                "redis-rate-limit (failureMode {mode}): Redis full (--maxmemory 1mb, noeviction, filled), then freed (FLUSHALL, maxmemory 64mb)"
            ),
            &format!(
                "while full: the script's INCR fails with OOM: every request {}; once freed: exactly 5 per window",
                if mode == "open" { "let through, error logged" } else { "503" }
            ),
        );
        // Fill it: 20 KB values until Redis refuses with OOM.
        let mut filler = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        let value = "v".repeat(20_000);
        let mut keys = 0;
        loop {
            let command = format!("*3\r\n$3\r\nSET\r\n${}\r\nfill:{keys:06}\r\n${}\r\n{value}\r\n", 11, value.len());
            filler.write_all(command.as_bytes()).unwrap();
            let mut answer = [0u8; 5];
            filler.read_exact(&mut answer).unwrap();
            if &answer != b"+OK\r\n" {
                break;
            }
            keys += 1;
            assert!(keys < 10_000, "Redis never filled up");
        }
        let full = fates(&host, 10);
        let oom_logged = host.logs().iter().any(|l| l.message.contains("OOM"));
        // Back: emptied, and room for more than Redis's own ~0.9 MB (1 MB leaves none for Lua).
        drop(filler);
        redis.cli(&["FLUSHALL"]);
        redis.cli(&["CONFIG", "SET", "maxmemory", "64mb"]);
        next_window(&host);
        let freed = fates(&host, 7);
        let failed = if mode == "open" { Fate::FailedOpen } else { Fate::FailedClosed };
        let text = format!(
            "filled with {keys} keys of 20 KB; while full: {} (OOM in the log: {oom_logged}); after FLUSHALL and \
             maxmemory 64mb: {}",
            said(&full),
            said(&freed)
        );
        let ok = exactly(&full, &[(failed, 10)])
            && oom_logged
            && exactly(&freed, &[(Fate::Admitted, 5), (Fate::Limited, 2)]);
        assert!(case.finish(17, &text, ok), "{text}");
    }
}

// ----- exact limits under concurrency -----

/// `gateways` test hosts, each in its own thread with its own connection,
/// share one Redis counter (limit `limit` per minute). In each of `windows`
/// windows every gateway sends `per_gateway` requests at once; returns the
/// admitted and limited counts per window.
fn shared_counter(gateways: usize, windows: usize, limit: usize, per_gateway: usize) -> Vec<(usize, usize, usize)> {
    let redis = Redis::start().unwrap();
    let port = redis.port();
    let start = in_minute(some_minute() - 60 * windows as u64);
    let barrier = Barrier::new(gateways);
    let results: Vec<Vec<(usize, usize, usize)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..gateways)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let host = TestHost::plugin("redis-rate-limit")
                        .unwrap()
                        .start_time(start)
                        .redis_upstream(CLUSTER, RedisUpstream::forward(format!("127.0.0.1:{port}")))
                        .config(&format!(r#"{{"serviceName": "redis.dns", "qpm": {limit}}}"#))
                        .unwrap();
                    let mut mine = Vec::new();
                    for _ in 0..windows {
                        barrier.wait();
                        let (mut admitted, mut limited, mut other) = (0, 0, 0);
                        for _ in 0..per_gateway {
                            match send(&host, &[]) {
                                Fate::Admitted => admitted += 1,
                                Fate::Limited => limited += 1,
                                _ => other += 1,
                            }
                        }
                        mine.push((admitted, limited, other));
                        barrier.wait();
                        // Every clock moves on by one window (each also moved a little by real Redis time).
                        next_window(&host);
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    (0..windows)
        .map(|w| results.iter().fold((0, 0, 0), |(a, l, o), mine| (a + mine[w].0, l + mine[w].1, o + mine[w].2)))
        .collect()
}

fn check_shared(gateways: usize, windows: usize, limit: usize, per_gateway: usize, label: &str) {
    let case = Case::start(
        "load",
        &format!(
            "redis-rate-limit{label}: {gateways} gateways (test hosts in parallel threads) share one Redis counter, \
             limit {limit}/window, {windows} windows x {} requests",
            gateways * per_gateway
        ),
        &format!("in every window exactly {limit} admitted, the rest 429, no other outcome"),
    );
    let started = std::time::Instant::now();
    let per_window = shared_counter(gateways, windows, limit, per_gateway);
    let exact = per_window.iter().filter(|(a, l, o)| *a == limit && *l == gateways * per_gateway - limit && *o == 0);
    let exact = exact.count();
    let wrong: Vec<_> = per_window.iter().enumerate().filter(|(_, (a, _, o))| *a != limit || *o != 0).take(5).collect();
    let text = format!(
        "{exact} of {windows} windows exact (admitted {limit}, limited {}); wrong windows (index, admitted, limited, other): {wrong:?}; {:.1} s",
        gateways * per_gateway - limit,
        started.elapsed().as_secs_f64()
    );
    let total = (gateways * per_gateway * windows) as u64;
    assert!(case.finish(total, &text, exact == windows), "{text}");
}

#[test]
fn many_gateways_share_one_counter_exactly() {
    check_shared(8, 3, 50, 20, "");
}

/// The long run: `RELIABILITY_WINDOWS` windows (default 60) of 16 gateways
/// (`cargo xtask reliability --long` asks for 300).
#[test]
#[ignore = "long: cargo xtask reliability --long"]
fn many_gateways_share_one_counter_exactly_long() {
    let windows = std::env::var("RELIABILITY_WINDOWS").ok().and_then(|w| w.parse().ok()).unwrap_or(60);
    check_shared(16, windows, 100, 25, " (long run)");
}

// ----- request values into Redis -----

#[test]
fn request_values_cannot_inject_commands_or_grow_keys() {
    let redis = Redis::start().unwrap();
    redis.cli(&["SET", "canary", "alive"]).unwrap();
    let minute = some_minute();
    let make = |limit_by: &str, prefix: &str| {
        TestHost::plugin("redis-rate-limit")
            .unwrap()
            .start_time(in_minute(minute))
            .redis_upstream(CLUSTER, RedisUpstream::forward(format!("127.0.0.1:{}", redis.port())))
            .config(&format!(
                r#"{{"serviceName": "redis.dns", "qpm": 2, "limitBy": {limit_by}, "keyPrefix": "{prefix}"}}"#
            ))
            .unwrap()
    };
    let case = Case::start(
        "security",
        "redis-rate-limit: header and query values carrying RESP (CR LF, `*1 $8 FLUSHALL`), NUL, 100 KB, as limit keys",
        "each value is one key (verbatim up to 64 bytes, else a 17-byte hash); no command runs; keys stay short",
    );
    let injection = "x\r\n*1\r\n$8\r\nFLUSHALL\r\n";
    let by_header = make(r#"{"header": "x-api-key"}"#, "rl:");
    let huge = "k".repeat(100 * 1024);
    let mut outcomes = Vec::new();
    for value in [injection, "a\0b", huge.as_str()] {
        let fates: Vec<Fate> = (0..3).map(|_| send(&by_header, &[("x-api-key", value)])).collect();
        outcomes.push(fates);
    }
    let by_query = make(r#"{"query": "key"}"#, "rq:");
    let mut query_fates = Vec::new();
    for path in ["/get?key=x%0d%0a*1%0d%0a$8%0d%0aFLUSHALL%0d%0a", "/get?key=x\r\n*1\r\n$8\r\nFLUSHALL\r\n"] {
        let fates: Vec<Fate> = (0..3).map(|_| fate(&by_query.request().path(path).send().unwrap())).collect();
        query_fates.push(fates);
    }
    let canary = redis.cli(&["GET", "canary"]).unwrap();
    let keys = redis.cli(&["KEYS", "rl:*"]).unwrap();
    let key_count = redis.cli(&["DBSIZE"]).unwrap();
    let longest = keys.lines().map(str::len).max().unwrap_or(0);
    let each_counted_apart =
        outcomes.iter().chain(&query_fates).all(|f| f == &[Fate::Admitted, Fate::Admitted, Fate::Limited]);
    let text = format!(
        "fates per value (3 requests each): {:?}; canary after: {canary:?}; {key_count} keys in Redis (canary + 5 \
         counters expected); longest key {longest} bytes",
        outcomes.iter().chain(&query_fates).collect::<Vec<_>>()
    );
    // The CR LF key is stored verbatim: `rl:<minute>:x\r\n*1...` (no command split out of it).
    let ok = each_counted_apart && canary == "alive" && key_count == "6" && longest <= 3 + 10 + 1 + 64;
    assert!(case.finish(15, &text, ok), "{text}");
}

#[test]
fn redis_stalled_past_the_plugins_timeout() {
    for mode in ["open", "closed"] {
        let redis = RedisKeeper::start(&[]);
        let config = format!(r#"{{"serviceName": "redis.dns", "qpm": 5, "timeout": 200, "failureMode": "{mode}"}}"#);
        let host = host_on(redis.port, &config);
        let case = Case::start(
            "fault",
            &format!(
                "redis-rate-limit (failureMode {mode}, timeout 200 ms): Redis stalls 2 s (CLIENT PAUSE), then answers again"
            ),
            &format!(
                "while stalled: every request {} after ~200 ms; after: exactly 5 per window",
                if mode == "open" { "let through, error logged" } else { "503" }
            ),
        );
        assert_eq!(fates(&host, 1), [(Fate::Admitted, 1)].into());
        redis.cli(&["CLIENT", "PAUSE", "2000", "ALL"]);
        let started = std::time::Instant::now();
        let stalled = fates(&host, 3);
        let per_request = started.elapsed() / 3;
        std::thread::sleep(Duration::from_millis(2000).saturating_sub(started.elapsed()) + Duration::from_millis(200));
        next_window(&host);
        let after = fates(&host, 7);
        let failed = if mode == "open" { Fate::FailedOpen } else { Fate::FailedClosed };
        let text = format!("while stalled: {} ({per_request:.0?} each); after: {}", said(&stalled), said(&after));
        let ok = exactly(&stalled, &[(failed, 3)])
            && per_request < Duration::from_millis(1000)
            && exactly(&after, &[(Fate::Admitted, 5), (Fate::Limited, 2)]);
        assert!(case.finish(11, &text, ok), "{text}");
    }
}

/// FAILS with the SDK as it is: `gateway_sdk::redis::decode_reply` hands the
/// answer to `redis_protocol`'s recursive decoder with no bound on nesting,
/// so an answer of nested one-element arrays (`*1\r\n` repeated, then `:1`)
/// exhausts the VM's call stack: the plugin traps in
/// `proxy_on_redis_call_response` and the VM is dead for every request on it.
/// On the test host (wasmi) 400 levels (1.6 KB) are enough; V8's deeper stack
/// moves the threshold, not the outcome. The JSON config reader already
/// refuses "nested too deeply"; the RESP reader should too (e.g. scan the
/// headers iteratively first and refuse more than 64 levels as
/// `RedisError::Protocol`).
#[test]
fn a_deeply_nested_redis_answer_does_not_trap_the_vm() {
    use gateway_testhost::RedisReply;
    let case = Case::start(
        "bad input",
        "redis-rate-limit: Redis (or whatever answers on its port) returns arrays nested 1,000 deep (4 KB), \
         then 100,000 deep (400 KB)",
        "a protocol error like any bad answer: fail-open, error logged; the VM keeps serving",
    );
    let mut seen = Vec::new();
    let mut ok = true;
    for depth in [1_000usize, 100_000] {
        let mut answer = "*1\r\n".repeat(depth).into_bytes();
        answer.extend_from_slice(b":1\r\n");
        let host = TestHost::plugin("redis-rate-limit")
            .unwrap()
            .redis_upstream(CLUSTER, RedisUpstream::respond(move |_| RedisReply::raw(answer.clone())))
            .config(r#"{"serviceName": "redis.dns", "qpm": 2}"#)
            .unwrap();
        match host.request().send() {
            Ok(out) => {
                let fine = out.status() == Some(200) && out.logged_anywhere("bad redis answer");
                ok &= fine;
                seen.push(format!("depth {depth}: status {:?}, bad answer logged: {fine}", out.status()));
            }
            Err(err) => {
                ok = false;
                let err = err.to_string();
                seen.push(format!("depth {depth}: {}", err.lines().next().unwrap_or_default()));
            }
        }
    }
    let text = seen.join("; ");
    assert!(case.finish(2, &text, ok), "{text}");
}
