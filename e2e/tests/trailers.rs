//! Trailers on a real Envoy 1.40, on both builds (`E2E_BUILD=native` too):
//! the `sdk-features` fixture reads and edits request trailers a client
//! sends and response trailers an upstream sends (httpbin sends none, so
//! the test serves its own), over HTTP/1.1 with `enable_trailers`.
//!
//! Needs the fixture built: `cargo xtask build` (or `cargo build --release
//! --target wasm32-wasip1 -p sdk-features`).

// Test code: a failed unwrap is a failed test (clippy.toml allows these in tests only).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::{self, EnvoyConfig};
use std::path::PathBuf;
use std::time::Duration;

fn module() -> PathBuf {
    e2e::paths::fixture_module("sdk-features").unwrap_or_else(|err| panic!("{err}"))
}

/// An upstream that answers every request with a chunked body and the
/// trailer `x-upstream-trailer: from-upstream`, then closes (httpbin sends
/// no trailers). Stops with the test process.
fn trailers_upstream() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            // The request head (the tests send GETs without body).
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\
                  trailer: x-upstream-trailer\r\nconnection: close\r\n\r\n\
                  5\r\nhello\r\n0\r\nx-upstream-trailer: from-upstream\r\n\r\n",
            );
        }
    });
    port
}

/// A raw HTTP/1.1 exchange on a fresh connection, read until Envoy closes it
/// (the request says `connection: close`): head, chunked body and trailers as text.
fn raw_exchange(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Envoy with `filter`, HTTP/1.1 trailers enabled downstream and towards the
/// route `/trailers` (to [`trailers_upstream`]); every other path to httpbin.
fn gateway(filter: serde_json::Value) -> (e2e::Envoy, e2e::httpbin::Httpbin, u16) {
    let upstream = trailers_upstream();
    let httpbin = e2e::httpbin::Httpbin::start().unwrap();
    // HTTP/1.1 carries trailers only where `enable_trailers` says so.
    let yaml = envoy_config::httpbin_bootstrap("trailers").replace(
        "          stat_prefix: trailers\n",
        "          stat_prefix: trailers\n          http_protocol_options: { enable_trailers: true }\n",
    );
    let mut config = EnvoyConfig::from_yaml(&yaml, &e2e::paths::dist_dir()).unwrap();
    config.add_route(envoy_config::route("trailers", "/trailers", "trailers")).unwrap();
    let mut cluster = envoy_config::cluster("trailers", "127.0.0.1", upstream);
    cluster["typed_extension_protocol_options"] = serde_json::json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": true}},
        }
    });
    config.add_cluster(cluster);
    config.add_plugin(filter).unwrap();
    let envoy = e2e::Envoy::start(&config, &e2e::Upstreams::httpbin(httpbin.port())).unwrap();
    let port = envoy.listener_port("listener_0").unwrap();
    (envoy, httpbin, port)
}

/// A chunked POST of `hello` (two chunks) ending with the trailer `x-client-trailer`.
const POST_WITH_TRAILERS: &str =
    "POST /anything HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
    3\r\nhel\r\n2\r\nlo\r\n0\r\nx-client-trailer: from-client\r\n\r\n";

#[test]
fn trailers_are_read_and_edited_in_their_hooks() {
    let (_envoy, _httpbin, port) = gateway(envoy_config::wasm_filter("sdk-features", &module(), "{}"));

    // Request trailers: read (and one added) in the request trailers hook.
    let answer = raw_exchange(port, POST_WITH_TRAILERS);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let reported = answer.lines().find_map(|l| l.strip_prefix("x-request-trailers: ")).unwrap_or_default();
    assert_eq!(reported, "x-client-trailer=from-client,x-plugin-request-trailer=added", "{answer}");

    // Response trailers: the upstream's read, one added; the client gets both.
    let answer = raw_exchange(port, "GET /trailers HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nhello\r\n"), "{answer}");
    assert!(answer.contains("x-upstream-trailer: from-upstream\r\n"), "{answer}");
    assert!(answer.contains("x-plugin-trailer: saw x-upstream-trailer=from-upstream\r\n"), "{answer}");
}

#[test]
fn a_buffered_body_followed_by_trailers_reaches_its_hook_whole() {
    // The `probe` fixture with `BodyMode::Buffered`: Envoy's last body chunk
    // before trailers does not end the stream, so the SDK runs the body hook
    // from the trailers callback, with the whole body.
    let probe = e2e::paths::fixture_module("probe").unwrap_or_else(|err| panic!("{err}"));
    let config = r#"{"bodyMode": "buffered", "requestBody": {"appendBody": "+tail"}}"#;
    let (_envoy, _httpbin, port) = gateway(envoy_config::wasm_filter("probe", &probe, config));
    let answer = raw_exchange(port, POST_WITH_TRAILERS);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""data": "hello+tail""#), "{answer}");
}
