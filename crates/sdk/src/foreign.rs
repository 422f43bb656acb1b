//! Host functions a gateway offers by name, beyond the ABI
//! (`proxy_call_foreign_function`; Go's `proxywasm.CallForeignFunction`).
//!
//! Higress offers `get_log_level` (its current level as a little-endian
//! `u32`); Envoy offers, among others, `compress`/`uncompress` and
//! `declare_property`. A name the host does not know is an error, never a trap.
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # struct MyPlugin;
//! # impl Plugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     type Config = ();
//! #     type State = ();
//! # }
//! # fn demo(req: &mut Request<MyPlugin>) {
//! match gateway_sdk::foreign::call("get_log_level", b"") {
//!     Ok(level) => req.log().info(format_args!("host level {level:?}")),
//!     Err(err) => req.log().debug(format_args!("no get_log_level: {err}")),
//! }
//! # }
//! ```

use crate::host;
use std::fmt;

/// Why a foreign function could not be called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignError {
    /// The function's name.
    pub function: String,
    /// The host's status, by its ABI name and number (`NotFound (1)`: no such function).
    pub status: String,
}

impl fmt::Display for ForeignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "foreign function `{}` failed: the host returned {}", self.function, self.status)
    }
}

impl std::error::Error for ForeignError {}

/// Calls the host's function `name` with `argument`; its result bytes.
pub fn call(name: &str, argument: &[u8]) -> Result<Vec<u8>, ForeignError> {
    host::call_foreign_function(name, argument)
        .map_err(|status| ForeignError { function: name.to_string(), status: status.to_string() })
}
