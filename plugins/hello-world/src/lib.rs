//! # hello-world
//!
//! Answers every request with `200 hello world`; the upstream is never called.
//! The smallest useful plugin, and a template for new ones.

use gateway_sdk::prelude::*;

/// No settings: the config is `{}` (unknown keys are refused, to catch typos).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {}

pub struct HelloWorld;

impl Plugin for HelloWorld {
    const NAME: &'static str = "hello-world";
    type Config = Config;
    type State = ();

    fn on_request_headers(req: &mut Request<Self>, _config: &Config) -> HeaderAction {
        req.respond(200, &[], "hello world")
    }
}

gateway_sdk::main!(HelloWorld);
