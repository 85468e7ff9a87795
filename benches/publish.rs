//! Readers during a table publish (performance.md): lookups must never block, and the p99.9 lookup
//! latency while a writer publishes new views continuously must stay within 2x of idle.
//!
//! A dedicated harness rather than criterion, because the figure is a tail percentile under a
//! concurrent writer. One reader thread takes the current view once per batch of 1 000 lookups (as the
//! stream does per batch of claims) and times every lookup into an HdrHistogram; first with no writer
//! (idle), then with a writer that applies 1 000 status updates and publishes a new view in a loop.
//!
//! `cargo bench --bench publish` (12 million codes; `CLAIMGATE_BENCH_CODES=2000000` for a quicker run).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use claimgate::record::{
    BjTime, InstitutionCode, Interval, Period, PractitionerCode, PractitionerKey, PractitionerRecord, Registration,
    Status,
};
use claimgate::table::{InstitutionTable, PractitionerTable, TableHandle, Updater};

fn record(i: u64, version: u64, suspended: bool) -> PractitionerRecord {
    let digits = (i % 60) * 1_000_000_000 + 110_000_000_000 + i / 60;
    let from = BjTime::from_secs(1_577_836_800);
    PractitionerRecord {
        code: PractitionerCode::parse(&format!("D{digits:012}")).unwrap(),
        registrations: vec![Registration {
            institution: InstitutionCode::parse(&format!("H{:011}", i % 600_000)).unwrap(),
            during: Interval { from, until: BjTime::MAX },
        }],
        periods: if suspended {
            vec![Period {
                status: Status::Suspended,
                during: Interval { from, until: BjTime::MAX },
                basis: Some("bench".into()),
                decision_id: None,
            }]
        } else {
            vec![]
        },
        version,
    }
}

fn key_of(i: u64) -> u64 {
    match record(i, 1, false).code {
        PractitionerCode::National(k) => k,
        PractitionerCode::Legacy(_) => unreachable!("bench codes are national"),
    }
}

/// Runs the reader for `duration`; returns the per-lookup latency histogram (ns) and the lookups done.
fn read(handle: &TableHandle, keys: &[u64], duration: Duration) -> (Histogram<u64>, u64) {
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut rng = Pcg64Mcg::seed_from_u64(9);
    let t = BjTime::from_secs(1_700_000_000);
    let end = Instant::now() + duration;
    let mut n = 0;
    while Instant::now() < end {
        let view = handle.load().expect("published");
        for _ in 0..1_000 {
            let k = keys[rng.random_range(0..keys.len())];
            let start = Instant::now();
            let hit = view.practitioner(PractitionerKey::National(k)).map(|r| r.status_at(t));
            let ns = start.elapsed().as_nanos() as u64;
            black_box(hit);
            h.saturating_record(ns.max(1));
            n += 1;
        }
    }
    (h, n)
}

fn show(name: &str, h: &Histogram<u64>, n: u64) {
    println!(
        "{name:<12} lookups {n:>10}  p50 {:>5} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>9} ns",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, is ignored.
    let n: u64 = std::env::var("CLAIMGATE_BENCH_CODES").ok().and_then(|s| s.parse().ok()).unwrap_or(12_000_000);
    let secs: u64 = std::env::var("CLAIMGATE_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let started = Instant::now();
    let mut base = PractitionerTable::with_capacity(n as usize);
    for i in 0..n {
        base.upsert(&record(i, 1, false)).unwrap();
    }
    println!("built {n} codes in {:.1} s", started.elapsed().as_secs_f64());
    let keys: Vec<u64> = {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        (0..1 << 20).map(|_| key_of(rng.random_range(0..n))).collect()
    };
    let updater = Arc::new(std::sync::Mutex::new(Updater::new(base, InstitutionTable::default())));
    let handle = Arc::new(TableHandle::new());
    handle.publish(Arc::new(updater.lock().unwrap().view()));

    let (idle, idle_n) = read(&handle, &keys, Duration::from_secs(secs));

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let writer = {
        let (handle, stop, published, updater) =
            (Arc::clone(&handle), Arc::clone(&stop), Arc::clone(&published), Arc::clone(&updater));
        std::thread::spawn(move || {
            let mut rng = Pcg64Mcg::seed_from_u64(4);
            let mut version = 2;
            // The writer owns the updater; the mutex only hands it over to this thread.
            let mut up = updater.lock().unwrap();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1_000 {
                    // Updates cycle over 50 000 codes, so the delta layer stays the size a busy day
                    // of status changes gives it between compactions.
                    let i = rng.random_range(0..50_000u64) * (n / 50_000).max(1);
                    up.practitioner(&record(i, version, rng.random_bool(0.5))).unwrap();
                }
                version += 1;
                handle.publish(Arc::new(up.view()));
                published.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = published.load(Ordering::Relaxed);
    let (busy, busy_n) = read(&handle, &keys, Duration::from_secs(secs));
    let publishes = published.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    println!("table: {n} codes; reader takes the view once per 1 000 lookups; {secs} s per phase");
    show("idle", &idle, idle_n);
    show("publishing", &busy, busy_n);
    println!(
        "writer: {publishes} views published during the busy phase ({:.0}/s), 1 000 updates each",
        publishes as f64 / secs as f64
    );
    println!(
        "ratio publishing/idle: p50 {:.2}  p99 {:.2}  p99.9 {:.2}",
        busy.value_at_quantile(0.5) as f64 / idle.value_at_quantile(0.5) as f64,
        busy.value_at_quantile(0.99) as f64 / idle.value_at_quantile(0.99) as f64,
        busy.value_at_quantile(0.999) as f64 / idle.value_at_quantile(0.999) as f64
    );
}
