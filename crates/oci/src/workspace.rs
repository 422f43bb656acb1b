//! The plugins of this Cargo workspace and what their images are built from.
//!
//! Every package under `plugins/` is a plugin (as for `cargo xtask build`). Its
//! image is made of:
//!
//! * `dist/<name>.wasm`, built by `cargo xtask build`;
//! * `plugins/<name>/README.md`;
//! * `dist/<name>.schema.json`, the JSON Schema of its configuration, if present;
//! * from `Cargo.toml` (`cargo metadata`): version, description, license,
//!   repository, and an optional `[package.metadata.plugin]` table with
//!   `title`, `category`, `phase` and `priority` for `spec.yaml`.

use crate::error::{Error, Result};
use crate::image::Image;
use crate::plugin::{Phase, PluginInfo};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A plugin of the workspace and the files its image is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSource {
    /// Metadata, README and schema.
    pub info: PluginInfo,
    /// `dist/<name>.wasm`.
    pub wasm: PathBuf,
}

impl PluginSource {
    /// Builds the plugin's image from `dist/<name>.wasm`.
    pub fn image(&self) -> Result<Image> {
        let wasm = std::fs::read(&self.wasm).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::plugin(
                    &self.info.name,
                    format!("{} is missing: run `cargo xtask build` first", self.wasm.display()),
                )
            } else {
                Error::Io { path: self.wasm.clone(), source }
            }
        })?;
        Image::build(&self.info, &wasm)
    }
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    description: Option<String>,
    license: Option<String>,
    repository: Option<String>,
    manifest_path: PathBuf,
    #[serde(default)]
    metadata: Option<PackageMetadata>,
}

#[derive(Deserialize)]
struct PackageMetadata {
    plugin: Option<PluginTable>,
}

/// `[package.metadata.plugin]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PluginTable {
    title: Option<String>,
    category: Option<String>,
    phase: Option<String>,
    priority: Option<i32>,
}

/// The plugins of the workspace at `root`, sorted by name, with their files
/// expected in `root/dist`.
pub fn plugins(root: &Path) -> Result<Vec<PluginSource>> {
    let plugins_dir = canonical(&root.join("plugins"))?;
    let dist = root.join("dist");
    let mut found = Vec::new();
    for package in metadata(root)?.packages {
        let Some(dir) = package.manifest_path.parent().map(Path::to_path_buf) else { continue };
        if dir.parent().map(canonical).transpose()?.as_deref() != Some(plugins_dir.as_path()) {
            continue;
        }
        found.push(source(package, &dir, &dist)?);
    }
    found.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    Ok(found)
}

/// The plugin `name` of the workspace at `root`.
pub fn plugin(root: &Path, name: &str) -> Result<PluginSource> {
    let all = plugins(root)?;
    let names: Vec<String> = all.iter().map(|plugin| plugin.info.name.clone()).collect();
    all.into_iter()
        .find(|plugin| plugin.info.name == name)
        .ok_or_else(|| Error::plugin(name, format!("no such plugin in plugins/ (there are: {})", names.join(", "))))
}

fn source(package: Package, dir: &Path, dist: &Path) -> Result<PluginSource> {
    let name = package.name;
    let table = package.metadata.and_then(|metadata| metadata.plugin).unwrap_or_default();
    let mut info = PluginInfo::new(&name, &package.version);
    info.description = package.description.unwrap_or_default();
    info.license = package.license;
    info.source = package.repository;
    if let Some(title) = table.title {
        info.title = title;
    }
    if let Some(category) = table.category {
        info.category = category;
    }
    if let Some(phase) = table.phase {
        info.phase = phase.parse::<Phase>().map_err(|message| Error::plugin(&name, message))?;
    }
    if let Some(priority) = table.priority {
        info.priority = priority;
    }
    let readme = dir.join("README.md");
    info.readme = std::fs::read_to_string(&readme).map_err(Error::io(&readme))?;
    let schema = dist.join(format!("{name}.schema.json"));
    if schema.exists() {
        let text = std::fs::read(&schema).map_err(Error::io(&schema))?;
        let value = serde_json::from_slice(&text)
            .map_err(|err| Error::plugin(&name, format!("{} is not JSON: {err}", schema.display())))?;
        info.config_schema = Some(value);
    }
    info.validate()?;
    Ok(PluginSource { info, wasm: dist.join(format!("{name}.wasm")) })
}

fn metadata(root: &Path) -> Result<Metadata> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .map_err(|err| Error::Workspace(format!("cannot run cargo metadata: {err}")))?;
    if !output.status.success() {
        return Err(Error::Workspace(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| Error::Workspace(format!("cargo metadata: {err}")))
}

fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize().map_err(Error::io(path))
}
