//! The plugins of this Cargo workspace and what their images are built from.
//!
//! Every package under `plugins/` is a plugin (as for `cargo xtask build`). Its
//! image is made of:
//!
//! * `dist/<name>.wasm`, built by `cargo xtask build`;
//! * `plugins/<name>/README.md`;
//! * `dist/<name>.schema.json`, the JSON Schema of its configuration, if present;
//! * from `Cargo.toml` (`cargo metadata`): version, description, license,
//!   repository, and the `[package.metadata.gateway]` table, the one place
//!   that says how the plugin is shown and deployed (`deploy/higress/` agrees
//!   with it, `crates/oci/tests/spec.rs` checks that):
//!
//! ```toml
//! [package.metadata.gateway]
//! title = "Mock"                 # default: from the name
//! category = "custom"            # one of gateway_oci::CATEGORIES
//! phase = "UNSPECIFIED_PHASE"    # WasmPlugin phase: UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS
//! priority = 100                 # WasmPlugin priority (higher runs first)
//! icon = "icon.svg"              # a file of the plugin's directory, or an https:// URL
//! example = { mockEnable = false }          # a global config (defaultConfig)
//! route-example = { mockEnable = true }     # a per-route config (default: example)
//! i18n.zh-CN = { title = "...", description = "..." }
//!
//! [package.metadata.gateway.fields.mockEnable]   # per top-level config field
//! title = "Answer with the mock"
//! i18n.zh-CN = { title = "...", description = "..." }
//! ```
//!
//! and from the root `Cargo.toml`'s `[workspace.metadata.gateway]`: the
//! `contact` (`name`, `url`, `email`) of every plugin and the `branch` of the
//! repository that web links (`readmeUrl`, an icon file's URL) point into.

use crate::error::{Error, Result};
use crate::image::Image;
use crate::plugin::{Contact, FieldTexts, Phase, PluginInfo, Texts};
use serde::Deserialize;
use std::collections::BTreeMap;
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
    /// `[workspace.metadata]`.
    #[serde(default)]
    metadata: Option<WorkspaceMetadata>,
}

#[derive(Deserialize, Default)]
struct WorkspaceMetadata {
    gateway: Option<WorkspaceTable>,
}

/// `[workspace.metadata.gateway]`.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct WorkspaceTable {
    contact: Option<ContactTable>,
    branch: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ContactTable {
    name: String,
    url: Option<String>,
    email: Option<String>,
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
    gateway: Option<GatewayTable>,
}

/// `[package.metadata.gateway]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GatewayTable {
    title: Option<String>,
    category: Option<String>,
    phase: Option<String>,
    priority: Option<i32>,
    icon: Option<String>,
    example: Option<serde_json::Value>,
    route_example: Option<serde_json::Value>,
    #[serde(default)]
    i18n: BTreeMap<String, TextsTable>,
    #[serde(default)]
    fields: BTreeMap<String, FieldTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextsTable {
    title: String,
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldTable {
    title: String,
    #[serde(default)]
    i18n: BTreeMap<String, TextsTable>,
}

fn texts(table: BTreeMap<String, TextsTable>) -> BTreeMap<String, Texts> {
    table
        .into_iter()
        .map(|(lang, texts)| (lang, Texts { title: texts.title, description: texts.description }))
        .collect()
}

/// The plugins of the workspace at `root`, sorted by name, with their files
/// expected in `root/dist`.
pub fn plugins(root: &Path) -> Result<Vec<PluginSource>> {
    let plugins_dir = canonical(&root.join("plugins"))?;
    let dist = root.join("dist");
    let metadata = metadata(root)?;
    let workspace = metadata.metadata.and_then(|metadata| metadata.gateway).unwrap_or_default();
    let mut found = Vec::new();
    for package in metadata.packages {
        let Some(dir) = package.manifest_path.parent().map(Path::to_path_buf) else { continue };
        if dir.parent().map(canonical).transpose()?.as_deref() != Some(plugins_dir.as_path()) {
            continue;
        }
        found.push(source(package, &dir, &dist, &workspace)?);
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

fn source(package: Package, dir: &Path, dist: &Path, workspace: &WorkspaceTable) -> Result<PluginSource> {
    let name = package.name;
    let table = package.metadata.and_then(|metadata| metadata.gateway).unwrap_or_default();
    let mut info = PluginInfo::new(&name, &package.version);
    info.description = package.description.unwrap_or_default();
    info.license = package.license;
    info.source = package.repository;
    info.translations = texts(table.i18n);
    info.fields = table
        .fields
        .into_iter()
        .map(|(field, texts_table)| {
            (field, FieldTexts { title: texts_table.title, translations: texts(texts_table.i18n) })
        })
        .collect();
    info.example = table.example;
    info.route_example = table.route_example;
    info.contact =
        workspace.contact.clone().map(|contact| Contact { name: contact.name, url: contact.url, email: contact.email });
    // Web links into the repository, at plugins/<dir name>/.
    let branch = workspace.branch.as_deref().unwrap_or("main");
    let dir_name = dir.file_name().map(|dir| dir.to_string_lossy().into_owned()).unwrap_or_default();
    let web = info.source.as_deref().map(|repository| repository.trim_end_matches('/').to_string());
    info.readme_url = web.as_ref().map(|web| format!("{web}/blob/{branch}/plugins/{dir_name}/README.md"));
    if let Some(icon) = table.icon {
        info.icon_url = Some(if icon.starts_with("https://") {
            icon
        } else {
            let file = dir.join(&icon);
            if !file.is_file() {
                return Err(Error::plugin(&name, format!("icon {icon:?}: {} is not a file", file.display())));
            }
            let web = web.as_ref().ok_or_else(|| {
                Error::plugin(
                    &name,
                    format!("icon {icon:?} is a file, which needs the package's `repository` for its URL"),
                )
            })?;
            format!("{web}/raw/{branch}/plugins/{dir_name}/{icon}")
        });
    }
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
