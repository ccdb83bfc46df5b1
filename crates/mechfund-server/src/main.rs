//! The `mechfund` binary: replays, verifies and previews donation logs from the command line.

mod cli;
mod lines;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
