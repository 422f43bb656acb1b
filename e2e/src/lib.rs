//! # e2e: the plugins on a real Envoy, as local processes
//!
//! The end-to-end suite runs the repository's own `envoy.yaml` (the file
//! `docker compose` users run) on a real Envoy 1.40 and a real httpbin, both
//! started here as local processes on loopback, with the plugin modules of
//! `dist/`. No container engine is needed.
//!
//! ```no_run
//! use e2e::{EnvoyConfig, Gateway};
//!
//! let gw = Gateway::start()?; // httpbin + Envoy running envoy.yaml
//! let resp = gw.get("/hello-world", &[])?;
//! assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));
//!
//! // The same file with one plugin's configuration replaced:
//! let gw = Gateway::with_plugin_config("mock", r#"{"mockEnable": true}"#)?;
//! // ... or edited further:
//! let mut config = EnvoyConfig::load()?;
//! config.patch_plugin_configuration("http-call", serde_json::json!({"timeout": 200}))?;
//! config.add_route(e2e::envoy_config::route("extra", "/extra/", "httpbin"))?;
//! let gw = Gateway::start_with(config)?;
//! gw.envoy.wait_for_plugin_line("[http-call] [nil] [nil] configured")?;
//! # Ok::<(), e2e::Error>(())
//! ```
//!
//! What is where:
//!
//! * [`build`]: which build of the plugins runs, `.wasm` or `.so`
//!   (`E2E_BUILD=native`); the same tests run on both.
//! * [`paths`]: the repository, the Python venv (Envoy and httpbin) and the
//!   plugin modules of `dist/`; each missing piece is an error that says how
//!   to get it (`cargo xtask build`, the venv command), never a skipped test.
//! * [`envoy_config`]: `envoy.yaml` rewritten for local processes, with the
//!   edits tests make (a plugin's configuration, extra routes, clusters,
//!   listeners and plugins).
//! * [`process`]: child processes in their own process group, killed on drop
//!   (a test that panics included), and a free-port helper.
//! * [`Httpbin`], [`Envoy`], [`Redis`]: the three servers; [`Gateway`] is
//!   httpbin plus Envoy, what most tests want.
//! * [`http`]: a small HTTP client for tests: no redirects, no decompression,
//!   status, headers and body exactly as received.
//! * [`reliability`]: the reliability suite's tools (result rows for
//!   `RELIABILITY.md`, Wasm VM health, memory, a raw HTTP/1.1 client, a load
//!   generator, a token service to break).
//!
//! The tests (`e2e/tests/`): `seed.rs` (the Higress Go plugin guide's examples:
//! the routes of `envoy.yaml`, mock's answer), `http_call.rs`, `rules.rs` (`_rules_` by route, domain, route
//! prefix, service), `bad_config.rs` (refused configs stop Envoy),
//! `log_format.rs`, `envoy_facts.rs` (what Envoy 1.40 accepts), `processes.rs`
//! (the harness cleans up), `actions.rs` (header and data actions, with the
//! `probe` fixture), `sdk_features.rs` (metrics in `/stats`, response code
//! details and plugin filter state in an access log, rule-level isolation,
//! the request line in later phases, with the `sdk-features` fixture),
//! `trailers.rs` (trailers both ways, on both builds), `lifetime.rs` (timers,
//! shared data across workers, leader election, the VM configuration, the
//! plugin store and stop, with the `lifetime` fixture). They need `dist/`
//! (`cargo xtask build`) and the venv. The `higress-features` fixture uses
//! Higress-only host calls, which upstream Envoy refuses: its tests run on
//! the test host (`e2e/fixtures/higress-features/tests`).
//!
//! Every process is started by the test that uses it and killed when the test
//! ends. Deadlines are generous (the suite runs on busy 2-core machines) and
//! nothing asserts on timing.

pub mod build;
pub mod elf;
pub mod envoy;
pub mod envoy_config;
mod error;
pub mod http;
pub mod httpbin;
pub mod paths;
pub mod process;
pub mod redis;
pub mod reliability;
mod wasm;

pub use build::Build;
pub use envoy::{Envoy, FailedStart, StartFailure};
pub use envoy_config::{EnvoyConfig, Upstreams};
pub use error::{Error, Result};
pub use httpbin::Httpbin;
pub use redis::Redis;

/// httpbin and an Envoy in front of it: the gateway of `envoy.yaml`.
///
/// Envoy is declared first so that it stops before its upstream.
pub struct Gateway {
    pub envoy: Envoy,
    pub httpbin: Httpbin,
}

impl Gateway {
    /// The gateway of the repository's `envoy.yaml`, unchanged.
    pub fn start() -> Result<Gateway> {
        Gateway::start_with(EnvoyConfig::load()?)
    }

    /// A gateway running `config` (usually [`EnvoyConfig::load`] plus edits).
    pub fn start_with(config: EnvoyConfig) -> Result<Gateway> {
        let httpbin = Httpbin::start()?;
        let envoy = Envoy::start(&config, &Upstreams::httpbin(httpbin.port()))?;
        Ok(Gateway { envoy, httpbin })
    }

    /// The gateway of `envoy.yaml` with the Wasm filter `plugin`'s
    /// configuration replaced by `configuration` (JSON text).
    pub fn with_plugin_config(plugin: &str, configuration: &str) -> Result<Gateway> {
        let mut config = EnvoyConfig::load()?;
        config.plugin_configuration(plugin, configuration)?;
        Gateway::start_with(config)
    }

    /// `http://127.0.0.1:<listener_0 port><path>`.
    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }

    /// `GET <path>` through the gateway, with `headers`.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<http::Response> {
        headers.iter().fold(http::get(&self.url(path)), |req, (name, value)| req.header(name, value)).send()
    }
}
