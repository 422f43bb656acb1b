//! The plugin layer: `plugin.wasm` in a gzipped tar, built byte-for-byte
//! reproducibly (fixed header fields, gzip without timestamp or file name).

use crate::error::{Error, Result};
use crate::media::PLUGIN_FILE;
use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};
use std::io::{Read, Write};

/// The largest `plugin.wasm` [`extract_plugin`] reads (Istio's limit too).
pub const MAX_PLUGIN_SIZE: u64 = 256 * 1024 * 1024;

/// A built plugin layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLayer {
    /// The layer blob: tar+gzip.
    pub compressed: Vec<u8>,
    /// The uncompressed tar (its digest is the layer's `diff_id`).
    pub tar: Vec<u8>,
}

/// Packs `wasm` as `plugin.wasm`: a ustar entry with mode 0644, owner 0:0,
/// mtime 0 and no user or group names; gzip at the best level with mtime 0,
/// no file name and OS "unknown". The same bytes in give the same bytes out.
pub fn plugin_layer(wasm: &[u8]) -> Result<PluginLayer> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(wasm.len() as u64);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, PLUGIN_FILE, wasm).map_err(|err| layer_error("cannot write the tar", err))?;
    let tar = builder.into_inner().map_err(|err| layer_error("cannot finish the tar", err))?;

    let mut gzip = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    gzip.write_all(&tar).map_err(|err| layer_error("cannot gzip the tar", err))?;
    let compressed = gzip.finish().map_err(|err| layer_error("cannot gzip the tar", err))?;
    Ok(PluginLayer { compressed, tar })
}

/// Reads `plugin.wasm` from a tar+gzip layer the way Istio's fetcher does: the
/// first entry whose base name is `plugin.wasm`.
pub fn extract_plugin(layer: &[u8]) -> Result<Vec<u8>> {
    let mut archive = tar::Archive::new(GzDecoder::new(layer).take(MAX_PLUGIN_SIZE + 64 * 1024));
    let entries = archive.entries().map_err(|err| layer_error("the plugin layer is not a tar+gzip", err))?;
    for entry in entries {
        let entry = entry.map_err(|err| layer_error("the plugin layer is not a tar+gzip", err))?;
        let path = entry.path().map_err(|err| layer_error("bad path in the plugin layer", err))?;
        if path.file_name().is_some_and(|name| name == PLUGIN_FILE) {
            if entry.size() > MAX_PLUGIN_SIZE {
                return Err(Error::Image(format!("{PLUGIN_FILE} is larger than {MAX_PLUGIN_SIZE} bytes")));
            }
            let mut wasm = Vec::new();
            entry
                .take(MAX_PLUGIN_SIZE)
                .read_to_end(&mut wasm)
                .map_err(|err| layer_error("cannot read plugin.wasm", err))?;
            return Ok(wasm);
        }
    }
    Err(Error::Image(format!("the last layer holds no {PLUGIN_FILE}")))
}

fn layer_error(what: &str, err: std::io::Error) -> Error {
    Error::Image(format!("{what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: &[u8] = b"\0asm\x01\0\0\0 not really a module";

    #[test]
    fn round_trips_and_is_reproducible() {
        let first = plugin_layer(WASM).unwrap();
        let second = plugin_layer(WASM).unwrap();
        assert_eq!(first, second);
        assert_eq!(extract_plugin(&first.compressed).unwrap(), WASM);
        assert_ne!(plugin_layer(b"other").unwrap().compressed, first.compressed);
    }

    #[test]
    fn headers_are_fixed() {
        let layer = plugin_layer(WASM).unwrap();
        // gzip: magic, deflate, no flags (so no file name), mtime 0, OS 255.
        assert_eq!(layer.compressed.get(..4), Some(&[0x1f, 0x8b, 8, 0][..]));
        assert_eq!(layer.compressed.get(4..8), Some(&[0, 0, 0, 0][..]));
        assert_eq!(layer.compressed.get(9), Some(&255));
        let mut archive = tar::Archive::new(&layer.tar[..]);
        let entries: Vec<_> = archive.entries().unwrap().map(|entry| entry.unwrap().header().clone()).collect();
        assert_eq!(entries.len(), 1);
        let header = &entries[0];
        assert_eq!(header.path().unwrap().to_str(), Some("plugin.wasm"));
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.username().unwrap(), Some(""));
    }

    #[test]
    fn refuses_layers_without_plugin() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(2);
        builder.append_data(&mut header, "other.wasm", &b"hi"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let mut gzip = GzBuilder::new().write(Vec::new(), Compression::fast());
        gzip.write_all(&tar).unwrap();
        let err = extract_plugin(&gzip.finish().unwrap()).unwrap_err();
        assert!(err.to_string().contains("no plugin.wasm"), "{err}");
        assert!(extract_plugin(b"not gzip").is_err());
    }
}
