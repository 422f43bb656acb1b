//! The ABI's wire format for header maps.
//!
//! A little-endian `u32` count, then a `(key length, value length)` pair of `u32`s
//! per entry, then each key and value in order, each followed by a NUL byte.
//! Decoding checks every length against the buffer, so a malformed map from the
//! host is an error, never a trap.

/// Encodes header pairs for `proxy_set_header_map_pairs` and friends.
pub fn encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let payload: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + payload);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Decodes a serialized header map; `None` if it is malformed.
///
/// Names that are not UTF-8 (hosts never send such names) are decoded lossily;
/// values are kept as raw bytes.
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)? as usize;
    let mut sizes_at = 4usize;
    let mut data_at = 4usize.checked_add(count.checked_mul(8)?)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = read_u32(bytes, sizes_at)? as usize;
        let value_len = read_u32(bytes, sizes_at + 4)? as usize;
        sizes_at += 8;
        let key = bytes.get(data_at..data_at.checked_add(key_len)?)?;
        data_at = data_at.checked_add(key_len + 1)?;
        let value = bytes.get(data_at..data_at.checked_add(value_len)?)?;
        data_at = data_at.checked_add(value_len + 1)?;
        if data_at > bytes.len() {
            return None; // the terminating NUL is missing
        }
        out.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(out)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<(&str, &[u8])> = vec![(":status", b"200"), ("x-a", b""), ("bin", b"\xff\x00z")];
        let decoded = decode(&encode(&pairs)).unwrap();
        let expected: Vec<(String, Vec<u8>)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn empty_buffer_is_an_empty_map() {
        assert_eq!(decode(&[]).unwrap(), vec![]);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn malformed_maps_are_errors() {
        let good = encode(&[("k", b"v")]);
        for cut in 1..good.len() {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        // A count that would overflow the size table.
        assert!(decode(&u32::MAX.to_le_bytes()).is_none());
        // A key length pointing past the end.
        let mut bad = good.clone();
        bad[4] = 200;
        assert!(decode(&bad).is_none());
    }
}
