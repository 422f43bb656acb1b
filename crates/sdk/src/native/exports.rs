//! The event hooks Envoy looks up in the module (`envoy_dynamic_module_on_*`).
//!
//! `on_program_init` is exported by [`main!`](crate::main) in the plugin's
//! crate (it names the plugin type); every other hook is here, the same for
//! every plugin, and reaches the plugin through the objects `config_new` and
//! `filter_new` hand to Envoy. Each hook body runs behind `catch_unwind`
//! with a fail-safe answer (go on, or refuse a config), so that no panic
//! crosses into Envoy even outside the plugin's own code; the plugin's hooks
//! have their own guard with a better answer (see `filter.rs`).
//!
//! Hooks for what the SDK does not use (streamed HTTP calls,
//! scheduled events, watermarks) are exported because Envoy 1.40 requires
//! them, and do nothing.

use super::abi::{self, ConfigEnvoy, EnvoyBuffer, EnvoyHeader, FilterEnvoy, ModulePtr};
use super::filter::{new_filter_config, FilterFactory, FilterHooks};
use crate::host::CalloutAnswer;
use std::panic::{catch_unwind, AssertUnwindSafe};

type Config = Box<dyn FilterFactory>;
type Filter = Box<dyn FilterHooks>;

fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn with_filter<R>(module: ModulePtr, fallback: R, f: impl FnOnce(&dyn FilterHooks) -> R) -> R
where
    R: Copy,
{
    guard(fallback, || module.with::<Filter, R>(|filter| f(filter.as_ref())).unwrap_or(fallback))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy: ConfigEnvoy,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    guard(abi::null_module_ptr(), || match new_filter_config(&abi::read_buffer(config)) {
        Some(config) => abi::into_module_ptr::<Config>(Box::new(config)),
        None => abi::null_module_ptr(),
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: ModulePtr) {
    guard((), || config.drop_box::<Config>());
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(config: ModulePtr, _envoy: FilterEnvoy) -> ModulePtr {
    guard(abi::null_module_ptr(), || match config.with::<Config, Filter>(|config| config.new_filter()) {
        Some(filter) => abi::into_module_ptr::<Filter>(Box::new(filter)),
        None => abi::null_module_ptr(),
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: ModulePtr) {
    guard((), || filter.drop_box::<Filter>());
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoy,
    filter: ModulePtr,
    end_of_stream: bool,
) -> u32 {
    with_filter(filter, abi::HEADERS_CONTINUE, |f| f.request_headers(envoy, end_of_stream))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoy,
    filter: ModulePtr,
    end_of_stream: bool,
) -> u32 {
    with_filter(filter, abi::BODY_CONTINUE, |f| f.request_body(envoy, end_of_stream))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(envoy: FilterEnvoy, filter: ModulePtr) -> u32 {
    with_filter(filter, abi::TRAILERS_CONTINUE, |f| f.request_trailers(envoy))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoy,
    filter: ModulePtr,
    end_of_stream: bool,
) -> u32 {
    with_filter(filter, abi::HEADERS_CONTINUE, |f| f.response_headers(envoy, end_of_stream))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: FilterEnvoy,
    filter: ModulePtr,
    end_of_stream: bool,
) -> u32 {
    with_filter(filter, abi::BODY_CONTINUE, |f| f.response_body(envoy, end_of_stream))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(envoy: FilterEnvoy, filter: ModulePtr) -> u32 {
    with_filter(filter, abi::TRAILERS_CONTINUE, |f| f.response_trailers(envoy))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(envoy: FilterEnvoy, filter: ModulePtr) {
    with_filter(filter, (), |f| f.stream_complete(envoy));
}

// The ABI fixes the arguments.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: FilterEnvoy,
    filter: ModulePtr,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    guard((), || {
        // A failed call (reset, answer too large) has no headers: the SDK reads it as 502.
        let answer = if result == abi::CALLOUT_SUCCESS {
            CalloutAnswer {
                headers: abi::read_headers(headers, headers_size),
                body: abi::read_chunks(body_chunks, body_chunks_size),
            }
        } else {
            CalloutAnswer { headers: Vec::new(), body: Vec::new() }
        };
        filter.with::<Filter, ()>(|f| f.callout_done(envoy, callout_id, answer));
    });
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
    _stream_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(_envoy: FilterEnvoy, _filter: ModulePtr, _event_id: u64) {}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoy,
    _filter: ModulePtr,
) {
}
