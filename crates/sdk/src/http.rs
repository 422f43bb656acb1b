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

use crate::host::{self, BufferType, MapType, Status};
use crate::{Plugin, PluginContext, Request};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Default time a call may take before the host gives up on it.
pub const DEFAULT_TIMEOUT_MS: u32 = 500;

/// Where a call goes: an Envoy cluster, named the way Higress names it.
///
/// | kind | cluster name | `:authority` |
/// |---|---|---|
/// | `Fqdn` | `outbound\|<port>\|\|<fqdn>` | host, else fqdn |
/// | `StaticIp` | `outbound\|<port>\|\|<service>.static` | host, else service |
/// | `Dns` | `outbound\|<port>\|\|<service>.dns` | domain |
/// | `K8s` | `outbound\|<port>\|<version>\|<service>.<namespace>.svc.cluster.local` | host, else the FQDN |
/// | `Nacos` | `outbound\|<port>\|<version>\|<service>.<group>.<namespace id>.nacos` (`.nacos-ext` when external) | host, else service |
/// | `Consul` | `outbound\|<port>\|\|<service>.<datacenter>.consul` | host, else service |
/// | `Route` | the current request's upstream cluster | host, else the request's `:authority` |
/// | `Target` | the cluster named, verbatim | host |
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// A service by its full name, registry suffix included, as
    /// [`Cluster::service`] makes it.
    Fqdn {
        /// The service's full name (`my-svc.dns`, `httpbin.ns.svc.cluster.local`).
        fqdn: String,
        /// The service port.
        port: u16,
        /// The `:authority` of the calls; `None`: the full name.
        host: Option<String>,
    },
    /// A service registered in Higress with fixed addresses (`<service>.static`).
    StaticIp {
        /// The service's name, without `.static`.
        service: String,
        /// The service port.
        port: u16,
        /// The `:authority` of the calls; `None`: the service name.
        host: Option<String>,
    },
    /// A service registered in Higress by domain name (`<service>.dns`).
    Dns {
        /// The service's name, without `.dns`.
        service: String,
        /// The domain the service resolves, sent as the calls' `:authority`.
        domain: String,
        /// The service port.
        port: u16,
    },
    /// A Kubernetes service.
    K8s {
        /// The service's name in Kubernetes.
        service: String,
        /// Its namespace; `None`: `default`.
        namespace: Option<String>,
        /// The service port.
        port: u16,
        /// The subset (version) of the service; `None`: all of it.
        version: Option<String>,
        /// The `:authority` of the calls; `None`: `<service>.<namespace>.svc.cluster.local`.
        host: Option<String>,
    },
    /// A service registered in Nacos.
    Nacos {
        /// The service's name in Nacos.
        service: String,
        /// Its Nacos group; `None`: `DEFAULT-GROUP` (`_` becomes `-` in the cluster name).
        group: Option<String>,
        /// The id of its Nacos namespace (`public` for the default one).
        namespace_id: String,
        /// The service port.
        port: u16,
        /// Whether the Nacos registry is an external one (cluster suffix `.nacos-ext`).
        external: bool,
        /// The subset (version) of the service; `None`: all of it.
        version: Option<String>,
        /// The `:authority` of the calls; `None`: the service name.
        host: Option<String>,
    },
    /// A service registered in Consul.
    Consul {
        /// The service's name in Consul.
        service: String,
        /// The Consul datacenter it is in.
        datacenter: String,
        /// The service port.
        port: u16,
        /// The `:authority` of the calls; `None`: the service name.
        host: Option<String>,
    },
    /// The upstream cluster the current request is routed to (so a call
    /// from outside a request has none).
    Route {
        /// The `:authority` of the calls; `None`: the current request's.
        host: Option<String>,
    },
    /// An Envoy cluster by its exact name, for clusters that follow none of
    /// Higress's naming rules (such as the clusters of a plain Envoy config).
    Target {
        /// The cluster's name, used as given.
        cluster: String,
        /// The `:authority` of the calls.
        host: String,
    },
}

impl Cluster {
    /// A service named the way the Higress Go plugin guide's configs name it: its full name with
    /// the registry type as suffix (`my-svc.dns`, `my-svc.static`,
    /// `httpbin.my-ns.svc.cluster.local`, `svc.DEFAULT-GROUP.public.nacos`).
    /// A `.static` service without a port uses port 80; others need one.
    pub fn service(name: &str, port: Option<u16>) -> Result<Cluster, String> {
        Cluster::check_service_name(name)?;
        let port = match port {
            Some(0) => return Err("port 0 is not a port".to_string()),
            Some(port) => port,
            None if name.ends_with(".static") => 80,
            None => return Err(format!("needs a port: only .static services default to 80 ({name})")),
        };
        Ok(Cluster::Fqdn { fqdn: name.to_string(), port, host: None })
    }

    /// Whether [`Cluster::service`] takes `name` as a service name: not
    /// empty, without `|` or NUL, without surrounding whitespace.
    pub fn check_service_name(name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("must not be empty".to_string());
        }
        if name.contains(['|', '\0']) || name.trim() != name {
            return Err(format!("`{name}` is not a service name"));
        }
        Ok(())
    }

    /// The Envoy cluster a call goes to; `route_cluster` gives the current
    /// request's cluster for [`Cluster::Route`].
    pub fn cluster_name(&self, route_cluster: impl FnOnce() -> Option<String>) -> Option<String> {
        Some(match self {
            Cluster::Fqdn { fqdn, port, .. } => format!("outbound|{port}||{fqdn}"),
            Cluster::StaticIp { service, port, .. } => format!("outbound|{port}||{service}.static"),
            Cluster::Dns { service, port, .. } => format!("outbound|{port}||{service}.dns"),
            Cluster::K8s { service, namespace, port, version, .. } => format!(
                "outbound|{port}|{}|{service}.{}.svc.cluster.local",
                version.as_deref().unwrap_or(""),
                namespace.as_deref().unwrap_or("default")
            ),
            Cluster::Nacos { service, group, namespace_id, port, external, version, .. } => format!(
                "outbound|{port}|{}|{service}.{}.{namespace_id}.{}",
                version.as_deref().unwrap_or(""),
                group.as_deref().unwrap_or("DEFAULT-GROUP").replace('_', "-"),
                if *external { "nacos-ext" } else { "nacos" }
            ),
            Cluster::Consul { service, datacenter, port, .. } => {
                format!("outbound|{port}||{service}.{datacenter}.consul")
            }
            Cluster::Route { .. } => return route_cluster(),
            Cluster::Target { cluster, .. } => cluster.clone(),
        })
    }

    /// The `:authority` a call carries unless its URL names a host;
    /// `request_authority` gives the current request's for [`Cluster::Route`].
    pub fn host_name(&self, request_authority: impl FnOnce() -> Option<String>) -> Option<String> {
        Some(match self {
            Cluster::Fqdn { fqdn, host, .. } => host.clone().unwrap_or_else(|| fqdn.clone()),
            Cluster::StaticIp { service, host, .. } => host.clone().unwrap_or_else(|| service.clone()),
            Cluster::Dns { domain, .. } => domain.clone(),
            Cluster::K8s { service, namespace, host, .. } => host.clone().unwrap_or_else(|| {
                format!("{service}.{}.svc.cluster.local", namespace.as_deref().unwrap_or("default"))
            }),
            Cluster::Nacos { service, host, .. } | Cluster::Consul { service, host, .. } => {
                host.clone().unwrap_or_else(|| service.clone())
            }
            Cluster::Route { host } => match host {
                Some(host) => host.clone(),
                None => return request_authority(),
            },
            Cluster::Target { host, .. } => host.clone(),
        })
    }
}

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
}

impl HttpClient {
    /// A client for `cluster`; its cluster and `:authority` names are worked
    /// out here, once (for [`Cluster::Route`], at each call).
    pub fn new(cluster: Cluster) -> Self {
        let cluster_name = cluster.cluster_name(|| None);
        let host_name = cluster.host_name(|| None);
        HttpClient { cluster, cluster_name, host_name }
    }

    /// The cluster this client calls (for [`Cluster::Route`], `None`: it
    /// depends on the request).
    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster_name.as_deref()
    }

    /// A call with any method. `url` is a path (`/token?x=1`) or an absolute
    /// URL whose host becomes the `:authority`.
    pub fn request<'a>(&'a self, method: Method, url: &'a str) -> HttpCall<'a> {
        HttpCall {
            client: self,
            method,
            url,
            headers: Vec::new(),
            body: &[],
            timeout: Duration::from_millis(u64::from(DEFAULT_TIMEOUT_MS)),
        }
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

    /// Sets the timeout in milliseconds (default 500).
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
        let headers = self.wire_headers(&path, authority);
        req.dispatch_http(cluster, &headers, self.body, self.timeout, Box::new(callback))
            .map_err(|status| fail(describe_dispatch_failure(status)))
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
        let headers = self.wire_headers(&path, authority);
        plugin
            .dispatch_http(cluster, &headers, self.body, self.timeout, Box::new(callback))
            .map_err(|status| HttpCallError { cluster: cluster.to_string(), reason: describe_dispatch_failure(status) })
    }

    /// The call's headers as the host takes them: pseudo-headers first.
    fn wire_headers<'b>(&'b self, path: &'b str, authority: &'b str) -> Vec<(&'b str, &'b [u8])> {
        let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(self.headers.len() + 3);
        headers.push((":method", self.method.as_str().as_bytes()));
        headers.push((":path", path.as_bytes()));
        headers.push((":authority", authority.as_bytes()));
        headers.extend(
            self.headers
                .iter()
                .filter(|(name, _)| !name.starts_with(':'))
                .map(|(name, value)| (*name, value.as_bytes())),
        );
        headers
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
        crate::request::lossy(host::get_map_value(MapType::HttpCallResponseHeaders, name).ok().flatten())
    }

    /// Every response header, pseudo-headers included.
    pub fn headers(&self) -> Vec<(String, String)> {
        host::get_map(MapType::HttpCallResponseHeaders)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, crate::request::lossy(Some(v)).unwrap_or_default()))
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
    fn service_names_as_the_go_plugin_guide_writes_them() {
        let c = Cluster::service("my-svc.dns", Some(8080)).unwrap();
        assert_eq!(c.cluster_name(|| None).unwrap(), "outbound|8080||my-svc.dns");
        assert_eq!(c.host_name(|| None).unwrap(), "my-svc.dns");
        let c = Cluster::service("10.0.0.1.static", None).unwrap();
        assert_eq!(c.cluster_name(|| None).unwrap(), "outbound|80||10.0.0.1.static");
        assert!(Cluster::service("svc.dns", None).unwrap_err().contains("needs a port"));
        assert!(Cluster::service("", Some(1)).is_err());
        assert!(Cluster::service("a|b", Some(1)).is_err());
        assert!(Cluster::service("a.dns", Some(0)).is_err());
    }

    #[test]
    fn every_cluster_kind_is_named_as_higress_names_it() {
        let none = || None::<String>;
        let k8s = Cluster::K8s { service: "httpbin".into(), namespace: None, port: 80, version: None, host: None };
        assert_eq!(k8s.cluster_name(none).unwrap(), "outbound|80||httpbin.default.svc.cluster.local");
        assert_eq!(k8s.host_name(none).unwrap(), "httpbin.default.svc.cluster.local");
        let k8s = Cluster::K8s {
            service: "a".into(),
            namespace: Some("ns".into()),
            port: 81,
            version: Some("v1".into()),
            host: Some("h".into()),
        };
        assert_eq!(k8s.cluster_name(none).unwrap(), "outbound|81|v1|a.ns.svc.cluster.local");
        assert_eq!(k8s.host_name(none).unwrap(), "h");
        let nacos = Cluster::Nacos {
            service: "p".into(),
            group: Some("MY_GROUP".into()),
            namespace_id: "public".into(),
            port: 8080,
            external: false,
            version: None,
            host: None,
        };
        assert_eq!(nacos.cluster_name(none).unwrap(), "outbound|8080||p.MY-GROUP.public.nacos");
        assert_eq!(nacos.host_name(none).unwrap(), "p");
        let nacos = Cluster::Nacos {
            service: "p".into(),
            group: None,
            namespace_id: "ns".into(),
            port: 1,
            external: true,
            version: Some("v".into()),
            host: None,
        };
        assert_eq!(nacos.cluster_name(none).unwrap(), "outbound|1|v|p.DEFAULT-GROUP.ns.nacos-ext");
        let dns = Cluster::Dns { service: "d".into(), domain: "d.example.com".into(), port: 443 };
        assert_eq!(dns.cluster_name(none).unwrap(), "outbound|443||d.dns");
        assert_eq!(dns.host_name(none).unwrap(), "d.example.com");
        let st = Cluster::StaticIp { service: "s".into(), port: 80, host: None };
        assert_eq!(st.cluster_name(none).unwrap(), "outbound|80||s.static");
        let consul = Cluster::Consul { service: "c".into(), datacenter: "dc1".into(), port: 8500, host: None };
        assert_eq!(consul.cluster_name(none).unwrap(), "outbound|8500||c.dc1.consul");
        let fqdn = Cluster::Fqdn { fqdn: "x.y".into(), port: 9, host: Some("h".into()) };
        assert_eq!(fqdn.cluster_name(none).unwrap(), "outbound|9||x.y");
        assert_eq!(fqdn.host_name(none).unwrap(), "h");
        let route = Cluster::Route { host: None };
        assert_eq!(route.cluster_name(|| Some("outbound|80||up".into())).unwrap(), "outbound|80||up");
        assert_eq!(route.host_name(|| Some("req.host".into())).unwrap(), "req.host");
        let target = Cluster::Target { cluster: "raw".into(), host: "h".into() };
        assert_eq!(target.cluster_name(none).unwrap(), "raw");
        assert_eq!(target.host_name(none).unwrap(), "h");
    }

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
    fn every_method_has_its_wire_name() {
        assert_eq!(Method::Connect.as_str(), "CONNECT");
        assert_eq!(Method::Trace.as_str(), "TRACE");
        assert_eq!(Method::Patch.as_str(), "PATCH");
    }

    #[test]
    fn status_rules() {
        assert_eq!(parse_status(b"200"), 200);
        assert_eq!(parse_status(b"abc"), 500);
        assert_eq!(parse_status(b"\xff"), 500);
        assert_eq!(parse_status(b"99999"), 500);
    }
}
