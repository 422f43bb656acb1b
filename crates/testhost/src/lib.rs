//! # gateway-testhost
//!
//! A Proxy-Wasm host for tests. It loads a plugin's `.wasm` (ABI 0.2.1, as
//! built by `gateway-sdk` / the `proxy-wasm` crate for `wasm32-wasip1`) into
//! the [`wasmi`] interpreter and takes requests through it the way Envoy
//! does, in milliseconds and without a gateway. It also serves Higress's
//! extensions (Redis calls, `get_log_level`, upstream hosts, injected
//! response data), which upstream Envoy cannot load.
//!
//! ```no_run
//! use gateway_testhost::{HttpUpstream, Reply, TestHost};
//!
//! # fn main() -> Result<(), gateway_testhost::Error> {
//! let host = TestHost::plugin("mock")?.config(r#"{"mockEnable": true}"#)?;
//! let out = host.request().path("/get").send()?;
//! assert_eq!(out.status(), Some(200));
//! assert_eq!(out.local_response().map(|r| r.body_text()).as_deref(), Some("hello world"));
//!
//! // A plugin calling another service: answer its calls from the test.
//! let host = TestHost::plugin("http-call")?
//!     .http_upstream("outbound|80||token.dns", HttpUpstream::reply(Reply::new(200).header("x-token", "t1")))
//!     .config(r#"{"tokenHeader": "x-token", "requestPath": "/token",
//!                 "serviceName": "token.dns", "servicePort": 80}"#)?;
//! let out = host.request().header("x-token", "forged").send()?;
//! assert_eq!(out.upstream_request().and_then(|r| r.header("x-token")).as_deref(), Some("t1"));
//! # Ok(()) }
//! ```
//!
//! ## What a request goes through
//!
//! [`RequestBuilder::send`] runs, like Envoy's HTTP filter:
//! `proxy_on_context_create`, `proxy_on_request_headers` (end of stream when
//! there is no body), `proxy_on_request_body` per chunk, then the upstream's
//! answer (given by the test: [`RequestBuilder::upstream`]) through
//! `proxy_on_response_headers` and `proxy_on_response_body`, and finally
//! `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`. The [`Exchange`] tells
//! what the upstream received, what the client got, the pauses, the calls and
//! the log lines. A plugin that traps or misuses a host call makes `send`
//! fail with an [`Error`] carrying its messages; a trap also fails the VM for
//! the rest of the test, as on Envoy.
//!
//! ## Time
//!
//! The clock is virtual: it starts at the real time (or
//! [`TestHost::start_time`]) and moves only when the host waits, for a
//! delayed answer, a call timeout or a tick, or when the test calls
//! [`TestHost::advance`] / [`TestHost::tick`]. Waiting costs no real time.
//! `proxy_get_current_time_nanoseconds` and WASI's realtime clock read it.
//!
//! ## Fidelity to Envoy (1.40, proxy-wasm-cpp-host)
//!
//! Each choice below follows Envoy's source (`source/extensions/common/wasm/context.cc`,
//! `proxy-wasm-cpp-host` `exports.cc`/`context.cc`); the end-to-end suite
//! compares the two.
//!
//! * **Memory**: data returned to the module (header values, maps, bodies,
//!   properties) is allocated with the module's `proxy_on_memory_allocate`
//!   (or `malloc`); empty data is returned as a null pointer with size 0, and
//!   an empty body read writes nothing back. Pointers are checked:
//!   `InvalidMemoryAccess`, never a host crash. While the allocator runs only
//!   logging and the clock may be called (Envoy's restricted callbacks).
//! * **Header maps**: the wire format is a `u32` count, `u32` key/value sizes,
//!   then NUL-terminated keys and values. Names are lowercased on write,
//!   pseudo-headers stay first, a replace removes every value then appends,
//!   a get returns the first value; a missing header is `NotFound` (ABI 0.1:
//!   empty). Request headers can be read and changed from the request headers
//!   callback until the request continues (callback returns Continue, or
//!   `continue_stream`, which forgets them at once, for either direction);
//!   afterwards they are `BadArgument`, like response headers outside the
//!   response phase. In `proxy_on_log` both maps are readable, not writable.
//! * **Bodies**: buffer 0/1 is the chunk being delivered, or everything
//!   buffered so far after `StopIterationAndBuffer`; writes follow Envoy's
//!   `copyFrom` (start 0 replaces a prefix, start at/after the end appends).
//!   A body arriving while headers are held (`StopAllIteration*`) is
//!   delivered in one call after the stream resumes.
//! * **Return values**: a headers callback's 1 becomes
//!   `StopAllIterationAndWatermark` (4) unless
//!   [`TestHost::allow_on_headers_stop_iteration`]; values above 4 become 4;
//!   after `proxy_send_local_response` the callback's answer is 4 (headers)
//!   or `StopIterationNoBuffer` (body) whatever it returned.
//! * **Deferred actions**: local responses and `continue_stream` take effect
//!   after the VM call returns, in order; the VM is never re-entered while it
//!   runs (except the allocator, as Envoy). Resuming a stream that is not
//!   paused, after a local response, after the stream ended, from the root
//!   context, or in the very callback that pauses it is reported as misuse.
//! * **Local responses**: headers are `:status`, the plugin's headers, then
//!   `content-length` and `content-type: text/plain` when there is a body
//!   (removed when there is none); no body for `HEAD`. Sent before the
//!   response started, the answer goes through this plugin's response
//!   callbacks; during the response phase it goes straight to the client.
//! * **HTTP calls**: unknown cluster, negative timeout, or missing `:path`,
//!   `:method` or `:authority` give `BadArgument` at dispatch; tokens are 4,
//!   8, 12, ...; answers go to `proxy_on_http_call_response` on the *root*
//!   context (the SDK sets the effective context itself). A call past its
//!   timeout gets Envoy's own answer: `504`, 3 headers, 24-byte body
//!   `upstream request timeout`. A failed connection gives a call response
//!   with no headers (`:status` missing) and no body; a forwarded call to an
//!   unreachable server gets Envoy's `503`. Timeout 0 means none.
//! * **Redis (Higress)**: `proxy_redis_init` checks the upstream string
//!   (`<cluster>?db=N&buffer_flush_timeout=3&max_buffer_size_before_flush=1024`,
//!   known keys, numbers, no repeats) and that the cluster is declared
//!   (`BadArgument` otherwise); a command before init, or a query that is not
//!   exactly one RESP array of bulk strings, is `BadArgument`. Callout ids are
//!   7, 11, 15, ...; answers go to `proxy_on_redis_call_response(root,
//!   id, status, size)` with the bytes in buffer 9. A failure, timeout or
//!   disconnect is status 1 with no data (unverified against Higress: any
//!   non-zero status means "no answer" to its SDKs).
//! * **Higress's other host functions** (modelled on their Go SDK's
//!   contract; no Higress gateway runs here): `proxy_get_upstream_hosts`
//!   answers [`TestHost::upstream_hosts`] as a header map (address, metrics),
//!   `NotFound` when none is set; `proxy_set_upstream_override_host` records
//!   the address ([`Exchange::override_host`]) while the request headers are
//!   the plugin's, else `BadArgument`; `proxy_inject_encoded_data_to_filter_chain`
//!   (in the response phases, else `BadArgument`) adds response body the
//!   client gets after what passed, and with end of stream set ends the
//!   response even when the plugin took its last chunk (data status 3).
//! * **Order at the end**: `proxy_on_log` (access-log pass), then
//!   `proxy_on_done` and `proxy_on_delete`, as Envoy's stream destruction.
//! * **Ticks**: `proxy_set_tick_period_milliseconds` schedules
//!   `proxy_on_tick` on the root context every period, first one a period
//!   after the call; ticks fire when virtual time passes them.
//! * **A paused stream** waits until resumed or answered, while answers and
//!   ticks are delivered; with nothing left that could resume it (after
//!   Envoy's stream idle timeout of 5 min of virtual time, ticks included; a
//!   timer that schedules new work on every tick extends it to 50 min at
//!   most) the exchange is reported [`Exchange::stalled`] and torn down.
//! * **Logs**: `proxy_log` lines below the host's level (default `Info`) are
//!   dropped; WASI stdout/stderr writes become `Info`/`Error` lines, as
//!   Envoy logs them. WASI (module `wasi`): the realtime and monotonic
//!   clocks both read the virtual clock (others `ENOTSUP`), deterministic
//!   `random_get` (at most 64 KiB, else `EINVAL`), no args, environment from
//!   [`TestHost::env`], no files (`path_open` `ENOENT`, `path_filestat_get`
//!   `ENOTSUP`, `fd_fdstat_set_flags` `ENOSYS`, no preopens), `poll_oneoff`
//!   and `sched_yield` as below; `proc_exit` ends the call as a trap.
//! * **Properties**: what the test sets, plus `plugin_name` and Envoy's
//!   `request.path`, `request.host`, `request.scheme` and `request.method`
//!   (the request's pseudo-headers, in every phase). Dots in
//!   [`TestHost::property`] separate path parts (`xds.route_name`).
//!   `proxy_set_property` stores per stream (a root context: `NotFound`).
//! * **Trailers** ([`RequestBuilder::trailer`], [`Reply::trailer`]): a
//!   message with trailers ends with them, so its last body chunk does not
//!   end the stream; `proxy_on_*_trailers` runs after the chunks (also while
//!   the body is held), and its map (1 or 3) is open only from then until
//!   the trailers go on (elsewhere: empty, edits `BadArgument`). `Continue`
//!   lets the held body, held headers and the trailers go on; 1 holds them
//!   until `continue_stream`. A call's answer trailers are map 7.
//! * **Not modelled**: gRPC calls (`Unimplemented`), the connection
//!   attributes Envoy computes (`source.*`, other `request.*`), the headers
//!   Envoy adds (`x-request-id`, `x-envoy-*`), and body arriving over time
//!   (every chunk is there at once).

//!
//! ## Go-built modules (Go 1.24, `GOOS=wasip1`, the Higress Go SDK)
//!
//! Modules built by Go 1.24 with Higress's `wasm-go` SDK run as on Envoy:
//! their `_initialize` (Go's runtime start) runs before
//! `proxy_on_context_create`, and the WASI calls Go's runtime makes are
//! answered as Envoy 1.40's proxy-wasm-cpp-host answers them. The end-to-end
//! test `e2e/tests/go_modules.rs` runs the 13 Go-built modules of the
//! `gpustack-higress-plugins` 0.5.1 wheel (Higress's `transformer` and
//! `ai-statistics` among them) here and on a real Envoy 1.40 and compares
//! statuses, headers and a rewritten JSON body. What differs from Envoy:
//!
//! * **ABI marker**: these modules export `proxy_abi_version_0_2_100`,
//!   Higress's marker; the test host accepts it in its Higress mode (the
//!   default) and refuses it with [`TestHost::envoy`], as upstream Envoy
//!   refuses it ("Missing or unknown Proxy-Wasm ABI version").
//! * **Sleeping**: Go's scheduler waits for its next timer with
//!   `poll_oneoff`. Envoy returns at once with no events, so the module spins
//!   in real time until the timer is due; the test host also reports no
//!   events but first moves the virtual clock to the earliest deadline of the
//!   call's clock subscriptions (relative or absolute), so a `time.Sleep`
//!   costs no real time and cannot spin forever on a clock that stands still.
//! * **Host calls**: besides Proxy-Wasm 0.2.1, the SDK calls the foreign
//!   function `get_log_level` (answered with the host's level in Higress
//!   mode; `NotFound` with [`TestHost::envoy`], as on upstream Envoy, where
//!   the SDK keeps its own level) and reads the properties `route_name`,
//!   `cluster_name`, `x_request_id` and `plugin_vm_memory` (only what the
//!   test sets; `NotFound` otherwise). Upstream Envoy 1.40 answers
//!   `route_name` with an empty value in a request headers callback, where
//!   Higress gives the route's name.
//! * **Exit**: Envoy's `proc_exit` only logs at trace and returns to the
//!   module; here it ends the call as a trap, so a test sees that Go's
//!   runtime gave up.
//! * **Start time**: starting a Go module's VM (compiling 5-10 MB of Wasm
//!   and running Go's runtime start) takes about 0.6-2.6 s per module on the
//!   test host (measured on a shared 2-core machine, test build with wasmi at
//!   `opt-level = 3`; `e2e/tests/go_modules.rs` prints it for each module),
//!   against milliseconds for a Rust module. Load a Go module once per test
//!   and send several requests through it.

#![deny(missing_docs)]

mod abi;
mod build;
mod exchange;
mod headers;
mod host;
mod http;
mod imports;
mod redis;
mod state;
mod wasi;

pub use exchange::{Event, Exchange, RequestBuilder, Response, UpstreamRequest};
pub use headers::Headers;
pub use host::TestHost;
pub use http::{HttpCall, HttpUpstream, Reply};
pub use redis::{RedisCall, RedisReply, RedisUpstream};
pub use state::Phase;

use std::fmt;

/// Which gateway the host behaves as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gateway {
    /// Higress: ABI markers 0.1.0-0.2.1 and 0.2.100, Redis calls, `get_log_level`.
    Higress,
    /// Upstream Envoy: refuses modules importing Higress-only functions.
    Envoy,
}

/// Log levels of the ABI, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `proxy_log` level 0.
    Trace = 0,
    /// `proxy_log` level 1.
    Debug = 1,
    /// `proxy_log` level 2; the host's default level, and WASI stdout's.
    Info = 2,
    /// `proxy_log` level 3.
    Warn = 3,
    /// `proxy_log` level 4, and WASI stderr's.
    Error = 4,
    /// `proxy_log` level 5.
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_abi(level: i32) -> Option<LogLevel> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// One log line the plugin wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The level the plugin logged it at.
    pub level: LogLevel,
    /// The text, as the plugin wrote it (the SDK's `[plugin] [id] ...` prefix included).
    pub message: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.level, self.message)
    }
}

/// What can go wrong. Every variant that comes from the plugin carries its
/// messages, so a failing test says why (`Debug` prints the same text as
/// `Display`, so a test returning `Result<(), Error>` shows it readably).
pub enum Error {
    /// The module could not be read or compiled.
    Load {
        /// The module: its path, or which plugin was built.
        what: String,
        /// Why it failed (for a missing file: how to build it).
        reason: String,
    },
    /// The module cannot be linked (a missing import, no ABI marker), as
    /// Envoy would refuse it.
    Link(String),
    /// The module trapped (a panic, `unreachable`, out of bounds, `proc_exit`).
    Trap {
        /// The export that trapped (`proxy_on_request_headers`, ...).
        call: String,
        /// The interpreter's reason, or `proc_exit(<code>)`.
        reason: String,
        /// The plugin's log lines at `Error` and above, up to the trap.
        logs: Vec<LogLine>,
        /// What the module wrote to WASI stderr (a Rust panic message lands here).
        stderr: String,
    },
    /// The plugin used a host call in a way Envoy does not support.
    Misuse {
        /// What was misused, and in which callback.
        message: String,
        /// Every log line the plugin wrote so far.
        logs: Vec<LogLine>,
    },
    /// `proxy_on_configure` returned false.
    ConfigRejected {
        /// The log lines written while configuring (the plugin's reason).
        logs: Vec<LogLine>,
    },
    /// `proxy_on_vm_start` returned false.
    VmStartRejected {
        /// Every log line the plugin wrote so far.
        logs: Vec<LogLine>,
    },
    /// The VM failed earlier in this test; Envoy would not use it again.
    VmFailed(String),
    /// The test asked for something the host cannot do.
    Setup(String),
}

fn write_logs(f: &mut fmt::Formatter<'_>, logs: &[LogLine]) -> fmt::Result {
    for line in logs {
        write!(f, "\n  {line}")?;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load { what, reason } => write!(f, "cannot load {what}: {reason}"),
            Error::Link(why) => write!(f, "cannot link the module: {why}"),
            Error::Trap { call, reason, logs, stderr } => {
                write!(f, "the plugin trapped in {call}: {reason}")?;
                write_logs(f, logs)?;
                if !stderr.trim().is_empty() {
                    write!(f, "\n  stderr: {}", stderr.trim_end())?;
                }
                Ok(())
            }
            Error::Misuse { message, logs } => {
                write!(f, "host call misuse: {message}")?;
                write_logs(f, logs)
            }
            Error::ConfigRejected { logs } => {
                write!(f, "the plugin rejected its configuration")?;
                write_logs(f, logs)
            }
            Error::VmStartRejected { logs } => {
                write!(f, "proxy_on_vm_start returned false")?;
                write_logs(f, logs)
            }
            Error::VmFailed(why) => write!(f, "the VM failed earlier: {why}"),
            Error::Setup(why) => write!(f, "{why}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// `"xds.route_name"` to the ABI's property path (`xds\0route_name`).
pub(crate) fn property_path(path: &str) -> Vec<u8> {
    path.split('.').collect::<Vec<_>>().join("\0").into_bytes()
}
