//! The dynamic symbol table of an ELF64 little-endian file (Envoy's binary, a
//! plugin's `.so`): which names it defines (exports) and which it needs.
//!
//! Enough ELF for the native build's symbol checks, without a parser crate or
//! binutils: section headers, the `SHT_DYNSYM` section and its string table.

use crate::error::{Context, Error, Result};
use std::path::Path;

const SHT_DYNSYM: u32 = 11;

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

/// The dynamic symbols of the ELF file at `path`.
pub fn dynamic_symbols(path: &Path) -> Result<Vec<Symbol>> {
    let data = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
    if bytes_at(&data, 0, 6)? != b"\x7fELF\x02\x01" {
        return Err(Error::new(format!("{} is not a 64-bit little-endian ELF file", path.display())));
    }
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
