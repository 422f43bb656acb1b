//! A plugin image in memory: manifest, configuration and layers, with the
//! digests that name them.

use crate::error::{Error, Result};
use crate::layer;
use crate::media;
use crate::plugin::PluginInfo;
use crate::spec;
use oci_client::config::{Architecture, ConfigFile, Os, Rootfs};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `sha256:<hex>` of some bytes, as OCI names blobs.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image: the manifest's exact bytes (its digest names the image),
/// the configuration blob and the layer blobs in manifest order.
///
/// Every constructor checks that the descriptors match the blobs, so an
/// `Image` is always consistent.
#[derive(Debug, Clone)]
pub struct Image {
    manifest_json: Vec<u8>,
    digest: String,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifest: OciImageManifest,
}

/// Images are equal when their bytes are (the parsed manifest follows from them).
impl PartialEq for Image {
    fn eq(&self, other: &Image) -> bool {
        self.manifest_json == other.manifest_json && self.config == other.config && self.layers == other.layers
    }
}
impl Eq for Image {}

impl Image {
    /// Builds the image of a plugin, in the layout Higress and Istio accept:
    ///
    /// 1. `spec.yaml` (`application/vnd.module.wasm.spec.v1+yaml`),
    /// 2. `README.md` (`application/vnd.module.wasm.doc.v1+markdown`),
    /// 3. last, `plugin.wasm` in a tar+gzip (`application/vnd.oci.image.layer.v1.tar+gzip`),
    ///
    /// with an OCI image configuration for `wasm`/`wasip1` and the manifest
    /// annotation `module.wasm.image/variant: compat`. Nothing depends on the
    /// clock or the machine: the same inputs give the same digests.
    pub fn build(info: &PluginInfo, wasm: &[u8]) -> Result<Image> {
        if !wasm.starts_with(b"\0asm") {
            return Err(Error::plugin(&info.name, "plugin.wasm is not a WebAssembly module"));
        }
        let spec_yaml = spec::render(info)?.into_bytes();
        if info.readme.trim().is_empty() {
            return Err(Error::plugin(&info.name, "the README is empty (Higress requires README.md)"));
        }
        let readme = info.readme.clone().into_bytes();
        let plugin = layer::plugin_layer(wasm)?;

        let layers = vec![
            (media::SPEC_LAYER, media::SPEC_FILE, spec_yaml.clone(), digest_of(&spec_yaml)),
            (media::README_LAYER, media::README_FILE, readme.clone(), digest_of(&readme)),
            (media::PLUGIN_LAYER, media::PLUGIN_ARCHIVE_FILE, plugin.compressed, digest_of(&plugin.tar)),
        ];
        // One diff_id per layer, in order: the digest of the layer uncompressed
        // (the raw file for the single-file layers).
        let config = ConfigFile {
            architecture: Architecture::Other(media::ARCHITECTURE.to_string()),
            os: Os::Other(media::OS.to_string()),
            rootfs: Rootfs { diff_ids: layers.iter().map(|layer| layer.3.clone()).collect(), ..Rootfs::default() },
            ..ConfigFile::default()
        };
        let config =
            serde_json::to_vec(&config).map_err(|err| Error::Image(format!("cannot write the config: {err}")))?;

        let mut annotations = BTreeMap::from([
            (media::VARIANT_ANNOTATION.to_string(), media::VARIANT_COMPAT.to_string()),
            ("org.opencontainers.image.title".to_string(), info.title.clone()),
            ("org.opencontainers.image.version".to_string(), info.version.clone()),
        ]);
        if !info.description.is_empty() {
            annotations.insert("org.opencontainers.image.description".to_string(), info.description.clone());
        }
        if let Some(license) = &info.license {
            annotations.insert("org.opencontainers.image.licenses".to_string(), license.clone());
        }
        if let Some(source) = &info.source {
            annotations.insert("org.opencontainers.image.source".to_string(), source.clone());
        }
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(media::MANIFEST.to_string()),
            config: descriptor(media::CONFIG, &config, None),
            layers: layers
                .iter()
                .map(|(media_type, title, data, _)| descriptor(media_type, data, Some(title)))
                .collect(),
            subject: None,
            artifact_type: None,
            annotations: Some(annotations),
        };
        let manifest_json =
            serde_json::to_vec(&manifest).map_err(|err| Error::Image(format!("cannot write the manifest: {err}")))?;
        let image = Image::from_parts(manifest_json, config, layers.into_iter().map(|layer| layer.2).collect())?;
        image.check_plugin()?;
        Ok(image)
    }

    /// Assembles an image from a manifest's bytes and the blobs it names,
    /// checking every digest and size. It need not be a plugin image: see
    /// [`Image::check_plugin`].
    pub fn from_parts(manifest_json: Vec<u8>, config: Vec<u8>, layers: Vec<Vec<u8>>) -> Result<Image> {
        let manifest: OciImageManifest = serde_json::from_slice(&manifest_json)
            .map_err(|err| Error::Image(format!("the manifest is not an OCI image manifest: {err}")))?;
        if manifest.schema_version != 2 {
            return Err(Error::Image(format!("schemaVersion is {}, not 2", manifest.schema_version)));
        }
        if manifest.media_type.as_deref().is_some_and(|media_type| media_type != media::MANIFEST) {
            return Err(Error::Image(format!(
                "manifest media type {:?} is not {}",
                manifest.media_type,
                media::MANIFEST
            )));
        }
        check_blob("config", &manifest.config, &config)?;
        if manifest.layers.len() != layers.len() {
            return Err(Error::Image(format!("{} layer blobs for {} layers", layers.len(), manifest.layers.len())));
        }
        for (index, (descriptor, data)) in manifest.layers.iter().zip(&layers).enumerate() {
            check_blob(&format!("layer {index}"), descriptor, data)?;
        }
        let digest = digest_of(&manifest_json);
        Ok(Image { manifest_json, digest, config, layers, manifest })
    }

    /// Checks what Istio and Higress need: the last layer is a tar+gzip
    /// holding `plugin.wasm`, and the manifest says it is the compat variant.
    pub fn check_plugin(&self) -> Result<()> {
        let Some(last) = self.manifest().layers.last() else {
            return Err(Error::Image("the image has no layers".to_string()));
        };
        if last.media_type != media::PLUGIN_LAYER {
            return Err(Error::Image(format!(
                "the last layer is {}, Istio and Higress need {}",
                last.media_type,
                media::PLUGIN_LAYER
            )));
        }
        let variant = self.manifest().annotations.as_ref().and_then(|a| a.get(media::VARIANT_ANNOTATION));
        if variant.map(String::as_str) != Some(media::VARIANT_COMPAT) {
            return Err(Error::Image(format!(
                "the manifest lacks {}={}",
                media::VARIANT_ANNOTATION,
                media::VARIANT_COMPAT
            )));
        }
        self.plugin_wasm().map(drop)
    }

    /// The manifest digest (`sha256:...`): what `WasmPlugin.sha256` and
    /// `url: oci://...@sha256:...` pin.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The manifest exactly as stored and pushed.
    pub fn manifest_json(&self) -> &[u8] {
        &self.manifest_json
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &OciImageManifest {
        &self.manifest
    }

    /// The configuration blob.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// The layers in manifest order, each with its descriptor.
    pub fn layers(&self) -> impl Iterator<Item = (&OciDescriptor, &[u8])> {
        self.manifest().layers.iter().zip(self.layers.iter().map(Vec::as_slice))
    }

    /// Every blob (configuration first, then the layers) with its descriptor.
    pub fn blobs(&self) -> impl Iterator<Item = (&OciDescriptor, &[u8])> {
        std::iter::once((&self.manifest().config, self.config.as_slice())).chain(self.layers())
    }

    /// The first layer of a media type.
    pub fn layer(&self, media_type: &str) -> Option<&[u8]> {
        self.layers().find(|(descriptor, _)| descriptor.media_type == media_type).map(|(_, data)| data)
    }

    /// `plugin.wasm` from the last layer, as Istio and Higress read it.
    pub fn plugin_wasm(&self) -> Result<Vec<u8>> {
        let (_, data) = self.layers().last().ok_or_else(|| Error::Image("the image has no layers".to_string()))?;
        layer::extract_plugin(data)
    }

    /// `spec.yaml`, if the image has one.
    pub fn spec_yaml(&self) -> Option<&str> {
        self.layer(media::SPEC_LAYER).and_then(|data| std::str::from_utf8(data).ok())
    }

    /// `README.md`, if the image has one.
    pub fn readme(&self) -> Option<&str> {
        self.layer(media::README_LAYER).and_then(|data| std::str::from_utf8(data).ok())
    }
}

fn descriptor(media_type: &str, data: &[u8], title: Option<&str>) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest: digest_of(data),
        size: data.len() as i64,
        annotations: title.map(|title| BTreeMap::from([(media::TITLE_ANNOTATION.to_string(), title.to_string())])),
        ..OciDescriptor::default()
    }
}

fn check_blob(what: &str, descriptor: &OciDescriptor, data: &[u8]) -> Result<()> {
    let digest = digest_of(data);
    if descriptor.digest != digest {
        return Err(Error::Image(format!("{what}: digest {digest} where the manifest says {}", descriptor.digest)));
    }
    if usize::try_from(descriptor.size).ok() != Some(data.len()) {
        return Err(Error::Image(format!("{what}: {} bytes where the manifest says {}", data.len(), descriptor.size)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PluginInfo {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.readme = "# mock\n".into();
        info
    }

    const WASM: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn build_is_deterministic_and_consistent() {
        let image = Image::build(&info(), WASM).unwrap();
        assert_eq!(image, Image::build(&info(), WASM).unwrap());
        assert_eq!(image.digest(), digest_of(image.manifest_json()));
        assert_eq!(image.plugin_wasm().unwrap(), WASM);
        let types: Vec<_> = image.layers().map(|(d, _)| d.media_type.as_str()).collect();
        assert_eq!(types, [media::SPEC_LAYER, media::README_LAYER, media::PLUGIN_LAYER]);
        assert_eq!(image.readme(), Some("# mock\n"));
        let config: serde_json::Value = serde_json::from_slice(image.config()).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip1");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(3));
        let again = Image::from_parts(image.manifest_json().to_vec(), image.config().to_vec(), image.layers.clone());
        assert_eq!(again.unwrap(), image);
    }

    #[test]
    fn other_input_other_digest() {
        let image = Image::build(&info(), WASM).unwrap();
        let mut other = info();
        other.version = "0.1.1".into();
        assert_ne!(Image::build(&other, WASM).unwrap().digest(), image.digest());
        assert!(Image::build(&info(), b"not wasm").is_err());
    }

    #[test]
    fn tampered_blobs_are_refused() {
        let image = Image::build(&info(), WASM).unwrap();
        let mut layers = image.layers.clone();
        layers[1] = b"# changed\n".to_vec();
        let err = Image::from_parts(image.manifest_json().to_vec(), image.config().to_vec(), layers).unwrap_err();
        assert!(err.to_string().contains("layer 1: digest"), "{err}");
        let err = Image::from_parts(image.manifest_json().to_vec(), b"{}".to_vec(), image.layers.clone()).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
    }
}
