//! The probe fixture's native build on the test double: what the SDK does
//! with each hold and resume, and a panic in a hook (answered 500, as on Envoy).

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use gateway_native_testhost::{NativeHost, Request, Response};
use probe as _;

fn host(config: &str) -> NativeHost {
    NativeHost::new("probe", config).unwrap()
}

#[test]
fn a_panic_in_the_request_headers_hook_answers_500_and_logs_it() {
    let outcome = host(r#"{"requestHeaders": {"panic": true}}"#).run(Request::get("/"));
    assert!(outcome.answered_by_plugin, "{outcome:?}");
    assert_eq!((outcome.response.status, outcome.response.text().as_str()), (500, "internal plugin error"));
    assert_eq!(outcome.details.as_deref(), Some("plugin_panicked"));
    assert!(outcome.upstream_request.is_none());
    assert!(
        outcome.logs.iter().any(|(level, line)| *level == 5 && line.contains("[probe] panic:")),
        "{:?}",
        outcome.logs
    );
}

#[test]
fn a_panic_in_the_response_body_hook_lets_the_response_go_on() {
    let request = Request::get("/").upstream(Response::new(200).body("from upstream"));
    let outcome = host(r#"{"responseBody": {"panic": true}}"#).run(request);
    assert!(!outcome.answered_by_plugin, "{outcome:?}");
    assert_eq!((outcome.response.status, outcome.response.text().as_str()), (200, "from upstream"));
}

#[test]
fn a_call_from_a_held_request_resumes_it_with_the_header_its_callback_set() {
    let config = r#"{"call": {"cluster": "svc", "path": "/status/200", "then": {"setRequestHeader": {"x-after-call": "1"}}},
                     "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true}}"#;
    let request = Request::new("POST", "/post").body("held body").callout_answer(Response::new(200).body("ok"));
    let outcome = host(config).run(request);
    assert_eq!(outcome.stalled, None, "{outcome:?}");
    let upstream = outcome.upstream_request.clone().expect("resumed");
    assert_eq!(upstream.header("x-after-call"), Some("1"));
    assert_eq!(String::from_utf8_lossy(&upstream.body), "held body");
    let phases = outcome.response.header_value("x-probe-phases").unwrap_or_default().to_string();
    assert!(phases.starts_with("request_headers,call_sent,call(200,"), "{phases}");
    assert!(phases.contains("request_body(9,end)"), "{phases}");
}

#[test]
fn a_hold_with_no_call_pending_goes_on_with_an_error() {
    let outcome = host(r#"{"requestHeaders": {"return": "stopAllIterationAndWatermark"}}"#).run(Request::get("/"));
    assert_eq!(outcome.stalled, None);
    assert!(outcome.upstream_request.is_some(), "{outcome:?}");
    assert!(outcome.logged("nothing could resume the stream"), "{:?}", outcome.logs);
}

#[test]
fn a_callback_that_neither_resumes_nor_answers_is_resumed_by_the_sdk() {
    let config = r#"{"call": {"cluster": "svc", "path": "/", "then": {"resume": false}},
                     "requestHeaders": {"return": "stopAllIterationAndWatermark", "call": true}}"#;
    let outcome = host(config).run(Request::get("/").callout_answer(Response::new(200)));
    assert_eq!(outcome.stalled, None);
    assert!(outcome.upstream_request.is_some(), "{outcome:?}");
    assert!(outcome.logged("callback neither resumed nor answered the request"), "{:?}", outcome.logs);
    assert_eq!(outcome.callouts.len(), 1);
}

#[test]
fn a_buffered_response_body_is_edited_whole() {
    let config = r#"{"bodyMode": "buffered", "responseBody": {"prependBody": "<", "appendBody": ">"}}"#;
    let request = Request::get("/").upstream(Response::new(200).body("body"));
    let outcome = host(config).run(request);
    assert_eq!(outcome.response.text(), "<body>");
}
