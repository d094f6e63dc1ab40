//! Conformity at the collector: the pure rules ([`annexa_checks::conformity`])
//! applied to each host's evidence as it arrives, the state changes to
//! record, and the in-memory [`index`] that queries read.

pub mod index;

use annexa_checks::ControlId;

pub use annexa_checks::conformity::{
    DEFAULT_FRESHNESS_SECONDS, Decision, Detail, Evaluation, Failing, Latest, Policy, RunProfile,
    State, decide, from_evidence, stale_reason,
};

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
    ControlId,
    Option<index::Stored>,
    crate::store::ConformityChange,
);

/// A state change as recorded: the new stored state (`None`: no longer
/// stored) and the row change for the store.
fn record(
    policy: &Policy,
    agent_no: i64,
    control: &ControlId,
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
        control.clone(),
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
    control: &ControlId,
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
        let before = prev(c.id.as_str());
        let evidence = Some((profile, || {
            from_evidence(policy, c.id.as_str(), latest, profile)
        }));
        let ev = match decide(policy, c, automated, labels, evidence, now) {
            Decision::Evidence(ev) => ev,
            Decision::Overdue { age, window } => {
                Evaluation::because(State::Stale, stale_reason(age, window))
            }
            Decision::NeverReported => Evaluation::new(State::NoEvidence),
            gone @ (Decision::Excluded | Decision::OutOfScope | Decision::Manual) => {
                if let Some(b) = &before {
                    // No longer decided by evidence: say what decides it now
                    // (nothing, for a host that left the control's scope).
                    let ev = gone
                        .state()
                        .map(|s| event(s, Some(b), &Detail::default(), cause, at));
                    out.push(record(policy, agent_no, &c.id, None, ev));
                }
                continue;
            }
        };
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
            let c = policy.control(control.as_str())?;
            let automated = policy.is_automated(control.as_str());
            let evidence = Some((profile, || stored.state));
            let Decision::Overdue { age, window } =
                decide(policy, c, automated, &host.labels, evidence, now)
            else {
                return None;
            };
            transition(
                policy,
                agent_no,
                control,
                Some(stored),
                Evaluation::because(State::Stale, stale_reason(age, window)),
                Cause::Freshness,
                at,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
