//! A request taken through the plugin: what to send, and what happened.

use crate::headers::Headers;
use crate::http::{HttpCall, Reply};
use crate::redis::RedisCall;
use crate::state::Phase;
use crate::{Error, LogLevel, LogLine, TestHost};

/// What the upstream (the service behind the gateway) received.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    /// Request headers after the plugin's edits, pseudo-headers included.
    pub headers: Headers,
    /// Request body after the plugin's edits.
    pub body: Vec<u8>,
    /// Request trailers after the plugin's edits (empty when there were none).
    pub trailers: Headers,
}

impl UpstreamRequest {
    /// One header (first value).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// One trailer (first value).
    pub fn trailer(&self, name: &str) -> Option<String> {
        self.trailers.get(name)
    }
}

/// What the client received.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, `:status` included.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
    /// Whether the plugin answered itself (`proxy_send_local_response`).
    pub local: bool,
    /// The response code details the plugin sent with its own answer (empty
    /// when it sent none); `None` for the upstream's answer.
    pub details: Option<String>,
    /// Trailers after the plugin's edits (empty when there were none).
    pub trailers: Headers,
}

impl Response {
    /// One header (first value).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// One trailer (first value).
    pub fn trailer(&self, name: &str) -> Option<String> {
        self.trailers.get(name)
    }
}

/// Something that happened during an exchange, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A headers or body callback stopped iteration (after Envoy's conversion).
    Paused {
        /// The callback that stopped.
        phase: Phase,
        /// The ABI status it stopped with, after Envoy's conversion: for
        /// headers 1 (`StopIteration`), 3 or 4 (`StopAllIteration*`); for a
        /// body 1 (`StopIterationAndBuffer`), 2 (`...AndWatermark`) or 3
        /// (`StopIterationNoBuffer`).
        status: u32,
    },
    /// A `continue_stream` took effect.
    Resumed {
        /// Which direction was resumed: `false` the request, `true` the response.
        response: bool,
    },
    /// The plugin answered (`proxy_send_local_response`).
    LocalResponse {
        /// The HTTP status of the answer.
        status: u16,
    },
    /// The plugin dispatched an HTTP call.
    HttpCall {
        /// The call's token (4, 8, 12, ...), matching its [`Event::HttpCallResponse`].
        token: u32,
        /// The Envoy cluster the call went to.
        cluster: String,
    },
    /// An HTTP call's answer was delivered (`None`: no `:status`).
    HttpCallResponse {
        /// The token of the call answered.
        token: u32,
        /// The answer's `:status`; `None` when it had none (a failed connection).
        status: Option<u16>,
    },
    /// The plugin sent a Redis command.
    RedisCall {
        /// The callout id (7, 11, 15, ...), matching its [`Event::RedisResponse`].
        id: u32,
        /// The command name, uppercased (`GET`).
        command: String,
    },
    /// A Redis answer was delivered with this status.
    RedisResponse {
        /// The callout id of the command answered.
        id: u32,
        /// 0 with an answer; otherwise no data: 1 for a failure, timeout or
        /// disconnect, or what [`RedisReply::failure_status`](crate::RedisReply::failure_status) chose.
        status: i32,
    },
    /// The request reached the upstream.
    Upstream,
    /// `proxy_on_tick` ran.
    Tick,
    /// The stream waited with nothing left that could resume it.
    Stalled,
    /// The plugin reset the stream (`proxy_close_stream`).
    Reset,
}

/// The upstream's behaviour for one request.
pub(crate) enum UpstreamSpec {
    Fixed(Reply),
    With(Box<dyn FnMut(&UpstreamRequest) -> Reply>),
}

/// A request being built; [`RequestBuilder::send`] takes it through every phase.
///
/// Defaults: `GET http://example.com/`, no body, and an upstream answering
/// `200` with no body.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'h> {
    pub(crate) host: &'h TestHost,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) chunks: Vec<Vec<u8>>,
    pub(crate) trailers: Vec<(String, String)>,
    pub(crate) properties: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) upstream: UpstreamSpec,
}

impl<'h> RequestBuilder<'h> {
    pub(crate) fn new(host: &'h TestHost) -> Self {
        RequestBuilder {
            host,
            headers: Vec::new(),
            chunks: Vec::new(),
            trailers: Vec::new(),
            properties: Vec::new(),
            upstream: UpstreamSpec::Fixed(Reply::new(200)),
        }
    }

    /// Adds a request header (pseudo-headers too: `:path`, `:authority`, ...).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
    fn set_pseudo(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// Sets `:method`.
    pub fn method(self, method: &str) -> Self {
        self.set_pseudo(":method", method)
    }
    /// Sets `:path` (with the query string).
    pub fn path(self, path: &str) -> Self {
        self.set_pseudo(":path", path)
    }
    /// Sets `:authority` (the host).
    pub fn authority(self, authority: &str) -> Self {
        self.set_pseudo(":authority", authority)
    }
    /// Sets `:scheme`.
    pub fn scheme(self, scheme: &str) -> Self {
        self.set_pseudo(":scheme", scheme)
    }
    /// Sets the body, sent as one chunk.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.chunks = vec![body.as_ref().to_vec()];
        self
    }
    /// Adds a body chunk (one `proxy_on_request_body` per chunk).
    pub fn chunk(mut self, chunk: impl AsRef<[u8]>) -> Self {
        self.chunks.push(chunk.as_ref().to_vec());
        self
    }
    /// Adds a request trailer: the request ends with trailers, after its
    /// body (`proxy_on_request_trailers` runs; the last body chunk is not
    /// the end of the stream).
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
    /// Sets a property for this request only (`"route_name"`, `"xds.route_name"`:
    /// dots separate path parts).
    pub fn property(mut self, path: &str, value: impl AsRef<[u8]>) -> Self {
        self.properties.push((crate::property_path(path), value.as_ref().to_vec()));
        self
    }
    /// What the upstream answers (default: `200`, no body).
    pub fn upstream(mut self, reply: Reply) -> Self {
        self.upstream = UpstreamSpec::Fixed(reply);
        self
    }
    /// Lets a closure answer for the upstream, seeing what it received.
    pub fn upstream_with(mut self, f: impl FnMut(&UpstreamRequest) -> Reply + 'static) -> Self {
        self.upstream = UpstreamSpec::With(Box::new(f));
        self
    }
    /// Takes the request through every phase and reports what happened.
    ///
    /// Fails when the plugin traps or misuses a host call (the error carries
    /// its log lines), or when the VM failed earlier.
    pub fn send(self) -> Result<Exchange, Error> {
        let host = self.host;
        host.run_request(self)
    }
}

/// What happened to one request.
#[derive(Debug, Default)]
pub struct Exchange {
    pub(crate) upstream: Option<UpstreamRequest>,
    pub(crate) response: Option<Response>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) events: Vec<Event>,
    pub(crate) http_calls: Vec<HttpCall>,
    pub(crate) redis_calls: Vec<RedisCall>,
    pub(crate) notes: Vec<String>,
    pub(crate) stalled: bool,
    pub(crate) reset: bool,
    pub(crate) context_id: u32,
    pub(crate) properties: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    pub(crate) override_host: Option<String>,
}

impl Exchange {
    /// What the client got (`None` if the stream stalled or was reset).
    pub fn response(&self) -> Option<&Response> {
        self.response.as_ref()
    }
    /// The client's status, if it got a response.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }
    /// A property of the stream as it was when the exchange ended: one the
    /// request came with, or one the plugin set, by its path parts
    /// (`&["custom_log"]`, `&["trace_span_tag.model"]`: a name with a dot is
    /// one part, as the plugin sent it).
    pub fn property(&self, path: &[&str]) -> Option<&[u8]> {
        self.properties.get(path.join("\0").as_bytes()).map(Vec::as_slice)
    }
    /// The upstream address the plugin chose with Higress's
    /// `proxy_set_upstream_override_host`, if it did.
    pub fn override_host(&self) -> Option<&str> {
        self.override_host.as_deref()
    }
    /// The plugin's own answer, if it sent one.
    pub fn local_response(&self) -> Option<&Response> {
        self.response.as_ref().filter(|r| r.local)
    }
    /// What the upstream received (`None` if the request never got there).
    pub fn upstream_request(&self) -> Option<&UpstreamRequest> {
        self.upstream.as_ref()
    }
    /// Log lines written during this exchange (at or above the host's level).
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }
    /// Whether a line at `level` contains `text`.
    pub fn logged(&self, level: LogLevel, text: &str) -> bool {
        self.logs.iter().any(|l| l.level == level && l.message.contains(text))
    }
    /// Whether any line, at any level, contains `text`.
    pub fn logged_anywhere(&self, text: &str) -> bool {
        self.logs.iter().any(|l| l.message.contains(text))
    }
    /// What happened, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
    /// The phases in which the stream was paused.
    pub fn pauses(&self) -> Vec<Phase> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Paused { phase, .. } => Some(*phase),
                _ => None,
            })
            .collect()
    }
    /// How many times `continue_stream` resumed the stream.
    pub fn resumes(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, Event::Resumed { .. })).count()
    }
    /// HTTP calls the plugin dispatched during this exchange.
    pub fn http_calls(&self) -> &[HttpCall] {
        &self.http_calls
    }
    /// Redis commands the plugin sent during this exchange.
    pub fn redis_calls(&self) -> &[RedisCall] {
        &self.redis_calls
    }
    /// The host's remarks (refused calls and why), for debugging.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
    /// The stream stayed paused with nothing left to resume it: a client
    /// would wait until Envoy's stream idle timeout (5 min, then `408`).
    pub fn stalled(&self) -> bool {
        self.stalled
    }
    /// The plugin reset the stream: the client got no response.
    pub fn reset(&self) -> bool {
        self.reset
    }
    /// The stream's context id.
    pub fn context_id(&self) -> u32 {
        self.context_id
    }
}
