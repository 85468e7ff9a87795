//! claimgate's claim-line scanner against simd-json and sonic-rs: nanoseconds per generated line
//! (best of five passes over 20 000 lines) and agreement with serde_json on which texts are JSON
//! objects (the generated lines, then single-byte mutations of them).

use std::hint::black_box;
use std::time::Instant;

use claimgate::record::Claim;
use sonic_rs::JsonValueTrait;
use claimgate::record::json::scan_object;
use claimgate::synth::{GenConfig, World};

fn time(name: &str, lines: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> bool) {
    let mut best = f64::MAX;
    let mut ok = 0;
    for _ in 0..5 {
        ok = 0;
        let t = Instant::now();
        for l in lines {
            ok += usize::from(f(black_box(l)));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / lines.len() as f64);
    }
    println!("{name:<44} {best:>7.0} ns/line  ({ok} of {} accepted)", lines.len());
}

fn serde_ok(b: &[u8]) -> bool {
    matches!(serde_json::from_slice::<serde_json::Value>(b), Ok(serde_json::Value::Object(_)))
}

fn ours_ok(b: &[u8]) -> bool {
    scan_object(b, &mut |_, _| Ok(())).is_ok()
}

fn simd_ok(b: &[u8]) -> bool {
    let mut copy = b.to_vec();
    matches!(simd_json::to_borrowed_value(&mut copy), Ok(simd_json::BorrowedValue::Object(_)))
}

fn simd_tape_ok(b: &[u8]) -> bool {
    let mut copy = b.to_vec();
    simd_json::to_tape(&mut copy).is_ok_and(|t| t.as_value().is_object())
}

fn sonic_ok(b: &[u8]) -> bool {
    sonic_rs::from_slice::<sonic_rs::Value>(b).is_ok_and(|v| v.is_object())
}

fn sonic_iter_ok(b: &[u8]) -> bool {
    // The lazy object iterator: each member's raw value, as claimgate's scanner hands them out.
    let mut n = 0;
    for item in sonic_rs::to_object_iter(b) {
        match item {
            Ok((_k, v)) => n += v.as_raw_str().len(),
            Err(_) => return false,
        }
    }
    n > 0
}

fn main() {
    let world = World::new(GenConfig { practitioners: 100_000, claims: 20_000, ..GenConfig::default() });
    let lines: Vec<Vec<u8>> = world.claims().map(|l| l.bytes).collect();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    println!("{} generated lines, {:.0} bytes on average", lines.len(), bytes as f64 / lines.len() as f64);
    time("claimgate scan_object (validate, fields)", &lines, ours_ok);
    time("claimgate Claim::parse (scan + typed fields)", &lines, |b| Claim::parse(b).is_ok());
    time("serde_json::Value", &lines, serde_ok);
    time("simd-json to_borrowed_value (copy + DOM)", &lines, simd_ok);
    time("simd-json to_tape (copy + tape)", &lines, simd_tape_ok);
    time("sonic-rs Value", &lines, sonic_ok);
    time("sonic-rs to_object_iter (lazy members)", &lines, sonic_iter_ok);

    // Agreement with serde_json: every generated line and every single-byte mutation of the first
    // 200 lines at 40 positions with 12 byte values.
    let mut texts: Vec<Vec<u8>> = lines.clone();
    for l in lines.iter().take(200) {
        for pos in (0..l.len()).step_by((l.len() / 40).max(1)) {
            for b in [b'"', b'\\', b'{', b'}', b',', b':', b'0', b'e', b' ', 0x01, 0xff, b'n'] {
                let mut m = l.clone();
                m[pos] = b;
                texts.push(m);
            }
        }
    }
    for (name, f) in [
        ("claimgate scan_object", ours_ok as fn(&[u8]) -> bool),
        ("simd-json to_borrowed_value", simd_ok),
        ("simd-json to_tape", simd_tape_ok),
        ("sonic-rs Value", sonic_ok),
        ("sonic-rs to_object_iter", sonic_iter_ok),
    ] {
        let differ: Vec<&Vec<u8>> = texts.iter().filter(|t| f(t) != serde_ok(t)).collect();
        print!("{name:<30} differs from serde_json on {} of {} texts", differ.len(), texts.len());
        match differ.first() {
            Some(t) => println!(", e.g. {:?}", String::from_utf8_lossy(t)),
            None => println!(),
        }
    }
}
