//! What is measured: each variant is one Envoy config, the same for all but
//! the HTTP filter under test.
//!
//! Every variant runs the same Envoy bootstrap:
//!
//! * listener `bench` (what wrk loads): route `/` answers with a
//!   `direct_response` `200 hello world` (so the upstream costs nothing), and
//!   route `/verify` answers `200` with the request headers `hello` and
//!   `x-token` copied into the response headers `seen-hello` / `seen-token`,
//!   which is how the bench checks, before measuring, that each filter does
//!   its job;
//! * listener `token`: the token service of the HTTP-call variants, a
//!   `direct_response` `200` with `x-token: demo-token`, reached through the
//!   cluster `outbound|80||token.dns` (Higress's name for a DNS service
//!   `token.dns` on port 80), on the same Envoy (so its cost lands on the same
//!   core for the three variants that call it);
//! * the filter under test, then the router.
//!
//! Jobs, and who does each:
//!
//! | job | native Envoy | raw proxy-wasm module | our plugins |
//! |---|---|---|---|
//! | add `hello: world` to the request | `header_mutation` | `bench/raw/add-header` | mock (`mockEnable` false) |
//! | answer locally `200 hello world` | the route's `direct_response` (= no filter) | `bench/raw/local-answer` | hello-world |
//! | add `hello: world`, then answer locally | `header_mutation` (the route answers) | `bench/raw/local-answer` configured `add-header` | mock (`mockEnable` true) |
//! | fetch a token over HTTP, copy it into the request | `ext_authz` (HTTP service, `allowed_upstream_headers`) | `bench/raw/http-call` | http-call |
//!
//! Each plugin runs twice: its `.wasm` (ids `mock`, ...) and its native build,
//! `dist/<name>.so` on Envoy's dynamic module filter (ids `mock-native`, ...).

use crate::Result;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The work a filter does per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    AddHeader,
    LocalAnswer,
    /// Add `hello: world` to the request, then answer locally (mock with `mockEnable`).
    HeaderAndAnswer,
    Token,
}

impl Job {
    pub fn label(self) -> &'static str {
        match self {
            Job::AddHeader => "add a request header",
            Job::LocalAnswer => "answer locally",
            Job::HeaderAndAnswer => "add a header, answer locally",
            Job::Token => "HTTP call for a token",
        }
    }
    /// The id of the native variant doing this job.
    pub fn native(self) -> &'static str {
        match self {
            Job::AddHeader => "header_mutation",
            Job::LocalAnswer => "none",
            // The header added, then the route's `direct_response` answers.
            Job::HeaderAndAnswer => "header_mutation",
            Job::Token => "ext_authz",
        }
    }
    /// The id of the raw proxy-wasm variant doing this job.
    pub fn raw(self) -> &'static str {
        match self {
            Job::AddHeader => "raw-add-header",
            Job::LocalAnswer => "raw-local-answer",
            Job::HeaderAndAnswer => "raw-header-answer",
            Job::Token => "raw-http-call",
        }
    }
}

/// Who does the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An Envoy built-in (or no filter at all).
    Native,
    /// A module written with the crates.io `proxy-wasm` crate only.
    Raw,
    /// One of our plugins.
    Plugin,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Raw => "raw proxy-wasm",
            Kind::Plugin => "plugin",
        }
    }
}

/// The filter a variant puts before the router.
#[derive(Clone, Copy, Debug)]
enum Filter {
    None,
    HeaderMutation,
    ExtAuthz,
    /// `bench/raw/<name>`, built by `cargo xtask bench`, with this configuration.
    Raw(&'static str, &'static str),
    /// `dist/<name>.wasm` with this configuration.
    Plugin(&'static str, &'static str),
    /// `dist/<name>.so` (the native build) with this configuration.
    NativePlugin(&'static str, &'static str),
    /// Another build of a variant's module (`--also ID=PATH`), with that
    /// variant's configuration.
    Module(&'static Path, &'static str),
}

/// One Envoy configuration of the bench.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub id: &'static str,
    pub label: &'static str,
    pub job: Job,
    pub kind: Kind,
    filter: Filter,
}

/// The token service's cluster, as Higress names a DNS service `token.dns` on port 80.
pub const TOKEN_CLUSTER: &str = "outbound|80||token.dns";
/// The header the token service answers with.
pub const TOKEN_HEADER: &str = "x-token";
pub const TOKEN: &str = "demo-token";
const HTTP_CALL_CONFIG: &str = r#"{"tokenHeader": "x-token", "requestPath": "/token", "serviceName": "token.dns", "servicePort": 80, "timeout": 500}"#;

/// Every variant, in the order of a round.
pub const ALL: &[Variant] = &[
    Variant {
        id: "none",
        label: "no filter (route direct_response)",
        job: Job::LocalAnswer,
        kind: Kind::Native,
        filter: Filter::None,
    },
    Variant {
        id: "header_mutation",
        label: "header_mutation",
        job: Job::AddHeader,
        kind: Kind::Native,
        filter: Filter::HeaderMutation,
    },
    Variant {
        id: "ext_authz",
        label: "ext_authz (HTTP service)",
        job: Job::Token,
        kind: Kind::Native,
        filter: Filter::ExtAuthz,
    },
    Variant {
        id: "raw-add-header",
        label: "raw add-header",
        job: Job::AddHeader,
        kind: Kind::Raw,
        filter: Filter::Raw("add-header", ""),
    },
    Variant {
        id: "raw-local-answer",
        label: "raw local-answer",
        job: Job::LocalAnswer,
        kind: Kind::Raw,
        filter: Filter::Raw("local-answer", ""),
    },
    Variant {
        id: "raw-header-answer",
        label: "raw local-answer + header",
        job: Job::HeaderAndAnswer,
        kind: Kind::Raw,
        filter: Filter::Raw("local-answer", "add-header"),
    },
    Variant {
        id: "raw-http-call",
        label: "raw http-call",
        job: Job::Token,
        kind: Kind::Raw,
        filter: Filter::Raw("http-call", ""),
    },
    Variant {
        id: "mock",
        label: "mock (mockEnable false)",
        job: Job::AddHeader,
        kind: Kind::Plugin,
        filter: Filter::Plugin("mock", r#"{"mockEnable": false}"#),
    },
    Variant {
        id: "mock-answer",
        label: "mock (mockEnable true)",
        job: Job::HeaderAndAnswer,
        kind: Kind::Plugin,
        filter: Filter::Plugin("mock", r#"{"mockEnable": true}"#),
    },
    Variant {
        id: "hello-world",
        label: "hello-world",
        job: Job::LocalAnswer,
        kind: Kind::Plugin,
        filter: Filter::Plugin("hello-world", "{}"),
    },
    Variant {
        id: "http-call",
        label: "http-call",
        job: Job::Token,
        kind: Kind::Plugin,
        filter: Filter::Plugin("http-call", HTTP_CALL_CONFIG),
    },
    Variant {
        id: "mock-native",
        label: "mock .so (mockEnable false)",
        job: Job::AddHeader,
        kind: Kind::Plugin,
        filter: Filter::NativePlugin("mock", r#"{"mockEnable": false}"#),
    },
    Variant {
        id: "mock-answer-native",
        label: "mock .so (mockEnable true)",
        job: Job::HeaderAndAnswer,
        kind: Kind::Plugin,
        filter: Filter::NativePlugin("mock", r#"{"mockEnable": true}"#),
    },
    Variant {
        id: "hello-world-native",
        label: "hello-world .so",
        job: Job::LocalAnswer,
        kind: Kind::Plugin,
        filter: Filter::NativePlugin("hello-world", "{}"),
    },
    Variant {
        id: "http-call-native",
        label: "http-call .so",
        job: Job::Token,
        kind: Kind::Plugin,
        filter: Filter::NativePlugin("http-call", HTTP_CALL_CONFIG),
    },
];

/// The variant with this id.
pub fn by_id(id: &str) -> Option<&'static Variant> {
    ALL.iter().find(|v| v.id == id)
}

/// A variant like `base` but loading the module at `path` (another build of
/// it: an opt-level, a crate type, an SDK change), with `base`'s job,
/// configuration and checks; its id is `<base id>@<file stem>`. The variant
/// lives as long as the program (a command-line choice).
pub fn with_module(base: &Variant, path: &Path) -> Result<&'static Variant> {
    let config = match base.filter {
        Filter::Raw(_, config)
        | Filter::Plugin(_, config)
        | Filter::NativePlugin(_, config)
        | Filter::Module(_, config) => config,
        _ => return Err(format!("{} loads no module to replace", base.id)),
    };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let file = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let path: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
    Ok(Box::leak(Box::new(Variant {
        id: leak(format!("{}@{stem}", base.id)),
        label: leak(format!("{} ({file})", base.label)),
        job: base.job,
        kind: base.kind,
        filter: Filter::Module(path, config),
    })))
}

/// Where the Wasm modules are.
#[derive(Clone, Debug)]
pub struct Modules {
    /// `dist/` (the plugins, as shipped).
    pub dist: PathBuf,
    /// The raw modules: `<dir>/raw-<name>.wasm`.
    pub raw: PathBuf,
}

impl Variant {
    /// The Wasm module this variant loads, if any.
    pub fn module(&self, modules: &Modules) -> Option<PathBuf> {
        match self.filter {
            Filter::Raw(name, _) => Some(modules.raw.join(format!("raw-{name}.wasm"))),
            Filter::Plugin(name, _) => Some(modules.dist.join(format!("{name}.wasm"))),
            Filter::NativePlugin(name, _) => Some(modules.dist.join(format!("{name}.so"))),
            Filter::Module(path, _) => Some(path.to_path_buf()),
            _ => None,
        }
    }

    /// The configuration of a Wasm variant (JSON for plugins).
    pub fn plugin_config(&self) -> Option<&'static str> {
        match self.filter {
            Filter::Raw(_, config)
            | Filter::Plugin(_, config)
            | Filter::NativePlugin(_, config)
            | Filter::Module(_, config) => Some(config),
            _ => None,
        }
    }

    /// What a request must show when this filter did its job (checked before measuring).
    pub fn expectation(&self) -> Expect {
        match self.job {
            Job::AddHeader => Expect::RequestHeader("hello", "world"),
            Job::Token => Expect::RequestHeader(TOKEN_HEADER, TOKEN),
            // The route's own answer for the native one; the filter's for the others.
            Job::LocalAnswer if self.kind == Kind::Native => Expect::RouteAnswer,
            Job::LocalAnswer | Job::HeaderAndAnswer => Expect::FilterAnswer,
        }
    }

    /// The Envoy bootstrap of this variant; the token service listens on `token_port`.
    pub fn envoy_config(&self, modules: &Modules, token_port: u16) -> Result<Value> {
        let mut filters = Vec::new();
        match self.filter {
            Filter::None => {}
            Filter::HeaderMutation => filters.push(header_mutation()),
            Filter::ExtAuthz => filters.push(ext_authz()),
            Filter::Raw(..) | Filter::Plugin(..) | Filter::NativePlugin(..) | Filter::Module(..) => {
                let module = self.module(modules).unwrap_or_default();
                check_module(&module)?;
                let config = self.plugin_config().unwrap_or("");
                // A `.so` (a native plugin, or `--also` naming one) runs on the dynamic module filter.
                if module.extension().is_some_and(|e| e == "so") {
                    filters.push(e2e::envoy_config::dynamic_module_filter(self.id, &module, config));
                } else {
                    filters.push(e2e::envoy_config::wasm_filter(self.id, &module, config));
                }
            }
        }
        Ok(bootstrap(filters, token_port))
    }
}

/// What [`crate::run`] checks on `/verify` before measuring a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The route's `seen-<name>` response header has this value.
    RequestHeader(&'static str, &'static str),
    /// `/verify` is answered by its route (`verify`).
    RouteAnswer,
    /// `/verify` is answered `hello world` by the filter, not by its route.
    FilterAnswer,
}

fn check_module(module: &Path) -> Result<()> {
    if module.is_file() {
        Ok(())
    } else {
        Err(format!("{} is missing: run `cargo xtask bench` (it builds dist/ and the raw modules)", module.display()))
    }
}

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

fn listener(name: &str, port: u16, routes: Value, mut filters: Vec<Value>) -> Value {
    filters.push(router());
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": name,
                "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
                "http_filters": filters,
            },
        }]}],
    })
}

/// The bootstrap shared by every variant, with `filters` before the router of listener `bench`.
pub fn bootstrap(filters: Vec<Value>, token_port: u16) -> Value {
    let seen = |header: &str| json!({"header": {"key": format!("seen-{header}"), "value": format!("%REQ({header})%")}});
    let bench_routes = json!([
        {
            "name": "verify",
            "match": {"prefix": "/verify"},
            "direct_response": {"status": 200, "body": {"inline_string": "verify"}},
            "response_headers_to_add": [seen("hello"), seen(TOKEN_HEADER)],
        },
        {"name": "bench", "match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "hello world"}}},
    ]);
    let token_routes = json!([{
        "name": "token",
        "match": {"prefix": "/"},
        "direct_response": {"status": 200},
        "response_headers_to_add": [{"header": {"key": TOKEN_HEADER, "value": TOKEN}}],
    }]);
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [listener("bench", 0, bench_routes, filters), listener("token", token_port, token_routes, vec![])],
            "clusters": [{
                "name": TOKEN_CLUSTER,
                "connect_timeout": "1s",
                "type": "STATIC",
                "load_assignment": {
                    "cluster_name": TOKEN_CLUSTER,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": token_port}}}}]}],
                },
            }],
        },
    })
}

fn header_mutation() -> Value {
    json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"append": {
                "header": {"key": "hello", "value": "world"},
                "append_action": "APPEND_IF_EXISTS_OR_ADD",
            }}]},
        },
    })
}

fn ext_authz() -> Value {
    json!({
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "http_service": {
                "server_uri": {"uri": "http://token.dns", "cluster": TOKEN_CLUSTER, "timeout": "0.5s"},
                "path_prefix": "/token",
                "authorization_response": {"allowed_upstream_headers": {"patterns": [{"exact": TOKEN_HEADER}]}},
            },
            "failure_mode_allow": false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_has_its_native_and_raw_variant() {
        for variant in ALL {
            let native = by_id(variant.job.native()).unwrap();
            let raw = by_id(variant.job.raw()).unwrap();
            assert_eq!(native.kind, Kind::Native);
            assert_eq!((raw.kind, raw.job), (Kind::Raw, variant.job));
        }
        let ids: std::collections::BTreeSet<_> = ALL.iter().map(|v| v.id).collect();
        assert_eq!(ids.len(), ALL.len());
    }

    #[test]
    fn configs_differ_only_in_the_filter() {
        let modules = Modules { dist: "/d".into(), raw: "/r".into() };
        let none = by_id("none").unwrap().envoy_config(&modules, 4000).unwrap();
        let mut native = by_id("header_mutation").unwrap().envoy_config(&modules, 4000).unwrap();
        let filters = native
            .pointer_mut("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters")
            .and_then(Value::as_array_mut)
            .unwrap();
        assert_eq!(filters.len(), 2);
        filters.remove(0);
        assert_eq!(native, none);
        let err = by_id("mock").unwrap().envoy_config(&modules, 4000).unwrap_err();
        assert!(err.contains("/d/mock.wasm is missing"), "{err}");
    }
}
