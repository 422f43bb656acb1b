//! What a plugin module asks of its host, read from its import section.

use crate::error::{Context, Error, Result};
use std::path::Path;

/// The first import upstream Envoy does not have (see `gateway-host-imports`), if any.
pub(crate) fn higress_only_import(path: &Path) -> Result<Option<String>> {
    let bytes = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
    gateway_host_imports::higress_only_import(&bytes).map_err(|err| Error::new(format!("{}: {err}", path.display())))
}

#[cfg(test)]
mod tests {
    /// A module importing `env.<name>` as a function `() -> ()`.
    fn module_importing(name: &str) -> Vec<u8> {
        let mut import = vec![1, 3];
        import.extend(b"env");
        import.push(name.len() as u8);
        import.extend(name.as_bytes());
        import.extend([0, 0]);
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.extend([1, 4, 1, 0x60, 0, 0]);
        bytes.extend([2, import.len() as u8]);
        bytes.extend(import);
        bytes
    }

    #[test]
    fn redis_imports_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let redis = dir.path().join("redis.wasm");
        std::fs::write(&redis, module_importing("proxy_redis_init")).unwrap();
        assert_eq!(super::higress_only_import(&redis).unwrap().as_deref(), Some("env.proxy_redis_init"));
        let plain = dir.path().join("plain.wasm");
        std::fs::write(&plain, module_importing("proxy_log")).unwrap();
        assert_eq!(super::higress_only_import(&plain).unwrap(), None);
        std::fs::write(&plain, b"not wasm").unwrap();
        assert!(super::higress_only_import(&plain).is_err());
    }

    #[test]
    fn built_plugins_load_on_envoy() {
        for name in ["hello-world", "mock", "http-call"] {
            let module = crate::paths::module(name).unwrap();
            let import = super::higress_only_import(&module).unwrap();
            assert_eq!(
                import,
                None,
                "{} imports a Higress-only call, so upstream Envoy refuses it; was it built in one cargo \
                 invocation with a plugin that turns on gateway-sdk's `redis` feature (cargo unifies features)?",
                module.display()
            );
        }
    }
}
