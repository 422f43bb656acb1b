//! The floor for `hello-world` (and, configured `add-header`, for `mock`
//! with `mockEnable` true): answers each request `200 hello world` from the
//! plugin, after adding the request header `hello: world` when configured
//! `add-header`. Only the crates.io `proxy-wasm` crate; the configuration is
//! read once, at configure time. Built and measured by `cargo xtask bench`,
//! never shipped.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { add_header: false }) });
}}

struct Root {
    add_header: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.add_header = self.get_plugin_configuration().as_deref() == Some(b"add-header");
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Zero-sized contexts: a stream costs no allocation.
        if self.add_header {
            Some(Box::new(HeaderAndAnswer))
        } else {
            Some(Box::new(LocalAnswer))
        }
    }
}

struct LocalAnswer;

impl Context for LocalAnswer {}

impl HttpContext for LocalAnswer {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.send_http_response(200, vec![], Some(b"hello world"));
        Action::Pause
    }
}

struct HeaderAndAnswer;

impl Context for HeaderAndAnswer {}

impl HttpContext for HeaderAndAnswer {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_request_header("hello", "world");
        self.send_http_response(200, vec![], Some(b"hello world"));
        Action::Pause
    }
}
