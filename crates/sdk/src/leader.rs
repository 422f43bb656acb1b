//! Leader election among the VMs of one plugin: a lease in shared data.
//!
//! Each Envoy worker runs its own VM; work that must happen once (refreshing
//! a token for all of them, say) goes to the VM that holds the lease. The
//! lease is the shared value `higress_wasm_vm_lease:<fingerprint>` (the
//! fingerprint tells apart plugins and configurations), holding
//! `{"vmID":"<id>","timestamp":<seconds>}` as Go's wrapper writes it. A VM
//! takes it when there is none or when its holder has not renewed it for
//! [`LEASE_EXPIRY`]; the holder renews it each time it asks.
//!
//! Unlike Go's, a VM that writes the lease reads it back: two VMs that
//! found no lease at once both write it, and only the one whose write stayed
//! leads. Writes over an existing lease carry its version (compare-and-swap),
//! so of two VMs taking over an expired lease only one succeeds.

use crate::json::{self, Json};
use crate::shared::{self, Cas, SharedError};
use std::time::Duration;

/// How long a lease stays its holder's without being renewed (Go's: 60 s).
pub const LEASE_EXPIRY: Duration = Duration::from_secs(60);

const KEY_PREFIX: &str = "higress_wasm_vm_lease";

/// The shared-data key of the lease for plugins with this fingerprint.
pub(crate) fn lease_key(fingerprint: &str) -> String {
    format!("{KEY_PREFIX}:{fingerprint}")
}

/// A lease as stored: who holds it and when they last renewed it.
#[derive(Debug, PartialEq, Eq)]
struct Lease {
    vm_id: String,
    timestamp: u64,
}

impl Lease {
    fn parse(bytes: &[u8]) -> Option<Lease> {
        let Ok(Json::Object(fields)) = json::parse(bytes) else { return None };
        let field = |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value);
        match (field("vmID"), field("timestamp")) {
            (Some(Json::String(vm_id)), Some(Json::Number(timestamp))) => {
                Some(Lease { vm_id: vm_id.clone(), timestamp: timestamp.parse().ok()? })
            }
            _ => None,
        }
    }

    fn to_json(&self) -> String {
        // VM ids are the SDK's own (hex digits), so no escaping is needed.
        format!(r#"{{"vmID":"{}","timestamp":{}}}"#, self.vm_id, self.timestamp)
    }
}

/// Takes or renews the lease under `key` for `vm_id` at `now` (seconds
/// since the epoch); whether this VM holds it afterwards.
pub(crate) fn acquire_or_renew(key: &str, vm_id: &str, now: u64) -> Result<bool, SharedError> {
    let mine = Lease { vm_id: vm_id.to_string(), timestamp: now };
    let cas: Option<Cas> = match shared::get(key)? {
        None => None,
        Some((bytes, cas)) => match Lease::parse(&bytes) {
            Some(held) if held.vm_id != vm_id && now.saturating_sub(held.timestamp) <= LEASE_EXPIRY.as_secs() => {
                return Ok(false);
            }
            // Ours, expired, or unreadable: take it, if no one wrote since.
            _ => Some(cas),
        },
    };
    match shared::set(key, mine.to_json().as_bytes(), cas) {
        Ok(()) => {}
        Err(SharedError::CasMismatch) => return Ok(false),
        Err(err) => return Err(err),
    }
    if cas.is_some() {
        return Ok(true);
    }
    // Created without a version to check: another VM may have created it too.
    Ok(shared::get(key)?.and_then(|(bytes, _)| Lease::parse(&bytes)).is_some_and(|held| held.vm_id == vm_id))
}

/// This VM's id: random, chosen once per VM.
pub(crate) fn vm_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // The standard library seeds `RandomState` from the host's random source.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(crate::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
        format!("{:016x}", hasher.finish())
    })
}

/// A stable fingerprint of a plugin's name and configuration (FNV-1a, 64
/// bits): the VMs of one plugin with one configuration share it.
pub(crate) fn fingerprint(name: &str, configuration: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes().iter().chain([0u8].iter()).chain(configuration) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_read_back_what_they_write() {
        let lease = Lease { vm_id: "00ff".into(), timestamp: 1_700_000_000 };
        assert_eq!(lease.to_json(), r#"{"vmID":"00ff","timestamp":1700000000}"#);
        assert_eq!(Lease::parse(lease.to_json().as_bytes()), Some(lease));
        // Go's wrapper writes the same fields.
        assert_eq!(
            Lease::parse(br#"{"timestamp": 5, "vmID": "a-b"}"#),
            Some(Lease { vm_id: "a-b".into(), timestamp: 5 })
        );
        assert_eq!(Lease::parse(b"not json"), None);
        assert_eq!(Lease::parse(br#"{"vmID": 3, "timestamp": 5}"#), None);
    }

    #[test]
    fn fingerprints_tell_configurations_apart() {
        assert_eq!(fingerprint("p", b"{}"), fingerprint("p", b"{}"));
        assert_ne!(fingerprint("p", b"{}"), fingerprint("p", b"{ }"));
        assert_ne!(fingerprint("p", b"{}"), fingerprint("q", b"{}"));
        assert_eq!(lease_key("ab"), "higress_wasm_vm_lease:ab");
    }
}
