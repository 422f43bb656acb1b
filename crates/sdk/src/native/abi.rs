//! Bindings to Envoy's dynamic module ABI v0.2.0 (`envoy.filters.http.dynamic_modules`).
//!
//! Written by hand from the ABI's published header, with only the hooks and
//! callbacks the SDK uses; `e2e/tests/native_symbols.rs` checks that every
//! callback declared here is in the pinned Envoy's dynamic symbol table and
//! that a built module exports every hook Envoy requires.
//!
//! This is the only place in the SDK with `unsafe`. Everything above it sees
//! safe functions: pointers Envoy hands to a hook are wrapped in
//! [`FilterEnvoy`] / [`ModulePtr`], buffers Envoy owns are copied into `Vec`s
//! before the hook returns (Envoy keeps them valid only until then), and the
//! module's own objects cross the boundary only as boxes turned into pointers
//! and back.
//!
//! The safety contract of the whole module: Envoy passes to each hook the
//! pointers the ABI documents, valid for the hook's duration; every callback is
//! called on the worker thread running that hook, with the filter pointer of
//! that hook.

use std::ffi::{c_char, c_void, CStr};

/// The ABI version the module was built for, returned by `on_program_init`.
pub const ABI_VERSION: &CStr = c"v0.2.0";

/// Envoy's filter object of one HTTP stream (`http_filter_envoy_ptr`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterEnvoy(*mut c_void);

/// Envoy's filter config object (`http_filter_config_envoy_ptr`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct ConfigEnvoy(*mut c_void);

/// A pointer to one of the module's own objects, as Envoy hands it back.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct ModulePtr(*const c_void);

/// A buffer Envoy owns, valid during the hook or callback that gave it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

/// A buffer the module owns, read by Envoy during the call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

/// A header the module owns (`module_http_header`).
#[repr(C)]
struct ModuleHeader {
    key: ModuleBuffer,
    value: ModuleBuffer,
}

/// A header Envoy owns (`envoy_http_header`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyHeader {
    key: EnvoyBuffer,
    value: EnvoyBuffer,
}

/// `envoy_dynamic_module_type_http_header_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum HeaderType {
    RequestHeader = 0,
    RequestTrailer = 1,
    ResponseHeader = 2,
    ResponseTrailer = 3,
}

/// `envoy_dynamic_module_type_http_body_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BodyType {
    ReceivedRequest = 0,
    BufferedRequest = 1,
    ReceivedResponse = 2,
    BufferedResponse = 3,
}

/// `envoy_dynamic_module_type_http_callout_init_result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalloutInit {
    Success,
    MissingRequiredHeaders,
    ClusterNotFound,
    DuplicateCalloutId,
    CannotCreateRequest,
    Unknown(u32),
}

/// `envoy_dynamic_module_type_http_callout_result` (as passed to `http_callout_done`).
pub const CALLOUT_SUCCESS: u32 = 0;

/// Header statuses (`on_http_filter_{request,response}_headers_status`).
pub const HEADERS_CONTINUE: u32 = 0;
pub const HEADERS_STOP_ITERATION: u32 = 1;
pub const HEADERS_STOP_ALL_ITERATION_AND_WATERMARK: u32 = 4;
/// Body statuses (`on_http_filter_{request,response}_body_status`).
pub const BODY_CONTINUE: u32 = 0;
pub const BODY_STOP_ITERATION_AND_BUFFER: u32 = 1;
pub const BODY_STOP_ITERATION_AND_WATERMARK: u32 = 2;
pub const BODY_STOP_ITERATION_NO_BUFFER: u32 = 3;
/// Trailer statuses.
pub const TRAILERS_CONTINUE: u32 = 0;
pub const TRAILERS_STOP_ITERATION: u32 = 1;

/// Attribute ids (`envoy_dynamic_module_type_attribute_id`) the SDK reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Attribute {
    RequestPath = 0,
    RequestUrlPath = 1,
    RequestHost = 2,
    RequestScheme = 3,
    RequestMethod = 4,
    RequestReferer = 6,
    RequestUserAgent = 7,
    RequestId = 9,
    RequestProtocol = 10,
    RequestQuery = 11,
    ResponseCode = 15,
    ResponseCodeDetails = 16,
    SourceAddress = 24,
    SourcePort = 25,
    DestinationAddress = 26,
    DestinationPort = 27,
    ConnectionId = 28,
    ConnectionRequestedServerName = 30,
    UpstreamAddress = 41,
    UpstreamPort = 42,
    XdsClusterName = 57,
    XdsRouteName = 61,
    XdsVirtualHostName = 63,
}

// The callbacks Envoy exports to modules (the symbol test reads this block).
extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_get_log_level() -> u32;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoy,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(filter: FilterEnvoy, header_type: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoy,
        header_type: u32,
        result: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoy,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoy,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoy,
        status_code: u32,
        headers: *const ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_get_body_size(filter: FilterEnvoy, body_type: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(filter: FilterEnvoy, body_type: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoy,
        body_type: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_append_body(filter: FilterEnvoy, body_type: u32, data: ModuleBuffer) -> bool;
    fn envoy_dynamic_module_callback_http_drain_body(filter: FilterEnvoy, body_type: u32, bytes: usize) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(filter: FilterEnvoy) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_response_body(filter: FilterEnvoy) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoy,
        attribute: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoy,
        attribute: u32,
        result: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoy);
    fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: FilterEnvoy);
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoy,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;
}

fn module_buffer(bytes: &[u8]) -> ModuleBuffer {
    ModuleBuffer { ptr: bytes.as_ptr().cast(), length: bytes.len() }
}

/// A null buffer: for a header value, "remove the header".
fn null_buffer() -> ModuleBuffer {
    ModuleBuffer { ptr: std::ptr::null(), length: 0 }
}

impl EnvoyBuffer {
    fn empty() -> Self {
        EnvoyBuffer { ptr: std::ptr::null(), length: 0 }
    }

    /// The bytes, copied (Envoy's buffer lives only until the hook returns).
    pub fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() || self.length == 0 {
            return Vec::new();
        }
        // SAFETY: Envoy gave this buffer for the current hook; it is `length` bytes long.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }.to_vec()
    }

    /// The bytes, appended to `out`.
    fn append_to(self, out: &mut Vec<u8>) {
        if self.ptr.is_null() || self.length == 0 {
            return;
        }
        // SAFETY: as in `to_vec`.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) });
    }
}

// ----- module objects crossing the boundary -----

/// Hands a module object to Envoy; [`ModulePtr::with`] borrows it, [`ModulePtr::drop_box`] frees it.
pub fn into_module_ptr<T>(object: Box<T>) -> ModulePtr {
    ModulePtr(Box::into_raw(object).cast_const().cast())
}

/// What Envoy takes as "no object" (a refused config or filter).
pub fn null_module_ptr() -> ModulePtr {
    ModulePtr(std::ptr::null())
}

impl ModulePtr {
    /// Borrows the object this pointer was made from with [`into_module_ptr::<T>`].
    /// `None` for a null pointer.
    pub fn with<T, R>(self, f: impl FnOnce(&T) -> R) -> Option<R> {
        if self.0.is_null() {
            return None;
        }
        // SAFETY: non-null pointers Envoy passes back are ones `into_module_ptr::<T>`
        // made for this hook's object type, not yet dropped (Envoy calls the destroy
        // hook last); the borrow ends with `f`.
        Some(f(unsafe { &*self.0.cast::<T>() }))
    }

    /// Frees the object made with [`into_module_ptr::<T>`]; Envoy never passes it again.
    pub fn drop_box<T>(self) {
        if self.0.is_null() {
            return;
        }
        // SAFETY: see `with`; the destroy hooks are the last use of the pointer.
        drop(unsafe { Box::from_raw(self.0.cast_mut().cast::<T>()) });
    }
}

/// Reads a buffer Envoy handed to a hook (name and config of `config_new`).
pub fn read_buffer(buffer: EnvoyBuffer) -> Vec<u8> {
    buffer.to_vec()
}

/// Copies headers Envoy handed to a hook (an HTTP call's answer).
pub fn read_headers(headers: *const EnvoyHeader, count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    if headers.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: Envoy passes `count` headers at `headers`, valid during the hook.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers.iter().map(|h| (h.key.to_vec(), h.value.to_vec())).collect()
}

/// Concatenates body chunks Envoy handed to a hook.
pub fn read_chunks(chunks: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if chunks.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: Envoy passes `count` buffers at `chunks`, valid during the hook.
    let chunks = unsafe { std::slice::from_raw_parts(chunks, count) };
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.length).sum());
    for chunk in chunks {
        chunk.append_to(&mut out);
    }
    out
}

// ----- common callbacks -----

/// Writes a line to Envoy's log (component `dynamic_modules`).
pub fn log(level: u32, message: &str) {
    // SAFETY: the buffer is live for the call.
    unsafe { envoy_dynamic_module_callback_log(level, module_buffer(message.as_bytes())) }
}

/// Envoy's level for the `dynamic_modules` component (0 trace ... 5 critical, 6 off).
pub fn log_level() -> u32 {
    // SAFETY: no arguments.
    unsafe { envoy_dynamic_module_callback_get_log_level() }
}

// ----- HTTP filter callbacks -----

impl FilterEnvoy {
    /// First value of a header and how many values it has.
    pub fn header(self, header_type: HeaderType, name: &str) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::empty();
        let mut count: usize = 0;
        // SAFETY: key is live for the call; out-pointers are valid.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self,
                header_type as u32,
                module_buffer(name.as_bytes()),
                &mut result,
                0,
                &mut count,
            )
        };
        (ok && count > 0).then(|| result.to_vec())
    }

    /// Every header of a map, in order.
    pub fn headers(self, header_type: HeaderType) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        // SAFETY: plain arguments.
        let size = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self, header_type as u32) };
        let empty = EnvoyHeader { key: EnvoyBuffer::empty(), value: EnvoyBuffer::empty() };
        let mut headers = vec![empty; size];
        if size == 0 {
            return Some(Vec::new());
        }
        // SAFETY: `headers` has room for the `size` entries Envoy writes.
        let ok =
            unsafe { envoy_dynamic_module_callback_http_get_headers(self, header_type as u32, headers.as_mut_ptr()) };
        ok.then(|| headers.iter().map(|h| (h.key.to_vec(), h.value.to_vec())).collect())
    }

    /// Adds a header value.
    pub fn add_header(self, header_type: HeaderType, name: &str, value: &[u8]) -> bool {
        // SAFETY: buffers are live for the call.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self,
                header_type as u32,
                module_buffer(name.as_bytes()),
                module_buffer(value),
            )
        }
    }

    /// Sets a header (every value replaced); `None` removes it.
    pub fn set_header(self, header_type: HeaderType, name: &str, value: Option<&[u8]>) -> bool {
        let value = value.map_or_else(null_buffer, module_buffer);
        // SAFETY: buffers are live for the call; a null value means "remove".
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self,
                header_type as u32,
                module_buffer(name.as_bytes()),
                value,
            )
        }
    }

    /// Answers the client with a local response.
    pub fn send_response(self, status: u32, headers: &[(&str, &[u8])], body: &[u8], details: &str) {
        let headers: Vec<ModuleHeader> = headers
            .iter()
            .map(|(name, value)| ModuleHeader { key: module_buffer(name.as_bytes()), value: module_buffer(value) })
            .collect();
        // SAFETY: the header array and buffers are live for the call.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self,
                status,
                headers.as_ptr(),
                headers.len(),
                module_buffer(body),
                if details.is_empty() { null_buffer() } else { module_buffer(details.as_bytes()) },
            )
        }
    }

    /// Bytes in a body buffer.
    pub fn body_size(self, body_type: BodyType) -> usize {
        // SAFETY: plain arguments.
        unsafe { envoy_dynamic_module_callback_http_get_body_size(self, body_type as u32) }
    }

    /// A body buffer's bytes, appended to `out`; false when the buffer is not available.
    pub fn read_body(self, body_type: BodyType, out: &mut Vec<u8>) -> bool {
        // SAFETY: plain arguments.
        let count = unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self, body_type as u32) };
        if count == 0 {
            return false;
        }
        let mut chunks = vec![EnvoyBuffer::empty(); count];
        // SAFETY: `chunks` has room for the `count` buffers Envoy writes.
        if !unsafe { envoy_dynamic_module_callback_http_get_body_chunks(self, body_type as u32, chunks.as_mut_ptr()) } {
            return false;
        }
        for chunk in chunks {
            chunk.append_to(out);
        }
        true
    }

    /// Appends to a body buffer.
    pub fn append_body(self, body_type: BodyType, data: &[u8]) -> bool {
        // SAFETY: the buffer is live for the call.
        unsafe { envoy_dynamic_module_callback_http_append_body(self, body_type as u32, module_buffer(data)) }
    }

    /// Drains bytes from the front of a body buffer.
    pub fn drain_body(self, body_type: BodyType, bytes: usize) -> bool {
        // SAFETY: plain arguments.
        unsafe { envoy_dynamic_module_callback_http_drain_body(self, body_type as u32, bytes) }
    }

    /// Whether the chunk a body hook received is the buffered body itself.
    pub fn received_is_buffered(self, response: bool) -> bool {
        // SAFETY: plain arguments.
        unsafe {
            if response {
                envoy_dynamic_module_callback_http_received_buffered_response_body(self)
            } else {
                envoy_dynamic_module_callback_http_received_buffered_request_body(self)
            }
        }
    }

    /// A string attribute.
    pub fn attribute_string(self, attribute: Attribute) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::empty();
        // SAFETY: the out-pointer is valid.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(self, attribute as u32, &mut result)
        };
        ok.then(|| result.to_vec())
    }

    /// An integer attribute.
    pub fn attribute_int(self, attribute: Attribute) -> Option<u64> {
        let mut result: u64 = 0;
        // SAFETY: the out-pointer is valid.
        let ok =
            unsafe { envoy_dynamic_module_callback_http_filter_get_attribute_int(self, attribute as u32, &mut result) };
        ok.then_some(result)
    }

    /// Lets a held request go on.
    pub fn continue_decoding(self) {
        // SAFETY: plain argument.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self) }
    }

    /// Lets a held response go on.
    pub fn continue_encoding(self) {
        // SAFETY: plain argument.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_encoding(self) }
    }

    /// Starts an HTTP call; its answer comes to `on_http_filter_http_callout_done` with the id.
    pub fn http_callout(
        self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> (CalloutInit, u64) {
        let headers: Vec<ModuleHeader> = headers
            .iter()
            .map(|(name, value)| ModuleHeader {
                key: module_buffer(name.as_bytes()),
                value: module_buffer(value.as_bytes()),
            })
            .collect();
        let mut id: u64 = 0;
        // SAFETY: every buffer and the header array are live for the call; the out-pointer is valid.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_http_callout(
                self,
                &mut id,
                module_buffer(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                module_buffer(body),
                timeout_ms,
            )
        };
        let init = match result {
            0 => CalloutInit::Success,
            1 => CalloutInit::MissingRequiredHeaders,
            2 => CalloutInit::ClusterNotFound,
            3 => CalloutInit::DuplicateCalloutId,
            4 => CalloutInit::CannotCreateRequest,
            other => CalloutInit::Unknown(other),
        };
        (init, id)
    }
}
