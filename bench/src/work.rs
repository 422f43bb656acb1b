//! What a module does per request, counted exactly: its Wasm instructions
//! (wasmi fuel) and its host calls, on a minimal Proxy-Wasm host.
//!
//! Timings on a shared machine move by several percent between runs; these
//! counts do not move at all, and say where a plugin's extra cost over the
//! raw module comes from. The module runs in the wasmi interpreter with fuel
//! metering (one unit per executed Wasm instruction, a little more for bulk
//! memory operations); the host answers as Envoy would for the bench's request:
//! request headers `:method`, `:path`, `:authority`, an HTTP call answered
//! `200` with `x-token: demo-token`, log level warning, no properties. Each
//! request goes through `proxy_on_context_create`, `proxy_on_request_headers`,
//! `proxy_on_http_call_response` (when it made a call),
//! `proxy_on_response_headers`, `proxy_on_log`, `proxy_on_done` and
//! `proxy_on_delete`, as on Envoy; the counts are those of the 50th request
//! (the allocator and the maps are warm by then).
//!
//! This is not `crates/testhost` (which checks behaviour, not cost): a few
//! dozen lines of host, so nothing but the module's own work is counted.

use crate::Result;
use std::collections::BTreeMap;
use std::path::Path;
use wasmi::{Caller, Config, Engine, Error, Extern, ExternType, Linker, Module, Store, Val, ValType};

/// The work of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Wasm instructions (fuel) for the whole request.
    pub fuel: u64,
    /// Fuel by callback (`proxy_on_request_headers`, ...).
    pub by_callback: BTreeMap<String, u64>,
    /// Host calls by import name; `(vm) proxy_on_memory_allocate` counts the
    /// host's calls into the module to place returned values.
    pub host_calls: BTreeMap<String, u64>,
}

impl Work {
    /// Host calls in all (calls into the module to allocate not included).
    pub fn host_call_count(&self) -> u64 {
        self.host_calls.iter().filter(|(name, _)| !name.starts_with("(vm)")).map(|(_, n)| n).sum()
    }
}

#[derive(Default)]
struct Host {
    config: Vec<u8>,
    calls: BTreeMap<String, u64>,
}

const REQUESTS: i32 = 50;
const ROOT: i32 = 1;
const STATUS_OK: i64 = 0;
const STATUS_NOT_FOUND: i64 = 1;

/// Counts what `module` does per request, configured with `config`.
pub fn measure(module: &Path, config: &[u8]) -> Result<Work> {
    let fail = |err: Error| format!("{}: {err}", module.display());
    let bytes = std::fs::read(module).map_err(|err| format!("reading {}: {err}", module.display()))?;
    let mut engine_config = Config::default();
    engine_config.consume_fuel(true);
    let engine = Engine::new(&engine_config);
    let module_def = Module::new(&engine, &bytes).map_err(fail)?;
    let mut linker = Linker::<Host>::new(&engine);
    for import in module_def.imports() {
        let ExternType::Func(ty) = import.ty() else { continue };
        let name = import.name().to_string();
        let returns_i64 = ty.results().first() == Some(&ValType::I64);
        linker
            .func_new(import.module(), import.name(), ty.clone(), move |mut caller, params, out| {
                *caller.data_mut().calls.entry(name.clone()).or_default() += 1;
                let result = answer(&name, &mut caller, params)?;
                if let Some(slot) = out.first_mut() {
                    *slot = if returns_i64 { Val::I64(result) } else { Val::I32(result as i32) };
                }
                Ok(())
            })
            .map_err(|err| format!("{}: {err}", module.display()))?;
    }
    let mut store = Store::new(&engine, Host { config: config.to_vec(), calls: BTreeMap::new() });
    store.set_fuel(u64::MAX / 2).map_err(fail)?;
    let instance = linker.instantiate_and_start(&mut store, &module_def).map_err(fail)?;
    let call = |store: &mut Store<Host>, name: &str, params: &[i32]| -> Result<u64> {
        let Some(func) = instance.get_func(&*store, name) else { return Ok(0) };
        let before = store.get_fuel().map_err(fail)?;
        let args: Vec<Val> = params.iter().map(|v| Val::I32(*v)).collect();
        let mut results: Vec<Val> = func.ty(&*store).results().iter().map(|_| Val::I32(0)).collect();
        func.call(&mut *store, &args, &mut results).map_err(|err| format!("{}: {name}: {err}", module.display()))?;
        Ok(before - store.get_fuel().map_err(fail)?)
    };
    call(&mut store, "_initialize", &[])?;
    call(&mut store, "proxy_on_context_create", &[ROOT, 0])?;
    call(&mut store, "proxy_on_vm_start", &[ROOT, 0])?;
    let size = i32::try_from(config.len()).map_err(|_| "configuration too large".to_string())?;
    call(&mut store, "proxy_on_configure", &[ROOT, size])?;
    let mut work = Work::default();
    for context in ROOT + 1..=ROOT + REQUESTS {
        store.data_mut().calls.clear();
        let mut by_callback = BTreeMap::new();
        by_callback.insert(
            "proxy_on_context_create".to_string(),
            call(&mut store, "proxy_on_context_create", &[context, ROOT])?,
        );
        by_callback.insert(
            "proxy_on_request_headers".to_string(),
            call(&mut store, "proxy_on_request_headers", &[context, 3, 1])?,
        );
        if store.data().calls.contains_key("proxy_http_call") {
            let fuel = call(&mut store, "proxy_on_http_call_response", &[ROOT, 1, 2, 0, 0])?;
            by_callback.insert("proxy_on_http_call_response".to_string(), fuel);
        }
        by_callback.insert(
            "proxy_on_response_headers".to_string(),
            call(&mut store, "proxy_on_response_headers", &[context, 3, 0])?,
        );
        let mut end = 0;
        for name in ["proxy_on_log", "proxy_on_done", "proxy_on_delete"] {
            end += call(&mut store, name, &[context])?;
        }
        by_callback.insert("proxy_on_log + done + delete".to_string(), end);
        work = Work { fuel: by_callback.values().sum(), by_callback, host_calls: store.data().calls.clone() };
    }
    Ok(work)
}

/// The host's side of one import: the value it returns.
fn answer(name: &str, caller: &mut Caller<'_, Host>, params: &[Val]) -> std::result::Result<i64, Error> {
    let arg = |n: usize| params.get(n).and_then(Val::i32).unwrap_or(0);
    Ok(match name {
        // Buffer 7 is the plugin configuration.
        "proxy_get_buffer_bytes" if arg(0) == 7 => {
            let config = caller.data().config.clone();
            give(caller, &config, arg(3), arg(4))?
        }
        "proxy_get_buffer_bytes" | "proxy_get_property" => STATUS_NOT_FOUND,
        "proxy_get_header_map_value" => {
            let key = read(caller, arg(1), arg(2))?;
            let value: Option<&[u8]> = match (arg(0), key.as_slice()) {
                (0, b":method") => Some(b"GET"),
                (0, b":path") => Some(b"/"),
                (0, b":authority") => Some(b"127.0.0.1"),
                (6, b":status") => Some(b"200"),
                (6, b"x-token") => Some(b"demo-token"),
                _ => None,
            };
            match value {
                Some(value) => give(caller, value, arg(3), arg(4))?,
                None => STATUS_NOT_FOUND,
            }
        }
        "proxy_get_header_map_pairs" => {
            write_u32(caller, arg(1), 0)?;
            write_u32(caller, arg(2), 0)?;
            STATUS_OK
        }
        "proxy_http_call" => {
            write_u32(caller, arg(9), 1)?;
            STATUS_OK
        }
        "proxy_get_log_level" => {
            write_u32(caller, arg(0), 3)?;
            STATUS_OK
        }
        "environ_sizes_get" | "args_sizes_get" => {
            write_u32(caller, arg(0), 0)?;
            write_u32(caller, arg(1), 0)?;
            0
        }
        "fd_write" => {
            write_u32(caller, arg(3), 0)?;
            0
        }
        "proc_exit" => return Err(Error::new("the module called proc_exit")),
        _ => STATUS_OK,
    })
}

fn memory(caller: &Caller<'_, Host>) -> std::result::Result<wasmi::Memory, Error> {
    caller.get_export("memory").and_then(Extern::into_memory).ok_or_else(|| Error::new("no exported memory"))
}

fn read(caller: &mut Caller<'_, Host>, at: i32, len: i32) -> std::result::Result<Vec<u8>, Error> {
    let mut buf = vec![0; len as usize];
    memory(caller)?.read(&*caller, at as usize, &mut buf).map_err(|err| Error::new(err.to_string()))?;
    Ok(buf)
}

fn write_u32(caller: &mut Caller<'_, Host>, at: i32, value: u32) -> std::result::Result<(), Error> {
    memory(caller)?.write(&mut *caller, at as usize, &value.to_le_bytes()).map_err(|err| Error::new(err.to_string()))
}

/// Places `bytes` in the module's memory (with its allocator, as Envoy
/// does) and returns them through the two out-pointers.
fn give(caller: &mut Caller<'_, Host>, bytes: &[u8], data_out: i32, size_out: i32) -> std::result::Result<i64, Error> {
    *caller.data_mut().calls.entry("(vm) proxy_on_memory_allocate".to_string()).or_default() += 1;
    let allocate = caller
        .get_export("proxy_on_memory_allocate")
        .and_then(Extern::into_func)
        .ok_or_else(|| Error::new("no proxy_on_memory_allocate"))?;
    let mut out = [Val::I32(0)];
    allocate.call(&mut *caller, &[Val::I32(bytes.len() as i32)], &mut out)?;
    let at = out.first().and_then(Val::i32).unwrap_or(0);
    memory(caller)?.write(&mut *caller, at as usize, bytes).map_err(|err| Error::new(err.to_string()))?;
    write_u32(caller, data_out, at as u32)?;
    write_u32(caller, size_out, bytes.len() as u32)?;
    Ok(STATUS_OK)
}

#[cfg(test)]
mod tests {
    /// `dist/mock.wasm` adds one header per request and nothing else on the host.
    #[test]
    fn counts_a_plugin() {
        let module = e2e::paths::module("mock").unwrap();
        let work = super::measure(&module, br#"{"mockEnable": false}"#).unwrap();
        assert_eq!(work.host_calls.get("proxy_add_header_map_value"), Some(&1), "{work:?}");
        assert_eq!(work.host_call_count(), 1, "{work:?}");
        assert!(work.fuel > 100 && work.by_callback.len() == 4, "{work:?}");
        let again = super::measure(&module, br#"{"mockEnable": false}"#).unwrap();
        assert_eq!(again, work, "the counts are exact");
    }
}
