//! What a hook tells the host: go on, or hold the stream.
//!
//! The seed's Go SDK names five header states and four data states after Envoy's
//! `FilterHeadersStatus` / `FilterDataStatus`. Through the ABI 0.2.1 exports of
//! the `proxy-wasm` crate a hook can hand the host only `0` (continue) or `1`
//! (pause); what each state becomes, and what Envoy 1.40 then does:
//!
//! | Go SDK state | here | sent | Envoy 1.40 |
//! |---|---|---|---|
//! | `HeaderContinue` | [`HeaderAction::Continue`] | 0 | headers go on to the next filter |
//! | `HeaderStopIteration` | [`HeaderAction::StopIteration`] | 1 | with `allow_on_headers_stop_iteration: true` in the filter config: headers held, body still delivered to the body hook, and a body hook returning `Continue` releases both; without it Envoy turns 1 into `StopAllIterationAndWatermark` (the body hook then runs only after [`Request::resume`](crate::Request::resume)) |
//! | `HeaderContinueAndEndStream` | not offered | - | the ABI cannot send 2, and no ABI 0.2.1 host call could add the body it exists for |
//! | `HeaderStopAllIterationAndBuffer` | [`HeaderAction::StopAllIterationAndBuffer`] | 1 | runs as `StopAllIterationAndWatermark`: the ABI cannot send 3; body is held all the same, only the overflow answer differs (back-pressure instead of 413) |
//! | `HeaderStopAllIterationAndWatermark` | [`HeaderAction::StopAllIterationAndWatermark`] | 1 | held until [`Request::resume`](crate::Request::resume) or a local response; body is held too (the SDK keeps holding it even on hosts that set `allow_on_headers_stop_iteration`) |
//! | `DataContinue` | [`DataAction::Continue`] | 0 | the chunk goes on |
//! | `DataStopIterationAndBuffer` | [`DataAction::StopIterationAndBuffer`] | 1 | the chunk is buffered and the body hook is called again with the whole body so far |
//! | `DataStopIterationAndWatermark` | not offered | - | the ABI cannot send 2 |
//! | `DataStopIterationNoBuffer` | not offered | - | the ABI cannot send 3 |
//!
//! The end-to-end suite (`e2e/tests/actions.rs`) shows each row on a real Envoy.

use proxy_wasm::types::Action;

/// What a headers hook asks of the host. See the [module docs](self) for what
/// each one does on Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderAction {
    /// Pass the headers on.
    Continue,
    /// Hold the headers but keep delivering body to the body hook
    /// (needs `allow_on_headers_stop_iteration: true` on Envoy).
    StopIteration,
    /// Hold headers and body until resumed; sent as `StopAllIterationAndWatermark`.
    StopAllIterationAndBuffer,
    /// Hold headers and body until resumed, with flow control: what an
    /// asynchronous call in the headers phase needs.
    StopAllIterationAndWatermark,
}

impl HeaderAction {
    pub(crate) fn to_abi(self) -> Action {
        match self {
            HeaderAction::Continue => Action::Continue,
            _ => Action::Pause,
        }
    }
}

/// What a body hook asks of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAction {
    /// Pass the chunk on (and the headers, if a `StopIteration` held them).
    Continue,
    /// Buffer the chunk; the hook sees the whole body so far next time.
    StopIterationAndBuffer,
}

impl DataAction {
    pub(crate) fn to_abi(self) -> Action {
        match self {
            DataAction::Continue => Action::Continue,
            DataAction::StopIterationAndBuffer => Action::Pause,
        }
    }
}

/// How a plugin wants a body delivered to its body hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// Each chunk as it arrives (the hook decides whether to buffer).
    Streamed,
    /// The whole body, once, when it is complete. The SDK holds the chunks
    /// until then, so the body counts against the host's buffer limit
    /// (Envoy answers 413 past it).
    Buffered,
}
