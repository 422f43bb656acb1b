//! Calling other HTTP services from a plugin.
//!
//! A call goes to an Envoy *cluster*; Higress names its clusters after the
//! service they reach, and [`Cluster`] knows those names (see the table in
//! its docs). Build the client once, when the config is parsed, and call it
//! from any hook:
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = ();
//! #     type State = ();
//! # }
//! # fn demo(req: &mut Request<MyPlugin>) -> Result<(), Box<dyn std::error::Error>> {
//! // When the config is parsed:
//! let client = HttpClient::new(Cluster::service("auth.dns", Some(8080))?);
//! // In a hook:
//! client.get("/token").timeout_ms(300).send(req, |req, _config, resp| {
//!     if resp.status() != 200 {
//!         req.respond(500, &[], "http call failed");
//!         return;
//!     }
//!     req.resume();
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! The callback runs on the same request: it can change headers, answer, or
//! resume. `send` fails at once (and the callback never runs) when the host
//! refuses the call, e.g. for a cluster it does not know.

// Where this module sits in the SDK (a comment: the rendered docs are for plugin authors).
// The client only builds and sends calls. It depends on the request
// (`request.rs`: where a call's callback is kept) and the plugin context
// (`lifetime.rs`, for calls outside requests), on `cluster.rs` for the
// names and on `http_response.rs` for the answer; nothing of the SDK
// depends on it, but the re-exports.

pub use crate::cluster::Cluster;
use crate::host::Status;
pub use crate::http_response::HttpResponse;
use crate::{HeaderAction, Plugin, PluginContext, Request};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Default time a call may take before the host gives up on it.
pub const DEFAULT_TIMEOUT_MS: u32 = 500;

/// HTTP methods a call can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: read a resource.
    Get,
    /// `HEAD`: `GET` without the response body.
    Head,
    /// `OPTIONS`: ask what the resource allows.
    Options,
    /// `POST`: send data for the resource to process.
    Post,
    /// `PUT`: replace the resource.
    Put,
    /// `PATCH`: change part of the resource.
    Patch,
    /// `DELETE`: remove the resource.
    Delete,
    /// `CONNECT`: open a tunnel.
    Connect,
    /// `TRACE`: echo the request back.
    Trace,
}

impl Method {
    /// The method as sent in `:method` (`"GET"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
        }
    }
}

/// A client for one service. Cheap to keep in a config; the cluster and host
/// names are computed once.
#[derive(Clone, Debug)]
pub struct HttpClient {
    cluster: Cluster,
    cluster_name: Option<String>,
    host_name: Option<String>,
    timeout: Duration,
}

impl HttpClient {
    /// A client for `cluster`; its cluster and `:authority` names are worked
    /// out here, once (for [`Cluster::Route`], at each call).
    pub fn new(cluster: Cluster) -> Self {
        let cluster_name = cluster.cluster_name(|| None);
        let host_name = cluster.host_name(|| None);
        HttpClient { cluster, cluster_name, host_name, timeout: Duration::from_millis(u64::from(DEFAULT_TIMEOUT_MS)) }
    }

    /// The client with `timeout` as its calls' timeout instead of
    /// [`DEFAULT_TIMEOUT_MS`], for a config whose `timeout` field is for
    /// every call it makes; [`HttpCall::timeout_ms`] still sets one call's.
    pub fn with_timeout(mut self, timeout: crate::fields::Millis) -> Self {
        self.timeout = Duration::from_millis(u64::from(timeout.get()));
        self
    }

    /// The cluster this client calls (for [`Cluster::Route`], `None`: it
    /// depends on the request).
    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster_name.as_deref()
    }

    /// A call with any method. `url` is a path (`/token?x=1`) or an absolute
    /// URL whose host becomes the `:authority`.
    pub fn request<'a>(&'a self, method: Method, url: &'a str) -> HttpCall<'a> {
        HttpCall { client: self, method, url, headers: Vec::new(), body: &[], timeout: self.timeout }
    }

    /// A `GET` of `url` (a path, or an absolute URL: see [`HttpClient::request`]).
    pub fn get<'a>(&'a self, url: &'a str) -> HttpCall<'a> {
        self.request(Method::Get, url)
    }
    /// A `HEAD` of `url`.
    pub fn head<'a>(&'a self, url: &'a str) -> HttpCall<'a> {
        self.request(Method::Head, url)
    }
    /// An `OPTIONS` of `url`.
    pub fn options<'a>(&'a self, url: &'a str) -> HttpCall<'a> {
        self.request(Method::Options, url)
    }
    /// A `POST` of `body` to `url`.
    pub fn post<'a>(&'a self, url: &'a str, body: &'a [u8]) -> HttpCall<'a> {
        self.request(Method::Post, url).body(body)
    }
    /// A `PUT` of `body` to `url`.
    pub fn put<'a>(&'a self, url: &'a str, body: &'a [u8]) -> HttpCall<'a> {
        self.request(Method::Put, url).body(body)
    }
    /// A `PATCH` of `body` to `url`.
    pub fn patch<'a>(&'a self, url: &'a str, body: &'a [u8]) -> HttpCall<'a> {
        self.request(Method::Patch, url).body(body)
    }
    /// A `DELETE` of `url`.
    pub fn delete<'a>(&'a self, url: &'a str) -> HttpCall<'a> {
        self.request(Method::Delete, url)
    }
}

/// A call being built; [`HttpCall::send`] dispatches it.
#[must_use = "a call does nothing until it is sent"]
pub struct HttpCall<'a> {
    client: &'a HttpClient,
    method: Method,
    url: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
    timeout: Duration,
}

/// Why a call could not be dispatched. The callback will not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCallError {
    /// The cluster the call was for.
    pub cluster: String,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for HttpCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http call to cluster `{}` not dispatched: {}", self.cluster, self.reason)
    }
}

impl std::error::Error for HttpCallError {}

impl<'a> HttpCall<'a> {
    /// Adds a request header (pseudo-headers are set by the client).
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the request body.
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// Sets the timeout in milliseconds (default: the client's, 500 unless
    /// set with [`HttpClient::with_timeout`]).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout = Duration::from_millis(u64::from(ms));
        self
    }

    /// Dispatches the call; `callback` runs with the same request when the
    /// answer (or a timeout, as status 504 on Envoy) arrives.
    pub fn send<P: Plugin>(
        self,
        req: &mut Request<P>,
        callback: impl FnOnce(&mut Request<P>, &P::Config, &HttpResponse) + 'static,
    ) -> Result<(), HttpCallError> {
        // Borrowed wherever the client has the names already: the common case
        // costs no allocation but the headers list the host call takes.
        let route_cluster;
        let cluster: &str = match &self.client.cluster_name {
            Some(name) => name,
            None => {
                route_cluster = self.client.cluster.cluster_name(|| req.cluster_name()).unwrap_or_default();
                &route_cluster
            }
        };
        let fail = |reason: String| HttpCallError { cluster: cluster.to_string(), reason };
        if cluster.is_empty() {
            return Err(fail("the request has no upstream cluster to call".to_string()));
        }
        let (url_authority, path) = split_url(self.url);
        let request_authority;
        let authority: &str = match (url_authority, &self.client.host_name) {
            (Some(authority), _) => authority,
            (None, Some(host)) => host,
            (None, None) => {
                request_authority = self.client.cluster.host_name(|| req.host()).unwrap_or_default();
                &request_authority
            }
        };
        let (pseudo, extra) = self.wire_headers(&path, authority);
        let headers: &[(&str, &[u8])] = if extra.is_empty() { &pseudo } else { &extra };
        req.dispatch_http(cluster, headers, self.body, self.timeout, Box::new(callback))
            .map_err(|status| fail(describe_dispatch_failure(status)))
    }

    /// Sends the call from a headers hook and says what the hook returns, as
    /// the Higress Go plugin guide's plugins do after `client.Get(...)`: on
    /// success, [`HeaderAction::StopAllIterationAndWatermark`] (the request
    /// waits for `callback`, which resumes or answers it); when the call
    /// cannot be sent, the error is logged as `<error>; <then>` and the
    /// request goes on ([`HeaderAction::Continue`]) without the callback.
    ///
    /// ```
    /// # use gateway_sdk::prelude::*;
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = ();
    /// #     type State = ();
    /// # }
    /// # fn demo(req: &mut Request<MyPlugin>, client: &HttpClient) -> HeaderAction {
    /// client.get("/check").send_or_continue(req, |req, _config, _resp| req.resume(), "letting the request through")
    /// # }
    /// ```
    #[inline]
    pub fn send_or_continue<P: Plugin>(
        self,
        req: &mut Request<P>,
        callback: impl FnOnce(&mut Request<P>, &P::Config, &HttpResponse) + 'static,
        then: &str,
    ) -> HeaderAction {
        match self.send(req, callback) {
            Ok(()) => HeaderAction::StopAllIterationAndWatermark,
            Err(err) => {
                req.log().error(format_args!("{err}; {then}"));
                HeaderAction::Continue
            }
        }
    }

    /// Dispatches the call outside any request: from [`Plugin::on_start`] or
    /// a timer ([`PluginContext::every`]); `callback` gets the plugin back
    /// with the answer. The client needs a fixed cluster ([`Cluster::Route`]
    /// names the current request's, and there is none).
    ///
    /// ```
    /// # use gateway_sdk::prelude::*;
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = ();
    /// #     type State = ();
    /// # }
    /// # fn demo(plugin: &mut PluginContext<'_, MyPlugin>, client: &HttpClient) -> Result<(), gateway_sdk::HttpCallError> {
    /// client.get("/status/200").send_from_plugin(plugin, |plugin, resp| {
    ///     plugin.log().info(format_args!("status {}", resp.status()));
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_from_plugin<P: Plugin>(
        self,
        plugin: &mut PluginContext<'_, P>,
        callback: impl for<'b> FnOnce(&mut PluginContext<'b, P>, &HttpResponse) + 'static,
    ) -> Result<(), HttpCallError> {
        let Some(cluster) = self.client.cluster_name.as_deref() else {
            return Err(HttpCallError {
                cluster: String::new(),
                reason: "a call outside a request needs a fixed cluster, not the route's".to_string(),
            });
        };
        let (url_authority, path) = split_url(self.url);
        let authority = url_authority.or(self.client.host_name.as_deref()).unwrap_or_default();
        let (pseudo, extra) = self.wire_headers(&path, authority);
        let headers: &[(&str, &[u8])] = if extra.is_empty() { &pseudo } else { &extra };
        plugin
            .dispatch_http(cluster, headers, self.body, self.timeout, Box::new(callback))
            .map_err(|status| HttpCallError { cluster: cluster.to_string(), reason: describe_dispatch_failure(status) })
    }

    /// The call's headers as the host takes them, pseudo-headers first: the
    /// three pseudo-headers alone (on the stack: a call without headers of
    /// its own allocates no list), and when the call has headers of its own,
    /// the whole list (empty otherwise).
    #[allow(clippy::type_complexity)]
    fn wire_headers<'b>(
        &'b self,
        path: &'b str,
        authority: &'b str,
    ) -> ([(&'b str, &'b [u8]); 3], Vec<(&'b str, &'b [u8])>) {
        let pseudo = [
            (":method", self.method.as_str().as_bytes()),
            (":path", path.as_bytes()),
            (":authority", authority.as_bytes()),
        ];
        let own = self.headers.iter().filter(|(name, _)| !name.starts_with(':'));
        if self.headers.is_empty() {
            return (pseudo, Vec::new());
        }
        let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(self.headers.len() + 3);
        headers.extend(pseudo);
        headers.extend(own.map(|(name, value)| (*name, value.as_bytes())));
        (pseudo, headers)
    }
}

impl<P: Plugin> Request<P> {
    /// Sets request header `name` to the value of the same header in an HTTP
    /// call's answer, replacing any the client sent (a forged token must not
    /// stay beside the real one), as plugins that fetch a token or an
    /// identity for the upstream do. Returns the value set; `None`, and
    /// nothing set, when the answer has no such header or an empty one.
    ///
    /// ```
    /// # use gateway_sdk::prelude::*;
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = ();
    /// #     type State = ();
    /// # }
    /// fn on_token(req: &mut Request<MyPlugin>, _config: &(), resp: &HttpResponse) {
    ///     if req.set_header_from(resp, "x-token").is_none() {
    ///         req.log().warn("no x-token in the answer");
    ///     }
    ///     req.resume();
    /// }
    /// ```
    pub fn set_header_from(&self, answer: &HttpResponse, name: &str) -> Option<String> {
        let value = answer.header(name)?;
        if value.is_empty() {
            return None;
        }
        self.set_header(name, &value);
        Some(value)
    }
}

fn describe_dispatch_failure(status: Status) -> String {
    match status {
        Status::BAD_ARGUMENT => "the host refused it (BadArgument: unknown cluster or bad headers)".to_string(),
        Status::INTERNAL_FAILURE => "the host could not start it (InternalFailure)".to_string(),
        other => format!("the host returned {other}"),
    }
}

/// `http://host:port/p?q` to (`Some("host:port")`, `/p?q`); a bare path to (`None`, path).
fn split_url(url: &str) -> (Option<&str>, Cow<'_, str>) {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) => {
            let (authority, path) = match rest.find(['/', '?']) {
                Some(at) => rest.split_at(at),
                None => (rest, ""),
            };
            let path = match path.strip_prefix('?') {
                Some(query) => Cow::Owned(format!("/?{query}")),
                None if path.is_empty() => Cow::Borrowed("/"),
                None => Cow::Borrowed(path),
            };
            (Some(authority), path)
        }
        None if url.starts_with('/') => (None, Cow::Borrowed(url)),
        None => (None, Cow::Owned(format!("/{url}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let split = |url| {
            let (authority, path) = split_url(url);
            (authority, path.into_owned())
        };
        assert_eq!(split("/a?b=1"), (None, "/a?b=1".to_string()));
        assert_eq!(split("a"), (None, "/a".to_string()));
        assert_eq!(split("http://h:8/x/y?z"), (Some("h:8"), "/x/y?z".to_string()));
        assert_eq!(split("https://h"), (Some("h"), "/".to_string()));
        assert_eq!(split("http://h?q=1"), (Some("h"), "/?q=1".to_string()));
    }

    #[test]
    fn calls_take_the_clients_timeout_unless_given_their_own() {
        let Ok(cluster) = Cluster::service("auth.dns", Some(80)) else { panic!("a valid service") };
        let client = HttpClient::new(cluster);
        assert_eq!(client.get("/").timeout, Duration::from_millis(u64::from(DEFAULT_TIMEOUT_MS)));
        let client = client.with_timeout(crate::fields::Millis::SECOND);
        assert_eq!(client.get("/").timeout, Duration::from_secs(1));
        assert_eq!(client.get("/").timeout_ms(7).timeout, Duration::from_millis(7));
    }

    #[test]
    fn calls_without_headers_of_their_own_send_the_pseudo_headers_alone() {
        let Ok(cluster) = Cluster::service("auth.dns", Some(80)) else { panic!("a valid service") };
        let client = HttpClient::new(cluster);
        let call = client.get("/t");
        let (pseudo, extra) = call.wire_headers("/t", "auth.dns");
        assert_eq!(pseudo.map(|(name, _)| name), [":method", ":path", ":authority"]);
        assert!(extra.is_empty());
        let call = client.get("/t").header("x-a", "1").header(":path", "/evil");
        let (_, extra) = call.wire_headers("/t", "auth.dns");
        assert_eq!(extra.iter().map(|(name, _)| *name).collect::<Vec<_>>(), [":method", ":path", ":authority", "x-a"]);
    }

    #[test]
    fn every_method_has_its_wire_name() {
        assert_eq!(Method::Connect.as_str(), "CONNECT");
        assert_eq!(Method::Trace.as_str(), "TRACE");
        assert_eq!(Method::Patch.as_str(), "PATCH");
    }
}
