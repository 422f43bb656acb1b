//! Installs what the other commands need, skipping what is already there:
//! the `wasm32-wasip1` target, Debian packages (wasm-opt, redis-server, the
//! CNCF registry, wrk), cargo-deny, and the `.venv` of `e2e/requirements.txt`.
//! `cargo xtask up` installs only what serving needs ([`for_serving`]).

use crate::sh;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// Debian packages: (command that proves it is installed, package).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("wasm-opt", "binaryen"),
    ("redis-server", "redis-server"),
    ("docker-registry", "docker-registry"),
    ("wrk", "wrk"),
];

/// What `up` needs of them: wasm-opt for the modules (Envoy and httpbin are in the venv).
const SERVING_PACKAGES: &[(&str, &str)] = &[("wasm-opt", "binaryen")];

/// cargo-deny, which checks licences, bans and sources of every dependency.
const CARGO_DENY_VERSION: &str = "0.20.2";

pub fn run(root: &Path) -> Result<(), String> {
    wasm_target(root)?;
    debian_packages(root, DEBIAN_PACKAGES)?;
    cargo_deny(root)?;
    python_venv(root)
}

/// What `cargo xtask up` needs: the wasm target, wasm-opt, the venv.
pub fn for_serving(root: &Path) -> Result<(), String> {
    wasm_target(root)?;
    debian_packages(root, SERVING_PACKAGES)?;
    python_venv(root)
}

fn cargo_deny(root: &Path) -> Result<(), String> {
    let installed = Command::new("cargo").args(["deny", "--version"]).output();
    if installed.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(CARGO_DENY_VERSION)) {
        return Ok(());
    }
    sh(root, "cargo", &["install", "--locked", "cargo-deny", "--version", CARGO_DENY_VERSION])
}

fn wasm_target(root: &Path) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|err| format!("cannot run rustup: {err}"))?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|line| line.trim() == "wasm32-wasip1") {
        return Ok(());
    }
    sh(root, "rustup", &["target", "add", "wasm32-wasip1"])
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
        .unwrap_or(false)
}

fn debian_packages(root: &Path, wanted: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> =
        wanted.iter().filter(|(command, _)| !on_path(command)).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    sh(root, "apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    std::env::set_var("DEBIAN_FRONTEND", "noninteractive");
    sh(root, "apt-get", &args)
}

/// `.venv` with `e2e/requirements.txt`, reinstalled only when that file changes.
fn python_venv(root: &Path) -> Result<(), String> {
    let requirements = root.join("e2e/requirements.txt");
    let wanted =
        std::fs::read(&requirements).map_err(|err| format!("cannot read {}: {err}", requirements.display()))?;
    let stamp = root.join(".venv/requirements.sha256");
    let digest = format!("{:x}", Sha256::digest(&wanted));
    if std::fs::read_to_string(&stamp).is_ok_and(|done| done.trim() == digest) {
        return Ok(());
    }
    if !root.join(".venv/bin/python").exists() {
        sh(root, "python3", &["-m", "venv", ".venv"])?;
    }
    sh(
        root,
        ".venv/bin/pip",
        &["install", "--disable-pip-version-check", "--no-input", "-q", "-r", "e2e/requirements.txt"],
    )?;
    std::fs::write(&stamp, digest).map_err(|err| format!("cannot write {}: {err}", stamp.display()))
}
