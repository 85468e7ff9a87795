//! `claimgate topics create`: make the six topics of service.md and the local-id mapping topic, the
//! status and mapping topics log-compacted.
//! Production clusters usually provision topics through their own process; this is for development,
//! tests and the demo, and shows what the topics need.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::tables::properties;
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::admin::{TopicSpec, create_topics};

/// `claimgate topics …`
#[derive(Subcommand, Debug)]
pub enum TopicsCmd {
    /// Create the claim, decision, dead-letter and status topics (existing ones are left alone).
    Create(CreateArgs),
}

/// Arguments of `topics create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Bootstrap brokers, host:port[,host:port…].
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    /// Partitions of the claim and decision topics (the unit of scale-out).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Partitions of the status topics.
    #[arg(long, default_value_t = 1)]
    pub status_partitions: i32,
    /// Replication factor; -1 (the default) takes the broker's `default.replication.factor` (3 on the
    /// project's three-node cluster, with min.insync.replicas=2).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication: i32,
    /// Prefix for every topic name (e.g. `test1.` gives `test1.claims`).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// A librdkafka property, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
}

/// Runs `claimgate topics …`.
pub fn run(cmd: TopicsCmd) -> Result<()> {
    let TopicsCmd::Create(a) = cmd;
    let kafka = KafkaConfig { brokers: a.brokers.clone(), properties: properties(&a.property)? };
    let p = |name: &str| format!("{}{name}", a.prefix);
    let specs = [
        TopicSpec { name: p("claims"), partitions: a.partitions, compacted: false, replication: a.replication },
        TopicSpec {
            name: p("claims.accepted"),
            partitions: a.partitions,
            compacted: false,
            replication: a.replication,
        },
        TopicSpec {
            name: p("claims.rejected"),
            partitions: a.partitions,
            compacted: false,
            replication: a.replication,
        },
        TopicSpec { name: p("claims.dlq"), partitions: a.partitions, compacted: false, replication: a.replication },
        TopicSpec {
            name: p("practitioners"),
            partitions: a.status_partitions,
            compacted: true,
            replication: a.replication,
        },
        TopicSpec {
            name: p("institutions"),
            partitions: a.status_partitions,
            compacted: true,
            replication: a.replication,
        },
        // Invalid status records, keyed by their source offset: compacted, one copy however often
        // instances restart and read them again.
        TopicSpec { name: p("status.dlq"), partitions: 1, compacted: true, replication: a.replication },
        // Late status changes, keyed code@version: compacted, one copy however many instances saw one.
        TopicSpec { name: p("status.retro"), partitions: 1, compacted: true, replication: a.replication },
        // Followed only where the stream's `topics.mappings` names it (rules.md, "Local ids").
        TopicSpec {
            name: p("practitioner-mappings"),
            partitions: a.status_partitions,
            compacted: true,
            replication: a.replication,
        },
    ];
    let created = create_topics(&kafka, &specs)?;
    for s in &specs {
        let what = if created.contains(&s.name) { "created" } else { "exists" };
        eprintln!("{what:8} {} ({} partitions{})", s.name, s.partitions, if s.compacted { ", compacted" } else { "" });
    }
    Ok(())
}
