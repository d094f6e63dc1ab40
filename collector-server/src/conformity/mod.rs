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
    /// For each control of the SoA, in its order: applicable with
    /// automated checks.
    pub automated: Vec<bool>,
    /// Position of each control in the SoA.
    position: HashMap<String, usize>,
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
            .map(|c| coverage.get(&c.id).is_some_and(|cov| !cov.is_manual()))
            .collect();
        let position = soa
            .controls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
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
            position,
            coverage,
            check_params,
        }
    }

    /// A control's entry in the SoA, by id.
    pub fn control(&self, id: &str) -> Option<&annexa_checks::soa::SoaControl> {
        self.position.get(id).map(|&i| &self.soa.controls[i])
    }

    /// Whether a control is applicable with automated checks.
    pub fn is_automated(&self, id: &str) -> bool {
        self.position.get(id).is_some_and(|&i| self.automated[i])
    }

    /// The freshness window of a control for a host, in seconds.
    pub fn freshness(&self, control: &str, profile: Option<&RunProfile>) -> u64 {
        self.freshness_of(self.control(control), profile)
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
    let (age, window) = overdue(policy, policy.control(control), stored, profile, now)?;
    Some(Evaluation::because(
        State::Stale,
        format!(
            "the newest evidence is {} old; the SoA asks for evidence at most {} old",
            human_age(age),
            annexa_checks::soa::format_duration(window)
        ),
    ))
}

/// The evidence's age and the control's window when a state that is not
/// already stale has outlived it.
pub fn overdue(
    policy: &Policy,
    control: Option<&annexa_checks::soa::SoaControl>,
    stored: State,
    profile: &RunProfile,
    now: i64,
) -> Option<(u64, u64)> {
    if stored == State::Stale {
        return None;
    }
    let window = policy.freshness_of(control, Some(profile));
    let age = now.saturating_sub(profile.evidence_at).max(0) as u64;
    (age > window).then_some((age, window))
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

/// A state change as recorded: the new stored state (`None`: no longer
/// stored) and the row change for the store.
fn record(
    policy: &Policy,
    agent_no: i64,
    control: &str,
    stored: Option<index::Stored>,
    event: Option<crate::store::StateEvent>,
) -> HostChange {
    let current = stored.as_ref().map(|s| crate::store::CurrentState {
        state: s.state.as_str().into(),
        detail: detail_json(&s.detail),
        since: s.since.clone(),
        since_sequence: s.since_sequence,
    });
    (
        control.to_string(),
        stored,
        crate::store::ConformityChange {
            agent_no,
            control_id: control.to_string(),
            soa_version: policy.version,
            current,
            event,
        },
    )
}

fn detail_json(d: &Detail) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".into())
}

fn event(
    state: State,
    before: Option<&index::Stored>,
    detail: &Detail,
    cause: Cause,
    at: &str,
) -> crate::store::StateEvent {
    crate::store::StateEvent {
        state: state.as_str().into(),
        previous: before.map(|b| b.state.as_str().to_string()),
        at: at.into(),
        cause: cause.name().into(),
        sequence: cause.sequence(),
        detail: detail_json(detail),
    }
}

/// The change from `before` to `ev`, if there is one: a new state is a
/// timeline event that starts now; the same state with other reasons only
/// updates the reasons.
fn transition(
    policy: &Policy,
    agent_no: i64,
    control: &str,
    before: Option<&index::Stored>,
    ev: Evaluation,
    cause: Cause,
    at: &str,
) -> Option<HostChange> {
    let (since, since_sequence, event) = match before {
        Some(b) if b.state == ev.state => {
            if b.detail == ev.detail {
                return None;
            }
            (b.since.clone(), b.since_sequence, None)
        }
        _ => (
            at.to_string(),
            cause.sequence(),
            Some(event(ev.state, before, &ev.detail, cause, at)),
        ),
    };
    let stored = index::Stored {
        state: ev.state,
        detail: ev.detail,
        since,
        since_sequence,
    };
    Some(record(policy, agent_no, control, Some(stored), event))
}

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
    let mut out = Vec::new();
    for (c, &automated) in policy.soa.controls.iter().zip(&policy.automated) {
        let before = prev(&c.id);
        if !(automated && c.scope.matches(labels)) {
            if let Some(b) = &before {
                // No longer decided by evidence: say what decides it now
                // (nothing, for a host that left the control's scope).
                let now_state = if !c.applicable {
                    Some(State::Excluded)
                } else if !automated {
                    Some(State::Manual)
                } else {
                    None
                };
                let ev = now_state.map(|s| event(s, Some(b), &Detail::default(), cause, at));
                out.push(record(policy, agent_no, &c.id, None, ev));
            }
            continue;
        }
        let mut ev = from_evidence(policy, &c.id, latest, profile);
        if let Some(aged) = overlay_age(policy, &c.id, ev.state, profile, now) {
            ev = aged;
        }
        out.extend(transition(
            policy,
            agent_no,
            &c.id,
            before.as_ref(),
            ev,
            cause,
            at,
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
    let Some(profile) = &host.profile else {
        return Vec::new();
    };
    host.states
        .iter()
        .filter_map(|(control, stored)| {
            let ev = overlay_age(policy, control, stored.state, profile, now)?;
            transition(
                policy,
                agent_no,
                control,
                Some(stored),
                ev,
                Cause::Freshness,
                at,
            )
        })
        .collect()
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
