//! Log lines in the Higress format: `[plugin] [plugin id] [x-request-id] message`.
//!
//! Lines below the host's level are dropped before they are formatted, so a
//! `debug` line in a hot path costs one host call when debug logging is off.
//! Envoy shows the lines under its `wasm` component
//! (`--component-log-level wasm:debug`).

use crate::host::{self, LogLevel, MapType};
use std::fmt::{self, Display, Write};

/// Longest request id written in a line (Envoy's generated ids are 36 bytes).
const MAX_REQUEST_ID: usize = 128;

/// A logger for one plugin, optionally bound to one request.
///
/// Get one from [`Request::log`](crate::Request::log) inside a hook or callback.
pub struct Log<'a> {
    plugin: &'static str,
    plugin_id: Option<&'a str>,
    in_request: bool,
}

impl<'a> Log<'a> {
    pub(crate) fn new(plugin: &'static str, plugin_id: Option<&'a str>, in_request: bool) -> Self {
        Log { plugin, plugin_id, in_request }
    }

    /// Logs at trace level.
    pub fn trace(&self, message: impl Display) {
        self.write(LogLevel::Trace, message);
    }
    /// Logs at debug level.
    pub fn debug(&self, message: impl Display) {
        self.write(LogLevel::Debug, message);
    }
    /// Logs at info level.
    pub fn info(&self, message: impl Display) {
        self.write(LogLevel::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(&self, message: impl Display) {
        self.write(LogLevel::Warn, message);
    }
    /// Logs at error level.
    pub fn error(&self, message: impl Display) {
        self.write(LogLevel::Error, message);
    }
    /// Logs at critical level.
    pub fn critical(&self, message: impl Display) {
        self.write(LogLevel::Critical, message);
    }

    /// Whether a line at `level` would be written (to skip expensive preparation).
    pub fn enabled(&self, level: LogLevel) -> bool {
        level >= host::log_level()
    }

    fn write(&self, level: LogLevel, message: impl Display) {
        if !self.enabled(level) {
            return;
        }
        // Envoy's `request.id` attribute is the `x-request-id` of the request
        // and, unlike the header, stays readable after the headers went on.
        let request_id = if self.in_request {
            host::get_property(&["request", "id"])
                .ok()
                .flatten()
                .filter(|id| !id.is_empty())
                .or_else(|| host::get_map_value(MapType::RequestHeaders, "x-request-id").ok().flatten())
        } else {
            None
        };
        // The id comes from the client: keep lines bounded whatever it sent.
        let request_id = request_id.map(|mut id| {
            id.truncate(MAX_REQUEST_ID);
            id
        });
        let line = format_line(self.plugin, self.plugin_id, request_id.as_deref(), message);
        // Nothing sensible is left to do when the host refuses a log line.
        let _ = host::log(level, &line);
    }
}

/// `[plugin] [id or nil] [request id or nil] message`.
pub(crate) fn format_line(
    plugin: &str,
    plugin_id: Option<&str>,
    request_id: Option<&[u8]>,
    message: impl Display,
) -> String {
    let mut line = String::with_capacity(64);
    let request_id = request_id.map(String::from_utf8_lossy);
    // Writing into a String cannot fail.
    let _ = write!(
        line,
        "[{}] [{}] [{}] {}",
        plugin,
        plugin_id.unwrap_or("nil"),
        request_id.as_deref().unwrap_or("nil"),
        message
    );
    line
}

/// Shows a secret's length, never its content, in log lines.
pub struct Redacted<'a>(pub &'a str);

impl Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_matches_higress() {
        assert_eq!(format_line("mock", None, None, "hi"), "[mock] [nil] [nil] hi");
        assert_eq!(format_line("mock", Some("p1"), Some(b"abc"), format_args!("n={}", 3)), "[mock] [p1] [abc] n=3");
    }

    #[test]
    fn secrets_show_only_their_length() {
        assert_eq!(Redacted("hunter2").to_string(), "<redacted, 7 bytes>");
    }
}
