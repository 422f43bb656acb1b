//! [`HttpResponse`]: the answer to an HTTP call, read from the host on
//! demand while the call's callback runs (for calls of a request and for
//! calls outside requests alike).
//!
//! Depends on `host` and `text` only, so that the requests and the plugin
//! context that run the callbacks need not depend on the HTTP client.

use crate::host::{self, BufferType, MapType};

/// The answer to a call, read from the host on demand while the callback runs.
pub struct HttpResponse {
    status: u16,
    body_size: usize,
}

impl HttpResponse {
    /// Reads the status as Higress does: 502 when the answer has no `:status`
    /// (how a host reports a failed connection), 500 when it is not a number.
    pub(crate) fn from_host(body_size: usize) -> Self {
        let status = match host::get_map_value(MapType::HttpCallResponseHeaders, ":status") {
            Ok(Some(raw)) => parse_status(&raw),
            _ => 502,
        };
        HttpResponse { status, body_size }
    }

    /// The HTTP status: 502 when the answer has no `:status` (how a host
    /// reports a failed connection), 500 when it is not a number.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// One response header (values that are not UTF-8 are converted lossily).
    pub fn header(&self, name: &str) -> Option<String> {
        crate::text::lossy(host::get_map_value(MapType::HttpCallResponseHeaders, name).ok().flatten())
    }

    /// Every response header, pseudo-headers included.
    pub fn headers(&self) -> Vec<(String, String)> {
        host::get_map(MapType::HttpCallResponseHeaders)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, crate::text::lossy(Some(v)).unwrap_or_default()))
            .collect()
    }

    /// One response trailer (Go's `GetHttpCallResponseTrailers`); `None`
    /// when the answer has none. Native builds: always `None` (the dynamic
    /// module ABI hands a call's answer over without trailers).
    pub fn trailer(&self, name: &str) -> Option<String> {
        crate::text::lossy(host::get_map_value(MapType::HttpCallResponseTrailers, name).ok().flatten())
    }

    /// Every response trailer (empty when there are none).
    pub fn trailers(&self) -> Vec<(String, String)> {
        host::get_map(MapType::HttpCallResponseTrailers)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, crate::text::lossy(Some(v)).unwrap_or_default()))
            .collect()
    }

    /// The response body (empty when there is none).
    pub fn body(&self) -> Vec<u8> {
        if self.body_size == 0 {
            return Vec::new();
        }
        host::get_buffer(BufferType::HttpCallResponseBody, 0, self.body_size).ok().flatten().unwrap_or_default()
    }

    /// The size of the response body in bytes.
    pub fn body_len(&self) -> usize {
        self.body_size
    }
}

fn parse_status(raw: &[u8]) -> u16 {
    std::str::from_utf8(raw).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rules() {
        assert_eq!(parse_status(b"200"), 200);
        assert_eq!(parse_status(b"abc"), 500);
        assert_eq!(parse_status(b"\xff"), 500);
        assert_eq!(parse_status(b"99999"), 500);
    }
}
