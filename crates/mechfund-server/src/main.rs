//! The `mechfund` binary: replays, verifies and previews donation logs from the command line,
//! and serves the HTTP API over a SQLite event store.
//!
//! - `admin`: `import`, `export`, `backup` and `restore` of the SQLite store;
//! - `cli`: the subcommands and their arguments (`replay`, `whatif`, `verify`, `rules`, `serve`);
//! - `ddc`: a DockerDiscordControl installation on disk (`--ddc DIR`);
//! - `lines`: block and line reading of large logs for the CLI;
//! - `serve`: the server (routes, writer, store, snapshots, auth; see its module docs).

mod admin;
mod cli;
mod ddc;
mod lines;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
