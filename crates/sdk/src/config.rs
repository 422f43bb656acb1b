//! Plugin configuration: the host's JSON, its `_rules_`, and which config a request gets.
//!
//! Higress (and our `envoy.yaml`) hand a plugin one JSON object. Keys other than
//! `_rules_` and `_plugin_id_` form the global config; each entry of `_rules_`
//! carries one or more match keys and a config of its own:
//!
//! ```json
//! {"mockEnable": false,
//!  "_rules_": [
//!    {"_match_route_": ["r1"], "mockEnable": true},
//!    {"_match_domain_": ["*.example.com", "www.*"], "mockEnable": true},
//!    {"_match_service_": ["httpbin.dns", "api.static:8080"], "mockEnable": true},
//!    {"_match_route_prefix_": ["api-"], "mockEnable": true}]}
//! ```
//!
//! At request time the rules are tried in order and the first match wins; when
//! none matches, the global config applies, and when there is none the plugin
//! leaves the request alone. The semantics are those of Higress's Go matcher:
//!
//! * a rule's category is decided by its keys, in this order: route (and, when
//!   the rule also lists services, route *and* service), domain, service, route
//!   prefix; other keys of the same rule are not consulted;
//! * route: the route's name equals one listed; route prefix: the route's name
//!   starts with one listed;
//! * domain: the request's `:authority` without its port; `*x` matches by
//!   suffix, `x*` by prefix, `*` matches all, anything else exactly (ASCII case
//!   is ignored, as DNS does);
//! * service: the upstream cluster name `outbound|port|subset|name` matches
//!   `name`, or `name:port`.
//!
//! Errors name the JSON path of the offending value, e.g.
//! `_rules_[1].timeout: invalid type: string "x", expected u32`.
//!
//! **Rule-level isolation** ([`Plugin::RULE_ISOLATION`](crate::Plugin::RULE_ISOLATION),
//! Go's `EnableRuleLevelConfigIsolation`): by default one bad rule refuses
//! the whole configuration. With isolation, a rule whose config fails (to
//! parse, or [`Plugin::on_configure`](crate::Plugin::on_configure)) is
//! replaced by the last good config this VM saw for the same match keys, or
//! else left out, and the others apply; only when every rule fails is the
//! configuration refused. A rule without match keys is still an error.

use crate::json::{self, Json};
use serde::de::{Deserialize, DeserializeOwned};
use std::fmt;

const RULES_KEY: &str = "_rules_";
const PLUGIN_ID_KEY: &str = "_plugin_id_";
const MATCH_ROUTE: &str = "_match_route_";
const MATCH_DOMAIN: &str = "_match_domain_";
const MATCH_SERVICE: &str = "_match_service_";
const MATCH_ROUTE_PREFIX: &str = "_match_route_prefix_";
const MATCH_KEYS: [&str; 4] = [MATCH_ROUTE, MATCH_DOMAIN, MATCH_SERVICE, MATCH_ROUTE_PREFIX];

/// How a rule's config is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleMode {
    /// A rule's config is its own keys only (Higress's default).
    Standalone,
    /// A rule starts from the global keys and overrides them with its own
    /// (Higress's "override" parse). The global keys alone need not form a
    /// complete config then.
    OverrideGlobal,
}

/// A configuration the plugin refuses, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending value (`_rules_[0].timeout`); empty for the whole document.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The parsed configuration: a global config, rules, and the plugin id for logs.
#[derive(Debug)]
pub struct Rules<C> {
    plugin_id: Option<String>,
    global: Option<C>,
    rules: Vec<Rule<C>>,
    /// The plugin's values under this configuration (see `store.rs`).
    store: crate::store::Store,
}

#[derive(Debug)]
struct Rule<C> {
    matcher: Matcher,
    config: C,
}

#[derive(Debug)]
enum Matcher {
    Route(Vec<String>),
    RouteAndService(Vec<String>, Vec<String>),
    Domain(Vec<DomainPattern>),
    Service(Vec<String>),
    RoutePrefix(Vec<String>),
}

#[derive(Debug)]
enum DomainPattern {
    Suffix(String),
    Prefix(String),
    Exact(String),
}

/// What a request offers to the matcher. The SDK reads each fact from the host
/// only when a rule needs it.
pub trait RequestFacts {
    /// The route's name (Higress `route_name`, Envoy `xds.route_name`).
    fn route_name(&mut self) -> Option<String>;
    /// The request's `:authority`.
    fn authority(&mut self) -> Option<String>;
    /// The upstream cluster's name (Higress `cluster_name`, Envoy `xds.cluster_name`).
    fn cluster_name(&mut self) -> Option<String>;
}

/// A JSON object's entries, in document order.
type Pairs = Vec<(String, Json)>;

/// The last good config of each rule, by its match keys, kept for the VM's
/// life so that a rule that turns bad on a reload falls back to it (rule-level
/// isolation only).
#[derive(Debug, Default)]
pub(crate) struct RuleBackup {
    by_matcher: std::collections::BTreeMap<String, Pairs>,
}

/// What checks a parsed config (with the configuration's plugin id): an
/// error refuses it, as [`Plugin::on_configure`](crate::Plugin::on_configure) does.
pub(crate) type Check<'a, C> = dyn FnMut(&C, Option<&str>) -> Result<(), String> + 'a;

/// How [`Rules::parse_checked`] treats a rule that fails: with a backup,
/// rule by rule; without, by refusing the whole configuration.
pub(crate) struct Isolation<'a> {
    pub(crate) backup: &'a mut RuleBackup,
    /// What was done with each rule that failed, for the log.
    pub(crate) notes: Vec<String>,
}

impl<C: DeserializeOwned> Rules<C> {
    /// Parses the plugin configuration the host passed (empty means `{}`).
    pub fn parse(bytes: &[u8], mode: RuleMode) -> Result<Self, ConfigError> {
        Self::parse_checked(bytes, mode, &mut |_: &C, _| Ok(()), None)
    }

    /// Parses as [`Rules::parse`] does, checking each config with `check`
    /// as it is parsed (the global one, then each rule's). With `isolation`,
    /// a rule that fails is taken from the backup or left out.
    pub(crate) fn parse_checked(
        bytes: &[u8],
        mode: RuleMode,
        check: &mut Check<'_, C>,
        mut isolation: Option<&mut Isolation<'_>>,
    ) -> Result<Self, ConfigError> {
        let mut global = if bytes.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            match json::parse(bytes) {
                Ok(Json::Object(pairs)) => pairs,
                Ok(_) => return Err(ConfigError::new("", "the configuration must be a JSON object")),
                Err(err) => return Err(ConfigError::new("", format!("malformed JSON: {err}"))),
            }
        };
        let plugin_id = match take(&mut global, PLUGIN_ID_KEY) {
            None => None,
            Some(Json::String(id)) => Some(id),
            Some(_) => return Err(ConfigError::new(PLUGIN_ID_KEY, "expected a string")),
        };
        let rules_given = global.iter().any(|(key, _)| key == RULES_KEY);
        let raw_rules = match take(&mut global, RULES_KEY) {
            None => Vec::new(),
            Some(Json::Array(rules)) => rules,
            Some(_) => return Err(ConfigError::new(RULES_KEY, "expected an array of rules")),
        };

        // No rules: the global config must stand on its own (`{}` included, so
        // that a plugin whose fields all have defaults runs unconfigured).
        if raw_rules.is_empty() {
            if rules_given && global.is_empty() {
                return Err(ConfigError::new(RULES_KEY, "no rules and no global config"));
            }
            let config = deserialize(global, "")?;
            check(&config, plugin_id.as_deref()).map_err(|err| ConfigError::new("", err))?;
            return Ok(Rules { plugin_id, global: Some(config), rules: Vec::new(), store: Default::default() });
        }

        let global_config = if global.is_empty() {
            None
        } else {
            match deserialize(global.clone(), "") {
                Ok(config) => {
                    check(&config, plugin_id.as_deref()).map_err(|err| ConfigError::new("", err))?;
                    Some(config)
                }
                // With rules that override it, the global keys may be a partial
                // config that only rules complete: then there is no global config.
                Err(_) if mode == RuleMode::OverrideGlobal => None,
                Err(err) => return Err(err),
            }
        };

        let mut rules = Vec::with_capacity(raw_rules.len());
        let mut failed = 0;
        for (index, raw) in raw_rules.into_iter().enumerate() {
            let path = format!("{RULES_KEY}[{index}]");
            let Json::Object(mut own) = raw else {
                return Err(ConfigError::new(path, "expected an object"));
            };
            let matcher = take_matcher(&mut own, &path)?;
            let build = |own: Pairs, check: &mut Check<'_, C>| {
                let body = match mode {
                    RuleMode::Standalone => own,
                    RuleMode::OverrideGlobal => {
                        let mut merged: Pairs =
                            global.iter().filter(|(key, _)| !own.iter().any(|(k, _)| k == key)).cloned().collect();
                        merged.extend(own);
                        merged
                    }
                };
                let config = deserialize(body, &path)?;
                check(&config, plugin_id.as_deref()).map_err(|err| ConfigError::new(path.clone(), err))?;
                Ok::<C, ConfigError>(config)
            };
            let Some(isolation) = isolation.as_deref_mut() else {
                rules.push(Rule { matcher, config: build(own, check)? });
                continue;
            };
            let key = format!("{}|{}", plugin_id.as_deref().unwrap_or(""), matcher.key());
            match build(own.clone(), check) {
                Ok(config) => {
                    isolation.backup.by_matcher.insert(key, own);
                    rules.push(Rule { matcher, config });
                }
                Err(err) => {
                    failed += 1;
                    let earlier = isolation.backup.by_matcher.get(&key).cloned();
                    match earlier.map(|earlier| build(earlier, check)) {
                        Some(Ok(config)) => {
                            isolation.notes.push(format!("{err}; the rule keeps its last good configuration"));
                            rules.push(Rule { matcher, config });
                        }
                        Some(Err(again)) => isolation.notes.push(format!(
                            "{err}; the rule is left out (its last good configuration fails too: {again})"
                        )),
                        None => {
                            isolation.notes.push(format!("{err}; the rule is left out (no earlier good configuration)"))
                        }
                    }
                }
            }
        }
        if failed > 0 && rules.is_empty() {
            return Err(ConfigError::new(RULES_KEY, "every rule failed and none has an earlier good configuration"));
        }
        Ok(Rules { plugin_id, global: global_config, rules, store: Default::default() })
    }
}

/// How rules are shared between the root and its requests: an `Rc` in a
/// Wasm VM (one thread), an `Arc` in native builds, where Envoy's worker
/// threads share one parsed configuration.
#[cfg(not(feature = "native"))]
pub(crate) type Shared<T> = std::rc::Rc<T>;
/// How rules are shared between the root and its requests (native builds: across worker threads).
#[cfg(feature = "native")]
pub(crate) type Shared<T> = std::sync::Arc<T>;

/// Parses a plugin's configuration and runs its [`Plugin::on_configure`]
/// on every config (the global one, then each rule's), logging with the
/// plugin's prefix why it is refused (`None`); `replaced` words the log
/// line of a new configuration of a running plugin. Both backends start a
/// configuration here.
pub(crate) fn configure<P: crate::Plugin>(bytes: &[u8], replaced: bool) -> Option<Rules<P::Config>> {
    // The plugin id is in the JSON: lines about the configuration carry it
    // once it is parsed (the checks run after that).
    let plugin_id = std::cell::RefCell::new(None::<String>);
    let mut check = |config: &P::Config, id: Option<&str>| {
        if let Ok(mut slot) = plugin_id.try_borrow_mut() {
            if slot.is_none() {
                *slot = id.map(str::to_string);
            }
        }
        P::on_configure(config, &crate::Log::new(P::NAME, id, false))
    };
    let parsed = if P::RULE_ISOLATION {
        BACKUP.with(|cell| match cell.try_borrow_mut() {
            Ok(mut backup) => {
                let mut isolation = Isolation { backup: &mut backup, notes: Vec::new() };
                let parsed = Rules::<P::Config>::parse_checked(bytes, P::RULE_MODE, &mut check, Some(&mut isolation));
                let id = plugin_id.try_borrow().ok().and_then(|id| id.clone());
                for note in &isolation.notes {
                    crate::Log::new(P::NAME, id.as_deref(), false).warn(format_args!("invalid rule: {note}"));
                }
                parsed
            }
            Err(_) => Err(ConfigError::new("", "the rule backup is in use")),
        })
    } else {
        Rules::<P::Config>::parse_checked(bytes, P::RULE_MODE, &mut check, None)
    };
    match parsed {
        Ok(rules) => {
            let log = crate::Log::new(P::NAME, rules.plugin_id(), false);
            log.info(if replaced { "configuration replaced" } else { "configured" });
            Some(rules)
        }
        Err(err) => {
            let id = plugin_id.try_borrow().ok().and_then(|id| id.clone());
            crate::Log::new(P::NAME, id.as_deref(), false).critical(format_args!("invalid configuration: {err}"));
            None
        }
    }
}

thread_local! {
    /// The VM's rule backup (Go keeps one per VM too): configurations are
    /// parsed on one thread, the VM's, or Envoy's main thread natively.
    static BACKUP: std::cell::RefCell<RuleBackup> = std::cell::RefCell::new(RuleBackup::default());
}

impl<C> Rules<C> {
    /// No configuration yet: nothing applies to any request (Wasm builds,
    /// between VM start and the first configuration).
    #[cfg_attr(feature = "native", allow(dead_code))]
    pub(crate) fn empty() -> Self {
        Rules { plugin_id: None, global: None, rules: Vec::new(), store: Default::default() }
    }

    /// The plugin's store under this configuration.
    pub(crate) fn store(&self) -> &crate::store::Store {
        &self.store
    }

    /// The `_plugin_id_` of the configuration, used in log lines.
    pub fn plugin_id(&self) -> Option<&str> {
        self.plugin_id.as_deref()
    }

    /// Whether any rule exists (if not, every request gets the global config
    /// and nothing needs to be read from the host to choose).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Every config with its JSON path: the global one (path `""`) and each rule's.
    pub fn configs(&self) -> impl Iterator<Item = (String, &C)> {
        let global = self.global.iter().map(|config| (String::new(), config));
        let rules = self.rules.iter().enumerate().map(|(i, rule)| (format!("{RULES_KEY}[{i}]"), &rule.config));
        global.chain(rules)
    }

    /// The global config, if there is one.
    pub fn global(&self) -> Option<&C> {
        self.global.as_ref()
    }

    /// Which config applies to a request: `Some(Some(i))` rule `i`, `Some(None)`
    /// the global config, `None` nothing (the plugin leaves the request alone).
    pub fn select(&self, facts: &mut impl RequestFacts) -> Option<Option<usize>> {
        let mut cache = FactCache::default();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.matcher.matches(&mut cache, facts) {
                return Some(Some(index));
            }
        }
        self.global.as_ref().map(|_| None)
    }

    /// The config chosen by [`Rules::select`].
    pub fn get(&self, selected: Option<usize>) -> Option<&C> {
        match selected {
            Some(index) => self.rules.get(index).map(|rule| &rule.config),
            None => self.global.as_ref(),
        }
    }
}

/// Removes a key from the object, returning its value.
fn take(pairs: &mut Pairs, key: &str) -> Option<Json> {
    let at = pairs.iter().position(|(k, _)| k == key)?;
    Some(pairs.remove(at).1)
}

fn deserialize<C: DeserializeOwned>(pairs: Pairs, prefix: &str) -> Result<C, ConfigError> {
    let object = Json::Object(pairs);
    C::deserialize(&object).map_err(|err| {
        let inner = err.path();
        let path = match (prefix.is_empty(), inner.is_empty()) {
            (_, true) => prefix.to_string(),
            (true, false) => inner,
            (false, false) => format!("{prefix}.{inner}"),
        };
        ConfigError::new(path, err.message())
    })
}

fn take_matcher(rule: &mut Pairs, path: &str) -> Result<Matcher, ConfigError> {
    let mut lists: [Vec<String>; 4] = Default::default();
    for (key, list) in MATCH_KEYS.iter().zip(lists.iter_mut()) {
        if let Some(raw) = take(rule, key) {
            let items = Vec::<String>::deserialize(&raw)
                .map_err(|_| ConfigError::new(format!("{path}.{key}"), "expected an array of strings"))?;
            // Empty entries are ignored, as Higress does.
            *list = items.into_iter().filter(|item| !item.is_empty()).collect();
        }
    }
    let [routes, domains, services, prefixes] = lists;
    Ok(if !routes.is_empty() && !services.is_empty() {
        Matcher::RouteAndService(routes, services)
    } else if !routes.is_empty() {
        Matcher::Route(routes)
    } else if !domains.is_empty() {
        Matcher::Domain(domains.into_iter().map(DomainPattern::parse).collect())
    } else if !services.is_empty() {
        Matcher::Service(services)
    } else if !prefixes.is_empty() {
        Matcher::RoutePrefix(prefixes)
    } else {
        return Err(ConfigError::new(
            path,
            "a rule needs a non-empty _match_route_, _match_domain_, _match_service_ or _match_route_prefix_",
        ));
    })
}

impl Matcher {
    /// The rule's match keys as one string, the same for the same keys in
    /// any order: what the backup of rule-level isolation is keyed by.
    fn key(&self) -> String {
        fn sorted(items: impl Iterator<Item = String>) -> String {
            let mut items: Vec<String> = items.collect();
            items.sort_unstable();
            items.join(",")
        }
        fn strs(list: &[String]) -> String {
            sorted(list.iter().cloned())
        }
        match self {
            Matcher::Route(routes) => format!("route:{}", strs(routes)),
            Matcher::RouteAndService(routes, services) => {
                format!("route:{};service:{}", strs(routes), strs(services))
            }
            Matcher::Domain(domains) => format!("domain:{}", sorted(domains.iter().map(DomainPattern::as_written))),
            Matcher::Service(services) => format!("service:{}", strs(services)),
            Matcher::RoutePrefix(prefixes) => format!("prefix:{}", strs(prefixes)),
        }
    }
}

impl DomainPattern {
    fn parse(pattern: String) -> Self {
        if let Some(rest) = pattern.strip_prefix('*') {
            DomainPattern::Suffix(rest.to_ascii_lowercase())
        } else if let Some(rest) = pattern.strip_suffix('*') {
            DomainPattern::Prefix(rest.to_ascii_lowercase())
        } else {
            DomainPattern::Exact(pattern.to_ascii_lowercase())
        }
    }

    /// The pattern as a config writes it (lowercased).
    fn as_written(&self) -> String {
        match self {
            DomainPattern::Suffix(s) => format!("*{s}"),
            DomainPattern::Prefix(p) => format!("{p}*"),
            DomainPattern::Exact(e) => e.clone(),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Suffix(s) => host.ends_with(s.as_str()),
            DomainPattern::Prefix(p) => host.starts_with(p.as_str()),
            DomainPattern::Exact(e) => host == e,
        }
    }
}

/// Each fact read from the host at most once per request.
#[derive(Default)]
struct FactCache {
    route: Option<Option<String>>,
    host: Option<Option<String>>,
    cluster: Option<Option<String>>,
}

impl FactCache {
    fn route(&mut self, facts: &mut impl RequestFacts) -> Option<&str> {
        self.route.get_or_insert_with(|| facts.route_name()).as_deref()
    }
    fn host(&mut self, facts: &mut impl RequestFacts) -> Option<&str> {
        self.host.get_or_insert_with(|| facts.authority().map(|a| strip_port(&a).to_ascii_lowercase())).as_deref()
    }
    fn cluster(&mut self, facts: &mut impl RequestFacts) -> Option<&str> {
        self.cluster.get_or_insert_with(|| facts.cluster_name()).as_deref()
    }
}

impl Matcher {
    fn matches(&self, cache: &mut FactCache, facts: &mut impl RequestFacts) -> bool {
        match self {
            Matcher::Route(routes) => cache.route(facts).is_some_and(|r| routes.iter().any(|x| x == r)),
            Matcher::RouteAndService(routes, services) => {
                cache.route(facts).is_some_and(|r| routes.iter().any(|x| x == r))
                    && cache.cluster(facts).is_some_and(|c| service_matches(services, c))
            }
            Matcher::Domain(patterns) => cache.host(facts).is_some_and(|h| patterns.iter().any(|p| p.matches(h))),
            Matcher::Service(services) => cache.cluster(facts).is_some_and(|c| service_matches(services, c)),
            Matcher::RoutePrefix(prefixes) => {
                cache.route(facts).is_some_and(|r| prefixes.iter().any(|p| r.starts_with(p.as_str())))
            }
        }
    }
}

/// `outbound|port|subset|name` against `name` or `name:port`.
fn service_matches(services: &[String], cluster: &str) -> bool {
    let parts: Vec<&str> = cluster.split('|').collect();
    let [_, port, _, name] = parts.as_slice() else { return false };
    services.iter().any(|service| match service.rsplit_once(':') {
        Some((svc_name, svc_port)) if svc_name == *name && svc_port == *port => true,
        _ => service == name,
    })
}

/// `host:port` to `host`, leaving IPv6 literals (`[::1]`) whole.
pub fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(colon) if authority.rfind(']').is_none_or(|bracket| bracket < colon) => {
            authority.get(..colon).unwrap_or(authority)
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Mock {
        #[serde(default)]
        mock_enable: bool,
        #[serde(default)]
        body: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Call {
        token_header: String,
        #[serde(default = "default_timeout")]
        timeout: u32,
    }

    fn default_timeout() -> u32 {
        500
    }

    #[derive(Default)]
    struct Facts {
        route: Option<&'static str>,
        authority: Option<&'static str>,
        cluster: Option<&'static str>,
        reads: usize,
    }

    impl RequestFacts for Facts {
        fn route_name(&mut self) -> Option<String> {
            self.reads += 1;
            self.route.map(str::to_string)
        }
        fn authority(&mut self) -> Option<String> {
            self.reads += 1;
            self.authority.map(str::to_string)
        }
        fn cluster_name(&mut self) -> Option<String> {
            self.reads += 1;
            self.cluster.map(str::to_string)
        }
    }

    fn parse<C: DeserializeOwned>(json: &str) -> Result<Rules<C>, ConfigError> {
        Rules::parse(json.as_bytes(), RuleMode::Standalone)
    }

    fn err<C: DeserializeOwned + fmt::Debug>(json: &str, mode: RuleMode) -> String {
        Rules::<C>::parse(json.as_bytes(), mode).unwrap_err().to_string()
    }

    #[test]
    fn empty_config_is_the_default_global_config() {
        for json in ["", "  \n", "{}"] {
            let rules: Rules<Mock> = parse(json).unwrap();
            assert_eq!(rules.global(), Some(&Mock { mock_enable: false, body: None }));
            assert!(!rules.has_rules());
        }
    }

    #[test]
    fn plugin_id_is_taken_out_of_the_config() {
        let rules: Rules<Mock> = parse(r#"{"_plugin_id_": "p-1", "mockEnable": true}"#).unwrap();
        assert_eq!(rules.plugin_id(), Some("p-1"));
        assert!(rules.global().unwrap().mock_enable);
        assert_eq!(err::<Mock>(r#"{"_plugin_id_": 3}"#, RuleMode::Standalone), "_plugin_id_: expected a string");
    }

    #[test]
    fn errors_name_the_field() {
        let m = RuleMode::Standalone;
        assert_eq!(err::<Call>("{}", m), "missing field `tokenHeader`");
        assert_eq!(
            err::<Call>(r#"{"tokenHeader": "x", "timeout": "1s"}"#, m),
            "timeout: invalid type: string \"1s\", expected u32"
        );
        assert_eq!(
            err::<Call>(r#"{"tokenHeader": "x", "_rules_": [{"_match_route_": ["r"], "tokenHeader": 5}]}"#, m),
            "_rules_[0].tokenHeader: invalid type: integer `5`, expected a string"
        );
        assert!(err::<Mock>(r#"{"mockenable": true}"#, m)
            .starts_with("mockenable: unknown field `mockenable`, expected `mockEnable`"));
        assert!(err::<Mock>(r#"{"mockEnable": tru}"#, m)
            .starts_with("malformed JSON: expected a value at line 1 column 16"));
        assert_eq!(err::<Mock>("[1]", m), "the configuration must be a JSON object");
    }

    #[test]
    fn rules_need_a_match_key() {
        let m = RuleMode::Standalone;
        let msg = err::<Mock>(r#"{"_rules_": [{"_match_route_": ["a"]}, {"mockEnable": true}]}"#, m);
        assert!(msg.starts_with("_rules_[1]: a rule needs a non-empty _match_route_"), "{msg}");
        let msg = err::<Mock>(r#"{"_rules_": [{"_match_domain_": [""]}]}"#, m);
        assert!(msg.starts_with("_rules_[0]: a rule needs"), "{msg}");
        assert_eq!(
            err::<Mock>(r#"{"_rules_": [{"_match_route_": "a"}]}"#, m),
            "_rules_[0]._match_route_: expected an array of strings"
        );
        assert_eq!(err::<Mock>(r#"{"_rules_": {}}"#, m), "_rules_: expected an array of rules");
        assert_eq!(err::<Mock>(r#"{"_rules_": [3]}"#, m), "_rules_[0]: expected an object");
        assert_eq!(err::<Mock>(r#"{"_rules_": []}"#, m), "_rules_: no rules and no global config");
    }

    #[test]
    fn first_matching_rule_wins_then_global() {
        let rules: Rules<Mock> = parse(
            r#"{"body": "global", "_rules_": [
                {"_match_route_": ["r1", "r2"], "body": "route"},
                {"_match_domain_": ["*.example.com", "www.*", "exact.org"], "body": "domain"},
                {"_match_service_": ["httpbin.dns", "api.static:8080"], "body": "service"},
                {"_match_route_prefix_": ["api-"], "body": "prefix"}]}"#,
        )
        .unwrap();
        let body = |facts: &mut Facts| {
            let chosen = rules.select(facts).unwrap();
            rules.get(chosen).unwrap().body.clone().unwrap()
        };
        assert_eq!(body(&mut Facts { route: Some("r2"), ..Default::default() }), "route");
        assert_eq!(body(&mut Facts { authority: Some("a.example.com:8080"), ..Default::default() }), "domain");
        assert_eq!(body(&mut Facts { authority: Some("WWW.abc.com"), ..Default::default() }), "domain");
        assert_eq!(body(&mut Facts { authority: Some("exact.org"), ..Default::default() }), "domain");
        assert_eq!(body(&mut Facts { authority: Some("exact.org.evil"), ..Default::default() }), "global");
        assert_eq!(body(&mut Facts { cluster: Some("outbound|80||httpbin.dns"), ..Default::default() }), "service");
        assert_eq!(body(&mut Facts { cluster: Some("outbound|8080||api.static"), ..Default::default() }), "service");
        assert_eq!(body(&mut Facts { cluster: Some("outbound|80||api.static"), ..Default::default() }), "global");
        assert_eq!(body(&mut Facts { cluster: Some("httpbin.dns"), ..Default::default() }), "global");
        assert_eq!(body(&mut Facts { route: Some("api-users"), ..Default::default() }), "prefix");
        assert_eq!(body(&mut Facts::default()), "global");
    }

    #[test]
    fn each_fact_is_read_once() {
        let rules: Rules<Mock> = parse(
            r#"{"_rules_": [{"_match_route_": ["a"]}, {"_match_route_": ["b"]}, {"_match_route_prefix_": ["c"]}]}"#,
        )
        .unwrap();
        let mut facts = Facts { route: Some("zzz"), ..Default::default() };
        assert_eq!(rules.select(&mut facts), None);
        assert_eq!(facts.reads, 1);
    }

    #[test]
    fn only_rules_means_untouched_elsewhere() {
        let rules: Rules<Mock> = parse(r#"{"_rules_": [{"_match_route_": ["r1"], "mockEnable": true}]}"#).unwrap();
        assert!(rules.global().is_none());
        assert_eq!(rules.select(&mut Facts { route: Some("r1"), ..Default::default() }), Some(Some(0)));
        assert_eq!(rules.select(&mut Facts { route: Some("r9"), ..Default::default() }), None);
    }

    #[test]
    fn route_and_service_must_both_match() {
        let rules: Rules<Mock> =
            parse(r#"{"_rules_": [{"_match_route_": ["r1"], "_match_service_": ["s.dns"]}]}"#).unwrap();
        let hit = Facts { route: Some("r1"), cluster: Some("outbound|80||s.dns"), ..Default::default() };
        let miss = Facts { route: Some("r1"), cluster: Some("outbound|80||t.dns"), ..Default::default() };
        assert_eq!(rules.select(&mut { hit }), Some(Some(0)));
        assert_eq!(rules.select(&mut { miss }), None);
    }

    #[test]
    fn override_mode_starts_rules_from_the_global_keys() {
        let json = r#"{"timeout": 900, "_rules_": [{"_match_route_": ["r"], "tokenHeader": "x-t"}]}"#;
        let rules: Rules<Call> = Rules::parse(json.as_bytes(), RuleMode::OverrideGlobal).unwrap();
        // The global keys alone lack `tokenHeader`: no global config, but the rule inherits `timeout`.
        assert!(rules.global().is_none());
        assert_eq!(rules.get(Some(0)), Some(&Call { token_header: "x-t".into(), timeout: 900 }));
        // In standalone mode the incomplete global config is an error.
        assert_eq!(err::<Call>(json, RuleMode::Standalone), "missing field `tokenHeader`");
    }

    /// Parses with rule-level isolation against `backup`, refusing a body of "bad".
    fn isolated(json: &str, backup: &mut RuleBackup) -> (Result<Rules<Mock>, ConfigError>, Vec<String>) {
        let mut isolation = Isolation { backup, notes: Vec::new() };
        let mut check = |config: &Mock, _: Option<&str>| match config.body.as_deref() {
            Some("bad") => Err("body must not be bad".to_string()),
            _ => Ok(()),
        };
        let parsed = Rules::parse_checked(json.as_bytes(), RuleMode::Standalone, &mut check, Some(&mut isolation));
        (parsed, isolation.notes)
    }

    fn bodies(rules: &Rules<Mock>) -> Vec<String> {
        rules.configs().map(|(path, c)| format!("{path}={}", c.body.clone().unwrap_or_default())).collect()
    }

    #[test]
    fn isolation_leaves_out_a_bad_rule_and_keeps_the_others() {
        let mut backup = RuleBackup::default();
        let json = r#"{"body": "g", "_rules_": [
            {"_match_route_": ["a"], "body": "a1"},
            {"_match_route_": ["b"], "body": 7},
            {"_match_domain_": ["*.x.com"], "body": "bad"}]}"#;
        let (rules, notes) = isolated(json, &mut backup);
        let rules = rules.unwrap();
        assert_eq!(bodies(&rules), ["=g", "_rules_[0]=a1"]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("_rules_[1].body: invalid type: integer `7`"), "{notes:?}");
        assert!(notes[0].ends_with("the rule is left out (no earlier good configuration)"), "{notes:?}");
        assert!(notes[1].starts_with("_rules_[2]: body must not be bad;"), "{notes:?}");
        // Without isolation the same configuration is refused at the first bad rule.
        let strict = Rules::<Mock>::parse(json.as_bytes(), RuleMode::Standalone).unwrap_err();
        assert_eq!(strict.path, "_rules_[1].body");
    }

    #[test]
    fn isolation_falls_back_to_the_rules_last_good_config() {
        let mut backup = RuleBackup::default();
        let good =
            r#"{"_rules_": [{"_match_route_": ["b", "a"], "body": "v1"}, {"_match_route_": ["c"], "body": "c1"}]}"#;
        let (rules, notes) = isolated(good, &mut backup);
        assert_eq!(bodies(&rules.unwrap()), ["_rules_[0]=v1", "_rules_[1]=c1"]);
        assert!(notes.is_empty());
        // A reload breaks the first rule (its match keys in another order): it keeps v1.
        let bad =
            r#"{"_rules_": [{"_match_route_": ["a", "b"], "body": "bad"}, {"_match_route_": ["c"], "body": "c2"}]}"#;
        let (rules, notes) = isolated(bad, &mut backup);
        assert_eq!(bodies(&rules.unwrap()), ["_rules_[0]=v1", "_rules_[1]=c2"]);
        assert_eq!(notes, ["_rules_[0]: body must not be bad; the rule keeps its last good configuration"]);
        // Every rule bad, and no backup for the new match keys: refused.
        let (rules, _) = isolated(r#"{"_rules_": [{"_match_route_": ["z"], "body": "bad"}]}"#, &mut backup);
        assert_eq!(
            rules.unwrap_err().to_string(),
            "_rules_: every rule failed and none has an earlier good configuration"
        );
        // A rule without match keys is still an error.
        let (rules, _) = isolated(r#"{"_rules_": [{"body": "x"}]}"#, &mut backup);
        assert!(rules.unwrap_err().to_string().starts_with("_rules_[0]: a rule needs"));
    }

    #[test]
    fn checks_name_the_config_they_refuse() {
        let mut check = |config: &Mock, id: Option<&str>| match config.body.as_deref() {
            Some("bad") => Err(format!("bad in {}", id.unwrap_or("-"))),
            _ => Ok(()),
        };
        let json = r#"{"_plugin_id_": "p", "_rules_": [{"_match_route_": ["a"], "body": "bad"}]}"#;
        let err = Rules::<Mock>::parse_checked(json.as_bytes(), RuleMode::Standalone, &mut check, None).unwrap_err();
        assert_eq!(err.to_string(), "_rules_[0]: bad in p");
        let err =
            Rules::<Mock>::parse_checked(br#"{"body": "bad"}"#, RuleMode::Standalone, &mut check, None).unwrap_err();
        assert_eq!(err.to_string(), "bad in -");
    }

    #[test]
    fn ports_are_stripped_but_not_from_ipv6() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port(""), "");
    }
}
