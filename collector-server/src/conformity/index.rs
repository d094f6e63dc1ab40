//! The fleet's conformity in memory: the current SoA version resolved
//! ([`Policy`]), every active host with its newest run profile, and the
//! state its evidence gives each automated control. The writer keeps it
//! current after each commit; queries read it, adding what time alone
//! changes (staleness) and what the SoA alone decides (manual, excluded).
//! Rebuilt from the store at start, so it is a cache, never the record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use annexa_checks::soa::{Scope, SoaControl};
use annexa_checks::{CheckId, ControlId};
use annexa_evidence::AgentId;
use serde::Serialize;

use super::{Decision, Detail, Policy, RunProfile, State, decide, stale_reason};
use crate::store::{AgentRecord, Labels};

/// A state as stored: with when it began and the envelope that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The state.
    pub state: State,
    /// Why.
    pub detail: Detail,
    /// When the state began (RFC 3339).
    pub since: String,
    /// The agent's envelope that brought it, if an envelope did.
    pub since_sequence: Option<u64>,
}

impl annexa_checks::conformity::Judged for &Stored {
    fn state(&self) -> State {
        self.state
    }
}

/// One host as the index knows it.
#[derive(Debug, Clone)]
pub struct HostEntry {
    /// Agent id.
    pub id: AgentId,
    /// Host name.
    pub hostname: String,
    /// Labels (scope selectors match these).
    pub labels: Labels,
    /// How its newest evidence was produced; `None` until it reports.
    pub profile: Option<RunProfile>,
    /// State per automated control, from its evidence.
    pub states: HashMap<ControlId, Stored>,
}

#[derive(Debug, Default)]
struct Inner {
    policy: Option<Arc<Policy>>,
    hosts: BTreeMap<i64, HostEntry>,
}

/// The in-memory index (see the module documentation).
#[derive(Debug, Default)]
pub struct Index {
    inner: RwLock<Inner>,
}

/// Which (host, control) cells a query wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One control (canonical id of the SoA's edition).
    pub control: Option<ControlId>,
    /// One host (agent id or host name).
    pub host: Option<String>,
    /// Hosts whose labels match.
    pub labels: Scope,
    /// Cells in this state.
    pub state: Option<State>,
}

/// A (host, control) cell as a query answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Agent id.
    pub host: AgentId,
    /// Host name.
    pub hostname: String,
    /// The control.
    pub control: ControlId,
    /// Its title (left out where the answer names the control once).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The state now.
    pub state: State,
    /// Why.
    pub detail: Detail,
    /// Since when the stored state holds (absent for manual and excluded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The envelope that brought it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_sequence: Option<u64>,
    /// The checks that give evidence for the control (left out where the
    /// answer names them once).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckId>,
}

/// Counts per state.
pub type Counts = BTreeMap<State, u64>;

/// One control's line in the fleet table.
#[derive(Debug, Clone, Serialize)]
pub struct ControlCounts {
    /// The control.
    pub control: ControlId,
    /// Its title.
    pub title: String,
    /// Hosts in each state.
    pub counts: Counts,
}

/// The fleet table.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// The SoA version it was computed against.
    pub soa_version: i64,
    /// Its edition.
    pub edition: String,
    /// Hosts considered (active, matching the filter).
    pub hosts: u64,
    /// Cells per state over every control.
    pub totals: Counts,
    /// Per control.
    pub controls: Vec<ControlCounts>,
}

impl Index {
    /// The current policy, if an SoA was imported.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.read().policy.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces everything (at start and after an SoA is reconciled).
    pub fn replace(&self, policy: Option<Arc<Policy>>, hosts: BTreeMap<i64, HostEntry>) {
        let mut w = self.write();
        w.policy = policy;
        w.hosts = hosts;
    }

    /// Replaces the entries of some hosts (reloaded from the store) and
    /// removes `gone` (revoked).
    pub fn put_hosts(&self, hosts: BTreeMap<i64, HostEntry>, gone: &[i64]) {
        let mut w = self.write();
        for no in gone {
            w.hosts.remove(no);
        }
        w.hosts.extend(hosts);
    }

    /// Adds or refreshes a host's identity (enrollment, label changes);
    /// drops revoked hosts.
    pub fn upsert_host(&self, agent: &AgentRecord) {
        self.sync_hosts(std::slice::from_ref(agent));
    }

    /// [`Index::upsert_host`] for many agents under one lock (agents
    /// enrolled or revoked by another process).
    pub fn sync_hosts(&self, agents: &[AgentRecord]) {
        let mut w = self.write();
        for agent in agents {
            upsert(&mut w.hosts, agent);
        }
    }

    /// Removes a host (revocation).
    pub fn remove_host(&self, no: i64) {
        self.write().hosts.remove(&no);
    }

    /// A host's stored state for a control.
    pub fn stored(&self, no: i64, control: &str) -> Option<Stored> {
        self.read()
            .hosts
            .get(&no)
            .and_then(|h| h.states.get(control).cloned())
    }

    /// Whether the index knows a host.
    pub fn has_host(&self, no: i64) -> bool {
        self.read().hosts.contains_key(&no)
    }

    /// A copy of a host's entry.
    pub fn host(&self, no: i64) -> Option<HostEntry> {
        self.read().hosts.get(&no).cloned()
    }

    /// Every host's number with its profile (for the freshness sweep).
    pub fn snapshot(&self) -> Vec<(i64, HostEntry)> {
        self.read()
            .hosts
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Applies committed changes: a host's new profile and control states
    /// (`None` removes the control's state).
    pub fn apply(
        &self,
        no: i64,
        profile: Option<RunProfile>,
        states: Vec<(ControlId, Option<Stored>)>,
    ) {
        let mut w = self.write();
        let Some(h) = w.hosts.get_mut(&no) else {
            return;
        };
        if let Some(p) = profile {
            h.profile = Some(p);
        }
        for (control, s) in states {
            match s {
                Some(s) => {
                    h.states.insert(control, s);
                }
                None => {
                    h.states.remove(&control);
                }
            }
        }
    }

    /// The fleet table at `now` (Unix seconds), or `None` without an SoA.
    /// The hot path of the API (hosts × controls cells): controls are
    /// addressed by position, counts kept in arrays.
    pub fn fleet(&self, filter: &Filter, now: i64) -> Option<Fleet> {
        let r = self.read();
        let policy = r.policy.clone()?;
        let controls = &policy.soa.controls;
        let wanted: Vec<bool> = controls
            .iter()
            .map(|c| filter.control.as_ref().is_none_or(|x| *x == c.id))
            .collect();
        let mut counts = vec![[0u64; State::ALL.len()]; controls.len()];
        let mut seen = vec![false; controls.len()];
        let mut hosts = 0u64;
        for h in r.hosts.values() {
            if !host_matches(h, filter) {
                continue;
            }
            hosts += 1;
            for (i, c) in controls.iter().enumerate() {
                if !wanted[i] {
                    continue;
                }
                let Some(state) = state_of(&policy, h, c, policy.automated[i], now) else {
                    continue;
                };
                if filter.state.is_some_and(|s| s != state) {
                    continue;
                }
                counts[i][state as usize] += 1;
                seen[i] = true;
            }
        }
        let to_counts = |a: &[u64; 7]| -> Counts {
            State::ALL.into_iter().map(|s| (s, a[s as usize])).collect()
        };
        let mut totals = [0u64; State::ALL.len()];
        let mut rows = Vec::new();
        for (i, c) in controls.iter().enumerate() {
            if !seen[i] {
                continue;
            }
            for (t, n) in totals.iter_mut().zip(counts[i]) {
                *t += n;
            }
            rows.push(ControlCounts {
                control: c.id.clone(),
                title: policy.title(c.id.as_str()),
                counts: to_counts(&counts[i]),
            });
        }
        Some(Fleet {
            soa_version: policy.version,
            edition: policy.soa.edition.to_string(),
            hosts,
            totals: to_counts(&totals),
            controls: rows,
        })
    }

    /// The agent number of an active host by agent id or host name.
    pub fn find(&self, id_or_name: &str) -> Option<i64> {
        let r = self.read();
        r.hosts
            .iter()
            .find(|(_, h)| h.id == id_or_name)
            .or_else(|| r.hosts.iter().find(|(_, h)| h.hostname == id_or_name))
            .map(|(no, _)| *no)
    }

    /// Every matching (host, control) cell with its detail, host by host
    /// in enrollment order, controls in SoA order.
    pub fn cells(&self, filter: &Filter, now: i64) -> Option<(Arc<Policy>, Vec<Cell>)> {
        let r = self.read();
        let policy = r.policy.clone()?;
        let mut out = Vec::new();
        for h in r.hosts.values() {
            if !host_matches(h, filter) {
                continue;
            }
            for (c, &automated) in policy.soa.controls.iter().zip(&policy.automated) {
                if filter.control.as_ref().is_some_and(|x| *x != c.id) {
                    continue;
                }
                let Some(cell) = cell_of(&policy, h, c, automated, now) else {
                    continue;
                };
                if filter.state.is_some_and(|s| s != cell.state) {
                    continue;
                }
                out.push(cell);
            }
        }
        Some((policy, out))
    }
}

impl Index {
    /// One host's cell for one control at `now`, with its reasons (`None`:
    /// no such active host or control, or out of the control's scope).
    pub fn cell(&self, no: i64, control: &str, now: i64) -> Option<Cell> {
        let r = self.read();
        let policy = r.policy.clone()?;
        let h = r.hosts.get(&no)?;
        let (c, &automated) = policy
            .soa
            .controls
            .iter()
            .zip(&policy.automated)
            .find(|(c, _)| c.id == control)?;
        cell_of(&policy, h, c, automated, now)
    }
}

/// A host as [`Index::live`] answers it.
#[derive(Debug, Clone)]
pub struct LiveHost {
    /// Agent number.
    pub no: i64,
    /// Agent id.
    pub id: AgentId,
    /// Host name.
    pub hostname: String,
    /// The state of each control of the SoA, in its order, at `now`
    /// (`None`: the control's scope leaves the host out).
    pub states: Vec<Option<State>>,
}

impl Index {
    /// Every active host whose labels match `labels`, in enrollment order,
    /// with the state of every control at `now` (the fleet table's rules),
    /// or `None` without an SoA.
    pub fn live(&self, labels: &Scope, now: i64) -> Option<(Arc<Policy>, Vec<LiveHost>)> {
        let r = self.read();
        let policy = r.policy.clone()?;
        let hosts = r
            .hosts
            .iter()
            .filter(|(_, h)| labels.matches(&h.labels))
            .map(|(no, h)| LiveHost {
                no: *no,
                id: h.id.clone(),
                hostname: h.hostname.clone(),
                states: policy
                    .soa
                    .controls
                    .iter()
                    .zip(&policy.automated)
                    .map(|(c, &automated)| state_of(&policy, h, c, automated, now))
                    .collect(),
            })
            .collect();
        Some((policy, hosts))
    }
}

fn upsert(hosts: &mut BTreeMap<i64, HostEntry>, agent: &AgentRecord) {
    if agent.revoked_at.is_some() {
        hosts.remove(&agent.no);
        return;
    }
    let e = hosts.entry(agent.no).or_insert_with(|| HostEntry {
        id: AgentId::new(&agent.id),
        hostname: agent.hostname.clone(),
        labels: agent.labels.clone(),
        profile: None,
        states: HashMap::new(),
    });
    e.hostname = agent.hostname.clone();
    e.labels = agent.labels.clone();
}

fn host_matches(h: &HostEntry, f: &Filter) -> bool {
    f.host
        .as_deref()
        .is_none_or(|x| h.id == x || h.hostname == x)
        && f.labels.matches(&h.labels)
}

/// The state only (the fleet table's hot path: controls by position, no
/// detail cloned).
fn state_of(
    policy: &Policy,
    h: &HostEntry,
    c: &SoaControl,
    automated: bool,
    now: i64,
) -> Option<State> {
    decision_of(policy, h, c, automated, now).state()
}

/// How [`decide`] decides a host's stored evidence for a control.
fn decision_of<'h>(
    policy: &Policy,
    h: &'h HostEntry,
    c: &SoaControl,
    automated: bool,
    now: i64,
) -> Decision<&'h Stored> {
    let evidence = h
        .profile
        .as_ref()
        .zip(h.states.get(&c.id))
        .map(|(profile, stored)| (profile, move || stored));
    decide(policy, c, automated, &h.labels, evidence, now)
}

/// The cell with its reasons: [`decide`]'s state, explained.
fn cell_of(
    policy: &Policy,
    h: &HostEntry,
    c: &SoaControl,
    automated: bool,
    now: i64,
) -> Option<Cell> {
    let decision = decision_of(policy, h, c, automated, now);
    let state = decision.state()?;
    let because = |reason: String| Detail {
        reason: Some(reason),
        ..Detail::default()
    };
    let (detail, stored) = match decision {
        Decision::OutOfScope => return None,
        Decision::Excluded => (because(c.justification.clone()), None),
        Decision::Manual => (because(
            "no automated check gives evidence for this control; it needs evidence the agents cannot collect".into(),
        ), None),
        Decision::NeverReported => (because("the host has sent no evidence yet".into()), None),
        Decision::Overdue { age, window } => (because(stale_reason(age, window)), h.states.get(&c.id)),
        Decision::Evidence(s) => (s.detail.clone(), Some(s)),
    };
    Some(Cell {
        host: h.id.clone(),
        hostname: h.hostname.clone(),
        control: c.id.clone(),
        title: policy.title(c.id.as_str()),
        state,
        detail,
        since: stored.map(|s| s.since.clone()),
        since_sequence: stored.and_then(|s| s.since_sequence),
        checks: policy
            .coverage
            .get(&c.id)
            .map(|cov| cov.checks.clone())
            .unwrap_or_default(),
    })
}
