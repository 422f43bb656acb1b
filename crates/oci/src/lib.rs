//! OCI images of the gateway plugins, for Higress and Istio
//! (`WasmPlugin` with `url: oci://...`).
//!
//! An image built here ([`Image::build`]) has the layout both gateways'
//! fetchers accept and Higress's own plugin images carry:
//!
//! | # | media type | content |
//! |---|---|---|
//! | config | `application/vnd.oci.image.config.v1+json` | OCI image config, `architecture: wasm`, `os: wasip1` |
//! | 0 | `application/vnd.module.wasm.spec.v1+yaml` | `spec.yaml` ([`spec`]: Higress's format, OpenAPI 3.0 schemas from [`openapi`]) |
//! | 1 | `application/vnd.module.wasm.doc.v1+markdown` | the plugin's `README.md` |
//! | 2 (last) | `application/vnd.oci.image.layer.v1.tar+gzip` | `plugin.wasm` ([`layer`]) |
//!
//! and the manifest annotation `module.wasm.image/variant: compat`. Building
//! is reproducible: the same inputs give the same manifest digest.
//!
//! * [`workspace`] finds the plugins of this repository and their files, and
//!   reads what `spec.yaml` says of each from its `[package.metadata.gateway]`,
//! * [`layout`] stores an image as an OCI image layout directory (`dist/oci/<name>`),
//! * [`Registry`] pushes it to any OCI registry and pulls it back: basic auth
//!   or bearer tokens from the registry's token server (credentials from
//!   `OCI_USERNAME`/`OCI_PASSWORD` or `OCI_TOKEN`, see [`auth_from_env`]),
//!   HTTPS with the system's roots and optionally a private CA, plain HTTP
//!   only for loopback registries or when asked ([`plain_http`]).
//!
//! The `gateway-oci` binary (`cargo xtask package|push|pull`) is the command
//! line for all of it.
//!
//! ```no_run
//! # async fn demo() -> gateway_oci::Result<()> {
//! let root = std::path::Path::new(".");
//! let mock = gateway_oci::workspace::plugin(root, "mock")?;
//! let image = mock.image()?;
//! gateway_oci::layout::write(&root.join("dist/oci/mock"), &image, &mock.info.version)?;
//! let registry = gateway_oci::Registry::from_env()?;
//! let pushed = registry.push(&image, "127.0.0.1:5000/plugins/mock:0.1.0").await?;
//! assert_eq!(pushed.digest, image.digest());
//! let pulled = registry.pull("127.0.0.1:5000/plugins/mock:0.1.0").await?;
//! assert_eq!(pulled.plugin_wasm()?, std::fs::read(&mock.wasm).unwrap());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod error;
mod image;
pub mod layer;
pub mod layout;
pub mod media;
pub mod openapi;
mod plugin;
mod registry;
pub mod spec;
pub mod workspace;

pub use error::{Error, Result};
pub use image::{digest_of, Image};
pub use oci_client::secrets::RegistryAuth;
pub use plugin::{is_tag, Contact, FieldTexts, Phase, PluginInfo, Texts, CATEGORIES};
pub use registry::{
    auth_from_env, parse_reference, plain_http, Pushed, Registry, MAX_BLOB_SIZE, PASSWORD_VAR, TOKEN_VAR, USERNAME_VAR,
};
