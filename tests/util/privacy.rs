//! The personal data of claim lines (`psn_no`, `bilg_dr_name`) and the check that none of it reached a
//! log (service.md: masked in logs).

use std::collections::HashSet;

use claimgate::synth::Line;

/// Asserts that no `psn_no` and no practitioner name of `lines` appears in `logs` (service.md: masked).
pub fn assert_masked(logs: &str, lines: &[Line]) {
    let (psn, names) = personal_data(lines);
    assert!(!psn.is_empty() && !names.is_empty(), "the lines carry no personal data to look for");
    // psn_no values are long digit strings: compare every digit run of the logs against them.
    let mut leaked: Vec<String> = Vec::new();
    for run in logs.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() >= 6) {
        if psn.contains(run) {
            leaked.push(format!("psn_no {run}"));
        }
    }
    // Names are Chinese: look for them in the logs' non-ASCII runs.
    for run in logs.split(|c: char| c.is_ascii()).filter(|r| !r.is_empty()) {
        for n in &names {
            if run.contains(n.as_str()) {
                leaked.push(format!("name {n}"));
            }
        }
    }
    assert!(leaked.is_empty(), "personal data in the logs: {:?}", &leaked[..leaked.len().min(10)]);
}

/// The `psn_no` and `bilg_dr_name` values of the lines, read as text (malformed lines included).
pub fn personal_data(lines: &[Line]) -> (HashSet<String>, HashSet<String>) {
    let field = |line: &str, name: &str| -> Option<String> {
        let at = line.find(&format!("\"{name}\":\""))? + name.len() + 4;
        let len = line[at..].find('"')?;
        Some(line[at..at + len].to_owned())
    };
    let (mut psn, mut names) = (HashSet::new(), HashSet::new());
    for l in lines {
        let text = String::from_utf8_lossy(&l.bytes);
        psn.extend(field(&text, "psn_no").filter(|p| p.len() >= 6));
        names.extend(field(&text, "bilg_dr_name").filter(|n| !n.is_empty()));
    }
    (psn, names)
}
