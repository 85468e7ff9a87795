//! Practitioner, institution and department codes, validated once at the edge.
//!
//! National codes are packed into a `u64` key: the table stores and compares 8 bytes instead of a
//! string, which is what makes a 12-million-code table fit in memory and a lookup cost one cache miss.

use std::fmt;

/// The longest code any field may carry (records.md: "a code longer than 30 characters").
pub const MAX_CODE_LEN: usize = 30;

/// Why a code text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Nothing left after trimming.
    #[error("empty")]
    Empty,
    /// Longer than 30 characters.
    #[error("longer than 30 characters")]
    TooLong,
    /// A character outside printable ASCII.
    #[error("characters outside printable ASCII")]
    NotPrintable,
    /// An institution code that is not `H` or `P` followed by 11 digits.
    #[error("not an institution code (`H` or `P`, then 11 digits)")]
    NotInstitution,
}

/// Checks the rule every code shares: 1 to 30 printable ASCII characters.
fn check_code(text: &str) -> Result<(), CodeError> {
    if text.is_empty() {
        return Err(CodeError::Empty);
    }
    if text.len() > MAX_CODE_LEN {
        // Length in bytes: a longer non-ASCII text fails here or on the next check either way.
        return Err(CodeError::TooLong);
    }
    if !text.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return Err(CodeError::NotPrintable);
    }
    Ok(())
}

/// Kinds of practitioner in the national code (国家医保相关人员代码).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PractitionerKind {
    /// `D`: doctor.
    Doctor,
    /// `HY`: hospital pharmacist.
    Pharmacist,
    /// `HJ`: technician.
    Technician,
    /// `N`: nurse (by analogy, unconfirmed: records.md).
    Nurse,
}

impl PractitionerKind {
    fn tag(self) -> u64 {
        match self {
            PractitionerKind::Doctor => 1,
            PractitionerKind::Pharmacist => 2,
            PractitionerKind::Technician => 3,
            PractitionerKind::Nurse => 4,
        }
    }

    fn from_tag(tag: u64) -> Option<Self> {
        Some(match tag {
            1 => PractitionerKind::Doctor,
            2 => PractitionerKind::Pharmacist,
            3 => PractitionerKind::Technician,
            4 => PractitionerKind::Nurse,
            _ => return None,
        })
    }

    fn prefix(self) -> &'static str {
        match self {
            PractitionerKind::Doctor => "D",
            PractitionerKind::Pharmacist => "HY",
            PractitionerKind::Technician => "HJ",
            PractitionerKind::Nurse => "N",
        }
    }

    /// The word used in practitioner records (`kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            PractitionerKind::Doctor => "doctor",
            PractitionerKind::Pharmacist => "pharmacist",
            PractitionerKind::Technician => "technician",
            PractitionerKind::Nurse => "nurse",
        }
    }
}

/// Bits of a packed key below the kind tag: 12 decimal digits need 40 bits.
const KIND_SHIFT: u32 = 60;
const DIGITS_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// Parses exactly `n` ASCII digits into a number.
fn parse_digits(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// A practitioner code: a national code packed into a `u64`, or a legacy local id kept as text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PractitionerCode {
    /// A national code, packed: kind tag in the top 4 bits, the 12 digits below.
    National(u64),
    /// A region's local id (1 to 30 printable ASCII characters): still looked up, but counted.
    Legacy(Box<str>),
}

/// A borrowed practitioner key, for lookups without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PractitionerKey<'a> {
    /// A packed national code.
    National(u64),
    /// A legacy id.
    Legacy(&'a str),
}

impl<'a> PractitionerKey<'a> {
    /// Validates a trimmed code and packs it if it has a national form.
    pub fn parse(text: &'a str) -> Result<Self, CodeError> {
        check_code(text)?;
        Ok(match pack_national(text.as_bytes()) {
            Some(k) => PractitionerKey::National(k),
            None => PractitionerKey::Legacy(text),
        })
    }

    /// True for a code of a national form.
    pub fn is_national(self) -> bool {
        matches!(self, PractitionerKey::National(_))
    }

    /// An owned code.
    pub fn to_owned(self) -> PractitionerCode {
        match self {
            PractitionerKey::National(k) => PractitionerCode::National(k),
            PractitionerKey::Legacy(s) => PractitionerCode::Legacy(s.into()),
        }
    }
}

fn pack_national(b: &[u8]) -> Option<u64> {
    let (kind, digits) = match b {
        [b'D', rest @ ..] => (PractitionerKind::Doctor, rest),
        [b'N', rest @ ..] => (PractitionerKind::Nurse, rest),
        [b'H', b'Y', rest @ ..] => (PractitionerKind::Pharmacist, rest),
        [b'H', b'J', rest @ ..] => (PractitionerKind::Technician, rest),
        _ => return None,
    };
    if digits.len() != 12 {
        return None;
    }
    Some(kind.tag() << KIND_SHIFT | parse_digits(digits)?)
}

impl PractitionerCode {
    /// Validates a trimmed code.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        PractitionerKey::parse(text).map(PractitionerKey::to_owned)
    }

    /// The borrowed key.
    pub fn key(&self) -> PractitionerKey<'_> {
        match self {
            PractitionerCode::National(k) => PractitionerKey::National(*k),
            PractitionerCode::Legacy(s) => PractitionerKey::Legacy(s),
        }
    }

    /// The kind, for a national code.
    pub fn kind(&self) -> Option<PractitionerKind> {
        match self {
            PractitionerCode::National(k) => PractitionerKind::from_tag(k >> KIND_SHIFT),
            PractitionerCode::Legacy(_) => None,
        }
    }
}

/// Writes a packed national practitioner key as its text.
pub fn fmt_national(key: u64, f: &mut impl fmt::Write) -> fmt::Result {
    match PractitionerKind::from_tag(key >> KIND_SHIFT) {
        Some(kind) => write!(f, "{}{:012}", kind.prefix(), key & DIGITS_MASK),
        None => write!(f, "?{key:x}"),
    }
}

impl fmt::Display for PractitionerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PractitionerCode::National(k) => fmt_national(*k, f),
            PractitionerCode::Legacy(s) => f.write_str(s),
        }
    }
}

/// An institution code (定点医药机构代码): `H` or `P` then 11 digits, packed into a `u64`.
///
/// Records.md gives institutions no legacy form: the code comes from the national interface's message
/// envelope, so anything else is a malformed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstitutionCode(u64);

const PHARMACY_BIT: u64 = 1 << 40;

impl InstitutionCode {
    /// Validates a trimmed code.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        check_code(text)?;
        let b = text.as_bytes();
        let pharmacy = match b.first() {
            Some(b'H') => false,
            Some(b'P') => true,
            _ => return Err(CodeError::NotInstitution),
        };
        if b.len() != 12 {
            return Err(CodeError::NotInstitution);
        }
        let digits = parse_digits(&b[1..]).ok_or(CodeError::NotInstitution)?;
        Ok(InstitutionCode(digits | if pharmacy { PHARMACY_BIT } else { 0 }))
    }

    /// The packed form (never 0 for a valid code? it can be: `H00000000000`; the tables do not rely on it).
    pub fn packed(self) -> u64 {
        self.0
    }

    /// From the packed form, as stored in a table.
    pub fn from_packed(packed: u64) -> Self {
        InstitutionCode(packed)
    }

    /// Appends the code's text (the hot path's form of `Display`).
    #[inline]
    pub fn write_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The code's twelve characters, without allocating.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut digits = [b'0'; 12];
        digits[0] = if self.is_pharmacy() { b'P' } else { b'H' };
        let mut v = self.0 & (PHARMACY_BIT - 1);
        for d in digits[1..].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        digits
    }

    /// True for a retail pharmacy (`P`).
    pub fn is_pharmacy(self) -> bool {
        self.0 & PHARMACY_BIT != 0
    }

    /// The administrative area (GB/T 2260): the 6 digits after the kind letter, as a number
    /// (`H320803…` → 320803). Routing tables key profiles by its prefixes (rules.md, "Routing").
    #[inline]
    pub fn area(self) -> u32 {
        // 11 digits: the first 6 are the area, the last 5 the serial.
        ((self.0 & (PHARMACY_BIT - 1)) / 100_000) as u32
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.is_pharmacy() { 'P' } else { 'H' };
        write!(f, "{p}{:011}", self.0 & (PHARMACY_BIT - 1))
    }
}

/// Validates a trimmed department code (科室), institution-local: 1 to 30 printable ASCII characters.
pub fn check_department(text: &str) -> Result<&str, CodeError> {
    check_code(text).map(|()| text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn national_codes_pack_and_print_back() {
        for text in ["D421003007628", "HY110105000123", "HJ450124000011", "N110105000001"] {
            let code = PractitionerCode::parse(text).unwrap();
            assert!(matches!(code, PractitionerCode::National(_)), "{text}");
            assert_eq!(code.to_string(), text);
        }
        assert_eq!(PractitionerCode::parse("D421003007628").unwrap().kind(), Some(PractitionerKind::Doctor));
    }

    #[test]
    fn legacy_codes_are_legal_but_not_national() {
        for text in ["0457", "d421003007628", "D42100300762", "HX110105000123", "D 21003007628"] {
            let key = PractitionerKey::parse(text).unwrap();
            assert_eq!(key, PractitionerKey::Legacy(text));
        }
    }

    #[test]
    fn codes_are_matched_exactly_without_case_folding() {
        assert_ne!(
            PractitionerCode::parse("d421003007628").unwrap(),
            PractitionerCode::parse("D421003007628").unwrap()
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        assert_eq!(PractitionerKey::parse(""), Err(CodeError::Empty));
        assert_eq!(PractitionerKey::parse(&"x".repeat(31)), Err(CodeError::TooLong));
        assert!(PractitionerKey::parse(&"x".repeat(30)).is_ok());
        assert_eq!(PractitionerKey::parse("张三"), Err(CodeError::NotPrintable));
        assert_eq!(PractitionerKey::parse("a\tb"), Err(CodeError::NotPrintable));
    }

    #[test]
    fn institution_codes() {
        let h = InstitutionCode::parse("H45012400011").unwrap();
        let p = InstitutionCode::parse("P45012400011").unwrap();
        assert_ne!(h, p);
        assert!(p.is_pharmacy() && !h.is_pharmacy());
        assert_eq!((h.area(), p.area()), (450124, 450124));
        assert_eq!(InstitutionCode::parse("H00000199999").unwrap().area(), 1);
        assert_eq!(h.to_string(), "H45012400011");
        assert_eq!(p.to_string(), "P45012400011");
        for bad in ["X45012400011", "H4501240001", "H450124000111", "H4501240001a", ""] {
            assert!(InstitutionCode::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn national_round_trip(kind in 0usize..4, digits in 0u64..1_000_000_000_000) {
            let text = format!("{}{digits:012}", ["D", "HY", "HJ", "N"][kind]);
            let code = PractitionerCode::parse(&text).unwrap();
            prop_assert_eq!(code.to_string(), text);
        }

        #[test]
        fn institution_round_trip(p in any::<bool>(), digits in 0u64..100_000_000_000) {
            let text = format!("{}{digits:011}", if p { 'P' } else { 'H' });
            prop_assert_eq!(InstitutionCode::parse(&text).unwrap().to_string(), text);
        }

        #[test]
        fn any_text_gives_a_code_or_an_error(s in "\\PC{0,40}") {
            let _ = PractitionerKey::parse(&s);
            let _ = InstitutionCode::parse(&s);
        }
    }
}
