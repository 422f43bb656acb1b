//! # gateway-sdk
//!
//! Write gateway plugins for Higress and Envoy in Rust: what the Higress Go
//! `wrapper` gives, typed, on Proxy-Wasm ABI 0.2.1. The SDK declares every
//! host function it imports and exports every callback itself, so nothing a
//! host answers can trap the VM.
//!
//! A plugin is a type implementing [`Plugin`]: a name, a config type parsed by
//! serde from the host's JSON, a per-request state type, and hooks for the HTTP
//! phases. [`main!`] exports it.
//!
//! ```
//! use gateway_sdk::prelude::*;
//!
//! #[derive(Deserialize)]
//! #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! struct Config {
//!     #[serde(default)]
//!     mock_enable: bool,
//! }
//!
//! struct Mock;
//!
//! impl Plugin for Mock {
//!     const NAME: &'static str = "mock";
//!     type Config = Config;
//!     type State = ();
//!
//!     fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
//!         req.add_header("hello", "world");
//!         if config.mock_enable {
//!             return req.respond(200, &[], "hello world");
//!         }
//!         HeaderAction::Continue
//!     }
//! }
//!
//! gateway_sdk::main!(Mock);
//! ```
//!
//! What the SDK carries for the plugin:
//!
//! * **Configuration** ([`config`]): the JSON is parsed into `Config` for the
//!   global config and for each `_rules_` entry (per route, domain, service or
//!   route prefix). A config the plugin refuses fails plugin start, with an
//!   error naming the JSON path, and Envoy refuses to start with it.
//! * **Requests** ([`Request`]): headers, bodies, local answers, resume, and
//!   the typed per-request [`Request::state`]; nothing is read from the host
//!   until asked for.
//! * **Flow** ([`action`]): the Go SDK's header and data states, and what each
//!   becomes on the host. [`Request::respond_with_details`] answers with the
//!   response code details an access log shows.
//! * **Metrics** ([`metrics`]): counters, gauges and histograms, with tags,
//!   declared as statics and defined with the host once per VM.
//! * **Properties** ([`property`]): typed reads, writes, and the Higress
//!   properties (no reroute, per-request body buffer limits, VM rebuilds).
//! * **User attributes** ([`attributes`]): key/values for the access log
//!   (`custom_log`, `ai_log`) and the trace (`trace_span_tag.*`).
//! * **HTTP calls** ([`http`]): Higress cluster naming, every method, timeouts;
//!   the callback gets the same request back.
//! * **Redis calls** ([`redis`](redis/index.html), with the `redis` feature;
//!   Higress only, so only a plugin that enables it imports the Higress host
//!   functions).
//! * **Higress's other host calls** ([`higress`](higress/index.html), with
//!   the `higress` feature): the cluster's hosts, choosing one, and sending
//!   data down the response's filter chain.
//! * **Plugin lifetime** ([`lifetime`], [`shared`], [`store`]): a
//!   start/reload hook and a stop hook, timers, HTTP calls outside requests,
//!   leader election among the VMs, the plugin-wide store, and data and
//!   queues shared by every VM (worker) of the plugin.
//! * **Trailers**: their own hooks ([`Plugin::on_request_trailers`],
//!   [`Plugin::on_response_trailers`]) and the `Request` trailer methods.
//! * **Limits** ([`limit`]): fixed windows, what requests share a counter and
//!   its bounded key, the IETF `RateLimit-*` headers; query parameters
//!   ([`query`]) and the client's IP ([`Request::client_ip`]).
//! * **Logging** ([`log`]): `[plugin] [id] [x-request-id] message` at the
//!   host's level.
//! * **Settings and their JSON Schema** ([`settings`], [`fields`],
//!   [`schema`](schema/index.html)): field types that check their values at
//!   start, and the schema of a plugin's whole config document (native
//!   builds only: a Wasm module carries no schema code).
//!
//! No host call result, request value or config is ever unwrapped: errors are
//! values, logged or returned, and never trap the VM.
//!
//! **Two builds of one source.** By default a plugin builds as a Proxy-Wasm
//! module (`.wasm`, for Higress, Istio and Envoy). With the `native` feature
//! (and the `native` profile) the same source builds as an Envoy dynamic
//! module (`.so`, for upstream Envoy >= 1.40): see `native/mod.rs`, and the
//! README for what behaves differently there.

#![deny(missing_docs)]

pub mod action;
#[cfg(target_family = "wasm")]
mod alloc;
pub mod attributes;
mod body;
// The calls a request (or the plugin) waits on, and what each answer runs.
// `request.rs`'s docs map the modules of a request and their dependencies.
mod callouts;
// Higress's cluster names (re-exported by `http`).
mod cluster;
pub mod config;
mod details;
// Routes the host's calls to contexts and callouts; native builds have a
// filter per request and need only its callout bookkeeping.
#[cfg_attr(feature = "native", path = "native/dispatch.rs")]
mod dispatch;
// Runs a request's phases and the answers to its calls (for `stream.rs` and `native/filter.rs`).
mod driver;
pub mod fields;
// Where a request is in its exchange and what it holds (the façade's and the driver's state).
mod flow;
pub mod foreign;
// The host functions: Proxy-Wasm imports, or Envoy dynamic module callbacks.
#[cfg(any(feature = "higress", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
pub mod higress;
#[cfg_attr(feature = "native", path = "native/host.rs")]
mod host;
mod host_types;
pub mod http;
// The answer to an HTTP call (re-exported by `http`).
mod http_response;
mod json;
mod leader;
pub mod lifetime;
pub mod limit;
pub mod log;
pub mod metrics;
#[cfg(feature = "native")]
mod native;
mod pairs;
pub mod property;
pub mod query;
// With the `redis` feature; and in native `cargo doc` whatever the features,
// so that the docs show it (not when collecting doctests: they link the crate
// as built). The same condition guards its parts in the other modules.
#[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
pub mod redis;
mod request;
#[cfg(not(target_family = "wasm"))]
pub mod schema;
pub mod settings;
pub mod shared;
pub mod store;
#[cfg(not(feature = "native"))]
mod stream;
mod trailers;
// Host bytes as text.
mod text;

#[cfg(all(feature = "native", feature = "higress"))]
compile_error!("the `higress` feature imports Higress's host functions: a plugin with it builds as .wasm only");
#[cfg(all(feature = "native", feature = "redis"))]
compile_error!(
    "the Redis client needs Higress's host functions: a plugin with the `redis` feature builds as .wasm only"
);
#[cfg(all(feature = "native", target_family = "wasm"))]
compile_error!("the `native` feature builds an Envoy dynamic module (x86_64/aarch64 Linux), not a Wasm module");

pub use action::{BodyMode, DataAction, HeaderAction, TrailerAction};
pub use attributes::{AttributeValue, Attributes};
pub use config::{ConfigError, RuleMode};
pub use flow::Phase;
pub use host::{LogLevel, Status};
pub use http::{Cluster, HttpCallError, HttpClient, HttpResponse, Method};
pub use lifetime::PluginContext;
pub use log::{Log, Redacted};
pub use property::{FromProperty, PropertyError};
#[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
pub use redis::{RedisClient, RedisError, RedisOptions, RedisResult};
pub use request::{Body, Request};
pub use shared::{Cas, SharedError, SharedQueue};

/// Everything a plugin usually needs: the hooks' types, the config field
/// types of [`fields`], `JsonSchema` and serde's `Deserialize`.
pub mod prelude {
    pub use crate::fields::*;
    pub use crate::settings::*;
    pub use crate::{
        Body, BodyMode, Cluster, DataAction, HeaderAction, HttpClient, HttpResponse, Plugin, PluginContext, Redacted,
        Request, RuleMode, TrailerAction,
    };
    pub use serde::Deserialize;
}

/// What a plugin's config must be to be shared: in native builds Envoy's
/// worker threads share one parsed config, so it must be `Send + Sync`
/// (a config holding an `Rc` or a `Cell` fails to build natively); a Wasm VM
/// has one thread and asks nothing more.
#[cfg(feature = "native")]
pub trait ThreadSafe: Send + Sync + 'static {}
#[cfg(feature = "native")]
impl<T: Send + Sync + 'static> ThreadSafe for T {}
/// What a plugin's config must be to be shared (in Wasm builds: nothing more than `'static`).
#[cfg(not(feature = "native"))]
pub trait ThreadSafe: 'static {}
#[cfg(not(feature = "native"))]
impl<T: 'static> ThreadSafe for T {}

/// A gateway plugin: its name, config, per-request state and hooks.
///
/// Every hook has a default that lets the request go on, so a plugin writes
/// only the ones it needs. Hooks get the request and the config chosen for it
/// (global or a matching rule); when no config applies, no hook runs.
pub trait Plugin: Sized + 'static {
    /// The name in log lines (`[NAME] ...`).
    const NAME: &'static str;
    /// The plugin's configuration, parsed by serde from the host's JSON.
    /// Use `#[serde(try_from = "...")]` to check values and derive fields.
    type Config: serde::de::DeserializeOwned + ThreadSafe;
    /// Per-request state, created with `Default` for each request.
    type State: Default + 'static;

    /// How rules' configs are built (Higress's default: each rule stands alone).
    const RULE_MODE: RuleMode = RuleMode::Standalone;

    /// Rule-level isolation (Go: `EnableRuleLevelConfigIsolation`): a rule
    /// whose config fails keeps its last good config (by its match keys) or
    /// is left out, instead of refusing the whole configuration; the
    /// configuration is refused only when every rule fails. See [`config`].
    const RULE_ISOLATION: bool = false;

    /// Ask the host for a fresh VM after this many requests (0: never).
    /// Higress replaces the VM; upstream Envoy ignores the request. Go:
    /// `WithRebuildAfterRequests`. See [`property`].
    const REBUILD_AFTER_REQUESTS: u64 = 0;

    /// Ask the host for a fresh VM once its memory reaches this many bytes
    /// (0: never), checked as each request starts. Higress only (upstream
    /// Envoy does not report VM memory). Go: `WithRebuildMaxMemBytes`.
    const REBUILD_MAX_MEMORY_BYTES: u64 = 0;

    /// Keep `:scheme`, `:authority`, `:path` and `:method` as the request
    /// headers hook leaves them, so that [`Request::scheme`], [`Request::host`],
    /// [`Request::path`] and [`Request::method`] answer in every later phase,
    /// as Go's `Scheme()`, `Host()`, `Path()`, `Method()` do. Envoy stops
    /// handing out the request headers once the request went on, so without
    /// it they answer `None` there. Off by default: keeping them costs four
    /// header reads per request (about 3,000 Wasm instructions, twice what
    /// the mock plugin spends on a request otherwise).
    const KEEP_REQUEST_LINE: bool = false;

    /// Skip, as the Go SDK does, the bodies a plugin could only damage:
    /// binary ones (`octet-stream` or `grpc` content types, any
    /// `content-encoding`) and WebSocket streams. `false` lets them reach the
    /// body hooks. See [`Request::skip_request_body`].
    const SKIP_BINARY_BODIES: bool = true;

    /// A config was parsed (the global one, then each rule's), before any
    /// request uses it: check what serde cannot, or open clients early.
    /// An error fails plugin start, and Envoy refuses the configuration.
    fn on_configure(config: &Self::Config, log: &Log<'_>) -> Result<(), String> {
        let _ = (config, log);
        Ok(())
    }

    /// The plugin started, or was reconfigured: after the configuration was
    /// parsed and checked (Go's `PrePluginStartOrReload`). Register timers
    /// ([`PluginContext::every`]) or make HTTP calls here; an error fails
    /// plugin start, as a bad configuration does. A reload first drops the
    /// timers the last start registered.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use gateway_sdk::prelude::*;
    /// # #[derive(Deserialize)]
    /// # struct Config {}
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = Config;
    /// #     type State = ();
    /// fn on_start(plugin: &mut PluginContext<'_, Self>) -> Result<(), String> {
    ///     plugin.every(Duration::from_secs(10), |plugin| plugin.log().info("tick"));
    ///     Ok(())
    /// }
    /// # }
    /// ```
    fn on_start(plugin: &mut PluginContext<'_, Self>) -> Result<(), String> {
        let _ = plugin;
        Ok(())
    }

    /// The plugin stops (Go's `OnPluginDone`): its configuration was
    /// replaced or removed, or the gateway is shutting down. Flush what must
    /// not be lost, synchronously: the SDK tells the host the plugin is done
    /// when this returns, so calls made here get no answer. Natively it runs
    /// when Envoy drops the configuration.
    fn on_stop(plugin: &mut PluginContext<'_, Self>) {
        let _ = plugin;
    }

    /// Data arrived on a [`SharedQueue`] this VM registered
    /// ([`SharedQueue::register`]); take it with [`SharedQueue::dequeue`].
    fn on_queue_ready(plugin: &mut PluginContext<'_, Self>, queue: SharedQueue) {
        let _ = (plugin, queue);
    }

    /// How the request body reaches [`Plugin::on_request_body`] for requests
    /// under `config` (default: chunk by chunk).
    fn request_body_mode(config: &Self::Config) -> BodyMode {
        let _ = config;
        BodyMode::Streamed
    }

    /// How the response body reaches [`Plugin::on_response_body`] (default: chunk by chunk).
    fn response_body_mode(config: &Self::Config) -> BodyMode {
        let _ = config;
        BodyMode::Streamed
    }

    /// The request headers arrived.
    fn on_request_headers(req: &mut Request<Self>, config: &Self::Config) -> HeaderAction {
        let _ = (req, config);
        HeaderAction::Continue
    }

    /// Request body arrived (a chunk, or the whole body when buffered).
    fn on_request_body(req: &mut Request<Self>, config: &Self::Config, body: Body) -> DataAction {
        let _ = (req, config, body);
        DataAction::Continue
    }

    /// The response headers arrived.
    fn on_response_headers(req: &mut Request<Self>, config: &Self::Config) -> HeaderAction {
        let _ = (req, config);
        HeaderAction::Continue
    }

    /// Response body arrived (a chunk, or the whole body when buffered).
    fn on_response_body(req: &mut Request<Self>, config: &Self::Config, body: Body) -> DataAction {
        let _ = (req, config, body);
        DataAction::Continue
    }

    /// The request's trailers arrived (after its last body chunk; only
    /// messages that carry trailers have them). Read and edit them with
    /// [`Request::request_trailer`] and the other trailer methods.
    fn on_request_trailers(req: &mut Request<Self>, config: &Self::Config) -> TrailerAction {
        let _ = (req, config);
        TrailerAction::Continue
    }

    /// The response's trailers arrived (gRPC's `grpc-status`, for one).
    fn on_response_trailers(req: &mut Request<Self>, config: &Self::Config) -> TrailerAction {
        let _ = (req, config);
        TrailerAction::Continue
    }

    /// The exchange is over (after the response went out, or the client left).
    fn on_done(req: &mut Request<Self>, config: &Self::Config) {
        let _ = (req, config);
    }
}

/// The host's clock (Envoy's, or a test host's), which tests can control;
/// falls back to the system clock if the host does not tell.
pub fn now() -> std::time::SystemTime {
    match host::now_nanos() {
        Ok(nanos) => std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos),
        Err(_) => std::time::SystemTime::now(),
    }
}

/// Exports a [`Plugin`] as the module's plugin: `gateway_sdk::main!(MyPlugin);`
///
/// The entry point (`_initialize`) exists in Wasm builds only, so that a
/// native program or test can link several plugin crates (as rlibs, for
/// their config types) without duplicate symbols.
#[cfg(not(feature = "native"))]
#[macro_export]
macro_rules! main {
    ($plugin:ty) => {
        #[cfg(target_family = "wasm")]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::__private::initialize::<$plugin>();
        }
        $crate::__schema_program!($plugin);
    };
}

/// Exports a [`Plugin`] as the module's plugin: `gateway_sdk::main!(MyPlugin);`
///
/// In native builds this is the dynamic module's `on_program_init`, which
/// installs the plugin and reports the ABI version it was built for; the
/// SDK exports the other hooks.
#[cfg(feature = "native")]
#[macro_export]
macro_rules! main {
    ($plugin:ty) => {
        #[no_mangle]
        pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const ::std::ffi::c_char {
            $crate::__private::program_init::<$plugin>()
        }
    };
}

/// The header-map wire codec, for the fuzz targets (not part of the API).
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::pairs::{decode, encode};
}

/// The bare host calls behind the SDK's back, for the test fixture that shows
/// what the host does with them (`e2e/fixtures/probe`); not part of the API.
#[doc(hidden)]
pub mod __raw {
    use crate::host::{self, StreamType};

    fn status_name(result: host::HostResult<()>) -> &'static str {
        match result {
            Ok(()) => "Ok",
            Err(status) => status.name(),
        }
    }

    /// Continues the request (`response` false) or the response, held or not.
    pub fn continue_stream(response: bool) -> &'static str {
        status_name(host::continue_stream(if response { StreamType::Response } else { StreamType::Request }))
    }

    /// Sets a request header to `value` as given, CR, LF and NUL included
    /// (the SDK's `set_header` refuses those): what the host does with it.
    pub fn set_request_header(name: &str, value: &[u8]) -> &'static str {
        status_name(host::replace_map_value(host::MapType::RequestHeaders, name, value))
    }

    /// Sends a local answer without the SDK's bookkeeping.
    pub fn send_local_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> &'static str {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        status_name(host::send_local_response_with_details(u32::from(status), "", &headers, body))
    }
}

#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "native")]
    pub use crate::native::program_init;
    #[cfg(not(feature = "native"))]
    pub use crate::stream::{initialize, register};
}
