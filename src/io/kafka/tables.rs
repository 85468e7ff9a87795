//! The status tables as the status topics hold them, for `review --tables-from-topics`: each topic read
//! to its end (committed records only), version wins, tombstones delete, invalid records skipped and
//! counted — the table a stream instance that started now would hold.

use std::collections::HashMap;

use anyhow::Result;

use super::KafkaConfig;
use super::status_writer::read_to_end;
use crate::io::tables::Loaded;
use claimgate::record::{InstitutionCode, InstitutionText, PractitionerKey, PractitionerRow};
use claimgate::table::{InstitutionTable, PractitionerTable, View};

/// Reads both status topics to their end into a view; institution names come back beside it (the
/// table does not hold names; reports show them).
pub fn load(kafka: &KafkaConfig, practitioners: &str, institutions: &str) -> Result<Loaded> {
    let mut table = PractitionerTable::with_capacity(1 << 16);
    let mut invalid = 0u64;
    let records = read_to_end(kafka, practitioners, |key, value| match value {
        None => {
            if let Some(k) = key.and_then(|k| PractitionerKey::parse(k).ok()) {
                let _ = table.delete(k);
            }
        }
        Some(v) => match PractitionerRow::from_json(v).and_then(|t| t.validate()) {
            Ok(rec) => {
                if table.upsert(&rec).is_err() {
                    invalid += 1;
                }
            }
            Err(_) => invalid += 1,
        },
    })?;
    let mut insts = InstitutionTable::default();
    let mut names = HashMap::new();
    let inst_records = read_to_end(kafka, institutions, |key, value| match value {
        None => {
            if let Some(k) = key.and_then(|k| InstitutionCode::parse(k).ok()) {
                insts.delete(k);
                names.remove(&k);
            }
        }
        Some(v) => match InstitutionText::from_json(v).and_then(|t| t.validate().map(|r| (t.name, r))) {
            Ok((name, rec)) => {
                let code = rec.code;
                if insts.upsert(rec) != claimgate::table::Upsert::Stale {
                    match name {
                        Some(n) => names.insert(code, n),
                        None => names.remove(&code),
                    };
                }
            }
            Err(_) => invalid += 1,
        },
    })?;
    let view = View::new(table.rebuilt(None)?, insts);
    Ok(Loaded {
        description: format!(
            "status topics `{practitioners}` ({records} records) and `{institutions}` ({inst_records} records), read to their end{}",
            if invalid > 0 { format!("; {invalid} invalid records skipped") } else { String::new() }
        ),
        view,
        names,
    })
}
