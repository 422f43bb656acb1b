//! A plugin's settings: the one type that says what its JSON may hold, from
//! which the SDK makes both the config the hooks get and the JSON Schema.
//!
//! A plugin declares its settings once, with the [`fields`](crate::fields)
//! types for values that need checking (each carries its check into parsing
//! and into the schema) and doc comments (the schema's descriptions):
//!
//! ```
//! # use gateway_sdk::fields::{Millis, Port, ServiceName};
//! # use gateway_sdk::prelude::*;
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! pub struct Settings {
//!     /// The service to call.
//!     service_name: ServiceName,
//!     /// Its port.
//!     service_port: Option<Port>,
//!     /// How long a call may take.
//!     #[serde(default)]
//!     timeout: Millis,
//! }
//! ```
//!
//! When the settings are all the hooks need, they are the plugin's `Config`.
//! When the hooks need something built from them once (a client, a value
//! chosen from two fields), its settings implement [`Prepare`] and its config
//! is [`Configured<Settings>`](Configured): the settings (by `Deref`) and what
//! [`Prepare::prepare`] made of them. Checks across fields go there, and to
//! the schema with `#[schemars(transform = ...)]` and the helpers of
//! `gateway_sdk::schema`.
//!
//! `JsonSchema` (in the prelude) is schemars' derive in native builds and one
//! that derives nothing in Wasm builds (`gateway-sdk-macros`): a module
//! never carries schema code. [`main!`](crate::main) makes the native library
//! print the schema when built as a program (see `gateway_sdk::schema`).

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use std::ops::Deref;

#[cfg(target_family = "wasm")]
pub use gateway_sdk_macros::JsonSchema;
#[cfg(not(target_family = "wasm"))]
pub use schemars::{self, JsonSchema};

/// Settings from which the plugin builds something once, when its
/// configuration is read; its config is then [`Configured<Self>`].
pub trait Prepare: DeserializeOwned {
    /// What the hooks need besides the settings (a client, chosen values).
    type Prepared;

    /// Checks what no single field can, and builds [`Self::Prepared`]. An
    /// error fails plugin start; say which field and what is wrong
    /// (`"serviceName: needs a port"`).
    fn prepare(&self) -> Result<Self::Prepared, String>;
}

/// A plugin's config made from its settings: the settings themselves
/// (`config.field`, by `Deref`) and what [`Prepare::prepare`] built
/// ([`Configured::prepared`]).
pub struct Configured<S: Prepare> {
    settings: S,
    prepared: S::Prepared,
}

impl<S: Prepare> Configured<S> {
    /// What [`Prepare::prepare`] built.
    pub fn prepared(&self) -> &S::Prepared {
        &self.prepared
    }
}

impl<S: Prepare> Deref for Configured<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.settings
    }
}

impl<'de, S: Prepare> Deserialize<'de> for Configured<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let settings = S::deserialize(deserializer)?;
        let prepared = settings.prepare().map_err(D::Error::custom)?;
        Ok(Configured { settings, prepared })
    }
}

/// The schema of a [`Configured`] config is that of its settings.
#[cfg(not(target_family = "wasm"))]
impl<S: Prepare + JsonSchema> JsonSchema for Configured<S> {
    fn inline_schema() -> bool {
        S::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        S::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        S::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        S::json_schema(generator)
    }
}

/// What [`main!`](crate::main) adds for schemas: in native builds, a `main`
/// that prints the plugin's config schema (if its config has one), run when `cargo xtask build`
/// builds the library as a program (see `gateway_sdk::schema`). A library
/// build never calls it.
#[doc(hidden)]
#[macro_export]
macro_rules! __schema_program {
    ($plugin:ty) => {
        #[cfg(not(target_family = "wasm"))]
        #[allow(dead_code)]
        fn main() {
            #[allow(unused_imports)]
            use $crate::schema::{NoSchema as _, PrintSchema as _};
            (&$crate::schema::SchemaOf::<$plugin>::new()).print();
        }
    };
}
