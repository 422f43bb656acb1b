//! Reliability, the soak: requests through each of mock, hello-world and
//! http-call in one Envoy, from 8 keep-alive clients, with an instant
//! upstream and token service (an Envoy answering itself). Envoy's resident
//! memory and its V8 Wasm memories are sampled every second; after the first
//! tenth of the run (warm-up) they must stay flat: a leak of even a few bytes
//! per request would show as megabytes.
//!
//! The long soak (`#[ignore]`: run by `cargo xtask reliability --long`) sends
//! `RELIABILITY_SOAK_REQUESTS` requests (default 500,000) per plugin; the
//! brief one, part of `cargo test`, [`BRIEF_REQUESTS`]. Both run on the build
//! `E2E_BUILD` names: on the `.so` builds there is no Wasm memory, and what
//! would say a plugin failed is a panic in Envoy's log or an Envoy that no
//! longer answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::EnvoyConfig;
use e2e::reliability::{self, Case, Memory, TokenMode, TokenService};
use e2e::{Envoy, Upstreams};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// RSS may move this much after warm-up (allocator caches, stats, connection buffers).
const RSS_SLACK_KB: u64 = 16 * 1024;

/// Requests per plugin in the brief soak of the fast part.
const BRIEF_REQUESTS: u64 = 20_000;

fn requests() -> u64 {
    std::env::var("RELIABILITY_SOAK_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(500_000)
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

#[test]
#[ignore = "long: cargo xtask reliability --long"]
fn soak_each_plugin() {
    soak(requests());
}

#[test]
fn soak_each_plugin_briefly() {
    soak(BRIEF_REQUESTS);
}

fn soak(total: u64) {
    let build = e2e::Build::from_env();
    let upstream = TokenService::start(TokenMode::Token("soak-token".into())).unwrap();
    let config = EnvoyConfig::load().unwrap();
    // httpbin (the upstream) and http-call's token service are both the instant Envoy.
    let envoy = Envoy::start(&config, &Upstreams::httpbin(upstream.port())).unwrap();
    let before = reliability::wasm_stats(&envoy).unwrap();
    let pid = envoy.pid();
    let mut failures = Vec::new();
    for (plugin, path, answer) in [
        ("mock", "/get", "200 token service"),
        ("hello-world", "/hello-world", "200 hello world"),
        ("http-call", "/http-call/headers", "200 token service"),
    ] {
        let case = Case::start(
            "load",
            &format!("soak: {total} requests through {plugin} ({path}), 8 keep-alive clients, one Envoy"),
            match build {
                e2e::Build::Wasm => {
                    "every answer normal, no errors; after warm-up (first 10%) Envoy's RSS within 16 MiB and Wasm \
                     memory not growing; no VM failure"
                }
                e2e::Build::Native => {
                    "every answer normal, no errors; after warm-up (first 10%) Envoy's RSS within 16 MiB; no \
                     plugin failure"
                }
            },
        );
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let (report, samples) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut samples: Vec<(Duration, Memory)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(memory) = reliability::memory(envoy.pid()) {
                        samples.push((started.elapsed(), memory));
                    }
                    std::thread::sleep(Duration::from_millis(1000));
                }
                samples
            });
            let request = reliability::get_request(path, &[]);
            let report = reliability::load(
                envoy.port(),
                &request,
                8,
                total,
                Duration::from_secs(1200),
                reliability::status_and_body,
                None,
            );
            stop.store(true, Ordering::Relaxed);
            (report, sampler.join().unwrap())
        });
        let end = reliability::memory(envoy.pid()).unwrap();
        let warm_at = report.elapsed / 10;
        let warm = samples.iter().find(|(t, _)| *t >= warm_at).map(|(_, m)| *m).unwrap_or(end);
        let first = samples.first().map(|(_, m)| *m).unwrap_or(end);
        let peak_rss = samples.iter().map(|(_, m)| m.rss_kb).max().unwrap_or(end.rss_kb);
        let rss_growth = end.rss_kb.saturating_sub(warm.rss_kb);
        let wasm_growth = end.wasm_size_kb.saturating_sub(warm.wasm_size_kb);
        let quarter = |q: usize| samples.get(samples.len() * q / 4).map(|(_, m)| mib(m.rss_kb)).unwrap_or_default();
        let mut text = format!(
            "{}; RSS {} at start, {} after warm-up, {} at the end (peak {}; quarters {}, {}, {})",
            report.summary(),
            mib(first.rss_kb),
            mib(warm.rss_kb),
            mib(end.rss_kb),
            mib(peak_rss),
            quarter(1),
            quarter(2),
            quarter(3),
        );
        if build == e2e::Build::Wasm {
            text.push_str(&format!(
                "; {} Wasm memories: {} ({} resident) after warm-up, {} ({} resident) at the end",
                end.wasm_memories,
                mib(warm.wasm_size_kb),
                mib(warm.wasm_rss_kb),
                mib(end.wasm_size_kb),
                mib(end.wasm_rss_kb),
            ));
        }
        let ok = report.errors == 0
            && report.classes.get(answer) == Some(&total)
            && rss_growth <= RSS_SLACK_KB
            && wasm_growth == 0;
        if !case.finish(report.responses, &text, ok) {
            failures.push(format!("{plugin}: {text}"));
        }
    }
    let trouble = reliability::vm_trouble(&envoy, &before).unwrap();
    let (what, expected) = match build {
        e2e::Build::Wasm => ("VM health", "no VM failure or reload, no trap in Envoy's log"),
        e2e::Build::Native => ("plugin health", "no panic or crash in Envoy's log; the same Envoy answers its admin"),
    };
    let case = Case::start("load", &format!("soak: {what} after {} requests", 3 * total), expected);
    let text = match build {
        e2e::Build::Wasm => {
            format!("VM trouble: {trouble:?}; wasm stats: {:?}", reliability::wasm_stats(&envoy).unwrap())
        }
        e2e::Build::Native => format!("trouble: {trouble:?}; Envoy pid unchanged: {}", envoy.pid() == pid),
    };
    if !case.finish(3 * total, &text, trouble.is_empty() && envoy.pid() == pid) {
        failures.push(text);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
