//! What the writer does between batches: reconcile conformity with a new
//! SoA version, the staleness sweep, taking in other collectors' entries,
//! storing checkpoints and retention. All of it runs on the writer's task,
//! so no envelope is being processed meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use annexa_checks::pack::PackSet;
use annexa_checks::{CheckId, ControlId};
use annexa_evidence::AgentId;

use super::task::{LogSettings, WriterTask};
use crate::clock;
use crate::conformity::index::{HostEntry, Stored};
use crate::conformity::{self, Cause, Policy, State};
use crate::log::Log;
use crate::store::{AgentRecord, ConformityChange, HostRows, Hosts, Store, StoreError};

impl WriterTask {
    /// The periodic sweep; a failure is logged and tried again at the next
    /// tick.
    pub(super) async fn sweep(&mut self) {
        if let Err(e) = self.housekeeping().await {
            tracing::error!(error = %e, "conformity housekeeping failed; retrying at the next tick");
        }
        if let Err(e) = retention(self.store.as_ref(), &self.log).await {
            tracing::error!(error = %e, "the retention job failed; retrying at the next tick");
        }
    }

    /// Stores the newest checkpoint if it is due; whether one was stored.
    pub(super) async fn checkpoint_tick(&self) -> bool {
        match store_checkpoint(self.store.as_ref(), &self.log.log).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "storing a checkpoint failed; retrying at the next tick");
                false
            }
        }
    }

    /// Loads every active host, its stored states and (with an SoA) its
    /// latest results, re-evaluates it against the newest SoA version,
    /// records what changed and replaces the index.
    pub(super) async fn reconcile_all(&self) -> Result<Option<i64>, StoreError> {
        let store = self.store.as_ref();
        let policy = load_policy(store, &self.conf.packs).await?;
        let rows = store.host_rows(Hosts::All, policy.is_some()).await?;
        let (hosts, recorded) = evaluate_hosts(store, policy.as_deref(), rows).await?;
        let Some(policy) = policy else {
            self.conf.index.replace(None, hosts);
            return Ok(None);
        };
        tracing::info!(
            soa_version = policy.version,
            hosts = hosts.len(),
            changes = recorded,
            "conformity reconciled with the Statement of Applicability"
        );
        let version = policy.version;
        self.conf.index.replace(Some(policy), hosts);
        Ok(Some(version))
    }

    /// Takes in what other collectors on the same database appended since
    /// this one last looked: the log entries, then the hosts they came from
    /// (and those of entries batches were placed after), reloaded from the
    /// store and re-evaluated, so this collector's index and chains agree
    /// with what any collector accepted. Costs what those hosts cost, not
    /// what the fleet does.
    pub(super) async fn take_in(&mut self) -> Result<u64, StoreError> {
        let log = &self.log.log;
        let range = log.resync(self.store.as_ref()).await.map_err(|e| match e {
            crate::log::LogError::Store(s) => s,
            other => StoreError::Broken(other.to_string()),
        })?;
        // With what batches placed after others' entries left to reload.
        log.note_behind(range.clone());
        if let Some(behind) = log.take_behind()
            && let Err(e) = self.reload_hosts(&behind).await
        {
            self.log.log.note_behind(behind);
            return Err(e);
        }
        Ok(range.end - range.start)
    }

    /// Reloads the hosts with envelopes at log indices `behind` from the
    /// store, re-evaluates them and replaces their index entries; forgets
    /// their cached chains.
    async fn reload_hosts(&mut self, behind: &std::ops::Range<u64>) -> Result<(), StoreError> {
        let store = self.store.as_ref();
        let policy = self.conf.index.policy();
        let rows = store
            .host_rows(Hosts::InLog(behind.clone()), policy.is_some())
            .await?;
        let mut revoked = Vec::new();
        for a in &rows.agents {
            self.chains.remove(&a.no);
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
        self.conf.index.put_hosts(hosts, &revoked);
        Ok(())
    }

    /// The periodic tick: an SoA version imported by another process,
    /// evidence another collector on the same database accepted, agents
    /// enrolled or revoked elsewhere, and states the passing of time made
    /// stale.
    async fn housekeeping(&mut self) -> Result<(), StoreError> {
        let newest = self.store.soa_versions().await?.last().map(|v| v.version);
        // Another collector's states are in the store, not in this index.
        self.take_in().await?;
        let index = &self.conf.index;
        if newest != index.policy().map(|p| p.version) {
            self.reconcile_all().await?;
            return Ok(());
        }
        index.sync_hosts(&self.store.agents().await?);
        let Some(policy) = index.policy() else {
            return Ok(());
        };
        let at = clock::now_rfc3339();
        let now = clock::now_unix();
        let mut changes = Vec::new();
        let mut apply = Vec::new();
        for (no, host) in index.snapshot() {
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
        let recorded = self.store.record_conformity(&changes).await?;
        if recorded > 0 {
            tracing::info!(changes = recorded, "evidence went stale");
        }
        for (no, states) in apply {
            index.apply(no, None, states);
        }
        Ok(())
    }
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
                ControlId::from(s.control_id),
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
            .insert(CheckId::from(row.check_id), (row.status, row.observed));
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
        id: AgentId::new(&a.id),
        hostname: a.hostname.clone(),
        labels: a.labels.clone(),
        profile: a
            .run_profile
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()),
        states: HashMap::new(),
    }
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
