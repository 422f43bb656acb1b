//! The filter driver: one stream through the plugin as Envoy's HTTP filter
//! takes it. Each direction's headers and body chunks reach their
//! callbacks; a callback's answer (a [`HeaderStatus`] or [`DataStatus`],
//! after Envoy's conversion) holds or releases the direction; what host
//! calls asked for (`continue_stream`, a local response, a reset) takes
//! effect once the VM call returns; and at the end come the access-log pass
//! and the context's deletion.
//!
//! Depends on the VM (`vm.rs`), `abi` (the typed statuses and directions),
//! `state` (what host functions see of the stream) and forwarding
//! (`forward.rs`, which sends the request upstream); the clock moves time
//! while a stream waits.

use super::Inner;
use crate::abi::{DataStatus, Direction, HeaderStatus};
use crate::exchange::{Event, Exchange, RequestBuilder, Response, UpstreamRequest, UpstreamSpec};
use crate::headers::Headers;
use crate::state::{Access, Action, Phase, Stream};
use crate::Error;
use std::collections::{HashMap, VecDeque};

/// What a headers callback's answer holds of its direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Hold {
    /// Nothing: the headers went on (or have not come).
    #[default]
    Nothing,
    /// The headers (`StopIteration`): body chunks are still delivered, and a
    /// body callback's `Continue` sends the headers on.
    Headers,
    /// Headers and body (`StopAllIteration*`) until `continue_stream`.
    All,
}

impl Hold {
    fn after_headers(status: HeaderStatus) -> Hold {
        match status {
            HeaderStatus::Continue | HeaderStatus::ContinueAndEndStream => Hold::Nothing,
            HeaderStatus::StopIteration => Hold::Headers,
            HeaderStatus::StopAllIterationAndBuffer | HeaderStatus::StopAllIterationAndWatermark => Hold::All,
        }
    }
}

/// One direction of a stream (request or response) at this filter.
#[derive(Default)]
pub(super) struct DirectionState {
    started: bool,
    headers_released: bool,
    hold: Hold,
    chunks: VecDeque<Vec<u8>>,
    /// Trailers still to come after the chunks (`None`: the message has none).
    trailers: Option<Headers>,
    trailers_delivered: bool,
    buffering: bool,
    data_stopped: bool,
    /// The plugin injected the end of this direction (Higress): it ends
    /// even if the plugin took its last chunk.
    injected_end: bool,
    pub(super) passed: Vec<u8>,
    pub(super) headers_out: Option<Headers>,
    /// The trailers as they went on (after the plugin's edits).
    pub(super) trailers_out: Headers,
    done: bool,
    abandoned: bool,
    local: bool,
}

impl DirectionState {
    /// A direction whose headers are about to come, with its body chunks;
    /// `local` for the plugin's own answer.
    pub(super) fn arriving(chunks: VecDeque<Vec<u8>>, local: bool) -> Self {
        DirectionState { chunks, local, ..DirectionState::default() }
    }

    /// The same, ending with `trailers` (none when empty).
    pub(super) fn arriving_with_trailers(chunks: VecDeque<Vec<u8>>, trailers: Headers) -> Self {
        let trailers = (!trailers.is_empty()).then_some(trailers);
        DirectionState { chunks, trailers, ..DirectionState::default() }
    }

    /// Whether nothing follows what is delivered now (the end of the stream).
    fn ends_after_chunks(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }

    fn paused(&self) -> bool {
        self.hold != Hold::Nothing || self.data_stopped
    }
}

/// What the upstream answers (or Envoy for it), due at a time the clock keeps.
pub(super) struct UpstreamReply {
    pub(super) headers: Headers,
    pub(super) chunks: Vec<Vec<u8>>,
    pub(super) trailers: Headers,
}

/// A stream being driven.
pub(crate) struct Flow {
    pub(super) ctx: u32,
    pub(super) req: DirectionState,
    pub(super) resp: DirectionState,
    pub(super) head_request: bool,
    pub(super) answered: bool,
    pub(super) upstream_spec: Option<UpstreamSpec>,
    pub(super) upstream_sent: bool,
    pub(super) upstream_reply: Option<UpstreamReply>,
    response: Option<Response>,
    pub(super) upstream: Option<UpstreamRequest>,
    pub(super) finished: bool,
    stalled: bool,
    reset: bool,
    pub(super) events: Vec<Event>,
    /// The details of the plugin's own answer, once it sent one.
    local_details: Option<String>,
    /// The stream's properties when it ended.
    properties: HashMap<Vec<u8>, Vec<u8>>,
    /// The upstream address the plugin chose (Higress).
    override_host: Option<String>,
}

impl Flow {
    fn direction(&mut self, direction: Direction) -> &mut DirectionState {
        match direction {
            Direction::Request => &mut self.req,
            Direction::Response => &mut self.resp,
        }
    }
}

impl Inner {
    /// Takes one request through the plugin, from its context's creation to
    /// its deletion.
    pub(super) fn exchange(&mut self, req: RequestBuilder<'_>) -> Result<Exchange, Error> {
        let mark_logs = self.store.data().logs.len();
        let mark_notes = self.store.data().notes.len();
        let mark_http = self.store.data().http_calls.len();
        let mark_redis = self.store.data().redis_calls.len();

        let mut headers = Headers::new();
        for (name, default) in [(":authority", "example.com"), (":path", "/"), (":method", "GET"), (":scheme", "http")]
        {
            match req.headers.iter().find(|(k, _)| k == name) {
                Some((_, v)) => headers.add(name, v),
                None => headers.add(name, default),
            }
        }
        const DEFAULTS: [&str; 4] = [":authority", ":path", ":method", ":scheme"];
        for (k, v) in req.headers.iter().filter(|(k, _)| !DEFAULTS.contains(&k.as_str())) {
            headers.add(k, v);
        }
        let head_request = headers.get(":method").is_some_and(|m| m.eq_ignore_ascii_case("HEAD"));
        let chunks: VecDeque<Vec<u8>> = req.chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let mut trailers = Headers::new();
        for (name, value) in &req.trailers {
            trailers.add(name, value);
        }

        let ctx = {
            let s = self.store.data_mut();
            let ctx = s.next_context_id;
            s.next_context_id += 1;
            let mut stream = Stream::new(headers);
            stream.properties.extend(req.properties);
            s.streams.insert(ctx, stream);
            ctx
        };
        let mut flow = Some(Flow {
            ctx,
            req: DirectionState::arriving_with_trailers(chunks, trailers),
            resp: DirectionState::default(),
            head_request,
            answered: false,
            upstream_spec: Some(req.upstream),
            upstream_sent: false,
            upstream_reply: None,
            response: None,
            upstream: None,
            finished: false,
            stalled: false,
            reset: false,
            events: Vec::new(),
            local_details: None,
            properties: HashMap::new(),
            override_host: None,
        });
        let root = self.store.data().root_id;
        self.call(ctx, None, "proxy_on_context_create", &[ctx as i32, root as i32])?;
        self.run_actions(&mut flow)?;
        self.drive(&mut flow)?;
        self.teardown(&mut flow)?;

        let Some(flow) = flow else { return Err(Error::Setup("internal: the stream vanished".into())) };
        let s = self.store.data();
        Ok(Exchange {
            upstream: flow.upstream,
            response: flow.response,
            logs: s.logs.get(mark_logs..).unwrap_or_default().to_vec(),
            events: flow.events,
            http_calls: s.http_calls.get(mark_http..).unwrap_or_default().to_vec(),
            redis_calls: s.redis_calls.get(mark_redis..).unwrap_or_default().to_vec(),
            notes: s.notes.get(mark_notes..).unwrap_or_default().to_vec(),
            stalled: flow.stalled,
            reset: flow.reset,
            context_id: ctx,
            properties: flow.properties,
            override_host: flow.override_host,
        })
    }

    /// Runs the stream until the response is out, the plugin reset it, or
    /// nothing is left that could move it (Envoy's stream idle timeout).
    fn drive(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        self.pump(flow, Direction::Request)?;
        let idle = self.store.data().idle_timeout.as_nanos() as u64;
        let mut deadline = self.store.data().now + idle;
        // Work that never ends (a timer that calls out on every tick) must not
        // keep a stuck stream alive forever: ten idle timeouts at most.
        let last_deadline = self.store.data().now.saturating_add(idle.saturating_mul(10));
        loop {
            let Some(f) = flow.as_mut() else { return Ok(()) };
            if f.finished {
                return Ok(());
            }
            if f.req.done && !f.answered && !f.upstream_sent {
                self.send_upstream(flow)?;
                continue;
            }
            if f.resp.done {
                let response = Response {
                    status: f
                        .resp
                        .headers_out
                        .as_ref()
                        .and_then(|h| h.get(":status"))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    headers: f.resp.headers_out.clone().unwrap_or_default(),
                    body: std::mem::take(&mut f.resp.passed),
                    local: f.resp.local,
                    details: if f.resp.local { f.local_details.clone() } else { None },
                    trailers: std::mem::take(&mut f.resp.trailers_out),
                };
                f.response = Some(response);
                f.finished = true;
                return Ok(());
            }
            let before = self.store.data().pending.len();
            if !self.step(flow, deadline)? {
                if let Some(f) = flow.as_mut() {
                    f.stalled = true;
                    f.finished = true;
                    f.events.push(Event::Stalled);
                }
                return Ok(());
            }
            if self.store.data().pending.len() != before {
                deadline = (self.store.data().now + idle).min(last_deadline);
            }
        }
    }

    /// Runs the callbacks of `direction` as far as they go.
    pub(super) fn pump(&mut self, flow: &mut Option<Flow>, direction: Direction) -> Result<(), Error> {
        loop {
            let Some(f) = flow.as_mut() else { return Ok(()) };
            if f.finished {
                return Ok(());
            }
            let answered = f.answered;
            let d = f.direction(direction);
            if d.abandoned || d.done || (direction == Direction::Request && answered) {
                return Ok(());
            }
            if !d.started {
                self.deliver_headers(flow, direction)?;
                continue;
            }
            if d.hold == Hold::All {
                return Ok(());
            }
            if !d.chunks.is_empty() {
                self.deliver_chunk(flow, direction)?;
                continue;
            }
            // Envoy calls a filter's trailers callback also while it holds the body.
            if d.trailers.is_some() && !d.trailers_delivered {
                self.deliver_trailers(flow, direction)?;
                continue;
            }
            if d.paused() && !d.injected_end {
                return Ok(());
            }
            if !d.headers_released {
                self.release_headers(flow, direction, true);
            }
            if let Some(f) = flow.as_mut() {
                f.direction(direction).done = true;
            }
            return Ok(());
        }
    }

    /// The headers of `direction` go on (as they are now); with `forget`,
    /// the plugin can no longer use them.
    fn release_headers(&mut self, flow: &mut Option<Flow>, direction: Direction, forget: bool) {
        let Some(f) = flow.as_mut() else { return };
        let ctx = f.ctx;
        let d = f.direction(direction);
        d.headers_released = true;
        d.hold = Hold::Nothing;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            d.headers_out = Some(stream.headers(direction).clone());
            if forget {
                *stream.access_mut(direction) = Access::None;
            }
        }
    }

    /// Runs the headers callback of `direction` and does what its answer says.
    fn deliver_headers(&mut self, flow: &mut Option<Flow>, direction: Direction) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let d = f.direction(direction);
        d.started = true;
        let eos = d.ends_after_chunks();
        let count = {
            let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) else { return Ok(()) };
            if direction == Direction::Response {
                stream.resp_access = Access::ReadWrite;
            }
            stream.headers(direction).len()
        };
        let (name, phase) = match direction {
            Direction::Request => ("proxy_on_request_headers", Phase::RequestHeaders),
            Direction::Response => ("proxy_on_response_headers", Phase::ResponseHeaders),
        };
        let result = self.call(ctx, Some(phase), name, &[ctx as i32, count as i32, i32::from(eos)])?;
        self.drain_events(flow);
        let s = self.store.data();
        let status =
            HeaderStatus::from_callback(result.unwrap_or(0), s.stop_next_iteration, s.allow_on_headers_stop_iteration);
        let hold = Hold::after_headers(status);
        if let Some(f) = flow.as_mut() {
            f.direction(direction).hold = hold;
            if hold != Hold::Nothing {
                f.events.push(Event::Paused { phase, status: status.abi() });
            }
        }
        if matches!(status, HeaderStatus::Continue | HeaderStatus::ContinueAndEndStream) {
            self.release_headers(flow, direction, true);
        }
        self.run_actions(flow)
    }

    /// Runs the body callback of `direction` on its next chunk (with what is
    /// buffered before it) and does what its answer says.
    fn deliver_chunk(&mut self, flow: &mut Option<Flow>, direction: Direction) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let d = f.direction(direction);
        let Some(chunk) = d.chunks.pop_front() else { return Ok(()) };
        let eos = d.ends_after_chunks();
        let view_is_held = d.buffering;
        let was_stopped = d.data_stopped;
        let s = self.store.data_mut();
        let Some(stream) = s.streams.get_mut(&ctx) else { return Ok(()) };
        let slot = stream.body_mut(direction);
        let mut held = if was_stopped { slot.take().unwrap_or_default() } else { Vec::new() };
        let view = if view_is_held {
            held.extend_from_slice(&chunk);
            std::mem::take(&mut held)
        } else {
            chunk
        };
        let size = view.len();
        *slot = Some(view);
        let (name, phase) = match direction {
            Direction::Request => ("proxy_on_request_body", Phase::RequestBody),
            Direction::Response => ("proxy_on_response_body", Phase::ResponseBody),
        };
        let result = self.call(ctx, Some(phase), name, &[ctx as i32, size as i32, i32::from(eos)])?;
        self.drain_events(flow);
        let stop = self.store.data().stop_next_iteration;
        let status = DataStatus::from_callback(result.unwrap_or(0), stop);
        let view = self
            .store
            .data_mut()
            .streams
            .get_mut(&ctx)
            .and_then(|st| st.body_mut(direction).take())
            .unwrap_or_default();
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let d = f.direction(direction);
        d.buffering = false;
        let keep = match status {
            DataStatus::Continue => {
                d.passed.extend_from_slice(&held);
                d.passed.extend_from_slice(&view);
                d.data_stopped = false;
                None
            }
            DataStatus::StopIterationAndBuffer | DataStatus::StopIterationAndWatermark => {
                d.data_stopped = true;
                d.buffering = status == DataStatus::StopIterationAndBuffer;
                held.extend_from_slice(&view);
                Some(held)
            }
            DataStatus::StopIterationNoBuffer => {
                d.data_stopped = true;
                Some(held)
            }
        };
        // A body callback continuing after a header StopIteration sends the headers on.
        let release = status == DataStatus::Continue && d.hold == Hold::Headers;
        if status != DataStatus::Continue {
            f.events.push(Event::Paused { phase, status: status.abi() });
        }
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            *stream.body_mut(direction) = keep;
        }
        if release {
            self.release_headers(flow, direction, false);
        }
        self.run_actions(flow)
    }

    /// Runs the trailers callback of `direction`: `Continue` lets everything
    /// held go on with the trailers; `StopIteration` holds it all until
    /// `continue_stream`.
    fn deliver_trailers(&mut self, flow: &mut Option<Flow>, direction: Direction) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let d = f.direction(direction);
        d.trailers_delivered = true;
        let trailers = d.trailers.take().unwrap_or_default();
        let count = trailers.len();
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            let (slot, open) = stream.trailers_mut(direction);
            *slot = trailers;
            *open = true;
        }
        let (name, phase) = match direction {
            Direction::Request => ("proxy_on_request_trailers", Phase::RequestTrailers),
            Direction::Response => ("proxy_on_response_trailers", Phase::ResponseTrailers),
        };
        let result = self.call(ctx, Some(phase), name, &[ctx as i32, count as i32])?;
        self.drain_events(flow);
        // A module without the callback (or a trap's absence of result) goes on.
        let stop = result.unwrap_or(0) != 0 || self.store.data().stop_next_iteration;
        let Some(f) = flow.as_mut() else { return Ok(()) };
        if stop {
            f.direction(direction).hold = Hold::All;
            f.events.push(Event::Paused { phase, status: 1 });
        } else {
            self.release_held(flow, direction);
        }
        self.run_actions(flow)
    }

    /// A direction's end goes on: the body held (if any), the headers if
    /// they were held, and the trailers, which the plugin can no longer use.
    fn release_held(&mut self, flow: &mut Option<Flow>, direction: Direction) {
        let Some(f) = flow.as_mut() else { return };
        let ctx = f.ctx;
        let d = f.direction(direction);
        let was_stopped = std::mem::replace(&mut d.data_stopped, false);
        d.buffering = false;
        let headers_held = d.hold != Hold::Nothing || !d.headers_released;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            let held = if was_stopped { stream.body_mut(direction).take() } else { None };
            let (trailers, open) = stream.trailers_mut(direction);
            *open = false;
            let trailers = trailers.clone();
            let d = f.direction(direction);
            d.passed.extend_from_slice(&held.unwrap_or_default());
            d.trailers_out = trailers;
        }
        if headers_held {
            self.release_headers(flow, direction, true);
        }
    }

    /// `continue_stream` of `direction` takes effect.
    fn resume(&mut self, flow: &mut Option<Flow>, direction: Direction) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        let answered = f.answered;
        let what = direction.name();
        if answered && direction == Direction::Request {
            return self.misuse(format!("continue_stream({what}) after the plugin answered with a local response"));
        }
        let d = f.direction(direction);
        if !d.paused() || d.abandoned || d.done {
            return self.misuse(format!("continue_stream({what}) on a stream that is not paused"));
        }
        f.events.push(Event::Resumed { response: direction.is_response() });
        let d = f.direction(direction);
        let hold = d.hold;
        if hold == Hold::All && d.chunks.len() > 1 {
            // Body that arrived while everything was held is delivered at once.
            let all: Vec<u8> = d.chunks.drain(..).flatten().collect();
            d.chunks.push_back(all);
        }
        if d.data_stopped {
            d.data_stopped = false;
            d.buffering = false;
            let held = self
                .store
                .data_mut()
                .streams
                .get_mut(&ctx)
                .and_then(|st| st.body_mut(direction).take())
                .unwrap_or_default();
            if let Some(f) = flow.as_mut() {
                f.direction(direction).passed.extend_from_slice(&held);
            }
        }
        if hold != Hold::Nothing {
            self.release_headers(flow, direction, true);
        }
        // Held by the trailers callback: the trailers go on too.
        if flow.as_mut().is_some_and(|f| f.direction(direction).trailers_delivered) {
            self.release_held(flow, direction);
        }
        self.pump(flow, direction)
    }

    /// `send_local_response` takes effect: through this plugin's response
    /// callbacks before the response started, straight to the client after.
    fn local_response(
        &mut self,
        flow: &mut Option<Flow>,
        status: u32,
        details: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        if f.answered {
            return self.misuse(format!("send_local_response({status}) on a stream that was already answered"));
        }
        if f.finished {
            return self.misuse(format!("send_local_response({status}) after the response was sent"));
        }
        f.answered = true;
        f.local_details = Some(details.clone());
        f.events.push(Event::LocalResponse { status: status as u16 });
        let ctx = f.ctx;
        // Envoy's prepareLocalReply.
        let mut map = Headers::new();
        map.add(":status", status.to_string());
        for (k, v) in &headers {
            map.add(k, v);
        }
        if body.is_empty() {
            map.remove("content-length");
            map.remove("content-type");
        } else {
            map.set("content-length", body.len().to_string());
            if !map.contains("content-type") {
                map.add("content-type", "text/plain");
            }
        }
        let chunks: VecDeque<Vec<u8>> =
            if body.is_empty() || f.head_request { VecDeque::new() } else { VecDeque::from([body.clone()]) };
        if !f.resp.started {
            // Through the filter chain: this plugin sees its own answer.
            f.req.abandoned = true;
            f.resp = DirectionState::arriving(chunks, true);
            if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
                stream.resp_headers = map;
            }
            self.pump(flow, Direction::Response)
        } else {
            // The response is already in the filter chain: Envoy sends the
            // answer straight to the client.
            f.resp.abandoned = true;
            f.response = Some(Response {
                status: status as u16,
                headers: map,
                body: if f.head_request { Vec::new() } else { body },
                local: true,
                details: Some(details),
                trailers: Headers::new(),
            });
            f.finished = true;
            Ok(())
        }
    }

    /// Applies what the last VM call asked for (Envoy runs these after the call returns).
    pub(super) fn run_actions(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        loop {
            self.drain_events(flow);
            let actions = std::mem::take(&mut self.store.data_mut().actions);
            if actions.is_empty() {
                return Ok(());
            }
            for action in actions {
                let live =
                    flow.as_ref().filter(|f| !f.finished || matches!(action, Action::Continue { .. })).map(|f| f.ctx);
                match action {
                    Action::Continue { ctx, direction, during } => {
                        let what = direction.name();
                        if live != Some(ctx) || flow.as_ref().is_some_and(|f| f.finished) {
                            self.misuse(format!("continue_stream({what}) on a stream that has ended"))?;
                            continue;
                        }
                        let same_direction = match during {
                            Some(Phase::RequestHeaders | Phase::RequestBody | Phase::RequestTrailers) => {
                                direction == Direction::Request
                            }
                            Some(Phase::ResponseHeaders | Phase::ResponseBody | Phase::ResponseTrailers) => {
                                direction == Direction::Response
                            }
                            None => false,
                        };
                        let paused = flow.as_ref().is_some_and(|f| {
                            let d = match direction {
                                Direction::Request => &f.req,
                                Direction::Response => &f.resp,
                            };
                            (direction == Direction::Response || !f.answered) && d.paused()
                        });
                        if same_direction && paused {
                            self.misuse(format!(
                                "continue_stream({what}) called during the callback that decides whether the {what} pauses; \
                                 Envoy runs it before it sees the callback's answer"
                            ))?;
                        }
                        self.resume(flow, direction)?;
                    }
                    Action::LocalResponse { ctx, status, details, headers, body } => {
                        if live != Some(ctx) {
                            self.misuse(format!("send_local_response({status}) on a stream that has ended"))?;
                            continue;
                        }
                        self.local_response(flow, status, details, headers, body)?;
                    }
                    Action::Inject { ctx, data, end_of_stream } => {
                        let Some(f) = flow.as_mut().filter(|f| f.ctx == ctx && !f.finished) else {
                            self.misuse("inject_encoded_data_to_filter_chain on a stream that has ended".to_string())?;
                            continue;
                        };
                        f.resp.passed.extend_from_slice(&data);
                        f.resp.injected_end |= end_of_stream;
                    }
                    Action::Reset { ctx } => {
                        if let Some(f) = flow.as_mut().filter(|f| f.ctx == ctx && !f.finished) {
                            f.reset = true;
                            f.finished = true;
                            f.events.push(Event::Reset);
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: `proxy_on_log`, then `proxy_on_done` and
    /// `proxy_on_delete`, as Envoy destroys a stream.
    fn teardown(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        let ctx = f.ctx;
        f.finished = true;
        let req_headers = f.req.headers_out.clone();
        let resp_headers = f.response.as_ref().map(|r| r.headers.clone()).unwrap_or_default();
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            let req = req_headers.unwrap_or_else(|| stream.req_headers.clone());
            stream.access_log = Some((req, resp_headers));
            stream.req_body = None;
            stream.resp_body = None;
        }
        // Envoy: the access log pass (proxy_on_log) first, then the filter's
        // onDestroy (proxy_on_done, proxy_on_delete).
        self.call(ctx, None, "proxy_on_log", &[ctx as i32])?;
        self.run_actions(flow)?;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            stream.access_log = None;
            stream.req_access = Access::None;
            stream.resp_access = Access::None;
        }
        self.call(ctx, None, "proxy_on_done", &[ctx as i32])?;
        self.run_actions(flow)?;
        self.call(ctx, None, "proxy_on_delete", &[ctx as i32])?;
        self.run_actions(flow)?;
        // What the plugin set stays readable in the exchange.
        if let (Some(stream), Some(f)) = (self.store.data_mut().streams.remove(&ctx), flow.as_mut()) {
            f.properties = stream.properties;
            f.override_host = stream.override_host;
        }
        Ok(())
    }
}
