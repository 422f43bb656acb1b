//! The arguments of `cargo xtask up` / `gateway-up`, in one place: the
//! binary parses them, xtask includes this file (`#[path]`) so that
//! `cargo xtask up --help` answers at once and a wrong argument is refused
//! before anything is installed or built.

use clap::Parser;
use std::path::PathBuf;

/// Serves an Envoy config with httpbin on local processes until stopped.
#[derive(Parser, Debug)]
#[command(name = "gateway-up", disable_version_flag = true)]
pub struct UpArgs {
    /// The Envoy config to serve [default: envoy.yaml of the repository]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Port of listener_0, the gateway
    #[arg(long, value_name = "PORT", default_value_t = 10000)]
    pub port: u16,
    /// Port of Envoy's admin
    #[arg(long, value_name = "PORT", default_value_t = 9901)]
    pub admin_port: u16,
    /// Serve the `.so` builds (Envoy dynamic modules) instead of the `.wasm` ones
    #[arg(long)]
    pub native: bool,
}
