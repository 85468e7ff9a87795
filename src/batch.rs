//! One line in, one record out: parse, route, decide, encode. The unit of work that `stream` and
//! `review` share, so the inline filter and the nightly re-review cannot drift apart.

use crate::decide::decide;
use crate::record::{Claim, Malformed, Outcome, Stamp, write_decision};
use crate::routing::Rules;
use crate::table::View;

/// A line that was decided: the parsed claim and its outcome.
#[derive(Debug)]
pub struct Decided<'a, 'p> {
    /// The claim, borrowing from the input bytes.
    pub claim: Claim<'a>,
    /// What the core decided.
    pub outcome: Outcome<'p>,
}

/// Parses `bytes`, chooses the profile in force for the line's area and service time, checks the
/// person fields that profile reads, and decides; on success appends the decision record (one JSON
/// line, no newline) to `out`. A malformed line appends nothing: the caller writes the dead letter,
/// since only it knows the line's source.
#[inline]
pub fn process<'a, 'p>(
    bytes: &'a [u8],
    view: &View,
    rules: &'p Rules,
    stamp: &Stamp<'_>,
    out: &mut Vec<u8>,
) -> Result<Decided<'a, 'p>, Malformed> {
    let claim = Claim::parse(bytes)?;
    let profile = rules.select(claim.fixmedins_code, claim.fee_ocur_time);
    profile.check_fields(&claim)?;
    let outcome = decide(&claim, view, profile);
    write_decision(out, &claim, &outcome, stamp);
    Ok(Decided { claim, outcome })
}
