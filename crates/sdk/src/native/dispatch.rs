//! The callout bookkeeping of a native build.
//!
//! In a Wasm VM every answer comes to the root context with a token, and the
//! SDK's table (`dispatch.rs`) finds the request that asked. Envoy's dynamic
//! modules call `on_http_filter_http_callout_done` on the very filter that
//! made the call, which finds its callback by the callout id itself, so there
//! is nothing to route: `expect` only keeps the shared code's shape.

/// A call waiting for its answer, by the host's callout id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Callout {
    Http(u32),
}

/// Nothing to record natively: the answer comes to the filter that asked.
pub(crate) fn expect(callout: Callout, context_id: u32) {
    let _ = (callout, context_id);
}

/// Starts an HTTP call for `context_id` (a request, or a root context for a
/// call outside requests) and records where its answer goes; the host's
/// token comes back.
pub(crate) fn http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout: std::time::Duration,
    context_id: u32,
) -> Result<u32, crate::host::Status> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let token = crate::host::dispatch_http_call(cluster, headers, body, &[], timeout_ms)?;
    expect(Callout::Http(token), context_id);
    Ok(token)
}
