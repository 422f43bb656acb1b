//! The dynamic symbol table of an ELF64 little-endian file (Envoy's binary, a
//! plugin's `.so`): which names it defines (exports) and which it needs; and
//! the symbol versions it needs from its libraries (`GLIBC_2.30`, ...).
//!
//! Enough ELF for the native build's symbol checks, without a parser crate or
//! binutils: section headers, the `SHT_DYNSYM` section and its string table,
//! the `SHT_GNU_verneed` section (what `readelf -V` shows as "Version needs").

use crate::error::{Context, Error, Result};
use std::path::Path;

const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
/// A version the loader may find missing (every reference to it is weak).
const VER_FLG_WEAK: u16 = 0x2;

/// One dynamic symbol: its name, and whether the file defines it (else it needs it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub defined: bool,
}

fn bytes_at(data: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    data.get(at..at.saturating_add(len)).ok_or_else(|| Error::new(format!("ELF truncated at {at}")))
}

fn u16_at(data: &[u8], at: usize) -> Result<u16> {
    let b = bytes_at(data, at, 2)?;
    Ok(u16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)]))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    let mut out = [0u8; 4];
    out.copy_from_slice(bytes_at(data, at, 4)?);
    Ok(u32::from_le_bytes(out))
}

fn u64_at(data: &[u8], at: usize) -> Result<usize> {
    let mut out = [0u8; 8];
    out.copy_from_slice(bytes_at(data, at, 8)?);
    usize::try_from(u64::from_le_bytes(out)).map_err(|_| Error::new("ELF offset too large".to_string()))
}

/// A symbol version the file needs from a library (`libc.so.6`, `GLIBC_2.34`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededVersion {
    pub library: String,
    pub version: String,
    /// Only weak references use it: the file still loads without it.
    pub weak: bool,
}

/// The NUL-terminated string at `at`.
fn string_at(data: &[u8], at: usize) -> String {
    let bytes: Vec<u8> = data.get(at..).unwrap_or_default().iter().take_while(|b| **b != 0).copied().collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn read_elf(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
    if bytes_at(&data, 0, 6)? != b"\x7fELF\x02\x01" {
        return Err(Error::new(format!("{} is not a 64-bit little-endian ELF file", path.display())));
    }
    Ok(data)
}

/// The symbol versions the ELF file at `path` needs (its `SHT_GNU_verneed` section).
pub fn needed_versions(path: &Path) -> Result<Vec<NeededVersion>> {
    let data = read_elf(path)?;
    let section_headers = u64_at(&data, 0x28)?;
    let entry_size = usize::from(u16_at(&data, 0x3a)?);
    let count = usize::from(u16_at(&data, 0x3c)?);
    let section = |index: usize| section_headers + index * entry_size;
    let mut needed = Vec::new();
    for index in 0..count {
        let header = section(index);
        if u32_at(&data, header + 4)? != SHT_GNU_VERNEED {
            continue;
        }
        let offset = u64_at(&data, header + 0x18)?;
        let strings = section(usize::try_from(u32_at(&data, header + 0x28)?).unwrap_or(usize::MAX));
        let strings_offset = u64_at(&data, strings + 0x18)?;
        let entries = u32_at(&data, header + 0x2c)?;
        // Verneed: version u16, count u16, file u32, aux u32, next u32; Vernaux: hash u32,
        // flags u16, other u16, name u32, next u32 (offsets relative to the entry).
        let mut at = offset;
        for _ in 0..entries {
            let library = string_at(&data, strings_offset + usize::try_from(u32_at(&data, at + 4)?).unwrap_or(0));
            let mut aux = at + usize::try_from(u32_at(&data, at + 8)?).unwrap_or(0);
            for _ in 0..u16_at(&data, at + 2)? {
                let flags = u16_at(&data, aux + 4)?;
                let name_at = strings_offset + usize::try_from(u32_at(&data, aux + 8)?).unwrap_or(0);
                needed.push(NeededVersion {
                    library: library.clone(),
                    version: string_at(&data, name_at),
                    weak: flags & VER_FLG_WEAK != 0,
                });
                match u32_at(&data, aux + 12)? {
                    0 => break,
                    next => aux += usize::try_from(next).unwrap_or(0),
                }
            }
            match u32_at(&data, at + 12)? {
                0 => break,
                next => at += usize::try_from(next).unwrap_or(0),
            }
        }
    }
    Ok(needed)
}

/// `GLIBC_2.30` -> `[2, 30]`; `None` for any other version name (`GLIBC_PRIVATE`, `GCC_3.0`).
pub fn glibc_version(name: &str) -> Option<Vec<u32>> {
    let numbers = name.strip_prefix("GLIBC_")?;
    numbers.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u32>>>().filter(|v| v.len() >= 2)
}

/// The newest glibc version among `needed` (weak ones too when `with_weak`), as `2.30`.
pub fn newest_glibc(needed: &[NeededVersion], with_weak: bool) -> Option<String> {
    let newest = needed.iter().filter(|n| with_weak || !n.weak).filter_map(|n| glibc_version(&n.version)).max()?;
    Some(newest.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
}

/// The dynamic symbols of the ELF file at `path`.
pub fn dynamic_symbols(path: &Path) -> Result<Vec<Symbol>> {
    let data = read_elf(path)?;
    let section_headers = u64_at(&data, 0x28)?;
    let entry_size = usize::from(u16_at(&data, 0x3a)?);
    let count = usize::from(u16_at(&data, 0x3c)?);
    let section = |index: usize| section_headers + index * entry_size;
    let mut symbols = Vec::new();
    for index in 0..count {
        let header = section(index);
        if u32_at(&data, header + 4)? != SHT_DYNSYM {
            continue;
        }
        let offset = u64_at(&data, header + 0x18)?;
        let size = u64_at(&data, header + 0x20)?;
        let strings = section(usize::try_from(u32_at(&data, header + 0x28)?).unwrap_or(usize::MAX));
        let strings_offset = u64_at(&data, strings + 0x18)?;
        let symbol_size = u64_at(&data, header + 0x38)?.max(24);
        for at in (offset..offset + size).step_by(symbol_size) {
            let name_at = strings_offset + usize::try_from(u32_at(&data, at)?).unwrap_or(usize::MAX);
            let name: Vec<u8> =
                data.get(name_at..).unwrap_or_default().iter().take_while(|b| **b != 0).copied().collect();
            if name.is_empty() {
                continue;
            }
            let defined = u16_at(&data, at + 6)? != 0;
            symbols.push(Symbol { name: String::from_utf8_lossy(&name).into_owned(), defined });
        }
    }
    Ok(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_compare_as_numbers() {
        let needed = |version: &str, weak| NeededVersion { library: "libc.so.6".into(), version: version.into(), weak };
        let list = [needed("GLIBC_2.2.5", false), needed("GLIBC_2.28", false), needed("GLIBC_2.30", true)];
        assert_eq!(newest_glibc(&list, false).as_deref(), Some("2.28"));
        assert_eq!(newest_glibc(&list, true).as_deref(), Some("2.30"));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some(vec![2, 2, 5]));
    }

    #[test]
    fn this_test_binary_needs_some_glibc() {
        // The test runs natively on Linux: its own executable names glibc versions.
        let exe = std::env::current_exe().unwrap_or_default();
        let needed = needed_versions(&exe).unwrap_or_default();
        assert!(newest_glibc(&needed, true).is_some(), "{needed:?}");
    }
}
