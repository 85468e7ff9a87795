//! Where the CPU goes, from a profile rather than a guess: each profiled system runs one more step at
//! half of its own saturating rate under a sampling profiler — Java Flight Recorder for the Kafka
//! Streams peer (`-XX:StartFlightRecording`, method samples of running Java code and of threads in
//! native code such as RocksDB), `perf record -g` for claimgate — and the samples are summed by what
//! the code is for (parsing, lookups, the Kafka client, compression, the framework…). The raw
//! recordings stay in the results folder (`profile-<system>.jfr`, `profile-<system>.perf.data`) beside
//! the text summaries.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::compare::Hotspots;
use crate::kafka::Clock;
use crate::pool::Pool;
use crate::results::Phase;
use crate::run::{Acc, Outcomes, Plan, measure, one_step};
use crate::session::{Setup, StartOpts, System};
use crate::sweep::round_rate;

/// What to profile.
#[derive(Clone, Debug, Serialize)]
pub struct ProfilePlan {
    /// Seconds measured under the profiler.
    pub seconds: f64,
    pub systems: Vec<System>,
}

/// Runs the profiled steps and summarises them into `out.hotspots`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    setup: &Setup,
    pp: &ProfilePlan,
    plan: &Plan,
    pool: &Arc<Pool>,
    clock: Clock,
    n: &mut u32,
    saturating: &dyn Fn(System) -> Option<u64>,
    out: &mut Outcomes,
) -> Result<()> {
    for &system in &pp.systems {
        let rate = saturating(system).map_or(2_000, |r| round_rate(r / 2));
        let mut acc = Acc::new(system, pool.len());
        let stem = format!("profile-{}", system.name());
        let jfr = plan.out.join(format!("{stem}.jfr"));
        let perf_data = plan.out.join(format!("{stem}.perf.data"));
        eprintln!("loadtest: {} under a profiler at {rate}/s", system.name());
        let r = one_step(setup, pool, clock, n, &mut acc, &StartOpts::default(), |s| {
            // Warm up first (a JVM compiles its hot code), then record the measured step only: the
            // start-up, the table's restoration and the JIT stay out of the profile.
            s.step(rate, 0.0, plan.warmup.max(5.0), std::time::Duration::from_secs_f64(plan.drain))?;
            let pid = s.pid().context("the system has no process to profile")?.to_string();
            let mut perf = None;
            if system.is_kafka_streams() {
                jcmd(&pid, &["JFR.start", "name=loadtest", "settings=profile"])?;
            } else {
                perf = Some(
                    Command::new("perf")
                        .args(["record", "-F", "499", "-g", "-o", &perf_data.display().to_string(), "-p", &pid])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .context("cannot start `perf record`")?,
                );
            }
            let r = measure(s, system, Phase::Profile, rate, 0.0, pp.seconds, plan.drain);
            if system.is_kafka_streams() {
                jcmd(&pid, &["JFR.dump", "name=loadtest", &format!("filename={}", jfr.display())])?;
                jcmd(&pid, &["JFR.stop", "name=loadtest"])?;
            }
            if let Some(mut p) = perf {
                // SAFETY: SIGINT to perf, our own child, not yet reaped: perf writes its data and exits.
                unsafe {
                    libc::kill(p.id() as libc::pid_t, libc::SIGINT);
                }
                let _ = p.wait();
            }
            r.map(|r| (r, None))
        })?;
        out.steps.push(r);
        let summary = if system.is_kafka_streams() { jfr_summary(&jfr) } else { perf_summary(&perf_data) };
        match summary {
            Ok((text, categories, samples)) => {
                let file = format!("{stem}.txt");
                std::fs::write(plan.out.join(&file), text)?;
                out.hotspots.push(Hotspots { system, file, categories, samples });
            }
            Err(e) => out.notes.push(format!("{}: no profile summary: {e:#}", system.name())),
        }
    }
    Ok(())
}

/// A profile's text summary, its shares by category, and its sample count.
type Summary = (String, Vec<(String, f64)>, u64);

/// Runs `jcmd <pid> <args>` (the JDK's diagnostic command: starts and dumps flight recordings).
fn jcmd(pid: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("jcmd").arg(pid).args(args).output().context("cannot run `jcmd` (the JDK's tool)")?;
    anyhow::ensure!(
        out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("Could not"),
        "jcmd {pid} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// What a frame's code is for, by its Java package or native symbol; `None`: look further down the stack.
fn java_category(frame: &str) -> Option<&'static str> {
    let table: [(&str, &str); 12] = [
        ("claimgate.peer.", "the peer's own code: check 0, the rules, the output records"),
        ("com.fasterxml.jackson.", "Jackson: parsing claim lines and status records"),
        ("org.rocksdb.", "RocksDB: the GlobalKTables' lookups"),
        ("org.apache.kafka.streams.state.", "Kafka Streams state-store layers (metered, caching, serdes)"),
        ("org.apache.kafka.common.compress.", "compression (lz4) of produced and fetched batches"),
        ("net.jpountz.", "compression (lz4) of produced and fetched batches"),
        ("org.apache.kafka.streams.", "Kafka Streams runtime: tasks, processors, record collector"),
        ("org.apache.kafka.clients.producer.", "Kafka producer"),
        ("org.apache.kafka.clients.consumer.", "Kafka consumer"),
        ("org.apache.kafka.common.record.", "Kafka record batches (encode, decode, CRC)"),
        ("org.apache.kafka.", "Kafka clients: network, metrics, other"),
        ("org.slf4j.", "logging"),
    ];
    table.iter().find(|(p, _)| frame.starts_with(p)).map(|(_, c)| *c)
}

/// Frames of threads that are in native code but waiting, not running: not CPU.
fn waiting(frame: &str) -> bool {
    ["EPoll.wait", "Net.poll", "Unsafe.park", "Thread.sleep", "Object.wait", "Net.accept", "waitForProcessExit"]
        .iter()
        .any(|w| frame.contains(w))
}

/// Sums a JFR recording's method samples (`jdk.ExecutionSample` and, for native code such as RocksDB,
/// `jdk.NativeMethodSample` less the waiting threads) by category and by top frame.
fn jfr_summary(file: &Path) -> Result<Summary> {
    let out = Command::new("jfr")
        .args(["print", "--stack-depth", "64", "--events", "jdk.ExecutionSample,jdk.NativeMethodSample"])
        .arg(file)
        .output()
        .context("cannot run `jfr` (the JDK's tool)")?;
    anyhow::ensure!(out.status.success(), "jfr print failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let stacks = parse_jfr_stacks(&text);
    let gc = Command::new("jfr")
        .args(["print", "--events", "jdk.GarbageCollection", &file.display().to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let (collections, pause_ms) = gc_pauses(&gc);
    let mut header = format!(
        "Java Flight Recorder (jcmd JFR.start settings=profile over the measured step only, after a warm-up): {} method samples of running Java code and of threads running native code (waiting threads left out).\nGarbage collections: {collections}, pauses {pause_ms:.0} ms in all (GC threads' own CPU is not in the samples).\n",
        stacks.len()
    );
    let (body, categories) = summarise(&stacks, |frames| {
        frames.iter().find_map(|f| java_category(f)).unwrap_or("the JDK (collections, strings, I/O) and other")
    });
    header.push_str(&body);
    Ok((header, categories, stacks.len() as u64))
}

/// Stacks (frames top first) of `jfr print` output, waiting native threads left out.
fn parse_jfr_stacks(text: &str) -> Vec<Vec<String>> {
    let mut stacks = vec![];
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("stackTrace = [") {
            current = Some(vec![]);
        } else if let Some(frames) = current.as_mut() {
            if t == "]" || t.starts_with("]") {
                let frames = current.take().unwrap_or_default();
                if !frames.is_empty() && !waiting(&frames[0]) {
                    stacks.push(frames);
                }
            } else if t != "..." {
                // `org.rocksdb.RocksDB.get(long, long, byte[], int, int) line: 12`: the method.
                frames.push(t.split(" line:").next().unwrap_or(t).to_owned());
            }
        }
    }
    stacks
}

fn gc_pauses(text: &str) -> (u64, f64) {
    let mut n = 0;
    let mut ms = 0.0;
    for line in text.lines().map(str::trim) {
        if line.starts_with("jdk.GarbageCollection") {
            n += 1;
        } else if let Some(v) = line.strip_prefix("sumOfPauses = ") {
            ms += parse_duration_ms(v);
        }
    }
    (n, ms)
}

/// `12.3 ms`, `1.20 s`, `850 us` as milliseconds.
fn parse_duration_ms(v: &str) -> f64 {
    let mut it = v.split_whitespace();
    let x: f64 = it.next().and_then(|x| x.replace(',', "").parse().ok()).unwrap_or(0.0);
    match it.next() {
        Some("s") => x * 1000.0,
        Some("us") => x / 1000.0,
        Some("ns") => x / 1e6,
        _ => x,
    }
}

/// The shares by category and the 25 most frequent top frames.
fn summarise<F>(stacks: &[Vec<String>], category: F) -> (String, Vec<(String, f64)>)
where
    F: Fn(&[String]) -> &'static str,
{
    let total = stacks.len().max(1) as f64;
    let mut by_cat: HashMap<&'static str, u64> = HashMap::new();
    let mut by_top: HashMap<&str, u64> = HashMap::new();
    for s in stacks {
        *by_cat.entry(category(s)).or_default() += 1;
        *by_top.entry(s[0].as_str()).or_default() += 1;
    }
    let mut cats: Vec<(String, f64)> = by_cat.into_iter().map(|(c, k)| (c.to_owned(), k as f64 / total)).collect();
    cats.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut tops: Vec<(&str, u64)> = by_top.into_iter().collect();
    tops.sort_by_key(|t| std::cmp::Reverse(t.1));
    let mut o = String::from(
        "\nBy what the code is for (a sample counts for the first frame from the top whose code is known):\n",
    );
    for (c, share) in &cats {
        o.push_str(&format!("  {:5.1}%  {c}\n", share * 100.0));
    }
    o.push_str("\nTop frames (self):\n");
    for (f, k) in tops.iter().take(25) {
        o.push_str(&format!("  {:5.1}%  {f}\n", *k as f64 / total * 100.0));
    }
    (o, cats)
}

/// What a native symbol of claimgate's process is for.
fn native_category(dso: &str, sym: &str) -> Option<&'static str> {
    if dso.contains("kernel") {
        return Some("the kernel: system calls, network, scheduling");
    }
    let table: [(&str, &str); 10] = [
        ("claimgate::record::", "claimgate: parsing claim lines, writing records"),
        ("claimgate::decide", "claimgate: the rules and table lookups"),
        ("claimgate::table", "claimgate: the rules and table lookups"),
        ("claimgate::io::kafka", "claimgate: its Kafka pipeline (batches, offsets, headers)"),
        ("LZ4", "compression (lz4) of produced and fetched batches"),
        ("rd_kafka", "librdkafka: the Kafka client"),
        ("rd_", "librdkafka: the Kafka client"),
        ("tokio::", "tokio runtime"),
        ("claimgate::", "claimgate: other"),
        ("rdkafka::", "rust-rdkafka bindings"),
    ];
    table.iter().find(|(p, _)| sym.contains(p)).map(|(_, c)| *c)
}

/// Sums a perf recording's samples (call graphs) by category and by top symbol.
fn perf_summary(file: &Path) -> Result<Summary> {
    let out = Command::new("perf")
        .args(["script", "-F", "ip,sym,dso", "-i", &file.display().to_string()])
        .output()
        .context("cannot run `perf script`")?;
    anyhow::ensure!(out.status.success(), "perf script failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // perf script -F ip,sym,dso: one sample per blank-line-separated block, frames top first:
    // `addr sym (dso)`.
    let mut stacks: Vec<Vec<String>> = vec![];
    let mut cur: Vec<String> = vec![];
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            if !cur.is_empty() {
                stacks.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let (sym, dso) = match t.rfind(" (") {
            Some(i) => (&t[..i], t[i + 2..].trim_end_matches(')')),
            None => (t, ""),
        };
        let sym = sym.split_once(' ').map_or(sym, |(_, s)| s).split("+0x").next().unwrap_or(sym);
        cur.push(format!("{sym} [{dso}]"));
    }
    if !cur.is_empty() {
        stacks.push(cur);
    }
    let mut header = format!("perf record -F 499 -g on claimgate stream: {} samples.\n", stacks.len());
    let (body, categories) = summarise(&stacks, |frames| {
        frames
            .iter()
            .find_map(|f| {
                let (sym, dso) = f.rsplit_once(" [").unwrap_or((f, ""));
                native_category(dso, sym)
            })
            .unwrap_or("libc and other (memory copies, allocation)")
    });
    header.push_str(&body);
    Ok((header, categories, stacks.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfr_stacks_are_read_and_waiting_threads_left_out() {
        let text = "jdk.ExecutionSample {\n  startTime = 1\n  stackTrace = [\n    com.fasterxml.jackson.core.json.UTF8StreamJsonParser.nextToken() line: 700\n    claimgate.peer.kstreams.ClaimLine.parse(byte[]) line: 120\n    ...\n  ]\n}\njdk.NativeMethodSample {\n  stackTrace = [\n    sun.nio.ch.EPoll.wait(int, long, int, int)\n    sun.nio.ch.EPollSelectorImpl.doSelect(Consumer, long) line: 121\n  ]\n}\njdk.NativeMethodSample {\n  stackTrace = [\n    org.rocksdb.RocksDB.get(long, long, byte[], int, int)\n  ]\n}\n";
        let stacks = parse_jfr_stacks(text);
        assert_eq!(stacks.len(), 2, "{stacks:?}");
        assert_eq!(stacks[0][0], "com.fasterxml.jackson.core.json.UTF8StreamJsonParser.nextToken()");
        let (_, cats) = summarise(&stacks, |f| f.iter().find_map(|x| java_category(x)).unwrap_or("other"));
        assert_eq!(cats.len(), 2);
        assert!(cats.iter().all(|c| (c.1 - 0.5).abs() < 1e-9));
        assert!(cats.iter().any(|c| c.0.starts_with("RocksDB")));
        assert_eq!(
            gc_pauses(
                "jdk.GarbageCollection {\n sumOfPauses = 12.5 ms\n}\njdk.GarbageCollection {\n sumOfPauses = 1.0 s\n}"
            ),
            (2, 1012.5)
        );
    }

    #[test]
    fn native_symbols_fall_into_categories() {
        assert_eq!(
            native_category("[kernel.kallsyms]", "tcp_sendmsg"),
            Some("the kernel: system calls, network, scheduling")
        );
        assert_eq!(native_category("claimgate", "rd_kafka_msg_partitioner"), Some("librdkafka: the Kafka client"));
        assert_eq!(
            native_category("claimgate", "claimgate::record::json::scan_object"),
            Some("claimgate: parsing claim lines, writing records")
        );
        assert_eq!(native_category("libc.so.6", "__memmove_avx_unaligned_erms"), None);
    }
}
