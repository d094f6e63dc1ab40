//! The rule that links an agent's envelopes into one chain: the collector
//! applies it at ingest, the log verifier again over the whole log.

/// Where an envelope stands against the chain so far (`next` expected,
/// `last` the digest of the newest link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next link: it names the newest link as previous, or follows a
    /// gap it declares exactly.
    Extends,
    /// A sequence number already passed.
    Behind,
    /// The expected number, but it names another previous envelope.
    WrongPrevious,
    /// A jump past numbers it does not declare as dropped.
    UndeclaredJump,
}

/// Applies the chain rule to an envelope with `sequence`, its signed
/// `previous` and the sequence numbers its `gap` declares dropped.
pub fn step(
    next: u64,
    last: Option<&str>,
    sequence: u64,
    previous: Option<&str>,
    gap: &[u64],
) -> Step {
    use std::cmp::Ordering::*;
    match sequence.cmp(&next) {
        Less => Step::Behind,
        Equal if previous == last => Step::Extends,
        Equal => Step::WrongPrevious,
        Greater => {
            // The gap must name exactly the numbers skipped since `next`.
            // Numbers below `next` were stored (their receipt was lost) or
            // declared before, and are ignored. Compared without
            // materialising the range: the sequence number is the client's.
            let open = gap.iter().copied().filter(|s| *s >= next);
            if !gap.is_empty() && open.eq(next..sequence) {
                Step::Extends
            } else {
                Step::UndeclaredJump
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_rule() {
        let last = Some("d4");
        assert_eq!(step(5, last, 5, Some("d4"), &[]), Step::Extends);
        assert_eq!(step(5, last, 5, Some("dx"), &[]), Step::WrongPrevious);
        assert_eq!(step(5, last, 4, Some("d3"), &[]), Step::Behind);
        assert_eq!(step(5, last, 7, Some("d6"), &[]), Step::UndeclaredJump);
        assert_eq!(step(5, last, 7, Some("d6"), &[5, 6]), Step::Extends);
        assert_eq!(step(5, last, 7, Some("d6"), &[6]), Step::UndeclaredJump);
        // Numbers already stored may be named again.
        assert_eq!(step(5, last, 7, None, &[3, 4, 5, 6]), Step::Extends);
        assert_eq!(step(5, last, u64::MAX, None, &[5]), Step::UndeclaredJump);
        assert_eq!(step(1, None, 1, None, &[]), Step::Extends);
    }
}
