//! Counters, gauges and histograms the host keeps and exports (Envoy's admin
//! `/stats`, Prometheus), defined once per VM.
//!
//! A metric is declared as a `static`: the SDK asks the host for its id the
//! first time it is used and keeps the id in the static, so a plugin neither
//! defines metrics by hand nor carries ids around. Each VM (Envoy runs one
//! per worker thread) defines its own id for the same name, and the host adds
//! them up under that name.
//!
//! ```
//! use gateway_sdk::metrics::Counter;
//!
//! static DENIED: Counter = Counter::new("auth_denied");
//!
//! # fn in_a_hook() {
//! // in a hook:
//! DENIED.increment(1);
//! DENIED.increment_tagged(&[("route", "orders")], 1);
//! # }
//! ```
//!
//! **Names.** Envoy shows a metric as `wasmcustom.<name>` in `/stats` (and
//! as `<name>` in `/stats/prometheus`). Tags are part of the name, as in
//! Higress's own plugins: `increment_tagged(&[("route", "orders")], 1)` counts
//! in `auth_denied.route.orders`. To export a tag as a Prometheus label,
//! give Envoy a tag extraction rule in its bootstrap `stats_config`, e.g.
//! `{tag_name: route, regex: "^wasmcustom\\.auth_denied(\\.route\\.([^.]+))"}`
//! (the first group is cut from the name, the second is the label's value).
//! Tag keys and values are written with every character other than ASCII letters, digits,
//! `-` and `_` replaced by `_`, so that a value taken from a request cannot
//! add name segments.
//!
//! **Failures.** A metric the host refuses to define is logged once and
//! then ignored: counting never fails a request. Each metric keeps the ids
//! of at most [`MAX_TAG_SETS`] tag combinations per VM; further combinations
//! are not counted (tag values from requests cannot grow the VM's memory
//! without bound), and that too is logged once.
//!
//! | Go SDK (`proxywasm`) | here | Envoy 1.40 and Higress |
//! |---|---|---|
//! | `DefineCounterMetric(name)`, `Increment(n)`, `Value()` | [`Counter`] | counter `wasmcustom.<name>` |
//! | `DefineGaugeMetric(name)`, `Add(n)`, `Value()` | [`Gauge`] (also [`Gauge::set`]) | gauge |
//! | `DefineHistogramMetric(name)`, `Record(v)` | [`Histogram`] | histogram (no value to read back) |

use crate::host::{self, MetricType};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Most tag combinations a metric keeps ids for, per VM.
pub const MAX_TAG_SETS: usize = 1024;

/// The cached id in a static: not asked yet, an id, or refused by the host.
const UNDEFINED: u64 = 0;
const DEFINED: u64 = 1 << 32;
const REFUSED: u64 = 2 << 32;

/// What every metric kind shares: its name, the id of the untagged metric
/// and the ids of its tagged ones.
struct Metric {
    kind: MetricType,
    name: &'static str,
    id: AtomicU64,
    tagged: Mutex<Tagged>,
}

struct Tagged {
    ids: Vec<(String, Option<u32>)>,
    full_logged: bool,
}

impl Metric {
    const fn new(kind: MetricType, name: &'static str) -> Self {
        Metric {
            kind,
            name,
            id: AtomicU64::new(UNDEFINED),
            tagged: Mutex::new(Tagged { ids: Vec::new(), full_logged: false }),
        }
    }

    /// The id of the untagged metric, defining it on first use.
    fn id(&self) -> Option<u32> {
        match self.id.load(Ordering::Relaxed) {
            REFUSED => None,
            UNDEFINED => {
                let id = self.define(self.name);
                self.id.store(id.map_or(REFUSED, |id| DEFINED | u64::from(id)), Ordering::Relaxed);
                id
            }
            cached => Some(cached as u32),
        }
    }

    /// The id of the metric with `tags`, defining it on first use.
    fn tagged_id(&self, tags: &[(&str, &str)]) -> Option<u32> {
        if tags.is_empty() {
            return self.id();
        }
        let name = full_name(self.name, tags);
        // A poisoned lock only means a panic elsewhere; the list is still whole.
        let mut tagged = self.tagged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, id)) = tagged.ids.iter().find(|(known, _)| *known == name) {
            return *id;
        }
        if tagged.ids.len() >= MAX_TAG_SETS {
            if !tagged.full_logged {
                tagged.full_logged = true;
                warn(format_args!(
                    "metric {}: more than {MAX_TAG_SETS} tag combinations; {name} and later ones are not counted",
                    self.name
                ));
            }
            return None;
        }
        let id = self.define(&name);
        tagged.ids.push((name, id));
        id
    }

    fn define(&self, name: &str) -> Option<u32> {
        match host::define_metric(self.kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                warn(format_args!("metric {name} not defined: the host refused it ({status}); it is not counted"));
                None
            }
        }
    }
}

/// `name.key1.value1.key2.value2`, keys and values reduced to `[A-Za-z0-9_-]`.
fn full_name(name: &str, tags: &[(&str, &str)]) -> String {
    let mut full = String::with_capacity(name.len() + tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>());
    full.push_str(name);
    for (key, value) in tags {
        full.push('.');
        full.extend(key.chars().map(name_char));
        full.push('.');
        full.extend(value.chars().map(name_char));
    }
    full
}

fn name_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
        c
    } else {
        '_'
    }
}

fn warn(message: std::fmt::Arguments<'_>) {
    // Metrics belong to no plugin instance or request; the line says where it comes from.
    let _ = host::log(host::LogLevel::Warn, &format!("[gateway-sdk] {message}"));
}

/// A count that only goes up (Go: `proxywasm.DefineCounterMetric`).
///
/// ```
/// static REQUESTS: gateway_sdk::metrics::Counter = gateway_sdk::metrics::Counter::new("my_plugin_requests");
/// # fn in_a_hook() {
/// REQUESTS.increment(1);
/// # }
/// ```
pub struct Counter(Metric);

impl Counter {
    /// A counter named `name` (defined with the host when first used).
    pub const fn new(name: &'static str) -> Self {
        Counter(Metric::new(MetricType::Counter, name))
    }
    /// The name given to [`Counter::new`].
    pub fn name(&self) -> &'static str {
        self.0.name
    }
    /// Adds `by`.
    pub fn increment(&self, by: u64) {
        increment(self.0.id(), by);
    }
    /// Adds `by` to the counter with these tags (see the [module docs](self)).
    pub fn increment_tagged(&self, tags: &[(&str, &str)], by: u64) {
        increment(self.0.tagged_id(tags), by);
    }
    /// The count in this VM's view, `None` if the host has none.
    pub fn value(&self) -> Option<u64> {
        self.0.id().and_then(|id| host::get_metric(id).ok())
    }
    /// The count with these tags.
    pub fn value_tagged(&self, tags: &[(&str, &str)]) -> Option<u64> {
        self.0.tagged_id(tags).and_then(|id| host::get_metric(id).ok())
    }
}

fn increment(id: Option<u32>, by: u64) {
    // Envoy refuses an increment of 0 (BadArgument); there is nothing to add anyway.
    let (Some(id), Ok(by)) = (id, i64::try_from(by)) else { return };
    if by > 0 {
        let _ = host::increment_metric(id, by);
    }
}

/// A value that goes up and down (Go: `proxywasm.DefineGaugeMetric`).
///
/// ```
/// static IN_FLIGHT: gateway_sdk::metrics::Gauge = gateway_sdk::metrics::Gauge::new("my_plugin_in_flight");
/// # fn in_hooks() {
/// IN_FLIGHT.add(1);
/// // ... in on_done:
/// IN_FLIGHT.add(-1);
/// # }
/// ```
pub struct Gauge(Metric);

impl Gauge {
    /// A gauge named `name` (defined with the host when first used).
    pub const fn new(name: &'static str) -> Self {
        Gauge(Metric::new(MetricType::Gauge, name))
    }
    /// The name given to [`Gauge::new`].
    pub fn name(&self) -> &'static str {
        self.0.name
    }
    /// Adds `delta` (negative to subtract).
    pub fn add(&self, delta: i64) {
        if let Some(id) = self.0.id() {
            let _ = host::increment_metric(id, delta);
        }
    }
    /// Adds `delta` to the gauge with these tags.
    pub fn add_tagged(&self, tags: &[(&str, &str)], delta: i64) {
        if let Some(id) = self.0.tagged_id(tags) {
            let _ = host::increment_metric(id, delta);
        }
    }
    /// Sets the value.
    pub fn set(&self, value: u64) {
        if let Some(id) = self.0.id() {
            let _ = host::record_metric(id, value);
        }
    }
    /// Sets the value of the gauge with these tags.
    pub fn set_tagged(&self, tags: &[(&str, &str)], value: u64) {
        if let Some(id) = self.0.tagged_id(tags) {
            let _ = host::record_metric(id, value);
        }
    }
    /// The value in this VM's view, `None` if the host has none.
    pub fn value(&self) -> Option<u64> {
        self.0.id().and_then(|id| host::get_metric(id).ok())
    }
    /// The value of the gauge with these tags.
    pub fn value_tagged(&self, tags: &[(&str, &str)]) -> Option<u64> {
        self.0.tagged_id(tags).and_then(|id| host::get_metric(id).ok())
    }
}

/// A distribution of values, e.g. latencies (Go: `proxywasm.DefineHistogramMetric`).
/// Envoy exports quantiles and buckets; a histogram cannot be read back.
///
/// ```
/// static UPSTREAM_MS: gateway_sdk::metrics::Histogram = gateway_sdk::metrics::Histogram::new("my_plugin_upstream_ms");
/// # fn in_a_hook() {
/// UPSTREAM_MS.record(12);
/// # }
/// ```
pub struct Histogram(Metric);

impl Histogram {
    /// A histogram named `name` (defined with the host when first used).
    pub const fn new(name: &'static str) -> Self {
        Histogram(Metric::new(MetricType::Histogram, name))
    }
    /// The name given to [`Histogram::new`].
    pub fn name(&self) -> &'static str {
        self.0.name
    }
    /// Records one value.
    pub fn record(&self, value: u64) {
        if let Some(id) = self.0.id() {
            let _ = host::record_metric(id, value);
        }
    }
    /// Records one value in the histogram with these tags.
    pub fn record_tagged(&self, tags: &[(&str, &str)], value: u64) {
        if let Some(id) = self.0.tagged_id(tags) {
            let _ = host::record_metric(id, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::full_name;

    #[test]
    fn tags_are_name_segments_and_values_cannot_add_segments() {
        assert_eq!(full_name("hits", &[]), "hits");
        assert_eq!(full_name("hits", &[("route", "orders")]), "hits.route.orders");
        assert_eq!(full_name("hits", &[("route", "a.b"), ("code", "2 0:0")]), "hits.route.a_b.code.2_0_0");
        assert_eq!(full_name("hits", &[("model", "qwen-max_v2")]), "hits.model.qwen-max_v2");
    }
}
