//! Prints the JSON Schema of hello-world's configuration; `cargo xtask build` writes
//! it to `dist/hello-world.schema.json`.

fn main() {
    println!("{:#}", hello_world::config_schema());
}
