//! The host against the workspace's plugins (`dist/*.wasm`, built by
//! `cargo xtask build`): real HTTP forwarding, and the cost of a request.

use gateway_testhost::{Error, HttpUpstream, Reply, TestHost};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn module(name: &str) -> String {
    format!("{}/../../dist/{name}.wasm", env!("CARGO_MANIFEST_DIR"))
}

/// A one-shot HTTP/1.1 server: answers each connection with `x-token: served`
/// after `delay`, and returns the request lines it saw.
fn serve(count: usize, delay: Duration) -> Result<(String, std::thread::JoinHandle<Vec<String>>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Setup(e.to_string()))?;
    let address = listener.local_addr().map_err(|e| Error::Setup(e.to_string()))?.to_string();
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(count).flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                seen.push(line.trim_end().to_string());
                line.clear();
            }
            std::thread::sleep(delay);
            let mut writer = &stream;
            let _ = writer
                .write_all(b"HTTP/1.1 200 OK\r\nx-token: served\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
        seen
    });
    Ok((address, handle))
}

const HTTP_CALL_CONFIG: &str = r#"{"tokenHeader": "x-token", "requestPath": "/token", "serviceName": "token.dns", "servicePort": 80, "timeout": 300}"#;

#[test]
fn http_calls_can_go_to_a_real_server() -> Result<(), Error> {
    let (address, server) = serve(1, Duration::ZERO)?;
    let host = TestHost::load(module("http-call"))?
        .http_upstream("outbound|80||token.dns", HttpUpstream::forward(address))
        .config(HTTP_CALL_CONFIG)?;
    let out = host.request().send()?;
    assert_eq!(out.upstream_request().and_then(|u| u.header("x-token")).as_deref(), Some("served"));
    let seen = server.join().map_err(|_| Error::Setup("server thread failed".into()))?;
    assert_eq!(seen.first().map(String::as_str), Some("GET /token HTTP/1.1"));
    assert!(seen.iter().any(|l| l == "host: token.dns"), "{seen:?}");
    Ok(())
}

#[test]
fn a_slow_real_server_times_out_like_envoy() -> Result<(), Error> {
    let (address, _server) = serve(1, Duration::from_millis(600))?;
    let host = TestHost::load(module("http-call"))?
        .http_upstream("outbound|80||token.dns", HttpUpstream::forward(address))
        .config(HTTP_CALL_CONFIG)?;
    let out = host.request().send()?;
    assert_eq!(out.local_response().map(|r| r.status), Some(500));
    assert!(out.logged_anywhere("status: 504"), "{:?}", out.logs());
    Ok(())
}

#[test]
fn an_unreachable_real_server_gets_envoys_503() -> Result<(), Error> {
    let port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| Error::Setup(e.to_string()))?;
    let host = TestHost::load(module("http-call"))?
        .http_upstream("outbound|80||token.dns", HttpUpstream::forward(port.to_string()))
        .config(HTTP_CALL_CONFIG)?;
    let out = host.request().send()?;
    assert!(out.logged_anywhere("status: 503"), "{:?}", out.logs());
    Ok(())
}

#[test]
fn the_upstream_can_answer_with_a_closure_and_chunks() -> Result<(), Error> {
    let host = TestHost::load(module("mock"))?.config("{}")?;
    let out = host
        .request()
        .method("POST")
        .chunk("a")
        .chunk("b")
        .upstream_with(|req| Reply::new(200).chunk(req.body.clone()).chunk("!"))
        .send()?;
    assert_eq!(out.response().map(|r| r.body_text()).as_deref(), Some("ab!"));
    Ok(())
}

#[test]
fn upstream_envoy_loads_modules_without_redis_imports() -> Result<(), Error> {
    for name in ["hello-world", "mock", "http-call"] {
        TestHost::load(module(name))?.envoy().config("{}").map(|_| ()).or_else(|err| match err {
            // http-call refuses `{}`, which shows it loaded and ran.
            Error::ConfigRejected { .. } => Ok(()),
            other => Err(other),
        })?;
    }
    Ok(())
}

/// How long a full request (all phases, mock adding a header, upstream
/// answering with a body) takes on the test host. Printed with
/// `cargo test -p gateway-testhost --test plugins -- --nocapture`.
#[test]
fn time_per_request() -> Result<(), Error> {
    let started = Instant::now();
    let host = TestHost::load(module("mock"))?.config("{}")?;
    let load = started.elapsed();
    let runs = 2000u32;
    let started = Instant::now();
    for _ in 0..runs {
        let out = host.request().path("/get").body("ping").upstream(Reply::new(200).body("pong")).send()?;
        assert_eq!(out.status(), Some(200));
    }
    let per_request = started.elapsed() / runs;
    let local = TestHost::load(module("mock"))?.config(r#"{"mockEnable": true}"#)?;
    let started = Instant::now();
    for _ in 0..runs {
        local.request().send()?;
    }
    let per_local = started.elapsed() / runs;
    println!(
        "test host ({} build): load+configure mock {load:?}; full request through mock {per_request:?}; \
         mock's local answer {per_local:?}",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    // Generous bound: even an unoptimized build stays well under this.
    assert!(per_request < Duration::from_millis(20), "{per_request:?}");
    Ok(())
}
