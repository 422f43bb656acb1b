//! mock on the test host (`gateway-testhost`): no gateway needed.
//! Builds the module from the current source first (`TestHost::plugin`).

use gateway_testhost::{Error, Reply, TestHost};

fn fail(why: String) -> Error {
    Error::Setup(why)
}

#[test]
fn adds_hello_world_and_lets_the_request_through() -> Result<(), Error> {
    for config in ["", "{}", r#"{"mockEnable": false}"#] {
        let host = TestHost::plugin("mock")?.config(config)?;
        let out = host
            .request()
            .path("/get")
            .header("hello", "client")
            .upstream(Reply::new(201).header("x-up", "1").body("from upstream"))
            .send()?;
        let upstream = out.upstream_request().ok_or_else(|| fail(format!("upstream not called: {out:?}")))?;
        // Added, next to the client's own value.
        assert_eq!(upstream.headers.get_all("hello"), ["client", "world"]);
        assert_eq!(upstream.header(":path").as_deref(), Some("/get"));
        let response = out.response().ok_or_else(|| fail("no response".into()))?;
        assert!(!response.local);
        assert_eq!((response.status, response.body_text()), (201, "from upstream".to_string()));
        assert_eq!(response.header("x-up").as_deref(), Some("1"));
        assert!(out.pauses().is_empty());
    }
    Ok(())
}

#[test]
fn mock_enable_answers_with_the_defaults() -> Result<(), Error> {
    let host = TestHost::plugin("mock")?.config(r#"{"mockEnable": true}"#)?;
    let out = host.request().path("/get").send()?;
    let answer = out.local_response().ok_or_else(|| fail(format!("no local response: {out:?}")))?;
    assert_eq!((answer.status, answer.body_text()), (200, "hello world".to_string()));
    assert!(out.upstream_request().is_none());
    Ok(())
}

#[test]
fn mock_enable_answers_with_the_configured_response() -> Result<(), Error> {
    let config = r#"{"mockEnable": true, "status": 418, "headers": {"X-Mock": "yes", "content-type": "application/json"},
                     "body": "{\"ok\":false}"}"#;
    let host = TestHost::plugin("mock")?.config(config)?;
    let out = host.request().send()?;
    let answer = out.local_response().ok_or_else(|| fail(format!("no local response: {out:?}")))?;
    assert_eq!(answer.status, 418);
    assert_eq!(answer.header("x-mock").as_deref(), Some("yes"));
    assert_eq!(answer.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(answer.body_text(), r#"{"ok":false}"#);
    Ok(())
}

#[test]
fn bad_configurations_are_refused_naming_the_field() -> Result<(), Error> {
    for (config, field) in [
        (r#"{"mockEnable": "yes"}"#, "mockEnable"),
        (r#"{"status": 700}"#, "status"),
        (r#"{"status": "200"}"#, "status"),
        (r#"{"headers": {"bad name": "x"}}"#, "headers"),
        (r#"{"headers": {"x": "a\r\nb"}}"#, "headers"),
        (r#"{"body": 3}"#, "body"),
        (r#"{"mockEnabled": true}"#, "mockEnabled"),
        (r#"{"_rules_": [{"_match_route_": ["r"], "status": 99}]}"#, "_rules_[0].status"),
        ("[1]", "JSON object"),
    ] {
        match TestHost::plugin("mock")?.config(config) {
            Ok(_) => return Err(fail(format!("{config} was accepted"))),
            Err(err) => {
                assert!(matches!(err, Error::ConfigRejected { .. }), "{config}: {err}");
                assert!(err.to_string().contains(field), "{config}: {err}");
            }
        }
    }
    Ok(())
}

#[test]
fn rules_select_the_config_by_route_and_domain() -> Result<(), Error> {
    let config = r#"{"mockEnable": false, "_rules_": [
        {"_match_route_": ["mock-answer"], "mockEnable": true, "body": "by route"},
        {"_match_domain_": ["*.example.org"], "mockEnable": true, "body": "by domain"}]}"#;
    let host = TestHost::plugin("mock")?.config(config)?;

    // Higress's property, and upstream Envoy's `xds.route_name`.
    let out = host.request().property("route_name", "mock-answer").send()?;
    assert_eq!(out.local_response().map(|r| r.body_text()).as_deref(), Some("by route"));
    let out = host.request().property("xds.route_name", "mock-answer").send()?;
    assert_eq!(out.local_response().map(|r| r.body_text()).as_deref(), Some("by route"));

    let out = host.request().authority("api.example.org:8080").send()?;
    assert_eq!(out.local_response().map(|r| r.body_text()).as_deref(), Some("by domain"));

    // No rule matches: the global config (mockEnable false) applies.
    let out = host.request().property("route_name", "other").authority("example.com").send()?;
    assert!(out.local_response().is_none());
    let hello = out.upstream_request().and_then(|u| u.header("hello"));
    assert_eq!(hello.as_deref(), Some("world"));
    Ok(())
}

#[test]
fn only_rules_leave_other_requests_untouched() -> Result<(), Error> {
    let host = TestHost::plugin("mock")?.config(r#"{"_rules_": [{"_match_route_": ["r1"], "mockEnable": true}]}"#)?;
    let out = host.request().property("route_name", "r2").send()?;
    let upstream = out.upstream_request().ok_or_else(|| fail("upstream not called".into()))?;
    assert_eq!(upstream.header("hello"), None);
    assert_eq!(host.request().property("route_name", "r1").send()?.status(), Some(200));
    Ok(())
}
