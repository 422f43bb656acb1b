//! A small HTTP/1.1 client for tests, on `ureq`.
//!
//! It follows no redirect, decompresses nothing, treats no status as an
//! error and reuses no connection: a [`Response`] is the status, headers and
//! body as they came.
//!
//! httpbin's echo hides some request headers (`X-Request-Id`,
//! `X-Forwarded-For`, ...) unless asked with `?show_env=1`, and gunicorn drops
//! header names with `_`.
//!
//! ```no_run
//! let resp = e2e::http::get("http://127.0.0.1:10000/get").header("x-request-id", "r-1").send()?;
//! assert_eq!(resp.status, 200);
//! assert_eq!(resp.json()?["headers"]["Hello"], "world");
//! # Ok::<(), e2e::Error>(())
//! ```

use crate::error::{Context, Error, Result};
use std::sync::OnceLock;
use std::time::Duration;
use ureq::http;

/// Time a request may take before the client gives up (only reached when something hangs).
const TIMEOUT: Duration = Duration::from_secs(60);

/// A request being built; [`Request::send`] sends it.
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// `GET url`.
pub fn get(url: &str) -> Request {
    request("GET", url)
}

/// `POST url` with `body`.
pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Request {
    request("POST", url).body(body)
}

/// A request with any method.
pub fn request(method: &str, url: &str) -> Request {
    Request { method: method.to_string(), url: url.to_string(), headers: Vec::new(), body: None }
}

impl Request {
    /// Adds a header (`Host` included: it replaces the one taken from the URL).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response> {
        let what = || format!("{} {}", self.method, self.url);
        let mut builder = http::Request::builder().method(self.method.as_str()).uri(self.url.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = match &self.body {
            Some(body) => agent().run(builder.body(body.as_slice()).context(what)?),
            None => agent().run(builder.body(ureq::SendBody::none()).context(what)?),
        };
        let response = response.context(what)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let body = response.into_body().with_config().limit(64 << 20).read_to_vec().context(what)?;
        Ok(Response { status, headers, body })
    }
}

/// One agent for the whole test binary. It keeps no idle connection: Envoys
/// come and go within a test binary, and a new one may get a port a stopped
/// one had, where a pooled connection would be dead.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .max_redirects(0)
                .max_idle_connections(0)
                .max_idle_connections_per_host(0)
                .http_status_as_error(false)
                .timeout_global(Some(TIMEOUT))
                .build(),
        )
    })
}

/// A response as received.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Every header, names in lower case, in the order the client keeps them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .map_err(|err| Error::new(format!("response body is not JSON ({err}): {}", self.text())))
    }

    /// The request headers httpbin echoed (`/get`, `/headers`, `/anything`):
    /// `headers` of the body, names as httpbin writes them (`X-Token`).
    pub fn echoed_headers(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        match self.json()?.get_mut("headers").map(serde_json::Value::take) {
            Some(serde_json::Value::Object(headers)) => Ok(headers),
            _ => Err(Error::new(format!("no `headers` object in httpbin's answer: {}", self.text()))),
        }
    }

    /// One header httpbin echoed, if it was there.
    pub fn echoed_header(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .echoed_headers()?
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
    }
}
