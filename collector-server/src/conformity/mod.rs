//! Conformity: what the signed evidence says about each (host, control) of
//! the Statement of Applicability. [`Policy`] is an imported SoA resolved
//! against the collector's check packs; [`evaluate`] decides one host's
//! state for one control from its latest results. Pure: the writer and the
//! query handlers supply the data ([`index`] holds it in memory).

pub mod index;

use std::collections::{BTreeMap, HashMap};

use annexa_checks::catalog::catalog;
use annexa_checks::expect::ParamValue;
use annexa_checks::pack::PackSet;
use annexa_checks::soa::{Coverage, Soa};
use serde::{Deserialize, Serialize};

/// The state of a (host, control).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum State {
    /// Every mapped check's latest result passes.
    Conformant,
    /// A mapped check failed.
    Nonconformant,
    /// The newest evidence is older than the freshness window, or was
    /// evaluated with parameters other than the SoA's.
    Stale,
    /// Some mapped check has no result (or the host never reported).
    NoEvidence,
    /// A mapped check could not run.
    Error,
    /// The control has no automated check.
    Manual,
    /// The SoA excludes the control.
    Excluded,
}

impl State {
    /// Every state, in report order.
    pub const ALL: [State; 7] = [
        State::Conformant,
        State::Nonconformant,
        State::Stale,
        State::NoEvidence,
        State::Error,
        State::Manual,
        State::Excluded,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Conformant => "conformant",
            State::Nonconformant => "nonconformant",
            State::Stale => "stale",
            State::NoEvidence => "no_evidence",
            State::Error => "error",
            State::Manual => "manual",
            State::Excluded => "excluded",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed check and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    /// The check.
    pub check: String,
    /// Its observed value, if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// Why a (host, control) is in its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// Checks that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<Failing>,
    /// Checks that could not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Mapped checks with no result from the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// A sentence for anything else (staleness, parameters, exclusion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A state with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The state.
    pub state: State,
    /// Why.
    pub detail: Detail,
}

impl Evaluation {
    fn new(state: State) -> Evaluation {
        Evaluation {
            state,
            detail: Detail::default(),
        }
    }

    fn because(state: State, reason: String) -> Evaluation {
        Evaluation {
            state,
            detail: Detail {
                reason: Some(reason),
                ..Detail::default()
            },
        }
    }
}

/// What a host's newest evidence says about how it was produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProfile {
    /// When the newest scan finished (Unix seconds; never later than its
    /// acceptance).
    pub evidence_at: i64,
    /// The agent's schedule interval, if it runs on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// Parameter values the scan ran with.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
}

/// A host's latest result per check: (status, observed).
pub type Latest = HashMap<String, (String, Option<String>)>;

/// Freshness when neither the SoA nor the agent says (twice the agents'
/// default hourly schedule).
pub const DEFAULT_FRESHNESS_SECONDS: u64 = 2 * 3600;

/// An SoA version resolved against the collector's check packs.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The SoA version number.
    pub version: i64,
    /// The SoA.
    pub soa: Soa,
    /// Applicable controls with automated checks, in SoA order.
    pub automated: Vec<String>,
    /// Which checks give evidence for each applicable control.
    pub coverage: BTreeMap<String, Coverage>,
    /// Parameter values the SoA sets.
    pub params: BTreeMap<String, ParamValue>,
    /// For each check, the parameters its probe reads.
    pub check_params: HashMap<String, Vec<String>>,
}

impl Policy {
    /// Resolves `soa` against `packs`.
    pub fn new(version: i64, soa: Soa, packs: &PackSet) -> Policy {
        let coverage = soa.coverage(packs);
        let automated = soa
            .controls
            .iter()
            .filter(|c| coverage.get(&c.id).is_some_and(|cov| !cov.is_manual()))
            .map(|c| c.id.clone())
            .collect();
        let check_params = packs
            .checks()
            .map(|c| {
                (
                    c.id.clone(),
                    c.probe
                        .param_refs()
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                )
            })
            .collect();
        Policy {
            version,
            params: soa.params(),
            soa,
            automated,
            coverage,
            check_params,
        }
    }

    /// The freshness window of a control for a host, in seconds.
    pub fn freshness(&self, control: &str, profile: Option<&RunProfile>) -> u64 {
        self.freshness_of(self.soa.control(control), profile)
    }

    /// [`Policy::freshness`] for a control already looked up.
    pub fn freshness_of(
        &self,
        control: Option<&annexa_checks::soa::SoaControl>,
        profile: Option<&RunProfile>,
    ) -> u64 {
        control
            .and_then(|c| c.freshness_seconds)
            .or(self.soa.freshness_seconds)
            .or_else(|| {
                profile
                    .and_then(|p| p.interval_seconds)
                    .map(|i| i.saturating_mul(2))
            })
            .unwrap_or(DEFAULT_FRESHNESS_SECONDS)
    }

    /// The title of a control of the SoA's edition.
    pub fn title(&self, control: &str) -> String {
        catalog()
            .control(self.soa.edition, control)
            .map(|c| c.title.clone())
            .unwrap_or_default()
    }
}

/// The state a host's evidence gives an automated control, at the time of
/// the evidence (staleness by age is [`overlay_age`]'s business).
pub fn from_evidence(
    policy: &Policy,
    control: &str,
    latest: &Latest,
    profile: &RunProfile,
) -> Evaluation {
    let Some(cov) = policy.coverage.get(control) else {
        return Evaluation::new(State::Excluded);
    };
    let mut detail = Detail::default();
    let mut passed = 0usize;
    let mut mismatched: Vec<String> = Vec::new();
    for check in &cov.checks {
        for p in policy.check_params.get(check).into_iter().flatten() {
            if let Some(want) = policy.params.get(p)
                && profile.params.get(p) != Some(want)
            {
                let had = profile
                    .params
                    .get(p)
                    .map_or_else(|| "unset".to_string(), ToString::to_string);
                let m = format!("{p}={had} (the SoA sets {want})");
                if !mismatched.contains(&m) {
                    mismatched.push(m);
                }
            }
        }
        match latest.get(check) {
            None => detail.missing.push(check.clone()),
            Some((status, observed)) => match status.as_str() {
                "pass" => passed += 1,
                "fail" => detail.failing.push(Failing {
                    check: check.clone(),
                    observed: observed.clone(),
                }),
                "error" => detail.errors.push(check.clone()),
                _ => {}
            },
        }
    }
    if !mismatched.is_empty() {
        return Evaluation::because(
            State::Stale,
            format!(
                "the newest evidence was evaluated with {}; it speaks for this SoA after the agent's next run",
                mismatched.join(", ")
            ),
        );
    }
    let state = if !detail.failing.is_empty() {
        State::Nonconformant
    } else if !detail.errors.is_empty() {
        State::Error
    } else if !detail.missing.is_empty() {
        State::NoEvidence
    } else if passed == 0 {
        detail.reason = Some("every mapped check is not applicable to this host".into());
        State::NoEvidence
    } else {
        State::Conformant
    };
    Evaluation { state, detail }
}

/// `stored` as of `now`: stale once the evidence is older than the window.
pub fn overlay_age(
    policy: &Policy,
    control: &str,
    stored: State,
    profile: &RunProfile,
    now: i64,
) -> Option<Evaluation> {
    if stored == State::Stale {
        return None;
    }
    let window = policy.freshness(control, Some(profile));
    let age = now.saturating_sub(profile.evidence_at);
    (age > window as i64).then(|| {
        Evaluation::because(
            State::Stale,
            format!(
                "the newest evidence is {} old; the SoA asks for evidence at most {} old",
                human_age(age.max(0) as u64),
                annexa_checks::soa::format_duration(window)
            ),
        )
    })
}

/// Why a state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An envelope with this sequence number.
    Envelope(u64),
    /// A new SoA version.
    Soa,
    /// The freshness window passed.
    Freshness,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Envelope(_) => "envelope",
            Cause::Soa => "soa",
            Cause::Freshness => "freshness",
        }
    }

    fn sequence(self) -> Option<u64> {
        match self {
            Cause::Envelope(s) => Some(s),
            _ => None,
        }
    }
}

/// One (host, control) change: the new stored state for the index (`None`:
/// no longer stored) and the row change for the store.
pub type HostChange = (
    String,
    Option<index::Stored>,
    crate::store::ConformityChange,
);

/// What a host's evidence (`latest`, `profile`) now gives each control of
/// `policy`, compared with what is stored (`prev`): the changes to record.
/// `at` is when (RFC 3339), `now` the same in Unix seconds.
#[allow(clippy::too_many_arguments)]
pub fn changes_for_host(
    policy: &Policy,
    agent_no: i64,
    labels: &crate::store::Labels,
    latest: &Latest,
    profile: &RunProfile,
    prev: &dyn Fn(&str) -> Option<index::Stored>,
    cause: Cause,
    at: &str,
    now: i64,
) -> Vec<HostChange> {
    use crate::store::{ConformityChange, CurrentState, StateEvent};
    let mut out = Vec::new();
    for c in &policy.soa.controls {
        let before = prev(&c.id);
        let automated = policy
            .coverage
            .get(&c.id)
            .is_some_and(|cov| !cov.is_manual());
        if !(c.applicable && automated && c.scope.matches(labels)) {
            if let Some(b) = before {
                // No longer decided by evidence: say what decides it now
                // (nothing, for a host that left the control's scope).
                let now_state = if !c.applicable {
                    Some(State::Excluded)
                } else if !automated {
                    Some(State::Manual)
                } else {
                    None
                };
                out.push((
                    c.id.clone(),
                    None,
                    ConformityChange {
                        agent_no,
                        control_id: c.id.clone(),
                        soa_version: policy.version,
                        current: None,
                        event: now_state.map(|s| StateEvent {
                            state: s.as_str().into(),
                            previous: Some(b.state.as_str().into()),
                            at: at.into(),
                            cause: cause.name().into(),
                            sequence: cause.sequence(),
                            detail: "{}".into(),
                        }),
                    },
                ));
            }
            continue;
        }
        let mut ev = from_evidence(policy, &c.id, latest, profile);
        if let Some(aged) = overlay_age(policy, &c.id, ev.state, profile, now) {
            ev = aged;
        }
        let (since, since_sequence, event) = match &before {
            Some(b) if b.state == ev.state => {
                if b.detail == ev.detail {
                    continue;
                }
                (b.since.clone(), b.since_sequence, None)
            }
            _ => (
                at.to_string(),
                cause.sequence(),
                Some(StateEvent {
                    state: ev.state.as_str().into(),
                    previous: before.as_ref().map(|b| b.state.as_str().to_string()),
                    at: at.into(),
                    cause: cause.name().into(),
                    sequence: cause.sequence(),
                    detail: serde_json::to_string(&ev.detail).unwrap_or_else(|_| "{}".into()),
                }),
            ),
        };
        let detail = serde_json::to_string(&ev.detail).unwrap_or_else(|_| "{}".into());
        out.push((
            c.id.clone(),
            Some(index::Stored {
                state: ev.state,
                detail: ev.detail,
                since: since.clone(),
                since_sequence,
            }),
            ConformityChange {
                agent_no,
                control_id: c.id.clone(),
                soa_version: policy.version,
                current: Some(CurrentState {
                    state: ev.state.as_str().into(),
                    detail,
                    since,
                    since_sequence,
                }),
                event,
            },
        ));
    }
    out
}

/// States that the passing of time made stale since they were stored.
pub fn stale_changes(
    policy: &Policy,
    agent_no: i64,
    host: &index::HostEntry,
    at: &str,
    now: i64,
) -> Vec<HostChange> {
    use crate::store::{ConformityChange, CurrentState, StateEvent};
    let Some(profile) = &host.profile else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (control, stored) in &host.states {
        let Some(ev) = overlay_age(policy, control, stored.state, profile, now) else {
            continue;
        };
        let detail = serde_json::to_string(&ev.detail).unwrap_or_else(|_| "{}".into());
        out.push((
            control.clone(),
            Some(index::Stored {
                state: ev.state,
                detail: ev.detail,
                since: at.to_string(),
                since_sequence: None,
            }),
            ConformityChange {
                agent_no,
                control_id: control.clone(),
                soa_version: policy.version,
                current: Some(CurrentState {
                    state: ev.state.as_str().into(),
                    detail: detail.clone(),
                    since: at.into(),
                    since_sequence: None,
                }),
                event: Some(StateEvent {
                    state: ev.state.as_str().into(),
                    previous: Some(stored.state.as_str().into()),
                    at: at.into(),
                    cause: Cause::Freshness.name().into(),
                    sequence: None,
                    detail,
                }),
            },
        ));
    }
    out
}

fn human_age(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m{}s", secs % 60),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests;
