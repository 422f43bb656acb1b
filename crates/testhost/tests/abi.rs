//! The host against hand-written modules: Envoy's rules for actions,
//! header maps, time, traps and misuse.

mod common;

use common::actions_module;
use gateway_testhost::{Error, Event, LogLevel, Phase, TestHost};
use std::time::{Duration, UNIX_EPOCH};

fn host() -> Result<TestHost, Error> {
    TestHost::from_bytes(&actions_module())?.config("{}")
}

fn info_lines(out: &gateway_testhost::Exchange) -> Vec<String> {
    out.logs().iter().filter(|l| l.level == LogLevel::Info).map(|l| l.message.clone()).collect()
}

#[test]
fn a_plain_request_reaches_the_upstream_and_request_headers_are_gone_in_the_response_phase() -> Result<(), Error> {
    let out = host()?.request().header("x-do", "a").send()?;
    assert_eq!(out.upstream_request().and_then(|u| u.header("x-added")).as_deref(), Some("1"));
    assert_eq!(out.status(), Some(200));
    // Reading a request header in the response phase: BadArgument (2), as on Envoy.
    assert_eq!(info_lines(&out), ["2"]);
    Ok(())
}

#[test]
fn header_maps_use_the_abi_wire_format() -> Result<(), Error> {
    let out = host()?.request().path("/p").authority("h").header("x-do", "h").send()?;
    let mut expected = Vec::new();
    let pairs = [(":authority", "h"), (":path", "/p"), (":method", "GET"), (":scheme", "http"), ("x-do", "h")];
    expected.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        expected.extend_from_slice(&(k.len() as u32).to_le_bytes());
        expected.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        expected.extend_from_slice(k.as_bytes());
        expected.push(0);
        expected.extend_from_slice(v.as_bytes());
        expected.push(0);
    }
    let logged = out.logs().first().map(|l| l.message.clone()).unwrap_or_default();
    assert_eq!(logged.as_bytes(), expected.as_slice());
    Ok(())
}

#[test]
fn a_local_response_is_deferred_and_passes_through_the_response_callbacks() -> Result<(), Error> {
    let out = host()?.request().header("x-do", "l").send()?;
    let answer = out.local_response().ok_or_else(|| Error::Setup(format!("{out:?}")))?;
    assert_eq!((answer.status, answer.body_text()), (403, "denied".to_string()));
    let names: Vec<String> = answer.headers.pairs().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, [":status", "content-length", "content-type"]);
    assert!(out.upstream_request().is_none());
    // The callback returned Continue, but after a local response Envoy stops iteration.
    assert_eq!(out.pauses(), [Phase::RequestHeaders]);
    assert!(out.events().contains(&Event::LocalResponse { status: 403 }));
    Ok(())
}

#[test]
fn resuming_a_stream_that_is_not_paused_is_misuse() -> Result<(), Error> {
    match host()?.request().header("x-do", "c").send() {
        Err(Error::Misuse { message, .. }) => assert!(message.contains("not paused"), "{message}"),
        other => return Err(Error::Setup(format!("expected misuse, got {other:?}"))),
    }
    Ok(())
}

#[test]
fn resuming_in_the_callback_that_pauses_is_misuse() -> Result<(), Error> {
    match host()?.request().header("x-do", "p").send() {
        Err(Error::Misuse { message, .. }) => assert!(message.contains("during the callback"), "{message}"),
        other => return Err(Error::Setup(format!("expected misuse, got {other:?}"))),
    }
    Ok(())
}

#[test]
fn resuming_after_a_local_response_is_misuse() -> Result<(), Error> {
    match host()?.request().header("x-do", "L").send() {
        Err(Error::Misuse { message, .. }) => assert!(message.contains("local response"), "{message}"),
        other => return Err(Error::Setup(format!("expected misuse, got {other:?}"))),
    }
    Ok(())
}

#[test]
fn a_trap_carries_the_plugins_message_and_fails_the_vm() -> Result<(), Error> {
    let host = host()?;
    match host.request().header("x-do", "t").send() {
        Err(err @ Error::Trap { .. }) => {
            let text = err.to_string();
            assert!(text.contains("about to trap"), "{text}");
            assert!(text.contains("to stderr"), "{text}");
            assert!(text.contains("proxy_on_request_headers"), "{text}");
        }
        other => return Err(Error::Setup(format!("expected a trap, got {other:?}"))),
    }
    assert!(matches!(host.request().send(), Err(Error::VmFailed(_))));
    Ok(())
}

#[test]
fn header_stop_iteration_becomes_stop_all_unless_allowed() -> Result<(), Error> {
    // Default: 1 becomes StopAllIterationAndWatermark; nothing resumes it.
    let out = host()?.request().header("x-do", "b").body("payload").send()?;
    assert!(out.stalled());
    assert!(out.events().contains(&Event::Paused { phase: Phase::RequestHeaders, status: 4 }));
    assert!(out.upstream_request().is_none());
    assert!(info_lines(&out).is_empty(), "the body callback must not run: {:?}", out.logs());

    // allow_on_headers_stop_iteration: the body still comes, and its Continue sends both on.
    let host = TestHost::from_bytes(&actions_module())?.allow_on_headers_stop_iteration(true).config("{}")?;
    let out = host.request().header("x-do", "b").chunk("pay").chunk("load").send()?;
    assert!(out.events().contains(&Event::Paused { phase: Phase::RequestHeaders, status: 1 }));
    assert_eq!(out.upstream_request().map(|u| u.body_text()).as_deref(), Some("payload"));
    assert_eq!(info_lines(&out).first().map(String::as_str), Some("pay"));
    Ok(())
}

#[test]
fn buffered_body_is_seen_whole_at_the_end() -> Result<(), Error> {
    let out = host()?.request().header("x-do", "B").chunk("a").chunk("b").chunk("c").send()?;
    assert_eq!(info_lines(&out).first().map(String::as_str), Some("abc"));
    assert_eq!(out.upstream_request().map(|u| u.body_text()).as_deref(), Some("abc"));
    Ok(())
}

#[test]
fn a_paused_request_with_nothing_pending_stalls() -> Result<(), Error> {
    let host = host()?;
    let out = host.request().header("x-do", "s").send()?;
    assert!(out.stalled());
    assert!(out.response().is_none() && out.upstream_request().is_none());
    // The host is still usable afterwards.
    assert_eq!(host.request().send()?.status(), Some(200));
    Ok(())
}

#[test]
fn ticks_run_on_the_virtual_clock_and_can_resume_a_request() -> Result<(), Error> {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let host = TestHost::from_bytes(&actions_module())?.start_time(start).config("{}")?;
    let out = host.request().header("x-do", "k").send()?;
    assert!(out.events().contains(&Event::Tick));
    assert_eq!(out.status(), Some(200));
    assert_eq!(host.now(), start + Duration::from_secs(1));
    // The test drives further ticks.
    host.advance(Duration::from_millis(2500))?;
    assert_eq!(host.events().iter().filter(|e| **e == Event::Tick).count(), 2);
    host.tick()?;
    assert_eq!(host.now(), start + Duration::from_secs(4));
    Ok(())
}

#[test]
fn the_clock_is_controlled_by_the_test() -> Result<(), Error> {
    let start = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    let host = TestHost::from_bytes(&actions_module())?.start_time(start).config("{}")?;
    host.advance(Duration::from_millis(1500))?;
    let out = host.request().header("x-do", "r").send()?;
    let raw = out.upstream_request().and_then(|u| u.headers.get_bytes("x-now").map(<[u8]>::to_vec)).unwrap_or_default();
    let nanos = u64::from_le_bytes(raw.try_into().unwrap_or([0; 8]));
    assert_eq!(nanos, 1_234_567_891_500_000_000);
    Ok(())
}

#[test]
fn log_level_reaches_the_plugin_both_ways() -> Result<(), Error> {
    let host = TestHost::from_bytes(&actions_module())?.log_level(LogLevel::Warn).config("{}")?;
    host.set_log_level(LogLevel::Info);
    let out = host.request().header("x-do", "g").send()?;
    let lines = info_lines(&out);
    assert_eq!(lines.first().map(|l| l.as_bytes().to_vec()), Some(2u32.to_le_bytes().to_vec()));
    assert_eq!(lines.get(1).map(String::as_str), Some("2"));
    // Below the host's level, lines are dropped.
    host.set_log_level(LogLevel::Error);
    assert!(host.request().header("x-do", "g").send()?.logs().is_empty());
    Ok(())
}

#[test]
fn the_envoy_flavour_has_no_get_log_level() -> Result<(), Error> {
    let host = TestHost::from_bytes(&actions_module())?.envoy().config("{}")?;
    let out = host.request().header("x-do", "g").send()?;
    // NotFound: nothing is written back (the module logs what its out-pointers
    // still hold: the `x-do` value), while proxy_get_log_level still works.
    assert_eq!(info_lines(&out), ["g", "2", "2"]);
    Ok(())
}

#[test]
fn effective_context_must_exist_and_properties_are_per_request() -> Result<(), Error> {
    let host = host()?.property("route_name", "global-route");
    let out = host.request().header("x-do", "e").send()?;
    assert_eq!(info_lines(&out), ["2", "2"]);
    let out = host.request().header("x-do", "q").send()?;
    assert_eq!(info_lines(&out).first().map(String::as_str), Some("global-route"));
    let out = host.request().header("x-do", "q").property("route_name", "r1").send()?;
    assert_eq!(info_lines(&out).first().map(String::as_str), Some("r1"));
    Ok(())
}

#[test]
fn a_missing_module_is_a_clear_error() {
    match TestHost::load("/nonexistent/dist/nothing.wasm") {
        Err(err @ Error::Load { .. }) => assert!(err.to_string().contains("cargo xtask build"), "{err}"),
        Err(other) => unreachable_error(&other),
        Ok(_) => unreachable_error(&Error::Setup("loaded".into())),
    }
}

fn unreachable_error(err: &Error) {
    assert!(matches!(err, Error::Load { .. }), "{err}");
}

#[test]
fn a_module_without_an_abi_marker_is_refused() -> Result<(), Error> {
    let bytes = common::module("").into_iter().collect::<Vec<u8>>();
    // The common module has the marker; a bare module does not.
    let bare = wat_module("(module (memory (export \"memory\") 1))");
    assert!(matches!(TestHost::from_bytes(&bare)?.config("{}"), Err(Error::Link(_))));
    assert!(TestHost::from_bytes(&bytes).is_ok());
    Ok(())
}

fn wat_module(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_default()
}
