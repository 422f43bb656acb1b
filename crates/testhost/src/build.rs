//! A plugin's module built from its current source, for its tests.
//!
//! Tests that loaded `dist/<name>.wasm` passed on whatever was built last:
//! after an edit without `cargo xtask build` they ran the old module.
//! [`TestHost::plugin`](crate::TestHost::plugin) builds the module instead,
//! the way `cargo xtask build` does (release profile, one cargo run per
//! plugin so no other plugin's SDK features leak in, `--crate-type cdylib` so
//! LTO applies), without `wasm-opt`, which changes size, not behaviour.
//!
//! It builds into a target directory of its own (`target/testhost-wasm`), so
//! it never waits for the `cargo test` that runs it. Cargo decides whether
//! the module is fresh; a test binary asks once per plugin and keeps the
//! bytes. Several test binaries may run at once (`cargo test` in two shells,
//! `cargo nextest`): a lock file lets one build and read at a time, so none
//! reads a module another is still writing.

use crate::Error;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// The module of plugin `name` (package `plugins/<name>`), built from its
/// source if it changed since the last build; its bytes.
pub(crate) fn plugin_module(name: &str) -> Result<Arc<Vec<u8>>, Error> {
    static BUILT: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    // Held while building: the other tests of this binary wait for the same build.
    let mut built = built.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(bytes) = built.get(name) {
        return Ok(Arc::clone(bytes));
    }
    let bytes = Arc::new(build(name)?);
    built.insert(name.to_string(), Arc::clone(&bytes));
    Ok(bytes)
}

/// The workspace of the test that runs: cargo gives a test the
/// `CARGO_MANIFEST_DIR` of its package (`<root>/plugins/<name>`), and cargo
/// itself says which workspace that is. Not this crate's own path, compiled
/// in: a copy of the workspace building into a shared target directory
/// would then build its plugins from the other copy.
fn workspace_root() -> Result<PathBuf, Error> {
    let package = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let package = package.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .current_dir(&package)
        .output()
        .map_err(|err| Error::Setup(format!("cannot run {}: {err}", Path::new(&cargo).display())))?;
    let manifest = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match Path::new(&manifest).parent() {
        Some(root) if output.status.success() => Ok(root.to_path_buf()),
        _ => Err(Error::Setup(format!(
            "no Cargo workspace around {}: {}",
            package.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// `target/testhost-wasm`, or `$CARGO_TARGET_DIR/testhost-wasm`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir).join("testhost-wasm"),
        _ => root.join("target/testhost-wasm"),
    }
}

fn build(name: &str) -> Result<Vec<u8>, Error> {
    let root = workspace_root()?;
    if !root.join("plugins").join(name).join("Cargo.toml").is_file() {
        return Err(Error::Setup(format!(
            "no plugin {name:?}: {} has no Cargo.toml",
            root.join("plugins").join(name).display()
        )));
    }
    let target = target_dir(&root);
    std::fs::create_dir_all(&target)
        .map_err(|err| Error::Setup(format!("cannot create {}: {err}", target.display())))?;
    let lock_path = target.join("build.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| Error::Setup(format!("cannot open {}: {err}", lock_path.display())))?;
    // The crate's trait, named: std's own File::lock is newer than the workspace's Rust.
    fs4::FileExt::lock(&lock).map_err(|err| Error::Setup(format!("cannot lock {}: {err}", lock_path.display())))?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = ["rustc", "--release", "--target", "wasm32-wasip1", "-p", name, "--lib", "--crate-type", "cdylib"];
    let status = Command::new(&cargo)
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&root)
        .status()
        .map_err(|err| Error::Setup(format!("cannot run {}: {err}", Path::new(&cargo).display())))?;
    if !status.success() {
        return Err(Error::Setup(format!(
            "building plugin {name} failed ({status}): `cargo {} --target-dir {}` (its messages are above)",
            args.join(" "),
            target.display()
        )));
    }
    let module = target.join("wasm32-wasip1/release").join(format!("{}.wasm", name.replace('-', "_")));
    let bytes =
        std::fs::read(&module).map_err(|err| Error::Setup(format!("cannot read {}: {err}", module.display())))?;
    drop(lock);
    Ok(bytes)
}
