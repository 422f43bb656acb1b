//! The host: loading a module, calling into it, and driving streams and
//! asynchronous work on a virtual clock.

use crate::exchange::{Event, Exchange, RequestBuilder, Response, UpstreamRequest, UpstreamSpec};
use crate::headers::Headers;
use crate::http::{self, CallAnswer, HttpUpstream, Reply, ReplyKind};
use crate::redis::{RedisConnection, RedisIoError, RedisUpstream};
use crate::state::{Access, Action, Pending, PendingKind, Phase, State, Stream};
use crate::{imports, Error, Gateway, LogLevel, LogLine};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmi::{Engine, Instance, Linker, Module, Store, Val};

/// ABI markers a module may export, and which gateways accept them.
const ABI_MARKERS: &[(&str, bool)] = &[
    ("proxy_abi_version_0_2_1", true),
    ("proxy_abi_version_0_2_0", true),
    ("proxy_abi_version_0_1_0", true),
    // Higress only.
    ("proxy_abi_version_0_2_100", false),
];

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
        let engine = Engine::default();
        let module = Module::new(&engine, bytes)
            .map_err(|err| Error::Load { what: what.to_string(), reason: err.to_string() })?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let mut state = State::new(name.to_string(), now);
        state.properties.insert(b"plugin_name".to_vec(), name.as_bytes().to_vec());
        let store = Store::new(&engine, state);
        Ok(TestHost {
            inner: RefCell::new(Inner {
                engine,
                module,
                store,
                instance: None,
                failed: None,
                configured: false,
                events: Vec::new(),
            }),
        })
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

    // ----- time -----

    /// The virtual clock (what `proxy_get_current_time_nanoseconds` returns).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.inner.borrow().store.data().now)
    }

    /// Lets `by` pass: fires the ticks and delivers the call answers due by then.
    pub fn advance(&self, by: Duration) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        let target = inner.store.data().now + by.as_nanos() as u64;
        while inner.step(&mut None, target)? {}
        let s = inner.store.data_mut();
        s.now = s.now.max(target);
        Ok(())
    }

    /// Moves the clock to the next tick and runs `proxy_on_tick`. Fails if
    /// the plugin set no tick period.
    pub fn tick(&self) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        let Some(at) = inner.store.data().next_tick else {
            return Err(Error::Setup(
                "no tick period: the plugin never called proxy_set_tick_period_milliseconds".into(),
            ));
        };
        while inner.step(&mut None, at)? {}
        Ok(())
    }

    /// Delivers every pending call answer (not ticks), advancing the clock
    /// as far as needed. Answers to calls of finished requests reach the
    /// root context, as they would on Envoy.
    pub fn settle(&self) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        while let Some(at) = inner.store.data().pending.iter().map(|p| p.at).min() {
            inner.step_pending_only(&mut None, at)?;
        }
        Ok(())
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

/// One direction of a stream (request or response) at this filter.
#[derive(Default)]
struct Dir {
    started: bool,
    headers_released: bool,
    /// 0: none, 1: StopIteration (body still delivered), 3/4: StopAllIteration.
    hold: u32,
    chunks: VecDeque<Vec<u8>>,
    buffering: bool,
    data_stopped: bool,
    passed: Vec<u8>,
    headers_out: Option<Headers>,
    done: bool,
    abandoned: bool,
    local: bool,
}

impl Dir {
    fn paused(&self) -> bool {
        self.hold != 0 || self.data_stopped
    }
}

/// A stream being driven.
pub(crate) struct Flow {
    ctx: u32,
    req: Dir,
    resp: Dir,
    head_request: bool,
    answered: bool,
    upstream_spec: Option<UpstreamSpec>,
    upstream_sent: bool,
    upstream_reply: Option<(u16, Headers, Vec<Vec<u8>>, bool)>,
    response: Option<Response>,
    upstream: Option<UpstreamRequest>,
    finished: bool,
    stalled: bool,
    reset: bool,
    events: Vec<Event>,
    /// The details of the plugin's own answer, once it sent one.
    local_details: Option<String>,
    /// The stream's properties when it ended.
    properties: HashMap<Vec<u8>, Vec<u8>>,
}

fn convert_headers_status(r: i64, stopped: bool, allow: bool) -> u32 {
    if stopped || !(0..=4).contains(&r) {
        return 4;
    }
    if r == 1 && !allow {
        return 4;
    }
    r as u32
}

fn convert_data_status(r: i64, stopped: bool) -> u32 {
    if stopped || !(0..=3).contains(&r) {
        return 3;
    }
    r as u32
}

impl Inner {
    fn check_failed(&self) -> Result<(), Error> {
        match &self.failed {
            Some(why) => Err(Error::VmFailed(why.clone())),
            None => Ok(()),
        }
    }

    fn start(&mut self) -> Result<(), Error> {
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
    fn call(&mut self, ctx: u32, phase: Option<Phase>, name: &str, args: &[i32]) -> Result<Option<i64>, Error> {
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

    fn misuse(&mut self, message: String) -> Result<(), Error> {
        self.store.data_mut().misuse.push(message);
        self.check_misuse("action")
    }

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

    // ----- requests -----

    fn exchange(&mut self, req: RequestBuilder<'_>) -> Result<Exchange, Error> {
        let mark_logs = self.store.data().logs.len();
        let mark_notes = self.store.data().notes.len();
        let mark_http = self.store.data().http_calls.len();
        let mark_redis = self.store.data().redis_calls.len();

        let mut headers = Headers::new();
        for (name, default) in [(":authority", "example.com"), (":path", "/"), (":method", "GET"), (":scheme", "http")]
        {
            match req.headers.iter().find(|(k, _)| k == name) {
                Some((_, v)) => headers.add(name, v),
                None => headers.add(name, default),
            }
        }
        const DEFAULTS: [&str; 4] = [":authority", ":path", ":method", ":scheme"];
        for (k, v) in req.headers.iter().filter(|(k, _)| !DEFAULTS.contains(&k.as_str())) {
            headers.add(k, v);
        }
        let head_request = headers.get(":method").is_some_and(|m| m.eq_ignore_ascii_case("HEAD"));
        let chunks: VecDeque<Vec<u8>> = req.chunks.into_iter().filter(|c| !c.is_empty()).collect();

        let ctx = {
            let s = self.store.data_mut();
            let ctx = s.next_context_id;
            s.next_context_id += 1;
            let mut stream = Stream::new(headers);
            stream.properties.extend(req.properties);
            s.streams.insert(ctx, stream);
            ctx
        };
        let mut flow = Some(Flow {
            ctx,
            req: Dir { chunks, ..Dir::default() },
            resp: Dir::default(),
            head_request,
            answered: false,
            upstream_spec: Some(req.upstream),
            upstream_sent: false,
            upstream_reply: None,
            response: None,
            upstream: None,
            finished: false,
            stalled: false,
            reset: false,
            events: Vec::new(),
            local_details: None,
            properties: HashMap::new(),
        });
        let root = self.store.data().root_id;
        self.call(ctx, None, "proxy_on_context_create", &[ctx as i32, root as i32])?;
        self.run_actions(&mut flow)?;
        self.drive(&mut flow)?;
        self.teardown(&mut flow)?;

        let Some(flow) = flow else { return Err(Error::Setup("internal: the stream vanished".into())) };
        let s = self.store.data();
        Ok(Exchange {
            upstream: flow.upstream,
            response: flow.response,
            logs: s.logs.get(mark_logs..).unwrap_or_default().to_vec(),
            events: flow.events,
            http_calls: s.http_calls.get(mark_http..).unwrap_or_default().to_vec(),
            redis_calls: s.redis_calls.get(mark_redis..).unwrap_or_default().to_vec(),
            notes: s.notes.get(mark_notes..).unwrap_or_default().to_vec(),
            stalled: flow.stalled,
            reset: flow.reset,
            context_id: ctx,
            properties: flow.properties,
        })
    }

    fn drive(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        self.pump(flow, false)?;
        let idle = self.store.data().idle_timeout.as_nanos() as u64;
        let mut deadline = self.store.data().now + idle;
        loop {
            let Some(f) = flow.as_mut() else { return Ok(()) };
            if f.finished {
                return Ok(());
            }
            if f.req.done && !f.answered && !f.upstream_sent {
                self.send_upstream(flow)?;
                continue;
            }
            if f.resp.done {
                let response = Response {
                    status: f
                        .resp
                        .headers_out
                        .as_ref()
                        .and_then(|h| h.get(":status"))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    headers: f.resp.headers_out.clone().unwrap_or_default(),
                    body: std::mem::take(&mut f.resp.passed),
                    local: f.resp.local,
                    details: if f.resp.local { f.local_details.clone() } else { None },
                };
                f.response = Some(response);
                f.finished = true;
                return Ok(());
            }
            let before = self.store.data().pending.len();
            if !self.step(flow, deadline)? {
                if let Some(f) = flow.as_mut() {
                    f.stalled = true;
                    f.finished = true;
                    f.events.push(Event::Stalled);
                }
                return Ok(());
            }
            if self.store.data().pending.len() != before {
                deadline = self.store.data().now + idle;
            }
        }
    }

    fn send_upstream(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        f.upstream_sent = true;
        let ctx = f.ctx;
        let headers = match f.req.headers_out.clone() {
            Some(h) => h,
            None => self.store.data().streams.get(&ctx).map(|s| s.req_headers.clone()).unwrap_or_default(),
        };
        let request = UpstreamRequest { headers, body: f.req.passed.clone() };
        let reply = match f.upstream_spec.take() {
            Some(UpstreamSpec::Fixed(r)) => r,
            Some(UpstreamSpec::With(mut g)) => g(&request),
            None => Reply::new(200),
        };
        f.upstream = Some(request);
        f.events.push(Event::Upstream);
        let now = self.store.data().now;
        let route_timeout = self.store.data().route_timeout.as_nanos() as u64;
        let (at, parts) = match &reply.kind {
            ReplyKind::Response { .. } => {
                let at = now + reply.delay.as_nanos() as u64;
                match reply.response_parts() {
                    Some((status, headers, chunks)) if at < now + route_timeout => {
                        (at, (status, headers, chunks, false))
                    }
                    _ => (now + route_timeout, local_parts(504, b"upstream request timeout")),
                }
            }
            ReplyKind::ConnectFailure => {
                let body = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused";
                (now + reply.delay.as_nanos() as u64, local_parts(503, body))
            }
            ReplyKind::NoAnswer => (now + route_timeout, local_parts(504, b"upstream request timeout")),
        };
        f.upstream_reply = Some(parts);
        self.store.data_mut().schedule(at, PendingKind::Upstream);
        Ok(())
    }

    /// Runs the callbacks of both directions as far as they go.
    fn pump(&mut self, flow: &mut Option<Flow>, response: bool) -> Result<(), Error> {
        loop {
            let Some(f) = flow.as_mut() else { return Ok(()) };
            if f.finished {
                return Ok(());
            }
            let d = if response { &mut f.resp } else { &mut f.req };
            if d.abandoned || d.done || (!response && f.answered) {
                return Ok(());
            }
            if !d.started {
                self.deliver_headers(flow, response)?;
                continue;
            }
            if d.hold >= 2 {
                return Ok(());
            }
            if !d.chunks.is_empty() {
                self.deliver_chunk(flow, response)?;
                continue;
            }
            if d.paused() {
                return Ok(());
            }
            if !d.headers_released {
                self.release_headers(flow, response, true);
            }
            if let Some(f) = flow.as_mut() {
                let d = if response { &mut f.resp } else { &mut f.req };
                d.done = true;
            }
            return Ok(());
        }
    }

    fn release_headers(&mut self, flow: &mut Option<Flow>, response: bool, forget: bool) {
        let Some(f) = flow.as_mut() else { return };
        let ctx = f.ctx;
        let d = if response { &mut f.resp } else { &mut f.req };
        d.headers_released = true;
        d.hold = 0;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            let headers = if response { &stream.resp_headers } else { &stream.req_headers };
            d.headers_out = Some(headers.clone());
            if forget {
                if response {
                    stream.resp_access = Access::None;
                } else {
                    stream.req_access = Access::None;
                }
            }
        }
    }

    fn deliver_headers(&mut self, flow: &mut Option<Flow>, response: bool) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let d = if response { &mut f.resp } else { &mut f.req };
        d.started = true;
        let eos = d.chunks.is_empty();
        let count = {
            let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) else { return Ok(()) };
            if response {
                stream.resp_access = Access::ReadWrite;
                stream.resp_headers.len()
            } else {
                stream.req_headers.len()
            }
        };
        let (name, phase) = if response {
            ("proxy_on_response_headers", Phase::ResponseHeaders)
        } else {
            ("proxy_on_request_headers", Phase::RequestHeaders)
        };
        let result = self.call(ctx, Some(phase), name, &[ctx as i32, count as i32, i32::from(eos)])?;
        self.drain_events(flow);
        let s = self.store.data();
        let status =
            convert_headers_status(result.unwrap_or(0), s.stop_next_iteration, s.allow_on_headers_stop_iteration);
        if let Some(f) = flow.as_mut() {
            let d = if response { &mut f.resp } else { &mut f.req };
            d.hold = match status {
                1 | 3 | 4 => status,
                _ => 0,
            };
            if d.hold != 0 {
                f.events.push(Event::Paused { phase, status });
            }
        }
        if status == 0 || status == 2 {
            self.release_headers(flow, response, true);
        }
        self.run_actions(flow)
    }

    fn deliver_chunk(&mut self, flow: &mut Option<Flow>, response: bool) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let d = if response { &mut f.resp } else { &mut f.req };
        let Some(chunk) = d.chunks.pop_front() else { return Ok(()) };
        let eos = d.chunks.is_empty();
        let view_is_held = d.buffering;
        let was_stopped = d.data_stopped;
        let s = self.store.data_mut();
        let Some(stream) = s.streams.get_mut(&ctx) else { return Ok(()) };
        let slot = if response { &mut stream.resp_body } else { &mut stream.req_body };
        let mut held = if was_stopped { slot.take().unwrap_or_default() } else { Vec::new() };
        let view = if view_is_held {
            held.extend_from_slice(&chunk);
            std::mem::take(&mut held)
        } else {
            chunk
        };
        let size = view.len();
        *slot = Some(view);
        let (name, phase) = if response {
            ("proxy_on_response_body", Phase::ResponseBody)
        } else {
            ("proxy_on_request_body", Phase::RequestBody)
        };
        let result = self.call(ctx, Some(phase), name, &[ctx as i32, size as i32, i32::from(eos)])?;
        self.drain_events(flow);
        let stop = self.store.data().stop_next_iteration;
        let status = convert_data_status(result.unwrap_or(0), stop);
        let view = self
            .store
            .data_mut()
            .streams
            .get_mut(&ctx)
            .and_then(|st| if response { st.resp_body.take() } else { st.req_body.take() })
            .unwrap_or_default();
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let d = if response { &mut f.resp } else { &mut f.req };
        d.buffering = false;
        let keep = match status {
            0 => {
                d.passed.extend_from_slice(&held);
                d.passed.extend_from_slice(&view);
                d.data_stopped = false;
                None
            }
            1 | 2 => {
                d.data_stopped = true;
                d.buffering = status == 1;
                held.extend_from_slice(&view);
                Some(held)
            }
            _ => {
                d.data_stopped = true;
                Some(held)
            }
        };
        if status != 0 {
            f.events.push(Event::Paused { phase, status });
        }
        let release = status == 0 && d.hold == 1;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            let slot = if response { &mut stream.resp_body } else { &mut stream.req_body };
            *slot = keep;
        }
        if release {
            // A body callback continuing after a header StopIteration sends the headers on.
            self.release_headers(flow, response, false);
        }
        self.run_actions(flow)
    }

    fn resume(&mut self, flow: &mut Option<Flow>, response: bool) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let answered = f.answered;
        let d = if response { &mut f.resp } else { &mut f.req };
        let what = if response { "response" } else { "request" };
        if answered && !response {
            return self.misuse(format!("continue_stream({what}) after the plugin answered with a local response"));
        }
        if !d.paused() || d.abandoned || d.done {
            return self.misuse(format!("continue_stream({what}) on a stream that is not paused"));
        }
        f.events.push(Event::Resumed { response });
        let d = if response { &mut f.resp } else { &mut f.req };
        let hold = d.hold;
        if hold >= 2 && d.chunks.len() > 1 {
            // Body that arrived while everything was held is delivered at once.
            let all: Vec<u8> = d.chunks.drain(..).flatten().collect();
            d.chunks.push_back(all);
        }
        if d.data_stopped {
            d.data_stopped = false;
            d.buffering = false;
            let held = self
                .store
                .data_mut()
                .streams
                .get_mut(&ctx)
                .and_then(|st| if response { st.resp_body.take() } else { st.req_body.take() })
                .unwrap_or_default();
            if let Some(f) = flow.as_mut() {
                let d = if response { &mut f.resp } else { &mut f.req };
                d.passed.extend_from_slice(&held);
            }
        }
        if hold != 0 {
            self.release_headers(flow, response, true);
        }
        self.pump(flow, response)
    }

    fn local_response(
        &mut self,
        flow: &mut Option<Flow>,
        status: u32,
        details: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        if f.answered {
            return self.misuse(format!("send_local_response({status}) on a stream that was already answered"));
        }
        if f.finished {
            return self.misuse(format!("send_local_response({status}) after the response was sent"));
        }
        f.answered = true;
        f.local_details = Some(details.clone());
        f.events.push(Event::LocalResponse { status: status as u16 });
        let ctx = f.ctx;
        // Envoy's prepareLocalReply.
        let mut map = Headers::new();
        map.add(":status", status.to_string());
        for (k, v) in &headers {
            map.add(k, v);
        }
        if body.is_empty() {
            map.remove("content-length");
            map.remove("content-type");
        } else {
            map.set("content-length", body.len().to_string());
            if !map.contains("content-type") {
                map.add("content-type", "text/plain");
            }
        }
        let chunks: VecDeque<Vec<u8>> =
            if body.is_empty() || f.head_request { VecDeque::new() } else { VecDeque::from([body.clone()]) };
        if !f.resp.started {
            // Through the filter chain: this plugin sees its own answer.
            f.req.abandoned = true;
            f.resp = Dir { chunks, local: true, ..Dir::default() };
            if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
                stream.resp_headers = map;
            }
            self.pump(flow, true)
        } else {
            // The response is already in the filter chain: Envoy sends the
            // answer straight to the client.
            f.resp.abandoned = true;
            f.response = Some(Response {
                status: status as u16,
                headers: map,
                body: if f.head_request { Vec::new() } else { body },
                local: true,
                details: Some(details),
            });
            f.finished = true;
            Ok(())
        }
    }

    /// Applies what the last VM call asked for (Envoy runs these after the call returns).
    fn run_actions(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        loop {
            self.drain_events(flow);
            let actions = std::mem::take(&mut self.store.data_mut().actions);
            if actions.is_empty() {
                return Ok(());
            }
            for action in actions {
                let live =
                    flow.as_ref().filter(|f| !f.finished || matches!(action, Action::Continue { .. })).map(|f| f.ctx);
                match action {
                    Action::Continue { ctx, response, during } => {
                        if live != Some(ctx) || flow.as_ref().is_some_and(|f| f.finished) {
                            let what = if response { "response" } else { "request" };
                            self.misuse(format!("continue_stream({what}) on a stream that has ended"))?;
                            continue;
                        }
                        let same_direction = match during {
                            Some(Phase::RequestHeaders | Phase::RequestBody) => !response,
                            Some(Phase::ResponseHeaders | Phase::ResponseBody) => response,
                            None => false,
                        };
                        let paused = flow.as_ref().is_some_and(|f| {
                            let d = if response { &f.resp } else { &f.req };
                            (response || !f.answered) && d.paused()
                        });
                        if same_direction && paused {
                            let what = if response { "response" } else { "request" };
                            self.misuse(format!(
                                "continue_stream({what}) called during the callback that decides whether the {what} pauses; \
                                 Envoy runs it before it sees the callback's answer"
                            ))?;
                        }
                        self.resume(flow, response)?;
                    }
                    Action::LocalResponse { ctx, status, details, headers, body } => {
                        if live != Some(ctx) {
                            self.misuse(format!("send_local_response({status}) on a stream that has ended"))?;
                            continue;
                        }
                        self.local_response(flow, status, details, headers, body)?;
                    }
                    Action::Reset { ctx } => {
                        if let Some(f) = flow.as_mut().filter(|f| f.ctx == ctx && !f.finished) {
                            f.reset = true;
                            f.finished = true;
                            f.events.push(Event::Reset);
                        }
                    }
                }
            }
        }
    }

    fn teardown(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        f.finished = true;
        let req_headers = f.req.headers_out.clone();
        let resp_headers = f.response.as_ref().map(|r| r.headers.clone()).unwrap_or_default();
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            let req = req_headers.unwrap_or_else(|| stream.req_headers.clone());
            stream.access_log = Some((req, resp_headers));
            stream.req_body = None;
            stream.resp_body = None;
        }
        // Envoy: the access log pass (proxy_on_log) first, then the filter's
        // onDestroy (proxy_on_done, proxy_on_delete).
        self.call(ctx, None, "proxy_on_log", &[ctx as i32])?;
        self.run_actions(flow)?;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            stream.access_log = None;
            stream.req_access = Access::None;
            stream.resp_access = Access::None;
        }
        self.call(ctx, None, "proxy_on_done", &[ctx as i32])?;
        self.run_actions(flow)?;
        self.call(ctx, None, "proxy_on_delete", &[ctx as i32])?;
        self.run_actions(flow)?;
        // What the plugin set stays readable in the exchange.
        if let (Some(stream), Some(f)) = (self.store.data_mut().streams.remove(&ctx), flow.as_mut()) {
            f.properties = stream.properties;
        }
        Ok(())
    }

    // ----- asynchronous work -----

    /// Delivers the earliest due thing (a pending answer or a tick) if it is
    /// due by `deadline`. Returns whether anything happened.
    fn step(&mut self, flow: &mut Option<Flow>, deadline: u64) -> Result<bool, Error> {
        let s = self.store.data();
        let next_pending = s.pending.iter().min_by_key(|p| (p.at, p.seq)).map(|p| p.at);
        let next_tick = s.next_tick;
        let tick_first = match (next_tick, next_pending) {
            (Some(t), Some(p)) => t < p,
            (Some(_), None) => true,
            _ => false,
        };
        if tick_first {
            let Some(t) = next_tick else { return Ok(false) };
            if t > deadline {
                return Ok(false);
            }
            let s = self.store.data_mut();
            s.now = s.now.max(t);
            s.next_tick = s.tick_period.map(|p| t + p);
            let root = s.root_id;
            self.record(flow, Event::Tick);
            self.call(root, None, "proxy_on_tick", &[root as i32])?;
            self.run_actions(flow)?;
            return Ok(true);
        }
        match next_pending {
            Some(at) if at <= deadline => {
                self.step_pending_only(flow, at)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn step_pending_only(&mut self, flow: &mut Option<Flow>, at: u64) -> Result<(), Error> {
        let s = self.store.data_mut();
        let Some(index) =
            s.pending.iter().enumerate().filter(|(_, p)| p.at <= at).min_by_key(|(_, p)| (p.at, p.seq)).map(|(i, _)| i)
        else {
            return Ok(());
        };
        let Pending { at, kind, .. } = s.pending.swap_remove(index);
        s.now = s.now.max(at);
        self.deliver(flow, kind)
    }

    fn deliver(&mut self, flow: &mut Option<Flow>, kind: PendingKind) -> Result<(), Error> {
        let root = self.store.data().root_id;
        match kind {
            PendingKind::HttpAnswer { token, answer } => self.deliver_http(flow, token, answer),
            PendingKind::HttpForward { token, address, call } => {
                let (answer, elapsed) = http::forward(&address, &call);
                self.store.data_mut().now += elapsed.as_nanos() as u64;
                self.deliver_http(flow, token, answer)
            }
            PendingKind::Redis { id, status, data } => self.deliver_redis(flow, id, status, data),
            PendingKind::RedisForward { id, cluster, query } => {
                let (status, data) = self.redis_forward(&cluster, &query);
                self.deliver_redis(flow, id, status, data)
            }
            PendingKind::QueueReady { root, token } => {
                self.call(root, None, "proxy_on_queue_ready", &[root as i32, token as i32])?;
                self.run_actions(flow)
            }
            PendingKind::Upstream => {
                let Some(f) = flow.as_mut() else { return Ok(()) };
                if f.answered || f.finished {
                    return Ok(());
                }
                let Some((_, headers, chunks, local)) = f.upstream_reply.take() else { return Ok(()) };
                let _ = root;
                let ctx = f.ctx;
                let chunks = if f.head_request { VecDeque::new() } else { VecDeque::from(chunks) };
                f.resp = Dir { chunks, local: false, ..Dir::default() };
                let _ = local;
                if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
                    stream.resp_headers = headers;
                }
                self.pump(flow, true)
            }
        }
    }

    fn deliver_http(&mut self, flow: &mut Option<Flow>, token: u32, answer: CallAnswer) -> Result<(), Error> {
        let root = self.store.data().root_id;
        let (headers, body_len, status) = match &answer {
            CallAnswer::Response { headers, body } => {
                (headers.len(), body.len(), headers.get(":status").and_then(|s| s.parse().ok()))
            }
            CallAnswer::Failure => (0, 0, None),
        };
        self.record(flow, Event::HttpCallResponse { token, status });
        self.store.data_mut().call_answer = Some(answer);
        let result = self.call(
            root,
            None,
            "proxy_on_http_call_response",
            &[root as i32, token as i32, headers as i32, body_len as i32, 0],
        );
        self.store.data_mut().call_answer = None;
        result?;
        self.run_actions(flow)
    }

    fn deliver_redis(&mut self, flow: &mut Option<Flow>, id: u32, status: i32, data: Vec<u8>) -> Result<(), Error> {
        let root = self.store.data().root_id;
        self.record(flow, Event::RedisResponse { id, status });
        let len = data.len();
        self.store.data_mut().redis_answer = Some(data);
        let exported = self.instance.and_then(|i| i.get_func(&self.store, "proxy_on_redis_call_response")).is_some();
        if !exported {
            self.store
                .data_mut()
                .notes
                .push(format!("redis answer {id} dropped: the module does not export proxy_on_redis_call_response"));
        }
        let result =
            self.call(root, None, "proxy_on_redis_call_response", &[root as i32, id as i32, status, len as i32]);
        self.store.data_mut().redis_answer = None;
        result?;
        self.run_actions(flow)
    }

    /// Sends a command to a real Redis server; `(status, reply)`.
    fn redis_forward(&mut self, cluster: &str, query: &[u8]) -> (i32, Vec<u8>) {
        let started = std::time::Instant::now();
        let s = self.store.data_mut();
        let address = match s.redis_upstreams.get(cluster).map(|u| &u.kind) {
            Some(crate::redis::RedisKind::Forward(a)) => a.clone(),
            _ => return (1, Vec::new()),
        };
        let Some(client) = s.redis_clients.get_mut(cluster) else { return (1, Vec::new()) };
        let mut notes = Vec::new();
        if client.conn.is_none() {
            match RedisConnection::open(&address, &client.username, &client.password, client.spec.db, client.timeout) {
                Ok((conn, n)) => {
                    client.conn = Some(conn);
                    notes.extend(n);
                }
                Err(err) => notes.push(format!("redis {cluster}: cannot connect to {address}: {err}")),
            }
        }
        let timeout = client.timeout;
        let outcome = match client.conn.as_mut() {
            Some(conn) => match conn.command(query, timeout) {
                Ok(reply) => (0, reply),
                Err(err) => {
                    client.conn = None;
                    notes.push(match err {
                        RedisIoError::Timeout => format!("redis {cluster}: no answer within {timeout:?}"),
                        other => format!("redis {cluster}: {other}"),
                    });
                    (1, Vec::new())
                }
            },
            None => (1, Vec::new()),
        };
        s.notes.extend(notes);
        s.now += started.elapsed().as_nanos() as u64;
        outcome
    }
}

fn local_parts(status: u16, body: &[u8]) -> (u16, Headers, Vec<Vec<u8>>, bool) {
    (status, http::envoy_local_headers(status, body.len()), vec![body.to_vec()], true)
}
