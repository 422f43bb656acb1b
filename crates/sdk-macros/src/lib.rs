//! `#[derive(JsonSchema)]` for Wasm builds of plugins: it derives nothing.
//!
//! A plugin derives `JsonSchema` on its settings unconditionally, from
//! `gateway_sdk::prelude`. In native builds (tests, `cargo xtask build`
//! printing `dist/<name>.schema.json`) that is schemars' derive; in Wasm
//! builds it is this one, so the module contains no schema code and does not
//! compile schemars at all (measured: deriving the real impls for Wasm, even
//! unused, makes `mock.wasm` 653 bytes bigger). The `#[schemars(...)]`
//! attributes are declared here so that they are accepted, and ignored.

use proc_macro::TokenStream;

/// Derives nothing; accepts `#[schemars(...)]` attributes.
#[proc_macro_derive(JsonSchema, attributes(schemars))]
pub fn json_schema(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
