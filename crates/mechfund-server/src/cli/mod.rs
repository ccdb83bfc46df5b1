//! The `mechfund` command line (spec §3.2, the CLI contract): the subcommands, their arguments,
//! and the exit codes.
//!
//! - [`log`]: `replay`, `whatif`, `verify` and `rules`: logs and DDC installations on disk;
//! - [`admin`]: `import`, `export`, `backup`, `restore` and `verify --data`: the server's store;
//! - [`rules`]: the one reader of a `--rules` file;
//! - [`error`]: [`CliError`] and its exit code;
//! - [`output`]: JSON on stdout, a progress bar on a terminal.
//!
//! Big logs are read and replayed on every core by [`crate::pipeline`].
//!
//! `serve` is [`crate::serve`].

pub mod admin;
pub mod error;
pub mod log;
pub mod output;
pub mod rules;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use self::error::CliError;

/// mechfund: the mech donation rules — replay logs, preview goals, verify logs.
#[derive(Debug, Parser)]
#[command(name = "mechfund", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay an event log and print the state, display, diagnostics and level-ups as JSON.
    Replay(log::ReplayArgs),
    /// Print the goal table for a member count.
    Whatif(log::WhatifArgs),
    /// Replay a log and print its diagnostics; exit 1 if any is a warning other than
    /// recorded_goal_differs.
    Verify(log::VerifyArgs),
    /// Print the rules JSON (spec §2.1) equivalent to a DDC installation's files.
    Rules(log::RulesArgs),
    /// Run the HTTP server (SQLite event store, admin token, dashboard at `/`).
    Serve(crate::serve::ServeArgs),
    /// Import a DDC events.jsonl into mechs of the store that have no events yet (seqs kept,
    /// lines stored byte for byte, all or nothing). Refuses while a server holds the store.
    Import(admin::ImportArgs),
    /// Print the stored event lines (every mech in seq order, or one mech), byte for byte.
    Export(admin::ExportArgs),
    /// Copy the store into a new file with SQLite's online backup (fine while a server runs).
    Backup(admin::BackupArgs),
    /// Replace the store by a backup (stop the server first): checks the backup, keeps the
    /// previous database aside, removes stale -wal/-shm files.
    Restore(admin::RestoreArgs),
}

/// Runs the CLI and returns the process exit code.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Replay(args) => log::replay_command(&args),
        Command::Whatif(args) => log::whatif_command(&args),
        Command::Verify(args) => match (args.store_url(), args.store_dir()) {
            (Some(url), _) => admin::postgres_url(Some(url)).and_then(|_| admin::verify_postgres(url)),
            (None, Some(data)) => admin::verify_store(data),
            (None, None) => log::verify_command(&args),
        },
        Command::Rules(args) => log::rules_command(&args),
        Command::Serve(args) => match rules::load_rules(args.rules_file()) {
            Ok(rules) => return crate::serve::run(args, rules),
            Err(e) => Err(e),
        },
        Command::Import(args) => admin::import_command(&args),
        Command::Export(args) => admin::export_command(&args),
        Command::Backup(args) => admin::backup_command(&args),
        Command::Restore(args) => admin::restore_command(&args),
    };
    match outcome {
        Ok(code) => code,
        // The reader went away (`mechfund replay big.jsonl | head`): nothing left to say.
        Err(CliError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mechfund: {e}");
            e.exit_code()
        }
    }
}
