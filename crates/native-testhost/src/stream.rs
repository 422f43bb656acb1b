//! What Envoy keeps of one HTTP stream, as the callbacks see it: both header
//! maps, the bodies (the chunk a body hook received and what the filter
//! buffered), a local answer, resumes, the HTTP calls started, and the
//! attributes a plugin may read.

use std::collections::{BTreeMap, VecDeque};

/// A direction of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// An HTTP call a plugin started (`http_filter_http_callout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callout {
    /// The Envoy cluster it went to.
    pub cluster: String,
    /// Its headers, `:method`, `:path` and `host` included.
    pub headers: Vec<(String, String)>,
    /// Its body (empty for none).
    pub body: Vec<u8>,
    /// Its timeout.
    pub timeout_ms: u64,
}

/// The local answer a plugin sent (`http_send_response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalAnswer {
    pub status: u32,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    pub details: Option<String>,
}

/// One direction: its headers and body.
#[derive(Default)]
pub(crate) struct Side {
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// What the filter buffered (`None` until something was).
    pub buffered: Option<Vec<u8>>,
    /// The chunk the running body hook received.
    pub received: Option<Vec<u8>>,
    /// The received chunk is the buffered body (delivered after a hold).
    pub received_is_buffered: bool,
    /// `continue_decoding` / `continue_encoding` was called.
    pub resumed: bool,
}

/// Attribute ids the stream answers (`envoy_dynamic_module_type_attribute_id`).
mod attribute {
    pub const PATH: u32 = 0;
    pub const URL_PATH: u32 = 1;
    pub const HOST: u32 = 2;
    pub const SCHEME: u32 = 3;
    pub const METHOD: u32 = 4;
    pub const REFERER: u32 = 6;
    pub const USER_AGENT: u32 = 7;
    pub const ID: u32 = 9;
    pub const PROTOCOL: u32 = 10;
    pub const QUERY: u32 = 11;
    pub const RESPONSE_CODE: u32 = 15;
    pub const CLUSTER_NAME: u32 = 57;
    pub const ROUTE_NAME: u32 = 61;
}

/// One stream.
#[derive(Default)]
pub(crate) struct Stream {
    pub request: Side,
    pub response: Side,
    pub local: Option<LocalAnswer>,
    pub callouts: Vec<Callout>,
    /// Ids of the callouts not answered yet, oldest first.
    pub pending: VecDeque<u64>,
    /// The clusters a callout may name (`None`: any).
    pub clusters: Option<Vec<String>>,
    /// Attributes fixed for the stream (path parts, protocol, route, cluster).
    pub attributes: BTreeMap<u32, Vec<u8>>,
    /// The response's status, once the upstream (or a local answer) gave one.
    pub response_code: Option<u64>,
}

impl Stream {
    pub(crate) fn side(&self, direction: Direction) -> &Side {
        match direction {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }

    pub(crate) fn side_mut(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    pub(crate) fn headers(&self, direction: Direction) -> &[(Vec<u8>, Vec<u8>)] {
        &self.side(direction).headers
    }

    pub(crate) fn headers_mut(&mut self, direction: Direction) -> &mut Vec<(Vec<u8>, Vec<u8>)> {
        &mut self.side_mut(direction).headers
    }

    /// The buffered body, or the chunk received by the running body hook.
    pub(crate) fn body(&self, direction: Direction, buffered: bool) -> Option<&Vec<u8>> {
        let side = self.side(direction);
        if buffered {
            side.buffered.as_ref()
        } else {
            side.received.as_ref()
        }
    }

    /// As [`Stream::body`], to change; appending to a buffered body that
    /// does not exist yet starts one (Envoy's `addDecodedData`).
    pub(crate) fn body_mut(&mut self, direction: Direction, buffered: bool) -> Option<&mut Vec<u8>> {
        let side = self.side_mut(direction);
        if buffered {
            Some(side.buffered.get_or_insert_with(Vec::new))
        } else {
            side.received.as_mut()
        }
    }

    pub(crate) fn received_is_buffered(&self, direction: Direction) -> bool {
        self.side(direction).received_is_buffered
    }

    pub(crate) fn resume(&mut self, direction: Direction) {
        self.side_mut(direction).resumed = true;
    }

    /// Only the first local answer counts (Envoy ignores the ones after it).
    pub(crate) fn answer_locally(
        &mut self,
        status: u32,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
        details: Option<String>,
    ) {
        if self.local.is_none() {
            self.response_code = Some(u64::from(status));
            self.local = Some(LocalAnswer { status, headers, body, details });
        }
    }

    pub(crate) fn knows_cluster(&self, cluster: &str) -> bool {
        self.clusters.as_ref().is_none_or(|clusters| clusters.iter().any(|c| c == cluster))
    }

    /// Records a callout; its id is its position, from 1.
    pub(crate) fn start_callout(&mut self, callout: Callout) -> u64 {
        self.callouts.push(callout);
        let id = self.callouts.len() as u64;
        self.pending.push_back(id);
        id
    }

    /// A string attribute: from the request headers, or fixed for the stream.
    pub(crate) fn attribute(&self, id: u32) -> Option<&Vec<u8>> {
        let header = |name: &str| {
            self.request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
        };
        match id {
            attribute::PATH => header(":path"),
            attribute::HOST => header(":authority").or_else(|| header("host")),
            attribute::SCHEME => header(":scheme"),
            attribute::METHOD => header(":method"),
            attribute::REFERER => header("referer"),
            attribute::USER_AGENT => header("user-agent"),
            attribute::ID => header("x-request-id"),
            attribute::URL_PATH
            | attribute::QUERY
            | attribute::PROTOCOL
            | attribute::CLUSTER_NAME
            | attribute::ROUTE_NAME => self.attributes.get(&id),
            _ => None,
        }
    }

    /// A number attribute: the response code, once there is one.
    pub(crate) fn attribute_int(&self, id: u32) -> Option<u64> {
        match id {
            attribute::RESPONSE_CODE => self.response_code,
            _ => None,
        }
    }

    /// Fixes the attributes of a request to `path` on `route` (and its cluster).
    pub(crate) fn set_request_attributes(&mut self, path: &str, route: Option<&str>, cluster: Option<&str>) {
        let (url_path, query) = path.split_once('?').unwrap_or((path, ""));
        self.attributes.insert(attribute::URL_PATH, url_path.as_bytes().to_vec());
        self.attributes.insert(attribute::QUERY, query.as_bytes().to_vec());
        self.attributes.insert(attribute::PROTOCOL, b"HTTP/1.1".to_vec());
        if let Some(route) = route {
            self.attributes.insert(attribute::ROUTE_NAME, route.as_bytes().to_vec());
        }
        if let Some(cluster) = cluster {
            self.attributes.insert(attribute::CLUSTER_NAME, cluster.as_bytes().to_vec());
        }
    }
}
