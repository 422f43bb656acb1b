//! The host functions a module imports: Proxy-Wasm ABI 0.2.1 (and the few
//! 0.1.0 ones still seen) and Higress's extensions; WASI is in [`crate::wasi`].
//!
//! Every function checks its pointers against the module's memory and
//! answers `InvalidMemoryAccess` instead of failing; data handed back to the
//! module is allocated with the module's `proxy_on_memory_allocate`.

use crate::abi::{BufferType, Direction, MapType, StreamType, REDIS_ANSWERED, REDIS_NO_ANSWER};
use crate::headers::{decode_pairs, Headers};
use crate::http::{timeout_answer, CallAnswer, HttpCall, ReplyKind, UpstreamKind};
use crate::redis::{parse_query, parse_upstream, RedisCall, RedisKind, RedisReplyKind};
use crate::state::{status::*, Access, Action, PendingKind, Phase, Queue, RedisClient, State};
use crate::{Gateway, LogLevel};
use std::time::Duration;
use wasmi::{Caller, Error, Linker, Val};

pub(crate) type C<'a> = Caller<'a, State>;
pub(crate) type R = Result<i32, Error>;

fn mem(c: &C) -> Option<wasmi::Memory> {
    c.data().memory
}

/// Envoy's `request.path`, `request.host`, `request.scheme` and
/// `request.method` attributes: the request's pseudo-headers, in every phase
/// (also after the request went on, when the header map is no longer handed out).
fn request_attribute(stream: &crate::state::Stream, key: &[u8]) -> Option<Vec<u8>> {
    let header = match key {
        b"request\0path" => ":path",
        b"request\0host" => ":authority",
        b"request\0scheme" => ":scheme",
        b"request\0method" => ":method",
        _ => return None,
    };
    stream.req_headers.get_bytes(header).map(<[u8]>::to_vec)
}

pub(crate) fn read(c: &C, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = mem(c)?;
    let data = memory.data(c);
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize)?;
    data.get(start..end).map(<[u8]>::to_vec)
}

pub(crate) fn write(c: &mut C, ptr: i32, bytes: &[u8]) -> bool {
    let Some(memory) = mem(c) else { return false };
    let data = memory.data_mut(c);
    let start = ptr as u32 as usize;
    let Some(end) = start.checked_add(bytes.len()) else { return false };
    match data.get_mut(start..end) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub(crate) fn write_u32(c: &mut C, ptr: i32, v: u32) -> bool {
    write(c, ptr, &v.to_le_bytes())
}

/// Allocates `len` bytes in the module (Envoy's `allocMemory`): only logging
/// and the clock may be used by the allocator meanwhile.
fn alloc(c: &mut C, len: usize) -> Result<Option<u32>, Error> {
    let Some(func) = c.data().alloc else { return Ok(None) };
    let mut out = [Val::I32(0)];
    c.data_mut().in_alloc = true;
    let result = func.call(&mut *c, &[Val::I32(len as i32)], &mut out);
    c.data_mut().in_alloc = false;
    result?;
    match out.first() {
        Some(Val::I32(0)) | None => Ok(None),
        Some(Val::I32(p)) => Ok(Some(*p as u32)),
        Some(_) => Ok(None),
    }
}

/// Envoy's `copyToPointerSize`: empty data writes a null pointer and size 0.
fn give(c: &mut C, data: &[u8], ptr_ptr: i32, size_ptr: i32) -> R {
    let mut addr = 0u32;
    if !data.is_empty() {
        match alloc(c, data.len())? {
            Some(a) => addr = a,
            None => return Ok(INVALID_MEMORY_ACCESS),
        }
        if !write(c, addr as i32, data) {
            return Ok(INVALID_MEMORY_ACCESS);
        }
    }
    if !write_u32(c, ptr_ptr, addr) || !write_u32(c, size_ptr, data.len() as u32) {
        return Ok(INVALID_MEMORY_ACCESS);
    }
    Ok(OK)
}

/// Refuses host calls the allocator may not make (Envoy's restricted callbacks).
fn restricted(c: &C, name: &str) -> Result<(), Error> {
    if c.data().in_alloc {
        return Err(Error::new(format!("{name} called from proxy_on_memory_allocate, which Envoy forbids")));
    }
    Ok(())
}

/// The status a test forced for `import` (see `TestHost::force_status`).
fn forced(c: &C, import: &str) -> Option<i32> {
    c.data().forced_status.get(import).copied()
}

/// What every import does first: refuse what the allocator may not call,
/// then answer a status the test forced for it, doing nothing else.
macro_rules! enter {
    ($c:expr, $name:expr) => {
        restricted(&$c, $name)?;
        if let Some(status) = forced(&$c, $name) {
            return Ok(status);
        }
    };
}

fn misuse(c: &mut C, message: String) {
    c.data_mut().misuse.push(message);
}

// ----- header maps -----

/// The map a read sees; `Err(status)` when it is not available.
fn const_map(s: &State, map: MapType) -> Result<Headers, i32> {
    let ctx = s.ctx();
    if let Some(direction) = map.headers_of() {
        let Some(stream) = s.streams.get(&ctx) else { return Err(BAD_ARGUMENT) };
        if let Some((req, resp)) = &stream.access_log {
            return Ok(match direction {
                Direction::Request => req.clone(),
                Direction::Response => resp.clone(),
            });
        }
        let access = match direction {
            Direction::Request => stream.req_access,
            Direction::Response => stream.resp_access,
        };
        return match access {
            Access::ReadWrite => Ok(stream.headers(direction).clone()),
            Access::None => Err(BAD_ARGUMENT),
        };
    }
    match map {
        MapType::HttpCallResponseHeaders => match &s.call_answer {
            Some(CallAnswer::Response { headers, .. }) => Ok(headers.clone()),
            _ => Err(BAD_ARGUMENT),
        },
        MapType::HttpCallResponseTrailers => match &s.call_answer {
            Some(CallAnswer::Response { trailers, .. }) => Ok(trailers.clone()),
            _ => Err(BAD_ARGUMENT),
        },
        MapType::RequestTrailers | MapType::ResponseTrailers => {
            let (Some(direction), Some(stream)) = (map.trailers_of(), s.streams.get(&ctx)) else {
                return Err(BAD_ARGUMENT);
            };
            let (trailers, open) = match direction {
                Direction::Request => (&stream.req_trailers, stream.req_trailers_open),
                Direction::Response => (&stream.resp_trailers, stream.resp_trailers_open),
            };
            // Envoy hands trailers out only in their callback (an empty map elsewhere).
            Ok(if open { trailers.clone() } else { Headers::new() })
        }
        _ => Err(BAD_ARGUMENT),
    }
}

/// Applies `f` to the map a write changes; `BadArgument` when there is none.
/// `proxy_add_header_map_value` and `proxy_replace_header_map_value`: the
/// same checks, then `write` (add or set) with the name and value read.
fn write_map_value(
    mut c: C,
    import: &str,
    map: i32,
    (kptr, klen): (i32, i32),
    (vptr, vlen): (i32, i32),
    write: fn(&mut Headers, &str, Vec<u8>),
) -> R {
    enter!(c, import);
    let Some(map) = MapType::from_abi(map) else { return Ok(BAD_ARGUMENT) };
    let (Some(k), Some(v)) = (read(&c, kptr, klen), read(&c, vptr, vlen)) else {
        return Ok(INVALID_MEMORY_ACCESS);
    };
    Ok(with_map(c.data_mut(), map, |h| write(h, &String::from_utf8_lossy(&k), v)))
}

fn with_map(s: &mut State, map: MapType, f: impl FnOnce(&mut Headers)) -> i32 {
    let ctx = s.ctx();
    let Some(stream) = s.streams.get_mut(&ctx) else { return BAD_ARGUMENT };
    if stream.access_log.is_some() {
        return BAD_ARGUMENT;
    }
    if let Some(direction) = map.trailers_of() {
        let (trailers, open) = stream.trailers_mut(direction);
        if !*open {
            return BAD_ARGUMENT;
        }
        f(trailers);
        return OK;
    }
    let Some(direction) = map.headers_of() else { return BAD_ARGUMENT };
    if *stream.access_mut(direction) != Access::ReadWrite {
        return BAD_ARGUMENT;
    }
    f(stream.headers_mut(direction));
    OK
}

// ----- buffers -----

/// The buffer numbered `kind` on this gateway (Higress has one more).
fn buffer_type(s: &State, kind: i32) -> Option<BufferType> {
    BufferType::from_abi(kind, s.gateway == Gateway::Higress)
}

/// The bytes of a buffer for reading; `Err(status)` when there is no such buffer.
fn buffer(s: &State, kind: BufferType) -> Result<Vec<u8>, i32> {
    let stream = s.streams.get(&s.ctx());
    match kind {
        BufferType::RequestBody => Ok(stream.and_then(|st| st.req_body.clone()).unwrap_or_default()),
        BufferType::ResponseBody => Ok(stream.and_then(|st| st.resp_body.clone()).unwrap_or_default()),
        BufferType::DownstreamData
        | BufferType::UpstreamData
        | BufferType::GrpcReceiveBuffer
        | BufferType::CallData => Ok(Vec::new()),
        BufferType::HttpCallResponseBody => match &s.call_answer {
            Some(CallAnswer::Response { body, .. }) => Ok(body.clone()),
            _ => Err(NOT_FOUND),
        },
        BufferType::VmConfiguration => Ok(s.vm_config.clone()),
        BufferType::PluginConfiguration if s.in_configure => Ok(s.plugin_config.clone()),
        BufferType::PluginConfiguration => Err(NOT_FOUND),
        BufferType::RedisCallResponse => s.redis_answer.clone().ok_or(NOT_FOUND),
    }
}

pub(crate) fn define(linker: &mut Linker<State>, gateway: Gateway) -> Result<(), wasmi::errors::LinkerError> {
    define_general(linker)?;
    define_maps(linker)?;
    define_buffers(linker)?;
    define_stream(linker)?;
    define_calls(linker)?;
    define_shared(linker)?;
    define_metrics(linker)?;
    crate::wasi::define(linker, "wasi_snapshot_preview1")?;
    crate::wasi::define(linker, "wasi_unstable")?;
    if gateway == Gateway::Higress {
        define_redis(linker)?;
    }
    Ok(())
}

fn define_general(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap("env", "proxy_log", |mut c: C, level: i32, ptr: i32, len: i32| -> R {
        if let Some(status) = forced(&c, "proxy_log") {
            return Ok(status);
        }
        let Some(level) = LogLevel::from_abi(level) else { return Ok(BAD_ARGUMENT) };
        let Some(msg) = read(&c, ptr, len) else { return Ok(INVALID_MEMORY_ACCESS) };
        c.data_mut().log(level, String::from_utf8_lossy(&msg).into_owned());
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_get_log_level", |mut c: C, ptr: i32| -> R {
        enter!(c, "proxy_get_log_level");
        let level = c.data().log_level as u32;
        Ok(if write_u32(&mut c, ptr, level) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    l.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: C, ptr: i32| -> R {
        if let Some(status) = forced(&c, "proxy_get_current_time_nanoseconds") {
            return Ok(status);
        }
        let now = c.data().now;
        Ok(if write(&mut c, ptr, &now.to_le_bytes()) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    l.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: C, ms: i32| -> R {
        enter!(c, "proxy_set_tick_period_milliseconds");
        let s = c.data_mut();
        if ms == 0 {
            s.tick_period = None;
            s.next_tick = None;
        } else {
            let period = u64::from(ms as u32) * 1_000_000;
            s.tick_period = Some(period);
            s.next_tick = Some(s.now + period);
        }
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_get_property", |mut c: C, ptr: i32, len: i32, out_ptr: i32, out_size: i32| -> R {
        enter!(c, "proxy_get_property");
        let Some(path) = read(&c, ptr, len) else { return Ok(INVALID_MEMORY_ACCESS) };
        let key = State::property_key(&path);
        let s = c.data();
        let stream = s.streams.get(&s.ctx());
        let value = stream
            .and_then(|st| st.properties.get(&key))
            .or_else(|| s.properties.get(&key))
            .cloned()
            .or_else(|| stream.and_then(|st| request_attribute(st, &key)));
        match value {
            Some(v) => give(&mut c, &v, out_ptr, out_size),
            None => Ok(NOT_FOUND),
        }
    })?;
    l.func_wrap("env", "proxy_set_property", |mut c: C, ptr: i32, len: i32, vptr: i32, vlen: i32| -> R {
        enter!(c, "proxy_set_property");
        let (Some(path), Some(value)) = (read(&c, ptr, len), read(&c, vptr, vlen)) else {
            return Ok(INVALID_MEMORY_ACCESS);
        };
        let s = c.data_mut();
        let ctx = s.ctx();
        match s.streams.get_mut(&ctx) {
            Some(stream) => {
                stream.properties.insert(State::property_key(&path), value);
                Ok(OK)
            }
            // Envoy keeps properties in a stream's filter state; a root context has none.
            None => Ok(NOT_FOUND),
        }
    })?;
    l.func_wrap("env", "proxy_set_effective_context", |mut c: C, id: i32| -> R {
        enter!(c, "proxy_set_effective_context");
        let s = c.data_mut();
        if s.context_exists(id as u32) {
            s.effective = Some(id as u32);
            Ok(OK)
        } else {
            Ok(BAD_ARGUMENT)
        }
    })?;
    // ----- Higress's other host functions (refused on upstream Envoy at load) -----
    l.func_wrap("env", "proxy_get_upstream_hosts", |mut c: C, out_ptr: i32, out_size: i32| -> R {
        enter!(c, "proxy_get_upstream_hosts");
        let hosts = &c.data().upstream_hosts;
        if hosts.is_empty() {
            return Ok(NOT_FOUND);
        }
        let bytes = crate::headers::encode_pairs(hosts.iter().map(|(a, m)| (a.as_bytes(), m.as_bytes())));
        give(&mut c, &bytes, out_ptr, out_size)
    })?;
    l.func_wrap("env", "proxy_set_upstream_override_host", |mut c: C, ptr: i32, len: i32| -> R {
        enter!(c, "proxy_set_upstream_override_host");
        let Some(address) = read(&c, ptr, len) else { return Ok(INVALID_MEMORY_ACCESS) };
        let s = c.data_mut();
        let ctx = s.ctx();
        // Only while the request has not gone upstream (its headers are the plugin's).
        match s.streams.get_mut(&ctx) {
            Some(stream) if stream.req_access == Access::ReadWrite => {
                stream.override_host = Some(String::from_utf8_lossy(&address).into_owned());
                Ok(OK)
            }
            _ => Ok(BAD_ARGUMENT),
        }
    })?;
    l.func_wrap("env", "proxy_inject_encoded_data_to_filter_chain", |mut c: C, ptr: i32, len: i32, end: i32| -> R {
        enter!(c, "proxy_inject_encoded_data_to_filter_chain");
        let Some(data) = read(&c, ptr, len) else { return Ok(INVALID_MEMORY_ACCESS) };
        let s = c.data_mut();
        let ctx = s.ctx();
        // The response's filter chain: from the response phases on.
        let in_response =
            matches!(s.phase, Some(Phase::ResponseHeaders | Phase::ResponseBody | Phase::ResponseTrailers));
        if !s.streams.contains_key(&ctx) || !in_response {
            return Ok(BAD_ARGUMENT);
        }
        s.actions.push(Action::Inject { ctx, data, end_of_stream: end != 0 });
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_done", |c: C| -> R {
        enter!(c, "proxy_done");
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_get_status", |mut c: C, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| -> R {
        if let Some(status) = forced(&c, "proxy_get_status") {
            return Ok(status);
        }
        if !write_u32(&mut c, code_ptr, 0) {
            return Ok(INVALID_MEMORY_ACCESS);
        }
        give(&mut c, &[], ptr_ptr, size_ptr)
    })?;
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: C, nptr: i32, nlen: i32, aptr: i32, alen: i32, rptr: i32, rsize: i32| -> R {
            enter!(c, "proxy_call_foreign_function");
            let (Some(name), Some(args)) = (read(&c, nptr, nlen), read(&c, aptr, alen)) else {
                return Ok(INVALID_MEMORY_ACCESS);
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            let s = c.data_mut();
            let result = if let Some(f) = s.foreign.get_mut(&name) {
                f(&args)
            } else if name == "get_log_level" && s.gateway == Gateway::Higress {
                Ok((s.log_level as u32).to_le_bytes().to_vec())
            } else {
                return Ok(NOT_FOUND);
            };
            match result {
                Ok(bytes) => {
                    if rptr == 0 {
                        return Ok(OK);
                    }
                    give(&mut c, &bytes, rptr, rsize)
                }
                Err(status) => Ok(status),
            }
        },
    )?;
    // ABI 0.1.0 leftovers some SDKs still import.
    l.func_wrap("env", "proxy_get_configuration", |mut c: C, ptr_ptr: i32, size_ptr: i32| -> R {
        if let Some(status) = forced(&c, "proxy_get_configuration") {
            return Ok(status);
        }
        let data = if c.data().in_configure { c.data().plugin_config.clone() } else { c.data().vm_config.clone() };
        give(&mut c, &data, ptr_ptr, size_ptr)
    })?;
    Ok(())
}

fn define_maps(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C, map: i32, kptr: i32, klen: i32, out: i32, size: i32| -> R {
            enter!(c, "proxy_get_header_map_value");
            let Some(map) = MapType::from_abi(map) else { return Ok(BAD_ARGUMENT) };
            let Some(key) = read(&c, kptr, klen) else { return Ok(INVALID_MEMORY_ACCESS) };
            let headers = match const_map(c.data(), map) {
                Ok(h) => h,
                Err(_) if c.data().streams.get(&c.data().ctx()).is_some_and(|st| st.access_log.is_some()) => {
                    return Ok(NOT_FOUND);
                }
                Err(status) => return Ok(status),
            };
            let key = String::from_utf8_lossy(&key).into_owned();
            match headers.get_bytes(&key) {
                Some(v) => {
                    let v = v.to_vec();
                    give(&mut c, &v, out, size)
                }
                None if c.data().abi_0_1 => give(&mut c, &[], out, size),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    l.func_wrap("env", "proxy_get_header_map_pairs", |mut c: C, map: i32, out: i32, size: i32| -> R {
        enter!(c, "proxy_get_header_map_pairs");
        let Some(map) = MapType::from_abi(map) else { return Ok(BAD_ARGUMENT) };
        // Envoy answers an empty list for a map that is not available.
        let bytes = match const_map(c.data(), map) {
            Ok(h) if !h.is_empty() => h.encode(),
            _ => Vec::new(),
        };
        give(&mut c, &bytes, out, size)
    })?;
    l.func_wrap("env", "proxy_set_header_map_pairs", |mut c: C, map: i32, ptr: i32, len: i32| -> R {
        enter!(c, "proxy_set_header_map_pairs");
        let Some(map) = MapType::from_abi(map) else { return Ok(BAD_ARGUMENT) };
        let Some(bytes) = read(&c, ptr, len) else { return Ok(INVALID_MEMORY_ACCESS) };
        // Envoy's `toPairs` reads nothing from a malformed buffer.
        let pairs = decode_pairs(&bytes).unwrap_or_default();
        Ok(with_map(c.data_mut(), map, |h| {
            h.clear();
            for (k, v) in pairs {
                h.add(&String::from_utf8_lossy(&k), v);
            }
        }))
    })?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |c: C, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> R {
            write_map_value(c, "proxy_add_header_map_value", map, (kptr, klen), (vptr, vlen), Headers::add)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |c: C, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> R {
            write_map_value(c, "proxy_replace_header_map_value", map, (kptr, klen), (vptr, vlen), Headers::set)
        },
    )?;
    l.func_wrap("env", "proxy_remove_header_map_value", |mut c: C, map: i32, kptr: i32, klen: i32| -> R {
        enter!(c, "proxy_remove_header_map_value");
        let Some(map) = MapType::from_abi(map) else { return Ok(BAD_ARGUMENT) };
        let Some(k) = read(&c, kptr, klen) else { return Ok(INVALID_MEMORY_ACCESS) };
        Ok(with_map(c.data_mut(), map, |h| h.remove(&String::from_utf8_lossy(&k))))
    })?;
    l.func_wrap("env", "proxy_get_header_map_size", |mut c: C, map: i32, out: i32| -> R {
        if let Some(status) = forced(&c, "proxy_get_header_map_size") {
            return Ok(status);
        }
        let Some(map) = MapType::from_abi(map) else { return Ok(BAD_ARGUMENT) };
        let mut size = 0u32;
        let status = with_map(c.data_mut(), map, |h| {
            size = h.iter().map(|(k, v)| (k.len() + v.len()) as u32).sum();
        });
        if status != OK {
            return Ok(status);
        }
        Ok(if write_u32(&mut c, out, size) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    Ok(())
}

fn define_buffers(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C, kind: i32, start: i32, max: i32, out: i32, size: i32| -> R {
            enter!(c, "proxy_get_buffer_bytes");
            let Some(buffer_type) = buffer_type(c.data(), kind) else { return Ok(BAD_ARGUMENT) };
            let data = match buffer(c.data(), buffer_type) {
                Ok(d) => d,
                Err(status) => return Ok(status),
            };
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            if start > data.len() {
                let note = format!("proxy_get_buffer_bytes: start {start} is past the end of buffer {kind} ({} bytes); Envoy's behaviour is undefined there", data.len());
                c.data_mut().notes.push(note);
                return Ok(BAD_ARGUMENT);
            }
            let end = start.saturating_add(max).min(data.len());
            let slice = data.get(start..end).unwrap_or_default().to_vec();
            if slice.is_empty() {
                // Envoy writes nothing back for an empty read.
                return Ok(OK);
            }
            give(&mut c, &slice, out, size)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C, kind: i32, start: i32, len: i32, ptr: i32, plen: i32| -> R {
            enter!(c, "proxy_set_buffer_bytes");
            let Some(buffer_type) = buffer_type(c.data(), kind) else { return Ok(BAD_ARGUMENT) };
            let Some(data) = read(&c, ptr, plen) else { return Ok(INVALID_MEMORY_ACCESS) };
            let s = c.data_mut();
            let ctx = s.ctx();
            let target = match (buffer_type.body_of(), s.streams.get_mut(&ctx)) {
                (Some(direction), Some(stream)) => stream.body_mut(direction).as_mut(),
                _ => None,
            };
            let Some(buf) = target else { return Ok(BAD_ARGUMENT) };
            let (start, len) = (start as u32 as usize, len as u32 as usize);
            // Envoy's Buffer::copyFrom: replace a prefix, or append at the end.
            if start == 0 {
                let drained = len.min(buf.len());
                buf.drain(..drained);
                let mut joined = data;
                joined.extend_from_slice(buf);
                *buf = joined;
                Ok(OK)
            } else if start >= buf.len() {
                buf.extend_from_slice(&data);
                Ok(OK)
            } else {
                Ok(BAD_ARGUMENT)
            }
        },
    )?;
    Ok(())
}

fn define_stream(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    fn continue_stream(c: &mut C, kind: i32) -> R {
        enter!(*c, "proxy_continue_stream");
        let s = c.data_mut();
        let ctx = s.ctx();
        let direction = match StreamType::from_abi(kind) {
            Some(StreamType::Http(direction)) => direction,
            Some(StreamType::Downstream) => return Ok(OK),
            Some(StreamType::Upstream) => return Ok(UNIMPLEMENTED),
            None => return Ok(BAD_ARGUMENT),
        };
        let Some(stream) = s.streams.get_mut(&ctx) else {
            let what = direction.name();
            s.misuse.push(format!(
                "continue_stream({what}) called on context {ctx}, which is not an HTTP stream (Envoy ignores it)"
            ));
            return Ok(OK);
        };
        // Envoy forgets the request's headers and body at once (for either direction).
        stream.req_access = Access::None;
        let during = s.phase;
        s.actions.push(Action::Continue { ctx, direction, during });
        Ok(OK)
    }
    l.func_wrap("env", "proxy_continue_stream", |mut c: C, kind: i32| -> R { continue_stream(&mut c, kind) })?;
    l.func_wrap("env", "proxy_continue_request", |mut c: C| -> R { continue_stream(&mut c, 0) })?;
    l.func_wrap("env", "proxy_continue_response", |mut c: C| -> R { continue_stream(&mut c, 1) })?;
    l.func_wrap("env", "proxy_close_stream", |mut c: C, kind: i32| -> R {
        enter!(c, "proxy_close_stream");
        let Some(stream_type) = StreamType::from_abi(kind) else { return Ok(BAD_ARGUMENT) };
        let s = c.data_mut();
        let ctx = s.ctx();
        if s.streams.contains_key(&ctx) && matches!(stream_type, StreamType::Http(_)) {
            s.actions.push(Action::Reset { ctx });
        }
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_clear_route_cache", |c: C| -> R {
        Ok(forced(&c, "proxy_clear_route_cache").unwrap_or(OK))
    })?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C, code: i32, dptr: i32, dlen: i32, bptr: i32, blen: i32, hptr: i32, hlen: i32, _grpc: i32| -> R {
            enter!(c, "proxy_send_local_response");
            let (Some(details), Some(body), Some(headers)) = (read(&c, dptr, dlen), read(&c, bptr, blen), read(&c, hptr, hlen))
            else {
                return Ok(INVALID_MEMORY_ACCESS);
            };
            let headers: Vec<(String, Vec<u8>)> = decode_pairs(&headers)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).to_ascii_lowercase(), v))
                .collect();
            let s = c.data_mut();
            let ctx = s.ctx();
            s.stop_next_iteration = true;
            if !s.streams.contains_key(&ctx) {
                misuse(
                    &mut c,
                    format!("send_local_response({code}) called on context {ctx}, which is not an HTTP stream (Envoy ignores it)"),
                );
                return Ok(OK);
            }
            let details = String::from_utf8_lossy(&details).into_owned();
            c.data_mut().actions.push(Action::LocalResponse { ctx, status: code as u32, details, headers, body });
            Ok(OK)
        },
    )?;
    Ok(())
}

fn define_calls(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C,
         uptr: i32,
         ulen: i32,
         hptr: i32,
         hlen: i32,
         bptr: i32,
         blen: i32,
         tptr: i32,
         tlen: i32,
         timeout: i32,
         token_ptr: i32|
         -> R {
            enter!(c, "proxy_http_call");
            let (Some(cluster), Some(headers), Some(body), Some(_trailers)) =
                (read(&c, uptr, ulen), read(&c, hptr, hlen), read(&c, bptr, blen), read(&c, tptr, tlen))
            else {
                return Ok(INVALID_MEMORY_ACCESS);
            };
            if !write_u32(&mut c, token_ptr, 0) {
                return Ok(INVALID_MEMORY_ACCESS);
            }
            if timeout < 0 {
                return Ok(BAD_ARGUMENT);
            }
            let cluster = String::from_utf8_lossy(&cluster).into_owned();
            if !c.data().http_upstreams.contains_key(&cluster) {
                c.data_mut()
                    .notes
                    .push(format!("proxy_http_call: unknown cluster {cluster:?} (BadArgument, as on Envoy)"));
                return Ok(BAD_ARGUMENT);
            }
            let mut map = Headers::new();
            for (k, v) in decode_pairs(&headers).unwrap_or_default() {
                map.add(&String::from_utf8_lossy(&k), v);
            }
            if !map.contains(":path") || !map.contains(":method") || !map.contains(":authority") {
                c.data_mut().notes.push(
                    "proxy_http_call: :path, :method and :authority are required (BadArgument, as on Envoy)"
                        .to_string(),
                );
                return Ok(BAD_ARGUMENT);
            }
            if !body.is_empty() {
                map.set("content-length", body.len().to_string());
            }
            let s = c.data_mut();
            s.next_http_id += 4;
            let token = s.next_http_id;
            let timeout = (timeout > 0).then(|| Duration::from_millis(timeout as u64));
            let call = HttpCall { cluster: cluster.clone(), headers: map, body, timeout, token };
            s.http_calls.push(call.clone());
            s.events.push(crate::Event::HttpCall { token, cluster: cluster.clone() });
            let now = s.now;
            let timeout_at = timeout.map(|t| now + t.as_nanos() as u64);
            let Some(upstream) = s.http_upstreams.get_mut(&cluster) else { return Ok(BAD_ARGUMENT) };
            match &mut upstream.kind {
                UpstreamKind::Forward(address) => {
                    let address = address.clone();
                    s.schedule(now, PendingKind::HttpForward { token, address, call });
                }
                UpstreamKind::Respond(responder) => {
                    let reply = responder(&call);
                    let ready = now + reply.delay.as_nanos() as u64;
                    let answer = match reply.kind {
                        ReplyKind::NoAnswer => None,
                        ReplyKind::ConnectFailure => Some(CallAnswer::Failure),
                        ReplyKind::Response { .. } => reply.response_parts().map(|(_, headers, chunks)| {
                            CallAnswer::Response { headers, body: chunks.concat(), trailers: reply.trailer_map() }
                        }),
                    };
                    match (answer, timeout_at) {
                        (Some(answer), Some(t)) if ready < t => {
                            s.schedule(ready, PendingKind::HttpAnswer { token, answer })
                        }
                        (Some(answer), None) => s.schedule(ready, PendingKind::HttpAnswer { token, answer }),
                        (_, Some(t)) => s.schedule(t, PendingKind::HttpAnswer { token, answer: timeout_answer() }),
                        (None, None) => {}
                    }
                }
            }
            Ok(if write_u32(&mut c, token_ptr, token) { OK } else { INVALID_MEMORY_ACCESS })
        },
    )?;
    for name in ["proxy_grpc_cancel", "proxy_grpc_close"] {
        l.func_wrap("env", name, move |mut c: C, _token: i32| -> R {
            if let Some(status) = forced(&c, name) {
                return Ok(status);
            }
            c.data_mut().notes.push("gRPC calls are not supported by the test host".to_string());
            Ok(UNIMPLEMENTED)
        })?;
    }
    l.func_wrap("env", "proxy_grpc_send", |mut c: C, _t: i32, _p: i32, _l: i32, _e: i32| -> R {
        if let Some(status) = forced(&c, "proxy_grpc_send") {
            return Ok(status);
        }
        c.data_mut().notes.push("gRPC calls are not supported by the test host".to_string());
        Ok(UNIMPLEMENTED)
    })?;
    l.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: C,
         _a: i32,
         _b: i32,
         _c2: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32,
         _j: i32,
         _k: i32,
         _l: i32|
         -> R {
            if let Some(status) = forced(&c, "proxy_grpc_call") {
                return Ok(status);
            }
            c.data_mut().notes.push("gRPC calls are not supported by the test host".to_string());
            Ok(UNIMPLEMENTED)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: C, _a: i32, _b: i32, _c2: i32, _d: i32, _e: i32, _f: i32, _g: i32, _h: i32, _i: i32| -> R {
            if let Some(status) = forced(&c, "proxy_grpc_stream") {
                return Ok(status);
            }
            c.data_mut().notes.push("gRPC calls are not supported by the test host".to_string());
            Ok(UNIMPLEMENTED)
        },
    )?;
    Ok(())
}

fn define_redis(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(
        "env",
        "proxy_redis_init",
        |mut c: C, uptr: i32, ulen: i32, nptr: i32, nlen: i32, pptr: i32, plen: i32, timeout: i32| -> R {
            enter!(c, "proxy_redis_init");
            let (Some(upstream), Some(username), Some(password)) =
                (read(&c, uptr, ulen), read(&c, nptr, nlen), read(&c, pptr, plen))
            else {
                return Ok(INVALID_MEMORY_ACCESS);
            };
            let upstream = String::from_utf8_lossy(&upstream).into_owned();
            let s = c.data_mut();
            let spec = match parse_upstream(&upstream) {
                Ok(spec) => spec,
                Err(why) => {
                    s.notes.push(format!("proxy_redis_init({upstream:?}): {why} (BadArgument)"));
                    return Ok(BAD_ARGUMENT);
                }
            };
            if !s.redis_upstreams.contains_key(&spec.cluster) {
                s.notes.push(format!("proxy_redis_init: unknown cluster {:?} (BadArgument)", spec.cluster));
                return Ok(BAD_ARGUMENT);
            }
            let client = RedisClient {
                spec: spec.clone(),
                username,
                password,
                timeout: Duration::from_millis(timeout as u32 as u64),
                conn: None,
            };
            s.redis_clients.insert(spec.cluster, client);
            Ok(OK)
        },
    )?;
    l.func_wrap("env", "proxy_redis_call", |mut c: C, uptr: i32, ulen: i32, qptr: i32, qlen: i32, id_ptr: i32| -> R {
        enter!(c, "proxy_redis_call");
        let (Some(upstream), Some(query)) = (read(&c, uptr, ulen), read(&c, qptr, qlen)) else {
            return Ok(INVALID_MEMORY_ACCESS);
        };
        let upstream = String::from_utf8_lossy(&upstream).into_owned();
        let s = c.data_mut();
        let spec = match parse_upstream(&upstream) {
            Ok(spec) => spec,
            Err(why) => {
                s.notes.push(format!("proxy_redis_call({upstream:?}): {why} (BadArgument)"));
                return Ok(BAD_ARGUMENT);
            }
        };
        let Some(client) = s.redis_clients.get(&spec.cluster) else {
            s.notes.push(format!(
                "proxy_redis_call: cluster {:?} was not initialized with proxy_redis_init (BadArgument)",
                spec.cluster
            ));
            return Ok(BAD_ARGUMENT);
        };
        let timeout = client.timeout;
        let args = match parse_query(&query) {
            Ok(args) => args,
            Err(why) => {
                s.notes.push(format!("proxy_redis_call: {why} (BadArgument)"));
                return Ok(BAD_ARGUMENT);
            }
        };
        s.next_redis_id += 4;
        let id = s.next_redis_id;
        let call = RedisCall { cluster: spec.cluster.clone(), args, query: query.clone(), callout_id: id };
        s.events.push(crate::Event::RedisCall { id, command: call.command() });
        s.redis_calls.push(call.clone());
        let now = s.now;
        let timeout_at = (!timeout.is_zero()).then(|| now + timeout.as_nanos() as u64);
        let Some(upstream) = s.redis_upstreams.get_mut(&spec.cluster) else { return Ok(BAD_ARGUMENT) };
        match &mut upstream.kind {
            RedisKind::Forward(_) => s.schedule(now, PendingKind::RedisForward { id, cluster: spec.cluster, query }),
            RedisKind::Respond(responder) => {
                let reply = responder(&call);
                let ready = now + reply.delay.as_nanos() as u64;
                let outcome = match reply.kind {
                    RedisReplyKind::Raw(data) => Some((REDIS_ANSWERED, data)),
                    RedisReplyKind::Failure(status) => Some((status, Vec::new())),
                    RedisReplyKind::NoAnswer => None,
                };
                match (outcome, timeout_at) {
                    (Some((status, data)), Some(t)) if ready < t => {
                        s.schedule(ready, PendingKind::Redis { id, status, data })
                    }
                    (Some((status, data)), None) => s.schedule(ready, PendingKind::Redis { id, status, data }),
                    (_, Some(t)) => s.schedule(t, PendingKind::Redis { id, status: REDIS_NO_ANSWER, data: Vec::new() }),
                    (None, None) => {}
                }
            }
        }
        Ok(if write_u32(&mut c, id_ptr, id) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    Ok(())
}

fn define_shared(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C, kptr: i32, klen: i32, out: i32, size: i32, cas_ptr: i32| -> R {
            enter!(c, "proxy_get_shared_data");
            let Some(key) = read(&c, kptr, klen) else { return Ok(INVALID_MEMORY_ACCESS) };
            let Some((value, cas)) = c.data().shared_data.get(&key).cloned() else { return Ok(NOT_FOUND) };
            let status = give(&mut c, &value, out, size)?;
            if status != OK {
                return Ok(status);
            }
            Ok(if write_u32(&mut c, cas_ptr, cas) { OK } else { INVALID_MEMORY_ACCESS })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> R {
            enter!(c, "proxy_set_shared_data");
            let (Some(key), Some(value)) = (read(&c, kptr, klen), read(&c, vptr, vlen)) else {
                return Ok(INVALID_MEMORY_ACCESS);
            };
            let s = c.data_mut();
            if let Some((_, current)) = s.shared_data.get(&key) {
                if cas != 0 && cas as u32 != *current {
                    return Ok(CAS_MISMATCH);
                }
            }
            s.next_cas = s.next_cas.wrapping_add(1).max(1);
            let next = s.next_cas;
            s.shared_data.insert(key, (value, next));
            Ok(OK)
        },
    )?;
    l.func_wrap("env", "proxy_register_shared_queue", |mut c: C, nptr: i32, nlen: i32, token_ptr: i32| -> R {
        enter!(c, "proxy_register_shared_queue");
        let Some(name) = read(&c, nptr, nlen) else { return Ok(INVALID_MEMORY_ACCESS) };
        let name = String::from_utf8_lossy(&name).into_owned();
        let s = c.data_mut();
        let root = s.root_id;
        let token = match s.queues.iter().find(|(_, q)| q.name == name) {
            Some((t, _)) => *t,
            None => {
                s.next_queue += 1;
                let t = s.next_queue;
                s.queues.insert(t, Queue { name, root, items: Default::default() });
                t
            }
        };
        Ok(if write_u32(&mut c, token_ptr, token) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C, _vptr: i32, _vlen: i32, nptr: i32, nlen: i32, token_ptr: i32| -> R {
            enter!(c, "proxy_resolve_shared_queue");
            let Some(name) = read(&c, nptr, nlen) else { return Ok(INVALID_MEMORY_ACCESS) };
            let name = String::from_utf8_lossy(&name).into_owned();
            let Some(token) = c.data().queues.iter().find(|(_, q)| q.name == name).map(|(t, _)| *t) else {
                return Ok(NOT_FOUND);
            };
            Ok(if write_u32(&mut c, token_ptr, token) { OK } else { INVALID_MEMORY_ACCESS })
        },
    )?;
    l.func_wrap("env", "proxy_enqueue_shared_queue", |mut c: C, token: i32, ptr: i32, len: i32| -> R {
        enter!(c, "proxy_enqueue_shared_queue");
        let Some(data) = read(&c, ptr, len) else { return Ok(INVALID_MEMORY_ACCESS) };
        let s = c.data_mut();
        let now = s.now;
        let Some(queue) = s.queues.get_mut(&(token as u32)) else { return Ok(NOT_FOUND) };
        queue.items.push_back(data);
        let root = queue.root;
        s.schedule(now, PendingKind::QueueReady { root, token: token as u32 });
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_dequeue_shared_queue", |mut c: C, token: i32, out: i32, size: i32| -> R {
        enter!(c, "proxy_dequeue_shared_queue");
        let Some(queue) = c.data_mut().queues.get_mut(&(token as u32)) else { return Ok(NOT_FOUND) };
        let Some(item) = queue.items.pop_front() else { return Ok(EMPTY) };
        give(&mut c, &item, out, size)
    })?;
    Ok(())
}

fn define_metrics(l: &mut Linker<State>) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap("env", "proxy_define_metric", |mut c: C, kind: i32, nptr: i32, nlen: i32, id_ptr: i32| -> R {
        if let Some(status) = forced(&c, "proxy_define_metric") {
            return Ok(status);
        }
        if !(0..=2).contains(&kind) {
            return Ok(BAD_ARGUMENT);
        }
        let Some(name) = read(&c, nptr, nlen) else { return Ok(INVALID_MEMORY_ACCESS) };
        let name = String::from_utf8_lossy(&name).into_owned();
        let s = c.data_mut();
        let existing = s.metrics.iter().find(|(id, (n, _))| *n == name && (**id & 3) as i32 == kind).map(|(id, _)| *id);
        let id = match existing {
            Some(id) => id,
            None => {
                let Some(slot) = s.metric_ids.get_mut(kind as usize) else { return Ok(BAD_ARGUMENT) };
                *slot += 4;
                let id = *slot;
                s.metrics.insert(id, (name, 0));
                id
            }
        };
        Ok(if write_u32(&mut c, id_ptr, id) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    l.func_wrap("env", "proxy_increment_metric", |mut c: C, id: i32, offset: i64| -> R {
        if let Some(status) = forced(&c, "proxy_increment_metric") {
            return Ok(status);
        }
        let s = c.data_mut();
        let kind = id & 3;
        let Some((_, value)) = s.metrics.get_mut(&(id as u32)) else {
            return Ok(if kind <= 1 { NOT_FOUND } else { BAD_ARGUMENT });
        };
        match kind {
            0 if offset > 0 => *value += offset,
            0 => return Ok(BAD_ARGUMENT),
            1 => *value += offset,
            _ => return Ok(BAD_ARGUMENT),
        }
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_record_metric", |mut c: C, id: i32, v: i64| -> R {
        if let Some(status) = forced(&c, "proxy_record_metric") {
            return Ok(status);
        }
        let s = c.data_mut();
        let kind = id & 3;
        let Some((_, value)) = s.metrics.get_mut(&(id as u32)) else { return Ok(NOT_FOUND) };
        match kind {
            0 => *value += v,
            _ => *value = v,
        }
        Ok(OK)
    })?;
    l.func_wrap("env", "proxy_get_metric", |mut c: C, id: i32, out: i32| -> R {
        if let Some(status) = forced(&c, "proxy_get_metric") {
            return Ok(status);
        }
        if id & 3 == 2 {
            return Ok(BAD_ARGUMENT);
        }
        let Some((_, value)) = c.data().metrics.get(&(id as u32)).cloned() else { return Ok(NOT_FOUND) };
        Ok(if write(&mut c, out, &(value as u64).to_le_bytes()) { OK } else { INVALID_MEMORY_ACCESS })
    })?;
    Ok(())
}
