//! `cargo xtask wasm`: builds the embeddable JS package into `examples/embed/pkg/` and checks
//! its size budget (the `.wasm` after wasm-opt <= 100 KB gzipped; BENCHMARKS.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::args::Args;
use crate::tools::{path_with_tools, setup};
use crate::workspace::{cargo, root, run, target_dir};

pub const USAGE: &str = "cargo xtask wasm   (build examples/embed/pkg: wasm-bindgen --target web + wasm-opt -Oz)";

/// The size budget of the package's `.wasm`, gzipped (issue: <= 100 KB), enforced by the test
/// command.
pub const WASM_GZIP_BUDGET: u64 = 100 * 1024;

pub fn run_wasm(args: Args) -> Result<()> {
    args.finish()?;
    setup()?;
    let sizes = build_package()?;
    eprintln!("{sizes}");
    sizes.check_budget()
}

/// Sizes of the built package.
pub struct Sizes {
    pub wasm: u64,
    pub wasm_gzip: u64,
    pub js: u64,
    pub js_gzip: u64,
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kb = |n: u64| n as f64 / 1024.0;
        write!(
            f,
            "package: mechfund_wasm_bg.wasm {:.1} KB ({:.1} KB gzipped), mechfund_wasm.js {:.1} KB ({:.1} KB gzipped)",
            kb(self.wasm),
            kb(self.wasm_gzip),
            kb(self.js),
            kb(self.js_gzip)
        )
    }
}

impl Sizes {
    /// Fails if the package's wasm is over [`WASM_GZIP_BUDGET`].
    pub fn check_budget(&self) -> Result<()> {
        ensure!(
            self.wasm_gzip <= WASM_GZIP_BUDGET,
            "the package's wasm is {} bytes gzipped, over its {} byte budget; see BENCHMARKS.md for where the \
             bytes go (`twiggy top` on the module cargo builds)",
            self.wasm_gzip,
            WASM_GZIP_BUDGET
        );
        Ok(())
    }
}

/// The package's directory.
pub fn package_dir() -> PathBuf {
    root().join("examples/embed/pkg")
}

/// The size of `path` gzipped at the best compression.
pub fn gzip_len(path: &Path) -> Result<u64> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&bytes)?;
    Ok(encoder.finish()?.len() as u64)
}

/// How a package is compiled.
#[derive(Clone, Copy, Debug)]
pub enum Build {
    /// The embeddable package: smallest. Profile `wasm-release` (opt-level z, LTO), the standard
    /// library rebuilt for size with panics as immediate aborts, `wasm-opt -Oz --converge`.
    Size,
    /// The same code at full speed, for the wasm-vs-native benchmark: profile `wasm-speed`
    /// (opt-level 3, LTO), the prebuilt standard library, `wasm-opt -O3`.
    Speed,
}

/// Rust flags of the size build. They replace the `[target.wasm32-unknown-unknown]` rustflags of
/// `.cargo/config.toml` for that build, so they repeat its `+simd128`.
///
/// `-Zbuild-std` rebuilds `std` with `optimize_for_size` and `-Cpanic=immediate-abort` drops
/// panic messages and locations (a panic is a bare `unreachable` trap; the API never panics on
/// any input, which the browser tests check): 118 KB -> under 100 KB gzipped, the budget.
/// `-Zlocation-detail=none` drops the source paths `#[track_caller]` code still records.
/// These are unstable options of the installed stable toolchain, enabled for this one cargo run
/// with `RUSTC_BOOTSTRAP=1` (`rust-src` is installed by `cargo xtask setup`); no other build
/// uses them. If a toolchain upgrade breaks them, the package build fails loudly here.
const SIZE_RUSTFLAGS: &str =
    "-Ctarget-feature=+simd128 -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none";

impl Build {
    fn profile(self) -> &'static str {
        match self {
            Build::Size => "wasm-release",
            Build::Speed => "wasm-speed",
        }
    }

    /// wasm-opt's optimisation flags; the size build repeats `-Oz` until it stops shrinking.
    fn wasm_opt(self) -> &'static [&'static str] {
        match self {
            Build::Size => &["-Oz", "--converge"],
            Build::Speed => &["-O3"],
        }
    }
}

/// The hand-written files of the package, `(source in the workspace, name in the package)`: the
/// entry module that defines `<mechfund-progress>` before the wasm is instantiated, its types,
/// and the element's stylesheet (for the error the entry module shows when that fails).
const PACKAGE_FILES: [(&str, &str); 3] = [
    ("crates/mechfund-wasm/js/mechfund-progress.js", "mechfund-progress.js"),
    ("crates/mechfund-wasm/js/mechfund-progress.d.ts", "mechfund-progress.d.ts"),
    ("crates/mechfund-wasm/src/element/style.css", "mechfund-progress.css"),
];

/// Builds the embeddable package into `examples/embed/pkg`.
pub fn build_package() -> Result<Sizes> {
    build_package_with(Build::Size, &package_dir())
}

/// Builds the package (cargo, wasm-bindgen `--target web`, wasm-opt, [`PACKAGE_FILES`]) into `out`.
pub fn build_package_with(build: Build, out: &Path) -> Result<Sizes> {
    let path = path_with_tools();
    let profile = build.profile();
    let mut cargo = cargo();
    cargo
        .args(["build", "--locked", "-p", "mechfund-wasm", "--target", "wasm32-unknown-unknown", "--profile", profile])
        .env("PATH", &path);
    if let Build::Size = build {
        cargo
            .args(["-Zbuild-std=std,panic_abort", "-Zbuild-std-features=optimize_for_size"])
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", SIZE_RUSTFLAGS);
    }
    run(&mut cargo)?;
    let wasm = target_dir()?.join(format!("wasm32-unknown-unknown/{profile}/mechfund_wasm.wasm"));
    // wasm-bindgen adds snippets but never removes old ones.
    let snippets = out.join("snippets");
    if snippets.is_dir() {
        std::fs::remove_dir_all(&snippets).with_context(|| format!("removing {}", snippets.display()))?;
    }
    run(Command::new("wasm-bindgen").args(["--target", "web", "--out-dir"]).arg(out).arg(&wasm).env("PATH", &path))?;
    let bg = out.join("mechfund_wasm_bg.wasm");
    run(Command::new("wasm-opt")
        .args(build.wasm_opt())
        .args(["--strip-debug", "--strip-producers", "-o"])
        .arg(&bg)
        .arg(&bg)
        .env("PATH", &path))?;
    for (source, name) in PACKAGE_FILES {
        let source = root().join(source);
        std::fs::copy(&source, out.join(name)).with_context(|| format!("copying {}", source.display()))?;
    }
    let js = out.join("mechfund_wasm.js");
    Ok(Sizes {
        wasm: std::fs::metadata(&bg)?.len(),
        wasm_gzip: gzip_len(&bg)?,
        js: std::fs::metadata(&js)?.len(),
        js_gzip: gzip_len(&js)?,
    })
}
