//! The Proxy-Wasm host functions the SDK calls, each returning a `Result`.
//!
//! The `proxy-wasm` crate's own wrappers panic on any status they do not expect
//! (and on header values that are not UTF-8); in Wasm a panic traps and kills the
//! VM with every request on it. So the SDK declares the ABI 0.2.1 imports it needs
//! itself and turns every status into a value. The `proxy-wasm` crate still owns
//! the exports (context dispatch) and HTTP call dispatch, which must go through it
//! so that its dispatcher can route the response back.

use std::ptr::{null, null_mut};

/// A non-`Ok` status returned by a host function (numbers as in the ABI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    pub const NOT_FOUND: Status = Status(1);
    pub const BAD_ARGUMENT: Status = Status(2);
    pub const INTERNAL_FAILURE: Status = Status(10);

    /// The ABI's name for this status.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Ok",
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            5 => "BadExpression",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            8 => "CasMismatch",
            9 => "ResultMismatch",
            10 => "InternalFailure",
            11 => "BrokenConnection",
            12 => "Unimplemented",
            _ => "Unknown",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

pub type HostResult<T> = Result<T, Status>;

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
    ResponseHeaders = 2,
    HttpCallResponseHeaders = 6,
}

/// Buffers of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    RequestBody = 0,
    ResponseBody = 1,
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
    #[cfg(feature = "redis")]
    RedisCallResponse = 9,
}

/// Log levels of the ABI, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
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

/// Sends a response generated by the plugin instead of (or in place of) the upstream's.
pub fn send_local_response(status: u32, headers: &[(&str, &[u8])], body: &[u8]) -> HostResult<()> {
    let headers = crate::pairs::encode(headers);
    let details: &[u8] = b"";
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

/// Makes `context_id` the context later host calls act on.
#[cfg(feature = "redis")]
pub fn set_effective_context(context_id: u32) -> HostResult<()> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_set_effective_context(context_id: u32) -> u32;
    }
    // SAFETY: plain value argument.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// The Higress Redis host calls (not known to upstream Envoy or Istio).
#[cfg(feature = "redis")]
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

/// Starts an HTTP call to `cluster`; the answer comes to the stream's
/// `on_http_call_response` with the returned token. Goes through the
/// `proxy-wasm` crate, whose dispatcher routes the answer back.
pub fn dispatch_http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    body: Option<&[u8]>,
    timeout: std::time::Duration,
) -> HostResult<u32> {
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, body, vec![], timeout)
        .map_err(|status| Status(status as u32))
}
