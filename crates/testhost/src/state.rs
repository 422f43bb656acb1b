//! What the host knows between calls: settings, contexts, streams, pending
//! calls, logs. Lives in the wasmi `Store` so host functions can reach it.

use crate::abi::Direction;
use crate::headers::Headers;
use crate::http::{CallAnswer, HttpCall, HttpUpstream};
use crate::redis::{RedisCall, RedisConnection, RedisUpstream, UpstreamSpec};
use crate::{Gateway, LogLevel, LogLine};
use std::collections::HashMap;
use std::time::Duration;

/// Numbers of the ABI (`WasmResult`).
pub(crate) mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const EMPTY: i32 = 7;
    pub const CAS_MISMATCH: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// Whether a stream's header map can be used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Not available (Envoy's pointer is null): reads and writes get `BadArgument`.
    None,
    /// Available for reading and writing.
    ReadWrite,
}

/// The host side of one HTTP stream context.
#[derive(Debug)]
pub(crate) struct Stream {
    pub req_headers: Headers,
    pub req_access: Access,
    pub resp_headers: Headers,
    pub resp_access: Access,
    /// The request body buffer the plugin sees (buffer type 0); `None` when unset.
    pub req_body: Option<Vec<u8>>,
    /// The response body buffer the plugin sees (buffer type 1).
    pub resp_body: Option<Vec<u8>>,
    /// The trailers of each direction, once they arrived.
    pub req_trailers: Headers,
    pub resp_trailers: Headers,
    /// Whether each direction's trailers are open to the plugin (from their
    /// callback until they go on).
    pub req_trailers_open: bool,
    pub resp_trailers_open: bool,
    /// In `proxy_on_log`: the final maps, read-only.
    pub access_log: Option<(Headers, Headers)>,
    /// Properties set by the test for this request, or by the plugin.
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    /// Higress's `proxy_set_upstream_override_host`: the address chosen.
    pub override_host: Option<String>,
}

impl Stream {
    pub(crate) fn new(headers: Headers) -> Self {
        Stream {
            req_headers: headers,
            req_access: Access::ReadWrite,
            resp_headers: Headers::new(),
            resp_access: Access::None,
            req_body: None,
            resp_body: None,
            req_trailers: Headers::new(),
            resp_trailers: Headers::new(),
            req_trailers_open: false,
            resp_trailers_open: false,
            access_log: None,
            properties: HashMap::new(),
            override_host: None,
        }
    }

    /// The headers of one direction.
    pub(crate) fn headers(&self, direction: Direction) -> &Headers {
        match direction {
            Direction::Request => &self.req_headers,
            Direction::Response => &self.resp_headers,
        }
    }

    /// The headers of one direction, to replace them.
    pub(crate) fn headers_mut(&mut self, direction: Direction) -> &mut Headers {
        match direction {
            Direction::Request => &mut self.req_headers,
            Direction::Response => &mut self.resp_headers,
        }
    }

    /// Whether the plugin can use one direction's headers now.
    pub(crate) fn access_mut(&mut self, direction: Direction) -> &mut Access {
        match direction {
            Direction::Request => &mut self.req_access,
            Direction::Response => &mut self.resp_access,
        }
    }

    /// The trailers of one direction, and whether they are open to the plugin.
    pub(crate) fn trailers_mut(&mut self, direction: Direction) -> (&mut Headers, &mut bool) {
        match direction {
            Direction::Request => (&mut self.req_trailers, &mut self.req_trailers_open),
            Direction::Response => (&mut self.resp_trailers, &mut self.resp_trailers_open),
        }
    }

    /// The body buffer of one direction (buffer type 0 or 1).
    pub(crate) fn body_mut(&mut self, direction: Direction) -> &mut Option<Vec<u8>> {
        match direction {
            Direction::Request => &mut self.req_body,
            Direction::Response => &mut self.resp_body,
        }
    }
}

/// Something a host call asked for that takes effect after the VM call returns.
#[derive(Debug)]
pub(crate) enum Action {
    Continue {
        ctx: u32,
        direction: Direction,
        during: Option<Phase>,
    },
    LocalResponse {
        ctx: u32,
        status: u32,
        details: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// Higress's `proxy_inject_encoded_data_to_filter_chain`: response body
    /// sent on after this filter.
    Inject {
        ctx: u32,
        data: Vec<u8>,
        end_of_stream: bool,
    },
    Reset {
        ctx: u32,
    },
}

/// The callback a VM call ran, as far as actions care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
    /// `proxy_on_request_trailers`.
    RequestTrailers,
    /// `proxy_on_response_trailers`.
    ResponseTrailers,
}

/// A pending asynchronous completion.
pub(crate) struct Pending {
    pub at: u64,
    pub seq: u64,
    pub kind: PendingKind,
}

pub(crate) enum PendingKind {
    HttpAnswer { token: u32, answer: CallAnswer },
    HttpForward { token: u32, address: String, call: HttpCall },
    Redis { id: u32, status: i32, data: Vec<u8> },
    RedisForward { id: u32, cluster: String, query: Vec<u8> },
    QueueReady { root: u32, token: u32 },
    Upstream,
}

/// A Redis client made by `proxy_redis_init`.
pub(crate) struct RedisClient {
    pub spec: UpstreamSpec,
    pub username: Vec<u8>,
    pub password: Vec<u8>,
    pub timeout: Duration,
    pub conn: Option<RedisConnection>,
}

pub(crate) struct Queue {
    pub name: String,
    pub root: u32,
    pub items: std::collections::VecDeque<Vec<u8>>,
}

pub(crate) type ForeignFn = Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, i32>>;

/// Everything the host functions read and write.
pub(crate) struct State {
    // ----- settings -----
    pub gateway: Gateway,
    pub log_level: LogLevel,
    pub plugin_name: String,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub env: Vec<(String, String)>,
    pub allow_on_headers_stop_iteration: bool,
    pub http_upstreams: HashMap<String, HttpUpstream>,
    pub redis_upstreams: HashMap<String, RedisUpstream>,
    pub foreign: HashMap<String, ForeignFn>,
    /// What Higress's `proxy_get_upstream_hosts` answers: (address, metrics).
    pub upstream_hosts: Vec<(String, String)>,
    pub idle_timeout: Duration,
    pub route_timeout: Duration,
    /// Imports answering a fixed status instead of working (`TestHost::force_status`).
    pub forced_status: HashMap<String, i32>,

    // ----- the VM -----
    pub memory: Option<wasmi::Memory>,
    pub alloc: Option<wasmi::Func>,
    pub abi_0_1: bool,
    pub root_id: u32,
    pub next_context_id: u32,
    pub current: u32,
    pub effective: Option<u32>,
    pub in_alloc: bool,
    pub in_configure: bool,
    pub phase: Option<Phase>,
    pub stop_next_iteration: bool,
    pub streams: HashMap<u32, Stream>,
    pub actions: Vec<Action>,
    pub misuse: Vec<String>,

    // ----- what happened -----
    pub events: Vec<crate::Event>,
    pub logs: Vec<LogLine>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub notes: Vec<String>,
    pub http_calls: Vec<HttpCall>,
    pub redis_calls: Vec<RedisCall>,

    // ----- time and pending work -----
    pub now: u64,
    pub tick_period: Option<u64>,
    pub next_tick: Option<u64>,
    pub pending: Vec<Pending>,
    pub seq: u64,
    pub rng: u64,

    // ----- calls -----
    pub next_http_id: u32,
    pub call_answer: Option<CallAnswer>,
    pub redis_clients: HashMap<String, RedisClient>,
    pub next_redis_id: u32,
    pub redis_answer: Option<Vec<u8>>,

    // ----- shared state -----
    pub shared_data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    pub next_cas: u32,
    pub queues: HashMap<u32, Queue>,
    pub next_queue: u32,
    pub metrics: HashMap<u32, (String, i64)>,
    pub metric_ids: [u32; 3],
}

impl State {
    pub(crate) fn new(plugin_name: String, now: u64) -> Self {
        State {
            gateway: Gateway::Higress,
            log_level: LogLevel::Info,
            plugin_name,
            vm_config: Vec::new(),
            plugin_config: Vec::new(),
            properties: HashMap::new(),
            env: Vec::new(),
            allow_on_headers_stop_iteration: false,
            http_upstreams: HashMap::new(),
            redis_upstreams: HashMap::new(),
            foreign: HashMap::new(),
            upstream_hosts: Vec::new(),
            idle_timeout: Duration::from_secs(300),
            route_timeout: Duration::from_secs(15),
            forced_status: HashMap::new(),
            memory: None,
            alloc: None,
            abi_0_1: false,
            root_id: 1,
            next_context_id: 2,
            current: 0,
            effective: None,
            in_alloc: false,
            in_configure: false,
            phase: None,
            stop_next_iteration: false,
            streams: HashMap::new(),
            actions: Vec::new(),
            misuse: Vec::new(),
            events: Vec::new(),
            logs: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            notes: Vec::new(),
            http_calls: Vec::new(),
            redis_calls: Vec::new(),
            now,
            tick_period: None,
            next_tick: None,
            pending: Vec::new(),
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            next_http_id: 0,
            call_answer: None,
            redis_clients: HashMap::new(),
            next_redis_id: 3,
            redis_answer: None,
            shared_data: HashMap::new(),
            next_cas: 0,
            queues: HashMap::new(),
            next_queue: 0,
            metrics: HashMap::new(),
            metric_ids: [0, 1, 2],
        }
    }

    /// The context host calls act on: the effective one if set, else the one called.
    pub(crate) fn ctx(&self) -> u32 {
        self.effective.unwrap_or(self.current)
    }

    pub(crate) fn context_exists(&self, id: u32) -> bool {
        id == self.root_id || self.streams.contains_key(&id)
    }

    pub(crate) fn schedule(&mut self, at: u64, kind: PendingKind) {
        self.seq += 1;
        self.pending.push(Pending { at, seq: self.seq, kind });
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if level >= self.log_level {
            self.logs.push(LogLine { level, message });
        }
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic, so tests are repeatable.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Property key: path parts joined by NUL, without a trailing NUL.
    pub(crate) fn property_key(path: &[u8]) -> Vec<u8> {
        let mut key = path.to_vec();
        while key.last() == Some(&0) {
            key.pop();
        }
        key
    }
}
