//! The agent's watch on the collector's evidence log: it keeps the newest
//! checkpoint it has seen and accepts a new one only with the proof that
//! the log grew from it (RFC 9162 consistency). A checkpoint that cannot be
//! joined to the held one means the collector's log was rewritten or
//! forked: the agent logs it loudly, keeps the old checkpoint, and reports
//! both in its next envelope ([`LogAlert`]).

use annexa_evidence::api::LogState;
use annexa_evidence::collector_keys::{KeyHistory, Transition};
use annexa_evidence::encoding::b64_decode;
use annexa_evidence::keys::PublicKey;
use annexa_evidence::merkle::{Hash, verify_consistency};
use annexa_evidence::note::{Checkpoint, Note, Verifier};
use annexa_evidence::statement::LogAlert;

use crate::state::{Enrollment, StateDir, StateError};

/// The collector's keys as this agent follows them: the key in force and
/// the transitions that led to it from the key it enrolled with.
#[derive(Debug, Clone, Copy)]
pub struct CollectorKeys<'a> {
    /// The key in force.
    pub current: PublicKey,
    /// The transitions followed, oldest first.
    pub transitions: &'a [String],
}

impl CollectorKeys<'_> {
    /// The key history of the log `origin`.
    fn history(&self, origin: &str) -> Result<KeyHistory, String> {
        let current = Verifier::new(origin, self.current).map_err(|e| e.to_string())?;
        KeyHistory::follow(&current, self.transitions).map_err(|e| e.to_string())
    }
}

/// The origin a signed checkpoint names (its first line), unverified.
fn origin_of(note: &str) -> Result<String, String> {
    let parsed = Note::parse(note).map_err(|e| e.to_string())?;
    Ok(parsed
        .text
        .split('\n')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Follows the collector's key transitions a response carries from the
/// key this agent holds, and records the key they lead to (with the
/// transitions) in `enrollment.json`. Returns the key in force. A list
/// the held key is not part of, or any transition not signed by both its
/// keys, is refused: the agent keeps its key, and the receipt signed by
/// the unknown key then fails to verify.
pub fn adopt(
    state: &StateDir,
    enrollment: &mut Enrollment,
    transitions: &[String],
) -> Result<PublicKey, String> {
    let held = enrollment
        .collector_key()
        .map_err(|e| format!("collector_public_key: {e}"))?;
    if transitions.is_empty() || transitions == enrollment.collector_key_transitions.as_slice() {
        return Ok(held);
    }
    // Only its origin is read here: following the chain verifies them all.
    let first = Note::parse(&transitions[0])
        .and_then(|n| Transition::parse_text(&n.text))
        .map_err(|e| format!("the collector's key transition 1: {e}"))?;
    let trusted = Verifier::new(&first.origin, held).map_err(|e| e.to_string())?;
    let history = KeyHistory::follow(&trusted, transitions).map_err(|e| {
        format!(
            "the collector's key transitions do not lead from the key this agent holds ({}): {e}",
            held.key_id()
        )
    })?;
    let current = history.current().key;
    if current != held {
        tracing::warn!(
            previous_key_id = %held.key_id(),
            collector_key_id = %current.key_id(),
            "the collector's signing key was rotated; following its transition, signed by the key \
             this agent held and the new one, from now on receipts and checkpoints are verified \
             with the new key"
        );
    }
    enrollment.collector_public_key = current.to_b64();
    enrollment.collector_key_id = current.key_id();
    enrollment.collector_key_transitions = transitions.to_vec();
    state
        .write_enrollment(enrollment)
        .map_err(|e| format!("recording the collector's new key: {e}"))?;
    Ok(current)
}

/// Checks the checkpoint a response carries against the one held.
/// `Ok(true)`: it extends the held one (or is the first); keep it.
/// `Ok(false)`: it is the held one again (same size and root).
/// `Err(why)`: it is inconsistent with the held one or not the collector's.
pub fn check(
    held: Option<&str>,
    new: &LogState,
    collector: &CollectorKeys,
    receipt_index: Option<u64>,
) -> Result<bool, String> {
    // The key history is followed once, for the new checkpoint's log; the
    // held one must be of the same log.
    let unverified =
        |e: String| format!("the new checkpoint does not verify with the collector's key: {e}");
    let origin = origin_of(&new.checkpoint).map_err(unverified)?;
    let keys = collector.history(&origin).map_err(unverified)?;
    let cp = keys
        .open_checkpoint(&new.checkpoint)
        .map_err(|e| unverified(e.to_string()))?;
    if let Some(i) = receipt_index
        && i >= cp.size
    {
        return Err(format!(
            "the receipt puts the envelope at leaf {i}, but the checkpoint that should cover it has only {} leaves",
            cp.size
        ));
    }
    let Some(held) = held else {
        return Ok(true);
    };
    let no_longer = |e: String| format!("the held checkpoint no longer verifies: {e}");
    let held_origin = origin_of(held).map_err(no_longer)?;
    if held_origin != origin {
        return Err(format!(
            "the log's origin changed from `{held_origin}` to `{origin}`"
        ));
    }
    let old = keys
        .open_checkpoint(held)
        .map_err(|e| no_longer(e.to_string()))?;
    if cp.size < old.size {
        return Err(format!(
            "the log shrank from {} to {} entries",
            old.size, cp.size
        ));
    }
    if cp.size == old.size {
        return if cp.root == old.root {
            Ok(false)
        } else {
            Err(format!("two different roots for the same size {}", cp.size))
        };
    }
    if old.size == 0 {
        return Ok(true);
    }
    if new.consistency_from != Some(old.size) {
        return Err(format!(
            "no consistency proof from size {} was given",
            old.size
        ));
    }
    let proof: Vec<Hash> = new
        .consistency
        .iter()
        .map(|h| b64_decode(h).and_then(|b| b.try_into().ok()))
        .collect::<Option<_>>()
        .ok_or("the consistency proof is not base64 of 32-byte hashes")?;
    verify_consistency(old.size, cp.size, &proof, &old.root, &cp.root)
        .map(|()| true)
        .map_err(|e| {
            format!(
                "the consistency proof from {} to {} fails: {e}",
                old.size, cp.size
            )
        })
}

/// The size of the held checkpoint, for `?log_size=`.
pub fn held_size(state: &StateDir) -> Option<u64> {
    let note = state.checkpoint().ok()??;
    let parsed = Note::parse(&note).ok()?;
    Checkpoint::parse_text(&parsed.text).ok().map(|c| c.size)
}

/// Applies a response's log state: keeps the new checkpoint, or records an
/// alert for the next envelope.
pub fn observe(
    state: &StateDir,
    new: &LogState,
    collector: &CollectorKeys,
    receipt_index: Option<u64>,
) -> Result<(), StateError> {
    let held = state.checkpoint()?;
    match check(held.as_deref(), new, collector, receipt_index) {
        Ok(true) => state.write_checkpoint(&new.checkpoint),
        Ok(false) => Ok(()),
        Err(why) => {
            let held = held.unwrap_or_default();
            if !held.is_empty() && state.log_alert_reported(&held) {
                tracing::error!(
                    error = %why,
                    "the collector's evidence log is still inconsistent with the checkpoint this \
                     agent holds (already reported in an envelope); remove the state directory's \
                     `checkpoint` file only once the collector's operators have explained it"
                );
                return Ok(());
            }
            tracing::error!(
                error = %why,
                held = %held,
                shown = %new.checkpoint,
                "THE COLLECTOR'S EVIDENCE LOG IS INCONSISTENT with the checkpoint this agent holds: \
                 evidence may have been removed or rewritten. Keeping the old checkpoint and \
                 reporting both in the next envelope."
            );
            state.write_log_alert(&LogAlert {
                detected_at: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                previous_checkpoint: held,
                new_checkpoint: new.checkpoint.clone(),
                error: why,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annexa_evidence::encoding::b64;
    use annexa_evidence::keys::SigningKey;
    use annexa_evidence::merkle::{MemoryTree, consistency_proof, leaf_hash};

    fn tree(n: u64) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        t
    }

    fn note(key: &SigningKey, size: u64, root: Hash) -> String {
        Checkpoint {
            origin: "annexa/test".into(),
            size,
            root,
        }
        .sign(key)
        .unwrap()
    }

    /// The log of `t` grown from size 7 to 20, with its proof, signed by
    /// `key`.
    fn grown_from_7(t: &MemoryTree, key: &SigningKey) -> LogState {
        LogState {
            checkpoint: note(key, 20, t.root()),
            consistency_from: Some(7),
            consistency: consistency_proof(t, 7, 20)
                .unwrap()
                .iter()
                .map(|h| b64(h))
                .collect(),
        }
    }

    #[test]
    fn growth_with_a_proof_is_accepted_and_anything_else_is_an_alert() {
        let key = SigningKey::from_seed(&[3u8; 32]).unwrap();
        let pk = CollectorKeys {
            current: key.public(),
            transitions: &[],
        };
        let t = tree(20);
        let held = note(&key, 7, t.root_at(7).unwrap());
        let grown = grown_from_7(&t, &key);
        let proof = grown.consistency.clone();
        assert_eq!(check(Some(&held), &grown, &pk, Some(19)), Ok(true));
        assert_eq!(check(None, &grown, &pk, None), Ok(true));
        // The receipt's leaf must be inside the checkpoint.
        assert!(check(Some(&held), &grown, &pk, Some(20)).is_err());
        // A rewritten log: same sizes, other leaves.
        let forked = tree(25);
        let mut other = MemoryTree::new();
        for i in 0..20u64 {
            other.push(leaf_hash(&(i + 1000).to_be_bytes()));
        }
        let fork = LogState {
            checkpoint: note(&key, 20, other.root()),
            consistency_from: Some(7),
            consistency: proof,
        };
        assert!(check(Some(&held), &fork, &pk, None).is_err());
        // Shrinking, and a proof missing.
        let shrunk = LogState {
            checkpoint: note(&key, 5, forked.root_at(5).unwrap()),
            consistency_from: None,
            consistency: vec![],
        };
        assert!(
            check(Some(&held), &shrunk, &pk, None)
                .unwrap_err()
                .contains("shrank")
        );
        let unproven = LogState {
            consistency_from: None,
            consistency: vec![],
            ..grown.clone()
        };
        assert!(check(Some(&held), &unproven, &pk, None).is_err());
        // Not the collector's key.
        let other_key = SigningKey::from_seed(&[4u8; 32]).unwrap();
        let foreign = LogState {
            checkpoint: note(&other_key, 20, t.root()),
            ..grown
        };
        assert!(check(Some(&held), &foreign, &pk, None).is_err());
    }

    #[test]
    fn a_rotated_key_is_followed_only_through_its_transition() {
        let (old, new) = (
            SigningKey::from_seed(&[3u8; 32]).unwrap(),
            SigningKey::from_seed(&[5u8; 32]).unwrap(),
        );
        let t = tree(20);
        let held = note(&old, 7, t.root_at(7).unwrap());
        let grown = grown_from_7(&t, &new);
        let transitions = vec![Transition::sign("annexa/test", 10, &old, &new).unwrap()];
        let rotated = CollectorKeys {
            current: new.public(),
            transitions: &transitions,
        };
        assert_eq!(check(Some(&held), &grown, &rotated, Some(19)), Ok(true));
        // Without the transition the held checkpoint is a stranger's.
        let bare = CollectorKeys {
            current: new.public(),
            transitions: &[],
        };
        assert!(check(Some(&held), &grown, &bare, None).is_err());
        // The retired key signs nothing beyond the size it was retired at.
        let late = LogState {
            checkpoint: note(&old, 20, t.root()),
            ..grown
        };
        let e = check(Some(&held), &late, &rotated, None).unwrap_err();
        assert!(e.contains("signs sizes 0 to 10 only"), "{e}");
    }
}
