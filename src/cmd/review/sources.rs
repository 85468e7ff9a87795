//! Where a review's lines come from: files; a claims topic between two times (the nightly run); or the
//! lines that late status changes concern (`--retro`), read from the claims topic over the record
//! times in which the inline filter may have decided them with the record before the change.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use super::previous::Previous;
use super::retro::{self, Pending, Selector};
use super::{KafkaReviewArgs, pipeline};
use crate::io::files::{self, BlockInput};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::window::{self, Window};

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
}

/// Claim files (`--claims`), and `--previous` if given.
pub fn files(claims: &[PathBuf], previous: Option<&std::path::Path>) -> Result<Sources> {
    let mut s = Sources::default();
    for p in claims {
        let input = files::open_blocks(p, pipeline::BLOCK)?;
        s.described.push(input.name.clone());
        s.inputs.push(input);
    }
    s.previous = previous.map(Previous::load).transpose()?;
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
pub fn topic_window(kafka: &KafkaConfig, a: &KafkaReviewArgs, topic: &str, w: Window) -> Result<Sources> {
    let mut s = Sources::default();
    let plan = planned(kafka, topic, w, a, a.allow_partial, &mut s.warnings)?;
    s.described.push(plan.describe());
    let (mut input, _) = window::blocks(kafka, plan, pipeline::BLOCK)?;
    input.name = topic.to_owned();
    s.inputs.push(input);
    if !a.previous_topics.is_empty() {
        s.previous = Some(Previous::load_topics(kafka, &a.previous_topics, w.from)?);
    }
    Ok(s)
}

/// The lines the late changes concern (`--retro`): the claims topic over the record times of
/// [`retro::record_span`], every line read but only those a change chooses decided.
pub fn retro(kafka: &KafkaConfig, a: &KafkaReviewArgs, topic: &str) -> Result<Sources> {
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
    let plan = planned(kafka, topic, span, a, true, &mut s.warnings)?;
    s.described.push(format!("{} (only the lines that name a changed code in its window decided)", plan.describe()));
    let (mut input, _) = window::blocks(kafka, plan, pipeline::BLOCK)?;
    input.name = topic.to_owned();
    s.inputs.push(input);
    s.previous = Some(Previous::load_topics(kafka, &a.previous_topics, span.from)?);
    s.selector = Some(Selector::new(&pending.changes));
    s.retro = Some(pending);
    Ok(s)
}
