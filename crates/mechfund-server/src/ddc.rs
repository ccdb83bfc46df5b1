//! A DockerDiscordControl installation on disk (spec §2.8): finding its config dir and reading
//! its files for the core's `ddc` module. Used by `replay/verify/rules --ddc` and
//! `serve --ddc`.
//!
//! A missing file means DDC's default, as in DDC, and is reported as a note; a file that
//! exists but cannot be read or is not what DDC writes is an error naming the file, except the
//! snapshot and the member count, which DDC itself ignores when unreadable (so do we, and say so).

use std::io;
use std::path::{Path, PathBuf};

use mechfund_core::Rules;
use mechfund_core::ddc::{
    self, CONFIG_FILE, DECAY_FILE, DdcError, EVENTS_FILE, EVOLUTION_MODE_FILE, MEMBER_COUNT_FILE, RulesFiles, Snapshot,
};

/// The config dir of a DDC installation (`DDC_CONFIG_DIR`, `/app/config` in DDC's image).
#[derive(Clone, Debug)]
pub struct Installation {
    dir: PathBuf,
}

/// Everything read from an installation for one mech.
#[derive(Debug)]
pub struct Reading {
    /// The rules its files give.
    pub rules: Rules,
    /// DDC's snapshot of the mech, when it has a usable one.
    pub snapshot: Option<Snapshot>,
    /// Defaults taken and files ignored, one sentence each.
    pub notes: Vec<String>,
}

impl Installation {
    /// Finds the config dir: `dir` itself, or `dir/config` when `dir` is the folder above it
    /// (the volume DDC's compose file mounts).
    ///
    /// # Errors
    /// A message saying what was looked for, when neither holds DDC's `progress/` folder.
    pub fn open(dir: &Path) -> Result<Installation, String> {
        if !dir.is_dir() {
            return Err(format!("--ddc {}: not a directory (give DDC's config dir, DDC_CONFIG_DIR)", dir.display()));
        }
        for candidate in [dir.to_path_buf(), dir.join("config")] {
            if candidate.join("progress").is_dir() {
                return Ok(Installation { dir: candidate });
            }
        }
        Err(format!(
            "--ddc {}: no progress/ folder here or in config/ — give DDC's config dir (DDC_CONFIG_DIR, \
             /app/config in its Docker image), which holds progress/events.jsonl",
            dir.display()
        ))
    }

    /// The config dir.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of the installation by its path relative to the config dir.
    #[must_use]
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Where DDC keeps its snapshot of `mech`; `None` when the id (from a log) is not a plain
    /// file name and so names no snapshot.
    #[must_use]
    pub fn snapshot_path(&self, mech: &str) -> Option<PathBuf> {
        let plain = !(mech.is_empty() || mech == "." || mech == ".." || mech.contains(['/', '\\', '\0']));
        plain.then(|| self.path(&ddc::snapshot_file(mech)))
    }

    /// The event log DDC appends to.
    #[must_use]
    pub fn events(&self) -> PathBuf {
        self.path(EVENTS_FILE)
    }

    /// The text of a file, `None` when it does not exist.
    ///
    /// # Errors
    /// [`DdcError`] naming the file when it exists but cannot be read as UTF-8 text.
    pub fn read(&self, relative: &str) -> Result<Option<String>, DdcError> {
        match std::fs::read(self.path(relative)) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| DdcError { file: relative.to_owned(), message: format!("not UTF-8 text: {e}") }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DdcError { file: relative.to_owned(), message: format!("cannot read: {e}") }),
        }
    }

    /// The rules of the installation, with a note per default taken.
    ///
    /// # Errors
    /// [`DdcError`] naming the file when a rules file is unreadable or malformed.
    pub fn rules(&self) -> Result<(Rules, Vec<String>), DdcError> {
        let config = self.read(CONFIG_FILE)?;
        let decay = self.read(DECAY_FILE)?;
        let evolution_mode = self.read(EVOLUTION_MODE_FILE)?;
        ddc::rules(RulesFiles {
            config: config.as_deref(),
            decay: decay.as_deref(),
            evolution_mode: evolution_mode.as_deref(),
        })
    }

    /// DDC's snapshot of `mech`; a missing or unusable one is a note and `None`, as DDC falls back
    /// to rebuilding from its log.
    #[must_use]
    pub fn snapshot(&self, mech: &str) -> (Option<Snapshot>, Option<String>) {
        if self.snapshot_path(mech).is_none() {
            return (
                None,
                Some(format!("mech {mech:?} cannot name a snapshot file; the goal is priced from the rules")),
            );
        }
        let file = ddc::snapshot_file(mech);
        let text = match self.read(&file) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return (None, Some(format!("{file} is missing: the current goal is priced from the rules")));
            }
            Err(e) => return (None, Some(format!("{e}; it is ignored and the current goal is priced from the rules"))),
        };
        match Snapshot::from_json(&file, &text) {
            Ok(snapshot) => (Some(snapshot), None),
            Err(e) => (None, Some(format!("{e}; it is ignored and the current goal is priced from the rules"))),
        }
    }

    /// The member count DDC prices its next level with, and a note when it is DDC's default.
    #[must_use]
    pub fn member_count(&self) -> (i64, Option<String>) {
        match self.read(MEMBER_COUNT_FILE) {
            Ok(text) => ddc::member_count(text.as_deref()),
            Err(e) => (ddc::DEFAULT_MEMBER_COUNT, Some(format!("{e}; DDC prices new levels with 50 members"))),
        }
    }

    /// The rules, `mech`'s snapshot and every note, as replay needs them.
    ///
    /// # Errors
    /// [`DdcError`] naming the file when a rules file is unreadable or malformed.
    pub fn read_for(&self, mech: &str) -> Result<Reading, DdcError> {
        let (rules, mut notes) = self.rules()?;
        let (snapshot, note) = self.snapshot(mech);
        notes.extend(note);
        let (members, note) = self.member_count();
        notes.push(note.unwrap_or_else(|| {
            format!("{MEMBER_COUNT_FILE}: {members} members; DDC prices its next level with this count")
        }));
        if !self.events().exists() {
            notes.push(format!("{EVENTS_FILE} is missing: DDC has recorded no events yet"));
        }
        Ok(Reading { rules, snapshot, notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_config_dir_itself_or_below() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("config/progress")).unwrap();
        let below = Installation::open(root.path()).unwrap();
        assert_eq!(below.dir(), root.path().join("config"));
        let itself = Installation::open(&root.path().join("config")).unwrap();
        assert_eq!(itself.dir(), root.path().join("config"));
        let error = Installation::open(&root.path().join("config/progress")).unwrap_err();
        assert!(error.contains("no progress/ folder"), "{error}");
        let error = Installation::open(&root.path().join("nowhere")).unwrap_err();
        assert!(error.contains("not a directory"), "{error}");
    }

    #[test]
    fn unusable_snapshot_is_a_note_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("progress/snapshots")).unwrap();
        std::fs::write(root.path().join("progress/snapshots/main.json"), "{\"level\": 2").unwrap();
        let ddc = Installation::open(root.path()).unwrap();
        let (snapshot, note) = ddc.snapshot("main");
        assert!(snapshot.is_none());
        assert!(note.unwrap().starts_with("progress/snapshots/main.json: not valid JSON"));
        let (_, note) = ddc.snapshot("../progress/snapshots/main");
        assert!(note.unwrap().contains("cannot name a snapshot file"));
        let (_, note) = ddc.snapshot("other");
        assert!(note.unwrap().starts_with("progress/snapshots/other.json is missing"));
    }
}
