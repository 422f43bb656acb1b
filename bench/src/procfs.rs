//! What `/proc` says about a process and the machine: resident memory, the
//! linear memories of the V8 Wasm VMs, CPU time, load.
//!
//! ## Finding a Wasm VM's linear memory in `/proc/PID/smaps`
//!
//! On x86-64, V8 gives every 32-bit Wasm memory a reservation of 8 GiB so that
//! bounds checks are done by the MMU: the pages the module can use
//! (`memory.size`, in 64 KiB pages) are mapped read-write, the rest of the
//! reservation is an inaccessible guard region. In `smaps` that is an
//! anonymous `rw-p` mapping directly followed by an anonymous `---p` mapping,
//! the two together at least 8 GiB. Nothing else in Envoy reserves that much
//! behind a read-write prefix: V8's pointer cage and code range are 1 GiB and
//! 512 MiB, glibc's arenas 64 MiB. So each such pair is one VM's linear
//! memory: its `Size` is the memory as the module sees it, its `Rss` the part
//! that is resident (pages the module has touched).

use crate::Result;

/// The guard reservation V8 makes for a 32-bit Wasm memory on x86-64.
const WASM_RESERVATION_KIB: u64 = 8 * 1024 * 1024;

/// One Wasm VM's linear memory, from `smaps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearMemory {
    /// The accessible size (`memory.size` x 64 KiB), KiB.
    pub size_kib: u64,
    /// The resident part, KiB.
    pub rss_kib: u64,
}

impl LinearMemory {
    /// Wasm pages (64 KiB).
    pub fn pages(&self) -> u64 {
        self.size_kib / 64
    }
}

#[derive(Debug)]
struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    anonymous: bool,
    size_kib: u64,
    rss_kib: u64,
}

fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) {
                let perms = fields.next().unwrap_or_default().to_string();
                // offset, device, inode, then the path if there is one.
                let anonymous = fields.nth(3).is_none();
                out.push(Mapping { start, end, perms, anonymous, size_kib: 0, rss_kib: 0 });
                continue;
            }
        }
        let value = || fields.clone().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if let Some(last) = out.last_mut() {
            match first {
                "Size:" => last.size_kib = value(),
                "Rss:" => last.rss_kib = value(),
                _ => {}
            }
        }
    }
    out
}

/// The linear memories of the Wasm VMs in a process's `smaps`, in address order.
pub fn wasm_memories(smaps: &str) -> Vec<LinearMemory> {
    let maps = mappings(smaps);
    maps.windows(2)
        .filter_map(|pair| match pair {
            [memory, guard]
                if memory.anonymous
                    && guard.anonymous
                    && memory.perms == "rw-p"
                    && guard.perms == "---p"
                    && memory.end == guard.start
                    && memory.size_kib + guard.size_kib >= WASM_RESERVATION_KIB =>
            {
                Some(LinearMemory { size_kib: memory.size_kib, rss_kib: memory.rss_kib })
            }
            _ => None,
        })
        .collect()
}

/// The linear memories of the Wasm VMs of process `pid`.
pub fn process_wasm_memories(pid: u32) -> Result<Vec<LinearMemory>> {
    let path = format!("/proc/{pid}/smaps");
    let smaps = std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
    Ok(wasm_memories(&smaps))
}

/// `VmRSS` of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no VmRSS in {path}"))
}

/// CPU time (user + system) of process `pid` so far, in clock ticks.
pub fn process_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may contain spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let after = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

/// Busy clock ticks of the whole machine so far (all CPUs: everything but idle and iowait).
pub fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = text.lines().find(|line| line.starts_with("cpu ")) else { return 0 };
    let values: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    values.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum()
}

/// CPU time of this process's waited-for children, in clock ticks.
pub fn children_ticks() -> u64 {
    // SAFETY: rusage is plain data, valid all zero; getrusage only writes it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0;
    }
    let micros = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
    (micros(usage.ru_utime) + micros(usage.ru_stime)) * clock_ticks_per_second() / 1_000_000
}

/// The kernel's clock ticks per second (`_SC_CLK_TCK`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three VMs' memories (17 pages each) from Envoy 1.40 with one plugin,
    /// between V8's other reservations and a glibc arena.
    const SMAPS: &str = "\
7f05fa010000-7f05fa120000 rw-p 00000000 00:00 0 
Size:               1088 kB
Rss:                  20 kB
7f05fa120000-7f07fa010000 ---p 00000000 00:00 0 
Size:            8387520 kB
Rss:                   0 kB
7f080a040000-7f082a000000 rwxp 00000000 00:00 0 
Size:             524032 kB
Rss:                   4 kB
7f082c020000-7f082c130000 rw-p 00000000 00:00 0 
Size:               1088 kB
Rss:                  16 kB
7f082c130000-7f0a2c020000 ---p 00000000 00:00 0 
Size:            8387520 kB
Rss:                   0 kB
12e8ff000000-12e900000000 rw-p 00000000 00:00 0 
Size:              16384 kB
Rss:               14012 kB
12e900000000-12e940000000 ---p 00000000 00:00 0 
Size:            1048576 kB
Rss:                   0 kB
7f0a5c020000-7f0a5c130000 rw-p 00000000 00:00 0 
Size:               1152 kB
Rss:                  84 kB
7f0a5c130000-7f0c5c020000 ---p 00000000 00:00 0 
Size:            8387456 kB
Rss:                   0 kB
7f0c00000000-7f0c00100000 rw-p 00000000 08:01 123 /usr/lib/x.so
Size:               1024 kB
Rss:                1024 kB
7f0c00100000-7f0e00100000 ---p 00000000 00:00 0 
Size:            8388608 kB
Rss:                   0 kB
";

    #[test]
    fn finds_v8_wasm_memories() {
        let found = wasm_memories(SMAPS);
        assert_eq!(
            found,
            [
                LinearMemory { size_kib: 1088, rss_kib: 20 },
                LinearMemory { size_kib: 1088, rss_kib: 16 },
                LinearMemory { size_kib: 1152, rss_kib: 84 },
            ]
        );
        assert_eq!(found[2].pages(), 18);
    }

    #[test]
    fn reads_this_process() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(process_ticks(std::process::id()) < u64::MAX);
        assert!(machine_busy_ticks() > 0);
        assert!(load_average() >= 0.0);
    }
}
