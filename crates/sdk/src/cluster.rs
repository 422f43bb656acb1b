//! Where a call goes: [`Cluster`], an Envoy cluster named the way Higress
//! names the clusters of its services, and the `:authority` calls to it carry.
//!
//! Used by the HTTP client (`http.rs`) and the Redis client (`redis.rs`);
//! a leaf: depends on nothing else in the crate.

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
}
