//! A plugin's settings: the one type that says what its JSON may hold, from
//! which the SDK makes both the config the hooks get and the JSON Schema.
//!
//! A plugin declares its settings once, with the [`fields`](crate::fields)
//! types for values that need checking (each carries its check into parsing
//! and into the schema) and doc comments (the schema's descriptions):
//!
//! ```
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
//! chosen from two fields), the config is made from the settings with serde's
//! `try_from`, and its schema is theirs (a doc comment on the config would
//! replace the settings' description there):
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # #[derive(Deserialize, JsonSchema)]
//! # #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! # pub struct Settings {
//! #     service_name: ServiceName,
//! #     service_port: Option<Port>,
//! #     #[serde(default)]
//! #     timeout: Millis,
//! # }
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(try_from = "Settings")]
//! #[schemars(with = "Settings")]
//! pub struct Config { timeout: Millis, client: HttpClient }
//!
//! impl TryFrom<Settings> for Config {
//!     type Error = String;
//!     fn try_from(settings: Settings) -> Result<Self, String> {
//!         let client = settings.service_name.http_client(settings.service_port, None)?;
//!         Ok(Config { timeout: settings.timeout, client })
//!     }
//! }
//! ```
//!
//! What such a `try_from` usually builds has a piece in the SDK, so that a
//! plugin writes only what is its own:
//!
//! * an HTTP client of the service a config names (`serviceName`,
//!   `servicePort`, `serviceHost`, as the Higress Go plugin guide's configs
//!   name it): [`ServiceName::http_client`](crate::fields::ServiceName::http_client),
//!   with errors that name the field;
//! * a Redis client of such a service (port 6379 unless given):
//!   `RedisClient::for_service` (feature `redis`), opened early with
//!   `RedisClient::init_or_warn` from [`Plugin::on_configure`](crate::Plugin::on_configure);
//! * defaults that are not the type's: `#[serde(default = "Millis::second")]`
//!   ([`Millis::second`](crate::fields::Millis::second));
//! * what a limiter counts over and by: [`limit::Window`](crate::limit::Window)
//!   and [`limit::LimitBy`](crate::limit::LimitBy), with the counter's key.
//!
//! The field types are in the prelude. Checks across fields go in `try_from`, and to the schema with
//! `#[schemars(transform = ...)]` on the settings and the helpers of
//! `gateway_sdk::schema`. The config keeps only what the hooks use, and the
//! rest of the settings is freed at start: what a config leaves on the heap
//! shapes where each request's allocations land, and so what they cost
//! (one string more kept from http-call's settings costs its requests 400
//! Wasm instructions, by `cargo xtask bench --work`).
//!
//! `JsonSchema` (in the prelude) is schemars' derive in native builds and one
//! that derives nothing in Wasm builds (`gateway-sdk-macros`): a module
//! never carries schema code. [`main!`](crate::main) makes the native library
//! print the schema when built as a program (see `gateway_sdk::schema`).

#[cfg(target_family = "wasm")]
pub use gateway_sdk_macros::JsonSchema;
#[cfg(not(target_family = "wasm"))]
pub use schemars::{self, JsonSchema};

/// What [`main!`](crate::main) adds for schemas: in native builds, a `main`
/// that prints the plugin's config schema (if its config has one), run when
/// `cargo xtask build` builds the library as a program (see
/// `gateway_sdk::schema`). A library build never calls it.
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
