//! Local answers that say why: the response code details of a plugin's own
//! response (Go: `proxywasm.SendHttpResponseWithDetail`).
//!
//! Envoy records the details of every response in its stream info, which
//! access logs show as `%RESPONSE_CODE_DETAILS%` (`via_upstream` for an
//! upstream's answer). A plugin's answer sent with [`Request::respond`] has
//! empty details on Envoy 1.40; one sent with [`Request::respond_with_details`]
//! has the plugin's, so that a log line tells which check refused it. Higress
//! records them the same way (it is the same host call).

use crate::{HeaderAction, Plugin, Request};

/// Longest details string sent; longer ones are cut (at a character boundary).
pub(crate) const MAX_DETAILS: usize = 256;

impl<P: Plugin> Request<P> {
    /// [`Request::respond`], with `details` as the response code details
    /// (`%RESPONSE_CODE_DETAILS%` in Envoy's access log).
    ///
    /// Envoy's details are one token: whitespace in `details` is sent as
    /// `_`, and at most 256 bytes are sent.
    ///
    /// ```
    /// # use gateway_sdk::prelude::*;
    /// # #[derive(Deserialize)]
    /// # struct Config {}
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     const NAME: &'static str = "my-plugin";
    /// #     type Config = Config;
    /// #     type State = ();
    /// fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
    ///     if req.header("x-api-key").is_none() {
    ///         return req.respond_with_details(401, "key-auth.missing_key", &[], "no key");
    ///     }
    ///     HeaderAction::Continue
    /// }
    /// # }
    /// ```
    pub fn respond_with_details(
        &mut self,
        status: u16,
        details: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> HeaderAction {
        let details = one_token(details);
        self.respond_detailed(status, &details, headers, body.as_ref())
    }
}

/// `details` with whitespace as `_`, cut to [`MAX_DETAILS`] bytes.
fn one_token(details: &str) -> String {
    let mut token = String::with_capacity(details.len().min(MAX_DETAILS));
    for c in details.chars() {
        if token.len() + c.len_utf8() > MAX_DETAILS {
            break;
        }
        token.push(if c.is_whitespace() || c.is_control() { '_' } else { c });
    }
    token
}

#[cfg(test)]
mod tests {
    use super::{one_token, MAX_DETAILS};

    #[test]
    fn details_are_one_bounded_token() {
        assert_eq!(one_token("key-auth.denied"), "key-auth.denied");
        assert_eq!(one_token("no key\tgiven\r\n"), "no_key_given__");
        let long = "é".repeat(MAX_DETAILS);
        let cut = one_token(&long);
        assert!(cut.len() <= MAX_DETAILS && cut.chars().all(|c| c == 'é'), "{cut}");
    }
}
