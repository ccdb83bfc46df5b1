//! The one error type of the CLI and its exit codes (spec §3.2): 2 for arguments or inputs that
//! cannot be used, 1 for a command that could not do its work.

use std::io;
use std::process::ExitCode;

use mechfund_core::StrictError;

/// A failure the CLI reports before exiting.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Arguments or inputs that cannot be used (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Strict replay met a bad line (exit 1).
    #[error("strict replay stopped at {0}")]
    Strict(StrictError),
    /// Reading the log failed (exit 2).
    #[error("cannot read the log: {0}")]
    Io(#[from] io::Error),
    /// A command that could not do its work (exit 1): the message says why.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code for this failure.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Strict(_) | CliError::Failed(_) => ExitCode::from(1),
            CliError::Usage(_) | CliError::Io(_) => ExitCode::from(2),
        }
    }
}

impl From<StrictError> for CliError {
    fn from(e: StrictError) -> Self {
        CliError::Strict(e)
    }
}
