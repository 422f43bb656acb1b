//! The plugin outside requests: its start (and each reload), timers, queue
//! notifications and HTTP calls that belong to no request.
//!
//! What Go's wrapper gives with `PrePluginStartOrReload`, `RegisterTickFunc`
//! and HTTP calls made from a tick, on one typed handle: a
//! [`PluginContext`], passed to [`Plugin::on_start`], to each timer and to
//! the callbacks of the calls it makes.
//!
//! ```
//! # use std::time::Duration;
//! # use gateway_sdk::prelude::*;
//! # #[derive(Deserialize)]
//! # struct Config {}
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = Config;
//! #     type State = ();
//! fn on_start(plugin: &mut PluginContext<'_, Self>) -> Result<(), String> {
//!     let client = HttpClient::new(Cluster::service("auth.dns", Some(80))?);
//!     plugin.every(Duration::from_secs(30), move |plugin| {
//!         let sent = client.get("/token").send_from_plugin(plugin, |plugin, resp| {
//!             let _ = gateway_sdk::shared::set("token", &resp.body(), None);
//!             plugin.log().info(format_args!("token refreshed: {}", resp.status()));
//!         });
//!         if let Err(err) = sent {
//!             plugin.log().warn(err);
//!         }
//!     });
//!     Ok(())
//! }
//! # }
//! ```
//!
//! **Leader election** ([`PluginContext::elect_leader`], Go's
//! `DoLeaderElection`): of the VMs (workers) running one plugin with one
//! configuration, one holds a lease in shared data; call it at start and
//! from a timer, and do what must happen once only while
//! [`PluginContext::is_leader`]. A leader that stops renewing loses the
//! lease after a minute.
//!
//! Timers share the host's one tick: its period is the greatest common
//! divisor of the timers' periods, and each timer runs when its own period has
//! passed by the host's clock. A reload (new configuration) drops the timers
//! and runs `on_start` again, which registers them anew.

// Where this module sits in the SDK (a comment: the rendered docs are for plugin authors).
// Depends on `config`, `host`, `dispatch`, `callouts.rs` (the calls it
// waits on) and `http_response.rs`; the HTTP client (`http.rs`) depends on
// it to send calls from outside requests, not the other way round.

use crate::callouts::Waiting;
use crate::config::{Rules, Shared};
use crate::dispatch;
use crate::host;
use crate::http_response::HttpResponse;
use crate::log::Log;
use crate::Plugin;
use std::time::Duration;

pub(crate) type PluginCallback<P> = Box<dyn for<'a> FnOnce(&mut PluginContext<'a, P>, &HttpResponse)>;
type TimerFn<P> = Box<dyn for<'a> FnMut(&mut PluginContext<'a, P>)>;

// Wasm only: native builds have no ticks or plugin context yet.
#[cfg_attr(feature = "native", allow(dead_code))]
struct Timer<P: Plugin> {
    period_ms: u64,
    next_ms: u64,
    run: TimerFn<P>,
}

/// What a root context keeps for its plugin between requests.
pub(crate) struct PluginLife<P: Plugin> {
    timers: Vec<Timer<P>>,
    tick_ms: u32,
    http_calls: Waiting<PluginCallback<P>>,
    /// Tells this plugin and configuration apart from others in shared data.
    fingerprint: String,
    leader: bool,
}

impl<P: Plugin> PluginLife<P> {
    pub(crate) fn new() -> Self {
        PluginLife {
            timers: Vec::new(),
            tick_ms: 0,
            http_calls: Waiting::new(),
            fingerprint: String::new(),
            leader: false,
        }
    }

    /// A new configuration: its fingerprint names the leader's lease.
    pub(crate) fn configured(&mut self, configuration: &[u8]) {
        self.fingerprint = crate::leader::fingerprint(P::NAME, configuration);
        self.leader = false;
    }
}

/// The plugin as a whole (not one request): its config, log, timers and the
/// HTTP calls it makes outside requests.
pub struct PluginContext<'a, P: Plugin> {
    rules: &'a Shared<Rules<P::Config>>,
    life: &'a mut PluginLife<P>,
    root_id: u32,
}

// Natively only `on_start` gets a context: there are no ticks or calls outside requests.
#[cfg_attr(feature = "native", allow(dead_code))]
impl<'a, P: Plugin> PluginContext<'a, P> {
    pub(crate) fn new(rules: &'a Shared<Rules<P::Config>>, life: &'a mut PluginLife<P>, root_id: u32) -> Self {
        PluginContext { rules, life, root_id }
    }

    /// The global configuration (`None` when the plugin has only rules).
    /// It does not borrow the context, so timers can be registered while
    /// it is in use.
    pub fn config(&self) -> Option<&'a P::Config> {
        let rules: &'a Rules<P::Config> = self.rules;
        rules.global()
    }

    /// A logger whose lines carry the plugin's name and id (no request id).
    pub fn log(&self) -> Log<'_> {
        Log::new(P::NAME, self.rules.plugin_id(), false)
    }

    /// Runs `run` every `period` (rounded to whole milliseconds, at least 1),
    /// the first time one period from now: Go's `RegisterTickFunc`.
    pub fn every(&mut self, period: Duration, run: impl for<'b> FnMut(&mut PluginContext<'b, P>) + 'static) {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let next_ms = now_ms().saturating_add(period_ms);
        self.life.timers.push(Timer { period_ms, next_ms, run: Box::new(run) });
        let tick = self.life.timers.iter().map(|t| t.period_ms).fold(0, gcd);
        let tick = u32::try_from(tick).unwrap_or(u32::MAX);
        if tick != self.life.tick_ms {
            match host::set_tick_period(tick) {
                Ok(()) => self.life.tick_ms = tick,
                Err(status) => self.log().error(format_args!("the host refused a tick of {tick} ms: {status}")),
            }
        }
    }

    /// Number of timers registered.
    pub fn timers(&self) -> usize {
        self.life.timers.len()
    }

    /// Runs `f` on the plugin's value of type `T` under this configuration
    /// (Go's `PluginContext.SetContext` / `GetContext`): created with
    /// `Default` when first asked for, shared with every request of this VM
    /// ([`Request::plugin_store`](crate::Request::plugin_store)). `None` when
    /// called from inside another store closure. See [`store`](crate::store).
    pub fn store<T: crate::store::Stored, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.rules.store().with(f)
    }

    /// Takes or renews this plugin's leadership lease, and says whether
    /// this VM leads now (Go's `DoLeaderElection`). Call it in
    /// [`Plugin::on_start`] and from a timer more often than once a minute.
    /// A host without shared data (native builds) gives `false`, logged.
    pub fn elect_leader(&mut self) -> bool {
        let key = crate::leader::lease_key(&self.life.fingerprint);
        let now = crate::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.life.leader = match crate::leader::acquire_or_renew(&key, crate::leader::vm_id(), now) {
            Ok(leads) => leads,
            Err(err) => {
                self.log().warn(format_args!("leader election failed: {err}"));
                false
            }
        };
        self.life.leader
    }

    /// Whether this VM won the last [`PluginContext::elect_leader`] (Go's `IsLeader`).
    pub fn is_leader(&self) -> bool {
        self.life.leader
    }

    /// This VM's id, random, chosen once per VM (what the lease records).
    pub fn vm_id(&self) -> &'static str {
        crate::leader::vm_id()
    }

    pub(crate) fn dispatch_http(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout: Duration,
        callback: PluginCallback<P>,
    ) -> Result<(), host::Status> {
        let token = dispatch::http_call(cluster, headers, body, timeout, self.root_id)?;
        self.life.http_calls.push(token, callback);
        Ok(())
    }

    /// Forgets the timers (before a reload registers them again).
    pub(crate) fn clear_timers(&mut self) {
        self.life.timers.clear();
    }

    /// The host's tick: runs the timers that are due.
    pub(crate) fn on_tick(&mut self) {
        let now = now_ms();
        let mut timers = std::mem::take(&mut self.life.timers);
        for timer in timers.iter_mut().filter(|t| t.next_ms <= now) {
            timer.next_ms = now.saturating_add(timer.period_ms);
            (timer.run)(self);
        }
        // Timers registered while these ran come after them.
        timers.append(&mut self.life.timers);
        self.life.timers = timers;
    }

    pub(crate) fn on_http_response(&mut self, token: u32, body_size: usize) {
        let Some(callback) = self.life.http_calls.take(token) else { return };
        let response = HttpResponse::from_host(body_size);
        callback(self, &response);
    }
}

/// The VM's configuration (Envoy's `vm_config.configuration`, Go's
/// `GetVMConfiguration` / `OnVMStart`): what the host started the VM with,
/// shared by every plugin configuration in it, readable from any hook;
/// empty when it has none (and in native builds, which have no VM).
pub fn vm_configuration() -> &'static [u8] {
    VM_CONFIGURATION.get().map_or(&[], Vec::as_slice)
}

/// What the host started the VM with (set once, at VM start).
static VM_CONFIGURATION: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

#[cfg_attr(feature = "native", allow(dead_code))]
pub(crate) fn set_vm_configuration(bytes: Vec<u8>) {
    // A VM starts once; a second start would carry the same configuration.
    let _ = VM_CONFIGURATION.set(bytes);
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn now_ms() -> u64 {
    host::now_nanos().map(|n| n / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::gcd;

    #[test]
    fn the_tick_divides_every_period() {
        assert_eq!([1000, 1500].into_iter().fold(0, gcd), 500);
        assert_eq!([300].into_iter().fold(0, gcd), 300);
        assert_eq!([7, 5].into_iter().fold(0, gcd), 1);
    }
}
