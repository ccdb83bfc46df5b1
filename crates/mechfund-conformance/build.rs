//! Embeds every `tests/conformance/*.json` so the cases run where there is no filesystem (wasm).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // At run time: cargo sets it for the build script, and a target dir shared by clones at
    // different paths must not reuse another clone's compiled-in path.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("../../tests/conformance");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/conformance exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out =
        String::from("/// Every conformance file: (file name, contents).\npub const FILES: &[(&str, &str)] = &[\n");
    for path in &files {
        println!("cargo::rerun-if-changed={}", path.display());
        let name = path.file_name().and_then(|n| n.to_str()).expect("UTF-8 file name");
        let absolute = path.canonicalize().expect("canonical path");
        writeln!(out, "    ({name:?}, include_str!({:?})),", absolute.display().to_string()).expect("write to string");
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("files.rs");
    std::fs::write(target, out).expect("write files.rs");
}
