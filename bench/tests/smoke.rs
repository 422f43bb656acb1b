//! The bench's machinery on one short round of two variants (what CI runs):
//! Envoy starts pinned, wrk loads it, the report and the chart get numbers.
//! Needs `dist/` (`cargo xtask build`), the venv's Envoy and `wrk`.

use gateway_bench::variants::Modules;
use gateway_bench::Options;

#[test]
fn one_short_round_writes_a_report_with_numbers() {
    let out = tempfile::tempdir().unwrap();
    // The two smoke variants load no raw module.
    let modules = Modules { dist: e2e::paths::dist_dir(), raw: out.path().join("no-raw-modules") };
    let options = Options::smoke(out.path().to_path_buf(), modules);
    assert_eq!(options.variants.iter().map(|v| v.id).collect::<Vec<_>>(), ["none", "mock"]);
    let results = gateway_bench::run(&options).unwrap();

    for id in ["none", "mock"] {
        let runs = results.runs_of(id).unwrap();
        assert_eq!(runs.len(), 1, "{id}");
        let run = &runs[0];
        assert!(run.load.rps > 0.0 && run.load.requests > 0, "{id}: {run:?}");
        assert!(run.load.p50_us > 0.0 && run.load.p99_us >= run.load.p50_us, "{id}: {run:?}");
        assert!(run.rss_kib > 10_000, "{id}: {run:?}");
        assert!(run.ready.as_secs_f64() > 0.0, "{id}: {run:?}");
    }
    // mock runs in Wasm VMs whose linear memory is found in smaps; no filter has none.
    let mock = &results.runs_of("mock").unwrap()[0];
    assert!(!mock.memories.is_empty() && mock.memories.iter().all(|m| m.size_kib >= 64), "{mock:?}");
    assert!(results.runs_of("none").unwrap()[0].memories.is_empty());

    let md = std::fs::read_to_string(out.path().join("RESULTS.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| **mock (mockEnable false)** | add a request header |")).unwrap();
    let rps_cell = row.split('|').nth(3).unwrap().trim();
    assert!(rps_cell.parse::<f64>().is_ok_and(|rps| rps > 0.0), "{row}");
    assert!(md.contains("| CPUs (`nproc`) |"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("results.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("mock (mockEnable false)"), "{svg}");
}
