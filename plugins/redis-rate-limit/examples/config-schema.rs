//! Prints the JSON Schema of redis-rate-limit's configuration; `cargo xtask build` writes
//! it to `dist/redis-rate-limit.schema.json`.

fn main() {
    println!("{:#}", redis_rate_limit::config_schema());
}
