//! An [`Image`] on disk as an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`), which `oras`, `skopeo` and `crane`
//! read (`oras cp --from-oci-layout dist/oci/mock:0.1.0 ...`).

use crate::error::{Error, Result};
use crate::image::Image;
use crate::media;
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
const INDEX_FILE: &str = "index.json";

/// Writes `image` as the only image of the layout at `dir`, tagged `tag`
/// (annotation `org.opencontainers.image.ref.name`). Whatever was in `dir`
/// is replaced: the new layout is written beside it and renamed over it.
pub fn write(dir: &Path, image: &Image, tag: &str) -> Result<()> {
    let name = dir.file_name().ok_or_else(|| Error::Image(format!("{} is not a directory name", dir.display())))?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(Error::io(parent))?;
    let staging = parent.join(format!(".{}.partial", name.to_string_lossy()));
    remove_dir(&staging)?;

    let blobs = staging.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(Error::io(&blobs))?;
    write_file(&staging.join(LAYOUT_FILE), LAYOUT.as_bytes())?;
    write_file(&blob_path(&staging, image.digest())?, image.manifest_json())?;
    for (descriptor, data) in image.blobs() {
        write_file(&blob_path(&staging, &descriptor.digest)?, data)?;
    }
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(media::INDEX.to_string()),
        manifests: vec![ImageIndexEntry {
            media_type: media::MANIFEST.to_string(),
            digest: image.digest().to_string(),
            size: image.manifest_json().len() as i64,
            platform: None,
            annotations: Some(BTreeMap::from([(media::REF_NAME_ANNOTATION.to_string(), tag.to_string())])),
            artifact_type: None,
        }],
        artifact_type: None,
        annotations: None,
    };
    let index = serde_json::to_vec(&index).map_err(|err| Error::Image(format!("cannot write index.json: {err}")))?;
    write_file(&staging.join(INDEX_FILE), &index)?;

    remove_dir(dir)?;
    fs::rename(&staging, dir).map_err(Error::io(dir))
}

/// Reads the only image of the layout at `dir` (checking every digest).
pub fn read(dir: &Path) -> Result<Image> {
    let layout = read_file(&dir.join(LAYOUT_FILE))?;
    let version: serde_json::Value = serde_json::from_slice(&layout)
        .map_err(|err| Error::Image(format!("{}: {err}", dir.join(LAYOUT_FILE).display())))?;
    if version.get("imageLayoutVersion").and_then(serde_json::Value::as_str) != Some("1.0.0") {
        return Err(Error::Image(format!("{}: unknown imageLayoutVersion", dir.join(LAYOUT_FILE).display())));
    }
    let index: OciImageIndex = serde_json::from_slice(&read_file(&dir.join(INDEX_FILE))?)
        .map_err(|err| Error::Image(format!("{}: {err}", dir.join(INDEX_FILE).display())))?;
    let [entry] = index.manifests.as_slice() else {
        return Err(Error::Image(format!(
            "{} lists {} images, not one",
            dir.join(INDEX_FILE).display(),
            index.manifests.len()
        )));
    };
    let manifest_json = read_file(&blob_path(dir, &entry.digest)?)?;
    let manifest: oci_client::manifest::OciImageManifest = serde_json::from_slice(&manifest_json)
        .map_err(|err| Error::Image(format!("manifest {}: {err}", entry.digest)))?;
    let config = read_blob(dir, &manifest.config)?;
    let layers = manifest.layers.iter().map(|layer| read_blob(dir, layer)).collect::<Result<Vec<_>>>()?;
    let image = Image::from_parts(manifest_json, config, layers)?;
    if image.digest() != entry.digest {
        return Err(Error::Image(format!("manifest blob {} has digest {}", entry.digest, image.digest())));
    }
    Ok(image)
}

/// The tag `index.json` gives the image of the layout at `dir`, if any.
pub fn tag(dir: &Path) -> Result<Option<String>> {
    let index: OciImageIndex = serde_json::from_slice(&read_file(&dir.join(INDEX_FILE))?)
        .map_err(|err| Error::Image(format!("{}: {err}", dir.join(INDEX_FILE).display())))?;
    Ok(index
        .manifests
        .first()
        .and_then(|entry| entry.annotations.as_ref())
        .and_then(|annotations| annotations.get(media::REF_NAME_ANNOTATION))
        .cloned())
}

fn read_blob(dir: &Path, descriptor: &OciDescriptor) -> Result<Vec<u8>> {
    read_file(&blob_path(dir, &descriptor.digest)?)
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .ok_or_else(|| Error::Image(format!("unsupported digest {digest:?}")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).map_err(Error::io(path))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(Error::io(path))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir)(err)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::PluginInfo;

    fn image() -> Image {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.readme = "# mock\n".into();
        Image::build(&info, b"\0asm\x01\0\0\0").unwrap()
    }

    #[test]
    fn writes_and_reads_back() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("oci/mock");
        let image = image();
        write(&dir, &image, "0.1.0").unwrap();
        assert_eq!(read(&dir).unwrap(), image);
        assert_eq!(tag(&dir).unwrap().as_deref(), Some("0.1.0"));
        assert_eq!(fs::read_to_string(dir.join("oci-layout")).unwrap(), LAYOUT);
        // config, 3 layers and the manifest
        assert_eq!(fs::read_dir(dir.join("blobs/sha256")).unwrap().count(), 5);
        // Rewriting replaces stale content and leaves no staging directory.
        fs::write(dir.join("blobs/sha256/stale"), "x").unwrap();
        write(&dir, &image, "0.1.0").unwrap();
        assert_eq!(fs::read_dir(dir.join("blobs/sha256")).unwrap().count(), 5);
        assert_eq!(fs::read_dir(temp.path().join("oci")).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let image = image();
        write(temp.path().join("mock").as_path(), &image, "0.1.0").unwrap();
        let (readme, _) = image.layers().nth(1).unwrap();
        let path = blob_path(&temp.path().join("mock"), &readme.digest).unwrap();
        fs::write(path, "# tampered\n").unwrap();
        assert!(read(&temp.path().join("mock")).is_err());
    }
}
