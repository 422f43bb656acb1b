//! One plugin config shared by Envoy's workers, one filter per HTTP stream.
//!
//! Envoy builds the config once, on its main thread, and every worker creates
//! filters from it: the parsed [`Rules`] sit behind an `Arc`, and
//! `Plugin::Config` must be `Send + Sync` in native builds (see
//! [`crate::ThreadSafe`]), so a config that is not thread-safe fails to build.
//!
//! Each hook runs the matching phase method of [`Request`] (the driver,
//! `driver.rs`, shared with the Wasm build) with the filter
//! made current for the host functions, behind `catch_unwind`: a panic in a
//! plugin must not unwind into Envoy (which would abort the process). After a
//! panic the stream is answered `500` if its response has not started, the
//! filter stays out of the stream from then on, and Envoy keeps serving.
//!
//! A hook can run inside another one of the same stream (Envoy completes a
//! stream inline when a local answer ends it); the inner hook then finds the
//! request busy and does not touch it, and the end-of-stream hook it carried
//! runs as soon as the outer hook returns. A resume is not such a case: it is
//! carried out once the hook that asked for it has let go of the request (see
//! `native::host`), so the body hook Envoy then runs inline sees the body.
//!
//! The header statuses: a `StopIteration` is sent as Envoy's `StopIteration`
//! (the body hook runs while the headers are held, as on the Wasm filter with
//! `allow_on_headers_stop_iteration`, a flag dynamic modules do not need), every
//! other hold as `StopAllIterationAndWatermark`, as the Wasm filter runs them.

use super::abi::{self, FilterEnvoy};
use crate::action::HostAction as Action;
use crate::config::Rules;
use crate::host::{self, CalloutAnswer, Open, StreamType};
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
    fn request_trailers(&self, envoy: FilterEnvoy) -> u32;
    fn response_trailers(&self, envoy: FilterEnvoy) -> u32;
    fn stream_complete(&self, envoy: FilterEnvoy);
    fn callout_done(&self, envoy: FilterEnvoy, callout_id: u64, answer: CalloutAnswer);
}

struct NativeConfig<P: Plugin> {
    rules: Arc<Rules<P::Config>>,
    // `fn() -> P`: the marker type needs no thread-safety of its own.
    plugin: PhantomData<fn() -> P>,
}

impl<P: Plugin> Drop for NativeConfig<P> {
    /// Envoy drops the configuration: the plugin stops, as a Wasm root
    /// context's `proxy_on_done` tells it (a panic there is contained).
    fn drop(&mut self) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut life = crate::lifetime::PluginLife::<P>::new();
            P::on_stop(&mut crate::lifetime::PluginContext::new(&self.rules, &mut life, 0));
        }));
    }
}

fn new_config<P: Plugin>(bytes: &[u8]) -> Option<Box<dyn FilterFactory>> {
    let parsed = catch_unwind(|| crate::config::configure::<P>(bytes, false));
    let rules = Arc::new(parsed.ok().flatten()?);
    // `on_start` runs as in a Wasm VM; timers and calls it asks for have no
    // host natively, and say so in the log (see the README's native table).
    // Nothing survives a panic here but the error: the config is dropped.
    let started = catch_unwind(AssertUnwindSafe(|| {
        let mut life = crate::lifetime::PluginLife::<P>::new();
        life.configured(bytes);
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
            open: Cell::new(Open::default()),
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
    /// The header maps open to the next hook (see `native::host`).
    open: Cell<Open>,
}

fn headers_status(action: Action) -> u32 {
    match action {
        Action::Continue => abi::HEADERS_CONTINUE,
        Action::PauseHeaders => abi::HEADERS_STOP_ITERATION,
        // What Envoy's Proxy-Wasm filter makes of a pause, so both builds hold
        // alike (body actions never reach a headers hook's answer).
        Action::Pause | Action::PauseWithWatermark | Action::PauseNoBuffer => {
            abi::HEADERS_STOP_ALL_ITERATION_AND_WATERMARK
        }
    }
}

fn body_status(action: Action) -> u32 {
    match action {
        Action::Continue => abi::BODY_CONTINUE,
        Action::Pause | Action::PauseHeaders => abi::BODY_STOP_ITERATION_AND_BUFFER,
        Action::PauseWithWatermark => abi::BODY_STOP_ITERATION_AND_WATERMARK,
        Action::PauseNoBuffer => abi::BODY_STOP_ITERATION_NO_BUFFER,
    }
}

fn trailers_status(action: Action) -> u32 {
    match action {
        Action::Continue => abi::TRAILERS_CONTINUE,
        _ => abi::TRAILERS_STOP_ITERATION,
    }
}

impl<P: Plugin> NativeFilter<P> {
    /// Runs `f` on the request as the hook `body` (the body it received, if a
    /// body hook), with the header maps of [`NativeFilter::open`] changed by
    /// `opening` first and by `closing` (given `f`'s result) after. Answers
    /// `busy` when the request is already in use by an outer hook (or the
    /// plugin failed), `stop` after a panic that answered the stream. What `f`
    /// resumed is continued once the request is free again.
    // One entry for every hook keeps the panic guard, the map windows and the
    // deferred resumes in one place; its arguments are what differ per hook.
    #[allow(clippy::too_many_arguments)]
    fn run<R>(
        &self,
        envoy: FilterEnvoy,
        body: Option<StreamType>,
        opening: impl FnOnce(&mut Open),
        busy: R,
        stop: R,
        f: impl FnOnce(&mut Request<P>) -> R,
        closing: impl FnOnce(&R, &mut Open),
    ) -> R {
        if self.failed.get() {
            return busy;
        }
        let mut open = self.open.get();
        opening(&mut open);
        let entered = host::enter(envoy, body, open);
        let result = catch_unwind(AssertUnwindSafe(|| match self.request.try_borrow_mut() {
            Ok(mut request) => Some(f(&mut request)),
            Err(_) => None,
        }));
        let ran = matches!(result, Ok(Some(_)));
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
        let (mut open, resumed) = entered.leave();
        if ran {
            closing(&out, &mut open);
            self.open.set(open);
        }
        self.continue_resumed(envoy, &resumed);
        self.finish_if_completed(envoy);
        out
    }

    /// Continues the directions a hook resumed, unless the stream has been
    /// answered (or the plugin failed) since: there is nothing left to continue.
    fn continue_resumed(&self, envoy: FilterEnvoy, resumed: &[StreamType]) {
        for stream in resumed {
            let answered = self.request.try_borrow().map(|r| r.responded()).unwrap_or(false);
            if answered || self.failed.get() {
                return;
            }
            match stream {
                StreamType::Request => envoy.continue_decoding(),
                StreamType::Response => envoy.continue_encoding(),
            }
        }
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
        let _entered = host::enter(envoy, None, self.open.get());
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
        let action = self.run(
            envoy,
            None,
            |open| open.request_headers = true,
            Action::Continue,
            Action::Pause,
            |r| r.on_request_headers(end_of_stream),
            |action, open| open.request_headers &= *action != Action::Continue,
        );
        headers_status(action)
    }

    fn request_body(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let action = self.run(
            envoy,
            Some(StreamType::Request),
            |_| {},
            Action::Continue,
            Action::Pause,
            |r| r.on_body(StreamType::Request, host::body_size(StreamType::Request), end_of_stream),
            |_, _| {},
        );
        body_status(action)
    }

    fn response_headers(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let action = self.run(
            envoy,
            None,
            |open| open.response_headers = true,
            Action::Continue,
            Action::Pause,
            |r| r.on_response_headers(end_of_stream),
            |action, open| open.response_headers &= *action != Action::Continue,
        );
        if action == Action::Continue {
            self.response_started.set(true);
        }
        headers_status(action)
    }

    fn response_body(&self, envoy: FilterEnvoy, end_of_stream: bool) -> u32 {
        let action = self.run(
            envoy,
            Some(StreamType::Response),
            |_| {},
            Action::Continue,
            Action::Continue,
            |r| r.on_body(StreamType::Response, host::body_size(StreamType::Response), end_of_stream),
            |_, _| {},
        );
        body_status(action)
    }

    // Trailers hooks receive no chunk: the body they see (for a `Buffered`
    // hook run from them) is what Envoy buffered.
    fn request_trailers(&self, envoy: FilterEnvoy) -> u32 {
        let action = self.run(
            envoy,
            None,
            |open| open.request_trailers = true,
            Action::Continue,
            Action::Pause,
            |r| r.on_trailers(StreamType::Request),
            |_, open| open.request_trailers = false,
        );
        trailers_status(action)
    }

    fn response_trailers(&self, envoy: FilterEnvoy) -> u32 {
        let action = self.run(
            envoy,
            None,
            |open| open.response_trailers = true,
            Action::Continue,
            Action::Continue,
            |r| r.on_trailers(StreamType::Response),
            |_, open| open.response_trailers = false,
        );
        trailers_status(action)
    }

    fn stream_complete(&self, envoy: FilterEnvoy) {
        self.completed.set(true);
        self.finish_if_completed(envoy);
    }

    fn callout_done(&self, envoy: FilterEnvoy, callout_id: u64, answer: CalloutAnswer) {
        let Ok(token) = u32::try_from(callout_id) else { return };
        let body_size = answer.body.len();
        let _answer = host::hold_answer(answer);
        self.run(envoy, None, |_| {}, (), (), |r| r.on_http_response(token, body_size), |_, _| {});
    }
}
