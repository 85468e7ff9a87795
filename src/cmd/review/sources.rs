//! Where a review's lines come from: files; a claims topic between two times (the nightly run); or the
//! lines that late status changes concern (`--retro`), read from the claims topic over the record
//! times in which the inline filter may have decided them with the record before the change.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use std::path::Path;

use super::previous::{Budget, Listed, Previous, identity};
use super::retro::{self, Pending, Selector};
use super::{KafkaReviewArgs, indexed, pipeline};
use crate::io::claim_index;
use crate::io::clock::{self, from_unix_ms};
use crate::io::files::{self, Block, BlockInput, MessageAt, MessageBlock};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::window::{self, Window};
use claimgate::record::{Claim, InstitutionCode, RetroKind};

/// The inputs of a review and what the report says about them.
#[derive(Default)]
pub struct Sources {
    /// The inputs, in order.
    pub inputs: Vec<BlockInput>,
    /// One sentence per input, for the report.
    pub described: Vec<String>,
    /// What the reader of the report must know first.
    pub warnings: Vec<String>,
    /// The inline decisions, by identity.
    pub previous: Option<Previous>,
    /// The lines late changes concern.
    pub selector: Option<Selector>,
    /// The late changes reviewed.
    pub retro: Option<Pending>,
    /// What a nightly read from a topic covers, for its code index (`--index-dir`).
    pub cover: Option<IndexCover>,
}

/// What the code index of a nightly read covers (`io::claim_index`).
pub struct IndexCover {
    /// The claims topic.
    pub topic: String,
    /// Record times `[from, until)`, milliseconds: the window, cut where lines could still arrive.
    pub window: (i64, i64),
    /// `(partition, first offset, end)` read.
    pub ranges: Vec<(i32, i64, i64)>,
    /// The decision topics read (`--previous-topic`), listed by line identity for their decision
    /// indexes over the same window.
    pub decisions: Vec<Listed>,
}

/// Claim files (`--claims`).
pub fn files(claims: &[PathBuf]) -> Result<Sources> {
    let mut s = Sources::default();
    for p in claims {
        let input = files::open_blocks(p, pipeline::BLOCK)?;
        s.described.push(input.name.clone());
        s.inputs.push(input);
    }
    Ok(s)
}

/// The window's plan, its gaps refused unless `allow_partial` (then said in the report).
fn planned(
    kafka: &KafkaConfig,
    topic: &str,
    w: Window,
    a: &KafkaReviewArgs,
    allow_partial: bool,
    warnings: &mut Vec<String>,
) -> Result<window::Plan> {
    let plan = window::plan_with(kafka, topic, w, Duration::from_secs(a.late))?;
    if !plan.gaps.is_empty() {
        let gaps: Vec<String> = plan.gaps.iter().map(ToString::to_string).collect();
        if !allow_partial {
            bail!(
                "the window begins before what topic {topic} still holds, and records were deleted (retention): lines of the window may be gone.\n  {}\nReview a later window, or give --allow-partial to review what remains (the report then says which partitions may miss lines).",
                gaps.join("\n  ")
            );
        }
        warnings.extend(gaps.into_iter().map(|g| format!("lines of the window may be missing: {g}")));
    }
    Ok(plan)
}

/// A claims topic between two times (`--claims-topic --from --until`), the inline decisions from
/// `--previous-topic`.
pub fn topic_window(
    kafka: &KafkaConfig,
    a: &KafkaReviewArgs,
    topic: &str,
    w: Window,
    budget: &Budget,
) -> Result<Sources> {
    let mut s = Sources::default();
    let planned_ms = i64::try_from(clock::unix_ms()).unwrap_or(i64::MAX);
    let plan = planned(kafka, topic, w, a, a.allow_partial, &mut s.warnings)?;
    s.described.push(plan.describe());
    let mut cover = a.index_dir.as_ref().map(|_| {
        let (from, until) = w.ms();
        IndexCover {
            topic: topic.to_owned(),
            window: (from, claim_index::covered_until(until, planned_ms, plan.late_ms)),
            ranges: plan.ranges.iter().map(|r| (r.partition, r.start, r.end)).collect(),
            decisions: Vec::new(),
        }
    });
    let (mut input, _) = window::blocks(kafka, plan, pipeline::BLOCK)?;
    input.name = topic.to_owned();
    s.inputs.push(input);
    if !a.previous_topics.is_empty() {
        let (previous, listed) =
            Previous::load_topics_listed(kafka, &a.previous_topics, w.from, cover.is_some(), budget)?;
        s.previous = Some(previous);
        if let Some(c) = &mut cover {
            c.decisions = listed;
        }
    }
    s.cover = cover;
    Ok(s)
}

/// The lines the late changes concern (`--retro`): the claims topic over the record times of
/// [`retro::record_span`], every line read but only those a change chooses decided.
pub fn retro(kafka: &KafkaConfig, a: &KafkaReviewArgs, topic: &str, budget: &Budget) -> Result<Sources> {
    let mut s = Sources::default();
    if a.previous_topics.is_empty() {
        bail!(
            "--retro needs --previous-topic (the decision topics): the recovery report compares with the inline decisions"
        );
    }
    let pending = retro::pending(kafka, &a.retro_topic, &a.retro_position()?)?;
    s.described.push(pending.describe(&a.retro_topic));
    let Some(span) = retro::record_span(&pending.changes) else {
        s.previous = Some(Previous::empty(a.previous_topics.join(", ")));
        s.selector = Some(Selector::new(&pending.changes));
        s.retro = Some(pending);
        return Ok(s);
    };
    // A late change's window may reach before what retention left: the review goes on with what
    // remains, and the report says so (refusing would stop the loop for good).
    let mut input = match &a.index_dir {
        Some(dir) => by_index(kafka, a, topic, span, &pending, dir, &mut s)?,
        None => {
            let plan = planned(kafka, topic, span, a, true, &mut s.warnings)?;
            s.described
                .push(format!("{} (only the lines that name a changed code in its window decided)", plan.describe()));
            window::blocks(kafka, plan, pipeline::BLOCK)?.0
        }
    };
    input.name = topic.to_owned();
    let selector = Selector::new(&pending.changes);
    match &a.index_dir {
        // The claim lines first (only those naming a changed code are kept), then the decisions of
        // the lines chosen among them, fetched by their identities where decision indexes cover.
        Some(dir) => {
            let (input, ids) = chosen(input, &selector)?;
            s.inputs.push(input);
            let late = Duration::from_secs(a.late);
            let d = Previous::load_indexed(kafka, &a.previous_topics, span.from, late, dir, &ids, budget)?;
            s.described.extend(d.described);
            s.warnings.extend(d.warnings);
            s.previous = Some(d.previous);
        }
        None => {
            s.inputs.push(input);
            let previous = Previous::load_topics(kafka, &a.previous_topics, span.from, budget)?;
            s.described.push(format!(
                "inline decisions: topics {} read by time from {}: {} decisions read",
                a.previous_topics.join(", "),
                span.from,
                previous.lines
            ));
            s.previous = Some(previous);
        }
    }
    s.selector = Some(selector);
    s.retro = Some(pending);
    Ok(s)
}

/// Reads the claim lines of a late-change review ahead: keeps the messages whose bytes may name a
/// changed code (the only ones the review parses, `pipeline`), in their blocks and order, and gives
/// the identities of the lines the changes choose, whose inline decisions are to be fetched.
fn chosen(input: BlockInput, selector: &Selector) -> Result<(BlockInput, Vec<u64>)> {
    let mut blocks = Vec::new();
    let mut ids = Vec::new();
    for block in input.blocks {
        let Block::Messages(b) = block.with_context(|| format!("cannot read {}", input.name))? else {
            continue;
        };
        let mut kept = MessageBlock::default();
        for m in b.messages.iter().filter(|m| !m.null) {
            let payload = b.payload(m);
            if !selector.may_name(payload) {
                continue;
            }
            if let Ok(c) = Claim::parse(payload)
                && selector.select(&c).is_some()
            {
                let inst = c.fixmedins_code.to_bytes();
                ids.push(identity(std::str::from_utf8(&inst).unwrap_or_default(), &c.mdtrt_id, &c.feedetl_sn));
            }
            let at = kept.data.len() as u32;
            kept.data.extend_from_slice(payload);
            kept.messages.push(MessageAt { at, ..*m });
        }
        if !kept.messages.is_empty() {
            blocks.push(Ok(Block::Messages(kept)));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let read = input.read;
    Ok((BlockInput { blocks: Box::new(blocks.into_iter()), size: None, read, name: input.name }, ids))
}

/// The index keys of the changed codes.
fn keys(pending: &Pending) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for c in pending.changes.iter().filter(|c| c.check().is_ok()) {
        match c.kind {
            RetroKind::Practitioner => keys.push(claim_index::person_key(&c.code)),
            RetroKind::Institution => {
                if let Ok(code) = InstitutionCode::parse(&c.code) {
                    keys.push(claim_index::institution_key(&code.to_bytes()));
                }
            }
        }
    }
    keys
}

/// The lines of `span` with the code indexes in `dir`: the indexed offsets of the changed codes where
/// an index covers the record times, a read by time where none does (`indexed`).
fn by_index(
    kafka: &KafkaConfig,
    a: &KafkaReviewArgs,
    topic: &str,
    span: Window,
    pending: &Pending,
    dir: &Path,
    s: &mut Sources,
) -> Result<BlockInput> {
    let covered = indexed::cover(dir, topic, span.ms(), &keys(pending));
    s.warnings.extend(covered.warnings.iter().cloned());
    let mut segments = Vec::new();
    let mut by_time = Vec::new();
    for &(from, until) in &covered.uncovered {
        let w = Window { from: from_unix_ms(from), until: from_unix_ms(until) };
        if w.until <= w.from {
            continue;
        }
        let plan = planned(kafka, topic, w, a, true, &mut s.warnings)?;
        by_time.push(plan.describe());
        segments.extend(plan.segments((from, until)));
    }
    let (fetched, gone) = indexed::fetched(kafka, topic, &covered.runs)?;
    s.warnings.extend(gone.into_iter().map(|g| format!("lines of the window may be missing: {g}")));
    let fetch_segments = fetched.len();
    segments.extend(fetched);
    let segments = indexed::merged(segments);
    let offsets: i64 = segments.iter().map(|g| g.end - g.start).sum();
    let used: Vec<String> = covered.used.iter().map(|p| p.display().to_string()).collect();
    let mut text = format!(
        "topic `{topic}` with the code indexes of {dir}: {} indexed lines of the changed codes from {} index files{}, fetched in {fetch_segments} reads",
        covered.lines(),
        used.len(),
        if used.is_empty() { String::new() } else { format!(" ({})", used.join(", ")) },
        dir = dir.display()
    );
    if by_time.is_empty() {
        text.push_str("; no record time left to read by time");
    } else {
        text.push_str(&format!("; read by time where no index covers: {}", by_time.join("; ")));
    }
    text.push_str(&format!(
        "; {offsets} offsets read in all (only the lines that name a changed code in its window decided)"
    ));
    s.described.push(text);
    Ok(window::segment_blocks(kafka, topic, segments, pipeline::BLOCK)?.0)
}
