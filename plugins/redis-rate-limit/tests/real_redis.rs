//! redis-rate-limit on the test host against a real `redis-server` (started by
//! each test on a free loopback port). Upstream Envoy cannot load this plugin
//! and no Higress gateway runs here, so the test host plays Higress: it
//! forwards the plugin's Redis commands to the server over TCP.
//!
//! Needs `redis-server`; builds the module from the current source first (`TestHost::plugin`).

// The helpers below are test code too: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::Redis;
use gateway_testhost::{Exchange, RedisUpstream, TestHost};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLUSTER: &str = "outbound|6379||redis.dns";

/// 10 seconds into the minute that starts at `minute` (Unix seconds): far from
/// a window boundary, so a test never straddles two windows by accident.
fn in_minute(minute: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(minute + 10)
}

/// A minute start in the near past, aligned as the plugin aligns windows.
fn some_minute() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    now - now % 60 - 600
}

fn host(redis: &Redis, start: SystemTime, config: &str) -> TestHost {
    TestHost::plugin("redis-rate-limit")
        .unwrap()
        .start_time(start)
        .redis_upstream(CLUSTER, RedisUpstream::forward(format!("127.0.0.1:{}", redis.port())))
        .config(config)
        .unwrap()
}

fn send(host: &TestHost, headers: &[(&str, &str)]) -> Exchange {
    let mut request = host.request().path("/get");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let out = request.send().unwrap();
    assert!(!out.stalled(), "the request stalled: {:?}", out.events());
    out
}

fn response_header(out: &Exchange, name: &str) -> Option<String> {
    out.response().and_then(|r| r.header(name))
}

#[test]
fn exactly_qpm_requests_pass_per_window_then_429_with_the_seed_headers() {
    let redis = Redis::start().unwrap();
    let minute = some_minute();
    let host = host(&redis, in_minute(minute), r#"{"serviceName": "redis.dns", "qpm": 3}"#);

    for left in [2, 1, 0] {
        let out = send(&host, &[]);
        assert_eq!(out.status(), Some(200));
        assert!(out.local_response().is_none(), "admitted requests reach the upstream");
        assert_eq!(response_header(&out, "timeStamp").as_deref(), Some(minute.to_string().as_str()));
        assert_eq!(response_header(&out, "callTimeLeft").as_deref(), Some(left.to_string().as_str()));
        assert_eq!(out.redis_calls().len(), 1, "one Redis round trip per request");
    }
    for _ in 0..2 {
        let out = send(&host, &[]);
        let answer = out.local_response().expect("a 429 from the plugin");
        assert_eq!(answer.status, 429);
        assert_eq!(answer.body_text(), "Too many requests\n");
        assert_eq!(answer.header("timeStamp").as_deref(), Some(minute.to_string().as_str()));
        assert_eq!(answer.header("callTimeLeft").as_deref(), Some("0"));
        assert!(out.upstream_request().is_none(), "a limited request never reaches the upstream");
    }
    // The Higress Go plugin guide's key: the minute-aligned Unix time, counting every request.
    assert_eq!(redis.cli(&["GET", &minute.to_string()]).unwrap(), "5");

    // The next window starts from zero.
    host.advance(Duration::from_secs(60)).unwrap();
    for left in [2, 1, 0] {
        let out = send(&host, &[]);
        assert_eq!(out.status(), Some(200));
        assert_eq!(response_header(&out, "timeStamp").as_deref(), Some((minute + 60).to_string().as_str()));
        assert_eq!(response_header(&out, "callTimeLeft").as_deref(), Some(left.to_string().as_str()));
    }
    assert_eq!(send(&host, &[]).status(), Some(429));
}

#[test]
fn every_counter_expires_with_its_window() {
    let redis = Redis::start().unwrap();
    let minute = some_minute();
    let host = host(
        &redis,
        in_minute(minute),
        r#"{"serviceName": "redis.dns", "limit": 100, "window": "hour", "limitBy": {"header": "x-user"}, "keyPrefix": "rl:"}"#,
    );
    // A counter left without expiry (as the Higress Go plugin guide's INCR-then-EXPIRE could
    // leave one) gets one on its next use.
    let hour = minute - minute % 3600;
    redis.cli(&["SET", &format!("rl:{hour}:carol"), "7"]).unwrap();
    for user in ["alice", "bob", "alice", "carol"] {
        assert_eq!(send(&host, &[("x-user", user)]).status(), Some(200));
    }
    let keys = redis.cli(&["KEYS", "rl:*"]).unwrap();
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(keys, [format!("rl:{hour}:alice"), format!("rl:{hour}:bob"), format!("rl:{hour}:carol")]);
    for key in keys {
        let ttl: i64 = redis.cli(&["TTL", key]).unwrap().parse().unwrap();
        assert!((1..=3600).contains(&ttl), "{key} has TTL {ttl}");
    }
    assert_eq!(redis.cli(&["GET", &format!("rl:{hour}:carol")]).unwrap(), "8");
}

#[test]
fn limits_per_key_are_independent() {
    let redis = Redis::start().unwrap();
    let host = host(
        &redis,
        in_minute(some_minute()),
        r#"{"serviceName": "redis.dns", "limit": 2, "window": "minute", "limitBy": {"header": "x-api-key"}}"#,
    );
    let statuses =
        |key: &str, n: usize| (0..n).map(|_| send(&host, &[("x-api-key", key)]).status()).collect::<Vec<_>>();
    assert_eq!(statuses("a", 3), [Some(200), Some(200), Some(429)]);
    assert_eq!(statuses("b", 3), [Some(200), Some(200), Some(429)]);
    // Requests without the header share one counter of their own.
    assert_eq!((0..3).map(|_| send(&host, &[]).status()).collect::<Vec<_>>(), [Some(200), Some(200), Some(429)]);
    // A huge value is hashed into a short key, still counted apart.
    let huge = "k".repeat(10_000);
    assert_eq!(statuses(&huge, 3), [Some(200), Some(200), Some(429)]);
    assert!(redis.cli(&["KEYS", "*"]).unwrap().lines().all(|key| key.len() < 64));
}

#[test]
fn ietf_headers_when_enabled() {
    let redis = Redis::start().unwrap();
    let minute = some_minute();
    let host = host(&redis, in_minute(minute), r#"{"serviceName": "redis.dns", "qpm": 1, "rateLimitHeaders": true}"#);
    let out = send(&host, &[]);
    assert_eq!(response_header(&out, "RateLimit-Limit").as_deref(), Some("1"));
    assert_eq!(response_header(&out, "RateLimit-Remaining").as_deref(), Some("0"));
    assert_eq!(response_header(&out, "RateLimit-Reset").as_deref(), Some("50"));
    let limited = send(&host, &[]);
    let answer = limited.local_response().unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("Retry-After").as_deref(), Some("50"));
    assert_eq!(answer.header("RateLimit-Remaining").as_deref(), Some("0"));
}

#[test]
fn fail_open_while_redis_is_down_then_limits_again() {
    let redis = Redis::start().unwrap();
    let port = redis.port();
    let minute = some_minute();
    let host = host(&redis, in_minute(minute), r#"{"serviceName": "redis.dns", "qpm": 2}"#);
    assert_eq!(send(&host, &[]).status(), Some(200));

    drop(redis);
    for _ in 0..4 {
        let out = send(&host, &[]);
        assert_eq!(out.status(), Some(200), "fail-open lets requests through");
        assert!(out.upstream_request().is_some());
        assert!(response_header(&out, "callTimeLeft").is_none(), "no count, no headers");
        assert!(out.logged_anywhere("call redis error: cannot connect to redis cluster; letting the request through"));
    }

    let redis = Redis::start_on(port, &[]).unwrap();
    assert_eq!(
        (0..3).map(|_| send(&host, &[]).status()).collect::<Vec<_>>(),
        [Some(200), Some(200), Some(429)],
        "limiting again, from a fresh count, once Redis is back"
    );
    drop(redis);
}

#[test]
fn fail_closed_answers_503_while_redis_is_down() {
    let redis = Redis::start().unwrap();
    let host =
        host(&redis, in_minute(some_minute()), r#"{"serviceName": "redis.dns", "qpm": 5, "failureMode": "closed"}"#);
    assert_eq!(send(&host, &[]).status(), Some(200));
    drop(redis);
    let out = send(&host, &[]);
    let answer = out.local_response().expect("fail-closed answers itself");
    assert_eq!((answer.status, answer.body_text().as_str()), (503, "rate limiter unavailable\n"));
    assert!(out.upstream_request().is_none());
}

#[test]
fn the_password_never_appears_in_logs() {
    let redis = Redis::start_on(e2e::process::free_port().unwrap(), &["--requirepass", "s3cret-pw"]).unwrap();
    let host = TestHost::plugin("redis-rate-limit")
        .unwrap()
        .log_level(gateway_testhost::LogLevel::Trace)
        .start_time(in_minute(some_minute()))
        .redis_upstream(CLUSTER, RedisUpstream::forward(format!("127.0.0.1:{}", redis.port())))
        .config(r#"{"serviceName": "redis.dns", "qpm": 5, "password": "s3cret-pw"}"#)
        .unwrap();
    assert_eq!(send(&host, &[]).status(), Some(200));
    assert_eq!(redis.cli(&["-a", "s3cret-pw", "DBSIZE"]).unwrap(), "1");
    // A wrong password: Redis refuses, the plugin fails open, and says nothing of the password.
    let wrong = TestHost::plugin("redis-rate-limit")
        .unwrap()
        .log_level(gateway_testhost::LogLevel::Trace)
        .redis_upstream(CLUSTER, RedisUpstream::forward(format!("127.0.0.1:{}", redis.port())))
        .config(r#"{"serviceName": "redis.dns", "qpm": 5, "password": "wrong-pw"}"#)
        .unwrap();
    let out = send(&wrong, &[]);
    assert_eq!(out.status(), Some(200));
    for line in host.logs().iter().chain(wrong.logs().iter()) {
        assert!(!line.message.contains("s3cret-pw") && !line.message.contains("wrong-pw"), "{line:?}");
    }
}
