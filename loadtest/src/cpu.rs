//! CPU use during a step, from /proc: how busy the whole machine was, and how much of it the system
//! under test and the load test itself took. On a shared 2-core machine this tells a saturated system
//! from a starved one.

use std::sync::atomic::{AtomicI32, Ordering};

/// The reader's thread id, so that the load test's own CPU can be split between sending and reading
/// (what limits an open-loop run on two cores: see BENCHMARKS.md). The generator, a thread of each
/// step, measures its own ([`thread_cpu_ns`]).
static READER_TID: AtomicI32 = AtomicI32::new(0);

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime(2) writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Called by the reader's thread when it starts.
pub fn register_reader() {
    // SAFETY: gettid(2) has no preconditions.
    READER_TID.store(unsafe { libc::gettid() }, Ordering::Relaxed);
}

/// A reading of the counters (clock ticks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    total: u64,
    idle: u64,
    system: Option<u64>,
    broker: Option<u64>,
    loadtest: u64,
    reader: Option<u64>,
}

/// CPU use between two samples: `machine_busy_pct` of all cores; the others in percent of one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CpuUse {
    pub machine_busy_pct: f64,
    pub system_pct: f64,
    pub loadtest_pct: f64,
    /// The broker, if its PID was given.
    pub broker_pct: f64,
    /// Busy share of the machine not taken by any of those (the machine's other users; the broker
    /// too if its PID was not given), in percent of one core.
    pub others_pct: f64,
    /// Of the load test's share: its generator thread and its reader thread.
    #[serde(default)]
    pub generator_pct: f64,
    #[serde(default)]
    pub reader_pct: f64,
}

/// `(total, idle + iowait)` from the first line of /proc/stat.
fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = v.iter().take(8).sum();
    Some((total, v[3] + v[4]))
}

/// utime + stime of a process from /proc/<pid>/stat (fields 14 and 15, counted after the command).
fn parse_proc(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Reads the counters; `system` is the PID of the system under test, `brokers` the broker's (every
/// node's, for a cluster on this machine: their use is added up).
pub fn sample(system: Option<u32>, brokers: &[u32]) -> Sample {
    let (total, idle) = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_stat).unwrap_or((0, 0));
    let of = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_proc);
    let thread = |tid: &AtomicI32| match tid.load(Ordering::Relaxed) {
        0 => None,
        t => of(&format!("self/task/{t}")),
    };
    let broker = brokers.iter().map(|p| of(&p.to_string())).sum::<Option<u64>>();
    Sample {
        total,
        idle,
        system: system.and_then(|p| of(&p.to_string())),
        broker: if brokers.is_empty() { None } else { broker },
        loadtest: of("self").unwrap_or(0),
        reader: thread(&READER_TID),
    }
}

/// CPU seconds (user + system) the system under test used between `a` and `b` (0 if it had no PID).
pub fn process_seconds(a: &Sample, b: &Sample) -> f64 {
    match (a.system, b.system) {
        (Some(x), Some(y)) => y.saturating_sub(x) as f64 / ticks_per_second(),
        _ => 0.0,
    }
}

/// Clock ticks per second of /proc's times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Use between `a` and `b` on a machine of `cores` cores.
pub fn usage(a: &Sample, b: &Sample, cores: usize) -> CpuUse {
    let total = b.total.saturating_sub(a.total);
    if total == 0 {
        return CpuUse::default();
    }
    let per_core = total as f64 / cores.max(1) as f64;
    let busy = total.saturating_sub(b.idle.saturating_sub(a.idle)) as f64;
    let diff = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => y.saturating_sub(x) as f64,
        _ => 0.0,
    };
    let system = diff(a.system, b.system);
    let broker = diff(a.broker, b.broker);
    let loadtest = b.loadtest.saturating_sub(a.loadtest) as f64;
    let pct = |t: f64| (t / per_core * 1000.0).round() / 10.0;
    CpuUse {
        machine_busy_pct: (busy / total as f64 * 1000.0).round() / 10.0,
        system_pct: pct(system),
        loadtest_pct: pct(loadtest),
        broker_pct: pct(broker),
        others_pct: pct((busy - system - loadtest - broker).max(0.0)),
        generator_pct: 0.0,
        reader_pct: pct(diff(a.reader, b.reader)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 50 2 25 400 10 0 1 1 0 0\n";
        assert_eq!(parse_stat(stat), Some((981, 820)));
        let p = "1234 (claim gate) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_proc(p), Some(325));
        assert_eq!(parse_proc("garbage"), None);
    }

    #[test]
    fn usage_splits_the_machine() {
        // 2 cores, 200 ticks elapsed in all: 150 busy; the system took 60, the load test 30, the
        // broker 40: 20 were someone else's.
        let a = Sample { total: 1000, idle: 500, system: Some(10), broker: Some(100), loadtest: 5, reader: Some(2) };
        let b = Sample { total: 1200, idle: 550, system: Some(70), broker: Some(140), loadtest: 35, reader: Some(17) };
        let u = usage(&a, &b, 2);
        let want = CpuUse {
            machine_busy_pct: 75.0,
            system_pct: 60.0,
            loadtest_pct: 30.0,
            broker_pct: 40.0,
            others_pct: 20.0,
            generator_pct: 0.0,
            reader_pct: 15.0,
        };
        assert_eq!(u, want);
        assert_eq!(usage(&a, &a, 2), CpuUse::default());
    }
}
