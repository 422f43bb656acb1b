//! Hand-written modules (WAT) that call host functions directly, so the
//! host is tested without any SDK in between.

#![allow(dead_code)]

/// The parts every test module shares: imports, a bump allocator, the ABI
/// marker and no-op life-cycle exports. `body` adds the module's own code.
pub fn module(body: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $get_log_level (param i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {extra_imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 32768))
  (global $ctx (mut i32) (i32.const 0))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32))
  ;; log(level, ptr, len)
  (func $log (param $level i32) (param $ptr i32) (param $len i32)
    (drop (call $proxy_log (local.get $level) (local.get $ptr) (local.get $len))))
  ;; Logs at info the buffer the host just returned through (16, 20).
  (func $log_returned
    (call $log (i32.const 2) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
  ;; Logs a one-digit number at info.
  (func $log_digit (param $v i32)
    (i32.store8 (i32.const 100) (i32.add (i32.const 48) (local.get $v)))
    (call $log (i32.const 2) (i32.const 100) (i32.const 1)))
  ;; Reads a property named at (ptr, len) into (16, 20); returns the status.
  (func $property (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 0))
    (call $get_property (local.get $ptr) (local.get $len) (i32.const 16) (i32.const 20)))
  (data (i32.const 1024) "x-do")
  (data (i32.const 1040) "denied")
  (data (i32.const 1056) "about to trap")
  (data (i32.const 1072) "get_log_level")
  (data (i32.const 1088) "route_name")
  (data (i32.const 1104) "redis_user")
  (data (i32.const 1120) "redis_pass")
  (data (i32.const 1136) "redis_query")
  (data (i32.const 1152) "redis_upstream")
  (data (i32.const 1168) "to stderr\n")
  {body}
)"#,
        extra_imports = if body.contains("$redis_") {
            r#"(import "env" "proxy_redis_init" (func $redis_init (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_redis_call" (func $redis_call (param i32 i32 i32 i32 i32) (result i32)))"#
        } else {
            ""
        },
    );
    match wat::parse_str(&text) {
        Ok(bytes) => bytes,
        Err(err) => panic_free_abort(&format!("bad WAT: {err}")),
    }
}

fn panic_free_abort(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(101)
}

/// A module whose request-headers callback does what the request header
/// `x-do` says (its first letter):
///
/// * `c`: `continue_stream(request)`, then return Continue (not paused: misuse)
/// * `p`: `continue_stream(request)`, then return 1 (resume in the pausing callback: misuse)
/// * `l`: `send_local_response(403, "denied")`, return Continue
/// * `L`: `send_local_response(403)`, then `continue_stream(request)` (misuse)
/// * `t`: log at critical, write to stderr, then trap
/// * `s`: return 1 and never resume (stall)
/// * `k`: set a 1 s tick period, return 1; a tick resumes the request if it still exists
/// * `h`: log the raw `proxy_get_header_map_pairs(request headers)` buffer
/// * `b`: return 1 (StopIteration); the body callback logs the body, returns Continue
/// * `B`: return 0; the body callback returns 1 (buffer) until the end, then logs it
/// * `r`: add header `x-now` with the raw 8 bytes of `proxy_get_current_time_nanoseconds`
/// * `g`: log the raw result of the foreign function `get_log_level`, then the
///   digit of `proxy_get_log_level`
/// * `e`: log the status of `proxy_set_effective_context(999)`
/// * `q`: log the property `route_name`
/// * `a`: add header `x-added: 1` and return Continue
///
/// The response-headers callback logs the status digit of reading a request
/// header (2: BadArgument once the request went on).
pub fn actions_module() -> Vec<u8> {
    module(
        r#"
  (data (i32.const 2000) "x-added")
  (data (i32.const 2016) "1")
  (data (i32.const 2032) "x-now")
  (global $mode (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $op i32)
    (global.set $ctx (local.get $ctx))
    (if (i32.ne (call $get_header (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 16) (i32.const 20)) (i32.const 0))
      (then (return (i32.const 0))))
    (local.set $op (i32.load8_u (i32.load (i32.const 16))))
    (global.set $mode (local.get $op))
    (if (i32.eq (local.get $op) (i32.const 99)) ;; c
      (then (drop (call $continue (i32.const 0))) (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 112)) ;; p
      (then (drop (call $continue (i32.const 0))) (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 108)) ;; l
      (then (drop (call $local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 1040) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
            (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 76)) ;; L
      (then (drop (call $local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 1040) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
            (drop (call $continue (i32.const 0)))
            (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 116)) ;; t
      (then (call $log (i32.const 5) (i32.const 1056) (i32.const 13))
            (i32.store (i32.const 200) (i32.const 1168))
            (i32.store (i32.const 204) (i32.const 10))
            (drop (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 208)))
            unreachable))
    (if (i32.eq (local.get $op) (i32.const 115)) ;; s
      (then (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 107)) ;; k
      (then (drop (call $tick_period (i32.const 1000))) (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 104)) ;; h
      (then (drop (call $get_pairs (i32.const 0) (i32.const 16) (i32.const 20))) (call $log_returned) (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 98)) ;; b
      (then (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 114)) ;; r
      (then (drop (call $now (i32.const 300)))
            (drop (call $add_header (i32.const 0) (i32.const 2032) (i32.const 5) (i32.const 300) (i32.const 8)))
            (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 103)) ;; g
      (then (drop (call $foreign (i32.const 1072) (i32.const 13) (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 20)))
            (call $log_returned)
            (drop (call $get_log_level (i32.const 400)))
            (call $log_digit (i32.load (i32.const 400)))
            (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 101)) ;; e
      (then (call $log_digit (call $effective (i32.const 999))) (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 113)) ;; q
      (then (drop (call $property (i32.const 1088) (i32.const 10))) (call $log_returned) (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 97)) ;; a
      (then (drop (call $add_header (i32.const 0) (i32.const 2000) (i32.const 7) (i32.const 2016) (i32.const 1))) (return (i32.const 0))))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.and (i32.eq (global.get $mode) (i32.const 66)) (i32.eqz (local.get $eos))) ;; B, not the end yet
      (then (return (i32.const 1))))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 0))
    (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (call $log_returned)
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (call $log_digit (call $get_header (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_tick") (param $root i32)
    (if (i32.eqz (call $effective (global.get $ctx)))
      (then (drop (call $continue (i32.const 0))))))
  (func (export "proxy_on_log") (param i32))
"#,
    )
}

/// A module that uses Higress's Redis calls directly:
///
/// * `proxy_on_configure`: `proxy_redis_init(property redis_upstream,
///   property redis_user, property redis_pass, 500 ms)`, logs the status digit.
/// * request headers: `proxy_redis_call(redis_upstream, property
///   redis_query)`, logs the status digit, pauses if it was sent.
/// * `proxy_on_redis_call_response`: logs the status digit and the bytes of
///   buffer 9, then resumes the request through the effective context.
pub fn redis_module() -> Vec<u8> {
    module(
        r#"
  (global $up_ptr (mut i32) (i32.const 0))
  (global $up_len (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (local $user_ptr i32) (local $user_len i32)
    (drop (call $property (i32.const 1152) (i32.const 14)))
    (global.set $up_ptr (i32.load (i32.const 16)))
    (global.set $up_len (i32.load (i32.const 20)))
    (drop (call $property (i32.const 1104) (i32.const 10)))
    (local.set $user_ptr (i32.load (i32.const 16)))
    (local.set $user_len (i32.load (i32.const 20)))
    (drop (call $property (i32.const 1120) (i32.const 10)))
    (call $log_digit
      (call $redis_init (global.get $up_ptr) (global.get $up_len) (local.get $user_ptr) (local.get $user_len)
                        (i32.load (i32.const 16)) (i32.load (i32.const 20)) (i32.const 500)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $status i32)
    (global.set $ctx (local.get $ctx))
    (drop (call $property (i32.const 1136) (i32.const 11)))
    (local.set $status
      (call $redis_call (global.get $up_ptr) (global.get $up_len) (i32.load (i32.const 16)) (i32.load (i32.const 20)) (i32.const 500)))
    (call $log_digit (local.get $status))
    (if (result i32) (i32.eqz (local.get $status)) (then (i32.const 1)) (else (i32.const 0))))
  (func (export "proxy_on_redis_call_response") (param $root i32) (param $id i32) (param $status i32) (param $size i32)
    (call $log_digit (local.get $status))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 0))
    (drop (call $get_buffer (i32.const 9) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (call $log_returned)
    (drop (call $effective (global.get $ctx)))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_log") (param i32))
"#,
    )
}
