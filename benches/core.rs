//! Criterion benchmarks of the hot path (performance.md): code parsing, table lookup at 12 million
//! codes with random keys, one decision, and parse + decide + encode of one JSON line.
//!
//! `cargo bench --bench core` (all), or `cargo bench --bench core -- lookup` for one group. The
//! 12-million-code table takes about half a minute to build before the lookup group starts; it is built
//! in the stream's 64 shards, or as one table with `CLAIMGATE_BENCH_SHARD_BITS=0` (a snapshot file's).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use claimgate::batch::process;
use claimgate::decide::decide;
use claimgate::profile::Profile;
use claimgate::record::{
    BjTime, Claim, InstitutionCode, Interval, PractitionerCode, PractitionerKey, PractitionerRecord, Registration,
    Stamp,
};
use claimgate::routing::Rules;
use claimgate::synth::{GenConfig, World};
use claimgate::table::{BaseTable, InstitutionTable, STREAM_SHARD_BITS, Updater, View};

const LINE: &str = r#"{"feedetl_sn":"0001","fixmedins_code":"H11010600039","mdtrt_id":"MD000000000001","psn_no":"01303575721266182962","med_type":"14","fee_ocur_time":"2026-04-02 16:33:03","bilg_dr_codg":"D110105000123","bilg_dr_name":"高娜","bilg_dept_codg":"C02","med_list_codg":"XA01AAA028649","det_item_fee_sumamt":"46.79","cnt":1,"pric":"46.79"}"#;

fn codes(c: &mut Criterion) {
    let mut g = c.benchmark_group("codes");
    g.throughput(Throughput::Elements(1));
    g.bench_function("practitioner_national", |b| b.iter(|| PractitionerKey::parse(black_box("D110105000123"))));
    g.bench_function("practitioner_legacy", |b| b.iter(|| PractitionerKey::parse(black_box("0457"))));
    g.bench_function("institution", |b| b.iter(|| InstitutionCode::parse(black_box("H11010500001"))));
    g.bench_function("time", |b| b.iter(|| BjTime::parse(black_box("2026-04-02 16:33:03"))));
    g.finish();
}

/// A table of `n` national codes with one or two registrations each, built without JSON.
/// The table as `stream` holds it (`CLAIMGATE_BENCH_SHARD_BITS`, default the stream's 6: 64 shards) or
/// as a snapshot file loads it (0: one table), and the keys in it.
fn big_table(n: u64) -> (View, usize, Vec<u64>) {
    let bits =
        std::env::var("CLAIMGATE_BENCH_SHARD_BITS").ok().and_then(|s| s.parse().ok()).unwrap_or(STREAM_SHARD_BITS);
    let mut t = Updater::with_base(BaseTable::sharded(bits, n as usize), InstitutionTable::default());
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    let from = BjTime::parse("2020-01-01").unwrap();
    let mut keys = Vec::with_capacity(n as usize);
    for i in 0..n {
        let digits = (i % 60) * 1_000_000_000 + 110_000_000_000 + i / 60;
        let code = PractitionerCode::parse(&format!("D{digits:012}")).unwrap();
        if let PractitionerCode::National(k) = code {
            keys.push(k);
        }
        let inst = InstitutionCode::parse(&format!("H{:011}", rng.random_range(0..600_000u64))).unwrap();
        let mut registrations = vec![Registration { institution: inst, during: Interval { from, until: BjTime::MAX } }];
        if rng.random_bool(0.1) {
            registrations.push(Registration { institution: inst, during: Interval { from, until: BjTime::MAX } });
        }
        t.practitioner(&PractitionerRecord { code, registrations, periods: vec![], version: 1 }).unwrap();
    }
    t.fit();
    let view = t.view();
    let bytes = view.base().heap_bytes();
    eprintln!("{} shards", view.base().shards().len());
    (view, bytes, keys)
}

fn lookup(c: &mut Criterion) {
    let n = std::env::var("CLAIMGATE_BENCH_CODES").ok().and_then(|s| s.parse().ok()).unwrap_or(12_000_000u64);
    let started = std::time::Instant::now();
    let (view, table_bytes, keys) = big_table(n);
    eprintln!(
        "built {n} codes in {:.1} s; table arrays {:.1} bytes/code",
        started.elapsed().as_secs_f64(),
        table_bytes as f64 / n as f64
    );
    let mut rng = Pcg64Mcg::seed_from_u64(2);
    let probes: Vec<u64> = (0..1 << 22).map(|_| keys[rng.random_range(0..keys.len())]).collect();
    drop(keys);
    let mut g = c.benchmark_group("lookup_12m");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("find_random_key", |b| {
        b.iter(|| {
            i = (i + 1) & (probes.len() - 1);
            black_box(view.practitioner(PractitionerKey::National(probes[i])).is_some())
        })
    });
    let t = BjTime::parse("2026-04-02 10:00:00").unwrap();
    g.bench_function("find_and_read_record", |b| {
        b.iter(|| {
            i = (i + 1) & (probes.len() - 1);
            black_box(view.practitioner(PractitionerKey::National(probes[i])).map(|r| r.registered_anywhere(t)))
        })
    });
    // The floor: one random read from an array as large as the table's slots and records, so that
    // "about one memory miss" can be read as a ratio measured in the same run.
    let floor: Vec<u64> = (0..(table_bytes / 8) as u64).collect();
    let mask = floor.len().next_power_of_two() / 2 - 1;
    g.bench_function("one_random_memory_read_baseline", |b| {
        b.iter(|| {
            i = (i + 1) & (probes.len() - 1);
            black_box(floor[(probes[i] as usize).wrapping_mul(0x9E37_79B9) & mask])
        })
    });
    drop(floor);
    g.bench_function("absent_key", |b| {
        b.iter(|| {
            i = (i + 1) & (probes.len() - 1);
            black_box(view.practitioner(PractitionerKey::National(probes[i] ^ 0x3)).is_some())
        })
    });
    g.finish();

    // Lookups in a batch, as `batch::process_each` issues them: the slots of BATCH random codes
    // prefetched first, then looked up; per lookup, amortised (Throughput::Elements(BATCH)).
    const BATCH: usize = 16;
    let mut g = c.benchmark_group("lookup_12m_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut j = 0usize;
    let mut next_batch = || {
        j = (j + BATCH) & (probes.len() - 1);
        let keys: [PractitionerKey<'static>; BATCH] = std::array::from_fn(|k| PractitionerKey::National(probes[j + k]));
        keys
    };
    g.bench_function("find_random_key_prefetched_x16", |b| {
        b.iter(|| {
            let keys = next_batch();
            for k in keys {
                view.prefetch_practitioner_slot(k);
            }
            keys.map(|k| view.practitioner(k).is_some())
        })
    });
    g.bench_function("find_and_read_record_prefetched_x16", |b| {
        b.iter(|| {
            let keys = next_batch();
            for k in keys {
                view.prefetch_practitioner_slot(k);
            }
            for k in keys {
                view.prefetch_practitioner_record(k);
            }
            keys.map(|k| view.practitioner(k).map(|r| r.registered_anywhere(t)))
        })
    });
    g.bench_function("find_random_key_one_at_a_time_x16", |b| {
        b.iter(|| next_batch().map(|k| view.practitioner(k).is_some()))
    });
    g.finish();
}

/// Tables and lines from the synthetic data set, as the demo has them.
fn world() -> (View, Vec<Vec<u8>>) {
    World::new(GenConfig { practitioners: 100_000, claims: 20_000, ..GenConfig::default() }).view_and_lines(100_000)
}

fn decision(c: &mut Criterion) {
    let (view, lines) = world();
    let profile = Profile::shipped("national-2024").unwrap();
    let claims: Vec<Claim<'_>> = lines.iter().map(|l| Claim::parse(l).unwrap()).collect();
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: "2026-04-02 10:31:00.004" };
    let rules = Rules::single(profile.clone());
    // The shipped example routing table: three regions, effective periods (docs/rules.md).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/routing");
    let routed = Rules::from_toml(&std::fs::read_to_string(dir.join("example.toml")).unwrap(), |p| {
        std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string())
    })
    .unwrap();

    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("one_decision", |b| {
        b.iter(|| {
            i = (i + 1) % claims.len();
            black_box(decide(&claims[i], &view, &profile).reason)
        })
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            black_box(Claim::parse(&lines[i]).is_ok())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("line");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(1 << 16);
    g.bench_function("parse_decide_encode", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            out.clear();
            black_box(process(&lines[i], &view, &rules, &stamp, &mut out).is_ok())
        })
    });
    g.bench_function("parse_route_decide_encode", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            out.clear();
            black_box(process(&lines[i], &view, &routed, &stamp, &mut out).is_ok())
        })
    });
    let fixed = LINE.as_bytes();
    g.bench_function("parse_decide_encode_fixed_line", |b| {
        b.iter_batched_ref(
            Vec::new,
            |out: &mut Vec<u8>| black_box(process(fixed, &view, &rules, &stamp, out).is_ok()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codes, decision, lookup);
criterion_main!(benches);
