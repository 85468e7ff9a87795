//! Faults of a three-node Apache Kafka cluster under steady load (issue 11), against the real binary:
//!
//! - the leader of a `claims` partition killed (`kill -9`) and restarted, several times;
//! - the leader of an output topic's partition killed: its outputs wait, visibly, then go on;
//! - the leader of the status topics killed: decisions go on with the last table, which turns stale and
//!   then fresh again;
//! - a rolling restart of the three brokers (SIGTERM, one at a time), as an operator does for an upgrade;
//! - two instances in one group, one killed with `kill -9`: the other takes its partitions; then a third
//!   joins and takes some, without the group stopping (cooperative-sticky assignment);
//! - `--exactly-once` through leader failovers: a `read_committed` reader sees every line exactly once;
//! - a node cut off from the clients, and a leader cut off from its peers (`util::cluster::Cut`).
//!
//! Each test counts every line sent against the outputs by identity (`util::load::tally`, the tests' own
//! reading of records.md): nothing lost, every duplicate byte-identical but for its time stamp, no panic,
//! and the fault visible in claimgate's metrics and logs while it lasts.
//!
//! The cluster is the test binary's own (`util::cluster::shared`: three JVMs of 384 MB, listeners from
//! `CLAIMGATE_TEST_CLUSTER_PORT`, default 19710), started at the first test and stopped at exit; the
//! tests take it in turn. Sizes come from the environment so that `scripts/soak.sh` can run them long:
//! `CLAIMGATE_TEST_LEADER_KILLS` (default 2), `CLAIMGATE_TEST_OUTPUT_KILLS` (1),
//! `CLAIMGATE_TEST_STATUS_KILLS` (1), `CLAIMGATE_TEST_ROLLING_RESTARTS` (node restarts, 3 = one round),
//! `CLAIMGATE_TEST_INSTANCE_KILLS` (1), `CLAIMGATE_TEST_EOS_FAILOVERS` (1), `CLAIMGATE_TEST_CUTS` (1 of
//! each kind), `CLAIMGATE_TEST_CLUSTER_RATE` (lines/s, 400), `CLAIMGATE_TEST_SEED`. With
//! `CLAIMGATE_TEST_REPORT=FILE` each test appends its figures (fault, how many, lines, lost, duplicated)
//! to FILE as one JSON line: `RELIABILITY.md`'s table is made from them.

mod util;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use claimgate::synth::World;
use util::cluster::{self, Cluster, Cut, Node};
use util::faults::{
    all_topics, assert_clean, decided_so_far, env_u64, output_topics, panics, publish_world, report, seed, tail,
    tally_json, wait_answered, wait_deciding, wait_metric, world,
};
use util::load::{Load, Reader, Record, Tally, tally};
use util::{Env, Scrape, Stream};

const READY: Duration = Duration::from_secs(120);
/// How long the cluster gets to elect a new leader after a node is killed: the controller fences a
/// silent broker after `broker.session.timeout.ms` (9 s), on a busy machine somewhat later.
const FAILOVER: Duration = Duration::from_secs(90);
/// How long a restarted node gets to be back in every ISR.
const HEAL: Duration = Duration::from_secs(240);

fn rate() -> u64 {
    env_u64("CLAIMGATE_TEST_CLUSTER_RATE", 400)
}

/// A fault test's cluster, topics, data and the figures they share.
struct Scenario {
    c: MutexGuard<'static, Cluster>,
    env: Env,
    world: &'static World,
    seed: u64,
    rng: Pcg64Mcg,
    started: Instant,
    /// Faults done by this test.
    faults: u64,
    /// Every output record read by [`Scenario::finish`], each once.
    outputs: Vec<Record>,
}

impl Scenario {
    /// Takes the cluster, makes the test's six topics (RF 3, min ISR 2 from the brokers' defaults; the
    /// claims topic and the outputs placed by hand),
    /// publishes the tables, and waits until every partition is fully replicated.
    fn new(name: &str, salt: u64) -> Scenario {
        let seed = seed();
        let c = cluster::shared(&[]);
        // The claims topic and the outputs placed by hand (see `Cluster::create_placed`): an output
        // partition's preferred leader never leads the claims partition that feeds it. The status
        // topics (compacted) are made by `claimgate topics create`, which leaves existing topics be.
        let env = Env::without_topics(&c.bootstrap, name);
        c.create_placed(&[env.topic("claims")], 0);
        c.create_placed(&output_topics(&env), 1);
        env.create_topics();
        let world = world(seed ^ salt);
        publish_world(&env, world);
        assert!(
            c.wait_healthy(&all_topics(&env), HEAL),
            "the test's topics are not fully replicated:\n{}",
            c.describe(&all_topics(&env))
        );
        // A table is stale after 3 s without confirmation, /healthz fails when an output waited 5 s:
        // short enough for a leader's failover (about 9 s) to show in both.
        std::fs::write(env.path("limits.toml"), "[limits]\nstale_after_s = 3\nmax_unacked_age_s = 5\n").unwrap();
        Scenario {
            c,
            env,
            world,
            seed,
            rng: Pcg64Mcg::seed_from_u64(seed),
            started: Instant::now(),
            faults: 0,
            outputs: Vec::new(),
        }
    }

    fn config(&self) -> String {
        self.env.path("limits.toml").display().to_string()
    }

    /// Starts an instance of `claimgate stream` in group `g` and waits until it is ready.
    fn stream(&self, extra: &[&str]) -> Stream {
        let config = self.config();
        let mut args = vec!["--config", config.as_str()];
        args.extend_from_slice(extra);
        let mut s = self.env.stream("g", &args);
        s.wait_ready(READY);
        s
    }

    fn topics(&self) -> Vec<String> {
        all_topics(&self.env)
    }

    fn claims(&self) -> String {
        self.env.topic("claims")
    }

    fn load(&self) -> Load {
        Load::start(&self.env.broker, &self.claims(), self.world.claims(), rate())
    }

    /// Kills (SIGKILL) the node leading `topic`/`partition`; waits until another node leads it.
    /// Returns (killed node, new leader).
    fn kill_leader(&mut self, topic: &str, partition: i32) -> (Node, Node) {
        let leader = self
            .c
            .leader(topic, partition)
            .unwrap_or_else(|| panic!("no leader for {topic}/{partition}:\n{}", self.c.describe(&self.topics())));
        self.c.kill(leader);
        self.faults += 1;
        let new = self.c.wait_new_leader(topic, partition, leader, FAILOVER).unwrap_or_else(|| {
            panic!(
                "no new leader for {topic}/{partition} after killing node {leader}:\n{}",
                self.c.describe(&self.topics())
            )
        });
        (leader, new)
    }

    /// The partition of `__consumer_offsets` whose leader coordinates the instances' group (`g`).
    fn group_offsets_partition(&self) -> i32 {
        coordinator_partition(&format!("{}g", self.env.prefix), 4)
    }

    /// An output partition (accepted first: most lines go there) whose leader neither leads the claims
    /// partition feeding it nor coordinates the instance's consumer group (group `g`), as the metadata
    /// says now. Killing the group's coordinator loses the group session: the partitions are revoked
    /// and nothing is decided — so no output waits — until they are assigned again (seen in a run).
    fn output_led_apart(&self) -> Option<(String, i32)> {
        let claims = self.c.partitions(&self.claims())?;
        let coordinator = self.c.leader("__consumer_offsets", self.group_offsets_partition())?;
        output_topics(&self.env).into_iter().find_map(|t| {
            let led = self.c.partitions(&t)?;
            let p = led.iter().find(|o| {
                o.leader > 0
                    && o.leader != coordinator
                    && claims.iter().any(|c| c.id == o.id && c.leader > 0 && c.leader != o.leader)
            })?;
            Some((t, p.id))
        })
    }

    /// Starts a node again and waits until the cluster is whole (every partition of the test's topics
    /// fully replicated).
    fn restart(&mut self, node: Node) {
        self.c.start_node(node);
        let topics = self.topics();
        assert!(
            self.c.wait_healthy(&topics, HEAL),
            "node {node} restarted but the cluster did not heal:\n{}",
            self.c.describe(&topics)
        );
    }

    /// Stops the load, reads every output, stops the instances (each must exit 0), and accounts for
    /// every line. Returns the accounting, the figures so far and every instance's log.
    fn finish(&mut self, load: Load, streams: Vec<Stream>, dead: String) -> (Tally, serde_json::Value, String) {
        let lines = load.finish();
        let mut reader = Reader::new(&self.env.broker, &output_topics(&self.env));
        let wait = Duration::from_secs(240.max(lines.len() as u64 / 300));
        let answered = wait_answered(&mut reader, &lines, wait);
        let mut logs = dead;
        let mut exits = Vec::new();
        for mut s in streams {
            exits.push(s.terminate(Duration::from_secs(60)));
            logs.push_str(&s.log_text());
        }
        assert!(
            answered,
            "not every line was answered within {wait:?}:\n{}\n{}",
            self.c.describe(&self.topics()),
            tail(&logs, 150)
        );
        assert!(
            exits.iter().all(|e| *e == Some(0)),
            "an instance did not stop cleanly: {exits:?}\n{}",
            tail(&logs, 100)
        );
        reader.drain(Duration::from_secs(3));
        let t = tally(&lines, &reader.records);
        let mut figures = tally_json(&t);
        figures["reader_rereads"] = reader.rereads.into();
        // What a large `duplicates` figure comes from: claims read again after a lost session or a
        // revocation without a commit, or from `offsets.reset` for want of a committed offset.
        let watched = [
            "partitions_lost",
            "offset_reset",
            "commit_failed",
            "offset_store_failed",
            "revoked_with_outputs_in_flight",
        ];
        let mut counted: serde_json::Map<String, serde_json::Value> =
            watched.iter().map(|e| ((*e).to_owned(), 0.into())).collect();
        // One pass over the logs (a soak's run to megabytes), each line parsed once.
        for v in logs.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
            if let Some(n) = v["event"].as_str().and_then(|e| counted.get_mut(e)) {
                *n = (n.as_u64().unwrap_or(0) + 1).into();
            }
        }
        figures["events"] = counted.into();
        figures["faults"] = self.faults.into();
        figures["seed"] = self.seed.into();
        figures["panics"] = panics(&logs).into();
        figures["rate"] = rate().into();
        figures["seconds"] = self.started.elapsed().as_secs().into();
        self.outputs = reader.records;
        (t, figures, logs)
    }
}

/// What a stream's metrics showed during a fault, sampled every 100 ms from another thread.
#[derive(Debug, Default, Clone)]
struct Seen {
    samples: u64,
    max_unacked_s: f64,
    max_table_age_s: f64,
    stale: bool,
    healthz_failed: bool,
    min_partitions: f64,
    max_partitions: f64,
    /// Brokers the claims consumer had lost (`claimgate_brokers_down`), at most.
    max_brokers_down: f64,
    /// Client warnings and errors counted (`claimgate_broker_warnings_total` + `_errors_total`).
    client_errors: f64,
    /// Broker connections lost (`claimgate_broker_disconnects_total`).
    disconnects: f64,
    /// Partitions whose leader moved, as the clients saw it (`claimgate_leader_changes_total`).
    leader_changes: f64,
    /// Lines decided or dead-lettered during the window.
    decided: f64,
    /// What the instance logged during the window.
    log: String,
}

/// Watches one stream through a fault.
struct Window {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Seen>>,
    log_from: usize,
    errors_before: f64,
    disconnects_before: f64,
    leader_changes_before: f64,
    decided_before: f64,
}

fn client_errors(s: &Scrape) -> f64 {
    s.counter("claimgate_broker_warnings_total") + s.counter("claimgate_broker_errors_total")
}

impl Window {
    fn open(s: &Stream) -> Window {
        let scrape = s.scrape();
        let errors_before = client_errors(&scrape);
        let disconnects_before = scrape.counter("claimgate_broker_disconnects_total");
        let leader_changes_before = scrape.counter("claimgate_leader_changes_total");
        let decided_before = scrape.value("claimgate_claims_total") + scrape.counter("claimgate_dead_letters_total");
        let log_from = s.log_text().len();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let port = s.port;
        let handle = std::thread::spawn(move || {
            let mut seen = Seen { min_partitions: f64::MAX, ..Seen::default() };
            while !flag.load(Ordering::Relaxed) {
                if let Some((200, body)) = util::http_get(port, "/metrics") {
                    let m = Scrape(body);
                    seen.samples += 1;
                    let g = |n: &str| m.get(n).unwrap_or(0.0);
                    seen.max_unacked_s = seen.max_unacked_s.max(g("claimgate_oldest_unacked_seconds"));
                    seen.max_table_age_s = seen.max_table_age_s.max(g("claimgate_table_age_seconds"));
                    seen.stale |= g("claimgate_table_stale") == 1.0;
                    seen.min_partitions = seen.min_partitions.min(g("claimgate_claims_partitions"));
                    seen.max_partitions = seen.max_partitions.max(g("claimgate_claims_partitions"));
                    seen.max_brokers_down = seen.max_brokers_down.max(g("claimgate_brokers_down"));
                }
                if util::http_get(port, "/healthz").is_some_and(|(code, _)| code != 200) {
                    seen.healthz_failed = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        Window {
            stop,
            handle: Some(handle),
            log_from,
            errors_before,
            disconnects_before,
            leader_changes_before,
            decided_before,
        }
    }

    /// Waits (up to `wait`) until the clients' statistics — reported every 5 s, and a leader change
    /// only once the client has refreshed its metadata — show a lost connection or a moved leader since
    /// the window opened.
    fn wait_for_statistics(&self, s: &Stream, wait: Duration) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some((200, body)) = s.get("/metrics") {
                let m = Scrape(body);
                if m.counter("claimgate_broker_disconnects_total") > self.disconnects_before
                    || m.counter("claimgate_leader_changes_total") > self.leader_changes_before
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn close(mut self, s: &Stream) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let scrape = s.scrape();
        seen.client_errors = client_errors(&scrape) - self.errors_before;
        seen.disconnects = scrape.counter("claimgate_broker_disconnects_total") - self.disconnects_before;
        seen.leader_changes = scrape.counter("claimgate_leader_changes_total") - self.leader_changes_before;
        seen.decided = scrape.value("claimgate_claims_total") + scrape.counter("claimgate_dead_letters_total")
            - self.decided_before;
        seen.log = s.log_text().get(self.log_from..).unwrap_or_default().to_owned();
        seen
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The instance's log names the broker `node` (librdkafka calls it `host:port/id`), or says a partition's
/// leader moved away from it.
fn log_names_node(log: &str, c: &Cluster, node: Node) -> bool {
    log.lines().any(|l| l.contains(&format!(":{}/{node}", c.client_port(node))))
        || util::events(log, "partition_leader_changed").iter().any(|e| e["from"] == node)
}

/// The fault showed in the instance's metrics — client warnings or errors, broker connections lost
/// (`claimgate_broker_disconnects_total`, `claimgate_brokers_down`), partition leaders moved
/// (`claimgate_leader_changes_total`: a controlled shutdown raises no client error, and may not even cost
/// a connection), outputs waiting (`claimgate_oldest_unacked_seconds`), a stale table — and in its log:
/// lines naming the node (librdkafka's and claimgate's `broker_*` events call it `host:port/id`;
/// `partition_leader_changed` from it), or the events of what waited (`outputs_waiting`, `table_stale`,
/// `partitions_lost`).
fn assert_visible(what: &str, seen: &Seen, c: &Cluster, node: Node) {
    if let Err(why) = visible(seen, c, node) {
        panic!("{what}: {why}");
    }
}

/// [`assert_visible`]'s judgement, without the panic.
fn visible(seen: &Seen, c: &Cluster, node: Node) -> Result<(), String> {
    if seen.samples == 0 {
        return Err("/metrics never answered during the fault".into());
    }
    let in_metrics = seen.client_errors > 0.0
        || seen.disconnects > 0.0
        || seen.leader_changes > 0.0
        || seen.max_brokers_down >= 1.0
        || seen.max_unacked_s >= 2.0
        || seen.stale;
    if !in_metrics {
        return Err(format!("the fault did not show in /metrics: {seen:?}"));
    }
    let in_log = log_names_node(&seen.log, c, node)
        || ["outputs_waiting", "table_stale", "partitions_lost"].iter().any(|e| !util::events(&seen.log, e).is_empty());
    if !in_log {
        return Err(format!(
            "the instance's log neither names the node (…:{}/{node}) nor says what waited:\n{}",
            c.client_port(node),
            seen.log
        ));
    }
    Ok(())
}

#[test]
fn the_leader_of_a_claims_partition_killed_and_restarted_under_load_loses_no_line() {
    let kills = env_u64("CLAIMGATE_TEST_LEADER_KILLS", 2);
    let mut sc = Scenario::new("leader-kill", 0x1ead);
    let s = sc.stream(&[]);
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    let mut max_unacked = 0.0f64;
    for k in 0..kills {
        let partition = sc.rng.random_range(0..4);
        let w = Window::open(&s);
        let claims = sc.claims();
        let (killed, new) = sc.kill_leader(&claims, partition);
        // Deciding again, on every partition (the killed node's ones included, from their new leaders).
        let before = decided_so_far(&s).expect("metrics");
        assert!(
            wait_deciding(&s, before + 2.0 * rate() as f64, Duration::from_secs(120)),
            "nothing decided after the failover:\n{}",
            tail(&s.log_text(), 100)
        );
        let seen = w.close(&s);
        eprintln!(
            "leader kill {}: claims/{partition} led by node {killed}, now by {new}; {} client errors, oldest unacked up to {:.1} s, {} lines sent",
            k + 1,
            seen.client_errors,
            seen.max_unacked_s,
            load.delivered()
        );
        assert_visible(&format!("kill {}", k + 1), &seen, &sc.c, killed);
        max_unacked = max_unacked.max(seen.max_unacked_s);
        sc.restart(killed);
    }
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    figures["fault"] = "claims partition leader kill -9 + restart".into();
    figures["max_oldest_unacked_s"] = max_unacked.into();
    report("cluster_claims_leader_kill", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
}

#[test]
fn the_leader_of_an_output_partition_killed_under_load_loses_no_line_and_its_outputs_wait_visibly() {
    let kills = env_u64("CLAIMGATE_TEST_OUTPUT_KILLS", 1);
    let mut sc = Scenario::new("output-kill", 0x0a7);
    // librdkafka's default session timeout (45 s) instead of the tests' 6 s: with 6 s the group session
    // was lost in 2 of 9 kills of a node that did not coordinate the group (seen 2026-12-01: the
    // heartbeats to the coordinator failed for 6 s after the kill), the partitions were revoked, nothing
    // was decided for ~10 s, and so no output waited for the dead leader — the fault this test is about.
    let s = sc.stream(&["-X", "session.timeout.ms=45000"]);
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    let mut waited: Vec<f64> = Vec::new();
    let mut not_waited = Vec::new();
    // Outputs wait for the dead leader in most kills, not all: in 2 of 17 kills of 2026-12-01 (the
    // leaders as every node saw them before the kill, the group kept, decisions going on) every output
    // was acknowledged within 30 ms; not understood. So a kill must always show (metrics and log) and
    // lose nothing, and the outputs must have waited in at least half of the kills; a run of one or two
    // kills in which none waited kills again, up to two more times.
    let mut k = 0;
    while k < kills || (waited.iter().all(|w| *w < 1.0) && k < kills + 2) {
        // An output partition whose leader is not the leader of the claims partition that feeds it
        // (outputs keep the input's key, so claims/p feeds accepted/p): then outputs are made while
        // their leader is gone, and wait. Earlier kills leave the leaders gathered on fewer nodes; a
        // preferred-leader election first puts them back where they were placed, apart (and checks
        // that it did).
        sc.c.elect_preferred_leaders(&sc.topics()).expect("preferred leader election");
        let (topic, pick) = sc.output_led_apart().unwrap_or_else(|| {
            panic!(
                "every output partition shares its leader with its claims partition or the group's coordinator:\n{}",
                sc.c.describe(&sc.topics())
            )
        });
        let views = (sc.c.leader_views(&topic, pick), sc.c.leader_views(&sc.claims(), pick));
        let controller = sc.c.quorum_leader();
        let w = Window::open(&s);
        let (killed, new) = sc.kill_leader(&topic, pick);
        let before = decided_so_far(&s).expect("metrics");
        assert!(
            wait_deciding(&s, before + 2.0 * rate() as f64, Duration::from_secs(120)),
            "nothing decided after the failover:\n{}",
            tail(&s.log_text(), 100)
        );
        // The outputs that waited for the new leader are acknowledged.
        let cleared = wait_metric(&s, "claimgate_oldest_unacked_seconds", Duration::from_secs(60), |v| v < 5.0);
        let seen = w.close(&s);
        eprintln!(
            "output leader kill {}: {topic}/{pick} led by node {killed}, now by {new}; oldest unacked up to {:.1} s, /healthz failed: {}",
            k + 1,
            seen.max_unacked_s,
            seen.healthz_failed
        );
        assert_visible(&format!("kill {}", k + 1), &seen, &sc.c, killed);
        if seen.max_unacked_s < 1.0 {
            not_waited.push(format!(
                "kill {}: before it, the leader of {topic}/{pick} and of the claims partition feeding it as each node saw them {views:?}, active controller {controller:?}; {seen:?}",
                k + 1
            ));
        }
        assert!(cleared.is_some(), "outputs still unacknowledged after the failover:\n{}", tail(&s.log_text(), 100));
        waited.push(seen.max_unacked_s);
        sc.restart(killed);
        k += 1;
    }
    let kills_waited = waited.iter().filter(|w| **w >= 1.0).count();
    assert!(
        kills_waited >= 1 && 2 * kills_waited >= waited.len().min(kills as usize),
        "outputs waited for the killed leader in {kills_waited} of {} kills:\n{}",
        waited.len(),
        not_waited.join("\n")
    );
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    figures["fault"] = "output partition leader kill -9 + restart".into();
    figures["oldest_unacked_s"] = serde_json::json!(waited);
    figures["kills_outputs_waited"] = kills_waited.into();
    report("cluster_output_leader_kill", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
}

#[test]
fn the_leader_of_the_status_topics_killed_decisions_go_on_with_the_last_table_stale_then_fresh() {
    let kills = env_u64("CLAIMGATE_TEST_STATUS_KILLS", 1);
    let mut sc = Scenario::new("status-kill", 0x57a7);
    let s = sc.stream(&[]);
    let epoch = s.metric("claimgate_table_epoch");
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    let mut ages = Vec::new();
    for k in 0..kills {
        let practitioners = sc.env.topic("practitioners");
        let w = Window::open(&s);
        let (killed, new) = sc.kill_leader(&practitioners, 0);
        // Fresh again once the new leader answers the follower.
        let fresh = wait_metric(&s, "claimgate_table_stale", Duration::from_secs(90), |v| v == 0.0);
        // The gauge is computed at each scrape, the `table_fresh` line by the staleness watch at its next
        // tick: give the line time to follow the gauge.
        let logged = Instant::now() + Duration::from_secs(10);
        while fresh.is_some()
            && util::events(s.log_text().get(w.log_from..).unwrap_or_default(), "table_fresh").is_empty()
            && Instant::now() < logged
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let before = decided_so_far(&s).expect("metrics");
        assert!(wait_deciding(&s, before + rate() as f64, Duration::from_secs(120)), "{}", tail(&s.log_text(), 100));
        let seen = w.close(&s);
        eprintln!(
            "status leader kill {}: practitioners/0 led by node {killed}, now by {new}; table age up to {:.1} s, stale: {}, {} lines decided meanwhile",
            k + 1,
            seen.max_table_age_s,
            seen.stale,
            seen.decided
        );
        assert_visible(&format!("kill {}", k + 1), &seen, &sc.c, killed);
        assert!(seen.stale && seen.max_table_age_s >= 3.0, "the table never showed stale: {seen:?}");
        assert!(!util::events(&seen.log, "table_stale").is_empty(), "no table_stale log line:\n{}", seen.log);
        assert!(fresh.is_some(), "the table never became fresh again:\n{}", tail(&s.log_text(), 100));
        assert!(!util::events(&seen.log, "table_fresh").is_empty(), "no table_fresh log line:\n{}", seen.log);
        assert!(seen.decided > 0.0, "nothing was decided while the status topics' leader was gone");
        ages.push(seen.max_table_age_s);
        sc.restart(killed);
    }
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    // Every decision was made on the one table there was, before, during and after.
    let mut reader = Reader::new(&sc.env.broker, &output_topics(&sc.env));
    reader.drain(Duration::from_secs(2));
    let epochs: HashSet<u64> = reader
        .records
        .iter()
        .filter(|o| !o.is_dead_letter())
        .filter_map(|o| o.value()["table_epoch"].as_u64())
        .collect();
    figures["fault"] = "status topics' leader kill -9 + restart".into();
    figures["max_table_age_s"] = serde_json::json!(ages);
    report("cluster_status_leader_kill", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
    assert_eq!(epochs, HashSet::from([epoch as u64]), "decisions on another table than the last one");
}

#[test]
fn a_rolling_restart_of_the_three_brokers_under_load_loses_no_line() {
    let restarts = env_u64("CLAIMGATE_TEST_ROLLING_RESTARTS", 3);
    let mut sc = Scenario::new("rolling", 0x7011);
    let s = sc.stream(&[]);
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    // claimgate sees a clean restart through its clients' statistics (leaders by partition): their
    // first report must be in before the first restart, or the leaders it moves are the first it knows.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let m = s.scrape();
        if m.0.contains("claimgate_brokers_down{client=\"claims\"}")
            && m.0.contains("claimgate_brokers_down{client=\"producer\"}")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (mut controlled, mut shown, mut leading) = (0, 0, 0);
    for k in 0..restarts {
        let node = (k % 3) as Node + 1;
        // The partitions of the test's topics this node leads: a broker that leads none of them is
        // restarted without claimgate having anything to notice (its clients may not even be connected
        // to it), and is not asked to show.
        let led: Vec<String> = sc
            .topics()
            .iter()
            .filter_map(|t| Some((t.clone(), sc.c.partitions(t)?)))
            .flat_map(|(t, ps)| ps.into_iter().filter(|p| p.leader == node).map(move |p| format!("{t}/{}", p.id)))
            .collect();
        let w = Window::open(&s);
        // Stopped by SIGTERM: a controlled shutdown, which the controller quorum records (and so every
        // node's log replays) as the broker's registration `inControlledShutdown=1` while it moves the
        // broker's leaders away.
        let witness = node % 3 + 1;
        let record = format!("BrokerRegistrationChangeRecord(brokerId={node},");
        let shutdowns =
            |c: &Cluster| c.log_lines(witness, &record).iter().filter(|l| l.contains("inControlledShutdown=1")).count();
        let shutdowns_before = shutdowns(&sc.c);
        sc.c.stop_node(node);
        sc.faults += 1;
        if shutdowns(&sc.c) > shutdowns_before {
            controlled += 1;
        }
        let before = decided_so_far(&s).expect("metrics");
        assert!(wait_deciding(&s, before + rate() as f64, Duration::from_secs(120)), "{}", tail(&s.log_text(), 100));
        sc.restart(node);
        if !led.is_empty() {
            w.wait_for_statistics(&s, Duration::from_secs(45));
        }
        let seen = w.close(&s);
        eprintln!(
            "rolling restart {}: node {node} (leading {} of the test's partitions) stopped and started; {} client errors, {} disconnects, {} leader changes seen, {} lines decided meanwhile",
            k + 1,
            led.len(),
            seen.client_errors,
            seen.disconnects,
            seen.leader_changes,
            seen.decided
        );
        // A clean restart costs the clients nothing, and what claimgate sees of it comes from its
        // clients' statistics (every 5 s, a leader change only once metadata is refreshed): one restart
        // can go unseen. Each is reported; the rolling restart as a whole must show.
        if !led.is_empty() {
            leading += 1;
            match visible(&seen, &sc.c, node) {
                Ok(()) => shown += 1,
                Err(why) => eprintln!("rolling restart {}: not seen by claimgate: {why}", k + 1),
            }
        }
    }
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    figures["fault"] = "rolling restart (SIGTERM, one node at a time)".into();
    figures["controlled_shutdowns"] = controlled.into();
    figures["restarts_of_a_leader_seen"] = shown.into();
    figures["restarts_of_a_leader"] = leading.into();
    report("cluster_rolling_restart", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
    assert_eq!(controlled, restarts, "a node did not stop by controlled shutdown");
    assert!(leading > 0, "no restarted node led any of the test's partitions: nothing was tested");
    assert!(shown > 0, "none of the {leading} restarts of a leader showed in claimgate's metrics and log");
}

/// Partitions named in the `partitions_revoked` events of a log.
fn revocations(log: &str) -> Vec<Vec<i64>> {
    util::events(log, "partitions_revoked")
        .iter()
        .map(|e| {
            // Logged with `?`: "[0, 1]".
            e["partitions"]
                .as_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .collect()
}

/// Waits until the instances hold every one of the 4 claims partitions between them, each at least one.
fn wait_split(streams: &[&Stream], wait: Duration) -> Option<Vec<f64>> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let held: Vec<f64> =
            streams.iter().map(|s| s.try_metric("claimgate_claims_partitions").unwrap_or(0.0)).collect();
        if held.iter().sum::<f64>() == 4.0 && held.iter().all(|h| *h >= 1.0) {
            return Some(held);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn an_instance_killed_under_load_its_partitions_move_and_a_joining_one_takes_some_without_stopping_the_group() {
    let kills = env_u64("CLAIMGATE_TEST_INSTANCE_KILLS", 1);
    let mut sc = Scenario::new("instances", 0x1257);
    let load = sc.load();
    let mut live = vec![sc.stream(&[]), sc.stream(&[])];
    let mut dead_logs = String::new();
    let split = wait_split(&[&live[0], &live[1]], Duration::from_secs(90));
    assert!(split.is_some(), "two instances never shared the partitions:\n{}", tail(&live[1].log_text(), 100));
    let mut partial_revocations = 0;
    for k in 0..kills {
        // kill -9 one of the two; the other takes every partition.
        let victim = live.remove(sc.rng.random_range(0..2));
        let mut victim = victim;
        let survivor = &live[0];
        let w = Window::open(survivor);
        victim.kill();
        sc.faults += 1;
        dead_logs.push_str(&victim.log_text());
        let took_all = wait_metric(survivor, "claimgate_claims_partitions", Duration::from_secs(90), |v| v == 4.0);
        assert!(took_all.is_some(), "the survivor never took every partition:\n{}", tail(&survivor.log_text(), 100));
        let before = decided_so_far(survivor).expect("metrics");
        assert!(
            wait_deciding(survivor, before + rate() as f64, Duration::from_secs(60)),
            "{}",
            tail(&survivor.log_text(), 100)
        );
        let took_over = w.close(survivor);
        // A new instance joins; with cooperative-sticky assignment the survivor gives up only the
        // partitions that move to it, and keeps deciding the others meanwhile.
        let w = Window::open(&live[0]);
        let joined = sc.stream(&[]);
        let split = wait_split(&[&live[0], &joined], Duration::from_secs(90));
        let before = decided_so_far(&joined).unwrap_or(0.0);
        assert!(wait_deciding(&joined, before + 50.0, Duration::from_secs(60)), "{}", tail(&joined.log_text(), 100));
        let rebalance = w.close(&live[0]);
        let revoked = revocations(&rebalance.log);
        eprintln!(
            "instance kill {}: survivor took every partition ({} lines decided meanwhile); a new instance joined: split {split:?}, survivor's revocations {revoked:?}, its partitions never below {}",
            k + 1,
            took_over.decided,
            rebalance.min_partitions
        );
        assert!(split.is_some(), "the joining instance got no partition:\n{}", tail(&joined.log_text(), 100));
        assert!(!revoked.is_empty(), "the survivor gave up no partition to the new instance:\n{}", rebalance.log);
        assert!(
            revoked.iter().all(|r| r.len() < 4),
            "the survivor gave up all its partitions to rebalance (an eager, stop-the-group rebalance): {revoked:?}\n{}",
            rebalance.log
        );
        assert!(rebalance.min_partitions >= 1.0, "the survivor held no partition at some moment of the rebalance");
        partial_revocations += revoked.len();
        live.push(joined);
    }
    let (t, mut figures, logs) = sc.finish(load, live, dead_logs);
    figures["fault"] = "instance kill -9, then a new instance joins (cooperative-sticky)".into();
    figures["partial_revocations"] = partial_revocations.into();
    report("cluster_instance_kill", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
}

/// The cuts of `util::cluster` work only if the nodes never talk to each other but through the test's
/// proxies: no connection from one node's process to another node's own ports. A KRaft follower
/// reconnects to its quorum leader at the address the leader advertises for itself (BeginQuorumEpoch's
/// LeaderEndpoints, KIP-853), not at its `controller.quorum.voters` entry: with one controller listener
/// advertised at its real port, a follower whose connection dropped came back around the proxies, and
/// a quorum leader cut off from its peers could keep its quorum (issue 11's peer cut that did not take).
/// So each follower is cut off for a moment — healing closes the connections that spanned the cut — and
/// every connection it makes again is checked.
#[test]
fn every_connection_between_two_nodes_goes_through_a_proxy() {
    let mut c = cluster::shared(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.quorum_leader().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let leader = c.quorum_leader().expect("no quorum leader in the nodes' quorum-state files");
    for follower in (1..=3).filter(|&n| n != leader) {
        c.cut(follower, Cut::Peers);
        // Shorter than the followers' fetch timeout (2 s): the quorum keeps its leader.
        std::thread::sleep(Duration::from_millis(800));
        c.heal();
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            let direct = c.unrouted_connections();
            assert!(
                direct.is_empty(),
                "connections between nodes around the proxies (from, to, port) after node {follower} reconnected, quorum leader {leader}: {direct:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(c.wait_healthy(&[], HEAL), "{}", c.describe(&[]));
    // The test's view of the cluster can tell which node gave each metadata answer, so that an
    // isolated node's stale answer is never taken.
    for (asked, answered, _) in c.leader_views("__consumer_offsets", 0) {
        assert!(answered.is_some(), "node {asked}'s metadata answer names no node it came from");
    }
}

/// The partition of `__consumer_offsets` (or `__transaction_state`) that holds `key` — a group id or a
/// transactional id — as Kafka places it: `Utils.abs(key.hashCode()) % partitions` (Java's `String`
/// hash over UTF-16 units; the brokers here have 4 partitions of each internal topic).
fn coordinator_partition(key: &str, partitions: i32) -> i32 {
    let h = key.encode_utf16().fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

/// `--exactly-once` through the death of the node that leads a `claims` partition *and* coordinates the
/// instance's consumer group (the leader of the group's `__consumer_offsets` partition), then of the
/// leader of a random `claims` partition, and so on in turn. Killing the group coordinator is the hard
/// case: librdkafka's `send_offsets_to_transaction` can then block for ever (its request to the group
/// coordinator waits, with no deadline, for a connection to the dead node it was told of; librdkafka
/// issues 5456 and 5511). It did on a clean-clone CI run (2026-11-30 12:49): the stream decided nothing
/// for 180 s and logged nothing after the coordinator's disconnect, whenever the `claims` leader killed
/// happened to be the group's coordinator too. The pipeline now runs each transactional call on a
/// watchdog and replaces a producer that stops answering (`transactional_producer_replaced`).
#[test]
fn exactly_once_through_leader_failovers_a_read_committed_reader_sees_every_line_once() {
    let failovers = env_u64("CLAIMGATE_TEST_EOS_FAILOVERS", 1);
    let mut sc = Scenario::new("eos-failover", 0xe05f);
    let s = sc.stream(&["--exactly-once"]);
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    let offsets_partition = sc.group_offsets_partition();
    let mut replaced = 0;
    for k in 0..failovers {
        let claims = sc.claims();
        let coordinator = sc.c.leader("__consumer_offsets", offsets_partition);
        let led_claims: Vec<i32> =
            (0..4).filter(|&p| coordinator.is_some() && sc.c.leader(&claims, p) == coordinator).collect();
        let w = Window::open(&s);
        let before_replaced = util::events(&s.log_text(), "transactional_producer_replaced").len();
        // Every other failover (the first among them) kills the group coordinator.
        let (what, topic, partition) = if k % 2 == 0 && coordinator.is_some() {
            ("the group coordinator", "__consumer_offsets".to_owned(), offsets_partition)
        } else {
            ("a claims leader", claims.clone(), sc.rng.random_range(0..4))
        };
        let (killed, new) = sc.kill_leader(&topic, partition);
        let before = decided_so_far(&s).expect("metrics");
        assert!(
            wait_deciding(&s, before + 2.0 * rate() as f64, Duration::from_secs(180)),
            "nothing decided after the failover of node {killed} ({what}, {topic}/{partition}):\n{}",
            tail(&s.log_text(), 100)
        );
        let seen = w.close(&s);
        let now_replaced = util::events(&s.log_text(), "transactional_producer_replaced").len();
        replaced += now_replaced - before_replaced;
        eprintln!(
            "eos failover {}: killed node {killed}, {what} ({topic}/{partition}, now led by {new}; group coordinator was {coordinator:?}, leading claims partitions {led_claims:?}); {} client errors, {} aborted transactions, {} producers replaced",
            k + 1,
            seen.client_errors,
            util::events(&seen.log, "transaction_aborted").len(),
            now_replaced - before_replaced
        );
        for e in
            ["transactional_producer_replaced", "transactional_producer_init_failed", "transactional_producer_ready"]
        {
            for v in util::events(&seen.log, e) {
                eprintln!(
                    "  {} {e} {}",
                    v["timestamp"].as_str().unwrap_or(""),
                    v["reason"].as_str().or(v["error"].as_str()).unwrap_or("")
                );
            }
        }
        assert_visible(&format!("failover {}", k + 1), &seen, &sc.c, killed);
        sc.restart(killed);
    }
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    figures["fault"] = "--exactly-once: group coordinator / claims partition leader kill -9 + restart".into();
    figures["producers_replaced"] = replaced.into();
    let input = util::load::input_copies(&sc.env.broker, &sc.claims());
    let (beyond, examples) = util::load::duplicates_beyond_input(&sc.outputs, &input);
    figures["input_duplicates"] = input.values().map(|v| v.len() - 1).sum::<usize>().into();
    figures["duplicates_beyond_input"] = beyond.into();
    report("cluster_exactly_once_failover", figures);
    assert_clean(&t, &logs);
    assert_eq!(
        beyond,
        0,
        "a read-committed reader saw a line decided more often than it is in the input, under exactly once: {examples:#?}\n{}",
        tail(&logs, 200)
    );
    assert_eq!(panics(&logs), 0, "{logs}");
}

/// After a fault, before the next: waits until the commits that failed since the stream's log byte
/// `from` have resumed (false if they have not within 30 s), and until they catch up: the claims
/// consumer's lag from its committed offsets (librdkafka's `consumer_lag`, every 5 s) back under two
/// seconds of load (false if not within 60 s). A partition whose outputs go to the node just healed is
/// committed last (its producer connection comes back after a back-off).
fn commits_settle(s: &Stream, from: usize) -> (bool, bool) {
    let resumed = commits_resumed(s, from, Duration::from_secs(30));
    let caught_up =
        wait_metric(s, "claimgate_consumer_lag", Duration::from_secs(60), |v| v < 2.0 * rate() as f64).is_some();
    (resumed, caught_up)
}

/// False if the stream's log from byte `from` says a commit failed and no `commits_resumed` follows it
/// within `wait`; true otherwise (also when no commit failed).
fn commits_resumed(s: &Stream, from: usize, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let log = s.log_text();
        let events: Vec<String> = log
            .get(from..)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["event"].as_str().map(str::to_owned))
            .filter(|e| e == "commit_failed" || e == "commits_resumed")
            .collect();
        if events.last().is_none_or(|e| e == "commits_resumed") {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_cut_off_from_the_clients_delays_its_partitions_visibly_and_loses_nothing() {
    let cuts = env_u64("CLAIMGATE_TEST_CUTS", 1);
    let mut sc = Scenario::new("cut-clients", 0xc17);
    let s = sc.stream(&[]);
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    let (mut waited, mut caught_up) = (Vec::new(), 0);
    for k in 0..cuts {
        // A node that leads an output partition fed from a partition another node leads: outputs are
        // made for it and cannot be delivered.
        // CLAIMGATE_TEST_CUT_COORDINATOR=1 cuts the group's coordinator instead (what every cut of the
        // soak of 2026-12-07 03:45 happened to do: 6 outputs a line).
        let accepted = sc.env.topic("claims.accepted");
        let force_coordinator = std::env::var("CLAIMGATE_TEST_CUT_COORDINATOR").is_ok_and(|v| v == "1");
        let node = force_coordinator
            .then(|| sc.c.leader("__consumer_offsets", sc.group_offsets_partition()))
            .flatten()
            .or_else(|| {
                (0..4).find_map(|p| {
                    let out = sc.c.leader(&accepted, p)?;
                    (Some(out) != sc.c.leader(&sc.claims(), p)).then_some(out)
                })
            })
            .unwrap_or(1);
        let w = Window::open(&s);
        sc.c.cut(node, Cut::Clients);
        sc.faults += 1;
        // Longer than the group session (6 s) and /healthz's bound on an unacknowledged output (5 s).
        std::thread::sleep(Duration::from_secs(env_u64("CLAIMGATE_TEST_CUT_S", 20)));
        sc.c.heal();
        let cleared = wait_metric(&s, "claimgate_oldest_unacked_seconds", Duration::from_secs(120), |v| v < 5.0);
        let before = decided_so_far(&s).expect("metrics");
        assert!(wait_deciding(&s, before + rate() as f64, Duration::from_secs(120)), "{}", tail(&s.log_text(), 100));
        // Commits that failed in the cut must resume before the next fault: otherwise nothing is ever
        // committed between faults, and each lost session decides again everything since the last
        // commit, back to the start (the soak of 2026-12-07 03:45: cuts a second apart, every line 6
        // times on average).
        let (commits, caught) = commits_settle(&s, w.log_from);
        caught_up += usize::from(caught);
        let seen = w.close(&s);
        assert!(commits, "commits failed in cut {} and did not resume:\n{}", k + 1, tail(&seen.log, 100));
        let coordinator = sc.c.leader("__consumer_offsets", sc.group_offsets_partition());
        let said = |e: &str| {
            util::events(&seen.log, e)
                .iter()
                .map(|v| {
                    let f = |k: &str| v[k].as_str().map(str::to_owned).unwrap_or_else(|| v[k].to_string());
                    match e {
                        "partitions_lost" => format!("positions {}", f("positions")),
                        "partitions_resume_at" => f("resumes_at"),
                        "commit_failed" => format!("{} {}", f("when"), f("error")),
                        _ => format!("{} failed over {} s", f("failed"), f("seconds")),
                    }
                })
                .collect::<Vec<_>>()
        };
        eprintln!(
            "cut from clients {}: node {node} (group coordinator {coordinator:?}); oldest unacked up to {:.1} s, /healthz failed: {}, table stale: {}, partitions down to {}, {} client errors; lost {:?}, resumed at {:?}, commits failed {:?}, resumed {:?}",
            k + 1,
            seen.max_unacked_s,
            seen.healthz_failed,
            seen.stale,
            seen.min_partitions,
            seen.client_errors,
            said("partitions_lost"),
            said("partitions_resume_at"),
            said("commit_failed"),
            said("commits_resumed"),
        );
        // What the node served waited: outputs (oldest unacknowledged, /healthz), the status topics
        // (a stale table) or the group (its coordinator: partitions lost), as it happens to lead them.
        assert!(
            seen.healthz_failed || seen.max_unacked_s >= 5.0 || seen.stale || seen.min_partitions < 4.0,
            "the cut node's absence never showed: {seen:?}"
        );
        assert!(cleared.is_some(), "outputs still waiting after the cut healed:\n{}", tail(&s.log_text(), 100));
        assert_visible(&format!("cut {}", k + 1), &seen, &sc.c, node);
        waited.push(seen.max_unacked_s);
        let topics = sc.topics();
        assert!(sc.c.wait_healthy(&topics, HEAL), "{}", sc.c.describe(&topics));
    }
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    figures["fault"] = "node cut off from the clients (black hole), healed".into();
    figures["oldest_unacked_s"] = serde_json::json!(waited);
    figures["commits_caught_up"] = caught_up.into();
    report("cluster_cut_from_clients", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
}

/// A partition leader cut off from its peers; the first cut (and every other one) takes the leader that
/// is also the active controller (the KRaft quorum's leader) when it leads a `claims` partition. That is
/// the case a clean-clone CI run (2026-11-30) failed, 1 in about 3 runs: the cut node was the quorum
/// leader, and its followers fetched the metadata log straight from its real controller port — the
/// address a quorum leader advertises for itself (KIP-853) — around the proxies; the quorum stayed
/// whole, the cut node was never fenced (its peers' heartbeats were the ones cut: they were fenced
/// instead, leaving it the leader of every partition, in every ISR). The routed cluster now gives every
/// node one controller listener per peer, advertised through that peer's proxy
/// (`every_connection_between_two_nodes_goes_through_a_proxy`).
///
/// When the node cut is also the group's coordinator (the leader of the group's `__consumer_offsets`
/// partition), Kafka can stall the group until the cut heals (the cluster soak of 2026-12-01, cut 5:
/// 127 s with no partition held): the isolated node still answers the clients, and names itself the
/// coordinator. For those cuts the test asks that the stall shows (no partition held, `/readyz` says
/// the group is being joined) and that decisions resume within `RESUME` of the heal; for every other
/// cut, that decisions go on during the cut. (Twice, 2026-12-07, the partitions came back paused after
/// such a loss and were never fetched again: fixed in the rebalance callback, RELIABILITY.md, "What the
/// tests found".)
#[test]
fn a_leader_cut_off_from_its_peers_is_replaced_and_nothing_is_lost() {
    const RESUME: Duration = Duration::from_secs(90);
    let cuts = env_u64("CLAIMGATE_TEST_CUTS", 1);
    let mut sc = Scenario::new("cut-peers", 0xc29);
    let s = sc.stream(&[]);
    let load = sc.load();
    assert!(wait_deciding(&s, 200.0, Duration::from_secs(60)), "{}", tail(&s.log_text(), 100));
    let offsets_partition = sc.group_offsets_partition();
    let (mut coordinator_cuts, mut stalled, mut caught_up) = (0, Vec::new(), 0);
    for k in 0..cuts {
        let claims = sc.claims();
        let controller = sc.c.quorum_leader();
        let coordinator = sc.c.leader("__consumer_offsets", offsets_partition);
        let led_by = |n: Option<Node>| (0..4).find(|&p| n.is_some() && sc.c.leader(&claims, p) == n);
        // In turn: the active controller's claims partition, the coordinator's (when it leads one,
        // the hard case above; forced by CLAIMGATE_TEST_CUT_COORDINATOR=1), a random one.
        let force_coordinator = std::env::var("CLAIMGATE_TEST_CUT_COORDINATOR").is_ok_and(|v| v == "1");
        let chosen = match k % 3 {
            _ if force_coordinator => led_by(coordinator),
            0 => led_by(controller),
            1 => led_by(coordinator),
            _ => None,
        };
        let partition = chosen.unwrap_or_else(|| sc.rng.random_range(0..4));
        let node = sc.c.leader(&claims, partition).expect("a leader");
        let cuts_coordinator = Some(node) == coordinator;
        coordinator_cuts += usize::from(cuts_coordinator);
        let w = Window::open(&s);
        sc.c.cut(node, Cut::Peers);
        sc.faults += 1;
        // The controller quorum fences the silent node and elects another leader from the in-sync
        // replicas; the isolated node cannot complete an acks=all write on its own.
        let new = sc.c.wait_new_leader(&claims, partition, node, FAILOVER);
        // Read while the cut lasts: what each node says leads the partition, which node the quorum
        // follows, and any connection between nodes around the proxies (which the cut would miss).
        let no_leader_views = new.is_none().then(|| {
            // The nodes' own logs (fencing, elections) go when the test binary stops its cluster.
            let kept: Vec<String> = (1..=3)
                .map(|n| {
                    let f = std::env::temp_dir().join(format!("claimgate-cut-peers-node-{n}.log"));
                    let _ = std::fs::write(&f, sc.c.log_text(n));
                    f.display().to_string()
                })
                .collect();
            format!(
                "views (node asked, node that answered, leader it names) {:?}; quorum leader {:?}; connections around the proxies {:?}; the nodes' logs: {kept:?}",
                sc.c.leader_views(&claims, partition),
                sc.c.quorum_leader(),
                sc.c.unrouted_connections()
            )
        });
        let before = decided_so_far(&s).expect("metrics");
        let wait = if cuts_coordinator { Duration::from_secs(60) } else { Duration::from_secs(120) };
        let deciding = wait_deciding(&s, before + 2.0 * rate() as f64, wait);
        sc.c.heal();
        let healed_at = Instant::now();
        let resumed = deciding || {
            let before = decided_so_far(&s).expect("metrics");
            wait_deciding(&s, before + rate() as f64, RESUME)
        };
        if !deciding {
            stalled.push(healed_at.elapsed().as_secs_f64());
        }
        let topics = sc.topics();
        let healed = sc.c.wait_healthy(&topics, HEAL);
        // The clients see the moved leader once they refresh their metadata, and report it in the next
        // statistics (every 5 s): a short outage can heal before that line is written.
        w.wait_for_statistics(&s, Duration::from_secs(30));
        // As after a cut from the clients: commits resume and catch up before the next fault.
        let (commits, caught) = commits_settle(&s, w.log_from);
        caught_up += usize::from(caught);
        let seen = w.close(&s);
        assert!(commits, "commits failed in cut {} and did not resume:\n{}", k + 1, tail(&seen.log, 100));
        eprintln!(
            "cut from peers {}: node {node} led claims/{partition} (active controller before the cut: {controller:?}, group coordinator {coordinator:?}), new leader {new:?}; decisions {}; {} client errors, oldest unacked up to {:.1} s, partitions down to {}",
            k + 1,
            if deciding {
                "went on".to_owned()
            } else {
                format!("stalled until the heal, resumed {:.1} s after it", healed_at.elapsed().as_secs_f64())
            },
            seen.client_errors,
            seen.max_unacked_s,
            seen.min_partitions
        );
        assert!(
            new.is_some(),
            "no new leader for claims/{partition} while node {node} was cut off ({}); after the heal:\n{}",
            no_leader_views.unwrap_or_default(),
            sc.c.describe(&topics)
        );
        if cuts_coordinator {
            assert!(
                deciding || seen.min_partitions == 0.0,
                "decisions stopped with the coordinator cut off, but the instance still held partitions: {seen:?}"
            );
            assert!(
                resumed,
                "decisions did not resume within {RESUME:?} of the heal (node {node}, the group's coordinator, cut off):\n{}",
                tail(&s.log_text(), 100)
            );
        } else {
            assert!(deciding, "decisions did not go on with the leader cut off:\n{}", tail(&s.log_text(), 100));
        }
        assert!(healed, "the cluster did not heal:\n{}", sc.c.describe(&topics));
        assert_visible(&format!("cut {}", k + 1), &seen, &sc.c, node);
    }
    let (t, mut figures, logs) = sc.finish(load, vec![s], String::new());
    figures["fault"] = "partition leader cut off from its peers (black hole), healed".into();
    figures["cuts_of_the_coordinator"] = coordinator_cuts.into();
    figures["stalled_until_heal_resumed_after_s"] = serde_json::json!(stalled);
    figures["commits_caught_up"] = caught_up.into();
    report("cluster_cut_from_peers", figures);
    assert_clean(&t, &logs);
    assert_eq!(panics(&logs), 0, "{logs}");
}
