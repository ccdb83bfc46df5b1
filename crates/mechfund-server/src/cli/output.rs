//! What the CLI writes: JSON on stdout, and the progress bar of long work (replaying or
//! importing a big log) on stderr.

use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::error::CliError;

/// Prints `value` as pretty JSON and a newline on stdout.
///
/// # Errors
/// Stdout failing (a closed pipe is [`CliError::Io`] with `BrokenPipe`).
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// Inputs smaller than this finish before a bar would help.
const SHOWN_FROM: u64 = 8 << 20;

/// A bar over `length` bytes of work on an input of `size` bytes, saying `message`; hidden
/// unless stderr is a terminal and the input is big.
#[must_use]
pub fn bytes_bar(size: u64, length: u64, message: String) -> ProgressBar {
    if !io::stderr().is_terminal() || size < SHOWN_FROM {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message);
    bar
}
