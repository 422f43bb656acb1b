//! Data shared by every VM of the plugin on the host: key-value data with
//! compare-and-swap, and queues.
//!
//! Each Envoy worker runs its own VM, and hooks of one worker never see
//! another's memory; what all of them must see (a token a tick refreshed, a
//! counter) goes here. This is what Go's `proxywasm.GetSharedData` /
//! `SetSharedData` and the shared queue functions give, with every status
//! as a value.
//!
//! ```
//! use gateway_sdk::shared::{self, SharedError};
//!
//! /// Counts a hit across workers: reads the value and its version, writes it
//! /// back only if no one else wrote in between, else reads again (a few times
//! /// at most: a loop without a bound would hang the VM on a host that always
//! /// refuses).
//! fn count_hit() -> Result<(), SharedError> {
//!     for _ in 0..100 {
//!         let (count, cas) = match shared::get("hits")? {
//!             Some((bytes, cas)) => (String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0), Some(cas)),
//!             None => (0, None),
//!         };
//!         match shared::set("hits", (count + 1).to_string().as_bytes(), cas) {
//!             Err(SharedError::CasMismatch) => continue,
//!             other => return other,
//!         }
//!     }
//!     Err(SharedError::CasMismatch)
//! }
//! ```

use crate::host::{self, Status};
use std::fmt;

/// The version of a shared value, returned with it by [`get`]: pass it to
/// [`set`] to write only if the value has not changed since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cas(pub u32);

/// Why shared data or a queue could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedError {
    /// [`set`] with a [`Cas`]: someone wrote the value since it was read.
    CasMismatch,
    /// The host refused, with this status.
    Host(Status),
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedError::CasMismatch => f.write_str("the shared value changed since it was read"),
            SharedError::Host(status) => write!(f, "the host returned {status}"),
        }
    }
}

impl std::error::Error for SharedError {}

/// The value of `key` and its version; `None` when no VM set it.
pub fn get(key: &str) -> Result<Option<(Vec<u8>, Cas)>, SharedError> {
    match host::get_shared_data(key) {
        Ok(found) => Ok(found.map(|(value, cas)| (value, Cas(cas)))),
        Err(status) => Err(SharedError::Host(status)),
    }
}

/// Sets `key` to `value`. With `Some(cas)`, only if the value still has that
/// version ([`SharedError::CasMismatch`] if not); with `None`, whatever it is.
pub fn set(key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), SharedError> {
    match host::set_shared_data(key, value, cas.map_or(0, |c| c.0)) {
        Ok(()) => Ok(()),
        Err(Status::CAS_MISMATCH) => Err(SharedError::CasMismatch),
        Err(status) => Err(SharedError::Host(status)),
    }
}

/// A queue shared by the VMs of a plugin: any VM enqueues, and the VM that
/// registered it is told by [`Plugin::on_queue_ready`](crate::Plugin::on_queue_ready).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedQueue {
    id: u32,
}

impl SharedQueue {
    /// Creates (or finds) the queue `name` of this VM's id, and makes this
    /// VM the one told when data arrives.
    pub fn register(name: &str) -> Result<SharedQueue, SharedError> {
        host::register_shared_queue(name).map(|id| SharedQueue { id }).map_err(SharedError::Host)
    }

    /// The queue `name` registered by a VM with id `vm_id` (the `vm_id` of
    /// Envoy's `vm_config`; empty for the default); `None` when there is none.
    pub fn resolve(vm_id: &str, name: &str) -> Result<Option<SharedQueue>, SharedError> {
        match host::resolve_shared_queue(vm_id, name) {
            Ok(id) => Ok(Some(SharedQueue { id })),
            Err(Status::NOT_FOUND) => Ok(None),
            Err(status) => Err(SharedError::Host(status)),
        }
    }

    /// The queue with the host's id `id` (as [`Plugin::on_queue_ready`](crate::Plugin::on_queue_ready) gets it).
    pub fn from_id(id: u32) -> SharedQueue {
        SharedQueue { id }
    }

    /// The host's id of the queue.
    pub fn id(self) -> u32 {
        self.id
    }

    /// Adds `data` at the end of the queue.
    pub fn enqueue(self, data: &[u8]) -> Result<(), SharedError> {
        host::enqueue_shared_queue(self.id, data).map_err(SharedError::Host)
    }

    /// Takes the first item; `None` when the queue is empty.
    pub fn dequeue(self) -> Result<Option<Vec<u8>>, SharedError> {
        match host::dequeue_shared_queue(self.id) {
            Ok(item) => Ok(Some(item)),
            Err(Status::EMPTY) => Ok(None),
            Err(status) => Err(SharedError::Host(status)),
        }
    }
}
