//! Practitioner and institution status records (records.md): the rows of the status tables, as they
//! arrive on the compacted topics and in registry files.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::code::{CodeError, InstitutionCode, PractitionerCode, check_department};
use super::time::{BjTime, TimeError};

/// A status other than normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// 暂停: fees not settled during the period (emergencies excepted where the profile says so).
    Suspended,
    /// 终止 / 解除: fees not settled.
    Terminated,
}

impl Status {
    /// The word used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Suspended => "suspended",
            Status::Terminated => "terminated",
        }
    }
}

/// A half-open interval `[from, until)` of Beijing time; `until` `None` is open-ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interval {
    /// First instant inside.
    pub from: BjTime,
    /// First instant outside; [`BjTime::MAX`] when open-ended.
    pub until: BjTime,
}

impl Interval {
    /// True when `t` lies inside: `from <= t < until`.
    #[inline]
    pub fn contains(&self, t: BjTime) -> bool {
        self.from <= t && t < self.until
    }
}

/// One registration (登记备案) as written in a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationText {
    /// Institution code.
    pub institution: String,
    /// Start, `yyyy-MM-dd[ HH:mm:ss]`.
    pub from: String,
    /// End (exclusive), or null.
    #[serde(default)]
    pub until: Option<String>,
}

/// One status period as written in a practitioner record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodText {
    /// `suspended` or `terminated`.
    pub status: Status,
    /// Start.
    pub from: String,
    /// End (exclusive), or null.
    #[serde(default)]
    pub until: Option<String>,
    /// The article and the facts it rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// The decision (ledger event) that set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
}

/// A practitioner record as written (one JSON object per line, or a message value on `practitioners`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PractitionerText {
    /// National code or legacy id.
    pub code: String,
    /// Name; kept in files, never logged in clear, not held by the in-memory table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `doctor`, `nurse`, `pharmacist`, `technician`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Where and when the person may bill.
    #[serde(default)]
    pub registrations: Vec<RegistrationText>,
    /// Status periods other than normal.
    #[serde(default)]
    pub periods: Vec<PeriodText>,
    /// Increases with every change.
    pub version: u64,
}

/// An institution status period as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionPeriodText {
    /// `suspended` or `terminated`.
    pub status: Status,
    /// Start.
    pub from: String,
    /// End (exclusive), or null.
    #[serde(default)]
    pub until: Option<String>,
    /// Null: the whole institution; a list: only those departments.
    #[serde(default)]
    pub departments: Option<Vec<String>>,
    /// The article and the facts it rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

/// An institution record as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionText {
    /// Institution code.
    pub code: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `hospital`, `pharmacy`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Status periods.
    #[serde(default)]
    pub periods: Vec<InstitutionPeriodText>,
    /// Increases with every change.
    pub version: u64,
}

/// Why a status record was refused; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not JSON, or not of the record's shape.
    #[error("{0}")]
    Json(String),
    /// A code field is malformed.
    #[error("{field}: {error}")]
    Code {
        /// Field path, e.g. `registrations[1].institution`.
        field: String,
        /// Why.
        error: CodeError,
    },
    /// A time field is malformed.
    #[error("{field}: {error}")]
    Time {
        /// Field path.
        field: String,
        /// Why.
        error: TimeError,
    },
    /// `until` is not after `from`.
    #[error("{field}: `until` must be after `from`")]
    EmptyInterval {
        /// Field path.
        field: String,
    },
    /// A value that is well formed but not allowed where it stands.
    #[error("{field}: {why}")]
    Invalid {
        /// Field path.
        field: String,
        /// Why (never a value of the record).
        why: &'static str,
    },
}

/// A registration, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Registration {
    /// Where.
    pub institution: InstitutionCode,
    /// When.
    pub during: Interval,
}

/// A practitioner status period, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    /// Suspended or terminated.
    pub status: Status,
    /// When.
    pub during: Interval,
    /// Basis text, if any.
    pub basis: Option<String>,
    /// Decision id, if any.
    pub decision_id: Option<String>,
}

/// A practitioner record, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PractitionerRecord {
    /// The code.
    pub code: PractitionerCode,
    /// Registrations.
    pub registrations: Vec<Registration>,
    /// Status periods.
    pub periods: Vec<Period>,
    /// Version.
    pub version: u64,
}

/// An institution status period, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstitutionPeriod {
    /// Suspended or terminated.
    pub status: Status,
    /// When.
    pub during: Interval,
    /// `None`: the whole institution; otherwise only these departments.
    pub departments: Option<Vec<Box<str>>>,
    /// Basis text, if any.
    pub basis: Option<String>,
}

/// An institution record, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstitutionRecord {
    /// The code.
    pub code: InstitutionCode,
    /// Periods.
    pub periods: Vec<InstitutionPeriod>,
    /// Version.
    pub version: u64,
}

/// A record that is not of the record's shape, said without the record's values: serde_json quotes
/// the offending value (`invalid type: string "张三", expected u64`), and these messages reach logs
/// (`status_record_invalid`) and terminals, where names must not (service.md). Field names, types and
/// the position stay.
pub(super) fn json_error(e: serde_json::Error) -> RecordError {
    RecordError::Json(without_values(&e.to_string()))
}

/// Cuts the quoted values out of a serde message: `string "…"` and `` variant `…` ``.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let string = rest.find("string \"").map(|i| (i, "string ", '"'));
        let variant = rest.find("variant `").map(|i| (i, "variant ", '`'));
        let Some((at, word, quote)) = [string, variant].into_iter().flatten().min_by_key(|(i, _, _)| *i) else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(word.trim_end());
        let body = &rest[at + word.len() + 1..];
        // The value ends at the next unescaped closing quote (serde writes strings with `{:?}`).
        let mut escaped = false;
        let end = body.char_indices().find(|&(_, c)| {
            let close = c == quote && !escaped;
            escaped = c == '\\' && !escaped;
            close
        });
        rest = match end {
            Some((i, c)) => &body[i + c.len_utf8()..],
            None => "",
        };
    }
}

fn time_field(text: &str, field: impl Fn() -> String) -> Result<BjTime, RecordError> {
    BjTime::parse(text.trim()).map_err(|error| RecordError::Time { field: field(), error })
}

/// `at` names the record part for errors; it is only called on an error, so the common path does not
/// format strings.
pub(super) fn interval(from: &str, until: Option<&str>, at: impl Fn() -> String) -> Result<Interval, RecordError> {
    let from = time_field(from, || format!("{}.from", at()))?;
    let until = match until {
        Some(u) => time_field(u, || format!("{}.until", at()))?,
        None => BjTime::MAX,
    };
    if until <= from {
        return Err(RecordError::EmptyInterval { field: at() });
    }
    Ok(Interval { from, until })
}

impl PractitionerText {
    /// Parses one JSON line.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(json_error)
    }

    /// Validates into typed values.
    pub fn validate(&self) -> Result<PractitionerRecord, RecordError> {
        fn c(s: &str) -> Cow<'_, str> {
            Cow::Borrowed(s)
        }
        PractitionerRow {
            code: c(&self.code),
            registrations: self
                .registrations
                .iter()
                .map(|r| RegistrationRow {
                    institution: c(&r.institution),
                    from: c(&r.from),
                    until: r.until.as_deref().map(c),
                })
                .collect(),
            periods: self
                .periods
                .iter()
                .map(|p| PeriodRow {
                    status: p.status,
                    from: c(&p.from),
                    until: p.until.as_deref().map(c),
                    basis: p.basis.as_deref().map(c),
                    decision_id: p.decision_id.as_deref().map(c),
                })
                .collect(),
            version: self.version,
        }
        .validate()
    }
}

#[derive(Deserialize)]
struct RegistrationRow<'a> {
    #[serde(borrow)]
    institution: Cow<'a, str>,
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow, default)]
    until: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PeriodRow<'a> {
    status: Status,
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow, default)]
    until: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    basis: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    decision_id: Option<Cow<'a, str>>,
}

/// A practitioner record read for a table: borrowed from the input line, and without the fields the
/// table does not keep (name, kind, unknown ones), so that loading 12 million records allocates little.
#[derive(Deserialize)]
pub struct PractitionerRow<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow, default)]
    registrations: Vec<RegistrationRow<'a>>,
    #[serde(borrow, default)]
    periods: Vec<PeriodRow<'a>>,
    version: u64,
}

impl<'a> PractitionerRow<'a> {
    /// Parses one JSON line.
    pub fn from_json(bytes: &'a [u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(json_error)
    }

    /// Validates into typed values.
    pub fn validate(&self) -> Result<PractitionerRecord, RecordError> {
        let code = PractitionerCode::parse(self.code.trim())
            .map_err(|error| RecordError::Code { field: "code".into(), error })?;
        let registrations = self
            .registrations
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let at = || format!("registrations[{i}]");
                let institution = InstitutionCode::parse(r.institution.trim())
                    .map_err(|error| RecordError::Code { field: format!("{}.institution", at()), error })?;
                Ok(Registration { institution, during: interval(&r.from, r.until.as_deref(), at)? })
            })
            .collect::<Result<_, RecordError>>()?;
        let periods = self
            .periods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Period {
                    status: p.status,
                    during: interval(&p.from, p.until.as_deref(), || format!("periods[{i}]"))?,
                    basis: p.basis.as_deref().map(str::to_owned),
                    decision_id: p.decision_id.as_deref().map(str::to_owned),
                })
            })
            .collect::<Result<_, RecordError>>()?;
        Ok(PractitionerRecord { code, registrations, periods, version: self.version })
    }
}

fn until_text(t: BjTime) -> Option<String> {
    (t != BjTime::MAX).then(|| t.to_string())
}

impl PractitionerRecord {
    /// Back to the written form (without name).
    pub fn to_text(&self) -> PractitionerText {
        PractitionerText {
            code: self.code.to_string(),
            name: None,
            kind: self.code.kind().map(|k| k.as_str().to_owned()),
            registrations: self
                .registrations
                .iter()
                .map(|r| RegistrationText {
                    institution: r.institution.to_string(),
                    from: r.during.from.to_string(),
                    until: until_text(r.during.until),
                })
                .collect(),
            periods: self
                .periods
                .iter()
                .map(|p| PeriodText {
                    status: p.status,
                    from: p.during.from.to_string(),
                    until: until_text(p.during.until),
                    basis: p.basis.clone(),
                    decision_id: p.decision_id.clone(),
                })
                .collect(),
            version: self.version,
        }
    }
}

impl InstitutionText {
    /// Parses one JSON line.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(json_error)
    }

    /// Validates into typed values.
    pub fn validate(&self) -> Result<InstitutionRecord, RecordError> {
        let code = InstitutionCode::parse(self.code.trim())
            .map_err(|error| RecordError::Code { field: "code".into(), error })?;
        let periods = self
            .periods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at = format!("periods[{i}]");
                let departments = match &p.departments {
                    None => None,
                    Some(list) => Some(
                        list.iter()
                            .enumerate()
                            .map(|(j, d)| {
                                check_department(d.trim()).map(Into::into).map_err(|error| RecordError::Code {
                                    field: format!("{at}.departments[{j}]"),
                                    error,
                                })
                            })
                            .collect::<Result<Vec<Box<str>>, _>>()?,
                    ),
                };
                Ok(InstitutionPeriod {
                    status: p.status,
                    during: interval(&p.from, p.until.as_deref(), || at.clone())?,
                    departments,
                    basis: p.basis.clone(),
                })
            })
            .collect::<Result<_, RecordError>>()?;
        Ok(InstitutionRecord { code, periods, version: self.version })
    }
}

impl InstitutionRecord {
    /// Back to the written form.
    pub fn to_text(&self) -> InstitutionText {
        InstitutionText {
            code: self.code.to_string(),
            name: None,
            kind: None,
            periods: self
                .periods
                .iter()
                .map(|p| InstitutionPeriodText {
                    status: p.status,
                    from: p.during.from.to_string(),
                    until: until_text(p.during.until),
                    departments: p.departments.as_ref().map(|d| d.iter().map(|s| s.to_string()).collect()),
                    basis: p.basis.clone(),
                })
                .collect(),
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{"code": "D110105000123", "name": "张三", "kind": "doctor",
     "registrations": [{"institution": "H11010500001", "from": "2021-03-01", "until": null},
                       {"institution": "H11010500007", "from": "2023-07-01", "until": "2025-01-01"}],
     "periods": [{"status": "suspended", "from": "2026-03-20", "until": "2026-06-20",
                  "basis": "national-2024 Art. 11(2): 9 points in 2026", "decision_id": "QH-2026-0031"}],
     "version": 17}"#;

    #[test]
    fn the_spec_example_validates() {
        let r = PractitionerText::from_json(SPEC_EXAMPLE.as_bytes()).unwrap().validate().unwrap();
        assert_eq!(r.version, 17);
        assert_eq!(r.registrations.len(), 2);
        assert_eq!(r.registrations[0].during.until, BjTime::MAX);
        assert_eq!(r.periods[0].status, Status::Suspended);
        let t = r.to_text();
        assert_eq!(t.registrations[1].until.as_deref(), Some("2025-01-01 00:00:00"));
        assert_eq!(t.validate().unwrap(), r);
    }

    #[test]
    fn intervals_are_half_open() {
        let i = interval("2026-03-20", Some("2026-06-20"), || "x".into()).unwrap();
        assert!(!i.contains(BjTime::parse("2026-03-19 23:59:59").unwrap()));
        assert!(i.contains(BjTime::parse("2026-03-20 00:00:00").unwrap()));
        assert!(i.contains(BjTime::parse("2026-06-19 23:59:59").unwrap()));
        assert!(!i.contains(BjTime::parse("2026-06-20 00:00:00").unwrap()));
    }

    #[test]
    fn bad_records_name_the_field() {
        let bad = SPEC_EXAMPLE.replace("H11010500007", "H1101050000X");
        let e = PractitionerText::from_json(bad.as_bytes()).unwrap().validate().unwrap_err();
        assert!(e.to_string().starts_with("registrations[1].institution"), "{e}");
        let bad = SPEC_EXAMPLE.replace("2026-06-20", "2026-03-20");
        let e = PractitionerText::from_json(bad.as_bytes()).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("periods[0]"), "{e}");
        let bad = SPEC_EXAMPLE.replace("\"suspended\"", "\"paused\"");
        assert!(PractitionerText::from_json(bad.as_bytes()).is_err());
        let bad = SPEC_EXAMPLE.replace("\"version\": 17", "\"version\": -1");
        assert!(PractitionerText::from_json(bad.as_bytes()).is_err());
    }

    #[test]
    fn shape_errors_do_not_repeat_the_values() {
        for (bad, kept) in [
            (SPEC_EXAMPLE.replace("\"version\": 17", "\"version\": \"张三\""), "invalid type: string, expected u64"),
            (SPEC_EXAMPLE.replace("\"suspended\"", "\"张 \\\" 三\""), "unknown variant, expected"),
            (SPEC_EXAMPLE.replace("\"doctor\"", "[\"张三\"]"), "invalid type: sequence, expected a string"),
        ] {
            let e = PractitionerText::from_json(bad.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains('张') && !e.contains('三'), "{e}");
            assert!(e.contains(kept) && e.contains(" column "), "{e}");
        }
        assert_eq!(without_values("missing field `version` at line 1"), "missing field `version` at line 1");
        assert_eq!(without_values("a string \"x\" and variant `y` end"), "a string and variant end");
        assert_eq!(without_values("string \"unterminated"), "string");
    }

    #[test]
    fn institution_example_validates() {
        let json = r#"{"code": "H11010500001", "name": "某某医院", "kind": "hospital",
         "periods": [{"status": "suspended", "from": "2026-05-01", "until": "2026-08-01", "departments": null, "basis": "…"},
                     {"status": "suspended", "from": "2026-02-01", "until": "2026-03-01", "departments": ["A03.06"], "basis": "…"}],
         "version": 3}"#;
        let r = InstitutionText::from_json(json.as_bytes()).unwrap().validate().unwrap();
        assert_eq!(r.periods[0].departments, None);
        assert_eq!(r.periods[1].departments.as_deref(), Some(&["A03.06".into()][..]));
        assert_eq!(r.to_text().validate().unwrap(), r);
    }
}
