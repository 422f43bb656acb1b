//! Host properties, typed: reading them in the form the host serialises
//! each one, writing them, and the Higress properties the Go SDK writes.
//!
//! Envoy hands a property out serialised by its type: strings as their bytes,
//! integers (`response.code`, `request.size`) as 8 little-endian bytes,
//! booleans (`connection.mtls`) as one byte, durations and timestamps
//! (`request.duration`, `request.time`) as 8 little-endian bytes of
//! nanoseconds, and string maps as a header map (but Envoy 1.40 serialises
//! its header attributes, `request.headers` and `response.headers`, as
//! empty maps: read headers with the header calls). [`Request::property_as`]
//! decodes one into the type asked for; a value of another form is `None`,
//! never a misread.
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = ();
//! #     type State = ();
//! # }
//! # fn demo(req: &mut Request<MyPlugin>) {
//! let code: Option<i64> = req.property_as(&["response", "code"]);
//! let mtls: Option<bool> = req.property_as(&["connection", "mtls"]);
//! let route: Option<String> = req.property_as(&["xds", "route_name"]);
//! let headers: Option<Vec<(String, String)>> = req.property_as(&["request", "headers"]);
//! # }
//! ```
//!
//! Writing: [`Request::set_property`]. Envoy keeps what a plugin writes as
//! the stream's filter state `wasm.<name>` (an access log shows it as
//! `%FILTER_STATE(wasm.<name>:PLAIN)%`), and accepts any name: writing a
//! property only Higress acts on succeeds on upstream Envoy 1.40 too (status
//! `Ok`, shown by `e2e/tests/sdk_features.rs`), and does nothing there but
//! store it. What each Higress property does:
//!
//! | Go SDK | here | Higress | upstream Envoy 1.40 |
//! |---|---|---|---|
//! | `DisableReroute()` (`clear_route_cache` = `off`) | [`Request::disable_reroute`] | header edits by the plugin no longer make Envoy pick the route again | stored as filter state only: Envoy clears the route cache after a header edit as always |
//! | `SetRequestBodyBufferLimit(n)` (`set_decoder_buffer_limit`) | [`Request::set_request_body_buffer_limit`] | this request may buffer `n` bytes of request body | filter state only: the listener's buffer limit applies |
//! | `SetResponseBodyBufferLimit(n)` (`set_encoder_buffer_limit`) | [`Request::set_response_body_buffer_limit`] | the same for the response body | filter state only |
//! | `WithRebuildAfterRequests(n)` / `WithRebuildMaxMemBytes(m)` (`wasm_need_rebuild` = `true`, reading `plugin_vm_memory`) | [`Plugin::REBUILD_AFTER_REQUESTS`], [`Plugin::REBUILD_MAX_MEMORY_BYTES`], [`Request::request_vm_rebuild`], [`Request::vm_memory_bytes`] | Higress replaces the VM with a fresh one | filter state only; `plugin_vm_memory` does not exist (`None`), so the memory rule never fires |

use crate::host::{self, Status};
use crate::log::Log;
use crate::{Plugin, Request};
use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A type a property can be read as (see the [module docs](self) for the forms).
pub trait FromProperty: Sized {
    /// Decodes the host's serialised value; `None` when it has another form.
    fn from_property(bytes: Vec<u8>) -> Option<Self>;
}

impl FromProperty for Vec<u8> {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        Some(bytes)
    }
}

/// Text, lossily converted to UTF-8.
impl FromProperty for String {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        crate::text::lossy(Some(bytes))
    }
}

/// An integer: 8 little-endian bytes.
impl FromProperty for i64 {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        <[u8; 8]>::try_from(bytes.as_slice()).ok().map(i64::from_le_bytes)
    }
}

/// An unsigned integer: 8 little-endian bytes.
impl FromProperty for u64 {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        <[u8; 8]>::try_from(bytes.as_slice()).ok().map(u64::from_le_bytes)
    }
}

/// A boolean: one byte, 0 or 1.
impl FromProperty for bool {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        match bytes.as_slice() {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

/// A duration: 8 little-endian bytes of nanoseconds, not negative.
impl FromProperty for Duration {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        let nanos = u64::try_from(i64::from_property(bytes)?).ok()?;
        Some(Duration::from_nanos(nanos))
    }
}

/// A timestamp: 8 little-endian bytes of nanoseconds since the Unix epoch.
impl FromProperty for SystemTime {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        Duration::from_property(bytes).and_then(|since| UNIX_EPOCH.checked_add(since))
    }
}

/// A string map, in the header-map form; values lossily converted to UTF-8.
impl FromProperty for Vec<(String, String)> {
    fn from_property(bytes: Vec<u8>) -> Option<Self> {
        let pairs = crate::pairs::decode(&bytes)?;
        Some(pairs.into_iter().map(|(k, v)| (k, crate::text::lossy(Some(v)).unwrap_or_default())).collect())
    }
}

/// The host refused to set a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertyError {
    status: Status,
}

impl PropertyError {
    /// The ABI status number the host returned (1 `NotFound`: no stream to
    /// set it on; 2 `BadArgument`: a value of the wrong form for the property).
    pub fn status(&self) -> u32 {
        self.status.0
    }
}

impl std::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host refused the property: {}", self.status)
    }
}

impl std::error::Error for PropertyError {}

impl<P: Plugin> Request<P> {
    /// The client's IP address (Envoy's `source.address` without its port,
    /// an IPv6 address without brackets); `None` when the host has none.
    pub fn client_ip(&self) -> Option<String> {
        let address = String::from_utf8(self.property(&["source", "address"])?).ok()?;
        Some(crate::config::strip_port(&address).trim_start_matches('[').trim_end_matches(']').to_string())
    }

    /// A property decoded as `T` (see the [module docs](crate::property));
    /// `None` when the host has none, or one of another form.
    ///
    /// ```
    /// # use gateway_sdk::prelude::*;
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = ();
    /// #     type State = ();
    /// # }
    /// # fn demo(req: &mut Request<MyPlugin>) {
    /// let size: Option<i64> = req.property_as(&["request", "total_size"]);
    /// # }
    /// ```
    pub fn property_as<T: FromProperty>(&self, path: &[&str]) -> Option<T> {
        host::get_property(path).ok().flatten().and_then(T::from_property)
    }

    /// Sets a property of this request (Go: `proxywasm.SetProperty`).
    /// Envoy keeps it as filter state `wasm.<name>` for a one-part path
    /// `&[name]` (the names Higress and the Go SDK use are all one part; the
    /// parts of a longer path are joined by NUL bytes, which an access log
    /// format cannot name). Later reads of the same path, by this plugin or
    /// another, see it. Upstream Envoy accepts any name.
    ///
    /// ```no_run
    /// # use gateway_sdk::prelude::*;
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = ();
    /// #     type State = ();
    /// # }
    /// # fn demo(req: &mut Request<MyPlugin>) -> Result<(), gateway_sdk::PropertyError> {
    /// req.set_property(&["my_plugin_verdict"], "allowed")?;
    /// assert_eq!(req.property_as::<String>(&["my_plugin_verdict"]).as_deref(), Some("allowed"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_property(&self, path: &[&str], value: impl AsRef<[u8]>) -> Result<(), PropertyError> {
        host::set_property(path, value.as_ref()).map_err(|status| PropertyError { status })
    }

    /// Keeps the route Envoy chose for this request even when the plugin
    /// edits headers (Go: `DisableReroute`; Higress property
    /// `clear_route_cache` = `off`). Higress only: see the [module docs](crate::property).
    pub fn disable_reroute(&self) {
        self.set_higress_property("clear_route_cache", b"off");
    }

    /// Lets this request buffer up to `bytes` of request body (Go:
    /// `SetRequestBodyBufferLimit`; Higress property `set_decoder_buffer_limit`).
    /// Higress only: upstream Envoy keeps the listener's limit.
    pub fn set_request_body_buffer_limit(&self, bytes: u32) {
        self.set_higress_property("set_decoder_buffer_limit", bytes.to_string().as_bytes());
    }

    /// Lets this request buffer up to `bytes` of response body (Go:
    /// `SetResponseBodyBufferLimit`; Higress property `set_encoder_buffer_limit`).
    /// Higress only.
    pub fn set_response_body_buffer_limit(&self, bytes: u32) {
        self.set_higress_property("set_encoder_buffer_limit", bytes.to_string().as_bytes());
    }

    /// Asks Higress to replace this VM with a fresh one once the request is
    /// done (property `wasm_need_rebuild` = `true`): what the Go SDK does
    /// after `WithRebuildAfterRequests` requests or past
    /// `WithRebuildMaxMemBytes`. Higress only.
    pub fn request_vm_rebuild(&self) {
        self.set_higress_property("wasm_need_rebuild", b"true");
    }

    /// The VM's memory in bytes, as Higress reports it (property
    /// `plugin_vm_memory`); `None` on hosts without it (upstream Envoy).
    pub fn vm_memory_bytes(&self) -> Option<u64> {
        self.property_as(&["plugin_vm_memory"])
    }

    fn set_higress_property(&self, name: &str, value: &[u8]) {
        if let Err(status) = host::set_property(&[name], value) {
            self.log().warn(format_args!("set_property({name}) refused by the host: {status}"));
        }
    }
}

thread_local! {
    /// Requests seen by this VM since the last rebuild request.
    static REQUESTS_SINCE_REBUILD: Cell<u64> = const { Cell::new(0) };
}

/// Applies [`Plugin::REBUILD_AFTER_REQUESTS`] and
/// [`Plugin::REBUILD_MAX_MEMORY_BYTES`] as a request starts; compiled to
/// nothing when both are 0 (the default).
pub(crate) fn check_rebuild<P: Plugin>(plugin_id: Option<&str>) {
    if P::REBUILD_AFTER_REQUESTS == 0 && P::REBUILD_MAX_MEMORY_BYTES == 0 {
        return;
    }
    let mut rebuild = false;
    if P::REBUILD_AFTER_REQUESTS > 0 {
        rebuild = REQUESTS_SINCE_REBUILD.with(|count| {
            let seen = count.get().saturating_add(1);
            let due = seen >= P::REBUILD_AFTER_REQUESTS;
            count.set(if due { 0 } else { seen });
            due
        });
    }
    if P::REBUILD_MAX_MEMORY_BYTES > 0 && !rebuild {
        let memory = host::get_property(&["plugin_vm_memory"]).ok().flatten().and_then(u64::from_property);
        rebuild = memory.is_some_and(|bytes| bytes >= P::REBUILD_MAX_MEMORY_BYTES);
    }
    if rebuild {
        if let Err(status) = host::set_property(&["wasm_need_rebuild"], b"true") {
            Log::new(P::NAME, plugin_id, true)
                .warn(format_args!("VM rebuild not requested: the host refused ({status})"));
        } else {
            Log::new(P::NAME, plugin_id, true).debug("VM rebuild requested");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FromProperty;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn values_decode_only_from_their_own_form() {
        assert_eq!(i64::from_property(200i64.to_le_bytes().to_vec()), Some(200));
        assert_eq!(i64::from_property(b"200".to_vec()), None);
        assert_eq!(u64::from_property(7u64.to_le_bytes().to_vec()), Some(7));
        assert_eq!(bool::from_property(vec![1]), Some(true));
        assert_eq!(bool::from_property(vec![0]), Some(false));
        assert_eq!(bool::from_property(b"true".to_vec()), None);
        assert_eq!(String::from_property(b"route-a".to_vec()).as_deref(), Some("route-a"));
        assert_eq!(Duration::from_property(1_500_000i64.to_le_bytes().to_vec()), Some(Duration::from_micros(1500)));
        assert_eq!(Duration::from_property((-1i64).to_le_bytes().to_vec()), None);
        assert_eq!(
            SystemTime::from_property(2_000_000_000i64.to_le_bytes().to_vec()),
            Some(UNIX_EPOCH + Duration::from_secs(2))
        );
    }

    #[test]
    fn maps_decode_from_the_header_map_form() {
        let bytes = crate::pairs::encode(&[("a", b"1"), ("b", b"two")]);
        let map = Vec::<(String, String)>::from_property(bytes);
        assert_eq!(map, Some(vec![("a".into(), "1".into()), ("b".into(), "two".into())]));
        assert_eq!(Vec::<(String, String)>::from_property(vec![9, 0, 0, 0]), None);
    }
}
