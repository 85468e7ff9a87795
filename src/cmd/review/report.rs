//! The review report: totals by verdict and reason, by institution and by practitioner, the lines a
//! warned reason would reject once enforced (and whom they concern), dead letters, and verdict changes
//! against the inline decisions — with amounts summed exactly, in fen.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use claimgate::record::{Amount, Claim, InstitutionCode, Outcome, Reason, Role, Verdict};

/// Lines and money.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines.
    pub lines: u64,
    /// Sum of `det_item_fee_sumamt`, in fen (i128: no sum of real fees can overflow it).
    pub fen: i128,
}

impl Tally {
    /// Adds one line.
    pub fn add(&mut self, amount: Amount) {
        self.lines += 1;
        self.fen += i128::from(amount.fen());
    }

    fn merge(&mut self, other: Tally) {
        self.lines += other.lines;
        self.fen += other.fen;
    }
}

/// Yuan with two decimals and thousands separators, exactly.
pub fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let int = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}

/// Per institution.
#[derive(Clone, Copy, Debug, Default)]
pub struct InstitutionTally {
    /// Accepted lines.
    pub accepted: Tally,
    /// Rejected lines.
    pub rejected: Tally,
}

/// Per practitioner with at least one line that was not a plain accept.
#[derive(Clone, Debug, Default)]
pub struct PractitionerTally {
    /// Rejected lines.
    pub rejected: Tally,
    /// Emergency overrides.
    pub overridden: Tally,
    /// Reasons seen, as a bit set over [`Reason::index`].
    pub reasons: u16,
}

/// Per person with at least one accepted line that a warned reason would reject.
#[derive(Clone, Copy, Debug, Default)]
pub struct WarnedTally {
    /// Those lines.
    pub lines: Tally,
    /// The warned reasons seen, as a bit set over [`Reason::index`].
    pub reasons: u16,
}

/// A line whose verdict or reason differs from the inline decision.
#[derive(Clone, Debug)]
pub struct Changed {
    /// Identity.
    pub fixmedins_code: InstitutionCode,
    /// Identity.
    pub mdtrt_id: String,
    /// Identity.
    pub feedetl_sn: String,
    /// The practitioner.
    pub practitioner: String,
    /// Amount.
    pub amount: Amount,
    /// Service time.
    pub fee_ocur_time: claimgate::record::BjTime,
    /// Inline decision.
    pub before: Reason,
    /// This review's decision.
    pub after: Reason,
    /// Where the line came in the input (block, line in block): workers find changes in any order,
    /// the report lists them in input order.
    pub order: (u64, u64),
    /// In a late-change review: the change (its index in the run's list) that chose the line.
    pub cause: Option<u32>,
}

/// Everything a report counts; built per chunk on the workers, merged in input order by the writer.
#[derive(Debug, Default)]
pub struct Stats {
    /// By final reason.
    pub by_reason: [Tally; Reason::COUNT],
    /// Emergency overrides, by the reason overridden.
    pub overridden: [Tally; Reason::COUNT],
    /// Accepted lines that a warned reason would reject once enforced, by that reason (rules.md,
    /// "Enforcement").
    pub would_reject: [Tally; Reason::COUNT],
    /// The same lines by the person they concern: (code field, code).
    pub would_reject_by_practitioner: FxHashMap<(Role, String), WarnedTally>,
    /// The same lines by institution.
    pub would_reject_by_institution: FxHashMap<InstitutionCode, WarnedTally>,
    /// By institution.
    pub by_institution: FxHashMap<InstitutionCode, InstitutionTally>,
    /// By practitioner (only those with a reject or an override, which keeps memory bounded by the
    /// number of people with problems rather than by input size).
    pub by_practitioner: FxHashMap<String, PractitionerTally>,
    /// Dead letters by field (`-` when no single field is to blame).
    pub dead_by_field: BTreeMap<String, u64>,
    /// Lines billed under a code not of a national form.
    pub legacy_codes: u64,
    /// Verdict or reason changes against `--previous`.
    pub changed: Vec<Changed>,
    /// Decided lines that `--previous` has no decision for.
    pub not_in_previous: u64,
}

/// `Reason::index` of a verdict's reasons, for `reasons` bit sets.
fn bit(r: Reason) -> u16 {
    1 << r.index()
}

impl Stats {
    /// Counts one decided line.
    pub fn decided(&mut self, claim: &Claim<'_>, outcome: &Outcome<'_>) {
        let amount = claim.amount;
        let reason = outcome.reason;
        self.by_reason[reason.index()].add(amount);
        if let Some(o) = outcome.overridden {
            self.overridden[o.index()].add(amount);
        }
        let inst = self.by_institution.entry(claim.fixmedins_code).or_default();
        match outcome.verdict {
            Verdict::Accept => inst.accepted.add(amount),
            Verdict::Reject => inst.rejected.add(amount),
        }
        // The person the reason concerns (rules.md, "Roles"): the billing practitioner unless the
        // decision names another code field.
        let person = claim.code(outcome.role.unwrap_or(Role::Billing)).unwrap_or_default();
        if reason != Reason::Ok {
            let p = self.by_practitioner.entry(person.to_owned()).or_default();
            match outcome.verdict {
                Verdict::Reject => p.rejected.add(amount),
                Verdict::Accept => p.overridden.add(amount),
            }
            p.reasons |= bit(outcome.overridden.unwrap_or(reason));
        }
        if let Some(w) = outcome.would_reject {
            self.would_reject[w.index()].add(amount);
            let role = outcome.role.unwrap_or(Role::Billing);
            for t in [
                self.would_reject_by_practitioner.entry((role, person.to_owned())).or_default(),
                self.would_reject_by_institution.entry(claim.fixmedins_code).or_default(),
            ] {
                t.lines.add(amount);
                t.reasons |= bit(w);
            }
        }
        if outcome.legacy_code {
            self.legacy_codes += 1;
        }
    }

    /// Counts one dead letter.
    pub fn dead(&mut self, field: Option<&str>) {
        *self.dead_by_field.entry(field.unwrap_or("-").to_owned()).or_default() += 1;
    }

    /// Folds a later chunk's counts into these.
    pub fn merge(&mut self, other: Stats) {
        for i in 0..Reason::COUNT {
            self.by_reason[i].merge(other.by_reason[i]);
            self.overridden[i].merge(other.overridden[i]);
            self.would_reject[i].merge(other.would_reject[i]);
        }
        for (k, v) in other.would_reject_by_practitioner {
            let e = self.would_reject_by_practitioner.entry(k).or_default();
            e.lines.merge(v.lines);
            e.reasons |= v.reasons;
        }
        for (k, v) in other.would_reject_by_institution {
            let e = self.would_reject_by_institution.entry(k).or_default();
            e.lines.merge(v.lines);
            e.reasons |= v.reasons;
        }
        for (k, v) in other.by_institution {
            let e = self.by_institution.entry(k).or_default();
            e.accepted.merge(v.accepted);
            e.rejected.merge(v.rejected);
        }
        for (k, v) in other.by_practitioner {
            let e = self.by_practitioner.entry(k).or_default();
            e.rejected.merge(v.rejected);
            e.overridden.merge(v.overridden);
            e.reasons |= v.reasons;
        }
        for (k, v) in other.dead_by_field {
            *self.dead_by_field.entry(k).or_default() += v;
        }
        self.legacy_codes += other.legacy_codes;
        self.changed.extend(other.changed);
        self.not_in_previous += other.not_in_previous;
    }

    /// Accepted lines that a warned reason would reject.
    pub fn warned(&self) -> Tally {
        let mut t = Tally::default();
        self.would_reject.iter().for_each(|w| t.merge(*w));
        t
    }

    /// Decided lines.
    pub fn decided_lines(&self) -> u64 {
        self.by_reason.iter().map(|t| t.lines).sum()
    }

    /// Dead letters.
    pub fn dead_lines(&self) -> u64 {
        self.dead_by_field.values().sum()
    }

    /// Totals by verdict.
    pub fn by_verdict(&self) -> (Tally, Tally) {
        let mut accept = Tally::default();
        let mut reject = Tally::default();
        for r in Reason::ALL {
            let t = self.by_reason[r.index()];
            if matches!(r, Reason::Ok | Reason::EmergencyOverride) {
                accept.merge(t);
            } else {
                reject.merge(t);
            }
        }
        (accept, reject)
    }
}

/// What the report says about the run itself.
pub struct RunInfo {
    /// Profile name and title.
    pub profile: String,
    /// Where the tables came from.
    pub tables: String,
    /// Table epoch.
    pub epoch: u64,
    /// Practitioners and institutions held.
    pub sizes: (usize, usize),
    /// Input names.
    pub inputs: Vec<String>,
    /// What the reader of the report must know first (lines that may be missing).
    pub warnings: Vec<String>,
    /// Institution names from the institution table, where it gives them.
    pub names: crate::io::tables::Names,
    /// Where dead letters went.
    pub dead_letters: Option<String>,
    /// The previous decisions file, if any, and how many lines it had.
    pub previous: Option<(String, u64)>,
    /// A late-change review (`--retro`): the changes reviewed.
    pub retro: Option<Vec<claimgate::record::RetroChange>>,
    /// When the review ran.
    pub started_at: String,
    /// Seconds it took, tables included.
    pub seconds: f64,
    /// Seconds spent loading the tables.
    pub tables_seconds: f64,
}

const TOP: usize = 50;

fn is_accept(r: Reason) -> bool {
    matches!(r, Reason::Ok | Reason::EmergencyOverride)
}

/// A short plain-text summary for the terminal.
pub fn summary(stats: &Stats, info: &RunInfo) -> String {
    let (acc, rej) = stats.by_verdict();
    let lines = stats.decided_lines() + stats.dead_lines();
    let mut s = String::new();
    let _ = writeln!(s, "claimgate review — profile {}, table epoch {}", info.profile, info.epoch);
    let deciding = (info.seconds - info.tables_seconds).max(1e-9);
    let _ = writeln!(
        s,
        "  {lines} lines in {:.1} s: tables loaded in {:.1} s, then {:.0} lines/s",
        info.seconds,
        info.tables_seconds,
        lines as f64 / deciding
    );
    let _ = writeln!(s, "  accept  {:>10} lines  {:>20} yuan", acc.lines, yuan(acc.fen));
    let _ = writeln!(s, "  reject  {:>10} lines  {:>20} yuan", rej.lines, yuan(rej.fen));
    for r in Reason::ALL {
        let t = stats.by_reason[r.index()];
        if t.lines > 0 && r != Reason::Ok {
            let _ = writeln!(s, "    {:<34} {:>10} lines  {:>20} yuan", r.as_str(), t.lines, yuan(t.fen));
        }
    }
    let warned = stats.warned();
    if warned.lines > 0 {
        let _ = writeln!(
            s,
            "  accepted, but would be rejected once enforced (warned): {:>10} lines  {:>20} yuan",
            warned.lines,
            yuan(warned.fen)
        );
    }
    let _ = writeln!(
        s,
        "  dead letters {}{}",
        stats.dead_lines(),
        info.dead_letters.as_ref().map_or(String::new(), |d| format!(" → {d}"))
    );
    if let Some(changes) = &info.retro {
        let _ = writeln!(s, "  late status changes reviewed: {}", changes.len());
    }
    if info.previous.is_some() {
        let (rec, pay) = change_totals(stats);
        let _ =
            writeln!(s, "  to recover (accepted inline, rejected now): {} lines, {} yuan", rec.lines, yuan(rec.fen));
        let _ =
            writeln!(s, "  to pay (rejected inline, accepted now):     {} lines, {} yuan", pay.lines, yuan(pay.fen));
    }
    s
}

fn change_totals(stats: &Stats) -> (Tally, Tally) {
    let mut recover = Tally::default();
    let mut pay = Tally::default();
    for c in &stats.changed {
        match (is_accept(c.before), is_accept(c.after)) {
            (true, false) => recover.add(c.amount),
            (false, true) => pay.add(c.amount),
            _ => {}
        }
    }
    (recover, pay)
}

/// The Markdown report.
pub fn markdown(stats: &Stats, info: &RunInfo) -> String {
    let mut s = String::new();
    let (acc, rej) = stats.by_verdict();
    let decided = stats.decided_lines();
    let _ = writeln!(s, "# claimgate review report\n");
    for w in &info.warnings {
        let _ = writeln!(s, "> **Warning:** {w}\n");
    }
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| profile | {} |", info.profile);
    let _ = writeln!(s, "| tables | {} |", info.tables.replace('|', "\\|"));
    let _ = writeln!(s, "| table epoch | {} |", info.epoch);
    let _ = writeln!(s, "| practitioners / institutions held | {} / {} |", info.sizes.0, info.sizes.1);
    let _ = writeln!(s, "| inputs | {} |", info.inputs.join("; ").replace('|', "\\|"));
    let _ = writeln!(
        s,
        "| reviewed at | {} (Beijing time), {:.1} s ({:.1} s loading tables) |",
        info.started_at, info.seconds, info.tables_seconds
    );
    let _ = writeln!(s, "| lines decided | {decided} |");
    let _ = writeln!(
        s,
        "| dead letters | {}{} |",
        stats.dead_lines(),
        info.dead_letters.as_ref().map_or(String::new(), |d| format!(" (in `{d}`)"))
    );
    let _ = writeln!(s, "| lines under legacy (non-national) codes | {} |", stats.legacy_codes);
    let _ = writeln!(s, "\nAmounts are `det_item_fee_sumamt` summed exactly, in yuan.");
    super::recovery::markdown(&mut s, stats, info);
    s.push('\n');

    let _ = writeln!(s, "## Totals by verdict\n\n| verdict | lines | amount |\n|---|---:|---:|");
    let _ = writeln!(s, "| accept | {} | {} |", acc.lines, yuan(acc.fen));
    let _ = writeln!(s, "| reject | {} | {} |", rej.lines, yuan(rej.fen));

    let _ = writeln!(s, "\n## By reason\n\n| reason | verdict | lines | amount |\n|---|---|---:|---:|");
    for r in Reason::ALL {
        let t = stats.by_reason[r.index()];
        let v = if is_accept(r) { "accept" } else { "reject" };
        let _ = writeln!(s, "| `{}` | {v} | {} | {} |", r.as_str(), t.lines, yuan(t.fen));
    }
    if stats.by_reason[Reason::EmergencyOverride.index()].lines > 0 {
        let _ = writeln!(
            s,
            "\nEmergency overrides, by the check they passed:\n\n| overridden | lines | amount |\n|---|---:|---:|"
        );
        for r in Reason::CHECKS {
            let t = stats.overridden[r.index()];
            if t.lines > 0 {
                let _ = writeln!(s, "| `{}` | {} | {} |", r.as_str(), t.lines, yuan(t.fen));
            }
        }
    }

    warned_section(&mut s, stats, info);

    let mut insts: Vec<_> = stats.by_institution.iter().filter(|(_, t)| t.rejected.lines > 0).collect();
    insts.sort_by(|a, b| b.1.rejected.fen.cmp(&a.1.rejected.fen).then(a.0.cmp(b.0)));
    let _ = writeln!(
        s,
        "\n## By institution\n\n{} institutions billed; {} had rejected lines. The {} with the largest rejected amounts:\n",
        stats.by_institution.len(),
        insts.len(),
        insts.len().min(TOP)
    );
    let _ = writeln!(
        s,
        "| institution | name | lines | accepted amount | rejected lines | rejected amount |\n|---|---|---:|---:|---:|---:|"
    );
    for (code, t) in insts.iter().take(TOP) {
        let _ = writeln!(
            s,
            "| {code} | {} | {} | {} | {} | {} |",
            name_of(info, **code),
            t.accepted.lines + t.rejected.lines,
            yuan(t.accepted.fen),
            t.rejected.lines,
            yuan(t.rejected.fen)
        );
    }

    let mut people: Vec<_> = stats.by_practitioner.iter().collect();
    people.sort_by(|a, b| b.1.rejected.fen.cmp(&a.1.rejected.fen).then(a.0.cmp(b.0)));
    let _ = writeln!(
        s,
        "\n## By practitioner\n\n{} practitioners had a rejected or emergency-overridden line. The {} with the largest rejected amounts:\n",
        people.len(),
        people.len().min(TOP)
    );
    let _ = writeln!(
        s,
        "| practitioner | rejected lines | rejected amount | overridden lines | overridden amount | reasons |\n|---|---:|---:|---:|---:|---|"
    );
    for (code, t) in people.iter().take(TOP) {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} |",
            code.replace('|', "\\|"),
            t.rejected.lines,
            yuan(t.rejected.fen),
            t.overridden.lines,
            yuan(t.overridden.fen),
            reasons_text(t.reasons)
        );
    }

    if !stats.dead_by_field.is_empty() {
        let _ = writeln!(s, "\n## Dead letters by field\n\n| field | lines |\n|---|---:|");
        for (f, n) in &stats.dead_by_field {
            let _ = writeln!(s, "| `{f}` | {n} |");
        }
    }

    s
}

/// The institution's name as the institution table gives it, escaped for a Markdown table cell; empty
/// where the table has none.
pub fn name_of(info: &RunInfo, code: InstitutionCode) -> String {
    info.names.get(&code).map_or(String::new(), |n| n.replace('|', "\\|"))
}

fn reasons_text(bits: u16) -> String {
    Reason::ALL.iter().filter(|r| bits & bit(**r) != 0).map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

/// rules.md, "Enforcement": the accepted lines a warned reason would reject once enforced, by reason,
/// institution and person — the list an agency publishes before it starts enforcing.
fn warned_section(s: &mut String, stats: &Stats, info: &RunInfo) {
    let total = stats.warned();
    if total.lines == 0 {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Would be rejected once enforced (warned)\n\n{} accepted lines, {} yuan, failed a check that the profile only warns about. \
         By the reason they would be rejected for:\n\n| would reject | lines | amount |\n|---|---:|---:|",
        total.lines,
        yuan(total.fen)
    );
    for r in Reason::CHECKS {
        let t = stats.would_reject[r.index()];
        if t.lines > 0 {
            let _ = writeln!(s, "| `{}` | {} | {} |", r.as_str(), t.lines, yuan(t.fen));
        }
    }
    let mut insts: Vec<_> = stats.would_reject_by_institution.iter().collect();
    insts.sort_by(|a, b| b.1.lines.fen.cmp(&a.1.lines.fen).then(a.0.cmp(b.0)));
    let _ = writeln!(
        s,
        "\nInstitutions that would be hit ({}; the {} with the largest amounts):\n\n| institution | name | lines | amount | reasons |\n|---|---|---:|---:|---|",
        insts.len(),
        insts.len().min(TOP)
    );
    for (code, t) in insts.iter().take(TOP) {
        let _ = writeln!(
            s,
            "| {code} | {} | {} | {} | {} |",
            name_of(info, **code),
            t.lines.lines,
            yuan(t.lines.fen),
            reasons_text(t.reasons)
        );
    }
    let mut people: Vec<_> = stats.would_reject_by_practitioner.iter().collect();
    people.sort_by(|a, b| b.1.lines.fen.cmp(&a.1.lines.fen).then(a.0.cmp(b.0)));
    let _ = writeln!(
        s,
        "\nPractitioners that would be hit ({}; the {} with the largest amounts):\n\n| practitioner | field | lines | amount | reasons |\n|---|---|---:|---:|---|",
        people.len(),
        people.len().min(TOP)
    );
    for ((role, code), t) in people.iter().take(TOP) {
        let _ = writeln!(
            s,
            "| `{}` | `{role}` | {} | {} | {} |",
            code.replace('|', "\\|"),
            t.lines.lines,
            yuan(t.lines.fen),
            reasons_text(t.reasons)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_is_exact_and_grouped() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(12650), "126.50");
        assert_eq!(yuan(123_456_789), "1,234,567.89");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(100_000), "1,000.00");
    }

    #[test]
    fn merge_adds_up_and_verdict_totals_split_by_reason() {
        let lines: Vec<String> = [("D110105000001", "0.10"), ("D110105000002", "0.20"), ("0457", "0.05")]
            .iter()
            .map(|(code, amount)| {
                format!(
                    r#"{{"feedetl_sn":"1","fixmedins_code":"H11010500001","mdtrt_id":"M","psn_no":"p","med_type":"11",
                    "fee_ocur_time":"2026-04-02","bilg_dr_codg":"{code}","det_item_fee_sumamt":"{amount}"}}"#
                )
            })
            .collect();
        let claims: Vec<Claim<'_>> = lines.iter().map(|l| Claim::parse(l.as_bytes()).unwrap()).collect();
        let outcome = |verdict, reason, overridden, legacy_code| Outcome {
            verdict,
            reason,
            overridden,
            would_reject: None,
            role: None,
            rule: "r",
            profile: "p",
            practitioner_version: None,
            institution_version: None,
            legacy_code,
        };
        let mut a = Stats::default();
        a.decided(&claims[0], &outcome(Verdict::Accept, Reason::Ok, None, false));
        a.decided(&claims[1], &outcome(Verdict::Reject, Reason::PractitionerSuspended, None, false));
        let mut b = Stats::default();
        b.decided(
            &claims[2],
            &outcome(Verdict::Accept, Reason::EmergencyOverride, Some(Reason::PractitionerSuspended), true),
        );
        b.dead(Some("fee_ocur_time"));
        a.merge(b);
        let (acc, rej) = a.by_verdict();
        assert_eq!((acc.lines, acc.fen, rej.lines, rej.fen), (2, 15, 1, 20));
        assert_eq!(a.by_practitioner["D110105000002"].rejected.fen, 20);
        assert_eq!(a.by_practitioner["0457"].overridden.fen, 5);
        assert!(!a.by_practitioner.contains_key("D110105000001"));
        assert_eq!(a.overridden[Reason::PractitionerSuspended.index()].lines, 1);
        assert_eq!((a.legacy_codes, a.dead_lines()), (1, 1));
        assert_eq!(a.by_institution[&claims[0].fixmedins_code].accepted.fen, 15);
    }

    /// rules.md, "Enforcement": warned lines are counted by reason, with the persons, institutions and
    /// amounts they concern — in the report an agency publishes before enforcing.
    #[test]
    fn warned_lines_are_listed_by_reason_person_and_institution_rules_md_enforcement() {
        let json = r#"{"feedetl_sn":"1","fixmedins_code":"H11010500001","mdtrt_id":"M","psn_no":"p","med_type":"11",
            "fee_ocur_time":"2026-04-02","bilg_dr_codg":"D110105000001","orders_dr_code":"N110105000009","det_item_fee_sumamt":"12.34"}"#;
        let claim = Claim::parse(json.as_bytes()).unwrap();
        let warned = Outcome {
            verdict: Verdict::Accept,
            reason: Reason::Ok,
            overridden: None,
            would_reject: Some(Reason::PractitionerNotRegisteredHere),
            role: Some(Role::Orders),
            rule: "r",
            profile: "p",
            practitioner_version: None,
            institution_version: None,
            legacy_code: false,
        };
        let mut a = Stats::default();
        a.decided(&claim, &warned);
        let mut b = Stats::default();
        b.decided(&claim, &warned);
        b.decided(&claim, &Outcome { would_reject: None, role: None, ..warned });
        a.merge(b);
        assert_eq!(a.warned(), Tally { lines: 2, fen: 2468 });
        assert_eq!(a.would_reject[Reason::PractitionerNotRegisteredHere.index()].lines, 2);
        let person = &a.would_reject_by_practitioner[&(Role::Orders, "N110105000009".to_owned())];
        assert_eq!(person.lines, Tally { lines: 2, fen: 2468 });
        assert_eq!(a.would_reject_by_institution[&claim.fixmedins_code].lines.lines, 2);
        // Accepted lines are not problems of the billing practitioner.
        assert!(a.by_practitioner.is_empty());
        let info = RunInfo {
            profile: "p".into(),
            tables: "t".into(),
            epoch: 1,
            sizes: (1, 1),
            inputs: vec![],
            warnings: vec![],
            names: Default::default(),
            dead_letters: None,
            previous: None,
            retro: None,
            started_at: "now".into(),
            seconds: 1.0,
            tables_seconds: 0.5,
        };
        let md = markdown(&a, &info);
        assert!(md.contains("## Would be rejected once enforced (warned)"), "{md}");
        assert!(md.contains("| `PRACTITIONER_NOT_REGISTERED_HERE` | 2 | 24.68 |"), "{md}");
        assert!(
            md.contains("| `N110105000009` | `orders_dr_code` | 2 | 24.68 | PRACTITIONER_NOT_REGISTERED_HERE |"),
            "{md}"
        );
        assert!(md.contains("| H11010500001 |  | 2 | 24.68 | PRACTITIONER_NOT_REGISTERED_HERE |"), "{md}");
        assert!(summary(&a, &info).contains("would be rejected once enforced"));
        // No warned line, no section.
        assert!(!markdown(&Stats::default(), &info).contains("Would be rejected"));
    }
}
