//! The native backend: a plugin built as an Envoy dynamic module (`.so`), for
//! upstream Envoy >= 1.40's `envoy.filters.http.dynamic_modules` filter.
//!
//! Chosen at build time with the SDK's `native` feature (and the `native`
//! profile, which unwinds on panic so that a hook can catch it). The plugin's
//! source is the same as for the `.wasm`: `Request`, the HTTP client, the
//! rules and the logger are shared, and only the host functions
//! (`native/host.rs`, selected in `lib.rs`) and the exports ([`exports`]) differ.
//!
//! * [`abi`]: the bindings, the only `unsafe` code of the SDK;
//! * `native/host.rs` (the crate's `host` module in native builds): the
//!   Proxy-Wasm-shaped host functions on top of them;
//! * [`filter`]: one config shared by Envoy's worker threads, one filter per
//!   stream driving [`crate::Request`], every hook behind `catch_unwind`;
//! * [`exports`]: the `envoy_dynamic_module_on_*` symbols Envoy looks up;
//! * [`glibc`]: the C library functions bound to versions old enough for
//!   the Envoy binary's glibc baseline.

pub(crate) mod abi;
mod exports;
mod filter;
mod glibc;

pub use filter::program_init;
