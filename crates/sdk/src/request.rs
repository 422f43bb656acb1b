//! The request a hook works on: headers, bodies, local answers, resuming, state.
//!
//! Every method reads from or writes to the host only when called: nothing is
//! fetched up front. Reads return `None` when the host has no such value (or the
//! phase has none); edits the host refuses are logged as warnings with the
//! plugin's prefix, since they only happen when called in a phase where that
//! part of the exchange cannot be edited (response headers while handling the
//! request, for instance): the table in [`Request`]'s docs says which.

use crate::action::HostAction;
use crate::config::{RequestFacts, Rules, Shared};
use crate::dispatch::{self, Callout};
use crate::host::{self, BufferType, MapType, StreamType};
use crate::http::HttpResponse;
use crate::log::Log;
use crate::{BodyMode, DataAction, HeaderAction, Plugin};
use std::time::Duration;

pub(crate) type HttpCallback<P> = Box<dyn FnOnce(&mut Request<P>, &<P as Plugin>::Config, &HttpResponse)>;

/// What the plugin is holding in one direction of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    Nothing,
    /// Headers held by `StopIteration`; a body hook returning `Continue` releases them.
    Headers,
    /// Headers and body held until `resume` (or a local response).
    All,
    /// Body held by a body hook's `StopIterationAndBuffer`; a later chunk's
    /// `Continue`, or `resume`, releases it.
    Body,
}

/// Where the exchange is, for the checks that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request headers",
            Phase::RequestBody => "request body",
            Phase::ResponseHeaders => "response headers",
            Phase::ResponseBody => "response body",
            Phase::Done => "done",
        }
    }
}

/// The part of the exchange an edit changes, for saying why the host refused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    RequestHeaders,
    ResponseHeaders,
    RequestBody,
    ResponseBody,
}

/// One HTTP exchange as a plugin sees it, with the plugin's per-request state.
///
/// ## What can be edited when
///
/// The host lets a part of the exchange be edited only while it is in the
/// plugin's hands, as Envoy 1.40 does (the test host's docs list the same
/// rules). Elsewhere the host refuses the edit; the SDK logs a warning with
/// the edit, the host's status and, where the phase tells, why:
/// `set_header(x-a) refused by the host: BadArgument (2); request headers can
/// be edited only in the request headers hook, until the request continues
/// (this request is in its response headers phase)`.
///
/// | edit | allowed | otherwise the host answers |
/// |---|---|---|
/// | request headers ([`set_header`](Request::set_header), [`add_header`](Request::add_header), [`remove_header`](Request::remove_header), [`set_headers`](Request::set_headers)) | in [`Plugin::on_request_headers`], and until the request continues: while a hook holds it, also from the callbacks of its calls, and, after [`HeaderAction::StopIteration`] (with Envoy's `allow_on_headers_stop_iteration`), from [`Plugin::on_request_body`] | `BadArgument` once the request went on (the hook returned `Continue`, a body hook released headers held by `StopIteration`, or [`Request::resume`] let it go) |
/// | response headers ([`set_response_header`](Request::set_response_header), [`add_response_header`](Request::add_response_header), [`remove_response_header`](Request::remove_response_header), [`set_response_headers`](Request::set_response_headers)) | in [`Plugin::on_response_headers`], and until the response continues (as for the request) | `BadArgument` while the request is still on its way (there are no response headers yet) and once the response went on |
/// | request body ([`set_request_body`](Request::set_request_body), [`append_request_body`](Request::append_request_body), [`prepend_request_body`](Request::prepend_request_body)) | in [`Plugin::on_request_body`]: the chunk it got, or the whole body buffered so far | `BadArgument`: outside its hook there is no chunk to edit |
/// | response body ([`set_response_body`](Request::set_response_body), [`append_response_body`](Request::append_response_body), [`prepend_response_body`](Request::prepend_response_body)) | in [`Plugin::on_response_body`], likewise | `BadArgument`, likewise |
/// | anything | never in [`Plugin::on_done`]: headers can be read there, not edited | `BadArgument` |
///
/// Reads follow the same phases: a header or body the phase does not have
/// reads as `None`. Native builds (Envoy dynamic modules) open the header
/// maps in the same windows and refuse edits outside them with `BadArgument`
/// too; a body edit Envoy itself refuses is reported as `NotFound`.
///
/// A local answer of the plugin's own ([`Request::respond`]) ends its part
/// in the exchange: the answer goes to the client without passing through
/// this plugin's [`Plugin::on_response_headers`] and
/// [`Plugin::on_response_body`] (the SDK does not call them for it), so
/// whatever it must carry goes in `respond`'s headers and body. Of the
/// hooks, only [`Plugin::on_done`] runs after it.
pub struct Request<P: Plugin> {
    /// Per-request state of the plugin: what Go's `SetContext`/`GetContext`
    /// held, typed. Starts as `P::State::default()`.
    pub state: P::State,
    rules: Shared<Rules<P::Config>>,
    /// The config chosen in the request headers phase: `Some(None)` the global
    /// config, `Some(Some(i))` rule `i`, `None` none (the plugin stays out).
    selected: Option<Option<usize>>,
    request_hold: Hold,
    response_hold: Hold,
    /// Whether the last body chunk of each direction has been seen: a body
    /// held after that can only be released by `resume`.
    pub(crate) request_body_done: bool,
    pub(crate) response_body_done: bool,
    /// This request's own body choices (see `body.rs`).
    pub(crate) body_flags: crate::body::BodyFlags,
    /// Whether the response headers went on to the client (after which a
    /// local answer makes Envoy reset the stream).
    response_headers_sent: bool,
    phase: Phase,
    /// Whether a headers hook is running (a held stream is marked held only
    /// once it returns), for saying why the host refused an edit.
    in_headers_hook: bool,
    responded: bool,
    /// Whether the plugin injected the end of the response (Higress's
    /// `inject_response_data`), after which taking the last chunk is safe.
    pub(crate) response_end_injected: bool,
    pending_http: Vec<(u32, HttpCallback<P>)>,
    #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
    pub(crate) pending_redis: Vec<crate::redis::Pending<P>>,
    /// The host's id of this request, which answers to its calls are routed to.
    pub(crate) context_id: u32,
}

impl<P: Plugin> Request<P> {
    pub(crate) fn new(rules: Shared<Rules<P::Config>>, context_id: u32) -> Self {
        Request {
            state: P::State::default(),
            rules,
            selected: None,
            request_hold: Hold::Nothing,
            response_hold: Hold::Nothing,
            request_body_done: false,
            response_body_done: false,
            body_flags: crate::body::BodyFlags::default(),
            response_headers_sent: false,
            phase: Phase::RequestHeaders,
            in_headers_hook: false,
            responded: false,
            response_end_injected: false,
            pending_http: Vec::new(),
            #[cfg(any(
                feature = "redis",
                all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))
            ))]
            pending_redis: Vec::new(),
            context_id,
        }
    }

    // ----- request headers -----

    /// One request header, lossily converted to UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        lossy(host::get_map_value(MapType::RequestHeaders, name).ok().flatten())
    }
    /// One request header, as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<Vec<u8>> {
        host::get_map_value(MapType::RequestHeaders, name).ok().flatten()
    }
    /// All request headers (pseudo-headers included), values lossily converted to UTF-8.
    pub fn headers(&self) -> Vec<(String, String)> {
        all_lossy(MapType::RequestHeaders)
    }
    /// Replaces all request headers.
    pub fn set_headers(&self, headers: &[(&str, &str)]) {
        self.edit_headers("set_headers", Part::RequestHeaders, headers, || set_all(MapType::RequestHeaders, headers));
    }
    /// Adds a request header value, keeping values it already had.
    pub fn add_header(&self, name: &str, value: &str) {
        self.edit_header("add_header", Part::RequestHeaders, name, value, || {
            host::add_map_value(MapType::RequestHeaders, name, value.as_bytes())
        });
    }
    /// Sets a request header, replacing any values it had.
    pub fn set_header(&self, name: &str, value: &str) {
        self.edit_header("set_header", Part::RequestHeaders, name, value, || {
            host::replace_map_value(MapType::RequestHeaders, name, value.as_bytes())
        });
    }
    /// Removes a request header.
    pub fn remove_header(&self, name: &str) {
        self.edit("remove_header", Part::RequestHeaders, name, host::remove_map_value(MapType::RequestHeaders, name));
    }

    // ----- response headers -----

    /// One response header, lossily converted to UTF-8.
    pub fn response_header(&self, name: &str) -> Option<String> {
        lossy(host::get_map_value(MapType::ResponseHeaders, name).ok().flatten())
    }
    /// All response headers (`:status` included).
    pub fn response_headers(&self) -> Vec<(String, String)> {
        all_lossy(MapType::ResponseHeaders)
    }
    /// Replaces all response headers.
    pub fn set_response_headers(&self, headers: &[(&str, &str)]) {
        self.edit_headers("set_response_headers", Part::ResponseHeaders, headers, || {
            set_all(MapType::ResponseHeaders, headers)
        });
    }
    /// Adds a response header value.
    pub fn add_response_header(&self, name: &str, value: &str) {
        self.edit_header("add_response_header", Part::ResponseHeaders, name, value, || {
            host::add_map_value(MapType::ResponseHeaders, name, value.as_bytes())
        });
    }
    /// Sets a response header, replacing any values it had.
    pub fn set_response_header(&self, name: &str, value: &str) {
        self.edit_header("set_response_header", Part::ResponseHeaders, name, value, || {
            host::replace_map_value(MapType::ResponseHeaders, name, value.as_bytes())
        });
    }
    /// Removes a response header.
    pub fn remove_response_header(&self, name: &str) {
        let result = host::remove_map_value(MapType::ResponseHeaders, name);
        self.edit("remove_response_header", Part::ResponseHeaders, name, result);
    }

    // ----- bodies -----

    /// The request body received so far (the whole body in [`BodyMode::Buffered`]).
    pub fn request_body(&self) -> Option<Vec<u8>> {
        host::get_buffer(BufferType::RequestBody, 0, usize::MAX).ok().flatten()
    }
    /// Replaces the request body.
    ///
    /// The host does not update `content-length`: when the length changes,
    /// remove `content-length` in the headers hook (the body then goes on
    /// chunked), or hold the headers and set it yourself. Otherwise the
    /// upstream reads the old length and the rest corrupts the connection.
    pub fn set_request_body(&self, body: &[u8]) {
        let result = host::set_buffer(BufferType::RequestBody, 0, usize::MAX, body);
        self.edit("set_request_body", Part::RequestBody, "body", result);
    }
    /// Appends to the request body.
    pub fn append_request_body(&self, data: &[u8]) {
        let result = host::set_buffer(BufferType::RequestBody, usize::MAX, 0, data);
        self.edit("append_request_body", Part::RequestBody, "body", result);
    }
    /// Prepends to the request body.
    pub fn prepend_request_body(&self, data: &[u8]) {
        let result = host::set_buffer(BufferType::RequestBody, 0, 0, data);
        self.edit("prepend_request_body", Part::RequestBody, "body", result);
    }
    /// The response body received so far.
    pub fn response_body(&self) -> Option<Vec<u8>> {
        host::get_buffer(BufferType::ResponseBody, 0, usize::MAX).ok().flatten()
    }
    /// Replaces the response body (the `content-length` rule of
    /// [`Request::set_request_body`] applies).
    pub fn set_response_body(&self, body: &[u8]) {
        let result = host::set_buffer(BufferType::ResponseBody, 0, usize::MAX, body);
        self.edit("set_response_body", Part::ResponseBody, "body", result);
    }
    /// Appends to the response body.
    pub fn append_response_body(&self, data: &[u8]) {
        let result = host::set_buffer(BufferType::ResponseBody, usize::MAX, 0, data);
        self.edit("append_response_body", Part::ResponseBody, "body", result);
    }
    /// Prepends to the response body.
    pub fn prepend_response_body(&self, data: &[u8]) {
        let result = host::set_buffer(BufferType::ResponseBody, 0, 0, data);
        self.edit("prepend_response_body", Part::ResponseBody, "body", result);
    }

    // ----- what the request is -----

    /// `:scheme` (`http` or `https`).
    pub fn scheme(&self) -> Option<String> {
        self.header(":scheme")
    }
    /// `:authority`: the host (and port) the client asked for.
    pub fn host(&self) -> Option<String> {
        self.header(":authority")
    }
    /// `:path`, query string included.
    pub fn path(&self) -> Option<String> {
        self.header(":path")
    }
    /// `:method`.
    pub fn method(&self) -> Option<String> {
        self.header(":method")
    }
    /// The name of the route the request took (Higress `route_name`, Envoy `xds.route_name`).
    pub fn route_name(&self) -> Option<String> {
        property_string(&["route_name"]).or_else(|| property_string(&["xds", "route_name"]))
    }
    /// The upstream cluster the request goes to (Higress `cluster_name`, Envoy `xds.cluster_name`).
    pub fn cluster_name(&self) -> Option<String> {
        property_string(&["cluster_name"]).or_else(|| property_string(&["xds", "cluster_name"]))
    }
    /// Any host property, e.g. `&["source", "address"]`.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        host::get_property(path).ok().flatten()
    }

    // ----- flow -----

    /// Answers the client with a response of the plugin's own; the upstream is
    /// not called (or its answer is dropped). Returns the action a headers hook
    /// should return, so a hook can end with `return req.respond(..)`.
    ///
    /// Only the first answer counts; later ones are ignored with a warning.
    pub fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> HeaderAction {
        self.respond_detailed(status, "", headers, body.as_ref())
    }

    /// [`Request::respond`] (empty `details`: Envoy records none) and
    /// [`Request::respond_with_details`].
    pub(crate) fn respond_detailed(
        &mut self,
        status: u16,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HeaderAction {
        if self.responded {
            self.log().warn(format_args!("respond({status}) ignored: this request was already answered"));
            return HeaderAction::StopAllIterationAndWatermark;
        }
        if self.response_headers_sent {
            self.log().warn(format_args!(
                "respond({status}) after the response headers went out: Envoy resets the stream instead"
            ));
        }
        if let Some((name, _)) = headers.iter().find(|(name, value)| !header_is_safe(name, value)) {
            self.log().error(format_args!("respond({status}) refused: CR, LF or NUL in header {name}, or a bad name"));
            return HeaderAction::Continue;
        }
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        match host::send_local_response_with_details(u32::from(status), details, &headers, body) {
            Ok(()) => {
                self.responded = true;
                // The host releases what was held when it sends the answer.
                self.request_hold = Hold::Nothing;
                self.response_hold = Hold::Nothing;
                HeaderAction::StopAllIterationAndWatermark
            }
            Err(status_code) => {
                self.log().error(format_args!("respond({status}) failed: host returned {status_code}"));
                HeaderAction::Continue
            }
        }
    }

    /// Lets a held request (or, once the request is through, a held response)
    /// go on. Does nothing when nothing is held or after [`Request::respond`]:
    /// on Envoy, continuing a stream that is not held sends it upstream twice
    /// (or crashes the proxy), so the SDK only continues what a hook held.
    pub fn resume(&mut self) {
        if self.responded {
            return;
        }
        let stream = if self.request_hold != Hold::Nothing {
            self.request_hold = Hold::Nothing;
            StreamType::Request
        } else if self.response_hold != Hold::Nothing {
            self.response_hold = Hold::Nothing;
            StreamType::Response
        } else {
            return;
        };
        if let Err(status) = host::continue_stream(stream) {
            self.log().error(format_args!("resume failed: host returned {status}"));
        }
    }

    /// Whether [`Request::respond`] has answered this request.
    pub fn responded(&self) -> bool {
        self.responded
    }

    /// A logger whose lines carry the plugin's name and id and this request's id.
    pub fn log(&self) -> Log<'_> {
        Log::new(P::NAME, self.rules.plugin_id(), true)
    }

    // ----- SDK internals -----

    /// Logs an edit the host refused: the edit, the host's status, and why,
    /// when the phase tells (the table in [`Request`]'s docs).
    fn edit(&self, what: &str, part: Part, name: &str, result: host::HostResult<()>) {
        if let Err(status) = result {
            match self.refused_because(part) {
                Some(why) => self.log().warn(format_args!("{what}({name}) refused by the host: {status}; {why}")),
                None => self.log().warn(format_args!("{what}({name}) refused by the host: {status}")),
            }
        }
    }

    /// Why the host refuses an edit of `part` in the phase this request is
    /// in; `None` when the phase allows it (the host then had another reason).
    fn refused_because(&self, part: Part) -> Option<String> {
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
            (Part::ResponseHeaders, Phase::RequestHeaders | Phase::RequestBody) => {
                "response headers can be edited only in the response headers hook (the response has not arrived)"
            }
            (Part::RequestBody, Phase::RequestBody) | (Part::ResponseBody, Phase::ResponseBody) => return None,
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

    /// Sets a header only if it cannot split the message (see [`header_is_safe`]).
    fn edit_header(
        &self,
        what: &str,
        part: Part,
        name: &str,
        value: &str,
        apply: impl FnOnce() -> host::HostResult<()>,
    ) {
        if header_is_safe(name, value) {
            self.edit(what, part, name, apply());
        } else {
            self.log().warn(format_args!("{what}({name}) refused: CR, LF or NUL in the header, or a bad name"));
        }
    }

    fn edit_headers(
        &self,
        what: &str,
        part: Part,
        headers: &[(&str, &str)],
        apply: impl FnOnce() -> host::HostResult<()>,
    ) {
        match headers.iter().find(|(name, value)| !header_is_safe(name, value)) {
            None => self.edit(what, part, "*", apply()),
            Some((name, _)) => {
                self.log().warn(format_args!("{what} refused: CR, LF or NUL in header {name}, or a bad name"))
            }
        }
    }

    /// Number of calls whose answer has not come yet.
    pub(crate) fn pending_calls(&self) -> usize {
        #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
        let redis = self.pending_redis.len();
        #[cfg(not(any(
            feature = "redis",
            all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))
        )))]
        let redis = 0;
        self.pending_http.len() + redis
    }

    pub(crate) fn dispatch_http(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout: Duration,
        callback: HttpCallback<P>,
    ) -> Result<(), host::Status> {
        let token = dispatch::http_call(cluster, headers, body, timeout, self.context_id)?;
        self.pending_http.push((token, callback));
        Ok(())
    }

    /// The tokens of this request's calls still waiting for their answers.
    // Wasm only: native answers come to the filter that asked, nothing to forget.
    #[cfg_attr(feature = "native", allow(dead_code))]
    pub(crate) fn pending_callouts(&self) -> Vec<Callout> {
        let http = self.pending_http.iter().map(|(token, _)| Callout::Http(*token));
        #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
        let http = http.chain(self.pending_redis.iter().map(|p| Callout::Redis(p.callout())));
        http.collect()
    }

    /// Runs `f` with the config chosen for this request; `None` when the plugin
    /// has no config for it. The rules are held by a shared clone so that `f`
    /// can borrow the request mutably beside the config.
    pub(crate) fn with_config<R>(&mut self, f: impl FnOnce(&mut Self, &P::Config) -> R) -> Option<R> {
        let selected = self.selected?;
        let rules = Shared::clone(&self.rules);
        let config = rules.get(selected)?;
        Some(f(self, config))
    }

    pub(crate) fn on_request_headers(&mut self, end_of_stream: bool) -> HostAction {
        self.phase = Phase::RequestHeaders;
        self.request_body_done = end_of_stream;
        crate::property::check_rebuild::<P>(self.rules.plugin_id());
        self.selected =
            if self.rules.has_rules() { self.rules.select(&mut HostFacts) } else { self.rules.global().map(|_| None) };
        if !end_of_stream && self.selected.is_some() {
            self.check_request_body();
        }
        self.in_headers_hook = true;
        let action = self.with_config(P::on_request_headers).unwrap_or(HeaderAction::Continue);
        self.in_headers_hook = false;
        self.after_headers_hook(action, StreamType::Request, end_of_stream)
    }

    pub(crate) fn on_response_headers(&mut self, end_of_stream: bool) -> HostAction {
        self.phase = Phase::ResponseHeaders;
        self.response_body_done = end_of_stream;
        if self.responded {
            // Our own local answer passing through the filter chain.
            return HostAction::Continue;
        }
        // Pure reads: nothing is left of this for the default body mode.
        let config = self.selected.and_then(|selected| self.rules.get(selected));
        if !end_of_stream && config.map(P::response_body_mode) == Some(BodyMode::Buffered) {
            self.check_response_body();
        }
        self.in_headers_hook = true;
        let action = self.with_config(P::on_response_headers).unwrap_or(HeaderAction::Continue);
        self.in_headers_hook = false;
        let abi = self.after_headers_hook(action, StreamType::Response, end_of_stream);
        self.response_headers_sent = abi == HostAction::Continue && !self.responded;
        abi
    }

    fn after_headers_hook(&mut self, action: HeaderAction, stream: StreamType, end_of_stream: bool) -> HostAction {
        if self.responded {
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
        *self.hold_mut(stream) = hold;
        action.to_abi()
    }

    fn hold_mut(&mut self, stream: StreamType) -> &mut Hold {
        match stream {
            StreamType::Request => &mut self.request_hold,
            StreamType::Response => &mut self.response_hold,
        }
    }

    pub(crate) fn on_body(&mut self, stream: StreamType, size: usize, end_of_stream: bool) -> HostAction {
        let (phase, done) = match stream {
            StreamType::Request => (Phase::RequestBody, &mut self.request_body_done),
            StreamType::Response => (Phase::ResponseBody, &mut self.response_body_done),
        };
        self.phase = phase;
        *done = end_of_stream;
        if self.responded {
            return HostAction::Continue;
        }
        let Some(mode) = self.with_config(|_, config| match stream {
            StreamType::Request => P::request_body_mode(config),
            StreamType::Response => P::response_body_mode(config),
        }) else {
            return HostAction::Continue;
        };
        if self.skips_body(stream) {
            // A skipped body goes on, and releases headers held for it.
            let hold = self.hold_mut(stream);
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
        let body = Body { size, end_of_stream };
        let action = self
            .with_config(|req, config| match stream {
                StreamType::Request => P::on_request_body(req, config, body),
                StreamType::Response => P::on_response_body(req, config, body),
            })
            .unwrap_or(DataAction::Continue);
        if self.responded {
            return HostAction::Pause;
        }
        let pending = self.pending_calls();
        let end_injected = self.stream_end_injected(stream);
        let hold = self.hold_mut(stream);
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
                let emptied = host::set_buffer(body_buffer(stream), 0, usize::MAX, &[]);
                if let Err(status) = emptied {
                    self.log().warn(format_args!("cannot empty the last body chunk: {status}; it goes on as it is"));
                }
                HostAction::Continue
            }
        }
    }

    /// Whether something else will end this direction's stream after the
    /// plugin took its last chunk.
    fn stream_end_injected(&self, stream: StreamType) -> bool {
        stream == StreamType::Response && self.response_end_injected
    }

    pub(crate) fn on_done(&mut self) {
        self.phase = Phase::Done;
        self.with_config(P::on_done);
    }

    pub(crate) fn on_http_response(&mut self, token: u32, body_size: usize) {
        let Some(at) = self.pending_http.iter().position(|(t, _)| *t == token) else { return };
        let (_, callback) = self.pending_http.swap_remove(at);
        let response = HttpResponse::from_host(body_size);
        self.with_config(|req, config| callback(req, config, &response));
        self.after_callback();
    }

    /// A callback that leaves the stream held with nothing left that could
    /// release it would hang the request until the client gives up; go on instead.
    pub(crate) fn after_callback(&mut self) {
        if self.responded || self.phase == Phase::Done || self.pending_calls() > 0 {
            return;
        }
        let stuck = |hold: Hold, body_done: bool| match hold {
            Hold::All => true,
            // More body could still come and release these.
            Hold::Headers | Hold::Body => body_done,
            Hold::Nothing => false,
        };
        if stuck(self.request_hold, self.request_body_done) || stuck(self.response_hold, self.response_body_done) {
            self.log().warn("callback neither resumed nor answered the request, and no call is pending: resuming");
            self.resume();
        }
    }
}

/// The buffer holding a direction's body.
fn body_buffer(stream: StreamType) -> BufferType {
    match stream {
        StreamType::Request => BufferType::RequestBody,
        StreamType::Response => BufferType::ResponseBody,
    }
}

/// A body chunk as the host announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    /// Bytes available now (the whole body so far when buffering).
    pub size: usize,
    /// Whether this is the last chunk.
    pub end_of_stream: bool,
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

fn property_string(path: &[&str]) -> Option<String> {
    lossy(host::get_property(path).ok().flatten()).filter(|s| !s.is_empty())
}

/// Bytes as text: no copy when they are UTF-8, replacement characters when not.
pub(crate) fn lossy(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}

fn all_lossy(map: MapType) -> Vec<(String, String)> {
    host::get_map(map).unwrap_or_default().into_iter().map(|(k, v)| (k, lossy(Some(v)).unwrap_or_default())).collect()
}

/// Whether a header a plugin sets is safe to pass on: a name that is not
/// empty and has no spaces or control characters, and a value without CR, LF
/// or NUL. A value copied from a request (or another service) could otherwise
/// split the header and inject one of the client's choosing.
pub(crate) fn header_is_safe(name: &str, value: &str) -> bool {
    !name.is_empty()
        && !name.bytes().any(|b| b <= b' ' || b == 0x7f)
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fn set_all(map: MapType, headers: &[(&str, &str)]) -> host::HostResult<()> {
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    host::set_map(map, &pairs)
}

#[cfg(test)]
mod tests {
    use super::header_is_safe;

    #[test]
    fn headers_that_could_split_a_message_are_refused() {
        assert!(header_is_safe("x-token", "abc def"));
        assert!(header_is_safe(":status", "200"));
        assert!(header_is_safe("x-empty", ""));
        assert!(!header_is_safe("x-token", "a\r\nx-admin: 1"));
        assert!(!header_is_safe("x-token", "a\nb"));
        assert!(!header_is_safe("x-token", "a\0b"));
        assert!(!header_is_safe("", "v"));
        assert!(!header_is_safe("bad name", "v"));
        assert!(!header_is_safe("bad\rname", "v"));
    }
}
