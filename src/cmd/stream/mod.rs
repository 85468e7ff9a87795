//! `claimgate stream`: the inline filter in the settlement pipeline (service.md).
//!
//! Threads: the status follower (tables), the claim pipeline (decisions), and a small tokio runtime for
//! the operations port and the signals (`io::shutdown`). On SIGTERM or Ctrl-C: readiness turns false,
//! the pipeline stops taking claims, waits for its in-flight outputs, commits, and the process exits 0 —
//! or exits 1 if that does not finish within `limits.shutdown_timeout_s` (the uncommitted claims are
//! then decided again on restart: at least once). A second signal exits at once. A fatal error of the
//! pipeline (an output topic deleted, writing unauthorised, a fenced producer) ends it: exit 1 with the
//! cause.

pub mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use tokio_util::sync::CancellationToken;

use crate::io::checkpoint;
use crate::io::http::auth::{Auth, Callers};
use crate::io::http::{self, HttpState};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::admin::{self, TopicSpec};
use crate::io::kafka::follower::{self, CheckpointConfig, FollowerConfig, TableState};
use crate::io::kafka::pipeline::{self, PipelineConfig, PipelineState};
use crate::io::shutdown::{self, Ending};
use crate::io::{logging, metrics};
use claimgate::table::TableHandle;
use config::{Config, Overrides};

/// Arguments of `claimgate stream`. Every setting can also come from the configuration file and from
/// `CLAIMGATE_*` environment variables; flags win.
#[derive(Args, Debug, Default)]
pub struct StreamArgs {
    /// Bootstrap brokers, host:port[,host:port…] (setting `brokers`).
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Consumer group of the claim consumers (setting `group`, default `claimgate`).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Policy profile: national-2024 (default), huaian-2020, lanzhou-2014, or a TOML file (setting `profile`).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Routing table: the profile of each line by the institution's area and the service time, for a
    /// deployment of several regions (setting `routing`; docs/rules.md). Instead of --profile.
    #[arg(long, value_name = "FILE")]
    pub routing: Option<String>,
    /// Listen address of /metrics, /healthz, /readyz and /v1/… (setting `http.addr`, default 127.0.0.1:9898).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// TOML configuration file (see `config/claimgate.example.toml`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exactly-once delivery through Kafka transactions (setting `exactly_once`).
    #[arg(long)]
    pub exactly_once: bool,
    /// Input topic (setting `topics.claims`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_claims: Option<String>,
    /// Accepted decisions (setting `topics.accepted`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_accepted: Option<String>,
    /// Rejected decisions (setting `topics.rejected`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_rejected: Option<String>,
    /// Dead letters (setting `topics.dlq`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_dlq: Option<String>,
    /// Practitioner status topic (setting `topics.practitioners`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_practitioners: Option<String>,
    /// Institution status topic (setting `topics.institutions`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_institutions: Option<String>,
    /// Status dead-letter topic: invalid status records go there (setting `topics.status_dlq`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_status_dlq: Option<String>,
    /// Late status changes go here, for `review --retro` (setting `topics.retro`).
    #[arg(long, value_name = "TOPIC")]
    pub topic_retro: Option<String>,
    /// Local-id mapping topic, followed like the status topics (setting `topics.mappings`; unset: none).
    #[arg(long, value_name = "TOPIC")]
    pub topic_mappings: Option<String>,
    /// Directory of the status-table checkpoint: a restart reads only the status topics' tail (setting
    /// `checkpoint.dir`; unset: every start reads the status topics in full).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<String>,
    /// Log format: text or json (setting `log.format`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or claimgate=debug (setting `log.level`).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// A librdkafka property for every client, e.g. -X security.protocol=SASL_SSL (setting `kafka.<name>`).
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// Benchmark baseline: forward claims unchanged to the accepted topic without deciding them.
    #[arg(long, hide = true)]
    pub pass_through: bool,
}

impl StreamArgs {
    fn overrides(&self) -> Result<Overrides> {
        let mut o = Overrides {
            brokers: self.brokers.clone(),
            group: self.group.clone(),
            profile: self.profile.clone(),
            routing: self.routing.clone(),
            exactly_once: self.exactly_once.then_some(true),
            ..Overrides::default()
        };
        if let Some(a) = &self.http {
            o.http.insert("addr", a.clone());
        }
        for (name, v) in [
            ("claims", &self.topic_claims),
            ("accepted", &self.topic_accepted),
            ("rejected", &self.topic_rejected),
            ("dlq", &self.topic_dlq),
            ("practitioners", &self.topic_practitioners),
            ("institutions", &self.topic_institutions),
            ("status_dlq", &self.topic_status_dlq),
            ("retro", &self.topic_retro),
            ("mappings", &self.topic_mappings),
        ] {
            if let Some(v) = v {
                o.topics.insert(name, v.clone());
            }
        }
        if let Some(d) = &self.checkpoint_dir {
            o.checkpoint.insert("dir", d.clone());
        }
        if let Some(f) = &self.log_format {
            o.log.insert("format", f.clone());
        }
        if let Some(l) = &self.log_level {
            o.log.insert("level", l.clone());
        }
        for p in &self.property {
            let Some((k, v)) = p.split_once('=') else { bail!("-X {p}: expected NAME=VALUE") };
            o.kafka.insert(k.trim().to_owned(), v.to_owned());
        }
        Ok(o)
    }
}

/// The exactly-once producer's `transactional.id`: the setting, or `<group>-<host>-<http port>` — the
/// same for a restarted instance of the same slot (host and operations port), so that it fences its
/// crashed predecessor at once, and different for two instances on one host (their ports differ).
fn transactional_id(cfg: &Config) -> String {
    cfg.transactional_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        let host = if host.is_empty() { "host".to_owned() } else { host };
        let port = cfg.http.addr.rsplit(':').next().unwrap_or("0");
        format!("{}-{host}-{port}", cfg.group)
    })
}

/// `topics.create_missing`: creates the topics that do not exist — claims and outputs with
/// `topics.partitions`; the status, status dead-letter and retro topics log-compacted with one
/// partition — leaving existing ones alone.
fn create_missing_topics(kafka: &KafkaConfig, cfg: &Config) -> Result<()> {
    let t = &cfg.topics;
    let spec = |name: &String, partitions: i32, compacted: bool| TopicSpec {
        name: name.clone(),
        partitions,
        compacted,
        replication: t.replication,
    };
    let specs = [
        spec(&t.claims, t.partitions, false),
        spec(&t.accepted, t.partitions, false),
        spec(&t.rejected, t.partitions, false),
        spec(&t.dlq, t.partitions, false),
        spec(&t.practitioners, 1, true),
        spec(&t.institutions, 1, true),
        spec(&t.status_dlq, 1, true),
        spec(&t.retro, 1, true),
    ];
    let created = admin::create_topics(kafka, &specs).context("setting `topics.create_missing`")?;
    if !created.is_empty() {
        tracing::info!(event = "topics_created", topics = ?created, "created the missing topics (topics.create_missing)");
    }
    Ok(())
}

/// Who may ask `/v1/…`: the callers of `http.tokens_file` (and the file to watch), the single shared
/// `http.token`, or nobody in particular (open).
type TokensFile = Option<(PathBuf, Arc<arc_swap::ArcSwap<Callers>>)>;

fn http_auth(cfg: &Config) -> Result<(Auth, TokensFile)> {
    if let Some(file) = &cfg.http.tokens_file {
        let path = PathBuf::from(file);
        let callers = Callers::load(&path).context("setting `http.tokens_file`")?;
        if callers.is_empty() {
            bail!(
                "setting `http.tokens_file`: {} has no [[caller]]: every /v1/ query would be refused",
                path.display()
            );
        }
        tracing::info!(event = "http_tokens_loaded", file = %path.display(), callers = callers.len());
        let callers = Arc::new(arc_swap::ArcSwap::from_pointee(callers));
        return Ok((Auth::Tokens(Arc::clone(&callers)), Some((path, callers))));
    }
    if let Some(token) = &cfg.http.token {
        tracing::warn!(
            event = "http_token_shared",
            "setting `http.token` is one token shared by every caller, with access to every code; \
             give each caller its own token and scope in `http.tokens_file` (claimgate tokens new)"
        );
        let callers = Callers::shared(token);
        return Ok((Auth::Tokens(Arc::new(arc_swap::ArcSwap::from_pointee(callers))), None));
    }
    Ok((Auth::Open, None))
}

/// Runs the stream until a signal, or until the pipeline fails.
pub fn run(args: StreamArgs) -> Result<()> {
    let cfg = Config::load(args.config.as_ref(), Config::env(), args.overrides()?)?;
    logging::init(&cfg.log.format, &cfg.log.level)?;
    tracing::info!(event = "starting", version = env!("CARGO_PKG_VERSION"), config = ?cfg);
    let rules = match &cfg.routing {
        Some(r) => {
            crate::cmd::review::load_rules(&cfg.profile, Some(std::path::Path::new(r))).context("setting `routing`")?
        }
        None => crate::cmd::review::load_rules(&cfg.profile, None).context("setting `profile`")?,
    };
    let rules = Arc::new(rules);
    tracing::info!(
        event = "rules_loaded",
        rules = crate::cmd::review::describe_rules(&rules, cfg.routing.as_deref().map(std::path::Path::new)),
    );
    let (auth, tokens_file) = http_auth(&cfg)?;
    let prometheus = metrics::install()?;
    let kafka = KafkaConfig { brokers: cfg.brokers.clone(), properties: cfg.kafka_properties()? };
    let addr: SocketAddr = cfg.http.addr.parse().context("setting `http.addr`")?;

    let tables = Arc::new(TableHandle::new());
    let table_state = Arc::new(TableState::default());
    let pipeline_state = Arc::new(PipelineState::new(
        std::time::Duration::from_secs(cfg.limits.max_unacked_age_s),
        std::time::Duration::from_secs(cfg.limits.max_stalled_s),
    ));
    let shutdown = CancellationToken::new();
    let stopping = Arc::new(AtomicBool::new(false));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("claimgate-http")
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    // Bind first: a taken port is a configuration error, reported before anything else starts.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("setting `http.addr`: cannot listen on {addr}"))?;
    tracing::info!(event = "http_listening", %addr);

    if cfg.topics.create_missing {
        create_missing_topics(&kafka, &cfg)?;
    }
    let follower = follower::spawn(
        &kafka,
        FollowerConfig {
            practitioners: cfg.topics.practitioners.clone(),
            institutions: cfg.topics.institutions.clone(),
            mappings: cfg.topics.mappings.clone(),
            status_dlq: cfg.topics.status_dlq.clone(),
            retro: Some(cfg.topics.retro.clone()),
            publish_every: Duration::from_millis(cfg.limits.status_publish_ms),
            batch_wait: Duration::from_secs(cfg.limits.status_batch_wait_s),
            compact_after: cfg.limits.compact_after,
            checkpoint: cfg.checkpoint.dir.as_ref().map(|dir| CheckpointConfig {
                path: checkpoint::path(std::path::Path::new(dir), &cfg.group),
                every: Duration::from_secs(cfg.checkpoint.every_s),
                max_age: Duration::from_secs(cfg.checkpoint.max_age_s),
            }),
        },
        Arc::clone(&tables),
        Arc::clone(&table_state),
        shutdown.clone(),
    )?;

    let t = &cfg.topics;
    let pcfg = PipelineConfig {
        claims: t.claims.clone(),
        accepted: t.accepted.clone(),
        rejected: t.rejected.clone(),
        dlq: t.dlq.clone(),
        group: cfg.group.clone(),
        max_in_flight: cfg.limits.max_in_flight,
        batch_size: cfg.batch_size(),
        max_message_bytes: cfg.limits.max_message_bytes,
        shutdown_timeout: Duration::from_secs(cfg.limits.shutdown_timeout_s),
        transaction_time: Duration::from_millis(cfg.limits.transaction_ms),
        transactional_id: cfg.exactly_once.then(|| transactional_id(&cfg)),
        offsets_reset: cfg.offsets.reset.clone(),
        pass_through: args.pass_through,
    };
    if args.pass_through {
        tracing::warn!(event = "pass_through", "benchmark mode: claims are forwarded, not decided");
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = {
        let (kafka, tables, tstate, pstate, shutdown, rules) = (
            kafka.clone(),
            Arc::clone(&tables),
            Arc::clone(&table_state),
            Arc::clone(&pipeline_state),
            shutdown.clone(),
            Arc::clone(&rules),
        );
        std::thread::Builder::new().name("claim-pipeline".into()).spawn(move || {
            let r = pipeline::run(&kafka, &pcfg, &tables, &tstate.ready, &rules, &pstate, &shutdown);
            pstate.alive.store(false, Ordering::Relaxed);
            let _ = done_tx.send(());
            r
        })?
    };

    let state = HttpState {
        prometheus: prometheus.clone(),
        tables: Arc::clone(&tables),
        table_state: Arc::clone(&table_state),
        pipeline: Arc::clone(&pipeline_state),
        stopping: Arc::clone(&stopping),
        auth,
        rules: Arc::clone(&rules),
        max_body_bytes: cfg.limits.max_message_bytes,
        stale_after_s: cfg.limits.stale_after_s as f64,
        max_unacked_age_s: cfg.limits.max_unacked_age_s as f64,
    };
    let grace = Duration::from_secs(cfg.limits.shutdown_timeout_s + 5);
    let outcome: Result<()> = rt.block_on(async {
        let (stop_http_tx, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // With each connection's address, for the query log.
            axum::serve(listener, http::router(state).into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = stop_http_rx.await;
                })
                .await
        });
        if let Some((path, callers)) = tokens_file {
            tokio::spawn(http::auth::watch(path, callers, shutdown.clone()));
        }
        tokio::spawn(follower::watch_staleness(
            Arc::clone(&table_state),
            Duration::from_secs(cfg.limits.stale_after_s),
            shutdown.clone(),
        ));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        });
        let ending = shutdown::until_signal(&shutdown, async {
            let _ = done_rx.await;
        })
        .await?;
        stopping.store(true, Ordering::Relaxed);
        if ending == Ending::Signal {
            tracing::info!(event = "shutdown_requested", "stopping: draining in-flight claims");
        }
        let joined = shutdown::drain(tokio::task::spawn_blocking(move || pipeline.join()), grace).await?;
        let _ = stop_http_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        match (ending, joined) {
            (Ending::Signal, Some(Ok(Ok(Ok(()))))) => Ok(()),
            // The pipeline ended on its own: that is an error (its result says which).
            (Ending::Finished, Some(Ok(Ok(Ok(()))))) => Err(anyhow!("the claim pipeline stopped unexpectedly")),
            (_, Some(Ok(Ok(Err(e))))) => Err(e),
            (_, Some(_)) => Err(anyhow!("the claim pipeline panicked")),
            (_, None) => Err(anyhow!("shutdown did not finish within {grace:?}")),
        }
    });
    shutdown.cancel();
    match follower.join() {
        Ok(Err(e)) => tracing::warn!(event = "follower_error", error = %format!("{e:#}")),
        Err(_) => tracing::error!(event = "follower_panicked"),
        Ok(Ok(())) => {}
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    match &outcome {
        Ok(()) => tracing::info!(event = "stopped", "clean shutdown"),
        Err(e) => tracing::error!(event = "stopped", error = %format!("{e:#}")),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::StreamArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        stream: StreamArgs,
    }

    #[test]
    fn checkpoint_dir_flag_sets_the_checkpoint_setting() {
        let cli = Cli::try_parse_from(["stream", "--checkpoint-dir", "/var/lib/claimgate"]).unwrap();
        let o = cli.stream.overrides().unwrap();
        assert_eq!(o.checkpoint.get("dir").map(String::as_str), Some("/var/lib/claimgate"));
    }
}
