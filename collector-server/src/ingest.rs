//! The ingest path: verify an envelope (on the request's task, so that
//! signature checks use every core), then hand it to the single writer,
//! which enforces each agent's sequence and hash chain, commits batches in
//! one transaction (group commit), and only then releases the receipts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use annexa_evidence::api::codes;
use annexa_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::keys::PublicKey;
use annexa_evidence::statement::{parse_scan_statement, subject_name};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::metrics::Metrics;
use crate::store::{Accepted, AgentRecord, LatestChange, Store, StoreError};

/// Why an envelope is refused; maps to an HTTP status and API error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// API error code.
    pub code: &'static str,
    /// Message for the agent's log.
    pub message: String,
    /// For sequence errors.
    pub expected_sequence: Option<u64>,
}

impl Rejection {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            code,
            message: message.into(),
            expected_sequence: None,
        }
    }

    fn sequence(message: impl Into<String>, expected: u64) -> Rejection {
        Rejection {
            expected_sequence: Some(expected),
            ..Rejection::new(409, codes::SEQUENCE, message)
        }
    }
}

/// An envelope whose signature and statement have been checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The agent that signed it.
    pub agent: AgentRecord,
    /// Its sequence number.
    pub sequence: u64,
    /// Its declared previous digest.
    pub previous: Option<String>,
    /// Declared dropped sequences.
    pub gap: Option<Vec<u64>>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Summary counts (JSON).
    pub summary: String,
    /// `[{check_id, status}]` (JSON).
    pub results: String,
    /// (check, status, observed) for the latest-results table.
    pub latest: Vec<(String, String, Option<String>)>,
    /// The bytes as received.
    pub bytes: Vec<u8>,
}

/// Looks up the agent that signed an envelope.
pub async fn signer(
    store: &dyn Store,
    cache: &AgentCache,
    env: &Envelope,
) -> Result<AgentRecord, Rejection> {
    // Key ids are hints: try each signature's (normalised) key id until one
    // names an enrolled agent; the signature is then verified with the key
    // the collector holds, never with anything the envelope says.
    let hints: Vec<String> = env
        .signatures
        .iter()
        .map(|s| s.keyid.trim().to_ascii_lowercase())
        .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    if hints.is_empty() {
        return Err(Rejection::new(
            401,
            codes::UNKNOWN_AGENT,
            "no signature names a key id (64 hex digits); annexa agents sign with their key id",
        ));
    }
    let mut cached = None;
    for k in &hints {
        if let Some(a) = cache.get(k) {
            cached = Some(a);
            break;
        }
    }
    let agent = match cached {
        Some(a) => a,
        None => {
            let mut found = None;
            for k in &hints {
                found = store
                    .agent_by_key(k)
                    .await
                    .map_err(|e| Rejection::new(503, codes::UNAVAILABLE, e.to_string()))?;
                if found.is_some() {
                    break;
                }
            }
            let found = found.ok_or_else(|| {
                Rejection::new(
                    401,
                    codes::UNKNOWN_AGENT,
                    format!("no enrolled agent has key {}", hints[0]),
                )
            })?;
            cache.put(found.clone());
            found
        }
    };
    if agent.revoked_at.is_some() {
        return Err(Rejection::new(
            403,
            codes::REVOKED_AGENT,
            format!("agent {} is revoked", agent.id),
        ));
    }
    Ok(agent)
}

/// Verifies signature and statement. CPU-bound; no I/O.
pub fn check(agent: AgentRecord, env: &Envelope, bytes: Vec<u8>) -> Result<Checked, Rejection> {
    let key = PublicKey::from_b64(&agent.public_key).map_err(|e| {
        Rejection::new(
            503,
            codes::UNAVAILABLE,
            format!("stored key of {}: {e}", agent.id),
        )
    })?;
    let verified = env
        .verify(IN_TOTO_PAYLOAD_TYPE, &[key], 1)
        .map_err(|e| match e {
            annexa_evidence::dsse::DsseError::PayloadType { .. } => {
                Rejection::new(422, codes::INVALID_STATEMENT, e.to_string())
            }
            other => Rejection::new(401, codes::BAD_SIGNATURE, other.to_string()),
        })?;
    let st = parse_scan_statement(&verified.payload)
        .map_err(|e| Rejection::new(422, codes::INVALID_STATEMENT, e.to_string()))?;
    let p = &st.predicate;
    let invalid = |m: String| Rejection::new(422, codes::INVALID_STATEMENT, m);
    if p.agent.id != agent.id {
        return Err(invalid(format!(
            "predicate names agent {}, but the envelope is signed by agent {}",
            p.agent.id, agent.id
        )));
    }
    if p.agent.key_id != agent.key_id {
        return Err(invalid(format!(
            "predicate names key {}, but the envelope is signed with {}",
            p.agent.key_id, agent.key_id
        )));
    }
    let subject = &st.subject[0];
    if st.subject.len() != 1 || subject.name.as_deref() != Some(subject_name(&agent.id).as_str()) {
        return Err(invalid(format!(
            "the subject must be the one host `{}`",
            subject_name(&agent.id)
        )));
    }
    let machine = subject.digest.as_ref().and_then(|d| d.get("sha256"));
    if machine.map(String::as_str) != Some(agent.machine_id_sha256.as_str()) {
        return Err(invalid(
            "the subject's machine identity differs from the one enrolled".to_string(),
        ));
    }
    if p.sequence == 0 || p.sequence > i64::MAX as u64 {
        return Err(invalid(format!(
            "sequence {} is outside 1..=2^63-1",
            p.sequence
        )));
    }
    let results: Vec<serde_json::Value> = p
        .scan
        .results
        .iter()
        .map(|r| json!({"check_id": r.check_id, "status": r.status}))
        .collect();
    let latest = p
        .scan
        .results
        .iter()
        .map(|r| {
            (
                r.check_id.clone(),
                r.status.as_str().to_string(),
                r.observed.clone(),
            )
        })
        .collect();
    Ok(Checked {
        sha256: annexa_evidence::sha256_hex(&bytes),
        sequence: p.sequence,
        previous: p.previous.clone(),
        gap: p.gap.as_ref().map(|g| g.dropped.clone()),
        summary: serde_json::to_string(&p.scan.summary).unwrap_or_default(),
        results: serde_json::Value::Array(results).to_string(),
        latest,
        bytes,
        agent,
    })
}

/// The signing keys of enrolled agents, by key id.
#[derive(Debug, Default)]
pub struct AgentCache {
    by_key: std::sync::RwLock<HashMap<String, AgentRecord>>,
}

impl AgentCache {
    /// A cached agent.
    pub fn get(&self, key_id: &str) -> Option<AgentRecord> {
        self.by_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Caches an agent.
    pub fn put(&self, agent: AgentRecord) {
        self.by_key
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.key_id.clone(), agent);
    }

    /// Forgets an agent (after revocation), so the store is asked again.
    pub fn forget(&self, agent_id: &str) {
        self.by_key
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, a| a.id != agent_id);
    }
}

/// What the writer answers for an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// When it was accepted (the original time for a duplicate).
    pub accepted_at: String,
    /// Whether it had been accepted before.
    pub duplicate: bool,
}

/// Where the writer sends its answer for one envelope.
type Reply = oneshot::Sender<Result<Committed, Rejection>>;

struct Job {
    checked: Checked,
    reply: oneshot::Sender<Result<Committed, Rejection>>,
}

/// The handle through which requests reach the writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        batch_max: usize,
        batch_wait: Duration,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(batch_max.max(1) * 4);
        tokio::spawn(run_writer(store, metrics, rx, batch_max.max(1), batch_wait));
        Writer { tx }
    }

    /// Submits a checked envelope and waits until it is committed.
    pub async fn submit(&self, checked: Checked) -> Result<Committed, Rejection> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { checked, reply }).await.map_err(|_| {
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

/// The writer's view of one agent's chain.
#[derive(Debug)]
struct Chain {
    next: u64,
    last: Option<String>,
    latest: HashMap<String, (String, Option<String>)>,
}

async fn load_chain(store: &dyn Store, agent: &AgentRecord) -> Result<Chain, StoreError> {
    let fresh = store
        .agent(&agent.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(agent.id.clone()))?;
    let latest = store
        .latest(agent.no)
        .await?
        .into_iter()
        .map(|r| (r.check_id, (r.status, r.observed)))
        .collect();
    Ok(Chain {
        next: fresh.next_sequence,
        last: fresh.last_digest,
        latest,
    })
}

async fn run_writer(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
    batch_max: usize,
    batch_wait: Duration,
) {
    let mut chains: HashMap<i64, Chain> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = Instant::now() + batch_wait;
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match tokio::time::timeout(left, rx.recv()).await {
                        Ok(Some(j)) => jobs.push(j),
                        _ => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        process_batch(store.as_ref(), &metrics, &mut chains, jobs).await;
    }
}

async fn process_batch(
    store: &dyn Store,
    metrics: &Metrics,
    chains: &mut HashMap<i64, Chain>,
    jobs: Vec<Job>,
) {
    let now = clock::now_rfc3339();
    let mut batch: Vec<Accepted> = Vec::new();
    // (reply, what to answer once committed, agent number)
    let mut waiting: Vec<(Reply, Committed, i64)> = Vec::new();
    // Agents whose chain this batch moves, with their ids.
    let mut touched: HashMap<i64, String> = HashMap::new();
    for job in jobs {
        let c = &job.checked;
        let no = c.agent.no;
        let chain = match chains.entry(no) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => match load_chain(store, &c.agent)
                .await
            {
                Ok(ch) => slot.insert(ch),
                Err(e) => {
                    let _ =
                        job.reply
                            .send(Err(Rejection::new(503, codes::UNAVAILABLE, e.to_string())));
                    continue;
                }
            },
        };
        match decide(chain, c) {
            Decision::Duplicate => {
                // The same bytes again: answer with the original acceptance.
                let original = store.envelope(no, c.sequence).await;
                let reply = match original {
                    Ok(Some((meta, _))) if meta.sha256 == c.sha256 => {
                        metrics.duplicates.inc();
                        Ok(Committed {
                            accepted_at: meta.received_at,
                            duplicate: true,
                        })
                    }
                    Ok(_) => {
                        metrics.reject(codes::SEQUENCE);
                        Err(Rejection::sequence(
                            format!(
                                "sequence {} was already accepted with different content; expected {}",
                                c.sequence, chain.next
                            ),
                            chain.next,
                        ))
                    }
                    Err(e) => Err(Rejection::new(503, codes::UNAVAILABLE, e.to_string())),
                };
                let _ = job.reply.send(reply);
            }
            Decision::Reject(r) => {
                metrics.reject(r.code);
                let _ = job.reply.send(Err(r));
            }
            Decision::Accept => {
                let previous_next = chain.next;
                let mut changes = Vec::new();
                for (check_id, status, observed) in &c.latest {
                    let same = chain
                        .latest
                        .get(check_id)
                        .is_some_and(|(s, o)| s == status && o == observed);
                    if !same {
                        chain
                            .latest
                            .insert(check_id.clone(), (status.clone(), observed.clone()));
                        changes.push(LatestChange {
                            check_id: check_id.clone(),
                            status: status.clone(),
                            observed: observed.clone(),
                        });
                    }
                }
                chain.next = c.sequence + 1;
                chain.last = Some(c.sha256.clone());
                touched.insert(no, c.agent.id.clone());
                batch.push(Accepted {
                    agent_no: no,
                    sequence: c.sequence,
                    previous_next,
                    sha256: c.sha256.clone(),
                    received_at: now.clone(),
                    // Record the gap the collector observed (what it never
                    // received), not whatever the agent declared.
                    gap: (c.sequence > previous_next).then(|| {
                        let skipped: Vec<u64> = (previous_next..c.sequence).collect();
                        serde_json::to_string(&skipped).unwrap_or_default()
                    }),
                    summary: c.summary.clone(),
                    results: c.results.clone(),
                    bytes: job.checked.bytes,
                    changes,
                });
                waiting.push((
                    job.reply,
                    Committed {
                        accepted_at: now.clone(),
                        duplicate: false,
                    },
                    no,
                ));
            }
        }
    }
    if batch.is_empty() {
        return;
    }
    match store.append(&batch).await {
        Ok(()) => {
            metrics.batch_size.observe(batch.len() as f64);
            for (reply, committed, _) in waiting {
                metrics.accepted.inc();
                let _ = reply.send(Ok(committed));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, envelopes = batch.len(), "committing a batch of evidence failed; nothing of it was stored and agents will retry");
            // Forget what this batch did to the chains: the store is the truth.
            for no in touched.keys() {
                chains.remove(no);
            }
            // The store refuses to move the chain of a revoked agent. An
            // agent revoked by another process (`annexa-collector agent
            // revoke`) is still cached as active by this one, so its next
            // envelope gets here: tell it it is revoked, not to retry.
            let mut revoked: HashMap<i64, String> = HashMap::new();
            if matches!(e, StoreError::Conflict(_)) {
                for (no, id) in &touched {
                    if let Ok(Some(a)) = store.agent(id).await
                        && a.revoked_at.is_some()
                    {
                        revoked.insert(*no, a.id);
                    }
                }
            }
            // Counted by the API handler, which counts every refusal.
            for (reply, _, no) in waiting {
                let _ = reply.send(Err(match revoked.get(&no) {
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
        }
    }
}

enum Decision {
    Accept,
    Duplicate,
    Reject(Rejection),
}

/// Applies the chain rules to one envelope.
fn decide(chain: &Chain, c: &Checked) -> Decision {
    use std::cmp::Ordering::*;
    match c.sequence.cmp(&chain.next) {
        Less => Decision::Duplicate,
        Equal => {
            if c.previous != chain.last {
                Decision::Reject(Rejection::sequence(
                    format!(
                        "sequence {} names previous {} but the last accepted envelope is {}",
                        c.sequence,
                        c.previous.as_deref().unwrap_or("none"),
                        chain.last.as_deref().unwrap_or("none")
                    ),
                    chain.next,
                ))
            } else {
                Decision::Accept
            }
        }
        Greater => {
            // The declared gap must name exactly the numbers skipped since
            // what the collector holds. Entries below `chain.next` were
            // stored (their receipt was lost) or declared before, and are
            // ignored. Compared without materialising the range: the
            // sequence number is the client's.
            let declared = c.gap.as_deref().unwrap_or(&[]);
            let open: Vec<u64> = declared
                .iter()
                .copied()
                .filter(|s| *s >= chain.next)
                .collect();
            if !declared.is_empty() && open.iter().copied().eq(chain.next..c.sequence) {
                Decision::Accept
            } else {
                Decision::Reject(Rejection::sequence(
                    format!(
                        "sequence {} is out of order; expected {}",
                        c.sequence, chain.next
                    ),
                    chain.next,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(sequence: u64, previous: Option<&str>, gap: Option<Vec<u64>>) -> Checked {
        Checked {
            agent: AgentRecord {
                no: 1,
                id: "ag-1".into(),
                key_id: "k".into(),
                public_key: String::new(),
                hostname: "h".into(),
                machine_id_sha256: String::new(),
                labels: Default::default(),
                enrolled_at: String::new(),
                revoked_at: None,
                next_sequence: 1,
                last_digest: None,
                last_seen_at: None,
            },
            sequence,
            previous: previous.map(str::to_string),
            gap,
            sha256: format!("{sequence:064x}"),
            summary: String::new(),
            results: String::new(),
            latest: Vec::new(),
            bytes: Vec::new(),
        }
    }

    fn chain(next: u64, last: Option<&str>) -> Chain {
        Chain {
            next,
            last: last.map(str::to_string),
            latest: HashMap::new(),
        }
    }

    fn accepted(d: Decision) -> bool {
        matches!(d, Decision::Accept)
    }

    #[test]
    fn chain_rules() {
        let c = chain(5, Some("d4"));
        assert!(accepted(decide(&c, &checked(5, Some("d4"), None))));
        assert!(
            matches!(decide(&c, &checked(5, Some("dx"), None)), Decision::Reject(r) if r.expected_sequence == Some(5))
        );
        assert!(matches!(
            decide(&c, &checked(4, Some("d3"), None)),
            Decision::Duplicate
        ));
        assert!(matches!(
            decide(&c, &checked(7, Some("d6"), None)),
            Decision::Reject(_)
        ));
        assert!(accepted(decide(
            &c,
            &checked(7, Some("d6"), Some(vec![5, 6]))
        )));
        assert!(matches!(
            decide(&c, &checked(7, Some("d6"), Some(vec![6]))),
            Decision::Reject(_)
        ));
    }

    #[test]
    fn a_gap_may_name_numbers_already_stored_whose_receipt_was_lost() {
        let c = chain(5, Some("d4"));
        assert!(accepted(decide(
            &c,
            &checked(7, Some("d6"), Some(vec![3, 4, 5, 6]))
        )));
    }

    #[test]
    fn a_huge_sequence_is_refused_without_allocating_the_range() {
        let c = chain(5, Some("d4"));
        assert!(matches!(
            decide(&c, &checked(u64::MAX, None, Some(vec![5]))),
            Decision::Reject(_)
        ));
        assert!(matches!(
            decide(&c, &checked(1 << 40, None, None)),
            Decision::Reject(_)
        ));
    }
}
