//! The claim line (费用明细) as it arrives, validated into typed values — or refused with the field and
//! the reason, never a panic and never a silent accept.
//!
//! Field names are those of the national platform's fee-detail upload (interfaces 2204 / 2301),
//! flattened with the sending institution's code (records.md). Parsing borrows from the input bytes
//! wherever the JSON has no escapes, so the common line allocates nothing.

use std::borrow::Cow;

use super::code::{CodeError, InstitutionCode, PractitionerKey, check_department};
use super::json::{self, Value, scan_object, unescape};
use super::money::Amount;
use super::role::{PersonField, person_field};
use super::time::BjTime;

/// A medical type (医疗类别) from the national dictionary: `11`, `13`, `21`, … and provincial
/// extensions of 4+ digits such as `9914`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MedType(pub u32);

impl MedType {
    /// Parses the text of a medical type: digits, optionally with a zero fraction (`"14.0"`).
    pub fn parse(text: &str) -> Option<MedType> {
        let int = match text.split_once('.') {
            Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|c| c == b'0') => int,
            Some(_) => return None,
            None => text,
        };
        if int.is_empty() || int.len() > 9 || !int.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        int.parse().ok().map(MedType)
    }
}

impl std::fmt::Display for MedType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// A claim line that passed check 0 of rules.md: every required field present and well formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    /// Fee-detail serial number, unique within the visit.
    pub feedetl_sn: Cow<'a, str>,
    /// The institution that settles the line.
    pub fixmedins_code: InstitutionCode,
    /// Visit (就诊) id.
    pub mdtrt_id: Cow<'a, str>,
    /// The billing practitioner's code as sent (trimmed).
    pub bilg_dr_codg: Cow<'a, str>,
    national: Option<u64>,
    /// The billing department, when sent.
    pub bilg_dept_codg: Option<Cow<'a, str>>,
    /// When the service happened.
    pub fee_ocur_time: BjTime,
    /// Medical type (医疗类别).
    pub med_type: MedType,
    /// Amount of the line.
    pub amount: Amount,
    /// `er_flag` is `"1"`.
    pub er_flag: bool,
    /// `adm_way` is `"1"` (admitted through the emergency department).
    pub adm_via_emergency: bool,
    /// `orders_dr_code` and `phar_prac_cert_no`, read but unchecked (see [`super::role`]).
    pub(super) others: [PersonField<'a>; 2],
}

impl Claim<'_> {
    /// The practitioner code as a lookup key.
    pub fn practitioner(&self) -> PractitionerKey<'_> {
        match self.national {
            Some(k) => PractitionerKey::National(k),
            None => PractitionerKey::Legacy(&self.bilg_dr_codg),
        }
    }
}

/// Why a claim line could not be decided: the field (where one is to blame) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Malformed {
    /// The field at fault, if the fault lies in one field.
    pub field: Option<&'static str>,
    /// A sentence for the dead-letter record.
    pub message: String,
}

impl Malformed {
    #[cold]
    #[inline(never)]
    pub(super) fn at(field: &'static str, message: impl Into<String>) -> Self {
        Malformed { field: Some(field), message: message.into() }
    }

    #[cold]
    #[inline(never)]
    fn missing(field: &'static str) -> Self {
        Malformed::at(field, format!("missing field `{field}`"))
    }

    #[cold]
    #[inline(never)]
    pub(super) fn code(field: &'static str, e: CodeError) -> Self {
        Malformed::at(field, format!("field `{field}`: {e}"))
    }
}

/// A refusal on its way up the hot path: boxed, so that the `Result`s moved from helper to helper
/// stay small (a `Malformed` is four words); built only on the cold path.
type Refused = Box<Malformed>;

impl From<Refused> for Malformed {
    fn from(b: Refused) -> Self {
        *b
    }
}

#[cold]
#[inline(never)]
fn refuse(m: Malformed) -> Refused {
    Box::new(m)
}

/// The known fields of a line as the scanner found them; everything else is validated and skipped.
#[derive(Default)]
struct Raw<'a> {
    fields: [Option<Value<'a>>; FIELDS.len()],
}

/// The fields claimgate reads, in [`Raw::fields`] order.
const FIELDS: [&str; 13] = [
    "feedetl_sn",
    "fixmedins_code",
    "mdtrt_id",
    "psn_no",
    "med_type",
    "fee_ocur_time",
    "bilg_dr_codg",
    "bilg_dept_codg",
    "det_item_fee_sumamt",
    "er_flag",
    "adm_way",
    "orders_dr_code",
    "phar_prac_cert_no",
];

const FEEDETL_SN: usize = 0;
const FIXMEDINS_CODE: usize = 1;
const MDTRT_ID: usize = 2;
const PSN_NO: usize = 3;
const MED_TYPE: usize = 4;
const FEE_OCUR_TIME: usize = 5;
const BILG_DR_CODG: usize = 6;
const BILG_DEPT_CODG: usize = 7;
const DET_ITEM_FEE_SUMAMT: usize = 8;
const ER_FLAG: usize = 9;
const ADM_WAY: usize = 10;
const ORDERS_DR_CODE: usize = 11;
const PHAR_PRAC_CERT_NO: usize = 12;

/// The index in [`FIELDS`] of a member name; a `match` compiles to a length-then-bytes decision tree
/// with the comparisons inlined (a loop over `FIELDS` called `memcmp` and cost more).
#[inline]
fn field_index(key: &str) -> Option<usize> {
    Some(match key {
        "feedetl_sn" => FEEDETL_SN,
        "fixmedins_code" => FIXMEDINS_CODE,
        "mdtrt_id" => MDTRT_ID,
        "psn_no" => PSN_NO,
        "med_type" => MED_TYPE,
        "fee_ocur_time" => FEE_OCUR_TIME,
        "bilg_dr_codg" => BILG_DR_CODG,
        "bilg_dept_codg" => BILG_DEPT_CODG,
        "det_item_fee_sumamt" => DET_ITEM_FEE_SUMAMT,
        "er_flag" => ER_FLAG,
        "adm_way" => ADM_WAY,
        "orders_dr_code" => ORDERS_DR_CODE,
        "phar_prac_cert_no" => PHAR_PRAC_CERT_NO,
        _ => return None,
    })
}

impl<'a> Raw<'a> {
    fn scan(bytes: &'a [u8]) -> Result<Raw<'a>, Malformed> {
        let mut raw = Raw::default();
        let mut duplicate: Option<&'static str> = None;
        let scanned = scan_object(bytes, &mut |(key, escaped), value| {
            let known = if escaped { field_index(&unescape(key, true)) } else { field_index(key) };
            if let Some(i) = known {
                if raw.fields[i].is_some() {
                    duplicate = Some(FIELDS[i]);
                    return Err(json::SyntaxError { at: 0, what: "duplicate" });
                }
                raw.fields[i] = Some(value);
            }
            Ok(())
        });
        match (scanned, duplicate) {
            (Ok(()), _) => Ok(raw),
            (Err(_), Some(f)) => Err(Malformed::at(f, format!("duplicate field `{f}`"))),
            (Err(e), None) => Err(Malformed { field: None, message: e.to_string() }),
        }
    }
}

/// White space removed from both ends of every text field (records.md): exports pad with tabs.
#[inline(always)]
fn trim(s: &str) -> &str {
    let pad = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    match s.as_bytes() {
        [first, .., last] if !pad(*first) && !pad(*last) => s,
        [only] if !pad(*only) => s,
        _ => s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n')),
    }
}

pub(super) fn trim_cow(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(trim(b)),
        Cow::Owned(o) => {
            let t = trim(&o);
            if t.len() == o.len() { Cow::Owned(o) } else { Cow::Owned(t.to_owned()) }
        }
    }
}

/// The slow path of [`scalar`]: a string with escapes, decoded and trimmed.
#[cold]
#[inline(never)]
fn unescaped_trimmed(raw: &str) -> Cow<'static, str> {
    let owned = unescape(raw, true).into_owned();
    let t = trim(&owned);
    if t.len() == owned.len() { Cow::Owned(owned) } else { Cow::Owned(t.to_owned()) }
}

/// The text of a scalar field: a JSON string (unescaped) or a JSON number (its literal text), trimmed.
/// `null` is treated as absent.
#[inline(always)]
fn scalar<'a>(value: Option<Value<'a>>, field: &'static str) -> Result<Option<Cow<'a, str>>, Refused> {
    match value {
        Some(Value::Str { raw, escaped: false }) => Ok(Some(Cow::Borrowed(trim(raw)))),
        Some(Value::Str { raw, escaped: true }) => Ok(Some(unescaped_trimmed(raw))),
        None | Some(Value::Null) => Ok(None),
        Some(Value::Num(n)) => Ok(Some(Cow::Borrowed(n))),
        Some(Value::Bool | Value::Compound) => {
            Err(refuse(Malformed::at(field, format!("field `{field}`: expected a string or a number"))))
        }
    }
}

#[inline(always)]
fn required<'a>(value: Option<Value<'a>>, field: &'static str) -> Result<Cow<'a, str>, Refused> {
    match scalar(value, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(refuse(Malformed::at(field, format!("field `{field}` is empty")))),
        None => Err(refuse(Malformed::missing(field))),
    }
}

/// Identifiers that are not codes (`feedetl_sn`, `mdtrt_id`, `psn_no`): 1 to 64 characters, no control
/// characters. The national platform allows 30; the margin keeps provincial variants settling.
const MAX_ID_LEN: usize = 64;

#[inline]
fn id<'a>(raw: Option<Value<'a>>, field: &'static str) -> Result<Cow<'a, str>, Refused> {
    let s = required(raw, field)?;
    // The common case in one pass: printable ASCII, length in bytes is length in characters.
    if s.len() <= MAX_ID_LEN && printable_ascii(s.as_bytes()) {
        return Ok(s);
    }
    id_slow(s, field)
}

/// True if every byte is printable ASCII (0x20 to 0x7e); eight bytes at a time.
#[inline(always)]
fn printable_ascii(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // A byte below 0x20 borrows into its high bit; one of 0x7f or above sets it, alone or
        // plus one. Either test can mark a byte above a true mark, never when there is none.
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let high = x | x.wrapping_add(ONES);
        if (control | high) & HIGHS != 0 {
            return false;
        }
    }
    words.remainder().iter().all(|c| (0x20..0x7f).contains(c))
}

#[cold]
#[inline(never)]
fn id_slow<'a>(s: Cow<'a, str>, field: &'static str) -> Result<Cow<'a, str>, Refused> {
    if s.is_ascii() {
        if s.len() > MAX_ID_LEN {
            return Err(refuse(Malformed::at(
                field,
                format!("field `{field}` is longer than {MAX_ID_LEN} characters"),
            )));
        }
        if s.bytes().any(|c| c < 0x20 || c == 0x7f) {
            return Err(refuse(Malformed::at(field, format!("field `{field}` has control characters"))));
        }
        return Ok(s);
    }
    if s.chars().count() > MAX_ID_LEN {
        return Err(refuse(Malformed::at(field, format!("field `{field}` is longer than {MAX_ID_LEN} characters"))));
    }
    if s.chars().any(char::is_control) {
        return Err(refuse(Malformed::at(field, format!("field `{field}` has control characters"))));
    }
    Ok(s)
}

/// A flag that counts as set when its value is 1 (`"1"`, `1`, `"1.0"`); any other scalar is unset.
#[inline]
fn flag(raw: Option<Value<'_>>, field: &'static str) -> Result<bool, Refused> {
    Ok(scalar(raw, field)?.is_some_and(|s| s.as_ref() == "1" || MedType::parse(&s) == Some(MedType(1))))
}

impl<'a> Claim<'a> {
    /// Parses and validates one claim line (one Kafka message value or one line of a file).
    pub fn parse(bytes: &'a [u8]) -> Result<Claim<'a>, Malformed> {
        Claim::parse_fields(bytes).map_err(Malformed::from)
    }

    #[inline]
    fn parse_fields(bytes: &'a [u8]) -> Result<Claim<'a>, Refused> {
        let raw = Raw::scan(bytes).map_err(refuse)?;
        let f = raw.fields;

        let feedetl_sn = id(f[FEEDETL_SN], "feedetl_sn")?;
        let fixmedins_code = InstitutionCode::parse(&required(f[FIXMEDINS_CODE], "fixmedins_code")?)
            .map_err(|e| refuse(Malformed::code("fixmedins_code", e)))?;
        let mdtrt_id = id(f[MDTRT_ID], "mdtrt_id")?;
        id(f[PSN_NO], "psn_no")?;
        let med_text = required(f[MED_TYPE], "med_type")?;
        let med_type = MedType::parse(&med_text)
            .ok_or_else(|| refuse(Malformed::at("med_type", "field `med_type`: not a medical-type code (digits)")))?;
        let time_text = required(f[FEE_OCUR_TIME], "fee_ocur_time")?;
        let fee_ocur_time = BjTime::parse(&time_text)
            .map_err(|e| refuse(Malformed::at("fee_ocur_time", format!("field `fee_ocur_time`: {e}"))))?;
        let bilg_dr_codg = required(f[BILG_DR_CODG], "bilg_dr_codg")?;
        let national = match PractitionerKey::parse(&bilg_dr_codg) {
            Ok(PractitionerKey::National(k)) => Some(k),
            Ok(PractitionerKey::Legacy(_)) => None,
            Err(e) => return Err(refuse(Malformed::code("bilg_dr_codg", e))),
        };
        let bilg_dept_codg = match scalar(f[BILG_DEPT_CODG], "bilg_dept_codg")? {
            // An empty optional field is absent: exports write "" for "not given".
            Some(s) if s.is_empty() => None,
            Some(s) => {
                check_department(&s).map_err(|e| refuse(Malformed::code("bilg_dept_codg", e)))?;
                Some(s)
            }
            None => None,
        };
        let amount_text = required(f[DET_ITEM_FEE_SUMAMT], "det_item_fee_sumamt")?;
        let amount = Amount::parse(&amount_text)
            .map_err(|e| refuse(Malformed::at("det_item_fee_sumamt", format!("field `det_item_fee_sumamt`: {e}"))))?;
        let er_flag = flag(f[ER_FLAG], "er_flag")?;
        let adm_via_emergency = flag(f[ADM_WAY], "adm_way")?;
        let others = [person_field(f[ORDERS_DR_CODE]), person_field(f[PHAR_PRAC_CERT_NO])];

        Ok(Claim {
            feedetl_sn,
            fixmedins_code,
            mdtrt_id,
            bilg_dr_codg,
            national,
            bilg_dept_codg,
            fee_ocur_time,
            med_type,
            amount,
            er_flag,
            adm_via_emergency,
            others,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"feedetl_sn":"F0001","fixmedins_code":"H11010500001","mdtrt_id":"M01",
        "psn_no":"P123","med_type":"11","fee_ocur_time":"2026-04-02 10:31:00",
        "bilg_dr_codg":"D110105000123","bilg_dept_codg":"A03.06","det_item_fee_sumamt":"126.50",
        "cnt":2,"pric":"63.25","extra":{"nested":[1,2]}}"#;

    /// GOOD with one field's raw JSON text replaced (or removed with `<absent>`), built as text so that
    /// number literals such as `1e3` reach the parser as written.
    fn with(field: &str, value: &str) -> String {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        let mut parts: Vec<String> = v
            .iter()
            .filter(|(k, _)| k.as_str() != field)
            .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
            .collect();
        if value != "<absent>" {
            parts.push(format!("\"{field}\":{value}"));
        }
        format!("{{{}}}", parts.join(","))
    }

    /// Parses a test line that must be well formed (leaked: tests only).
    fn parse_ok(json: String) -> Claim<'static> {
        Claim::parse(Box::leak(json.into_boxed_str()).as_bytes()).unwrap()
    }

    fn refused(json: &str) -> Malformed {
        Claim::parse(json.as_bytes()).expect_err("should be malformed")
    }

    #[test]
    fn parses_a_good_line_without_copying() {
        let c = Claim::parse(GOOD.as_bytes()).unwrap();
        assert!(matches!(c.feedetl_sn, Cow::Borrowed("F0001")));
        assert_eq!(c.fixmedins_code.to_string(), "H11010500001");
        assert_eq!(c.practitioner(), PractitionerKey::parse("D110105000123").unwrap());
        assert_eq!(c.bilg_dept_codg.as_deref(), Some("A03.06"));
        assert_eq!(c.fee_ocur_time.to_string(), "2026-04-02 10:31:00");
        assert_eq!(c.amount.to_string(), "126.50");
        assert_eq!(c.med_type, MedType(11));
        assert!(!c.er_flag && !c.adm_via_emergency);
    }

    #[test]
    fn trims_tab_padding_from_exports() {
        let c = parse_ok(with("bilg_dr_codg", r#""\tD110105000123\t""#));
        assert_eq!(c.bilg_dr_codg, "D110105000123");
        assert!(c.practitioner().is_national());
        let c = parse_ok(with("fixmedins_code", r#"" H11010500001\r\n""#));
        assert_eq!(c.fixmedins_code.to_string(), "H11010500001");
    }

    #[test]
    fn numbers_may_come_as_numbers_or_strings() {
        let c = parse_ok(with("det_item_fee_sumamt", "126.5"));
        assert_eq!(c.amount.fen(), 12650);
        let c = parse_ok(with("med_type", "14"));
        assert_eq!(c.med_type, MedType(14));
        let c = parse_ok(with("med_type", r#""14.0""#));
        assert_eq!(c.med_type, MedType(14));
        let c = parse_ok(with("er_flag", "1"));
        assert!(c.er_flag);
        let c = parse_ok(with("adm_way", r#""1""#));
        assert!(c.adm_via_emergency);
        let c = parse_ok(with("er_flag", r#""2""#));
        assert!(!c.er_flag);
    }

    #[test]
    fn legacy_practitioner_codes_are_accepted() {
        let c = parse_ok(with("bilg_dr_codg", r#""0457""#));
        assert_eq!(c.practitioner(), PractitionerKey::Legacy("0457"));
    }

    #[test]
    fn every_required_field_missing_or_null_names_the_field() {
        for field in [
            "feedetl_sn",
            "fixmedins_code",
            "mdtrt_id",
            "psn_no",
            "med_type",
            "fee_ocur_time",
            "bilg_dr_codg",
            "det_item_fee_sumamt",
        ] {
            for v in ["<absent>", "null", r#""""#, r#"" \t ""#] {
                let m = refused(&with(field, v));
                assert_eq!(m.field, Some(field), "{field} = {v}: {m}");
            }
        }
    }

    #[test]
    fn each_malformed_kind_is_refused_with_its_field() {
        let cases = [
            ("fixmedins_code", r#""X11010500001""#, "not an institution code"),
            ("fixmedins_code", r#""H1101050000""#, "not an institution code"),
            ("bilg_dr_codg", &format!("\"{}\"", "D".repeat(31)), "longer than 30"),
            ("bilg_dr_codg", r#""张三""#, "printable ASCII"),
            ("bilg_dept_codg", r#""内科""#, "printable ASCII"),
            ("fee_ocur_time", r#""2026-02-30 10:00:00""#, "no such date"),
            ("fee_ocur_time", r#""02/04/2026""#, "yyyy-MM-dd"),
            ("fee_ocur_time", "20260402", "yyyy-MM-dd"),
            ("det_item_fee_sumamt", r#""12.345""#, "more than 2 decimals"),
            ("det_item_fee_sumamt", "1e3", "not a decimal"),
            ("det_item_fee_sumamt", r#""abc""#, "not a decimal"),
            ("med_type", r#""11a""#, "medical-type"),
            ("med_type", "14.5", "medical-type"),
            ("feedetl_sn", r#"{"a":1}"#, "expected a string or a number"),
            ("mdtrt_id", "[1]", "expected a string or a number"),
            ("er_flag", "true", "expected a string or a number"),
            ("mdtrt_id", r#""M\u0001""#, "control characters"),
            ("psn_no", &format!("\"{}\"", "9".repeat(65)), "longer than 64"),
        ];
        for (field, value, needle) in cases {
            let m = refused(&with(field, value));
            assert_eq!(m.field, Some(field), "{field} = {value}: {m}");
            assert!(m.message.contains(needle), "{field} = {value}: {m}");
        }
    }

    #[test]
    fn not_json_or_not_an_object_is_refused() {
        for bad in ["", "not json", "[1,2]", "42", r#"{"feedetl_sn": "F1""#, "null"] {
            assert!(Claim::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Claim::parse(b"{\"feedetl_sn\":\"\xff\"}").is_err());
    }

    #[test]
    fn duplicate_fields_are_refused_with_the_field() {
        let dup = GOOD.replacen('{', r#"{"bilg_dr_codg":"D000000000001","#, 1);
        let m = refused(&dup);
        assert_eq!(m.field, Some("bilg_dr_codg"));
        assert!(m.message.contains("duplicate"));
    }

    #[test]
    fn field_index_finds_every_field_and_nothing_else() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(field_index(f), Some(i), "{f}");
            let mut near = f.to_string();
            near.pop();
            near.push('x');
            assert_eq!(field_index(&near), None, "{near}");
        }
        for other in ["", "cnt", "pric", "bilg_dr_name", "med_list_codg", "feedetl_sn ", "FEEDETL_SN"] {
            assert_eq!(field_index(other), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn printable_ascii_is_the_plain_test(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(printable_ascii(&bytes), bytes.iter().all(|c| (0x20..0x7f).contains(c)));
        }
    }

    #[test]
    fn empty_department_is_absent() {
        let c = parse_ok(with("bilg_dept_codg", r#""""#));
        assert_eq!(c.bilg_dept_codg, None);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Claim::parse(&bytes);
        }

        #[test]
        fn any_mutation_of_a_good_line_parses_or_is_refused(pos in 0usize..GOOD.len(), byte in any::<u8>()) {
            let mut b = GOOD.as_bytes().to_vec();
            b[pos] = byte;
            if let Ok(c) = Claim::parse(&b) {
                // What parses is well formed.
                prop_assert!(!c.feedetl_sn.is_empty() && !c.mdtrt_id.is_empty());
                prop_assert!(PractitionerKey::parse(&c.bilg_dr_codg).is_ok());
            }
        }
    }
}
