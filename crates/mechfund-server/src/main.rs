//! The `mechfund` binary: the command line of [`mechfund_server::cli`].

use std::process::ExitCode;

use clap::Parser;
use mechfund_server::cli::{Cli, run};

fn main() -> ExitCode {
    run(Cli::parse())
}
