//! Redis calls (Higress's `proxy_redis_init` / `proxy_redis_call`): the
//! upstream string, RESP framing, scripted answers and a real-server client.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A command a plugin sent with `proxy_redis_call`.
#[derive(Clone, Debug)]
pub struct RedisCall {
    /// The cluster (the upstream string without its options).
    pub cluster: String,
    /// The command's arguments, decoded from the RESP array (`["GET", "k"]`).
    pub args: Vec<Vec<u8>>,
    /// The raw query bytes.
    pub query: Vec<u8>,
    /// The callout id the host returned.
    pub callout_id: u32,
}

impl RedisCall {
    /// The command name, uppercased (`GET`).
    pub fn command(&self) -> String {
        self.args.first().map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).unwrap_or_default()
    }
    /// Argument `i` (0 is the command) as text.
    pub fn arg(&self, i: usize) -> Option<String> {
        self.args.get(i).map(|a| String::from_utf8_lossy(a).into_owned())
    }
}

/// An answer to a Redis command, scripted by a test.
#[derive(Clone, Debug)]
pub struct RedisReply {
    pub(crate) kind: RedisReplyKind,
    pub(crate) delay: Duration,
}

#[derive(Clone, Debug)]
pub(crate) enum RedisReplyKind {
    Raw(Vec<u8>),
    Failure(i32),
    NoAnswer,
}

impl RedisReply {
    /// Raw RESP bytes, e.g. `b"+OK\r\n"`.
    pub fn raw(resp: impl AsRef<[u8]>) -> Self {
        RedisReply { kind: RedisReplyKind::Raw(resp.as_ref().to_vec()), delay: Duration::ZERO }
    }
    /// `+OK`-style simple string.
    pub fn simple(text: &str) -> Self {
        Self::raw(format!("+{text}\r\n"))
    }
    /// An error reply (`-ERR ...`).
    pub fn error(text: &str) -> Self {
        Self::raw(format!("-{text}\r\n"))
    }
    /// An integer reply.
    pub fn integer(n: i64) -> Self {
        Self::raw(format!(":{n}\r\n"))
    }
    /// A bulk string reply.
    pub fn bulk(data: impl AsRef<[u8]>) -> Self {
        let data = data.as_ref();
        let mut out = format!("${}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        Self::raw(out)
    }
    /// The null bulk string (`GET` of a missing key).
    pub fn nil() -> Self {
        Self::raw(b"$-1\r\n")
    }
    /// No answer: the connection failed or dropped. The callback gets a
    /// non-zero status and no data.
    pub fn failure() -> Self {
        RedisReply { kind: RedisReplyKind::Failure(crate::abi::REDIS_NO_ANSWER), delay: Duration::ZERO }
    }
    /// Like [`RedisReply::failure`], with a chosen status.
    pub fn failure_status(status: i32) -> Self {
        RedisReply { kind: RedisReplyKind::Failure(status), delay: Duration::ZERO }
    }
    /// Never answers: the timeout given to `proxy_redis_init` fires.
    pub fn no_answer() -> Self {
        RedisReply { kind: RedisReplyKind::NoAnswer, delay: Duration::ZERO }
    }
    /// Answers after this long (virtual time).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    /// Answers after this many milliseconds.
    pub fn delay_ms(self, ms: u64) -> Self {
        self.delay(Duration::from_millis(ms))
    }
}

type RedisResponder = Box<dyn FnMut(&RedisCall) -> RedisReply>;

/// What answers the Redis commands sent to one cluster.
pub struct RedisUpstream {
    pub(crate) kind: RedisKind,
}

pub(crate) enum RedisKind {
    Respond(RedisResponder),
    Forward(String),
}

impl RedisUpstream {
    /// Each command is answered by `responder`.
    pub fn respond(responder: impl FnMut(&RedisCall) -> RedisReply + 'static) -> Self {
        RedisUpstream { kind: RedisKind::Respond(Box::new(responder)) }
    }
    /// Commands go to a real Redis server at `address` (`host:port`). The
    /// host authenticates each new connection with the credentials of
    /// `proxy_redis_init` (`AUTH [user] password`) and selects the database
    /// (`SELECT n`) as Higress does, before the plugin's commands.
    pub fn forward(address: impl Into<String>) -> Self {
        RedisUpstream { kind: RedisKind::Forward(address.into()) }
    }
}

/// The parsed `proxy_redis_init` / `proxy_redis_call` upstream string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamSpec {
    pub cluster: String,
    pub db: u32,
    pub buffer_flush_timeout: u32,
    pub max_buffer_size_before_flush: u32,
}

/// Parses `<cluster>?db=N&buffer_flush_timeout=3&max_buffer_size_before_flush=1024`.
pub(crate) fn parse_upstream(upstream: &str) -> Result<UpstreamSpec, String> {
    let (cluster, query) = match upstream.split_once('?') {
        Some((c, q)) => (c, Some(q)),
        None => (upstream, None),
    };
    if cluster.is_empty() {
        return Err("the upstream has no cluster name".to_string());
    }
    let mut spec = UpstreamSpec {
        cluster: cluster.to_string(),
        db: 0,
        buffer_flush_timeout: 3,
        max_buffer_size_before_flush: 1024,
    };
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("option {pair:?} is not key=value"));
        };
        if seen.contains(&key) {
            return Err(format!("option {key} given twice"));
        }
        seen.push(key);
        let number: u32 = value.parse().map_err(|_| format!("option {key}={value:?} is not a number"))?;
        match key {
            "db" => spec.db = number,
            "buffer_flush_timeout" => spec.buffer_flush_timeout = number,
            "max_buffer_size_before_flush" => spec.max_buffer_size_before_flush = number,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(spec)
}

/// Reads one RESP value from the front of `bytes`; returns its length, or
/// `Err(true)` when more bytes are needed, `Err(false)` when it is malformed.
pub(crate) fn resp_value_len(bytes: &[u8]) -> Result<usize, bool> {
    let line_end = |from: usize| -> Result<usize, bool> {
        let rest = bytes.get(from..).ok_or(true)?;
        rest.windows(2).position(|w| w == b"\r\n").map(|p| from + p).ok_or(true)
    };
    let kind = *bytes.first().ok_or(true)?;
    let end = line_end(1)?;
    let line = std::str::from_utf8(bytes.get(1..end).ok_or(false)?).map_err(|_| false)?;
    let after = end + 2;
    match kind {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(after),
        b'$' | b'!' | b'=' => {
            let n: i64 = line.parse().map_err(|_| false)?;
            if n < 0 {
                return Ok(after);
            }
            let total = after + n as usize + 2;
            if bytes.len() < total {
                return Err(true);
            }
            if bytes.get(total - 2..total) != Some(b"\r\n") {
                return Err(false);
            }
            Ok(total)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n: i64 = line.parse().map_err(|_| false)?;
            if n < 0 {
                return Ok(after);
            }
            let count = if kind == b'%' || kind == b'|' { n * 2 } else { n };
            let mut at = after;
            for _ in 0..count {
                at += resp_value_len(bytes.get(at..).ok_or(true)?)?;
            }
            if kind == b'|' {
                // An attribute precedes the value it annotates.
                at += resp_value_len(bytes.get(at..).ok_or(true)?)?;
            }
            Ok(at)
        }
        _ => Err(false),
    }
}

/// Decodes a query that must be exactly one RESP array of bulk strings.
pub(crate) fn parse_query(query: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let len = resp_value_len(query).map_err(|_| "the query is not one complete RESP value".to_string())?;
    if len != query.len() {
        return Err("the query holds more than one RESP value".to_string());
    }
    let Some(b'*') = query.first() else { return Err("the query is not a RESP array".to_string()) };
    let text_until = |from: usize| -> Option<(usize, usize)> {
        let p = query.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((from + p, from + p + 2))
    };
    let (end, mut at) = text_until(1).ok_or("bad array header")?;
    let count: usize = std::str::from_utf8(query.get(1..end).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad array length")?;
    if count == 0 {
        return Err("the query is an empty array".to_string());
    }
    let mut args = Vec::with_capacity(count);
    for i in 0..count {
        if query.get(at) != Some(&b'$') {
            return Err(format!("element {i} of the query is not a bulk string"));
        }
        let (end, next) = text_until(at + 1).ok_or("bad bulk header")?;
        let n: usize = std::str::from_utf8(query.get(at + 1..end).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("element {i} of the query has a bad length"))?;
        args.push(query.get(next..next + n).ok_or("short bulk string")?.to_vec());
        at = next + n + 2;
    }
    Ok(args)
}

/// Encodes arguments as a RESP array of bulk strings.
pub(crate) fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A connection to a real Redis server, authenticated and on its database.
pub(crate) struct RedisConnection {
    reader: BufReader<TcpStream>,
}

/// Why a real Redis command got no answer.
#[derive(Debug)]
pub(crate) enum RedisIoError {
    Connect(String),
    Timeout,
    Broken(String),
}

impl std::fmt::Display for RedisIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisIoError::Connect(why) => write!(f, "cannot connect: {why}"),
            RedisIoError::Timeout => write!(f, "timed out"),
            RedisIoError::Broken(why) => write!(f, "connection broken: {why}"),
        }
    }
}

impl RedisConnection {
    /// Connects, then sends `AUTH` and `SELECT` as Higress does. The replies
    /// to those are returned for the host's notes (an `AUTH` error does not
    /// stop the connection: the plugin's commands then get `NOAUTH`).
    pub(crate) fn open(
        address: &str,
        username: &[u8],
        password: &[u8],
        db: u32,
        timeout: Duration,
    ) -> Result<(Self, Vec<String>), RedisIoError> {
        let addr = address
            .to_socket_addrs()
            .map_err(|e| RedisIoError::Connect(e.to_string()))?
            .next()
            .ok_or_else(|| RedisIoError::Connect(format!("{address} does not resolve")))?;
        let limit = if timeout.is_zero() { Duration::from_secs(5) } else { timeout };
        let stream = TcpStream::connect_timeout(&addr, limit).map_err(|e| RedisIoError::Connect(e.to_string()))?;
        let mut conn = RedisConnection { reader: BufReader::new(stream) };
        let mut notes = Vec::new();
        if !password.is_empty() {
            let auth = if username.is_empty() {
                encode_command(&[b"AUTH", password])
            } else {
                encode_command(&[b"AUTH", username, password])
            };
            let reply = conn.command(&auth, timeout)?;
            if reply.first() == Some(&b'-') {
                notes.push(format!("AUTH refused: {}", String::from_utf8_lossy(&reply).trim_end()));
            }
        }
        if db != 0 {
            let reply = conn.command(&encode_command(&[b"SELECT", db.to_string().as_bytes()]), timeout)?;
            if reply.first() == Some(&b'-') {
                notes.push(format!("SELECT {db} refused: {}", String::from_utf8_lossy(&reply).trim_end()));
            }
        }
        Ok((conn, notes))
    }

    /// Sends one command and reads one whole RESP reply.
    pub(crate) fn command(&mut self, query: &[u8], timeout: Duration) -> Result<Vec<u8>, RedisIoError> {
        let started = Instant::now();
        let limit = if timeout.is_zero() { Duration::from_secs(60) } else { timeout };
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => RedisIoError::Timeout,
            _ => RedisIoError::Broken(e.to_string()),
        };
        self.reader.get_ref().set_write_timeout(Some(limit)).map_err(io)?;
        self.reader.get_mut().write_all(query).map_err(io)?;
        let mut reply = Vec::new();
        loop {
            match resp_value_len(&reply) {
                Ok(len) if len == reply.len() => return Ok(reply),
                Ok(_) => return Err(RedisIoError::Broken("the server sent more than one reply".to_string())),
                Err(false) => return Err(RedisIoError::Broken("the server sent malformed RESP".to_string())),
                Err(true) => {}
            }
            let remaining =
                limit.checked_sub(started.elapsed()).filter(|d| !d.is_zero()).ok_or(RedisIoError::Timeout)?;
            self.reader.get_ref().set_read_timeout(Some(remaining)).map_err(io)?;
            let available = self.reader.fill_buf().map_err(io)?;
            if available.is_empty() {
                return Err(RedisIoError::Broken("the server closed the connection".to_string()));
            }
            // Take only what completes the current value, so that nothing of
            // a later reply is swallowed.
            let take = available.len();
            reply.extend_from_slice(available);
            self.reader.consume(take);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_strings() {
        let s =
            parse_upstream("outbound|6379||redis.dns?db=2&buffer_flush_timeout=3&max_buffer_size_before_flush=1024");
        assert_eq!(s.map(|s| (s.cluster, s.db)), Ok(("outbound|6379||redis.dns".to_string(), 2)));
        assert_eq!(parse_upstream("c").map(|s| s.db), Ok(0));
        assert!(parse_upstream("c?db=x").is_err());
        assert!(parse_upstream("c?db").is_err());
        assert!(parse_upstream("c?db=1&db=2").is_err());
        assert!(parse_upstream("c?password=1").is_err());
        assert!(parse_upstream("?db=1").is_err());
    }

    #[test]
    fn resp_framing() {
        assert_eq!(resp_value_len(b"+OK\r\n"), Ok(5));
        assert_eq!(resp_value_len(b"$3\r\nabc\r\n"), Ok(9));
        assert_eq!(resp_value_len(b"$3\r\nab"), Err(true));
        assert_eq!(resp_value_len(b"*2\r\n:1\r\n$-1\r\n"), Ok(13));
        assert_eq!(resp_value_len(b"?x\r\n"), Err(false));
        assert_eq!(parse_query(b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n"), Ok(vec![b"get".to_vec(), b"k".to_vec()]));
        assert!(parse_query(b"*1\r\n:1\r\n").is_err());
        assert!(parse_query(b"$3\r\nget\r\n").is_err());
        assert!(parse_query(b"*1\r\n$3\r\nget\r\n+x\r\n").is_err());
        assert_eq!(encode_command(&[b"get", b"k"]), b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n".to_vec());
    }
}
