//! mock's native build on the test double: its answer, its header, its rules.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use gateway_native_testhost::{NativeHost, Request, Response};
use mock as _;

#[test]
fn mock_answers_itself_when_enabled() {
    let host = NativeHost::new("mock", r#"{"mockEnable": true}"#).unwrap();
    let outcome = host.run(Request::get("/anything"));
    assert!(outcome.answered_by_plugin, "{outcome:?}");
    assert_eq!((outcome.response.status, outcome.response.text().as_str()), (200, "hello world"));
    assert!(outcome.upstream_request.is_none(), "the upstream was never asked: {outcome:?}");
}

#[test]
fn mock_lets_the_request_through_with_its_header_when_disabled() {
    let host = NativeHost::new("mock", r#"{"mockEnable": false}"#).unwrap();
    let outcome = host.run(Request::get("/get").upstream(Response::new(201).body("from upstream")));
    assert!(!outcome.answered_by_plugin, "{outcome:?}");
    assert_eq!((outcome.response.status, outcome.response.text().as_str()), (201, "from upstream"));
    let upstream = outcome.upstream_request.expect("the request reached the upstream");
    assert_eq!(upstream.header("hello"), Some("world"), "{upstream:?}");
}

#[test]
fn mock_rules_apply_by_route_name() {
    let config =
        r#"{"mockEnable": false, "_rules_": [{"_match_route_": ["answer"], "mockEnable": true, "body": "by rule"}]}"#;
    let host = NativeHost::new("mock", config).unwrap();
    let ruled = host.run(Request::get("/x").route("answer"));
    assert_eq!((ruled.answered_by_plugin, ruled.response.text().as_str()), (true, "by rule"));
    let other = host.run(Request::get("/x").route("other"));
    assert!(!other.answered_by_plugin, "{other:?}");
}

#[test]
fn a_refused_config_is_an_error_naming_the_field() {
    let err = NativeHost::new("mock", r#"{"mockEnable": "yes"}"#).err().expect("the config is refused");
    assert!(err.contains("mockEnable"), "{err}");
}
