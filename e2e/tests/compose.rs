//! `docker-compose.yaml` against the files it mounts and the `envoy.yaml` it
//! runs (there is no Docker engine here, so the file is checked by reading it;
//! that the same `envoy.yaml` boots a real Envoy and serves every route is
//! `seed.rs`, the Higress Go plugin guide's examples). Needs `cargo xtask build` first (it mounts `dist/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ship;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const HIGRESS_GATEWAY: &str = "higress-registry.cn-hangzhou.cr.aliyuncs.com/higress/gateway:";

fn compose() -> Value {
    ship::read_yaml(&e2e::paths::repo_root().join("docker-compose.yaml"))
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"].as_object().expect("docker-compose.yaml has no services")
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()
}

/// The service that runs envoy.yaml: the one mounting it.
fn gateway(compose: &Value) -> (&String, &Value) {
    services(compose)
        .iter()
        .find(|(_, service)| strings(&service["volumes"]).iter().any(|v| v.starts_with("./envoy.yaml:")))
        .expect("no service mounts ./envoy.yaml")
}

/// Container path -> host path of a service's bind mounts (`./host:/container[:ro]`).
fn mounts(service: &Value) -> BTreeMap<String, PathBuf> {
    let root = e2e::paths::repo_root();
    strings(&service["volumes"])
        .iter()
        .map(|volume| {
            let mut parts = volume.split(':');
            let (host, container) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            assert!(host.starts_with("./"), "volume {volume:?} is not a bind mount of the repository");
            (container.trim_end_matches('/').to_string(), root.join(host.trim_start_matches("./")))
        })
        .collect()
}

/// Where a container path of `service` is on the host, through its mounts.
fn host_path(mounts: &BTreeMap<String, PathBuf>, container: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|(target, host)| {
        let rest = container.strip_prefix(target.as_str())?;
        if rest.is_empty() {
            Some(host.clone())
        } else {
            rest.strip_prefix('/').map(|rest| host.join(rest))
        }
    })
}

/// The ports a service listens on inside the network: `expose` and the
/// container side of `ports`.
fn listens_on(service: &Value) -> BTreeSet<u64> {
    let mut ports = BTreeSet::new();
    for port in strings(&service["expose"]) {
        ports.insert(port.parse().unwrap_or_else(|_| panic!("expose {port:?} is not a port")));
    }
    for mapping in strings(&service["ports"]) {
        let container = mapping.rsplit(':').next().unwrap_or_default();
        ports.insert(container.parse().unwrap_or_else(|_| panic!("ports {mapping:?}: not HOST:CONTAINER")));
    }
    ports
}

#[test]
fn the_gateway_is_higress_running_envoy_yaml_as_in_the_seed() {
    let compose = compose();
    let (name, gateway) = gateway(&compose);
    let image = gateway["image"].as_str().unwrap_or_default();
    assert!(image.starts_with(HIGRESS_GATEWAY), "{name}: {image} is not the Higress gateway image");
    assert_eq!(gateway["entrypoint"], "/usr/local/bin/envoy");
    let command = gateway["command"].as_str().unwrap_or_default();
    assert!(command.contains("-c /etc/envoy/envoy.yaml"), "{command}");
    assert!(command.contains("--component-log-level wasm:debug"), "{command}");
    let depends: BTreeSet<String> = strings(&gateway["depends_on"]).into_iter().collect();
    for upstream in ["httpbin", "redis"] {
        assert!(services(&compose).contains_key(upstream), "no {upstream} service");
        assert!(depends.contains(upstream), "{name} does not depend on {upstream}");
    }
    // The listener and the admin of envoy.yaml are published on the same ports.
    let envoy = ship::envoy_yaml();
    let published: BTreeSet<String> = strings(&gateway["ports"]).into_iter().collect();
    let mut wanted = vec![envoy["admin"]["address"]["socket_address"]["port_value"].as_u64().unwrap()];
    for listener in envoy["static_resources"]["listeners"].as_array().unwrap() {
        wanted.push(listener["address"]["socket_address"]["port_value"].as_u64().unwrap());
    }
    assert!(wanted.contains(&10000) && wanted.contains(&9901), "{wanted:?}");
    for port in wanted {
        assert!(published.contains(&format!("{port}:{port}")), "{name} does not publish {port}:{port}: {published:?}");
    }
}

#[test]
fn images_are_pinned() {
    let compose = compose();
    for (name, service) in services(&compose) {
        let image = service["image"].as_str().unwrap_or_else(|| panic!("{name} has no image"));
        assert!(!image.contains("latest"), "{name}: {image} is not pinned");
        let pinned_by_digest = image.contains("@sha256:");
        let tag = image.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, tag)| tag);
        assert!(pinned_by_digest || tag.is_some_and(|t| !t.is_empty()), "{name}: {image} has no tag or digest");
    }
}

#[test]
fn every_mounted_file_exists() {
    let compose = compose();
    for (name, service) in services(&compose) {
        for (container, host) in mounts(service) {
            assert!(
                host.exists(),
                "{name} mounts {} at {container}, which does not exist: run `cargo xtask build` first",
                host.display()
            );
        }
    }
    // Every module envoy.yaml loads is in a mount of the gateway.
    let (_, gateway) = gateway(&compose);
    let mounts = mounts(gateway);
    let filters = ship::wasm_filters(&ship::envoy_yaml());
    assert!(filters.len() >= 4, "{filters:?}");
    for filter in filters {
        let host = host_path(&mounts, &filter.file)
            .unwrap_or_else(|| panic!("filter {}: {} is in no mount of the gateway", filter.name, filter.file));
        assert!(host.is_file(), "filter {}: {} is missing: run `cargo xtask build` first", filter.name, host.display());
    }
}

#[test]
fn every_cluster_points_at_a_service_port() {
    let compose = compose();
    let services = services(&compose);
    let envoy = ship::envoy_yaml();
    let clusters = envoy["static_resources"]["clusters"].as_array().unwrap();
    assert!(!clusters.is_empty());
    for cluster in clusters {
        let name = cluster["name"].as_str().unwrap_or_default();
        let endpoints = cluster["load_assignment"]["endpoints"].as_array().unwrap();
        for lb in endpoints.iter().flat_map(|e| e["lb_endpoints"].as_array().unwrap()) {
            let address = &lb["endpoint"]["address"]["socket_address"];
            let (host, port) = (address["address"].as_str().unwrap(), address["port_value"].as_u64().unwrap());
            let service = services
                .get(host)
                .unwrap_or_else(|| panic!("cluster {name}: {host} is not a service of docker-compose.yaml"));
            let ports = listens_on(service);
            assert!(ports.contains(&port), "cluster {name}: {host} listens on {ports:?}, not {port}");
        }
    }
}

#[test]
fn every_plugin_in_dist_is_served_by_envoy_yaml() {
    let envoy = ship::envoy_yaml();
    let filters = ship::wasm_filters(&envoy);
    let routes = ship::routes(&envoy);
    let dist = e2e::paths::dist_dir();
    let mut built: Vec<String> = std::fs::read_dir(&dist)
        .unwrap_or_else(|err| panic!("{}: {err}: run `cargo xtask build` first", dist.display()))
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".wasm").map(str::to_string))
        .collect();
    built.sort();
    assert_eq!(built, ship::plugins(), "dist/ holds a module per plugin: run `cargo xtask build`");
    for plugin in built {
        let filter = filters
            .iter()
            .find(|f| f.file == format!("/etc/envoy/plugins/{plugin}.wasm"))
            .unwrap_or_else(|| panic!("envoy.yaml has no filter loading {plugin}.wasm"));
        // On everywhere, or enabled by a route (a FilterConfig with `config`).
        let enabling = routes.iter().find(|route| {
            let per_filter = &route["typed_per_filter_config"][&filter.name];
            per_filter.get("config").is_some() && per_filter["disabled"] != true
        });
        assert!(!filter.disabled || enabling.is_some(), "filter {} is disabled and no route enables it", filter.name);
        if let Some(route) = enabling {
            assert!(route["match"]["prefix"].as_str().is_some_and(|p| p.starts_with('/')), "{route}");
        }
    }
}
