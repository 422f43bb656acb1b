//! The WASI calls Go 1.24's runtime makes (`GOOS=wasip1`), answered as
//! Envoy's proxy-wasm-cpp-host answers them, from a hand-written module: its
//! `proxy_on_configure` makes each call and refuses the configuration,
//! naming the call, when an answer differs from Envoy's.

use gateway_testhost::{Error, TestHost};
use std::time::{Duration, SystemTime};

/// `proxy_on_configure` checks every answer (logging the name of a wrong
/// one at error), then sleeps 5 s (relative) and until 2 s later (absolute)
/// with `poll_oneoff` clock subscriptions, as Go's scheduler does.
const MODULE: &str = r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get" (func $clock_res (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $set_flags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 8192))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  ;; Logs the name at (ptr, len) and refuses when `ok` is 0.
  (func $check (param $ok i32) (param $ptr i32) (param $len i32) (result i32)
    (if (i32.eqz (local.get $ok))
      (then (drop (call $log (i32.const 4) (local.get $ptr) (local.get $len)))))
    (local.get $ok))
  ;; Sleeps `ns` on `clock` with `flags` (1: absolute) through one subscription at 512.
  (func $sleep (param $clock i32) (param $ns i64) (param $flags i32) (result i32)
    (i64.store (i32.const 512) (i64.const 7))
    (i32.store8 (i32.const 520) (i32.const 0))
    (i32.store (i32.const 528) (local.get $clock))
    (i64.store (i32.const 536) (local.get $ns))
    (i64.store (i32.const 544) (i64.const 0))
    (i32.store16 (i32.const 552) (local.get $flags))
    (i32.store (i32.const 600) (i32.const 99))
    (call $poll (i32.const 512) (i32.const 640) (i32.const 1) (i32.const 600)))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (local $ok i32)
    (local.set $ok (i32.const 1))
    ;; Monotonic and realtime read the virtual clock, which proxy_get_current_time_nanoseconds reads.
    (drop (call $now (i32.const 0)))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (call $clock (i32.const 1) (i64.const 1) (i32.const 8))) (i32.const 1024) (i32.const 9))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i64.eq (i64.load (i32.const 0)) (i64.load (i32.const 8))) (i32.const 1024) (i32.const 9))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (call $clock (i32.const 0) (i64.const 1) (i32.const 8))) (i32.const 1040) (i32.const 8))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eq (call $clock (i32.const 2) (i64.const 1) (i32.const 8)) (i32.const 58)) (i32.const 1056) (i32.const 7))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (call $clock_res (i32.const 1) (i32.const 16))) (i32.const 1072) (i32.const 9))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i64.eq (i64.load (i32.const 16)) (i64.const 1)) (i32.const 1072) (i32.const 9))))
    ;; No filesystem: Envoy's error codes.
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eq (call $open (i32.const 3) (i32.const 0) (i32.const 1200) (i32.const 4) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 24)) (i32.const 44)) (i32.const 1088) (i32.const 9))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eq (call $stat (i32.const 3) (i32.const 0) (i32.const 1200) (i32.const 4) (i32.const 24)) (i32.const 58)) (i32.const 1104) (i32.const 17))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eq (call $set_flags (i32.const 1) (i32.const 4)) (i32.const 52)) (i32.const 1136) (i32.const 19))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (call $yield)) (i32.const 1168) (i32.const 11))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eq (call $random (i32.const 2048) (i32.const 65537)) (i32.const 28)) (i32.const 1184) (i32.const 10))))
    ;; A 5 s sleep on the monotonic clock, then one until 2 s after that, absolute: no events either time.
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (call $sleep (i32.const 1) (i64.const 5000000000) (i32.const 0))) (i32.const 1232) (i32.const 11))))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (i32.load (i32.const 600))) (i32.const 1232) (i32.const 11))))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 32)))
    (local.set $ok (i32.and (local.get $ok) (call $check (i32.eqz (call $sleep (i32.const 1) (i64.add (i64.load (i32.const 32)) (i64.const 2000000000)) (i32.const 1))) (i32.const 1232) (i32.const 11))))
    (local.get $ok))
  (data (i32.const 1024) "monotonic")
  (data (i32.const 1040) "realtime")
  (data (i32.const 1056) "cputime")
  (data (i32.const 1072) "clock_res")
  (data (i32.const 1088) "path_open")
  (data (i32.const 1104) "path_filestat_get")
  (data (i32.const 1136) "fd_fdstat_set_flags")
  (data (i32.const 1168) "sched_yield")
  (data (i32.const 1184) "random_get")
  (data (i32.const 1200) "file")
  (data (i32.const 1232) "poll_oneoff")
)"#;

#[test]
fn go_runtime_wasi_calls_answer_as_on_envoy_and_sleeps_pass_virtual_time() -> Result<(), Error> {
    let bytes = wat::parse_str(MODULE).map_err(|err| Error::Link(err.to_string()))?;
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let host = TestHost::from_bytes(&bytes)?.start_time(start);
    let host = host.config("{}")?;
    // 5 s relative, then 2 s more as an absolute deadline.
    assert_eq!(host.now(), start + Duration::from_secs(7));
    Ok(())
}
