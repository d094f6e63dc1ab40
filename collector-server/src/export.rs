//! Export of the whole evidence log with its envelopes as one bundle
//! (JSON Lines, docs/evidence-format.md), for `annexa verify` offline and
//! for records kept outside the collector.

use annexa_evidence::AgentId;
use annexa_evidence::encoding::hex;
use annexa_evidence::log::{
    AgentKey, BUNDLE_FORMAT, BundleEntry, End, EntryTag, Header, KeyTransition, Record,
    StoredCheckpoint,
};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::clock;
use crate::store::{Store, StoreError};

/// Entries read per query.
const PAGE: u32 = 2000;
/// Bytes gathered before a chunk is handed on.
const CHUNK: usize = 256 * 1024;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The receiving end went away (client disconnected, disk full).
    #[error("the export's destination closed")]
    Closed,
}

struct Out {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Out {
    async fn record(&mut self, r: &impl serde::Serialize) -> Result<(), ExportError> {
        // Serialising these types cannot fail (no maps with non-string keys).
        serde_json::to_writer(&mut self.buf, r).map_err(|_| ExportError::Closed)?;
        self.buf.push(b'\n');
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ExportError> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx.send(chunk).await.map_err(|_| ExportError::Closed)?;
        }
        Ok(())
    }
}

/// The envelope as raw JSON, byte for byte. Stored envelopes are canonical
/// compact JSON; anything else (a row edited behind the collector) is
/// carried as a JSON string, so that the verifier sees the digest differ.
fn raw_envelope(b: Vec<u8>) -> Option<Box<RawValue>> {
    let exact = std::str::from_utf8(&b)
        .ok()
        .filter(|s| !s.contains('\n'))
        .and_then(|s| RawValue::from_string(s.to_string()).ok())
        .filter(|v| v.get().len() == b.len());
    exact.or_else(|| {
        RawValue::from_string(serde_json::to_string(&String::from_utf8_lossy(&b)).ok()?).ok()
    })
}

/// Writes the log as it stands (and everything that vouches for it) to
/// `tx` in chunks; returns the entries written. Checkpoints are read
/// before the size, so every stored one is in the bundle and none can be
/// beyond its entries unless entries were removed.
pub async fn export(
    store: &dyn Store,
    origin: &str,
    retention: Option<String>,
    tx: mpsc::Sender<Vec<u8>>,
) -> Result<u64, ExportError> {
    let checkpoints = store.checkpoints().await?;
    let size = store.log_size().await?;
    let mut out = Out {
        tx,
        buf: Vec::with_capacity(CHUNK + 64 * 1024),
    };
    out.record(&Record::Header(Header {
        format: BUNDLE_FORMAT.into(),
        origin: origin.into(),
        exported_at: clock::now_rfc3339(),
        size,
        retention,
    }))
    .await?;
    for t in store.key_transitions().await? {
        out.record(&Record::KeyTransition(KeyTransition {
            note: t.note,
            rotated_at: t.rotated_at,
        }))
        .await?;
    }
    let mut retired = store.retired_keys().await?;
    for a in store.agents().await? {
        out.record(&Record::Agent(AgentKey {
            retired_keys: retired.remove(&a.id).unwrap_or_default(),
            id: AgentId::from(a.id),
            key_id: a.key_id,
            public_key: a.public_key,
            hostname: a.hostname,
            enrolled_at: a.enrolled_at,
            revoked_at: a.revoked_at,
        }))
        .await?;
    }
    for c in checkpoints {
        out.record(&Record::Checkpoint(StoredCheckpoint {
            note: c.note,
            signed_at: c.signed_at,
        }))
        .await?;
    }
    let mut from = 0;
    let mut written = 0;
    while from < size {
        let rows = store.log_export(from, size, PAGE).await?;
        let Some(last) = rows.last() else { break };
        from = last.index + 1;
        for r in rows {
            // Stored envelopes are canonical compact JSON; anything else
            // (a row edited behind the collector) is carried as a string
            // so that the verifier sees it and reports the digest mismatch.
            let envelope = r.bytes.and_then(raw_envelope);
            out.record(&BundleEntry {
                kind: EntryTag::Entry,
                index: r.index,
                agent: AgentId::from(r.agent_id),
                key_id: r.key_id,
                sequence: r.sequence,
                envelope_sha256: r.envelope_sha256,
                accepted_at: r.accepted_at,
                leaf_hash: hex(&r.leaf_hash),
                envelope,
                pruned_at: r.pruned_at,
            })
            .await?;
            written += 1;
        }
    }
    for u in store.unlogged().await? {
        out.record(&Record::Unlogged(u)).await?;
    }
    for r in store.retention_runs().await? {
        out.record(&Record::Retention(r)).await?;
    }
    out.record(&Record::End(End { entries: written })).await?;
    out.flush().await?;
    Ok(written)
}
