//! hello-world on the test host (`gateway-testhost`): no gateway needed.
//! Builds the module from the current source first (`TestHost::plugin`).

use gateway_testhost::{Error, TestHost};

#[test]
fn answers_hello_world_without_calling_the_upstream() -> Result<(), Error> {
    let host = TestHost::plugin("hello-world")?.config("{}")?;
    for path in ["/", "/anything?x=1"] {
        let out = host.request().method("POST").path(path).body("ignored").send()?;
        let answer = out.local_response().ok_or_else(|| Error::Setup(format!("no local response: {out:?}")))?;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body_text(), "hello world");
        assert_eq!(answer.header("content-type").as_deref(), Some("text/plain"));
        assert!(out.upstream_request().is_none(), "the upstream must not be called");
    }
    Ok(())
}

#[test]
fn an_empty_configuration_is_accepted() -> Result<(), Error> {
    let host = TestHost::plugin("hello-world")?.config("")?;
    assert_eq!(host.request().send()?.status(), Some(200));
    Ok(())
}

#[test]
fn unknown_keys_are_refused() -> Result<(), Error> {
    let err = match TestHost::plugin("hello-world")?.config(r#"{"greeting": "hi"}"#) {
        Err(err) => err,
        Ok(_) => return Err(Error::Setup("a config with an unknown key was accepted".into())),
    };
    assert!(matches!(err, Error::ConfigRejected { .. }), "{err}");
    assert!(err.to_string().contains("greeting"), "{err}");
    Ok(())
}
