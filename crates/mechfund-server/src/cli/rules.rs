//! `--rules R.json` (spec §2.1), read the same way by every command that takes it.

use std::path::Path;

use mechfund_core::Rules;

use super::error::CliError;

/// The rules in `path`, or the defaults when no file is given.
///
/// # Errors
/// [`CliError::Usage`] naming the file: unreadable, or not valid rules (with the core's reason).
pub fn load_rules(path: Option<&Path>) -> Result<Rules, CliError> {
    let Some(path) = path else { return Ok(Rules::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read rules {}: {e}", path.display())))?;
    Rules::from_json(&text).map_err(|e| CliError::Usage(format!("invalid rules in {}: {e}", path.display())))
}
