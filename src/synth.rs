//! A realistic synthetic data set: practitioners, institutions and a day of claim lines.
//!
//! Reproducible from a seed, and O(1) in memory whatever the size: every practitioner and institution
//! is a pure function of (seed, index), so claims can refer to a practitioner's registrations without
//! holding 12 million records. The shape follows what the agency sees:
//! - practitioners: ~62% doctors, 25% nurses, 7% pharmacists, 6% technicians; ~0.5% legacy local ids;
//!   ~9% multi-site; ~2% whose registration has ended; ~2.5% suspended and ~0.8% terminated around the
//!   claim day; versions 1-20;
//! - institutions: one per ~20 practitioners, 15% retail pharmacies; ~1% suspended, ~0.3% terminated,
//!   ~2% with a suspended department (only those with a status history are written, records.md);
//! - claims: visits of 1-30 lines, activity skewed (Zipf over practitioners), ~1.5% of visits billed
//!   under a code in no table, ~0.5% at an institution where the person is not registered, ~4%
//!   emergencies, ~1% tab-padded codes and ~5% numbers written as JSON numbers, and a small share
//!   (default 0.1%) of malformed lines of every kind.

mod ledger;

use std::io::{self, Write};

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use crate::record::{
    BjTime, DAY, InstitutionPeriodText, InstitutionText, PeriodText, PractitionerText, RegistrationText, Status,
};

/// Administrative areas (GB/T 2260 county-level codes) the synthetic codes are spread over; their
/// count times 10^6 bounds the number of practitioners (60 million).
const AREAS: [u32; 60] = [
    110101, 110102, 110105, 110106, 110108, 120101, 120102, 130102, 130104, 140105, 150102, 210102, 210103, 220102,
    230102, 310101, 310104, 310105, 310106, 310115, 320102, 320104, 320803, 320812, 330102, 330106, 340102, 350102,
    360102, 370102, 370202, 410102, 410105, 420102, 420106, 421003, 430102, 430104, 440103, 440104, 440106, 440203,
    450102, 450124, 460105, 500103, 510104, 510107, 520102, 530102, 540102, 610102, 610113, 620102, 620103, 630102,
    630103, 640104, 650102, 650103,
];

const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋",
];
const GIVEN: [&str; 24] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞",
    "平", "刚", "桂英", "建华", "文",
];

const DEPARTMENTS: [&str; 12] =
    ["A01", "A02", "A03.01", "A03.06", "A04", "A05", "A07", "A12", "A16", "A20", "B01", "C02"];

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Seed; the same seed and sizes give the same bytes.
    pub seed: u64,
    /// Practitioners in the table.
    pub practitioners: u64,
    /// Claim lines in the day.
    pub claims: u64,
    /// The day the claims fall on.
    pub day: BjTime,
    /// Share of malformed lines.
    pub malformed_rate: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 20_240_423,
            practitioners: 100_000,
            claims: 1_000_000,
            // Invariant: a valid constant date.
            day: BjTime::from_ymd(2026, 4, 2).unwrap_or(BjTime::from_secs(0)),
            malformed_rate: 0.001,
        }
    }
}

/// The most practitioners the code space holds.
pub const MAX_PRACTITIONERS: u64 = AREAS.len() as u64 * 1_000_000;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The synthetic world: sizes and seed; everything else is computed on demand.
#[derive(Clone, Debug)]
pub struct World {
    cfg: GenConfig,
    institutions: u64,
}

/// One practitioner's attributes, as the claim generator needs them.
struct Person {
    code: String,
    name: String,
    /// Institution indices, primary first.
    sites: Vec<u64>,
}

impl World {
    /// The tables of the first `practitioners` codes and every institution, as one view, and the claim
    /// lines of this world that parse — what the benchmarks and the profiled hot loop decide.
    pub fn view_and_lines(&self, practitioners: u64) -> (crate::table::View, Vec<Vec<u8>>) {
        let mut p = crate::table::PractitionerTable::with_capacity(practitioners as usize);
        for i in 0..practitioners {
            p.upsert(&self.practitioner(i).validate().expect("a generated practitioner is valid"))
                .expect("a generated practitioner fits the table");
        }
        let mut inst = crate::table::InstitutionTable::default();
        for j in 0..self.institution_count() {
            if let Some(r) = self.institution(j) {
                inst.upsert(r.validate().expect("a generated institution is valid"));
            }
        }
        let lines = self.claims().map(|l| l.bytes).filter(|b| crate::record::Claim::parse(b).is_ok()).collect();
        (crate::table::View::new(p, inst), lines)
    }

    /// A world of the given configuration. Sizes beyond the code space are clamped.
    pub fn new(mut cfg: GenConfig) -> Self {
        cfg.practitioners = cfg.practitioners.clamp(1, MAX_PRACTITIONERS);
        let institutions = (cfg.practitioners / 20).clamp(10, AREAS.len() as u64 * 100_000);
        World { cfg, institutions }
    }

    /// The configuration.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// Institutions in the world (most have no status history and are not written).
    pub fn institution_count(&self) -> u64 {
        self.institutions
    }

    fn rng(&self, stream: u64, index: u64) -> Pcg64Mcg {
        Pcg64Mcg::seed_from_u64(mix(self.cfg.seed ^ mix(stream.wrapping_mul(0x9E37_79B9) ^ index)))
    }

    /// The code of institution `j`.
    pub fn institution_code(&self, j: u64) -> String {
        let area = AREAS[(j % AREAS.len() as u64) as usize];
        let serial = j / AREAS.len() as u64;
        let prefix = if mix(self.cfg.seed ^ j ^ 0x5050) % 100 < 15 { 'P' } else { 'H' };
        format!("{prefix}{area:06}{serial:05}")
    }

    fn date_text(t: BjTime) -> String {
        t.date().format("%Y-%m-%d").to_string()
    }

    /// The record of institution `j`, or `None` if it has no status history.
    pub fn institution(&self, j: u64) -> Option<InstitutionText> {
        let mut rng = self.rng(2, j);
        let roll: f64 = rng.random();
        let day = self.cfg.day;
        let period =
            |status, from: BjTime, until: Option<BjTime>, departments: Option<Vec<String>>| InstitutionPeriodText {
                status,
                from: Self::date_text(from),
                until: until.map(Self::date_text),
                departments,
                basis: Some("Shaoguan Art. 37: agreement handling (synthetic)".into()),
            };
        let periods = if roll < 0.01 {
            let from = day.plus_days(-rng.random_range(0..30));
            vec![period(Status::Suspended, from, Some(from.plus_days(rng.random_range(31..120))), None)]
        } else if roll < 0.013 {
            vec![period(Status::Terminated, day.plus_days(-rng.random_range(1..400)), None, None)]
        } else if roll < 0.033 {
            let from = day.plus_days(-rng.random_range(0..20));
            let dept = DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_owned();
            vec![period(Status::Suspended, from, Some(from.plus_days(rng.random_range(21..90))), Some(vec![dept]))]
        } else if roll < 0.05 {
            // A past suspension, long over: history, no effect on the day.
            let from = day.plus_days(-rng.random_range(200..700));
            vec![period(Status::Suspended, from, Some(from.plus_days(60)), None)]
        } else {
            return None;
        };
        Some(InstitutionText {
            code: self.institution_code(j),
            name: Some(format!("第{}人民医院", j % 1000)),
            kind: Some(if self.institution_code(j).starts_with('P') { "pharmacy" } else { "hospital" }.into()),
            periods,
            version: rng.random_range(1..10),
        })
    }

    fn kind_and_prefix(roll: u32) -> (&'static str, &'static str) {
        match roll {
            0..62 => ("doctor", "D"),
            62..87 => ("nurse", "N"),
            87..94 => ("pharmacist", "HY"),
            _ => ("technician", "HJ"),
        }
    }

    /// The code of practitioner `i` (also for indices beyond the table: codes in no table).
    pub fn practitioner_code(&self, i: u64) -> String {
        let h = mix(self.cfg.seed ^ i.wrapping_mul(0x2545_F491));
        if h % 1000 < 5 {
            // A legacy local id (records.md: 1 to 30 printable ASCII characters).
            return format!("{:08}", i);
        }
        let (_, prefix) = Self::kind_and_prefix(((h >> 16) % 100) as u32);
        let area = AREAS[(i % AREAS.len() as u64) as usize];
        let serial = (i / AREAS.len() as u64) % 1_000_000;
        format!("{prefix}{area:06}{serial:06}")
    }

    fn person(&self, i: u64) -> (Person, PractitionerText) {
        let mut rng = self.rng(1, i);
        let day = self.cfg.day;
        let code = self.practitioner_code(i);
        let kind = match code.as_bytes() {
            [b'D', ..] => "doctor",
            [b'N', ..] => "nurse",
            [b'H', b'Y', ..] => "pharmacist",
            [b'H', b'J', ..] => "technician",
            _ => "doctor",
        };
        let name =
            format!("{}{}", SURNAMES[rng.random_range(0..SURNAMES.len())], GIVEN[rng.random_range(0..GIVEN.len())]);
        let primary = rng.random_range(0..self.institutions);
        let mut sites = vec![primary];
        let multi: f64 = rng.random();
        if multi < 0.09 {
            sites.push(rng.random_range(0..self.institutions));
            if multi < 0.02 {
                sites.push(rng.random_range(0..self.institutions));
            }
        }
        sites.dedup();
        let since = day.plus_days(-rng.random_range(120..4000)).start_of_day();
        // Left the post between registering and the day before the claims.
        let left = rng.random_bool(0.02).then(|| {
            let span = (day.secs() - since.secs()) / DAY;
            since.plus_days(rng.random_range(1..span.max(2))).start_of_day()
        });
        let registrations = sites
            .iter()
            .map(|&j| RegistrationText {
                institution: self.institution_code(j),
                from: Self::date_text(since),
                until: left.map(Self::date_text),
            })
            .collect();
        let roll: f64 = rng.random();
        let mut periods = Vec::new();
        if roll < 0.025 {
            let from = day.plus_days(-rng.random_range(0..60));
            let months = rng.random_range(1..=6);
            periods.push(PeriodText {
                status: Status::Suspended,
                from: Self::date_text(from),
                until: Some(Self::date_text(from.plus_days(30 * months))),
                basis: Some(format!("national-2024 Art. 11(2): {} points (synthetic)", rng.random_range(9..12))),
                decision_id: Some(format!("SYN-{i}")),
            });
        } else if roll < 0.033 {
            periods.push(PeriodText {
                status: Status::Terminated,
                from: Self::date_text(day.plus_days(-rng.random_range(1..700))),
                until: None,
                basis: Some("national-2024 Art. 11(3): 12 points (synthetic)".into()),
                decision_id: Some(format!("SYN-{i}")),
            });
        } else if roll < 0.05 {
            let from = day.plus_days(-rng.random_range(200..900));
            periods.push(PeriodText {
                status: Status::Suspended,
                from: Self::date_text(from),
                until: Some(Self::date_text(from.plus_days(90))),
                basis: Some("past suspension (synthetic)".into()),
                decision_id: None,
            });
        }
        let text = PractitionerText {
            code: code.clone(),
            name: Some(name.clone()),
            kind: Some(kind.into()),
            registrations,
            periods,
            version: rng.random_range(1..=20),
        };
        (Person { code, name, sites }, text)
    }

    /// The record of practitioner `i`.
    pub fn practitioner(&self, i: u64) -> PractitionerText {
        self.person(i).1
    }

    /// Writes every practitioner record as JSON Lines.
    pub fn write_practitioners(&self, out: &mut impl Write, mut progress: impl FnMut(u64)) -> io::Result<()> {
        let mut buf = Vec::with_capacity(512);
        for i in 0..self.cfg.practitioners {
            buf.clear();
            serde_json::to_writer(&mut buf, &self.practitioner(i))?;
            buf.push(b'\n');
            out.write_all(&buf)?;
            if i % 65_536 == 0 {
                progress(i);
            }
        }
        Ok(())
    }

    /// Writes the institutions that have a status history as JSON Lines; returns how many.
    pub fn write_institutions(&self, out: &mut impl Write) -> io::Result<u64> {
        let mut n = 0;
        for j in 0..self.institutions {
            if let Some(rec) = self.institution(j) {
                serde_json::to_writer(&mut *out, &rec)?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The day's claim lines, in order.
    pub fn claims(&self) -> Claims<'_> {
        Claims::new(self)
    }
}

#[derive(Serialize)]
struct ClaimOut<'a> {
    feedetl_sn: String,
    fixmedins_code: &'a str,
    mdtrt_id: &'a str,
    psn_no: &'a str,
    med_type: &'a str,
    fee_ocur_time: String,
    bilg_dr_codg: &'a str,
    bilg_dr_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bilg_dept_codg: Option<&'a str>,
    med_list_codg: String,
    det_item_fee_sumamt: Num,
    cnt: Num,
    pric: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    er_flag: Option<&'a str>,
}

/// An amount written as a JSON string or a JSON number.
enum Num {
    Str(String),
    Raw(String),
}

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Num::Str(t) => s.serialize_str(t),
            Num::Raw(t) => match serde_json::value::RawValue::from_string(t.clone()) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_str(t),
            },
        }
    }
}

fn fen_text(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// One generated line: its Kafka key and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// `fixmedins_code|mdtrt_id` (records.md).
    pub key: String,
    /// The JSON line, without a newline.
    pub bytes: Vec<u8>,
}

struct Visit {
    person: Person,
    institution: String,
    mdtrt_id: String,
    psn_no: String,
    med_type: &'static str,
    er_flag: Option<&'static str>,
    dept: Option<&'static str>,
    lines: u32,
    next: u32,
    time: BjTime,
}

/// The iterator over a day's claim lines.
pub struct Claims<'w> {
    world: &'w World,
    rng: Pcg64Mcg,
    zipf: Zipf<f64>,
    produced: u64,
    visits: u64,
    visit: Option<Visit>,
}

impl<'w> Claims<'w> {
    fn new(world: &'w World) -> Self {
        // Invariant: n >= 1 and s > 0 are valid Zipf parameters.
        let zipf = Zipf::new(world.cfg.practitioners as f64, 1.05).unwrap_or_else(|_| unreachable!());
        Claims { world, rng: world.rng(3, 0), zipf, produced: 0, visits: 0, visit: None }
    }

    fn new_visit(&mut self) -> Visit {
        let w = self.world;
        let rng = &mut self.rng;
        // Zipf rank 1 is the busiest; spread ranks over indices so busy people are not all in one area.
        let rank = self.zipf.sample(rng) as u64 - 1;
        let index = mix(rank ^ w.cfg.seed) % w.cfg.practitioners;
        let unregistered = rng.random_bool(0.015);
        let person = if unregistered {
            // A code in no table: an index beyond the table.
            let i = w.cfg.practitioners + rng.random_range(0..1_000_000);
            Person { code: w.practitioner_code(i), name: "未登记".into(), sites: vec![index % w.institutions] }
        } else {
            w.person(index).0
        };
        let site = if rng.random_bool(0.005) {
            rng.random_range(0..w.institutions)
        } else {
            person.sites[rng.random_range(0..person.sites.len())]
        };
        let institution = w.institution_code(site);
        let pharmacy = institution.starts_with('P');
        let roll: f64 = rng.random();
        let (med_type, er_flag) = if pharmacy {
            ("41", None)
        } else if roll < 0.03 {
            ("13", None)
        } else if roll < 0.035 {
            ("24", None)
        } else if roll < 0.04 {
            ("11", Some("1"))
        } else if roll < 0.60 {
            ("11", None)
        } else if roll < 0.80 {
            ("21", None)
        } else if roll < 0.90 {
            ("14", None)
        } else {
            ("16", None)
        };
        let day = w.cfg.day.start_of_day();
        self.visits += 1;
        Visit {
            person,
            mdtrt_id: format!("MD{:012}", self.visits),
            psn_no: format!("{:020}", mix(self.visits ^ w.cfg.seed) % 10u64.pow(19)),
            institution,
            med_type,
            er_flag,
            dept: (!pharmacy).then(|| DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())]),
            lines: 1 + (rng.random::<f64>().powi(2) * 29.0) as u32,
            next: 0,
            time: BjTime::from_secs(day.secs() + rng.random_range(7 * 3600..22 * 3600)),
        }
    }

    fn write_line(&mut self, v: &Visit, out: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let t = BjTime::from_secs((v.time.secs() + i64::from(v.next) * 37).min(v.time.start_of_day().secs() + DAY - 1));
        let pric = (rng.random::<f64>().powi(3) * 50_000.0) as i64 + 10;
        let cnt = if rng.random_bool(0.7) { 1 } else { rng.random_range(2..6) };
        let amount = pric * cnt;
        let as_number = rng.random_bool(0.05);
        let padded = rng.random_bool(0.01);
        let padded_code = format!("\t{}\t", v.person.code);
        let rec = ClaimOut {
            feedetl_sn: format!("{:04}", v.next + 1),
            fixmedins_code: &v.institution,
            mdtrt_id: &v.mdtrt_id,
            psn_no: &v.psn_no,
            med_type: v.med_type,
            fee_ocur_time: t.to_string(),
            bilg_dr_codg: if padded { &padded_code } else { &v.person.code },
            bilg_dr_name: &v.person.name,
            bilg_dept_codg: v.dept,
            med_list_codg: format!("XA01AAA{:06}", rng.random_range(0..400_000)),
            det_item_fee_sumamt: if as_number { Num::Raw(fen_text(amount)) } else { Num::Str(fen_text(amount)) },
            cnt: Num::Raw(cnt.to_string()),
            pric: Num::Str(fen_text(pric)),
            er_flag: v.er_flag,
        };
        // Serialising plain fields into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &rec);
        if rng.random_bool(self.world.cfg.malformed_rate) {
            corrupt(rng, out);
        }
    }
}

/// Damages a line in one of the ways real feeds do.
fn corrupt(rng: &mut Pcg64Mcg, line: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(line).into_owned();
    let replaced = match rng.random_range(0..8) {
        0 => text.replacen("\"bilg_dr_codg\"", "\"bilg_dr_code\"", 1),
        1 => text.replacen(":00\"", ":00:00\"", 1),
        2 => text.replacen("\"fixmedins_code\":\"", "\"fixmedins_code\":\"X", 1),
        3 => text.replacen("\"det_item_fee_sumamt\":", "\"det_item_fee_sumamt\":\"12.345\",\"x\":", 1),
        4 => text[..text.len() / 2].to_owned(),
        5 => text.replacen("\"med_type\":\"", "\"med_type\":\"急", 1),
        6 => text.replacen("\"psn_no\":", "\"psn_no\":null,\"y\":", 1),
        _ => {
            line.insert(line.len() / 2, 0xff);
            return;
        }
    };
    line.clear();
    line.extend_from_slice(replaced.as_bytes());
}

impl Iterator for Claims<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.produced >= self.world.cfg.claims {
            return None;
        }
        let mut v = match self.visit.take() {
            Some(v) if v.next < v.lines => v,
            _ => self.new_visit(),
        };
        let mut bytes = Vec::with_capacity(400);
        self.write_line(&v, &mut bytes);
        let key = format!("{}|{}", v.institution, v.mdtrt_id);
        v.next += 1;
        self.visit = Some(v);
        self.produced += 1;
        Some(Line { key, bytes })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.world.cfg.claims - self.produced) as usize;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Claim;

    fn small() -> World {
        World::new(GenConfig { practitioners: 2_000, claims: 20_000, ..GenConfig::default() })
    }

    #[test]
    fn same_seed_same_bytes() {
        let a: Vec<Line> = small().claims().take(500).collect();
        let b: Vec<Line> = small().claims().take(500).collect();
        assert_eq!(a, b);
        let other = World::new(GenConfig { seed: 7, practitioners: 2_000, claims: 500, ..GenConfig::default() });
        assert_ne!(a, other.claims().collect::<Vec<_>>());
    }

    #[test]
    fn records_are_valid_and_codes_unique() {
        let w = small();
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000 {
            let rec = w.practitioner(i).validate().unwrap();
            assert!(seen.insert(rec.code.clone()), "duplicate code {}", rec.code);
        }
        for j in 0..w.institution_count() {
            if let Some(r) = w.institution(j) {
                r.validate().unwrap();
            }
        }
    }

    #[test]
    fn claims_have_the_advertised_shape() {
        let w = small();
        let (mut malformed, mut emergency, mut lines) = (0, 0, 0);
        for line in w.claims() {
            lines += 1;
            match Claim::parse(&line.bytes) {
                Ok(c) => {
                    if c.med_type.0 == 13 || c.med_type.0 == 24 || c.er_flag {
                        emergency += 1;
                    }
                    assert_eq!(c.fee_ocur_time.start_of_day(), w.config().day.start_of_day());
                    assert!(line.key.starts_with(&c.fixmedins_code.to_string()));
                }
                Err(_) => malformed += 1,
            }
        }
        assert_eq!(lines, 20_000);
        assert!((1..200).contains(&malformed), "{malformed}");
        assert!(emergency > 200 && emergency < 3_000, "{emergency}");
    }
}
