//! What Envoy 1.40 does with each header and data action of the SDK: the
//! table of `crates/sdk/src/action.rs`, one test per row, shown with the
//! probe plugin (`e2e/fixtures/probe`), whose every action comes from its
//! config and which reports the hooks it saw in the response header
//! `x-probe-phases` (and, when the exchange is done, in the log line
//! `phases: ...`).
//!
//! Each test starts its own httpbin and Envoy, on a small bootstrap of this
//! file (one listener, one route to httpbin, the probe as the only plugin)
//! rather than on `envoy.yaml`: the probe is a fixture, not a plugin of the
//! gateway, and some tests need listener settings of their own (a buffer
//! limit, a stream idle timeout). HTTP calls go to the cluster `probe-call`
//! (httpbin too), so that `cluster.httpbin.upstream_rq_total` counts only the
//! requests that went upstream.
//!
//! The probe module must be built first:
//! `cargo xtask build`, or `cargo rustc --release --target wasm32-wasip1 -p probe --lib --crate-type cdylib`
//! (see [`probe_module`]).
//!
//! The suite runs on both builds (`E2E_BUILD=native` loads the probe's
//! Envoy dynamic module instead). Where the dynamic module ABI cannot behave
//! as the Wasm filter does, a test says what the native build does instead,
//! behind [`native`], and the README's native section lists it:
//!
//! * `allow_on_headers_stop_iteration` is a Wasm filter setting. Natively
//!   `StopIteration` is always Envoy's `StopIteration` (as on the Wasm filter
//!   with the flag) and `StopAllIteration*` always `StopAllIterationAndWatermark`
//!   (as on the Wasm filter without it).
//! * Envoy's dynamic module filter never runs its module's response hooks
//!   for a local answer the module sent.
//! * After `DataStopIterationAndWatermark`, a native body hook sees what
//!   Envoy holds with the new chunk (as after `StopIterationAndBuffer`); the
//!   Wasm filter shows the new chunk only.
//!
//! Row without a test: `HeaderContinueAndEndStream` is not offered by the
//! SDK (no ABI 0.2.1 host call could add the body it exists for).

// The helpers below are test code as much as the tests (clippy.toml allows
// these in `#[test]` functions only): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::{self, EnvoyConfig};
use e2e::http::{self, Response};
use e2e::Gateway;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// Whether this run loads the native build (see the module docs for what it
/// does differently).
fn native() -> bool {
    e2e::Build::from_env() == e2e::Build::Native
}

// ----- the probe's gateway -----

/// The probe module: the file named by `PROBE_WASM`, else the fixture as
/// `cargo xtask build` builds it ([`e2e::paths::fixture_module`]: the `.wasm`,
/// or with `E2E_BUILD=native` the `.so`; a stale one fails the test).
fn probe_module() -> PathBuf {
    match std::env::var_os("PROBE_WASM") {
        Some(path) => PathBuf::from(path),
        None => e2e::paths::fixture_module("probe").unwrap_or_else(|err| panic!("{err}")),
    }
}

/// A gateway with the probe, configured by the builder methods.
struct Probe {
    config: Value,
    allow_on_headers_stop_iteration: bool,
    stream_idle_timeout: Option<&'static str>,
    buffer_limit: Option<u32>,
}

/// The probe with `config` (its JSON, see `e2e/fixtures/probe`).
fn probe(config: Value) -> Probe {
    Probe { config, allow_on_headers_stop_iteration: false, stream_idle_timeout: None, buffer_limit: None }
}

impl Probe {
    /// Sets `allow_on_headers_stop_iteration: true` in the Wasm filter's config.
    fn allow_on_headers_stop_iteration(mut self) -> Self {
        self.allow_on_headers_stop_iteration = true;
        self
    }

    /// Has the SDK buffer both bodies (`"bodyMode": "buffered"`).
    fn buffered(mut self) -> Self {
        self.config["bodyMode"] = json!("buffered");
        self
    }

    /// The connection manager's `stream_idle_timeout`: how a stream nothing
    /// resumes ends (Envoy's default is 5 minutes).
    fn stream_idle_timeout(mut self, timeout: &'static str) -> Self {
        self.stream_idle_timeout = Some(timeout);
        self
    }

    /// `per_connection_buffer_limit_bytes` of the listener and of the httpbin cluster.
    fn buffer_limit(mut self, bytes: u32) -> Self {
        self.buffer_limit = Some(bytes);
        self
    }

    fn start(self) -> Gateway {
        let mut config =
            EnvoyConfig::from_yaml(&envoy_config::httpbin_bootstrap("probe"), &e2e::paths::dist_dir()).unwrap();
        let filter = envoy_config::wasm_filter("probe", &probe_module(), &self.config.to_string());
        config.add_plugin(filter).unwrap();
        if self.allow_on_headers_stop_iteration {
            config.allow_on_headers_stop_iteration("probe", true).unwrap();
        }
        config.add_cluster(envoy_config::cluster("probe-call", "httpbin", 80));
        let root = config.json_mut();
        let listener = &mut root["static_resources"]["listeners"][0];
        if let Some(timeout) = self.stream_idle_timeout {
            listener["filter_chains"][0]["filters"][0]["typed_config"]["stream_idle_timeout"] = json!(timeout);
        }
        if let Some(bytes) = self.buffer_limit {
            listener["per_connection_buffer_limit_bytes"] = json!(bytes);
            root["static_resources"]["clusters"][0]["per_connection_buffer_limit_bytes"] = json!(bytes);
        }
        Gateway::start_with(config).unwrap()
    }
}

/// The probe's `call` section: a GET of `path` on httpbin (cluster `probe-call`).
fn call(path: &str, then: Value) -> Value {
    json!({"cluster": "probe-call", "path": path, "timeoutMs": 5000, "then": then})
}

// ----- what a test reads -----

/// `POST <path>` with a text body and a request id.
fn post(gw: &Gateway, path: &str, body: &str, request_id: &str) -> Response {
    http::post(&gw.url(path), body)
        .header("content-type", "text/plain")
        .header("x-request-id", request_id)
        .send()
        .unwrap()
}

/// `GET <path>` with a request id.
fn get(gw: &Gateway, path: &str, request_id: &str) -> Response {
    gw.get(path, &[("x-request-id", request_id)]).unwrap()
}

/// The phases in `x-probe-phases` (the hooks up to the response headers, or
/// up to a local answer).
fn phases(resp: &Response) -> Vec<String> {
    split_phases(resp.header("x-probe-phases").unwrap_or_default())
}

/// Every phase of the exchange `request_id`, from the probe's last log line.
fn logged_phases(gw: &Gateway, request_id: &str) -> Vec<String> {
    let needle = format!("[{request_id}] phases: ");
    let line = gw.envoy.wait_for_log(&needle).unwrap();
    split_phases(line.split_once(&needle).map(|(_, phases)| phases).unwrap_or_default())
}

/// `a,b(1,end),c` to `["a", "b(1,end)", "c"]`: commas inside parentheses stay.
fn split_phases(text: &str) -> Vec<String> {
    let mut phases = vec![String::new()];
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                phases.push(String::new());
                continue;
            }
            _ => {}
        }
        phases.last_mut().unwrap().push(c);
    }
    phases.retain(|p| !p.is_empty());
    phases
}

/// Where the first phase starting with `prefix` is; fails when there is none.
fn at(phases: &[String], prefix: &str) -> usize {
    phases.iter().position(|p| p.starts_with(prefix)).unwrap_or_else(|| panic!("no phase {prefix}* in {phases:?}"))
}

/// The request body httpbin received (`data` of its echo).
fn echoed_body(resp: &Response) -> String {
    resp.json().unwrap()["data"].as_str().unwrap_or_default().to_string()
}

/// Requests Envoy sent to the httpbin cluster (HTTP calls go to `probe-call`).
fn upstream_requests(gw: &Gateway) -> u64 {
    let stats = http::get(&gw.envoy.admin_url("/stats?filter=^cluster\\.httpbin\\.upstream_rq_total$")).send().unwrap();
    let text = stats.text();
    text.trim().rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no counter in {text:?}"))
}

/// A response read from a raw connection, however it ended.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET <path>` on a connection of its own, read until Envoy closes it: the
/// test client would only say "error" for a response cut short.
fn raw_get(gw: &Gateway, path: &str) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", gw.envoy.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    // A reset ends the read with an error; what came before it is the answer.
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no complete head: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    RawResponse { status, headers, body: raw[split + 4..].to_vec() }
}

// ----- HeaderContinue -----

/// `HeaderAction::Continue`: the headers (with the hook's edits) go on at
/// once, and the body follows chunk by chunk through the body hook.
#[test]
fn header_continue_passes_headers_and_body_on() {
    let gw =
        probe(json!({"requestHeaders": {"return": "continue", "setRequestHeader": {"x-probe-added": "1"}}})).start();

    let resp = post(&gw, "/anything", "hello", "continue-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("X-Probe-Added").unwrap().as_deref(), Some("1"));
    assert_eq!(echoed_body(&resp), "hello");
    let seen = phases(&resp);
    assert_eq!(seen.first().map(String::as_str), Some("request_headers"));
    assert!(seen.iter().any(|p| p.starts_with("request_body(") && p.ends_with(",end)")), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("response_headers"));
    assert_eq!(upstream_requests(&gw), 1);
}

// ----- HeaderStopIteration -----

/// `HeaderAction::StopIteration` with `allow_on_headers_stop_iteration: true`:
/// the body hook runs while the headers are held, reads and edits them, and
/// its `Continue` releases headers and body together: the upstream sees the
/// header the body hook set.
#[test]
fn stop_iteration_with_allow_flag_lets_the_body_hook_edit_held_headers() {
    let gw = probe(json!({
        "requestHeaders": {"return": "stopIteration"},
        "requestBody": {"readHeader": "content-type", "setRequestHeader": {"x-from-body": "1"}, "recordToRequest": true},
    }))
    .allow_on_headers_stop_iteration()
    .start();

    let resp = post(&gw, "/anything", "hello", "si-allow-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    assert_eq!(resp.echoed_header("X-From-Body").unwrap().as_deref(), Some("1"));
    // What the probe had seen when the headers left: the headers hook and the first chunk only.
    let upstream_saw = split_phases(&resp.echoed_header("X-Probe-Phases").unwrap().unwrap());
    assert_eq!(upstream_saw.first().map(String::as_str), Some("request_headers"));
    assert!(upstream_saw.get(1).is_some_and(|p| p.starts_with("request_body(")), "{upstream_saw:?}");
    assert!(phases(&resp).contains(&"read(content-type)=text/plain".to_string()), "{:?}", phases(&resp));
}

/// `HeaderAction::StopIteration` without the flag: Envoy turns 1 into
/// `StopAllIterationAndWatermark`, so the body hook never runs, nothing
/// resumes the request (no call is pending), and it stays held until the
/// stream idle timeout answers `504 stream timeout`. Nothing went upstream.
///
/// Natively there is no flag: `StopIteration` is Envoy's `StopIteration`, so
/// the body hook runs, edits the held headers and releases the request, as
/// with the flag on the Wasm filter.
#[test]
fn stop_iteration_without_allow_flag_holds_the_request_until_the_idle_timeout() {
    let gw = probe(json!({"requestHeaders": {"return": "stopIteration"}, "requestBody": {"setRequestHeader": {"x-from-body": "1"}}}))
        .stream_idle_timeout("2s")
        .start();

    let resp = post(&gw, "/anything", "hello", "si-deny-1");
    if native() {
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(echoed_body(&resp), "hello");
        assert_eq!(resp.echoed_header("X-From-Body").unwrap().as_deref(), Some("1"));
        assert_eq!(upstream_requests(&gw), 1);
        return;
    }
    assert_eq!((resp.status, resp.text().as_str()), (504, "stream timeout"));
    // The timeout's answer passes the response hooks; the body hook never ran.
    assert_eq!(phases(&resp), ["request_headers", "response_headers"]);
    assert_eq!(upstream_requests(&gw), 0);
}

/// Without the flag, a `StopIteration` is resumed like a `StopAllIteration*`:
/// here by the callback of a call made in the headers hook. The body hook
/// runs only after that, when the headers are gone: its header edits are
/// refused (`BadArgument`) and it cannot read them either.
///
/// Natively (no flag, `StopIteration` as Envoy's) the body hook runs while the
/// call is pending, reads and edits the held headers, and its `Continue`
/// sends the request on without waiting for the call.
#[test]
fn stop_iteration_without_allow_flag_waits_for_resume() {
    let gw = probe(json!({
        "call": call("/delay/1", json!({"setRequestHeader": {"x-after-call": "1"}})),
        "requestHeaders": {"return": "stopIteration", "call": true},
        "requestBody": {"readHeader": "content-type", "setRequestHeader": {"x-from-body": "1"}},
    }))
    .start();

    let resp = post(&gw, "/anything", "hello", "si-deny-call-1");
    if native() {
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(echoed_body(&resp), "hello");
        assert_eq!(resp.echoed_header("X-From-Body").unwrap().as_deref(), Some("1"));
        assert_eq!(resp.echoed_header("X-After-Call").unwrap(), None);
        let seen = phases(&resp);
        assert!(seen.contains(&"read(content-type)=text/plain".to_string()), "{seen:?}");
        return;
    }
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    assert_eq!(resp.echoed_header("X-After-Call").unwrap().as_deref(), Some("1"));
    assert_eq!(resp.echoed_header("X-From-Body").unwrap(), None);
    let seen = phases(&resp);
    assert!(at(&seen, "call(200") < at(&seen, "request_body("), "{seen:?}");
    assert!(seen.contains(&"read(content-type)=none".to_string()), "{seen:?}");
    assert!(!gw.envoy.log_lines("set_header(x-from-body) refused by the host: BadArgument (2)").is_empty());
}

/// The Higress Go plugin guide's warning: `StopIteration` on a request without a body would hold
/// it for good (no body hook could release it; Envoy answers 504 at the idle
/// timeout). The SDK sees the end of stream, lets the request go on and logs why.
#[test]
fn stop_iteration_on_a_request_without_body_goes_on_with_an_error() {
    let gw = probe(json!({"requestHeaders": {"return": "stopIteration"}}))
        .allow_on_headers_stop_iteration()
        .stream_idle_timeout("5s")
        .start();

    let resp = get(&gw, "/get", "si-nobody-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(phases(&resp), ["request_headers", "response_headers"]);
    assert_eq!(upstream_requests(&gw), 1);
    assert_eq!(
        gw.envoy
            .log_lines("StopIteration on a message without body and no call pending would hang it; it goes on")
            .len(),
        1
    );
}

// ----- HeaderStopAllIterationAndBuffer -----

/// `HeaderAction::StopAllIterationAndBuffer` is sent as 1, which Envoy runs as
/// `StopAllIterationAndWatermark`: a body past the buffer limit (4096 bytes,
/// limit 1024) is held with back-pressure, not answered 413, and reaches the
/// upstream whole once the callback resumes.
#[test]
fn stop_all_iteration_and_buffer_runs_as_watermark_past_the_buffer_limit() {
    let gw = probe(json!({
        "call": call("/delay/1", json!({})),
        "requestHeaders": {"return": "stopAllIterationAndBuffer", "call": true},
    }))
    .buffer_limit(1024)
    .start();

    let body = "a".repeat(4096);
    let resp = post(&gw, "/anything", &body, "sab-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), body);
    let seen = phases(&resp);
    assert!(at(&seen, "call(200") < at(&seen, "request_body("), "{seen:?}");
}

// ----- HeaderStopAllIterationAndWatermark -----

/// `HeaderAction::StopAllIterationAndWatermark` (what a call in the headers
/// phase needs): headers and body wait for the callback; the callback's header
/// edits reach the upstream, and the body hook runs after it, once, with the
/// whole body Envoy buffered meanwhile; the headers are gone by then.
#[test]
fn stop_all_iteration_holds_headers_and_body_until_the_callback_resumes() {
    let gw = probe(json!({
        "call": call("/delay/1", json!({"setRequestHeader": {"x-after-call": "1"}})),
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
        "requestBody": {"setRequestHeader": {"x-from-body": "1"}},
    }))
    .start();

    let resp = post(&gw, "/anything", "hello", "saw-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    assert_eq!(resp.echoed_header("X-After-Call").unwrap().as_deref(), Some("1"));
    assert_eq!(resp.echoed_header("X-From-Body").unwrap(), None);
    // The body hook ran once, after the callback, with the body Envoy buffered meanwhile.
    let seen = phases(&resp);
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[..2], ["request_headers", "call_sent"]);
    assert!(seen[2].starts_with("call(200,"), "{seen:?}");
    assert_eq!(seen[3..], ["request_body(5,end)", "response_headers"]);
    assert!(!gw.envoy.log_lines("set_header(x-from-body) refused by the host: BadArgument (2)").is_empty());
}

/// With `allow_on_headers_stop_iteration: true` the same 1 is a
/// `StopIteration`: Envoy calls the body hook while the call is pending. The
/// SDK keeps holding (it answers the body hook with `StopIterationAndBuffer`),
/// so the body hook can still edit the held headers, and the callback's resume
/// sends headers and the whole body.
///
/// Natively the flag does not exist and the hold stays a
/// `StopAllIterationAndWatermark`: the body hook runs after the callback, as
/// without the flag, when the headers are gone.
#[test]
fn stop_all_iteration_with_allow_flag_runs_the_body_hook_during_the_call() {
    let gw = probe(json!({
        "call": call("/delay/1", json!({"setRequestHeader": {"x-after-call": "1"}})),
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
        "requestBody": {"setRequestHeader": {"x-from-body": "1"}},
    }))
    .allow_on_headers_stop_iteration()
    .start();

    let resp = post(&gw, "/anything", "hello", "saw-allow-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    assert_eq!(resp.echoed_header("X-After-Call").unwrap().as_deref(), Some("1"));
    if native() {
        assert_eq!(resp.echoed_header("X-From-Body").unwrap(), None);
        let seen = phases(&resp);
        assert!(at(&seen, "call(200") < at(&seen, "request_body("), "{seen:?}");
        assert!(!gw.envoy.log_lines("set_header(x-from-body) refused by the host: BadArgument (2)").is_empty());
        return;
    }
    assert_eq!(resp.echoed_header("X-From-Body").unwrap().as_deref(), Some("1"));
    let seen = phases(&resp);
    assert!(at(&seen, "request_body(") < at(&seen, "call(200"), "{seen:?}");
}

/// ... and, because the SDK's hold is a data `StopIterationAndBuffer` there, a
/// body past the buffer limit is answered `413` while the call is pending:
/// with the flag, `StopAllIteration*` loses its watermark behaviour.
///
/// Natively (no flag) it keeps it: the body is held with back-pressure and
/// reaches the upstream whole once the callback resumes.
#[test]
fn stop_all_iteration_with_allow_flag_answers_413_past_the_buffer_limit() {
    let gw = probe(json!({
        "call": call("/delay/1", json!({})),
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
    }))
    .allow_on_headers_stop_iteration()
    .buffer_limit(1024)
    .start();

    let body = "a".repeat(4096);
    let resp = post(&gw, "/anything", &body, "saw-allow-413");
    if native() {
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(echoed_body(&resp), body);
        assert_eq!(upstream_requests(&gw), 1);
        return;
    }
    assert_eq!((resp.status, resp.text().as_str()), (413, "Payload Too Large"));
    assert_eq!(upstream_requests(&gw), 0);
}

/// A `StopAllIteration*` with no call pending could never be resumed: the SDK
/// logs an error and lets the request go on.
#[test]
fn stop_all_iteration_without_a_pending_call_goes_on() {
    let gw = probe(json!({"requestHeaders": {"return": "stopAllIterationAndWatermark"}})).start();

    let resp = post(&gw, "/anything", "hello", "saw-nocall-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    gw.envoy
        .wait_for_plugin_line(
            "[probe] [nil] [saw-nocall-1] StopAllIterationAndWatermark returned with no call pending: \
             nothing could resume the stream, so it goes on",
        )
        .unwrap();
}

/// A call that cannot be dispatched (unknown cluster) fails at once with
/// `BadArgument`; the SDK then lets the `StopAllIteration*` go on.
#[test]
fn stop_all_iteration_with_a_call_to_an_unknown_cluster_goes_on() {
    let gw = probe(json!({
        "call": {"cluster": "no-such-cluster", "path": "/get"},
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
    }))
    .start();

    let resp = get(&gw, "/get", "call-unknown-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        phases(&resp)[..2],
        ["request_headers", "call_failed(the host refused it (BadArgument: unknown cluster or bad headers))"]
    );
}

/// A call past its timeout calls back with Envoy's own answer: `:status` 504,
/// 3 headers, the 24 bytes `upstream request timeout`.
#[test]
fn a_call_past_its_timeout_calls_back_with_504() {
    let gw = probe(json!({
        "call": {"cluster": "probe-call", "path": "/delay/3", "timeoutMs": 200},
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
    }))
    .start();

    let resp = get(&gw, "/get", "call-timeout-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(phases(&resp)[..3], ["request_headers", "call_sent", "call(504,headers=3,body=24)"]);
}

/// The callback may answer instead of resuming: the request never goes upstream.
#[test]
fn stop_all_iteration_answered_from_the_callback() {
    let gw = probe(json!({
        "call": call("/status/200", json!({"respond": {"status": 401, "body": "call said no"}})),
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
    }))
    .start();

    let resp = post(&gw, "/anything", "hello", "saw-respond-1");
    assert_eq!((resp.status, resp.text().as_str()), (401, "call said no"));
    let seen = phases(&resp);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[..2], ["request_headers", "call_sent"]);
    assert!(seen[2].starts_with("call(200,"), "{seen:?}");
    assert_eq!(upstream_requests(&gw), 0);
}

/// A callback that neither resumes nor answers, with no other call pending:
/// the SDK resumes the request itself, with a warning, rather than leave it held.
#[test]
fn a_callback_that_neither_resumes_nor_answers_is_resumed_by_the_sdk() {
    let gw = probe(json!({
        "call": call("/status/200", json!({"resume": false})),
        "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
    }))
    .start();

    let resp = get(&gw, "/get", "no-resume-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    gw.envoy
        .wait_for_plugin_line(
            "[probe] [nil] [no-resume-1] callback neither resumed nor answered the request, \
             and no call is pending: resuming",
        )
        .unwrap();
}

/// The same hold on the response: the upstream's answer waits for the
/// callback, whose response header edits the client sees.
#[test]
fn stop_all_iteration_on_response_headers_holds_the_response_until_the_callback() {
    let gw = probe(json!({
        "call": call("/delay/1", json!({"setResponseHeader": {"x-after-call": "1"}})),
        "responseHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
    }))
    .start();

    let resp = get(&gw, "/get", "saw-resp-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-after-call"), Some("1"));
    let logged = logged_phases(&gw, "saw-resp-1");
    assert!(at(&logged, "call(200") < at(&logged, "response_body("), "{logged:?}");
}

// ----- local answers -----

/// `Request::respond` in the request headers hook: the client gets the
/// answer, the upstream is never called, and the answer does not pass the
/// probe's own response hooks (the SDK skips them).
#[test]
fn respond_in_request_headers() {
    let gw = probe(json!({"requestHeaders": {"respond": {"status": 403, "body": "denied", "headers": {"x-a": "1"}}}}))
        .start();

    let resp = post(&gw, "/anything", "hello", "respond-rh-1");
    assert_eq!((resp.status, resp.text().as_str()), (403, "denied"));
    assert_eq!(resp.header("x-a"), Some("1"));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(phases(&resp), ["request_headers"]);
    assert_eq!(logged_phases(&gw, "respond-rh-1"), ["request_headers"]);
    assert_eq!(upstream_requests(&gw), 0);
}

/// What the SDK avoids, shown behind its back: a local answer sent from the
/// headers hook that then returns `Continue` (0) works the same on Envoy 1.40:
/// the upstream is not called. The answer passes the plugin's own response
/// hooks, which set `x-probe-phases` again.
///
/// Natively Envoy skips the module's response hooks for the module's own local
/// answer, so `x-probe-phases` stays the one the answer carried.
#[test]
fn raw_local_answer_then_continue_in_request_headers() {
    let gw = probe(json!({"requestHeaders": {"return": "continue", "rawRespond": {"status": 403, "body": "denied"}}}))
        .start();

    let resp = post(&gw, "/anything", "hello", "raw-respond-1");
    assert_eq!((resp.status, resp.text().as_str()), (403, "denied"));
    if native() {
        assert_eq!(phases(&resp), ["request_headers"]);
        assert!(logged_phases(&gw, "raw-respond-1").contains(&"raw_respond(403)=Ok".to_string()));
    } else {
        assert_eq!(phases(&resp), ["request_headers", "raw_respond(403)=Ok", "response_headers"]);
    }
    assert_eq!(upstream_requests(&gw), 0);
}

/// `Request::respond` in the request body hook, the headers long gone
/// upstream: the client gets the answer and the upstream request is dropped.
#[test]
fn respond_in_request_body() {
    let gw = probe(json!({"requestBody": {"return": "bufferUntilEnd", "respond": {"status": 413, "body": "too big"}}}))
        .start();

    let resp = post(&gw, "/anything", "hello", "respond-rb-1");
    assert_eq!((resp.status, resp.text().as_str()), (413, "too big"));
    let seen = phases(&resp);
    assert!(seen.last().is_some_and(|p| p == "request_body(5,end)"), "{seen:?}");
}

/// `Request::respond` in the response headers hook replaces the upstream's answer.
#[test]
fn respond_in_response_headers_replaces_the_upstream_answer() {
    let gw = probe(json!({"responseHeaders": {"respond": {"status": 502, "body": "replaced"}}})).start();

    let resp = get(&gw, "/get", "respond-resph-1");
    assert_eq!((resp.status, resp.text().as_str()), (502, "replaced"));
    assert_eq!(phases(&resp), ["request_headers", "response_headers"]);
    assert_eq!(upstream_requests(&gw), 1);
}

/// `Request::respond` in the response body hook once the response headers
/// went out cannot replace them: Envoy resets the stream, and the client has
/// the upstream's `200` head and a body cut short.
#[test]
fn respond_in_response_body_after_the_headers_went_out_resets_the_stream() {
    let gw =
        probe(json!({"responseBody": {"return": "bufferUntilEnd", "respond": {"status": 502, "body": "replaced"}}}))
            .start();

    let resp = raw_get(&gw, "/get");
    assert_eq!(resp.status, 200);
    let length: usize = resp.header("content-length").unwrap().parse().unwrap();
    assert!(resp.body.len() < length, "{} of {length} bytes", resp.body.len());
}

/// With the response headers held (`StopIteration` and the flag), the
/// response body hook's answer replaces the upstream's.
#[test]
fn respond_in_response_body_with_the_headers_held_replaces_the_upstream_answer() {
    let gw = probe(json!({
        "responseHeaders": {"return": "stopIteration"},
        "responseBody": {"return": "bufferUntilEnd", "respond": {"status": 502, "body": "replaced"}},
    }))
    .allow_on_headers_stop_iteration()
    .start();

    let resp = get(&gw, "/get", "respond-respb-held-1");
    assert_eq!((resp.status, resp.text().as_str()), (502, "replaced"));
    let seen = phases(&resp);
    assert!(seen.last().is_some_and(|p| p.starts_with("response_body(") && p.ends_with(",end)")), "{seen:?}");
}

// ----- DataContinue / DataStopIterationAndBuffer -----

/// `DataAction::StopIterationAndBuffer` until the last chunk, then `Continue`:
/// the hook sees the whole body and its edits (prepend, append) reach the
/// upstream, *when the `content-length` is out of the way*: here the headers
/// hook removes it, so Envoy sends the body chunked.
#[test]
fn buffered_request_body_edits_reach_the_upstream_without_content_length() {
    let gw = probe(json!({
        "requestHeaders": {"removeRequestHeader": ["content-length"]},
        "requestBody": {"return": "bufferUntilEnd", "prependBody": "head+", "appendBody": "+tail"},
    }))
    .start();

    let resp = post(&gw, "/anything", "hello", "buf-edit-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "head+hello+tail");
    assert_eq!(resp.echoed_header("Transfer-Encoding").unwrap().as_deref(), Some("chunked"));
    assert_eq!(resp.echoed_header("Content-Length").unwrap(), None);
    assert!(phases(&resp).contains(&"request_body(5,end)".to_string()), "{:?}", phases(&resp));
}

/// With the headers held (`StopIteration` and the flag) the body hook can set
/// the `content-length` the edited body needs: Envoy does not update it.
#[test]
fn buffered_request_body_edits_with_held_headers_and_a_fixed_content_length() {
    let gw = probe(json!({
        "requestHeaders": {"return": "stopIteration"},
        "requestBody": {"return": "bufferUntilEnd", "setBody": "replaced body", "fixContentLength": true},
    }))
    .allow_on_headers_stop_iteration()
    .start();

    let resp = post(&gw, "/anything", "hello", "buf-fix-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "replaced body");
    assert_eq!(resp.echoed_header("Content-Length").unwrap().as_deref(), Some("13"));
}

/// The trap: headers passed on with `content-length: 5`, the body replaced by
/// 13 bytes. Envoy does not fix the length and the body hook cannot (the
/// headers are gone: `BadArgument`), so the upstream reads 5 bytes and the
/// other 8 stay on its connection (where the next request would read them).
#[test]
fn buffered_request_body_edits_after_the_headers_left_are_cut_to_the_old_length() {
    let gw = probe(
        json!({"requestBody": {"return": "bufferUntilEnd", "setBody": "replaced body", "fixContentLength": true}}),
    )
    .start();

    let resp = post(&gw, "/anything", "hello", "buf-late-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "repla");
    assert_eq!(resp.echoed_header("Content-Length").unwrap().as_deref(), Some("5"));
    assert!(!gw.envoy.log_lines("set_header(content-length) refused by the host: BadArgument (2)").is_empty());
}

/// `BodyMode::Buffered`: the SDK returns `StopIterationAndBuffer` by itself
/// and calls each body hook once, with the whole body.
#[test]
fn body_mode_buffered_calls_each_body_hook_once_with_the_whole_body() {
    let gw = probe(json!({
        "requestHeaders": {"removeRequestHeader": ["content-length"]},
        "requestBody": {"appendBody": "+tail"},
    }))
    .buffered()
    .start();

    let resp = post(&gw, "/anything", "hello", "mode-buffered-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello+tail");
    let logged = logged_phases(&gw, "mode-buffered-1");
    let bodies: Vec<&String> = logged.iter().filter(|p| p.contains("_body(")).collect();
    assert_eq!(bodies.len(), 2, "{logged:?}");
    assert_eq!(bodies[0], "request_body(5,end)");
    assert!(bodies[1].starts_with("response_body(") && bodies[1].ends_with(",end)"), "{logged:?}");
}

/// Buffering past the buffer limit: Envoy answers the request `413 Payload
/// Too Large` (the headers had gone upstream already; that request is dropped).
#[test]
fn buffered_request_body_past_the_buffer_limit_is_answered_413() {
    let gw = probe(json!({})).buffered().buffer_limit(1024).start();

    let resp = post(&gw, "/anything", &"a".repeat(4096), "limit-req-1");
    assert_eq!((resp.status, resp.text().as_str()), (413, "Payload Too Large"));
    // Envoy's answer passes the probe's response hooks (the SDK did not send it).
    assert_eq!(phases(&resp), ["request_headers", "response_headers"]);
}

/// Buffering a response past the buffer limit: with the response headers held
/// Envoy answers `500 Internal Server Error`; with them gone it can only
/// reset the stream (the client has a `200` head and no body).
#[test]
fn buffered_response_body_past_the_buffer_limit() {
    let held =
        probe(json!({"responseHeaders": {"return": "stopIteration"}, "responseBody": {"return": "bufferUntilEnd"}}))
            .allow_on_headers_stop_iteration()
            .buffer_limit(1024)
            .start();
    let resp = get(&held, "/bytes/4096", "limit-resp-held-1");
    assert_eq!((resp.status, resp.text().as_str()), (500, "Internal Server Error"));
    drop(held);

    // A text body: the SDK does not buffer binary ones (`Plugin::SKIP_BINARY_BODIES`).
    let gone = probe(json!({})).buffered().buffer_limit(1024).start();
    let resp = raw_get(&gone, "/encoding/utf8");
    assert_eq!(resp.status, 200);
    let length: usize = resp.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    assert!(length > 1024, "{length}");
    assert!(resp.body.len() < length, "{} of {length} bytes", resp.body.len());
}

/// Response body edits, the same way: with `content-length` removed in the
/// response headers hook the client gets the edited body, chunked; with the
/// headers held and the length fixed, it gets the new length.
#[test]
fn buffered_response_body_edits() {
    let chunked = probe(json!({
        "responseHeaders": {"removeResponseHeader": ["content-length"]},
        "responseBody": {"return": "bufferUntilEnd", "prependBody": "<<", "appendBody": ">>"},
    }))
    .start();
    let resp = get(&chunked, "/get", "resp-edit-1");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    let text = resp.text();
    assert!(text.starts_with("<<{") && text.ends_with("}\n>>"), "{text}");
    drop(chunked);

    let fixed = probe(json!({
        "responseHeaders": {"return": "stopIteration"},
        "responseBody": {"return": "bufferUntilEnd", "prependBody": "<<", "appendBody": ">>", "fixContentLength": true},
    }))
    .allow_on_headers_stop_iteration()
    .start();
    let resp = get(&fixed, "/get", "resp-edit-2");
    assert_eq!(resp.status, 200);
    let text = resp.text();
    assert!(text.starts_with("<<{") && text.ends_with("}\n>>"), "{text}");
    assert_eq!(resp.header("content-length"), Some(text.len().to_string().as_str()));
}

// ----- DataStopIterationAndWatermark / DataStopIterationNoBuffer -----

/// `DataAction::StopIterationAndWatermark` until the last chunk: Envoy holds
/// the chunks, but unlike `StopIterationAndBuffer` the next call of the hook
/// sees only the new chunk (here the empty last one of a chunked request),
/// and what was held goes on before it.
#[test]
fn watermark_holds_chunks_without_showing_them_again() {
    let gw = probe(json!({
        "requestHeaders": {"removeRequestHeader": ["content-length"]},
        "requestBody": {"return": "watermarkUntilEnd", "prependBody": "head+", "appendBody": "+tail"},
    }))
    .start();
    let resp = post(&gw, "/anything", "hello", "wm-edit-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Natively the hook's body is everything Envoy holds, as with `StopIterationAndBuffer`.
    let (expected, last) = if native() { ("head+hello+tail", 5) } else { ("hellohead++tail", 0) };
    assert_eq!(echoed_body(&resp), expected);
    let chunks = ["request_body(5,more)".to_string(), format!("request_body({last},end)")];
    assert_eq!(phases(&resp)[1..3], chunks, "{:?}", phases(&resp));
}

/// Past the buffer limit, `StopIterationAndWatermark` is not answered 413 as
/// `StopIterationAndBuffer` is: Envoy holds the stream with back-pressure and
/// the body still reaches the hook whole.
#[test]
fn watermark_request_body_past_the_buffer_limit_is_not_refused() {
    let gw = probe(json!({
        "requestHeaders": {"removeRequestHeader": ["content-length"]},
        "requestBody": {"return": "watermarkUntilEnd", "appendBody": "+tail"},
    }))
    .buffer_limit(1024)
    .start();
    let resp = post(&gw, "/anything", &"a".repeat(4096), "wm-limit-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), format!("{}+tail", "a".repeat(4096)));
}

/// `DataAction::StopIterationNoBuffer`: the plugin takes the chunk, so the
/// upstream gets no body; on the last chunk the SDK sends it emptied with
/// `Continue` (nothing else would end the stream on upstream Envoy).
#[test]
fn no_buffer_takes_the_request_body() {
    let gw = probe(json!({
        "requestHeaders": {"removeRequestHeader": ["content-length"]},
        "requestBody": {"return": "stopIterationNoBuffer"},
    }))
    .start();
    let resp = post(&gw, "/anything", "hello", "nobuf-req-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "");
    assert_eq!(phases(&resp)[1..3], ["request_body(5,more)", "request_body(0,end)"], "{:?}", phases(&resp));
}

/// The same for the response: the client gets the head and no body.
#[test]
fn no_buffer_takes_the_response_body() {
    let gw = probe(json!({
        "responseHeaders": {"removeResponseHeader": ["content-length"]},
        "responseBody": {"return": "stopIterationNoBuffer"},
    }))
    .start();
    let resp = get(&gw, "/get", "nobuf-resp-1");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "");
    let logged = logged_phases(&gw, "nobuf-resp-1");
    assert!(logged.iter().any(|p| p.starts_with("response_body(") && p.ends_with(",end)")), "{logged:?}");
}

/// A call dispatched from a *body* hook that returns `StopIterationAndBuffer`:
/// the SDK records the body hold, so the callback's `Request::resume` lets the
/// request (headers and the buffered body) go on.
#[test]
fn a_call_from_the_body_hook_is_resumed_by_its_callback() {
    let gw = probe(json!({
        "call": call("/status/200", json!({})),
        "requestBody": {"return": "stopIterationAndBuffer", "call": true},
    }))
    .stream_idle_timeout("5s")
    .start();

    let resp = post(&gw, "/anything", "hello", "body-call-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    let logged = logged_phases(&gw, "body-call-1");
    assert!(logged.iter().any(|p| p.starts_with("call(200")), "{logged:?}");
    assert_eq!(upstream_requests(&gw), 1);
}

// ----- proxy_continue_stream on a stream that is not paused -----

/// What `Request::resume` guards against, shown behind the SDK's back: the
/// bare continue answers `Ok` whatever the stream's state. From the body
/// hooks it changes nothing...
#[test]
fn continue_in_body_hooks_when_not_paused_answers_ok() {
    let gw = probe(json!({
        "requestBody": {"rawContinue": "request"},
        "responseBody": {"rawContinue": "response"},
    }))
    .start();

    let resp = post(&gw, "/anything", "hello", "raw-continue-1");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(echoed_body(&resp), "hello");
    assert!(phases(&resp).contains(&"raw_continue(request)=Ok".to_string()), "{:?}", phases(&resp));
    let logged = logged_phases(&gw, "raw-continue-1");
    assert!(logged.contains(&"raw_continue(response)=Ok".to_string()), "{logged:?}");
    assert_eq!(upstream_requests(&gw), 1);
}

/// ... but continuing the response from its own headers hook (which then
/// returns `Continue`) sends the response head to the client twice ...
#[test]
fn continue_response_in_response_headers_sends_the_head_twice() {
    let gw = probe(json!({"responseHeaders": {"rawContinue": "response"}})).start();

    let resp = raw_get(&gw, "/get");
    assert_eq!(resp.status, 200);
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
}

/// ... but continuing the request from its own headers hook (which then
/// returns `Continue`) sends it upstream twice ...
#[test]
fn continue_request_in_request_headers_sends_it_upstream_twice() {
    let gw = probe(json!({"requestHeaders": {"rawContinue": "request"}})).start();

    let resp = get(&gw, "/get", "raw-continue-2");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(phases(&resp)[..2], ["request_headers", "raw_continue(request)=Ok"]);
    assert_eq!(upstream_requests(&gw), 2);
}

/// ... and continuing the response before there is one crashes Envoy 1.40
/// (segmentation fault): never resume a direction that is not held.
#[test]
fn continue_response_in_request_headers_crashes_envoy() {
    let gw = probe(json!({"requestHeaders": {"rawContinue": "response"}})).start();

    let sent = http::get(&gw.url("/get")).send();
    assert!(sent.is_err(), "Envoy answered: {:?}", sent.map(|r| r.status));
    gw.envoy.wait_for_log("Caught Segmentation fault").unwrap();
}
