//! The arguments of `gateway-oci` (`cargo xtask package|push|pull`), in one place.
//!
//! The `gateway-oci` binary parses them; xtask includes this file too
//! (`#[path]`), so `cargo xtask push --help` answers at once and a wrong
//! argument is refused before anything is built. Only clap types, no
//! dependency on the crate (xtask stays free of the registry client).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// What `--help` adds after the options of `push` and `pull`.
pub const CREDENTIALS: &str = "Credentials come from OCI_USERNAME and OCI_PASSWORD (basic auth, or sent to the \
token server a registry's Bearer challenge names) or OCI_TOKEN; none means anonymous. Plain HTTP is used for \
localhost, 127.0.0.0/8 and [::1] registries (unless --ca-file is given), and for any registry with --insecure; \
otherwise HTTPS.";

/// Packages the workspace's plugins as OCI images (the layout Higress and Istio fetch), pushes and pulls them.
#[derive(Parser, Debug)]
#[command(name = "gateway-oci", disable_version_flag = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: OciCommand,
}

#[derive(Subcommand, Debug)]
pub enum OciCommand {
    Package(PackageArgs),
    Push(PushArgs),
    Pull(PullArgs),
}

/// Write dist/oci/<name>/ (an OCI image layout) for the plugins named, or all; reads
/// dist/<name>.wasm (cargo xtask build), plugins/<name>/README.md and dist/<name>.schema.json
#[derive(Args, Debug)]
pub struct PackageArgs {
    /// Plugins to package [default: every plugin]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Write the layouts to DIR/<name> instead of dist/oci/<name>
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// How to reach a registry.
#[derive(Args, Debug, Clone)]
pub struct RegistryOptions {
    /// Plain HTTP to any registry (without it: only to loopback ones)
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA too (a registry with a private CA; HTTPS also on loopback)
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

/// Package a plugin and push it: `push NAME REF` (e.g. mock 127.0.0.1:5000/plugins/mock:0.1.0),
/// or `push --all PREFIX [TAG]`, every plugin as PREFIX/<name>:<TAG, default its version>
#[derive(Args, Debug)]
#[command(after_help = CREDENTIALS)]
pub struct PushArgs {
    /// Push every plugin, under PREFIX
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub registry: RegistryOptions,
    /// Write the layouts to DIR/<name> instead of dist/oci/<name>
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// NAME REF, or with --all: PREFIX [TAG]
    #[arg(value_name = "ARGS", required = true, num_args = 1..=2)]
    pub positional: Vec<String>,
}

impl PushArgs {
    /// Refuses a positional count that does not fit `--all` or its absence.
    pub fn check(&self) -> Result<(), String> {
        match (self.all, self.positional.len()) {
            (true, 1 | 2) | (false, 2) => Ok(()),
            (true, _) => Err("push --all wants PREFIX [TAG]".to_string()),
            (false, _) => Err("push wants NAME REF (or --all PREFIX [TAG])".to_string()),
        }
    }
}

/// Pull an image, check it and list its layers; compares plugin.wasm with dist/<name>.wasm
#[derive(Args, Debug)]
#[command(after_help = CREDENTIALS)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryOptions,
    /// Write plugin.wasm, spec.yaml and README.md to DIR
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The image, e.g. 127.0.0.1:5000/plugins/mock:0.1.0
    #[arg(value_name = "REF")]
    pub reference: String,
}
