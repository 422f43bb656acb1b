//! The SDK's host functions on Envoy's dynamic module ABI: the same names and
//! signatures as the Proxy-Wasm ones (`src/host.rs`), so that `Request`, the
//! HTTP client and the logger are shared by both builds.
//!
//! Proxy-Wasm calls act on "the current context"; dynamic module callbacks take
//! the filter pointer of the hook. The hooks (`native::exports`) set that
//! pointer in a thread-local for their duration with [`enter`]; an Envoy
//! worker runs one hook at a time, and a hook re-entered from inside another
//! (a local answer completing the stream) restores the outer one on return.
//!
//! What this ABI cannot serve natively, and what it then does (the README's
//! table of differences lists them too):
//!
//! * `get_property` knows the paths that have an attribute id (`request.id`,
//!   `xds.route_name`, `source.address`, ... see [`attribute_of`]); any other
//!   path answers `Unimplemented`, which `Request::property` returns as `None`.
//! * `now_nanos` answers `Unimplemented`: [`crate::now`] uses the system clock.
//! * the plugin configuration arrives with `config_new`, not as a buffer
//!   (`BufferType` has no `PluginConfiguration`).
//!
//! Two rules of Envoy's Proxy-Wasm filter are kept here so that both builds
//! behave alike (the dynamic module filter would allow more):
//!
//! * a header map is open only while Envoy's Wasm filter would hand it out
//!   ([`Open`]): the request headers from their hook until they go on (the
//!   hook returns `Continue`, or a resume of either direction), the response
//!   headers from their hook until it returns `Continue`. Outside that window
//!   reads find nothing and edits answer `BadArgument`.
//! * [`continue_stream`] runs after the hook returns (Envoy's Wasm filter defers
//!   it the same way): the body hook Envoy then calls inline finds the request
//!   free, instead of busy with the hook that resumed it.

use crate::native::abi::{self, Attribute, BodyType, CalloutInit, FilterEnvoy, HeaderType};
use std::cell::{Cell, RefCell};

pub use crate::host_types::{HostResult, LogLevel, MetricType, Status};

/// Header maps, as in the Wasm backend.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

/// Buffers, as in the Wasm backend.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferType {
    RequestBody,
    ResponseBody,
    HttpCallResponseBody,
}

/// Which direction of the HTTP stream to continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamType {
    Request,
    Response,
}

/// Which header maps a hook may read and edit (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Open {
    pub request_headers: bool,
    pub response_headers: bool,
    /// The trailers, during their own hook only.
    pub request_trailers: bool,
    pub response_trailers: bool,
}

/// The hook running on this thread: its filter, the body it received (if a
/// body hook), and the header maps open to it.
#[derive(Clone, Copy)]
struct Current {
    filter: FilterEnvoy,
    body: Option<StreamType>,
    open: Open,
}

/// The answer of the HTTP call whose callback is running.
pub(crate) struct CalloutAnswer {
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
    static ANSWER: RefCell<Option<CalloutAnswer>> = const { RefCell::new(None) };
    /// The directions the running hook resumed, continued once it returns.
    static DEFERRED: RefCell<Vec<StreamType>> = const { RefCell::new(Vec::new()) };
}

/// Marks a hook as running until dropped (then the outer hook, if any, is current again).
pub(crate) struct Entered {
    previous: Option<Current>,
    /// What an outer hook of this thread had deferred, kept apart from this hook's.
    previous_deferred: Vec<StreamType>,
}

/// Makes `filter` the one host calls act on; `body` names the body a body
/// hook received, `open` the header maps it may touch.
pub(crate) fn enter(filter: FilterEnvoy, body: Option<StreamType>, open: Open) -> Entered {
    let previous = CURRENT.with(|c| c.replace(Some(Current { filter, body, open })));
    let previous_deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    Entered { previous, previous_deferred }
}

/// Makes an HTTP call's answer readable until dropped.
pub(crate) struct HeldAnswer(());

/// Holds `answer` for the callback about to run.
pub(crate) fn hold_answer(answer: CalloutAnswer) -> HeldAnswer {
    ANSWER.with(|a| *a.borrow_mut() = Some(answer));
    HeldAnswer(())
}

impl Drop for HeldAnswer {
    fn drop(&mut self) {
        ANSWER.with(|a| a.borrow_mut().take());
    }
}

impl Entered {
    /// Ends the hook: the header maps open at its end, and the directions it
    /// resumed, which the caller continues now that the request is free.
    pub(crate) fn leave(self) -> (Open, Vec<StreamType>) {
        let open = CURRENT.with(Cell::get).map(|c| c.open).unwrap_or_default();
        let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
        (open, deferred)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
        let outer = std::mem::take(&mut self.previous_deferred);
        DEFERRED.with(|d| *d.borrow_mut() = outer);
    }
}

fn current() -> HostResult<Current> {
    CURRENT.with(Cell::get).ok_or(Status::NOT_FOUND)
}

fn with_answer<R>(f: impl FnOnce(&CalloutAnswer) -> R) -> HostResult<R> {
    ANSWER.with(|a| a.borrow().as_ref().map(f)).ok_or(Status::NOT_FOUND)
}

fn header_type(map: MapType) -> Option<HeaderType> {
    match map {
        MapType::RequestHeaders => Some(HeaderType::RequestHeader),
        MapType::RequestTrailers => Some(HeaderType::RequestTrailer),
        MapType::ResponseHeaders => Some(HeaderType::ResponseHeader),
        MapType::ResponseTrailers => Some(HeaderType::ResponseTrailer),
        // The callout's answer carries no trailers in this ABI.
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers => None,
    }
}

/// The running hook's filter, when `header_type`'s map is open to it.
fn open_map(header_type: HeaderType) -> HostResult<Option<FilterEnvoy>> {
    let current = current()?;
    let open = match header_type {
        HeaderType::RequestHeader => current.open.request_headers,
        HeaderType::ResponseHeader => current.open.response_headers,
        HeaderType::RequestTrailer => current.open.request_trailers,
        HeaderType::ResponseTrailer => current.open.response_trailers,
    };
    Ok(open.then_some(current.filter))
}

/// Writes a message to Envoy's log.
pub fn log(level: LogLevel, message: &str) -> HostResult<()> {
    abi::log(level as u32, message);
    Ok(())
}

/// Envoy's current level for module logs (`off` counts as critical).
pub fn log_level() -> LogLevel {
    match abi::log_level() {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        _ => LogLevel::Critical,
    }
}

/// Envoy's clock is not offered to dynamic modules: the caller falls back to the system clock.
pub fn now_nanos() -> HostResult<u64> {
    Err(Status::UNIMPLEMENTED)
}

fn body_types(stream: StreamType) -> (BodyType, BodyType) {
    match stream {
        StreamType::Request => (BodyType::ReceivedRequest, BodyType::BufferedRequest),
        StreamType::Response => (BodyType::ReceivedResponse, BodyType::BufferedResponse),
    }
}

fn stream_of(buffer: BufferType) -> Option<StreamType> {
    match buffer {
        BufferType::RequestBody => Some(StreamType::Request),
        BufferType::ResponseBody => Some(StreamType::Response),
        _ => None,
    }
}

/// Whether the body hook running now received a chunk apart from the buffered body.
fn has_separate_chunk(current: Current, stream: StreamType) -> bool {
    current.body == Some(stream) && !current.filter.received_is_buffered(stream == StreamType::Response)
}

/// The body of one direction as Proxy-Wasm shows it: what was buffered, then the chunk received.
fn whole_body(current: Current, stream: StreamType) -> (Vec<u8>, bool) {
    let (received, buffered) = body_types(stream);
    let mut bytes = Vec::new();
    let mut found = current.filter.read_body(buffered, &mut bytes);
    if has_separate_chunk(current, stream) {
        found |= current.filter.read_body(received, &mut bytes);
    }
    (bytes, found || current.body == Some(stream))
}

/// Bytes of the body the hook sees (buffered plus the chunk received), for `Body::size`.
pub(crate) fn body_size(stream: StreamType) -> usize {
    let Ok(current) = current() else { return 0 };
    let (received, buffered) = body_types(stream);
    let mut size = current.filter.body_size(buffered);
    if has_separate_chunk(current, stream) {
        size = size.saturating_add(current.filter.body_size(received));
    }
    size
}

/// Reads `max_size` bytes from `start` of a buffer; `None` when the buffer does not exist.
pub fn get_buffer(buffer: BufferType, start: usize, max_size: usize) -> HostResult<Option<Vec<u8>>> {
    let bytes = match (buffer, stream_of(buffer)) {
        (_, Some(stream)) => {
            let (bytes, found) = whole_body(current()?, stream);
            if !found {
                return Ok(None);
            }
            bytes
        }
        (BufferType::HttpCallResponseBody, None) => with_answer(|a| a.body.clone())?,
        _ => return Err(Status::UNIMPLEMENTED),
    };
    let start = start.min(bytes.len());
    let end = start.saturating_add(max_size).min(bytes.len());
    Ok(Some(bytes.get(start..end).map(<[u8]>::to_vec).unwrap_or_default()))
}

/// Replaces `size` bytes at `start` of a body with `value` (Proxy-Wasm's `set_buffer_bytes`).
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, value: &[u8]) -> HostResult<()> {
    let Some(stream) = stream_of(buffer) else { return Err(Status::BAD_ARGUMENT) };
    let current = current()?;
    let (received, buffered) = body_types(stream);
    // Edits go to the chunk a body hook received, else to the buffered body.
    let target = if has_separate_chunk(current, stream) { received } else { buffered };
    let (old, _) = whole_body(current, stream);
    let start = start.min(old.len());
    let end = start.saturating_add(size).min(old.len());
    if start == old.len() {
        return if current.filter.append_body(target, value) { Ok(()) } else { Err(Status::NOT_FOUND) };
    }
    let mut new = Vec::with_capacity(old.len() - (end - start) + value.len());
    new.extend_from_slice(old.get(..start).unwrap_or_default());
    new.extend_from_slice(value);
    new.extend_from_slice(old.get(end..).unwrap_or_default());
    current.filter.drain_body(buffered, usize::MAX);
    if has_separate_chunk(current, stream) {
        current.filter.drain_body(received, usize::MAX);
    }
    if current.filter.append_body(target, &new) {
        Ok(())
    } else {
        Err(Status::NOT_FOUND)
    }
}

fn to_pairs(headers: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    headers.into_iter().map(|(k, v)| (crate::text::lossy(Some(k)).unwrap_or_default(), v)).collect()
}

/// All pairs of a header map, values as raw bytes.
pub fn get_map(map: MapType) -> HostResult<Vec<(String, Vec<u8>)>> {
    match header_type(map) {
        // A closed map reads as empty, as Proxy-Wasm's `get_header_map_pairs` answers.
        Some(header_type) => match open_map(header_type)? {
            Some(filter) => filter.headers(header_type).map(to_pairs).ok_or(Status::NOT_FOUND),
            None => Ok(Vec::new()),
        },
        None if map == MapType::HttpCallResponseTrailers => Ok(Vec::new()),
        None => with_answer(|a| to_pairs(a.headers.clone())),
    }
}

/// Replaces a whole header map: names not in `pairs` are removed, the others set.
pub fn set_map(map: MapType, pairs: &[(&str, &[u8])]) -> HostResult<()> {
    let Some(header_type) = header_type(map) else { return Err(Status::BAD_ARGUMENT) };
    let filter = open_map(header_type)?.ok_or(Status::BAD_ARGUMENT)?;
    let old = filter.headers(header_type).ok_or(Status::NOT_FOUND)?;
    for (name, _) in old {
        let name = String::from_utf8_lossy(&name);
        if !pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            filter.set_header(header_type, &name, None);
        }
    }
    let mut set: Vec<&str> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let ok = if set.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            filter.add_header(header_type, name, value)
        } else {
            set.push(name);
            filter.set_header(header_type, name, Some(value))
        };
        if !ok {
            return Err(Status::BAD_ARGUMENT);
        }
    }
    Ok(())
}

/// One header's (first) value as raw bytes; `None` when absent.
pub fn get_map_value(map: MapType, name: &str) -> HostResult<Option<Vec<u8>>> {
    match header_type(map) {
        Some(header_type) => Ok(open_map(header_type)?.ok_or(Status::BAD_ARGUMENT)?.header(header_type, name)),
        None if map == MapType::HttpCallResponseTrailers => Ok(None),
        None => with_answer(|a| {
            a.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v.clone())
        }),
    }
}

fn edit(map: MapType, f: impl FnOnce(FilterEnvoy, HeaderType) -> bool) -> HostResult<()> {
    let Some(header_type) = header_type(map) else { return Err(Status::BAD_ARGUMENT) };
    let filter = open_map(header_type)?.ok_or(Status::BAD_ARGUMENT)?;
    if f(filter, header_type) {
        Ok(())
    } else {
        Err(Status::NOT_FOUND)
    }
}

/// Sets a header, replacing every value it had.
pub fn replace_map_value(map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
    edit(map, |filter, t| filter.set_header(t, name, Some(value)))
}

/// Removes a header (every value).
pub fn remove_map_value(map: MapType, name: &str) -> HostResult<()> {
    edit(map, |filter, t| filter.set_header(t, name, None))
}

/// Adds a value to a header, keeping the values it had.
pub fn add_map_value(map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
    edit(map, |filter, t| filter.add_header(t, name, value))
}

/// A property path's attribute id, when the ABI has one.
pub(crate) fn attribute_of(path: &[&str]) -> Option<Attribute> {
    Some(match path {
        ["request", "path"] => Attribute::RequestPath,
        ["request", "url_path"] => Attribute::RequestUrlPath,
        ["request", "host"] => Attribute::RequestHost,
        ["request", "scheme"] => Attribute::RequestScheme,
        ["request", "method"] => Attribute::RequestMethod,
        ["request", "referer"] => Attribute::RequestReferer,
        ["request", "useragent"] => Attribute::RequestUserAgent,
        ["request", "id"] => Attribute::RequestId,
        ["request", "protocol"] => Attribute::RequestProtocol,
        ["request", "query"] => Attribute::RequestQuery,
        ["response", "code"] => Attribute::ResponseCode,
        ["response", "code_details"] => Attribute::ResponseCodeDetails,
        ["source", "address"] => Attribute::SourceAddress,
        ["source", "port"] => Attribute::SourcePort,
        ["destination", "address"] => Attribute::DestinationAddress,
        ["destination", "port"] => Attribute::DestinationPort,
        ["connection", "id"] => Attribute::ConnectionId,
        ["connection", "requested_server_name"] => Attribute::ConnectionRequestedServerName,
        ["upstream", "address"] => Attribute::UpstreamAddress,
        ["upstream", "port"] => Attribute::UpstreamPort,
        ["xds", "cluster_name"] => Attribute::XdsClusterName,
        ["xds", "route_name"] => Attribute::XdsRouteName,
        ["xds", "virtual_host_name"] => Attribute::XdsVirtualHostName,
        _ => return None,
    })
}

/// Whether an attribute is a number (Proxy-Wasm encodes those as 8 bytes, little-endian).
fn is_int(attribute: Attribute) -> bool {
    matches!(
        attribute,
        Attribute::ResponseCode
            | Attribute::SourcePort
            | Attribute::DestinationPort
            | Attribute::ConnectionId
            | Attribute::UpstreamPort
    )
}

/// A property (`["xds", "route_name"]`); `None` when Envoy does not have it,
/// `Unimplemented` for a path without an attribute id.
pub fn get_property(path: &[&str]) -> HostResult<Option<Vec<u8>>> {
    let Some(attribute) = attribute_of(path) else { return Err(Status::UNIMPLEMENTED) };
    let filter = current()?.filter;
    Ok(if is_int(attribute) {
        filter.attribute_int(attribute).map(|n| n.to_le_bytes().to_vec())
    } else {
        filter.attribute_string(attribute)
    })
}

/// Resumes a paused request or response once the running hook returns (see
/// the module docs); from then on the request headers are gone.
pub fn continue_stream(stream: StreamType) -> HostResult<()> {
    let mut current = current()?;
    current.open.request_headers = false;
    CURRENT.with(|c| c.set(Some(current)));
    DEFERRED.with(|d| d.borrow_mut().push(stream));
    Ok(())
}

/// Sends a response generated by the plugin; Envoy records `details` (when
/// not empty) as the response code details (`%RESPONSE_CODE_DETAILS%`).
pub fn send_local_response_with_details(
    status: u32,
    details: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> HostResult<()> {
    current()?.filter.send_response(status, headers, body, details);
    Ok(())
}

/// Starts an HTTP call to `cluster`; the answer comes to the filter's callout
/// hook with the token. Request trailers cannot be sent by this ABI: a call
/// with trailers is refused.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    trailers: &[(&str, &[u8])],
    timeout_ms: u32,
) -> HostResult<u32> {
    if !trailers.is_empty() {
        return Err(Status::UNIMPLEMENTED);
    }
    let filter = current()?.filter;
    let mut text = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        text.push((*name, std::str::from_utf8(value).map_err(|_| Status::BAD_ARGUMENT)?));
    }
    match filter.http_callout(cluster, &text, body, u64::from(timeout_ms)) {
        (CalloutInit::Success, id) => u32::try_from(id).map_err(|_| Status::INTERNAL_FAILURE),
        (CalloutInit::ClusterNotFound | CalloutInit::MissingRequiredHeaders, _) => Err(Status::BAD_ARGUMENT),
        (CalloutInit::DuplicateCalloutId | CalloutInit::CannotCreateRequest | CalloutInit::Unknown(_), _) => {
            Err(Status::INTERNAL_FAILURE)
        }
    }
}

// ===== What the dynamic module ABI (v0.2.0) has no call for, per request =====
//
// Timers, shared data and queues across workers, foreign functions, metrics
// defined per VM and filter-state properties written by name have no HTTP
// filter callback in the v0.2.0 ABI as the SDK uses it: each answers
// `Unimplemented`, which the SDK's callers turn into their documented errors
// (README, "native build": what behaves differently).

/// Ticks: not offered natively (`Unimplemented`).
pub fn set_tick_period(period_ms: u32) -> HostResult<()> {
    let _ = period_ms;
    Err(Status::UNIMPLEMENTED)
}

/// Shared data: not offered natively (`Unimplemented`).
pub fn get_shared_data(key: &str) -> HostResult<Option<(Vec<u8>, u32)>> {
    let _ = key;
    Err(Status::UNIMPLEMENTED)
}

/// Shared data: not offered natively (`Unimplemented`).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> HostResult<()> {
    let _ = (key, value, cas);
    Err(Status::UNIMPLEMENTED)
}

/// Shared queues: not offered natively (`Unimplemented`).
pub fn register_shared_queue(name: &str) -> HostResult<u32> {
    let _ = name;
    Err(Status::UNIMPLEMENTED)
}

/// Shared queues: not offered natively (`Unimplemented`).
pub fn resolve_shared_queue(vm_id: &str, name: &str) -> HostResult<u32> {
    let _ = (vm_id, name);
    Err(Status::UNIMPLEMENTED)
}

/// Shared queues: not offered natively (`Unimplemented`).
pub fn enqueue_shared_queue(queue_id: u32, value: &[u8]) -> HostResult<()> {
    let _ = (queue_id, value);
    Err(Status::UNIMPLEMENTED)
}

/// Shared queues: not offered natively (`Unimplemented`).
pub fn dequeue_shared_queue(queue_id: u32) -> HostResult<Vec<u8>> {
    let _ = queue_id;
    Err(Status::UNIMPLEMENTED)
}

/// Foreign functions: not offered natively (`Unimplemented`).
pub fn call_foreign_function(name: &str, argument: &[u8]) -> HostResult<Vec<u8>> {
    let _ = (name, argument);
    Err(Status::UNIMPLEMENTED)
}

/// Metrics: not offered natively yet (`Unimplemented`; the SDK's metric
/// handles then count nothing and log once).
pub fn define_metric(kind: MetricType, name: &str) -> HostResult<u32> {
    let _ = (kind, name);
    Err(Status::UNIMPLEMENTED)
}

/// Metrics: not offered natively yet (`Unimplemented`).
pub fn increment_metric(id: u32, offset: i64) -> HostResult<()> {
    let _ = (id, offset);
    Err(Status::UNIMPLEMENTED)
}

/// Metrics: not offered natively yet (`Unimplemented`).
pub fn record_metric(id: u32, value: u64) -> HostResult<()> {
    let _ = (id, value);
    Err(Status::UNIMPLEMENTED)
}

/// Metrics: not offered natively yet (`Unimplemented`).
pub fn get_metric(id: u32) -> HostResult<u64> {
    let _ = id;
    Err(Status::UNIMPLEMENTED)
}

/// Properties written by name: not offered natively (`Unimplemented`).
pub fn set_property(path: &[&str], value: &[u8]) -> HostResult<()> {
    let _ = (path, value);
    Err(Status::UNIMPLEMENTED)
}
