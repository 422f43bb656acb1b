//! The numbers of the Proxy-Wasm ABI the host speaks, as types: which
//! direction of a stream, which header map or buffer, and what a headers or
//! body callback's return value tells the host. Host functions and the
//! filter driver convert at the boundary and work with these.
//!
//! A leaf: depends on nothing else in the crate.

/// One direction of a stream at the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The request, on its way upstream.
    Request,
    /// The response, on its way to the client.
    Response,
}

impl Direction {
    /// `"request"` or `"response"`, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }

    pub(crate) fn is_response(self) -> bool {
        self == Direction::Response
    }
}

/// `proxy_continue_stream`'s and `proxy_close_stream`'s stream types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamType {
    /// 0, 1: an HTTP stream's direction.
    Http(Direction),
    /// 2: the downstream connection (TCP filters).
    Downstream,
    /// 3: the upstream connection (TCP filters).
    Upstream,
}

impl StreamType {
    pub(crate) fn from_abi(kind: i32) -> Option<StreamType> {
        Some(match kind {
            0 => StreamType::Http(Direction::Request),
            1 => StreamType::Http(Direction::Response),
            2 => StreamType::Downstream,
            3 => StreamType::Upstream,
            _ => return None,
        })
    }
}

/// The header maps (`MapType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapType {
    /// 0.
    RequestHeaders,
    /// 1: the request trailers, in their callback (until they go on).
    RequestTrailers,
    /// 2.
    ResponseHeaders,
    /// 3: the response trailers, in their callback.
    ResponseTrailers,
    /// 4 (not modelled).
    GrpcReceiveInitialMetadata,
    /// 5 (not modelled).
    GrpcReceiveTrailingMetadata,
    /// 6: the headers of the HTTP call answer being delivered.
    HttpCallResponseHeaders,
    /// 7: the trailers of the HTTP call answer being delivered.
    HttpCallResponseTrailers,
}

impl MapType {
    pub(crate) fn from_abi(map: i32) -> Option<MapType> {
        Some(match map {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            4 => MapType::GrpcReceiveInitialMetadata,
            5 => MapType::GrpcReceiveTrailingMetadata,
            6 => MapType::HttpCallResponseHeaders,
            7 => MapType::HttpCallResponseTrailers,
            _ => return None,
        })
    }

    /// The stream direction whose headers this map is, if it is one.
    pub(crate) fn headers_of(self) -> Option<Direction> {
        match self {
            MapType::RequestHeaders => Some(Direction::Request),
            MapType::ResponseHeaders => Some(Direction::Response),
            _ => None,
        }
    }

    /// The stream direction whose trailers this map is, if it is one.
    pub(crate) fn trailers_of(self) -> Option<Direction> {
        match self {
            MapType::RequestTrailers => Some(Direction::Request),
            MapType::ResponseTrailers => Some(Direction::Response),
            _ => None,
        }
    }
}

/// The buffers (`BufferType`); 9 is Higress's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufferType {
    /// 0: the request body chunk (or what was buffered).
    RequestBody,
    /// 1: the response body chunk.
    ResponseBody,
    /// 2 (TCP; not modelled: empty).
    DownstreamData,
    /// 3 (TCP; not modelled: empty).
    UpstreamData,
    /// 4: the body of the HTTP call answer being delivered.
    HttpCallResponseBody,
    /// 5 (not modelled: empty).
    GrpcReceiveBuffer,
    /// 6: `proxy_on_vm_start`'s configuration.
    VmConfiguration,
    /// 7: `proxy_on_configure`'s configuration.
    PluginConfiguration,
    /// 8 (not modelled: empty).
    CallData,
    /// 9, Higress only: the Redis answer being delivered.
    RedisCallResponse,
}

impl BufferType {
    /// The buffer numbered `kind`; Higress has one more than Envoy.
    pub(crate) fn from_abi(kind: i32, higress: bool) -> Option<BufferType> {
        Some(match kind {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            2 => BufferType::DownstreamData,
            3 => BufferType::UpstreamData,
            4 => BufferType::HttpCallResponseBody,
            5 => BufferType::GrpcReceiveBuffer,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            8 => BufferType::CallData,
            9 if higress => BufferType::RedisCallResponse,
            _ => return None,
        })
    }

    /// The stream direction whose body this buffer is, if it is one.
    pub(crate) fn body_of(self) -> Option<Direction> {
        match self {
            BufferType::RequestBody => Some(Direction::Request),
            BufferType::ResponseBody => Some(Direction::Response),
            _ => None,
        }
    }
}

/// The status of a Redis answer (`proxy_on_redis_call_response`): any
/// value but [`REDIS_ANSWERED`] means no data (its SDKs read it so).
pub(crate) const REDIS_ANSWERED: i32 = 0;
/// What the host sends for a failure, a timeout or a disconnect.
pub(crate) const REDIS_NO_ANSWER: i32 = 1;

/// What a headers callback returns (`FilterHeadersStatus`), after Envoy's conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderStatus {
    /// 0.
    Continue,
    /// 1: headers held, body still delivered.
    StopIteration,
    /// 2.
    ContinueAndEndStream,
    /// 3: headers and body held.
    StopAllIterationAndBuffer,
    /// 4: headers and body held.
    StopAllIterationAndWatermark,
}

impl HeaderStatus {
    /// Envoy's reading of a callback's return value `returned`: after a local
    /// response (`stopped`) or for a value it does not know, 4; a 1 is 4
    /// unless `allow_on_headers_stop_iteration`.
    pub(crate) fn from_callback(returned: i64, stopped: bool, allow_stop_iteration: bool) -> HeaderStatus {
        match returned {
            _ if stopped => HeaderStatus::StopAllIterationAndWatermark,
            0 => HeaderStatus::Continue,
            1 if allow_stop_iteration => HeaderStatus::StopIteration,
            2 => HeaderStatus::ContinueAndEndStream,
            3 => HeaderStatus::StopAllIterationAndBuffer,
            _ => HeaderStatus::StopAllIterationAndWatermark,
        }
    }

    /// The ABI number (as [`crate::Event::Paused`] reports it).
    pub(crate) fn abi(self) -> u32 {
        match self {
            HeaderStatus::Continue => 0,
            HeaderStatus::StopIteration => 1,
            HeaderStatus::ContinueAndEndStream => 2,
            HeaderStatus::StopAllIterationAndBuffer => 3,
            HeaderStatus::StopAllIterationAndWatermark => 4,
        }
    }
}

/// What a body callback returns (`FilterDataStatus`), after Envoy's conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataStatus {
    /// 0.
    Continue,
    /// 1: the chunk is held, and later ones are added to it.
    StopIterationAndBuffer,
    /// 2: held, with the buffer's watermark.
    StopIterationAndWatermark,
    /// 3: held, and the chunk is not kept.
    StopIterationNoBuffer,
}

impl DataStatus {
    /// Envoy's reading of a callback's return value: after a local response
    /// (`stopped`) or for a value it does not know, `StopIterationNoBuffer`.
    pub(crate) fn from_callback(returned: i64, stopped: bool) -> DataStatus {
        match returned {
            _ if stopped => DataStatus::StopIterationNoBuffer,
            0 => DataStatus::Continue,
            1 => DataStatus::StopIterationAndBuffer,
            2 => DataStatus::StopIterationAndWatermark,
            _ => DataStatus::StopIterationNoBuffer,
        }
    }

    /// The ABI number (as [`crate::Event::Paused`] reports it).
    pub(crate) fn abi(self) -> u32 {
        match self {
            DataStatus::Continue => 0,
            DataStatus::StopIterationAndBuffer => 1,
            DataStatus::StopIterationAndWatermark => 2,
            DataStatus::StopIterationNoBuffer => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_answers_read_as_envoy_reads_them() {
        assert_eq!(HeaderStatus::from_callback(1, false, false), HeaderStatus::StopAllIterationAndWatermark);
        assert_eq!(HeaderStatus::from_callback(1, false, true), HeaderStatus::StopIteration);
        assert_eq!(HeaderStatus::from_callback(0, true, true), HeaderStatus::StopAllIterationAndWatermark);
        assert_eq!(HeaderStatus::from_callback(-1, false, true), HeaderStatus::StopAllIterationAndWatermark);
        assert_eq!(HeaderStatus::from_callback(9, false, true).abi(), 4);
        for n in 0..=4 {
            assert_eq!(i64::from(HeaderStatus::from_callback(n, false, true).abi()), n);
        }
        assert_eq!(DataStatus::from_callback(0, true), DataStatus::StopIterationNoBuffer);
        assert_eq!(DataStatus::from_callback(7, false), DataStatus::StopIterationNoBuffer);
        for n in 0..=3 {
            assert_eq!(i64::from(DataStatus::from_callback(n, false).abi()), n);
        }
    }

    #[test]
    fn numbers_name_maps_buffers_and_streams() {
        assert_eq!(MapType::from_abi(2).and_then(MapType::headers_of), Some(Direction::Response));
        assert_eq!(MapType::from_abi(6).and_then(MapType::headers_of), None);
        assert_eq!(MapType::from_abi(8), None);
        assert_eq!(BufferType::from_abi(9, false), None);
        assert_eq!(BufferType::from_abi(9, true), Some(BufferType::RedisCallResponse));
        assert_eq!(BufferType::from_abi(0, false).and_then(BufferType::body_of), Some(Direction::Request));
        assert_eq!(StreamType::from_abi(1), Some(StreamType::Http(Direction::Response)));
        assert_eq!(StreamType::from_abi(4), None);
    }
}
