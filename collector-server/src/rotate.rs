//! `annexa-collector key rotate`: replaces the collector's signing key
//! without breaking anything it signed (docs/security.md, "Rotating the
//! collector's key").
//!
//! With the collector stopped (the data directory's lock is taken), the
//! log is opened and checked with the old key, its checkpoint at the
//! current size is stored, and a transition note signed by both keys is
//! recorded in the same transaction. Only then does the new key replace
//! `collector.key`. The new key waits in `collector.key.next` until that
//! rename: a rotation interrupted before the transition is stored starts
//! over; one interrupted after it is finished by running the command again.

use std::sync::Arc;

use annexa_evidence::collector_keys::Transition;
use annexa_evidence::keys::{KeyError, SigningKey, write_private};
use annexa_evidence::note::{NoteError, Verifier};

use crate::config::CollectorConfig;
use crate::datadir::{DataDir, DataDirError};
use crate::store::{KeyTransitionRow, StoreError};

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The log's origin.
    pub origin: String,
    /// The log size the new key takes effect at.
    pub size: u64,
    /// The key retired.
    pub old: Verifier,
    /// The key in force now.
    pub new: Verifier,
    /// Whether this run only finished a rotation interrupted earlier.
    pub resumed: bool,
}

/// Why a rotation failed; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The data directory: its lock (a collector is running), its keys.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key or a note could not be made or read.
    #[error("{what}")]
    Note {
        /// What was being made or read.
        what: &'static str,
        /// Why.
        source: NoteError,
    },
    /// A new key could not be generated.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The evidence log does not open or does not verify with the old key.
    #[error("opening the evidence log")]
    Log(#[from] crate::log::LogError),
    /// Recording the transition failed; nothing changed.
    #[error("recording the key transition: {0}")]
    Record(StoreError),
    /// A key file could not be written, replaced or removed.
    #[error("{what}")]
    Io {
        /// The file and what was done to it.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RotateError {
    move |source| RotateError::Io { what, source }
}

fn note(what: &'static str) -> impl FnOnce(NoteError) -> RotateError {
    move |source| RotateError::Note { what, source }
}

/// Rotates the collector's key (the collector must be stopped).
pub async fn rotate(config: &CollectorConfig) -> Result<Rotated, RotateError> {
    let dir = DataDir::new(&config.data_dir);
    dir.check()?;
    let _lock = dir.try_lock()?;
    let store = crate::open_store(config).await?;
    let key = dir.load_signing_key()?;
    let origin = crate::log_origin(config, store.as_ref(), &key.public()).await?;
    let old = Verifier::new(&origin, key.public()).map_err(note("the log's verifier key"))?;
    if let Some(next) = dir.load_next_signing_key()? {
        let stored = match store.key_transitions().await?.last() {
            Some(row) => {
                Some(Transition::open(&row.note).map_err(note("the last stored key transition"))?)
            }
            None => None,
        };
        if let Some(t) = stored.filter(|t| t.new.key == next.public() && t.old == old) {
            install(&dir)?;
            return Ok(Rotated {
                origin,
                size: t.size,
                old: t.old,
                new: t.new,
                resumed: true,
            });
        }
        // The transition never reached the store: that rotation did not
        // happen, and its key signed nothing.
        std::fs::remove_file(dir.next_signing_key()).map_err(io(format!(
            "removing {} left by an interrupted rotation",
            dir.next_signing_key().display()
        )))?;
    }
    let key = Arc::new(key);
    // Opening checks the stored log and checkpoints with the old key and
    // signs the current size with it.
    let log = crate::log::Log::open(store.as_ref(), key.clone(), &origin).await?;
    let last = (*log.latest()).clone();
    let (new_key, der) = SigningKey::generate()?;
    write_private(&dir.next_signing_key(), &der)
        .map_err(io(format!("writing {}", dir.next_signing_key().display())))?;
    let signed = Transition::sign(&origin, last.size, &key, &new_key)
        .map_err(note("signing the key transition"))?;
    store
        .record_key_transition(
            &KeyTransitionRow {
                size: last.size,
                note: signed,
                rotated_at: crate::clock::now_rfc3339(),
            },
            &last,
        )
        .await
        .map_err(RotateError::Record)?;
    install(&dir)?;
    Ok(Rotated {
        size: last.size,
        new: Verifier::new(&origin, new_key.public()).map_err(note("the new verifier key"))?,
        old,
        origin,
        resumed: false,
    })
}

/// Replaces `collector.key` with `collector.key.next`, durably.
fn install(dir: &DataDir) -> Result<(), RotateError> {
    std::fs::rename(dir.next_signing_key(), dir.signing_key())
        .map_err(io(format!("replacing {}", dir.signing_key().display())))?;
    std::fs::File::open(&dir.root)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.root.display())))
}
