//! The ingest path: verify an envelope (on the request's task, so that
//! signature checks use every core), then hand it to the single writer,
//! which enforces each agent's sequence and hash chain, commits batches in
//! one transaction (group commit), and only then releases the receipts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use annexa_evidence::api::codes;
use annexa_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::keys::PublicKey;
use annexa_evidence::statement::{parse_scan_statement, subject_name};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::conformity::index::{HostEntry, Index, Stored};
use crate::conformity::{self, Cause, Policy, RunProfile, State};
use crate::log::{Log, Signed, Staged};
use crate::metrics::Metrics;
use crate::store::{
    Accepted, AgentRecord, ConformityChange, HostRows, Hosts, LatestChange, Store, StoreError,
};
use annexa_checks::pack::PackSet;

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
    /// How the scan was produced (its time is capped at acceptance).
    pub profile: RunProfile,
    /// The bytes as received.
    pub bytes: Vec<u8>,
    /// The agent's clock when it delivered the envelope (RFC 3339 UTC), as
    /// it said in its `annexa-agent-time` header.
    pub agent_time: Option<String>,
    /// When the scan finished, by the agent's clock (signed).
    pub finished_at: String,
    /// The next key this envelope declares: (key id, public key).
    pub rotate_to: Option<(String, String)>,
}

/// Looks up the agent that signed an envelope. A key the agent rotated
/// away from is found too, as the agent with that key and the last
/// sequence number the key signed: re-sent envelopes it signed are still
/// recognised (and answered with their receipts), nothing newer.
pub async fn signer(
    store: &dyn Store,
    cache: &AgentCache,
    env: &Envelope,
) -> Result<(AgentRecord, Option<u64>), Rejection> {
    // The key id is a hint: it picks the enrolled agent, whose key the
    // collector holds; the signature is then verified with that key, never
    // with anything the envelope says. Canonical envelopes carry exactly one
    // signature, so one lookup per envelope, however many entries it lists.
    let [only] = env.signatures.as_slice() else {
        return Err(Rejection::new(
            400,
            codes::MALFORMED,
            format!(
                "the envelope has {} signatures; annexa agents sign with exactly one",
                env.signatures.len()
            ),
        ));
    };
    let key_id = only.keyid.as_str();
    if key_id.len() != 64 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::new(
            401,
            codes::UNKNOWN_AGENT,
            "the signature names no key id (64 hex digits); annexa agents sign with their key id",
        ));
    }
    let unavailable = |e: StoreError| Rejection::new(503, codes::UNAVAILABLE, e.to_string());
    let (agent, retired_after) = match cache.get(key_id) {
        Some(a) => (a, None),
        None => match store.agent_by_key(key_id).await.map_err(unavailable)? {
            Some(found) => {
                cache.put(found.clone());
                (found, None)
            }
            None => {
                let (mut agent, old) = store
                    .retired_key(key_id)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        Rejection::new(
                            401,
                            codes::UNKNOWN_AGENT,
                            format!("no enrolled agent has key {key_id}"),
                        )
                    })?;
                agent.key_id = old.key_id;
                agent.public_key = old.public_key;
                (agent, Some(old.until_sequence))
            }
        },
    };
    if agent.revoked_at.is_some() {
        return Err(Rejection::new(
            403,
            codes::REVOKED_AGENT,
            format!("agent {} is revoked", agent.id),
        ));
    }
    Ok((agent, retired_after))
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
    if let Some(alert) = &p.log_alert {
        tracing::error!(
            agent = %agent.id,
            sequence = p.sequence,
            error = ?alert.error,
            detected_at = ?alert.detected_at,
            "an agent reports that this collector's evidence log is inconsistent with a checkpoint it held: investigate with `annexa verify log`"
        );
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
    let rotate_to = match &p.key_rotation {
        None => None,
        Some(r) => {
            let key = r
                .verify(&agent.id, p.sequence, &agent.key_id)
                .map_err(|m| invalid(format!("envelope {}: {m}", p.sequence)))?;
            Some((key.key_id(), key.to_b64()))
        }
    };
    let now = clock::now_unix();
    let profile = RunProfile::of(&p.scan, p.interval_seconds, now);
    Ok(Checked {
        profile,
        sha256: annexa_evidence::sha256_hex(&bytes),
        sequence: p.sequence,
        previous: p.previous.clone(),
        gap: p.gap.as_ref().map(|g| g.dropped.clone()),
        summary: serde_json::to_string(&p.scan.summary).unwrap_or_default(),
        results: serde_json::Value::Array(results).to_string(),
        latest,
        bytes,
        agent,
        agent_time: None,
        finished_at: p.scan.finished_at.clone(),
        rotate_to,
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

/// Where the writer sends its answer for one envelope.
type Reply = oneshot::Sender<Result<Committed, Rejection>>;

enum Job {
    Envelope {
        checked: Box<Checked>,
        reply: oneshot::Sender<Result<Committed, Rejection>>,
    },
    /// Re-evaluate every host against the newest SoA version.
    Reconcile(ReconcileReply),
}

type ReconcileReply = oneshot::Sender<Result<Option<i64>, StoreError>>;

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
        let (tx, rx) = mpsc::channel(batch_max.max(1) * 4);
        tokio::spawn(run_writer(
            store,
            metrics,
            conformity,
            log,
            rx,
            batch_max.max(1),
            batch_wait,
        ));
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

/// The writer's view of one agent's chain.
#[derive(Debug)]
struct Chain {
    next: u64,
    last: Option<String>,
    /// The agent's key as of this chain head: a key rotated away from
    /// signs nothing after the envelope that declared the next one.
    key_id: String,
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
        key_id: fresh.key_id,
        latest,
    })
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

async fn run_writer(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    conf: Conformity,
    log: LogSettings,
    mut rx: mpsc::Receiver<Job>,
    batch_max: usize,
    batch_wait: Duration,
) {
    let mut chains: HashMap<i64, Chain> = HashMap::new();
    let mut sweep = tokio::time::interval(conf.sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.tick().await;
    let mut checkpoints = tokio::time::interval(log.checkpoint_every);
    checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checkpoints.tick().await;
    // The first batch after a start stores its checkpoint at once.
    let mut last_stored = Instant::now()
        .checked_sub(log.checkpoint_every)
        .unwrap_or_else(Instant::now);
    loop {
        let first = tokio::select! {
            j = rx.recv() => match j {
                Some(j) => j,
                None => break,
            },
            _ = sweep.tick() => {
                if let Err(e) = housekeeping(store.as_ref(), &conf, &log.log, &mut chains).await {
                    tracing::error!(error = %e, "conformity housekeeping failed; retrying at the next tick");
                }
                if let Err(e) = retention(store.as_ref(), &log).await {
                    tracing::error!(error = %e, "the retention job failed; retrying at the next tick");
                }
                continue;
            }
            _ = checkpoints.tick() => {
                match store_checkpoint(store.as_ref(), &log.log).await {
                    Ok(true) => last_stored = Instant::now(),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "storing a checkpoint failed; retrying at the next tick"),
                }
                continue;
            }
        };
        let mut jobs = Vec::new();
        let mut reconcile = Vec::new();
        fn push(j: Job, jobs: &mut Vec<Job1>, reconcile: &mut Vec<ReconcileReply>) {
            match j {
                Job::Envelope { checked, reply } => jobs.push(Job1 {
                    checked: *checked,
                    reply,
                }),
                Job::Reconcile(reply) => reconcile.push(reply),
            }
        }
        push(first, &mut jobs, &mut reconcile);
        let deadline = Instant::now() + batch_wait;
        while jobs.len() < batch_max && reconcile.is_empty() {
            match rx.try_recv() {
                Ok(j) => push(j, &mut jobs, &mut reconcile),
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match tokio::time::timeout(left, rx.recv()).await {
                        Ok(Some(j)) => push(j, &mut jobs, &mut reconcile),
                        _ => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        let mut retries_left = BATCH_RETRIES;
        while !jobs.is_empty() {
            let persist = last_stored.elapsed() >= log.checkpoint_every;
            match process_batch(
                store.as_ref(),
                &metrics,
                &conf,
                &log.log,
                persist,
                &mut chains,
                std::mem::take(&mut jobs),
                retries_left > 0,
            )
            .await
            {
                Outcome::Stored if persist => last_stored = Instant::now(),
                Outcome::Retry(again) => {
                    jobs = again;
                    retries_left -= 1;
                }
                _ => {}
            }
        }
        for reply in reconcile {
            let r = reconcile_all(store.as_ref(), &conf).await;
            let _ = reply.send(r);
        }
    }
}

/// Loads every active host, its stored states and (with an SoA) its
/// latest results, re-evaluates it against the newest SoA version, records
/// what changed and replaces the index. Runs on the writer's task, so no
/// envelope is being processed meanwhile.
async fn reconcile_all(store: &dyn Store, conf: &Conformity) -> Result<Option<i64>, StoreError> {
    let policy = load_policy(store, &conf.packs).await?;
    let rows = store.host_rows(Hosts::All, policy.is_some()).await?;
    let (hosts, recorded) = evaluate_hosts(store, policy.as_deref(), rows).await?;
    let Some(policy) = policy else {
        conf.index.replace(None, hosts);
        return Ok(None);
    };
    tracing::info!(
        soa_version = policy.version,
        hosts = hosts.len(),
        changes = recorded,
        "conformity reconciled with the Statement of Applicability"
    );
    let version = policy.version;
    conf.index.replace(Some(policy), hosts);
    Ok(Some(version))
}

/// Index entries for the active agents of `rows`, from their stored
/// states, re-evaluated against `policy`; records what the evaluation
/// changed (what another collector recorded first is left to it) and
/// returns the entries with how many changes were recorded.
async fn evaluate_hosts(
    store: &dyn Store,
    policy: Option<&Policy>,
    rows: HostRows,
) -> Result<(BTreeMap<i64, HostEntry>, usize), StoreError> {
    let mut hosts = BTreeMap::new();
    for a in rows.agents {
        if a.revoked_at.is_some() {
            continue;
        }
        hosts.insert(a.no, host_entry(&a));
    }
    for s in rows.states {
        if let (Some(h), Some(state)) = (hosts.get_mut(&s.agent_no), State::parse(&s.current.state))
        {
            h.states.insert(
                s.control_id,
                Stored {
                    state,
                    detail: serde_json::from_str(&s.current.detail).unwrap_or_default(),
                    since: s.current.since,
                    since_sequence: s.current.since_sequence,
                },
            );
        }
    }
    let Some(policy) = policy else {
        return Ok((hosts, 0));
    };
    let mut latest: HashMap<i64, conformity::Latest> = HashMap::new();
    for (no, row) in rows.latest {
        latest
            .entry(no)
            .or_default()
            .insert(row.check_id, (row.status, row.observed));
    }
    let at = clock::now_rfc3339();
    let now = clock::now_unix();
    let empty = conformity::Latest::new();
    let mut pending: Vec<ConformityChange> = Vec::new();
    let mut recorded = 0usize;
    for (no, h) in hosts.iter_mut() {
        let Some(profile) = h.profile.clone() else {
            continue;
        };
        let states = h.states.clone();
        let prev = |c: &str| states.get(c).cloned();
        let changes = conformity::changes_for_host(
            policy,
            *no,
            &h.labels,
            latest.get(no).unwrap_or(&empty),
            &profile,
            &prev,
            Cause::Soa,
            &at,
            now,
        );
        for (control, stored, change) in changes {
            match stored {
                Some(s) => h.states.insert(control, s),
                None => h.states.remove(&control),
            };
            pending.push(change);
        }
        if pending.len() >= 20_000 {
            recorded += store.record_conformity(&pending).await?;
            pending.clear();
        }
    }
    recorded += store.record_conformity(&pending).await?;
    Ok((hosts, recorded))
}

/// Takes in what other collectors on the same database appended since
/// this one last looked: the log entries, then the hosts they came from
/// (and those of entries batches were placed after), reloaded from the
/// store and re-evaluated, so this collector's index and chains agree with
/// what any collector accepted. Costs what those hosts cost, not what the
/// fleet does.
async fn take_in(
    store: &dyn Store,
    conf: &Conformity,
    log: &Log,
    chains: &mut HashMap<i64, Chain>,
) -> Result<u64, StoreError> {
    let range = log.resync(store).await.map_err(|e| match e {
        crate::log::LogError::Store(s) => s,
        other => StoreError::Broken(other.to_string()),
    })?;
    // With what batches placed after others' entries left to reload.
    log.note_behind(range.clone());
    if let Some(behind) = log.take_behind()
        && let Err(e) = reload_hosts(store, conf, chains, &behind).await
    {
        log.note_behind(behind);
        return Err(e);
    }
    Ok(range.end - range.start)
}

/// Reloads the hosts with envelopes at log indices `behind` from the store,
/// re-evaluates them and replaces their index entries; forgets their
/// cached chains.
async fn reload_hosts(
    store: &dyn Store,
    conf: &Conformity,
    chains: &mut HashMap<i64, Chain>,
    behind: &std::ops::Range<u64>,
) -> Result<(), StoreError> {
    let policy = conf.index.policy();
    let rows = store
        .host_rows(Hosts::InLog(behind.clone()), policy.is_some())
        .await?;
    let mut revoked = Vec::new();
    for a in &rows.agents {
        chains.remove(&a.no);
        if a.revoked_at.is_some() {
            revoked.push(a.no);
        }
    }
    let (hosts, recorded) = evaluate_hosts(store, policy.as_deref(), rows).await?;
    tracing::info!(
        entries = behind.end - behind.start,
        hosts = hosts.len(),
        changes = recorded,
        "took in evidence another collector accepted"
    );
    conf.index.put_hosts(hosts, &revoked);
    Ok(())
}

/// The newest SoA version resolved against `packs`, if one was imported.
pub async fn load_policy(
    store: &dyn Store,
    packs: &PackSet,
) -> Result<Option<Arc<Policy>>, StoreError> {
    let Some(newest) = crate::soa::newest(store).await? else {
        return Ok(None);
    };
    // It linted when imported; the packs may have changed since. An unknown
    // check is then evidence that never arrives (no_evidence, the truth),
    // so warn and go on.
    let (meta, soa, _) = crate::soa::load(store, newest).await?;
    let name = format!("SoA version {}", meta.version);
    for p in annexa_checks::soa::check_against(&name, &soa, packs) {
        tracing::warn!(problem = %p, "the current SoA no longer lints against the loaded packs");
    }
    Ok(Some(Arc::new(Policy::new(meta.version, soa, packs))))
}

fn host_entry(a: &AgentRecord) -> HostEntry {
    HostEntry {
        id: a.id.clone(),
        hostname: a.hostname.clone(),
        labels: a.labels.clone(),
        profile: a
            .run_profile
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()),
        states: HashMap::new(),
    }
}

/// The periodic tick: an SoA version imported by another process, evidence
/// another collector on the same database accepted, agents enrolled or
/// revoked elsewhere, and states the passing of time made stale.
async fn housekeeping(
    store: &dyn Store,
    conf: &Conformity,
    log: &Log,
    chains: &mut HashMap<i64, Chain>,
) -> Result<(), StoreError> {
    let newest = store.soa_versions().await?.last().map(|v| v.version);
    // Another collector's states are in the store, not in this index.
    take_in(store, conf, log, chains).await?;
    if newest != conf.index.policy().map(|p| p.version) {
        reconcile_all(store, conf).await?;
        return Ok(());
    }
    conf.index.sync_hosts(&store.agents().await?);
    let Some(policy) = conf.index.policy() else {
        return Ok(());
    };
    let at = clock::now_rfc3339();
    let now = clock::now_unix();
    let mut changes = Vec::new();
    let mut apply = Vec::new();
    for (no, host) in conf.index.snapshot() {
        let ch = conformity::stale_changes(&policy, no, &host, &at, now);
        if ch.is_empty() {
            continue;
        }
        let mut states = Vec::new();
        for (control, stored, change) in ch {
            states.push((control, stored));
            changes.push(change);
        }
        apply.push((no, states));
    }
    if changes.is_empty() {
        return Ok(());
    }
    // Another collector may have recorded some of these first.
    let recorded = store.record_conformity(&changes).await?;
    if recorded > 0 {
        tracing::info!(changes = recorded, "evidence went stale");
    }
    for (no, states) in apply {
        conf.index.apply(no, None, states);
    }
    Ok(())
}

/// Stores the newest checkpoint if it is not stored yet; whether it was.
pub async fn store_checkpoint(store: &dyn Store, log: &Log) -> Result<bool, StoreError> {
    let Some(cp) = log.unstored() else {
        return Ok(false);
    };
    store.record_checkpoint(&cp).await?;
    log.stored(cp.size);
    Ok(true)
}

/// Removes payloads older than the retention period, a slice at a time so
/// that ingest is never held up for long.
async fn retention(store: &dyn Store, log: &LogSettings) -> Result<(), StoreError> {
    let Some((seconds, period)) = &log.retention else {
        return Ok(());
    };
    let cutoff = clock::rfc3339(clock::now_unix() - seconds);
    let mut total = 0;
    for _ in 0..10 {
        let r = store
            .prune(&cutoff, &clock::now_rfc3339(), period, 5000)
            .await?;
        total += r.pruned;
        if !r.more {
            break;
        }
    }
    if total > 0 {
        tracing::info!(pruned = total, %cutoff, retention = %period, "evidence payloads past the retention period removed; their log entries stay");
    }
    Ok(())
}

/// Processes one batch; what became of it ([`Outcome`]). With
/// `may_retry`, a batch refused because another collector appended first
/// comes back to be decided again.
#[allow(clippy::too_many_arguments)]
async fn process_batch(
    store: &dyn Store,
    metrics: &Metrics,
    conf: &Conformity,
    log: &Log,
    persist: bool,
    chains: &mut HashMap<i64, Chain>,
    jobs: Vec<Job1>,
    may_retry: bool,
) -> Outcome {
    let index = &conf.index;
    let now = clock::now_rfc3339();
    let now_unix = clock::now_unix();
    let policy = index.policy();
    // States this batch has already moved, ahead of the index (which is
    // updated only after the commit).
    let mut pending: HashMap<(i64, String), Option<Stored>> = HashMap::new();
    let mut profiles: HashMap<i64, RunProfile> = HashMap::new();
    let mut batch: Vec<Accepted> = Vec::new();
    // (job, acceptance time, leaf index)
    let mut waiting: Vec<(Job1, String, u64)> = Vec::new();
    // Agents whose chain this batch moves, with their ids.
    let mut touched: HashMap<i64, String> = HashMap::new();
    let mut staged = log.stage();
    for mut job in jobs {
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
        let decision = match decide(chain, c) {
            Decision::Accept if c.agent.key_id != chain.key_id => Decision::Reject(Rejection::new(
                401,
                codes::UNKNOWN_AGENT,
                format!(
                    "envelope {} is signed with key {}, which agent {} rotated away from; its key is {}",
                    c.sequence, c.agent.key_id, c.agent.id, chain.key_id
                ),
            )),
            d => d,
        };
        match decision {
            Decision::Duplicate => {
                // The same bytes again: answer with the original acceptance.
                let original = store.envelope(no, c.sequence).await;
                let reply = match original {
                    Ok(Some((meta, _))) if meta.sha256 == c.sha256 => {
                        metrics.duplicates.inc();
                        Ok(Committed {
                            accepted_at: meta.received_at,
                            duplicate: true,
                            log_index: meta.log_index,
                            checkpoint: log.latest(),
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
                let signed_with = std::mem::replace(
                    &mut chain.key_id,
                    c.rotate_to
                        .as_ref()
                        .map_or_else(|| c.agent.key_id.clone(), |(k, _)| k.clone()),
                );
                touched.insert(no, c.agent.id.clone());
                let mut conformity_changes = Vec::new();
                if !index.has_host(no) {
                    index.upsert_host(&c.agent);
                }
                if let Some(policy) = &policy {
                    let prev = |control: &str| match pending.get(&(no, control.to_string())) {
                        Some(p) => p.clone(),
                        None => index.stored(no, control),
                    };
                    for (control, stored, change) in conformity::changes_for_host(
                        policy,
                        no,
                        &c.agent.labels,
                        &chain.latest,
                        &c.profile,
                        &prev,
                        Cause::Envelope(c.sequence),
                        &now,
                        now_unix,
                    ) {
                        pending.insert((no, control), stored);
                        conformity_changes.push(change);
                    }
                }
                profiles.insert(no, c.profile.clone());
                let (log_index, leaf_hash) = staged.push(&annexa_evidence::log::LogEntry {
                    agent_id: c.agent.id.clone(),
                    key_id: c.agent.key_id.clone(),
                    sequence: c.sequence,
                    envelope_sha256: c.sha256.clone(),
                    accepted_at: now.clone(),
                });
                batch.push(Accepted {
                    log_index,
                    leaf_hash,
                    agent_no: no,
                    sequence: c.sequence,
                    previous_next,
                    sha256: c.sha256.clone(),
                    received_at: now.clone(),
                    key_id: signed_with,
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
                    conformity: conformity_changes,
                    // Moved, not copied: a batch tried again gets them back
                    // from here (`batch` and `waiting` line up).
                    bytes: std::mem::take(&mut job.checked.bytes),
                });
                waiting.push((job, now.clone(), log_index));
            }
        }
    }
    if batch.is_empty() {
        return Outcome::NotStored;
    }
    let (signed, append) = log.seal(&staged, persist);
    // Another collector may append between this batch's staging and its
    // turn at the store's write lock, which it waited for. Under the lock,
    // the store hands over what it appended, and the batch goes after it:
    // the decisions stand (the chain heads the store checks say whether
    // they do), only log positions move.
    // (the staging after the others, its checkpoint, how many they were)
    let mut relogged: Option<(Staged, Arc<Signed>, u64)> = None;
    let stored = store
        .append_relog(&batch, &append, &mut |others| {
            let ours: Vec<[u8; 32]> = batch.iter().map(|a| a.leaf_hash).collect();
            let (st, signed, append) = log.restage(&staged, others, &ours, persist);
            relogged = Some((st, signed, others.len() as u64));
            Some(append)
        })
        .await;
    let e = match stored {
        Ok(()) => {
            let (staged, signed) = match relogged {
                Some((st, signed, moved)) => {
                    // The positions moved by what the other collector appended.
                    for (_, _, index) in waiting.iter_mut() {
                        *index += moved;
                    }
                    // Their hosts are reloaded at the next sweep, not here:
                    // under contention the writer's time goes to appends.
                    log.note_behind(staged.first..staged.first + moved);
                    (st, signed)
                }
                None => (staged, signed),
            };
            log.commit(staged, signed.clone(), persist);
            metrics.batch_size.observe(batch.len() as f64);
            let mut by_host: HashMap<i64, Vec<(String, Option<Stored>)>> = HashMap::new();
            for ((no, control), stored) in pending {
                by_host.entry(no).or_default().push((control, stored));
            }
            for (no, profile) in profiles {
                index.apply(no, Some(profile), by_host.remove(&no).unwrap_or_default());
            }
            for (job, accepted_at, log_index) in waiting {
                metrics.accepted.inc();
                let _ = job.reply.send(Ok(Committed {
                    accepted_at,
                    duplicate: false,
                    log_index: Some(log_index),
                    checkpoint: signed.clone(),
                }));
            }
            return Outcome::Stored;
        }
        Err(e) => e,
    };
    // Whichever staging was tried, the tree goes back to what is committed.
    log.abandon(&staged);
    // Forget what this batch did to the chains: the store is the truth.
    for no in touched.keys() {
        chains.remove(no);
    }
    if let StoreError::Conflict(_) = &e {
        // Another collector appended more than the store hands over, or
        // for agents in this batch: take its entries in (reloading those
        // agents' chains) and decide the batch again at once, rather than
        // refusing it to agents that would only send it again.
        match take_in(store, conf, log, chains).await {
            Ok(n) if n > 0 && may_retry => {
                tracing::debug!(
                    entries = n,
                    envelopes = waiting.len(),
                    "another collector appended to the evidence log: deciding the batch again"
                );
                return Outcome::Retry(
                    waiting
                        .into_iter()
                        .zip(batch)
                        .map(|((mut job, _, _), accepted)| {
                            job.checked.bytes = accepted.bytes;
                            job
                        })
                        .collect(),
                );
            }
            Ok(n) if n > 0 => {
                tracing::warn!(entries = n, envelopes = waiting.len(), error = %e, "a batch of evidence met other collectors' appends too often; nothing of it was stored and agents will retry")
            }
            Ok(_) => {
                tracing::error!(error = %e, envelopes = waiting.len(), "committing a batch of evidence failed; {}", commit_hint(&e))
            }
            Err(le) => {
                tracing::error!(error = %e, log = %le, envelopes = waiting.len(), "committing a batch of evidence failed, and the evidence log in the store does not extend this collector's")
            }
        }
    } else {
        tracing::error!(error = %e, envelopes = waiting.len(), "committing a batch of evidence failed; {}", commit_hint(&e));
    }
    // The store refuses to move the chain of a revoked agent. An agent
    // revoked by another process (`annexa-collector agent revoke`) is still
    // cached as active by this one, so its next envelope gets here: tell it
    // it is revoked, not to retry.
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
    for (job, _, _) in waiting {
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

/// What became of a batch.
enum Outcome {
    /// Stored and acknowledged.
    Stored,
    /// Nothing stored: nothing needed storing, or the store refused and
    /// the agents were answered with errors.
    NotStored,
    /// Refused because another collector appended first: these jobs are
    /// decided again, after its entries were taken in.
    Retry(Vec<Job1>),
}

struct Job1 {
    checked: Checked,
    reply: Reply,
}

enum Decision {
    Accept,
    Duplicate,
    Reject(Rejection),
}

/// Applies the chain rule to one envelope.
fn decide(chain: &Chain, c: &Checked) -> Decision {
    use annexa_evidence::chain::{Step, step};
    match step(
        chain.next,
        chain.last.as_deref(),
        c.sequence,
        c.previous.as_deref(),
        c.gap.as_deref().unwrap_or(&[]),
    ) {
        Step::Extends => Decision::Accept,
        Step::Behind => Decision::Duplicate,
        Step::WrongPrevious => Decision::Reject(Rejection::sequence(
            format!(
                "sequence {} names previous {} but the last accepted envelope is {}",
                c.sequence,
                c.previous.as_deref().unwrap_or("none"),
                chain.last.as_deref().unwrap_or("none")
            ),
            chain.next,
        )),
        Step::UndeclaredJump => Decision::Reject(Rejection::sequence(
            format!(
                "sequence {} is out of order; expected {}",
                c.sequence, chain.next
            ),
            chain.next,
        )),
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
                run_profile: None,
            },
            profile: RunProfile::default(),
            sequence,
            previous: previous.map(str::to_string),
            gap,
            sha256: format!("{sequence:064x}"),
            summary: String::new(),
            results: String::new(),
            latest: Vec::new(),
            bytes: Vec::new(),
            agent_time: None,
            finished_at: String::new(),
            rotate_to: None,
        }
    }

    fn chain(next: u64, last: Option<&str>) -> Chain {
        Chain {
            next,
            last: last.map(str::to_string),
            key_id: "k".into(),
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
