//! A report for people and for other tools: self-contained HTML for
//! auditors ([`html`]), OSCAL assessment results ([`oscal`]) and the SoA
//! with its status as CSV ([`csv`]). Renderers read the report and the
//! results inside its envelopes; whether the report verifies is decided by
//! [`super::verify`] and shown, never assumed.

pub mod csv;
pub mod html;
pub mod oscal;

use std::collections::HashMap;

use annexa_checks::CheckId;
use annexa_checks::conformity::State;
use annexa_checks::result::CheckResult;

use super::verify::Outcome;
use super::{ControlReport, Enrollment, Kind, Report};

use crate::statement::ScanPredicate;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML page.
    Html,
    /// OSCAL assessment-results JSON.
    Oscal,
    /// The SoA with status, CSV.
    Csv,
}

impl Format {
    /// Parses a format name.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "html" => Some(Format::Html),
            "oscal" => Some(Format::Oscal),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// The media type of the output.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Oscal => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// What the renderers show about verification.
#[derive(Debug, Clone)]
pub enum Verification {
    /// Verified against this collector key (the outcome lists problems).
    Checked {
        /// The key's name and id as given.
        key: String,
        /// What verification found.
        outcome: Box<Outcome>,
    },
    /// Not verified: no collector key was given.
    Unchecked,
}

/// A report ready to render: the report, its digest and each host's
/// results from its envelopes.
pub struct Context<'r> {
    /// The report.
    pub report: &'r Report,
    /// Hex SHA-256 of the signed payload.
    pub digest: &'r str,
    /// Verification status.
    pub verification: &'r Verification,
    /// Per agent: its newest statement and its newest result per check,
    /// with the sequence and log index of the envelope that gave it.
    pub hosts: HashMap<&'r str, HostResults>,
    /// Enrollment records by agent id.
    pub agents: HashMap<&'r str, &'r Enrollment>,
}

/// One host's decoded evidence.
#[derive(Default)]
pub struct HostResults {
    /// The newest statement's predicate.
    pub newest: Option<ScanPredicate>,
    /// Check id → (result, sequence, log index).
    pub results: HashMap<CheckId, (CheckResult, u64, u64)>,
}

impl<'r> Context<'r> {
    /// Decodes every host's envelopes (signatures are [`super::verify`]'s
    /// business; an envelope that does not decode contributes nothing).
    pub fn new(report: &'r Report, digest: &'r str, verification: &'r Verification) -> Self {
        let mut hosts = HashMap::new();
        for h in &report.hosts {
            let mut out = HostResults::default();
            for item in &h.evidence {
                let Some(p) = decode(item.envelope.get().as_bytes()) else {
                    continue;
                };
                for r in &p.scan.results {
                    out.results.insert(
                        r.check_id.clone(),
                        (r.clone(), item.sequence, item.log_index),
                    );
                }
                out.newest = Some(p);
            }
            hosts.insert(h.agent.as_str(), out);
        }
        Context {
            report,
            digest,
            verification,
            hosts,
            agents: report.agents.iter().map(|a| (a.id.as_str(), a)).collect(),
        }
    }

    /// The host name an agent enrolled with.
    pub fn hostname(&self, agent: &str) -> &'r str {
        self.agents.get(agent).map_or("", |a| a.hostname.as_str())
    }
}

fn decode(bytes: &[u8]) -> Option<ScanPredicate> {
    Some(crate::statement::parse_scan_envelope(bytes).ok()?.predicate)
}

/// Renders a report.
pub fn render(ctx: &Context<'_>, format: Format) -> Vec<u8> {
    match format {
        Format::Html => html::render(ctx).into_bytes(),
        Format::Oscal => oscal::render(ctx),
        Format::Csv => csv::render(ctx),
    }
}

/// The states evidence decides, in report order (manual and excluded are
/// a control's kind, not a host's state).
pub const EVIDENCED: [State; 5] = [
    State::Conformant,
    State::Nonconformant,
    State::Stale,
    State::NoEvidence,
    State::Error,
];

/// A control's status over its hosts, in one word: `conformant` only when
/// every host is; otherwise the worst state present.
pub fn overall(c: &ControlReport) -> &'static str {
    match c.kind {
        Kind::Excluded => "excluded",
        Kind::Manual => "manual",
        Kind::Automated => {
            let has = |s: State| c.counts.get(&s).is_some_and(|n| *n > 0);
            [
                State::Nonconformant,
                State::Error,
                State::Stale,
                State::NoEvidence,
                State::Conformant,
            ]
            .into_iter()
            .find(|s| has(*s))
            .map_or("no_hosts", State::as_str)
        }
    }
}

/// `n/m conformant` for an automated control.
pub fn ratio(c: &ControlReport) -> String {
    let ok = c.counts.get(&State::Conformant).copied().unwrap_or(0);
    format!("{ok}/{} conformant", c.hosts.len())
}
