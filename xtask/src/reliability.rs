//! `cargo xtask reliability [--long] [OPTIONS]`: runs the reliability suite
//! and writes `RELIABILITY.md`, a table made of the rows the tests record.
//!
//! * The fast part (a few minutes; also part of `cargo xtask test`, as plain
//!   `cargo test`): `e2e/tests/reliability_{faults,input,security}.rs` and
//!   the brief soak of `reliability_soak.rs`, each on the `.wasm` builds and
//!   again on the `.so` builds (`E2E_BUILD=native`),
//!   `plugins/redis-rate-limit/tests/reliability.rs` and the fuzz corpus
//!   replay (`crates/fuzz-targets/tests/corpus.rs`), then `cargo deny` on both
//!   workspaces when it is installed (licences, bans, sources; advisories are
//!   reported blocked when the RustSec database cannot be fetched). Rows go
//!   to `target/reliability/rows/` (emptied first).
//! * `--long` adds (about 20 minutes with the defaults): the soak
//!   (`reliability_soak.rs`, `--soak-requests N` per plugin, default 500000,
//!   on both builds),
//!   the shared-counter run of the rate limiter (`--windows N`, default 300)
//!   and each fuzz target under libFuzzer (`cargo fuzz`, on the stable
//!   toolchain with `RUSTC_BOOTSTRAP=1` and `--sanitizer none`;
//!   `--fuzz-seconds N` per target, default 120, `plugin_requests` twice
//!   that). New corpus entries are minimised (`cargo fuzz cmin`) into
//!   `fuzz/corpus/<target>/`; a crash is copied to
//!   `fuzz/regressions/<target>/`, where `cargo test` replays it. Rows go to
//!   `target/reliability/long/` (emptied first), which a later fast run keeps.
//!
//! The table is written even when a case fails; the command then fails.

use crate::{build, setup};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The fast part: (package, test target).
const FAST: &[(&str, &str)] = &[
    ("e2e", "reliability_faults"),
    ("e2e", "reliability_input"),
    ("e2e", "reliability_security"),
    ("e2e", "reliability_soak"),
    ("redis-rate-limit", "reliability"),
    ("gateway-fuzz-targets", "corpus"),
];

/// The suites of [`FAST`] that run plugins on Envoy: run again on the `.so`
/// builds (`E2E_BUILD=native`; redis-rate-limit has no native build, and the
/// fuzz targets run on the test host).
const NATIVE: &[&str] = &["reliability_faults", "reliability_input", "reliability_security", "reliability_soak"];

/// Fuzz targets, their share of `--fuzz-seconds`, and their dictionaries.
const FUZZ: &[(&str, u64, Option<&str>)] = &[
    ("config_rules", 1, Some("dict/config_rules.dict")),
    ("resp_decode", 1, Some("dict/resp_decode.dict")),
    ("header_map", 1, None),
    ("plugin_requests", 2, None),
];

/// The order areas appear in the table.
const AREAS: &[&str] = &["fault", "bad input", "security", "load", "fuzz"];

/// Faults, bad input, security and fuzz-corpus tests, then RELIABILITY.md.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Also the soak, the shared-counter run and coverage-guided fuzzing (about 20 minutes)
    #[arg(long)]
    long: bool,
    /// Requests per plugin in the soak (--long)
    #[arg(long, value_name = "N", default_value_t = 500_000)]
    soak_requests: u64,
    /// Windows of the shared-counter run (--long)
    #[arg(long, value_name = "N", default_value_t = 300)]
    windows: u64,
    /// Seconds per fuzz target (--long)
    #[arg(long, value_name = "N", default_value_t = 120)]
    fuzz_seconds: u64,
}

pub fn run(root: &Path, options: &Options) -> Result<(), String> {
    setup::run(root)?;
    build::run(root)?;
    let rows = root.join("target/reliability/rows");
    let long_rows = root.join("target/reliability/long");
    reset(&rows)?;
    let mut failed = Vec::new();
    // Explicitly, whatever the caller's environment says: the `.wasm` run, then the `.so` run.
    let wasm = [("E2E_BUILD".to_string(), "wasm".to_string())];
    for (package, test) in FAST {
        if let Err(err) = cargo_test(root, package, test, &[], &wasm) {
            failed.push(err);
        }
    }
    let native = [("E2E_BUILD".to_string(), "native".to_string())];
    for test in NATIVE {
        if let Err(err) = cargo_test(root, "e2e", test, &[], &native) {
            failed.push(err);
        }
    }
    if let Err(err) = deny(root, &rows) {
        failed.push(err);
    }
    if options.long {
        reset(&long_rows)?;
        let long_env = [("RELIABILITY_ROWS".to_string(), long_rows.to_string_lossy().into_owned())];
        let soak = [
            long_env[0].clone(),
            ("RELIABILITY_SOAK_REQUESTS".to_string(), options.soak_requests.to_string()),
            wasm[0].clone(),
        ];
        let long_soak = ["--ignored", "--exact", "soak_each_plugin"];
        if let Err(err) = cargo_test(root, "e2e", "reliability_soak", &long_soak, &soak) {
            failed.push(err);
        }
        let native_soak = [soak[0].clone(), soak[1].clone(), native[0].clone()];
        if let Err(err) = cargo_test(root, "e2e", "reliability_soak", &long_soak, &native_soak) {
            failed.push(err);
        }
        let windows = [long_env[0].clone(), ("RELIABILITY_WINDOWS".to_string(), options.windows.to_string())];
        let only = ["--ignored", "--exact", "many_gateways_share_one_counter_exactly_long"];
        if let Err(err) = cargo_test(root, "redis-rate-limit", "reliability", &only, &windows) {
            failed.push(err);
        }
        if let Err(err) = fuzz(root, &long_rows, options.fuzz_seconds) {
            failed.push(err);
        }
        // The corpus may have grown: replay it again (into the fast rows).
        if let Err(err) = cargo_test(root, "gateway-fuzz-targets", "corpus", &[], &[]) {
            failed.push(err);
        }
    }
    let table = assemble(root, &[rows, long_rows])?;
    let out = root.join("RELIABILITY.md");
    std::fs::write(&out, table).map_err(|err| format!("cannot write {}: {err}", out.display()))?;
    eprintln!("wrote {}", out.display());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("reliability cases failed (see RELIABILITY.md):\n  {}", failed.join("\n  ")))
    }
}

fn reset(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|err| format!("cannot empty {}: {err}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))
}

fn cargo_test(root: &Path, package: &str, test: &str, extra: &[&str], env: &[(String, String)]) -> Result<(), String> {
    let mut args = vec!["test", "-p", package, "--test", test, "--"];
    args.extend(extra);
    eprintln!("$ {}cargo {}", env.iter().map(|(k, v)| format!("{k}={v} ")).collect::<String>(), args.join(" "));
    let status = Command::new("cargo")
        .args(&args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo test -p {package} --test {test} {} failed ({status})", extra.join(" ")))
    }
}

// ----- cargo deny -----

/// Licences, bans and sources of both workspaces with `cargo deny`, and the
/// advisories check, which needs the RustSec database from GitHub.
fn deny(root: &Path, rows: &Path) -> Result<(), String> {
    let installed = Command::new("cargo").args(["deny", "--version"]).output().is_ok_and(|o| o.status.success());
    if !installed {
        let seen = "not run: cargo-deny is not installed (`cargo install cargo-deny --locked`)";
        write_row(rows, "security", "cargo deny: licences, bans, sources", 0, "every check ok", seen, false, true)?;
        return Ok(());
    }
    let run = |args: &[&str]| -> Result<(bool, String), String> {
        eprintln!("$ cargo deny {}", args.join(" "));
        let output = Command::new("cargo")
            .arg("deny")
            .args(args)
            .current_dir(root)
            .output()
            .map_err(|err| format!("cannot run cargo deny: {err}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Ok((output.status.success(), text))
    };
    let mut failed = Vec::new();
    for (manifest, what) in [("Cargo.toml", "the workspace"), ("fuzz/Cargo.toml", "fuzz/ (libFuzzer)")] {
        let args = ["--manifest-path", manifest, "--all-features", "check", "--hide-inclusion-graph"];
        let (ok, text) = run(&[&args[..], &["licenses", "bans", "sources"]].concat())?;
        let summary = text.lines().rev().find(|l| l.contains(" ok") || l.contains("FAILED")).unwrap_or("").trim();
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error[")).take(5).collect();
        let duplicates = text.lines().filter(|l| l.starts_with("warning[duplicate]")).count();
        let seen = format!(
            "`{summary}`; {duplicates} crates in two versions (a warning); errors: {errors:?} (deny.toml: \
             permissive licences only, crates.io only, no wildcard versions)"
        );
        write_row(
            rows,
            "security",
            &format!("cargo deny: licences, bans, sources of {what}"),
            0,
            "every check ok",
            &seen,
            ok,
            false,
        )?;
        if !ok {
            failed.push(format!("cargo deny on {manifest}"));
        }
    }
    let (ok, text) = run(&["--all-features", "check", "advisories"])?;
    let fetch_error = text.lines().find(|l| l.contains("failed to fetch advisory database")).map(str::trim);
    let (seen, blocked) = match fetch_error {
        Some(line) if !ok => (
            format!(
                "blocked: the RustSec database is a git repository on GitHub, which this machine cannot reach (only \
                 crates.io, PyPI, Debian and npm): `{}`",
                line.chars().take(200).collect::<String>()
            ),
            true,
        ),
        _ => (text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string(), false),
    };
    write_row(rows, "security", "cargo deny: advisories (RustSec)", 0, "no known vulnerability", &seen, ok, blocked)?;
    if !ok && !blocked {
        failed.push("cargo deny check advisories".to_string());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

// ----- fuzzing -----

fn fuzz(root: &Path, rows: &Path, seconds: u64) -> Result<(), String> {
    let fuzz_dir = root.join("fuzz");
    let has_cargo_fuzz =
        Command::new("cargo").args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !has_cargo_fuzz.is_ok_and(|s| s.success()) {
        crate::sh(root, "cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    // A known bug whose reproducer still fails is bounded in the generators
    // (crates/fuzz-targets: `GATEWAY_FUZZ_SKIP`), so that the run explores the rest.
    let skip = known_bugs(&root.join("target/reliability/rows"));
    // Only fuzzing is bounded; merging is not, so that the saved corpus holds no input that
    // fails `cargo test`'s replay (libFuzzer's merge leaves crashing inputs out).
    let cargo_fuzz = |args: &[&str], log: Option<&Path>, bounded: bool| -> Result<(bool, String), String> {
        let skip = if bounded { skip.as_str() } else { "" };
        eprintln!("$ RUSTC_BOOTSTRAP=1 GATEWAY_FUZZ_SKIP={skip} cargo fuzz {}", args.join(" "));
        let mut command = Command::new("cargo");
        command.arg("fuzz").args(args).env("RUSTC_BOOTSTRAP", "1").env("GATEWAY_FUZZ_SKIP", skip);
        command.current_dir(&fuzz_dir);
        if log.is_some() {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let output = command.output().map_err(|err| format!("cannot run cargo fuzz: {err}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if let Some(log) = log {
            let _ = std::fs::write(log, &text);
        }
        Ok((output.status.success(), text))
    };
    let build = ["--sanitizer", "none", "-O", "--debug-assertions"];
    let (built, _) = cargo_fuzz(&[&["build"], &build[..]].concat(), None, false)?;
    if !built {
        return Err("cargo fuzz build failed".to_string());
    }
    let mut failed = Vec::new();
    for (target, share, dict) in FUZZ {
        let budget = seconds * share;
        let corpus = fuzz_dir.join("corpus").join(target);
        let before = count_files(&corpus);
        // New finds go to a scratch corpus, minimised into the saved one afterwards.
        let scratch = build::target_dir(root).join(format!("reliability/fuzz-new/{target}"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|err| format!("cannot create {}: {err}", scratch.display()))?;
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).map_err(|err| format!("cannot create {}: {err}", artifacts.display()))?;
        let time = format!("-max_total_time={budget}");
        let dict_arg = dict.map(|d| format!("-dict={d}"));
        let artifact_arg = format!("-artifact_prefix={}/", artifacts.display());
        let (scratch_s, corpus_s) = (scratch.to_string_lossy(), corpus.to_string_lossy());
        let mut args: Vec<&str> = vec!["run"];
        args.extend(build);
        // Fork mode goes on after a crash (each is kept as an artifact), so that one known bug
        // does not end the run before the rest of the code is explored.
        args.extend([*target, scratch_s.as_ref(), corpus_s.as_ref(), "--", &time, "-rss_limit_mb=4096"]);
        args.extend(["-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]);
        args.push(&artifact_arg);
        if let Some(d) = &dict_arg {
            args.push(d);
        }
        let log = root.join(format!("target/reliability/fuzz-{target}.log"));
        let started = Instant::now();
        let (clean, text) = cargo_fuzz(&args, Some(&log), true)?;
        let elapsed = started.elapsed().as_secs();
        // Keep the smallest few crash reproducers, for `cargo test` to replay.
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&artifacts)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.metadata().map(|m| m.len()).unwrap_or(0), e.path()))
            .collect();
        found.sort();
        let mut crashes = Vec::new();
        for (_, path) in found.iter().take(3) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let kept = fuzz_dir.join("regressions").join(target).join(&name);
            if std::fs::copy(path, &kept).is_ok() {
                crashes.push(format!("fuzz/regressions/{target}/{name}"));
            }
        }
        // Minimise: the saved corpus plus the new finds, into the saved corpus.
        let merged = build::target_dir(root).join(format!("reliability/fuzz-merged/{target}"));
        let _ = std::fs::remove_dir_all(&merged);
        std::fs::create_dir_all(&merged).map_err(|err| format!("cannot create {}: {err}", merged.display()))?;
        let merged_s = merged.to_string_lossy();
        let mut merge: Vec<&str> = vec!["run"];
        merge.extend(build);
        merge.extend([*target, merged_s.as_ref(), corpus_s.as_ref(), scratch_s.as_ref(), "--", "-merge=1"]);
        let (merged_ok, _) =
            cargo_fuzz(&merge, Some(&root.join(format!("target/reliability/fuzz-{target}-merge.log"))), false)?;
        if merged_ok && count_files(&merged) > 0 {
            let _ = std::fs::remove_dir_all(&corpus);
            std::fs::create_dir_all(&corpus).map_err(|err| format!("cannot create {}: {err}", corpus.display()))?;
            for entry in std::fs::read_dir(&merged).into_iter().flatten().flatten() {
                let _ = std::fs::copy(entry.path(), corpus.join(entry.file_name()));
            }
        }
        let stats = text.lines().rev().find(|l| l.starts_with('#') && l.contains(" cov: ")).unwrap_or("").trim();
        let runs = last_number_after(&text, "Done ")
            .or_else(|| stats.trim_start_matches('#').split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0);
        let coverage = stats.to_string();
        let bounded = if *target == "plugin_requests" && !skip.is_empty() {
            format!(" (known bug bounded in this run: {skip}, its reproducer replayed by cargo test)")
        } else {
            String::new()
        };
        let seen = format!(
            "libFuzzer (cargo fuzz, stable toolchain with RUSTC_BOOTSTRAP=1, --sanitizer none, debug assertions on, \
             fork mode){bounded} for {elapsed} s: {runs} executions ({}/s); final stats `{coverage}`; corpus \
             {before} -> {} files (minimised); {}",
            runs / elapsed.max(1),
            count_files(&corpus),
            if found.is_empty() {
                "no crash".to_string()
            } else {
                format!("{} crashing inputs; the smallest kept as {crashes:?}", found.len())
            }
        );
        let ok = clean && found.is_empty() && runs > 0;
        write_row(
            rows,
            "fuzz",
            &format!("{target}: coverage-guided fuzzing, {budget} s"),
            runs,
            "no panic, trap, stall or broken property",
            &seen,
            ok,
            false,
        )?;
        if !ok {
            failed.push(format!("fuzz target {target}: see {}", log.display()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The known bugs to bound while fuzzing: those whose reproducers the fast
/// part's corpus replay still found failing.
fn known_bugs(rows: &Path) -> String {
    let replay_failed = read_rows(&[rows.to_path_buf()]).iter().any(|row| {
        row["case"].as_str().is_some_and(|c| c.starts_with("plugin_requests: replay"))
            && row["seen"].as_str().is_some_and(|s| s.contains("crash-nested-resp"))
            && row["pass"].as_bool() != Some(true)
    });
    if replay_failed {
        "deep-resp".to_string()
    } else {
        String::new()
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|entries| entries.flatten().count()).unwrap_or(0)
}

/// The number after the last `marker` in `text` (`Done 1234 runs` -> 1234).
fn last_number_after(text: &str, marker: &str) -> Option<u64> {
    let at = text.rfind(marker)?;
    text.get(at + marker.len()..)?.split_whitespace().next()?.parse().ok()
}

#[allow(clippy::too_many_arguments)]
fn write_row(
    dir: &Path,
    area: &str,
    case: &str,
    requests: u64,
    expected: &str,
    seen: &str,
    pass: bool,
    blocked: bool,
) -> Result<(), String> {
    let id: String =
        format!("{area}-{case}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let row = json!({"area": area, "case": case, "requests": requests, "expected": expected, "seen": seen,
                     "pass": pass, "blocked": blocked, "recorded": unix_now()});
    let file = dir.join(format!("{id}.json"));
    std::fs::write(&file, row.to_string()).map_err(|err| format!("cannot write {}: {err}", file.display()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

// ----- the table -----

fn read_rows(dirs: &[PathBuf]) -> Vec<Value> {
    let mut rows = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                if let Ok(row) = serde_json::from_str::<Value>(&text) {
                    rows.push(row);
                }
            }
        }
    }
    let area_rank = |row: &Value| {
        let area = row["area"].as_str().unwrap_or_default();
        AREAS.iter().position(|a| *a == area).unwrap_or(AREAS.len())
    };
    // The `.so` row of a case right after its `.wasm` row.
    let key = |row: &Value| (area_rank(row), row["case"].as_str().unwrap_or_default().to_string(), build_rank(row));
    rows.sort_by_key(key);
    rows
}

/// The builds rows name (`e2e::Build`'s extensions), in table order; rows
/// of neither (cargo deny, libFuzzer) come first.
const BUILDS: &[(&str, &str)] = &[("wasm", "`.wasm`"), ("so", "`.so`")];

fn build_rank(row: &Value) -> usize {
    let build = row["build"].as_str().unwrap_or_default();
    BUILDS.iter().position(|(b, _)| *b == build).map_or(0, |i| i + 1)
}

/// The table's build cell: `.wasm`, `.so`, or a dash for rows of no plugin build.
fn build_cell(row: &Value) -> &'static str {
    let build = row["build"].as_str().unwrap_or_default();
    BUILDS.iter().find(|(b, _)| *b == build).map_or("-", |(_, cell)| cell)
}

/// Markdown-safe cell text.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn date(unix: u64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let days = (unix / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn assemble(root: &Path, dirs: &[PathBuf]) -> Result<String, String> {
    let rows = read_rows(dirs);
    // The fast part's rows are the first directory's; any other row comes from `--long`.
    let long_ran = !read_rows(dirs.get(1..).unwrap_or_default()).is_empty();
    if rows.is_empty() {
        return Err("no reliability rows were recorded".to_string());
    }
    let passed = rows.iter().filter(|r| r["pass"].as_bool() == Some(true)).count();
    let blocked = rows.iter().filter(|r| r["blocked"].as_bool() == Some(true)).count();
    let is_fuzz = |r: &&Value| r["area"] == "fuzz";
    let requests: u64 = rows.iter().filter(|r| !is_fuzz(r)).filter_map(|r| r["requests"].as_u64()).sum();
    let executions: u64 = rows.iter().filter(is_fuzz).filter_map(|r| r["requests"].as_u64()).sum();
    let newest = rows.iter().filter_map(|r| r["recorded"].as_u64()).max().unwrap_or(0);
    let oldest = rows.iter().filter_map(|r| r["recorded"].as_u64()).min().unwrap_or(0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut out = String::new();
    out.push_str("# Reliability\n\n");
    out.push_str(
        "What the plugins do when their dependencies fail, when input is hostile, and under sustained load: \
         every row below was written by the test that tried it (`e2e/src/reliability.rs` records rows; \
         `xtask/src/reliability.rs` assembles them). Regenerate with `cargo xtask reliability` (the fast part, \
         a few minutes; it also runs in `cargo xtask test` as ordinary tests) or `cargo xtask reliability \
         --long` (adds the long soak, the long shared-counter run and coverage-guided fuzzing, about 20 \
         minutes).\n\n",
    );
    out.push_str(
        "Each case that runs plugins on Envoy runs on both builds of them: the Proxy-Wasm modules (`.wasm`, \
         Envoy's Wasm filter on V8) and the Envoy dynamic modules (`.so`, `E2E_BUILD=native`); the build column \
         says which (the test host's rows, redis-rate-limit's and the corpus replay, run the `.wasm`), and a dash \
         marks the rows xtask records itself (cargo deny, libFuzzer).\n\n",
    );
    out.push_str(&format!(
        "Recorded {} to {} on a {cores}-core machine; real Envoy 1.40, httpbin and redis-server as local \
         processes. **{passed} of {} cases pass**{}; {requests} requests and {executions} fuzz executions in \
         all.{}\n\n",
        date(oldest),
        date(newest),
        rows.len(),
        if blocked > 0 { format!(", {blocked} blocked") } else { String::new() },
        if long_ran {
            ""
        } else {
            " The long part (the long soak, fuzzing) has not been recorded here: run with `--long`."
        }
    ));
    out.push_str(
        "Areas: **fault** (a dependency stops, slows, fails, fills up, or the config changes under traffic), \
         **bad input** (what clients can send through a real Envoy), **security** (secrets in logs, injection), \
         **load** (soak and exact limits under concurrency), **fuzz** (saved-corpus replay and \
         coverage-guided runs).\n\n",
    );
    out.push_str("| # | area | build | what was tried | requests (fuzz: executions) | expected | seen | result |\n");
    out.push_str("|---|---|---|---|---:|---|---|---|\n");
    for (i, row) in rows.iter().enumerate() {
        let pass = row["pass"].as_bool() == Some(true);
        let result = if pass {
            "pass"
        } else if row["blocked"].as_bool() == Some(true) {
            "blocked"
        } else {
            "**FAIL**"
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            cell(row["area"].as_str().unwrap_or("?")),
            build_cell(row),
            cell(row["case"].as_str().unwrap_or("?")),
            row["requests"].as_u64().unwrap_or(0),
            cell(row["expected"].as_str().unwrap_or("")),
            cell(row["seen"].as_str().unwrap_or("")),
            result
        ));
    }
    out.push_str(&format!(
        "\nThe tests: `e2e/tests/reliability_*.rs`, `plugins/redis-rate-limit/tests/reliability.rs`, \
         `crates/fuzz-targets` (targets and corpus replay), `fuzz/` (cargo-fuzz). Rows: `{}`.\n",
        dirs.iter().map(|d| d.strip_prefix(root).unwrap_or(d).display().to_string()).collect::<Vec<_>>().join("`, `")
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_numbers() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_764_072_000), "2025-11-25");
        assert_eq!(last_number_after("#1 INITED\nDone 1234 runs in 16 second(s)\n", "Done "), Some(1234));
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
