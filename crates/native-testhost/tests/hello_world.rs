//! hello-world's native build on the test double.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use gateway_native_testhost::{NativeHost, Request};
use hello_world as _;

#[test]
fn hello_world_answers_every_request() {
    let host = NativeHost::new("hello-world", "{}").unwrap();
    for method in ["GET", "POST"] {
        let outcome = host.run(Request::new(method, "/hello-world").body(if method == "POST" { "x" } else { "" }));
        assert!(outcome.answered_by_plugin, "{outcome:?}");
        assert_eq!((outcome.response.status, outcome.response.text().as_str()), (200, "hello world"));
        assert!(outcome.upstream_request.is_none());
    }
}
