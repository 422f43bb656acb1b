//! What both backends' host functions speak: statuses, log levels, metric
//! kinds. Numbered as in Proxy-Wasm, so that the shared code (`Request`, the
//! HTTP client, the logger, metrics) reads the Wasm and the native backend alike.

/// A non-`Ok` status returned by a host function (numbers as in the Proxy-Wasm ABI;
/// the native backend answers with the same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    /// The host has no such value (or function, or map).
    pub const NOT_FOUND: Status = Status(1);
    /// An argument the host refused (often: an edit in the wrong phase).
    pub const BAD_ARGUMENT: Status = Status(2);
    /// The host could not parse what it was given.
    pub const PARSE_FAILURE: Status = Status(4);
    /// Nothing there (an empty queue).
    pub const EMPTY: Status = Status(7);
    /// A shared value changed since it was read.
    pub const CAS_MISMATCH: Status = Status(8);
    /// The host failed.
    pub const INTERNAL_FAILURE: Status = Status(10);
    /// The host does not offer this call.
    pub const UNIMPLEMENTED: Status = Status(12);

    /// The ABI's name for this status.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Ok",
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            5 => "BadExpression",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            8 => "CasMismatch",
            9 => "ResultMismatch",
            10 => "InternalFailure",
            11 => "BrokenConnection",
            12 => "Unimplemented",
            _ => "Unknown",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

pub type HostResult<T> = Result<T, Status>;

/// Log levels of the ABI, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum LogLevel {
    /// Step-by-step detail, for following one request.
    Trace = 0,
    /// What a developer needs to see why something happened.
    Debug = 1,
    /// Events worth noting in normal operation.
    Info = 2,
    /// Something unexpected that the plugin worked around.
    Warn = 3,
    /// Something failed: a call, a request, a config.
    Error = 4,
    /// The plugin cannot go on working.
    Critical = 5,
}

/// Metric types of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}
