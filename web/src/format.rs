//! How numbers and texts read on the page (and the ids built from texts).

use mechfund_core::{Cents, Timestamp};

/// Cents as "$1,234.56".
#[must_use]
pub fn money(cents: i64) -> String {
    Cents(cents).to_string()
}

/// A whole number with thousands separators: 1234567 -> "1,234,567".
#[must_use]
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A timestamp as "2025-05-28 14:03 UTC" (minutes are enough on screen; the table's title and
/// the CSV carry the exact time).
#[must_use]
pub fn when(ts: Timestamp) -> String {
    let text = ts.to_string();
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => text,
    }
}

/// The parts, concatenated (ids and messages: cheaper than a `format!` per call site).
#[must_use]
pub fn join(parts: &[&str]) -> String {
    parts.concat()
}

/// A byte count as "23.4 MB".
#[must_use]
pub fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let n = n as f64;
    if n >= 1e6 { format!("{:.1} MB", n / 1e6) } else { format!("{:.1} KB", n / 1e3) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_counts_read_like_the_contract() {
        assert_eq!(money(123_456), "$1,234.56");
        assert_eq!(money(5), "$0.05");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(count(999), "999");
    }

    #[test]
    fn when_is_minutes_in_utc() {
        let ts = Timestamp::parse("2025-05-28T14:03:59+02:00").expect("valid");
        assert_eq!(when(ts), "2025-05-28 12:03 UTC");
    }
}
