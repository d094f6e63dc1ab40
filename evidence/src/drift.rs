//! Drift of a fleet's conformity between two times: the body of the
//! collector's `GET /v1/drift` (docs/api.md), the rule that names each
//! change, and the CI gate's judgement of it (`annexa gate --server`).
//! Shared so that the collector that classifies changes and the CLI that
//! fails a pipeline on them cannot disagree.

use std::collections::{BTreeMap, HashMap};

use annexa_checks::conformity::{Detail, State};
use annexa_checks::{CheckId, ControlId};
use serde::{Deserialize, Serialize};

use crate::ids::AgentId;
use crate::report::{CheckInfo, Report};

/// The `format` of a drift answer.
pub const DRIFT_FORMAT: &str = "annexa/drift/v1";

/// At most this many transitions are listed per (host, control), newest
/// kept; the rest are counted.
pub const MAX_TRANSITIONS: usize = 50;

/// `GET /v1/drift`: what changed between `from` and `to` for the hosts and
/// controls in scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    /// Always [`DRIFT_FORMAT`].
    pub format: String,
    /// Start of the window (RFC 3339 UTC); states "before" hold here.
    pub from: String,
    /// End of the window; states "after" hold here.
    pub to: String,
    /// Whether `to` is the time of the answer, its states those the
    /// collector's conformity shows now (staleness included).
    pub live: bool,
    /// The SoA version the states are judged against (the current one).
    pub soa_version: i64,
    /// Its edition.
    pub edition: String,
    /// The label selector the hosts matched, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Active hosts in scope, in enrollment order (agent id, host name).
    pub hosts: Vec<HostRef>,
    /// Every control in scope with its states at `to`.
    pub controls: Vec<ControlAt>,
    /// The checks named by the changes' reasons.
    pub checks: Vec<CheckInfo>,
    /// Changes per kind.
    pub counts: BTreeMap<ChangeKind, u64>,
    /// Every (host, control) whose state changed in the window.
    pub changes: Vec<Change>,
}

/// A host in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRef {
    /// Agent id.
    pub id: AgentId,
    /// Host name.
    pub hostname: String,
}

impl HostRef {
    /// `hostname (agent id)`: host names need not be unique, agent ids are.
    pub fn label(&self) -> String {
        format!("{} ({})", self.hostname, self.id)
    }
}

/// A control at `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlAt {
    /// The control.
    pub control: ControlId,
    /// Its title.
    pub title: String,
    /// Whether the SoA applies it.
    pub applicable: bool,
    /// Checks that give evidence for it.
    pub checks: Vec<CheckId>,
    /// Hosts per state (hosts outside the control's own scope are not
    /// counted).
    pub counts: BTreeMap<State, u64>,
    /// Each host's state, in the order of [`Drift::hosts`]; `null` where
    /// the control's scope leaves the host out. Present only when asked
    /// for (`cells=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<Vec<Option<State>>>,
}

/// What a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Conformant at `from` or at some time since, and at `to`
    /// nonconformant, stale, without evidence or in error: the gate fails
    /// on it.
    Drift,
    /// Conformant at both ends, not in between.
    Transient,
    /// Not conformant at `from` (or not yet known), conformant at `to`.
    Recovered,
    /// Conformant at `from` or since, excluded or manual at `to`: the SoA,
    /// not the host, changed.
    Rescoped,
    /// Anything else (nonconformant to error, unknown to nonconformant…).
    Changed,
}

impl ChangeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Drift => "drift",
            ChangeKind::Transient => "transient",
            ChangeKind::Recovered => "recovered",
            ChangeKind::Rescoped => "rescoped",
            ChangeKind::Changed => "changed",
        }
    }

    /// Names the change from the states at both ends and those passed
    /// through (`between`, oldest first, `after` included or not). A cell
    /// that was conformant at `from` or at any time since, and is not now
    /// (nor excluded or manual by the SoA), drifted.
    pub fn classify(before: Option<State>, after: State, between: &[State]) -> ChangeKind {
        let was = before == Some(State::Conformant);
        let ever = was || between.contains(&State::Conformant);
        match after {
            State::Conformant if was && between.iter().any(|s| *s != State::Conformant) => {
                ChangeKind::Transient
            }
            State::Conformant if !was => ChangeKind::Recovered,
            State::Conformant => ChangeKind::Changed,
            State::Excluded | State::Manual if ever => ChangeKind::Rescoped,
            _ if ever => ChangeKind::Drift,
            _ => ChangeKind::Changed,
        }
    }
}

/// One (host, control) that changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Agent id.
    pub host: AgentId,
    /// Host name.
    pub hostname: String,
    /// The control.
    pub control: ControlId,
    /// Its title.
    pub title: String,
    /// The state at `from`; `None` when none was recorded yet.
    pub before: Option<State>,
    /// The state at `to`.
    pub after: State,
    /// What the change is.
    pub kind: ChangeKind,
    /// Why the state at `to` holds.
    pub detail: Detail,
    /// The state changes in the window, oldest first.
    pub transitions: Vec<Transition>,
    /// Older transitions left out (beyond [`MAX_TRANSITIONS`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One recorded state change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// When (RFC 3339).
    pub at: String,
    /// The state left.
    pub previous: Option<State>,
    /// The state entered.
    pub state: State,
    /// `envelope`, `soa`, `freshness`, or `live` (the collector's current
    /// view differs from the last recorded change, e.g. staleness not yet
    /// swept).
    pub cause: String,
    /// The envelope that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeRef>,
    /// The SoA version in force.
    pub soa_version: i64,
}

/// An agent's envelope, as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeRef {
    /// Its sequence number in the agent's chain.
    pub sequence: u64,
    /// Hex SHA-256 of its bytes (`GET /v1/hosts/{id}/evidence/{seq}`).
    pub sha256: Option<String>,
    /// Its index in the evidence log.
    pub log_index: Option<u64>,
    /// When the collector accepted it.
    pub accepted_at: Option<String>,
}

/// What the fleet gate fails on, beyond drift.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    /// Every control in scope needs at least this share of its evidenced
    /// hosts conformant (0–100).
    pub min_conformant: Option<f64>,
}

/// What a fleet finding is (serialized by its name: `drift`,
/// `below_threshold`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FleetKind {
    /// A (host, control) changed (see [`ChangeKind`]).
    Change(ChangeKind),
    /// A control's conformant share is below the threshold.
    BelowThreshold,
}

impl FleetKind {
    /// The display name.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetKind::Change(k) => k.as_str(),
            FleetKind::BelowThreshold => "below_threshold",
        }
    }
}

impl Serialize for FleetKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One thing the fleet gate reports.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFinding {
    /// What it is.
    pub kind: FleetKind,
    /// Whether it fails the gate.
    pub fails: bool,
    /// The control.
    pub control: ControlId,
    /// Its title.
    pub title: String,
    /// The host (absent for a control's threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostRef>,
    /// The state at the start (the baseline report's where one is used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<State>,
    /// The state now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<State>,
    /// Why (failing checks, errors, missing results, a reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
    /// The recorded state changes with their envelopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<Transition>,
    /// One line for a human.
    pub message: String,
}

/// The fleet gate's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct FleetVerdict {
    /// Whether the gate fails.
    pub failed: bool,
    /// Hosts in scope.
    pub hosts: usize,
    /// Controls in scope.
    pub controls: usize,
    /// Findings, failing ones first.
    pub findings: Vec<FleetFinding>,
    /// Findings per kind.
    pub counts: BTreeMap<String, usize>,
    /// Where the baseline report's states and the collector's recorded
    /// states at the report's time disagree (informational).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<String>,
}

/// A control's conformant share at `to`: conformant hosts over hosts whose
/// state evidence decides (manual and excluded cells are not counted);
/// `None` when no host's evidence decides it.
pub fn conformant_share(c: &ControlAt) -> Option<(u64, u64)> {
    let decided: u64 = c
        .counts
        .iter()
        .filter(|(s, _)| !matches!(s, State::Manual | State::Excluded))
        .map(|(_, n)| *n)
        .sum();
    (decided > 0).then(|| {
        (
            c.counts.get(&State::Conformant).copied().unwrap_or(0),
            decided,
        )
    })
}

/// Judges a drift answer. With a `baseline` report (already verified), the
/// state at `from` of each change is the report's, so that what an auditor
/// signed is the reference.
pub fn judge(drift: &Drift, baseline: Option<&Report>, t: &Thresholds) -> FleetVerdict {
    let reported: HashMap<(&str, &str), State> = baseline
        .map(|r| {
            r.controls
                .iter()
                .flat_map(|c| {
                    c.hosts
                        .iter()
                        .map(move |h| ((h.agent.as_str(), c.id.as_str()), h.state))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut findings = Vec::new();
    let mut disagreements = Vec::new();
    for ch in &drift.changes {
        let host = HostRef {
            id: ch.host.clone(),
            hostname: ch.hostname.clone(),
        };
        let on = host.label();
        let mut before = ch.before;
        if let Some(&r) = reported.get(&(ch.host.as_str(), ch.control.as_str())) {
            if ch.before.is_some_and(|b| b != r) {
                disagreements.push(format!(
                    "{on} {}: the report says {r}, the collector recorded {} at {}",
                    ch.control,
                    ch.before.map(State::as_str).unwrap_or("nothing"),
                    drift.from
                ));
            }
            before = Some(r);
        }
        let between: Vec<State> = ch.transitions.iter().map(|t| t.state).collect();
        // The collector named it with every transition; only a baseline
        // report's state at the start calls for naming it again.
        let kind = if before == ch.before {
            ch.kind
        } else {
            ChangeKind::classify(before, ch.after, &between)
        };
        let fails = kind == ChangeKind::Drift;
        let message = match kind {
            ChangeKind::Drift => format!(
                "{} on {on}: conformant at {}, {} now{}",
                ch.control,
                // The last time it was seen conformant.
                ch.transitions
                    .iter()
                    .rev()
                    .find(|t| t.state == State::Conformant)
                    .map(|t| t.at.as_str())
                    .unwrap_or(&drift.from),
                ch.after,
                why(&ch.detail)
            ),
            ChangeKind::Transient => format!(
                "{} on {on}: left conformant ({}) and came back",
                ch.control,
                between
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            _ => format!(
                "{} on {on}: {} → {}",
                ch.control,
                before.map(State::as_str).unwrap_or("unknown"),
                ch.after
            ),
        };
        findings.push(FleetFinding {
            kind: FleetKind::Change(kind),
            fails,
            control: ch.control.clone(),
            title: ch.title.clone(),
            host: Some(host),
            before,
            after: Some(ch.after),
            detail: Some(ch.detail.clone()),
            transitions: ch.transitions.clone(),
            message,
        });
    }
    if let Some(min) = t.min_conformant {
        for c in &drift.controls {
            let Some((ok, decided)) = conformant_share(c) else {
                continue;
            };
            let share = ok as f64 * 100.0 / decided as f64;
            if share + 1e-9 < min {
                findings.push(FleetFinding {
                    kind: FleetKind::BelowThreshold,
                    fails: true,
                    control: c.control.clone(),
                    title: c.title.clone(),
                    host: None,
                    before: None,
                    after: None,
                    detail: None,
                    transitions: Vec::new(),
                    message: format!(
                        "{}: {ok} of {decided} hosts conformant ({}), below the required {}",
                        c.control,
                        percent(share),
                        percent(min)
                    ),
                });
            }
        }
    }
    findings.sort_by(|a, b| {
        (
            !a.fails,
            a.kind,
            &a.control,
            a.host.as_ref().map(|h| &h.hostname),
        )
            .cmp(&(
                !b.fails,
                b.kind,
                &b.control,
                b.host.as_ref().map(|h| &h.hostname),
            ))
    });
    let mut counts = BTreeMap::new();
    for f in &findings {
        *counts.entry(f.kind.as_str().to_string()).or_default() += 1;
    }
    FleetVerdict {
        failed: findings.iter().any(|f| f.fails),
        hosts: drift.hosts.len(),
        controls: drift.controls.len(),
        findings,
        counts,
        disagreements,
    }
}

/// A percentage as people write it: `100%`, `66.7%`.
pub fn percent(p: f64) -> String {
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

/// Parses `100%`, `99.5%` or `99.5` as a share between 0 and 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches('%').trim();
    let v: f64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage such as 100% or 95.5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("`{s}` is not between 0% and 100%"));
    }
    Ok(v)
}

/// The reasons of a state in a few words.
pub fn why(d: &Detail) -> String {
    let mut parts = Vec::new();
    if !d.failing.is_empty() {
        parts.push(format!(
            "failing {}",
            d.failing
                .iter()
                .map(|f| match &f.observed {
                    Some(o) => format!("{} (observed {o})", f.check),
                    None => f.check.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !d.errors.is_empty() {
        parts.push(format!("could not run {}", d.errors.join(", ")));
    }
    if !d.missing.is_empty() {
        parts.push(format!("no result for {}", d.missing.join(", ")));
    }
    if let Some(r) = &d.reason {
        parts.push(r.clone());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    #[test]
    fn only_leaving_conformant_for_a_worse_state_is_drift() {
        assert_eq!(
            ChangeKind::classify(Some(Conformant), Nonconformant, &[Nonconformant]),
            ChangeKind::Drift
        );
        assert_eq!(
            ChangeKind::classify(Some(Conformant), Stale, &[Stale]),
            ChangeKind::Drift
        );
        assert_eq!(
            ChangeKind::classify(Some(Conformant), Conformant, &[Error, Conformant]),
            ChangeKind::Transient
        );
        assert_eq!(
            ChangeKind::classify(Some(Conformant), Excluded, &[Excluded]),
            ChangeKind::Rescoped
        );
        assert_eq!(
            ChangeKind::classify(None, Nonconformant, &[Nonconformant]),
            ChangeKind::Changed
        );
        assert_eq!(
            ChangeKind::classify(None, Nonconformant, &[Conformant, Nonconformant]),
            ChangeKind::Drift,
            "conformant within the window counts as much as at its start"
        );
        assert_eq!(
            ChangeKind::classify(Some(Error), Manual, &[Manual]),
            ChangeKind::Changed
        );
        assert_eq!(
            ChangeKind::classify(Some(Nonconformant), Conformant, &[Conformant]),
            ChangeKind::Recovered
        );
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("100%").unwrap(), 100.0);
        assert_eq!(parse_percent(" 95.5 ").unwrap(), 95.5);
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("all").is_err());
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(200.0 / 3.0), "66.7%");
    }

    fn control(conformant: u64, other: u64) -> ControlAt {
        ControlAt {
            control: "A.12.4.1".into(),
            title: "Event logging".into(),
            applicable: true,
            checks: vec![],
            counts: [
                (Conformant, conformant),
                (Nonconformant, other),
                (Manual, 5),
            ]
            .into_iter()
            .collect(),
            states: None,
        }
    }

    fn drift(controls: Vec<ControlAt>) -> Drift {
        Drift {
            format: DRIFT_FORMAT.into(),
            from: "2026-11-23T10:00:00Z".into(),
            to: "2026-11-23T11:00:00Z".into(),
            live: false,
            soa_version: 1,
            edition: "2013".into(),
            selector: None,
            hosts: vec![],
            controls,
            checks: vec![],
            counts: BTreeMap::new(),
            changes: vec![],
        }
    }

    #[test]
    fn the_threshold_counts_only_hosts_whose_evidence_decides() {
        let t = Thresholds {
            min_conformant: Some(100.0),
        };
        let v = judge(&drift(vec![control(3, 0)]), None, &t);
        assert!(!v.failed, "manual cells do not lower the share");
        let v = judge(&drift(vec![control(2, 1)]), None, &t);
        assert!(v.failed);
        assert!(
            v.findings[0]
                .message
                .contains("2 of 3 hosts conformant (66.7%)"),
            "{}",
            v.findings[0].message
        );
        let lenient = Thresholds {
            min_conformant: Some(60.0),
        };
        assert!(!judge(&drift(vec![control(2, 1)]), None, &lenient).failed);
    }
}
