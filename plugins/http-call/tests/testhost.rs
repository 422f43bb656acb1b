//! http-call on the test host (`gateway-testhost`): the token service is
//! answered by the test. Builds the module from the current source first (`TestHost::plugin`).

use gateway_testhost::{Error, HttpUpstream, LogLevel, Reply, TestHost};
use std::cell::Cell;
use std::rc::Rc;

const CLUSTER: &str = "outbound|80||token.dns";
const CONFIG: &str =
    r#"{"tokenHeader": "x-token", "requestPath": "/token?x=1", "serviceName": "token.dns", "servicePort": 80}"#;
const TOKEN: &str = "secret-token-4711";

fn fail(why: String) -> Error {
    Error::Setup(why)
}

fn host(upstream: HttpUpstream) -> Result<TestHost, Error> {
    TestHost::plugin("http-call")?.log_level(LogLevel::Trace).http_upstream(CLUSTER, upstream).config(CONFIG)
}

#[test]
fn the_token_is_copied_replacing_the_clients() -> Result<(), Error> {
    let host = host(HttpUpstream::reply(Reply::new(200).header("x-token", TOKEN)))?;
    let out = host.request().path("/get").header("x-token", "forged").header("X-Token", "forged-again").send()?;

    let upstream = out.upstream_request().ok_or_else(|| fail(format!("upstream not called: {out:?}")))?;
    assert_eq!(upstream.headers.get_all("x-token"), [TOKEN]);
    assert_eq!(out.status(), Some(200));
    // The request waited for the call, then was resumed once.
    assert_eq!(out.pauses().len(), 1);
    assert_eq!(out.resumes(), 1);

    let [call] = out.http_calls() else { return Err(fail(format!("expected one call: {:?}", out.http_calls()))) };
    assert_eq!(call.cluster, CLUSTER);
    assert_eq!((call.method().as_str(), call.path().as_str()), ("GET", "/token?x=1"));
    assert_eq!(call.authority(), "token.dns");
    assert_eq!(call.timeout.map(|t| t.as_millis()), Some(500));
    Ok(())
}

#[test]
fn a_status_other_than_200_answers_500() -> Result<(), Error> {
    for status in [201, 403, 503] {
        let host = host(HttpUpstream::reply(Reply::new(status).header("x-token", TOKEN)))?;
        let out = host.request().send()?;
        let answer = out.local_response().ok_or_else(|| fail(format!("{status}: no local response: {out:?}")))?;
        assert_eq!((answer.status, answer.body_text()), (500, "http call failed".to_string()));
        assert!(out.upstream_request().is_none());
        assert!(out.logged(LogLevel::Error, &format!("status: {status}")), "{:?}", out.logs());
    }
    Ok(())
}

#[test]
fn a_timeout_answers_500() -> Result<(), Error> {
    // Never answered, or answered after the 500 ms timeout: Envoy's own 504 arrives.
    for upstream in [Reply::no_answer(), Reply::new(200).header("x-token", TOKEN).delay_ms(800)] {
        let host = host(HttpUpstream::reply(upstream))?;
        let before = host.now();
        let out = host.request().send()?;
        let answer = out.local_response().ok_or_else(|| fail(format!("no local response: {out:?}")))?;
        assert_eq!((answer.status, answer.body_text()), (500, "http call failed".to_string()));
        assert!(out.logged(LogLevel::Error, "status: 504"), "{:?}", out.logs());
        let waited = host.now().duration_since(before).map(|d| d.as_millis()).unwrap_or(0);
        assert_eq!(waited, 500, "virtual time passes exactly the timeout");
    }
    Ok(())
}

#[test]
fn a_slow_answer_within_the_timeout_is_fine() -> Result<(), Error> {
    let host = host(HttpUpstream::reply(Reply::new(200).header("x-token", TOKEN).delay_ms(499)))?;
    let out = host.request().send()?;
    assert_eq!(out.upstream_request().and_then(|u| u.header("x-token")).as_deref(), Some(TOKEN));
    Ok(())
}

#[test]
fn a_failed_connection_answers_500() -> Result<(), Error> {
    let host = host(HttpUpstream::reply(Reply::connect_failure()))?;
    let out = host.request().send()?;
    assert_eq!(out.local_response().map(|r| r.status), Some(500));
    assert!(out.logged(LogLevel::Error, "status: 502"), "{:?}", out.logs());
    Ok(())
}

#[test]
fn an_unknown_cluster_lets_the_request_through_and_logs() -> Result<(), Error> {
    // No upstream declared for the cluster: Envoy's BadArgument at dispatch.
    let host = TestHost::plugin("http-call")?.config(CONFIG)?;
    let out = host.request().header("x-token", "client").send()?;
    let upstream = out.upstream_request().ok_or_else(|| fail(format!("upstream not called: {out:?}")))?;
    assert_eq!(upstream.header("x-token").as_deref(), Some("client"));
    assert_eq!(out.status(), Some(200));
    assert!(out.pauses().is_empty());
    assert!(out.logged(LogLevel::Error, CLUSTER), "{:?}", out.logs());
    Ok(())
}

#[test]
fn a_200_without_the_token_lets_the_request_through() -> Result<(), Error> {
    let host = host(HttpUpstream::reply(Reply::new(200)))?;
    let out = host.request().send()?;
    assert!(out.upstream_request().is_some_and(|u| u.header("x-token").is_none()));
    assert!(out.logged(LogLevel::Warn, "without x-token"), "{:?}", out.logs());
    Ok(())
}

#[test]
fn the_token_never_appears_in_logs() -> Result<(), Error> {
    for reply in [Reply::new(200).header("x-token", TOKEN), Reply::new(500).header("x-token", TOKEN)] {
        let host = host(HttpUpstream::reply(reply))?;
        host.request().header("x-token", "forged").send()?;
        let (stdout, stderr) = host.output();
        let logs = host.logs();
        assert!(!logs.is_empty());
        assert!(logs.iter().all(|l| !l.message.contains(TOKEN)), "{logs:?}");
        assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    }
    Ok(())
}

#[test]
fn each_request_makes_its_own_call() -> Result<(), Error> {
    let calls = Rc::new(Cell::new(0));
    let counter = Rc::clone(&calls);
    let host = host(HttpUpstream::respond(move |_| {
        counter.set(counter.get() + 1);
        Reply::new(200).header("x-token", &format!("t{}", counter.get()))
    }))?;
    for i in 1..=3 {
        let out = host.request().send()?;
        assert_eq!(out.upstream_request().and_then(|u| u.header("x-token")), Some(format!("t{i}")));
    }
    assert_eq!(calls.get(), 3);
    Ok(())
}

#[test]
fn bad_configurations_are_refused_naming_the_field() -> Result<(), Error> {
    let base = r#""requestPath": "/t", "serviceName": "s.dns", "servicePort": 80"#;
    for (config, field) in [
        (format!(r#"{{{base}}}"#), "tokenHeader"),
        (format!(r#"{{"tokenHeader": "bad header", {base}}}"#), "tokenHeader"),
        (r#"{"tokenHeader": "x", "serviceName": "s.dns", "servicePort": 80}"#.to_string(), "requestPath"),
        (
            r#"{"tokenHeader": "x", "requestPath": "", "serviceName": "s.dns", "servicePort": 80}"#.to_string(),
            "requestPath",
        ),
        (r#"{"tokenHeader": "x", "requestPath": "/t", "servicePort": 80}"#.to_string(), "serviceName"),
        (r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns"}"#.to_string(), "serviceName"),
        (format!(r#"{{"tokenHeader": "x", {base}, "timeout": 0}}"#), "timeout"),
        (format!(r#"{{"tokenHeader": "x", {base}, "timeout": "fast"}}"#), "timeout"),
        (
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 70000}"#.to_string(),
            "servicePort",
        ),
        (format!(r#"{{"tokenHeader": "x", {base}, "extra": 1}}"#), "extra"),
    ] {
        match TestHost::plugin("http-call")?.config(&config) {
            Ok(_) => return Err(fail(format!("{config} was accepted"))),
            Err(err) => {
                assert!(matches!(err, Error::ConfigRejected { .. }), "{config}: {err}");
                assert!(err.to_string().contains(field), "{config}: expected {field} in: {err}");
            }
        }
    }
    Ok(())
}

#[test]
fn rules_select_the_config_by_route_and_domain() -> Result<(), Error> {
    let config = r#"{"tokenHeader": "x-token", "requestPath": "/global", "serviceName": "token.dns", "servicePort": 80,
        "_rules_": [
          {"_match_route_": ["r1"], "tokenHeader": "x-route", "requestPath": "/route", "serviceName": "token.dns", "servicePort": 80},
          {"_match_domain_": ["*.example.org"], "tokenHeader": "x-domain", "requestPath": "/domain", "serviceName": "other.dns", "servicePort": 8080}]}"#;
    let reply = Reply::new(200).header("x-token", "g").header("x-route", "r").header("x-domain", "d");
    let host = TestHost::plugin("http-call")?
        .http_upstream(CLUSTER, HttpUpstream::reply(reply.clone()))
        .http_upstream("outbound|8080||other.dns", HttpUpstream::reply(reply))
        .config(config)?;

    let out = host.request().property("route_name", "r1").send()?;
    assert_eq!(out.http_calls().first().map(|c| c.path()).as_deref(), Some("/route"));
    assert_eq!(out.upstream_request().and_then(|u| u.header("x-route")).as_deref(), Some("r"));

    let out = host.request().authority("www.example.org").send()?;
    let call = out.http_calls().first().ok_or_else(|| fail("no call".into()))?;
    assert_eq!((call.cluster.as_str(), call.path().as_str()), ("outbound|8080||other.dns", "/domain"));
    assert_eq!(out.upstream_request().and_then(|u| u.header("x-domain")).as_deref(), Some("d"));

    let out = host.request().property("route_name", "r2").send()?;
    assert_eq!(out.http_calls().first().map(|c| c.path()).as_deref(), Some("/global"));
    assert_eq!(out.upstream_request().and_then(|u| u.header("x-token")).as_deref(), Some("g"));
    Ok(())
}
