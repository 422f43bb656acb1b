//! The arguments of `cargo xtask bench` / `gateway-bench`, in one place.
//!
//! `gateway-bench` parses them; xtask includes this file too (`#[path]`), so
//! `cargo xtask bench --help` answers at once and a wrong argument is refused
//! before anything is built. Only clap types: nothing else to compile twice.

use clap::Parser;
use std::path::PathBuf;

/// A CPU to pin a process to, or `none`.
#[derive(Clone, Copy, Debug)]
pub struct Cpu(pub Option<usize>);

impl std::str::FromStr for Cpu {
    type Err = String;
    fn from_str(text: &str) -> Result<Cpu, String> {
        if text == "none" {
            return Ok(Cpu(None));
        }
        text.parse().map(|n| Cpu(Some(n))).map_err(|_| format!("not a CPU number or `none`: {text:?}"))
    }
}

/// Measures every plugin against native Envoy filters and raw proxy-wasm modules on a
/// real Envoy; writes bench/RESULTS.md and bench/results.svg.
#[derive(Parser, Debug)]
#[command(name = "gateway-bench", disable_version_flag = true)]
pub struct BenchArgs {
    /// One 1-second round of `none` and `mock`, no Redis, no all-plugins start, written to a
    /// temp dir unless --out is given (what CI runs)
    #[arg(long)]
    pub smoke: bool,
    /// Where RESULTS.md and results.svg go [default: bench/ of the repository]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the raw modules raw-<name>.wasm are [default: <target dir>/bench]
    #[arg(long, value_name = "DIR")]
    pub raw_dir: Option<PathBuf>,
    /// Measured rounds
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Seconds of load per variant and round
    #[arg(long, value_name = "N")]
    pub seconds: Option<u32>,
    /// Seconds of warm-up load
    #[arg(long, value_name = "N")]
    pub warmup: Option<u32>,
    /// wrk connections
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,
    /// The variants to measure, comma-separated (see --list)
    #[arg(long, value_name = "ID,ID,...", value_delimiter = ',')]
    pub variants: Option<Vec<String>>,
    /// CPU for Envoy's worker, or `none`
    #[arg(long, value_name = "N|none")]
    pub envoy_cpu: Option<Cpu>,
    /// CPU for wrk, or `none`
    #[arg(long, value_name = "N|none")]
    pub wrk_cpu: Option<Cpu>,
    /// Skip the start of Envoy with every plugin of envoy.yaml
    #[arg(long)]
    pub no_all_plugins: bool,
    /// Also measure variant ID with the module at PATH (another build of it), as ID@<file stem>;
    /// repeatable, e.g. --also mock=/tmp/mock-O3.wasm
    #[arg(long, value_name = "ID=PATH")]
    pub also: Vec<String>,
    /// Seconds of the rate limiter's Redis round-trip count
    #[arg(long, value_name = "S")]
    pub limiter_seconds: Option<f64>,
    /// Print the variants and exit
    #[arg(long)]
    pub list: bool,
    /// Print the Wasm instructions and host calls per request of the chosen variants (counted on
    /// a minimal host, no Envoy; a second or two) and exit
    #[arg(long)]
    pub work: bool,
}
