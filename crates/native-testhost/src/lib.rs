//! # gateway-native-testhost
//!
//! A test double of Envoy's dynamic module host, for fast unit tests of a
//! plugin's native build (the `.so` that `cargo xtask build` makes with the
//! SDK's `native` feature), in the spirit of `crates/testhost`, which runs
//! the `.wasm` builds.
//!
//! The plugin is linked in as an rlib built with the `native` feature: its
//! `envoy_dynamic_module_on_*` hooks are plain functions of the test binary,
//! and the `envoy_dynamic_module_callback_*` functions it calls are defined
//! here (the `callbacks` module), on a stream the test describes. So a
//! request goes through the very code Envoy would run, without Envoy:
//!
//! ```
//! use gateway_native_testhost::{NativeHost, Request, Response};
//! use mock as _; // the plugin under test (one per test binary)
//!
//! let host = NativeHost::new("mock", r#"{"mockEnable": true}"#).unwrap();
//! let outcome = host.run(Request::get("/"));
//! assert_eq!(outcome.response.status, 200);
//! assert!(outcome.answered_by_plugin);
//! ```
//!
//! What Envoy does is modelled for one stream at a time: the request headers
//! hook, the request body (one chunk, if any) as the hook's status allows,
//! the upstream's answer (the request's [`Request::upstream`]), the response
//! hooks, then stream completion. A hook that holds its direction holds it
//! until the plugin resumes it; meanwhile the HTTP calls it started are
//! answered in order with the request's [`Request::callout_answer`]s (a call
//! with no answer left is reset, which the SDK reads as a 502). A hold that
//! nothing resumes ends the run with [`Outcome::stalled`]. A local answer
//! (`http_send_response`) ends the stream: the module's response hooks are
//! not run for it, as Envoy skips them. Trailers are not modelled.
//!
//! One plugin per test binary: each plugin defines the module's
//! `envoy_dynamic_module_on_program_init`. The crate is its own workspace
//! (see its `Cargo.toml`) so that the `native` feature stays out of the main
//! workspace's builds.

mod callbacks;
mod stream;

use std::cell::RefCell;
use std::ffi::c_void;
use stream::{Direction, Stream};

pub use stream::Callout;

/// The module's hooks, as the plugin's rlib defines them.
mod hooks {
    use super::callbacks::{Buffer, Header};
    use std::ffi::{c_char, c_void};

    extern "C" {
        pub fn envoy_dynamic_module_on_program_init() -> *const c_char;
        pub fn envoy_dynamic_module_on_http_filter_config_new(
            config_envoy: *mut c_void,
            name: Buffer,
            config: Buffer,
        ) -> *const c_void;
        pub fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void);
        pub fn envoy_dynamic_module_on_http_filter_new(config: *const c_void, envoy: *mut c_void) -> *const c_void;
        pub fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void);
        pub fn envoy_dynamic_module_on_http_filter_request_headers(
            envoy: *mut c_void,
            filter: *const c_void,
            end_of_stream: bool,
        ) -> u32;
        pub fn envoy_dynamic_module_on_http_filter_request_body(
            envoy: *mut c_void,
            filter: *const c_void,
            end_of_stream: bool,
        ) -> u32;
        pub fn envoy_dynamic_module_on_http_filter_response_headers(
            envoy: *mut c_void,
            filter: *const c_void,
            end_of_stream: bool,
        ) -> u32;
        pub fn envoy_dynamic_module_on_http_filter_response_body(
            envoy: *mut c_void,
            filter: *const c_void,
            end_of_stream: bool,
        ) -> u32;
        pub fn envoy_dynamic_module_on_http_filter_stream_complete(envoy: *mut c_void, filter: *const c_void);
        pub fn envoy_dynamic_module_on_http_filter_http_callout_done(
            envoy: *mut c_void,
            filter: *const c_void,
            callout_id: u64,
            result: u32,
            headers: *const Header,
            headers_size: usize,
            body_chunks: *const Buffer,
            body_chunks_size: usize,
        );
    }
}

/// Header statuses (`envoy_dynamic_module_type_on_http_filter_request_headers_status`).
const HEADERS_CONTINUE: u32 = 0;
const HEADERS_STOP_ITERATION: u32 = 1;
/// Body statuses.
const BODY_CONTINUE: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_result`.
const CALLOUT_SUCCESS: u32 = 0;
const CALLOUT_RESET: u32 = 1;

/// The ABI version the host expects `on_program_init` to return.
pub const ABI_VERSION: &str = "v0.2.0";

/// A response: from the upstream, to an HTTP call, or what the client got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Names lowercased, in order; `:status` is not among them.
    pub headers: Vec<(String, String)>,
    /// The body, whole.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The first value of a header.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Headers as the module sees them: `:status` first.
    fn wire_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut headers = vec![(b":status".to_vec(), self.status.to_string().into_bytes())];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())));
        headers
    }

    fn from_wire(status: u32, headers: &[(Vec<u8>, Vec<u8>)], body: Vec<u8>) -> Response {
        Response {
            status: u16::try_from(status).unwrap_or(0),
            headers: headers
                .iter()
                .filter(|(k, _)| !k.starts_with(b":"))
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            body,
        }
    }
}

/// A request a client sends through the plugin, with what the rest of the
/// world answers: the upstream, and the plugin's HTTP calls.
#[derive(Clone, Debug)]
pub struct Request {
    /// `:method`.
    pub method: String,
    /// `:path`, query included.
    pub path: String,
    /// `:authority` [default: `gateway`].
    pub authority: String,
    /// The other request headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, sent as one chunk (none when empty).
    pub body: Vec<u8>,
    /// The route's name (`xds.route_name`: what `_match_route_` rules match).
    pub route: Option<String>,
    /// The route's cluster (`xds.cluster_name`).
    pub cluster: Option<String>,
    /// What the upstream answers [default: 200, `upstream` as the body].
    pub upstream: Response,
    /// The answers to the plugin's HTTP calls, in the order they are made.
    pub callout_answers: Vec<Response>,
    /// The clusters HTTP calls may name [default: every name].
    pub clusters: Option<Vec<String>>,
}

impl Request {
    /// `GET path` to host `gateway`.
    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    /// `method path` to host `gateway`.
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            authority: "gateway".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            route: None,
            cluster: None,
            upstream: Response::new(200).body("upstream"),
            callout_answers: Vec::new(),
            clusters: None,
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the request body (sent as one chunk).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Names the route (and so the rules that apply).
    pub fn route(mut self, name: &str) -> Request {
        self.route = Some(name.to_string());
        self
    }

    /// What the upstream answers.
    pub fn upstream(mut self, response: Response) -> Request {
        self.upstream = response;
        self
    }

    /// Queues the answer to the next HTTP call the plugin makes.
    pub fn callout_answer(mut self, response: Response) -> Request {
        self.callout_answers.push(response);
        self
    }

    /// Only these clusters exist for HTTP calls (any other: `ClusterNotFound`).
    pub fn clusters(mut self, clusters: &[&str]) -> Request {
        self.clusters = Some(clusters.iter().map(|c| c.to_string()).collect());
        self
    }
}

/// What reached the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// Request headers, pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: Vec<(String, String)>,
    /// The body that went on.
    pub body: Vec<u8>,
}

impl Forwarded {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What one request came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What the client got.
    pub response: Response,
    /// The plugin answered itself (`http_send_response`).
    pub answered_by_plugin: bool,
    /// The response code details of a local answer.
    pub details: Option<String>,
    /// What reached the upstream (`None` when the plugin answered first).
    pub upstream_request: Option<Forwarded>,
    /// The HTTP calls the plugin made, in order.
    pub callouts: Vec<Callout>,
    /// The module's log lines: (level, message), level `0` trace ... `5` critical.
    pub logs: Vec<(u32, String)>,
    /// Why the stream stopped short: a hold nothing resumed.
    pub stalled: Option<String>,
}

impl Outcome {
    /// Whether a log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|(_, line)| line.contains(needle))
    }
}

/// A plugin's configuration, made by its module as Envoy makes it.
pub struct NativeHost {
    config: *const c_void,
}

impl NativeHost {
    /// Initialises the module (once per test binary; it must name
    /// [`ABI_VERSION`]) and makes a filter config from `config` (JSON text).
    /// An error when the module refuses the config, with what it logged.
    pub fn new(filter_name: &str, config: &str) -> Result<NativeHost, String> {
        static INIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let abi = INIT.get_or_init(|| {
            let test_hook = std::panic::take_hook();
            // SAFETY: the plugin's hook takes no arguments and returns a NUL-terminated string.
            let version = unsafe { hooks::envoy_dynamic_module_on_program_init() };
            // The module's panic hook logs a panic as it would in Envoy; the
            // test's own still reports it (a failed assert included).
            let module_hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                module_hook(info);
                test_hook(info);
            }));
            if version.is_null() {
                return String::new();
            }
            // SAFETY: not null, NUL-terminated, static in the module.
            unsafe { std::ffi::CStr::from_ptr(version) }.to_string_lossy().into_owned()
        });
        if abi != ABI_VERSION {
            return Err(format!("the module was built for ABI {abi:?}, not {ABI_VERSION}"));
        }
        let before = take_logs();
        // Envoy's config object: nothing the SDK dereferences; any non-null pointer.
        let mut envoy_config = 0u8;
        // SAFETY: both buffers live for the call; the module copies them.
        let made = unsafe {
            hooks::envoy_dynamic_module_on_http_filter_config_new(
                (&mut envoy_config as *mut u8).cast(),
                callbacks::Buffer::of(filter_name.as_bytes()),
                callbacks::Buffer::of(config.as_bytes()),
            )
        };
        let logged = take_logs();
        restore_logs(before);
        if made.is_null() {
            let lines: Vec<&str> = logged.iter().map(|(_, line)| line.as_str()).collect();
            return Err(format!("the module refused the config: {}", lines.join(" | ")));
        }
        Ok(NativeHost { config: made })
    }

    /// Runs one request through a new filter of this config.
    pub fn run(&self, request: Request) -> Outcome {
        Exchange::new(self.config, request).run()
    }
}

impl Drop for NativeHost {
    fn drop(&mut self) {
        // SAFETY: the pointer the module made in `new`, destroyed once.
        unsafe { hooks::envoy_dynamic_module_on_http_filter_config_destroy(self.config) }
    }
}

fn take_logs() -> Vec<(u32, String)> {
    callbacks::LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))
}

fn restore_logs(lines: Vec<(u32, String)>) {
    callbacks::LOG.with(|log| *log.borrow_mut() = lines);
}

/// One stream being driven through the module.
struct Exchange {
    /// Boxed: the module keeps its address as Envoy's filter pointer.
    stream: Box<RefCell<Stream>>,
    filter: *const c_void,
    request: Request,
    callout_answers: std::collections::VecDeque<Response>,
    forwarded: Option<Forwarded>,
}

/// How a direction stands after a hook.
enum Flow {
    /// Goes on to the next step.
    Go,
    /// A local answer ended the stream.
    Answered,
    /// Held, and nothing resumed it.
    Stalled(String),
}

impl Exchange {
    fn new(config: *const c_void, request: Request) -> Exchange {
        let mut stream = Stream::default();
        let mut headers = vec![
            (b":method".to_vec(), request.method.as_bytes().to_vec()),
            (b":path".to_vec(), request.path.as_bytes().to_vec()),
            (b":authority".to_vec(), request.authority.as_bytes().to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
        ];
        headers.extend(request.headers.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())));
        stream.request.headers = headers;
        stream.set_request_attributes(&request.path, request.route.as_deref(), request.cluster.as_deref());
        stream.clusters = request.clusters.clone();
        let stream = Box::new(RefCell::new(stream));
        let envoy = Exchange::envoy_ptr(&stream);
        // SAFETY: the config pointer the module made; the stream outlives the filter.
        let filter = unsafe { hooks::envoy_dynamic_module_on_http_filter_new(config, envoy) };
        let callout_answers = request.callout_answers.iter().cloned().collect();
        Exchange { stream, filter, request, callout_answers, forwarded: None }
    }

    fn envoy_ptr(stream: &RefCell<Stream>) -> *mut c_void {
        (stream as *const RefCell<Stream>).cast_mut().cast()
    }

    fn envoy(&self) -> *mut c_void {
        Exchange::envoy_ptr(&self.stream)
    }

    fn run(mut self) -> Outcome {
        let logs_before = take_logs();
        let mut stalled = None;
        if self.filter.is_null() {
            stalled = Some("the module made no filter".to_string());
        } else {
            match self.direction(Direction::Request) {
                Flow::Go => {
                    let upstream = self.request.upstream.clone();
                    {
                        let mut stream = self.stream.borrow_mut();
                        stream.response_code = Some(u64::from(upstream.status));
                        stream.response.headers = upstream.wire_headers();
                    }
                    match self.direction(Direction::Response) {
                        Flow::Stalled(why) => stalled = Some(why),
                        Flow::Go | Flow::Answered => {}
                    }
                }
                Flow::Answered => {}
                Flow::Stalled(why) => stalled = Some(why),
            }
            // SAFETY: the filter the module made for this stream.
            unsafe { hooks::envoy_dynamic_module_on_http_filter_stream_complete(self.envoy(), self.filter) };
            // SAFETY: as above; not used after.
            unsafe { hooks::envoy_dynamic_module_on_http_filter_destroy(self.filter) };
        }
        let logs = take_logs();
        restore_logs(logs_before);
        let stream = self.stream.borrow();
        let (response, answered_by_plugin, details) = match &stream.local {
            Some(local) => {
                (Response::from_wire(local.status, &local.headers, local.body.clone()), true, local.details.clone())
            }
            None => {
                let status = stream.response_code.and_then(|c| u32::try_from(c).ok()).unwrap_or(0);
                let body = stream.response.buffered.clone().unwrap_or_default();
                (Response::from_wire(status, &stream.response.headers, body), false, None)
            }
        };
        Outcome {
            response,
            answered_by_plugin,
            details,
            upstream_request: self.forwarded.clone(),
            callouts: stream.callouts.clone(),
            logs,
            stalled,
        }
    }

    fn answered(&self) -> bool {
        self.stream.borrow().local.is_some()
    }

    /// Runs a direction's headers and body through the module: what Envoy's
    /// filter manager does with the statuses the hooks return.
    fn direction(&mut self, direction: Direction) -> Flow {
        let body = match direction {
            Direction::Request => self.request.body.clone(),
            Direction::Response => self.request.upstream.body.clone(),
        };
        let end = body.is_empty();
        let status = self.headers_hook(direction, end);
        if self.answered() {
            return Flow::Answered;
        }
        if status != HEADERS_CONTINUE {
            let lets_body_through = status == HEADERS_STOP_ITERATION;
            if !end && lets_body_through {
                // The body hook runs while the headers are held; its Continue lets both go.
                let status = self.body_hook(direction, body, false);
                if self.answered() {
                    return Flow::Answered;
                }
                if status == BODY_CONTINUE {
                    self.stream.borrow_mut().side_mut(direction).resumed = true;
                }
            } else if !end {
                // Held with the body: Envoy buffers it and delivers it once resumed.
                self.stream.borrow_mut().side_mut(direction).buffered = Some(body);
                return match self.wait(direction) {
                    Flow::Go => self.deliver_buffered(direction),
                    other => other,
                };
            }
            match self.wait(direction) {
                Flow::Go => {}
                other => return other,
            }
        } else if !end {
            let status = self.body_hook(direction, body, false);
            if self.answered() {
                return Flow::Answered;
            }
            if status != BODY_CONTINUE {
                match self.wait(direction) {
                    Flow::Go => {}
                    other => return other,
                }
            }
        }
        self.pass_on(direction);
        Flow::Go
    }

    /// After a hold with the body buffered: the body hook gets it (as the
    /// buffered body), then it goes on unless held again.
    fn deliver_buffered(&mut self, direction: Direction) -> Flow {
        let body = self.stream.borrow_mut().side_mut(direction).buffered.take().unwrap_or_default();
        self.stream.borrow_mut().side_mut(direction).received_is_buffered = true;
        let status = self.body_hook(direction, body, true);
        self.stream.borrow_mut().side_mut(direction).received_is_buffered = false;
        if self.answered() {
            return Flow::Answered;
        }
        if status != BODY_CONTINUE {
            if let Flow::Stalled(why) = self.wait(direction) {
                return Flow::Stalled(why);
            }
            if self.answered() {
                return Flow::Answered;
            }
        }
        self.pass_on(direction);
        Flow::Go
    }

    /// What goes on from the filter: the request to the upstream, the response to the client.
    fn pass_on(&mut self, direction: Direction) {
        let mut stream = self.stream.borrow_mut();
        let side = stream.side_mut(direction);
        let body = side.buffered.take().unwrap_or_default();
        match direction {
            Direction::Request => {
                let headers = side
                    .headers
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
                    .collect();
                self.forwarded = Some(Forwarded { headers, body });
            }
            // Kept as the response's body, for the outcome.
            Direction::Response => side.buffered = Some(body),
        }
    }

    fn headers_hook(&mut self, direction: Direction, end_of_stream: bool) -> u32 {
        let envoy = self.envoy();
        // SAFETY: the filter the module made for this stream; no borrow of it is held.
        unsafe {
            match direction {
                Direction::Request => {
                    hooks::envoy_dynamic_module_on_http_filter_request_headers(envoy, self.filter, end_of_stream)
                }
                Direction::Response => {
                    hooks::envoy_dynamic_module_on_http_filter_response_headers(envoy, self.filter, end_of_stream)
                }
            }
        }
    }

    /// The body hook with `chunk` received (the last one); what it does not
    /// buffer goes on, appended to what was buffered before.
    fn body_hook(&mut self, direction: Direction, chunk: Vec<u8>, chunk_is_buffered: bool) -> u32 {
        {
            let mut stream = self.stream.borrow_mut();
            let side = stream.side_mut(direction);
            if chunk_is_buffered {
                side.buffered = Some(chunk.clone());
            }
            side.received = Some(chunk);
        }
        let envoy = self.envoy();
        // SAFETY: as in `headers_hook`.
        let status = unsafe {
            match direction {
                Direction::Request => hooks::envoy_dynamic_module_on_http_filter_request_body(envoy, self.filter, true),
                Direction::Response => {
                    hooks::envoy_dynamic_module_on_http_filter_response_body(envoy, self.filter, true)
                }
            }
        };
        let mut stream = self.stream.borrow_mut();
        let side = stream.side_mut(direction);
        let received = side.received.take().unwrap_or_default();
        if !chunk_is_buffered {
            // Continue or buffer: either way the chunk joins what the filter holds or lets go.
            side.buffered.get_or_insert_with(Vec::new).extend_from_slice(&received);
        }
        status
    }

    /// A held direction waits: the plugin's HTTP calls are answered one by
    /// one until a resume (or a local answer); a hold nothing ends stalls.
    fn wait(&mut self, direction: Direction) -> Flow {
        loop {
            if self.answered() {
                return Flow::Answered;
            }
            if std::mem::take(&mut self.stream.borrow_mut().side_mut(direction).resumed) {
                return Flow::Go;
            }
            let next = self.stream.borrow_mut().pending.pop_front();
            let Some(id) = next else {
                let what = match direction {
                    Direction::Request => "request",
                    Direction::Response => "response",
                };
                return Flow::Stalled(format!("the {what} was held and never resumed"));
            };
            self.answer_callout(id);
        }
    }

    /// Calls the module back with the next queued answer, or a reset when none is left.
    fn answer_callout(&mut self, id: u64) {
        let answer = self.callout_answers.pop_front();
        let headers: Vec<(Vec<u8>, Vec<u8>)> = answer.as_ref().map(Response::wire_headers).unwrap_or_default();
        let body = answer.map(|a| a.body).unwrap_or_default();
        let wire: Vec<callbacks::Header> = headers.iter().map(|(k, v)| callbacks::Header::of(k, v)).collect();
        let chunks: Vec<callbacks::Buffer> =
            if body.is_empty() { Vec::new() } else { vec![callbacks::Buffer::of(&body)] };
        let result = if headers.is_empty() { CALLOUT_RESET } else { CALLOUT_SUCCESS };
        let envoy = self.envoy();
        // SAFETY: the filter the module made; headers and chunks live for the call.
        unsafe {
            hooks::envoy_dynamic_module_on_http_filter_http_callout_done(
                envoy,
                self.filter,
                id,
                result,
                wire.as_ptr(),
                wire.len(),
                chunks.as_ptr(),
                chunks.len(),
            );
        }
    }
}
