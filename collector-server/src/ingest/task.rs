//! The writer task's state and what it answers: the one owner of every
//! write of evidence, whose methods are spread by what they do (`batch`,
//! `upkeep`, and the loop in `writer`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use annexa_checks::pack::PackSet;
use tokio::sync::oneshot;

use super::acceptance::Rejection;
use super::chain::Chain;
use crate::conformity::index::Index;
use crate::log::{Log, Signed};
use crate::metrics::Metrics;
use crate::store::Store;

/// What the writer answers for an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// When it was accepted (the original time for a duplicate).
    pub accepted_at: String,
    /// Whether it had been accepted before.
    pub duplicate: bool,
    /// Its leaf index in the evidence log.
    pub log_index: Option<u64>,
    /// The newest signed checkpoint once it was committed (covers it).
    pub checkpoint: Arc<Signed>,
}

/// What the writer needs to keep the evidence log.
#[derive(Clone)]
pub struct LogSettings {
    /// The log.
    pub log: Arc<Log>,
    /// A checkpoint is stored at least this often while the log grows.
    pub checkpoint_every: Duration,
    /// Payloads older than this many seconds are pruned, with the period
    /// as configured (`400d`) for the record.
    pub retention: Option<(i64, String)>,
}

/// What the writer needs to keep conformity current.
#[derive(Clone)]
pub struct Conformity {
    /// The in-memory index the API reads.
    pub index: Arc<Index>,
    /// The packs that map checks to controls.
    pub packs: Arc<PackSet>,
    /// How often to look for staleness, SoA versions imported elsewhere and
    /// agents changed elsewhere.
    pub sweep_every: Duration,
}

/// Where the writer sends its answer for one envelope.
pub(super) type Reply = oneshot::Sender<Result<Committed, Rejection>>;

/// The writer task's state: what it writes to, and each agent's chain as
/// far as it has decided it.
pub(super) struct WriterTask {
    pub(super) store: Arc<dyn Store>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) conf: Conformity,
    pub(super) log: LogSettings,
    /// By agent number; dropped whenever the store may know better.
    pub(super) chains: HashMap<i64, Chain>,
}
