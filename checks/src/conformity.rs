//! Conformity rules: what a host's signed results say about each control
//! of a Statement of Applicability. [`Policy`] is an SoA resolved against
//! the checks that give evidence for its controls; [`decide`] is the one
//! place that decides a (host, control)'s state, in the order of
//! precedence, with [`from_evidence`] for what the latest results say.
//! Pure and shared: the collector records and answers states with these
//! rules and the report verifier recomputes them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::catalog::catalog;
use crate::engine::ScanReport;
use crate::expect::ParamValue;
use crate::ids::{CheckId, ControlId};
use crate::pack::PackSet;
use crate::result::Status;
use crate::soa::{Coverage, Soa, SoaControl, checks_by_control};

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
#[serde(deny_unknown_fields)]
pub struct Failing {
    /// The check.
    pub check: CheckId,
    /// Its observed value, if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// Why a (host, control) is in its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    /// Checks that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<Failing>,
    /// Checks that could not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<CheckId>,
    /// Mapped checks with no result from the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<CheckId>,
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
    /// A state with no reasons.
    pub fn new(state: State) -> Evaluation {
        Evaluation {
            state,
            detail: Detail::default(),
        }
    }

    /// A state for one stated reason.
    pub fn because(state: State, reason: String) -> Evaluation {
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

impl RunProfile {
    /// How a scan was produced, as the collector records it when it
    /// accepts the envelope at `accepted_at` (Unix seconds): the scan's
    /// finish, never later than its acceptance (an agent's clock may run
    /// ahead), or the acceptance when the finish does not parse.
    pub fn of(scan: &ScanReport, interval_seconds: Option<u64>, accepted_at: i64) -> RunProfile {
        RunProfile {
            evidence_at: parse_time(&scan.finished_at)
                .unwrap_or(accepted_at)
                .min(accepted_at),
            interval_seconds,
            params: scan.params.0.clone(),
        }
    }
}

/// RFC 3339 as Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// A host's latest result per check: (status, observed).
pub type Latest = HashMap<CheckId, (Status, Option<String>)>;

/// Freshness when neither the SoA nor the agent says (twice the agents'
/// default hourly schedule).
pub const DEFAULT_FRESHNESS_SECONDS: u64 = 2 * 3600;

/// The longest window an agent's own declared schedule can give (7 days):
/// the interval is signed by the agent, and a compromised host that
/// declared an interval of years and then went silent must still go stale.
/// An SoA that wants longer says so with `freshness`.
pub const MAX_DECLARED_FRESHNESS_SECONDS: u64 = 7 * 86400;

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
    position: HashMap<ControlId, usize>,
    /// Which checks give evidence for each applicable control.
    pub coverage: BTreeMap<ControlId, Coverage>,
    /// Parameter values the SoA sets.
    pub params: BTreeMap<String, ParamValue>,
    /// For each check, the parameters its probe reads.
    pub check_params: HashMap<CheckId, Vec<String>>,
}

impl Policy {
    /// Resolves `soa` against `packs`.
    pub fn new(version: i64, soa: Soa, packs: &PackSet) -> Policy {
        let mapped = checks_by_control(packs, soa.edition);
        let check_params = packs
            .checks()
            .map(|c| (c.id.clone(), c.param_names()))
            .collect();
        Policy::resolve(version, soa, &mapped, check_params)
    }

    /// Resolves `soa` against a description of the checks: which checks
    /// each control of the SoA's edition is mapped to, and which parameters
    /// each check reads (what a report carries in place of the packs).
    pub fn resolve(
        version: i64,
        soa: Soa,
        mapped: &BTreeMap<ControlId, BTreeSet<CheckId>>,
        check_params: HashMap<CheckId, Vec<String>>,
    ) -> Policy {
        let coverage = soa.coverage_from(mapped);
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
    pub fn control(&self, id: &str) -> Option<&SoaControl> {
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
    pub fn freshness_of(&self, control: Option<&SoaControl>, profile: Option<&RunProfile>) -> u64 {
        control
            .and_then(|c| c.freshness_seconds)
            .or(self.soa.freshness_seconds)
            .or_else(|| {
                profile
                    .and_then(|p| p.interval_seconds)
                    .map(|i| i.saturating_mul(2).min(MAX_DECLARED_FRESHNESS_SECONDS))
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
            Some((status, observed)) => match status {
                Status::Pass => passed += 1,
                Status::Fail => detail.failing.push(Failing {
                    check: check.clone(),
                    observed: observed.clone(),
                }),
                Status::Error => detail.errors.push(check.clone()),
                Status::NotApplicable => {}
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

/// How a (host, control) is decided. [`decide`] is the one place that
/// says which comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    /// The SoA excludes the control.
    Excluded,
    /// The host's labels are outside the control's scope: no state.
    OutOfScope,
    /// No automated check gives evidence for the control.
    Manual,
    /// The host has sent no evidence (in the period asked about).
    NeverReported,
    /// The evidence was older than the control's window at the time asked
    /// about: its age and the window, in seconds.
    Overdue {
        /// The evidence's age.
        age: u64,
        /// The control's freshness window.
        window: u64,
    },
    /// What the evidence itself says ([`from_evidence`]).
    Evidence(T),
}

/// What the evidence for a (host, control) says, as a caller holds it: a
/// state alone (the fleet table's hot path) or with its reasons.
pub trait Judged {
    /// The state.
    fn state(&self) -> State;
}

impl Judged for State {
    fn state(&self) -> State {
        *self
    }
}

impl Judged for Evaluation {
    fn state(&self) -> State {
        self.state
    }
}

impl<T: Judged> Decision<T> {
    /// The state decided; `None` for a host out of the control's scope.
    pub fn state(&self) -> Option<State> {
        Some(match self {
            Decision::Excluded => State::Excluded,
            Decision::OutOfScope => return None,
            Decision::Manual => State::Manual,
            Decision::NeverReported => State::NoEvidence,
            Decision::Overdue { .. } => State::Stale,
            Decision::Evidence(e) => e.state(),
        })
    }
}

/// Decides a (host, control) in the one order of precedence: excluded,
/// out of scope, manual, never reported, stale by age, then what the
/// evidence says (itself stale by parameters, nonconformant, error, no
/// evidence, conformant: [`from_evidence`]).
///
/// `automated` is [`Policy::is_automated`] for `control` (callers walking
/// the SoA by position have it at hand); `evidence` is the newest run's
/// profile with what its results say, evaluated only if it comes to that.
pub fn decide<T: Judged>(
    policy: &Policy,
    control: &SoaControl,
    automated: bool,
    labels: &BTreeMap<String, String>,
    evidence: Option<(&RunProfile, impl FnOnce() -> T)>,
    now: i64,
) -> Decision<T> {
    match ControlKind::of(control, automated) {
        ControlKind::Excluded => return Decision::Excluded,
        _ if !control.scope.matches(labels) => return Decision::OutOfScope,
        ControlKind::Manual => return Decision::Manual,
        ControlKind::Automated => {}
    }
    let Some((profile, judge)) = evidence else {
        return Decision::NeverReported;
    };
    let judged = judge();
    match overdue(policy, Some(control), judged.state(), profile, now) {
        Some((age, window)) => Decision::Overdue { age, window },
        None => Decision::Evidence(judged),
    }
}

/// How a control is decided for every host in its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// The SoA excludes it.
    Excluded,
    /// No automated check gives evidence for it.
    Manual,
    /// By each host's evidence.
    Automated,
}

impl ControlKind {
    /// The kind of `control`; `automated` is [`Policy::is_automated`].
    pub fn of(control: &SoaControl, automated: bool) -> ControlKind {
        if !control.applicable {
            ControlKind::Excluded
        } else if automated {
            ControlKind::Automated
        } else {
            ControlKind::Manual
        }
    }
}

/// Why evidence `age` seconds old is stale for a control whose window is
/// `window` seconds.
pub fn stale_reason(age: u64, window: u64) -> String {
    format!(
        "the newest evidence is {} old; the SoA asks for evidence at most {} old",
        human_age(age),
        crate::soa::format_duration(window)
    )
}

/// The evidence's age and the control's window when a state that is not
/// already stale has outlived it.
fn overdue(
    policy: &Policy,
    control: Option<&SoaControl>,
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

fn human_age(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m{}s", secs % 60),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}
