//! The calls a context waits on: by the host's token, what runs when each
//! answer comes. A request keeps one list for its HTTP calls and one for its
//! Redis commands, the plugin context one for its calls outside requests;
//! the clients (`http.rs`, `redis.rs`) add to them, and the driver
//! (`driver.rs`, `lifetime.rs`) takes out what an answer runs.
//!
//! A leaf: generic over what runs, so that it names neither the request nor
//! the clients. Routing an answer to its context is `dispatch.rs`'s table.

/// Calls waiting for their answers, each with what runs when its answer comes.
pub(crate) struct Waiting<C> {
    calls: Vec<(u32, C)>,
}

impl<C> Waiting<C> {
    pub(crate) const fn new() -> Self {
        Waiting { calls: Vec::new() }
    }

    /// Records that the answer to `token` runs `on_answer`.
    pub(crate) fn push(&mut self, token: u32, on_answer: C) {
        self.calls.push((token, on_answer));
    }

    /// What runs for the answer to `token`, no longer waiting; `None` when
    /// no call here has that token.
    pub(crate) fn take(&mut self, token: u32) -> Option<C> {
        let at = self.calls.iter().position(|(t, _)| *t == token)?;
        Some(self.calls.swap_remove(at).1)
    }

    /// Number of calls whose answer has not come yet.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// The tokens of the calls still waiting.
    // Wasm only: native answers come to the filter that asked, nothing to forget.
    #[cfg_attr(feature = "native", allow(dead_code))]
    pub(crate) fn tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.calls.iter().map(|(token, _)| *token)
    }
}

#[cfg(test)]
mod tests {
    use super::Waiting;

    #[test]
    fn an_answer_takes_out_what_its_call_runs_once() {
        let mut waiting = Waiting::new();
        waiting.push(4, "first");
        waiting.push(8, "second");
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting.take(8), Some("second"));
        assert_eq!(waiting.take(8), None);
        assert_eq!(waiting.tokens().collect::<Vec<_>>(), [4]);
        assert_eq!(waiting.take(12), None);
    }
}
