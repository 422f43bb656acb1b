//! `cargo xtask new` end to end, in a scratch copy of the repository (the
//! working tree without `target/` and `.git/`, with `dist/`): the name is
//! checked, the new plugin is added everywhere without a hand edit, `cargo
//! xtask build NAME` builds it (module, schema, manifest), its test-host tests
//! pass, and the scratch repository's `envoy.yaml` boots on a real Envoy with
//! the plugin answering on its route (the checks of its generated e2e test,
//! run here with this crate's harness).
//!
//! The scratch builds share this test's target directory, so that only the
//! new plugin (and the SDK and test host, to identical artefacts) are compiled:
//! well under a minute. Cargo names a workspace crate's artefacts by its path
//! inside the workspace, so a scratch build of a crate that bakes in its
//! absolute path (`xtask`, `e2e`) would replace this repository's: xtask is
//! built in a target directory of its own, and e2e is not built there.
//! Needs `cargo xtask build` first (the other plugins' modules) and the venv.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ship;

use e2e::{EnvoyConfig, Gateway};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const NAME: &str = "scratch-echo";

/// The target directory this test was built in: `<target>/debug/deps/<test>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("the test binary is not in <target>/<profile>/deps").to_path_buf()
}

/// Copies the repository, but for what is built, kept by git, or local.
fn copy_tree(from: &Path, to: &Path, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if top && [".git", "target", ".venv", ".cache"].contains(&name.as_ref()) {
            continue;
        }
        if name == "target" {
            continue;
        }
        let kind = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest, false);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Runs cargo in `repo` with the shared target directory; `cargo xtask` is
/// built in `xtask_target` (its children build in the shared one).
fn cargo(repo: &Path, xtask_target: &Path, args: &[&str]) -> Output {
    let started = Instant::now();
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if args.first() == Some(&"xtask") {
        let target = xtask_target.to_string_lossy().into_owned();
        full = ["run", "--quiet", "--target-dir", &target, "--package", "xtask", "--"].map(String::from).to_vec();
        full.extend(args.iter().skip(1).map(|a| a.to_string()));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(&full)
        .current_dir(repo)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("E2E_DIST_DIR")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    eprintln!("cargo {} ({:.0?}): {}", args.join(" "), started.elapsed(), output.status);
    output
}

struct Scratch {
    repo: PathBuf,
    xtask_target: PathBuf,
}

impl Scratch {
    fn ok(&self, args: &[&str]) -> String {
        let output = cargo(&self.repo, &self.xtask_target, args);
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "cargo {} failed:\n{text}", args.join(" "));
        text
    }

    fn fails(&self, args: &[&str], expected: &str) {
        let output = cargo(&self.repo, &self.xtask_target, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "cargo {} succeeded", args.join(" "));
        assert!(stderr.contains(expected), "cargo {}: expected {expected:?} in:\n{stderr}", args.join(" "));
    }
}

#[test]
fn a_new_plugin_is_built_tested_and_served_without_hand_edits() {
    let started = Instant::now();
    let root = e2e::paths::repo_root();
    ship::dist_file("manifest.json");
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("repo");
    copy_tree(&root, &repo, true);
    let s = Scratch { repo: repo.clone(), xtask_target: scratch.path().join("xtask-target") };

    // Names are checked, and nothing is written for a refused one.
    s.fails(&["xtask", "new", "Bad_Name"], "is not a plugin name");
    s.fails(&["xtask", "new", "mock"], "plugins/mock exists already");
    s.fails(&["xtask", "new", "e2e"], "in the workspace already");
    assert!(!repo.join("plugins/Bad_Name").exists());

    s.ok(&["xtask", "new", NAME]);
    let snake = NAME.replace('-', "_");
    for file in [
        format!("plugins/{NAME}/Cargo.toml"),
        format!("plugins/{NAME}/src/lib.rs"),
        format!("plugins/{NAME}/README.md"),
        format!("plugins/{NAME}/icon.svg"),
        format!("plugins/{NAME}/tests/testhost.rs"),
        format!("e2e/tests/plugin_{snake}.rs"),
        format!("deploy/higress/{NAME}.yaml"),
        format!("deploy/istio/{NAME}.yaml"),
    ] {
        assert!(repo.join(&file).is_file(), "{file} was not made");
    }
    // A member through the workspace's `plugins/*`: Cargo.toml stays as it was.
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\"plugins/*\","), "plugins/* is not among the members:\n{manifest}");
    assert!(!manifest.contains(&format!("\"plugins/{NAME}\"")), "listed besides plugins/*:\n{manifest}");
    s.fails(&["xtask", "new", NAME], "exists already");

    // envoy.yaml: a disabled filter loading the module, and a route enabling it.
    let envoy = ship::read_yaml(&repo.join("envoy.yaml"));
    let filter = ship::wasm_filters(&envoy).into_iter().find(|f| f.name == NAME).expect("no filter in envoy.yaml");
    assert_eq!(filter.file, format!("/etc/envoy/plugins/{NAME}.wasm"));
    assert!(filter.disabled);
    let route = ship::routes(&envoy).into_iter().find(|r| r["name"] == NAME).expect("no route in envoy.yaml");
    assert_eq!(route["match"]["prefix"], format!("/{NAME}/"));
    assert!(route["typed_per_filter_config"][NAME].get("config").is_some(), "{route}");

    // The generated Rust is formatted as the workspace wants.
    let rust_files = [
        format!("plugins/{NAME}/src/lib.rs"),
        format!("plugins/{NAME}/tests/testhost.rs"),
        format!("e2e/tests/plugin_{snake}.rs"),
    ];
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2021", "--config-path", "rustfmt.toml"])
        .args(&rust_files)
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(fmt.status.success(), "generated code is not formatted:\n{}", String::from_utf8_lossy(&fmt.stdout));

    // Built into dist/ with its schema, in the manifest, loading everywhere.
    s.ok(&["xtask", "build", NAME]);
    for file in [format!("{NAME}.wasm"), format!("{NAME}.wasm.sha256"), format!("{NAME}.schema.json")] {
        assert!(repo.join("dist").join(&file).is_file(), "dist/{file} was not made");
    }
    let dist_manifest = ship::read_json(&repo.join("dist/manifest.json"));
    let entry = dist_manifest["plugins"].as_array().unwrap().iter().find(|p| p["name"] == NAME).cloned();
    let entry = entry.expect("not in dist/manifest.json");
    assert_eq!(entry["hosts"], serde_json::json!(["envoy", "istio", "higress"]));
    assert_eq!(dist_manifest["plugins"].as_array().unwrap().len(), ship::plugins().len() + 1);

    // Its tests on the test host.
    let out = s.ok(&["test", "-p", NAME, "--test", "testhost"]);
    assert!(out.contains("test result: ok. 3 passed"), "{out}");

    // The scratch envoy.yaml on a real Envoy, with the scratch dist/: what the
    // generated e2e/tests/plugin_<name>.rs checks.
    let yaml = std::fs::read_to_string(repo.join("envoy.yaml")).unwrap();
    let config = EnvoyConfig::from_yaml(&yaml, &repo.join("dist")).unwrap();
    let removed: Vec<&str> = config.removed().iter().map(|r| r.filter.as_str()).collect();
    assert_eq!(removed, ["redis-rate-limit"], "only the Higress plugin is left out on upstream Envoy");
    let gw = Gateway::start_with(config).unwrap();
    let resp = gw.get(&format!("/{NAME}/anything"), &[]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, format!("hello from {NAME}").as_str()));
    let resp = gw.get(&format!("/anything/{NAME}"), &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["method"], "GET");
    let resp = gw.get("/hello-world", &[]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));
    let generated = std::fs::read_to_string(repo.join(format!("e2e/tests/plugin_{snake}.rs"))).unwrap();
    assert!(generated.contains(&format!("gw.get(\"/{NAME}/anything\"")), "{generated}");
    eprintln!("cargo xtask new, end to end: {:.0?}", started.elapsed());
}
