//! `gateway-oci`: packages the workspace's plugins as OCI images, pushes and
//! pulls them. `cargo xtask package|push|pull` runs it from the workspace root.

use gateway_oci::{layout, media, workspace, Image, Registry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: gateway-oci <command>

  package [NAME...]                     write dist/oci/<name>/ (OCI image layout) for the plugins (all without NAME)
  push [OPTIONS] NAME REF               package NAME and push it as REF, e.g. 127.0.0.1:5000/plugins/mock:0.1.0
  push [OPTIONS] --all PREFIX [TAG]     package every plugin and push it as PREFIX/<name>:<TAG, default its version>
  pull [OPTIONS] REF [--out DIR]        pull REF, check it and list its layers; --out DIR writes plugin.wasm,
                                        spec.yaml and README.md there

  OPTIONS: --insecure      plain HTTP to any registry (without it: only to loopback ones)
           --ca-file PEM   trust this CA too (a registry with a private CA; HTTPS also on loopback)

  package and push read dist/<name>.wasm (cargo xtask build), plugins/<name>/README.md and
  dist/<name>.schema.json if present; --out DIR writes the layouts to DIR/<name> instead of dist/oci/<name>.

Credentials come from OCI_USERNAME and OCI_PASSWORD (basic auth, or sent to the
token server a registry's Bearer challenge names) or OCI_TOKEN; none means anonymous.
Plain HTTP is used for localhost, 127.0.0.0/8 and [::1] registries (unless
--ca-file is given), and for any registry with --insecure; otherwise HTTPS.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::new(); // the current directory: the workspace root
    let result = match args.split_first() {
        Some((command, rest)) if command == "package" => package(&root, rest),
        Some((command, rest)) if command == "push" => push(&root, rest),
        Some((command, rest)) if command == "pull" => pull(&root, rest),
        _ => Err(Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
    }
}

/// Why a command stopped.
enum Failure {
    /// The arguments make no sense: show the usage.
    Usage,
    /// An error, already printed.
    Reported,
}

use Failure::Usage;

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

/// Separates `--insecure` and `--out DIR` / `--all` from the positional arguments.
struct Args {
    insecure: bool,
    all: bool,
    out: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    positional: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, Failure> {
    let mut parsed = Args { insecure: false, all: false, out: None, ca_file: None, positional: Vec::new() };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--insecure" => parsed.insecure = true,
            "--all" => parsed.all = true,
            "--out" => parsed.out = Some(args.next().map(PathBuf::from).ok_or(Usage)?),
            "--ca-file" => parsed.ca_file = Some(args.next().map(PathBuf::from).ok_or(Usage)?),
            flag if flag.starts_with("--") => return Err(fail(format!("unknown option {flag}"))),
            value => parsed.positional.push(value.to_string()),
        }
    }
    Ok(parsed)
}

/// The registry client the options ask for, with the environment's credentials.
fn registry(args: &Args) -> Result<Registry, Failure> {
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

fn package(root: &Path, args: &[String]) -> Outcome {
    let args = parse(args)?;
    if args.insecure || args.all || args.ca_file.is_some() {
        return Err(Usage);
    }
    let out = layouts_dir(root, &args);
    let plugins = workspace::plugins(root).map_err(fail)?;
    if let Some(unknown) = args.positional.iter().find(|name| !plugins.iter().any(|p| &p.info.name == *name)) {
        let names: Vec<&str> = plugins.iter().map(|plugin| plugin.info.name.as_str()).collect();
        return Err(fail(format!("no plugin {unknown} in plugins/ (there are: {})", names.join(", "))));
    }
    let wanted =
        |plugin: &&workspace::PluginSource| args.positional.is_empty() || args.positional.contains(&plugin.info.name);
    for plugin in plugins.iter().filter(wanted) {
        package_one(&out, plugin)?;
    }
    Ok(())
}

/// Where the image layouts go: `--out DIR` or `dist/oci`.
fn layouts_dir(root: &Path, args: &Args) -> PathBuf {
    args.out.clone().unwrap_or_else(|| root.join("dist/oci"))
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

fn push(root: &Path, args: &[String]) -> Outcome {
    let args = parse(args)?;
    let out = layouts_dir(root, &args);
    let targets: Vec<(workspace::PluginSource, String)> = if args.all {
        let (prefix, tag) = match args.positional.as_slice() {
            [prefix] => (prefix, None),
            [prefix, tag] => (prefix, Some(tag)),
            _ => return Err(Usage),
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
        let [name, reference] = args.positional.as_slice() else { return Err(Usage) };
        vec![(workspace::plugin(root, name).map_err(fail)?, reference.clone())]
    };
    let registry = registry(&args)?;
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

fn pull(root: &Path, args: &[String]) -> Outcome {
    let args = parse(args)?;
    let [reference] = args.positional.as_slice() else { return Err(Usage) };
    if args.all {
        return Err(Usage);
    }
    let registry = registry(&args)?;
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
