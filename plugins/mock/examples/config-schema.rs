//! Prints the JSON Schema of mock's configuration; `cargo xtask build` writes
//! it to `dist/mock.schema.json`.

fn main() {
    println!("{:#}", mock::config_schema());
}
