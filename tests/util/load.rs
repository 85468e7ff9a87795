//! Steady load and the loss check of the reliability tests: a sender that produces claim lines at a
//! fixed rate from a thread of the test (rdkafka, in process) until told to stop; a reader of the output
//! topics; and the accounting of every sent line against the outputs, by identity.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use claimgate::synth::Line;

use super::oracle;

struct Ctx {
    delivered: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => self.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

/// A sender producing claim lines at a steady rate until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    handle: Option<JoinHandle<Vec<Line>>>,
    failed: Arc<Mutex<Vec<String>>>,
}

impl Load {
    /// Starts sending `lines` to `topic`, `per_second` lines a second, keyed as the lines say.
    /// The producer is idempotent and never gives up on a message (`message.timeout.ms=0`), so a frozen
    /// broker delays the input but does not lose or duplicate it.
    pub fn start(
        broker: &str,
        topic: &str,
        lines: impl Iterator<Item = Line> + Send + 'static,
        per_second: u64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let producer: ThreadedProducer<Ctx> = ClientConfig::new()
            .set("bootstrap.servers", broker)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .create_with_context(Ctx { delivered: Arc::clone(&delivered), failed: Arc::clone(&failed) })
            .expect("load producer");
        let topic = topic.to_owned();
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = Vec::new();
            let mut lines = lines;
            while !flag.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * per_second as f64) as usize;
                while sent.len() < due {
                    let Some(line) = lines.next() else { break };
                    let mut record = BaseRecord::to(&topic).payload(&line.bytes[..]);
                    if !line.key.is_empty() {
                        record = record.key(line.key.as_bytes());
                    }
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                                record = r;
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            Err((e, _)) => panic!("the load producer refused a line: {e}"),
                        }
                    }
                    sent.push(line);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Every line queued must reach the broker: the accounting counts them all as input.
            producer.flush(Duration::from_secs(300)).expect("flush the load producer");
            sent
        });
        Load { stop, delivered, handle: Some(handle), failed }
    }

    /// Lines acknowledged by the broker so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Stops sending, waits until every line sent was acknowledged, and returns them.
    pub fn finish(mut self) -> Vec<Line> {
        self.stop.store(true, Ordering::Relaxed);
        let lines = self.handle.take().unwrap().join().expect("load thread");
        let failed = self.failed.lock().unwrap();
        assert!(failed.is_empty(), "the load producer lost lines: {:?}", &failed[..failed.len().min(5)]);
        assert_eq!(self.delivered() as usize, lines.len(), "not every line sent was acknowledged");
        lines
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One record of an output topic, kept lean (a soak reads a million): its value is parsed on demand.
#[derive(Clone, Debug)]
pub struct Record {
    pub topic: String,
    /// Where the record is, for a failure message that names both copies of a duplicate.
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub raw: Vec<u8>,
}

impl Record {
    /// The value as JSON (`Null` if it is not JSON).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.raw).unwrap_or(serde_json::Value::Null)
    }

    /// A dead letter?
    pub fn is_dead_letter(&self) -> bool {
        self.topic.ends_with("dlq")
    }
}

/// Reads topics from their beginning, incrementally, keeping the set of line keys seen.
pub struct Reader {
    consumer: BaseConsumer,
    /// Every record read so far, in order of arrival, each once.
    pub records: Vec<Record>,
    seen: HashSet<Key>,
    /// The next offset expected of each partition read, by topic (looked up by `&str`: no allocation
    /// for each record).
    next: HashMap<String, HashMap<i32, i64>>,
    /// Records handed to the reader again at a position it had read already (its consumer's position
    /// moved back, e.g. after a leader change): one record, so not kept twice and never counted as a
    /// duplicate output; counted here so that a test can say it happened.
    pub rereads: usize,
}

impl Reader {
    pub fn new(broker: &str, topics: &[String]) -> Reader {
        let consumer = super::reader_from_beginning(broker, topics);
        Reader { consumer, records: Vec::new(), seen: HashSet::new(), next: HashMap::new(), rereads: 0 }
    }

    /// Reads for up to `wait`, returning early once nothing arrives for 200 ms.
    pub fn poll(&mut self, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        let before = self.records.len();
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    if !self.next.contains_key(m.topic()) {
                        self.next.insert(m.topic().to_owned(), HashMap::new());
                    }
                    let next = self.next.get_mut(m.topic()).expect("inserted").entry(m.partition()).or_insert(0);
                    if m.offset() < *next {
                        self.rereads += 1;
                        continue;
                    }
                    *next = m.offset() + 1;
                    let r = Record {
                        topic: m.topic().to_owned(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        raw: m.payload().unwrap_or_default().to_vec(),
                    };
                    self.seen.insert(output_key(&r));
                    self.records.push(r);
                }
                Some(Err(_)) => std::thread::sleep(Duration::from_millis(50)),
                None => break,
            }
        }
        self.records.len() - before
    }

    /// Reads until every key of `expected` has an output, or `wait` passed; true if they all have.
    pub fn until_answered(&mut self, expected: &HashSet<Key>, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if expected.iter().all(|k| self.seen.contains(k)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.poll(Duration::from_secs(1));
        }
    }

    /// Reads until nothing more arrives for `quiet`.
    pub fn drain(&mut self, quiet: Duration) {
        let mut idle_since = Instant::now();
        while idle_since.elapsed() < quiet {
            if self.poll(Duration::from_millis(500)) > 0 {
                idle_since = Instant::now();
            }
        }
    }
}

/// How many times each line is in the input topic, for the lines there more than once (read
/// committed, from the beginning, until nothing arrives for 3 s), with where each copy is. Exactly once
/// means once per input *record*: should the load's producer ever write a line twice (through a
/// leader's death), that line is rightly decided twice.
pub fn input_copies(broker: &str, topic: &str) -> HashMap<Key, Vec<(i32, i64)>> {
    let mut reader = Reader::new(broker, &[topic.to_owned()]);
    reader.drain(Duration::from_secs(3));
    let mut at: HashMap<Key, Vec<(i32, i64)>> = HashMap::new();
    for r in &reader.records {
        at.entry(expected_key(&r.raw)).or_default().push((r.partition, r.offset));
    }
    at.retain(|_, v| v.len() > 1);
    at
}

/// Outputs beyond one per input record: for each line, its outputs less its copies in the input (one
/// unless `input` says more), summed; with up to 5 examples naming where each output is.
pub fn duplicates_beyond_input(outputs: &[Record], input: &HashMap<Key, Vec<(i32, i64)>>) -> (usize, Vec<String>) {
    let mut at: HashMap<Key, Vec<&Record>> = HashMap::new();
    for o in outputs {
        at.entry(output_key(o)).or_default().push(o);
    }
    let mut beyond = 0;
    let mut examples = Vec::new();
    for (k, outs) in &at {
        let copies = input.get(k).map_or(1, Vec::len);
        if outs.len() > copies {
            beyond += outs.len() - copies;
            if examples.len() < 5 {
                let places: Vec<String> =
                    outs.iter().map(|o| format!("{}/{}@{}", o.topic, o.partition, o.offset)).collect();
                examples.push(format!(
                    "{k:?}: {copies} in the input, outputs at {places:?}: {}",
                    String::from_utf8_lossy(&outs[0].raw)
                ));
            }
        }
    }
    (beyond, examples)
}

/// What identifies an input line among the outputs: a decision's identity (records.md:
/// `fixmedins_code`, `mdtrt_id`, `feedetl_sn`) or, for a line that cannot be decided, its bytes, which
/// the dead letter keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Decision(String, String, String),
    Dead(Vec<u8>),
}

/// `limits.max_message_bytes` by default: a larger message is dead-lettered with only its first
/// bytes kept.
pub const MAX_MESSAGE_BYTES: usize = 65_536;

/// The output a line must have: a decision if it is well formed, else a dead letter. Judged by the
/// tests' own reading of records.md (`tests/oracle`), not by the parser under test.
pub fn expected_key(line: &[u8]) -> Key {
    if line.len() > MAX_MESSAGE_BYTES {
        return Key::Dead(line[..MAX_MESSAGE_BYTES].to_vec());
    }
    match oracle::read(line) {
        Ok(c) => Key::Decision(c.fixmedins_code, c.mdtrt_id, c.feedetl_sn),
        Err(_) => Key::Dead(line.to_vec()),
    }
}

/// The keys every line must have.
pub fn expected_keys(lines: &[Line]) -> HashSet<Key> {
    lines.iter().map(|l| expected_key(&l.bytes)).collect()
}

/// The key of an output record: a decision's identity, or the bytes a dead letter keeps.
pub fn output_key(r: &Record) -> Key {
    #[derive(Default, serde::Deserialize)]
    struct Fields {
        #[serde(default)]
        fixmedins_code: String,
        #[serde(default)]
        mdtrt_id: String,
        #[serde(default)]
        feedetl_sn: String,
        #[serde(default)]
        raw: Option<String>,
        #[serde(default)]
        raw_base64: Option<String>,
    }
    let f: Fields = serde_json::from_slice(&r.raw).unwrap_or_default();
    if r.is_dead_letter() {
        let raw = match (f.raw, f.raw_base64) {
            (Some(s), _) => s.into_bytes(),
            (None, Some(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Key::Dead(raw)
    } else {
        Key::Decision(f.fixmedins_code, f.mdtrt_id, f.feedetl_sn)
    }
}

/// The record's bytes with the value of its time stamp (`decided_at`, or a dead letter's `received_at`)
/// cut out: what must be identical between duplicates.
pub fn without_stamp(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    for field in [&b"\"decided_at\":\""[..], &b"\"received_at\":\""[..]] {
        if let Some(at) = out.windows(field.len()).position(|w| w == field) {
            let start = at + field.len();
            if let Some(len) = out[start..].iter().position(|&c| c == b'"') {
                out.drain(start..start + len);
            }
        }
    }
    out
}

/// The accounting of a run: every line against the outputs.
#[derive(Debug, Default)]
pub struct Tally {
    /// Lines sent.
    pub lines: usize,
    /// Lines with a decision.
    pub decided: usize,
    /// Lines with a dead letter.
    pub dead: usize,
    /// Lines with no output.
    pub lost: usize,
    /// Outputs beyond the first of their line.
    pub duplicates: usize,
    /// Duplicates that differ from the first (other than the time stamp): must be none.
    pub differing: Vec<String>,
    /// Outputs that belong to no line sent: must be none.
    pub unexpected: usize,
    /// A few lost lines, for the failure message.
    pub lost_examples: Vec<String>,
    /// How many lines came out how many times (copies → lines): where duplicates are, whether every
    /// line of a stretch came out twice or a few lines many times.
    pub copies: BTreeMap<usize, usize>,
}

impl Tally {
    /// True when nothing was lost, nothing unexpected came out and every duplicate is identical.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.unexpected == 0 && self.differing.is_empty() && self.decided + self.dead == self.lines
    }
}

/// An output as duplicates are compared: topic, key, bytes without the time stamp.
type Seen = (String, Option<Vec<u8>>, Vec<u8>);

/// Accounts for every line.
pub fn tally(lines: &[Line], outputs: &[Record]) -> Tally {
    let expected: HashSet<Key> = lines.iter().map(|l| expected_key(&l.bytes)).collect();
    assert_eq!(expected.len(), lines.len(), "the test's lines are not unique");
    // The first output of each key, as (topic, key, bytes without the stamp).
    // With how many outputs the key has had so far.
    let mut first: HashMap<Key, (Seen, usize)> = HashMap::new();
    let mut t = Tally { lines: lines.len(), ..Tally::default() };
    for o in outputs {
        let key = output_key(o);
        if !expected.contains(&key) {
            t.unexpected += 1;
            continue;
        }
        let this = (o.topic.clone(), o.key.clone(), without_stamp(&o.raw));
        match first.entry(key) {
            Entry::Vacant(v) => {
                v.insert((this, 1));
            }
            Entry::Occupied(mut e) => {
                let (prev, n) = e.get_mut();
                *n += 1;
                t.duplicates += 1;
                if *prev != this && t.differing.len() < 10 {
                    t.differing.push(format!(
                        "{}: {}\n  vs {}: {}",
                        prev.0,
                        String::from_utf8_lossy(&prev.2),
                        this.0,
                        String::from_utf8_lossy(&this.2)
                    ));
                }
            }
        }
    }
    for (_, n) in first.values() {
        *t.copies.entry(*n).or_default() += 1;
    }
    for k in &expected {
        match (k, first.contains_key(k)) {
            (Key::Decision(..), true) => t.decided += 1,
            (Key::Dead(_), true) => t.dead += 1,
            (_, false) => {
                t.lost += 1;
                if t.lost_examples.len() < 5 {
                    t.lost_examples.push(format!("{k:?}"));
                }
            }
        }
    }
    t
}
