//! The module's exports: every `proxy_on_*` function a Proxy-Wasm host calls.
//!
//! The SDK owns both halves of the ABI boundary (the imports are in
//! `host.rs`), so that nothing a host sends can trap the VM: an unknown
//! context, an answer whose token no one waits for, a flag that is neither
//! 0 nor 1, a call while the module is already running: each is logged and
//! ignored, or answered with the value that lets the request go on.
//!
//! The exports are not generic; they reach the plugin through
//! [`Contexts`], installed once by [`install`] from `main!`'s `_initialize`.
//! Answers to calls (HTTP and Redis alike) are routed by one table, from
//! the call's token to the context that made it, because hosts deliver them
//! on the root context. The table sits apart from the contexts so that a
//! hook, which runs while the contexts are borrowed, can add to it.

use crate::action::HostAction;
use crate::host;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A call waiting for its answer, by the host's token (HTTP tokens and Redis
/// callout ids are counted apart, so the kind is part of the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Callout {
    Http(u32),
    #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
    Redis(u32),
}

impl std::fmt::Display for Callout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Callout::Http(token) => write!(f, "HTTP call {token}"),
            #[cfg(any(
                feature = "redis",
                all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))
            ))]
            Callout::Redis(token) => write!(f, "Redis call {token}"),
        }
    }
}

/// An answer to a call, as the host announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Size of the answer's body (HTTP) or reply (Redis).
    pub size: usize,
    /// Redis only: the host's status for the call (0 when it got a reply).
    #[cfg_attr(
        not(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm")))),
        allow(dead_code)
    )]
    pub status: u32,
}

/// What the exports drive: the plugin's root and HTTP contexts.
pub(crate) trait Contexts {
    /// The plugin's name, for log lines about what the host sent.
    fn plugin_name(&self) -> &'static str;
    fn create(&mut self, context_id: u32, parent_id: u32);
    fn vm_start(&mut self, root_id: u32, size: usize) -> bool;
    fn configure(&mut self, root_id: u32, size: usize) -> bool;
    fn request_headers(&mut self, context_id: u32, end_of_stream: bool) -> HostAction;
    fn request_body(&mut self, context_id: u32, size: usize, end_of_stream: bool) -> HostAction;
    fn response_headers(&mut self, context_id: u32, end_of_stream: bool) -> HostAction;
    fn response_body(&mut self, context_id: u32, size: usize, end_of_stream: bool) -> HostAction;
    fn request_trailers(&mut self, context_id: u32) -> HostAction;
    fn response_trailers(&mut self, context_id: u32) -> HostAction;
    fn tick(&mut self, root_id: u32);
    fn queue_ready(&mut self, root_id: u32, queue_id: u32);
    /// An answer for `context_id` (a request, or a root for calls made
    /// outside requests), found in the callout table.
    fn answer(&mut self, context_id: u32, callout: Callout, answer: Answer);
    fn log(&mut self, context_id: u32);
    fn delete(&mut self, context_id: u32);
}

thread_local! {
    static CONTEXTS: RefCell<Option<Box<dyn Contexts>>> = const { RefCell::new(None) };
    /// Which context made each call still waiting for its answer.
    static CALLOUTS: RefCell<BTreeMap<Callout, u32>> = const { RefCell::new(BTreeMap::new()) };
}

/// Installs the plugin's contexts (once, from `_initialize`).
pub(crate) fn install(contexts: Box<dyn Contexts>) {
    CONTEXTS.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = Some(contexts);
        }
    });
}

/// Runs `f` on the contexts; `fallback` when there are none (no plugin
/// installed) or the host called in while the module was running.
fn with<R>(fallback: R, f: impl FnOnce(&mut dyn Contexts) -> R) -> R {
    CONTEXTS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => match slot.as_deref_mut() {
            Some(contexts) => f(contexts),
            None => fallback,
        },
        Err(_) => {
            let _ = host::log(host::LogLevel::Error, "host called into the module while it was running; ignored");
            fallback
        }
    })
}

/// Records that `context_id` waits for the answer to `callout`.
pub(crate) fn expect(callout: Callout, context_id: u32) {
    CALLOUTS.with(|cell| {
        if let Ok(mut callouts) = cell.try_borrow_mut() {
            callouts.insert(callout, context_id);
        }
    });
}

/// Forgets the calls of a context that is gone (the host drops their answers).
pub(crate) fn forget(callouts: &[Callout]) {
    CALLOUTS.with(|cell| {
        if let Ok(mut table) = cell.try_borrow_mut() {
            for callout in callouts {
                table.remove(callout);
            }
        }
    });
}

fn take(callout: Callout) -> Option<u32> {
    CALLOUTS.with(|cell| cell.try_borrow_mut().ok().and_then(|mut callouts| callouts.remove(&callout)))
}

/// Routes an answer to the context that made the call, made effective first
/// so that the callback's host calls act on it.
fn deliver(callout: Callout, answer: Answer) {
    with((), |contexts| {
        let Some(context_id) = take(callout) else {
            let line = format!("[{}] answer to unknown call {callout} ignored", contexts.plugin_name());
            let _ = host::log(host::LogLevel::Debug, &line);
            return;
        };
        if let Err(status) = host::set_effective_context(context_id) {
            let line =
                format!("[{}] answer to {callout} dropped: context {context_id}: {status}", contexts.plugin_name());
            let _ = host::log(host::LogLevel::Warn, &line);
            return;
        }
        contexts.answer(context_id, callout, answer);
    });
}

// ----- the exports (ABI 0.2.1) -----

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory for data the host hands to the module (header values, bodies):
/// one `[u8]` allocation of `size` bytes, which `host.rs` takes back as a
/// `Vec<u8>`. Null when it cannot be had, which hosts report as a failed call.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    if size == 0 {
        return std::ptr::NonNull::<u8>::dangling().as_ptr();
    }
    match std::alloc::Layout::array::<u8>(size) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { std::alloc::alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    with((), |c| c.create(context_id, parent_context_id));
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(root_context_id: u32, vm_configuration_size: usize) -> u32 {
    u32::from(with(false, |c| c.vm_start(root_context_id, vm_configuration_size)))
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, plugin_configuration_size: usize) -> u32 {
    u32::from(with(false, |c| c.configure(root_context_id, plugin_configuration_size)))
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, end_of_stream: u32) -> u32 {
    with(HostAction::Continue, |c| c.request_headers(context_id, end_of_stream != 0)).abi_code()
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    with(HostAction::Continue, |c| c.request_body(context_id, body_size, end_of_stream != 0)).abi_code()
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _headers: usize, end_of_stream: u32) -> u32 {
    with(HostAction::Continue, |c| c.response_headers(context_id, end_of_stream != 0)).abi_code()
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(context_id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    with(HostAction::Continue, |c| c.response_body(context_id, body_size, end_of_stream != 0)).abi_code()
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(context_id: u32, _trailers: usize) -> u32 {
    with(HostAction::Continue, |c| c.request_trailers(context_id)).abi_code()
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _trailers: usize) -> u32 {
    with(HostAction::Continue, |c| c.response_trailers(context_id)).abi_code()
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _context_id: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    deliver(Callout::Http(token), Answer { size: body_size, status: 0 });
}

/// Higress calls this with the answer to a `proxy_redis_call`.
#[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
#[no_mangle]
pub extern "C" fn proxy_on_redis_call_response(_context_id: u32, callout_id: u32, status: u32, response_size: usize) {
    deliver(Callout::Redis(callout_id), Answer { size: response_size, status });
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    with((), |c| c.tick(root_context_id));
}

#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(root_context_id: u32, queue_id: u32) {
    with((), |c| c.queue_ready(root_context_id, queue_id));
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    with((), |c| c.log(context_id));
}

/// Every context is done at once: the SDK keeps nothing a host must wait
/// for (a root's `Plugin::on_stop` runs as it is deleted, right after).
#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    with((), |c| c.delete(context_id));
}

/// Starts an HTTP call for `context_id` (a request, or a root context for a
/// call outside requests) and records where its answer goes; the host's
/// token comes back.
pub(crate) fn http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout: std::time::Duration,
    context_id: u32,
) -> Result<u32, crate::host::Status> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let token = crate::host::dispatch_http_call(cluster, headers, body, &[], timeout_ms)?;
    expect(Callout::Http(token), context_id);
    Ok(token)
}
