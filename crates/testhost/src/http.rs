//! HTTP answers: the upstream's response to a request, and the answers to the
//! plugin's own calls (`proxy_http_call`), scripted or from a real server.

use crate::headers::Headers;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// An answer, scripted by a test: a response, or a failure to get one.
///
/// ```
/// use gateway_testhost::Reply;
/// let ok = Reply::new(200).header("x-token", "t1").body("hello");
/// let slow = Reply::new(200).delay_ms(800); // past a 500 ms timeout: Envoy's 504
/// let down = Reply::connect_failure();
/// ```
#[derive(Clone, Debug)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
    pub(crate) delay: Duration,
    pub(crate) trailers: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub(crate) enum ReplyKind {
    Response { status: u16, headers: Vec<(String, String)>, chunks: Vec<Vec<u8>> },
    ConnectFailure,
    NoAnswer,
}

impl Reply {
    /// A response with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        Reply {
            kind: ReplyKind::Response { status, headers: Vec::new(), chunks: Vec::new() },
            delay: Duration::ZERO,
            trailers: Vec::new(),
        }
    }

    /// The connection cannot be made. For a plugin's call: the callback gets a
    /// response without `:status` and no body (Envoy's failure path). For the
    /// request's upstream: Envoy's router answers `503` itself.
    pub fn connect_failure() -> Self {
        Reply { kind: ReplyKind::ConnectFailure, delay: Duration::ZERO, trailers: Vec::new() }
    }

    /// No answer ever comes: the call's timeout fires (a `504` from Envoy), or
    /// for the request's upstream the route timeout (15 s, then `504`).
    pub fn no_answer() -> Self {
        Reply { kind: ReplyKind::NoAnswer, delay: Duration::ZERO, trailers: Vec::new() }
    }

    /// Adds a header (ignored on failures).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let ReplyKind::Response { headers, .. } = &mut self.kind {
            headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }

    /// Adds a trailer: the answer ends with trailers after its body
    /// (ignored on failures).
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        if let ReplyKind::Response { .. } = &self.kind {
            self.trailers.push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }

    /// Sets the body (one chunk).
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        if let ReplyKind::Response { chunks, .. } = &mut self.kind {
            chunks.clear();
            if !body.as_ref().is_empty() {
                chunks.push(body.as_ref().to_vec());
            }
        }
        self
    }

    /// Adds a body chunk (the plugin sees one body callback per chunk).
    pub fn chunk(mut self, chunk: impl AsRef<[u8]>) -> Self {
        if let ReplyKind::Response { chunks, .. } = &mut self.kind {
            chunks.push(chunk.as_ref().to_vec());
        }
        self
    }

    /// Answers after this long (virtual time: the test does not wait).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers after this many milliseconds.
    pub fn delay_ms(self, ms: u64) -> Self {
        self.delay(Duration::from_millis(ms))
    }

    /// The trailers as a header map (empty when there are none).
    pub(crate) fn trailer_map(&self) -> Headers {
        let mut map = Headers::new();
        for (k, v) in &self.trailers {
            map.add(k, v);
        }
        map
    }

    pub(crate) fn response_parts(&self) -> Option<(u16, Headers, Vec<Vec<u8>>)> {
        match &self.kind {
            ReplyKind::Response { status, headers, chunks } => {
                let mut map = Headers::new();
                map.add(":status", status.to_string());
                for (k, v) in headers {
                    map.add(k, v);
                }
                Some((*status, map, chunks.clone()))
            }
            _ => None,
        }
    }
}

/// A call a plugin dispatched with `proxy_http_call`, as the service would get it.
#[derive(Clone, Debug)]
pub struct HttpCall {
    /// The cluster the call went to.
    pub cluster: String,
    /// Request headers, pseudo-headers included (`:method`, `:path`, `:authority`).
    pub headers: Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// The call's timeout; `None` when the plugin passed 0 (no timeout).
    pub timeout: Option<Duration>,
    /// The token the host returned.
    pub token: u32,
}

impl HttpCall {
    /// One request header (first value).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }
    /// `:method`.
    pub fn method(&self) -> String {
        self.header(":method").unwrap_or_default()
    }
    /// `:path`.
    pub fn path(&self) -> String {
        self.header(":path").unwrap_or_default()
    }
    /// `:authority`.
    pub fn authority(&self) -> String {
        self.header(":authority").unwrap_or_default()
    }
}

type Responder = Box<dyn FnMut(&HttpCall) -> Reply>;

/// What answers the calls a plugin makes to one cluster.
pub struct HttpUpstream {
    pub(crate) kind: UpstreamKind,
}

pub(crate) enum UpstreamKind {
    Respond(Responder),
    Forward(String),
}

impl HttpUpstream {
    /// Every call gets a copy of `reply`.
    pub fn reply(reply: Reply) -> Self {
        HttpUpstream { kind: UpstreamKind::Respond(Box::new(move |_| reply.clone())) }
    }

    /// Each call is answered by `responder` (which can count calls, check
    /// headers, or fail some of them).
    pub fn respond(responder: impl FnMut(&HttpCall) -> Reply + 'static) -> Self {
        HttpUpstream { kind: UpstreamKind::Respond(Box::new(responder)) }
    }

    /// Calls go to a real HTTP/1.1 server at `address` (`host:port`). A
    /// connection that cannot be made gets Envoy's `503` answer; a server
    /// slower than the call's timeout gets Envoy's `504`.
    pub fn forward(address: impl Into<String>) -> Self {
        HttpUpstream { kind: UpstreamKind::Forward(address.into()) }
    }
}

/// The answer a plugin's call got, as the host hands it to the module.
#[derive(Clone, Debug)]
pub(crate) enum CallAnswer {
    Response { headers: Headers, body: Vec<u8>, trailers: Headers },
    Failure,
}

/// Envoy's own answer when a call times out: 3 headers, a 24-byte body.
pub(crate) fn timeout_answer() -> CallAnswer {
    let body = b"upstream request timeout".to_vec();
    let headers = envoy_local_headers(504, body.len());
    CallAnswer::Response { headers, body, trailers: Headers::new() }
}

/// Envoy's own answer when the upstream cannot be reached.
pub(crate) fn connect_failure_answer() -> CallAnswer {
    let body = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused".to_vec();
    let headers = envoy_local_headers(503, body.len());
    CallAnswer::Response { headers, body, trailers: Headers::new() }
}

pub(crate) fn envoy_local_headers(status: u16, body_len: usize) -> Headers {
    let mut headers = Headers::new();
    headers.add(":status", status.to_string());
    if body_len > 0 {
        headers.add("content-length", body_len.to_string());
        headers.add("content-type", "text/plain");
    }
    headers
}

/// Sends `call` to a real server over HTTP/1.1 and reads the answer, within
/// `timeout` (none: 60 s). Returns the answer and the time it took.
pub(crate) fn forward(address: &str, call: &HttpCall) -> (CallAnswer, Duration) {
    let started = Instant::now();
    let limit = call.timeout.unwrap_or(Duration::from_secs(60));
    let answer = match forward_inner(address, call, started, limit) {
        Ok(answer) => answer,
        Err(ForwardError::Connect) => connect_failure_answer(),
        Err(ForwardError::Timeout) => timeout_answer(),
        Err(ForwardError::Broken) => connect_failure_answer(),
    };
    (answer, started.elapsed())
}

enum ForwardError {
    Connect,
    Timeout,
    Broken,
}

fn io_error(err: std::io::Error) -> ForwardError {
    match err.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ForwardError::Timeout,
        _ => ForwardError::Broken,
    }
}

fn forward_inner(
    address: &str,
    call: &HttpCall,
    started: Instant,
    limit: Duration,
) -> Result<CallAnswer, ForwardError> {
    let addr = address.to_socket_addrs().map_err(|_| ForwardError::Connect)?.next().ok_or(ForwardError::Connect)?;
    let stream = TcpStream::connect_timeout(&addr, limit).map_err(|err| match err.kind() {
        std::io::ErrorKind::TimedOut => ForwardError::Timeout,
        _ => ForwardError::Connect,
    })?;
    let remaining = || limit.checked_sub(started.elapsed()).filter(|d| !d.is_zero()).ok_or(ForwardError::Timeout);
    stream.set_read_timeout(Some(remaining()?)).map_err(io_error)?;
    stream.set_write_timeout(Some(remaining()?)).map_err(io_error)?;

    let mut request = format!("{} {} HTTP/1.1\r\nhost: {}\r\n", call.method(), call.path(), call.authority());
    for (k, v) in call.headers.pairs() {
        if k.starts_with(':') || k == "host" || k == "content-length" || k == "connection" {
            continue;
        }
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !call.body.is_empty() {
        request.push_str(&format!("content-length: {}\r\n", call.body.len()));
    }
    request.push_str("connection: close\r\n\r\n");
    let mut writer = &stream;
    writer.write_all(request.as_bytes()).map_err(io_error)?;
    writer.write_all(&call.body).map_err(io_error)?;

    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    let read_line = |reader: &mut BufReader<&TcpStream>, line: &mut String| -> Result<(), ForwardError> {
        line.clear();
        stream.set_read_timeout(Some(remaining()?)).map_err(io_error)?;
        let n = reader.read_line(line).map_err(io_error)?;
        if n == 0 {
            return Err(ForwardError::Broken);
        }
        Ok(())
    };
    read_line(&mut reader, &mut line)?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(ForwardError::Broken)?;
    let mut headers = Headers::new();
    headers.add(":status", status.to_string());
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    loop {
        read_line(&mut reader, &mut line)?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let Some((k, v)) = trimmed.split_once(':') else { return Err(ForwardError::Broken) };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            content_length = v.parse().ok();
        }
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        headers.add(&k, v);
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(&mut reader, &mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16).map_err(|_| ForwardError::Broken)?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(io_error)?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    } else if let Some(len) = content_length {
        body.resize(len, 0);
        reader.read_exact(&mut body).map_err(io_error)?;
    } else if status >= 200 && status != 204 && status != 304 {
        reader.read_to_end(&mut body).map_err(io_error)?;
    }
    Ok(CallAnswer::Response { headers, body, trailers: Headers::new() })
}
