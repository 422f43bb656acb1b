//! What a user sees in a fresh clone, checked in a temp copy of the
//! workspace (the SDK, the test host, `mock`, `http-call` and xtask):
//!
//! * a plugin's tests run its current source: edit the plugin, and
//!   `cargo test -p mock` fails on the edit without any `cargo xtask build`;
//! * `cargo xtask build mock http-call`, as the README shows, works on a
//!   `dist/` that has nothing in it, and its manifest lists those two.
//!
//! The copies share one target dir under the workspace's own
//! (`target/fresh-copy`), so only the first run compiles everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What the copy needs: its crates, and the files xtask includes from others.
const COPIED: &[&str] = &[
    "Cargo.lock",
    ".cargo",
    "rustfmt.toml",
    "clippy.toml",
    "crates/sdk",
    "crates/sdk-macros",
    "crates/testhost",
    "crates/host-imports",
    "plugins/mock",
    "plugins/http-call",
    "xtask",
    "bench/src/cli.rs",
    "crates/oci/src/cli.rs",
    "e2e/src/up_cli.rs",
];

const MEMBERS: &[&str] = &[
    "crates/sdk",
    "crates/sdk-macros",
    "crates/testhost",
    "crates/host-imports",
    "plugins/mock",
    "plugins/http-call",
    "xtask",
];

/// A copy of the workspace with only [`MEMBERS`], and no `dist/`.
fn workspace_copy() -> tempfile::TempDir {
    let root = e2e::paths::repo_root();
    let copy = tempfile::Builder::new().prefix("fresh-copy-").tempdir().unwrap();
    for path in COPIED {
        copy_path(&root.join(path), &copy.path().join(path));
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").expect("no members in Cargo.toml");
    let end = start + manifest[start..].find(']').unwrap() + 1;
    let members: Vec<String> = MEMBERS.iter().map(|m| format!("    {m:?},\n")).collect();
    let manifest = format!("{}members = [\n{}]{}", &manifest[..start], members.concat(), &manifest[end..]);
    std::fs::write(copy.path().join("Cargo.toml"), manifest).unwrap();
    assert!(!copy.path().join("dist").exists());
    copy
}

/// Copies a file or a directory tree (without `target/`).
fn copy_path(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            if entry.file_name() != "target" {
                copy_path(&entry.path(), &to.join(entry.file_name()));
            }
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|err| panic!("copying {}: {err}", from.display()));
    }
}

/// The target dir the copies share.
fn shared_target() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    let target = target.unwrap_or_else(|| e2e::paths::repo_root().join("target"));
    e2e::paths::repo_root().join(target).join("fresh-copy")
}

/// `cargo ARGS` in `dir`, as a user types it.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .unwrap_or_else(|err| panic!("cargo {args:?}: {err}"))
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn plugin_tests_run_the_current_source() {
    let copy = workspace_copy();
    let test = ["test", "-p", "mock", "--test", "testhost"];
    let out = cargo(copy.path(), &test);
    assert!(out.status.success(), "the copy's mock tests fail before any edit:\n{}", text(&out));

    // An edit, and no `cargo xtask build`: the tests must see it.
    let lib = copy.path().join("plugins/mock/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(source.contains(r#""hello world".to_string()"#), "mock's default body moved");
    std::fs::write(&lib, source.replace(r#""hello world".to_string()"#, r#""hello planet".to_string()"#)).unwrap();
    let out = cargo(copy.path(), &test);
    let said = text(&out);
    assert!(!out.status.success(), "mock's tests passed on an edited default body:\n{said}");
    assert!(said.contains("hello planet"), "the failure is not the edit's:\n{said}");
}

#[test]
fn a_subset_builds_on_a_clean_dist() {
    let copy = workspace_copy();
    let out = cargo(copy.path(), &["xtask", "build", "mock", "http-call"]);
    assert!(out.status.success(), "cargo xtask build mock http-call failed:\n{}", text(&out));
    let dist = copy.path().join("dist");
    for file in ["mock.wasm", "mock.wasm.sha256", "mock.schema.json", "http-call.wasm", "http-call.schema.json"] {
        assert!(dist.join(file).is_file(), "dist/{file} is missing:\n{}", text(&out));
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap()).unwrap();
    let names: Vec<&str> =
        manifest["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["http-call", "mock"]);
    for plugin in manifest["plugins"].as_array().unwrap() {
        assert_eq!(plugin["hosts"], serde_json::json!(["envoy", "istio", "higress"]), "{plugin}");
    }
}
