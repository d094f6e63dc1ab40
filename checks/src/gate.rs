//! The local CI gate: a scan compared with a recorded baseline. A check
//! that passed in the baseline and no longer does is drift; a failing check
//! mapped to an applicable control is a nonconformity. New and removed
//! checks are reported, and fail the gate only when asked. Pure: the CLI
//! reads the files and runs the scan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::Edition;
use crate::engine::{PackSummary, ScanReport};
use crate::ids::{CheckId, ControlId};
use crate::result::{CheckResult, Source, Status};

/// The `format` of a baseline file.
pub const BASELINE_FORMAT: &str = "annexa/gate-baseline/v1";

/// A recorded scan: each check's status, for later comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Always [`BASELINE_FORMAT`].
    pub format: String,
    /// When it was recorded (the scan's finish).
    pub recorded_at: String,
    /// The annexa version that recorded it.
    pub annexa_version: String,
    /// The packs the scan loaded.
    pub packs: Vec<BaselinePack>,
    /// Check id → its result then.
    pub checks: BTreeMap<CheckId, BaselineCheck>,
}

/// A pack as a baseline records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselinePack {
    /// Pack id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// `sha256:` digest of its bytes.
    pub digest: String,
}

/// One check in a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineCheck {
    /// Its status.
    pub status: Status,
    /// What it observed, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// Why a baseline file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Not JSON of the baseline's shape.
    #[error("{file}:{line}:{column}: {message}")]
    Malformed {
        /// The file as named by the caller.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Another format or version.
    #[error(
        "{file}: format `{found}` is not {BASELINE_FORMAT}; record a new one with --write-baseline"
    )]
    Format {
        /// The file.
        file: String,
        /// The format it declares.
        found: String,
    },
}

impl Baseline {
    /// Records a scan.
    pub fn of(report: &ScanReport) -> Baseline {
        Baseline {
            format: BASELINE_FORMAT.into(),
            recorded_at: report.finished_at.clone(),
            annexa_version: report.annexa_version.clone(),
            packs: report.packs.iter().map(pack).collect(),
            checks: report
                .results
                .iter()
                .map(|r| {
                    (
                        r.check_id.clone(),
                        BaselineCheck {
                            status: r.status,
                            observed: r.observed.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Parses a baseline file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Baseline, BaselineError> {
        let b: Baseline = serde_json::from_str(text).map_err(|e| BaselineError::Malformed {
            file: file.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if b.format != BASELINE_FORMAT {
            return Err(BaselineError::Format {
                file: file.to_string(),
                found: b.format,
            });
        }
        Ok(b)
    }

    /// The file's text (pretty JSON with a final newline, stable order, so
    /// that a committed baseline diffs well).
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

fn pack(p: &PackSummary) -> BaselinePack {
    BaselinePack {
        id: p.id.clone(),
        version: p.version.clone(),
        digest: p.digest.clone(),
    }
}

/// What the gate fails on, beyond drift.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailOn {
    /// A failing check mapped to an applicable control.
    pub nonconformant: bool,
    /// A check the baseline does not have.
    pub new: bool,
    /// A baseline check the scan no longer has.
    pub removed: bool,
}

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Passed in the baseline, fails or errors now.
    Drift,
    /// Fails now and is mapped to an applicable control.
    Nonconformant,
    /// Not in the baseline.
    New,
    /// In the baseline, not in the scan.
    Removed,
    /// Failed in the baseline, passes now.
    Fixed,
}

impl FindingKind {
    /// The wire and display name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Drift => "drift",
            FindingKind::Nonconformant => "nonconformant",
            FindingKind::New => "new",
            FindingKind::Removed => "removed",
            FindingKind::Fixed => "fixed",
        }
    }
}

/// One thing the gate reports.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What it is.
    pub kind: FindingKind,
    /// Whether it fails the gate.
    pub fails: bool,
    /// The check.
    pub check_id: CheckId,
    /// Its title (empty for a removed check).
    pub title: String,
    /// Its status in the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<Status>,
    /// Its status now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<Status>,
    /// What it expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What it observed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// What it observed in the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_before: Option<String>,
    /// Controls of the gate's edition it gives evidence for.
    pub controls: Vec<ControlId>,
    /// Where it read what decided it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// One line for a human.
    pub message: String,
}

/// The gate's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Whether the gate fails.
    pub failed: bool,
    /// The checks compared (scan results).
    pub checks: usize,
    /// Findings, failing ones first.
    pub findings: Vec<Finding>,
    /// Findings per kind.
    pub counts: BTreeMap<FindingKind, usize>,
}

/// Compares a scan with a baseline (absent: only nonconformity can fail).
/// `applicable` is the set of checks that give evidence for a control an
/// SoA applies (its coverage); `None` counts every check mapped to a
/// control of `edition`.
pub fn judge(
    report: &ScanReport,
    baseline: Option<&Baseline>,
    edition: Edition,
    applicable: Option<&BTreeSet<CheckId>>,
    fail_on: FailOn,
) -> Verdict {
    let mut findings = Vec::new();
    for r in &report.results {
        let controls = r.controls.get(&edition).cloned().unwrap_or_default();
        let before = baseline.and_then(|b| b.checks.get(&r.check_id));
        let failing_now = matches!(r.status, Status::Fail | Status::Error);
        let mapped_applicable = match applicable {
            Some(checks) => checks.contains(&r.check_id),
            None => !controls.is_empty(),
        };
        let kind = match before {
            Some(b) if b.status == Status::Pass && failing_now => Some(FindingKind::Drift),
            _ if fail_on.nonconformant && r.status == Status::Fail && mapped_applicable => {
                Some(FindingKind::Nonconformant)
            }
            None if baseline.is_some() => Some(FindingKind::New),
            Some(b) if b.status == Status::Fail && r.status == Status::Pass => {
                Some(FindingKind::Fixed)
            }
            _ => None,
        };
        let Some(kind) = kind else { continue };
        let fails = match kind {
            FindingKind::Drift | FindingKind::Nonconformant => true,
            FindingKind::New => {
                fail_on.new || (fail_on.nonconformant && failing_now && mapped_applicable)
            }
            _ => false,
        };
        findings.push(finding(kind, fails, r, before, controls));
    }
    if let Some(b) = baseline {
        let present: BTreeSet<&str> = report.results.iter().map(|r| r.check_id.as_str()).collect();
        for (id, before) in &b.checks {
            if !present.contains(id.as_str()) {
                findings.push(Finding {
                    kind: FindingKind::Removed,
                    fails: fail_on.removed,
                    check_id: id.clone(),
                    title: String::new(),
                    was: Some(before.status),
                    now: None,
                    expected: None,
                    observed: None,
                    observed_before: before.observed.clone(),
                    controls: Vec::new(),
                    sources: Vec::new(),
                    remediation: None,
                    message: format!(
                        "{id} was in the baseline ({}) and is not in this scan",
                        before.status
                    ),
                });
            }
        }
    }
    findings.sort_by(|a, b| (!a.fails, a.kind, &a.check_id).cmp(&(!b.fails, b.kind, &b.check_id)));
    let mut counts = BTreeMap::new();
    for f in &findings {
        *counts.entry(f.kind).or_default() += 1;
    }
    Verdict {
        failed: findings.iter().any(|f| f.fails),
        checks: report.results.len(),
        findings,
        counts,
    }
}

fn finding(
    kind: FindingKind,
    fails: bool,
    r: &CheckResult,
    before: Option<&BaselineCheck>,
    controls: Vec<ControlId>,
) -> Finding {
    let message = match kind {
        FindingKind::Drift => format!(
            "{} drifted: passed in the baseline, {} now{}",
            r.check_id,
            r.status,
            r.observed
                .as_deref()
                .map(|o| format!(" (observed {o})"))
                .unwrap_or_default()
        ),
        FindingKind::Nonconformant => format!("{} fails: {}", r.check_id, r.message),
        FindingKind::New => format!(
            "{} is new since the baseline ({} now)",
            r.check_id, r.status
        ),
        FindingKind::Fixed => format!("{} passes now (failed in the baseline)", r.check_id),
        FindingKind::Removed => String::new(),
    };
    Finding {
        kind,
        fails,
        check_id: r.check_id.clone(),
        title: r.title.clone(),
        was: before.map(|b| b.status),
        now: Some(r.status),
        expected: r.expected.clone(),
        observed: r.observed.clone(),
        observed_before: before.and_then(|b| b.observed.clone()),
        controls,
        sources: r.sources.clone(),
        remediation: r.remediation.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ScanReport;

    fn report(statuses: &[(&str, Status)]) -> ScanReport {
        let mut r: ScanReport =
            serde_json::from_str(include_str!("../tests/fixtures/gate-scan.json"))
                .expect("fixture scan");
        let template = r.results[0].clone();
        r.results = statuses
            .iter()
            .map(|(id, st)| {
                let mut c = template.clone();
                c.check_id = CheckId::from(*id);
                c.status = *st;
                c
            })
            .collect();
        r
    }

    #[test]
    fn an_error_after_a_pass_is_drift_and_a_fix_is_only_noted() {
        let before = Baseline::of(&report(&[("a", Status::Pass), ("b", Status::Fail)]));
        let now = report(&[("a", Status::Error), ("b", Status::Pass)]);
        let v = judge(&now, Some(&before), Edition::E2022, None, FailOn::default());
        assert!(v.failed);
        assert_eq!(v.findings[0].kind, FindingKind::Drift);
        assert_eq!(v.findings[0].check_id, "a");
        assert_eq!(v.findings[1].kind, FindingKind::Fixed);
        assert!(!v.findings[1].fails);
    }

    #[test]
    fn a_failure_that_failed_before_is_not_drift() {
        let before = Baseline::of(&report(&[("a", Status::Fail)]));
        let now = report(&[("a", Status::Fail)]);
        let v = judge(&now, Some(&before), Edition::E2022, None, FailOn::default());
        assert!(!v.failed && v.findings.is_empty());
        let strict = FailOn {
            nonconformant: true,
            ..FailOn::default()
        };
        let v = judge(&now, Some(&before), Edition::E2022, None, strict);
        assert!(
            v.failed,
            "a known failure still fails with --fail-on nonconformant"
        );
    }
}
