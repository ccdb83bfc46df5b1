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

/// The date and time of day of `YYYY-MM-DDTHH:MM:SS`, the first 19 bytes of a timestamp.
fn date_time(b: &[u8]) -> Result<[i64; 6], &'static str> {
    // Most timestamps are well formed: one look at all 19 bytes; the checks below say what is
    // wrong with the others.
    if let Some(head) = b.first_chunk::<19>() {
        let digit = |i: usize| {
            let d = head[i].wrapping_sub(b'0');
            (d < 10).then_some(i64::from(d))
        };
        let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
        let separators = head[4] == b'-'
            && head[7] == b'-'
            && matches!(head[10], b'T' | b't')
            && head[13] == b':'
            && head[16] == b':';
        let fields = separators
            .then(|| Some([two(0)? * 100 + two(2)?, two(5)?, two(8)?, two(11)?, two(14)?, two(17)?]))
            .flatten();
        if let Some([year, month, day, hour, minute, second]) = fields
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour <= 23
            && minute <= 59
            && second <= 59
        {
            return Ok([year, month, day, hour, minute, second]);
        }
    }
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
    Ok([year, month, day, hour, minute, second])
}

fn parse_micros(b: &[u8]) -> Result<i64, &'static str> {
    let [year, month, day, hour, minute, second] = date_time(b)?;
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
    fn every_day_and_second_of_day_reads_back() {
        // 1899-12-31 .. 2101-01-01, every day at a moving time of day: Display then parse.
        for day in -25_568..48_214_i64 {
            let micros = day * MICROS_PER_DAY + (day.rem_euclid(86_400)) * 1_000_000 + day.rem_euclid(7) * 125_000;
            let ts = Timestamp(micros);
            assert_eq!(Timestamp::parse(&ts.to_string()), Ok(ts), "{ts}");
        }
    }

    #[test]
    fn what_is_wrong_is_named() {
        for (text, reason) in [
            ("2025-13-01T00:00:00Z", "month out of range"),
            ("2025-00-01T00:00:00Z", "month out of range"),
            ("2025-02-29T00:00:00Z", "day out of range"),
            ("2025-04-31T00:00:00Z", "day out of range"),
            ("2025-01-00T00:00:00Z", "day out of range"),
            ("2025-01-01T24:00:00Z", "time of day out of range"),
            ("2025-01-01T23:60:00Z", "time of day out of range"),
            ("2025-01-01 00:00:00Z", "expected 'T' between date and time"),
            ("2025/01-01T00:00:00Z", "expected '-' after the year"),
            ("2025-01-01T00-00:00Z", "expected ':' after the hour"),
            ("2025-01-0xT00:00:00Z", "expected a digit"),
            ("2025-01-01T00:00:0", "too short"),
            ("2025-01-01T00:00", "expected ':' after the minutes"),
            ("2025-01-01T00:00:00", "missing offset (add 'Z' or '+00:00')"),
        ] {
            assert_eq!(Timestamp::parse(text).map_err(|e| e.reason), Err(reason), "{text}");
        }
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
