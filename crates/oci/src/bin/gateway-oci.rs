//! `gateway-oci`: packages the workspace's plugins as OCI images, pushes and
//! pulls them. `cargo xtask package|push|pull` runs it from the workspace root.

#[path = "../cli.rs"]
mod cli;

use clap::Parser;
use cli::{Cli, OciCommand, PackageArgs, PullArgs, PushArgs, RegistryOptions};
use gateway_oci::{layout, media, workspace, Image, Registry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = PathBuf::new(); // the current directory: the workspace root
    let result = match &cli.command {
        OciCommand::Package(args) => package(&root, args),
        OciCommand::Push(args) => push(&root, args),
        OciCommand::Pull(args) => pull(&root, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::FAILURE,
    }
}

/// Why a command stopped: an error, already printed.
enum Failure {
    Reported,
}

fn fail(message: impl std::fmt::Display) -> Failure {
    eprintln!("gateway-oci: {message}");
    Failure::Reported
}

/// Like [`fail`], with a hint when the registry wanted other credentials.
fn fail_registry(err: gateway_oci::Error) -> Failure {
    if err.is_unauthorized() {
        fail(format!("{err}\n  (credentials: set OCI_USERNAME and OCI_PASSWORD, or OCI_TOKEN)"))
    } else {
        fail(err)
    }
}

type Outcome = Result<(), Failure>;

/// The registry client the options ask for, with the environment's credentials.
fn registry(args: &RegistryOptions) -> Result<Registry, Failure> {
    let mut registry = Registry::from_env().map_err(fail)?.insecure(args.insecure);
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path).map_err(|err| fail(format!("{}: {err}", path.display())))?;
        registry = registry.ca_certificate(pem);
    }
    Ok(registry)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(fail)
}

fn package(root: &Path, args: &PackageArgs) -> Outcome {
    let out = layouts_dir(root, args.out.as_ref());
    let plugins = workspace::plugins(root).map_err(fail)?;
    if let Some(unknown) = args.names.iter().find(|name| !plugins.iter().any(|p| &p.info.name == *name)) {
        let names: Vec<&str> = plugins.iter().map(|plugin| plugin.info.name.as_str()).collect();
        return Err(fail(format!("no plugin {unknown} in plugins/ (there are: {})", names.join(", "))));
    }
    let wanted = |plugin: &&workspace::PluginSource| args.names.is_empty() || args.names.contains(&plugin.info.name);
    for plugin in plugins.iter().filter(wanted) {
        package_one(&out, plugin)?;
    }
    Ok(())
}

/// Where the image layouts go: `--out DIR` or `dist/oci`.
fn layouts_dir(root: &Path, out: Option<&PathBuf>) -> PathBuf {
    out.cloned().unwrap_or_else(|| root.join("dist/oci"))
}

/// Builds the image of a plugin and writes its layout to `out/<name>`.
fn package_one(out: &Path, plugin: &workspace::PluginSource) -> Result<Image, Failure> {
    let image = plugin.image().map_err(fail)?;
    let dir = out.join(&plugin.info.name);
    layout::write(&dir, &image, &plugin.info.version).map_err(fail)?;
    let schema = if plugin.info.config_schema.is_some() { ", with config schema" } else { "" };
    let (name, version) = (&plugin.info.name, &plugin.info.version);
    println!("{}  {}  ({name}:{version}{schema})", dir.display(), image.digest());
    Ok(image)
}

fn push(root: &Path, args: &PushArgs) -> Outcome {
    args.check().map_err(fail)?;
    let out = layouts_dir(root, args.out.as_ref());
    let targets: Vec<(workspace::PluginSource, String)> = if args.all {
        let (prefix, tag) = match args.positional.as_slice() {
            [prefix] => (prefix, None),
            [prefix, tag] => (prefix, Some(tag)),
            _ => return Err(fail("push --all wants PREFIX [TAG]")),
        };
        let prefix = prefix.trim_end_matches('/');
        let plugins = workspace::plugins(root).map_err(fail)?;
        plugins
            .into_iter()
            .map(|plugin| {
                let tag = tag.cloned().unwrap_or_else(|| plugin.info.version.clone());
                let reference = format!("{prefix}/{}:{tag}", plugin.info.name);
                (plugin, reference)
            })
            .collect()
    } else {
        let [name, reference] = args.positional.as_slice() else {
            return Err(fail("push wants NAME REF (or --all PREFIX [TAG])"));
        };
        vec![(workspace::plugin(root, name).map_err(fail)?, reference.clone())]
    };
    let registry = registry(&args.registry)?;
    let runtime = runtime()?;
    for (plugin, reference) in &targets {
        let image = package_one(&out, plugin)?;
        let pushed = runtime.block_on(registry.push(&image, reference)).map_err(fail_registry)?;
        println!(
            "pushed {}  {}  ({} blobs uploaded, {} already there)",
            pushed.reference, pushed.digest, pushed.uploaded, pushed.present
        );
        let bare = reference.strip_prefix("oci://").unwrap_or(reference);
        let hex = pushed.digest.strip_prefix("sha256:").unwrap_or(&pushed.digest);
        println!("  WasmPlugin: url: oci://{bare}  sha256: {hex}");
    }
    Ok(())
}

fn pull(root: &Path, args: &PullArgs) -> Outcome {
    let reference = &args.reference;
    let registry = registry(&args.registry)?;
    let image = runtime()?.block_on(registry.pull(reference)).map_err(fail_registry)?;
    println!("{reference}  {}", image.digest());
    for (index, (descriptor, _)) in image.layers().enumerate() {
        let title = descriptor.annotations.as_ref().and_then(|a| a.get(media::TITLE_ANNOTATION));
        println!(
            "  layer {index}  {}  {} bytes  {}",
            descriptor.media_type,
            descriptor.size,
            title.map(String::as_str).unwrap_or("-")
        );
    }
    image.check_plugin().map_err(fail)?;
    let wasm = image.plugin_wasm().map_err(fail)?;
    println!("  plugin.wasm  {} bytes  {}", wasm.len(), gateway_oci::digest_of(&wasm));
    // Compare with the local build of the plugin the repository is named after.
    let parsed = gateway_oci::parse_reference(reference).map_err(fail)?;
    let name = parsed.repository().rsplit('/').next().unwrap_or_default();
    let local = root.join("dist").join(format!("{name}.wasm"));
    if let Ok(built) = std::fs::read(&local) {
        let verdict = if built == wasm { "identical to" } else { "DIFFERS from" };
        println!("  plugin.wasm is {verdict} dist/{name}.wasm");
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|err| fail(format!("{}: {err}", out.display())))?;
        let files = [
            (media::PLUGIN_FILE, Some(wasm.as_slice())),
            (media::SPEC_FILE, image.spec_yaml().map(str::as_bytes)),
            (media::README_FILE, image.readme().map(str::as_bytes)),
        ];
        for (file, data) in files {
            if let Some(data) = data {
                let path = out.join(file);
                std::fs::write(&path, data).map_err(|err| fail(format!("{}: {err}", path.display())))?;
                println!("  wrote {}", path.display());
            }
        }
    }
    Ok(())
}
