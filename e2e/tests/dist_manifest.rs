//! The release artefacts of `dist/` (made by `cargo xtask build`): each
//! plugin's module, its `.sha256`, its schema, and `dist/manifest.json`,
//! checked against the files themselves: sizes, sha256 recomputed, and the
//! hosts recomputed from each module's imports (`gateway-host-imports`; a module
//! importing a Higress-only host function loads on Higress only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ship;

use serde_json::Value;
use sha2::{Digest, Sha256};

use gateway_host_imports::is_higress_only as higress_only;

fn imports(bytes: &[u8]) -> Vec<(String, String)> {
    gateway_host_imports::imports(bytes).unwrap()
}

/// `[workspace.package] version` of the root Cargo.toml.
fn workspace_version() -> String {
    let text = std::fs::read_to_string(e2e::paths::repo_root().join("Cargo.toml")).unwrap();
    let table = text.split("[workspace.package]").nth(1).expect("no [workspace.package]");
    let line = table.lines().find(|l| l.trim_start().starts_with("version")).expect("no workspace version");
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn manifest_matches_dist() {
    let manifest = ship::dist_manifest();
    let entries = manifest["plugins"].as_array().expect("manifest.json: no plugins array");
    let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ship::plugins(), "dist/manifest.json lists every plugin of plugins/, sorted");
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        assert_eq!(entry["file"], format!("{name}.wasm"));
        let bytes = std::fs::read(ship::dist_file(&format!("{name}.wasm"))).unwrap();
        assert_eq!(entry["size"].as_u64(), Some(bytes.len() as u64), "{name}: size");
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(entry["sha256"], sha256.as_str(), "{name}: sha256");
        let sum = std::fs::read_to_string(ship::dist_file(&format!("{name}.wasm.sha256"))).unwrap();
        assert_eq!(sum, format!("{sha256}  {name}.wasm\n"), "{name}: .sha256 file");
        assert_eq!(entry["version"], workspace_version().as_str(), "{name}: version");
        let schema = format!("{name}.schema.json");
        assert_eq!(entry["schema"], schema.as_str());
        assert!(ship::dist_file(&schema).is_file());

        let higress_imports: Vec<String> = imports(&bytes)
            .into_iter()
            .filter(|(module, field)| higress_only(module, field))
            .map(|(module, field)| format!("{module}.{field}"))
            .collect();
        let hosts: Value = if higress_imports.is_empty() {
            serde_json::json!(["envoy", "istio", "higress"])
        } else {
            serde_json::json!(["higress"])
        };
        assert_eq!(entry["hosts"], hosts, "{name}: hosts (Higress-only imports: {higress_imports:?})");

        // The native build (an Envoy dynamic module): every plugin without Higress-only imports.
        let native = &entry["native"];
        if !higress_imports.is_empty() {
            assert!(native.is_null(), "{name}: a Higress-only plugin has no native build: {native}");
            continue;
        }
        assert_eq!(native["file"], format!("{name}.so"));
        let so = std::fs::read(ship::dist_file(&format!("{name}.so"))).unwrap();
        assert_eq!(native["size"].as_u64(), Some(so.len() as u64), "{name}.so: size");
        let so_sha256 = format!("{:x}", Sha256::digest(&so));
        assert_eq!(native["sha256"], so_sha256.as_str(), "{name}.so: sha256");
        let sum = std::fs::read_to_string(ship::dist_file(&format!("{name}.so.sha256"))).unwrap();
        assert_eq!(sum, format!("{so_sha256}  {name}.so\n"), "{name}: .so.sha256 file");
        assert_eq!(native["abi"], "v0.2.0");
        assert_eq!(native["envoy"], serde_json::json!(["1.40"]));
        assert!(native["glibc"].as_str().is_some_and(|v| v.starts_with("2.")), "{name}.so: glibc {native}");
    }
}

#[test]
fn only_the_redis_plugin_needs_higress() {
    for (name, hosts) in [
        ("hello-world", vec!["envoy", "istio", "higress"]),
        ("mock", vec!["envoy", "istio", "higress"]),
        ("http-call", vec!["envoy", "istio", "higress"]),
        ("redis-rate-limit", vec!["higress"]),
    ] {
        assert_eq!(ship::hosts_of(name), hosts, "{name}");
        let bytes = std::fs::read(ship::dist_file(&format!("{name}.wasm"))).unwrap();
        let redis = imports(&bytes).iter().any(|(module, field)| module == "env" && field.starts_with("proxy_redis_"));
        assert_eq!(redis, name == "redis-rate-limit", "{name}: Redis imports");
    }
}
