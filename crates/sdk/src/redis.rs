//! Calling Redis from a plugin (feature `redis`; Higress only).
//!
//! Higress's gateway gives plugins a Redis client on an Envoy cluster
//! (`proxy_redis_init` / `proxy_redis_call`, answers to
//! `proxy_on_redis_call_response`). Upstream Envoy and Istio do not have these
//! host functions and refuse to load a module that imports them, which is why
//! only plugins built with this feature import them.
//!
//! A plugin enables it in its `Cargo.toml` (`gateway-sdk = { ..., features =
//! ["redis"] }`); without it this module is not compiled, and only
//! documented (`cargo doc` shows it, natively, whatever the features).
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = ();
//! #     type State = ();
//! # }
//! # use gateway_sdk::{RedisClient, RedisOptions};
//! # fn demo(req: &mut Request<MyPlugin>) -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisClient::new(&Cluster::service("redis.dns", Some(6379))?, RedisOptions::default())?;
//! redis.incr(req, "hits", |req, _config, count| {
//!     match count {
//!         Ok(n) => req.log().info(format_args!("hit {n}")),
//!         Err(err) => req.log().error(format_args!("redis: {err}")),
//!     }
//!     req.resume();
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! As in Higress's Go client: commands go out as one RESP array of bulk
//! strings; a client whose first init failed retries init before its next
//! command; an answer `NOAUTH Authentication required` makes the client
//! re-init and send the command once more; the answer to a request that is
//! gone is dropped. The effective context is set to the request before its
//! callback runs.

// Where this module sits in the SDK (a comment: the rendered docs are for plugin authors).
// The client depends on the request (`request.rs`), where each command
// leaves what its answer runs, on `dispatch.rs` (which routes the answer
// back to the request) and on `cluster.rs`; nothing in the SDK depends on
// it but the re-exports and the driver's one call of what a command left.

use crate::cluster::Cluster;
use crate::dispatch::{self, Answer, Callout};
use crate::fields::{Port, ServiceName};
use crate::host::{self, BufferType, Status};
use crate::log::Log;
use crate::request::Request;
use crate::Plugin;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame, Resp2Frame};
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

/// Redis's port, for a service configured without one ([`RedisClient::for_service`]).
pub const DEFAULT_PORT: u16 = 6379;

/// [`RedisClient::incr_with_expiry`]'s script: `INCR`, then `EXPIRE` when the key has no expiry.
const INCR_WITH_EXPIRY: &str = "local n = redis.call('INCR', KEYS[1]) \
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end \
return n";

/// A value Redis answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// The null bulk string or null array.
    Nil,
    /// An integer reply.
    Int(i64),
    /// A bulk string reply.
    Data(Vec<u8>),
    /// A simple string reply (`OK`, `PONG`).
    Status(String),
    /// An array reply.
    Array(Vec<Value>),
}

impl Value {
    /// The integer, or an error naming what came instead.
    pub fn into_int(self) -> RedisResult<i64> {
        match self {
            Value::Int(n) => Ok(n),
            other => Err(RedisError::unexpected("an integer", &other)),
        }
    }

    /// The bytes of a bulk or simple string; `None` for nil.
    pub fn into_data(self) -> RedisResult<Option<Vec<u8>>> {
        match self {
            Value::Nil => Ok(None),
            Value::Data(data) => Ok(Some(data)),
            Value::Status(status) => Ok(Some(status.into_bytes())),
            other => Err(RedisError::unexpected("a string", &other)),
        }
    }

    /// Whether a status reply was `OK` (nil, e.g. `SET NX` that did not set, is `false`).
    pub fn into_ok(self) -> RedisResult<bool> {
        match self {
            Value::Status(status) if status == "OK" => Ok(true),
            Value::Nil => Ok(false),
            other => Err(RedisError::unexpected("OK", &other)),
        }
    }

    /// An array of strings (nil items as `None`).
    pub fn into_data_list(self) -> RedisResult<Vec<Option<Vec<u8>>>> {
        match self {
            Value::Array(items) => items.into_iter().map(Value::into_data).collect(),
            other => Err(RedisError::unexpected("an array", &other)),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Int(_) => "an integer",
            Value::Data(_) => "a bulk string",
            Value::Status(_) => "a status",
            Value::Array(_) => "an array",
        }
    }
}

/// Why a Redis command has no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisError {
    /// The host could not reach Redis (or timed out): "cannot connect to redis cluster".
    Unavailable,
    /// The host refused the command or the init before sending it.
    Dispatch(String),
    /// Redis answered with an error reply (`ERR ...`, `WRONGTYPE ...`, `NOAUTH ...`).
    Server(String),
    /// The answer was not RESP, or not the type the command returns.
    Protocol(String),
}

impl RedisError {
    fn unexpected(wanted: &str, got: &Value) -> Self {
        RedisError::Protocol(format!("expected {wanted}, got {}", got.kind()))
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Unavailable => f.write_str("cannot connect to redis cluster"),
            RedisError::Dispatch(why) => write!(f, "redis command not sent: {why}"),
            RedisError::Server(message) => write!(f, "redis error: {message}"),
            RedisError::Protocol(why) => write!(f, "bad redis answer: {why}"),
        }
    }
}

impl std::error::Error for RedisError {}

/// What a Redis callback receives.
pub type RedisResult<T> = Result<T, RedisError>;

/// How to reach a Redis cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// The user to log in as (Redis 6 ACLs); empty: none, the server's
    /// `default` user.
    pub username: String,
    /// The password to log in with; empty: the server asks for none.
    pub password: String,
    /// Per-command timeout in milliseconds (default 1000).
    pub timeout_ms: u32,
    /// Database number (`SELECT`), default 0.
    pub database: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions { username: String::new(), password: String::new(), timeout_ms: 1000, database: 0 }
    }
}

/// A Redis client on one cluster. Build it when the config is parsed; clones share
/// one connection state.
#[derive(Clone)]
pub struct RedisClient {
    target: Rc<Target>,
}

struct Target {
    /// The cluster name with Higress's options: `<cluster>?db=N&buffer_flush_timeout=3&...`.
    upstream: String,
    options: RedisOptions,
    ready: Cell<bool>,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of debug output.
        f.debug_struct("RedisClient").field("upstream", &self.target.upstream).finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client for `cluster` (any kind but [`Cluster::Route`]).
    pub fn new(cluster: &Cluster, options: RedisOptions) -> Result<Self, String> {
        let name = cluster.cluster_name(|| None).ok_or("a Redis client needs a fixed cluster, not the route's")?;
        let mut upstream = name;
        upstream.push('?');
        if options.database != 0 {
            upstream.push_str(&format!("db={}&", options.database));
        }
        upstream.push_str("buffer_flush_timeout=3&max_buffer_size_before_flush=1024");
        Ok(RedisClient { target: Rc::new(Target { upstream, options, ready: Cell::new(false) }) })
    }

    /// A client for the Redis service a config names, at `port` (default
    /// [`DEFAULT_PORT`], or 80 for a `.static` service, as for HTTP), for a
    /// config's `try_from`: errors say `serviceName: ...`, as
    /// [`ServiceName::http_client`](crate::fields::ServiceName::http_client)'s do.
    pub fn for_service(name: &ServiceName, port: Option<Port>, options: RedisOptions) -> Result<Self, String> {
        let port = port.or(Port::new(if name.is_static() { 80 } else { DEFAULT_PORT }).ok());
        let cluster = name.cluster(port, None).map_err(|err| format!("serviceName: {err}"))?;
        RedisClient::new(&cluster, options)
    }

    /// A client whose commands Higress buffers as asked: sent when
    /// `max_buffer_size_before_flush` bytes are waiting or `flush_timeout_ms`
    /// passed, whichever comes first (Go's `WithBufferFlushTimeout` and
    /// `WithMaxBufferSizeBeforeFlush`; [`RedisClient::new`] uses 3 ms and 1024 bytes).
    ///
    /// ```
    /// # use gateway_sdk::{Cluster, RedisClient, RedisOptions};
    /// # fn demo() -> Result<(), String> {
    /// # let cluster = Cluster::service("redis.dns", Some(6379))?;
    /// let redis = RedisClient::with_buffering(&cluster, RedisOptions::default(), 0, 0)?; // no buffering
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_buffering(
        cluster: &Cluster,
        options: RedisOptions,
        flush_timeout_ms: u32,
        max_buffer_size_before_flush: u32,
    ) -> Result<Self, String> {
        let client = RedisClient::new(cluster, options)?;
        let target = &client.target;
        let base = target.upstream.split("buffer_flush_timeout=").next().unwrap_or_default();
        let upstream = format!(
            "{base}buffer_flush_timeout={flush_timeout_ms}&max_buffer_size_before_flush={max_buffer_size_before_flush}"
        );
        let options = target.options.clone();
        Ok(RedisClient { target: Rc::new(Target { upstream, options, ready: Cell::new(false) }) })
    }

    /// Whether the host's connection is open: [`RedisClient::init`] succeeded
    /// and no command found it gone since (Go's `Ready`).
    pub fn ready(&self) -> bool {
        self.target.ready.get()
    }

    /// The upstream string passed to the host (`<cluster>?db=...`).
    pub fn upstream(&self) -> &str {
        &self.target.upstream
    }

    /// Opens the host's connection; commands call it themselves when needed,
    /// so calling it early (from [`Plugin::on_configure`]) only surfaces errors sooner.
    pub fn init(&self) -> RedisResult<()> {
        let t = &self.target;
        match host::redis::init(&t.upstream, &t.options.username, &t.options.password, t.options.timeout_ms) {
            Ok(()) => {
                t.ready.set(true);
                Ok(())
            }
            Err(status) => {
                t.ready.set(false);
                Err(RedisError::Dispatch(format!("init of {} failed: host returned {status}", t.upstream)))
            }
        }
    }

    /// [`RedisClient::init`] from [`Plugin::on_configure`], for a Redis that
    /// may come up after the gateway: a failure is logged as a warning
    /// (`<error>; will retry on the first request`) and does not fail start,
    /// since commands init the client again themselves.
    pub fn init_or_warn(&self, log: &Log<'_>) {
        if let Err(err) = self.init() {
            log.warn(format_args!("{err}; will retry on the first request"));
        }
    }

    fn send(&self, query: &[u8]) -> RedisResult<u32> {
        if !self.target.ready.get() {
            self.init()?;
        }
        host::redis::call(&self.target.upstream, query).map_err(|status| {
            if status == Status::BAD_ARGUMENT {
                // Higress answers BadArgument when the cluster's client is gone: init again next time.
                self.target.ready.set(false);
            }
            RedisError::Dispatch(format!("host returned {status}"))
        })
    }

    /// Sends any command, e.g. `&[b"HSET", key, field, value]`; `callback` gets the answer.
    pub fn command<P: Plugin>(
        &self,
        req: &mut Request<P>,
        args: &[&[u8]],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Value>) + 'static,
    ) -> RedisResult<()> {
        let query = encode_command(args);
        let callout = self.send(&query)?;
        self.expect_answer(req, callout, query, false, callback);
        Ok(())
    }

    /// Leaves in the request what the answer to `callout` (the command
    /// `query`) runs: [`RedisClient::on_answer`]. One allocation, as the
    /// callback alone would take.
    fn expect_answer<P: Plugin>(
        &self,
        req: &mut Request<P>,
        callout: u32,
        query: Vec<u8>,
        retried: bool,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Value>) + 'static,
    ) {
        dispatch::expect(Callout::Redis(callout), req.context_id);
        let client = self.clone();
        req.redis_calls.push(
            callout,
            Box::new(move |req, config, answer| client.on_answer(req, config, answer, query, retried, callback)),
        );
    }

    /// The answer to a command: the callback gets it, unless the connection
    /// lost its authentication (e.g. Redis restarted with a password), when
    /// the client inits again and sends the command once more.
    fn on_answer<P: Plugin>(
        &self,
        req: &mut Request<P>,
        config: &P::Config,
        answer: Answer,
        query: Vec<u8>,
        retried: bool,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Value>) + 'static,
    ) {
        let reply = read_answer(answer);
        if let Err(RedisError::Server(message)) = &reply {
            if message.starts_with("NOAUTH") && !retried {
                if let Ok(callout) = self.init().and_then(|()| self.send(&query)) {
                    self.expect_answer(req, callout, query, true, callback);
                    return;
                }
            }
        }
        callback(req, config, reply)
    }

    fn typed<P: Plugin, T: 'static>(
        &self,
        req: &mut Request<P>,
        args: &[&[u8]],
        convert: fn(Value) -> RedisResult<T>,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<T>) + 'static,
    ) -> RedisResult<()> {
        self.command(req, args, move |req, config, answer| callback(req, config, answer.and_then(convert)))
    }

    /// `GET key`: the value, `None` when the key does not exist.
    pub fn get<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Option<Vec<u8>>>) + 'static,
    ) -> RedisResult<()> {
        self.typed(req, &[b"GET", key.as_bytes()], Value::into_data, callback)
    }

    /// `SET key value` (`EX seconds` when given, `NX` when `only_if_absent`):
    /// `true` if set (`false` when `NX` found the key).
    pub fn set<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        value: &[u8],
        expire_seconds: Option<u64>,
        only_if_absent: bool,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<bool>) + 'static,
    ) -> RedisResult<()> {
        let seconds = expire_seconds.map(|s| s.to_string());
        let mut args: Vec<&[u8]> = vec![b"SET", key.as_bytes(), value];
        if let Some(seconds) = &seconds {
            args.extend([b"EX".as_slice(), seconds.as_bytes()]);
        }
        if only_if_absent {
            args.push(b"NX");
        }
        self.typed(req, &args, Value::into_ok, callback)
    }

    /// `INCRBY key by` (plain `INCR` when `by` is 1): the new value.
    pub fn incr_by<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        by: i64,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        let by_text = by.to_string();
        let args: [&[u8]; 3] = [b"INCRBY", key.as_bytes(), by_text.as_bytes()];
        self.typed(req, &args, Value::into_int, callback)
    }

    /// `INCR key`: the new value.
    pub fn incr<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        self.typed(req, &[b"INCR", key.as_bytes()], Value::into_int, callback)
    }

    /// `DECR key`: the new value.
    pub fn decr<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        self.typed(req, &[b"DECR", key.as_bytes()], Value::into_int, callback)
    }

    /// `EXPIRE key seconds`: whether the key exists (and now expires).
    pub fn expire<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        seconds: u64,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<bool>) + 'static,
    ) -> RedisResult<()> {
        let seconds = seconds.to_string();
        let args: [&[u8]; 3] = [b"EXPIRE", key.as_bytes(), seconds.as_bytes()];
        self.typed(req, &args, |v| v.into_int().map(|n| n == 1), callback)
    }

    /// `DEL key...`: how many keys were removed.
    pub fn del<P: Plugin>(
        &self,
        req: &mut Request<P>,
        keys: &[&str],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        let args: Vec<&[u8]> = std::iter::once(b"DEL".as_slice()).chain(keys.iter().map(|k| k.as_bytes())).collect();
        self.typed(req, &args, Value::into_int, callback)
    }

    /// `EXISTS key...`: how many of the keys exist.
    pub fn exists<P: Plugin>(
        &self,
        req: &mut Request<P>,
        keys: &[&str],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        let args: Vec<&[u8]> = std::iter::once(b"EXISTS".as_slice()).chain(keys.iter().map(|k| k.as_bytes())).collect();
        self.typed(req, &args, Value::into_int, callback)
    }

    /// `EVAL script numkeys keys... args...`: the script's answer.
    pub fn eval<P: Plugin>(
        &self,
        req: &mut Request<P>,
        script: &str,
        keys: &[&str],
        args: &[&str],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Value>) + 'static,
    ) -> RedisResult<()> {
        self.script_command(req, b"EVAL", script, keys, args, callback)
    }

    /// Increments counter `key` and makes sure it expires in
    /// `expire_seconds`, in one round trip (a script): the count after the
    /// increment. The expiry is set when the key has none, so it is the
    /// counter's first window that ends it, and no counter is ever left
    /// without one (an `INCR` then an `EXPIRE` could). What a fixed-window
    /// limiter counts with (see [`limit`](crate::limit)).
    pub fn incr_with_expiry<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        expire_seconds: u64,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        let seconds = expire_seconds.to_string();
        self.eval(req, INCR_WITH_EXPIRY, &[key], &[&seconds], move |req, config, answer| {
            callback(req, config, answer.and_then(Value::into_int))
        })
    }

    /// `EVALSHA sha1 numkeys keys... args...`: the script's answer.
    pub fn evalsha<P: Plugin>(
        &self,
        req: &mut Request<P>,
        sha1: &str,
        keys: &[&str],
        args: &[&str],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Value>) + 'static,
    ) -> RedisResult<()> {
        self.script_command(req, b"EVALSHA", sha1, keys, args, callback)
    }

    fn script_command<P: Plugin>(
        &self,
        req: &mut Request<P>,
        verb: &[u8],
        script: &str,
        keys: &[&str],
        args: &[&str],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Value>) + 'static,
    ) -> RedisResult<()> {
        let count = keys.len().to_string();
        let mut all: Vec<&[u8]> = vec![verb, script.as_bytes(), count.as_bytes()];
        all.extend(keys.iter().map(|k| k.as_bytes()));
        all.extend(args.iter().map(|a| a.as_bytes()));
        self.command(req, &all, callback)
    }

    /// `HGET key field`.
    pub fn hget<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        field: &str,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Option<Vec<u8>>>) + 'static,
    ) -> RedisResult<()> {
        self.typed(req, &[b"HGET", key.as_bytes(), field.as_bytes()], Value::into_data, callback)
    }

    /// `HSET key field value`: how many fields were added.
    pub fn hset<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        field: &str,
        value: &[u8],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        self.typed(req, &[b"HSET", key.as_bytes(), field.as_bytes(), value], Value::into_int, callback)
    }

    /// `HINCRBY key field by`: the new value.
    pub fn hincr_by<P: Plugin>(
        &self,
        req: &mut Request<P>,
        key: &str,
        field: &str,
        by: i64,
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<i64>) + 'static,
    ) -> RedisResult<()> {
        let by = by.to_string();
        let args: [&[u8]; 4] = [b"HINCRBY", key.as_bytes(), field.as_bytes(), by.as_bytes()];
        self.typed(req, &args, Value::into_int, callback)
    }

    /// `MGET key...`: each value, `None` for missing keys.
    pub fn mget<P: Plugin>(
        &self,
        req: &mut Request<P>,
        keys: &[&str],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<Vec<Option<Vec<u8>>>>) + 'static,
    ) -> RedisResult<()> {
        let args: Vec<&[u8]> = std::iter::once(b"MGET".as_slice()).chain(keys.iter().map(|k| k.as_bytes())).collect();
        self.typed(req, &args, Value::into_data_list, callback)
    }

    /// `MSET key value ...`.
    pub fn mset<P: Plugin>(
        &self,
        req: &mut Request<P>,
        pairs: &[(&str, &[u8])],
        callback: impl FnOnce(&mut Request<P>, &P::Config, RedisResult<bool>) + 'static,
    ) -> RedisResult<()> {
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for (key, value) in pairs {
            args.extend([key.as_bytes(), *value]);
        }
        self.typed(req, &args, Value::into_ok, callback)
    }
}

/// One RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let items: Vec<BorrowedFrame<'_>> = args.iter().map(|arg| BorrowedFrame::BulkString(arg)).collect();
    let frame = BorrowedFrame::Array(&items);
    let mut buf = vec![0u8; frame.encode_len(false)];
    match redis_protocol::resp2::encode::encode_borrowed(&mut buf, &frame, false) {
        Ok(written) => buf.truncate(written),
        // The buffer is sized by the encoder itself; keep the contract explicit anyway.
        Err(_) => buf.clear(),
    }
    buf
}

/// Encodes a value as Redis would send it (used by tests and test hosts).
pub fn encode_value(value: &Value) -> Vec<u8> {
    let frame = to_frame(value);
    let mut buf = vec![0u8; frame.encode_len(false)];
    match redis_protocol::resp2::encode::encode(&mut buf, &frame, false) {
        Ok(written) => buf.truncate(written),
        Err(_) => buf.clear(),
    }
    buf
}

fn to_frame(value: &Value) -> OwnedFrame {
    match value {
        Value::Nil => OwnedFrame::Null,
        Value::Int(n) => OwnedFrame::Integer(*n),
        Value::Data(data) => OwnedFrame::BulkString(data.clone()),
        Value::Status(status) => OwnedFrame::SimpleString(status.as_bytes().to_vec()),
        Value::Array(items) => OwnedFrame::Array(items.iter().map(to_frame).collect()),
    }
}

/// Deepest nesting of arrays accepted in an answer. The RESP decoder recurses
/// once per level, so an answer nested without bound (a misbehaving server, or
/// a proxy in between) would exhaust the VM's stack and trap it.
const MAX_ANSWER_DEPTH: usize = 64;

/// Decodes one answer: a value, or Redis's error reply as [`RedisError::Server`].
pub fn decode_reply(bytes: &[u8]) -> RedisResult<Value> {
    if !nesting_within(bytes, MAX_ANSWER_DEPTH) {
        return Err(RedisError::Protocol(format!("answer nested deeper than {MAX_ANSWER_DEPTH} arrays")));
    }
    match redis_protocol::resp2::decode::decode(bytes) {
        Ok(Some((frame, used))) if used == bytes.len() => from_frame(frame),
        Ok(Some(_)) => Err(RedisError::Protocol("trailing bytes after the answer".to_string())),
        Ok(None) => Err(RedisError::Protocol("incomplete answer".to_string())),
        Err(err) => Err(RedisError::Protocol(err.to_string())),
    }
}

/// Whether the arrays of a RESP answer nest at most `max` deep, found by
/// walking its headers without recursion. Malformed input passes here and is
/// refused by the decoder.
fn nesting_within(bytes: &[u8], max: usize) -> bool {
    // Items still to read at each open array level.
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(line_end) = bytes.get(at..).and_then(|rest| rest.windows(2).position(|w| w == b"\r\n")) else {
            return true;
        };
        let line = bytes.get(at + 1..at + line_end).unwrap_or_default();
        let kind = bytes.get(at).copied().unwrap_or_default();
        at += line_end + 2;
        let count = std::str::from_utf8(line).ok().and_then(|n| n.parse::<i64>().ok());
        match kind {
            b'*' => match count {
                Some(n) if n > 0 => {
                    if open.len() >= max {
                        return false;
                    }
                    open.push(n.unsigned_abs());
                    continue;
                }
                // An empty or null array is one complete item.
                Some(_) => {}
                None => return true,
            },
            b'$' => match count {
                Some(n) if n >= 0 => at = at.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)).saturating_add(2),
                Some(_) => {}
                None => return true,
            },
            b'+' | b'-' | b':' => {}
            _ => return true,
        }
        // One item is complete: close every array it completes.
        while let Some(left) = open.last_mut() {
            *left -= 1;
            if *left > 0 {
                break;
            }
            open.pop();
        }
        if open.is_empty() {
            return true;
        }
    }
    true
}

fn from_frame(frame: OwnedFrame) -> RedisResult<Value> {
    Ok(match frame {
        OwnedFrame::Null => Value::Nil,
        OwnedFrame::Integer(n) => Value::Int(n),
        OwnedFrame::BulkString(data) => Value::Data(data),
        OwnedFrame::SimpleString(status) => Value::Status(String::from_utf8_lossy(&status).into_owned()),
        OwnedFrame::Error(message) => return Err(RedisError::Server(message)),
        // An error inside an array (e.g. from EXEC) is kept as the array's item.
        OwnedFrame::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    OwnedFrame::Error(message) => Ok(Value::Status(format!("-{message}"))),
                    other => from_frame(other),
                })
                .collect::<RedisResult<_>>()?,
        ),
    })
}

/// The answer the host announced: the reply, or why there is none.
fn read_answer(answer: Answer) -> RedisResult<Value> {
    if answer.status != 0 {
        return Err(RedisError::Unavailable);
    }
    match host::get_buffer(BufferType::RedisCallResponse, 0, answer.size) {
        Ok(Some(bytes)) => decode_reply(&bytes),
        Ok(None) => Err(RedisError::Unavailable),
        Err(status) => Err(RedisError::Protocol(format!("cannot read the answer: {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(encode_command(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(encode_command(&[b"SET", b"a\r\nb", b""]), b"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$0\r\n\r\n");
        assert_eq!(encode_command(&[]), b"*0\r\n");
    }

    #[test]
    fn every_value_type_round_trips() {
        let values = [
            Value::Nil,
            Value::Int(0),
            Value::Int(-42),
            Value::Int(i64::MAX),
            Value::Data(b"".to_vec()),
            Value::Data(b"bin\r\n\x00\xff".to_vec()),
            Value::Status("OK".to_string()),
            Value::Array(vec![]),
            Value::Array(vec![Value::Int(1), Value::Nil, Value::Array(vec![Value::Data(b"x".to_vec())])]),
        ];
        for value in values {
            assert_eq!(decode_reply(&encode_value(&value)), Ok(value.clone()), "{value:?}");
        }
    }

    #[test]
    fn errors_and_nulls_decode() {
        assert_eq!(decode_reply(b"-ERR unknown command\r\n"), Err(RedisError::Server("ERR unknown command".into())));
        assert_eq!(
            decode_reply(b"-NOAUTH Authentication required.\r\n"),
            Err(RedisError::Server("NOAUTH Authentication required.".into()))
        );
        assert_eq!(decode_reply(b"$-1\r\n"), Ok(Value::Nil));
        assert_eq!(decode_reply(b"*-1\r\n"), Ok(Value::Nil));
        assert_eq!(
            decode_reply(b"*2\r\n:1\r\n-ERR inner\r\n"),
            Ok(Value::Array(vec![Value::Int(1), Value::Status("-ERR inner".into())]))
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for bad in [&b""[..], b"$5\r\nab\r\n", b":12x\r\n", b"?\r\n", b"*1\r\n", b":1\r\n:2\r\n", b"$-2\r\n"] {
            assert!(matches!(decode_reply(bad), Err(RedisError::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn deeply_nested_answers_are_refused_not_recursed_into() {
        let nested = |depth: usize| {
            let mut answer = b"*1\r\n".repeat(depth);
            answer.extend_from_slice(b":1\r\n");
            answer
        };
        assert!(decode_reply(&nested(MAX_ANSWER_DEPTH)).is_ok());
        for depth in [MAX_ANSWER_DEPTH + 1, 1_000, 100_000] {
            assert_eq!(
                decode_reply(&nested(depth)),
                Err(RedisError::Protocol("answer nested deeper than 64 arrays".to_string())),
                "depth {depth}"
            );
        }
        // Wide is fine; so are bulk strings that look like headers.
        let wide = [b"*3\r\n".as_slice(), b"*1\r\n:1\r\n", b"$4\r\n*1\r\n\r\n", b"*0\r\n"].concat();
        assert_eq!(
            decode_reply(&wide),
            Ok(Value::Array(vec![
                Value::Array(vec![Value::Int(1)]),
                Value::Data(b"*1\r\n".to_vec()),
                Value::Array(vec![])
            ]))
        );
    }

    #[test]
    fn typed_conversions() {
        assert_eq!(Value::Int(3).into_int(), Ok(3));
        assert!(Value::Data(b"3".to_vec()).into_int().is_err());
        assert_eq!(Value::Nil.into_data(), Ok(None));
        assert_eq!(Value::Status("OK".into()).into_ok(), Ok(true));
        assert_eq!(Value::Nil.into_ok(), Ok(false));
        assert_eq!(
            Value::Array(vec![Value::Data(b"a".to_vec()), Value::Nil]).into_data_list(),
            Ok(vec![Some(b"a".to_vec()), None])
        );
    }

    #[test]
    fn buffering_options_reach_the_upstream_name() {
        let cluster = Cluster::service("redis.dns", Some(6379)).unwrap();
        let options = RedisOptions { database: 2, ..RedisOptions::default() };
        let client = RedisClient::with_buffering(&cluster, options, 0, 16).unwrap();
        assert_eq!(
            client.upstream(),
            "outbound|6379||redis.dns?db=2&buffer_flush_timeout=0&max_buffer_size_before_flush=16"
        );
        assert!(!client.ready());
    }

    #[test]
    fn upstream_names_carry_higress_options() {
        let cluster = Cluster::service("redis.dns", Some(6379)).unwrap();
        let client = RedisClient::new(&cluster, RedisOptions::default()).unwrap();
        assert_eq!(
            client.upstream(),
            "outbound|6379||redis.dns?buffer_flush_timeout=3&max_buffer_size_before_flush=1024"
        );
        let client = RedisClient::new(&cluster, RedisOptions { database: 2, ..RedisOptions::default() }).unwrap();
        assert_eq!(
            client.upstream(),
            "outbound|6379||redis.dns?db=2&buffer_flush_timeout=3&max_buffer_size_before_flush=1024"
        );
        let debug = format!(
            "{:?}",
            RedisClient::new(&cluster, RedisOptions { password: "s3cret".into(), ..Default::default() }).unwrap()
        );
        assert!(!debug.contains("s3cret"));
        assert!(RedisClient::new(&Cluster::Route { host: None }, RedisOptions::default()).is_err());
    }
}
