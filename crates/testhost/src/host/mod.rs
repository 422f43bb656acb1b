//! The host: a [`TestHost`] runs one plugin module and takes requests
//! through it. Its parts, each an `impl` of the host's inner state:
//!
//! * `vm.rs`: the VM: compiling, instantiating (as the gateway would link
//!   the module), calling exports, traps and misuse;
//! * `filter.rs`: the filter driver: a request's phases as Envoy's HTTP
//!   filter runs them, what each callback's status means, the deferred
//!   actions of host calls, the end of the stream;
//! * `clock.rs`: virtual time, ticks, and the scheduler of pending work;
//! * `forward.rs`: what goes upstream, the upstream's answer, and the
//!   answers to calls (from the test, or forwarded to real servers).
//!
//! This module holds the public API (settings, life cycle, what happened)
//! and depends on all four. Among them (`a → b`: `a` calls into `b`):
//! `filter → vm, forward` (a request done with the filter goes upstream);
//! `forward → vm, filter` (the upstream's answer enters the filter's
//! response direction: the one cycle, the two halves of a stream);
//! `clock → vm, forward, filter` (what is due is delivered, then the
//! deferred actions run); `vm → filter` only to run the deferred actions
//! of the VM's start. The host functions (`imports.rs`) see only `state`
//! and `abi`, never these.

mod clock;
mod filter;
mod forward;
mod vm;

use crate::exchange::{Event, Exchange, RequestBuilder};
use crate::http::HttpUpstream;
use crate::redis::RedisUpstream;
use crate::state::State;
use crate::{Error, Gateway, LogLevel, LogLine};
use filter::Flow;
use std::cell::RefCell;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use wasmi::{Engine, Instance, Module, Store};

/// A Proxy-Wasm host running one plugin module. See the [crate docs](crate).
pub struct TestHost {
    inner: RefCell<Inner>,
}

pub(crate) struct Inner {
    engine: Engine,
    module: Module,
    store: Store<State>,
    instance: Option<Instance>,
    failed: Option<String>,
    configured: bool,
    events: Vec<Event>,
}

impl TestHost {
    /// Loads and compiles a module from a file. A missing file is an error
    /// that says how to build it.
    pub fn load(path: impl AsRef<Path>) -> Result<TestHost, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|err| Error::Load {
            what: path.display().to_string(),
            reason: if err.kind() == std::io::ErrorKind::NotFound {
                "no such file; build the plugins first (`cargo xtask build` writes dist/<name>.wasm)".to_string()
            } else {
                err.to_string()
            },
        })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".to_string());
        Self::compile(&bytes, &name, &path.display().to_string())
    }

    /// Builds plugin `name` (`plugins/<name>`) from its current source and
    /// loads it: what its tests use, so they never run a stale module. The
    /// first call in a test binary runs cargo (quick when nothing changed);
    /// later ones reuse the bytes. See `build.rs`.
    pub fn plugin(name: &str) -> Result<TestHost, Error> {
        let bytes = crate::build::plugin_module(name)?;
        Self::compile(&bytes, name, &format!("plugin {name} (built from plugins/{name})"))
    }

    /// Compiles a module from bytes (e.g. `wat::parse_str(..)` output).
    pub fn from_bytes(bytes: &[u8]) -> Result<TestHost, Error> {
        Self::compile(bytes, "plugin", "<bytes>")
    }

    fn compile(bytes: &[u8], name: &str, what: &str) -> Result<TestHost, Error> {
        Ok(TestHost { inner: RefCell::new(Inner::compile(bytes, name, what)?) })
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(self.inner.borrow_mut().store.data_mut())
    }

    // ----- settings (builder style; each has a `set_` twin taking `&self`) -----

    /// Behave as upstream Envoy instead of Higress: a module importing
    /// Higress-only functions (Redis) is refused at load, as Envoy does, and
    /// the `get_log_level` foreign function and buffer type 9 do not exist.
    pub fn envoy(self) -> Self {
        self.with_state(|s| s.gateway = Gateway::Envoy);
        self
    }
    /// The plugin's name (property `plugin_name`; default: the file's stem).
    pub fn name(self, name: &str) -> Self {
        self.with_state(|s| {
            s.plugin_name = name.to_string();
            s.properties.insert(b"plugin_name".to_vec(), name.as_bytes().to_vec());
        });
        self
    }
    /// The VM configuration (`proxy_on_vm_start`'s buffer).
    pub fn vm_config(self, config: &str) -> Self {
        self.with_state(|s| s.vm_config = config.as_bytes().to_vec());
        self
    }
    /// The host's log level (default `Info`, as Envoy's): lower lines are dropped.
    pub fn log_level(self, level: LogLevel) -> Self {
        self.set_log_level(level);
        self
    }
    /// See [`TestHost::log_level`].
    pub fn set_log_level(&self, level: LogLevel) {
        self.with_state(|s| s.log_level = level);
    }
    /// A property for every request (`"route_name"`, `"xds.cluster_name"`:
    /// dots separate path parts).
    pub fn property(self, path: &str, value: impl AsRef<[u8]>) -> Self {
        self.set_property(path, value);
        self
    }
    /// See [`TestHost::property`].
    pub fn set_property(&self, path: &str, value: impl AsRef<[u8]>) {
        let key = crate::property_path(path);
        self.with_state(|s| {
            s.properties.insert(key, value.as_ref().to_vec());
        });
    }
    /// Removes a property.
    pub fn remove_property(&self, path: &str) {
        let key = crate::property_path(path);
        self.with_state(|s| {
            s.properties.remove(&key);
        });
    }
    /// Makes `cluster` known to `proxy_http_call`, answered by `upstream`.
    /// Calls to clusters never declared get `BadArgument`, as on Envoy.
    pub fn http_upstream(self, cluster: &str, upstream: HttpUpstream) -> Self {
        self.set_http_upstream(cluster, upstream);
        self
    }
    /// See [`TestHost::http_upstream`].
    pub fn set_http_upstream(&self, cluster: &str, upstream: HttpUpstream) {
        self.with_state(|s| {
            s.http_upstreams.insert(cluster.to_string(), upstream);
        });
    }
    /// Makes `cluster` known to `proxy_redis_init`, answered by `upstream`.
    pub fn redis_upstream(self, cluster: &str, upstream: RedisUpstream) -> Self {
        self.set_redis_upstream(cluster, upstream);
        self
    }
    /// See [`TestHost::redis_upstream`].
    pub fn set_redis_upstream(&self, cluster: &str, upstream: RedisUpstream) {
        self.with_state(|s| {
            s.redis_upstreams.insert(cluster.to_string(), upstream);
            s.redis_clients.retain(|_, c| c.spec.cluster != cluster);
        });
    }
    /// Envoy's `allow_on_headers_stop_iteration`: when set, a headers
    /// callback returning 1 stays `StopIteration` instead of becoming
    /// `StopAllIterationAndWatermark`.
    pub fn allow_on_headers_stop_iteration(self, allow: bool) -> Self {
        self.with_state(|s| s.allow_on_headers_stop_iteration = allow);
        self
    }
    /// An environment variable the module sees through WASI.
    pub fn env(self, key: &str, value: &str) -> Self {
        self.with_state(|s| s.env.push((key.to_string(), value.to_string())));
        self
    }
    /// Starts the virtual clock at `time` (default: the real time at load).
    pub fn start_time(self, time: SystemTime) -> Self {
        let nanos = time.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        self.with_state(|s| s.now = nanos);
        self
    }
    /// A foreign function the module can call (`proxy_call_foreign_function`).
    pub fn foreign_function(self, name: &str, f: impl FnMut(&[u8]) -> Result<Vec<u8>, i32> + 'static) -> Self {
        self.with_state(|s| {
            s.foreign.insert(name.to_string(), Box::new(f));
        });
        self
    }
    /// The hosts of the request's cluster Higress's `proxy_get_upstream_hosts`
    /// answers, as (address, metrics text); none: `NotFound`.
    pub fn upstream_hosts(self, hosts: &[(&str, &str)]) -> Self {
        self.with_state(|s| {
            s.upstream_hosts = hosts.iter().map(|(a, m)| (a.to_string(), m.to_string())).collect();
        });
        self
    }
    /// Seeds WASI `random_get` (deterministic by default).
    pub fn random_seed(self, seed: u64) -> Self {
        self.with_state(|s| s.rng = seed.max(1));
        self
    }

    // ----- life cycle -----

    /// Starts the VM if needed (`_initialize`, `proxy_on_context_create`,
    /// `proxy_on_vm_start`) and configures the plugin (`proxy_on_configure`).
    /// A plugin that refuses its configuration gives [`Error::ConfigRejected`]
    /// with its log lines (Envoy would refuse the listener).
    pub fn config(self, json: &str) -> Result<Self, Error> {
        self.configure(json)?;
        Ok(self)
    }

    /// Configures (again) a running plugin; see [`TestHost::config`].
    pub fn configure(&self, json: &str) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        if inner.instance.is_none() {
            inner.start()?;
        }
        let mark = inner.store.data().logs.len();
        let root = inner.store.data().root_id;
        inner.store.data_mut().plugin_config = json.as_bytes().to_vec();
        inner.store.data_mut().in_configure = true;
        let result = inner.call(root, None, "proxy_on_configure", &[root as i32, json.len() as i32]);
        inner.store.data_mut().in_configure = false;
        let ok = result?;
        inner.run_actions(&mut None)?;
        if ok == Some(0) {
            let logs = inner.store.data().logs.get(mark..).unwrap_or_default().to_vec();
            return Err(Error::ConfigRejected { logs });
        }
        inner.configured = true;
        Ok(())
    }

    /// Stops the plugin as Envoy does when its configuration goes away
    /// (replaced, removed, or the gateway shutting down): `proxy_on_done`,
    /// then `proxy_on_delete`, on the root context. The test host is done
    /// then: requests and configurations afterwards are errors.
    pub fn stop(&self) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        if inner.instance.is_none() || !inner.configured {
            return Err(Error::Setup("the plugin is not running".into()));
        }
        let root = inner.store.data().root_id;
        inner.call(root, None, "proxy_on_done", &[root as i32])?;
        inner.run_actions(&mut None)?;
        inner.call(root, None, "proxy_on_delete", &[root as i32])?;
        inner.run_actions(&mut None)?;
        inner.configured = false;
        inner.failed = Some("the plugin was stopped (TestHost::stop)".to_string());
        Ok(())
    }

    /// Builds a request to send through the plugin.
    pub fn request(&self) -> RequestBuilder<'_> {
        RequestBuilder::new(self)
    }

    pub(crate) fn run_request(&self, req: RequestBuilder<'_>) -> Result<Exchange, Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        if !inner.configured {
            return Err(Error::Setup("the plugin is not started: call `config(..)` first".to_string()));
        }
        inner.exchange(req)
    }

    // ----- what happened -----

    /// Every log line since load (at or above the host's level).
    pub fn logs(&self) -> Vec<LogLine> {
        self.inner.borrow().store.data().logs.clone()
    }
    /// What the module wrote to stdout and stderr.
    pub fn output(&self) -> (String, String) {
        let inner = self.inner.borrow();
        let s = inner.store.data();
        (String::from_utf8_lossy(&s.stdout).into_owned(), String::from_utf8_lossy(&s.stderr).into_owned())
    }
    /// Every HTTP call dispatched since load.
    pub fn http_calls(&self) -> Vec<crate::HttpCall> {
        self.inner.borrow().store.data().http_calls.clone()
    }
    /// Every Redis command sent since load.
    pub fn redis_calls(&self) -> Vec<crate::RedisCall> {
        self.inner.borrow().store.data().redis_calls.clone()
    }
    /// Host remarks since load (refused calls and why).
    pub fn notes(&self) -> Vec<String> {
        self.inner.borrow().store.data().notes.clone()
    }
    /// A shared-data value (`proxy_set_shared_data`).
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.borrow().store.data().shared_data.get(key.as_bytes()).map(|(v, _)| v.clone())
    }

    /// The keys of the shared data, sorted.
    pub fn shared_data_keys(&self) -> Vec<String> {
        let inner = self.inner.borrow();
        let mut keys: Vec<String> =
            inner.store.data().shared_data.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        keys.sort();
        keys
    }

    /// Writes a shared-data value as another VM would (its version moves on).
    pub fn set_shared_data(&self, key: &str, value: impl AsRef<[u8]>) {
        let mut inner = self.inner.borrow_mut();
        let state = inner.store.data_mut();
        state.next_cas = state.next_cas.wrapping_add(1).max(1);
        let cas = state.next_cas;
        state.shared_data.insert(key.as_bytes().to_vec(), (value.as_ref().to_vec(), cas));
    }
    /// A metric's value by name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.inner.borrow().store.data().metrics.values().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
    /// Events outside requests (ticks, answers delivered to the root).
    pub fn events(&self) -> Vec<Event> {
        self.inner.borrow().events.clone()
    }
    /// Number of calls (HTTP and Redis) not answered yet.
    pub fn pending_calls(&self) -> usize {
        self.inner.borrow().store.data().pending.len()
    }

    /// Makes the host function `import` (`"proxy_get_header_map_value"`)
    /// answer `status` from now on, doing nothing else: no value written
    /// back, no call started. `None` makes it work again. Any number can be
    /// forced, including ones the ABI does not name, to show that a module
    /// survives every answer a host could give.
    pub fn force_status(&self, import: &str, status: Option<u32>) {
        self.with_state(|s| match status {
            Some(status) => {
                s.forced_status.insert(import.to_string(), status as i32);
            }
            None => {
                s.forced_status.remove(import);
            }
        });
    }

    /// The host functions the module imports from `env`, by name.
    pub fn imports(&self) -> Vec<String> {
        let inner = self.inner.borrow();
        inner.module.imports().filter(|i| i.module() == "env").map(|i| i.name().to_string()).collect()
    }
}

impl Inner {
    /// Moves the events host calls recorded into the stream's (or the host's) list.
    fn drain_events(&mut self, flow: &mut Option<Flow>) {
        for event in std::mem::take(&mut self.store.data_mut().events) {
            self.record(flow, event);
        }
    }

    fn record(&mut self, flow: &mut Option<Flow>, event: Event) {
        match flow {
            Some(f) => f.events.push(event),
            None => self.events.push(event),
        }
    }
}
