//! Drift between two times (`GET /v1/drift`, docs/api.md): the state of
//! each (host, control) in scope at `from` and at `to`, read from the
//! recorded conformity timeline, and the changes in between with the
//! envelopes that caused them. When `to` is now, the states at `to` are
//! those the fleet's conformity shows, so that staleness the sweep has not
//! yet recorded already counts.
//!
//! Scope: the active hosts whose labels match the selector now, and the
//! controls of the current SoA. Hosts revoked since `from` have left the
//! fleet and are not listed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use annexa_checks::CheckId;
use annexa_checks::catalog::Catalog;
use annexa_checks::conformity::{Detail, State};
use annexa_checks::pack::PackSet;
use annexa_checks::soa::Scope;
use annexa_evidence::drift::{
    Change, ChangeKind, ControlAt, DRIFT_FORMAT, Drift, EnvelopeRef, HostRef, MAX_TRANSITIONS,
    Transition,
};
use serde::Deserialize;

use crate::conformity::index::Index;
use crate::store::{Store, StoreError};
use crate::{clock, report};

/// What is asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Start of the window, RFC 3339 (default: `to`, an empty window: the
    /// states at `to` only).
    pub from: Option<String>,
    /// End of the window, RFC 3339 (default: now, live).
    pub to: Option<String>,
    /// Hosts whose labels match.
    pub selector: Option<String>,
    /// Only these controls (default: every control of the SoA).
    pub controls: Vec<String>,
    /// Include every host's state per control.
    pub cells: bool,
}

/// Why no drift answer can be given.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// No SoA was imported.
    #[error("no SoA has been imported; conformity is judged against one")]
    NoSoa,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn time(name: &str, v: &str) -> Result<(String, i64), DriftError> {
    clock::time_param(name, v).map_err(DriftError::Invalid)
}

/// One (host, control) as the window saw it.
#[derive(Default)]
struct Cell {
    before: Option<State>,
    transitions: Vec<(Transition, serde_json::Value)>,
}

/// Answers a drift request at `now` (Unix seconds).
pub async fn build(
    store: &dyn Store,
    index: &Index,
    packs: &PackSet,
    req: &Request,
    now: i64,
) -> Result<Drift, DriftError> {
    let (to, to_unix, live) = match &req.to {
        Some(t) => {
            let (s, u) = time("to", t)?;
            (s, u, false)
        }
        None => (clock::rfc3339(now), now, true),
    };
    let (from, from_unix) = match &req.from {
        Some(f) => time("from", f)?,
        None => (to.clone(), to_unix),
    };
    if to_unix > now {
        return Err(DriftError::Invalid(format!("`to` {to} is in the future")));
    }
    if from_unix > to_unix {
        return Err(DriftError::Invalid(format!(
            "`from` {from} is after `to` {to}"
        )));
    }
    let selector = req
        .selector
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            Scope::parse_selector(s).map_err(|e| DriftError::Invalid(format!("selector: {e}")))
        })
        .transpose()?;
    let (policy, hosts) = index
        .live(&selector.clone().unwrap_or_default(), now)
        .ok_or(DriftError::NoSoa)?;
    let soa_controls = &policy.soa.controls;
    // Positions (in the SoA) of the controls in scope, in SoA order.
    let positions: Vec<usize> = if req.controls.is_empty() {
        (0..soa_controls.len()).collect()
    } else {
        let mut wanted = BTreeSet::new();
        for c in &req.controls {
            let id = Catalog::normalize(policy.soa.edition, c);
            let pos = soa_controls
                .iter()
                .position(|x| x.id == id)
                .ok_or_else(|| {
                    DriftError::Invalid(format!(
                        "control `{c}` is not in the current SoA (version {}, {} edition)",
                        policy.version,
                        policy.soa.edition.year()
                    ))
                })?;
            wanted.insert(pos);
        }
        wanted.into_iter().collect()
    };
    let host_at: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    let control_at: HashMap<&str, usize> = positions
        .iter()
        .enumerate()
        .map(|(i, &p)| (soa_controls[p].id.as_str(), i))
        .collect();

    let mut cells: HashMap<(usize, usize), Cell> = HashMap::new();
    for w in store.timeline_window(&from, &to).await? {
        let e = w.entry;
        let (Some(&h), Some(&c), Some(s)) = (
            host_at.get(e.host.as_str()),
            control_at.get(e.control.as_str()),
            State::parse(&e.state),
        ) else {
            continue;
        };
        let cell = cells.entry((h, c)).or_default();
        // Recorded times are RFC 3339 UTC, comparable as text.
        if e.at.as_str() <= from.as_str() {
            cell.before = Some(s);
            continue;
        }
        cell.transitions.push((
            Transition {
                at: e.at,
                previous: e.previous.as_deref().and_then(State::parse),
                state: s,
                cause: e.cause,
                // Without its stored metadata, still named by its sequence.
                envelope: e.sequence.map(|sequence| {
                    w.envelope.unwrap_or(EnvelopeRef {
                        sequence,
                        sha256: None,
                        log_index: None,
                        accepted_at: None,
                    })
                }),
                soa_version: e.soa_version,
            },
            e.detail,
        ));
    }

    let mut controls: Vec<ControlAt> = positions
        .iter()
        .map(|&p| {
            let c = &soa_controls[p];
            ControlAt {
                control: c.id.clone(),
                title: policy.title(c.id.as_str()),
                applicable: c.applicable,
                checks: policy
                    .coverage
                    .get(&c.id)
                    .map(|x| x.checks.clone())
                    .unwrap_or_default(),
                counts: State::ALL.into_iter().map(|s| (s, 0)).collect(),
                states: req.cells.then(Vec::new),
            }
        })
        .collect();
    let mut changes = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for (c, &p) in positions.iter().enumerate() {
            let Some(live_state) = host.states[p] else {
                if let Some(v) = &mut controls[c].states {
                    v.push(None);
                }
                continue;
            };
            let mut cell = cells.remove(&(h, c)).unwrap_or_default();
            let recorded = cell
                .transitions
                .last()
                .map(|(t, _)| t.state)
                .or(cell.before);
            let after = if live {
                if recorded.is_some_and(|r| r != live_state) {
                    cell.transitions.push((
                        Transition {
                            at: to.clone(),
                            previous: recorded,
                            state: live_state,
                            cause: "live".into(),
                            envelope: None,
                            soa_version: policy.version,
                        },
                        serde_json::Value::Null,
                    ));
                }
                live_state
            } else {
                recorded.unwrap_or(match live_state {
                    State::Excluded | State::Manual => live_state,
                    _ => State::NoEvidence,
                })
            };
            *controls[c].counts.entry(after).or_default() += 1;
            if let Some(v) = &mut controls[c].states {
                v.push(Some(after));
            }
            if cell.transitions.is_empty() {
                continue;
            }
            let between: Vec<State> = cell.transitions.iter().map(|(t, _)| t.state).collect();
            let kind = ChangeKind::classify(cell.before, after, &between);
            let detail = if live {
                // The reasons as the fleet's conformity gives them now.
                index
                    .cell(host.no, soa_controls[p].id.as_str(), now)
                    .map(|cell| cell.detail)
                    .unwrap_or_default()
            } else {
                cell.transitions
                    .iter()
                    .rev()
                    .find(|(_, d)| !d.is_null())
                    .and_then(|(_, d)| Detail::deserialize(d).ok())
                    .unwrap_or_default()
            };
            let omitted = cell.transitions.len().saturating_sub(MAX_TRANSITIONS);
            let transitions = cell.transitions.drain(omitted..).map(|(t, _)| t).collect();
            changes.push(Change {
                host: host.id.clone(),
                hostname: host.hostname.clone(),
                control: soa_controls[p].id.clone(),
                title: controls[c].title.clone(),
                before: cell.before,
                after,
                kind,
                detail,
                transitions,
                omitted: omitted as u64,
            });
        }
    }

    let mut counts: BTreeMap<ChangeKind, u64> = BTreeMap::new();
    let mut named: BTreeSet<&str> = BTreeSet::new();
    for ch in &changes {
        *counts.entry(ch.kind).or_default() += 1;
        named.extend(ch.detail.failing.iter().map(|f| f.check.as_str()));
        named.extend(ch.detail.errors.iter().map(CheckId::as_str));
        named.extend(ch.detail.missing.iter().map(CheckId::as_str));
    }
    let checks = packs
        .checks()
        .filter(|c| named.contains(c.id.as_str()))
        .map(|c| report::check_info(c, policy.soa.edition))
        .collect();
    Ok(Drift {
        format: DRIFT_FORMAT.into(),
        from,
        to,
        live,
        soa_version: policy.version,
        edition: policy.soa.edition.year().to_string(),
        selector: req.selector.clone().filter(|s| !s.trim().is_empty()),
        hosts: hosts
            .iter()
            .map(|h| HostRef {
                id: h.id.clone(),
                hostname: h.hostname.clone(),
            })
            .collect(),
        controls,
        checks,
        counts,
        changes,
    })
}
