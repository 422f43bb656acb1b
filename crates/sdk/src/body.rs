//! Per-request body decisions: whether a body reaches the body hook at all,
//! and whether it comes chunk by chunk or whole (Go: `DontReadRequestBody`,
//! `DontReadResponseBody`, `BufferRequestBody`, `BufferResponseBody`,
//! `HasRequestBody`, `HasResponseBody`, `IsWebsocket`,
//! `IsBinaryRequestBody`, `IsBinaryResponseBody`).
//!
//! [`Plugin::request_body_mode`] chooses per config; these choose per
//! request, usually in a headers hook:
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # #[derive(Deserialize)]
//! # struct Config {}
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = Config;
//! #     type State = ();
//! fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
//!     if req.method().as_deref() == Some("GET") || !req.has_request_body() {
//!         req.skip_request_body();
//!     } else if req.header("content-type").is_some_and(|t| t.contains("json")) {
//!         req.buffer_request_body();
//!     }
//!     HeaderAction::Continue
//! }
//! # }
//! ```
//!
//! A skipped body goes on untouched, is never buffered by the SDK, and
//! releases headers the hook held with `StopIteration`.
//!
//! As the Go SDK does, bodies the plugin could only damage are skipped
//! unless [`Plugin::SKIP_BINARY_BODIES`] is `false`: the request body when
//! the request's `content-type` contains `octet-stream` or `grpc` or it has
//! a `content-encoding`, and both bodies of a WebSocket upgrade
//! (`connection: upgrade` and `upgrade: websocket`, any case). The response
//! body by the same rule on the response headers is skipped automatically
//! for configs whose [`Plugin::response_body_mode`] is
//! [`BodyMode::Buffered`] (where the SDK would hold a whole download); a
//! plugin streaming response bodies calls
//! [`Request::is_binary_response_body`] in its response headers hook and
//! skips it itself. The difference from the Go SDK is the price: Envoy
//! forgets headers once they went on, so the rule must read them in the
//! headers phase, and doing so for every response would cost every request
//! two host calls. Requests without body, and plugins that keep the default
//! body modes, pay nothing.
//!
//! The choices themselves are `flow.rs`'s `BodyFlags`, kept in the request;
//! this module is the façade methods that set and read them, and the checks
//! the driver (`driver.rs`) runs as headers arrive. Depends on the request,
//! `flow.rs` and `host`.

use crate::host::{self, MapType, StreamType};
use crate::{Plugin, Request};

impl<P: Plugin> Request<P> {
    /// The body hook does not run for this request's body, and the SDK does
    /// not buffer it (Go: `DontReadRequestBody`).
    pub fn skip_request_body(&mut self) {
        self.body_flags.skip(StreamType::Request);
    }
    /// The same for the response body (Go: `DontReadResponseBody`).
    pub fn skip_response_body(&mut self) {
        self.body_flags.skip(StreamType::Response);
    }
    /// The body hook gets this request's body whole, once
    /// ([`BodyMode::Buffered`](crate::BodyMode::Buffered)), whatever the config's mode (Go:
    /// `BufferRequestBody`). The body counts against the host's buffer limit.
    pub fn buffer_request_body(&mut self) {
        self.body_flags.buffer(StreamType::Request);
    }
    /// The same for the response body (Go: `BufferResponseBody`).
    pub fn buffer_response_body(&mut self) {
        self.body_flags.buffer(StreamType::Response);
    }

    /// Whether the request has a body: its headers did not end the stream
    /// (Go: `HasRequestBody`). Meaningful from the request headers hook on.
    pub fn has_request_body(&self) -> bool {
        self.body_flags.seen(StreamType::Request) || !self.flow.request_body_done
    }
    /// Whether the response has a body (Go: `HasResponseBody`); meaningful
    /// from the response headers hook on.
    pub fn has_response_body(&self) -> bool {
        self.body_flags.seen(StreamType::Response) || !self.flow.response_body_done
    }

    /// Whether the request asks for a WebSocket upgrade (`connection:
    /// upgrade`, `upgrade: websocket`, any case; Go: `IsWebsocket`).
    pub fn is_websocket(&self) -> bool {
        let is = |name: &str, value: &str| {
            host::get_map_value(MapType::RequestHeaders, name)
                .ok()
                .flatten()
                .is_some_and(|v| v.eq_ignore_ascii_case(value.as_bytes()))
        };
        is("connection", "upgrade") && is("upgrade", "websocket")
    }
    /// Whether the request body is binary by its headers (Go: `IsBinaryRequestBody`).
    pub fn is_binary_request_body(&self) -> bool {
        binary(MapType::RequestHeaders)
    }
    /// Whether the response body is binary by its headers (Go: `IsBinaryResponseBody`).
    pub fn is_binary_response_body(&self) -> bool {
        binary(MapType::ResponseHeaders)
    }

    /// Whether this chunk's body is skipped. Marks the body as seen.
    pub(crate) fn skips_body(&mut self, stream: StreamType) -> bool {
        self.body_flags.see(stream)
    }

    /// The automatic skip, as the request headers arrive with a body to come
    /// (the headers cannot be read once they went on). Kept out of line so
    /// that requests without body run the headers callback as before.
    #[inline(never)]
    pub(crate) fn check_request_body(&mut self) {
        if !P::SKIP_BINARY_BODIES {
            return;
        }
        if self.is_websocket() {
            self.body_flags.skip(StreamType::Request);
            self.body_flags.skip(StreamType::Response);
        } else if self.is_binary_request_body() {
            self.body_flags.skip(StreamType::Request);
        } else {
            return;
        }
        self.log().debug("binary or WebSocket body: not read (Plugin::SKIP_BINARY_BODIES)");
    }

    /// The automatic skip of a binary response body, as the response headers
    /// arrive with a body to come, for configs that buffer response bodies.
    pub(crate) fn check_response_body(&mut self) {
        if P::SKIP_BINARY_BODIES && self.is_binary_response_body() {
            self.body_flags.skip(StreamType::Response);
            self.log().debug("binary response body: not read (Plugin::SKIP_BINARY_BODIES)");
        }
    }
}

/// The Go SDK's rule: `content-type` containing `octet-stream` or `grpc`, or any `content-encoding`.
fn binary(map: MapType) -> bool {
    let header = |name: &str| host::get_map_value(map, name).ok().flatten();
    let content_type = header("content-type").unwrap_or_default();
    let contains = |needle: &[u8]| content_type.windows(needle.len()).any(|w| w == needle);
    contains(b"octet-stream") || contains(b"grpc") || header("content-encoding").is_some_and(|v| !v.is_empty())
}
