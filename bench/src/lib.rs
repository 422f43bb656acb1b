//! # gateway-bench: what our plugins cost, next to what else users could pick
//!
//! `cargo xtask bench` builds `dist/` and the raw `proxy-wasm` modules of
//! `bench/raw/`, then runs this crate's binary, which measures every variant
//! of [`variants::ALL`] on a real Envoy 1.40 and writes `bench/RESULTS.md`
//! and `bench/results.svg`.
//!
//! How a measurement goes ([`run`]):
//!
//! 1. Each module's Wasm instructions and host calls per request, counted on
//!    a minimal host ([`work`]): exact, where timings on a shared machine are
//!    not.
//! 2. A warm-up start of Envoy with every plugin (discarded: it brings the
//!    binary and the modules into the page cache).
//! 3. Rounds. Each round runs every variant once, in an order rotated by one
//!    each round (so no variant always follows the same one), and once the
//!    root `envoy.yaml` with all plugins (start time and memory only). A
//!    variant's run: start Envoy pinned to CPU 0 (`--concurrency 1`), time
//!    it until `/ready`, check on `/verify` that the filter does its job,
//!    load it with wrk for the warm-up time, read its RSS, load it again for
//!    the measured time (wrk pinned to CPU 1), read its Wasm VMs' linear
//!    memories from `/proc/PID/smaps`, stop it.
//! 4. The Redis limiter on the test host ([`limiter`]).
//! 5. Medians and min-max over rounds; ratios are taken within each round
//!    (variant / reference of the same round) and then their median, which
//!    cancels most of the drift of a shared machine.
//!
//! Every process started here is stopped when its run ends (or when this
//! process dies: see `e2e::process`).

pub mod chart;
pub mod envoy;
pub mod limiter;
pub mod procfs;
pub mod report;
pub mod stats;
pub mod variants;
pub mod work;
pub mod wrk;

use envoy::Envoy;
use procfs::LinearMemory;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use variants::{Expect, Modules, Variant};

/// Errors are messages for whoever runs the bench.
pub type Result<T> = std::result::Result<T, String>;

/// What to measure and where to write it.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where `RESULTS.md` and `results.svg` go.
    pub out: PathBuf,
    /// `out` is a temp dir removed when the run ends (`--smoke`): say so
    /// instead of naming files that will be gone.
    pub out_is_temporary: bool,
    pub modules: Modules,
    /// The variants, in round order.
    pub variants: Vec<&'static Variant>,
    pub rounds: u32,
    /// Seconds of measured load per run.
    pub seconds: u32,
    /// Seconds of load before measuring, per run.
    pub warmup_seconds: u32,
    /// wrk's connections.
    pub connections: u32,
    /// CPU for Envoy and for wrk (`None`: not pinned).
    pub envoy_cpu: Option<usize>,
    pub wrk_cpu: Option<usize>,
    /// Also start the root `envoy.yaml` with all plugins each round.
    pub all_plugins: bool,
    /// Seconds per phase of the Redis limiter on the test host (0: skip it).
    pub limiter_seconds: f64,
    /// The command line, for the report.
    pub command: String,
}

impl Options {
    /// The full bench with its defaults.
    pub fn new(out: PathBuf, modules: Modules) -> Options {
        let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        Options {
            out,
            out_is_temporary: false,
            modules,
            variants: variants::ALL.iter().collect(),
            rounds: 3,
            seconds: 10,
            warmup_seconds: 2,
            connections: 16,
            // Envoy on one core and wrk on another, when there are two.
            envoy_cpu: two_cpus.then_some(0),
            wrk_cpu: two_cpus.then_some(1),
            all_plugins: true,
            limiter_seconds: 5.0,
            command: "cargo xtask bench".to_string(),
        }
    }

    /// One short round of two variants (no Redis, no all-plugins start):
    /// proves the machinery works, in seconds.
    pub fn smoke(out: PathBuf, modules: Modules) -> Options {
        Options {
            variants: ["none", "mock"].iter().filter_map(|id| variants::by_id(id)).collect(),
            rounds: 1,
            seconds: 1,
            warmup_seconds: 1,
            all_plugins: false,
            limiter_seconds: 0.0,
            command: "cargo xtask bench --smoke".to_string(),
            ..Options::new(out, modules)
        }
    }
}

/// One run of one variant.
#[derive(Clone, Debug)]
pub struct Run {
    pub round: u32,
    pub ready: Duration,
    pub load: wrk::Load,
    /// Envoy's RSS after the warm-up load, KiB.
    pub rss_kib: u64,
    /// Linear memory of each Wasm VM after the measured load.
    pub memories: Vec<LinearMemory>,
    /// CPU used by everything else on the machine during the measured load,
    /// in cores (busy time of all CPUs minus Envoy's, wrk's and ours).
    pub foreign_cores: f64,
    /// Envoy's CPU time (user + system) per request during the measured
    /// load, microseconds: what a request costs, much less disturbed by
    /// other work on the machine than requests per second.
    pub cpu_us_per_request: f64,
}

/// A start of the root `envoy.yaml` with every plugin Envoy can load.
#[derive(Clone, Debug)]
pub struct AllPluginsStart {
    pub round: u32,
    pub ready: Duration,
    pub rss_kib: u64,
    pub memories: Vec<LinearMemory>,
}

/// Everything measured.
#[derive(Clone, Debug)]
pub struct Results {
    pub options: Options,
    pub runs: Vec<(&'static Variant, Vec<Run>)>,
    pub all_plugins: Vec<AllPluginsStart>,
    /// The same start with every plugin's native build (`.so`).
    pub all_native_plugins: Vec<AllPluginsStart>,
    /// Filters of `envoy.yaml` left out of the all-plugins start, and why.
    pub all_plugins_removed: Vec<String>,
    /// The modules of the all-plugins start and their sizes in bytes.
    pub all_plugins_modules: Vec<(String, u64)>,
    pub limiter: Option<Result<Vec<limiter::Phase>>>,
    /// Wasm instructions and host calls per request of each module variant.
    pub work: Vec<(&'static Variant, Result<work::Work>)>,
    pub machine: report::Machine,
    pub elapsed: Duration,
}

/// Measures, then writes `RESULTS.md` and `results.svg` into `options.out`.
pub fn run(options: &Options) -> Result<Results> {
    let started = Instant::now();
    let mut machine = report::Machine::now();
    let chosen = options.variants.clone();
    REPEATS_LEFT.store(options.rounds.saturating_mul(chosen.len() as u32) / 3, Ordering::Relaxed);
    if options.rounds == 0 || chosen.is_empty() {
        return Err("nothing to measure: give at least one round and one variant".to_string());
    }
    let all_native_config = if options.all_plugins { Some(all_plugins_config(e2e::Build::Native)?) } else { None };
    let all_plugins_config = if options.all_plugins { Some(all_plugins_config(e2e::Build::Wasm)?) } else { None };
    if let Some((config, _)) = &all_plugins_config {
        eprintln!("bench: warm-up start with all plugins");
        drop(Envoy::start(config, options.envoy_cpu)?);
    }
    let work: Vec<(&'static Variant, Result<work::Work>)> = chosen
        .iter()
        .filter_map(|v| {
            let module = v.module(&options.modules)?;
            // Instructions are counted in Wasm modules only; a `.so` runs as machine code.
            if module.extension().is_some_and(|e| e == "so") {
                return None;
            }
            Some((*v, work::measure(&module, v.plugin_config().unwrap_or_default().as_bytes())))
        })
        .collect();
    let mut runs: Vec<(&'static Variant, Vec<Run>)> = chosen.iter().map(|v| (*v, Vec::new())).collect();
    let mut all_plugins = Vec::new();
    let mut all_native_plugins = Vec::new();
    for round in 0..options.rounds {
        let offset = round as usize % chosen.len();
        for i in 0..chosen.len() {
            let at = (offset + i) % chosen.len();
            let Some((variant, samples)) = runs.get_mut(at) else { continue };
            eprintln!("bench: round {}/{} {}", round + 1, options.rounds, variant.id);
            samples.push(run_variant(variant, options, round)?);
        }
        if let Some((config, _)) = &all_plugins_config {
            eprintln!("bench: round {}/{} all plugins (start only)", round + 1, options.rounds);
            let envoy = Envoy::start(config, options.envoy_cpu)?;
            std::thread::sleep(Duration::from_millis(500));
            all_plugins.push(AllPluginsStart {
                round,
                ready: envoy.ready_after,
                rss_kib: envoy.rss_kib()?,
                memories: envoy.wasm_memories()?,
            });
        }
        if let Some((config, _)) = &all_native_config {
            eprintln!("bench: round {}/{} all plugins, native builds (start only)", round + 1, options.rounds);
            let envoy = Envoy::start(config, options.envoy_cpu)?;
            std::thread::sleep(Duration::from_millis(500));
            all_native_plugins.push(AllPluginsStart {
                round,
                ready: envoy.ready_after,
                rss_kib: envoy.rss_kib()?,
                memories: Vec::new(),
            });
        }
    }
    let limiter = (options.limiter_seconds > 0.0).then(|| {
        eprintln!("bench: redis-rate-limit on the test host");
        limiter::run(&options.modules.dist.join("redis-rate-limit.wasm"), options.limiter_seconds)
    });
    machine.finish();
    let results = Results {
        options: options.clone(),
        runs,
        all_plugins,
        all_native_plugins,
        all_plugins_modules: all_plugins_config.as_ref().map(|(config, _)| wasm_modules(config)).unwrap_or_default(),
        all_plugins_removed: all_plugins_config.map(|(_, removed)| removed).unwrap_or_default(),
        limiter,
        work,
        machine,
        elapsed: started.elapsed(),
    };
    std::fs::create_dir_all(&options.out).map_err(|err| format!("creating {}: {err}", options.out.display()))?;
    let chart_path = options.out.join("results.svg");
    chart::draw(&results, &chart_path)?;
    let md_path = options.out.join("RESULTS.md");
    std::fs::write(&md_path, report::markdown(&results))
        .map_err(|err| format!("writing {}: {err}", md_path.display()))?;
    if options.out_is_temporary {
        eprintln!(
            "bench: done in {:.0?} (RESULTS.md and results.svg went to a temp dir, removed at exit)",
            started.elapsed()
        );
    } else {
        eprintln!("bench: wrote {} and {} in {:.0?}", md_path.display(), chart_path.display(), started.elapsed());
    }
    Ok(results)
}

fn run_variant(variant: &Variant, options: &Options, round: u32) -> Result<Run> {
    // The token service needs a known port (its cluster names it); a port
    // taken in between makes Envoy fail to start, so try a few.
    let mut last = String::new();
    for _ in 0..3 {
        let token_port = e2e::process::free_port().map_err(|err| err.to_string())?;
        let config = variant.envoy_config(&options.modules, token_port)?;
        match Envoy::start(&config, options.envoy_cpu) {
            Ok(envoy) => return measure(variant, options, round, &envoy),
            Err(err) => last = err,
        }
    }
    Err(format!("{}: {last}", variant.id))
}

fn measure(variant: &Variant, options: &Options, round: u32, envoy: &Envoy) -> Result<Run> {
    let port = envoy.port("bench")?;
    verify(variant, envoy, port)?;
    let url = format!("http://127.0.0.1:{port}/");
    if options.warmup_seconds > 0 {
        wrk::run(options.wrk_cpu, &url, options.connections, options.warmup_seconds)?;
    }
    let rss_kib = envoy.rss_kib()?;
    // A measured load during which other processes took CPU is repeated (at
    // most twice, within the bench's budget), and the least disturbed one kept.
    let mut best: Option<(wrk::Load, f64, f64)> = None;
    for attempt in 0..=MAX_REPEATS {
        let (load, foreign_cores, cpu_us_per_request) = measured_load(variant, options, envoy, &url)?;
        if best.as_ref().is_none_or(|(_, foreign, _)| foreign_cores < *foreign) {
            best = Some((load, foreign_cores, cpu_us_per_request));
        }
        let quiet = foreign_cores <= REPEAT_ABOVE_FOREIGN_CORES;
        // Takes one repeat from the budget only when one is wanted.
        if quiet
            || attempt == MAX_REPEATS
            || REPEATS_LEFT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err()
        {
            break;
        }
        eprintln!("bench:   other processes used {foreign_cores:.2} cores: measuring {} again", variant.id);
    }
    let Some((load, foreign_cores, cpu_us_per_request)) = best else {
        return Err(format!("{}: no measurement", variant.id));
    };
    let memories = envoy.wasm_memories()?;
    Ok(Run { round, ready: envoy.ready_after, load, rss_kib, memories, foreign_cores, cpu_us_per_request })
}

/// Measured loads repeated at most this many times when disturbed...
const MAX_REPEATS: u32 = 2;
/// ...and in all at most once per three runs, which keeps the bench within its
/// time on a machine that stays busy.
static REPEATS_LEFT: AtomicU32 = AtomicU32::new(0);
/// Other processes' CPU (cores) above which a measured load is repeated.
const REPEAT_ABOVE_FOREIGN_CORES: f64 = 0.2;

/// One measured wrk load: what it measured, other processes' CPU meanwhile
/// (cores), and Envoy's CPU per request (µs).
fn measured_load(variant: &Variant, options: &Options, envoy: &Envoy, url: &str) -> Result<(wrk::Load, f64, f64)> {
    let (busy, envoy_ticks, children, own) = cpu_snapshot(envoy.pid());
    let measured = Instant::now();
    let load = wrk::run(options.wrk_cpu, url, options.connections, options.seconds)?;
    let wall = measured.elapsed().as_secs_f64();
    let (busy2, envoy_ticks2, children2, own2) = cpu_snapshot(envoy.pid());
    let tick = 1.0 / procfs::clock_ticks_per_second() as f64;
    let envoy_cpu = envoy_ticks2.saturating_sub(envoy_ticks) as f64;
    let others = busy2.saturating_sub(busy) as f64
        - envoy_cpu
        - children2.saturating_sub(children) as f64
        - own2.saturating_sub(own) as f64;
    let foreign_cores = (others * tick / wall).max(0.0);
    let cpu_us_per_request = envoy_cpu * tick * 1e6 / load.requests.max(1) as f64;
    if load.errors > 0 {
        return Err(
            envoy.error(format!("{}: {} failed requests of {} under load", variant.id, load.errors, load.requests))
        );
    }
    Ok((load, foreign_cores, cpu_us_per_request))
}

fn cpu_snapshot(envoy: u32) -> (u64, u64, u64, u64) {
    (
        procfs::machine_busy_ticks(),
        procfs::process_ticks(envoy),
        procfs::children_ticks(),
        procfs::process_ticks(std::process::id()),
    )
}

/// Checks on `/verify` that the variant's filter did its job.
fn verify(variant: &Variant, envoy: &Envoy, port: u16) -> Result<()> {
    let resp = e2e::http::get(&format!("http://127.0.0.1:{port}/verify")).send().map_err(|err| err.to_string())?;
    let body = resp.text();
    let ok = resp.status == 200
        && match variant.expectation() {
            Expect::RequestHeader(name, value) => resp.header(&format!("seen-{name}")) == Some(value),
            Expect::RouteAnswer => body == "verify",
            Expect::FilterAnswer => body == "hello world",
        };
    if ok {
        Ok(())
    } else {
        Err(envoy.error(format!(
            "{} does not do its job ({:?}): /verify answered {} {:?} {body:?}",
            variant.id,
            variant.expectation(),
            resp.status,
            resp.headers
        )))
    }
}

/// The root `envoy.yaml` (every plugin upstream Envoy can load, as `build`
/// builds them), and what was left out.
fn all_plugins_config(build: e2e::Build) -> Result<(serde_json::Value, Vec<String>)> {
    let mut config = e2e::EnvoyConfig::load().map_err(|err| err.to_string())?;
    config.set_build(build);
    // Paths relative to the repository, as a reader of RESULTS.md knows them.
    let root = format!("{}/", repo_root().display());
    let removed = config.removed().iter().map(|r| format!("{} ({})", r.filter, r.reason.replace(&root, ""))).collect();
    // Its upstreams are not needed to start: httpbin's cluster points at a closed port.
    let closed = e2e::process::free_port().map_err(|err| err.to_string())?;
    let text = config.render(&e2e::Upstreams::httpbin(closed)).map_err(|err| err.to_string())?;
    let json = serde_json::from_str(&text).map_err(|err| err.to_string())?;
    Ok((json, removed))
}

/// The Wasm modules an Envoy config loads (file name, bytes).
fn wasm_modules(config: &serde_json::Value) -> Vec<(String, u64)> {
    fn walk(value: &serde_json::Value, out: &mut Vec<(String, u64)>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(file) = map.get("filename").and_then(serde_json::Value::as_str) {
                    let path = std::path::Path::new(file);
                    if let (Some(name), Ok(meta)) = (path.file_name(), std::fs::metadata(path)) {
                        out.push((name.to_string_lossy().into_owned(), meta.len()));
                    }
                }
                map.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(config, &mut out);
    out
}

/// The repository root (this crate is `<root>/bench`).
pub fn repo_root() -> PathBuf {
    e2e::paths::repo_root()
}
