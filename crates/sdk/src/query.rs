//! Query parameters of a request's `:path`, as plugins that key, route or
//! check by them read them: [`value`] for any path, and
//! [`Request::query_param`] for the request's own.

use crate::{Plugin, Request};

/// The first value of query parameter `name` in `path` (`/a?key=1&b`), as
/// written (not percent-decoded); `""` for a parameter without `=`, `None`
/// when the path has none of that name. A `#fragment` is not part of it.
pub fn value<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let query = path.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

impl<P: Plugin> Request<P> {
    /// The first value of query parameter `name` of this request's `:path`
    /// (see [`value`]).
    pub fn query_param(&self, name: &str) -> Option<String> {
        value(&self.path()?, name).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_values_of_parameters() {
        assert_eq!(value("/a?x=1&key=abc&key=2", "key"), Some("abc"));
        assert_eq!(value("/a?flag&key=", "flag"), Some(""));
        assert_eq!(value("/a?key=1#frag", "key"), Some("1"));
        assert_eq!(value("/a", "key"), None);
        assert_eq!(value("/a?other=1", "key"), None);
    }
}
