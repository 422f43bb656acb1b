//! The floor for `http-call`: GETs `/token` from the cluster
//! `outbound|80||token.dns`, copies the answer's `x-token` into the request
//! and resumes it (`500 http call failed` on any other status). Only the
//! crates.io `proxy-wasm` crate; the cluster, path and header are constants.
//! Built and measured by `cargo xtask bench`, never shipped.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::time::Duration;

const CLUSTER: &str = "outbound|80||token.dns";
const TOKEN_HEADER: &str = "x-token";

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(HttpCall) });
}}

struct HttpCall;

impl Context for HttpCall {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body_size: usize, _trailers: usize) {
        if self.get_http_call_response_header(":status").as_deref() != Some("200") {
            self.send_http_response(500, vec![], Some(b"http call failed"));
            return;
        }
        if let Some(token) = self.get_http_call_response_header(TOKEN_HEADER) {
            self.set_http_request_header(TOKEN_HEADER, Some(&token));
        }
        self.resume_http_request();
    }
}

impl HttpContext for HttpCall {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = vec![(":method", "GET"), (":path", "/token"), (":authority", "token.dns")];
        match self.dispatch_http_call(CLUSTER, headers, None, vec![], Duration::from_millis(500)) {
            Ok(_) => Action::Pause,
            Err(_) => Action::Continue,
        }
    }
}
