//! RFC 3339 timestamps as integer microseconds since the Unix epoch.
//!
//! Parsing is strict and allocation-free (it runs once per log line): a date, `T`, a time with
//! 0–6 fraction digits, and an offset (`Z` or `±HH:MM`). Formatting follows Python's
//! `datetime.isoformat()` in UTC, which is what DDC writes and reads.

use std::fmt;

use thiserror::Error;

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// An instant, in microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Why a timestamp could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid RFC 3339 timestamp \"{text}\": {reason}; expected e.g. \"2025-01-17T14:38:48.828173+00:00\"")]
pub struct TimestampError {
    /// The text that was given (truncated to 64 characters).
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Timestamp {
    /// Parses an RFC 3339 timestamp with an offset and at most six fraction digits.
    ///
    /// # Errors
    /// [`TimestampError`] naming what is wrong (field out of range, missing offset, too many
    /// fraction digits, …).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        parse_micros(text.as_bytes())
            .map(Timestamp)
            .map_err(|reason| TimestampError { text: text.chars().take(64).collect(), reason })
    }

    /// Builds a timestamp from epoch milliseconds (as JavaScript's `Date.now()`).
    #[must_use]
    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis.saturating_mul(1000))
    }

    /// Microseconds since the epoch.
    #[must_use]
    pub const fn micros(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// UTC, DDC style: `2025-01-17T14:38:48.828173+00:00`, the fraction omitted when zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let of_day = self.0.rem_euclid(MICROS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let secs = of_day / 1_000_000;
        let micros = of_day % 1_000_000;
        write!(f, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        f.write_str("+00:00")
    }
}

fn digits(bytes: &[u8], at: usize, count: usize) -> Result<i64, &'static str> {
    let slice = bytes.get(at..at + count).ok_or("too short")?;
    slice.iter().try_fold(0i64, |acc, &b| {
        if b.is_ascii_digit() { Ok(acc * 10 + i64::from(b - b'0')) } else { Err("expected a digit") }
    })
}

fn expect(bytes: &[u8], at: usize, what: u8, reason: &'static str) -> Result<(), &'static str> {
    if bytes.get(at) == Some(&what) { Ok(()) } else { Err(reason) }
}

fn parse_micros(b: &[u8]) -> Result<i64, &'static str> {
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-', "expected '-' after the year")?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-', "expected '-' after the month")?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't')) {
        return Err("expected 'T' between date and time");
    }
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b':', "expected ':' after the hour")?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b':', "expected ':' after the minutes")?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range");
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            if at - start == 6 {
                return Err("more than 6 fraction digits");
            }
            micros = micros * 10 + i64::from(d - b'0');
            at += 1;
        }
        if at == start {
            return Err("expected digits after '.'");
        }
        for _ in at - start..6 {
            micros *= 10;
        }
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, at + 1, 2)?;
            expect(b, at + 3, b':', "expected ':' in the offset")?;
            let om = digits(b, at + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            at += 6;
            let minutes = oh * 60 + om;
            if sign == b'-' { -minutes } else { minutes }
        }
        None => return Err("missing offset (add 'Z' or '+00:00')"),
        Some(_) => return Err("unexpected character before the offset"),
    };
    if at != b.len() {
        return Err("unexpected text after the offset");
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(secs * 1_000_000 + micros)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let utc = Timestamp::parse("2025-01-17T14:38:48.828173+00:00").unwrap();
        assert_eq!(utc, Timestamp::parse("2025-01-17T14:38:48.828173Z").unwrap());
        assert_eq!(utc, Timestamp::parse("2025-01-17T16:38:48.828173+02:00").unwrap());
        assert_eq!(utc.micros(), 1_737_124_728_828_173);
        assert_eq!(Timestamp::parse("1970-01-01T00:00:00Z").unwrap(), Timestamp(0));
        assert_eq!(Timestamp::parse("1970-01-01T00:00:00.5Z").unwrap(), Timestamp(500_000));
        assert_eq!(Timestamp::parse("1969-12-31T23:59:59-00:30").unwrap().micros(), 1_799_000_000);
    }

    #[test]
    fn rejects_what_rfc3339_does_not_allow() {
        for bad in [
            "2025-01-17T14:38:48",
            "2025-01-17T14:38:48.1234567Z",
            "2025-01-17 14:38:48Z",
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-01-17T24:00:00Z",
            "2025-01-17T14:38:48.Z",
            "2025-01-17T14:38:48+0000",
            "2025-01-17T14:38:48Z ",
            "",
            "yesterday",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn formats_like_python_isoformat() {
        let ts = Timestamp::parse("2025-01-17T16:38:48.828173+02:00").unwrap();
        assert_eq!(ts.to_string(), "2025-01-17T14:38:48.828173+00:00");
        let whole = Timestamp::parse("2025-01-17T14:38:48.000000Z").unwrap();
        assert_eq!(whole.to_string(), "2025-01-17T14:38:48+00:00");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999+00:00");
    }
}
