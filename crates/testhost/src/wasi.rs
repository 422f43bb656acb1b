//! WASI (`wasi_snapshot_preview1`, and the old `wasi_unstable` name): what
//! Envoy's proxy-wasm-cpp-host serves, so that modules built by Rust, TinyGo
//! and Go 1.24 (`GOOS=wasip1`) find every import they make.
//!
//! A proxy has no files, sockets or processes, so most calls answer with the
//! error code Envoy gives; the ones a language runtime needs to run answer as
//! Envoy does: stdout/stderr become log lines, both clocks read the host's
//! (virtual) clock, `random_get` fills bytes (deterministically here), and
//! `poll_oneoff`, which Go's scheduler calls to sleep until its next timer,
//! returns at once with no events. Envoy's sleeping module then spins in real
//! time until the timer is due; here the wait moves the virtual clock to the
//! earliest deadline instead, so that a sleeping module neither spins forever
//! nor costs real time.

use crate::imports::{read, write, write_u32, C, R};
use crate::state::State;
use crate::LogLevel;
use wasmi::{Error, Linker};

/// WASI errno values.
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOENT: i32 = 44;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;

/// The clocks Envoy serves: realtime and monotonic.
const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;

/// Envoy's bound on one `random_get` (`PROXY_WASM_HOST_WASI_RANDOM_GET_MAX_SIZE_BYTES`).
const RANDOM_GET_MAX: i32 = 64 * 1024;

/// A `subscription` of `poll_oneoff`: 48 bytes, the tag at 8 (0: clock), then
/// the clock's id at 16, timeout at 24 and flags at 40 (bit 0: absolute time).
const SUBSCRIPTION_SIZE: i32 = 48;

pub(crate) fn define(l: &mut Linker<State>, m: &str) -> Result<(), wasmi::errors::LinkerError> {
    define_output(l, m)?;
    define_files(l, m)?;
    define_process(l, m)?;
    define_time(l, m)
}

/// Standard output and error, the only descriptors there are.
fn define_output(l: &mut Linker<State>, m: &str) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(m, "fd_write", |mut c: C, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| -> R {
        let level = match fd {
            1 => LogLevel::Info,
            2 => LogLevel::Error,
            _ => return Ok(EBADF),
        };
        let mut text = Vec::new();
        for i in 0..iovs_len.max(0) {
            let Some(iov) = read(&c, iovs.wrapping_add(i.wrapping_mul(8)), 8) else { return Ok(EFAULT) };
            let (Some(buf), Some(len)) = (le_u32(&iov, 0), le_u32(&iov, 4)) else { return Ok(EFAULT) };
            if len != 0 {
                let Some(bytes) = read(&c, buf as i32, len as i32) else { return Ok(EFAULT) };
                text.extend_from_slice(&bytes);
            }
        }
        let written = text.len() as u32;
        let s = c.data_mut();
        if fd == 1 { &mut s.stdout } else { &mut s.stderr }.extend_from_slice(&text);
        // Envoy logs each write as one line (info for stdout, error for stderr).
        if text.last() == Some(&b'\n') {
            text.pop();
        }
        if !text.is_empty() {
            s.log(level, String::from_utf8_lossy(&text).into_owned());
        }
        Ok(if write_u32(&mut c, nwritten, written) { ESUCCESS } else { EFAULT })
    })?;
    l.func_wrap(m, "fd_fdstat_get", |mut c: C, fd: i32, out: i32| -> R {
        if fd != 1 && fd != 2 {
            return Ok(EBADF);
        }
        // A zeroed stat with only the write right (64), as Envoy.
        let mut stat = [0u8; 24];
        if let Some(rights) = stat.get_mut(8..16) {
            rights.copy_from_slice(&64u64.to_le_bytes());
        }
        Ok(if write(&mut c, out, &stat) { ESUCCESS } else { EFAULT })
    })?;
    // Go sets O_NONBLOCK on stdout/stderr at start; Envoy answers ENOSYS, which
    // Go's runtime ignores.
    l.func_wrap(m, "fd_fdstat_set_flags", |_c: C, _fd: i32, _flags: i32| -> R { Ok(ENOSYS) })?;
    l.func_wrap(m, "fd_read", |_c: C, _fd: i32, _iovs: i32, _len: i32, _n: i32| -> R { Ok(ENOSYS) })?;
    // Envoy answers success without doing anything for these two.
    l.func_wrap(m, "fd_seek", |_c: C, _fd: i32, _off: i64, _whence: i32, _out: i32| -> R { Ok(ESUCCESS) })?;
    l.func_wrap(m, "fd_close", |_c: C, _fd: i32| -> R { Ok(ESUCCESS) })?;
    Ok(())
}

/// No filesystem: no preopened directories, nothing to open or stat.
fn define_files(l: &mut Linker<State>, m: &str) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(m, "fd_prestat_get", |_c: C, _fd: i32, _out: i32| -> R { Ok(EBADF) })?;
    l.func_wrap(m, "fd_prestat_dir_name", |_c: C, _fd: i32, _p: i32, _l: i32| -> R { Ok(ENOSYS) })?;
    l.func_wrap(
        m,
        "path_open",
        |_c: C,
         _fd: i32,
         _dirflags: i32,
         _p: i32,
         _l: i32,
         _oflags: i32,
         _base: i64,
         _inh: i64,
         _flags: i32,
         _out: i32|
         -> R { Ok(ENOENT) },
    )?;
    l.func_wrap(m, "path_filestat_get", |_c: C, _fd: i32, _flags: i32, _p: i32, _l: i32, _out: i32| -> R {
        Ok(ENOTSUP)
    })?;
    Ok(())
}

/// Arguments (none), environment, randomness, yielding and exiting.
fn define_process(l: &mut Linker<State>, m: &str) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(m, "environ_sizes_get", |mut c: C, count_ptr: i32, size_ptr: i32| -> R {
        let env = c.data().env.clone();
        let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if !write_u32(&mut c, count_ptr, env.len() as u32) || !write_u32(&mut c, size_ptr, size as u32) {
            return Ok(EFAULT);
        }
        Ok(ESUCCESS)
    })?;
    l.func_wrap(m, "environ_get", |mut c: C, mut array: i32, mut buf: i32| -> R {
        let env = c.data().env.clone();
        for (k, v) in env {
            let entry = format!("{k}={v}\0");
            if !write_u32(&mut c, array, buf as u32) || !write(&mut c, buf, entry.as_bytes()) {
                return Ok(EFAULT);
            }
            buf = buf.wrapping_add(entry.len() as i32);
            array = array.wrapping_add(4);
        }
        Ok(ESUCCESS)
    })?;
    l.func_wrap(m, "args_sizes_get", |mut c: C, argc: i32, size: i32| -> R {
        Ok(if write_u32(&mut c, argc, 0) && write_u32(&mut c, size, 0) { ESUCCESS } else { EFAULT })
    })?;
    l.func_wrap(m, "args_get", |_c: C, _argv: i32, _buf: i32| -> R { Ok(ESUCCESS) })?;
    l.func_wrap(m, "random_get", |mut c: C, ptr: i32, len: i32| -> R {
        if !(0..=RANDOM_GET_MAX).contains(&len) {
            return Ok(EINVAL);
        }
        let len = len as usize;
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            bytes.extend_from_slice(&c.data_mut().next_random().to_le_bytes());
        }
        bytes.truncate(len);
        Ok(if write(&mut c, ptr, &bytes) { ESUCCESS } else { EFAULT })
    })?;
    // One thread: yielding always succeeds at once.
    l.func_wrap(m, "sched_yield", |_c: C| -> R { Ok(ESUCCESS) })?;
    // Envoy only logs "wasi_unstable proc_exit" (at trace) and returns to the
    // module; here the call ends as a trap, so that a test sees the exit.
    l.func_wrap(m, "proc_exit", |_c: C, code: i32| -> Result<(), Error> { Err(Error::i32_exit(code)) })?;
    Ok(())
}

/// Both clocks read the virtual clock; `poll_oneoff` waits on it.
fn define_time(l: &mut Linker<State>, m: &str) -> Result<(), wasmi::errors::LinkerError> {
    l.func_wrap(m, "clock_time_get", |mut c: C, id: i32, _precision: i64, out: i32| -> R {
        if id != CLOCK_REALTIME && id != CLOCK_MONOTONIC {
            return Ok(ENOTSUP);
        }
        let now = c.data().now;
        Ok(if write(&mut c, out, &now.to_le_bytes()) { ESUCCESS } else { EFAULT })
    })?;
    l.func_wrap(m, "clock_res_get", |mut c: C, id: i32, out: i32| -> R {
        if id != CLOCK_REALTIME && id != CLOCK_MONOTONIC {
            return Ok(ENOTSUP);
        }
        Ok(if write(&mut c, out, &1u64.to_le_bytes()) { ESUCCESS } else { EFAULT })
    })?;
    l.func_wrap(m, "poll_oneoff", |mut c: C, subscriptions: i32, _events: i32, count: i32, nevents: i32| -> R {
        let Some(size) = count.checked_mul(SUBSCRIPTION_SIZE).filter(|size| *size >= 0) else { return Ok(EFAULT) };
        let Some(table) = read(&c, subscriptions, size) else { return Ok(EFAULT) };
        let now = c.data().now;
        if let Some(deadline) = earliest_clock_deadline(&table, now) {
            let s = c.data_mut();
            s.now = s.now.max(deadline);
        }
        // Envoy reports no events; Go's runtime reads its timers again.
        Ok(if write_u32(&mut c, nevents, 0) { ESUCCESS } else { EFAULT })
    })?;
    Ok(())
}

/// The earliest time a clock subscription of `table` waits for, in
/// nanoseconds of the virtual clock (which both clocks read).
fn earliest_clock_deadline(table: &[u8], now: u64) -> Option<u64> {
    table
        .chunks_exact(SUBSCRIPTION_SIZE as usize)
        .filter(|sub| sub.get(8) == Some(&0))
        .filter_map(|sub| {
            let id = le_u32(sub, 16)? as i32;
            if id != CLOCK_REALTIME && id != CLOCK_MONOTONIC {
                return None;
            }
            let timeout = le_u64(sub, 24)?;
            let absolute = le_u16(sub, 40)? & 1 == 1;
            Some(if absolute { timeout } else { now.saturating_add(timeout) })
        })
        .min()
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..at + 2).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}
