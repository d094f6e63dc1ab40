//! The states a report states, derived from its evidence: the collector
//! builds a report's control section with [`assess`], and the verifier
//! calls it again on the envelopes it has checked and compares. One
//! function for both, so the two cannot drift apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use annexa_checks::catalog::catalog;
use annexa_checks::conformity::{
    ControlKind, Decision, Evaluation, Latest, Policy, RunProfile, State, decide, from_evidence,
    stale_reason,
};
use annexa_checks::result::CheckResult;
use annexa_checks::soa::{Scope, SoaControl};
use annexa_checks::{CheckId, ControlId};

use super::{CheckInfo, ControlReport, Counts, HostState, Kind, Summary, ThemeCounts, Withheld};
use crate::ids::AgentId;
use crate::statement::ScanPredicate;

/// One of a host's envelopes, opened.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its sequence number.
    pub sequence: u64,
    /// When the collector accepted it (Unix seconds).
    pub accepted_at: i64,
    /// What the agent signed.
    pub predicate: ScanPredicate,
}

/// A host as the assessment sees it.
#[derive(Debug, Clone, Copy)]
pub struct HostInput<'a> {
    /// Agent id.
    pub agent: &'a AgentId,
    /// Its enrollment labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Its envelopes in the period, oldest first (an unbroken chain).
    pub runs: &'a [Run],
    /// Its newest envelope, when retention removed it.
    pub withheld: Option<&'a Withheld>,
}

/// The policy a report's SoA and check list describe.
pub fn policy(version: i64, soa: annexa_checks::soa::Soa, checks: &[CheckInfo]) -> Policy {
    let mut mapped: BTreeMap<ControlId, BTreeSet<CheckId>> = BTreeMap::new();
    for c in checks {
        for control in &c.controls {
            mapped
                .entry(control.clone())
                .or_default()
                .insert(c.id.clone());
        }
    }
    let params: HashMap<CheckId, Vec<String>> = checks
        .iter()
        .map(|c| (c.id.clone(), c.params.clone()))
        .collect();
    Policy::resolve(version, soa, &mapped, params)
}

/// The SoA's controls a scope selects, in SoA order.
pub fn controls_in_scope<'p>(policy: &'p Policy, only: &[ControlId]) -> Vec<&'p SoaControl> {
    policy
        .soa
        .controls
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.id))
        .collect()
}

/// How a control of the policy is decided.
fn kind(policy: &Policy, control: &SoaControl) -> Kind {
    match ControlKind::of(control, policy.is_automated(control.id.as_str())) {
        ControlKind::Excluded => Kind::Excluded,
        ControlKind::Manual => Kind::Manual,
        ControlKind::Automated => Kind::Automated,
    }
}

/// A host's newest result per check over its runs (newer runs override),
/// with the sequence of the run that gave it.
fn fold(runs: &[Run]) -> HashMap<&str, (&CheckResult, u64)> {
    let mut out = HashMap::new();
    for run in runs {
        for r in &run.predicate.scan.results {
            out.insert(r.check_id.as_str(), (r, run.sequence));
        }
    }
    out
}

/// How the newest run was produced, as the collector recorded it.
fn profile(run: &Run) -> RunProfile {
    RunProfile::of(
        &run.predicate.scan,
        run.predicate.interval_seconds,
        run.accepted_at,
    )
}

/// The checks a host lacks a result for among those its in-scope
/// automated controls need (the collector adds older runs until none is
/// missing or the chain ends).
pub fn missing_checks(
    policy: &Policy,
    controls: &[&SoaControl],
    labels: &BTreeMap<String, String>,
    runs: &[Run],
) -> BTreeSet<CheckId> {
    let have = fold(runs);
    controls
        .iter()
        .filter(|c| policy.is_automated(c.id.as_str()) && c.scope.matches(labels))
        .flat_map(|c| policy.coverage[&c.id].checks.iter())
        .filter(|check| !have.contains_key(check.as_str()))
        .cloned()
        .collect()
}

/// Each in-scope automated control's state on one host at `at`.
fn host_states(
    policy: &Policy,
    controls: &[&SoaControl],
    host: &HostInput<'_>,
    at: i64,
) -> Vec<(ControlId, HostState)> {
    let folded = fold(host.runs);
    let latest: Latest = folded
        .iter()
        .map(|(k, (r, _))| (CheckId::from(*k), (r.status, r.observed.clone())))
        .collect();
    let profile = host.runs.last().map(profile);
    let mut out = Vec::new();
    for c in controls {
        let evidence = profile
            .as_ref()
            .map(|p| (p, || from_evidence(policy, c.id.as_str(), &latest, p)));
        let automated = policy.is_automated(c.id.as_str());
        let ev = match decide(policy, c, automated, host.labels, evidence, at) {
            Decision::Excluded | Decision::OutOfScope | Decision::Manual => continue,
            Decision::NeverReported => no_evidence(host.withheld),
            Decision::Overdue { age, window } => {
                Evaluation::because(State::Stale, stale_reason(age, window))
            }
            Decision::Evidence(ev) => ev,
        };
        let evidence = match &profile {
            None => Vec::new(),
            Some(_) => {
                let seqs: BTreeSet<u64> = policy.coverage[&c.id]
                    .checks
                    .iter()
                    .filter_map(|check| folded.get(check.as_str()).map(|(_, s)| *s))
                    .collect();
                seqs.into_iter().collect()
            }
        };
        out.push((
            c.id.clone(),
            HostState {
                agent: host.agent.clone(),
                state: ev.state,
                detail: ev.detail,
                evidence,
            },
        ));
    }
    out
}

fn no_evidence(withheld: Option<&Withheld>) -> Evaluation {
    Evaluation::because(
        State::NoEvidence,
        match withheld {
            Some(w) => format!(
                "the host's newest evidence in the period (sequence {}) was removed by the retention job at {}",
                w.sequence, w.pruned_at
            ),
            None => "the host sent no evidence in the report's period".into(),
        },
    )
}

/// The control section and totals of a report over `hosts` at `at`.
pub fn assess(
    policy: &Policy,
    only: &[ControlId],
    hosts: &[HostInput<'_>],
    at: i64,
) -> (Vec<ControlReport>, Summary) {
    let controls = controls_in_scope(policy, only);
    let mut per_control: HashMap<ControlId, Vec<HostState>> = HashMap::new();
    for h in hosts {
        for (control, state) in host_states(policy, &controls, h, at) {
            per_control.entry(control).or_default().push(state);
        }
    }
    let mut summary = Summary {
        hosts: hosts.len() as u64,
        ..Summary::default()
    };
    let mut themes: Vec<ThemeCounts> = Vec::new();
    let mut out = Vec::with_capacity(controls.len());
    for c in controls {
        let kind = kind(policy, c);
        let cat = catalog().control(policy.soa.edition, c.id.as_str()).ok();
        let theme = cat
            .map(|x| format!("{} {}", x.clause_id, x.clause_title))
            .unwrap_or_default();
        let hosts = per_control.remove(&c.id).unwrap_or_default();
        let mut counts = Counts::new();
        for h in &hosts {
            *counts.entry(h.state).or_default() += 1;
        }
        *summary.controls.entry(kind).or_default() += 1;
        for (s, n) in &counts {
            *summary.cells.entry(*s).or_default() += n;
        }
        let i = themes
            .iter()
            .position(|t| t.theme == theme)
            .unwrap_or_else(|| {
                themes.push(ThemeCounts {
                    theme: theme.clone(),
                    controls: 0,
                    manual: 0,
                    excluded: 0,
                    cells: Counts::new(),
                });
                themes.len() - 1
            });
        let t = &mut themes[i];
        t.controls += 1;
        match kind {
            Kind::Manual => t.manual += 1,
            Kind::Excluded => t.excluded += 1,
            Kind::Automated => {}
        }
        for (s, n) in &counts {
            *t.cells.entry(*s).or_default() += n;
        }
        out.push(ControlReport {
            id: c.id.clone(),
            title: cat.map(|x| x.title.clone()).unwrap_or_default(),
            theme,
            kind,
            applicable: c.applicable,
            justification: c.justification.clone(),
            owner: c.owner.clone(),
            implementation: c.status.map(|s| s.as_str().to_string()),
            checks: policy
                .coverage
                .get(&c.id)
                .map(|cov| cov.checks.clone())
                .unwrap_or_default(),
            counts,
            hosts,
        });
    }
    summary.themes = themes;
    (out, summary)
}

/// Whether a host with `labels` is in a report's scope.
pub fn in_scope(selector: Option<&Scope>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|s| s.matches(labels))
}
