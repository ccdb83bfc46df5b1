//! Money as integer cents, and exact parsing of decimal dollar amounts.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An amount of money in integer cents. Never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub i64);

/// Why a decimal amount could not be read as cents.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AmountError {
    /// The text is empty or only whitespace.
    #[error("amount is empty; write dollars like \"5\" or \"5.50\"")]
    Empty,
    /// A minus sign: amounts are never negative.
    #[error("amount \"{0}\" is negative; amounts must be positive")]
    Negative(String),
    /// More than two digits after the decimal point.
    #[error("amount \"{0}\" has fractions of a cent; use at most two decimals")]
    SubCent(String),
    /// Not a plain decimal number (letters, exponents, several dots, …).
    #[error("amount \"{0}\" is not a decimal number of dollars like \"5\" or \"5.50\"")]
    Malformed(String),
    /// Too large to represent.
    #[error("amount \"{0}\" is too large")]
    TooLarge(String),
}

impl Cents {
    /// Zero cents.
    pub const ZERO: Cents = Cents(0);

    /// The number of cents.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Parses a decimal number of dollars exactly: `"5"` -> 500, `"5.5"` -> 550, `"5.50"` -> 550.
    ///
    /// Surrounding whitespace is ignored; a leading `+` is allowed. Nothing is ever rounded.
    ///
    /// # Errors
    /// [`AmountError`] for empty text, a minus sign, more than two decimals (`"5.555"`), exponents
    /// (`"1e3"`), anything that is not digits with at most one dot, and values beyond `i64` cents.
    pub fn parse_dollars(text: &str) -> Result<Cents, AmountError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AmountError::Empty);
        }
        let owned = || trimmed.to_owned();
        let unsigned = match trimmed.as_bytes()[0] {
            b'-' => return Err(AmountError::Negative(owned())),
            b'+' => &trimmed[1..],
            _ => trimmed,
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let fraction = fraction.unwrap_or("");
        if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
            return Err(AmountError::Malformed(owned()));
        }
        if fraction.len() > 2 {
            // "5.500" is still exact; only non-zero digits past the cent are sub-cent amounts.
            if fraction[2..].bytes().any(|b| b != b'0') {
                return Err(AmountError::SubCent(owned()));
            }
        }
        let mut cents: i64 = 0;
        for digit in whole.bytes() {
            cents = cents
                .checked_mul(10)
                .and_then(|c| c.checked_add(i64::from(digit - b'0')))
                .ok_or_else(|| AmountError::TooLarge(owned()))?;
        }
        let mut fraction_digits = fraction.bytes().chain(std::iter::repeat(b'0')).take(2);
        for _ in 0..2 {
            let digit = fraction_digits.next().unwrap_or(b'0');
            cents = cents
                .checked_mul(10)
                .and_then(|c| c.checked_add(i64::from(digit - b'0')))
                .ok_or_else(|| AmountError::TooLarge(owned()))?;
        }
        Ok(Cents(cents))
    }
}

impl fmt::Display for Cents {
    /// Formats as dollars with thousands separators: `123456` -> `$1,234.56`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let dollars = (abs / 100).to_string();
        let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
        for (i, ch) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "{sign}${grouped}.{:02}", abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_dollars() {
        assert_eq!(Cents::parse_dollars("5"), Ok(Cents(500)));
        assert_eq!(Cents::parse_dollars("5.5"), Ok(Cents(550)));
        assert_eq!(Cents::parse_dollars("5.50"), Ok(Cents(550)));
        assert_eq!(Cents::parse_dollars("0.01"), Ok(Cents(1)));
        assert_eq!(Cents::parse_dollars(".75"), Ok(Cents(75)));
        assert_eq!(Cents::parse_dollars("5."), Ok(Cents(500)));
        assert_eq!(Cents::parse_dollars(" 10000.00 "), Ok(Cents(1_000_000)));
        assert_eq!(Cents::parse_dollars("5.500"), Ok(Cents(550)));
    }

    #[test]
    fn rejects_what_is_not_exact() {
        assert!(matches!(Cents::parse_dollars("5.555"), Err(AmountError::SubCent(_))));
        assert!(matches!(Cents::parse_dollars("-1"), Err(AmountError::Negative(_))));
        assert!(matches!(Cents::parse_dollars("abc"), Err(AmountError::Malformed(_))));
        assert!(matches!(Cents::parse_dollars("1e3"), Err(AmountError::Malformed(_))));
        assert!(matches!(Cents::parse_dollars("1.2.3"), Err(AmountError::Malformed(_))));
        assert!(matches!(Cents::parse_dollars("."), Err(AmountError::Malformed(_))));
        assert!(matches!(Cents::parse_dollars("１"), Err(AmountError::Malformed(_))));
        assert_eq!(Cents::parse_dollars(""), Err(AmountError::Empty));
        assert!(matches!(Cents::parse_dollars("99999999999999999999"), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn displays_as_dollars() {
        assert_eq!(Cents(123_456).to_string(), "$1,234.56");
        assert_eq!(Cents(5).to_string(), "$0.05");
        assert_eq!(Cents(100_000_000).to_string(), "$1,000,000.00");
        assert_eq!(Cents(-250).to_string(), "-$2.50");
    }
}
