//! `embed_migrations!` reads `migrations/` at compile time, but cargo only knows about the files
//! it included: without this, a new migration directory is not compiled in until something else
//! changes.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
