//! Minimal `--name value` / `--name=value` / `--flag` parsing, shared by every command.

use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// The arguments after the command name, consumed option by option.
#[derive(Debug)]
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    /// Wraps the raw arguments.
    pub fn new(rest: Vec<String>) -> Args {
        Args { rest }
    }

    /// Whether `-h` or `--help` was given.
    pub fn wants_help(&self) -> bool {
        self.rest.iter().any(|a| a == "-h" || a == "--help")
    }

    /// Takes `--name` (a switch without a value).
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        self.rest.len() != before
    }

    /// Takes `--name VALUE` or `--name=VALUE` and parses the value.
    pub fn value<T: FromStr>(&mut self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let prefix = format!("{name}=");
        let Some(i) = self.rest.iter().position(|a| a == name || a.starts_with(&prefix)) else {
            return Ok(None);
        };
        let arg = self.rest.remove(i);
        let text = match arg.strip_prefix(&prefix) {
            Some(text) => text.to_owned(),
            None if i < self.rest.len() => self.rest.remove(i),
            None => bail!("{name} needs a value"),
        };
        let value = text.parse().with_context(|| format!("{name}: cannot use {text:?}"))?;
        Ok(Some(value))
    }

    /// Like [`Args::value`], but the option must be there.
    pub fn required<T: FromStr>(&mut self, name: &str) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.value(name)?.with_context(|| format!("{name} is required"))
    }

    /// Takes what is left as positional arguments; an option left over (`--typo`) is an error.
    pub fn positionals(self) -> Result<Vec<String>> {
        if let Some(option) = self.rest.iter().find(|a| a.starts_with('-')) {
            bail!("unexpected option {option:?} (see --help)");
        }
        Ok(self.rest)
    }

    /// Fails if anything was not consumed (a typo must not be ignored silently).
    pub fn finish(self) -> Result<()> {
        if let Some(extra) = self.rest.first() {
            bail!("unexpected argument {extra:?} (see --help)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::new(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn parses_values_flags_and_rejects_leftovers() {
        let mut a = args(&["--events", "10", "--seed=3", "--quick", "--out", "x.jsonl"]);
        assert_eq!(a.required::<u64>("--events").unwrap(), 10);
        assert_eq!(a.value::<u64>("--seed").unwrap(), Some(3));
        assert_eq!(a.value::<u64>("--runs").unwrap(), None);
        assert!(a.flag("--quick"));
        assert_eq!(a.required::<String>("--out").unwrap(), "x.jsonl");
        a.finish().unwrap();

        assert!(args(&["--events"]).value::<u64>("--events").is_err());
        assert!(args(&["--events", "ten"]).value::<u64>("--events").is_err());
        assert!(args(&["--bogus"]).finish().is_err());
    }
}
