//! Loss and duplicate accounting, and the verdict each generated line got.
//!
//! One reader thread consumes all the decision topics (it keeps up with well over the broker's
//! end-to-end rate), so the seen-set needs no sharing: a bitset indexed by the line's sequence number
//! in its step (dense, known in advance) is smaller and faster than any map. A concurrent map
//! (`dashmap`) would only pay off with several reader threads.

/// Where a line's output went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// The accepted topic.
    Accepted = 1,
    /// The rejected topic.
    Rejected = 2,
    /// The dead-letter topic.
    DeadLetter = 3,
}

impl Outcome {
    /// Index 0..3 for counting.
    pub fn index(self) -> usize {
        self as usize - 1
    }
}

/// What marking a sequence number found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// First output of this line.
    New,
    /// This line had an output already.
    Duplicate,
    /// Not a line of this step (beyond what was planned).
    Unknown,
}

/// The outputs of one step, by sequence number.
#[derive(Clone, Debug)]
pub struct Tally {
    bits: Vec<u64>,
    capacity: u64,
    distinct: u64,
    duplicates: u64,
    unknown: u64,
    by_outcome: [u64; 3],
    identity_mismatches: u64,
}

impl Tally {
    /// A tally for sequence numbers `0..capacity`.
    pub fn new(capacity: u64) -> Tally {
        Tally {
            bits: vec![0; capacity.div_ceil(64) as usize],
            capacity,
            distinct: 0,
            duplicates: 0,
            unknown: 0,
            by_outcome: [0; 3],
            identity_mismatches: 0,
        }
    }

    /// Records one output of line `seq`.
    pub fn mark(&mut self, seq: u64, outcome: Outcome) -> Mark {
        if seq >= self.capacity {
            self.unknown += 1;
            return Mark::Unknown;
        }
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.bits[w] & (1 << b) != 0 {
            self.duplicates += 1;
            return Mark::Duplicate;
        }
        self.bits[w] |= 1 << b;
        self.distinct += 1;
        self.by_outcome[outcome.index()] += 1;
        Mark::New
    }

    /// A decision whose identity fields are not those of the line its stamp names.
    pub fn identity_mismatch(&mut self) {
        self.identity_mismatches += 1;
    }

    /// Lines with at least one output.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Outputs beyond the first for a line.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Outputs whose stamp names no planned line.
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    /// Decisions that did not match their line's identity.
    pub fn identity_mismatches(&self) -> u64 {
        self.identity_mismatches
    }

    /// Distinct lines by outcome: accepted, rejected, dead letters.
    pub fn by_outcome(&self) -> [u64; 3] {
        self.by_outcome
    }

    /// Lines among the first `sent` with no output.
    pub fn lost(&self, sent: u64) -> u64 {
        let sent = sent.min(self.capacity);
        let full = (sent / 64) as usize;
        let mut seen: u64 = self.bits[..full].iter().map(|w| u64::from(w.count_ones())).sum();
        let rest = sent % 64;
        if rest > 0 {
            seen += u64::from((self.bits[full] & ((1u64 << rest) - 1)).count_ones());
        }
        sent - seen
    }
}

/// What a line's output said, packed in 16 bits: the topic it went to ([`Outcome`], bits 0-1), and
/// for a decision its `reason` (bits 2-5) and `overridden` (bits 6-9), each as 1 + its index in
/// [`Reason::ALL`] (0: none, or not a known name). Two systems agree on a line when the codes are equal:
/// same verdict (the topic), same reason, same overridden reason.
pub type Code = u16;

use claimgate::record::Reason;

fn reason_bits(name: Option<&[u8]>) -> u16 {
    name.and_then(|n| std::str::from_utf8(n).ok()).and_then(Reason::from_name).map_or(0, |r| r.index() as u16 + 1)
}

/// The code of an output record on `outcome`'s topic.
pub fn code_of(outcome: Outcome, record: &[u8]) -> Code {
    let mut c = outcome as u16;
    if outcome != Outcome::DeadLetter {
        c |= reason_bits(string_field(record, b"\"reason\":\"")) << 2;
        c |= reason_bits(string_field(record, b"\"overridden\":\"")) << 6;
    }
    c
}

/// The outcome a code records.
pub fn code_outcome(code: Code) -> Option<Outcome> {
    match code & 3 {
        1 => Some(Outcome::Accepted),
        2 => Some(Outcome::Rejected),
        3 => Some(Outcome::DeadLetter),
        _ => None,
    }
}

/// A code in words: `rejected PRACTITIONER_SUSPENDED`, `accepted EMERGENCY_OVERRIDE (PRACTITIONER_UNREGISTERED)`.
pub fn describe(code: Code) -> String {
    let name = |bits: u16| (bits > 0).then(|| Reason::ALL.get(usize::from(bits - 1)).map_or("?", |r| r.as_str()));
    let topic = match code_outcome(code) {
        Some(Outcome::Accepted) => "accepted",
        Some(Outcome::Rejected) => "rejected",
        Some(Outcome::DeadLetter) => return "dead letter".into(),
        None => return "none".into(),
    };
    match (name((code >> 2) & 15), name((code >> 6) & 15)) {
        (Some(r), Some(o)) => format!("{topic} {r} ({o})"),
        (Some(r), None) => format!("{topic} {r}"),
        _ => topic.into(),
    }
}

/// The output every line of the generated pool got, across the steps of one system: the same line
/// must always get the same output (the tables do not change during a sweep), and two systems must
/// agree line by line — topic, reason and overridden reason.
#[derive(Clone, Debug)]
pub struct Verdicts {
    by_line: Vec<Code>,
    conflicts: u64,
}

impl Verdicts {
    /// For a pool of `lines` lines.
    pub fn new(lines: usize) -> Verdicts {
        Verdicts { by_line: vec![0; lines], conflicts: 0 }
    }

    /// Records that pool line `line` got output `code`.
    pub fn record(&mut self, line: usize, code: Code) {
        let slot = &mut self.by_line[line];
        if *slot == 0 {
            *slot = code;
        } else if *slot != code {
            self.conflicts += 1;
        }
    }

    /// Adds another session's outputs of the same pool (a conflict where both have one and differ).
    pub fn merge(&mut self, other: &Verdicts) {
        self.conflicts += other.conflicts;
        for (line, &v) in other.by_line.iter().enumerate() {
            if v != 0 {
                let slot = &mut self.by_line[line];
                if *slot == 0 {
                    *slot = v;
                } else if *slot != v {
                    self.conflicts += 1;
                }
            }
        }
    }

    /// Times a line got a different output than it had before.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// Compares with another system over the lines both saw.
    pub fn compare(&self, other: &Verdicts) -> Agreement {
        let mut a = Agreement::default();
        for (line, (x, y)) in self.by_line.iter().zip(&other.by_line).enumerate() {
            let (Some(ox), Some(oy)) = (code_outcome(*x), code_outcome(*y)) else { continue };
            a.compared += 1;
            a.ours[ox.index()] += 1;
            a.theirs[oy.index()] += 1;
            if x != y {
                a.disagreements += 1;
                if a.examples.len() < 10 {
                    a.examples.push(format!("pool line {line}: {} against {}", describe(*x), describe(*y)));
                }
            }
        }
        a
    }
}

/// Two systems' outputs over the same lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Agreement {
    /// Lines both systems decided.
    pub compared: u64,
    /// Lines where they differ: topic, reason or overridden reason.
    pub disagreements: u64,
    /// Our counts over those lines: accepted, rejected, dead letters.
    pub ours: [u64; 3],
    /// Theirs.
    pub theirs: [u64; 3],
    /// The first differences, in words.
    #[serde(default)]
    pub examples: Vec<String>,
}

/// A 64-bit fingerprint of a claim line's identity (`fixmedins_code`, `mdtrt_id`, `feedetl_sn`);
/// never 0, which stands for "no identity" (a line too malformed to have one).
pub fn identity(fixmedins_code: &[u8], mdtrt_id: &[u8], feedetl_sn: &[u8]) -> u64 {
    // FNV-1a with a separator between the fields: deterministic across processes and runs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [fixmedins_code, b"|", mdtrt_id, b"|", feedetl_sn] {
        for &b in part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h.max(1)
}

/// The identity fingerprint of a decision record (claimgate's and the peer's: compact JSON, these
/// three fields as plain strings), found without parsing the whole record. `None` if a field is
/// missing.
pub fn decision_identity(record: &[u8]) -> Option<u64> {
    let f = string_field(record, b"\"fixmedins_code\":\"")?;
    let m = string_field(record, b"\"mdtrt_id\":\"")?;
    let s = string_field(record, b"\"feedetl_sn\":\"")?;
    Some(identity(f, m, s))
}

/// The raw text of a string field (up to the next quote) after `prefix`.
pub fn string_field<'a>(record: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let at = memchr::memmem::find(record, prefix)? + prefix.len();
    let len = memchr::memchr(b'"', &record[at..])?;
    Some(&record[at..at + len])
}

/// A non-negative integer field (`"practitioner_version":12`); `None` if missing or null.
pub fn u64_field(record: &[u8], prefix: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(record, prefix)? + prefix.len();
    let digits = record[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&record[at..at + digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lost_duplicated_and_unknown_lines() {
        let mut t = Tally::new(130);
        for seq in (0..130).filter(|s| s % 10 != 3) {
            assert_eq!(t.mark(seq, Outcome::Accepted), Mark::New);
        }
        assert_eq!(t.mark(5, Outcome::Rejected), Mark::Duplicate);
        assert_eq!(t.mark(129, Outcome::Accepted), Mark::Duplicate);
        assert_eq!(t.mark(130, Outcome::Accepted), Mark::Unknown);
        assert_eq!(t.distinct(), 117);
        assert_eq!(t.duplicates(), 2);
        assert_eq!(t.unknown(), 1);
        assert_eq!(t.lost(130), 13);
        // Only what was sent can be lost: 3, 13, ..., 63 below 64.
        assert_eq!(t.lost(64), 7);
        assert_eq!(t.lost(0), 0);
        assert_eq!(t.by_outcome(), [117, 0, 0], "a duplicate does not count twice");
    }

    #[test]
    fn nothing_lost_when_everything_arrived() {
        for n in [1u64, 63, 64, 65, 1000] {
            let mut t = Tally::new(n);
            for s in (0..n).rev() {
                t.mark(s, Outcome::DeadLetter);
            }
            assert_eq!((t.lost(n), t.duplicates()), (0, 0), "n = {n}");
        }
    }

    #[test]
    fn verdicts_conflicts_and_agreement() {
        let (acc, rej, dead) = (Outcome::Accepted as u16, Outcome::Rejected as u16, Outcome::DeadLetter as u16);
        let mut a = Verdicts::new(5);
        let mut b = Verdicts::new(5);
        a.record(0, acc);
        a.record(0, acc);
        a.record(1, rej);
        a.record(1, acc);
        a.record(2, dead);
        b.record(0, acc);
        b.record(1, rej);
        b.record(2, rej);
        b.record(3, acc);
        assert_eq!(a.conflicts(), 1);
        let mut c = Verdicts::new(5);
        c.record(4, rej);
        c.merge(&a);
        c.merge(&b);
        assert_eq!(c.conflicts(), 1 + 1, "a's own conflict and line 2 (dead letter, then rejected)");
        let g = a.compare(&b);
        assert_eq!((g.compared, g.disagreements, g.ours, g.theirs), (3, 1, [1, 1, 1], [1, 2, 0]));
        assert_eq!(g.examples, vec!["pool line 2: dead letter against rejected".to_owned()]);
    }

    #[test]
    fn codes_tell_reasons_and_overrides_apart() {
        let susp = br#"{"verdict":"reject","reason":"PRACTITIONER_SUSPENDED","overridden":null,"rule":"x"}"#;
        let term = br#"{"verdict":"reject","reason":"PRACTITIONER_TERMINATED","overridden":null,"rule":"x"}"#;
        let over = br#"{"verdict":"accept","reason":"EMERGENCY_OVERRIDE","overridden":"PRACTITIONER_UNREGISTERED"}"#;
        let over2 = br#"{"verdict":"accept","reason":"EMERGENCY_OVERRIDE","overridden":"INSTITUTION_SUSPENDED"}"#;
        let ok = br#"{"verdict":"accept","reason":"OK","overridden":null}"#;
        let codes = [
            code_of(Outcome::Rejected, susp),
            code_of(Outcome::Rejected, term),
            code_of(Outcome::Accepted, over),
            code_of(Outcome::Accepted, over2),
            code_of(Outcome::Accepted, ok),
            code_of(Outcome::DeadLetter, br#"{"error":"x","reason":"OK"}"#),
        ];
        for (i, x) in codes.iter().enumerate() {
            for y in &codes[i + 1..] {
                assert_ne!(x, y, "{} and {}", describe(*x), describe(*y));
            }
        }
        assert_eq!(describe(codes[0]), "rejected PRACTITIONER_SUSPENDED");
        assert_eq!(describe(codes[2]), "accepted EMERGENCY_OVERRIDE (PRACTITIONER_UNREGISTERED)");
        assert_eq!(describe(codes[5]), "dead letter");
        // A line decided the same way by two systems agrees; a different overridden reason does not.
        let mut a = Verdicts::new(2);
        let mut b = Verdicts::new(2);
        a.record(0, codes[2]);
        b.record(0, codes[2]);
        a.record(1, codes[2]);
        b.record(1, codes[3]);
        let g = a.compare(&b);
        assert_eq!((g.compared, g.disagreements), (2, 1));
    }

    #[test]
    fn identity_of_a_decision_matches_its_line() {
        let rec = br#"{"feedetl_sn":"0003","fixmedins_code":"H11010100007","mdtrt_id":"MD000000000012","bilg_dr_codg":"D110101000001","verdict":"reject","practitioner_version":17,"institution_version":null}"#;
        assert_eq!(decision_identity(rec), Some(identity(b"H11010100007", b"MD000000000012", b"0003")));
        assert_ne!(identity(b"a", b"bc", b"d"), identity(b"ab", b"c", b"d"));
        assert_eq!(u64_field(rec, b"\"practitioner_version\":"), Some(17));
        assert_eq!(u64_field(rec, b"\"institution_version\":"), None);
        assert_eq!(decision_identity(br#"{"error":"x"}"#), None);
    }
}
