//! Registry exports (records.md, "Registry export"): what agencies download from the national platform's
//! practitioner maintenance window, as CSV (one row per person and institution) or JSON Lines (one
//! practitioner record per line), read into practitioner records grouped by code.
//!
//! CSV columns are found by header name. The defaults are the national download's (Yinhai GB001/GB002):
//! 医保医生代码, 姓名, 人员状态, 定点医药机构代码, 合同起始时间, 合同截止时间 — and their English names
//! (`code`, `name`, `status`, `institution`, `from`, `until`, `kind`); `--column field=HEADER` maps
//! another export's header. Files may start with a UTF-8 byte-order mark and may be GB18030 (as saved by
//! spreadsheet programs): a file that is not valid UTF-8 is read as GB18030. Surrounding white space
//! (the tab exports add to keep digits as text) is removed. A row that cannot be read stops the reading
//! with the file, line and column.
//!
//! `人员状态` (status): normal values (正常, 有效, 在职, 1, empty) make the row a registration;
//! ended ones (注销, 离职, 退休, 停用, 无效, 0) leave it out — the person is not registered there;
//! 暂停 / 终止 keep the registration and are counted: suspensions and terminations are decided by
//! `claimgate score` and institution decisions, not taken from the registry.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use claimgate::record::{PractitionerText, RegistrationText};

/// The fields read from a CSV export, and the header names each is found under by default.
pub const DEFAULT_COLUMNS: [(&str, &[&str]); 7] = [
    ("code", &["医保医生代码", "医保医师代码", "人员代码", "code"]),
    ("name", &["姓名", "name"]),
    ("status", &["人员状态", "status"]),
    ("institution", &["定点医药机构代码", "定点医疗机构代码", "机构代码", "institution"]),
    ("from", &["合同起始时间", "开始时间", "from"]),
    ("until", &["合同截止时间", "结束时间", "until"]),
    ("kind", &["kind"]),
];

/// A registry export read into records, with what was left out.
#[derive(Debug, Default)]
pub struct Export {
    /// One record per code (periods empty, version 0), registrations in order of start.
    pub people: BTreeMap<String, PractitionerText>,
    /// Rows of ended registrations, left out.
    pub ended_rows: usize,
    /// Rows marked 暂停 / 终止 (kept as registrations; the status comes from scoring).
    pub disciplinary_rows: usize,
    /// Records of a JSON Lines export that carried periods (ignored: periods come from scoring).
    pub periods_ignored: usize,
    /// The file was GB18030, not UTF-8.
    pub gb18030: bool,
}

/// The text of a file: a UTF-8 byte-order mark removed; GB18030 if it is not UTF-8.
fn text(path: &Path) -> Result<(String, bool)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_owned(), false)),
        Err(_) => {
            let (s, _, bad) = encoding_rs::GB18030.decode(bytes);
            if bad {
                bail!("{}: neither UTF-8 nor GB18030", path.display());
            }
            Ok((s.into_owned(), true))
        }
    }
}

/// Reads an export: JSON Lines when the name ends in `.jsonl`/`.json`, CSV otherwise. `columns`
/// overrides header names (`field=HEADER`).
pub fn read(path: &Path, columns: &[String]) -> Result<Export> {
    let name = path.display().to_string();
    let jsonl = name.ends_with(".jsonl") || name.ends_with(".json");
    let (text, gb18030) = text(path)?;
    let mut export = if jsonl { read_jsonl(&name, &text)? } else { read_csv(&name, &text, columns)? };
    export.gb18030 = gb18030;
    for p in export.people.values_mut() {
        p.registrations.sort_by(|a, b| (&a.from, &a.institution).cmp(&(&b.from, &b.institution)));
        p.registrations.dedup();
        if p.kind.is_none() {
            p.kind = claimgate::record::PractitionerCode::parse(&p.code)
                .ok()
                .and_then(|c| c.kind())
                .map(|k| k.as_str().to_owned());
        }
        // The record as a whole must be one the status table takes.
        p.version = 1;
        p.validate().map_err(|e| anyhow!("{name}: practitioner {}: {e}", p.code))?;
        p.version = 0;
    }
    Ok(export)
}

fn read_jsonl(name: &str, text: &str) -> Result<Export> {
    let mut export = Export::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{name}:{}", i + 1);
        let mut t = PractitionerText::from_json(line.as_bytes()).map_err(|e| anyhow!("{}: {e}", at()))?;
        if !t.periods.is_empty() {
            export.periods_ignored += 1;
            t.periods.clear();
        }
        t.code = t.code.trim().to_owned();
        match export.people.get_mut(&t.code) {
            Some(p) => p.registrations.extend(t.registrations),
            None => {
                export.people.insert(t.code.clone(), t);
            }
        }
    }
    Ok(export)
}

fn read_csv(name: &str, text: &str, columns: &[String]) -> Result<Export> {
    let mut names: BTreeMap<&str, Vec<String>> =
        DEFAULT_COLUMNS.iter().map(|(f, hs)| (*f, hs.iter().map(|h| (*h).to_owned()).collect())).collect();
    for c in columns {
        let (field, header) = c.split_once('=').ok_or_else(|| anyhow!("--column {c}: expected FIELD=HEADER"))?;
        let slot = names.get_mut(field.trim()).ok_or_else(|| {
            anyhow!(
                "--column {c}: unknown field `{field}` (fields: code, name, status, institution, from, until, kind)"
            )
        })?;
        *slot = vec![header.trim().to_owned()];
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{name}: cannot read the header row"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let index = |field: &str| -> Option<usize> {
        names[field].iter().find_map(|n| headers.iter().position(|h| h.eq_ignore_ascii_case(n)))
    };
    let col = |field: &str| -> Result<usize> {
        index(field).ok_or_else(|| {
            anyhow!(
                "{name}: no column for `{field}` (looked for {}; header: {})",
                names[field].join(", "),
                headers.join(",")
            )
        })
    };
    let (code, institution, from) = (col("code")?, col("institution")?, col("from")?);
    let (pname, status, until, kind) = (index("name"), index("status"), index("until"), index("kind"));
    let mut export = Export::default();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{name}:{line}"))?;
        let get = |c: Option<usize>| -> Option<String> {
            c.and_then(|c| rec.get(c))
                .map(|v| v.trim_matches(|c: char| c.is_whitespace()).to_owned())
                .filter(|v| !v.is_empty())
        };
        let at = |c: usize| format!("{name}:{line}, column {} ({})", c + 1, headers.get(c).map_or("", String::as_str));
        let code_v = get(Some(code)).ok_or_else(|| anyhow!("{}: empty code", at(code)))?;
        match get(status).as_deref() {
            None | Some("正常" | "有效" | "在职" | "1" | "normal") => {}
            Some("注销" | "离职" | "退休" | "停用" | "无效" | "0" | "ended") => {
                export.ended_rows += 1;
                continue;
            }
            Some("暂停" | "终止" | "suspended" | "terminated") => export.disciplinary_rows += 1,
            Some(other) => bail!(
                "{}: unknown status `{other}` (正常/有效/在职/1: registered; 注销/离职/退休/停用/无效/0: ended; 暂停/终止: kept, decided by score)",
                at(status.unwrap_or(0))
            ),
        }
        let reg = RegistrationText {
            institution: get(Some(institution)).ok_or_else(|| anyhow!("{}: empty institution", at(institution)))?,
            from: get(Some(from)).ok_or_else(|| anyhow!("{}: empty start", at(from)))?,
            until: get(until),
        };
        // Each row checked on its own, so that an error names its line and column.
        let single = PractitionerText {
            code: code_v.clone(),
            name: None,
            kind: None,
            registrations: vec![reg.clone()],
            periods: vec![],
            version: 1,
        };
        if let Err(e) = single.validate() {
            let column = match e.to_string() {
                t if t.contains("institution") => institution,
                t if t.contains("registrations") => from,
                _ => code,
            };
            bail!("{}: {e}", at(column));
        }
        let p = export.people.entry(code_v.clone()).or_insert_with(|| PractitionerText {
            code: code_v,
            name: None,
            kind: None,
            registrations: vec![],
            periods: vec![],
            version: 0,
        });
        p.registrations.push(reg);
        if p.name.is_none() {
            p.name = get(pname);
        }
        if p.kind.is_none() {
            p.kind = get(kind);
        }
    }
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    const NATIONAL: &str = "医保医生代码,姓名,人员状态,定点医药机构代码,合同起始时间,合同截止时间,执业类别,执业范围\n\
        \tD110105000001,张三,正常,\tH11010500001,2021-03-01,,临床,内科\n\
        D110105000001,张三,正常,H11010500007,2023-07-01 00:00:00,2025-01-01,临床,内科\n\
        D110105000002,李四,注销,H11010500001,2020-01-01,,临床,外科\n\
        N110105000003,王五,暂停,H11010500001,2022-01-01,,护理,护理\n";

    #[test]
    fn reads_the_national_download_by_its_chinese_headers_records_md() {
        let (_d, path) = write("export.csv", NATIONAL.as_bytes());
        let e = read(&path, &[]).unwrap();
        assert_eq!(e.people.len(), 2, "{:?}", e.people.keys());
        let d1 = &e.people["D110105000001"];
        assert_eq!(d1.registrations.len(), 2);
        assert_eq!(d1.name.as_deref(), Some("张三"));
        assert_eq!(d1.kind.as_deref(), Some("doctor"));
        assert_eq!((e.ended_rows, e.disciplinary_rows), (1, 1));
        assert!(e.people.contains_key("N110105000003"));
    }

    #[test]
    fn a_byte_order_mark_and_gb18030_are_read() {
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(NATIONAL.as_bytes());
        let (_d, path) = write("bom.csv", &bom);
        assert_eq!(read(&path, &[]).unwrap().people.len(), 2);
        let (gb, _, _) = encoding_rs::GB18030.encode(NATIONAL);
        let (_d, path) = write("gb.csv", &gb);
        let e = read(&path, &[]).unwrap();
        assert!(e.gb18030);
        assert_eq!(e.people["D110105000001"].name.as_deref(), Some("张三"));
    }

    #[test]
    fn a_bad_row_names_the_file_line_and_column_and_headers_can_be_mapped() {
        let bad = NATIONAL.replace("H11010500007", "X7");
        let (_d, path) = write("bad.csv", bad.as_bytes());
        let e = read(&path, &[]).unwrap_err().to_string();
        assert!(e.contains("bad.csv:3, column 4 (定点医药机构代码)"), "{e}");
        let other = "工号,单位,起\nD110105000001,H11010500001,2021-03-01\n";
        let (_d, path) = write("other.csv", other.as_bytes());
        assert!(read(&path, &[]).unwrap_err().to_string().contains("no column for `code`"));
        let cols = ["code=工号".to_owned(), "institution=单位".to_owned(), "from=起".to_owned()];
        assert_eq!(read(&path, &cols).unwrap().people.len(), 1);
        let odd = NATIONAL.replace("注销", "出差");
        let (_d, path) = write("odd.csv", odd.as_bytes());
        assert!(read(&path, &[]).unwrap_err().to_string().contains("unknown status `出差`"));
    }
}
