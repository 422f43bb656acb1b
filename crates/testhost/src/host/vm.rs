//! The VM: compiling a module, instantiating it against the host functions
//! (refusing what the gateway would refuse), calling its exports, and what a
//! trap or a misused host call does to it (the VM fails for the rest of the
//! test, as on Envoy).
//!
//! Depends on `imports` (the host functions), `state` and the crate's
//! errors, and on the filter driver only to run what the VM's start asked
//! for; the filter driver, the clock and forwarding call into it.

use super::Inner;
use crate::imports;
use crate::state::{Phase, State};
use crate::{Error, Gateway, LogLevel};
use std::time::{SystemTime, UNIX_EPOCH};
use wasmi::{Engine, Linker, Module, Store, Val};

/// ABI markers a module may export, and which gateways accept them.
const ABI_MARKERS: &[(&str, bool)] = &[
    ("proxy_abi_version_0_2_1", true),
    ("proxy_abi_version_0_2_0", true),
    ("proxy_abi_version_0_1_0", true),
    // Higress only.
    ("proxy_abi_version_0_2_100", false),
];

impl Inner {
    /// Compiles `bytes` (`what` names them in errors) for a plugin called `name`.
    pub(super) fn compile(bytes: &[u8], name: &str, what: &str) -> Result<Inner, Error> {
        let engine = Engine::default();
        let module = Module::new(&engine, bytes)
            .map_err(|err| Error::Load { what: what.to_string(), reason: err.to_string() })?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let mut state = State::new(name.to_string(), now);
        state.properties.insert(b"plugin_name".to_vec(), name.as_bytes().to_vec());
        let store = Store::new(&engine, state);
        Ok(Inner { engine, module, store, instance: None, failed: None, configured: false, events: Vec::new() })
    }

    pub(super) fn check_failed(&self) -> Result<(), Error> {
        match &self.failed {
            Some(why) => Err(Error::VmFailed(why.clone())),
            None => Ok(()),
        }
    }

    /// Instantiates the module and starts the VM: `_initialize` (or `_start`),
    /// the root context, `proxy_on_vm_start`.
    pub(super) fn start(&mut self) -> Result<(), Error> {
        let gateway = self.store.data().gateway;
        // Envoy refuses a module that imports a function it does not have.
        if gateway == Gateway::Envoy {
            for import in self.module.imports() {
                if gateway_host_imports::is_higress_only(import.module(), import.name()) {
                    return Err(Error::Link(format!(
                        "Failed to load Wasm module due to a missing import: env.{}",
                        import.name()
                    )));
                }
            }
        }
        let exports: Vec<String> = self.module.exports().map(|e| e.name().to_string()).collect();
        let marker = ABI_MARKERS
            .iter()
            .find(|(name, _)| exports.iter().any(|e| e == name))
            .ok_or_else(|| Error::Link("the module exports no proxy_abi_version_* marker".to_string()))?;
        if !marker.1 && gateway == Gateway::Envoy {
            return Err(Error::Link(format!("upstream Envoy does not accept the ABI marker {}", marker.0)));
        }
        let mut linker = Linker::<State>::new(&self.engine);
        imports::define(&mut linker, gateway).map_err(|e| Error::Link(e.to_string()))?;
        let instance = linker.instantiate_and_start(&mut self.store, &self.module).map_err(|e| {
            let text = e.to_string();
            if text.contains("definition") || text.contains("import") {
                Error::Link(format!("Failed to load Wasm module due to a missing import: {text}"))
            } else {
                self.trap_error("start", &e)
            }
        })?;
        let memory = instance.get_memory(&self.store, "memory");
        let alloc = instance
            .get_func(&self.store, "proxy_on_memory_allocate")
            .or_else(|| instance.get_func(&self.store, "malloc"));
        {
            let s = self.store.data_mut();
            s.memory = memory;
            s.alloc = alloc;
            s.abi_0_1 = marker.0 == "proxy_abi_version_0_1_0";
        }
        self.instance = Some(instance);
        if exports.iter().any(|e| e == "_initialize") {
            self.call(0, None, "_initialize", &[])?;
        } else if exports.iter().any(|e| e == "_start") {
            self.call(0, None, "_start", &[])?;
        }
        let root = self.store.data().root_id;
        self.call(root, None, "proxy_on_context_create", &[root as i32, 0])?;
        let vm_len = self.store.data().vm_config.len() as i32;
        let started = self.call(root, None, "proxy_on_vm_start", &[root as i32, vm_len])?;
        self.run_actions(&mut None)?;
        if started == Some(0) {
            let logs = self.store.data().logs.clone();
            return Err(Error::VmStartRejected { logs });
        }
        Ok(())
    }

    fn trap_error(&mut self, call: &str, err: &wasmi::Error) -> Error {
        let reason = match err.i32_exit_status() {
            Some(code) => format!("proc_exit({code})"),
            None => err.to_string(),
        };
        let s = self.store.data();
        let error = Error::Trap {
            call: call.to_string(),
            reason,
            logs: s.logs.iter().filter(|l| l.level >= LogLevel::Error).cloned().collect(),
            stderr: String::from_utf8_lossy(&s.stderr).into_owned(),
        };
        self.failed = Some(error.to_string());
        error
    }

    /// Calls an export for context `ctx`; `None` when the module does not
    /// export it (Envoy then skips the call).
    pub(super) fn call(
        &mut self,
        ctx: u32,
        phase: Option<Phase>,
        name: &str,
        args: &[i32],
    ) -> Result<Option<i64>, Error> {
        let Some(instance) = self.instance else { return Ok(None) };
        let Some(func) = instance.get_func(&self.store, name) else { return Ok(None) };
        let ty = func.ty(&self.store);
        let params: Vec<Val> = args.iter().take(ty.params().len()).map(|a| Val::I32(*a)).collect();
        if params.len() != ty.params().len() {
            return Err(Error::Link(format!("export {name} has an unexpected signature")));
        }
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for_ty(*t)).collect();
        {
            let s = self.store.data_mut();
            s.current = ctx;
            s.effective = None;
            s.phase = phase;
            s.stop_next_iteration = false;
        }
        let outcome = func.call(&mut self.store, &params, &mut results);
        self.store.data_mut().phase = None;
        if let Err(err) = outcome {
            return Err(self.trap_error(name, &err));
        }
        self.check_misuse(name)?;
        Ok(match results.first() {
            Some(Val::I32(v)) => Some(i64::from(*v as u32)),
            Some(Val::I64(v)) => Some(*v),
            _ => Some(0),
        })
    }

    fn check_misuse(&mut self, during: &str) -> Result<(), Error> {
        let s = self.store.data_mut();
        if s.misuse.is_empty() {
            return Ok(());
        }
        let message = std::mem::take(&mut s.misuse).join("; ");
        let logs = s.logs.clone();
        let error = Error::Misuse { message: format!("{message} (during {during})"), logs };
        self.failed = Some(error.to_string());
        Err(error)
    }

    /// Records a misuse the host found outside a host call; fails the VM.
    pub(super) fn misuse(&mut self, message: String) -> Result<(), Error> {
        self.store.data_mut().misuse.push(message);
        self.check_misuse("action")
    }
}
