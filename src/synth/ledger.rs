//! A synthetic ledger (scoring.md, "Ledger — input") over the synthetic world, for `score` at scale:
//! findings, restores, revokes, registrations and institution events that name the world's own codes,
//! so that a ledger of a thousand events meets real records in a registry of twelve million.
//!
//! The events fall on the year before the claim day and concentrate on about a third as many people
//! as there are events, so that totals cross thresholds and periods are derived; institution events
//! cascade where the profile says so. Only event types the profile provides are written (a `repair`
//! only where it has score repair, a `clear` only where it has clearing), so the ledger always loads.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde_json::{Value, json};

use super::{World, mix};
use crate::score::Scoring;
use crate::score::catalogue::Item;

impl World {
    /// `n` ledger events valid under `rules`. The same seed, sizes, rules and `n` give the same events.
    pub fn ledger(&self, rules: &Scoring, n: u64) -> Vec<Value> {
        let mut rng = Pcg64Mcg::seed_from_u64(mix(self.cfg.seed ^ 0x001e_d6e4));
        let day = self.cfg.day.date();
        let items: Vec<&Item> = rules.catalogue.items().collect();
        let pool: Vec<u64> = (0..(n / 3).max(1)).map(|_| rng.random_range(0..self.cfg.practitioners)).collect();
        let mut findings: Vec<(String, String, chrono::NaiveDate)> = Vec::new();
        let mut events = Vec::with_capacity(n as usize);
        for k in 0..n {
            let id = format!("GEN-{k:06}");
            let i = pool[rng.random_range(0..pool.len())];
            let (person, text) = self.person(i);
            let primary = self.institution_code(person.sites[0]);
            // After the person's first registration: Lanzhou's cycles start there (Art. 6(3)).
            let since =
                text.registrations.first().and_then(|r| chrono::NaiveDate::parse_from_str(&r.from, "%Y-%m-%d").ok());
            let days = since.map_or(365, |s| (day - s).num_days().clamp(2, 366) as u64);
            let decided = day - chrono::Days::new(rng.random_range(1..days));
            let at = decided.format("%Y-%m-%d").to_string();
            let roll: f64 = rng.random();
            let event = if roll < 0.78 && !items.is_empty() {
                // Two draws, the smaller item kept: most findings are minor.
                let (a, b) = (items[rng.random_range(0..items.len())], items[rng.random_range(0..items.len())]);
                let item = if a.high <= b.high { a } else { b };
                let responsibility =
                    if item.main_only { "main" } else { ["general", "important", "main"][rng.random_range(0..3)] };
                // One finding in ten joins the person's earlier case (same-case rules).
                let case = if rng.random_bool(0.1) { format!("C-{i}") } else { format!("C-{k}") };
                findings.push((id.clone(), person.code.clone(), decided));
                json!({"id": id, "type": "finding", "code": person.code, "institution": primary, "case_id": case,
                       "item": item.id, "responsibility": responsibility, "decided_at": at})
            } else if roll < 0.84 {
                json!({"id": id, "type": "restore", "code": person.code, "decided_at": at})
            } else if roll < 0.87 && !findings.is_empty() {
                let (target, code, when) = findings[rng.random_range(0..findings.len())].clone();
                let at = (when + chrono::Days::new(rng.random_range(1..60))).format("%Y-%m-%d").to_string();
                json!({"id": id, "type": "revoke", "code": code, "target": target, "decided_at": at})
            } else if roll < 0.91 {
                let j = rng.random_range(0..self.institutions);
                json!({"id": id, "type": "register", "code": person.code, "institution": self.institution_code(j),
                       "decided_at": at})
            } else if roll < 0.94 {
                json!({"id": id, "type": "deregister", "code": person.code, "institution": primary, "decided_at": at})
            } else if roll < 0.97 && rules.repair.is_some() {
                let r = rules.repair.as_ref().map(|r| (r.training, r.activity));
                match r {
                    Some((Some(t), _)) if rng.random_bool(0.5) => {
                        json!({"id": id, "type": "repair", "code": person.code, "method": "training",
                               "points": rng.random_range(t.min..=t.max), "decided_at": at})
                    }
                    Some((_, Some(a))) => json!({"id": id, "type": "repair", "code": person.code,
                                                 "method": "activity", "points": a.points, "decided_at": at}),
                    _ => json!({"id": id, "type": "restore", "code": person.code, "decided_at": at}),
                }
            } else if roll < 0.975 && rules.clear.is_some() {
                json!({"id": id, "type": "clear", "code": person.code, "decided_at": at})
            } else {
                let (status, until) = if rng.random_bool(0.8) {
                    let until = decided + chrono::Days::new(rng.random_range(30..180));
                    ("suspended", Value::String(until.format("%Y-%m-%d").to_string()))
                } else {
                    ("terminated", Value::Null)
                };
                json!({"id": id, "type": "institution", "institution": primary, "status": status, "until": until,
                       "responsible": [person.code], "decided_at": at})
            };
            events.push(event);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::score::{Ledger, score};
    use crate::synth::GenConfig;

    #[test]
    fn a_generated_ledger_loads_under_every_profile_and_names_the_worlds_codes() {
        let w = World::new(GenConfig { practitioners: 3_000, ..GenConfig::default() });
        let records: Vec<_> = (0..3_000).map(|i| w.practitioner(i)).collect();
        let codes: std::collections::HashSet<&str> = records.iter().map(|r| r.code.as_str()).collect();
        for name in ["national-2024", "huaian-2020", "lanzhou-2014"] {
            let rules = Scoring::from_profile(&Profile::shipped(name).unwrap()).unwrap();
            let events = w.ledger(&rules, 600);
            assert_eq!(events, w.ledger(&rules, 600), "{name}: not reproducible");
            for e in &events {
                if let Some(code) = e["code"].as_str() {
                    assert!(codes.contains(code), "{name}: {code} is not in the world");
                }
            }
            let lines: Vec<String> = events.iter().map(Value::to_string).collect();
            let ledger = Ledger::parse(lines.iter().enumerate().map(|(n, l)| (n as u64 + 1, l.as_bytes())), &rules)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let scored = score(&rules, &ledger, &records).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(scored.report.periods() > 20, "{name}: {} periods", scored.report.periods());
        }
    }
}
