//! Media types and annotations of a plugin image.
//!
//! Istio's and Higress's image fetchers (`pkg/wasm/imagefetcher.go`) take the
//! LAST layer of an OCI image manifest, require it to be
//! [`PLUGIN_LAYER`] and read `plugin.wasm` from it (the "compat" variant of the
//! Wasm image spec). Higress's Wasm plugin image spec puts the plugin's
//! metadata ([`SPEC_LAYER`]) and documentation ([`README_LAYER`]) in
//! single-file layers before it, as `oras push` writes them; the gateways
//! skip them, they are there for tools that read an image's metadata.

/// The OCI image manifest (the registry's `Content-Type`).
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index of an image layout's `index.json`.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The image configuration blob.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `spec.yaml`, the plugin's metadata in Higress's format (a raw file, not a tar).
pub const SPEC_LAYER: &str = "application/vnd.module.wasm.spec.v1+yaml";
/// `README.md`, the plugin's documentation (a raw file, not a tar).
pub const README_LAYER: &str = "application/vnd.module.wasm.doc.v1+markdown";
/// The layer holding `plugin.wasm`: a gzipped tar. It must be the last layer.
pub const PLUGIN_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Manifest annotation naming the Wasm image variant.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The variant: standard OCI layer media types, `plugin.wasm` in a tar+gzip layer.
pub const VARIANT_COMPAT: &str = "compat";
/// File name of a layer (what `oras pull` writes it as).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The tag an image layout's `index.json` gives its manifest.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The file name Istio and Higress look for in the plugin layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// File name of the spec layer.
pub const SPEC_FILE: &str = "spec.yaml";
/// File name of the README layer.
pub const README_FILE: &str = "README.md";
/// File name of the plugin layer (as `oras push plugin.tar.gz:...` names it).
pub const PLUGIN_ARCHIVE_FILE: &str = "plugin.tar.gz";

/// Architecture of the image configuration (Go's `GOARCH` for WebAssembly).
pub const ARCHITECTURE: &str = "wasm";
/// Operating system of the image configuration (Go's `GOOS` for WASI preview 1).
pub const OS: &str = "wasip1";
