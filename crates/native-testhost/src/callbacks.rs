//! The `envoy_dynamic_module_callback_*` functions the SDK's bindings call
//! (`crates/sdk/src/native/abi.rs`), defined here instead of by Envoy, on a
//! [`Stream`] of the test.
//!
//! The filter pointer Envoy hands the module is, here, a pointer to the
//! stream's `RefCell<Stream>`; every callback borrows it only for its own
//! duration. Buffers given back to the module point into the stream's own
//! vectors, which no callback changes before the module copies them (the SDK
//! copies every buffer at once).

use crate::stream::{Callout, Direction, Stream};
use std::cell::RefCell;
use std::ffi::{c_char, c_void};

/// `envoy_dynamic_module_type_module_buffer` / `_envoy_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Buffer {
    ptr: *const c_char,
    length: usize,
}

/// `envoy_dynamic_module_type_module_http_header` / `_envoy_http_header`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Header {
    key: Buffer,
    value: Buffer,
}

impl Header {
    pub(crate) fn of(key: &[u8], value: &[u8]) -> Header {
        Header { key: Buffer::of(key), value: Buffer::of(value) }
    }
}

impl Buffer {
    pub(crate) fn of(bytes: &[u8]) -> Buffer {
        Buffer { ptr: bytes.as_ptr().cast(), length: bytes.len() }
    }

    /// The bytes of a buffer the module passed (`None` for a null pointer).
    ///
    /// # Safety
    /// `ptr` is null or points to `length` readable bytes, live for the call.
    unsafe fn read(self) -> Option<Vec<u8>> {
        if self.ptr.is_null() {
            return None;
        }
        if self.length == 0 {
            return Some(Vec::new());
        }
        // SAFETY: the caller's contract.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }.to_vec())
    }
}

/// The module's headers (`count` at `headers`).
///
/// # Safety
/// `headers` points to `count` headers whose buffers are live for the call.
pub(crate) unsafe fn read_headers(headers: *const Header, count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    if headers.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers
        .iter()
        // SAFETY: each buffer is live for the call (the caller's contract).
        .map(|h| unsafe { (h.key.read().unwrap_or_default(), h.value.read().unwrap_or_default()) })
        .collect()
}

/// The stream behind a filter pointer.
///
/// # Safety
/// `filter` is the pointer [`crate::Exchange`] handed the module: a live `RefCell<Stream>`.
unsafe fn stream<'a>(filter: *mut c_void) -> &'a RefCell<Stream> {
    // SAFETY: the caller's contract.
    unsafe { &*filter.cast_const().cast::<RefCell<Stream>>() }
}

/// Header types: 0 request headers, 2 response headers (trailers are not modelled).
fn direction_of_headers(header_type: u32) -> Option<Direction> {
    match header_type {
        0 => Some(Direction::Request),
        2 => Some(Direction::Response),
        _ => None,
    }
}

/// Body types: 0 received request chunk, 1 buffered request body, 2 and 3 the same for responses.
fn body_of(header_type: u32) -> Option<(Direction, bool)> {
    match header_type {
        0 => Some((Direction::Request, false)),
        1 => Some((Direction::Request, true)),
        2 => Some((Direction::Response, false)),
        3 => Some((Direction::Response, true)),
        _ => None,
    }
}

thread_local! {
    /// Log lines of the module on this thread: (level, message).
    pub(crate) static LOG: RefCell<Vec<(u32, String)>> = const { RefCell::new(Vec::new()) };
    /// The level the module is told (`0` trace ... `5` critical, `6` off).
    pub(crate) static LOG_LEVEL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_log(level: u32, message: Buffer) {
    // SAFETY: the module passes a live buffer.
    let text = unsafe { message.read() }.unwrap_or_default();
    LOG.with(|log| log.borrow_mut().push((level, String::from_utf8_lossy(&text).into_owned())));
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_get_log_level() -> u32 {
    LOG_LEVEL.with(std::cell::Cell::get)
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_get_header(
    filter: *mut c_void,
    header_type: u32,
    key: Buffer,
    result: *mut Buffer,
    index: usize,
    optional_size: *mut usize,
) -> bool {
    // SAFETY: the filter pointer is the stream's; the key is live for the call.
    let (stream, key) = unsafe { (stream(filter), key.read().unwrap_or_default()) };
    let Some(direction) = direction_of_headers(header_type) else { return false };
    let stream = stream.borrow();
    let values: Vec<&Vec<u8>> = stream
        .headers(direction)
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(&key))
        .map(|(_, value)| value)
        .collect();
    if !optional_size.is_null() {
        // SAFETY: a valid out-pointer.
        unsafe { *optional_size = values.len() };
    }
    match values.get(index) {
        Some(value) => {
            // SAFETY: a valid out-pointer; the value lives in the stream until the module copied it.
            unsafe { *result = Buffer::of(value) };
            true
        }
        None => false,
    }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_get_headers_size(
    filter: *mut c_void,
    header_type: u32,
) -> usize {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    direction_of_headers(header_type).map_or(0, |direction| stream.headers(direction).len())
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_get_headers(
    filter: *mut c_void,
    header_type: u32,
    result: *mut Header,
) -> bool {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    let Some(direction) = direction_of_headers(header_type) else { return false };
    for (i, (key, value)) in stream.headers(direction).iter().enumerate() {
        // SAFETY: the module sized `result` with `get_headers_size`.
        unsafe { *result.add(i) = Header { key: Buffer::of(key), value: Buffer::of(value) } };
    }
    true
}

/// Adds (`replace` false) or sets a header; a null value removes it.
///
/// # Safety
/// As for the callbacks: a stream's filter pointer, buffers live for the call.
unsafe fn edit_header(filter: *mut c_void, header_type: u32, key: Buffer, value: Buffer, replace: bool) -> bool {
    // SAFETY: the caller's contract.
    let (stream, key, value) = unsafe { (stream(filter), key.read().unwrap_or_default(), value.read()) };
    let Some(direction) = direction_of_headers(header_type) else { return false };
    let mut stream = stream.borrow_mut();
    let headers = stream.headers_mut(direction);
    if replace || value.is_none() {
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case(&key));
    }
    if let Some(value) = value {
        headers.push((key.to_ascii_lowercase(), value));
    }
    true
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_add_header(
    filter: *mut c_void,
    header_type: u32,
    key: Buffer,
    value: Buffer,
) -> bool {
    // SAFETY: as the module passes them.
    unsafe { edit_header(filter, header_type, key, value, false) }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_set_header(
    filter: *mut c_void,
    header_type: u32,
    key: Buffer,
    value: Buffer,
) -> bool {
    // SAFETY: as the module passes them.
    unsafe { edit_header(filter, header_type, key, value, true) }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_send_response(
    filter: *mut c_void,
    status_code: u32,
    headers: *const Header,
    headers_size: usize,
    body: Buffer,
    details: Buffer,
) {
    // SAFETY: as the module passes them.
    let (stream, headers, body, details) = unsafe {
        (stream(filter), read_headers(headers, headers_size), body.read().unwrap_or_default(), details.read())
    };
    let details = details.map(|d| String::from_utf8_lossy(&d).into_owned());
    stream.borrow_mut().answer_locally(status_code, headers, body, details);
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_size(filter: *mut c_void, body_type: u32) -> usize {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    body_of(body_type).and_then(|(direction, buffered)| stream.body(direction, buffered)).map_or(0, Vec::len)
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks_size(
    filter: *mut c_void,
    body_type: u32,
) -> usize {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    // One chunk per body, when there is one (an empty buffered body has none, as in Envoy).
    let body = body_of(body_type).and_then(|(direction, buffered)| stream.body(direction, buffered));
    usize::from(body.is_some_and(|b| !b.is_empty()))
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks(
    filter: *mut c_void,
    body_type: u32,
    result: *mut Buffer,
) -> bool {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    let Some(body) = body_of(body_type).and_then(|(direction, buffered)| stream.body(direction, buffered)) else {
        return false;
    };
    if !body.is_empty() {
        // SAFETY: the module sized `result` with `get_body_chunks_size` (one chunk).
        unsafe { *result = Buffer::of(body) };
    }
    true
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_append_body(
    filter: *mut c_void,
    body_type: u32,
    data: Buffer,
) -> bool {
    // SAFETY: as the module passes them.
    let (stream, data) = unsafe { (stream(filter), data.read().unwrap_or_default()) };
    let Some((direction, buffered)) = body_of(body_type) else { return false };
    match stream.borrow_mut().body_mut(direction, buffered) {
        Some(body) => {
            body.extend_from_slice(&data);
            true
        }
        None => false,
    }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_drain_body(
    filter: *mut c_void,
    body_type: u32,
    bytes: usize,
) -> bool {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) };
    let Some((direction, buffered)) = body_of(body_type) else { return false };
    match stream.borrow_mut().body_mut(direction, buffered) {
        Some(body) => {
            body.drain(..bytes.min(body.len()));
            true
        }
        None => false,
    }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_received_buffered_request_body(filter: *mut c_void) -> bool {
    // SAFETY: the filter pointer is the stream's.
    unsafe { stream(filter) }.borrow().received_is_buffered(Direction::Request)
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_received_buffered_response_body(filter: *mut c_void) -> bool {
    // SAFETY: the filter pointer is the stream's.
    unsafe { stream(filter) }.borrow().received_is_buffered(Direction::Response)
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
    filter: *mut c_void,
    attribute: u32,
    result: *mut Buffer,
) -> bool {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    match stream.attribute(attribute) {
        Some(value) => {
            // SAFETY: a valid out-pointer; the value lives in the stream until the module copied it.
            unsafe { *result = Buffer::of(value) };
            true
        }
        None => false,
    }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
    filter: *mut c_void,
    attribute: u32,
    result: *mut u64,
) -> bool {
    // SAFETY: the filter pointer is the stream's.
    let stream = unsafe { stream(filter) }.borrow();
    match stream.attribute_int(attribute) {
        Some(value) => {
            // SAFETY: a valid out-pointer.
            unsafe { *result = value };
            true
        }
        None => false,
    }
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: *mut c_void) {
    // SAFETY: the filter pointer is the stream's.
    unsafe { stream(filter) }.borrow_mut().resume(Direction::Request);
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: *mut c_void) {
    // SAFETY: the filter pointer is the stream's.
    unsafe { stream(filter) }.borrow_mut().resume(Direction::Response);
}

#[no_mangle]
unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_http_callout(
    filter: *mut c_void,
    callout_id: *mut u64,
    cluster: Buffer,
    headers: *const Header,
    headers_size: usize,
    body: Buffer,
    timeout_ms: u64,
) -> u32 {
    // SAFETY: as the module passes them.
    let (stream, cluster, headers, body) = unsafe {
        (stream(filter), cluster.read().unwrap_or_default(), read_headers(headers, headers_size), body.read())
    };
    let callout = Callout {
        cluster: String::from_utf8_lossy(&cluster).into_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body: body.unwrap_or_default(),
        timeout_ms,
    };
    // Envoy refuses a callout without :method, :path or host (init result 1).
    let has = |name: &str| callout.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !(has(":method") && has(":path") && (has("host") || has(":authority"))) {
        return 1;
    }
    let mut stream = stream.borrow_mut();
    if !stream.knows_cluster(&callout.cluster) {
        return 2;
    }
    let id = stream.start_callout(callout);
    // SAFETY: a valid out-pointer.
    unsafe { *callout_id = id };
    0
}
