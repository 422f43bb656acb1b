//! Which build of the plugins a run loads: the Proxy-Wasm modules
//! (`dist/<name>.wasm`, the default) or the Envoy dynamic modules
//! (`dist/<name>.so`, with `E2E_BUILD=native`).
//!
//! The suites are written once, against `envoy.yaml`'s Wasm filters; with the
//! native build [`EnvoyConfig::render`](crate::EnvoyConfig::render) turns each
//! of them into an `envoy.filters.http.dynamic_modules` filter with the same
//! name, plugin configuration and per-route settings, loading the `.so` beside
//! the `.wasm`. So `cargo xtask test` runs the same tests on both builds, and
//! they must agree.

/// A build of the plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Proxy-Wasm modules on Envoy's Wasm filter (V8).
    Wasm,
    /// Envoy dynamic modules (`.so`) on `envoy.filters.http.dynamic_modules`.
    Native,
}

impl Build {
    /// The build named by `E2E_BUILD` (`wasm`, the default, or `native`).
    pub fn from_env() -> Build {
        match std::env::var("E2E_BUILD").as_deref() {
            Ok("native") => Build::Native,
            _ => Build::Wasm,
        }
    }

    /// Both builds, for tests that compare them in one run.
    pub const ALL: [Build; 2] = [Build::Wasm, Build::Native];

    /// The file extension of its modules.
    pub fn extension(self) -> &'static str {
        match self {
            Build::Wasm => "wasm",
            Build::Native => "so",
        }
    }
}
