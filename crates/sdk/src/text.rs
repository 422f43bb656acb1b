//! Bytes from the host as text.
//!
//! A leaf: depends on nothing else in the crate.

/// Bytes as text: no copy when they are UTF-8, replacement characters when not.
pub(crate) fn lossy(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}
