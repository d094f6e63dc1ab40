//! `annexa-collector log key|checkpoint|export`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{CommandError, log_origin};
use crate::config::CollectorConfig;
use crate::open_store;

/// The log's verifier key (C2SP note verifier), what auditors trust.
pub async fn key(cfg: &CollectorConfig) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let (origin, key) = log_origin(cfg, store.as_ref()).await?;
    let v = annexa_evidence::note::Verifier::new(&origin, key.public())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    Ok(format!("{v}\n"))
}

/// The newest stored checkpoint, as its signed note.
pub async fn checkpoint(cfg: &CollectorConfig) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    match store.latest_checkpoint().await? {
        Some(c) => Ok(c.note),
        None => Err(CommandError::Failed(
            "the log has no stored checkpoint yet".into(),
        )),
    }
}

/// Writes the log bundle to `out` (created, mode 0600, never overwritten);
/// returns the line that says what was exported.
pub async fn export(cfg: &CollectorConfig, out: &Path) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let (origin, _) = log_origin(cfg, store.as_ref()).await?;
    let label = out.display().to_string();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(CommandError::io(format!("creating {label}")))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(file);
        while let Some(chunk) = rx.blocking_recv() {
            w.write_all(&chunk)?;
        }
        w.into_inner()?.sync_all()?;
        Ok(())
    });
    let written = crate::export::export(store.as_ref(), &origin, cfg.retention.clone(), tx).await;
    writer
        .await
        .map_err(|e| CommandError::Failed(format!("the bundle writer stopped: {e}")))?
        .map_err(CommandError::io(format!("writing {label}")))?;
    let written = written?;
    Ok(format!(
        "exported {written} log entries of {origin} to {label}"
    ))
}
