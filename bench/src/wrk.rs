//! The load generator: Debian's `wrk`, pinned to its own CPU.
//!
//! `taskset -c <cpu> wrk -t1 -c<connections> -d<seconds>s --latency <url>`:
//! one thread (one core), keep-alive connections, and the latency
//! percentiles of `--latency` (wrk's HdrHistogram, corrected for
//! coordinated omission).

use crate::Result;
use std::process::Command;

/// What one wrk run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// Requests per second (wrk's `Requests/sec`).
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Requests completed.
    pub requests: u64,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
}

/// Runs wrk against `url` and parses what it prints.
pub fn run(cpu: Option<usize>, url: &str, connections: u32, seconds: u32) -> Result<Load> {
    let args = args(url, connections, seconds);
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    let output = command.args(&args).output().map_err(|err| {
        format!("cannot run wrk ({err}): install it (`apt-get install wrk`, or `cargo xtask setup` as root)")
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("wrk {} failed ({}): {stdout}{stderr}", args.join(" "), output.status));
    }
    parse(&stdout).map_err(|err| format!("{err} in wrk's output:\n{stdout}"))
}

/// wrk's arguments after the program name (for the report, too).
pub fn args(url: &str, connections: u32, seconds: u32) -> Vec<String> {
    vec!["-t1".into(), format!("-c{connections}"), format!("-d{seconds}s"), "--latency".into(), url.to_string()]
}

/// Parses wrk 4's report.
pub fn parse(output: &str) -> Result<Load> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut requests = None;
    let mut errors = 0u64;
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rps = value.trim().parse::<f64>().ok();
        } else if let Some(value) = line.strip_prefix("50%") {
            p50 = duration_us(value.trim());
        } else if let Some(value) = line.strip_prefix("99%") {
            p99 = duration_us(value.trim());
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += count.trim().parse::<u64>().unwrap_or(1);
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            errors +=
                counts.split(',').filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
        }
    }
    match (rps, p50, p99, requests) {
        (Some(rps), Some(p50_us), Some(p99_us), Some(requests)) => Ok(Load { rps, p50_us, p99_us, requests, errors }),
        _ => Err("no Requests/sec, 50%/99% latency or request count".to_string()),
    }
}

/// `452.00us`, `1.64ms`, `2.10s`, `1.00m` to microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 3s test @ http://127.0.0.1:19000/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.89ms    2.42ms  18.46ms   85.12%
    Req/Sec    14.95k     2.81k   21.30k    76.67%
  Latency Distribution
     50%  452.00us
     75%    2.80ms
     90%    5.05ms
     99%   11.03ms
  44838 requests in 3.02s, 5.47MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  14869.55
Transfer/sec:      1.82MB
";

    #[test]
    fn parses_wrk_4() {
        let load = parse(OUTPUT).unwrap();
        assert_eq!(load, Load { rps: 14869.55, p50_us: 452.0, p99_us: 11030.0, requests: 44838, errors: 8 });
    }

    #[test]
    fn units() {
        assert_eq!(duration_us("1.50s"), Some(1.5e6));
        assert_eq!(duration_us("2m"), Some(120e6));
        assert_eq!(duration_us("12"), None);
        assert!(parse("nothing").is_err());
    }
}
