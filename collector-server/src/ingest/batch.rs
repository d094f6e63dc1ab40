//! One batch through the writer, as named steps: each envelope is decided
//! against its agent's chain ([`acceptance::decide`]); an accepted one is
//! admitted (its chain moves, conformity is evaluated, its log leaf is
//! staged); the batch commits with its log entries in one transaction;
//! then every envelope gets its reply. A batch that met another
//! collector's appends comes back to be decided again.

use std::collections::HashMap;
use std::sync::Arc;

use annexa_checks::ControlId;
use annexa_evidence::AgentId;
use annexa_evidence::api::codes;
use annexa_evidence::log::LogEntry;

use super::acceptance::{self, Checked, Decision, Rejection};
use super::chain::{Chain, chain_of};
use super::task::{Committed, Reply, WriterTask};
use crate::clock;
use crate::conformity::index::{Index, Stored};
use crate::conformity::{self, Cause, Policy, RunProfile};
use crate::log::{Log, Signed, Staged};
use crate::store::{Accepted, ConformityChange, LatestChange, StoreError};

/// An envelope waiting for the writer's answer.
pub(super) struct Submission {
    pub(super) checked: Checked,
    pub(super) reply: Reply,
}

/// What became of a batch.
pub(super) enum Outcome {
    /// Stored and acknowledged.
    Stored,
    /// Nothing stored: nothing needed storing, or the store refused and
    /// the agents were answered with errors.
    NotStored,
    /// Refused because another collector appended first: these are
    /// decided again, after its entries were taken in.
    Retry(Vec<Submission>),
}

/// What a batch has admitted so far.
struct Batch {
    /// The acceptance time of every envelope in the batch.
    now: String,
    now_unix: i64,
    policy: Option<Arc<Policy>>,
    /// States this batch has already moved, ahead of the index (which is
    /// updated only after the commit).
    pending: HashMap<(i64, ControlId), Option<Stored>>,
    profiles: HashMap<i64, RunProfile>,
    rows: Vec<Accepted>,
    /// In the order of `rows`, each with its leaf index.
    waiting: Vec<(Submission, u64)>,
    /// Agents whose chain this batch moves, with their ids.
    touched: HashMap<i64, String>,
    staged: Staged,
}

/// Where a committed batch's leaves went: after another collector's
/// entries (its own staging and how many those were), or where staged.
struct Placement {
    relogged: Option<(Staged, u64)>,
    signed: Arc<Signed>,
}

impl Batch {
    fn new(log: &Log, policy: Option<Arc<Policy>>) -> Batch {
        Batch {
            now: clock::now_rfc3339(),
            now_unix: clock::now_unix(),
            policy,
            pending: HashMap::new(),
            profiles: HashMap::new(),
            rows: Vec::new(),
            waiting: Vec::new(),
            touched: HashMap::new(),
            staged: log.stage(),
        }
    }

    /// Takes an envelope the chain rule accepted into the batch.
    fn admit(&mut self, chain: &mut Chain, index: &Index, job: Submission) {
        let c = &job.checked;
        let no = c.agent.no;
        let previous_next = chain.head.next;
        let (changes, signed_with) = chain.advance(c);
        self.touched.insert(no, c.agent.id.clone());
        if !index.has_host(no) {
            index.upsert_host(&c.agent);
        }
        let conformity = self.evaluate_conformity(index, c, &chain.latest);
        self.profiles.insert(no, c.profile.clone());
        self.stage(job, previous_next, signed_with, changes, conformity);
    }

    /// The conformity changes this envelope makes, given what earlier
    /// envelopes of the batch changed.
    fn evaluate_conformity(
        &mut self,
        index: &Index,
        c: &Checked,
        latest: &conformity::Latest,
    ) -> Vec<ConformityChange> {
        let Some(policy) = &self.policy else {
            return Vec::new();
        };
        let no = c.agent.no;
        let pending = &self.pending;
        let prev = |control: &str| match pending.get(&(no, ControlId::from(control))) {
            Some(p) => p.clone(),
            None => index.stored(no, control),
        };
        let changes = conformity::changes_for_host(
            policy,
            no,
            &c.agent.labels,
            latest,
            &c.profile,
            &prev,
            Cause::Envelope(c.sequence),
            &self.now,
            self.now_unix,
        );
        let mut recorded = Vec::with_capacity(changes.len());
        for (control, stored, change) in changes {
            self.pending.insert((no, control), stored);
            recorded.push(change);
        }
        recorded
    }

    /// Stages the envelope's log leaf and its row.
    fn stage(
        &mut self,
        mut job: Submission,
        previous_next: u64,
        key_id: String,
        changes: Vec<LatestChange>,
        conformity: Vec<ConformityChange>,
    ) {
        // Moved, not copied: a batch tried again gets them back from its
        // rows (`rows` and `waiting` line up).
        let bytes = std::mem::take(&mut job.checked.bytes);
        let c = &job.checked;
        let (log_index, leaf_hash) = self.staged.push(&LogEntry {
            agent_id: AgentId::new(&c.agent.id),
            key_id: c.agent.key_id.clone(),
            sequence: c.sequence,
            envelope_sha256: c.sha256.clone(),
            accepted_at: self.now.clone(),
        });
        self.rows.push(Accepted {
            log_index,
            leaf_hash,
            agent_no: c.agent.no,
            sequence: c.sequence,
            previous_next,
            sha256: c.sha256.clone(),
            received_at: self.now.clone(),
            key_id,
            rotate_to: c.rotate_to.clone(),
            agent_time: c.agent_time.clone(),
            // Record the gap the collector observed (what it never
            // received), not whatever the agent declared.
            gap: (c.sequence > previous_next).then(|| {
                let skipped: Vec<u64> = (previous_next..c.sequence).collect();
                serde_json::to_string(&skipped).unwrap_or_default()
            }),
            summary: c.summary.clone(),
            results: c.results.clone(),
            changes,
            profile: serde_json::to_string(&c.profile).ok(),
            conformity,
            bytes,
        });
        self.waiting.push((job, log_index));
    }

    /// The envelopes again, with their bytes, to be decided anew.
    fn into_retry(self) -> Vec<Submission> {
        self.waiting
            .into_iter()
            .zip(self.rows)
            .map(|((mut job, _), row)| {
                job.checked.bytes = row.bytes;
                job
            })
            .collect()
    }
}

impl WriterTask {
    /// Processes one batch; what became of it ([`Outcome`]). With
    /// `may_retry`, a batch refused because another collector appended
    /// first comes back to be decided again.
    pub(super) async fn process_batch(
        &mut self,
        jobs: Vec<Submission>,
        persist: bool,
        may_retry: bool,
    ) -> Outcome {
        let mut batch = Batch::new(&self.log.log, self.conf.index.policy());
        for job in jobs {
            let chain =
                match chain_of(&mut self.chains, self.store.as_ref(), &job.checked.agent).await {
                    Ok(chain) => chain,
                    Err(e) => {
                        let _ = job.reply.send(Err(Rejection::unavailable(e)));
                        continue;
                    }
                };
            match acceptance::decide(&chain.head, &job.checked) {
                Decision::Accept => batch.admit(chain, &self.conf.index, job),
                Decision::Duplicate => {
                    let next = chain.head.next;
                    self.answer_duplicate(job, next).await;
                }
                // Counted by the API handler, which counts every refusal.
                Decision::Reject(r) => {
                    let _ = job.reply.send(Err(r));
                }
            }
        }
        if batch.rows.is_empty() {
            return Outcome::NotStored;
        }
        match self.commit(&batch, persist).await {
            Ok(placement) => {
                self.reply(batch, placement, persist);
                Outcome::Stored
            }
            Err(e) => self.after_failed_commit(batch, e, may_retry).await,
        }
    }

    /// The same sequence again: the same bytes are answered with the
    /// original acceptance, other bytes are refused.
    async fn answer_duplicate(&self, job: Submission, next: u64) {
        let c = &job.checked;
        let reply = match self.store.envelope(c.agent.no, c.sequence).await {
            Ok(Some((meta, _))) if meta.sha256 == c.sha256 => {
                self.metrics.duplicates.inc();
                Ok(Committed {
                    accepted_at: meta.received_at,
                    duplicate: true,
                    log_index: meta.log_index,
                    checkpoint: self.log.log.latest(),
                })
            }
            Ok(_) => Err(acceptance::different_content(c, next)),
            Err(e) => Err(Rejection::unavailable(e)),
        };
        let _ = job.reply.send(reply);
    }

    /// Commits the batch's rows with their log entries in one transaction.
    async fn commit(&self, batch: &Batch, persist: bool) -> Result<Placement, StoreError> {
        let log = &self.log.log;
        let (signed, append) = log.seal(&batch.staged, persist);
        // Another collector may append between this batch's staging and its
        // turn at the store's write lock, which it waited for. Under the
        // lock, the store hands over what it appended, and the batch goes
        // after it: the decisions stand (the chain heads the store checks
        // say whether they do), only log positions move.
        let mut relogged: Option<(Staged, Arc<Signed>, u64)> = None;
        self.store
            .append_relog(&batch.rows, &append, &mut |others| {
                let ours: Vec<[u8; 32]> = batch.rows.iter().map(|a| a.leaf_hash).collect();
                let (st, signed, append) = log.restage(&batch.staged, others, &ours, persist);
                relogged = Some((st, signed, others.len() as u64));
                Some(append)
            })
            .await?;
        Ok(match relogged {
            Some((staged, signed, moved)) => Placement {
                relogged: Some((staged, moved)),
                signed,
            },
            None => Placement {
                relogged: None,
                signed,
            },
        })
    }

    /// After the commit: the log and the index take the batch in, and
    /// every envelope gets its receipt's facts.
    fn reply(&self, batch: Batch, placement: Placement, persist: bool) {
        let log = &self.log.log;
        let Batch {
            now,
            pending,
            profiles,
            rows,
            mut waiting,
            staged,
            ..
        } = batch;
        let staged = match placement.relogged {
            Some((relogged, moved)) => {
                // The positions moved by what the other collector appended.
                for (_, index) in waiting.iter_mut() {
                    *index += moved;
                }
                // Their hosts are reloaded at the next sweep, not here:
                // under contention the writer's time goes to appends.
                log.note_behind(staged.first..staged.first + moved);
                relogged
            }
            None => staged,
        };
        log.commit(staged, placement.signed.clone(), persist);
        self.metrics.batch_size.observe(rows.len() as f64);
        let mut by_host: HashMap<i64, Vec<(ControlId, Option<Stored>)>> = HashMap::new();
        for ((no, control), stored) in pending {
            by_host.entry(no).or_default().push((control, stored));
        }
        let index = &self.conf.index;
        for (no, profile) in profiles {
            index.apply(no, Some(profile), by_host.remove(&no).unwrap_or_default());
        }
        for (job, log_index) in waiting {
            self.metrics.accepted.inc();
            let _ = job.reply.send(Ok(Committed {
                accepted_at: now.clone(),
                duplicate: false,
                log_index: Some(log_index),
                checkpoint: placement.signed.clone(),
            }));
        }
    }

    /// Nothing of the batch was stored: the tree and the chains go back to
    /// what the store holds, and the batch is decided again (another
    /// collector appended first) or its agents are told why.
    async fn after_failed_commit(
        &mut self,
        batch: Batch,
        e: StoreError,
        may_retry: bool,
    ) -> Outcome {
        // Whichever staging was tried, the tree goes back to what is committed.
        self.log.log.abandon(&batch.staged);
        for no in batch.touched.keys() {
            self.chains.remove(no);
        }
        let envelopes = batch.waiting.len();
        if let StoreError::Conflict(_) = &e {
            // Another collector appended more than the store hands over, or
            // for agents in this batch: take its entries in (reloading those
            // agents' chains) and decide the batch again at once, rather
            // than refusing it to agents that would only send it again.
            match self.take_in().await {
                Ok(n) if n > 0 && may_retry => {
                    tracing::debug!(
                        entries = n,
                        envelopes,
                        "another collector appended to the evidence log: deciding the batch again"
                    );
                    return Outcome::Retry(batch.into_retry());
                }
                Ok(n) if n > 0 => {
                    tracing::warn!(entries = n, envelopes, error = %e, "a batch of evidence met other collectors' appends too often; nothing of it was stored and agents will retry")
                }
                Ok(_) => {
                    tracing::error!(error = %e, envelopes, "committing a batch of evidence failed; {}", commit_hint(&e))
                }
                Err(le) => {
                    tracing::error!(error = %e, log = %le, envelopes, "committing a batch of evidence failed, and the evidence log in the store does not extend this collector's")
                }
            }
        } else {
            tracing::error!(error = %e, envelopes, "committing a batch of evidence failed; {}", commit_hint(&e));
        }
        let revoked = self.revoked_among(&batch.touched, &e).await;
        // Counted by the API handler, which counts every refusal.
        for (job, _) in batch.waiting {
            let _ = job
                .reply
                .send(Err(match revoked.get(&job.checked.agent.no) {
                    Some(id) => {
                        Rejection::new(403, codes::REVOKED_AGENT, format!("agent {id} is revoked"))
                    }
                    None => Rejection::new(
                        503,
                        codes::UNAVAILABLE,
                        format!("storing evidence failed: {e}"),
                    ),
                }));
        }
        Outcome::NotStored
    }

    /// The store refuses to move the chain of a revoked agent. An agent
    /// revoked by another process (`annexa-collector agent revoke`) is
    /// still cached as active by this one, so its next envelope gets here:
    /// it is told it is revoked, not to retry.
    async fn revoked_among(
        &self,
        touched: &HashMap<i64, String>,
        e: &StoreError,
    ) -> HashMap<i64, String> {
        let mut revoked = HashMap::new();
        if !matches!(e, StoreError::Conflict(_)) {
            return revoked;
        }
        for (no, id) in touched {
            if let Ok(Some(a)) = self.store.agent(id).await
                && a.revoked_at.is_some()
            {
                revoked.insert(*no, a.id);
            }
        }
        revoked
    }
}

/// What an operator needs to know of a failed commit: above all whether
/// the store's file system is full (SQLite: "database or disk is full";
/// PostgreSQL: "could not extend file … No space left on device").
fn commit_hint(e: &StoreError) -> &'static str {
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("disk is full")
        || text.contains("no space left")
        || text.contains("could not extend file")
    {
        "no space left on the store's file system: new evidence is refused with 503 until space returns; everything already acknowledged is kept"
    } else {
        "nothing of it was stored and agents will retry"
    }
}
