//! The plugin lifetime on a real Envoy with two workers: the `lifetime`
//! fixture (`e2e/fixtures/lifetime`) shares each VM's id, counts its timer's
//! runs and the status of the timer's HTTP call to httpbin in shared data,
//! and answers each request with what its VM sees.
//!
//! Needs the fixture built (`cargo xtask build`, or
//! `cargo build --release --target wasm32-wasip1 -p lifetime`).

// Test code: a failed unwrap is a failed test (clippy.toml allows these in tests).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::{self, EnvoyConfig};
use e2e::httpbin::Httpbin;
use e2e::{http, Envoy, Upstreams};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

const CONFIG: &str = r#"{"tickMs": 200, "callCluster": "httpbin", "callPath": "/status/200", "queueVmId": "lifetime"}"#;

/// The VM configuration (`vm_config.configuration`) the plugin reads back.
const VM_CONFIG: &str = "vm-wide";

fn module() -> PathBuf {
    e2e::paths::fixture_module("lifetime").unwrap_or_else(|err| panic!("{err}"))
}

/// `name=value` out of the fixture's answer.
fn field(body: &str, name: &str) -> String {
    body.split(' ').find_map(|part| part.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string()
}

fn start() -> (Envoy, Httpbin) {
    let httpbin = Httpbin::start().unwrap();
    let mut config =
        EnvoyConfig::from_yaml(&envoy_config::httpbin_bootstrap("lifetime"), &e2e::paths::dist_dir()).unwrap();
    let mut filter = envoy_config::wasm_filter("lifetime", &module(), CONFIG);
    filter["typed_config"]["config"]["vm_config"]["configuration"] =
        serde_json::json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": VM_CONFIG});
    config.add_plugin(filter).unwrap();
    let envoy = Envoy::start_with_workers(&config, &Upstreams::httpbin(httpbin.port()), 2).unwrap();
    (envoy, httpbin)
}

fn ask(envoy: &Envoy) -> String {
    // A new connection each time (the client reuses none), so both workers get some.
    let resp = http::get(&envoy.url("/lifetime")).send().unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
}

#[test]
fn two_workers_see_each_others_shared_data() {
    let (envoy, _httpbin) = start();
    let mut answering = BTreeSet::new();
    let mut seen_by: Vec<(String, BTreeSet<String>)> = Vec::new();
    for _ in 0..400 {
        let body = ask(&envoy);
        let vm = field(&body, "vm");
        let vms: BTreeSet<String> = field(&body, "vms").split(',').map(str::to_string).collect();
        assert!(vms.contains(&vm), "a VM does not see its own id: {body}");
        answering.insert(vm.clone());
        seen_by.push((vm, vms));
        if answering.len() >= 2 {
            break;
        }
    }
    assert!(answering.len() >= 2, "every answer came from one VM: {answering:?}");
    // Each answering VM saw the ids every other answering VM wrote.
    for (vm, vms) in &seen_by {
        for other in &answering {
            assert!(vms.contains(other), "VM {vm} does not see {other} (it sees {vms:?})");
        }
    }
}

#[test]
fn a_timer_fires_and_calls_httpbin_outside_requests() {
    let (envoy, _httpbin) = start();
    let seen = e2e::process::wait_for(Duration::from_secs(20), || {
        let body = ask(&envoy);
        let ticks: u64 = field(&body, "ticks").parse().unwrap_or(0);
        Ok((ticks >= 2 && field(&body, "call") == "200").then_some(body))
    })
    .unwrap();
    let body = seen.expect("no tick with a 200 from httpbin within 20 s");
    assert!(field(&body, "ticks").parse::<u64>().unwrap() >= 2, "{body}");
    // The queue: requests enqueued, the registering VM dequeued.
    let body = ask(&envoy);
    assert!(field(&body, "dequeued").parse::<u64>().unwrap_or(0) >= 1, "{body}");
    // Upstream Envoy has no foreign function `get_log_level` (Higress has): an error, no trap.
    assert_eq!(field(&body, "level"), "-", "{body}");
    assert_eq!(field(&body, "vm_config"), VM_CONFIG, "{body}");
}

#[test]
fn one_vm_leads() {
    let (envoy, _httpbin) = start();
    // Envoy runs a VM per worker and one on its main thread, which serves no
    // requests but starts and ticks as well: the lease may be any one's.
    let seen = e2e::process::wait_for(Duration::from_secs(30), || {
        let body = ask(&envoy);
        let ticks = field(&body, "ticks").parse::<u64>().unwrap_or(0);
        Ok((ticks >= 4 && field(&body, "vms").split(',').count() >= 3).then_some(body))
    })
    .unwrap();
    let body = seen.expect("not every VM started and ticked within 30 s");
    assert_eq!(field(&body, "leaders"), "1", "exactly one VM leads: {body}");
    // The workers agree.
    let mut answers = BTreeSet::new();
    for _ in 0..50 {
        let body = ask(&envoy);
        answers.insert((field(&body, "vm"), field(&body, "leader"), field(&body, "leaders")));
    }
    assert!(answers.iter().all(|(_, _, leaders)| leaders == "1"), "{answers:?}");
    let leading: BTreeSet<&String> =
        answers.iter().filter(|(_, leader, _)| leader == "true").map(|(vm, _, _)| vm).collect();
    assert!(leading.len() <= 1, "{answers:?}");
}

#[test]
fn a_gateway_shutting_down_stops_the_plugin() {
    let (envoy, _httpbin) = start();
    ask(&envoy);
    let log = envoy.stop_and_read_log();
    let stops: Vec<&str> = log.lines().filter(|line| line.contains("[lifetime] [nil] [nil] stopping after")).collect();
    // Every VM (two workers and the main thread's) stops.
    assert!(stops.len() >= 2, "{}", e2e::envoy::plugin_lines(&log).join("\n"));
}
