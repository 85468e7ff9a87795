//! Topic creation and partition discovery.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;

/// A topic to create.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Log-compacted (`cleanup.policy=compact`), for status topics.
    pub compacted: bool,
    /// Replication factor; -1 takes the broker's `default.replication.factor` (Kafka 2.4 or later).
    pub replication: i32,
}

/// Creates topics that do not exist yet; existing ones are left as they are. Returns the names created.
pub fn create_topics(kafka: &KafkaConfig, topics: &[TopicSpec]) -> Result<Vec<String>> {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client(&[]).create().context("cannot create a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let n = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication));
            if t.compacted { n.set("cleanup.policy", "compact") } else { n }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = rt.block_on(admin.create_topics(new.iter(), &opts)).context("cannot create topics")?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, e)) => bail!("cannot create topic {name}: {e}"),
        }
    }
    Ok(created)
}

/// A client for metadata questions (which topics exist), created once.
pub struct Metadata {
    consumer: BaseConsumer<super::Context>,
}

impl Metadata {
    /// Connects.
    pub fn new(kafka: &KafkaConfig) -> Result<Self> {
        let consumer = kafka
            .client(&[("group.id", "claimgate-metadata"), ("allow.auto.create.topics", "false")])
            .create_with_context(super::Context { client: "metadata" })
            .context("cannot create a metadata client")?;
        Ok(Metadata { consumer })
    }

    /// Which of `names` do not exist (or have no partitions yet); an error if the brokers cannot be
    /// asked.
    pub fn missing(&self, names: &[&String]) -> Result<Vec<String>> {
        let md = self.consumer.fetch_metadata(None, Duration::from_secs(5)).context("cannot read the topic list")?;
        let exists =
            |n: &str| md.topics().iter().any(|t| t.name() == n && t.error().is_none() && !t.partitions().is_empty());
        Ok(names.iter().filter(|n| !exists(n)).map(|n| (*n).clone()).collect())
    }

    /// Which of `names` the cluster says do not exist: absent from the topic list, or answered with
    /// "unknown topic". Stricter than [`Metadata::missing`]: a topic whose leaders are being elected is
    /// not gone. An error if the brokers cannot be asked.
    pub fn gone(&self, names: &[&String]) -> Result<Vec<String>> {
        let md = self.consumer.fetch_metadata(None, Duration::from_secs(5)).context("cannot read the topic list")?;
        let gone = |n: &str| match md.topics().iter().find(|t| t.name() == n) {
            None => true,
            Some(t) => matches!(
                t.error().map(rdkafka::types::RDKafkaErrorCode::from),
                Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
            ),
        };
        Ok(names.iter().filter(|n| gone(n)).map(|n| (*n).clone()).collect())
    }
}

/// Watches that the output topics still exist: librdkafka keeps retrying outputs to a deleted topic
/// (it may never report them failed with `message.timeout.ms=0`), so the pipeline asks the cluster
/// itself, every few seconds. A topic seen gone twice in a row is fatal.
pub struct OutputWatch {
    metadata: Metadata,
    topics: Vec<String>,
    last: std::time::Instant,
    seen_gone: Vec<String>,
}

impl OutputWatch {
    /// Watches `topics`.
    pub fn new(kafka: &KafkaConfig, topics: &[&String]) -> Result<Self> {
        Ok(OutputWatch {
            metadata: Metadata::new(kafka)?,
            topics: topics.iter().map(|t| (*t).clone()).collect(),
            last: std::time::Instant::now(),
            seen_gone: Vec::new(),
        })
    }

    /// At most every 5 s: an error naming the output topics that are gone.
    pub fn check(&mut self) -> Result<()> {
        if self.last.elapsed() < Duration::from_secs(5) {
            return Ok(());
        }
        self.last = std::time::Instant::now();
        let names: Vec<&String> = self.topics.iter().collect();
        // A broker that cannot be asked is not a deleted topic: the stalled outputs show in /healthz.
        let Ok(gone) = self.metadata.gone(&names) else { return Ok(()) };
        let confirmed: Vec<String> = gone.iter().filter(|g| self.seen_gone.contains(g)).cloned().collect();
        self.seen_gone = gone;
        if !confirmed.is_empty() {
            bail!(
                "output topic {} does not exist (deleted, or misnamed in `topics.*`): create it and restart; the claims after the last commit are decided again",
                confirmed.join(", ")
            );
        }
        Ok(())
    }
}

/// The partitions of `topic`, waiting up to `wait` for the topic to appear in the metadata.
pub fn partitions<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    wait: Duration,
) -> Result<Vec<i32>> {
    let deadline = Instant::now() + wait;
    loop {
        let result = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = &result
            && let Some(t) = md.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
        {
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            return Ok(ids);
        }
        if Instant::now() >= deadline {
            return match result {
                Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read the metadata of topic {topic}"))),
                Ok(_) => bail!("topic {topic} does not exist (create it with `claimgate topics create`)"),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
