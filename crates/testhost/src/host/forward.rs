//! Forwarding: what goes upstream and what comes back. The request the
//! filter let through goes to the test's upstream (a fixed reply, a
//! function, or Envoy's own answer for a timeout or a refused connection);
//! answers to HTTP calls and Redis commands, from the test or from a real
//! server they are forwarded to, reach the module's root context.
//!
//! Depends on the VM (`vm.rs`), the filter driver (`filter.rs`: the stream
//! the answers belong to), `http`/`redis` (the fake and forwarding
//! upstreams) and `state`; the clock (`clock.rs`) calls it when a
//! completion is due.

use super::filter::{DirectionState, Flow, UpstreamReply};
use super::Inner;
use crate::abi::{Direction, REDIS_ANSWERED, REDIS_NO_ANSWER};
use crate::exchange::{Event, UpstreamRequest, UpstreamSpec};
use crate::http::{self, CallAnswer, Reply, ReplyKind};
use crate::redis::{RedisConnection, RedisIoError};
use crate::state::PendingKind;
use crate::Error;
use std::collections::VecDeque;

impl Inner {
    /// The request went through the filter: the upstream gets it, and its
    /// answer (or Envoy's own, for a timeout or a failed connection) is
    /// scheduled.
    pub(super) fn send_upstream(&mut self, flow: &mut Option<Flow>) -> Result<(), Error> {
        let Some(f) = flow.as_mut() else { return Ok(()) };
        f.upstream_sent = true;
        let ctx = f.ctx;
        let headers = match f.req.headers_out.clone() {
            Some(h) => h,
            None => self.store.data().streams.get(&ctx).map(|s| s.req_headers.clone()).unwrap_or_default(),
        };
        let request = UpstreamRequest { headers, body: f.req.passed.clone(), trailers: f.req.trailers_out.clone() };
        let reply = match f.upstream_spec.take() {
            Some(UpstreamSpec::Fixed(r)) => r,
            Some(UpstreamSpec::With(mut g)) => g(&request),
            None => Reply::new(200),
        };
        f.upstream = Some(request);
        f.events.push(Event::Upstream);
        let now = self.store.data().now;
        let route_timeout = self.store.data().route_timeout.as_nanos() as u64;
        let (at, parts) = match &reply.kind {
            ReplyKind::Response { .. } => {
                let at = now + reply.delay.as_nanos() as u64;
                match reply.response_parts() {
                    Some((_, headers, chunks)) if at < now + route_timeout => {
                        (at, UpstreamReply { headers, chunks, trailers: reply.trailer_map() })
                    }
                    _ => (now + route_timeout, envoy_answer(504, b"upstream request timeout")),
                }
            }
            ReplyKind::ConnectFailure => {
                let body = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused";
                (now + reply.delay.as_nanos() as u64, envoy_answer(503, body))
            }
            ReplyKind::NoAnswer => (now + route_timeout, envoy_answer(504, b"upstream request timeout")),
        };
        f.upstream_reply = Some(parts);
        self.store.data_mut().schedule(at, PendingKind::Upstream);
        Ok(())
    }

    /// Delivers one completion that is due: a call's answer (given by the
    /// test or fetched from a real server now), a queue notification, or the
    /// upstream's answer to the stream.
    pub(super) fn deliver(&mut self, flow: &mut Option<Flow>, kind: PendingKind) -> Result<(), Error> {
        match kind {
            PendingKind::HttpAnswer { token, answer } => self.deliver_http(flow, token, answer),
            PendingKind::HttpForward { token, address, call } => {
                let (answer, elapsed) = http::forward(&address, &call);
                self.store.data_mut().now += elapsed.as_nanos() as u64;
                self.deliver_http(flow, token, answer)
            }
            PendingKind::Redis { id, status, data } => self.deliver_redis(flow, id, status, data),
            PendingKind::RedisForward { id, cluster, query } => {
                let (status, data) = self.redis_forward(&cluster, &query);
                self.deliver_redis(flow, id, status, data)
            }
            PendingKind::QueueReady { root, token } => {
                self.call(root, None, "proxy_on_queue_ready", &[root as i32, token as i32])?;
                self.run_actions(flow)
            }
            PendingKind::Upstream => {
                let Some(f) = flow.as_mut() else { return Ok(()) };
                if f.answered || f.finished {
                    return Ok(());
                }
                let Some(UpstreamReply { headers, chunks, trailers }) = f.upstream_reply.take() else { return Ok(()) };
                let ctx = f.ctx;
                f.resp = if f.head_request {
                    DirectionState::arriving(VecDeque::new(), false)
                } else {
                    DirectionState::arriving_with_trailers(VecDeque::from(chunks), trailers)
                };
                if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
                    stream.resp_headers = headers;
                }
                self.pump(flow, Direction::Response)
            }
        }
    }

    fn deliver_http(&mut self, flow: &mut Option<Flow>, token: u32, answer: CallAnswer) -> Result<(), Error> {
        let root = self.store.data().root_id;
        let (headers, body_len, trailers, status) = match &answer {
            CallAnswer::Response { headers, body, trailers } => {
                (headers.len(), body.len(), trailers.len(), headers.get(":status").and_then(|s| s.parse().ok()))
            }
            CallAnswer::Failure => (0, 0, 0, None),
        };
        self.record(flow, Event::HttpCallResponse { token, status });
        self.store.data_mut().call_answer = Some(answer);
        let result = self.call(
            root,
            None,
            "proxy_on_http_call_response",
            &[root as i32, token as i32, headers as i32, body_len as i32, trailers as i32],
        );
        self.store.data_mut().call_answer = None;
        result?;
        self.run_actions(flow)
    }

    fn deliver_redis(&mut self, flow: &mut Option<Flow>, id: u32, status: i32, data: Vec<u8>) -> Result<(), Error> {
        let root = self.store.data().root_id;
        self.record(flow, Event::RedisResponse { id, status });
        let len = data.len();
        self.store.data_mut().redis_answer = Some(data);
        let exported = self.instance.and_then(|i| i.get_func(&self.store, "proxy_on_redis_call_response")).is_some();
        if !exported {
            self.store
                .data_mut()
                .notes
                .push(format!("redis answer {id} dropped: the module does not export proxy_on_redis_call_response"));
        }
        let result =
            self.call(root, None, "proxy_on_redis_call_response", &[root as i32, id as i32, status, len as i32]);
        self.store.data_mut().redis_answer = None;
        result?;
        self.run_actions(flow)
    }

    /// Sends a command to a real Redis server; `(status, reply)`.
    fn redis_forward(&mut self, cluster: &str, query: &[u8]) -> (i32, Vec<u8>) {
        let started = std::time::Instant::now();
        let s = self.store.data_mut();
        let address = match s.redis_upstreams.get(cluster).map(|u| &u.kind) {
            Some(crate::redis::RedisKind::Forward(a)) => a.clone(),
            _ => return (REDIS_NO_ANSWER, Vec::new()),
        };
        let Some(client) = s.redis_clients.get_mut(cluster) else { return (REDIS_NO_ANSWER, Vec::new()) };
        let mut notes = Vec::new();
        if client.conn.is_none() {
            match RedisConnection::open(&address, &client.username, &client.password, client.spec.db, client.timeout) {
                Ok((conn, n)) => {
                    client.conn = Some(conn);
                    notes.extend(n);
                }
                Err(err) => notes.push(format!("redis {cluster}: cannot connect to {address}: {err}")),
            }
        }
        let timeout = client.timeout;
        let outcome = match client.conn.as_mut() {
            Some(conn) => match conn.command(query, timeout) {
                Ok(reply) => (REDIS_ANSWERED, reply),
                Err(err) => {
                    client.conn = None;
                    notes.push(match err {
                        RedisIoError::Timeout => format!("redis {cluster}: no answer within {timeout:?}"),
                        other => format!("redis {cluster}: {other}"),
                    });
                    (REDIS_NO_ANSWER, Vec::new())
                }
            },
            None => (REDIS_NO_ANSWER, Vec::new()),
        };
        s.notes.extend(notes);
        s.now += started.elapsed().as_nanos() as u64;
        outcome
    }
}

/// Envoy's own answer to the client (a timeout, a failed connection).
fn envoy_answer(status: u16, body: &[u8]) -> UpstreamReply {
    UpstreamReply {
        headers: http::envoy_local_headers(status, body.len()),
        chunks: vec![body.to_vec()],
        trailers: crate::headers::Headers::new(),
    }
}
