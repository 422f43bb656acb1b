//! Trailers: the header block some messages carry after their body (gRPC's
//! `grpc-status`, a checksum computed while streaming). Read and edited in
//! their own hooks, [`Plugin::on_request_trailers`] and
//! [`Plugin::on_response_trailers`], which run only for messages that have
//! them; elsewhere reads find nothing and the host refuses edits (logged,
//! as for headers). Go's `proxywasm.GetHttpRequestTrailers` and the rest.
//!
//! On Envoy, HTTP/1.1 carries trailers only with `enable_trailers: true`
//! in the `http_protocol_options` of the listener (downstream) and of the
//! cluster (upstream); HTTP/2 always does.

use crate::flow::Part;
use crate::host::{self, MapType};
use crate::request::{all_lossy, set_all};
use crate::text::lossy;
use crate::{Plugin, Request};

impl<P: Plugin> Request<P> {
    /// One request trailer, lossily converted to UTF-8.
    pub fn request_trailer(&self, name: &str) -> Option<String> {
        lossy(host::get_map_value(MapType::RequestTrailers, name).ok().flatten())
    }
    /// All request trailers, values lossily converted to UTF-8.
    pub fn request_trailers(&self) -> Vec<(String, String)> {
        all_lossy(MapType::RequestTrailers)
    }
    /// Replaces all request trailers.
    pub fn set_request_trailers(&self, trailers: &[(&str, &str)]) {
        self.edit_headers("set_request_trailers", Part::RequestTrailers, trailers, || {
            set_all(MapType::RequestTrailers, trailers)
        });
    }
    /// Adds a request trailer (keeping others of that name).
    pub fn add_request_trailer(&self, name: &str, value: &str) {
        self.edit_header("add_request_trailer", Part::RequestTrailers, name, value, || {
            host::add_map_value(MapType::RequestTrailers, name, value.as_bytes())
        });
    }
    /// Sets a request trailer (replacing others of that name).
    pub fn set_request_trailer(&self, name: &str, value: &str) {
        self.edit_header("set_request_trailer", Part::RequestTrailers, name, value, || {
            host::replace_map_value(MapType::RequestTrailers, name, value.as_bytes())
        });
    }
    /// Removes a request trailer.
    pub fn remove_request_trailer(&self, name: &str) {
        let result = host::remove_map_value(MapType::RequestTrailers, name);
        self.edit("remove_request_trailer", Part::RequestTrailers, name, result);
    }

    /// One response trailer, lossily converted to UTF-8.
    pub fn response_trailer(&self, name: &str) -> Option<String> {
        lossy(host::get_map_value(MapType::ResponseTrailers, name).ok().flatten())
    }
    /// All response trailers, values lossily converted to UTF-8.
    pub fn response_trailers(&self) -> Vec<(String, String)> {
        all_lossy(MapType::ResponseTrailers)
    }
    /// Replaces all response trailers.
    pub fn set_response_trailers(&self, trailers: &[(&str, &str)]) {
        self.edit_headers("set_response_trailers", Part::ResponseTrailers, trailers, || {
            set_all(MapType::ResponseTrailers, trailers)
        });
    }
    /// Adds a response trailer (keeping others of that name).
    pub fn add_response_trailer(&self, name: &str, value: &str) {
        self.edit_header("add_response_trailer", Part::ResponseTrailers, name, value, || {
            host::add_map_value(MapType::ResponseTrailers, name, value.as_bytes())
        });
    }
    /// Sets a response trailer (replacing others of that name).
    pub fn set_response_trailer(&self, name: &str, value: &str) {
        self.edit_header("set_response_trailer", Part::ResponseTrailers, name, value, || {
            host::replace_map_value(MapType::ResponseTrailers, name, value.as_bytes())
        });
    }
    /// Removes a response trailer.
    pub fn remove_response_trailer(&self, name: &str) {
        let result = host::remove_map_value(MapType::ResponseTrailers, name);
        self.edit("remove_response_trailer", Part::ResponseTrailers, name, result);
    }
}
