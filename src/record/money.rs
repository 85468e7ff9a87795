//! Amounts of money in yuan, kept exactly as a whole number of fen (0.01 yuan).
//!
//! Fee lines carry at most two decimals; binary floating point never touches them, so report sums are
//! exact to the fen.

use std::fmt;

/// An amount in fen. Negative amounts are legal: refund lines (退费) carry them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why an amount text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a plain decimal number (`126.5`, `-3`, `0.01`).
    #[error("not a decimal number")]
    Format,
    /// More than two decimals.
    #[error("more than 2 decimals")]
    Precision,
    /// More than 15 digits before the point.
    #[error("too large")]
    Range,
}

/// Whole-yuan digits allowed; 10^15 yuan is far beyond any fee and far inside i64 fen.
const MAX_INT_DIGITS: usize = 15;

impl Amount {
    /// Zero yuan.
    pub const ZERO: Amount = Amount(0);

    /// From a count of fen.
    pub const fn from_fen(fen: i64) -> Self {
        Amount(fen)
    }

    /// The amount in fen.
    pub const fn fen(self) -> i64 {
        self.0
    }

    /// Parses a plain decimal: optional sign, digits, optionally a point and at most two digits.
    /// Exponents, `NaN`, and a bare point are refused; trailing zeros past two decimals are refused too
    /// (`1.000` is three decimals as written).
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let b = text.as_bytes();
        let (neg, rest) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            Some(b'+') => (false, &b[1..]),
            _ => (false, b),
        };
        let (int, frac) = match rest.iter().position(|&c| c == b'.') {
            Some(p) => (&rest[..p], Some(&rest[p + 1..])),
            None => (rest, None),
        };
        if int.is_empty() || !int.iter().all(u8::is_ascii_digit) {
            return Err(AmountError::Format);
        }
        let frac = frac.unwrap_or(b"");
        if !frac.iter().all(u8::is_ascii_digit) || (frac.is_empty() && rest.ends_with(b".")) {
            return Err(AmountError::Format);
        }
        if frac.len() > 2 {
            return Err(AmountError::Precision);
        }
        let int = trim_leading_zeros(int);
        if int.len() > MAX_INT_DIGITS {
            return Err(AmountError::Range);
        }
        let mut fen = 0i64;
        for &c in int {
            fen = fen * 10 + i64::from(c - b'0');
        }
        fen *= 100;
        let mut scale = 10;
        for &c in frac {
            fen += i64::from(c - b'0') * scale;
            scale /= 10;
        }
        Ok(Amount(if neg { -fen } else { fen }))
    }

    /// Appends the amount with two decimals, as `Display` writes it.
    #[inline]
    pub fn write_bytes(self, out: &mut Vec<u8>) {
        if self.0 < 0 {
            out.push(b'-');
        }
        let abs = self.0.unsigned_abs();
        out.extend_from_slice(itoa::Buffer::new().format(abs / 100).as_bytes());
        let cents = (abs % 100) as u8;
        out.extend_from_slice(&[b'.', b'0' + cents / 10, b'0' + cents % 10]);
    }

    /// Adds, saturating: 9.2e16 yuan is out of reach of any real sum.
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }
}

fn trim_leading_zeros(b: &[u8]) -> &[u8] {
    let nz = b.iter().position(|&c| c != b'0').unwrap_or(b.len());
    // Keep one digit for "0".
    &b[nz.min(b.len().saturating_sub(1))..]
}

impl fmt::Display for Amount {
    /// Always two decimals: `126.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, Amount::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(Amount::parse("126.50").unwrap().fen(), 12650);
        assert_eq!(Amount::parse("126.5").unwrap().fen(), 12650);
        assert_eq!(Amount::parse("126").unwrap().fen(), 12600);
        assert_eq!(Amount::parse("0.01").unwrap().fen(), 1);
        assert_eq!(Amount::parse("-3.2").unwrap().fen(), -320);
        assert_eq!(Amount::parse("007.00").unwrap().fen(), 700);
    }

    #[test]
    fn refuses_what_is_not_exact() {
        assert_eq!(Amount::parse("1.005"), Err(AmountError::Precision));
        assert_eq!(Amount::parse("1.000"), Err(AmountError::Precision));
        assert_eq!(Amount::parse("1e2"), Err(AmountError::Format));
        assert_eq!(Amount::parse("1."), Err(AmountError::Format));
        assert_eq!(Amount::parse(".5"), Err(AmountError::Format));
        assert_eq!(Amount::parse(""), Err(AmountError::Format));
        assert_eq!(Amount::parse("-"), Err(AmountError::Format));
        assert_eq!(Amount::parse("NaN"), Err(AmountError::Format));
        assert_eq!(Amount::parse("1,000.00"), Err(AmountError::Format));
        assert_eq!(Amount::parse("1234567890123456"), Err(AmountError::Range));
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Amount::from_fen(12650).to_string(), "126.50");
        assert_eq!(Amount::from_fen(-5).to_string(), "-0.05");
        assert_eq!(Amount::from_fen(0).to_string(), "0.00");
    }

    #[test]
    fn write_bytes_matches_display() {
        for fen in [0, 5, -5, 12650, -123456789, i64::MAX, i64::MIN + 1] {
            let mut out = Vec::new();
            Amount::from_fen(fen).write_bytes(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), Amount::from_fen(fen).to_string());
        }
    }

    #[test]
    fn sums_exactly_where_floats_do_not() {
        let total: Amount = std::iter::repeat_n(Amount::parse("0.10").unwrap(), 10).sum();
        assert_eq!(total.to_string(), "1.00");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(fen in -(10i64.pow(17))..10i64.pow(17)) {
            let a = Amount::from_fen(fen);
            prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
        }
    }
}
