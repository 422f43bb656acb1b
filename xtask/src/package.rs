//! `package`, `push` and `pull`: the plugins as OCI images for Higress and
//! Istio (`WasmPlugin` `url: oci://...`). The work is done by the
//! `gateway-oci` binary of `crates/oci`, run through cargo, so that xtask
//! itself stays free of the registry client's dependencies.
//!
//! `package` and `push` build the plugins first (`dist/<name>.wasm`), then
//! write `dist/oci/<name>/` (an OCI image layout); `push` also uploads it.

use crate::{build, sh, Task};
use std::path::Path;

/// Runs `gateway-oci <command> <args...>` in the workspace root (`args` as
/// typed, already checked by the same definitions: `crates/oci/src/cli.rs`).
pub fn run(root: &Path, task: &Task, args: &[String]) -> Result<(), String> {
    let command = match task {
        Task::Package(_) => "package",
        Task::Push(_) => "push",
        _ => "pull",
    };
    if command != "pull" {
        build::run(root)?;
    }
    let mut cargo = vec!["run", "--quiet", "--package", "gateway-oci", "--bin", "gateway-oci", "--", command];
    cargo.extend(args.iter().map(String::as_str));
    sh(root, "cargo", &cargo)
}
