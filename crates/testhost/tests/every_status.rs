//! No host answer traps a module built on the SDK: each host function the
//! module imports is made to answer every status of the ABI (0 to 13) and
//! two it does not name, one import at a time and all at once, while
//! requests (with bodies and calls) go through. A trap would kill the VM with
//! every request on it; the module must log, go on or refuse instead.
//!
//! Needs `dist/` and the fixtures (`cargo xtask build`).

use gateway_testhost::{Error, HttpUpstream, RedisReply, RedisUpstream, Reply, TestHost};
use std::path::PathBuf;

/// Every status of ABI 0.2.1, then two unknown ones.
const STATUSES: [u32; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 4242];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dist(name: &str) -> PathBuf {
    root().join("dist").join(format!("{name}.wasm"))
}

/// A test fixture of `e2e/fixtures`, as `cargo xtask build` leaves it.
fn fixture(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir));
    target.join(format!("wasm32-wasip1/release/{name}.wasm"))
}

/// A plugin, its config, and the upstreams its calls need.
struct Case {
    module: PathBuf,
    config: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case { module: dist("hello-world"), config: "{}" },
        Case { module: dist("mock"), config: r#"{"mockEnable": true}"# },
        Case { module: dist("mock"), config: r#"{"_rules_": [{"_match_route_": ["r1"], "mockEnable": true}]}"# },
        Case {
            module: dist("http-call"),
            config: r#"{"tokenHeader": "x-token", "requestPath": "/token", "serviceName": "token.dns", "servicePort": 80}"#,
        },
        Case {
            module: dist("redis-rate-limit"),
            config: r#"{"serviceName": "redis.dns", "servicePort": 6379, "qpm": 5}"#,
        },
        Case {
            module: fixture("probe"),
            config: r#"{
                "call": {"cluster": "outbound|80||token.dns", "path": "/status/200", "timeoutMs": 500,
                         "then": {"setRequestHeader": {"x-after-call": "1"}}},
                "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true},
                "requestBody": {"return": "bufferUntilEnd", "appendBody": "!", "setRequestHeader": {"x-b": "1"}},
                "responseHeaders": {"return": "continue", "setResponseHeader": {"x-r": "1"}},
                "responseBody": {"return": "bufferUntilEnd", "prependBody": "<", "appendPhases": true}
            }"#,
        },
        // Metrics, properties, attributes, trailers, isolated rules, the request line.
        Case {
            module: fixture("sdk_features"),
            config: r#"{"tag": "g", "_rules_": [{"_match_domain_": ["a.test"], "tag": "bad"}, {"_match_domain_": ["b.test"]}]}"#,
        },
        // Higress's upstream hosts, override host and injected data.
        Case { module: fixture("higress_features"), config: "{}" },
        // The plugin's life: start hook, timers, calls from a timer, shared data, queues, the store.
        Case {
            module: fixture("lifetime"),
            config: r#"{"tickMs": 100, "callCluster": "outbound|80||token.dns", "callPath": "/status/200", "queueVmId": ""}"#,
        },
    ]
}

fn host(case: &Case) -> Result<TestHost, Error> {
    TestHost::load(&case.module)?
        .upstream_hosts(&[("10.0.0.1:80", "")])
        .http_upstream("outbound|80||token.dns", HttpUpstream::reply(Reply::new(200).header("x-token", "t")))
        .redis_upstream("outbound|6379||redis.dns", RedisUpstream::respond(|_| RedisReply::integer(1)))
        .config(case.config)
}

/// Sends requests through; `Err` only when the VM trapped.
///
/// A host that answers `Ok` without doing the work can make a module misuse
/// a later call (continuing a stream on a context that was never made
/// effective, say); the test host then stops the VM, as a strict host would,
/// but that is no trap, and Envoy ignores such calls.
fn exercise(host: &TestHost) -> Result<(), String> {
    let sends: [&dyn Fn() -> Result<(), Error>; 5] = [
        &|| host.request().path("/get").header("x-token", "c").send().map(drop),
        // Trailers both ways, a response rewritten as it streams (higress-features).
        &|| {
            host.request()
                .method("POST")
                .header("x-uppercase", "on")
                .header("x-override", "10.0.0.1:80")
                .chunk("ab")
                .trailer("x-t", "1")
                .upstream(Reply::new(200).chunk("hi").chunk("!").trailer("x-u", "2"))
                .send()
                .map(drop)
        },
        &|| {
            host.request()
                .method("POST")
                .path("/post")
                .chunk("ab")
                .chunk("cd")
                .upstream(Reply::new(200).header("content-type", "text/plain").body("answer"))
                .send()
                .map(drop)
        },
        // Timers, and the answers still pending (delayed ones, timeouts).
        &|| host.tick(),
        &|| host.settle(),
    ];
    for send in sends {
        match send() {
            Err(err @ (Error::Trap { .. } | Error::VmFailed(_))) => return Err(err.to_string()),
            Err(Error::Misuse { .. }) => return Ok(()),
            // A refusal is not a trap: the VM lives on.
            Ok(()) | Err(_) => {}
        }
    }
    Ok(())
}

#[test]
fn no_status_of_any_import_traps_the_vm() -> Result<(), Error> {
    let mut traps = Vec::new();
    let mut runs = 0usize;
    for case in cases() {
        let name = case.module.display().to_string();
        let imports = host(&case)?.imports();
        assert!(imports.iter().any(|i| i == "proxy_get_header_map_value"), "{name} imports: {imports:?}");
        for status in STATUSES {
            // One import at a time, on a fresh VM, so that one trap does not hide the next.
            for import in &imports {
                let host = host(&case)?;
                host.force_status(import, Some(status));
                runs += 1;
                if let Err(trap) = exercise(&host) {
                    traps.push(format!("{name}: {import} answering {status}: {trap}"));
                }
            }
            // Every import at once.
            let host = host(&case)?;
            for import in &imports {
                host.force_status(import, Some(status));
            }
            runs += 1;
            if let Err(trap) = exercise(&host) {
                traps.push(format!("{name}: every import answering {status}: {trap}"));
            }
            // And while the configuration is read and checked.
            let host = TestHost::load(&case.module)?;
            for import in &imports {
                host.force_status(import, Some(status));
            }
            runs += 1;
            if let Err(err @ (Error::Trap { .. } | Error::VmFailed(_))) = host.configure(case.config) {
                traps.push(format!("{name}: configure with every import answering {status}: {err}"));
            }
        }
    }
    assert!(runs > 1000, "only {runs} runs");
    assert!(traps.is_empty(), "{} of {runs} runs trapped:\n{}", traps.len(), traps.join("\n"));
    Ok(())
}

#[test]
fn forcing_a_status_is_seen_by_the_module_and_can_be_undone() -> Result<(), Error> {
    let case = Case { module: dist("mock"), config: r#"{"mockEnable": true}"# };
    let host = host(&case)?;
    host.force_status("proxy_send_local_response", Some(10));
    let out = host.request().send()?;
    // The answer was refused, so the request went upstream and the SDK said why.
    assert!(out.local_response().is_none());
    assert!(out.upstream_request().is_some());
    assert!(out.logged_anywhere("InternalFailure (10)"), "{:?}", out.logs());
    host.force_status("proxy_send_local_response", None);
    let out = host.request().send()?;
    assert_eq!(out.local_response().map(|r| r.status), Some(200));
    Ok(())
}
