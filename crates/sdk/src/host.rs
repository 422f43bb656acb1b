//! The Proxy-Wasm host functions the SDK calls, each returning a `Result`.
//!
//! A host may answer any status, including ones the ABI does not name; a
//! wrapper that panics on an unexpected one traps and kills the VM with every
//! request on it. So the SDK declares every ABI 0.2.1 import it uses here,
//! and turns every status into a value. Its exports (the other half of the
//! boundary) are in `dispatch.rs`.

use std::ptr::{null, null_mut};

pub use crate::host_types::{HostResult, LogLevel, MetricType, Status};

fn check(status: u32) -> HostResult<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Header maps of the ABI (named as in the spec).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

/// Buffers of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    RequestBody = 0,
    ResponseBody = 1,
    HttpCallResponseBody = 4,
    VmConfiguration = 6,
    PluginConfiguration = 7,
    #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
    RedisCallResponse = 9,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(buffer_type: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_set_header_map_pairs(map_type: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_milliseconds: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Takes ownership of a buffer the host allocated through `proxy_on_memory_allocate`.
///
/// # Safety
/// `data` is null or was returned by the module's allocator for exactly `size` bytes.
unsafe fn take_host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the allocator hands out a boxed `[u8]` of `size` bytes (align 1),
    // which has the same layout as a `Vec<u8>` of that length and capacity.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Writes a message to the host's log.
pub fn log(level: LogLevel, message: &str) -> HostResult<()> {
    // SAFETY: the pointer and length describe a live string.
    check(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
}

/// The host's current log level, or `Trace` when the host does not tell.
pub fn log_level() -> LogLevel {
    let mut level: u32 = 0;
    // SAFETY: `level` is a valid place for the host to write a u32.
    if check(unsafe { proxy_get_log_level(&mut level) }).is_err() {
        return LogLevel::Trace;
    }
    match level {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        _ => LogLevel::Critical,
    }
}

/// Nanoseconds since the Unix epoch, by the host's clock.
pub fn now_nanos() -> HostResult<u64> {
    let mut now: u64 = 0;
    // SAFETY: `now` is a valid place for the host to write a u64.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut now) })?;
    Ok(now)
}

/// Reads `max_size` bytes from `start` of a buffer; `None` when the buffer does not exist.
pub fn get_buffer(buffer: BufferType, start: usize, max_size: usize) -> HostResult<Option<Vec<u8>>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: out-pointers are valid; the host fills them with an allocation of ours.
    let status = unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    match check(status) {
        // SAFETY: the host returned a buffer it allocated with our allocator.
        Ok(()) => Ok(Some(unsafe { take_host_bytes(data, size) })),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(status) => Err(status),
    }
}

/// Replaces `size` bytes at `start` of a buffer with `value`.
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, value: &[u8]) -> HostResult<()> {
    // SAFETY: the pointer and length describe a live slice.
    check(unsafe { proxy_set_buffer_bytes(buffer as u32, start, size, value.as_ptr(), value.len()) })
}

/// All pairs of a header map, values as raw bytes.
pub fn get_map(map: MapType) -> HostResult<Vec<(String, Vec<u8>)>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: out-pointers are valid; the host fills them with an allocation of ours.
    check(unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) })?;
    // SAFETY: the host returned a buffer it allocated with our allocator.
    let bytes = unsafe { take_host_bytes(data, size) };
    crate::pairs::decode(&bytes).ok_or(Status(3))
}

/// Replaces a whole header map.
pub fn set_map(map: MapType, pairs: &[(&str, &[u8])]) -> HostResult<()> {
    let bytes = crate::pairs::encode(pairs);
    // SAFETY: the pointer and length describe a live buffer.
    check(unsafe { proxy_set_header_map_pairs(map as u32, bytes.as_ptr(), bytes.len()) })
}

/// One header's value as raw bytes; `None` when absent.
pub fn get_map_value(map: MapType, name: &str) -> HostResult<Option<Vec<u8>>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: key pointer/length are live; out-pointers are valid.
    let status = unsafe { proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size) };
    match check(status) {
        // SAFETY: the host returned a buffer it allocated with our allocator.
        Ok(()) => Ok(Some(unsafe { take_host_bytes(data, size) })),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(status) => Err(status),
    }
}

/// Sets a header, replacing every value it had.
pub fn replace_map_value(map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
    // SAFETY: pointers and lengths describe live slices.
    check(unsafe { proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// Removes a header (every value).
pub fn remove_map_value(map: MapType, name: &str) -> HostResult<()> {
    // SAFETY: the pointer and length describe a live string.
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// Adds a value to a header, keeping the values it had.
pub fn add_map_value(map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
    // SAFETY: pointers and lengths describe live slices.
    check(unsafe { proxy_add_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// A property (`["xds", "route_name"]`); `None` when the host does not have it.
pub fn get_property(path: &[&str]) -> HostResult<Option<Vec<u8>>> {
    let encoded = path.join("\0");
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: path pointer/length are live; out-pointers are valid.
    let status = unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match check(status) {
        // SAFETY: the host returned a buffer it allocated with our allocator.
        Ok(()) => Ok(Some(unsafe { take_host_bytes(data, size) })),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(status) => Err(status),
    }
}

/// Which direction of the HTTP stream to continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StreamType {
    Request = 0,
    Response = 1,
}

/// Resumes a paused request or response.
pub fn continue_stream(stream: StreamType) -> HostResult<()> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_continue_stream(stream as u32) })
}

/// Makes `context_id` the context later host calls act on (before delivering
/// an answer to the context that asked: hosts call back on the root context).
pub fn set_effective_context(context_id: u32) -> HostResult<()> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Starts an HTTP call to `cluster`; the answer comes to
/// `proxy_on_http_call_response` with the token returned here.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    trailers: &[(&str, &[u8])],
    timeout_ms: u32,
) -> HostResult<u32> {
    /// An empty header map on the wire: a zero count (no allocation).
    const NO_PAIRS: [u8; 4] = [0; 4];
    let headers = crate::pairs::encode(headers);
    let trailers = if trailers.is_empty() { Vec::new() } else { crate::pairs::encode(trailers) };
    let trailers: &[u8] = if trailers.is_empty() { &NO_PAIRS } else { &trailers };
    let mut token: u32 = 0;
    // SAFETY: every pointer/length pair describes a live buffer; the out-pointer is valid.
    check(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            if body.is_empty() { null() } else { body.as_ptr() },
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

// Shared data, shared queues and the tick: what a plugin uses outside a
// request (see `shared.rs` and `lifetime.rs`).
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id_data: *const u8,
        vm_id_size: usize,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(queue_id: u32, return_value_data: *mut *mut u8, return_value_size: *mut usize)
        -> u32;
}

/// Asks for `proxy_on_tick` every `period_ms` milliseconds (0: no more ticks).
pub fn set_tick_period(period_ms: u32) -> HostResult<()> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_set_tick_period_milliseconds(period_ms) })
}

/// A shared value and its CAS version; `None` when absent.
pub fn get_shared_data(key: &str) -> HostResult<Option<(Vec<u8>, u32)>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: key pointer/length are live; out-pointers are valid.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match check(status) {
        // SAFETY: the host returned a buffer it allocated with our allocator.
        Ok(()) => Ok(Some((unsafe { take_host_bytes(data, size) }, cas))),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(status) => Err(status),
    }
}

/// Sets a shared value; `cas` 0 writes whatever the current version.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> HostResult<()> {
    // SAFETY: pointers and lengths describe live slices.
    check(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

pub fn register_shared_queue(name: &str) -> HostResult<u32> {
    let mut id: u32 = 0;
    // SAFETY: the pointer/length describe a live string; the out-pointer is valid.
    check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn resolve_shared_queue(vm_id: &str, name: &str) -> HostResult<u32> {
    let mut id: u32 = 0;
    // SAFETY: pointers/lengths describe live strings; the out-pointer is valid.
    check(unsafe { proxy_resolve_shared_queue(vm_id.as_ptr(), vm_id.len(), name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn enqueue_shared_queue(queue_id: u32, value: &[u8]) -> HostResult<()> {
    // SAFETY: the pointer/length describe a live slice.
    check(unsafe { proxy_enqueue_shared_queue(queue_id, value.as_ptr(), value.len()) })
}

/// The first item of a queue; `Err(Status::EMPTY)` when there is none.
pub fn dequeue_shared_queue(queue_id: u32) -> HostResult<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: out-pointers are valid; the host fills them with an allocation of ours.
    check(unsafe { proxy_dequeue_shared_queue(queue_id, &mut data, &mut size) })?;
    // SAFETY: the host returned a buffer it allocated with our allocator.
    Ok(unsafe { take_host_bytes(data, size) })
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

/// Calls a function the host offers by name; its result bytes.
pub fn call_foreign_function(name: &str, argument: &[u8]) -> HostResult<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: pointers/lengths describe live slices; out-pointers are valid.
    check(unsafe {
        proxy_call_foreign_function(name.as_ptr(), name.len(), argument.as_ptr(), argument.len(), &mut data, &mut size)
    })?;
    // SAFETY: the host returned a buffer it allocated with our allocator.
    Ok(unsafe { take_host_bytes(data, size) })
}

/// Higress's other host functions (not known to upstream Envoy or Istio).
#[cfg(any(feature = "higress", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
pub mod higress {
    use super::{check, take_host_bytes, HostResult};
    use std::ptr::null_mut;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_upstream_hosts(return_data: *mut *mut u8, return_size: *mut usize) -> u32;
        fn proxy_set_upstream_override_host(address_data: *const u8, address_size: usize) -> u32;
        fn proxy_inject_encoded_data_to_filter_chain(body_data: *const u8, body_size: usize, end_stream: u32) -> u32;
    }

    /// The hosts of the request's upstream cluster, as a header map
    /// (address, metrics) on the wire.
    pub fn upstream_hosts() -> HostResult<Vec<u8>> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: out-pointers are valid.
        check(unsafe { proxy_get_upstream_hosts(&mut data, &mut size) })?;
        // SAFETY: the host returned a buffer it allocated with our allocator.
        Ok(unsafe { take_host_bytes(data, size) })
    }

    /// Sends the request to `address` of its cluster, bypassing the load balancer.
    pub fn set_upstream_override_host(address: &str) -> HostResult<()> {
        // SAFETY: pointer/length describe a live string.
        check(unsafe { proxy_set_upstream_override_host(address.as_ptr(), address.len()) })
    }

    /// Sends `data` down the response's filter chain, after this filter.
    pub fn inject_encoded_data(data: &[u8], end_stream: bool) -> HostResult<()> {
        // SAFETY: pointer/length describe a live slice.
        check(unsafe { proxy_inject_encoded_data_to_filter_chain(data.as_ptr(), data.len(), u32::from(end_stream)) })
    }
}

/// The Higress Redis host calls (not known to upstream Envoy or Istio).
#[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
pub mod redis {
    use super::{check, HostResult};

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_redis_init(
            upstream_data: *const u8,
            upstream_size: usize,
            username_data: *const u8,
            username_size: usize,
            password_data: *const u8,
            password_size: usize,
            timeout_ms: u32,
        ) -> u32;
        fn proxy_redis_call(
            upstream_data: *const u8,
            upstream_size: usize,
            query_data: *const u8,
            query_size: usize,
            return_callout_id: *mut u32,
        ) -> u32;
    }

    /// Opens (or re-opens) the host's connection to a Redis cluster.
    pub fn init(upstream: &str, username: &str, password: &str, timeout_ms: u32) -> HostResult<()> {
        // SAFETY: every pointer/length pair describes a live string.
        check(unsafe {
            proxy_redis_init(
                upstream.as_ptr(),
                upstream.len(),
                username.as_ptr(),
                username.len(),
                password.as_ptr(),
                password.len(),
                timeout_ms,
            )
        })
    }

    /// Sends one RESP-encoded command; the answer comes to `proxy_on_redis_call_response`.
    pub fn call(upstream: &str, query: &[u8]) -> HostResult<u32> {
        let mut callout_id: u32 = 0;
        // SAFETY: pointers/lengths describe live buffers; the out-pointer is valid.
        check(unsafe {
            proxy_redis_call(upstream.as_ptr(), upstream.len(), query.as_ptr(), query.len(), &mut callout_id)
        })?;
        Ok(callout_id)
    }
}

// ===== Metrics, properties written by the plugin, local answers with details =====
//
// The host functions behind `metrics`, `property` and `Request::respond_with_details`.

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_metric_id: *mut u32)
        -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
}

/// Defines (or finds) a metric by its full name; returns its id.
pub fn define_metric(kind: MetricType, name: &str) -> HostResult<u32> {
    let mut id: u32 = 0;
    // SAFETY: the name pointer/length are live; the out-pointer is valid.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds `offset` to a counter (positive only) or a gauge.
pub fn increment_metric(id: u32, offset: i64) -> HostResult<()> {
    // SAFETY: plain value arguments.
    check(unsafe { proxy_increment_metric(id, offset) })
}

/// Sets a gauge, or records a value in a histogram.
pub fn record_metric(id: u32, value: u64) -> HostResult<()> {
    // SAFETY: plain value arguments.
    check(unsafe { proxy_record_metric(id, value) })
}

/// A counter's or gauge's current value.
pub fn get_metric(id: u32) -> HostResult<u64> {
    let mut value: u64 = 0;
    // SAFETY: `value` is a valid place for the host to write a u64.
    check(unsafe { proxy_get_metric(id, &mut value) })?;
    Ok(value)
}

/// Sets a property of the current stream (Envoy keeps it as filter state
/// `wasm.<path>`).
pub fn set_property(path: &[&str], value: &[u8]) -> HostResult<()> {
    let encoded = path.join("\0");
    // SAFETY: both pointer/length pairs describe live buffers.
    check(unsafe { proxy_set_property(encoded.as_ptr(), encoded.len(), value.as_ptr(), value.len()) })
}

/// Sends a response generated by the plugin instead of (or in place of) the
/// upstream's; Envoy records `details` (when not empty) as the response code
/// details (`%RESPONSE_CODE_DETAILS%`).
pub fn send_local_response_with_details(
    status: u32,
    details: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> HostResult<()> {
    let headers = crate::pairs::encode(headers);
    // SAFETY: every pointer/length pair describes a live buffer.
    check(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            if body.is_empty() { null() } else { body.as_ptr() },
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}
