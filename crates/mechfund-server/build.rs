//! Rebuilds the binary when the dashboard or the JS package it carries change: a release build
//! embeds `dist/` and `examples/embed/pkg/` as they are when it is compiled (a debug build reads
//! them at run time, so it needs no rebuild).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        // A directory is watched recursively; one that does not exist yet reruns every build
        // until it does, so a release built before `cargo xtask dashboard` catches up.
        for dir in ["../../dist", "../../examples/embed/pkg"] {
            println!("cargo:rerun-if-changed={dir}");
        }
    }
}
