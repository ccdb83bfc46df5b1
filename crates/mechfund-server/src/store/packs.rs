//! Packs: each mech's events in the core's binary form ([`mechfund_core::parse::pack`]),
//! [`LINES`] to a row, so that a replay of a whole mech (a toggle of its first donation, recovery,
//! an import) reads an eighth of the bytes and parses no JSON (issue 16).
//!
//! A mech's packs are a chain from its first event: a row holds the lines of the mech's events
//! after `after_seq` up to `last_seq` (the first row's `after_seq` is 0, each next row's is the
//! `last_seq` of the one before), the format it was written in, and a digest over the pack and
//! the hash chain at `last_seq`. Only whole packs are written; the events after the chain's end
//! (fewer than [`LINES`] once [`extend`] ran) are read as text.
//!
//! A row of another format, or one that does not continue the chain, ends it: that row and every
//! later one are dropped, and written again from the text by the next [`extend`]. A pack that
//! fails its digest is dropped the same way. Packs never change once written: a deletion toggle
//! changes how the events fold, not the events. The writer extends a mech's chain whenever it
//! writes a checkpoint of it; every replay extends it first too, so after an upgrade the first
//! replay of a mech packs its whole log.

use std::io;

use mechfund_core::parse::pack::{self, PackError, Packer, plan, unpack};
use mechfund_core::replay::{Kept, Source, replay_source};
use mechfund_core::{Line, ReplayOptions, Replayer, Rules, StrictError};
use sha2::{Digest, Sha256};

use super::schema::hex;
use super::sql::{Param, Sql, StoreError};
use crate::pipeline::{Keeping, Workers, for_each_line, parse_lines};

/// Events of a mech in one pack.
pub const LINES: u64 = 4096;

/// Whole packs made per statement that reads the text: bounds what packing holds in memory.
const PACKS_PER_READ: u64 = 16;

/// Why a replay of [`Parsed`] lines stopped.
#[derive(Debug, thiserror::Error)]
pub enum ParsedError {
    /// A pack that passed its digest cannot be read (mechfund wrote it wrong).
    #[error(transparent)]
    Pack(#[from] PackError),
    /// A strict replay met a bad line.
    #[error(transparent)]
    Strict(#[from] StrictError),
}

/// A mech's lines after a seq, parsed: packs, then the lines after the chain's end.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Packs in order, each with the lines at its start to skip (those at or before the seq
    /// asked for: only the first pack has any).
    packs: Vec<(Vec<u8>, u64)>,
    tail: Vec<Line>,
}

impl Parsed {
    /// Calls `f` with every line, in order.
    ///
    /// # Errors
    /// A pack that cannot be read, or what `f` returns.
    pub fn for_each<E: From<PackError>>(&self, mut f: impl FnMut(&Line) -> Result<(), E>) -> Result<(), E> {
        for (pack, skip) in &self.packs {
            let mut lines = unpack(pack)?;
            for _ in 0..*skip {
                lines.next_line()?;
            }
            while let Some(line) = lines.next_line()? {
                f(line)?;
            }
        }
        self.tail.iter().try_for_each(f)
    }

    /// The core's replay of these lines ([`replay_source`]): the sparse first pass reads the
    /// packs' plans.
    ///
    /// # Errors
    /// A pack that cannot be read, or in strict mode the first bad line.
    pub fn replay(&self, rules: &Rules, options: ReplayOptions, keeping: Keeping) -> Result<Kept, ParsedError> {
        replay_source(&mut &*self, rules, options, keeping.checkpoint, keeping.every)
    }
}

impl Source for &Parsed {
    type Error = ParsedError;

    fn candidates(&mut self, replayer: &mut Replayer<'_>) -> Result<(), ParsedError> {
        let mut base = 0;
        for (pack, skip) in &self.packs {
            for (index, line) in plan(pack)? {
                if index >= *skip {
                    replayer.scan_candidate(base + index - skip + 1, &line);
                }
            }
            base += unpack(pack)?.remaining().saturating_sub(*skip);
        }
        for (n, line) in (base + 1..).zip(&self.tail) {
            replayer.scan_candidate(n, line);
        }
        Ok(())
    }

    fn each(&mut self, mut f: impl FnMut(u64, &Line) -> Result<(), StrictError> + Send) -> Result<(), ParsedError> {
        let mut n = 0;
        self.for_each(|line| {
            n += 1;
            f(n, line).map_err(ParsedError::from)
        })
    }
}

/// The digest of a pack whose last event's row has the chain hash `row_hash`.
fn pack_digest(row_hash: &str, data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"mechfund-pack\n");
    h.update(row_hash.as_bytes());
    h.update(b"\n");
    h.update(data);
    hex(&h.finalize())
}

/// Drops the packs of `mech` after seq `end`, saying why when there were any.
fn cut(db: &mut dyn Sql, mech: &str, end: u64, why: &str) -> Result<(), StoreError> {
    let dropped =
        db.execute("DELETE FROM packs WHERE mech = $1 AND last_seq > $2", &[Param::Text(mech), Param::int(end)])?;
    if dropped > 0 {
        tracing::warn!(mech, after_seq = end, dropped, "{why}: dropped, they are made again");
    }
    Ok(())
}

/// Where `mech`'s chain of packs ends (0: it has none). Rows that do not continue it, or are of
/// another format, are dropped.
fn chain_end(db: &mut dyn Sql, mech: &str) -> Result<u64, StoreError> {
    let rows = db.query(
        "SELECT after_seq, last_seq, format FROM packs WHERE mech = $1 ORDER BY last_seq",
        &[Param::Text(mech)],
    )?;
    let mut end = 0;
    for row in &rows {
        match (row[0].seq(), row[1].seq(), row[2].int()) {
            (Some(after), Some(last), Some(format))
                if after == end && last > after && format == i64::from(pack::FORMAT) =>
            {
                end = last;
            }
            _ => {
                cut(db, mech, end, "packs that do not continue the chain or are of another format")?;
                break;
            }
        }
    }
    Ok(end)
}

/// Packs the events of `mech` after its chain's end, [`LINES`] to a row, while there are that
/// many; returns the chain's new end.
///
/// # Errors
/// On a database error.
pub fn extend(db: &mut dyn Sql, mech: &str) -> Result<u64, StoreError> {
    extend_by(db, mech, LINES)
}

fn extend_by(db: &mut dyn Sql, mech: &str, per_pack: u64) -> Result<u64, StoreError> {
    let mut end = chain_end(db, mech)?;
    loop {
        // Most calls find less than a pack waiting: counted on the index, no line read.
        let waiting = db.query_opt(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE mech = $1 AND seq > $2 LIMIT $3) AS waiting",
            &[Param::Text(mech), Param::int(end), Param::int(per_pack)],
        )?;
        if waiting.and_then(|row| row[0].seq()).unwrap_or(0) < per_pack {
            return Ok(end);
        }
        let mut seqs = Vec::new();
        let mut text = Vec::new();
        // The chain hash of each pack's last row, for its digest.
        let mut hashes = Vec::new();
        let mut one_line_each = true;
        db.for_each(
            "SELECT seq, line, hash FROM events WHERE mech = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[Param::Text(mech), Param::int(end), Param::int(per_pack * PACKS_PER_READ)],
            &mut |row| {
                let line = row[1].text().unwrap_or_default();
                one_line_each &= !line.contains('\n');
                seqs.push(row[0].seq().unwrap_or(0));
                if (seqs.len() as u64).is_multiple_of(per_pack) {
                    hashes.push(row[2].text().unwrap_or_default().to_owned());
                }
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
                true
            },
        )?;
        if !one_line_each {
            // Never written by mechfund; the text path reads such a row as several lines.
            tracing::warn!(mech, after_seq = end, "a stored line holds a newline: its events are not packed");
            return Ok(end);
        }
        let whole = seqs.len() as u64 / per_pack * per_pack;
        if whole == 0 {
            return Ok(end);
        }
        let mut packs = Vec::new();
        let mut packer = Packer::new();
        let all = Workers::all_cores();
        // A few blocks parse faster here than handed to threads.
        let workers = if text.len() > 2 * all.block { all } else { Workers { threads: 1, ..all } };
        for_each_line(
            workers,
            text.as_slice(),
            mech,
            |_| {},
            |n, line| {
                if n <= whole {
                    packer.push(line);
                    if packer.lines() == per_pack {
                        packs.push((seqs[(n - 1) as usize], std::mem::take(&mut packer).finish()));
                    }
                }
                Ok::<_, io::Error>(())
            },
        )
        .map_err(|e| StoreError::Unexpected(e.to_string()))?;
        for ((last_seq, data), row_hash) in packs.into_iter().zip(&hashes) {
            let digest = pack_digest(row_hash, &data);
            db.execute(
                "INSERT INTO packs (mech, last_seq, after_seq, lines, format, data, digest) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (mech, last_seq) DO NOTHING",
                &[
                    Param::Text(mech),
                    Param::int(last_seq),
                    Param::int(end),
                    Param::int(per_pack),
                    Param::Int(pack::FORMAT.into()),
                    Param::Bytes(&data),
                    Param::Text(&digest),
                ],
            )?;
            end = last_seq;
        }
        if (seqs.len() as u64) < per_pack * PACKS_PER_READ {
            return Ok(end);
        }
    }
}

/// The lines of `mech` after seq `after`, parsed: its packs ([`extend`]ed first), then the
/// rest as text. `None` when packs keep failing their digests: read the text instead.
///
/// # Errors
/// On a database error.
pub fn lines_after(db: &mut dyn Sql, mech: &str, after: u64) -> Result<Option<Parsed>, StoreError> {
    lines_after_by(db, mech, after, LINES)
}

fn lines_after_by(db: &mut dyn Sql, mech: &str, after: u64, per_pack: u64) -> Result<Option<Parsed>, StoreError> {
    // A damaged pack is dropped with those after it and packed again; a second one means the
    // chain hashes themselves changed (the store's own check will say so).
    for _ in 0..2 {
        let end = extend_by(db, mech, per_pack)?;
        if let Some(parsed) = read(db, mech, after, end)? {
            return Ok(Some(parsed));
        }
    }
    Ok(None)
}

/// [`lines_after`] from a chain that ends at `end`; `None` when a pack failed its digest (it
/// and those after it are dropped).
fn read(db: &mut dyn Sql, mech: &str, after: u64, end: u64) -> Result<Option<Parsed>, StoreError> {
    let mut parsed = Parsed::default();
    if after < end {
        // Each pack with the chain hash of its last event (one round trip, not one per pack).
        let rows = db.query(
            "SELECT packs.after_seq, packs.last_seq, packs.data, packs.digest, events.hash \
             FROM packs LEFT JOIN events ON events.seq = packs.last_seq \
             WHERE packs.mech = $1 AND packs.last_seq > $2 AND packs.last_seq <= $3 ORDER BY packs.last_seq",
            &[Param::Text(mech), Param::int(after), Param::int(end)],
        )?;
        for mut row in rows {
            let after_seq = row[0].seq().unwrap_or(0);
            let digest = row[3].text().unwrap_or_default().to_owned();
            let row_hash = row[4].text().unwrap_or_default().to_owned();
            let data = std::mem::replace(&mut row[2], super::sql::Value::Null).into_bytes();
            if digest != pack_digest(&row_hash, &data) {
                cut(db, mech, after_seq, "packs that do not match their digests")?;
                return Ok(None);
            }
            let skip = if parsed.packs.is_empty() && after > after_seq {
                let row = db.query_opt(
                    "SELECT count(*) FROM events WHERE mech = $1 AND seq > $2 AND seq <= $3",
                    &[Param::Text(mech), Param::int(after_seq), Param::int(after)],
                )?;
                row.and_then(|row| row[0].seq()).unwrap_or(0)
            } else {
                0
            };
            parsed.packs.push((data, skip));
        }
    }
    let mut text = Vec::new();
    db.for_each_text(
        "SELECT line FROM events WHERE mech = $1 AND seq > $2 ORDER BY seq",
        &[Param::Text(mech), Param::int(after.max(end))],
        &mut |line| {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
            true
        },
    )?;
    if let Some(body) = text.strip_suffix(b"\n") {
        parsed.tail = parse_lines(body, mech);
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use mechfund_core::replay::replay_bytes_kept;
    use proptest::prelude::*;
    use rusqlite::Connection;

    use super::*;
    use crate::store::chain::Chain;
    use crate::store::schema::open_writer;
    use crate::store::sql::Sqlite;

    /// A store holding a generated log of `events` for `main`, at even seqs, with an event of
    /// `other` at every odd one (seqs are the store's, shared by its mechs).
    fn store(events: u64, seed: u64) -> (tempfile::TempDir, Connection) {
        store_swapped(events, seed, None)
    }

    /// [`store`], with two neighbouring lines of `main` swapped when `swap` is given: seqs out
    /// of order, which the plans' sparse first pass cannot take.
    fn store_swapped(events: u64, seed: u64, swap: Option<prop::sample::Index>) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer(&dir.path().join("mechfund.db")).expect("open");
        conn.pragma_update(None, "synchronous", "OFF").expect("pragma");
        let mut db = Sqlite(&conn);
        let mut chain = Chain::head(&mut db).expect("chain");
        let other = r#"{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"MemberCountUpdated","mech_id":"other","payload":{"member_count":20}}"#;
        let text = mechfund_loggen::log_text(events, seed);
        let mut lines: Vec<&str> = text.lines().collect();
        if let Some(at) = swap.filter(|_| lines.len() > 1) {
            let i = at.index(lines.len() - 1);
            lines.swap(i, i + 1);
        }
        for (i, line) in lines.into_iter().enumerate() {
            let seq = 2 * i as u64 + 1;
            chain.append(&mut db, seq, "other", other).expect("append");
            chain.append(&mut db, seq + 1, "main", line).expect("append");
        }
        (dir, conn)
    }

    /// `main`'s rows after `after` as the text path reads them.
    fn text_after(conn: &Connection, after: u64) -> Vec<u8> {
        crate::store::log::lines_after_seq(&mut Sqlite(conn), "main", after).expect("lines")
    }

    fn lines(parsed: &Parsed) -> Vec<Line> {
        let mut lines = Vec::new();
        parsed
            .for_each(|line| {
                lines.push(line.clone());
                Ok::<_, PackError>(())
            })
            .expect("packs read");
        lines
    }

    fn parsed(conn: &Connection, after: u64, per_pack: u64) -> Parsed {
        lines_after_by(&mut Sqlite(conn), "main", after, per_pack).expect("read").expect("packs hold")
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |row| row.get(0)).expect("count")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// From any seq, with any pack size, packs and the text after them are the lines the
        /// text path parses, and their replay is the core's; packs once written are reused, and
        /// damaged ones are dropped and written again.
        #[test]
        fn packs_are_the_lines_of_the_text(
            events in 1u64..1_200,
            seed in any::<u64>(),
            per_pack in 1u64..400,
            after in any::<prop::sample::Index>(),
            damaged in any::<prop::sample::Index>(),
            swap in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let (_dir, conn) = store_swapped(events, seed, swap);
            // 0, a seq of either mech, or beyond the end.
            let after = after.index(2 * events as usize + 2) as u64;
            let text = text_after(&conn, after);
            let expected: Vec<Line> = text.strip_suffix(b"\n").map(|body| parse_lines(body, "main")).unwrap_or_default();

            let first = parsed(&conn, after, per_pack);
            prop_assert_eq!(&lines(&first), &expected);
            let packs = count(&conn, "SELECT count(*) FROM packs");
            prop_assert_eq!(packs as u64, events / per_pack, "every whole pack is written");
            prop_assert_eq!(lines(&parsed(&conn, after, per_pack)), expected.clone());
            prop_assert_eq!(count(&conn, "SELECT count(*) FROM packs"), packs, "and reused");

            let options = ReplayOptions { mech: "main".to_owned(), ..ReplayOptions::default() };
            let keeping = Keeping { checkpoint: None, every: 64 };
            let ours = first.replay(&Rules::default(), options.clone(), keeping).expect("replay");
            let core = replay_bytes_kept(&text, &Rules::default(), options, None, 64).expect("replay");
            prop_assert_eq!(ours.result, core.result);
            prop_assert_eq!(ours.checkpoints, core.checkpoints);

            if packs > 0 {
                let at = damaged.index(packs as usize) as i64;
                let damage = [
                    "UPDATE packs SET digest = 'x' WHERE rowid = (SELECT rowid FROM packs ORDER BY last_seq LIMIT 1 OFFSET ?1)",
                    "UPDATE packs SET data = substr(data, 1, length(data) - 1) WHERE rowid = (SELECT rowid FROM packs ORDER BY last_seq LIMIT 1 OFFSET ?1)",
                    "UPDATE packs SET format = 99 WHERE rowid = (SELECT rowid FROM packs ORDER BY last_seq LIMIT 1 OFFSET ?1)",
                    "DELETE FROM packs WHERE rowid = (SELECT rowid FROM packs ORDER BY last_seq LIMIT 1 OFFSET ?1)",
                ];
                conn.execute(damage[seed as usize % damage.len()], [at]).expect("damage");
                prop_assert_eq!(lines(&parsed(&conn, after, per_pack)), expected);
                // Made again (by this read, or the next one when this read did not reach it).
                prop_assert_eq!(lines(&parsed(&conn, 0, per_pack)).len() as u64, events);
                prop_assert_eq!(count(&conn, "SELECT count(*) FROM packs"), packs);
                prop_assert_eq!(count(&conn, "SELECT count(*) FROM packs WHERE digest = 'x' OR format = 99"), 0);
            }
        }
    }

    /// The plans give the sparse first pass the lines it needs, numbered as the fold numbers
    /// them (a pack's skipped lines left out), so no exact pass follows: dropping the skip from
    /// the numbers, or a plan's line, makes this fail.
    #[test]
    fn the_plans_are_all_the_first_pass_needs() {
        let (_dir, conn) = store(3_000, 5);
        let options = ReplayOptions { mech: "main".to_owned(), ..ReplayOptions::default() };
        let rules = Rules::default();
        for after in [0, 1, 777, 2_001, 5_998] {
            let text = text_after(&conn, after);
            let core = replay_bytes_kept(&text, &rules, options.clone(), None, 0).expect("replay");
            let kept = parsed(&conn, after, 500).replay(&rules, options.clone(), Keeping::default());
            let kept = kept.expect("replay");
            assert!(!kept.rescanned, "after {after}");
            assert_eq!(kept.result, core.result, "after {after}");
        }
    }

    #[test]
    fn a_pack_that_passes_its_digest_but_cannot_be_read_is_an_error() {
        let (_dir, conn) = store(100, 3);
        let parsed = parsed(&conn, 0, 40);
        assert_eq!(parsed.packs.len(), 2);
        let mut broken = Parsed { packs: vec![(b"MFPK\x01\x05".to_vec(), 0)], tail: Vec::new() };
        let options = ReplayOptions { mech: "main".to_owned(), ..ReplayOptions::default() };
        let error = broken.replay(&Rules::default(), options, Keeping::default()).expect_err("cut short");
        assert!(matches!(error, ParsedError::Pack(PackError { at: 6, what: "cut short" })), "{error}");
        broken.packs.clear();
        assert!(lines(&broken).is_empty());
    }
}
