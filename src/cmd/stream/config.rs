//! `claimgate stream` configuration: defaults, then a TOML file, then `CLAIMGATE_*` environment
//! variables, then flags — checked at start-up, with errors that name the setting.
//!
//! Environment variables map to settings with `__` between levels: `CLAIMGATE_BROKERS`,
//! `CLAIMGATE_LIMITS__MAX_IN_FLIGHT`, `CLAIMGATE_HTTP__TOKEN`, and librdkafka properties as
//! `CLAIMGATE_KAFKA__SASL__PASSWORD` (= `sasl.password`). `CLAIMGATE_TEST_*` and `CLAIMGATE_BENCH_*` belong
//! to the test suite and benchmarks and are not settings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};

/// Every setting of `claimgate stream`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Consumer group of the claims consumers.
    pub group: String,
    /// Policy profile: a shipped name or a TOML file.
    pub profile: String,
    /// Routing table (TOML file): the profile of each line by area and service time; instead of
    /// `profile` (rules.md, "Routing").
    pub routing: Option<String>,
    /// Exactly-once delivery through Kafka transactions (the broker must support them).
    pub exactly_once: bool,
    /// Exactly-once: the producer's `transactional.id`, stable for this instance's slot so that a
    /// restarted instance fences its crashed predecessor at once (KIP-447, Kafka 2.5 or later); default
    /// `<group>-<host>-<http port>` (two instances on one host differ by their port).
    pub transactional_id: Option<String>,
    /// Topic names.
    pub topics: Topics,
    /// Offsets of the claims consumer.
    pub offsets: Offsets,
    /// Checkpoints of the status table.
    pub checkpoint: Checkpoint,
    /// The operations port.
    pub http: Http,
    /// Bounds and timings.
    pub limits: Limits,
    /// Logging.
    pub log: Log,
    /// librdkafka properties passed unchanged to every client (security, SASL, TLS, tuning).
    pub kafka: BTreeMap<String, Value>,
}

/// Topic names (service.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Claim lines in.
    pub claims: String,
    /// Accepted decisions out.
    pub accepted: String,
    /// Rejected decisions out.
    pub rejected: String,
    /// Dead letters out.
    pub dlq: String,
    /// Practitioner status records (log-compacted).
    pub practitioners: String,
    /// Institution status records (log-compacted).
    pub institutions: String,
    /// At start-up, create the claims and output topics that do not exist (with `partitions` and
    /// `replication`) instead of waiting for them. Off by default: production clusters provision
    /// topics through their own process.
    pub create_missing: bool,
    /// Partitions of a topic created by `create_missing`.
    pub partitions: i32,
    /// Replication factor of a topic created by `create_missing`; -1: the broker's default.
    pub replication: i32,
    /// Local-id mapping records (log-compacted; rules.md, "Local ids"), followed like the status topics
    /// when set; unset, no mapping table.
    #[serde(default)]
    pub mappings: Option<String>,
    /// Invalid status records go here, keyed by their source offset (make it log-compacted).
    pub status_dlq: String,
    /// Late status changes (a status record that changes a code's status at past times) go here, keyed
    /// `code@version`, for `review --retro` (make it log-compacted).
    pub retro: String,
}

/// Checkpoints of the status table: a restart loads the last one and reads only the topics' tail.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Directory of the checkpoint file (`<group>.checkpoint`); unset: no checkpoint, every start
    /// reads the status topics from the beginning.
    pub dir: Option<String>,
    /// A checkpoint is written this often when the table changed, and at shutdown.
    pub every_s: u64,
    /// An older checkpoint is refused; keep it at most at the status topics' `delete.retention.ms`
    /// (Kafka's default is one day), past which a tombstone may be gone.
    pub max_age_s: u64,
}

/// Where the claims consumer starts a partition with no committed offset.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Offsets {
    /// `earliest` (default: a new group decides what is already on the topic), `latest` (only what
    /// arrives from now on), or `error` (stop and say so: an operator decides). Every reset is logged
    /// and counted (`claimgate_offset_resets_total`).
    pub reset: String,
}

/// The HTTP operations port.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Listen address; loopback by default.
    pub addr: String,
    /// Per-caller tokens with a scope for `/v1/…`: a TOML file of `[[caller]]` entries (name, the
    /// token's SHA-256, scope `all` / `institution` / `practitioner`, code), read again when it changes
    /// (`src/io/http/auth.rs`, docs/http.md). Kept out of this file so that it holds no credential and
    /// can have its own owner and permissions.
    #[serde(default)]
    pub tokens_file: Option<String>,
    /// The older single shared token: `/v1/…` requires `Authorization: Bearer <token>`, every holder
    /// may ask about every code. Still accepted (a caller named `http.token`, scope `all`); not with
    /// `tokens_file`.
    pub token: Option<String>,
}

/// Bounds and timings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Claims consumed but not yet acknowledged by the broker; above it, consumption pauses.
    pub max_in_flight: usize,
    /// Claims taken per batch (one table snapshot per batch). Unset: 1 000 at least once; under exactly
    /// once a transaction is bounded by time (`transaction_ms`) and by `max_in_flight`, not by a count —
    /// each commit is a broker round trip, so a count of 1 000 capped one instance near 9 500 claims/s
    /// where time-bounded transactions reached 90 000/s (BENCHMARKS.md, "Against Kafka Streams").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// A claim message larger than this goes to the dead-letter topic.
    pub max_message_bytes: usize,
    /// Graceful shutdown must finish within this many seconds.
    pub shutdown_timeout_s: u64,
    /// A batch of status records is published at once, at the latest after this long.
    pub status_publish_ms: u64,
    /// The table counts as stale when the status topics could not be confirmed for this long.
    pub stale_after_s: u64,
    /// A status batch (one writer's transaction) is published when complete; after this long
    /// incomplete, without its missing records.
    pub status_batch_wait_s: u64,
    /// Exactly-once: a transaction spans at most this long.
    pub transaction_ms: u64,
    /// `/healthz` fails when an output has waited longer than this for the broker's acknowledgement
    /// (a broker that stopped answering, a partition without a leader).
    pub max_unacked_age_s: u64,
    /// `/healthz` fails when a claims partition this instance holds has had claims waiting (or no
    /// position to fetch from) with none taken for this long (`src/io/kafka/pipeline/stall.rs`). Seen
    /// by the consumer's statistics, every 5 s.
    #[serde(default = "default_max_stalled_s")]
    pub max_stalled_s: u64,
    /// Status changes held beside the base table (its delta) that start folding them into it, shard by
    /// shard, in the background. Unset: 65 536 or 1/64 of the table, whichever is more. Lower folds more
    /// often (each fold rewrites the table once, a shard at a time); higher keeps more in the delta,
    /// which every status publish copies.
    #[serde(default)]
    pub compact_after: Option<usize>,
}

fn default_max_stalled_s() -> u64 {
    60
}

/// Logging.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter, e.g. `info` or `claimgate=debug,rdkafka=warn`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            brokers: "127.0.0.1:9092".into(),
            group: "claimgate".into(),
            profile: claimgate::profile::DEFAULT.into(),
            routing: None,
            exactly_once: false,
            transactional_id: None,
            topics: Topics {
                claims: "claims".into(),
                accepted: "claims.accepted".into(),
                rejected: "claims.rejected".into(),
                dlq: "claims.dlq".into(),
                practitioners: "practitioners".into(),
                institutions: "institutions".into(),
                mappings: None,
                status_dlq: "status.dlq".into(),
                retro: "status.retro".into(),
                create_missing: false,
                partitions: 4,
                replication: -1,
            },
            offsets: Offsets { reset: "earliest".into() },
            checkpoint: Checkpoint { dir: None, every_s: 300, max_age_s: 86_400 },
            http: Http { addr: "127.0.0.1:9898".into(), tokens_file: None, token: None },
            limits: Limits {
                max_in_flight: 50_000,
                batch_size: None,
                max_message_bytes: 65_536,
                shutdown_timeout_s: 30,
                status_publish_ms: 100,
                stale_after_s: 30,
                status_batch_wait_s: 30,
                transaction_ms: 100,
                max_unacked_age_s: 120,
                max_stalled_s: default_max_stalled_s(),
                compact_after: None,
            },
            log: Log { format: "text".into(), level: "info".into() },
            kafka: BTreeMap::new(),
        }
    }
}

/// Claims per batch at least once when `limits.batch_size` is unset.
const AT_LEAST_ONCE_BATCH: usize = 1_000;

/// Properties claimgate sets itself, with the setting to use instead; a user value would break its
/// delivery guarantees or duplicate a setting.
const MANAGED: [(&str, &str); 12] = [
    ("group.id", "use the setting `group`"),
    ("bootstrap.servers", "use the setting `brokers`"),
    ("transactional.id", "use the setting `transactional_id`"),
    ("enable.auto.commit", "offsets are committed only behind acknowledged outputs (at least once)"),
    ("enable.auto.offset.store", "offsets are stored only behind acknowledged outputs (at least once)"),
    ("isolation.level", "claims are read committed"),
    ("enable.partition.eof", "claimgate sets it per client"),
    ("auto.offset.reset", "use the setting `offsets.reset`"),
    ("message.timeout.ms", "an output is never given up (a stalled broker shows in /healthz instead)"),
    ("delivery.timeout.ms", "an output is never given up (a stalled broker shows in /healthz instead)"),
    ("allow.auto.create.topics", "use the setting `topics.create_missing`"),
    ("enable.idempotence", "the producer must be idempotent: retries keep each partition's order"),
];

/// A property value that would turn "acknowledged" into "sent", or allow reordering on retry.
fn weakens_guarantees(key: &str, value: &str) -> Option<&'static str> {
    let v = value.trim().to_ascii_lowercase();
    match key {
        "acks" | "request.required.acks" if !matches!(v.as_str(), "all" | "-1") => {
            Some("claimgate produces with acks=all: with fewer, an acknowledged output can be lost")
        }
        "max.in.flight.requests.per.connection" | "max.in.flight" if v.parse::<u32>().is_ok_and(|n| n > 5) => {
            Some("at most 5 with an idempotent producer, or retries can reorder a visit's lines")
        }
        "retries" | "message.send.max.retries" if v == "0" => {
            Some("an output must be retried, not dropped, when the broker fails transiently")
        }
        _ => None,
    }
}

/// True for property names whose values must never be printed.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "jaas", "key.pem", "private", "credential"].iter().any(|s| k.contains(s))
}

/// Flattens nested tables (`[kafka.sasl] password = …`, `CLAIMGATE_KAFKA__SASL__PASSWORD`) into
/// librdkafka's dotted names, values as text.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) -> Result<()> {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out)?;
            }
        }
        Value::String(_, s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        Value::Bool(_, b) => {
            out.insert(prefix.to_owned(), b.to_string());
        }
        Value::Num(_, n) => {
            let text = n.to_u128().map(|u| u.to_string()).or_else(|| n.to_i128().map(|i| i.to_string()));
            out.insert(
                prefix.to_owned(),
                text.unwrap_or_else(|| n.to_f64().map_or_else(String::new, |f| f.to_string())),
            );
        }
        _ => bail!("setting `kafka.{prefix}`: expected a string, number or boolean"),
    }
    Ok(())
}

/// Overrides from the command line (highest precedence).
#[derive(Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exactly_once: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub http: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub topics: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoint: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: BTreeMap<String, String>,
}

impl Config {
    /// Layers defaults, `file`, the environment and `overrides`, then checks every setting.
    pub fn load(file: Option<&PathBuf>, env: Env, overrides: Overrides) -> Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                bail!("--config {}: no such file", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(env).merge(Serialized::defaults(overrides));
        let cfg: Config = fig.extract().map_err(|e| {
            // Name the setting as the file writes it, and where its value came from: the file, or the
            // exact environment variable.
            let all: Vec<String> = e
                .into_iter()
                .map(|err| {
                    let setting = err.path.join(".").to_ascii_lowercase();
                    let source = match &err.metadata {
                        Some(m) if m.name.contains("environment") => {
                            format!("environment variable CLAIMGATE_{}", err.path.join("__").to_ascii_uppercase())
                        }
                        Some(m) => m.source.as_ref().map_or_else(|| m.name.to_string(), |s| s.to_string()),
                        None => "flags".into(),
                    };
                    if setting.is_empty() {
                        format!("{} (in {source})", err.kind)
                    } else {
                        format!("setting `{setting}`: {} (in {source})", err.kind)
                    }
                })
                .collect();
            anyhow::anyhow!("invalid configuration: {}", all.join("; "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The environment provider: `CLAIMGATE_*`, `__` between levels, minus the test and bench variables.
    pub fn env() -> Env {
        Env::prefixed("CLAIMGATE_").split("__").filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            !k.starts_with("test_") && !k.starts_with("bench_")
        })
    }

    /// Claims per batch: `limits.batch_size` when set; else 1 000 at least once, and under exactly once
    /// `limits.max_in_flight`, so that a transaction ends at `limits.transaction_ms` under load.
    pub fn batch_size(&self) -> usize {
        let l = &self.limits;
        l.batch_size.unwrap_or(if self.exactly_once {
            l.max_in_flight
        } else {
            AT_LEAST_ONCE_BATCH.min(l.max_in_flight)
        })
    }

    /// The librdkafka properties given by the user, flattened.
    pub fn kafka_properties(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.kafka {
            flatten(k, v, &mut out)?;
        }
        Ok(out)
    }

    fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            bail!("setting `brokers`: empty; give host:port[,host:port…]");
        }
        for b in self.brokers.split(',') {
            let b = b.trim();
            let ok = b.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                bail!("setting `brokers`: `{b}` is not host:port");
            }
        }
        if self.group.trim().is_empty() {
            bail!("setting `group`: empty");
        }
        if let Some(r) = &self.routing {
            if r.trim().is_empty() {
                bail!("setting `routing`: empty; leave it unset to decide every line with `profile`");
            }
            if self.profile != claimgate::profile::DEFAULT {
                bail!(
                    "setting `routing` cannot be combined with `profile` (`{}`): the routing table names its profiles; set its `default`",
                    self.profile
                );
            }
        }
        if let Some(id) = &self.transactional_id
            && (id.trim().is_empty() || id.chars().any(char::is_control))
        {
            bail!("setting `transactional_id`: empty or with control characters; leave it unset for the default");
        }
        let t = &self.topics;
        if t.partitions < 1 {
            bail!("setting `topics.partitions`: at least 1");
        }
        if t.replication == 0 || t.replication < -1 {
            bail!("setting `topics.replication`: at least 1, or -1 for the broker's default");
        }
        if !matches!(self.offsets.reset.as_str(), "earliest" | "latest" | "error") {
            bail!("setting `offsets.reset`: `{}`; expected `earliest`, `latest` or `error`", self.offsets.reset);
        }
        let mut named = vec![
            ("topics.claims", &t.claims),
            ("topics.accepted", &t.accepted),
            ("topics.rejected", &t.rejected),
            ("topics.dlq", &t.dlq),
            ("topics.practitioners", &t.practitioners),
            ("topics.institutions", &t.institutions),
            ("topics.status_dlq", &t.status_dlq),
            ("topics.retro", &t.retro),
        ];
        if let Some(m) = &t.mappings {
            named.push(("topics.mappings", m));
        }
        for (i, (setting, name)) in named.iter().enumerate() {
            let valid = !name.is_empty()
                && name.len() <= 249
                && *name != "."
                && *name != ".."
                && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
            if !valid {
                bail!("setting `{setting}`: `{name}` is not a valid topic name ([a-zA-Z0-9._-], at most 249)");
            }
            if let Some((other, _)) = named[..i].iter().find(|(_, n)| n == name) {
                bail!("setting `{setting}`: `{name}` is also `{other}`; every topic must differ");
            }
        }
        if self.http.addr.parse::<SocketAddr>().is_err() {
            bail!("setting `http.addr`: `{}` is not ip:port", self.http.addr);
        }
        if self.http.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            bail!("setting `http.token`: empty; leave it unset to serve /v1/ without a token");
        }
        match &self.http.tokens_file {
            Some(f) if f.trim().is_empty() => {
                bail!("setting `http.tokens_file`: empty; leave it unset to serve /v1/ without per-caller tokens")
            }
            Some(_) if self.http.token.is_some() => bail!(
                "setting `http.token` cannot be combined with `http.tokens_file`: give the shared token's holders \
                 their own tokens in the tokens file (or one caller of scope `all`: `claimgate tokens new --name … --scope all`) \
                 and remove `http.token`"
            ),
            _ => {}
        }
        let l = &self.limits;
        for (setting, v) in [
            ("limits.max_in_flight", l.max_in_flight as u64),
            ("limits.batch_size", self.batch_size() as u64),
            ("limits.max_message_bytes", l.max_message_bytes as u64),
            ("limits.shutdown_timeout_s", l.shutdown_timeout_s),
            ("limits.status_publish_ms", l.status_publish_ms),
            ("limits.stale_after_s", l.stale_after_s),
            ("limits.status_batch_wait_s", l.status_batch_wait_s),
            ("checkpoint.every_s", self.checkpoint.every_s),
            ("checkpoint.max_age_s", self.checkpoint.max_age_s),
            ("limits.transaction_ms", l.transaction_ms),
            ("limits.max_unacked_age_s", l.max_unacked_age_s),
            ("limits.max_stalled_s", l.max_stalled_s),
        ] {
            if v == 0 {
                bail!("setting `{setting}`: must be greater than 0");
            }
        }
        if l.compact_after == Some(0) {
            bail!("setting `limits.compact_after`: must be greater than 0 (leave it unset for the automatic size)");
        }
        if let Some(b) = l.batch_size.filter(|b| *b > l.max_in_flight) {
            bail!("setting `limits.batch_size` ({b}) must not exceed `limits.max_in_flight` ({})", l.max_in_flight);
        }
        if l.status_publish_ms > 1_000 {
            bail!(
                "setting `limits.status_publish_ms`: at most 1000 (service.md: a status change reaches decisions within a second)"
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("setting `log.format`: `{}`; expected `text` or `json`", self.log.format);
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bail!("setting `log.level`: `{}` is not a log filter (e.g. `info`, `claimgate=debug`)", self.log.level);
        }
        let props = self.kafka_properties()?;
        for (key, value) in &props {
            if let Some((_, why)) = MANAGED.iter().find(|(k, _)| k == key) {
                bail!("setting `kafka.{key}`: claimgate sets this property itself ({why})");
            }
            if let Some(why) = weakens_guarantees(key, value) {
                bail!("setting `kafka.{key}` = `{value}`: refused, {why}");
            }
            // librdkafka's own check of the name and the value, here rather than when the first client
            // is created, so that the error names the setting; a secret's value is never repeated.
            let mut c = rdkafka::config::ClientConfig::new();
            c.set(key, value);
            if let Err(e) = c.create_native_config() {
                let why = match e {
                    KafkaError::ClientConfig(..) if is_secret(key) => "refused by librdkafka".to_owned(),
                    KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                bail!("setting `kafka.{key}`: {why}");
            }
        }
        // A transaction must end before the broker aborts it (librdkafka's default is 60 s).
        let txn_timeout_ms: u64 = props.get("transaction.timeout.ms").and_then(|v| v.parse().ok()).unwrap_or(60_000);
        if l.transaction_ms >= txn_timeout_ms {
            bail!(
                "setting `limits.transaction_ms` ({}) must be below the producer's transaction.timeout.ms ({txn_timeout_ms})",
                l.transaction_ms
            );
        }
        Ok(())
    }
}

/// Prints the configuration with secrets replaced, for the start-up log line.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kafka: BTreeMap<String, String> = self
            .kafka_properties()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| if is_secret(&k) { (k, "***".into()) } else { (k, v) })
            .collect();
        f.debug_struct("Config")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("profile", &self.profile)
            .field("routing", &self.routing)
            .field("exactly_once", &self.exactly_once)
            .field("transactional_id", &self.transactional_id)
            .field("topics", &self.topics)
            .field("offsets", &self.offsets)
            .field("checkpoint", &self.checkpoint)
            .field("http.addr", &self.http.addr)
            .field("http.tokens_file", &self.http.tokens_file)
            .field("http.token", &self.http.token.as_ref().map(|_| "***"))
            .field("limits", &self.limits)
            .field("log", &self.log)
            .field("kafka", &kafka)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // figment's Jail closure returns figment's own (large) error type; that is its API, not ours.
    #[allow(clippy::result_large_err)]
    fn load(toml: &str, env: &[(&str, &str)], overrides: Overrides) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in env {
                jail.set_env(k, v);
            }
            result = Some(Config::load(Some(&path), Config::env(), overrides));
            Ok(())
        });
        result.unwrap()
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let cfg = load(
            "brokers = \"file:1\"\ngroup = \"g-file\"\n[limits]\nmax_in_flight = 9000\n[kafka]\n\"socket.timeout.ms\" = 5000\n",
            &[("CLAIMGATE_GROUP", "g-env"), ("CLAIMGATE_KAFKA__SASL__PASSWORD", "hunter2"), ("CLAIMGATE_TEST_BROKERS", "x")],
            Overrides { group: Some("g-flag".into()), ..Overrides::default() },
        )
        .unwrap();
        assert_eq!(cfg.brokers, "file:1");
        assert_eq!(cfg.group, "g-flag");
        assert_eq!(cfg.limits.max_in_flight, 9000);
        let props = cfg.kafka_properties().unwrap();
        assert_eq!(props["socket.timeout.ms"], "5000");
        assert_eq!(props["sasl.password"], "hunter2");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2") && shown.contains("sasl.password"), "{shown}");
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            ("[limits]\nmax_in_flight = \"many\"\n", "max_in_flight"),
            ("[limits]\nmax_in_flight = 0\n", "limits.max_in_flight"),
            ("[limits]\nbatch_size = 100000\n", "limits.batch_size"),
            ("brokers = \"nohost\"\n", "setting `brokers`"),
            ("[topics]\naccepted = \"claims\"\n", "topics.accepted"),
            ("[topics]\ndlq = \"bad topic!\"\n", "topics.dlq"),
            ("[topics]\nmappings = \"claims\"\n", "topics.mappings"),
            ("[http]\naddr = \"everywhere\"\n", "http.addr"),
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("colour = 1\n", "colour"),
            ("[kafka]\n\"group.id\" = \"x\"\n", "kafka.group.id"),
            ("[limits]\nstatus_publish_ms = 5000\n", "limits.status_publish_ms"),
            ("transactional_id = \" \"\n", "setting `transactional_id`"),
            ("routing = \" \"\n", "setting `routing`"),
            ("routing = \"r.toml\"\nprofile = \"lanzhou-2014\"\n", "setting `routing`"),
            ("[limits]\ntransaction_ms = 60000\n", "setting `limits.transaction_ms`"),
            ("[kafka]\n\"no.such.property\" = 1\n", "setting `kafka.no.such.property`"),
            ("[kafka]\n\"session.timeout.ms\" = \"soon\"\n", "setting `kafka.session.timeout.ms`"),
            ("[kafka]\nacks = 1\n", "setting `kafka.acks` = `1`: refused"),
            ("[kafka]\n\"enable.idempotence\" = false\n", "setting `kafka.enable.idempotence`"),
            ("[kafka]\n\"enable.auto.commit\" = true\n", "setting `kafka.enable.auto.commit`"),
            ("[kafka]\n\"message.timeout.ms\" = 2000\n", "setting `kafka.message.timeout.ms`"),
            ("[kafka]\n\"max.in.flight.requests.per.connection\" = 20\n", "refused, at most 5"),
            ("[kafka]\nretries = 0\n", "setting `kafka.retries` = `0`: refused"),
            ("[kafka]\n\"auto.offset.reset\" = \"latest\"\n", "use the setting `offsets.reset`"),
            ("[offsets]\nreset = \"smallest\"\n", "setting `offsets.reset`"),
            ("[topics]\nreplication = 0\n", "setting `topics.replication`"),
            ("[limits]\nmax_unacked_age_s = 0\n", "setting `limits.max_unacked_age_s`"),
            ("[limits]\nmax_stalled_s = 0\n", "setting `limits.max_stalled_s`"),
            ("[http]\ntokens_file = \" \"\n", "setting `http.tokens_file`"),
            (
                "[http]\ntokens_file = \"t.toml\"\ntoken = \"x\"\n",
                "setting `http.token` cannot be combined with `http.tokens_file`",
            ),
        ];
        for (toml, needle) in cases {
            let e = load(toml, &[], Overrides::default()).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml:?}: {e}");
        }
        let e = load("", &[("CLAIMGATE_LIMITS__BATCH_SIZE", "x")], Overrides::default()).unwrap_err().to_string();
        assert!(e.contains("batch_size") && e.contains("CLAIMGATE_LIMITS__BATCH_SIZE"), "{e}");
    }

    #[test]
    fn batch_size_defaults_to_time_bounded_transactions_under_exactly_once() {
        let alo = load("", &[], Overrides::default()).unwrap();
        assert_eq!(alo.batch_size(), 1_000);
        let eos = load("exactly_once = true\n", &[], Overrides::default()).unwrap();
        assert_eq!(eos.batch_size(), eos.limits.max_in_flight);
        let small = load("[limits]\nmax_in_flight = 500\n", &[], Overrides::default()).unwrap();
        assert_eq!(small.batch_size(), 500);
        let set =
            load("exactly_once = true\n", &[("CLAIMGATE_LIMITS__BATCH_SIZE", "2000")], Overrides::default()).unwrap();
        assert_eq!(set.batch_size(), 2_000);
        let e = load("[limits]\nbatch_size = 0\n", &[], Overrides::default()).unwrap_err().to_string();
        assert!(e.contains("limits.batch_size"), "{e}");
    }

    #[test]
    fn checkpoint_dir_flag_overrides_the_file() {
        let mut o = Overrides::default();
        o.checkpoint.insert("dir", "/var/lib/flag".into());
        let cfg = load("[checkpoint]\ndir = \"/var/lib/file\"\n", &[], o).unwrap();
        assert_eq!(cfg.checkpoint.dir.as_deref(), Some("/var/lib/flag"));
    }

    #[test]
    fn the_example_configurations_are_valid() {
        for name in ["claimgate.example.toml", "claimgate.sasl-ssl.example.toml"] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config").join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let cfg = load(&text, &[], Overrides::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let shown = format!("{cfg:?}");
            assert!(!shown.contains("change-me"), "{name}: {shown}");
        }
        // The first one says what the defaults are.
        let text =
            std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/claimgate.example.toml"));
        let from_file = load(&text.unwrap(), &[], Overrides::default()).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn secrets_are_recognised() {
        for k in
            ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.key.pem", "sasl.jaas.config"]
        {
            assert!(is_secret(k), "{k}");
        }
        assert!(!is_secret("security.protocol"));
    }
}
