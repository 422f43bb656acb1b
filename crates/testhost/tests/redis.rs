//! Higress's Redis calls, proven with a hand-written module: scripted
//! answers, and a real `redis-server` (AUTH with user and password, SELECT).

mod common;

use common::redis_module;
use gateway_testhost::{Error, LogLevel, RedisReply, RedisUpstream, TestHost};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "outbound|6379||redis.dns";
const GET_K: &str = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";

fn redis_host(upstream: &str, user: &str, pass: &str, redis: RedisUpstream) -> Result<TestHost, Error> {
    TestHost::from_bytes(&redis_module())?
        .property("redis_upstream", upstream)
        .property("redis_user", user)
        .property("redis_pass", pass)
        .redis_upstream(CLUSTER, redis)
        .config("{}")
}

fn lines(logs: &[gateway_testhost::LogLine]) -> Vec<String> {
    logs.iter().filter(|l| l.level == LogLevel::Info).map(|l| l.message.clone()).collect()
}

fn full_upstream(db: u32) -> String {
    let db = if db == 0 { String::new() } else { format!("db={db}&") };
    format!("{CLUSTER}?{db}buffer_flush_timeout=3&max_buffer_size_before_flush=1024")
}

#[test]
fn scripted_answers_reach_the_module_through_buffer_9() -> Result<(), Error> {
    let host = redis_host(
        &full_upstream(0),
        "",
        "",
        RedisUpstream::respond(|call| match (call.command().as_str(), call.arg(1).as_deref()) {
            ("GET", Some("k")) => RedisReply::bulk("v1"),
            _ => RedisReply::error("ERR unexpected"),
        }),
    )?;
    assert_eq!(lines(&host.logs()), ["0"], "init status");
    let out = host.request().property("redis_query", GET_K).send()?;
    // call status, answer status, answer bytes
    assert_eq!(lines(out.logs()), ["0", "0", "$2\r\nv1\r\n"]);
    assert_eq!(out.status(), Some(200), "the module resumed the request");
    let [call] = out.redis_calls() else { return Err(Error::Setup("one call expected".into())) };
    assert_eq!((call.cluster.as_str(), call.query.as_slice()), (CLUSTER, GET_K.as_bytes()));
    assert_eq!(call.callout_id, 7);
    Ok(())
}

#[test]
fn the_upstream_string_is_validated() -> Result<(), Error> {
    for upstream in [
        "outbound|6379||redis.dns?db=x",
        "outbound|6379||redis.dns?db=1&db=2",
        "outbound|6379||redis.dns?password=1",
        "?db=1",
        "outbound|6379||other.dns",
    ] {
        let host = redis_host(upstream, "", "", RedisUpstream::respond(|_| RedisReply::simple("OK")))?;
        assert_eq!(lines(&host.logs()), ["2"], "{upstream}: init must be BadArgument");
        // A command without a successful init is refused too; the request goes on.
        let out = host.request().property("redis_query", GET_K).send()?;
        assert_eq!(lines(out.logs()), ["2"]);
        assert!(out.upstream_request().is_some());
        assert!(!out.notes().is_empty());
    }
    // Every accepted form.
    for upstream in [full_upstream(0), full_upstream(3), CLUSTER.to_string()] {
        let host = redis_host(&upstream, "", "", RedisUpstream::respond(|_| RedisReply::simple("OK")))?;
        assert_eq!(lines(&host.logs()), ["0"], "{upstream}");
    }
    Ok(())
}

#[test]
fn a_query_must_be_one_resp_array_of_bulk_strings() -> Result<(), Error> {
    let host = redis_host(&full_upstream(0), "", "", RedisUpstream::respond(|_| RedisReply::simple("OK")))?;
    for query in ["GET k\r\n", "*1\r\n:1\r\n", "*1\r\n$3\r\nGET\r\n*1\r\n$3\r\nGET\r\n", "*2\r\n$3\r\nGET\r\n"] {
        let out = host.request().property("redis_query", query).send()?;
        assert_eq!(lines(out.logs()), ["2"], "{query:?}");
    }
    Ok(())
}

#[test]
fn timeouts_and_failures_give_a_non_zero_status() -> Result<(), Error> {
    for (reply, waited_ms) in [
        (RedisReply::no_answer(), 500),
        (RedisReply::bulk("late").delay_ms(900), 500),
        (RedisReply::failure(), 0),
        (RedisReply::failure().delay_ms(20), 20),
    ] {
        let host = redis_host(&full_upstream(0), "", "", RedisUpstream::respond(move |_| reply.clone()))?;
        let before = host.now();
        let out = host.request().property("redis_query", GET_K).send()?;
        assert_eq!(lines(out.logs()), ["0", "1", ""]);
        assert_eq!(out.status(), Some(200));
        let waited = host.now().duration_since(before).map(|d| d.as_millis()).unwrap_or(0);
        assert_eq!(waited, waited_ms);
    }
    Ok(())
}

#[test]
fn upstream_envoy_refuses_a_module_importing_redis_calls() -> Result<(), Error> {
    match TestHost::from_bytes(&redis_module())?.envoy().config("{}") {
        Err(Error::Link(why)) => {
            assert_eq!(why, "Failed to load Wasm module due to a missing import: env.proxy_redis_init");
            Ok(())
        }
        other => Err(Error::Setup(format!("expected a link error, got {:?}", other.map(|_| ())))),
    }
}

/// A `redis-server` on a free local port, with a password for the default
/// user and an ACL user `alice`; killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl RedisServer {
    fn start() -> Result<RedisServer, Error> {
        let setup = |why: String| Error::Setup(why);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| setup(format!("no free port: {e}")))?;
        let dir = std::env::temp_dir().join(format!("testhost-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| setup(e.to_string()))?;
        let config = format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n\
             user default on >defaultpass ~* &* +@all\nuser alice on >alicepw ~* &* +@all\n",
            dir.display()
        );
        let config_path = dir.join("redis.conf");
        std::fs::write(&config_path, config).map_err(|e| setup(e.to_string()))?;
        let child = Command::new("redis-server")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| setup(format!("cannot start redis-server (install it: `cargo xtask setup`): {e}")))?;
        let server = RedisServer { child, port, _dir: TempDir(dir) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(setup("redis-server did not start".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends raw RESP commands on a fresh connection; returns all replies.
    fn raw(&self, commands: &str, replies: usize) -> Result<String, Error> {
        let io = |e: std::io::Error| Error::Setup(e.to_string());
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(io)?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
        stream.write_all(commands.as_bytes()).map_err(io)?;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.iter().filter(|b| **b == b'\n').count() < replies {
            let n = stream.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_redis_server_with_user_password_and_database() -> Result<(), Error> {
    let server = RedisServer::start()?;
    let seeded = server.raw(
        "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$7\r\nalicepw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\nfrom-db2\r\n",
        3,
    )?;
    assert_eq!(seeded, "+OK\r\n+OK\r\n+OK\r\n");

    // user + password, database 2: the host sends AUTH alice alicepw and SELECT 2 first.
    let host = redis_host(&full_upstream(2), "alice", "alicepw", RedisUpstream::forward(server.address()))?;
    let out = host.request().property("redis_query", GET_K).send()?;
    assert_eq!(lines(out.logs()), ["0", "0", "$8\r\nfrom-db2\r\n"], "notes: {:?}", out.notes());
    // The connection is kept: a second command on it.
    let set = "*3\r\n$3\r\nSET\r\n$1\r\nn\r\n$1\r\n5\r\n";
    let out = host.request().property("redis_query", set).send()?;
    assert_eq!(lines(out.logs()), ["0", "0", "+OK\r\n"]);
    let check = server.raw(
        "*2\r\n$4\r\nAUTH\r\n$11\r\ndefaultpass\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*2\r\n$3\r\nGET\r\n$1\r\nn\r\n",
        4,
    )?;
    assert!(check.ends_with("$1\r\n5\r\n"), "{check:?}");

    // Password only (the default user), database 0.
    let host = redis_host(&full_upstream(0), "", "defaultpass", RedisUpstream::forward(server.address()))?;
    let out = host.request().property("redis_query", GET_K).send()?;
    assert_eq!(lines(out.logs()), ["0", "0", "$-1\r\n"], "k lives in db 2 only");

    // A wrong password: AUTH is refused, the command gets Redis's NOAUTH error.
    let host = redis_host(&full_upstream(0), "", "wrong", RedisUpstream::forward(server.address()))?;
    let out = host.request().property("redis_query", GET_K).send()?;
    let got = lines(out.logs());
    assert_eq!(got.get(..2), Some(&["0".to_string(), "0".to_string()][..]));
    assert!(got.get(2).is_some_and(|l| l.starts_with("-NOAUTH")), "{got:?}");
    assert!(out.notes().iter().any(|n| n.contains("AUTH refused")), "{:?}", out.notes());
    Ok(())
}

#[test]
fn a_dead_server_gives_a_non_zero_status() -> Result<(), Error> {
    let server = RedisServer::start()?;
    let address = server.address();
    let host = redis_host(&full_upstream(0), "", "defaultpass", RedisUpstream::forward(address))?;
    assert_eq!(lines(host.request().property("redis_query", GET_K).send()?.logs()), ["0", "0", "$-1\r\n"]);
    drop(server); // the server goes away: the kept connection breaks
    let out = host.request().property("redis_query", GET_K).send()?;
    assert_eq!(lines(out.logs()), ["0", "1", ""], "notes: {:?}", out.notes());
    // Reconnecting fails too.
    let out = host.request().property("redis_query", GET_K).send()?;
    assert_eq!(lines(out.logs()), ["0", "1", ""]);
    assert!(out.notes().iter().any(|n| n.contains("cannot connect")), "{:?}", out.notes());
    Ok(())
}
