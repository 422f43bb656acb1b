//! The plugins' images against a real registry (Debian's `docker-registry`,
//! the CNCF distribution registry) started by each test on a free loopback
//! port: anonymous, with htpasswd basic auth, and with bearer tokens from a
//! token server it trusts. Needs `dist/*.wasm` (`cargo xtask build`) and
//! `/usr/bin/docker-registry` (`cargo xtask setup`).

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use gateway_oci::{layout, media, workspace::PluginSource, Image, Registry, RegistryAuth};
use support::{Auth, Tls, TokenServer};

const USER: &str = "plugin-publisher";
const PASSWORD: &str = "s3cret-pa55word";

fn basic(user: &str, password: &str) -> RegistryAuth {
    RegistryAuth::Basic(user.to_string(), password.to_string())
}

fn reference(registry: &support::Registry, plugin: &PluginSource) -> String {
    format!("{}/plugins/{}:{}", registry.addr, plugin.info.name, plugin.info.version)
}

/// Everything a pulled image must be: the image pushed, the layers Higress
/// and Istio expect in their order, and `plugin.wasm` equal to `dist/<name>.wasm`.
fn check_pulled(plugin: &PluginSource, pushed: &Image, pulled: &Image) {
    let name = &plugin.info.name;
    assert_eq!(pulled.digest(), pushed.digest(), "{name}: manifest digest");
    assert_eq!(pulled, pushed, "{name}: manifest, config and layers byte for byte");
    let types: Vec<&str> = pulled.layers().map(|(layer, _)| layer.media_type.as_str()).collect();
    assert_eq!(types, [media::SPEC_LAYER, media::README_LAYER, media::PLUGIN_LAYER], "{name}: layer order");
    assert_eq!(pulled.manifest().config.media_type, media::CONFIG);
    assert_eq!(pulled.manifest().media_type.as_deref(), Some(media::MANIFEST));
    let annotations = pulled.manifest().annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(media::VARIANT_ANNOTATION).map(String::as_str), Some("compat"), "{name}");
    pulled.check_plugin().unwrap();

    let built = std::fs::read(&plugin.wasm).unwrap();
    assert!(pulled.plugin_wasm().unwrap() == built, "{name}: plugin.wasm differs from {}", plugin.wasm.display());

    let readme = std::fs::read_to_string(support::root().join("plugins").join(name).join("README.md")).unwrap();
    assert_eq!(pulled.readme(), Some(readme.as_str()), "{name}: README layer");
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(pulled.spec_yaml().unwrap()).unwrap();
    assert_eq!(spec["apiVersion"].as_str(), Some("1.0.0"));
    assert_eq!(spec["info"]["name"].as_str(), Some(name.as_str()));
    assert_eq!(spec["info"]["version"].as_str(), Some(plugin.info.version.as_str()));
    assert_eq!(spec["info"]["title"].as_str(), Some(plugin.info.title.as_str()));
    assert_eq!(spec["info"]["description"].as_str(), Some(plugin.info.description.as_str()));
    assert_eq!(spec["spec"]["phase"].as_str(), Some(plugin.info.phase.as_str()));
    assert_eq!(spec["spec"]["priority"].as_i64(), Some(i64::from(plugin.info.priority)));
    assert_eq!(
        pulled.spec_yaml(),
        Some(gateway_oci::spec::render(&plugin.info).unwrap().as_str()),
        "{name}: spec.yaml"
    );
    let schema = support::root().join("dist").join(format!("{name}.schema.json"));
    for key in ["configSchema", "routeConfigSchema"] {
        assert_eq!(spec["spec"].get(key).is_some(), schema.exists(), "{name}: {key} iff {schema:?}");
    }

    let config: serde_json::Value = serde_json::from_slice(pulled.config()).unwrap();
    assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("wasm"), Some("wasip1")));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn every_plugin_round_trips_through_a_registry() {
    let registry = support::Registry::start(Auth::None);
    let client = Registry::new(RegistryAuth::Anonymous);
    for plugin in support::plugins() {
        // Push what `cargo xtask package` writes: the image read back from its layout.
        let layouts = tempfile::tempdir().unwrap();
        let dir = layouts.path().join(&plugin.info.name);
        layout::write(&dir, &plugin.image().unwrap(), &plugin.info.version).unwrap();
        let image = layout::read(&dir).unwrap();

        let reference = reference(&registry, &plugin);
        let pushed = client.push(&image, &reference).await.unwrap_or_else(|err| panic!("{err}\n{}", registry.log()));
        assert_eq!(pushed.digest, image.digest());
        assert_eq!((pushed.uploaded, pushed.present), (4, 0), "config and three layers uploaded");
        let again = client.push(&image, &reference).await.unwrap();
        assert_eq!((again.digest.as_str(), again.uploaded, again.present), (image.digest(), 0, 4));

        let pulled = client.pull(&reference).await.unwrap();
        check_pulled(&plugin, &image, &pulled);
        let by_digest = format!("oci://{}/plugins/{}@{}", registry.addr, plugin.info.name, image.digest());
        check_pulled(&plugin, &image, &client.pull(&by_digest).await.unwrap());

        // The registry itself, asked without oci-client, serves the same manifest.
        let path = format!("/v2/plugins/{}/manifests/{}", plugin.info.name, plugin.info.version);
        let (status, headers, body) = support::http_get(&registry.addr, &path, &[("Accept", media::MANIFEST)]);
        assert_eq!(status, 200);
        let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        assert_eq!(header("docker-content-digest"), Some(image.digest()));
        assert_eq!(header("content-type"), Some(media::MANIFEST));
        assert_eq!(body, image.manifest_json());
    }
}

#[tokio::test]
async fn a_pushed_tag_can_be_moved_and_a_wrong_digest_is_refused() {
    let registry = support::Registry::start(Auth::None);
    let plugins = support::plugins();
    let (first, second) = (&plugins[0], &plugins[1]);
    let client = Registry::new(RegistryAuth::Anonymous);
    let target = format!("{}/plugins/moving:latest", registry.addr);
    client.push(&first.image().unwrap(), &target).await.unwrap();
    let image = second.image().unwrap();
    client.push(&image, &target).await.unwrap();
    assert_eq!(client.pull(&target).await.unwrap(), image);

    let wrong = format!("{}/plugins/moving@{}", registry.addr, first.image().unwrap().digest());
    let err = client.push(&image, &wrong).await.unwrap_err();
    assert!(err.to_string().contains("the image's digest is"), "{err}");
    let missing = client.pull(&format!("{}/plugins/absent:0.1.0", registry.addr)).await.unwrap_err();
    assert!(missing.to_string().contains(&registry.addr), "{missing}");
}

#[tokio::test]
async fn basic_auth_registry_needs_the_credentials() {
    let registry = support::Registry::start(Auth::Htpasswd { user: USER.into(), password: PASSWORD.into() });
    let plugin = support::plugins().into_iter().find(|plugin| plugin.info.name == "mock").expect("plugin mock");
    let image = plugin.image().unwrap();
    let reference = reference(&registry, &plugin);

    for (auth, what) in [(RegistryAuth::Anonymous, "anonymous"), (basic(USER, "wrong"), "wrong password")] {
        let err = Registry::new(auth).push(&image, &reference).await.expect_err(what);
        assert!(err.is_unauthorized(), "{what}: {err}");
    }
    let client = Registry::new(basic(USER, PASSWORD));
    let pushed = client.push(&image, &reference).await.unwrap_or_else(|err| panic!("{err}\n{}", registry.log()));
    assert_eq!(pushed.digest, image.digest());
    check_pulled(&plugin, &image, &client.pull(&reference).await.unwrap());
    let err = Registry::new(RegistryAuth::Anonymous).pull(&reference).await.expect_err("anonymous pull");
    assert!(err.is_unauthorized(), "{err}");
}

#[tokio::test]
async fn token_auth_registry_takes_tokens_from_its_token_server() {
    let tokens = TokenServer::start(USER, PASSWORD);
    let registry = support::Registry::start(Auth::Token(tokens.clone()));
    let plugin = support::plugins().into_iter().find(|plugin| plugin.info.name == "hello-world").expect("hello-world");
    let image = plugin.image().unwrap();
    let reference = reference(&registry, &plugin);

    // The token server refuses tokens without credentials or with wrong ones.
    for (auth, what) in [(RegistryAuth::Anonymous, "anonymous"), (basic(USER, "wrong"), "wrong password")] {
        let err = Registry::new(auth).push(&image, &reference).await.expect_err(what);
        assert!(err.is_unauthorized() && err.to_string().contains("bad credentials"), "{what}: {err}");
    }
    assert_eq!(*tokens.refused.lock().unwrap(), 2);
    assert!(tokens.granted.lock().unwrap().is_empty());
    // A token that the registry's certificate did not sign is refused by the registry.
    let forged = Registry::new(RegistryAuth::Bearer("e30.e30.c2ln".to_string()));
    let err = forged.push(&image, &reference).await.expect_err("forged token");
    assert!(err.is_unauthorized(), "{err}");

    let client = Registry::new(basic(USER, PASSWORD));
    let pushed = client.push(&image, &reference).await.unwrap_or_else(|err| panic!("{err}\n{}", registry.log()));
    assert_eq!(pushed.digest, image.digest());
    check_pulled(&plugin, &image, &client.pull(&reference).await.unwrap());

    let granted = tokens.granted.lock().unwrap().clone();
    assert!(granted.contains(&format!("{USER} repository:plugins/hello-world:pull,push")), "{granted:?}");
    assert!(granted.contains(&format!("{USER} repository:plugins/hello-world:pull")), "{granted:?}");
}

#[tokio::test]
async fn https_registry_with_a_private_ca() {
    let tls = Tls::new();
    let registry =
        support::Registry::start_with(Auth::Htpasswd { user: USER.into(), password: PASSWORD.into() }, Some(&tls));
    let plugin = support::plugins().into_iter().find(|plugin| plugin.info.name == "http-call").expect("http-call");
    let image = plugin.image().unwrap();
    let reference = reference(&registry, &plugin);

    let client = Registry::new(basic(USER, PASSWORD)).ca_certificate(tls.ca_pem.clone().into_bytes());
    let pushed = client.push(&image, &reference).await.unwrap_or_else(|err| panic!("{err}\n{}", registry.log()));
    assert_eq!(pushed.digest, image.digest());
    check_pulled(&plugin, &image, &client.pull(&reference).await.unwrap());

    // Another CA's certificate does not make the server's trusted, and plain
    // HTTP (the loopback default) gets no answer from a TLS listener.
    let stranger = Registry::new(basic(USER, PASSWORD)).ca_certificate(Tls::new().ca_pem.into_bytes());
    let err = stranger.pull(&reference).await.expect_err("untrusted certificate");
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");
    let err = Registry::new(basic(USER, PASSWORD)).pull(&reference).await.expect_err("plain HTTP");
    assert!(err.to_string().contains("400"), "{err}");
}

#[test]
fn the_command_pushes_every_plugin_with_credentials_from_the_environment() {
    let registry = support::Registry::start(Auth::Htpasswd { user: USER.into(), password: PASSWORD.into() });
    let plugins = support::plugins();
    let layouts = tempfile::tempdir().unwrap();
    let run = |args: &[&str], auth: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gateway-oci"));
        command.args(args).current_dir(support::root()).env_remove("OCI_TOKEN");
        if auth {
            command.env("OCI_USERNAME", USER).env("OCI_PASSWORD", PASSWORD);
        } else {
            command.env_remove("OCI_USERNAME").env_remove("OCI_PASSWORD");
        }
        let output = command.output().expect("run gateway-oci");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    };
    let out = layouts.path().to_str().unwrap();
    let prefix = format!("{}/team", registry.addr);

    let (ok, text) = run(&["push", "--out", out, "--all", &prefix, "v1"], false);
    assert!(!ok && text.contains("set OCI_USERNAME and OCI_PASSWORD"), "anonymous push must fail:\n{text}");
    let (ok, text) = run(&["push", "--out", out, "--all", &prefix, "v1"], true);
    assert!(ok, "{text}\n{}", registry.log());
    for plugin in &plugins {
        let image = layout::read(&layouts.path().join(&plugin.info.name)).unwrap();
        let line = format!("pushed {}/team/{}:v1  {}", registry.addr, plugin.info.name, image.digest());
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        assert_eq!(layout::tag(&layouts.path().join(&plugin.info.name)).unwrap(), Some(plugin.info.version.clone()));
    }

    let pulled = layouts.path().join("pulled");
    let mock = format!("{}/team/mock:v1", registry.addr);
    let (ok, text) = run(&["pull", &mock, "--out", pulled.to_str().unwrap()], true);
    assert!(ok, "{text}");
    assert!(text.contains("plugin.wasm is identical to dist/mock.wasm"), "{text}");
    let built = std::fs::read(support::root().join("dist/mock.wasm")).unwrap();
    assert!(std::fs::read(pulled.join("plugin.wasm")).unwrap() == built);
    assert!(pulled.join("spec.yaml").is_file() && pulled.join("README.md").is_file());

    let (ok, text) = run(&["push", "no-such-plugin", &mock], true);
    assert!(!ok && text.contains("no such plugin"), "{text}");
    let (ok, text) = run(&["frobnicate"], true);
    assert!(!ok && text.contains("Usage: gateway-oci"), "{text}");
}
