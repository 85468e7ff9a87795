//! One line in, one record out: parse, decide, encode. The unit of work that `stream` and `review`
//! share, so the inline filter and the nightly re-review cannot drift apart.

use crate::decide::decide;
use crate::profile::Profile;
use crate::record::{Claim, Malformed, Outcome, Stamp, write_decision};
use crate::table::View;

/// A line that was decided: the parsed claim and its outcome.
#[derive(Debug)]
pub struct Decided<'a, 'p> {
    /// The claim, borrowing from the input bytes.
    pub claim: Claim<'a>,
    /// What the core decided.
    pub outcome: Outcome<'p>,
}

/// Parses and decides `bytes`; on success appends the decision record (one JSON line, no newline) to
/// `out`. A malformed line appends nothing: the caller writes the dead letter, since only it knows the
/// line's source.
#[inline]
pub fn process<'a, 'p>(
    bytes: &'a [u8],
    view: &View,
    profile: &'p Profile,
    stamp: &Stamp<'_>,
    out: &mut Vec<u8>,
) -> Result<Decided<'a, 'p>, Malformed> {
    let claim = Claim::parse(bytes)?;
    let outcome = decide(&claim, view, profile);
    write_decision(out, &claim, &outcome, stamp);
    Ok(Decided { claim, outcome })
}
