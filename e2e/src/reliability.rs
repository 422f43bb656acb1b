//! The reliability suite's tools: result rows, VM health, memory, a raw
//! HTTP/1.1 client, a load generator, and a token service that can be
//! stopped, slowed, broken and brought back on the same port.
//!
//! Every reliability test (`e2e/tests/reliability_*.rs`,
//! `plugins/redis-rate-limit/tests/reliability.rs`, the fuzz corpus replay)
//! writes one [`Case`] row per fault, bad input or load it tries, to
//! `target/reliability/rows/<id>.json`; `cargo xtask reliability` runs them
//! and assembles the rows into `RELIABILITY.md`. A row is written as "did
//! not finish" when the case starts and overwritten with what was seen when
//! it ends, so a test that dies half-way still leaves a failed row.
//!
//! The same Envoy tests run on both builds of the plugins (`E2E_BUILD=native`
//! for the `.so` builds): each row records the build it ran on, and its file
//! name carries it, so the two runs write rows side by side. "Trouble" is
//! whatever says a plugin failed: on the `.wasm` builds a Wasm VM that
//! trapped or was replaced, on the `.so` builds a hook that panicked (the SDK
//! logs `[<plugin>] panic:` at critical) or an Envoy that crashed or stopped
//! answering its admin.

use crate::envoy::Envoy;
use crate::envoy_config::EnvoyConfig;
use crate::error::{Context, Error, Result};
use crate::{http, paths, Build, Upstreams};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

// ----- result rows -----

/// Where rows go: `$RELIABILITY_ROWS`, else `<repo>/target/reliability/rows`.
pub fn rows_dir() -> PathBuf {
    match std::env::var_os("RELIABILITY_ROWS") {
        Some(dir) if !dir.is_empty() => paths::repo_root().join(dir),
        _ => paths::repo_root().join("target/reliability/rows"),
    }
}

/// One fault, bad input or load of the table: what was tried and expected,
/// then what was seen.
pub struct Case {
    id: String,
    build: Build,
    area: String,
    case: String,
    expected: String,
}

impl Case {
    /// Starts a case and writes its row as "did not finish".
    ///
    /// `area` groups rows in the table (`fault`, `bad input`, `load`,
    /// `security`, `fuzz`); `case` says what was done, `expected` what the
    /// documentation promises. The row is of the build `E2E_BUILD` names.
    pub fn start(area: &str, case: &str, expected: &str) -> Case {
        let build = Build::from_env();
        let id = slug(&format!("{}-{area}-{case}", build.extension()));
        let row = Case { id, build, area: area.to_string(), case: case.to_string(), expected: expected.to_string() };
        row.write(0, "did not finish (the test failed before it recorded what it saw; see its output)", false);
        row
    }

    /// Records what was seen; returns `pass`, for the test to assert on.
    pub fn finish(&self, requests: u64, seen: impl AsRef<str>, pass: bool) -> bool {
        self.write(requests, seen.as_ref(), pass);
        pass
    }

    fn write(&self, requests: u64, seen: &str, pass: bool) {
        let row = json!({
            "build": self.build.extension(),
            "area": self.area,
            "case": self.case,
            "requests": requests,
            "expected": in_words_of(self.build, &self.expected),
            "seen": in_words_of(self.build, seen),
            "pass": pass,
            "recorded": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        });
        let dir = rows_dir();
        // A row that cannot be written shows up as missing in the table; the test still asserts.
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(format!("{}.json", self.id)), row.to_string());
        }
    }
}

/// The cases are written once, in the words of the `.wasm` builds, whose
/// plugins fail as Wasm VMs; a `.so` build has no VM, so its rows say
/// "plugin" instead (a panic caught in a hook, or a crash: see [`vm_trouble`]).
fn in_words_of(build: Build, text: &str) -> String {
    match build {
        Build::Wasm => text.to_string(),
        Build::Native => text
            .replace("no VM failure", "no plugin failure")
            .replace("VM trouble", "plugin trouble")
            .replace("into the VM", "into the plugin"),
    }
}

/// `a Fault: x/y` -> `a-fault-x-y`, short enough for a file name.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    out.get(..out.len().min(120)).unwrap_or(out).to_string()
}

// ----- VM health -----

/// Envoy's `wasm` statistics (counters and gauges), by name.
pub fn wasm_stats(envoy: &Envoy) -> Result<BTreeMap<String, i64>> {
    stats(envoy, "^wasm")
}

/// Envoy's statistics matching `filter` (a regex), counters and gauges only.
pub fn stats(envoy: &Envoy, filter: &str) -> Result<BTreeMap<String, i64>> {
    let resp = http::get(&envoy.admin_url(&format!("/stats?filter={filter}"))).send()?;
    Ok(resp
        .text()
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

/// Signs that a Wasm VM failed between two snapshots of [`wasm_stats`]: a
/// reload counter moved, VMs were created, or the number of live VMs changed.
/// Envoy 1.40 counts `wasm.envoy.wasm.runtime.v8.created` / `.active`,
/// `wasm.wasm_vm_count` and, per plugin, `wasm.<plugin>.vm_reload*` (a VM
/// that trapped is replaced on the next request and counted there).
pub fn vm_failures(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, value) in after {
        let old = before.get(name).copied().unwrap_or(0);
        let watched = name.contains("vm_reload")
            || name == "wasm.envoy.wasm.runtime.v8.created"
            || name == "wasm.envoy.wasm.runtime.v8.active"
            || name == "wasm.wasm_vm_count";
        if watched && *value != old {
            failures.push(format!("{name}: {old} -> {value}"));
        }
    }
    failures
}

/// Lines of an Envoy log that say a plugin failed: a Wasm VM trapped or threw
/// in a callback, a native hook panicked (the SDK's panic hook logs
/// `[<plugin>] panic: panicked at ...`), or Envoy caught a fatal signal (its
/// `backtrace` component prints the stack before the process dies).
pub fn trap_lines(log: &str) -> Vec<String> {
    const SIGNS: [&str; 8] = [
        "Uncaught",
        "wasm trap",
        "RuntimeError",
        "VM failed",
        "Wasm VM fault",
        "panicked at",
        "] panic: ",
        "][backtrace]",
    ];
    log.lines().filter(|line| SIGNS.iter().any(|sign| line.contains(sign))).map(str::to_string).collect()
}

/// Everything that says a plugin failed since `before`: Wasm VM counters,
/// log lines ([`trap_lines`]), and an Envoy that no longer answers its admin
/// (a native module can take the process down with it).
pub fn vm_trouble(envoy: &Envoy, before: &BTreeMap<String, i64>) -> Result<Vec<String>> {
    let ready = http::get(&envoy.admin_url("/ready")).send();
    let alive = ready.as_ref().is_ok_and(|resp| resp.status == 200);
    let mut trouble = Vec::new();
    if alive {
        trouble.extend(vm_failures(before, &wasm_stats(envoy)?));
    } else {
        let why = match ready {
            Ok(resp) => format!("status {}", resp.status),
            Err(err) => err.to_string(),
        };
        trouble.push(format!("Envoy (pid {}) does not answer its admin /ready: {why}", envoy.pid()));
    }
    trouble.extend(trap_lines(&envoy.log()));
    Ok(trouble)
}

// ----- memory -----

/// A process's memory: resident set, and the V8 Wasm linear memories in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS` of `/proc/PID/status`, in kB.
    pub rss_kb: u64,
    /// Wasm linear memories found (one per VM: each plugin has one per Envoy thread).
    pub wasm_memories: u64,
    /// Their accessible size (what `memory.grow` made of them), in kB.
    pub wasm_size_kb: u64,
    /// Their resident part, in kB.
    pub wasm_rss_kb: u64,
}

/// Reads `/proc/PID/status` and `/proc/PID/smaps`.
///
/// V8 reserves 8 GiB of address space (`---p`) for each Wasm memory and
/// makes its accessible pages a `rw-p` mapping that ends where the
/// reservation starts: those mappings are the linear memories.
pub fn memory(pid: u32) -> Result<Memory> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context(|| format!("reading status of {pid}"))?;
    let rss_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).context(|| format!("reading smaps of {pid}"))?;
    // (start, end, perms, rss kB) of every mapping.
    let mut maps: Vec<(u64, u64, String, u64)> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) {
                maps.push((start, end, words.next().unwrap_or_default().to_string(), 0));
                continue;
            }
        }
        if let (Some(rss), Some(last)) = (line.strip_prefix("Rss:"), maps.last_mut()) {
            last.3 = rss.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        }
    }
    let mut memory = Memory { rss_kb, ..Memory::default() };
    for pair in maps.windows(2) {
        let [(start, end, perms, rss), (next_start, next_end, next_perms, _)] = pair else { continue };
        if perms == "rw-p" && next_perms == "---p" && end == next_start && next_end - next_start >= 4 << 30 {
            memory.wasm_memories += 1;
            memory.wasm_size_kb += (end - start) / 1024;
            memory.wasm_rss_kb += rss;
        }
    }
    Ok(memory)
}

// ----- a raw HTTP/1.1 client -----

/// A response as it came over the wire.
#[derive(Clone, Debug, Default)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's first value (lossy UTF-8).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server will close the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

fn io_err(what: &str, err: impl std::fmt::Display) -> Error {
    Error::new(format!("{what}: {err}"))
}

/// Reads one response (`head`: the request was a `HEAD`, so no body).
pub fn read_response(reader: &mut impl BufRead, head: bool) -> Result<RawResponse> {
    let mut line = Vec::new();
    let read = reader.read_until(b'\n', &mut line).map_err(|e| io_err("reading the status line", e))?;
    if read == 0 {
        return Err(Error::new("the connection closed before a response"));
    }
    let status_line = String::from_utf8_lossy(&line).into_owned();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(format!("bad status line {status_line:?}")))?;
    let mut response = RawResponse { status, ..RawResponse::default() };
    loop {
        line.clear();
        reader.read_until(b'\n', &mut line).map_err(|e| io_err("reading a header", e))?;
        let trimmed = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n")).unwrap_or(&line);
        if trimmed.is_empty() {
            break;
        }
        let colon = trimmed.iter().position(|&b| b == b':').ok_or_else(|| Error::new("a header without ':'"))?;
        let (name, value) = trimmed.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        let value = value.strip_prefix(b" ").unwrap_or(value);
        response.headers.push((String::from_utf8_lossy(name).to_ascii_lowercase(), value.to_vec()));
    }
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            reader.read_until(b'\n', &mut line).map_err(|e| io_err("reading a chunk size", e))?;
            let size_text = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| Error::new(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    reader.read_until(b'\n', &mut line).map_err(|e| io_err("reading trailers", e))?;
                    if line == b"\r\n" || line == b"\n" || line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            let chunk = response.body.get_mut(start..).unwrap_or_default();
            reader.read_exact(chunk).map_err(|e| io_err("reading a chunk", e))?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).map_err(|e| io_err("reading a chunk's end", e))?;
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.trim().parse().map_err(|_| Error::new(format!("bad content-length {length:?}")))?;
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body).map_err(|e| io_err("reading the body", e))?;
    } else {
        reader.read_to_end(&mut response.body).map_err(|e| io_err("reading the body to EOF", e))?;
    }
    Ok(response)
}

/// Opens a connection to `127.0.0.1:port`, writes `bytes` (one or more
/// requests, pipelined) and reads `count` responses.
pub fn raw_requests(port: u16, bytes: &[u8], count: usize) -> Result<Vec<RawResponse>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| io_err("connecting", e))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| io_err("setting a timeout", e))?;
    let mut writer = stream.try_clone().map_err(|e| io_err("cloning a socket", e))?;
    // Write from another thread: a big request may not fit the socket
    // buffers while the server already answers.
    let bytes = bytes.to_vec();
    let sender = std::thread::spawn(move || writer.write_all(&bytes));
    let mut reader = BufReader::new(stream);
    let mut responses = Vec::new();
    for _ in 0..count {
        responses.push(read_response(&mut reader, false)?);
    }
    // The server may stop reading once it answered (e.g. a 413): a write error then is expected.
    let _ = sender.join();
    Ok(responses)
}

/// `GET path HTTP/1.1` with `headers` (raw bytes allowed in values).
pub fn get_request(path: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    request_bytes("GET", path, headers, None)
}

/// A request with any method, headers and (with `content-length`) body.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &[u8])], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: gateway\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ----- load -----

/// What a load run saw.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Responses received.
    pub responses: u64,
    /// Responses by the class the classifier gave them (e.g. `"200 hello world"`).
    pub classes: BTreeMap<String, u64>,
    /// Requests that got no response (connection refused, reset, timeout, malformed).
    pub errors: u64,
    /// Connections the server closed between two requests (the request was sent again on a new one).
    pub reconnects: u64,
    /// The first few errors, said.
    pub first_errors: Vec<String>,
    pub elapsed: Duration,
}

impl LoadReport {
    /// Responses whose class starts with `prefix` (`"5"` for every 5xx).
    pub fn count(&self, prefix: &str) -> u64 {
        self.classes.iter().filter(|(class, _)| class.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.responses as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: LoadReport) {
        self.responses += other.responses;
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        for (class, n) in other.classes {
            *self.classes.entry(class).or_default() += n;
        }
        for err in other.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(err);
            }
        }
    }

    /// `200 hello world: 1000, 500 x: 2` and the errors.
    pub fn summary(&self) -> String {
        let classes: Vec<String> = self.classes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let mut text = format!("{} in {:.1} s ({:.0}/s)", classes.join(", "), self.elapsed.as_secs_f64(), self.rate());
        if self.errors > 0 {
            text.push_str(&format!("; {} errors, first: {:?}", self.errors, self.first_errors));
        }
        if self.reconnects > 0 {
            text.push_str(&format!("; {} server-closed keep-alive connections reopened", self.reconnects));
        }
        text
    }
}

/// The usual classifier: status and the first 40 bytes of the body.
pub fn status_and_body(resp: &RawResponse) -> String {
    let text = resp.text();
    let short: String = text.chars().take(40).collect();
    format!("{} {}", resp.status, short.trim())
}

/// Only the status.
pub fn status_only(resp: &RawResponse) -> String {
    resp.status.to_string()
}

/// A closed-loop load: `threads` keep-alive connections to `127.0.0.1:port`,
/// each sending `request` and reading its response, until `total` responses
/// came, `max_time` passed, or `stop` is set. A connection the server closes
/// is reopened (and counted in [`LoadReport::reconnects`]); a request that
/// gets no answer on a fresh connection is an error.
pub fn load(
    port: u16,
    request: &[u8],
    threads: usize,
    total: u64,
    max_time: Duration,
    classify: fn(&RawResponse) -> String,
    stop: Option<&AtomicBool>,
) -> LoadReport {
    let started = Instant::now();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let never = AtomicBool::new(false);
    let stop = stop.unwrap_or(&never);
    let mut report = LoadReport::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = LoadReport::default();
                    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                    let mut fresh = false;
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < max_time {
                        if sent.fetch_add(1, Ordering::Relaxed) >= total {
                            break;
                        }
                        let mut attempts = 0;
                        loop {
                            attempts += 1;
                            if conn.is_none() {
                                match connect(port) {
                                    Ok(c) => {
                                        conn = Some(c);
                                        fresh = true;
                                    }
                                    Err(err) => {
                                        mine.errors += 1;
                                        if mine.first_errors.len() < 5 {
                                            mine.first_errors.push(err.to_string());
                                        }
                                        std::thread::sleep(Duration::from_millis(10));
                                        break;
                                    }
                                }
                            }
                            let Some((writer, reader)) = conn.as_mut() else { break };
                            let outcome = writer
                                .write_all(request)
                                .map_err(|e| io_err("sending", e))
                                .and_then(|()| read_response(reader, false));
                            match outcome {
                                Ok(resp) => {
                                    mine.responses += 1;
                                    *mine.classes.entry(classify(&resp)).or_default() += 1;
                                    if resp.closes() {
                                        conn = None;
                                    }
                                    fresh = false;
                                    break;
                                }
                                Err(err) => {
                                    conn = None;
                                    let closed_idle = !fresh && attempts == 1;
                                    if closed_idle {
                                        // The server closed a kept-alive connection: send again on a new one.
                                        mine.reconnects += 1;
                                        continue;
                                    }
                                    mine.errors += 1;
                                    if mine.first_errors.len() < 5 {
                                        mine.first_errors.push(err.to_string());
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        for worker in workers {
            if let Ok(mine) = worker.join() {
                report.merge(mine);
            }
        }
    });
    report.elapsed = started.elapsed();
    report
}

fn connect(port: u16) -> Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| io_err("connecting", e))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| io_err("setting a timeout", e))?;
    let _ = stream.set_nodelay(true);
    let reader = BufReader::new(stream.try_clone().map_err(|e| io_err("cloning a socket", e))?);
    Ok((stream, reader))
}

// ----- a token service to break -----

/// How the [`TokenService`] answers every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenMode {
    /// `200` with `x-token: <token>` and a short body.
    Token(String),
    /// As `Token`, after holding each request for this long.
    Slow(Duration),
    /// This status, no token.
    Status(u16),
    /// `200` without the token header.
    NoHeader,
    /// `200` with `x-token: <token>` and a body of this many bytes.
    Huge(String, usize),
}

/// An Envoy answering every request itself (`direct_response`), on a port of
/// its own that stays the same across [`TokenService::switch`] and
/// [`TokenService::stop`]: a token service (and an instant upstream) that
/// tests can stop, slow down, break and bring back.
pub struct TokenService {
    port: u16,
    envoy: Option<Envoy>,
    mode: Option<TokenMode>,
    dir: TempDir,
}

impl TokenService {
    /// Starts the service in `mode` on a free port.
    pub fn start(mode: TokenMode) -> Result<TokenService> {
        let mut dir =
            tempfile::Builder::new().prefix("e2e-token-").tempdir().context(|| "creating a temp dir".into())?;
        let mut last = Error::new("no free port");
        for _ in 0..3 {
            let port = crate::process::free_port()?;
            let mut service = TokenService { port, envoy: None, mode: None, dir };
            match service.switch(mode.clone()) {
                Ok(()) => return Ok(service),
                Err(err) => {
                    last = err;
                    dir = service.dir;
                }
            }
        }
        Err(last)
    }

    /// The port it listens on (127.0.0.1), also while stopped.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The current mode (`None` while stopped).
    pub fn mode(&self) -> Option<&TokenMode> {
        self.mode.as_ref()
    }

    /// Stops the service (its Envoy is killed); the port stays unanswered.
    pub fn stop(&mut self) {
        self.envoy = None;
        self.mode = None;
    }

    /// Restarts the service in `mode`, on the same port.
    pub fn switch(&mut self, mode: TokenMode) -> Result<()> {
        self.stop();
        let config = self.config(&mode)?;
        // The port was just released by the Envoy we stopped: retry a moment if it lingers.
        let mut last = Error::new("not started");
        for _ in 0..5 {
            match Envoy::start(&config, &Upstreams::default()) {
                Ok(envoy) => {
                    self.envoy = Some(envoy);
                    self.mode = Some(mode);
                    return Ok(());
                }
                Err(err) => {
                    last = err;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        Err(last)
    }

    /// The Envoy serving it, while it runs.
    pub fn envoy(&self) -> Option<&Envoy> {
        self.envoy.as_ref()
    }

    /// A `STATIC` cluster named `name` pointing at this service.
    pub fn cluster(&self, name: &str) -> Value {
        static_cluster(name, self.port)
    }

    fn config(&self, mode: &TokenMode) -> Result<EnvoyConfig> {
        let (status, token, body) = match mode {
            TokenMode::Token(token) => (200, Some(token.clone()), json!({"inline_string": "token service\n"})),
            TokenMode::Slow(_) => (200, Some("slow-token".to_string()), json!({"inline_string": "token service\n"})),
            TokenMode::Status(status) => (*status, None, json!({"inline_string": format!("status {status}\n")})),
            TokenMode::NoHeader => (200, None, json!({"inline_string": "no token here\n"})),
            TokenMode::Huge(token, size) => {
                let file = self.dir.path().join("huge.bin");
                let content: Vec<u8> = (0..*size).map(|i| b'a' + (i % 26) as u8).collect();
                std::fs::write(&file, content).context(|| format!("writing {}", file.display()))?;
                (200, Some(token.clone()), json!({"filename": file.to_string_lossy()}))
            }
        };
        let mut route = json!({"match": {"prefix": "/"}, "direct_response": {"status": status, "body": body}});
        if let Some(token) = token {
            if let Some(route) = route.as_object_mut() {
                route.insert("response_headers_to_add".into(), json!([{"header": {"key": "x-token", "value": token}}]));
            }
        }
        let mut filters = Vec::new();
        if let TokenMode::Slow(delay) = mode {
            filters.push(json!({
                "name": "envoy.filters.http.fault",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                    "delay": {"fixed_delay": format!("{}s", delay.as_secs_f64()), "percentage": {"numerator": 100}},
                },
            }));
        }
        filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }));
        let bootstrap = json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": [{
                "name": "token",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "token",
                        // Big request headers reach it too (the bad-input tests use it as their upstream).
                        "max_request_headers_kb": 8192,
                        "common_http_protocol_options": {"max_headers_count": 10000},
                        "route_config": {
                            "name": "token",
                            "max_direct_response_body_size_bytes": 64 << 20,
                            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}],
                        },
                        "http_filters": filters,
                    },
                }]}],
            }]},
        });
        let mut config = EnvoyConfig::from_yaml(&bootstrap.to_string(), &paths::dist_dir())?;
        config.bind_port(Some("token"), self.port)?;
        Ok(config)
    }
}

/// A `STATIC` cluster named `name` with the one endpoint `127.0.0.1:port`.
pub fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "connect_timeout": "2s",
        "type": "STATIC",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_rows_speak_of_plugins() {
        let text = "each plugin answers normally; no VM failure; VM trouble: []";
        assert_eq!(in_words_of(Build::Wasm, text), text);
        assert_eq!(
            in_words_of(Build::Native, text),
            "each plugin answers normally; no plugin failure; plugin trouble: []"
        );
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("fault: http-call / token service STOPPED"), "fault-http-call-token-service-stopped");
    }

    #[test]
    fn responses_parse() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-A: \xff\r\n\r\nhelloHTTP/1.1 404 Not Found\r\n\
                     transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut reader = BufReader::new(&wire[..]);
        let first = read_response(&mut reader, false).unwrap();
        assert_eq!((first.status, first.text().as_str()), (200, "hello"));
        assert_eq!(first.headers[1], ("x-a".to_string(), vec![0xff]));
        let second = read_response(&mut reader, false).unwrap();
        assert_eq!((second.status, second.text().as_str()), (404, "abcde"));
        assert!(read_response(&mut reader, false).is_err());
    }

    #[test]
    fn vm_failures_are_counter_moves() {
        let before: BTreeMap<String, i64> =
            [("wasm.mock.vm_reload".to_string(), 0), ("wasm.envoy.wasm.runtime.v8.active".to_string(), 3)].into();
        let mut after = before.clone();
        assert!(vm_failures(&before, &after).is_empty());
        after.insert("wasm.mock.vm_reload".to_string(), 1);
        assert_eq!(vm_failures(&before, &after), ["wasm.mock.vm_reload: 0 -> 1"]);
    }

    #[test]
    fn own_memory_reads() {
        let mine = memory(std::process::id()).unwrap();
        assert!(mine.rss_kb > 0);
    }
}
