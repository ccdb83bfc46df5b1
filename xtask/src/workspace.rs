//! Where things are: the workspace root, cargo, the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
///
/// Read at run time: `cargo run` sets `CARGO_MANIFEST_DIR` for the process it starts. The
/// compile-time value would be wrong when a target dir shared by several clones hands one clone
/// the xtask binary another clone built (cargo's fingerprints do not include the clone's path).
pub fn root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest_dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), else `cargo` on PATH.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    // xtask's cargo runs read no input: they get none of ours.
    command.stdin(std::process::Stdio::null());
    command
}

/// The target directory as cargo sees it (honours `CARGO_TARGET_DIR` and config files).
pub fn target_dir() -> Result<PathBuf> {
    let output =
        cargo().args(["metadata", "--format-version", "1", "--no-deps"]).output().context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).context("reading cargo metadata")?;
    meta["target_directory"].as_str().map(PathBuf::from).context("cargo metadata has no target_directory")
}

/// Runs `command` with inherited output and fails unless it succeeds.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}
