//! The Redis rate limiter, measured on the test host (`crates/testhost`)
//! against a real `redis-server`: upstream Envoy cannot load it (it imports
//! Higress's Redis calls), and Higress is not part of this bench.
//!
//! The test host runs `dist/redis-rate-limit.wasm` in the wasmi interpreter
//! and forwards each `proxy_redis_call` to Redis over one TCP connection, so
//! requests per second here say what the plugin costs *on the test host*,
//! not on Higress; what carries over is the number of Redis round trips per
//! request. Two phases: every request admitted (`qpm` 10^9), then every
//! request over the limit (`qpm` 1, answered 429). Each phase counts:
//!
//! * the `proxy_redis_call`s the plugin made (each is one round trip);
//! * what Redis executed, from `INFO commandstats` before and after (the
//!   commands a script runs count there too, as `incr`, `ttl`, ...).

use crate::Result;
use gateway_testhost::{RedisUpstream, Reply, TestHost};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const CLUSTER: &str = "outbound|6379||redis.dns";

/// One phase of the limiter measurement.
#[derive(Clone, Debug)]
pub struct Phase {
    pub name: &'static str,
    /// The status every request of the phase got.
    pub status: u16,
    pub requests: u64,
    pub rps: f64,
    /// `proxy_redis_call`s per request.
    pub redis_calls_per_request: f64,
    /// Commands Redis executed per request, by name (from `INFO commandstats`).
    pub commands_per_request: BTreeMap<String, f64>,
}

impl Phase {
    /// Round trips per request as Redis saw them: the commands that came
    /// over the connection, i.e. all but those a script ran.
    pub fn round_trips_per_request(&self) -> f64 {
        self.commands_per_request
            .iter()
            .filter(|(name, _)| !SCRIPT_INNER.contains(&name.as_str()))
            .map(|(_, per_request)| per_request)
            .sum()
    }
}

/// Commands the limiter's script runs inside Redis (not round trips).
const SCRIPT_INNER: &[&str] = &["incr", "ttl", "expire"];

/// Runs both phases for `seconds` each on a fresh `redis-server`.
pub fn run(module: &Path, seconds: f64) -> Result<Vec<Phase>> {
    let redis = e2e::Redis::start().map_err(|err| err.to_string())?;
    let address = format!("127.0.0.1:{}", redis.port());
    let mut phases = Vec::new();
    for (name, qpm, status) in [("admitted", 1_000_000_000u64, 200u16), ("over the limit", 1, 429)] {
        let config = format!(r#"{{"serviceName": "redis.dns", "servicePort": 6379, "qpm": {qpm}}}"#);
        let host = TestHost::load(module)
            .map_err(|err| err.to_string())?
            .redis_upstream(CLUSTER, RedisUpstream::forward(address.clone()))
            .config(&config)
            .map_err(|err| err.to_string())?;
        // Warm up (and, for qpm 1, use up the window's one request).
        for _ in 0..50 {
            host.request().path("/").upstream(Reply::new(200)).send().map_err(|err| err.to_string())?;
        }
        let before = commandstats(&address)?;
        let started = Instant::now();
        let (mut requests, mut calls) = (0u64, 0u64);
        while started.elapsed() < Duration::from_secs_f64(seconds) {
            let out = host.request().path("/").upstream(Reply::new(200)).send().map_err(|err| err.to_string())?;
            if out.status() != Some(status) {
                return Err(format!("limiter ({name}): status {:?}, expected {status}", out.status()));
            }
            requests += 1;
            calls += out.redis_calls().len() as u64;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = commandstats(&address)?;
        let commands_per_request = after
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, n)| (name.clone(), (n - before.get(name).copied().unwrap_or(0)) as f64 / requests as f64))
            .filter(|(_, per_request)| *per_request > 0.0)
            .collect();
        phases.push(Phase {
            name,
            status,
            requests,
            rps: requests as f64 / elapsed,
            redis_calls_per_request: calls as f64 / requests as f64,
            commands_per_request,
        });
    }
    Ok(phases)
}

/// `redis-server --version`'s `v=` field.
pub fn redis_version() -> String {
    let Ok(binary) = e2e::paths::redis_server() else { return "unknown".to_string() };
    let output = std::process::Command::new(binary).arg("--version").output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or("unknown").to_string()
}

/// Calls per command since Redis started: `INFO commandstats`.
fn commandstats(address: &str) -> Result<BTreeMap<String, u64>> {
    let text = info(address, "commandstats")?;
    Ok(parse_commandstats(&text))
}

fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn info(address: &str, section: &str) -> Result<String> {
    let io = |err: std::io::Error| format!("INFO {section} from Redis at {address}: {err}");
    let mut stream = TcpStream::connect(address).map_err(io)?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(io)?;
    let query = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    stream.write_all(query.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(io)?;
    let len: usize = header
        .trim()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("INFO {section}: unexpected answer {header:?}"))?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(io)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines() {
        let text =
            "# Commandstats\r\ncmdstat_eval:calls=10,usec=80,usec_per_call=8.00,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_config|resetstat:calls=1,usec=39,usec_per_call=39.00\r\n";
        let stats = parse_commandstats(text);
        assert_eq!(stats.get("eval"), Some(&10));
        assert_eq!(stats.get("config|resetstat"), Some(&1));
        let phase = Phase {
            name: "x",
            status: 200,
            requests: 1,
            rps: 1.0,
            redis_calls_per_request: 1.0,
            commands_per_request: [("eval".to_string(), 1.0), ("incr".to_string(), 1.0), ("ttl".to_string(), 1.0)]
                .into_iter()
                .collect(),
        };
        assert_eq!(phase.round_trips_per_request(), 1.0);
    }
}
