//! Header maps with Envoy's semantics, and the ABI's wire format for them.

/// An ordered header map as Envoy keeps one: names are lowercased when they
/// are written, pseudo-headers (`:path`, ...) stay in front of the others, a
/// name may appear more than once, and values are raw bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(k, v)| (k, String::from_utf8_lossy(v)))).finish()
    }
}

impl Headers {
    /// An empty map.
    pub fn new() -> Self {
        Headers::default()
    }

    /// A map from pairs (names are lowercased).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut map = Headers::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    /// Number of entries (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name` as text (lossy), like `proxy_get_header_map_value`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first value of `name`, as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, as text (lossy).
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().filter(|(k, _)| *k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Every entry, in order, values as text (lossy).
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.entries.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    /// Every entry, in order, values as bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Adds a value, keeping existing ones (Envoy's `addCopy`).
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let name = name.to_ascii_lowercase();
        let value = value.as_ref().to_vec();
        if name.starts_with(':') {
            let at = self.entries.iter().position(|(k, _)| !k.starts_with(':')).unwrap_or(self.entries.len());
            self.entries.insert(at, (name, value));
        } else {
            self.entries.push((name, value));
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(k, _)| *k != name);
    }

    /// Replaces every value of `name` with one (Envoy's `setCopy`: remove, then add).
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.remove(name);
        self.add(name, value);
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_pairs(self.entries.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
    }
}

/// Encodes pairs in the ABI's format: a little-endian `u32` count, a
/// `(key size, value size)` pair of `u32`s per entry, then every key and
/// value followed by a NUL byte.
pub(crate) fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let count = pairs.clone().count();
    let mut out = Vec::new();
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Decodes the ABI's pair format. `None` when the sizes do not fit the
/// buffer (Envoy then reads no pair at all). An empty buffer is an empty map.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(raw) as usize)
    };
    let count = word(0)?;
    let mut data_at = 4usize.checked_add(count.checked_mul(8)?)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = word(4 + i * 8)?;
        let value_len = word(8 + i * 8)?;
        let key = bytes.get(data_at..data_at.checked_add(key_len)?)?.to_vec();
        data_at = data_at.checked_add(key_len)?.checked_add(1)?;
        let value = bytes.get(data_at..data_at.checked_add(value_len)?)?.to_vec();
        data_at = data_at.checked_add(value_len)?.checked_add(1)?;
        if data_at > bytes.len() {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_stay_in_front_and_names_are_lowercased() {
        let mut h = Headers::new();
        h.add("X-A", "1");
        h.add(":path", "/");
        h.add(":method", "GET");
        h.add("x-a", "2");
        let names: Vec<String> = h.pairs().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, [":path", ":method", "x-a", "x-a"]);
        assert_eq!(h.get("X-A").as_deref(), Some("1"));
        h.set("x-a", "3");
        assert_eq!(h.get_all("x-a"), ["3"]);
    }

    #[test]
    fn wire_format_round_trip() {
        let h = Headers::from_pairs([(":status", "200"), ("a", "")]);
        let bytes = h.encode();
        assert_eq!(bytes.len(), 4 + 2 * 8 + (8 + 4) + (2 + 1));
        let back = decode_pairs(&bytes);
        assert_eq!(back, Some(vec![(b":status".to_vec(), b"200".to_vec()), (b"a".to_vec(), vec![])]));
        assert_eq!(decode_pairs(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_pairs(&[]), Some(vec![]));
    }
}
