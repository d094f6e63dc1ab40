//! The single writer: one task owns every write of evidence, so each
//! agent's chain and the log's order are decided in one place. Requests
//! reach it through [`Writer`] (a bounded channel); it gathers what arrives
//! within `batch_wait` into one batch (group commit), and between batches
//! does the upkeep on its timers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use annexa_evidence::api::codes;
use tokio::sync::{mpsc, oneshot};

use super::acceptance::{Checked, Rejection};
use super::batch::{Outcome, Submission};
use super::task::{Committed, Conformity, LogSettings, Reply, WriterTask};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

type ReconcileReply = oneshot::Sender<Result<Option<i64>, StoreError>>;

enum Job {
    Envelope {
        checked: Box<Checked>,
        reply: Reply,
    },
    /// Re-evaluate every host against the newest SoA version.
    Reconcile(ReconcileReply),
}

/// The handle through which requests reach the writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on `store`, keeping `index` current. The
    /// caller reconciles once ([`Writer::reconcile`]) before serving.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        conformity: Conformity,
        log: LogSettings,
        batch_max: usize,
        batch_wait: Duration,
    ) -> Writer {
        let batch_max = batch_max.max(1);
        let (tx, rx) = mpsc::channel(batch_max * 4);
        let task = WriterTask {
            store,
            metrics,
            conf: conformity,
            log,
            chains: HashMap::new(),
        };
        tokio::spawn(task.run(rx, batch_max, batch_wait));
        Writer { tx }
    }

    /// Re-evaluates every host against the newest SoA version (after an
    /// import); returns that version.
    pub async fn reconcile(&self) -> Result<Option<i64>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Reconcile(reply))
            .await
            .map_err(|_| StoreError::Broken("the writer stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Broken("the writer stopped".into())))
    }

    /// Submits a checked envelope and waits until it is committed.
    pub async fn submit(&self, checked: Checked) -> Result<Committed, Rejection> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Envelope {
                checked: Box::new(checked),
                reply,
            })
            .await
            .map_err(|_| {
                Rejection::new(503, codes::UNAVAILABLE, "the collector is shutting down")
            })?;
        rx.await.unwrap_or_else(|_| {
            Err(Rejection::new(
                503,
                codes::UNAVAILABLE,
                "the writer stopped before committing",
            ))
        })
    }
}

/// How often a batch is tried again when other collectors appended first:
/// each try takes their entries in, so only a busy pair racing for every
/// batch runs out, and then the agents retry.
const BATCH_RETRIES: u32 = 4;

/// One turn of the loop: envelopes to commit, and reconciles asked for
/// meanwhile (run after the batch, so they see it).
struct Turn {
    envelopes: Vec<Submission>,
    reconciles: Vec<ReconcileReply>,
}

impl Turn {
    fn push(&mut self, job: Job) {
        match job {
            Job::Envelope { checked, reply } => self.envelopes.push(Submission {
                checked: *checked,
                reply,
            }),
            Job::Reconcile(reply) => self.reconciles.push(reply),
        }
    }
}

impl WriterTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>, batch_max: usize, batch_wait: Duration) {
        let mut sweep = tokio::time::interval(self.conf.sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.tick().await;
        let mut checkpoints = tokio::time::interval(self.log.checkpoint_every);
        checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checkpoints.tick().await;
        // The first batch after a start stores its checkpoint at once.
        let mut last_stored = Instant::now()
            .checked_sub(self.log.checkpoint_every)
            .unwrap_or_else(Instant::now);
        loop {
            let first = tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => j,
                    None => break,
                },
                _ = sweep.tick() => {
                    self.sweep().await;
                    continue;
                }
                _ = checkpoints.tick() => {
                    if self.checkpoint_tick().await {
                        last_stored = Instant::now();
                    }
                    continue;
                }
            };
            let turn = gather(first, &mut rx, batch_max, batch_wait).await;
            let mut envelopes = turn.envelopes;
            let mut retries_left = BATCH_RETRIES;
            while !envelopes.is_empty() {
                let persist = last_stored.elapsed() >= self.log.checkpoint_every;
                match self
                    .process_batch(std::mem::take(&mut envelopes), persist, retries_left > 0)
                    .await
                {
                    Outcome::Stored if persist => last_stored = Instant::now(),
                    Outcome::Retry(again) => {
                        envelopes = again;
                        retries_left -= 1;
                    }
                    _ => {}
                }
            }
            for reply in turn.reconciles {
                let _ = reply.send(self.reconcile_all().await);
            }
        }
    }
}

/// Gathers jobs after `first` until the batch is full, `batch_wait` has
/// passed, or a reconcile is asked for.
async fn gather(
    first: Job,
    rx: &mut mpsc::Receiver<Job>,
    batch_max: usize,
    batch_wait: Duration,
) -> Turn {
    let mut turn = Turn {
        envelopes: Vec::new(),
        reconciles: Vec::new(),
    };
    turn.push(first);
    let deadline = Instant::now() + batch_wait;
    while turn.envelopes.len() < batch_max && turn.reconciles.is_empty() {
        match rx.try_recv() {
            Ok(j) => turn.push(j),
            Err(mpsc::error::TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(Some(j)) => turn.push(j),
                    _ => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    turn
}
