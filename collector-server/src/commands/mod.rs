//! The bodies of `annexa-collector`'s offline commands (everything but
//! `serve`): each takes a loaded configuration and typed arguments, does
//! its work and returns what the command prints, or why it failed. The
//! binary only parses arguments, prints and picks the exit code.

pub mod admin;
pub mod log;
pub mod migrate;
pub mod people;
pub mod soa;

use std::path::Path;

use crate::config::CollectorConfig;
use crate::datadir::{DataDir, DataDirError};
use crate::store::StoreError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The input was checked and refused; the text lists every problem
    /// (printed as it is, exit code 1).
    #[error("{0}")]
    Refused(String),
    /// An argument or the configuration is wrong; the text names it.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{what}")]
    Io {
        /// The file and what was done to it.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The data directory.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The evidence log does not open or does not verify.
    #[error("{what}")]
    Log {
        /// Which log.
        what: String,
        /// Why.
        source: crate::log::LogError,
    },
    /// Exporting the log bundle failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// Rotating the collector's key failed.
    #[error(transparent)]
    Rotate(#[from] crate::rotate::RotateError),
    /// Anything else, said in full.
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CommandError {
        let what = what.into();
        move |source| CommandError::Io { what, source }
    }
}

/// The configuration's check packs.
fn packs(cfg: &CollectorConfig) -> Result<annexa_checks::pack::PackSet, CommandError> {
    cfg.packs().map_err(CommandError::Usage)
}

/// The log's origin: the one its stored checkpoints carry, else the
/// configured or default one; with the collector's key.
async fn log_origin(
    cfg: &CollectorConfig,
    store: &dyn crate::store::Store,
) -> Result<(String, annexa_evidence::keys::SigningKey), CommandError> {
    let key = DataDir::new(&cfg.data_dir).load_signing_key()?;
    let stored = crate::stored_origin(store).await?;
    Ok((stored.unwrap_or_else(|| cfg.origin(&key.public())), key))
}

fn read_text(file: &Path) -> Result<String, CommandError> {
    std::fs::read_to_string(file).map_err(CommandError::io(format!("reading {}", file.display())))
}
