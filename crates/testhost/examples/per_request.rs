//! Prints how long the test host takes per request through the mock plugin.
//!
//! `cargo run --release -p gateway-testhost --example per_request [path/to/mock.wasm]`

use gateway_testhost::{Error, Reply, TestHost};
use std::time::Instant;

fn main() -> Result<(), Error> {
    let path =
        std::env::args().nth(1).unwrap_or_else(|| format!("{}/../../dist/mock.wasm", env!("CARGO_MANIFEST_DIR")));
    let started = Instant::now();
    let host = TestHost::load(&path)?.config("{}")?;
    println!("load + configure: {:?}", started.elapsed());
    let runs = 20_000u32;
    let started = Instant::now();
    for _ in 0..runs {
        host.request().path("/get").body("ping").upstream(Reply::new(200).body("pong")).send()?;
    }
    println!("full request through {path}: {:?} per request ({runs} requests)", started.elapsed() / runs);
    Ok(())
}
