//! http-call's native build on the test double: the token call, its
//! failures, and a POST body held until the token arrives.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use gateway_native_testhost::{NativeHost, Request, Response};
use http_call as _;

const CLUSTER: &str = "outbound|80||token.dns";
const CONFIG: &str =
    r#"{"tokenHeader": "x-token", "requestPath": "/token?x=1", "serviceName": "token.dns", "servicePort": 80}"#;
const TOKEN: &str = "secret-token-4711";

fn host() -> NativeHost {
    NativeHost::new("http-call", CONFIG).unwrap()
}

#[test]
fn the_token_is_copied_replacing_the_clients() {
    let request = Request::get("/get")
        .header("x-token", "forged")
        .clusters(&[CLUSTER])
        .callout_answer(Response::new(200).header("x-token", TOKEN));
    let outcome = host().run(request);
    assert_eq!(outcome.stalled, None);
    let upstream = outcome.upstream_request.clone().expect("the request went on");
    let tokens: Vec<&str> = upstream.headers.iter().filter(|(k, _)| k == "x-token").map(|(_, v)| v.as_str()).collect();
    assert_eq!(tokens, [TOKEN], "{upstream:?}");
    assert_eq!(outcome.response.status, 200);
    let [call] = outcome.callouts.as_slice() else { panic!("one call: {:?}", outcome.callouts) };
    assert_eq!(call.cluster, CLUSTER);
    let header = |name: &str| call.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let authority = header(":authority").or_else(|| header("host"));
    assert_eq!((header(":method"), header(":path"), authority), (Some("GET"), Some("/token?x=1"), Some("token.dns")));
    assert_eq!(call.timeout_ms, 500);
    assert!(outcome.logs.iter().all(|(_, line)| !line.contains(TOKEN)), "{:?}", outcome.logs);
}

#[test]
fn a_status_other_than_200_answers_500() {
    for status in [403, 500, 503] {
        let request = Request::get("/get").callout_answer(Response::new(status));
        let outcome = host().run(request);
        assert!(outcome.answered_by_plugin, "{outcome:?}");
        assert_eq!((outcome.response.status, outcome.response.text().as_str()), (500, "http call failed"));
        assert!(outcome.upstream_request.is_none());
        assert!(outcome.logged(&format!("status: {status}")), "{:?}", outcome.logs);
    }
}

#[test]
fn a_reset_call_answers_500_as_a_502() {
    // No answer queued: the double resets the call, which the SDK reads as 502.
    let outcome = host().run(Request::get("/get"));
    assert_eq!((outcome.response.status, outcome.response.text().as_str()), (500, "http call failed"));
    assert!(outcome.logged("status: 502"), "{:?}", outcome.logs);
}

#[test]
fn an_unknown_cluster_lets_the_request_through_and_logs() {
    let request = Request::get("/get").header("x-token", "client").clusters(&["another"]);
    let outcome = host().run(request);
    assert!(outcome.callouts.is_empty(), "{:?}", outcome.callouts);
    let upstream = outcome.upstream_request.clone().expect("the request went on");
    assert_eq!(upstream.header("x-token"), Some("client"));
    assert!(outcome.logged(CLUSTER), "{:?}", outcome.logs);
}

#[test]
fn a_request_body_waits_for_the_token_and_goes_on_whole() {
    let request = Request::new("POST", "/post")
        .body("a body of the client")
        .callout_answer(Response::new(200).header("x-token", TOKEN));
    let outcome = host().run(request);
    assert_eq!(outcome.stalled, None);
    let upstream = outcome.upstream_request.clone().expect("the request went on");
    assert_eq!(upstream.header("x-token"), Some(TOKEN));
    assert_eq!(String::from_utf8_lossy(&upstream.body), "a body of the client");
}
