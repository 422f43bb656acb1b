//! The host functions only Higress's gateway has, in one place.
//!
//! Upstream Envoy and Istio refuse to load a module that imports any of them
//! (section 4 of the Higress host reference). `cargo xtask build` reads the
//! list to write each module's `hosts` in `dist/manifest.json`, the
//! end-to-end suite to leave such filters out of an upstream Envoy, and the
//! test host to refuse such a module when it plays upstream Envoy: one list,
//! so the three never disagree.

/// Higress's Redis calls: `proxy_redis_init`, `proxy_redis_call`, ...
pub const HIGRESS_ONLY_PREFIX: &str = "proxy_redis_";

/// Other Higress-only host functions.
pub const HIGRESS_ONLY: &[&str] =
    &["proxy_get_upstream_hosts", "proxy_set_upstream_override_host", "proxy_inject_encoded_data_to_filter_chain"];

/// Whether the import `module.name` is a host function only Higress has.
pub fn is_higress_only(module: &str, name: &str) -> bool {
    module == "env" && (name.starts_with(HIGRESS_ONLY_PREFIX) || HIGRESS_ONLY.contains(&name))
}

/// `(module, name)` of every import of a Wasm module.
#[cfg(feature = "parse")]
pub fn imports(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    use wasmparser::{Parser, Payload};
    let mut found = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|err| format!("not a Wasm module: {err}"))?;
        if let Payload::ImportSection(reader) = payload {
            for import in reader.into_imports() {
                let import = import.map_err(|err| format!("bad import section: {err}"))?;
                found.push((import.module.to_string(), import.name.to_string()));
            }
        }
    }
    Ok(found)
}

/// The first import of the module that only Higress has, as `module.name`.
#[cfg(feature = "parse")]
pub fn higress_only_import(bytes: &[u8]) -> Result<Option<String>, String> {
    Ok(imports(bytes)?
        .into_iter()
        .find(|(module, name)| is_higress_only(module, name))
        .map(|(module, name)| format!("{module}.{name}")))
}

#[cfg(all(test, feature = "parse"))]
mod tests {
    use super::*;

    fn module_importing(name: &str) -> Vec<u8> {
        let wat = format!(
            r#"(module (import "env" "memory" (memory 1 2)) (import "env" "g" (global i32))
                       (import "env" "{name}" (func)))"#
        );
        wat::parse_str(wat).unwrap_or_default()
    }

    #[test]
    fn imports_tell_the_hosts() -> Result<(), String> {
        let redis = module_importing("proxy_redis_init");
        assert_eq!(imports(&redis)?.len(), 3);
        assert_eq!(higress_only_import(&redis)?.as_deref(), Some("env.proxy_redis_init"));
        let upstream = module_importing("proxy_get_upstream_hosts");
        assert_eq!(higress_only_import(&upstream)?.as_deref(), Some("env.proxy_get_upstream_hosts"));
        assert_eq!(higress_only_import(&module_importing("proxy_log"))?, None);
        assert!(!is_higress_only("wasi_snapshot_preview1", "proxy_redis_init"));
        assert!(imports(b"not wasm").is_err());
        let mut truncated = module_importing("proxy_log");
        truncated.pop();
        assert!(imports(&truncated).is_err());
        Ok(())
    }
}
