//! redis-rate-limit on the test host (`gateway-testhost`), Redis answered by
//! the test. Builds the module from the current source first (`TestHost::plugin`).
//!
//! `counts_requests_and_answers_429_past_the_limit` FAILS with the SDK as it
//! is: the test host calls `proxy_on_redis_call_response` with the *root*
//! context id (as Envoy's proxy-wasm-cpp-host does for
//! `proxy_on_http_call_response`, whose `http_call` runs on `root_context()`,
//! and as independent Higress integrations name it: `pluginContextID`), but
//! `gateway_sdk::redis::proxy_on_redis_call_response` looks the id up as the
//! request's context, finds nothing, drops the answer, and the request stays
//! paused forever. The SDK should find the request from the callout id.

use gateway_testhost::{Error, RedisReply, RedisUpstream, TestHost};
use std::cell::Cell;
use std::rc::Rc;

#[test]
fn counts_requests_and_answers_429_past_the_limit() -> Result<(), Error> {
    let count = Rc::new(Cell::new(0));
    let counter = Rc::clone(&count);
    let host = TestHost::plugin("redis-rate-limit")?
        .redis_upstream(
            "outbound|6379||redis.dns",
            RedisUpstream::respond(move |call| {
                assert_eq!(call.command(), "EVAL");
                counter.set(counter.get() + 1);
                RedisReply::integer(counter.get())
            }),
        )
        .config(r#"{"serviceName": "redis.dns", "servicePort": 6379, "qpm": 2}"#)?;
    for (i, expected) in [(1, 200), (2, 200), (3, 429)] {
        let out = host.request().send()?;
        assert!(!out.stalled(), "request {i} stalled: the Redis answer never reached it ({:?})", out.events());
        assert_eq!(out.status(), Some(expected), "request {i}");
    }
    assert_eq!(count.get(), 3);
    Ok(())
}

#[test]
fn the_module_does_not_load_on_upstream_envoy() -> Result<(), Error> {
    let config = r#"{"serviceName": "redis.dns", "servicePort": 6379, "qpm": 2}"#;
    match TestHost::plugin("redis-rate-limit")?.envoy().config(config) {
        Err(Error::Link(why)) => assert!(why.contains("env.proxy_redis_"), "{why}"),
        other => return Err(Error::Setup(format!("expected a link error, got {:?}", other.map(|_| ())))),
    }
    Ok(())
}
