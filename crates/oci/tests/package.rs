//! Packaging the built plugins (`dist/*.wasm`, from `cargo xtask build`):
//! reproducible to the byte, and laid out as Higress and Istio expect.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use gateway_oci::{layout, media};
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

#[test]
fn packaging_is_reproducible_to_the_byte() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for plugin in support::plugins() {
        let image = plugin.image().unwrap();
        layout::write(&first.path().join(&plugin.info.name), &image, &plugin.info.version).unwrap();
        // A second, independent run: workspace metadata read again, image built again.
        let again = gateway_oci::workspace::plugin(&support::root(), &plugin.info.name).unwrap().image().unwrap();
        assert_eq!(again.digest(), image.digest(), "{}", plugin.info.name);
        layout::write(&second.path().join(&plugin.info.name), &again, &plugin.info.version).unwrap();
    }
    let (a, b) = (files(first.path()), files(second.path()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "two packagings differ");
    assert!(a.keys().any(|path| path.ends_with("index.json")));
}

#[test]
fn every_plugin_image_has_the_layout_gateways_expect() {
    for plugin in support::plugins() {
        let image = plugin.image().unwrap();
        let name = &plugin.info.name;
        let manifest = image.manifest();
        assert_eq!(manifest.schema_version, 2);
        assert_eq!(manifest.config.media_type, media::CONFIG);
        let layers: Vec<(&str, Option<&str>)> = manifest
            .layers
            .iter()
            .map(|layer| {
                let title = layer.annotations.as_ref().and_then(|a| a.get(media::TITLE_ANNOTATION));
                (layer.media_type.as_str(), title.map(String::as_str))
            })
            .collect();
        assert_eq!(
            layers,
            [
                (media::SPEC_LAYER, Some("spec.yaml")),
                (media::README_LAYER, Some("README.md")),
                (media::PLUGIN_LAYER, Some("plugin.tar.gz")),
            ],
            "{name}"
        );
        let built = std::fs::read(&plugin.wasm).unwrap();
        assert!(image.plugin_wasm().unwrap() == built, "{name}: plugin.wasm");
        // The plugin layer holds exactly one entry, plugin.wasm, with fixed metadata.
        let (_, last) = image.layers().last().unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(last));
        let headers: Vec<(String, u64, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let header = entry.unwrap().header().clone();
                let path = header.path().unwrap().to_string_lossy().into_owned();
                (path, header.mtime().unwrap(), header.uid().unwrap(), header.mode().unwrap())
            })
            .collect();
        assert_eq!(headers, [("plugin.wasm".to_string(), 0, 0, 0o644)], "{name}");
        // gzip without a timestamp
        assert_eq!(last.get(4..8), Some(&[0u8; 4][..]), "{name}: gzip mtime");
    }
}
