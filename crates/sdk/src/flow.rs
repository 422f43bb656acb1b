//! Where a request's exchange is and what the plugin holds in it: the
//! phases, the holds of each direction, whether a body's last chunk came,
//! the per-request body choices, and why the host refuses an edit in a
//! given phase (the table in [`Request`](crate::Request)'s docs).
//!
//! Plain state with no host calls and no plugin types: the façade
//! (`request.rs`) reads it to explain refusals, to resume and to answer; the
//! driver (`driver.rs`) moves it from phase to phase. Depends on `action`
//! and `host`'s `StreamType` only.

use crate::action::BodyMode;
use crate::host::StreamType;

/// What the plugin is holding in one direction of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    Nothing,
    /// Headers held by `StopIteration`; a body hook returning `Continue` releases them.
    Headers,
    /// Headers and body held until `resume` (or a local response).
    All,
    /// Body held by a body hook's `StopIterationAndBuffer` (or
    /// `StopIterationAndWatermark`); a later chunk's `Continue`, or `resume`,
    /// releases it.
    Body,
}

/// Where a request's exchange is ([`Request::phase`](crate::Request::phase),
/// Go's `GetExecutionPhase`): the hook running, or the one a call's
/// callback runs after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The request headers (Go's `DecodeHeader`).
    RequestHeaders,
    /// The request body (Go's `DecodeData`).
    RequestBody,
    /// The request trailers.
    RequestTrailers,
    /// The response headers (Go's `EncodeHeader`).
    ResponseHeaders,
    /// The response body (Go's `EncodeData`).
    ResponseBody,
    /// The response trailers.
    ResponseTrailers,
    /// The exchange is over: [`Plugin::on_done`](crate::Plugin::on_done) (Go's `Done`).
    Done,
}

impl Phase {
    /// The phase in words, as log lines say it (`request headers`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request headers",
            Phase::RequestBody => "request body",
            Phase::RequestTrailers => "request trailers",
            Phase::ResponseHeaders => "response headers",
            Phase::ResponseBody => "response body",
            Phase::ResponseTrailers => "response trailers",
            Phase::Done => "done",
        }
    }
}

/// The part of the exchange an edit changes, for saying why the host refused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    RequestHeaders,
    ResponseHeaders,
    RequestBody,
    ResponseBody,
    RequestTrailers,
    ResponseTrailers,
}

/// One request's place in the exchange.
pub(crate) struct Flow {
    pub(crate) phase: Phase,
    pub(crate) request_hold: Hold,
    pub(crate) response_hold: Hold,
    /// Whether the last body chunk of each direction has been seen: a body
    /// held after that can only be released by `resume`.
    pub(crate) request_body_done: bool,
    pub(crate) response_body_done: bool,
    /// Whether the response headers went on to the client (after which a
    /// local answer makes Envoy reset the stream).
    pub(crate) response_headers_sent: bool,
    /// Whether a headers hook is running (a held stream is marked held only
    /// once it returns), for saying why the host refused an edit.
    pub(crate) in_headers_hook: bool,
    /// Whether the plugin answered the request itself.
    pub(crate) responded: bool,
    /// Whether the plugin injected the end of the response (Higress's
    /// `inject_response_data`), after which taking the last chunk is safe.
    pub(crate) response_end_injected: bool,
}

impl Flow {
    pub(crate) fn new() -> Self {
        Flow {
            phase: Phase::RequestHeaders,
            request_hold: Hold::Nothing,
            response_hold: Hold::Nothing,
            request_body_done: false,
            response_body_done: false,
            response_headers_sent: false,
            in_headers_hook: false,
            responded: false,
            response_end_injected: false,
        }
    }

    /// Whether something else will end this direction's stream after the
    /// plugin took its last chunk.
    pub(crate) fn stream_end_injected(&self, stream: StreamType) -> bool {
        stream == StreamType::Response && self.response_end_injected
    }

    pub(crate) fn hold_mut(&mut self, stream: StreamType) -> &mut Hold {
        match stream {
            StreamType::Request => &mut self.request_hold,
            StreamType::Response => &mut self.response_hold,
        }
    }

    /// The plugin's local answer went out: the host releases what was held.
    pub(crate) fn answered(&mut self) {
        self.responded = true;
        self.request_hold = Hold::Nothing;
        self.response_hold = Hold::Nothing;
    }

    /// The direction a resume lets go of (the request first), no longer held
    /// once this returns; `None` when nothing is held.
    pub(crate) fn release(&mut self) -> Option<StreamType> {
        if self.request_hold != Hold::Nothing {
            self.request_hold = Hold::Nothing;
            Some(StreamType::Request)
        } else if self.response_hold != Hold::Nothing {
            self.response_hold = Hold::Nothing;
            Some(StreamType::Response)
        } else {
            None
        }
    }

    /// Whether a direction is held with nothing but a resume left to
    /// release it (no more body can come to do it).
    pub(crate) fn stuck(&self) -> bool {
        let stuck = |hold: Hold, body_done: bool| match hold {
            Hold::All => true,
            // More body could still come and release these.
            Hold::Headers | Hold::Body => body_done,
            Hold::Nothing => false,
        };
        stuck(self.request_hold, self.request_body_done) || stuck(self.response_hold, self.response_body_done)
    }

    /// Why the host refuses an edit of `part` in the phase this request is
    /// in; `None` when the phase allows it (the host then had another reason).
    #[inline(never)]
    pub(crate) fn refused_because(&self, part: Part) -> Option<String> {
        let phase = self.phase;
        let held = |hold: Hold| self.in_headers_hook || hold != Hold::Nothing;
        let why = match (part, phase) {
            (_, Phase::Done) => {
                return Some("the exchange is over: on_done can read headers, not edit them".to_string())
            }
            (Part::RequestHeaders, Phase::RequestHeaders) if !held(self.request_hold) => {
                "the request went on already (request headers can be edited until it continues)"
            }
            (Part::ResponseHeaders, Phase::ResponseHeaders) if !held(self.response_hold) => {
                "the response went on already (response headers can be edited until it continues)"
            }
            (Part::RequestHeaders, Phase::RequestHeaders) | (Part::ResponseHeaders, Phase::ResponseHeaders) => {
                return None
            }
            // Headers held by `StopIteration` can be edited from the body hook.
            (Part::RequestHeaders, Phase::RequestBody) if self.request_hold == Hold::Headers => return None,
            (Part::ResponseHeaders, Phase::ResponseBody) if self.response_hold == Hold::Headers => return None,
            (Part::ResponseHeaders, Phase::RequestHeaders | Phase::RequestBody | Phase::RequestTrailers) => {
                "response headers can be edited only in the response headers hook (the response has not arrived)"
            }
            (Part::RequestBody, Phase::RequestBody) | (Part::ResponseBody, Phase::ResponseBody) => return None,
            (Part::RequestTrailers, Phase::RequestTrailers) | (Part::ResponseTrailers, Phase::ResponseTrailers) => {
                return None
            }
            (Part::RequestTrailers, _) => "request trailers can be edited only in the request trailers hook",
            (Part::ResponseTrailers, _) => "response trailers can be edited only in the response trailers hook",
            (Part::RequestHeaders, _) => {
                "request headers can be edited only in the request headers hook, until the request continues"
            }
            (Part::ResponseHeaders, _) => {
                "response headers can be edited only in the response headers hook, until the response continues"
            }
            (Part::RequestBody, _) => "the request body can be edited only in the request body hook",
            (Part::ResponseBody, _) => "the response body can be edited only in the response body hook",
        };
        Some(format!("{why} (this request is in its {} phase)", phase.name()))
    }
}

/// The per-request body choices (set by the methods of `body.rs`), one byte
/// in the request: whether each direction's body was seen, is skipped, or is
/// wanted whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyFlags(u8);

const SEEN_REQUEST: u8 = 1;
const SEEN_RESPONSE: u8 = 1 << 1;
const SKIP_REQUEST: u8 = 1 << 2;
const SKIP_RESPONSE: u8 = 1 << 3;
const BUFFER_REQUEST: u8 = 1 << 4;
const BUFFER_RESPONSE: u8 = 1 << 5;

/// The (seen, skip, buffer) bits of a direction.
fn bits(stream: StreamType) -> (u8, u8, u8) {
    match stream {
        StreamType::Request => (SEEN_REQUEST, SKIP_REQUEST, BUFFER_REQUEST),
        StreamType::Response => (SEEN_RESPONSE, SKIP_RESPONSE, BUFFER_RESPONSE),
    }
}

impl BodyFlags {
    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// The config's mode, unless this request asked for the whole body.
    pub(crate) fn mode(self, stream: StreamType, configured: BodyMode) -> BodyMode {
        let (_, _, buffer) = bits(stream);
        if self.has(buffer) {
            BodyMode::Buffered
        } else {
            configured
        }
    }

    /// The body hook does not run for this direction's body.
    pub(crate) fn skip(&mut self, stream: StreamType) {
        let (_, skip, _) = bits(stream);
        self.0 |= skip;
    }

    /// The body hook gets this direction's body whole.
    pub(crate) fn buffer(&mut self, stream: StreamType) {
        let (_, _, buffer) = bits(stream);
        self.0 |= buffer;
    }

    /// Whether this direction's body is skipped.
    pub(crate) fn skipped(self, stream: StreamType) -> bool {
        let (_, skip, _) = bits(stream);
        self.has(skip)
    }

    /// Whether body of this direction reached the filter.
    pub(crate) fn seen(self, stream: StreamType) -> bool {
        let (seen, _, _) = bits(stream);
        self.has(seen)
    }

    /// Marks this direction's body as seen; returns whether it is skipped.
    pub(crate) fn see(&mut self, stream: StreamType) -> bool {
        let (seen, skip, _) = bits(stream);
        self.0 |= seen;
        self.has(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_asking_for_the_whole_body_overrides_the_config() {
        let mut flags = BodyFlags::default();
        assert_eq!(flags.mode(StreamType::Request, BodyMode::Streamed), BodyMode::Streamed);
        flags.buffer(StreamType::Request);
        assert_eq!(flags.mode(StreamType::Request, BodyMode::Streamed), BodyMode::Buffered);
        assert_eq!(flags.mode(StreamType::Response, BodyMode::Streamed), BodyMode::Streamed);
        assert_eq!(flags.mode(StreamType::Response, BodyMode::Buffered), BodyMode::Buffered);
    }

    #[test]
    fn a_skipped_body_is_seen_and_skipped_in_its_direction_only() {
        let mut flags = BodyFlags::default();
        flags.skip(StreamType::Response);
        assert!(!flags.see(StreamType::Request));
        assert!(flags.seen(StreamType::Request) && !flags.seen(StreamType::Response));
        assert!(flags.see(StreamType::Response));
    }

    #[test]
    fn held_directions_with_nothing_to_release_them_are_stuck() {
        let mut flow = Flow::new();
        assert!(!flow.stuck());
        flow.request_hold = Hold::Headers;
        assert!(!flow.stuck(), "more request body could release the headers");
        flow.request_body_done = true;
        assert!(flow.stuck());
        assert_eq!(flow.release(), Some(StreamType::Request));
        assert!(!flow.stuck());
        flow.response_hold = Hold::All;
        assert!(flow.stuck());
        flow.answered();
        assert_eq!(flow.release(), None);
    }

    #[test]
    fn refusals_say_which_phase_allows_the_edit() {
        let mut flow = Flow::new();
        flow.in_headers_hook = true;
        assert_eq!(flow.refused_because(Part::RequestHeaders), None);
        let why = flow.refused_because(Part::ResponseHeaders).unwrap_or_default();
        assert!(
            why.contains("the response has not arrived") && why.ends_with("in its request headers phase)"),
            "{why}"
        );
        flow.in_headers_hook = false;
        flow.phase = Phase::RequestBody;
        flow.request_hold = Hold::Headers;
        assert_eq!(flow.refused_because(Part::RequestHeaders), None);
        flow.phase = Phase::Done;
        assert!(flow.refused_because(Part::RequestBody).is_some_and(|why| why.contains("on_done")));
    }
}
