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
use annexa_evidence::keys::{SigningKey, write_private};
use annexa_evidence::note::Verifier;

use crate::config::CollectorConfig;
use crate::datadir::DataDir;
use crate::store::KeyTransitionRow;

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

/// Rotates the collector's key (the collector must be stopped).
pub async fn rotate(config: &CollectorConfig) -> anyhow::Result<Rotated> {
    use anyhow::Context;
    let dir = DataDir::new(&config.data_dir);
    dir.check()?;
    let _lock = dir.try_lock()?;
    let store = crate::open_store(config).await?;
    let key = dir.load_signing_key()?;
    let origin = crate::log_origin(config, store.as_ref(), &key.public()).await?;
    let old = Verifier::new(&origin, key.public())?;
    if let Some(next) = dir.load_next_signing_key()? {
        let stored = match store.key_transitions().await?.last() {
            Some(row) => Some(
                Transition::open(&row.note)
                    .with_context(|| "the last stored key transition".to_string())?,
            ),
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
        std::fs::remove_file(dir.next_signing_key()).with_context(|| {
            format!(
                "removing {} left by an interrupted rotation",
                dir.next_signing_key().display()
            )
        })?;
    }
    let key = Arc::new(key);
    // Opening checks the stored log and checkpoints with the old key and
    // signs the current size with it.
    let log = crate::log::Log::open(store.as_ref(), key.clone(), &origin)
        .await
        .context("opening the evidence log")?;
    let last = (*log.latest()).clone();
    let (new_key, der) = SigningKey::generate()?;
    write_private(&dir.next_signing_key(), &der)
        .with_context(|| format!("writing {}", dir.next_signing_key().display()))?;
    let note = Transition::sign(&origin, last.size, &key, &new_key)?;
    store
        .record_key_transition(
            &KeyTransitionRow {
                size: last.size,
                note,
                rotated_at: crate::clock::now_rfc3339(),
            },
            &last,
        )
        .await
        .context("recording the key transition")?;
    install(&dir)?;
    Ok(Rotated {
        size: last.size,
        new: Verifier::new(&origin, new_key.public())?,
        old,
        origin,
        resumed: false,
    })
}

/// Replaces `collector.key` with `collector.key.next`, durably.
fn install(dir: &DataDir) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::rename(dir.next_signing_key(), dir.signing_key())
        .with_context(|| format!("replacing {}", dir.signing_key().display()))?;
    std::fs::File::open(&dir.root)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.root.display()))
}
