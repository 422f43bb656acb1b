//! Host calls only Higress's gateway has (with the `higress` feature):
//! the hosts of the request's cluster, choosing one of them, and sending
//! data down the response's filter chain.
//!
//! Upstream Envoy and Istio refuse to load a module that imports any of
//! these, so only a plugin that enables the feature imports them (as with
//! `redis`); the test host plays Higress by default and refuses such a module
//! when it plays upstream Envoy. What Go's `proxywasm` gives:
//!
//! | Go | here |
//! |---|---|
//! | `proxywasm.GetUpstreamHosts()` | [`upstream_hosts`] |
//! | `proxywasm.SetUpstreamOverrideHost(address)` | [`Request::set_upstream_override_host`] |
//! | `proxywasm.InjectEncodedDataToFilterChain(body, end)` | [`Request::inject_response_data`] |
//! | `ctx.NeedPauseStreamingResponse()` | return [`DataAction::StopIterationNoBuffer`](crate::DataAction::StopIterationNoBuffer) from [`Plugin::on_response_body`] and inject what the client gets instead |
//!
//! Streaming a changed response, chunk by chunk, as an AI proxy does:
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # #[derive(Deserialize)]
//! # struct Config {}
//! # struct Upper;
//! # impl Plugin for Upper {
//! #     const NAME: &'static str = "upper";
//! #     type Config = Config;
//! #     type State = ();
//! fn on_response_body(req: &mut Request<Self>, _config: &Config, body: Body) -> DataAction {
//!     let chunk = req.response_body().unwrap_or_default();
//!     if let Err(status) = req.inject_response_data(&chunk.to_ascii_uppercase(), body.end_of_stream) {
//!         req.log().warn(format_args!("cannot inject: {status}"));
//!         return DataAction::Continue;
//!     }
//!     // The chunk itself is taken: the client gets what was injected.
//!     DataAction::StopIterationNoBuffer
//! }
//! # }
//! ```

use crate::host::{self, Status};
use crate::{Plugin, Request};

/// The hosts of the current request's upstream cluster, each with the
/// metrics Higress keeps for it (Prometheus text, or empty): Go's
/// `GetUpstreamHosts`. `Err(Status::NOT_FOUND)` when the host has none.
pub fn upstream_hosts() -> Result<Vec<(String, String)>, Status> {
    let bytes = host::higress::upstream_hosts()?;
    if bytes.is_empty() {
        return Err(Status::NOT_FOUND);
    }
    let pairs = crate::pairs::decode(&bytes).ok_or(Status::PARSE_FAILURE)?;
    Ok(pairs.into_iter().map(|(address, metrics)| (address, String::from_utf8_lossy(&metrics).into_owned())).collect())
}

impl<P: Plugin> Request<P> {
    /// Sends this request to `address` (`ip:port`, one of the cluster's
    /// [`upstream_hosts`]) instead of the host the load balancer would pick:
    /// Go's `SetUpstreamOverrideHost`. Call it before the request goes on
    /// (in the request headers or body hook).
    pub fn set_upstream_override_host(&self, address: &str) -> Result<(), Status> {
        host::higress::set_upstream_override_host(address)
    }

    /// Sends `data` to the client as response body, after this plugin (the
    /// filters after it see it too): Go's `InjectEncodedDataToFilterChain`.
    /// With `end_of_stream`, it is the response's end: the SDK then lets the
    /// body hook take the last chunk ([`DataAction::StopIterationNoBuffer`](crate::DataAction::StopIterationNoBuffer)).
    pub fn inject_response_data(&mut self, data: &[u8], end_of_stream: bool) -> Result<(), Status> {
        host::higress::inject_encoded_data(data, end_of_stream)?;
        if end_of_stream {
            self.flow.response_end_injected = true;
        }
        Ok(())
    }
}
