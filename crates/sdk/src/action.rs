//! What a hook tells the host: go on, or hold the stream.
//!
//! The Higress Go SDK names five header states and four data states after
//! Envoy's `FilterHeadersStatus` / `FilterDataStatus`. The SDK answers the
//! host's ABI 0.2.1 with Envoy's own numbers. What each state becomes, and what Envoy 1.40
//! then does (each row is shown on a real Envoy by `e2e/tests/actions.rs`):
//!
//! | Go SDK state | here | sent | Envoy 1.40 |
//! |---|---|---|---|
//! | `HeaderContinue` | [`HeaderAction::Continue`] | 0 | headers go on to the next filter |
//! | `HeaderStopIteration` | [`HeaderAction::StopIteration`] | 1 | with `allow_on_headers_stop_iteration: true` in the filter config: headers held, the body hook still runs, can edit the headers, and releases headers and body by returning `Continue`. Without it Envoy runs 1 as `StopAllIterationAndWatermark`: the body hook runs only after [`Request::resume`](crate::Request::resume), when the headers can no longer be edited, so only a pending call's callback can let the request go on. On a message without body nothing could release it; the SDK then lets it go on and logs an error |
//! | `HeaderContinueAndEndStream` | not offered | - | the SDK sends only 0 or 1 on ABI 0.2.1, and no ABI 0.2.1 host call could add the body it exists for |
//! | `HeaderStopAllIterationAndBuffer` | [`HeaderAction::StopAllIterationAndBuffer`] | 1 | runs as `StopAllIterationAndWatermark` (the SDK sends only 0 or 1): held until resumed; a body larger than the buffer limit is held with back-pressure instead of a 413 |
//! | `HeaderStopAllIterationAndWatermark` | [`HeaderAction::StopAllIterationAndWatermark`] | 1 | headers and body held until [`Request::resume`](crate::Request::resume) or a local answer; the body hook runs once, after the resume, with the body buffered meanwhile. With `allow_on_headers_stop_iteration: true`, Envoy runs 1 as `StopIteration` and delivers body during the hold: the SDK keeps holding it (the body hook returning `Continue` is sent as pause), but past the buffer limit Envoy answers 413 |
//! | `DataContinue` | [`DataAction::Continue`] | 0 | the chunk goes on (and headers held by `StopIteration` with it) |
//! | `DataStopIterationAndBuffer` | [`DataAction::StopIterationAndBuffer`] | 1 | the chunk is buffered; the hook sees the whole body so far with the next chunk, and a later `Continue` (or [`Request::resume`](crate::Request::resume) from a callback) releases it. Past the buffer limit: 413 for requests; for responses 500 if their headers are held, else Envoy resets the stream |
//! | `DataStopIterationAndWatermark` | [`DataAction::StopIterationAndWatermark`] | 2 | the chunk is held, with back-pressure past the buffer limit (no 413), but not shown again: the next call of the hook sees only the new chunk, and a later `Continue` (or [`Request::resume`](crate::Request::resume)) sends what was held first, then the new chunk |
//! | `DataStopIterationNoBuffer` | [`DataAction::StopIterationNoBuffer`] | 3 | the plugin takes the chunk: it is neither passed on nor buffered (read it first with `request_body()`/`response_body()`). What it sends instead goes out with Higress's [`Request::inject_response_data`](crate::Request::inject_response_data) (Go's `NeedPauseStreamingResponse` pattern). On the last chunk, unless the plugin injected the end of the stream, the SDK sends the chunk emptied with `Continue`, so that the stream still ends |
//!
//! Which edits of headers and bodies each hook may make, and what the host
//! answers otherwise, is in [`Request`](crate::Request#what-can-be-edited-when)'s docs.
//!
//! The native build (an Envoy dynamic module, `native` feature) has no
//! `allow_on_headers_stop_iteration`: it sends `HeaderStopIteration` as Envoy's
//! `StopIteration` (the row's behaviour with the flag) and every
//! `HeaderStopAllIteration*` as `StopAllIterationAndWatermark` (the rows'
//! behaviour without it).
//!
//! Two more facts of Envoy that shape the SDK:
//!
//! * Body edits never update `content-length`. Remove it in the headers hook
//!   (the body then goes on chunked) or hold the headers and set it; else the
//!   upstream reads the old length and the rest corrupts its connection.
//! * `proxy_continue_stream` on a stream that is not held is not refused: it
//!   sends the request upstream twice, the response head twice, or crashes
//!   Envoy. So [`Request::resume`](crate::Request::resume) continues only what
//!   a hook held, and never after a local answer.

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
    /// The variant's name, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            HeaderAction::Continue => "Continue",
            HeaderAction::StopIteration => "StopIteration",
            HeaderAction::StopAllIterationAndBuffer => "StopAllIterationAndBuffer",
            HeaderAction::StopAllIterationAndWatermark => "StopAllIterationAndWatermark",
        }
    }

    pub(crate) fn to_abi(self) -> HostAction {
        match self {
            HeaderAction::Continue => HostAction::Continue,
            HeaderAction::StopIteration => HostAction::PauseHeaders,
            _ => HostAction::Pause,
        }
    }
}

/// What the SDK answers the host for a phase, whichever backend carries it:
/// the Proxy-Wasm exports send it as the ABI's number (0 to 3).
// Numbered as the ABI's statuses, so that most answers are their own code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum HostAction {
    /// Let the headers or the chunk go on.
    Continue = 0,
    /// Hold them (what the host makes of the hold is in the table above).
    Pause = 1,
    /// Buffer the chunk with back-pressure (`StopIterationAndWatermark`, 2).
    PauseWithWatermark = 2,
    /// Neither pass the chunk on nor buffer it (`StopIterationNoBuffer`, 3).
    PauseNoBuffer = 3,
    /// Hold the headers only, delivering body to the body hook meanwhile
    /// (`StopIteration`): sent as 1 on Proxy-Wasm like [`HostAction::Pause`],
    /// as `StopIteration` natively, where no filter flag is needed for it.
    PauseHeaders = 4,
}

impl HostAction {
    /// The value Proxy-Wasm ABI 0.2.1 gives this action.
    // Wasm only: the native backend maps actions to its own status codes.
    #[cfg_attr(feature = "native", allow(dead_code))]
    pub(crate) fn abi_code(self) -> u32 {
        match self {
            HostAction::PauseHeaders => 1,
            other => other as u32,
        }
    }
}

/// What a body hook asks of the host. See the [module docs](self) for what
/// each one does on Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAction {
    /// Pass the chunk on (and the headers, if a `StopIteration` held them).
    Continue,
    /// Buffer the chunk; the hook sees the whole body so far next time.
    StopIterationAndBuffer,
    /// Hold the chunk, with back-pressure instead of an error past the
    /// host's buffer limit; the hook sees only new chunks after it.
    StopIterationAndWatermark,
    /// Take the chunk: neither pass it on nor buffer it (the plugin has read
    /// it, and sends its own data instead; see the [module docs](self)).
    StopIterationNoBuffer,
}

impl DataAction {
    /// The variant's name, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            DataAction::Continue => "Continue",
            DataAction::StopIterationAndBuffer => "StopIterationAndBuffer",
            DataAction::StopIterationAndWatermark => "StopIterationAndWatermark",
            DataAction::StopIterationNoBuffer => "StopIterationNoBuffer",
        }
    }
}

/// What a trailers hook asks of the host (Envoy's `FilterTrailersStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailerAction {
    /// Pass the trailers on: the message ends.
    Continue,
    /// Hold the message's end until [`Request::resume`](crate::Request::resume)
    /// (from the callback of a call the hook made; with no call pending the
    /// SDK lets it go on and logs an error, as for headers).
    StopIteration,
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
