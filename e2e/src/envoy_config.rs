//! The repository's `envoy.yaml`, made to run on local processes.
//!
//! `envoy.yaml` is written for `docker compose`: upstreams are the compose
//! services `httpbin:80` and `redis:6379`, plugins are under
//! `/etc/envoy/plugins`, Envoy listens on 10000 with its admin on 9901.
//! [`EnvoyConfig::load`] reads that same file and changes only what a local run
//! needs:
//!
//! * every listener and the admin bind `127.0.0.1` port 0: Envoy picks free
//!   ports and [`Envoy`](crate::Envoy) asks its admin which (no port race);
//! * `/etc/envoy/plugins/<name>.wasm` becomes `<root>/dist/<name>.wasm`, which
//!   must exist when `plugins/<name>` is a plugin of the workspace ("run
//!   `cargo xtask build`" otherwise);
//! * Wasm filters that upstream Envoy cannot load are removed, with every
//!   route's `typed_per_filter_config` entry for them: a module importing
//!   Higress's `proxy_redis_*` calls (read from its import section; Envoy
//!   refuses such a module at load time), or a module that is not built and
//!   belongs to no workspace plugin. [`EnvoyConfig::removed`] says which and why.
//!
//! When Envoy starts, [`EnvoyConfig::render`] points the clusters' `httpbin:80`
//! endpoints at the local httpbin and `redis:6379` at a local Redis (or drops
//! such a cluster when there is none), and writes JSON, which Envoy reads as
//! well as YAML.
//!
//! Tests vary the file with the editing methods (a plugin's configuration,
//! routes, clusters, listeners, extra plugins) or, for anything else, with
//! [`EnvoyConfig::json_mut`]. Clusters they add may use the compose names too
//! (`httpbin:80`); [`route`], [`cluster`] and [`wasm_filter`] build the usual
//! pieces.

use crate::error::{Context, Error, Result};
use crate::{paths, wasm, Build};
use serde_json::{json, Map, Value};
use std::path::Path;

const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const DYNAMIC_MODULE_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const ROUTER_NAME: &str = "envoy.filters.http.router";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
const FILTER_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
/// Where `envoy.yaml` expects the plugin modules (the mounted `dist/`).
const COMPOSE_PLUGIN_DIR: &str = "/etc/envoy/plugins/";
/// The listener that tests' routes and plugins go to.
const MAIN_LISTENER: &str = "listener_0";

/// A filter [`EnvoyConfig::load`] took out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    pub filter: String,
    pub reason: String,
}

/// Where the compose services of `envoy.yaml` run locally.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upstreams {
    /// Port of httpbin on 127.0.0.1 (for `httpbin:80`).
    pub httpbin: u16,
    /// Port of Redis on 127.0.0.1 (for `redis:6379`); without one, clusters
    /// that reach Redis are dropped.
    pub redis: Option<u16>,
}

impl Upstreams {
    /// httpbin on `port`, no Redis.
    pub fn httpbin(port: u16) -> Self {
        Upstreams { httpbin: port, redis: None }
    }
}

/// An Envoy bootstrap config being prepared for a local run.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    root: Value,
    removed: Vec<Removed>,
    build: Build,
}

impl EnvoyConfig {
    /// The repository's `envoy.yaml`, with plugins from `dist/`.
    pub fn load() -> Result<EnvoyConfig> {
        EnvoyConfig::load_file(&paths::envoy_yaml())
    }

    /// Another Envoy bootstrap file in YAML (or JSON), with plugins from `dist/`;
    /// a parse error names the file.
    pub fn load_file(path: &Path) -> Result<EnvoyConfig> {
        let yaml = std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
        let root: Value = serde_yaml_ng::from_str(&yaml).context(|| format!("{} is not valid YAML", path.display()))?;
        EnvoyConfig::from_value(root, &paths::dist_dir())
    }

    /// Any Envoy bootstrap in YAML (or JSON), with plugins from `dist`.
    pub fn from_yaml(yaml: &str, dist: &Path) -> Result<EnvoyConfig> {
        let root: Value = serde_yaml_ng::from_str(yaml).context(|| "parsing the Envoy config".to_string())?;
        EnvoyConfig::from_value(root, dist)
    }

    fn from_value(root: Value, dist: &Path) -> Result<EnvoyConfig> {
        let mut config = EnvoyConfig { root, removed: Vec::new(), build: Build::from_env() };
        config.bind_loopback_port_zero();
        config.use_local_modules(dist)?;
        Ok(config)
    }

    /// The build of the plugins Envoy loads (from `E2E_BUILD` unless set).
    pub fn build(&self) -> Build {
        self.build
    }

    /// Loads the `.wasm` or the `.so` builds of the plugins.
    pub fn set_build(&mut self, build: Build) -> &mut Self {
        self.build = build;
        self
    }

    /// Filters taken out because upstream Envoy cannot load them.
    pub fn removed(&self) -> &[Removed] {
        &self.removed
    }

    /// The whole config, to read.
    pub fn json(&self) -> &Value {
        &self.root
    }

    /// The whole config, for edits the methods below do not cover.
    pub fn json_mut(&mut self) -> &mut Value {
        &mut self.root
    }

    /// Replaces the `configuration` (the plugin's JSON, as a string: it may be
    /// malformed on purpose) of every Wasm filter named `filter`.
    pub fn plugin_configuration(&mut self, filter: &str, configuration: &str) -> Result<&mut Self> {
        for plugin in self.wasm_plugin_configs(filter)? {
            set(plugin, "configuration", json!({"@type": STRING_VALUE_TYPE, "value": configuration}));
        }
        Ok(self)
    }

    /// Sets top-level keys of the Wasm filter `filter`'s configuration (a
    /// JSON object), keeping the others: `patch_plugin_configuration("http-call",
    /// json!({"timeout": 5000}))`.
    pub fn patch_plugin_configuration(&mut self, filter: &str, patch: Value) -> Result<&mut Self> {
        let current = self.plugin_configuration_of(filter).unwrap_or("{}");
        let mut configuration: Value = serde_json::from_str(current)
            .context(|| format!("the configuration of {filter:?} is not JSON ({current:?})"))?;
        let Value::Object(keys) = patch else {
            return Err(Error::new(format!("a patch of {filter:?}'s configuration must be an object: {patch}")));
        };
        let Some(object) = configuration.as_object_mut() else {
            return Err(Error::new(format!("the configuration of {filter:?} is not an object: {current}")));
        };
        object.extend(keys);
        self.plugin_configuration(filter, &configuration.to_string())
    }

    /// The current `configuration` string of the Wasm filter `filter`.
    pub fn plugin_configuration_of(&self, filter: &str) -> Option<&str> {
        self.http_filters()
            .find(|f| name_of(f) == Some(filter))?
            .pointer("/typed_config/config/configuration/value")?
            .as_str()
    }

    /// Sets `allow_on_headers_stop_iteration` of the Wasm filter `filter`
    /// (with it, a headers hook's `StopIteration` is not turned into
    /// `StopAllIterationAndWatermark`).
    pub fn allow_on_headers_stop_iteration(&mut self, filter: &str, allow: bool) -> Result<&mut Self> {
        for plugin in self.wasm_plugin_configs(filter)? {
            set(plugin, "allow_on_headers_stop_iteration", Value::Bool(allow));
        }
        Ok(self)
    }

    /// Adds a route first in `listener_0`'s first virtual host, so it wins
    /// over the file's routes.
    pub fn add_route(&mut self, route: Value) -> Result<&mut Self> {
        self.main_routes()?.insert(0, route);
        Ok(self)
    }

    /// Replaces the route named `name` (in any virtual host of any listener).
    pub fn replace_route(&mut self, name: &str, route: Value) -> Result<&mut Self> {
        let found = self.routes_mut().into_iter().find(|r| name_of(r) == Some(name));
        let slot = found.ok_or_else(|| Error::new(format!("no route named {name:?} in the Envoy config")))?;
        *slot = route;
        Ok(self)
    }

    /// Turns the filter `filter` on for the route `route` (a `FilterConfig`
    /// with an empty `config`, which enables a filter declared `disabled`).
    pub fn enable_on_route(&mut self, route: &str, filter: &str) -> Result<&mut Self> {
        self.per_route(route, filter, json!({"@type": FILTER_CONFIG_TYPE, "config": {}}))
    }

    /// Turns the filter `filter` off for the route `route` (`FilterConfig{disabled: true}`).
    pub fn disable_on_route(&mut self, route: &str, filter: &str) -> Result<&mut Self> {
        self.per_route(route, filter, json!({"@type": FILTER_CONFIG_TYPE, "disabled": true}))
    }

    /// Adds a cluster, replacing one of the same name.
    pub fn add_cluster(&mut self, cluster: Value) -> &mut Self {
        let clusters = array(entry(entry(&mut self.root, "static_resources"), "clusters"));
        clusters.retain(|c| name_of(c) != name_of(&cluster));
        clusters.push(cluster);
        self
    }

    /// Adds a listener, replacing one of the same name. Its address is kept
    /// as given (use `127.0.0.1` and port 0; [`Envoy::listener_port`](crate::Envoy::listener_port)
    /// tells the port).
    pub fn add_listener(&mut self, listener: Value) -> &mut Self {
        let listeners = array(entry(entry(&mut self.root, "static_resources"), "listeners"));
        listeners.retain(|l| name_of(l) != name_of(&listener));
        listeners.push(listener);
        self
    }

    /// Binds listener `name` (or, with `None`, the admin) to `127.0.0.1:port`
    /// instead of a port of Envoy's choosing: for `cargo xtask up`, which
    /// serves on the ports of `envoy.yaml`.
    pub fn bind_port(&mut self, listener: Option<&str>, port: u16) -> Result<&mut Self> {
        let address = json!({"protocol": "TCP", "address": "127.0.0.1", "port_value": port});
        let target = match listener {
            None => entry(entry(&mut self.root, "admin"), "address"),
            Some(name) => {
                let found = items(&mut self.root, "/static_resources/listeners")
                    .find(|l| name_of(l) == Some(name))
                    .ok_or_else(|| Error::new(format!("no listener named {name:?}")))?;
                entry(found, "address")
            }
        };
        set(target, "socket_address", address);
        Ok(self)
    }

    /// Adds an HTTP filter (e.g. a [`wasm_filter`]) to `listener_0`, just before the router.
    pub fn add_plugin(&mut self, filter: Value) -> Result<&mut Self> {
        let filters = self.main_http_filters()?;
        let at = filters.iter().position(|f| name_of(f) == Some(ROUTER_NAME)).unwrap_or(filters.len());
        filters.insert(at, filter);
        Ok(self)
    }

    /// Removes the HTTP filter `filter` from every listener, and the routes'
    /// per-filter configs for it.
    pub fn remove_filter(&mut self, filter: &str) -> Result<&mut Self> {
        let mut found = false;
        for hcm in hcms_mut(&mut self.root) {
            if let Some(filters) = hcm.pointer_mut("/http_filters").and_then(Value::as_array_mut) {
                let before = filters.len();
                filters.retain(|f| name_of(f) != Some(filter));
                found |= filters.len() != before;
            }
        }
        if !found {
            return Err(Error::new(format!("no HTTP filter named {filter:?} in the Envoy config")));
        }
        self.forget_per_route(filter);
        Ok(self)
    }

    /// The config Envoy runs, as JSON, with the compose services' addresses
    /// replaced by the local ones.
    pub fn render(&self, upstreams: &Upstreams) -> Result<String> {
        let mut root = self.root.clone();
        if let Some(clusters) = root.pointer_mut("/static_resources/clusters").and_then(Value::as_array_mut) {
            clusters.retain_mut(|cluster| point_at_local(cluster, upstreams));
        }
        if self.build == Build::Native {
            for hcm in hcms_mut(&mut root) {
                for filter in items(hcm, "/http_filters") {
                    to_dynamic_module(filter)?;
                }
            }
        }
        serde_json::to_string_pretty(&root).context(|| "writing the Envoy config".to_string())
    }

    // ----- what load() changes -----

    fn bind_loopback_port_zero(&mut self) {
        let loopback = json!({"protocol": "TCP", "address": "127.0.0.1", "port_value": 0});
        set(entry(entry(&mut self.root, "admin"), "address"), "socket_address", loopback.clone());
        for listener in items(&mut self.root, "/static_resources/listeners") {
            set(entry(listener, "address"), "socket_address", loopback.clone());
        }
    }

    fn use_local_modules(&mut self, dist: &Path) -> Result<()> {
        let mut unloadable = Vec::new();
        for hcm in hcms_mut(&mut self.root) {
            for filter in items(hcm, "/http_filters") {
                let name = name_of(filter).unwrap_or_default().to_string();
                let Some(file) = filter.pointer_mut("/typed_config/config/vm_config/code/local/filename") else {
                    continue;
                };
                let Some(file_name) = file.as_str().and_then(|f| f.strip_prefix(COMPOSE_PLUGIN_DIR)) else { continue };
                let file_name = file_name.to_string();
                let local = dist.join(&file_name);
                let plugin = file_name.strip_suffix(".wasm").unwrap_or(&file_name);
                *file = Value::String(local.to_string_lossy().into_owned());
                if local.is_file() {
                    if let Some(import) = wasm::higress_only_import(&local)? {
                        unloadable.push(Removed {
                            filter: name,
                            reason: format!("{} imports {import}, which only Higress has", local.display()),
                        });
                    }
                } else if paths::is_workspace_plugin(plugin) {
                    return Err(Error::new(format!(
                        "plugin module {} (filter {name:?}) is missing: run `cargo xtask build`",
                        local.display()
                    )));
                } else {
                    unloadable.push(Removed {
                        filter: name,
                        reason: format!(
                            "{} is not built and plugins/{plugin} is not in this workspace",
                            local.display()
                        ),
                    });
                }
            }
        }
        for removed in unloadable {
            for hcm in hcms_mut(&mut self.root) {
                if let Some(filters) = hcm.pointer_mut("/http_filters").and_then(Value::as_array_mut) {
                    filters.retain(|f| name_of(f) != Some(removed.filter.as_str()));
                }
            }
            self.forget_per_route(&removed.filter);
            self.removed.push(removed);
        }
        Ok(())
    }

    // ----- finding things -----

    fn http_filters(&self) -> impl Iterator<Item = &Value> {
        elements(&self.root, "/static_resources/listeners")
            .flat_map(|listener| elements(listener, "/filter_chains"))
            .flat_map(|chain| elements(chain, "/filters"))
            .filter(|f| name_of(f) == Some(HCM_NAME))
            .flat_map(|hcm| elements(hcm, "/typed_config/http_filters"))
    }

    /// `typed_config.config` (the PluginConfig) of every Wasm filter named `filter`.
    fn wasm_plugin_configs(&mut self, filter: &str) -> Result<Vec<&mut Value>> {
        let mut found = Vec::new();
        for hcm in hcms_mut(&mut self.root) {
            for f in items(hcm, "/http_filters") {
                let wasm = f.pointer("/typed_config/@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE);
                if wasm && name_of(f) == Some(filter) {
                    found.extend(f.pointer_mut("/typed_config/config"));
                }
            }
        }
        if found.is_empty() {
            let removed = self.removed.iter().find(|r| r.filter == filter);
            let why = removed.map(|r| format!(" (removed: {})", r.reason)).unwrap_or_default();
            return Err(Error::new(format!("no Wasm filter named {filter:?} in the Envoy config{why}")));
        }
        Ok(found)
    }

    fn main_hcm(&mut self) -> Result<&mut Value> {
        let listener = items(&mut self.root, "/static_resources/listeners").find(|l| name_of(l) == Some(MAIN_LISTENER));
        let listener =
            listener.ok_or_else(|| Error::new(format!("no listener {MAIN_LISTENER} in the Envoy config")))?;
        hcms_mut(listener)
            .into_iter()
            .next()
            .ok_or_else(|| Error::new(format!("{MAIN_LISTENER} has no HTTP connection manager")))
    }

    fn main_http_filters(&mut self) -> Result<&mut Vec<Value>> {
        Ok(array(entry(self.main_hcm()?, "http_filters")))
    }

    fn main_routes(&mut self) -> Result<&mut Vec<Value>> {
        let hcm = self.main_hcm()?;
        let vhost = items(hcm, "/route_config/virtual_hosts").next();
        let vhost = vhost.ok_or_else(|| Error::new(format!("{MAIN_LISTENER} has no virtual host")))?;
        Ok(array(entry(vhost, "routes")))
    }

    fn routes_mut(&mut self) -> Vec<&mut Value> {
        let mut routes = Vec::new();
        for hcm in hcms_mut(&mut self.root) {
            for vhost in items(hcm, "/route_config/virtual_hosts") {
                routes.extend(items(vhost, "/routes"));
            }
        }
        routes
    }

    fn per_route(&mut self, route: &str, filter: &str, config: Value) -> Result<&mut Self> {
        let found = self.routes_mut().into_iter().find(|r| name_of(r) == Some(route));
        let slot = found.ok_or_else(|| Error::new(format!("no route named {route:?} in the Envoy config")))?;
        set(entry(slot, "typed_per_filter_config"), filter, config);
        Ok(self)
    }

    /// Drops `filter`'s entries from every virtual host's and route's `typed_per_filter_config`.
    fn forget_per_route(&mut self, filter: &str) {
        for hcm in hcms_mut(&mut self.root) {
            for vhost in items(hcm, "/route_config/virtual_hosts") {
                forget(vhost, filter);
                for route in items(vhost, "/routes") {
                    forget(route, filter);
                }
            }
        }
    }
}

fn forget(holder: &mut Value, filter: &str) {
    if let Some(per_filter) = holder.pointer_mut("/typed_per_filter_config").and_then(Value::as_object_mut) {
        per_filter.remove(filter);
        if per_filter.is_empty() {
            if let Some(object) = holder.as_object_mut() {
                object.remove("typed_per_filter_config");
            }
        }
    }
}

/// The `typed_config` of every HTTP connection manager under `root` (a
/// bootstrap or one listener).
fn hcms_mut(root: &mut Value) -> Vec<&mut Value> {
    let mut found = Vec::new();
    let listeners: Vec<&mut Value> = if root.get("filter_chains").is_some() {
        vec![root]
    } else {
        items(root, "/static_resources/listeners").collect()
    };
    for listener in listeners {
        for chain in items(listener, "/filter_chains") {
            for filter in items(chain, "/filters") {
                if name_of(filter) == Some(HCM_NAME) {
                    found.extend(filter.pointer_mut("/typed_config"));
                }
            }
        }
    }
    found
}

/// The elements of the array at `pointer` (`/a/b`) in `value`; none when
/// there is no such array. Unlike `value["a"]["b"]`, creates nothing.
fn items<'a>(value: &'a mut Value, pointer: &str) -> impl Iterator<Item = &'a mut Value> {
    value.pointer_mut(pointer).and_then(Value::as_array_mut).into_iter().flatten()
}

// ----- JSON without indexing (which creates or panics on a shape it does not expect) -----

/// The elements of the array at `pointer` (`/a/b`) in `value`; none when
/// there is no such array.
fn elements<'a>(value: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    value.pointer(pointer).and_then(Value::as_array).into_iter().flatten()
}

/// The `name` member of `value`.
fn name_of(value: &Value) -> Option<&str> {
    value.get("name").and_then(Value::as_str)
}

/// `value` as an object, made one (empty) if it was not.
fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// `value` as an array, made one (empty) if it was not.
fn array(value: &mut Value) -> &mut Vec<Value> {
    if !value.is_array() {
        *value = Value::Array(Vec::new());
    }
    match value {
        Value::Array(array) => array,
        _ => unreachable!("just made an array"),
    }
}

/// The member `key` of `value` (made an object if needed), created as null if missing.
fn entry<'a>(value: &'a mut Value, key: &str) -> &'a mut Value {
    object(value).entry(key).or_insert(Value::Null)
}

/// Sets the member `key` of `value` (made an object if needed).
fn set(value: &mut Value, key: &str, new: Value) {
    object(value).insert(key.to_string(), new);
}

/// Turns a Wasm filter into the dynamic module filter running the `.so` built
/// beside its `.wasm`, with the same name, plugin configuration and
/// `disabled` flag (per-route `FilterConfig`s apply to it unchanged).
/// Wasm-only settings (VM, `allow_on_headers_stop_iteration`) have no counterpart.
fn to_dynamic_module(filter: &mut Value) -> Result<()> {
    if filter.pointer("/typed_config/@type").and_then(Value::as_str) != Some(WASM_FILTER_TYPE) {
        return Ok(());
    }
    let name = name_of(filter).unwrap_or_default().to_string();
    let wasm = filter.pointer("/typed_config/config/vm_config/code/local/filename").and_then(Value::as_str);
    let Some(wasm) = wasm.map(Path::new) else {
        return Err(Error::new(format!("Wasm filter {name:?} has no local module to build natively")));
    };
    // A test may name a `.so` directly (a fixture built natively).
    let module =
        if wasm.extension().is_some_and(|e| e == "so") { wasm.to_path_buf() } else { wasm.with_extension("so") };
    if !module.is_file() {
        return Err(Error::new(format!(
            "native module {} (filter {name:?}) is missing: run `cargo xtask build`",
            module.display()
        )));
    }
    let plugin = filter.pointer("/typed_config/config/name").and_then(Value::as_str).unwrap_or(&name).to_string();
    let configuration =
        filter.pointer("/typed_config/config/configuration/value").and_then(Value::as_str).unwrap_or("").to_string();
    let native = dynamic_module_filter(&plugin, &module, &configuration);
    set(filter, "typed_config", native.get("typed_config").cloned().unwrap_or_default());
    Ok(())
}

/// An Envoy dynamic module HTTP filter running the plugin `.so` at `module`
/// with `configuration` (JSON text), named `name` (also the filter name the
/// module gets).
pub fn dynamic_module_filter(name: &str, module: &Path, configuration: &str) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": DYNAMIC_MODULE_FILTER_TYPE,
            "dynamic_module_config": {"module": {"local": {"filename": module.to_string_lossy()}}},
            "filter_name": name,
            "filter_config": {"@type": STRING_VALUE_TYPE, "value": configuration},
        },
    })
}

/// Rewrites a cluster's compose endpoints to local ones; `false` drops the cluster.
fn point_at_local(cluster: &mut Value, upstreams: &Upstreams) -> bool {
    let mut local = false;
    let endpoints = items(cluster, "/load_assignment/endpoints").flat_map(|e| items(e, "/lb_endpoints"));
    for lb in endpoints {
        let Some(address) = lb.pointer_mut("/endpoint/address/socket_address") else { continue };
        let host = address.get("address").and_then(Value::as_str);
        let port = match (host, address.get("port_value").and_then(Value::as_u64)) {
            (Some("httpbin"), Some(80)) => upstreams.httpbin,
            (Some("redis"), Some(6379)) => match upstreams.redis {
                Some(port) => port,
                None => return false,
            },
            _ => continue,
        };
        set(address, "address", json!("127.0.0.1"));
        set(address, "port_value", json!(port));
        local = true;
    }
    if local {
        // An IP address needs no DNS: resolving nothing keeps start-up quick.
        set(cluster, "type", json!("STATIC"));
    }
    true
}

/// A Wasm HTTP filter running `module` with `configuration` (JSON text),
/// named `name` (also its VM id).
pub fn wasm_filter(name: &str, module: &Path, configuration: &str) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": WASM_FILTER_TYPE,
            "config": {
                "name": name,
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": module.to_string_lossy()}},
                },
                "configuration": {"@type": STRING_VALUE_TYPE, "value": configuration},
            },
        },
    })
}

/// A route named `name` for paths starting with `prefix`, to `cluster`.
pub fn route(name: &str, prefix: &str, cluster: &str) -> Value {
    json!({"name": name, "match": {"prefix": prefix}, "route": {"cluster": cluster}})
}

/// A cluster named `name` with one endpoint `host:port` (`httpbin`, 80 for
/// the local httpbin, as in `envoy.yaml`).
pub fn cluster(name: &str, host: &str, port: u16) -> Value {
    json!({
        "name": name,
        "connect_timeout": "5s",
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}],
        },
    })
}

/// An Envoy bootstrap with one listener (`listener_0`, stat prefix and route
/// config `name`) whose every path (route `httpbin`) goes to the cluster
/// `httpbin`, and no filter but the router: what a test adds its one plugin
/// to ([`EnvoyConfig::add_plugin`]).
pub fn httpbin_bootstrap(name: &str) -> String {
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: listener_0
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            name: {name}
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - name: httpbin
                match: {{ prefix: / }}
                route: {{ cluster: httpbin }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: httpbin
    connect_timeout: 5s
    type: STRICT_DNS
    load_assignment:
      cluster_name: httpbin
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: httpbin, port_value: 80 }} }} }} }} ] }} ]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(config: &Value) -> Vec<String> {
        let hcm = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["http_filters"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn repo_file_is_made_local() {
        let config = EnvoyConfig::load().unwrap();
        let rendered: Value = serde_json::from_str(&config.render(&Upstreams::httpbin(4242)).unwrap()).unwrap();
        let text = rendered.to_string();
        assert!(!text.contains("/etc/envoy"), "{text}");
        assert!(!text.contains("\"httpbin\",\"port_value\"") && !text.contains("\"redis\""), "{text}");
        assert_eq!(rendered["admin"]["address"]["socket_address"]["port_value"], 0);
        assert_eq!(rendered["static_resources"]["listeners"][0]["address"]["socket_address"]["address"], "127.0.0.1");
        let names = filters(&rendered);
        assert_eq!(names.get(..3), Some(&["mock", "hello-world", "http-call"].map(String::from)[..]));
        assert_eq!(names.last().map(String::as_str), Some(ROUTER_NAME));
        assert!(!names.iter().any(|n| n == "redis-rate-limit"), "{names:?}");
        assert_eq!(config.removed().len(), 1);
        assert_eq!(config.removed()[0].filter, "redis-rate-limit");
        // No route refers to the removed filter; the redis cluster is gone without a Redis.
        assert!(!text.contains("redis-rate-limit\":{"), "{text}");
        let clusters = rendered["static_resources"]["clusters"].as_array().unwrap();
        assert!(clusters.iter().all(|c| !c["name"].as_str().unwrap().contains("redis")));
        let httpbin = &clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        assert_eq!(httpbin["socket_address"], json!({"address": "127.0.0.1", "port_value": 4242}));
    }

    #[test]
    fn a_missing_module_says_how_to_build_it() {
        let yaml = std::fs::read_to_string(paths::envoy_yaml()).unwrap();
        let empty = tempfile::tempdir().unwrap();
        let err = EnvoyConfig::from_yaml(&yaml, empty.path()).unwrap_err().to_string();
        assert!(err.contains("mock.wasm (filter \"mock\") is missing: run `cargo xtask build`"), "{err}");
    }

    #[test]
    fn redis_cluster_is_kept_with_a_redis() {
        let config = EnvoyConfig::load().unwrap();
        let rendered = config.render(&Upstreams { httpbin: 1, redis: Some(6380) }).unwrap();
        assert!(rendered.contains("outbound|6379||redis.dns") && rendered.contains("6380"), "{rendered}");
    }

    #[test]
    fn edits() {
        let mut config = EnvoyConfig::load().unwrap();
        config.plugin_configuration("mock", "{not json").unwrap();
        assert_eq!(config.plugin_configuration_of("mock"), Some("{not json"));
        config.patch_plugin_configuration("http-call", json!({"timeout": 5000})).unwrap();
        let patched: Value = serde_json::from_str(config.plugin_configuration_of("http-call").unwrap()).unwrap();
        assert_eq!((patched["timeout"].as_u64(), patched["tokenHeader"].as_str()), (Some(5000), Some("x-token")));
        assert!(config.patch_plugin_configuration("mock", json!({"a": 1})).is_err());
        config.allow_on_headers_stop_iteration("http-call", true).unwrap();
        config.add_route(route("extra", "/extra/", "httpbin")).unwrap();
        config.add_cluster(cluster("outbound|80||slow.dns", "httpbin", 80));
        config.enable_on_route("extra", "hello-world").unwrap().disable_on_route("extra", "mock").unwrap();
        config.add_plugin(wasm_filter("probe", Path::new("/x/probe.wasm"), "{}")).unwrap();
        config.remove_filter("hello-world").unwrap();
        let root = config.json();
        let names = filters(root);
        assert_eq!(names.get(..2), Some(&["mock", "http-call"].map(String::from)[..]));
        assert_eq!(names.get(names.len() - 2..), Some(&["probe", ROUTER_NAME].map(String::from)[..]));
        assert!(!names.iter().any(|n| n == "hello-world"), "{names:?}");
        let routes = &root["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(routes[0]["name"], "extra");
        assert_eq!(
            routes[0]["typed_per_filter_config"],
            json!({"mock": {"@type": FILTER_CONFIG_TYPE, "disabled": true}})
        );
        let rendered = config.render(&Upstreams::httpbin(4242)).unwrap();
        assert!(rendered.contains("\"allow_on_headers_stop_iteration\": true"), "{rendered}");
        assert!(config.plugin_configuration("redis-rate-limit", "{}").unwrap_err().message().contains("removed: "));
        assert!(config.plugin_configuration("nope", "{}").is_err());
        assert!(config.replace_route("nope", json!({})).is_err());
    }
}
