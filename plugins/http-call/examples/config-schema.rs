//! Prints the JSON Schema of http-call's configuration; `cargo xtask build` writes
//! it to `dist/http-call.schema.json`.

fn main() {
    println!("{:#}", http_call::config_schema());
}
