//! The request a hook works on: headers, bodies, local answers, resuming, state.
//!
//! Every method reads from or writes to the host only when called: nothing is
//! fetched up front. Reads return `None` when the host has no such value (or the
//! phase has none); edits the host refuses are logged as warnings with the
//! plugin's prefix, since they only happen when called in a phase where that
//! part of the exchange cannot be edited (response headers while handling the
//! request, for instance): the table in [`Request`]'s docs says which.
//!
//! This is the façade plugins call, and the hub of a request's modules
//! (`a → b`: `a` depends on `b`):
//!
//! * `stream.rs` (Wasm contexts), `native/filter.rs` → `driver.rs`, which
//!   runs the phases and the answers to calls → `request.rs`, `flow.rs`,
//!   `body.rs`, `property.rs`, `http_response.rs`;
//! * `http.rs`, `redis.rs` (the clients) → `request.rs`, where a call leaves
//!   what its answer runs, and `dispatch.rs`, `cluster.rs`,
//!   `http_response.rs`; `http.rs` also → `lifetime.rs`, for calls outside
//!   requests;
//! * `body.rs`, `details.rs`, `property.rs`, `attributes.rs` (more façade
//!   methods) → `request.rs`;
//! * `request.rs` → `flow.rs` (where the exchange is, what is held: read to
//!   explain refusals, to resume and to answer), `callouts.rs` (the calls it
//!   waits on), `http_response.rs`, `dispatch.rs`, and `config`, `host`,
//!   `log`, `text`.
//!
//! `flow.rs`, `callouts.rs`, `cluster.rs`, `http_response.rs` and `text.rs`
//! depend on none of these. One arrow runs back, by the types: every module
//! uses the crate root's `Plugin`, whose hooks take a `Request`.

use crate::action::HeaderAction;
use crate::callouts::Waiting;
use crate::config::{Rules, Shared};
use crate::dispatch::{self, Callout};
use crate::flow::{BodyFlags, Flow, Part, Phase};
use crate::host::{self, BufferType, MapType};
use crate::http_response::HttpResponse;
use crate::log::Log;
use crate::text::lossy;
use crate::Plugin;
use std::time::Duration;

/// What runs when the answer to one of a request's HTTP calls comes.
pub(crate) type HttpCallback<P> = Box<dyn FnOnce(&mut Request<P>, &<P as Plugin>::Config, &HttpResponse)>;

/// What runs when the answer to one of a request's Redis commands comes
/// (made by `redis.rs`, which reads and decodes the answer itself).
#[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
pub(crate) type OnRedisAnswer<P> = Box<dyn FnOnce(&mut Request<P>, &<P as Plugin>::Config, dispatch::Answer)>;

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
    pub(crate) rules: Shared<Rules<P::Config>>,
    /// The config chosen in the request headers phase: `Some(None)` the global
    /// config, `Some(Some(i))` rule `i`, `None` none (the plugin stays out).
    pub(crate) selected: Option<Option<usize>>,
    /// Where the exchange is and what the plugin holds in it.
    pub(crate) flow: Flow,
    /// This request's own body choices (see `body.rs`).
    pub(crate) body_flags: BodyFlags,
    /// The pseudo-headers as the request headers hook left them (boxed: most
    /// requests never need it, and a request is moved into its map).
    request_line: Option<Box<RequestLine>>,
    pub(crate) http_calls: Waiting<HttpCallback<P>>,
    #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
    pub(crate) redis_calls: Waiting<OnRedisAnswer<P>>,
    /// The host's id of this request, which answers to its calls are routed to.
    pub(crate) context_id: u32,
}

impl<P: Plugin> Request<P> {
    pub(crate) fn new(rules: Shared<Rules<P::Config>>, context_id: u32) -> Self {
        Request {
            state: P::State::default(),
            rules,
            selected: None,
            flow: Flow::new(),
            body_flags: BodyFlags::default(),
            request_line: None,
            http_calls: Waiting::new(),
            #[cfg(any(
                feature = "redis",
                all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))
            ))]
            redis_calls: Waiting::new(),
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

    /// The request body received so far (the whole body in [`BodyMode::Buffered`](crate::BodyMode::Buffered)).
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

    /// `:scheme` (`http` or `https`), in every phase (as Go's `Scheme()`
    /// keeps it from the headers phase): once the request went on, from the
    /// host's `request.scheme` attribute.
    pub fn scheme(&self) -> Option<String> {
        self.pseudo_header(":scheme", "scheme")
    }
    /// `:authority`: the host (and port) the client asked for, in every
    /// phase (later ones: the `request.host` attribute).
    pub fn host(&self) -> Option<String> {
        self.pseudo_header(":authority", "host")
    }
    /// `:path`, query string included, in every phase (later ones: the
    /// `request.path` attribute).
    pub fn path(&self) -> Option<String> {
        self.pseudo_header(":path", "path")
    }
    /// `:method`, in every phase (later ones: the `request.method` attribute).
    pub fn method(&self) -> Option<String> {
        self.pseudo_header(":method", "method")
    }

    /// A request pseudo-header; once the host no longer hands out the
    /// request headers (after the request went on), what the SDK kept of it
    /// ([`Plugin::KEEP_REQUEST_LINE`]), else the host's attribute
    /// `request.<attribute>`.
    fn pseudo_header(&self, name: &str, attribute: &str) -> Option<String> {
        if let Ok(Some(value)) = host::get_map_value(MapType::RequestHeaders, name) {
            return lossy(Some(value));
        }
        let kept = self.request_line.as_deref().and_then(|line| match name {
            ":scheme" => line.scheme.clone(),
            ":authority" => line.host.clone(),
            ":path" => line.path.clone(),
            _ => line.method.clone(),
        });
        kept.or_else(|| property_string(&["request", attribute]))
    }

    /// Keeps the four pseudo-headers for the phases after the request headers.
    pub(crate) fn keep_request_line(&mut self) {
        let read = |name: &str| lossy(host::get_map_value(MapType::RequestHeaders, name).ok().flatten());
        self.request_line = Some(Box::new(RequestLine {
            scheme: read(":scheme"),
            host: read(":authority"),
            path: read(":path"),
            method: read(":method"),
        }));
    }
    /// The name of the route the request took (Higress `route_name`, Envoy `xds.route_name`).
    pub fn route_name(&self) -> Option<String> {
        property_string(&["route_name"]).or_else(|| property_string(&["xds", "route_name"]))
    }
    /// The upstream cluster the request goes to (Higress `cluster_name`, Envoy `xds.cluster_name`).
    pub fn cluster_name(&self) -> Option<String> {
        property_string(&["cluster_name"]).or_else(|| property_string(&["xds", "cluster_name"]))
    }
    /// Runs `f` on the plugin's value of type `T` (Go's plugin-wide
    /// `SetContext` / `GetContext`): the one [`PluginContext::store`](crate::PluginContext::store)
    /// sees, shared by the requests of this VM under this configuration.
    /// `None` when called from inside another store closure. See [`store`](crate::store).
    pub fn plugin_store<T: crate::store::Stored, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.rules.store().with(f)
    }

    /// Where the exchange is (Go's `GetExecutionPhase`): in a hook, the
    /// hook's phase; in a call's callback, the phase that made the call.
    pub fn phase(&self) -> Phase {
        self.flow.phase
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
        if self.flow.responded {
            self.log().warn(format_args!("respond({status}) ignored: this request was already answered"));
            return HeaderAction::StopAllIterationAndWatermark;
        }
        if self.flow.response_headers_sent {
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
                // The host releases what was held when it sends the answer.
                self.flow.answered();
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
        if self.flow.responded {
            return;
        }
        let Some(stream) = self.flow.release() else { return };
        if let Err(status) = host::continue_stream(stream) {
            self.log().error(format_args!("resume failed: host returned {status}"));
        }
    }

    /// Whether [`Request::respond`] has answered this request.
    pub fn responded(&self) -> bool {
        self.flow.responded
    }

    /// A logger whose lines carry the plugin's name and id and this request's id.
    pub fn log(&self) -> Log<'_> {
        Log::new(P::NAME, self.rules.plugin_id(), true)
    }

    // ----- SDK internals -----

    /// Logs an edit the host refused: the edit, the host's status, and why,
    /// when the phase tells (the table in [`Request`]'s docs).
    pub(crate) fn edit(&self, what: &str, part: Part, name: &str, result: host::HostResult<()>) {
        if let Err(status) = result {
            match self.flow.refused_because(part) {
                Some(why) => self.log().warn(format_args!("{what}({name}) refused by the host: {status}; {why}")),
                None => self.log().warn(format_args!("{what}({name}) refused by the host: {status}")),
            }
        }
    }

    /// Sets a header only if it cannot split the message (see [`header_is_safe`]).
    pub(crate) fn edit_header(
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

    pub(crate) fn edit_headers(
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
        let redis = self.redis_calls.len();
        #[cfg(not(any(
            feature = "redis",
            all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))
        )))]
        let redis = 0;
        self.http_calls.len() + redis
    }

    /// Starts an HTTP call whose answer runs `callback` on this request.
    pub(crate) fn dispatch_http(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout: Duration,
        callback: HttpCallback<P>,
    ) -> Result<(), host::Status> {
        let token = dispatch::http_call(cluster, headers, body, timeout, self.context_id)?;
        self.http_calls.push(token, callback);
        Ok(())
    }

    /// The tokens of this request's calls still waiting for their answers.
    // Wasm only: native answers come to the filter that asked, nothing to forget.
    #[cfg_attr(feature = "native", allow(dead_code))]
    pub(crate) fn pending_callouts(&self) -> Vec<Callout> {
        let http = self.http_calls.tokens().map(Callout::Http);
        #[cfg(any(feature = "redis", all(doc, not(doctest), not(feature = "native"), not(target_family = "wasm"))))]
        let http = http.chain(self.redis_calls.tokens().map(Callout::Redis));
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
}

/// A body chunk as the host announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    /// Bytes available now (the whole body so far when buffering).
    pub size: usize,
    /// Whether this is the last chunk.
    pub end_of_stream: bool,
}

/// A property as text; `None` when missing or empty.
/// What [`Plugin::KEEP_REQUEST_LINE`] keeps of the request headers.
struct RequestLine {
    scheme: Option<String>,
    host: Option<String>,
    path: Option<String>,
    method: Option<String>,
}

pub(crate) fn property_string(path: &[&str]) -> Option<String> {
    lossy(host::get_property(path).ok().flatten()).filter(|s| !s.is_empty())
}

pub(crate) fn all_lossy(map: MapType) -> Vec<(String, String)> {
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

pub(crate) fn set_all(map: MapType, headers: &[(&str, &str)]) -> host::HostResult<()> {
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
