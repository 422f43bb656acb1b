//! # mock
//!
//! The example plugin of the Higress Go plugin guide: adds the request header `hello: world`, and when
//! `mockEnable` is true answers the request itself (by default `200 hello world`)
//! instead of calling the upstream. Status, headers and body of the mock
//! answer are configurable.

use gateway_sdk::fields::{Headers, StatusCode};
use gateway_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Answer requests with the mock response instead of passing them on.
    #[serde(default)]
    mock_enable: bool,
    /// Status of the mock response.
    #[serde(default = "ok")]
    status: StatusCode,
    /// Headers of the mock response.
    #[serde(default)]
    headers: Headers,
    /// Body of the mock response.
    #[serde(default = "hello_world")]
    body: String,
}

fn ok() -> StatusCode {
    StatusCode::OK
}

fn hello_world() -> String {
    "hello world".to_string()
}

pub struct Mock;

impl Plugin for Mock {
    const NAME: &'static str = "mock";
    type Config = Config;
    type State = ();

    fn on_request_headers(req: &mut Request<Self>, config: &Config) -> HeaderAction {
        req.add_header("hello", "world");
        if config.mock_enable {
            return req.respond(config.status.get(), &config.headers.pairs(), &config.body);
        }
        HeaderAction::Continue
    }
}

gateway_sdk::main!(Mock);
