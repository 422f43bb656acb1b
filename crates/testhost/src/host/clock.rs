//! The clock: virtual time, which moves only when the host waits (for a
//! delayed answer, a call timeout, a tick) or the test moves it, and the
//! scheduler that delivers what is due by then, earliest first (ticks and
//! pending completions, in the order they were scheduled).
//!
//! Depends on the VM (`vm.rs`, to run `proxy_on_tick`), on forwarding
//! (`forward.rs`, which delivers a completion) and the filter driver's
//! deferred actions; `state` holds the time and the pending work.

use super::filter::Flow;
use super::{Inner, TestHost};
use crate::exchange::Event;
use crate::state::Pending;
use crate::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl TestHost {
    /// The virtual clock (what `proxy_get_current_time_nanoseconds` returns).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.inner.borrow().store.data().now)
    }

    /// Lets `by` pass: fires the ticks and delivers the call answers due by then.
    pub fn advance(&self, by: Duration) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        let target = inner.store.data().now + by.as_nanos() as u64;
        while inner.step(&mut None, target)? {}
        let s = inner.store.data_mut();
        s.now = s.now.max(target);
        Ok(())
    }

    /// Moves the clock to the next tick and runs `proxy_on_tick`. Fails if
    /// the plugin set no tick period.
    pub fn tick(&self) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        let Some(at) = inner.store.data().next_tick else {
            return Err(Error::Setup(
                "no tick period: the plugin never called proxy_set_tick_period_milliseconds".into(),
            ));
        };
        while inner.step(&mut None, at)? {}
        Ok(())
    }

    /// Delivers every pending call answer (not ticks), advancing the clock
    /// as far as needed. Answers to calls of finished requests reach the
    /// root context, as they would on Envoy.
    pub fn settle(&self) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        inner.check_failed()?;
        while let Some(at) = inner.store.data().pending.iter().map(|p| p.at).min() {
            inner.step_pending_only(&mut None, at)?;
        }
        Ok(())
    }
}

impl Inner {
    /// Delivers the earliest due thing (a pending answer or a tick) if it is
    /// due by `deadline`. Returns whether anything happened.
    pub(super) fn step(&mut self, flow: &mut Option<Flow>, deadline: u64) -> Result<bool, Error> {
        let s = self.store.data();
        let next_pending = s.pending.iter().min_by_key(|p| (p.at, p.seq)).map(|p| p.at);
        let next_tick = s.next_tick;
        let tick_first = match (next_tick, next_pending) {
            (Some(t), Some(p)) => t < p,
            (Some(_), None) => true,
            _ => false,
        };
        if tick_first {
            let Some(t) = next_tick else { return Ok(false) };
            if t > deadline {
                return Ok(false);
            }
            let s = self.store.data_mut();
            s.now = s.now.max(t);
            s.next_tick = s.tick_period.map(|p| t + p);
            let root = s.root_id;
            self.record(flow, Event::Tick);
            self.call(root, None, "proxy_on_tick", &[root as i32])?;
            self.run_actions(flow)?;
            return Ok(true);
        }
        match next_pending {
            Some(at) if at <= deadline => {
                self.step_pending_only(flow, at)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub(super) fn step_pending_only(&mut self, flow: &mut Option<Flow>, at: u64) -> Result<(), Error> {
        let s = self.store.data_mut();
        let Some(index) =
            s.pending.iter().enumerate().filter(|(_, p)| p.at <= at).min_by_key(|(_, p)| (p.at, p.seq)).map(|(i, _)| i)
        else {
            return Ok(());
        };
        let Pending { at, kind, .. } = s.pending.swap_remove(index);
        s.now = s.now.max(at);
        self.deliver(flow, kind)
    }
}
