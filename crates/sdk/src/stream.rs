//! Glue between the `proxy-wasm` crate's contexts and a [`Plugin`].
//!
//! One [`Root`] per plugin configuration parses the JSON; one [`Stream`] per
//! HTTP exchange owns the [`Request`] the hooks see. With the `redis` feature
//! the request sits behind a shared cell, because answers to Redis calls
//! arrive outside the `proxy-wasm` dispatcher, which owns the stream; hosts
//! never call into a VM while it is running, so the cell is never borrowed
//! twice (and if it were, the SDK logs and lets the request go on rather than
//! trap). Without the feature the stream owns the request: one allocation per
//! request, as a module written on `proxy-wasm` alone.

use crate::config::Rules;
use crate::host::{self, BufferType, StreamType};
use crate::log::Log;
use crate::{Plugin, Request};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::sync::Arc;

pub(crate) struct Root<P: Plugin> {
    rules: Arc<Rules<P::Config>>,
    configured: bool,
}

impl<P: Plugin> Root<P> {
    pub(crate) fn new() -> Self {
        // Until configured, requests pass untouched: no global config, no rules.
        Root { rules: Arc::new(Rules::empty()), configured: false }
    }
}

impl<P: Plugin> Context for Root<P> {}

impl<P: Plugin> RootContext for Root<P> {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                Log::new(P::NAME, None, false).critical(format_args!("cannot read the configuration: {status}"));
                return false;
            }
        };
        match Rules::parse(&bytes, P::RULE_MODE) {
            Ok(rules) => {
                let log = Log::new(P::NAME, rules.plugin_id(), false);
                for (path, config) in rules.configs() {
                    if let Err(err) = P::on_configure(config, &log) {
                        let at = if path.is_empty() { String::new() } else { format!("{path}: ") };
                        log.critical(format_args!("invalid configuration: {at}{err}"));
                        return false;
                    }
                }
                log.info(if self.configured { "configuration replaced" } else { "configured" });
                self.rules = Arc::new(rules);
                self.configured = true;
                true
            }
            Err(err) => {
                Log::new(P::NAME, None, false).critical(format_args!("invalid configuration: {err}"));
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let request = Request::<P>::new(Arc::clone(&self.rules), context_id);
        #[cfg(feature = "redis")]
        let request = {
            let shared = std::rc::Rc::new(std::cell::RefCell::new(request));
            crate::redis::track(context_id, &shared);
            shared
        };
        Some(Box::new(Stream { request, context_id }))
    }
}

pub(crate) struct Stream<P: Plugin> {
    #[cfg(feature = "redis")]
    request: std::rc::Rc<std::cell::RefCell<Request<P>>>,
    #[cfg(not(feature = "redis"))]
    request: Request<P>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    context_id: u32,
}

#[cfg(feature = "redis")]
impl<P: Plugin> Drop for Stream<P> {
    fn drop(&mut self) {
        crate::redis::forget(self.context_id);
    }
}

impl<P: Plugin> Stream<P> {
    #[cfg(feature = "redis")]
    fn with<R>(&mut self, fallback: R, f: impl FnOnce(&mut Request<P>) -> R) -> R {
        match self.request.try_borrow_mut() {
            Ok(mut request) => f(&mut request),
            Err(_) => {
                Log::new(P::NAME, None, true).error("host re-entered a running request; letting it go on");
                fallback
            }
        }
    }

    #[cfg(not(feature = "redis"))]
    fn with<R>(&mut self, _fallback: R, f: impl FnOnce(&mut Request<P>) -> R) -> R {
        f(&mut self.request)
    }
}

impl<P: Plugin> Context for Stream<P> {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        self.with((), |req| req.on_http_response(token, body_size));
    }
}

impl<P: Plugin> HttpContext for Stream<P> {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |req| req.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |req| req.on_body(StreamType::Request, size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |req| req.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |req| req.on_body(StreamType::Response, size, end_of_stream))
    }

    fn on_log(&mut self) {
        self.with((), |req| req.on_done());
    }
}

/// Installs `P` as the module's plugin (called from [`main!`](crate::main)).
pub fn register<P: Plugin>() {
    std::panic::set_hook(Box::new(|info| {
        // A panic is a bug in the plugin: say where before the VM traps.
        let _ = host::log(host::LogLevel::Critical, &format!("[{}] panic: {info}", P::NAME));
    }));
    proxy_wasm::set_root_context(|_| Box::new(Root::<P>::new()));
}
