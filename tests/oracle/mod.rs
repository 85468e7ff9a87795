//! An independent reading of records.md's claim line, for differential fuzzing of claimgate's parser
//! (`Claim::parse`, a hand-written scanner): serde_json does the JSON, and the field rules are written
//! again here from the spec, in the same order as claimgate checks them so that the field at fault can
//! be compared too. Shared by `tests/fuzz_claims.rs` (proptest) and `fuzz/` (cargo fuzz).
//!
//! It is deliberately plain and slow; it need only agree with the product on every input.

#![allow(dead_code)]

pub mod property;

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A well-formed line as the spec reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub feedetl_sn: String,
    pub fixmedins_code: String,
    pub mdtrt_id: String,
    pub med_type: u32,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub fee_ocur_time: String,
    pub bilg_dr_codg: String,
    pub bilg_dept_codg: Option<String>,
    pub amount_fen: i64,
    pub er_flag: bool,
    pub adm_way_emergency: bool,
    /// `orders_dr_code` and `phar_prac_cert_no`: read, not checked (a profile asks for them).
    pub persons: [Person; 2],
}

/// An optional person code field (rules.md, "Roles"): absent (missing, null or empty after trimming),
/// a text (string or number), or something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Person {
    Absent,
    Text(String),
    NotText,
}

impl Person {
    /// Whether a profile that checks the field refuses the line: a code is 1 to 30 printable ASCII.
    pub fn malformed(&self) -> bool {
        match self {
            Person::Absent => false,
            Person::Text(s) => !code(s),
            Person::NotText => true,
        }
    }
}

/// Why a line is not well formed: the field at fault (none for a syntax error) and a word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub field: Option<&'static str>,
    pub why: String,
}

fn refused<T>(field: Option<&'static str>, why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused { field, why: why.into() })
}

/// The members of a JSON object, in order, duplicates kept, values raw.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The fields claimgate reads, in the order it checks them.
pub const FIELDS: [&str; 13] = [
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

#[derive(Clone, Debug)]
enum Json {
    Str(String),
    Num(String),
    Null,
    Other,
}

fn classify(raw: &RawValue) -> Json {
    let text = raw.get();
    match text.as_bytes()[0] {
        b'"' => Json::Str(serde_json::from_str(text).expect("a valid string")),
        b'n' => Json::Null,
        b't' | b'f' | b'{' | b'[' => Json::Other,
        _ => Json::Num(text.to_owned()),
    }
}

/// records.md: spaces, tabs, CR and LF around a text field are removed.
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

fn scalar(v: Option<&Json>, field: &'static str) -> Result<Option<String>, Refused> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(s)) => Ok(Some(trim(s).to_owned())),
        Some(Json::Num(n)) => Ok(Some(n.clone())),
        Some(Json::Other) => refused(Some(field), "not a string or a number"),
    }
}

fn required(v: Option<&Json>, field: &'static str) -> Result<String, Refused> {
    match scalar(v, field)? {
        None => refused(Some(field), "missing"),
        Some(s) if s.is_empty() => refused(Some(field), "empty"),
        Some(s) => Ok(s),
    }
}

/// Identifiers: 1 to 64 characters, no control characters.
fn identifier(v: Option<&Json>, field: &'static str) -> Result<String, Refused> {
    let s = required(v, field)?;
    if s.chars().count() > 64 {
        return refused(Some(field), "longer than 64");
    }
    if s.chars().any(char::is_control) {
        return refused(Some(field), "control characters");
    }
    Ok(s)
}

/// Codes: 1 to 30 printable ASCII characters.
fn code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 30 && s.bytes().all(|c| (0x20..0x7f).contains(&c))
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// A medical type: 1 to 9 digits, optionally `.0…0`.
fn med_type(s: &str) -> Option<u32> {
    let int = match s.split_once('.') {
        None => s,
        Some((int, zeros)) if !zeros.is_empty() && zeros.bytes().all(|c| c == b'0') => int,
        Some(_) => return None,
    };
    (digits(int) && int.len() <= 9).then(|| int.parse().ok()).flatten()
}

/// `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`, a real date in 1900..=2199.
fn time(s: &str) -> Option<String> {
    let (date, clock) = match s.len() {
        10 => (s, "00:00:00"),
        19 if s.as_bytes()[10] == b' ' => (&s[..10], &s[11..]),
        _ => return None,
    };
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    if d.len() != 3 || c.len() != 3 || [d[0].len(), d[1].len(), d[2].len()] != [4, 2, 2] {
        return None;
    }
    if c.iter().any(|p| p.len() != 2) || !d.iter().chain(&c).all(|p| digits(p)) {
        return None;
    }
    let (y, m, dd): (i32, u32, u32) = (d[0].parse().ok()?, d[1].parse().ok()?, d[2].parse().ok()?);
    let (h, mi, se): (u32, u32, u32) = (c[0].parse().ok()?, c[1].parse().ok()?, c[2].parse().ok()?);
    if !(1900..=2199).contains(&y) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(y, m, dd)?;
    Some(format!("{date} {clock}"))
}

/// A decimal amount with at most 2 decimals, kept exactly, in fen; at most 15 integer digits.
fn amount(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, f),
        None => (rest, "00"),
    };
    if !digits(int) || !digits(frac) || frac.len() > 2 {
        return None;
    }
    let int = int.trim_start_matches('0');
    if int.len() > 15 {
        return None;
    }
    let yuan: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let fen: i64 = format!("{frac:0<2}").parse().ok()?;
    let v = yuan * 100 + fen;
    Some(if neg { -v } else { v })
}

/// Reads `bytes` as records.md describes a claim line.
pub fn read(bytes: &[u8]) -> Result<Line, Refused> {
    // The JSON: one object, nothing else, nesting as serde_json allows it.
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(_)) => {}
        _ => return refused(None, "not a JSON object"),
    }
    let members: Members = serde_json::from_slice(bytes).expect("parsed above");
    let mut values: Vec<Option<Json>> = vec![None; FIELDS.len()];
    let mut seen = HashSet::new();
    for (k, v) in &members.0 {
        if let Some(i) = FIELDS.iter().position(|f| f == k) {
            if !seen.insert(i) {
                return refused(Some(FIELDS[i]), "duplicate");
            }
            values[i] = Some(classify(v));
        }
    }
    let get = |name: &str| values[FIELDS.iter().position(|f| *f == name).unwrap()].as_ref();

    let feedetl_sn = identifier(get("feedetl_sn"), "feedetl_sn")?;
    let fixmedins_code = required(get("fixmedins_code"), "fixmedins_code")?;
    let b = fixmedins_code.as_bytes();
    if !(code(&fixmedins_code) && b.len() == 12 && matches!(b[0], b'H' | b'P') && digits(&fixmedins_code[1..])) {
        return refused(Some("fixmedins_code"), "not an institution code");
    }
    let mdtrt_id = identifier(get("mdtrt_id"), "mdtrt_id")?;
    identifier(get("psn_no"), "psn_no")?;
    let med = required(get("med_type"), "med_type")?;
    let med = med_type(&med).ok_or(Refused { field: Some("med_type"), why: "not a medical type".into() })?;
    let t = required(get("fee_ocur_time"), "fee_ocur_time")?;
    let fee_ocur_time = time(&t).ok_or(Refused { field: Some("fee_ocur_time"), why: "not a time".into() })?;
    let bilg_dr_codg = required(get("bilg_dr_codg"), "bilg_dr_codg")?;
    if !code(&bilg_dr_codg) {
        return refused(Some("bilg_dr_codg"), "not a code");
    }
    let bilg_dept_codg = match scalar(get("bilg_dept_codg"), "bilg_dept_codg")? {
        Some(d) if d.is_empty() => None,
        Some(d) if !code(&d) => return refused(Some("bilg_dept_codg"), "not a code"),
        other => other,
    };
    let a = required(get("det_item_fee_sumamt"), "det_item_fee_sumamt")?;
    let amount_fen = amount(&a).ok_or(Refused { field: Some("det_item_fee_sumamt"), why: "not an amount".into() })?;
    let flag = |name: &'static str| -> Result<bool, Refused> {
        Ok(scalar(get(name), name)?.is_some_and(|s| med_type(&s) == Some(1)))
    };
    let er_flag = flag("er_flag")?;
    let adm_way_emergency = flag("adm_way")?;
    let person = |name: &str| match get(name) {
        None | Some(Json::Null) => Person::Absent,
        Some(Json::Str(s)) if trim(s).is_empty() => Person::Absent,
        Some(Json::Str(s)) => Person::Text(trim(s).to_owned()),
        Some(Json::Num(n)) => Person::Text(n.clone()),
        Some(Json::Other) => Person::NotText,
    };
    let persons = [person("orders_dr_code"), person("phar_prac_cert_no")];
    Ok(Line {
        feedetl_sn,
        fixmedins_code,
        mdtrt_id,
        med_type: med,
        fee_ocur_time,
        bilg_dr_codg,
        bilg_dept_codg,
        amount_fen,
        er_flag,
        adm_way_emergency,
        persons,
    })
}
