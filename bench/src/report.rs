//! `RESULTS.md`: the tables, the goals, the machine, versions and commands.

use crate::procfs::{self, LinearMemory};
use crate::stats::Spread;
use crate::variants::{self, Kind, Variant};
use crate::{envoy, limiter, wrk, Results, Run};
use std::fmt::Write;
use std::process::Command;

/// The goals the results are checked against.
pub const MIN_RPS_VS_RAW: f64 = 0.97;
pub const MAX_P99_VS_RAW: f64 = 1.05;
pub const MAX_HELLO_WORLD_BYTES: u64 = 100_000;
pub const MAX_PLUGIN_BYTES: u64 = 300_000;
pub const MAX_ALL_PLUGINS_READY_S: f64 = 0.6;
/// Envoy's start with every plugin's native build.
pub const MAX_ALL_NATIVE_PLUGINS_READY_S: f64 = 0.2;
/// The native builds (`.so`) against Envoy's own filter doing the same job.
pub const MIN_NATIVE_RPS_VS_ENVOY: f64 = 0.95;
pub const MAX_NATIVE_CPU_VS_ENVOY: f64 = 1.05;
/// Other load (in cores) above which the numbers are marked preliminary.
pub const MAX_FOREIGN_CORES: f64 = 0.1;

/// The machine and the software the numbers come from.
#[derive(Clone, Debug)]
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub load_at_start: f64,
    pub load_at_end: f64,
    pub versions: Vec<(&'static str, String)>,
}

impl Machine {
    /// What can be read before measuring.
    pub fn now() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown")
            .to_string();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let versions = vec![
            ("Envoy", envoy::version()),
            ("wrk", first_line("wrk", &["-v"])),
            ("redis-server", limiter::redis_version()),
            ("rustc", first_line("rustc", &["-V"])),
            ("wasm-opt", first_line("wasm-opt", &["--version"])),
            ("proxy-wasm crate", locked_version("proxy-wasm")),
            ("plotters crate", locked_version("plotters")),
            (
                "commit",
                first_line("git", &["-C", &crate::repo_root().to_string_lossy(), "rev-parse", "--short", "HEAD"]),
            ),
        ];
        Machine {
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            nproc,
            cpu,
            kernel,
            load_at_start: procfs::load_average(),
            load_at_end: f64::NAN,
            versions,
        }
    }

    /// What is read after measuring.
    pub fn finish(&mut self) {
        self.load_at_end = procfs::load_average();
    }
}

/// The first line a command prints (some print their version on stderr).
fn first_line(program: &str, args: &[&str]) -> String {
    let Ok(output) = Command::new(program).args(args).output() else { return "not found".to_string() };
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let line = text.lines().next().unwrap_or_default().trim();
    // `wrk -v` exits 1 after printing its version.
    if line.is_empty() || (!output.status.success() && program != "wrk") {
        return "unknown".to_string();
    }
    line.to_string()
}

/// The version of `package` in the workspace's `Cargo.lock`.
fn locked_version(package: &str) -> String {
    let lock = std::fs::read_to_string(crate::repo_root().join("Cargo.lock")).unwrap_or_default();
    let needle = format!("name = \"{package}\"\nversion = \"");
    lock.split(&needle)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map_or_else(|| "unknown".to_string(), str::to_string)
}

impl Results {
    /// The runs of variant `id`.
    pub fn runs_of(&self, id: &str) -> Option<&[Run]> {
        self.runs.iter().find(|(v, _)| v.id == id).map(|(_, runs)| runs.as_slice())
    }

    /// Median and range of `f` over the runs of `id`.
    pub fn spread(&self, id: &str, f: impl Fn(&Run) -> f64) -> Option<Spread> {
        Spread::of(self.runs_of(id)?.iter().map(f))
    }

    /// `f(id) / f(reference)` within each round, over the rounds.
    pub fn ratio(&self, id: &str, reference: &str, f: impl Fn(&Run) -> f64) -> Option<Spread> {
        let (runs, refs) = (self.runs_of(id)?, self.runs_of(reference)?);
        let ratios = runs.iter().filter_map(|run| {
            let other = refs.iter().find(|r| r.round == run.round)?;
            Some(f(run) / f(other))
        });
        Spread::of(ratios)
    }

    /// The largest linear memory of any VM of `id`, over all its runs.
    pub fn largest_memory(&self, id: &str) -> Option<LinearMemory> {
        self.runs_of(id)?.iter().flat_map(|r| r.memories.iter().copied()).max_by_key(|m| (m.size_kib, m.rss_kib))
    }

    /// Size in bytes of the module a variant loads.
    pub fn module_bytes(&self, variant: &Variant) -> Option<u64> {
        let path = variant.module(&self.options.modules)?;
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    /// The counted work per request of variant `id`.
    pub fn work_of(&self, id: &str) -> Option<&crate::work::Work> {
        self.work.iter().find(|(v, _)| v.id == id).and_then(|(_, w)| w.as_ref().ok())
    }

    /// What a variant does per request beyond its raw module, said in a line.
    pub fn extra_work(&self, variant: &Variant) -> Option<String> {
        let (mine, raw) = (self.work_of(variant.id)?, self.work_of(variant.job.raw())?);
        let mut deltas: Vec<(String, i64)> = mine
            .by_callback
            .iter()
            .map(|(name, fuel)| (name.clone(), *fuel as i64 - raw.by_callback.get(name).copied().unwrap_or(0) as i64))
            .filter(|(_, d)| *d > 0)
            .collect();
        deltas.sort_by_key(|(_, d)| -d);
        let mut calls: Vec<String> = mine
            .host_calls
            .iter()
            .filter_map(|(name, n)| {
                let extra = *n as i64 - raw.host_calls.get(name).copied().unwrap_or(0) as i64;
                (extra != 0 && !name.starts_with("(vm)")).then(|| format!("{extra:+} `{name}`"))
            })
            .collect();
        if calls.is_empty() {
            calls.push("none".to_string());
        }
        let top: Vec<String> = deltas.iter().take(3).map(|(name, d)| format!("{d:+} in `{name}`")).collect();
        Some(format!(
            "{} Wasm instructions per request vs {} ({:+}: {}); host calls beyond the raw module's: {}",
            mine.fuel,
            raw.fuel,
            mine.fuel as i64 - raw.fuel as i64,
            top.join(", "),
            calls.join(", ")
        ))
    }

    /// Variants in table order: by job, then native, raw, plugins.
    pub fn ordered(&self) -> Vec<&'static Variant> {
        let mut all: Vec<&'static Variant> = self.runs.iter().map(|(v, _)| *v).collect();
        all.sort_by_key(|v| (v.job, kind_order(v.kind), variants::ALL.iter().position(|a| a.id == v.id)));
        all
    }

    /// Median and worst other load on the machine during measured runs, in cores.
    pub fn foreign_load(&self) -> Option<Spread> {
        Spread::of(self.runs.iter().flat_map(|(_, runs)| runs.iter().map(|r| r.foreign_cores)))
    }

    /// Whether other work on the machine may have disturbed the numbers:
    /// other processes used CPU during the measured loads. (The load average
    /// at the start is shown but not used: it includes the build that
    /// `cargo xtask bench` runs just before.)
    pub fn preliminary(&self) -> bool {
        self.foreign_load().is_some_and(|f| f.median > MAX_FOREIGN_CORES || f.max > 3.0 * MAX_FOREIGN_CORES)
    }

    /// How `f` (a median per variant) grows with the module over the
    /// variant with no filter: a least-squares line through
    /// (module KB, f(variant) − f(none)) over the module variants, as
    /// (per module, per KB). `None` without `none` or two module sizes.
    pub fn module_fit(&self, f: fn(&Run) -> f64) -> Option<(f64, f64)> {
        linear_fit(&self.module_points(f)?)
    }

    /// Like [`Results::module_fit`], through the origin: `f` per KB of module.
    pub fn module_slope(&self, f: fn(&Run) -> f64) -> Option<f64> {
        let points = self.module_points(f)?;
        let sxx: f64 = points.iter().map(|(x, _)| x * x).sum();
        let sxy: f64 = points.iter().map(|(x, y)| x * y).sum();
        (sxx > 0.0).then(|| sxy / sxx)
    }

    fn module_points(&self, f: fn(&Run) -> f64) -> Option<Vec<(f64, f64)>> {
        let none = self.spread("none", f)?.median;
        Some(
            self.runs
                .iter()
                .filter_map(|(v, _)| Some((self.module_bytes(v)? as f64 / 1e3, self.spread(v.id, f)?.median - none)))
                .collect(),
        )
    }
}

/// Least squares `y = a + b x`; `None` for fewer than two distinct `x`.
fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    if points.len() < 2 || sxx < 1e-9 {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

fn kind_order(kind: Kind) -> u8 {
    match kind {
        Kind::Native => 0,
        Kind::Raw => 1,
        Kind::Plugin => 2,
    }
}

fn rps(run: &Run) -> f64 {
    run.load.rps
}
fn p50_ms(run: &Run) -> f64 {
    run.load.p50_us / 1000.0
}
fn p99_ms(run: &Run) -> f64 {
    run.load.p99_us / 1000.0
}
fn ready_s(run: &Run) -> f64 {
    run.ready.as_secs_f64()
}
fn rss_mib(run: &Run) -> f64 {
    run.rss_kib as f64 / 1024.0
}
fn cpu_us(run: &Run) -> f64 {
    run.cpu_us_per_request
}

fn with_range(s: Option<Spread>, decimals: usize) -> String {
    match s {
        Some(s) if s.min == s.max => format!("{:.*}", decimals, s.median),
        Some(s) => format!("{:.*} ({:.*}–{:.*})", decimals, s.median, decimals, s.min, decimals, s.max),
        None => "–".to_string(),
    }
}

fn ratio_cell(s: Option<Spread>) -> String {
    ratio_with(s, 2)
}

/// A ratio with `digits` decimals, so a goal missed by a hair does not read as met.
fn ratio_with(s: Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) if s.min == s.max => format!("{:.digits$}×", s.median),
        Some(s) => format!("{:.digits$}× ({:.digits$}–{:.digits$})", s.median, s.min, s.max),
        None => "–".to_string(),
    }
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

/// One checked goal.
pub struct Goal {
    pub goal: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
    /// Where the gap comes from, when the goal is missed.
    pub why: String,
}

/// The goals, checked against the results.
pub fn goals(results: &Results) -> Vec<Goal> {
    let mut goals = Vec::new();
    for variant in results.ordered().into_iter().filter(|v| v.kind == Kind::Plugin) {
        let raw = variant.job.raw();
        let measured_raw = results.runs_of(raw).is_some();
        let rps = results.ratio(variant.id, raw, rps);
        let p99 = results.ratio(variant.id, raw, p99_ms);
        let cpu = results.ratio(variant.id, raw, cpu_us);
        goals.push(Goal {
            goal: format!("{}: RPS ≥ {MIN_RPS_VS_RAW}× and p99 ≤ {MAX_P99_VS_RAW}× `{raw}`", variant.label),
            measured: format!(
                "RPS {}, p99 {} (Envoy CPU per request {})",
                ratio_with(rps, 3),
                ratio_with(p99, 3),
                ratio_with(cpu, 3)
            ),
            met: match (measured_raw, rps, p99) {
                (true, Some(rps), Some(p99)) => Some(rps.median >= MIN_RPS_VS_RAW && p99.median <= MAX_P99_VS_RAW),
                _ => None,
            },
            why: {
                let cpu = match cpu {
                    Some(cpu) if cpu.median <= 1.0 + (1.0 - MIN_RPS_VS_RAW) => format!(
                        "Envoy spends {:.2}× the raw module's CPU per request, within the goal: the gap is mostly \
                         the run's noise (see the spread).",
                        cpu.median
                    ),
                    Some(cpu) => format!("Envoy spends {:.2}× the raw module's CPU per request.", cpu.median),
                    None => String::new(),
                };
                let work = results.extra_work(variant).map(|w| format!(" The plugin runs {w}.")).unwrap_or_default();
                let lighter = match (results.work_of(variant.id), results.work_of(raw)) {
                    (Some(mine), Some(theirs)) if mine.fuel <= theirs.fuel => {
                        " Its Wasm work is no more than the raw module's, so there is no SDK work left to remove \
                         here: what remains is the host calls listed and the run's noise (see the spread)."
                    }
                    _ => "",
                };
                format!("{cpu}{work}{lighter}")
            },
        });
        let (mine, theirs) = (results.largest_memory(variant.id), results.largest_memory(raw));
        goals.push(Goal {
            goal: format!("{}: linear memory per VM ≤ `{raw}`'s", variant.label),
            measured: match (mine, theirs) {
                (Some(m), Some(r)) => format!(
                    "{} KiB ({} pages) vs {} KiB ({} pages); resident {} vs {} KiB",
                    m.size_kib,
                    m.pages(),
                    r.size_kib,
                    r.pages(),
                    m.rss_kib,
                    r.rss_kib
                ),
                _ => "–".to_string(),
            },
            met: match (mine, theirs) {
                (Some(m), Some(r)) => Some(m.size_kib <= r.size_kib),
                _ => None,
            },
            why: "the module's data, stack and heap need more 64 KiB pages".to_string(),
        });
    }
    goals.extend(native_goals(results));
    let dist = &results.options.modules.dist;
    let hello = std::fs::metadata(dist.join("hello-world.wasm")).ok().map(|m| m.len());
    goals.push(Goal {
        goal: format!("hello-world.wasm ≤ {}", kb(MAX_HELLO_WORLD_BYTES)),
        measured: hello.map_or("–".to_string(), |b| format!("{} ({b} bytes)", kb(b))),
        met: hello.map(|b| b <= MAX_HELLO_WORLD_BYTES),
        why: String::new(),
    });
    let sizes = dist_sizes(dist);
    let largest = sizes.iter().max_by_key(|(_, b)| *b);
    goals.push(Goal {
        goal: format!("every plugin ≤ {}", kb(MAX_PLUGIN_BYTES)),
        measured: largest.map_or("–".to_string(), |(name, b)| format!("largest: {name} {}", kb(*b))),
        met: largest.map(|(_, b)| *b <= MAX_PLUGIN_BYTES),
        why: String::new(),
    });
    let ready = Spread::of(results.all_plugins.iter().map(|s| s.ready.as_secs_f64()));
    goals.push(Goal {
        goal: format!("Envoy ready with all plugins ≤ {MAX_ALL_PLUGINS_READY_S} s"),
        measured: ready.map_or("–".to_string(), |r| format!("{} s", with_range(Some(r), 3))),
        met: ready.map(|r| r.median <= MAX_ALL_PLUGINS_READY_S),
        why: match results.module_slope(ready_s) {
            Some(per_kb) => format!(
                "start grows with the modules' code, about {:.1} ms per KB of module (see *Start time and memory \
                 against module size*)",
                per_kb * 1e3
            ),
            None => String::new(),
        },
    });
    let native_ready = Spread::of(results.all_native_plugins.iter().map(|s| s.ready.as_secs_f64()));
    if native_ready.is_some() {
        goals.push(Goal {
            goal: format!("Envoy ready with all native plugins ≤ {MAX_ALL_NATIVE_PLUGINS_READY_S} s"),
            measured: native_ready.map_or("–".to_string(), |r| format!("{} s", with_range(Some(r), 3))),
            met: native_ready.map(|r| r.median <= MAX_ALL_NATIVE_PLUGINS_READY_S),
            why: String::new(),
        });
    }
    let limiter = match &results.limiter {
        Some(Ok(phases)) => phases,
        _ => &Vec::new(),
    };
    goals.push(Goal {
        goal: "redis-rate-limit: exactly one Redis round trip per request".to_string(),
        measured: if limiter.is_empty() {
            "–".to_string()
        } else {
            limiter
                .iter()
                .map(|p| {
                    format!(
                        "{}: {:.3} calls, {:.3} commands over the wire",
                        p.name,
                        p.redis_calls_per_request,
                        p.round_trips_per_request()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        met: (!limiter.is_empty()).then(|| {
            limiter.iter().all(|p| p.redis_calls_per_request == 1.0 && (p.round_trips_per_request() - 1.0).abs() < 0.01)
        }),
        why: "see the commands per request in *redis-rate-limit on the test host*".to_string(),
    });
    goals
}

/// The native builds against Envoy's own filter for their job: RPS at least
/// [`MIN_NATIVE_RPS_VS_ENVOY`]×; for the header plugins also Envoy CPU per
/// request at most [`MAX_NATIVE_CPU_VS_ENVOY`]×.
fn native_goals(results: &Results) -> Vec<Goal> {
    let mut goals = Vec::new();
    let natives = results.ordered().into_iter().filter(|v| v.kind == Kind::Plugin && v.id.ends_with("-native"));
    for variant in natives.filter(|v| matches!(v.job, variants::Job::AddHeader | variants::Job::Token)) {
        let envoy = variant.job.native();
        let rps = results.ratio(variant.id, envoy, rps);
        let cpu = results.ratio(variant.id, envoy, cpu_us);
        let checks_cpu = variant.job == variants::Job::AddHeader;
        let goal = if checks_cpu {
            format!(
                "{}: RPS ≥ {MIN_NATIVE_RPS_VS_ENVOY}× and Envoy CPU per request ≤ {MAX_NATIVE_CPU_VS_ENVOY}× `{envoy}`",
                variant.label
            )
        } else {
            format!("{}: RPS ≥ {MIN_NATIVE_RPS_VS_ENVOY}× `{envoy}`", variant.label)
        };
        goals.push(Goal {
            goal,
            measured: format!("RPS {}, Envoy CPU per request {}", ratio_with(rps, 3), ratio_with(cpu, 3)),
            met: match (rps, cpu) {
                (Some(rps), Some(cpu)) if checks_cpu => {
                    Some(rps.median >= MIN_NATIVE_RPS_VS_ENVOY && cpu.median <= MAX_NATIVE_CPU_VS_ENVOY)
                }
                (Some(rps), _) if !checks_cpu => Some(rps.median >= MIN_NATIVE_RPS_VS_ENVOY),
                _ => None,
            },
            why: "the SDK's per-request work (rules, the Request object, log level checks) on top of the filter's \
                  job, and the run's noise (see the spread)"
                .to_string(),
        });
    }
    goals
}

/// `dist/*.wasm` and their sizes, by name.
fn dist_sizes(dist: &std::path::Path) -> Vec<(String, u64)> {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dist)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let len = e.metadata().ok()?.len();
                    name.ends_with(".wasm").then_some((name, len))
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// The whole `RESULTS.md`.
pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let o = &results.options;
    let m = &results.machine;
    let _ = writeln!(md, "# Benchmark: our plugins against native Envoy filters and raw proxy-wasm modules\n");
    let _ = writeln!(
        md,
        "Written by `{}` on {} ({} rounds, {} s measured + {} s warm-up per run, {:.0} s in all). \
         Regenerate it with `cargo xtask bench` (see the README).\n",
        o.command,
        m.date,
        o.rounds,
        o.seconds,
        o.warmup_seconds,
        results.elapsed.as_secs_f64()
    );
    if results.preliminary() {
        let _ = writeln!(
            md,
            "> **Preliminary numbers.** The machine was not quiet: other processes used {} cores (median, \
             min–max) during the measured loads ({MAX_FOREIGN_CORES} or less wanted). Ratios within a round and \
             Envoy's CPU per request hold better than absolute numbers; rerun on a quiet machine to trust \
             differences of a few percent.\n",
            with_range(results.foreign_load(), 2)
        );
    }

    let _ = writeln!(md, "## Goals\n");
    let _ = writeln!(
        md,
        "| goal | measured (median of per-round ratios, min–max) | | cause of the gap |\n|---|---|---|---|"
    );
    for goal in goals(results) {
        let why = if goal.met == Some(false) { goal.why.as_str() } else { "" };
        let _ = writeln!(md, "| {} | {} | {} | {why} |", goal.goal, goal.measured, mark(goal.met));
    }
    md.push('\n');

    let _ = writeln!(md, "## Throughput and latency\n");
    let _ = writeln!(
        md,
        "RPS and latency from wrk; the ratios are taken within each round (variant ÷ reference of the same round), \
         then their median and range over the rounds. *native* and *raw* are the native Envoy filter and the raw \
         proxy-wasm module doing the same job. *Envoy CPU µs/request* is Envoy's CPU time (user + system, from \
         `/proc/PID/stat`) during the measured load divided by the requests: what a request costs, much less \
         disturbed by other work on the machine than RPS.\n"
    );
    let _ = writeln!(
        md,
        "| variant | job | RPS | × no filter | × native | × raw | p50 ms | p99 ms | p99 × raw | Envoy CPU µs/request | CPU × raw |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for v in results.ordered() {
        let vs = |reference: &str| {
            if reference == v.id || results.runs_of(reference).is_none() {
                "–".to_string()
            } else {
                ratio_cell(results.ratio(v.id, reference, rps))
            }
        };
        let vs_raw = |f: fn(&Run) -> f64| {
            if v.job.raw() == v.id || results.runs_of(v.job.raw()).is_none() {
                "–".to_string()
            } else {
                ratio_cell(results.ratio(v.id, v.job.raw(), f))
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label(v),
            v.job.label(),
            with_range(results.spread(v.id, rps), 0),
            vs("none"),
            vs(v.job.native()),
            vs(v.job.raw()),
            with_range(results.spread(v.id, p50_ms), 3),
            with_range(results.spread(v.id, p99_ms), 3),
            vs_raw(p99_ms),
            with_range(results.spread(v.id, cpu_us), 1),
            vs_raw(cpu_us),
        );
    }
    md.push('\n');

    work_section(&mut md, results);

    let _ = writeln!(md, "## Memory, start time, size\n");
    let _ = writeln!(
        md,
        "Envoy's RSS after the warm-up load; the linear memory of its Wasm VMs after the measured load \
         (the largest VM: its size as the module sees it, and the part resident), and how many VMs; time \
         from starting Envoy to its admin `/ready` answering 200; the module file.\n"
    );
    let _ = writeln!(
        md,
        "| variant | Envoy RSS MiB | Wasm VMs | linear memory per VM | ready s | module |\n|---|---|---|---|---|---|"
    );
    for v in results.ordered() {
        let vms = results.runs_of(v.id).and_then(|runs| runs.iter().map(|r| r.memories.len()).max()).unwrap_or(0);
        let memory = match results.largest_memory(v.id) {
            Some(lm) => format!("{} KiB ({} pages), {} KiB resident", lm.size_kib, lm.pages(), lm.rss_kib),
            None => "–".to_string(),
        };
        let module = results.module_bytes(v).map_or("–".to_string(), |b| format!("{} ({b} B)", kb(b)));
        let _ = writeln!(
            md,
            "| {} | {} | {vms} | {memory} | {} | {module} |",
            label(v),
            with_range(results.spread(v.id, rss_mib), 1),
            with_range(results.spread(v.id, ready_s), 3),
        );
    }
    if !results.all_plugins.is_empty() {
        let starts = &results.all_plugins;
        let ready = Spread::of(starts.iter().map(|s| s.ready.as_secs_f64()));
        let rss = Spread::of(starts.iter().map(|s| s.rss_kib as f64 / 1024.0));
        let vms = starts.iter().map(|s| s.memories.len()).max().unwrap_or(0);
        let largest = starts.iter().flat_map(|s| s.memories.iter().copied()).max_by_key(|m| m.size_kib);
        let memory = largest.map_or("–".to_string(), |lm| {
            format!("largest {} KiB ({} pages), {} KiB resident", lm.size_kib, lm.pages(), lm.rss_kib)
        });
        let _ = writeln!(
            md,
            "| **all plugins** (root `envoy.yaml`, 0.5 s after ready, no load) | {} | {vms} | {memory} | {} | – |",
            with_range(rss, 1),
            with_range(ready, 3)
        );
        let native = &results.all_native_plugins;
        if !native.is_empty() {
            let ready = Spread::of(native.iter().map(|s| s.ready.as_secs_f64()));
            let rss = Spread::of(native.iter().map(|s| s.rss_kib as f64 / 1024.0));
            let _ = writeln!(
                md,
                "| **all plugins .so** (root `envoy.yaml` with the native builds, 0.5 s after ready, no load) | {} | 0 | – | {} | – |",
                with_range(rss, 1),
                with_range(ready, 3)
            );
        }
        md.push('\n');
        if !results.all_plugins_removed.is_empty() {
            let _ = writeln!(
                md,
                "Left out of the all-plugins start (upstream Envoy cannot load them): {}.",
                results.all_plugins_removed.join("; ")
            );
        }
    }
    md.push('\n');
    let sizes = dist_sizes(&o.modules.dist);
    if !sizes.is_empty() {
        let list: Vec<String> = sizes.iter().map(|(n, b)| format!("`{n}` {}", kb(*b))).collect();
        let _ = writeln!(md, "Module sizes in `dist/` (after `wasm-opt -Oz`; KB = 1000 bytes): {}.\n", list.join(", "));
    }

    causes(&mut md, results);

    let _ = writeln!(md, "## redis-rate-limit on the test host\n");
    match &results.limiter {
        None => {
            let _ = writeln!(md, "Not run (`--limiter-seconds 0`).\n");
        }
        Some(Err(err)) => {
            let _ = writeln!(md, "**Failed:** {err}\n");
        }
        Some(Ok(phases)) => {
            let _ = writeln!(
                md,
                "`dist/redis-rate-limit.wasm` on `crates/testhost` (the wasmi interpreter, one VM, requests one \
                 after another) with its Redis calls forwarded to a real `redis-server` on loopback. Upstream Envoy \
                 cannot load this plugin (it imports Higress's Redis calls), so these requests per second are the \
                 test host's, not a gateway's; what carries over is the Redis work per request. *calls* are the \
                 plugin's `proxy_redis_call`s (one round trip each); *commands* are what Redis executed, from \
                 `INFO commandstats` before and after (commands run inside a Lua script count there too).\n"
            );
            let _ = writeln!(md, "| phase | status | requests | RPS (test host) | Redis calls / request | commands / request |\n|---|---|---|---|---|---|");
            for p in phases {
                let commands: Vec<String> =
                    p.commands_per_request.iter().map(|(name, n)| format!("`{name}` {n:.3}")).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} | {:.3} | {} |",
                    p.name,
                    p.status,
                    p.requests,
                    p.rps,
                    p.redis_calls_per_request,
                    commands.join(", ")
                );
            }
            md.push('\n');
        }
    }

    let _ = writeln!(md, "## Chart\n\n![RPS, p99 and RSS per variant](results.svg)\n");

    let _ = writeln!(md, "## Machine and versions\n");
    let foreign = results.foreign_load();
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date | {} |", m.date);
    let _ = writeln!(md, "| CPUs (`nproc`) | {} |", m.nproc);
    let _ = writeln!(md, "| CPU | {} |", m.cpu);
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    let _ = writeln!(md, "| load average (1 min) at start / end | {:.2} / {:.2} |", m.load_at_start, m.load_at_end);
    let _ = writeln!(
        md,
        "| other processes' CPU during measured runs | {} cores (median, min–max) |",
        with_range(foreign, 2)
    );
    for (name, version) in &m.versions {
        let _ = writeln!(md, "| {name} | {version} |");
    }
    md.push('\n');

    let _ = writeln!(md, "## How it was measured\n");
    let envoy_cpu = o.envoy_cpu.map_or("(not pinned) ".to_string(), |c| format!("taskset -c {c} "));
    let wrk_cpu = o.wrk_cpu.map_or(String::new(), |c| format!("taskset -c {c} "));
    let _ = writeln!(md, "```sh\n{}", o.command);
    let _ = writeln!(md, "# each run of each variant:");
    let _ = writeln!(md, "{envoy_cpu}envoy -c config.json {} --admin-address-path admin.txt", envoy::FLAGS.join(" "));
    let url = "http://127.0.0.1:<port>/";
    let _ = writeln!(
        md,
        "{wrk_cpu}wrk {}   # warm-up, discarded",
        wrk::args(url, o.connections, o.warmup_seconds).join(" ")
    );
    let _ = writeln!(md, "{wrk_cpu}wrk {}   # measured\n```\n", wrk::args(url, o.connections, o.seconds).join(" "));
    let _ = writeln!(md, "{}", METHOD);
    md
}

/// Wasm instructions and host calls per request, counted.
fn work_section(md: &mut String, results: &Results) {
    if results.work.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Wasm work per request, counted\n");
    let _ = writeln!(
        md,
        "Exact counts, not timings: each module on a minimal host in the wasmi interpreter with fuel metering \
         (about one unit per Wasm instruction), the bench's request taken through every callback as on Envoy, \
         the 50th request counted (`bench/src/work.rs`). *Host calls* are the module's calls into the host \
         (Envoy's C++: each one crosses from V8 and back); `(vm) proxy_on_memory_allocate` counts the host's calls \
         into the module's allocator to hand a value back. On Envoy's V8 (TurboFan) an instruction here costs \
         very roughly 0.3 ns (what the CPU per request above and these counts give together), so 3000 \
         instructions are about 1 µs of Envoy CPU per request.\n"
    );
    let _ = writeln!(
        md,
        "| variant | instructions / request | × raw | by callback | host calls / request |\n|---|---|---|---|---|"
    );
    for v in results.ordered() {
        let Some((_, work)) = results.work.iter().find(|(w, _)| w.id == v.id) else { continue };
        match work {
            Ok(w) => {
                let raw = results.work_of(v.job.raw()).filter(|_| v.job.raw() != v.id);
                let ratio = raw.map_or("–".to_string(), |r| format!("{:.2}×", w.fuel as f64 / r.fuel as f64));
                let callbacks: Vec<String> = w
                    .by_callback
                    .iter()
                    .map(|(name, fuel)| format!("{} {fuel}", name.trim_start_matches("proxy_on_")))
                    .collect();
                let calls: Vec<String> = w.host_calls.iter().map(|(name, n)| format!("{n} `{name}`")).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {ratio} | {} | {} |",
                    label(v),
                    w.fuel,
                    callbacks.join(", "),
                    calls.join(", ")
                );
            }
            Err(err) => {
                let _ = writeln!(md, "| {} | failed: {err} | | | |", label(v));
            }
        }
    }
    md.push('\n');
}

/// How start time and memory follow module size, and what that means for
/// the all-plugins start.
fn causes(md: &mut String, results: &Results) {
    let _ = writeln!(md, "## Start time and memory against module size\n");
    let (Some(start_per_kb), Some(none)) = (results.module_slope(ready_s), results.spread("none", ready_s)) else {
        let _ = writeln!(md, "Not enough variants measured (needs `none` and module variants).\n");
        return;
    };
    let _ = writeln!(
        md,
        "Over the single-module variants, Envoy's start grows by **{:.2} ms per KB of module** (least squares \
         through the origin of start − start with no filter against module size). Envoy's V8 compiles every \
         function of a module with TurboFan before the first request (proxy-wasm-cpp-host turns V8's baseline \
         compiler, Liftoff, off), so start-up grows with the code in the module, whatever that code does.",
        start_per_kb * 1e3
    );
    if let Some((rss_fixed, rss_per_kb)) = results.module_fit(rss_mib) {
        let _ = writeln!(
            md,
            "Envoy's RSS grows by about {:.1} MiB per module plus {:.0} KiB per KB of module (a least-squares \
             line: V8 state for the module's VMs, and its compiled code).",
            rss_fixed.max(0.0),
            rss_per_kb * 1024.0
        );
    }
    let modules = &results.all_plugins_modules;
    if !modules.is_empty() {
        let total: u64 = modules.iter().map(|(_, b)| *b).sum();
        let names: Vec<String> = modules.iter().map(|(n, b)| format!("`{n}` {}", kb(*b))).collect();
        let predicted = none.median + start_per_kb * total as f64 / 1e3;
        let budget_kb = (MAX_ALL_PLUGINS_READY_S - none.median) / start_per_kb;
        let _ = writeln!(
            md,
            "\nThe all-plugins start loads {} = {}: that slope predicts {predicted:.3} s, measured {} s. For \
             {MAX_ALL_PLUGINS_READY_S} s the modules of that start may total about {budget_kb:.0} KB.",
            names.join(", "),
            kb(total),
            with_range(Spread::of(results.all_plugins.iter().map(|s| s.ready.as_secs_f64())), 3),
        );
    }
    md.push('\n');
}

fn label(v: &Variant) -> String {
    match v.kind {
        Kind::Native => format!("{} *(native)*", v.label),
        Kind::Raw => format!("{} *(raw)*", v.label),
        Kind::Plugin => format!("**{}**", v.label),
    }
}

const METHOD: &str = "\
* **Variants.** Every variant is the same Envoy bootstrap (`bench/src/variants.rs`): listener `bench` whose \
route `/` answers with a `direct_response` `200 hello world` (the upstream costs nothing), a route `/verify` that \
copies the request headers `hello` and `x-token` into response headers, and a `token` listener answering \
`200` with `x-token: demo-token` (the token service, cluster `outbound|80||token.dns`, on the same Envoy). Only \
the HTTP filter before the router differs. Jobs: *add a request header* (`header_mutation`, `raw-add-header`, \
mock with `mockEnable` false); *answer locally* (the route's own `direct_response`, i.e. no filter; \
`raw-local-answer`; hello-world); *add a header, answer locally* (`header_mutation`, after which the route's \
`direct_response` answers; `raw-local-answer` configured `add-header`; mock with `mockEnable` true); *HTTP call for a \
token* (`ext_authz` with an HTTP service and `allowed_upstream_headers`; `raw-http-call`; http-call). The raw \
modules (`bench/raw/*`) use only the crates.io `proxy-wasm` crate, the workspace's release profile and the same \
`wasm-opt -Oz` as `dist/`: they are the floor a Wasm plugin can reach.
* **Checks.** Before its load, each run asks `/verify` and fails unless the filter did its job (the header \
arrived, or the filter answered); a run with any non-2xx response or socket error under load fails too.
* **Order.** Each round runs every variant once, the order rotated by one per round; a warm-up start with all \
plugins comes first. Each run starts a fresh Envoy, so each round also measures the start time.
* **CPU.** Envoy (main thread and its one worker) is pinned to one core and wrk (one thread) to the other. \
*Other processes' CPU* is the machine's busy time (`/proc/stat`) minus Envoy's, wrk's and the runner's during \
the measured load: when it is not near zero, something else competed. A measured load during which other \
processes used more than 0.2 cores is repeated (at most twice, and in all at most once per three runs) and the \
least disturbed one kept.
* **Memory.** RSS is `VmRSS` of `/proc/PID/status`. Linear memory comes from `/proc/PID/smaps`: on x86-64, V8 \
reserves 8 GiB for each 32-bit Wasm memory and maps only the pages the module can use (`memory.size` × 64 KiB) \
read-write, the rest is an inaccessible guard region. So a VM's linear memory is an anonymous `rw-p` mapping \
directly followed by an anonymous `---p` mapping, the two together at least 8 GiB (nothing else in Envoy \
reserves that much: V8's pointer cage and code range are 1 GiB and 512 MiB, glibc's arenas 64 MiB); its `Size` \
is the memory as the module sees it, its `Rss` what is resident. Envoy runs each plugin in several VMs: one \
to check the configuration at load, and one per thread that handles its streams (the main thread and each \
worker), so 3 per plugin with `--concurrency 1`. The table shows the largest.
* **Start time.** From spawning Envoy to the first 200 from its admin `/ready` (polled every 5 ms).
* **Redis limiter.** See its section: the test host, not Envoy.
";

#[cfg(test)]
mod tests {
    use super::linear_fit;

    #[test]
    fn least_squares() {
        let (a, b) = linear_fit(&[(64.0, 0.13), (96.0, 0.19), (113.0, 0.235)]).unwrap();
        assert!((b - 0.00207).abs() < 1e-4 && a.abs() < 0.01, "{a} {b}");
        assert_eq!(linear_fit(&[(1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(linear_fit(&[]), None);
    }
}
