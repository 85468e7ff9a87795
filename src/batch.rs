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

/// Lines parsed before their lookups are used. Enough that the memory misses of a group's table
/// lookups overlap (a core keeps ten or more misses in flight), few enough that what they brought in
/// is still in cache when the group is decided.
pub const GROUP: usize = 16;

/// [`process`] for many lines, in order, with the table lookups of each group of [`GROUP`] lines
/// overlapped: every line of a group is parsed and its billing practitioner's slot prefetched, then every
/// record the slots point at is prefetched, then each line is decided and encoded and handed to
/// `each` with its tag, in input order, right after its decision was appended to `out` (a malformed
/// line appends nothing). The outcomes are exactly [`process`]'s: only the memory traffic is
/// reordered.
#[inline]
pub fn process_each<'a, 'p, T, I, F>(
    lines: I,
    view: &View,
    rules: &'p Rules,
    stamp: &Stamp<'_>,
    out: &mut Vec<u8>,
    mut each: F,
) where
    I: IntoIterator<Item = (T, &'a [u8])>,
    F: FnMut(T, &'a [u8], Result<Decided<'a, 'p>, Malformed>, &mut Vec<u8>),
{
    let mut lines = lines.into_iter();
    let mut group: Vec<(T, &'a [u8], Result<Claim<'a>, Malformed>)> = Vec::with_capacity(GROUP);
    loop {
        group.extend(lines.by_ref().take(GROUP).map(|(tag, bytes)| {
            let parsed = Claim::parse(bytes);
            if let Ok(c) = &parsed {
                view.prefetch_practitioner_slot(c.practitioner());
            }
            (tag, bytes, parsed)
        }));
        if group.is_empty() {
            return;
        }
        for (_, _, parsed) in &group {
            if let Ok(c) = parsed {
                view.prefetch_practitioner_record(c.practitioner());
            }
        }
        for (tag, bytes, parsed) in group.drain(..) {
            let result = parsed.and_then(|claim| {
                let profile = rules.select(claim.fixmedins_code, claim.fee_ocur_time);
                profile.check_fields(&claim)?;
                let outcome = decide(&claim, view, profile);
                write_decision(out, &claim, &outcome, stamp);
                Ok(Decided { claim, outcome })
            });
            each(tag, bytes, result, out);
        }
    }
}
