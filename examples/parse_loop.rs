use claimgate::record::Claim;
use claimgate::synth::{GenConfig, World};
fn main() {
    let world = World::new(GenConfig { practitioners: 100_000, claims: 20_000, ..GenConfig::default() });
    let lines: Vec<Vec<u8>> = world.claims().map(|l| l.bytes).collect();
    let t = std::time::Instant::now();
    let mut ok = 0;
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    for _ in 0..iters {
        for l in &lines {
            if Claim::parse(std::hint::black_box(l)).is_ok() {
                ok += 1;
            }
        }
    }
    println!("{:.0} ns/line {ok}", t.elapsed().as_nanos() as f64 / (iters as f64 * lines.len() as f64));
}
