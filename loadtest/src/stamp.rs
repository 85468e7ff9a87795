//! The header the generator stamps on every claim line, and that comes back on its decision (the stream
//! copies input headers to outputs): which step and line it is, and when it was *meant* to be sent.

/// Header name.
pub const HEADER: &str = "claimgate-loadtest";

/// What kind of line a stamp marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A line of the step's open-loop load.
    Load,
    /// A line of the status-change trickle (one practitioner's claims).
    Trickle,
}

/// The stamp: 24 bytes, big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Step of the session the line belongs to.
    pub step: u32,
    /// Load or trickle.
    pub kind: Kind,
    /// Sequence number within the step (load) or the trickle.
    pub seq: u64,
    /// Intended send time, nanoseconds on the load test's monotonic clock.
    pub intended_ns: u64,
}

impl Stamp {
    /// The header value.
    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.step.to_be_bytes());
        b[4..8].copy_from_slice(
            &(match self.kind {
                Kind::Load => 0u32,
                Kind::Trickle => 1u32,
            })
            .to_be_bytes(),
        );
        b[8..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.intended_ns.to_be_bytes());
        b
    }

    /// Reads a header value; `None` if it is not a stamp.
    pub fn decode(b: &[u8]) -> Option<Stamp> {
        if b.len() != 24 {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let kind = match u32_at(4) {
            0 => Kind::Load,
            1 => Kind::Trickle,
            _ => return None,
        };
        Some(Stamp { step: u32_at(0), kind, seq: u64_at(8), intended_ns: u64_at(16) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_foreign_values() {
        for s in [
            Stamp { step: 0, kind: Kind::Load, seq: 0, intended_ns: 0 },
            Stamp { step: 7, kind: Kind::Trickle, seq: 123_456_789, intended_ns: u64::MAX },
        ] {
            assert_eq!(Stamp::decode(&s.encode()), Some(s));
        }
        assert_eq!(Stamp::decode(b"short"), None);
        let mut bad = Stamp { step: 1, kind: Kind::Load, seq: 1, intended_ns: 1 }.encode();
        bad[7] = 9;
        assert_eq!(Stamp::decode(&bad), None);
    }
}
