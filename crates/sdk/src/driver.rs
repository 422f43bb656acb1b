//! The driver the exports call: runs a request's phases and the answers to
//! its calls, and tells the host what each hook's answer means for the
//! stream.
//!
//! For each phase it moves the request's `Flow` on, picks the config (the
//! request headers phase matches the rules), runs the plugin's hook, and
//! turns the hook's `HeaderAction` or `DataAction` into the
//! `HostAction` the host gets, refusing holds nothing could ever release.
//! An answer to a call runs the callback the call left in the request, then
//! resumes a stream that would otherwise hang.
//!
//! Called by the Wasm contexts (`stream.rs`) and the native filter
//! (`native/filter.rs`); depends on the request (`request.rs`, whose
//! internals it drives), `flow.rs`, `body.rs` (the body checks),
//! `property.rs` (the VM rebuild check) and `http_response.rs`. Nothing
//! depends on it but its two callers.

use crate::action::HostAction;
use crate::config::RequestFacts;
#[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
use crate::dispatch::Answer;
use crate::flow::{Hold, Phase};
use crate::host::{self, BufferType, MapType, StreamType};
use crate::http_response::HttpResponse;
use crate::request::property_string;
use crate::text::lossy;
use crate::{Body, BodyMode, DataAction, HeaderAction, Plugin, Request, TrailerAction};

impl<P: Plugin> Request<P> {
    pub(crate) fn on_request_headers(&mut self, end_of_stream: bool) -> HostAction {
        self.flow.phase = Phase::RequestHeaders;
        self.flow.request_body_done = end_of_stream;
        crate::property::check_rebuild::<P>(self.rules.plugin_id());
        self.selected =
            if self.rules.has_rules() { self.rules.select(&mut HostFacts) } else { self.rules.global().map(|_| None) };
        if !end_of_stream && self.selected.is_some() {
            self.check_request_body();
        }
        let action = self.with_config(|req, config| req.in_headers_hook(P::on_request_headers, config));
        let action = action.unwrap_or(HeaderAction::Continue);
        if P::KEEP_REQUEST_LINE && self.selected.is_some() {
            // Envoy stops handing out the request headers once the request goes on.
            self.keep_request_line();
        }
        self.after_headers_hook(action, StreamType::Request, end_of_stream)
    }

    pub(crate) fn on_response_headers(&mut self, end_of_stream: bool) -> HostAction {
        self.flow.phase = Phase::ResponseHeaders;
        self.flow.response_body_done = end_of_stream;
        if self.flow.responded {
            // Our own local answer passing through the filter chain.
            return HostAction::Continue;
        }
        // Pure reads: nothing is left of this for the default body mode.
        let config = self.selected.and_then(|selected| self.rules.get(selected));
        if !end_of_stream && config.map(P::response_body_mode) == Some(BodyMode::Buffered) {
            self.check_response_body();
        }
        let action = self.with_config(|req, config| req.in_headers_hook(P::on_response_headers, config));
        let action = action.unwrap_or(HeaderAction::Continue);
        let abi = self.after_headers_hook(action, StreamType::Response, end_of_stream);
        self.flow.response_headers_sent = abi == HostAction::Continue && !self.flow.responded;
        abi
    }

    /// Runs a headers hook, marked as running for the explanations of refused edits.
    fn in_headers_hook(&mut self, hook: fn(&mut Self, &P::Config) -> HeaderAction, config: &P::Config) -> HeaderAction {
        self.flow.in_headers_hook = true;
        let action = hook(self, config);
        self.flow.in_headers_hook = false;
        action
    }

    fn after_headers_hook(&mut self, action: HeaderAction, stream: StreamType, end_of_stream: bool) -> HostAction {
        if self.flow.responded {
            return HostAction::Pause;
        }
        let hold = match action {
            HeaderAction::Continue => Hold::Nothing,
            // With no body to come, no body hook could release the headers.
            HeaderAction::StopIteration if end_of_stream && self.pending_calls() == 0 => {
                self.log()
                    .error("StopIteration on a message without body and no call pending would hang it; it goes on");
                return HostAction::Continue;
            }
            HeaderAction::StopIteration => Hold::Headers,
            _ if self.pending_calls() == 0 => {
                self.log().error(format_args!(
                    "{} returned with no call pending: nothing could resume the stream, so it goes on",
                    action.name()
                ));
                return HostAction::Continue;
            }
            _ => Hold::All,
        };
        *self.flow.hold_mut(stream) = hold;
        action.to_abi()
    }

    pub(crate) fn on_body(&mut self, stream: StreamType, size: usize, end_of_stream: bool) -> HostAction {
        let (phase, done) = match stream {
            StreamType::Request => (Phase::RequestBody, &mut self.flow.request_body_done),
            StreamType::Response => (Phase::ResponseBody, &mut self.flow.response_body_done),
        };
        self.flow.phase = phase;
        *done = end_of_stream;
        if self.flow.responded {
            return HostAction::Continue;
        }
        let Some(mode) = self.configured_body_mode(stream) else { return HostAction::Continue };
        if self.skips_body(stream) {
            // A skipped body goes on, and releases headers held for it.
            let hold = self.flow.hold_mut(stream);
            if *hold == Hold::All {
                return HostAction::Pause;
            }
            *hold = Hold::Nothing;
            return HostAction::Continue;
        }
        let mode = self.body_flags.mode(stream, mode);
        if mode == BodyMode::Buffered && !end_of_stream {
            // The SDK's own buffering, not a hold of the plugin's.
            return HostAction::Pause;
        }
        self.body_hook(stream, Body { size, end_of_stream })
    }

    /// How the config chosen for this request wants `stream`'s body; `None`
    /// when no config applies (the plugin stays out).
    fn configured_body_mode(&mut self, stream: StreamType) -> Option<BodyMode> {
        self.with_config(|_, config| match stream {
            StreamType::Request => P::request_body_mode(config),
            StreamType::Response => P::response_body_mode(config),
        })
    }

    /// Runs the body hook on `body` and turns its answer into the host's.
    fn body_hook(&mut self, stream: StreamType, body: Body) -> HostAction {
        let end_of_stream = body.end_of_stream;
        let action = self
            .with_config(|req, config| match stream {
                StreamType::Request => P::on_request_body(req, config, body),
                StreamType::Response => P::on_response_body(req, config, body),
            })
            .unwrap_or(DataAction::Continue);
        if self.flow.responded {
            return HostAction::Pause;
        }
        let pending = self.pending_calls();
        let end_injected = self.flow.stream_end_injected(stream);
        let hold = self.flow.hold_mut(stream);
        match (action, *hold) {
            // A `StopAllIteration*` hold lasts until resume, even on hosts that
            // deliver body while headers are held.
            (_, Hold::All) => HostAction::Pause,
            (DataAction::Continue, _) => {
                *hold = Hold::Nothing;
                HostAction::Continue
            }
            (DataAction::StopIterationAndBuffer | DataAction::StopIterationAndWatermark, _)
                if end_of_stream && pending == 0 =>
            {
                *hold = Hold::Nothing;
                self.log().error(format_args!(
                    "{} on the last body chunk with no call pending would hang the stream; it goes on",
                    action.name()
                ));
                HostAction::Continue
            }
            (DataAction::StopIterationAndBuffer, _) => {
                *hold = Hold::Body;
                HostAction::Pause
            }
            (DataAction::StopIterationAndWatermark, _) => {
                *hold = Hold::Body;
                HostAction::PauseWithWatermark
            }
            // The plugin took the chunk; what it holds stays held.
            (DataAction::StopIterationNoBuffer, _) if !end_of_stream || end_injected => HostAction::PauseNoBuffer,
            (DataAction::StopIterationNoBuffer, _) => {
                // Nothing would end the stream: the last chunk goes on, emptied.
                *hold = Hold::Nothing;
                if let Err(status) = host::set_buffer(body_buffer(stream), 0, usize::MAX, &[]) {
                    self.log().warn(format_args!("cannot empty the last body chunk: {status}; it goes on as it is"));
                }
                HostAction::Continue
            }
        }
    }

    /// The trailers of one direction arrived: the end of its message. A
    /// body the SDK was collecting for a `Buffered` hook is complete now, so
    /// that hook runs first (its last chunk came without the end-of-stream
    /// flag); then the trailers hook.
    pub(crate) fn on_trailers(&mut self, stream: StreamType) -> HostAction {
        let (body_phase, phase) = match stream {
            StreamType::Request => (Phase::RequestBody, Phase::RequestTrailers),
            StreamType::Response => (Phase::ResponseBody, Phase::ResponseTrailers),
        };
        match stream {
            StreamType::Request => self.flow.request_body_done = true,
            StreamType::Response => self.flow.response_body_done = true,
        }
        if self.flow.responded {
            return HostAction::Continue;
        }
        let Some(mode) = self.configured_body_mode(stream) else { return HostAction::Continue };
        let collected = self.body_flags.seen(stream)
            && !self.body_flags.skipped(stream)
            && self.body_flags.mode(stream, mode) == BodyMode::Buffered;
        if collected {
            self.flow.phase = body_phase;
            let size = host::get_buffer(body_buffer(stream), 0, usize::MAX).ok().flatten().map_or(0, |b| b.len());
            self.body_hook(stream, Body { size, end_of_stream: true });
        }
        self.flow.phase = phase;
        let action = self
            .with_config(|req, config| match stream {
                StreamType::Request => P::on_request_trailers(req, config),
                StreamType::Response => P::on_response_trailers(req, config),
            })
            .unwrap_or(TrailerAction::Continue);
        if self.flow.responded {
            return HostAction::Pause;
        }
        let pending = self.pending_calls();
        let hold = self.flow.hold_mut(stream);
        match action {
            // What the body hook holds (with a call pending) only a resume releases now.
            _ if *hold == Hold::All || (*hold == Hold::Body && pending > 0) => {
                *hold = Hold::All;
                HostAction::Pause
            }
            TrailerAction::Continue => {
                *hold = Hold::Nothing;
                HostAction::Continue
            }
            TrailerAction::StopIteration if pending == 0 => {
                *hold = Hold::Nothing;
                self.log()
                    .error("StopIteration in a trailers hook with no call pending would hang the stream; it goes on");
                HostAction::Continue
            }
            TrailerAction::StopIteration => {
                *hold = Hold::All;
                HostAction::Pause
            }
        }
    }

    pub(crate) fn on_done(&mut self) {
        self.flow.phase = Phase::Done;
        self.with_config(P::on_done);
    }

    /// The answer to one of this request's HTTP calls (routed here by the
    /// exports): runs the call's callback.
    pub(crate) fn on_http_response(&mut self, token: u32, body_size: usize) {
        let Some(callback) = self.http_calls.take(token) else { return };
        let response = HttpResponse::from_host(body_size);
        self.with_config(|req, config| callback(req, config, &response));
        self.after_callback();
    }

    /// The answer to one of this request's Redis commands (routed here by
    /// `dispatch.rs`): runs what `redis.rs` left for it, which reads the
    /// answer, and may send the command again instead of calling back.
    #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
    pub(crate) fn on_redis_response(&mut self, callout: u32, answer: Answer) {
        let Some(on_answer) = self.redis_calls.take(callout) else { return };
        self.with_config(|req, config| on_answer(req, config, answer));
        self.after_callback();
    }

    /// A callback that leaves the stream held with nothing left that could
    /// release it would hang the request until the client gives up; go on instead.
    pub(crate) fn after_callback(&mut self) {
        if self.flow.responded || self.flow.phase == Phase::Done || self.pending_calls() > 0 {
            return;
        }
        if self.flow.stuck() {
            self.log().warn("callback neither resumed nor answered the request, and no call is pending: resuming");
            self.resume();
        }
    }
}

/// Reads the matcher's facts from the host.
struct HostFacts;

impl RequestFacts for HostFacts {
    fn route_name(&mut self) -> Option<String> {
        property_string(&["route_name"]).or_else(|| property_string(&["xds", "route_name"]))
    }
    fn authority(&mut self) -> Option<String> {
        lossy(host::get_map_value(MapType::RequestHeaders, ":authority").ok().flatten())
    }
    fn cluster_name(&mut self) -> Option<String> {
        property_string(&["cluster_name"]).or_else(|| property_string(&["xds", "cluster_name"]))
    }
}

/// The buffer holding a direction's body.
fn body_buffer(stream: StreamType) -> BufferType {
    match stream {
        StreamType::Request => BufferType::RequestBody,
        StreamType::Response => BufferType::ResponseBody,
    }
}
