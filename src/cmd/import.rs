//! `claimgate tables import`: registry exports in CSV → the JSON Lines records of records.md.
//!
//! Exports from the national platform's maintenance window come as spreadsheets, one row per
//! registration and one per status period; this groups them by code. Columns (a header row is
//! required, extra columns are ignored, surrounding white space — including the tab that exports add
//! to keep digit strings as text — is removed):
//!
//! - registrations: `code, institution, from, until[, name, kind, version]`
//! - periods: `code, status, from, until[, basis, decision_id, version]`
//! - institution periods: `code, status, from, until[, departments, basis, version]`, departments
//!   separated by `;` (empty: the whole institution)
//!
//! A record's `version` is the largest given on its rows (1 if none). Every record is validated as
//! `tables build` would; a bad row stops the import with its file and line, and nothing is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use crate::io::files::{self, Output};
use claimgate::record::{
    InstitutionPeriodText, InstitutionText, PeriodText, PractitionerText, RegistrationText, Status,
};

/// Arguments of `tables import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Registrations CSV: code, institution, from, until[, name, kind, version].
    #[arg(long, value_name = "FILE")]
    pub registrations: Option<PathBuf>,
    /// Practitioner status periods CSV: code, status, from, until[, basis, decision_id, version].
    #[arg(long, value_name = "FILE")]
    pub periods: Option<PathBuf>,
    /// Institution status periods CSV: code, status, from, until[, departments, basis, version].
    #[arg(long, value_name = "FILE")]
    pub institution_periods: Option<PathBuf>,
    /// Practitioner records out (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub out_practitioners: Option<PathBuf>,
    /// Institution records out (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub out_institutions: Option<PathBuf>,
}

/// The rows of one CSV file as (line number, column name → trimmed value).
fn rows(path: &Path, required: &[&str]) -> Result<Vec<(u64, BTreeMap<String, String>)>> {
    let input = files::open(path)?;
    let name = input.name.clone();
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input.reader);
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{name}: cannot read the header row"))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for r in required {
        if !headers.iter().any(|h| h == r) {
            bail!("{name}: no `{r}` column (header: {})", headers.join(","));
        }
    }
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.with_context(|| format!("{name}:{line}"))?;
        let map = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.clone(), v.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n')).to_owned()))
            .collect();
        out.push((line, map));
    }
    Ok(out)
}

fn opt(row: &BTreeMap<String, String>, k: &str) -> Option<String> {
    row.get(k).filter(|v| !v.is_empty()).cloned()
}

fn version(row: &BTreeMap<String, String>, at: &str) -> Result<u64> {
    match opt(row, "version") {
        None => Ok(1),
        Some(v) => v.parse().map_err(|_| anyhow!("{at}: `version` is not a whole number: `{v}`")),
    }
}

fn status(row: &BTreeMap<String, String>, at: &str) -> Result<Status> {
    match opt(row, "status").as_deref() {
        Some("suspended") | Some("暂停") => Ok(Status::Suspended),
        Some("terminated") | Some("终止") => Ok(Status::Terminated),
        other => bail!("{at}: `status` must be suspended/暂停 or terminated/终止, not `{}`", other.unwrap_or("")),
    }
}

/// Runs `tables import`.
pub fn run(args: ImportArgs) -> Result<()> {
    let mut people: BTreeMap<String, PractitionerText> = BTreeMap::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = &args.registrations {
        for (line, row) in rows(path, &["code", "institution", "from"])? {
            let at = format!("{}:{line}", path.display());
            let code = opt(&row, "code").ok_or_else(|| anyhow!("{at}: empty `code`"))?;
            let p = people.entry(code.clone()).or_insert_with(|| empty(&code));
            origin.entry(code.clone()).or_insert_with(|| at.clone());
            p.registrations.push(RegistrationText {
                institution: opt(&row, "institution").unwrap_or_default(),
                from: opt(&row, "from").unwrap_or_default(),
                until: opt(&row, "until"),
            });
            p.name = p.name.take().or_else(|| opt(&row, "name"));
            p.kind = p.kind.take().or_else(|| opt(&row, "kind"));
            p.version = p.version.max(version(&row, &at)?);
        }
    }
    if let Some(path) = &args.periods {
        for (line, row) in rows(path, &["code", "status", "from"])? {
            let at = format!("{}:{line}", path.display());
            let code = opt(&row, "code").ok_or_else(|| anyhow!("{at}: empty `code`"))?;
            let p = people.entry(code.clone()).or_insert_with(|| empty(&code));
            origin.entry(code.clone()).or_insert_with(|| at.clone());
            p.periods.push(PeriodText {
                status: status(&row, &at)?,
                from: opt(&row, "from").unwrap_or_default(),
                until: opt(&row, "until"),
                basis: opt(&row, "basis"),
                decision_id: opt(&row, "decision_id"),
            });
            p.version = p.version.max(version(&row, &at)?);
        }
    }
    let mut institutions: BTreeMap<String, InstitutionText> = BTreeMap::new();
    if let Some(path) = &args.institution_periods {
        for (line, row) in rows(path, &["code", "status", "from"])? {
            let at = format!("{}:{line}", path.display());
            let code = opt(&row, "code").ok_or_else(|| anyhow!("{at}: empty `code`"))?;
            let departments = opt(&row, "departments")
                .map(|d| d.split(';').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
            let i = institutions.entry(code.clone()).or_insert_with(|| InstitutionText {
                code: code.clone(),
                name: None,
                kind: None,
                periods: vec![],
                version: 1,
            });
            origin.entry(format!("institution {code}")).or_insert_with(|| at.clone());
            i.periods.push(InstitutionPeriodText {
                status: status(&row, &at)?,
                from: opt(&row, "from").unwrap_or_default(),
                until: opt(&row, "until"),
                departments,
                basis: opt(&row, "basis"),
            });
            i.version = i.version.max(version(&row, &at)?);
        }
    }
    // Validate everything before writing anything.
    for (code, p) in &people {
        p.validate().map_err(|e| anyhow!("{} (code {code}): {e}", origin[code]))?;
    }
    for (code, i) in &institutions {
        i.validate().map_err(|e| anyhow!("{} (institution {code}): {e}", origin[&format!("institution {code}")]))?;
    }
    let mut outputs = Vec::new();
    if let Some(path) = &args.out_practitioners {
        let mut out = Output::create(path)?;
        for p in people.values() {
            serde_json::to_writer(&mut out, p)?;
            out.write_all(b"\n")?;
        }
        outputs.push((out, format!("{} practitioner records → {}", people.len(), path.display())));
    }
    if let Some(path) = &args.out_institutions {
        let mut out = Output::create(path)?;
        for i in institutions.values() {
            serde_json::to_writer(&mut out, i)?;
            out.write_all(b"\n")?;
        }
        outputs.push((out, format!("{} institution records → {}", institutions.len(), path.display())));
    }
    if outputs.is_empty() {
        bail!("nothing to write: give --out-practitioners and/or --out-institutions");
    }
    for (out, what) in outputs {
        out.finish()?;
        eprintln!("{what}");
    }
    Ok(())
}

fn empty(code: &str) -> PractitionerText {
    PractitionerText {
        code: code.to_owned(),
        name: None,
        kind: None,
        registrations: vec![],
        periods: vec![],
        version: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn groups_rows_by_code_and_trims_export_padding() {
        let dir = tempfile::tempdir().unwrap();
        let regs = write(
            dir.path(),
            "r.csv",
            "code,name,institution,from,until,version\n\tD110105000123\t,张三,H11010500001,2021-03-01,,3\n\
             D110105000123,张三,H11010500007,2023-07-01,2025-01-01,17\n0457,,H11010500001,2020-01-01,,\n",
        );
        let periods = write(
            dir.path(),
            "p.csv",
            "code,status,from,until,basis,decision_id\nD110105000123,暂停,2026-03-20,2026-06-20,9 points,QH-2026-0031\n",
        );
        let inst = write(
            dir.path(),
            "i.csv",
            "code,status,from,until,departments,version\nH11010500001,suspended,2026-02-01,2026-03-01,A03.06;A04,3\n",
        );
        let out = dir.path().join("p.jsonl");
        let out_i = dir.path().join("i.jsonl");
        run(ImportArgs {
            registrations: Some(regs),
            periods: Some(periods),
            institution_periods: Some(inst),
            out_practitioners: Some(out.clone()),
            out_institutions: Some(out_i.clone()),
        })
        .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let recs: Vec<PractitionerText> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(recs.len(), 2);
        let d = recs.iter().find(|r| r.code == "D110105000123").unwrap();
        assert_eq!((d.registrations.len(), d.periods.len(), d.version), (2, 1, 17));
        assert_eq!(d.periods[0].status, Status::Suspended);
        assert_eq!(d.name.as_deref(), Some("张三"));
        let i: InstitutionText = serde_json::from_str(std::fs::read_to_string(&out_i).unwrap().trim()).unwrap();
        assert_eq!(i.periods[0].departments.as_deref(), Some(&["A03.06".to_owned(), "A04".to_owned()][..]));
    }

    #[test]
    fn a_bad_row_names_its_file_and_line_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let regs = write(
            dir.path(),
            "r.csv",
            "code,institution,from\nD110105000123,H11010500001,2021-03-01\nD110105000124,H1,2021-03-01\n",
        );
        let out = dir.path().join("p.jsonl");
        let e = run(ImportArgs {
            registrations: Some(regs),
            periods: None,
            institution_periods: None,
            out_practitioners: Some(out.clone()),
            out_institutions: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("r.csv:3") && e.contains("institution"), "{e}");
        assert!(!out.exists());
        let bad = write(dir.path(), "b.csv", "code,status,from\nD110105000123,paused,2026-01-01\n");
        let e = run(ImportArgs {
            registrations: None,
            periods: Some(bad),
            institution_periods: None,
            out_practitioners: Some(out.clone()),
            out_institutions: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("b.csv:2") && e.contains("status"), "{e}");
    }
}
