//! What a check run produces: a status, expected and observed values, a
//! message, and the exact sources that were read to reach the verdict.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::Edition;
use crate::ids::{CheckId, ControlId};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The check failed: the observed state does not meet the expectation.
    Fail,
    /// The check could not be evaluated (unreadable file, malformed content).
    Error,
    /// The check passed.
    Pass,
    /// The check does not apply to this host or scan mode; the message says why.
    NotApplicable,
}

impl Status {
    /// The wire and display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::NotApplicable => "not_applicable",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pass,
            Status::Fail,
            Status::Error,
            Status::NotApplicable,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a failure of a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What kind of thing a [`Source`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A regular file; `sha256` is the digest of the bytes read.
    File,
    /// The path was looked for and does not exist.
    Absent,
    /// A directory listing; `sha256` is the digest of the sorted entry names.
    Directory,
    /// File metadata only (mode, owner); `sha256` is absent.
    Metadata,
    /// The output of a command run on the live host; `sha256` digests stdout.
    Command,
    /// A kernel interface (a system call or sysinfo); `sha256` digests the
    /// values as reported.
    Kernel,
}

/// One thing a check examined, precise enough for an auditor to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// What was read.
    pub kind: SourceKind,
    /// Path inside the scanned root (or the command line / interface name).
    pub path: String,
    /// Lower-case hex SHA-256 of the content read, where there is content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// 1-based line that decided the verdict, where one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl Source {
    /// The same source pointing at a specific line.
    pub fn at_line(&self, line: u32) -> Source {
        Source {
            line: Some(line),
            ..self.clone()
        }
    }
}

/// Which pack (and which exact bytes of it) produced a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRef {
    /// The pack's id.
    pub id: String,
    /// The pack's declared version.
    pub version: String,
    /// `sha256:` followed by the hex digest of the pack file's bytes.
    pub digest: String,
}

/// The result of one check on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's id.
    pub check_id: CheckId,
    /// The check's title.
    pub title: String,
    /// The pack it came from.
    pub pack: PackRef,
    /// The Annex A controls this check gives evidence for, per edition.
    pub controls: BTreeMap<Edition, Vec<ControlId>>,
    /// How serious a failure is.
    pub severity: Severity,
    /// The verdict.
    pub status: Status,
    /// What the check expected, in words an operator can compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the check observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// One line for a human.
    pub message: String,
    /// Everything the check read, in the order it read it.
    pub sources: Vec<Source>,
    /// Remediation advice from the pack (present on failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

/// Counts of results per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Checks that passed.
    pub pass: usize,
    /// Checks that failed.
    pub fail: usize,
    /// Checks that could not be evaluated.
    pub error: usize,
    /// Checks that did not apply.
    pub not_applicable: usize,
}

impl Summary {
    /// Counts a list of results.
    pub fn of(results: &[CheckResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Error => s.error += 1,
                Status::NotApplicable => s.not_applicable += 1,
            }
        }
        s
    }

    /// Total number of results.
    pub fn total(&self) -> usize {
        self.pass + self.fail + self.error + self.not_applicable
    }
}
