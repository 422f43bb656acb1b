//! One plugin config shared by Envoy's workers, one filter per HTTP stream.
//!
//! Envoy builds the config once, on its main thread, and every worker creates
//! filters from it: the parsed [`Rules`] sit behind an `Arc`, and
//! `Plugin::Config` must be `Send + Sync` in native builds (see
//! [`crate::ThreadSafe`]), so a config that is not thread-safe fails to build.
//!
//! Each hook runs the matching phase method of [`Request`] with the filter
//! made current for the host functions, behind `catch_unwind`: a panic in a
//! plugin must not unwind into Envoy (which would abort the process). After a
//! panic the stream is answered `500` if its response has not started, the
//! filter stays out of the stream from then on, and Envoy keeps serving.
//!
//! A hook can run inside another one of the same stream (Envoy completes a
//! stream inline when a local answer ends it); the inner hook then finds the
//! request busy and does not touch it, and the end-of-stream hook it carried
//! runs as soon as the outer hook returns.

use super::abi::{self, FilterEnvoy};
use crate::action::HostAction as Action;
use crate::config::Rules;
use crate::host::{self, CalloutAnswer, Entered, StreamType};
use crate::log::Log;
use crate::{Plugin, Request};
use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

/// Builds a plugin's config from Envoy's filter config (the module has one plugin).
type NewConfig = fn(&[u8]) -> Option<Box<dyn FilterFactory>>;

static NEW_CONFIG: OnceLock<NewConfig> = OnceLock::new();

/// Installs `P` as the module's plugin; called by `on_program_init`, which
/// [`main!`](crate::main) exports. Returns the ABI version the module was built for.
pub fn program_init<P: Plugin>() -> *const c_char {
    // A second call (never made by Envoy) keeps the first plugin.
    let _ = NEW_CONFIG.set(new_config::<P>);
    std::panic::set_hook(Box::new(|info| {
        // Caught by the hook's guard; say where before the stream is answered.
        let _ = host::log(host::LogLevel::Critical, &format!("[{}] panic: {info}", P::NAME));
    }));
    abi::ABI_VERSION.as_ptr()
}

/// Parses Envoy's filter config with the installed plugin; `None` refuses it.
pub(crate) fn new_filter_config(config: &[u8]) -> Option<Box<dyn FilterFactory>> {
    NEW_CONFIG.get().and_then(|new| new(config))
}

/// A parsed configuration, shared by every worker thread.
pub(crate) trait FilterFactory: Send + Sync {
    fn new_filter(&self) -> Box<dyn FilterHooks>;
}

/// The per-stream hooks, answering with the ABI's status numbers.
pub(crate) trait FilterHooks {
    fn request_headers(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32;
    fn request_body(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32;
    fn response_headers(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32;
    fn response_body(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32;
    fn stream_complete(&self, envoy: FilterEnvoy);
    fn callout_done(&self, envoy: FilterEnvoy, callout_id: u64, answer: CalloutAnswer);
}

struct NativeConfig<P: Plugin> {
    rules: Arc<Rules<P::Config>>,
    // `fn() -> P`: the marker type needs no thread-safety of its own.
    plugin: PhantomData<fn() -> P>,
}

fn new_config<P: Plugin>(bytes: &[u8]) -> Option<Box<dyn FilterFactory>> {
    let parsed = catch_unwind(|| match Rules::<P::Config>::parse(bytes, P::RULE_MODE) {
        Ok(rules) => {
            let log = Log::new(P::NAME, rules.plugin_id(), false);
            for (path, config) in rules.configs() {
                if let Err(err) = P::on_configure(config, &log) {
                    let at = if path.is_empty() { String::new() } else { format!("{path}: ") };
                    log.critical(format_args!("invalid configuration: {at}{err}"));
                    return None;
                }
            }
            log.info("configured");
            Some(rules)
        }
        Err(err) => {
            Log::new(P::NAME, None, false).critical(format_args!("invalid configuration: {err}"));
            None
        }
    });
    let rules = Arc::new(parsed.ok().flatten()?);
    // `on_start` runs as in a Wasm VM; timers and calls it asks for have no
    // host natively, and say so in the log (see the README's native table).
    // Nothing survives a panic here but the error: the config is dropped.
    let started = catch_unwind(AssertUnwindSafe(|| {
        let mut life = crate::lifetime::PluginLife::<P>::new();
        let mut plugin = crate::lifetime::PluginContext::new(&rules, &mut life, 0);
        match P::on_start(&mut plugin) {
            Ok(()) => true,
            Err(err) => {
                plugin.log().critical(format_args!("plugin start failed: {err}"));
                false
            }
        }
    }));
    if !matches!(started, Ok(true)) {
        return None;
    }
    Some(Box::new(NativeConfig::<P> { rules, plugin: PhantomData }))
}

impl<P: Plugin> FilterFactory for NativeConfig<P> {
    fn new_filter(&self) -> Box<dyn FilterHooks> {
        Box::new(NativeFilter::<P> {
            request: RefCell::new(Request::new(Arc::clone(&self.rules), 0)),
            completed: Cell::new(false),
            done: Cell::new(false),
            failed: Cell::new(false),
            response_started: Cell::new(false),
        })
    }
}

struct NativeFilter<P: Plugin> {
    request: RefCell<Request<P>>,
    /// Envoy reported the end of the stream.
    completed: Cell<bool>,
    /// `on_done` ran.
    done: Cell<bool>,
    /// A hook panicked: the plugin stays out of this stream.
    failed: Cell<bool>,
    /// The response headers went on to the client.
    response_started: Cell<bool>,
}

fn headers_status(action: Action) -> u32 {
    match action {
        Action::Continue => abi::HEADERS_CONTINUE,
        // What Envoy's Proxy-Wasm filter makes of a pause, so both builds hold alike.
        Action::Pause => abi::HEADERS_STOP_ALL_ITERATION_AND_WATERMARK,
    }
}

fn body_status(action: Action) -> u32 {
    match action {
        Action::Continue => abi::BODY_CONTINUE,
        Action::Pause => abi::BODY_STOP_ITERATION_AND_BUFFER,
    }
}

impl<P: Plugin> NativeFilter<P> {
    /// Runs `f` on the request with `entered` current; `busy` when the request
    /// is already in use by an outer hook (or the plugin failed), `stop` after a panic
    /// that answered the stream.
    fn run<R>(
        &self,
        envoy: FilterEnvoy,
        entered: Entered,
        busy: R,
        stop: R,
        f: impl FnOnce(&mut Request<P>) -> R,
    ) -> R {
        if self.failed.get() {
            return busy;
        }
        let result = catch_unwind(AssertUnwindSafe(|| match self.request.try_borrow_mut() {
            Ok(mut request) => Some(f(&mut request)),
            Err(_) => None,
        }));
        let out = match result {
            Ok(Some(out)) => out,
            Ok(None) => busy,
            Err(_) => {
                if self.fail(envoy) {
                    stop
                } else {
                    busy
                }
            }
        };
        drop(entered);
        self.finish_if_completed(envoy);
        out
    }

    /// After a panic: answer 500 while the response has not started; else let
    /// a held response go on. Returns whether the stream was answered.
    fn fail(&self, envoy: FilterEnvoy) -> bool {
        self.failed.set(true);
        let responded = self.request.try_borrow().map(|r| r.responded()).unwrap_or(true);
        if !responded && !self.response_started.get() {
            envoy.send_response(500, &[], b"internal plugin error", "plugin_panicked");
            return true;
        }
        if self.response_started.get() {
            envoy.continue_encoding();
        }
        false
    }

    /// Runs `on_done` once the stream completed and no hook holds the request.
    fn finish_if_completed(&self, envoy: FilterEnvoy) {
        if !self.completed.get() || self.done.get() || self.failed.get() {
            return;
        }
        let _entered = host::enter(envoy, None);
        let result = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(mut request) = self.request.try_borrow_mut() {
                self.done.set(true);
                request.on_done();
            }
        }));
        if result.is_err() {
            self.failed.set(true);
        }
    }
}

impl<P: Plugin> FilterHooks for NativeFilter<P> {
    fn request_headers(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let entered = host::enter(envoy, None);
        let action = self.run(envoy, entered, Action::Continue, Action::Pause, |r| r.on_request_headers(end_of_stream));
        headers_status(action)
    }

    fn request_body(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let entered = host::enter(envoy, Some(StreamType::Request));
        let action = self.run(envoy, entered, Action::Continue, Action::Pause, |r| {
            r.on_body(StreamType::Request, host::body_size(StreamType::Request), end_of_stream)
        });
        body_status(action)
    }

    fn response_headers(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let entered = host::enter(envoy, None);
        let action =
            self.run(envoy, entered, Action::Continue, Action::Pause, |r| r.on_response_headers(end_of_stream));
        if action == Action::Continue {
            self.response_started.set(true);
        }
        headers_status(action)
    }

    fn response_body(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let entered = host::enter(envoy, Some(StreamType::Response));
        let action = self.run(envoy, entered, Action::Continue, Action::Continue, |r| {
            r.on_body(StreamType::Response, host::body_size(StreamType::Response), end_of_stream)
        });
        body_status(action)
    }

    fn stream_complete(&self, envoy: FilterEnvoy) {
        self.completed.set(true);
        self.finish_if_completed(envoy);
    }

    fn callout_done(&self, envoy: FilterEnvoy, callout_id: u64, answer: CalloutAnswer) {
        let Ok(token) = u32::try_from(callout_id) else { return };
        let body_size = answer.body.len();
        let entered = host::enter_with_answer(envoy, answer);
        self.run(envoy, entered, (), (), |r| r.on_http_response(token, body_size));
    }
}
