//! The floor for `mock` (mockEnable false): adds `hello: world` to each
//! request and lets it go on. Only the crates.io `proxy-wasm` crate: no SDK,
//! no configuration, nothing per request but the one host call. Built and
//! measured by `cargo xtask bench`, never shipped.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(AddHeader) });
}}

struct AddHeader;

impl Context for AddHeader {}

impl HttpContext for AddHeader {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_request_header("hello", "world");
        Action::Continue
    }
}
