//! Rotation of the collector's key: transition notes, each signed by the
//! key it retires and the key it brings, and the key history a chain of
//! them makes (docs/security.md, "Rotating the collector's key").
//!
//! A transition is a C2SP signed note whose text is
//!
//! ```text
//! annexa/collector-key-transition/v1
//! <origin>
//! <log size N>
//! <old verifier key>
//! <new verifier key>
//! ```
//!
//! with a signature by each of the two keys, both under the origin as key
//! name. Checkpoints of sizes up to N may be signed by the old key, from N
//! on by the new one. Whoever trusts any key of a chain of transitions can
//! follow it to all the others: each link is vouched for by both its ends,
//! so an agent that pinned the first key and an auditor handed the newest
//! verify the same checkpoints.

use crate::keys::SigningKey;
use crate::note::{Checkpoint, Note, NoteError, Verifier, parse_size, sign_all};

/// The first line of a transition's text.
pub const TRANSITION_MAGIC: &str = "annexa/collector-key-transition/v1";

/// Why a list of transitions does not make a key history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// A transition is not a valid note signed by both of its keys.
    #[error("key transition {index}: {source}")]
    Note {
        /// 1-based position in the list.
        index: usize,
        /// What is wrong with it.
        source: NoteError,
    },
    /// Two transitions in a row do not join.
    #[error("key transitions {} and {}: {why}", .index - 1, .index)]
    Broken {
        /// 1-based position of the second.
        index: usize,
        /// What does not join.
        why: String,
    },
    /// The trusted key is none of the chain's keys.
    #[error(
        "the collector key {key} is none of the keys the log's transitions name ({chain}): it is not this log's key"
    )]
    Untrusted {
        /// The trusted key.
        key: String,
        /// The chain's keys, oldest first.
        chain: String,
    },
}

/// One rotation of the collector's key, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The log's origin (also both keys' name).
    pub origin: String,
    /// The log size it takes effect at.
    pub size: u64,
    /// The key retired: it signs checkpoints up to `size`.
    pub old: Verifier,
    /// The key brought in: it signs checkpoints from `size` on.
    pub new: Verifier,
}

impl Transition {
    /// The note text.
    pub fn text(&self) -> String {
        format!(
            "{TRANSITION_MAGIC}\n{}\n{}\n{}\n{}\n",
            self.origin, self.size, self.old, self.new
        )
    }

    /// Signs the transition from `old` to `new` at log size `size` with
    /// both keys.
    pub fn sign(
        origin: &str,
        size: u64,
        old: &SigningKey,
        new: &SigningKey,
    ) -> Result<String, NoteError> {
        let t = Transition {
            origin: origin.to_string(),
            size,
            old: Verifier::new(origin, old.public())?,
            new: Verifier::new(origin, new.public())?,
        };
        if t.old.key == t.new.key {
            return Err(NoteError::Malformed(
                "a key transition needs two different keys".into(),
            ));
        }
        sign_all(&t.text(), &[(origin, old), (origin, new)])
    }

    /// Parses a transition's text (not its signatures).
    pub fn parse_text(text: &str) -> Result<Transition, NoteError> {
        let bad = |m: String| NoteError::Malformed(format!("key transition: {m}"));
        let lines: Vec<&str> = text.split('\n').collect();
        let [magic, origin, size, old, new, ""] = lines[..] else {
            return Err(bad(format!(
                "expected 5 lines (magic, origin, size, old key, new key), found {}",
                lines.len().saturating_sub(1)
            )));
        };
        if magic != TRANSITION_MAGIC {
            return Err(bad(format!(
                "the first line is `{magic}`, not `{TRANSITION_MAGIC}`"
            )));
        }
        let size = parse_size(size).map_err(bad)?;
        let old = Verifier::parse(old)?;
        let new = Verifier::parse(new)?;
        if old.name != origin || new.name != origin {
            return Err(bad(format!(
                "the keys are named `{}` and `{}`, the origin is `{origin}`",
                old.name, new.name
            )));
        }
        if old.key == new.key {
            return Err(bad("the old and the new key are the same".into()));
        }
        Ok(Transition {
            origin: origin.to_string(),
            size,
            old,
            new,
        })
    }

    /// Parses a transition and checks that both keys it names signed it.
    pub fn open(note: &str) -> Result<Transition, NoteError> {
        let parsed = Note::parse(note)?;
        let t = Transition::parse_text(&parsed.text)?;
        parsed.verify(&t.old)?;
        parsed.verify(&t.new)?;
        Ok(t)
    }
}

/// A key of the log and the checkpoint sizes it may sign (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpan {
    /// The key.
    pub verifier: Verifier,
    /// The smallest size it signs.
    pub from: u64,
    /// The largest, once it is retired.
    pub until: Option<u64>,
}

impl KeySpan {
    fn covers(&self, size: u64) -> bool {
        self.from <= size && self.until.is_none_or(|u| size <= u)
    }
}

/// The collector's keys over the life of its log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHistory {
    spans: Vec<KeySpan>,
    notes: Vec<String>,
}

impl KeyHistory {
    /// A log that has only ever had one key.
    pub fn single(verifier: Verifier) -> KeyHistory {
        KeyHistory {
            spans: vec![KeySpan {
                verifier,
                from: 0,
                until: None,
            }],
            notes: Vec::new(),
        }
    }

    /// The history that `notes` (transitions, oldest first) make, if
    /// `trusted` is one of its keys: every transition signed by both its
    /// keys, each starting from the key the one before brought in, at a
    /// size no smaller.
    pub fn follow(trusted: &Verifier, notes: &[String]) -> Result<KeyHistory, TransitionError> {
        let mut chain: Vec<Transition> = Vec::with_capacity(notes.len());
        for (i, note) in notes.iter().enumerate() {
            let index = i + 1;
            let t =
                Transition::open(note).map_err(|source| TransitionError::Note { index, source })?;
            if t.origin != trusted.name {
                return Err(TransitionError::Note {
                    index,
                    source: NoteError::Malformed(format!(
                        "it is for log `{}`, not `{}`",
                        t.origin, trusted.name
                    )),
                });
            }
            if let Some(prev) = chain.last() {
                if t.old != prev.new {
                    return Err(TransitionError::Broken {
                        index,
                        why: format!(
                            "the first brings in key {}, the second retires key {}",
                            prev.new, t.old
                        ),
                    });
                }
                if t.size < prev.size {
                    return Err(TransitionError::Broken {
                        index,
                        why: format!(
                            "the second takes effect at size {}, before the first (size {})",
                            t.size, prev.size
                        ),
                    });
                }
            }
            chain.push(t);
        }
        let Some(first) = chain.first() else {
            return Ok(KeyHistory::single(trusted.clone()));
        };
        let mut spans = vec![KeySpan {
            verifier: first.old.clone(),
            from: 0,
            until: Some(first.size),
        }];
        for (i, t) in chain.iter().enumerate() {
            spans.push(KeySpan {
                verifier: t.new.clone(),
                from: t.size,
                until: chain.get(i + 1).map(|next| next.size),
            });
        }
        if !spans.iter().any(|s| s.verifier == *trusted) {
            return Err(TransitionError::Untrusted {
                key: trusted.to_string(),
                chain: spans
                    .iter()
                    .map(|s| format!("{:08x}", s.verifier.id))
                    .collect::<Vec<_>>()
                    .join(" → "),
            });
        }
        Ok(KeyHistory {
            spans,
            notes: notes.to_vec(),
        })
    }

    /// The key in force now: it signs new checkpoints, receipts and reports.
    pub fn current(&self) -> &Verifier {
        // `single` and `follow` never leave it empty.
        &self.spans[self.spans.len() - 1].verifier
    }

    /// Every key with the sizes it signs, oldest first.
    pub fn spans(&self) -> &[KeySpan] {
        &self.spans
    }

    /// The transitions, as given.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Opens a signed checkpoint with a key in force at its size. One
    /// signed by a key of the log outside that key's span is refused: a
    /// retired key signs nothing beyond its last size.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let parsed = Note::parse(note)?;
        let size = Checkpoint::parse_text(&parsed.text)?.size;
        let mut first_err = None;
        for span in self.spans.iter().rev().filter(|s| s.covers(size)) {
            match Checkpoint::open(note, &span.verifier) {
                Ok(cp) => return Ok(cp),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for span in self.spans.iter().filter(|s| !s.covers(size)) {
            if Checkpoint::open(note, &span.verifier).is_ok() {
                return Err(NoteError::Checkpoint(format!(
                    "it covers {size} entries but is signed by key {:08x}, which signs sizes {} to {} only",
                    span.verifier.id,
                    span.from,
                    span.until.map_or("now".to_string(), |u| u.to_string())
                )));
            }
        }
        Err(first_err
            .unwrap_or_else(|| NoteError::Unsigned(format!("the key in force at size {size}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32]).unwrap()
    }

    fn v(k: &SigningKey) -> Verifier {
        Verifier::new("annexa.test/log", k.public()).unwrap()
    }

    fn cp(k: &SigningKey, size: u64) -> String {
        Checkpoint {
            origin: "annexa.test/log".into(),
            size,
            root: [size as u8; 32],
        }
        .sign(k)
        .unwrap()
    }

    #[test]
    fn a_transition_is_signed_by_both_keys_and_binds_every_field() {
        let (a, b) = (key(1), key(2));
        let note = Transition::sign("annexa.test/log", 40, &a, &b).unwrap();
        let t = Transition::open(&note).unwrap();
        assert_eq!((t.size, &t.old, &t.new), (40, &v(&a), &v(&b)));
        assert_eq!(Note::parse(&note).unwrap().signatures.len(), 2);
        // Another size, or a signature dropped.
        let moved = note.replacen("\n40\n", "\n41\n", 1);
        assert!(matches!(
            Transition::open(&moved),
            Err(NoteError::BadSignature(_))
        ));
        let one_sig = {
            let mut lines: Vec<&str> = note.lines().collect();
            lines.pop();
            lines.join("\n") + "\n"
        };
        assert!(matches!(
            Transition::open(&one_sig),
            Err(NoteError::Unsigned(_))
        ));
        assert!(Transition::sign("annexa.test/log", 1, &a, &a).is_err());
    }

    #[test]
    fn a_chain_is_followed_from_any_of_its_keys() {
        let (a, b, c) = (key(1), key(2), key(3));
        let notes = vec![
            Transition::sign("annexa.test/log", 10, &a, &b).unwrap(),
            Transition::sign("annexa.test/log", 25, &b, &c).unwrap(),
        ];
        for trusted in [&a, &b, &c] {
            let h = KeyHistory::follow(&v(trusted), &notes).unwrap();
            assert_eq!(h.current(), &v(&c));
            // a signs up to 10, b from 10 to 25, c from 25 on.
            assert!(h.open_checkpoint(&cp(&a, 10)).is_ok());
            assert!(h.open_checkpoint(&cp(&b, 10)).is_ok());
            assert!(h.open_checkpoint(&cp(&b, 25)).is_ok());
            assert!(h.open_checkpoint(&cp(&c, 99)).is_ok());
            let late = h.open_checkpoint(&cp(&a, 11)).unwrap_err().to_string();
            assert!(late.contains("signs sizes 0 to 10 only"), "{late}");
            assert!(h.open_checkpoint(&cp(&b, 26)).is_err());
            assert!(h.open_checkpoint(&cp(&c, 24)).is_err());
        }
        let stranger = KeyHistory::follow(&v(&key(9)), &notes).unwrap_err();
        assert!(matches!(stranger, TransitionError::Untrusted { .. }));
        // Out of order, or a link missing.
        let swapped = vec![notes[1].clone(), notes[0].clone()];
        assert!(matches!(
            KeyHistory::follow(&v(&a), &swapped),
            Err(TransitionError::Broken { index: 2, .. })
        ));
        let gap = vec![
            notes[0].clone(),
            Transition::sign("annexa.test/log", 30, &key(4), &key(5)).unwrap(),
        ];
        assert!(KeyHistory::follow(&v(&a), &gap).is_err());
        let shrinking = vec![
            notes[0].clone(),
            Transition::sign("annexa.test/log", 5, &b, &c).unwrap(),
        ];
        assert!(KeyHistory::follow(&v(&a), &shrinking).is_err());
        let other_log = vec![Transition::sign("annexa.test/other", 10, &a, &b).unwrap()];
        assert!(KeyHistory::follow(&v(&a), &other_log).is_err());
        // No transitions: the trusted key alone, at every size.
        let h = KeyHistory::follow(&v(&a), &[]).unwrap();
        assert!(h.open_checkpoint(&cp(&a, 1000)).is_ok());
    }

    #[test]
    fn malformed_transitions_are_named() {
        let (a, b) = (key(1), key(2));
        let note = Transition::sign("annexa.test/log", 7, &a, &b).unwrap();
        let t = Transition::open(&note).unwrap();
        for (text, expect) in [
            (t.text().replacen(TRANSITION_MAGIC, "x", 1), "first line"),
            (t.text().replacen("\n7\n", "\n07\n", 1), "leading zeros"),
            (t.text() + "extra\n", "expected 5 lines"),
        ] {
            let e = Transition::parse_text(&text).unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }
}
