//! Glue between the host's contexts and a [`Plugin`].
//!
//! One [`Root`] per plugin configuration (root context) parses the JSON; one
//! [`Request`] per HTTP exchange (HTTP context) carries the hooks. The
//! exports in `dispatch.rs` reach them through [`PluginContexts`], which owns
//! both by context id: a request lives inline in its map (no allocation of
//! its own once the map is warm) and is found again by id for each phase and
//! for the answers to its calls.
//!
//! The phases and answers themselves are run by the driver (`driver.rs`,
//! methods of [`Request`]); this module only finds the context, so it
//! depends on the request, the driver, `lifetime.rs` and `dispatch.rs`.

use crate::action::HostAction;
use crate::config::Rules;
use crate::dispatch::{self, Answer, Callout, Contexts};
use crate::host::{self, BufferType, StreamType};
use crate::lifetime::{PluginContext, PluginLife};
use crate::log::Log;
use crate::shared::SharedQueue;
use crate::{Plugin, Request};
use std::collections::BTreeMap;
use std::rc::Rc;

pub(crate) struct Root<P: Plugin> {
    rules: Rc<Rules<P::Config>>,
    configured: bool,
    life: PluginLife<P>,
}

impl<P: Plugin> Root<P> {
    pub(crate) fn new() -> Self {
        // Until configured, requests pass untouched: no global config, no rules.
        Root { rules: Rc::new(Rules::empty()), configured: false, life: PluginLife::new() }
    }

    /// The plugin-wide handle of this root context.
    pub(crate) fn context(&mut self, root_id: u32) -> PluginContext<'_, P> {
        PluginContext::new(&self.rules, &mut self.life, root_id)
    }

    /// Reads and checks the plugin configuration; `false` fails plugin start.
    pub(crate) fn on_configure(&mut self, root_id: u32, size: usize) -> bool {
        let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                Log::new(P::NAME, None, false).critical(format_args!("cannot read the configuration: {status}"));
                return false;
            }
        };
        let Some(rules) = crate::config::configure::<P>(&bytes, self.configured) else { return false };
        self.rules = Rc::new(rules);
        self.configured = true;
        self.life.configured(&bytes);
        let mut plugin = self.context(root_id);
        plugin.clear_timers();
        match P::on_start(&mut plugin) {
            Ok(()) => true,
            Err(err) => {
                plugin.log().critical(format_args!("plugin start failed: {err}"));
                false
            }
        }
    }

    /// The request a new HTTP context of this root carries.
    pub(crate) fn new_request(&self, context_id: u32) -> Request<P> {
        Request::new(Rc::clone(&self.rules), context_id)
    }
}

/// The plugin's live contexts, by the host's context id.
pub(crate) struct PluginContexts<P: Plugin> {
    roots: BTreeMap<u32, Root<P>>,
    requests: BTreeMap<u32, Request<P>>,
}

impl<P: Plugin> PluginContexts<P> {
    pub(crate) fn new() -> Self {
        PluginContexts { roots: BTreeMap::new(), requests: BTreeMap::new() }
    }

    fn logger(&self) -> Log<'static> {
        Log::new(P::NAME, None, false)
    }

    /// Runs a phase on request `context_id`; an unknown id is logged and
    /// the stream goes on.
    fn phase(&mut self, context_id: u32, f: impl FnOnce(&mut Request<P>) -> HostAction) -> HostAction {
        match self.requests.get_mut(&context_id) {
            Some(request) => f(request),
            None => {
                self.logger().warn(format_args!("host sent a phase for unknown context {context_id}; it goes on"));
                HostAction::Continue
            }
        }
    }
}

impl<P: Plugin> Contexts for PluginContexts<P> {
    fn plugin_name(&self) -> &'static str {
        P::NAME
    }

    fn create(&mut self, context_id: u32, parent_id: u32) {
        if parent_id == 0 {
            self.roots.insert(context_id, Root::new());
            return;
        }
        match self.roots.get(&parent_id) {
            Some(root) => {
                let request = root.new_request(context_id);
                self.requests.insert(context_id, request);
            }
            None => self.logger().warn(format_args!("context {context_id} of unknown root {parent_id} ignored")),
        }
    }

    fn vm_start(&mut self, _root_id: u32, size: usize) -> bool {
        // The VM configuration (Envoy's `vm_config.configuration`), kept for
        // `PluginContext::vm_configuration`; a VM without one starts as well.
        match host::get_buffer(BufferType::VmConfiguration, 0, size) {
            Ok(bytes) => crate::lifetime::set_vm_configuration(bytes.unwrap_or_default()),
            Err(status) => self.logger().warn(format_args!("cannot read the VM configuration: {status}")),
        }
        true
    }

    fn configure(&mut self, root_id: u32, size: usize) -> bool {
        match self.roots.get_mut(&root_id) {
            Some(root) => root.on_configure(root_id, size),
            None => {
                self.logger().critical(format_args!("configuration for unknown root context {root_id}"));
                false
            }
        }
    }

    fn request_headers(&mut self, context_id: u32, end_of_stream: bool) -> HostAction {
        self.phase(context_id, |req| req.on_request_headers(end_of_stream))
    }

    fn request_body(&mut self, context_id: u32, size: usize, end_of_stream: bool) -> HostAction {
        self.phase(context_id, |req| req.on_body(StreamType::Request, size, end_of_stream))
    }

    fn response_headers(&mut self, context_id: u32, end_of_stream: bool) -> HostAction {
        self.phase(context_id, |req| req.on_response_headers(end_of_stream))
    }

    fn response_body(&mut self, context_id: u32, size: usize, end_of_stream: bool) -> HostAction {
        self.phase(context_id, |req| req.on_body(StreamType::Response, size, end_of_stream))
    }

    fn request_trailers(&mut self, context_id: u32) -> HostAction {
        self.phase(context_id, |req| req.on_trailers(StreamType::Request))
    }

    fn response_trailers(&mut self, context_id: u32) -> HostAction {
        self.phase(context_id, |req| req.on_trailers(StreamType::Response))
    }

    fn tick(&mut self, root_id: u32) {
        match self.roots.get_mut(&root_id) {
            Some(root) => root.context(root_id).on_tick(),
            None => self.logger().warn(format_args!("tick for unknown root context {root_id} ignored")),
        }
    }

    fn queue_ready(&mut self, root_id: u32, queue_id: u32) {
        match self.roots.get_mut(&root_id) {
            Some(root) => P::on_queue_ready(&mut root.context(root_id), SharedQueue::from_id(queue_id)),
            None => self.logger().warn(format_args!("queue {queue_id} ready for unknown root context {root_id}")),
        }
    }

    fn answer(&mut self, context_id: u32, callout: Callout, answer: Answer) {
        if let (Some(root), Callout::Http(token)) = (self.roots.get_mut(&context_id), callout) {
            root.context(context_id).on_http_response(token, answer.size);
            return;
        }
        let Some(request) = self.requests.get_mut(&context_id) else {
            self.logger().debug(format_args!("answer to {callout} for a context that is gone ({context_id}) dropped"));
            return;
        };
        match callout {
            Callout::Http(token) => request.on_http_response(token, answer.size),
            #[cfg(any(
                feature = "redis",
                all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))
            ))]
            Callout::Redis(token) => request.on_redis_response(token, answer),
        }
    }

    fn log(&mut self, context_id: u32) {
        if let Some(request) = self.requests.get_mut(&context_id) {
            request.on_done();
        }
    }

    fn delete(&mut self, context_id: u32) {
        if let Some(request) = self.requests.remove(&context_id) {
            if request.pending_calls() > 0 {
                dispatch::forget(&request.pending_callouts());
            }
        } else if let Some(mut root) = self.roots.remove(&context_id) {
            // The host deletes a root context after asking it whether it is
            // done (`proxy_on_done`, answered yes at once): the plugin stops.
            // Here rather than in `proxy_on_done`, which every request gets too.
            let mut plugin = root.context(context_id);
            plugin.clear_timers();
            P::on_stop(&mut plugin);
        }
    }
}

/// Installs `P` as the module's plugin (called from [`main!`](crate::main)).
pub fn register<P: Plugin>() {
    std::panic::set_hook(Box::new(|info| {
        // A panic is a bug in the plugin: say where before the VM traps.
        let _ = host::log(host::LogLevel::Critical, &format!("[{}] panic: {info}", P::NAME));
    }));
    dispatch::install(Box::new(PluginContexts::<P>::new()));
}

/// The module's `_initialize`: runs the static constructors (WASI reactors
/// must), then installs `P`.
pub fn initialize<P: Plugin>() {
    #[cfg(target_os = "wasi")]
    {
        extern "C" {
            fn __wasm_call_ctors();
        }
        // SAFETY: the linker's constructor list, run once before any other export.
        unsafe { __wasm_call_ctors() };
    }
    register::<P>();
}
