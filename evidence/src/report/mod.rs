//! Evidence reports: what a collector tells an auditor about the fleet's
//! conformity at a point in time, with everything needed to check it
//! offline. A report carries the SoA as imported, the checks that give
//! evidence for its controls, the agents' enrollment records, each host's
//! agent-signed envelopes with inclusion proofs against one signed
//! checkpoint, and the states the collector derived from them; the
//! collector signs it (DSSE). [`verify`] re-derives every state from the
//! envelopes with the same rules ([`assess`]) and checks every signature
//! and proof; [`render`] turns a report into HTML, OSCAL and CSV.
//!
//! The format is documented in docs/report-format.md.

pub mod assess;
pub mod render;
pub mod verify;

use std::collections::BTreeMap;

use annexa_checks::conformity::{Detail, State};
use annexa_checks::{CheckId, ControlId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::collector_keys::KeyHistory;
use crate::dsse::{self, Envelope};
use crate::ids::AgentId;
use crate::keys::{PublicKey, SigningKey};
use crate::note::Verifier;

/// The DSSE payload type of a signed report.
pub const PAYLOAD_TYPE: &str = "application/vnd.annexa.report+json";
/// The `format` field of a report.
pub const FORMAT: &str = "annexa/report/v1";

/// Counts per state.
pub type Counts = BTreeMap<State, u64>;

/// A report (the DSSE payload).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`FORMAT`].
    pub format: String,
    /// A random UUID naming this report.
    pub id: String,
    /// When the collector built it (RFC 3339 UTC).
    pub generated_at: String,
    /// Who built it.
    pub collector: CollectorInfo,
    /// The time the states hold at, and the evidence window.
    pub period: Period,
    /// What it covers.
    pub scope: ReportScope,
    /// The SoA version in force at `period.at`, as imported.
    pub soa: SoaRecord,
    /// Every check of the collector's packs, with the controls of the
    /// SoA's edition each gives evidence for.
    pub checks: Vec<CheckInfo>,
    /// The signed checkpoint every inclusion proof leads to (a C2SP note).
    pub checkpoint: String,
    /// Enrollment records of the agents whose hosts are in scope.
    pub agents: Vec<Enrollment>,
    /// Per host: its inventory facts and the envelopes its states rest on.
    pub hosts: Vec<HostEvidence>,
    /// Every control of the SoA in scope, with its state on each host.
    pub controls: Vec<ControlReport>,
    /// Totals.
    pub summary: Summary,
}

/// The collector that built a report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorInfo {
    /// The log's origin (the checkpoint key's name).
    pub origin: String,
    /// The collector's key as a note verifier (`name+id+key`).
    pub key: String,
    /// The collector's version.
    pub version: String,
    /// The rotations of the collector's key, oldest first (transition
    /// notes, [`crate::collector_keys`]): an auditor holding any of the
    /// log's keys follows them to `key`, which signed the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_transitions: Vec<String>,
}

/// The report's time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Evidence accepted before this time is not used (RFC 3339; absent:
    /// any evidence up to `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The states are as of this time (RFC 3339).
    pub at: String,
}

/// What a report covers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportScope {
    /// Hosts whose labels match this selector (`key=value,…`; absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// These controls only (empty: every control of the SoA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<ControlId>,
}

/// An SoA version as imported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaRecord {
    /// The collector's version number.
    pub version: i64,
    /// `toml` or `csv`.
    pub format: String,
    /// Hex SHA-256 of `source`.
    pub sha256: String,
    /// Who imported it.
    pub imported_by: String,
    /// When.
    pub imported_at: String,
    /// Why, if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The document exactly as imported.
    pub source: String,
}

impl SoaRecord {
    /// The document, parsed in its recorded format (named `SoA version N`
    /// in errors).
    pub fn parse(&self) -> Result<annexa_checks::soa::Soa, String> {
        let format = self.format.parse()?;
        annexa_checks::soa::parse(
            &format!("SoA version {}", self.version),
            &self.source,
            format,
        )
        .map_err(|e| e.to_string())
    }
}

/// A check as the collector's packs define it, reduced to what the
/// conformity rules and a reader need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInfo {
    /// The check id.
    pub id: CheckId,
    /// Its title.
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// How to fix a failure.
    pub remediation: String,
    /// The pack it belongs to (`name@version`).
    pub pack: String,
    /// Controls of the SoA's edition it gives evidence for.
    pub controls: Vec<ControlId>,
    /// Parameters its probe reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

/// An agent's enrollment record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// Agent id.
    pub id: AgentId,
    /// Host name at enrollment.
    pub hostname: String,
    /// Key id: hex SHA-256 of the public key.
    pub key_id: String,
    /// The public key, standard base64.
    pub public_key: String,
    /// Labels (the scope selectors match these).
    pub labels: BTreeMap<String, String>,
    /// When it enrolled.
    pub enrolled_at: String,
    /// When it was revoked, if it was (after `period.at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Keys it rotated away from, oldest first (docs/security.md): an
    /// envelope is verified with the key in force at its sequence number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_keys: Vec<crate::log::RetiredKey>,
}

impl Enrollment {
    /// The (key id, public key) in force for the agent's envelope
    /// `sequence`.
    pub fn key_at(&self, sequence: u64) -> (&str, &str) {
        self.retired_keys
            .iter()
            .find(|k| sequence <= k.until_sequence)
            .map_or((self.key_id.as_str(), self.public_key.as_str()), |k| {
                (k.key_id.as_str(), k.public_key.as_str())
            })
    }
}

/// One host's evidence.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEvidence {
    /// Agent id.
    pub agent: AgentId,
    /// Inventory facts of the newest envelope's scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<serde_json::Value>,
    /// The envelopes the states rest on: an unbroken run of the agent's
    /// chain ending with its newest envelope in the period, oldest first.
    pub evidence: Vec<EvidenceItem>,
    /// The newest envelope in the period, when retention removed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<Withheld>,
}

/// An envelope with its place in the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceItem {
    /// The agent's sequence number.
    pub sequence: u64,
    /// Its leaf index.
    pub log_index: u64,
    /// When the collector accepted it (part of the leaf).
    pub accepted_at: String,
    /// Hex SHA-256 of the envelope.
    pub sha256: String,
    /// RFC 9162 inclusion proof up to the checkpoint (hex hashes).
    pub proof: Vec<String>,
    /// The DSSE envelope exactly as the agent sent it.
    pub envelope: Box<RawValue>,
}

/// An envelope a report cannot include.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withheld {
    /// Its sequence number.
    pub sequence: u64,
    /// When the retention job removed its payload.
    pub pruned_at: String,
}

/// How a control is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// By the hosts' evidence.
    Automated,
    /// Applicable, but no check gives evidence: needs other evidence.
    Manual,
    /// The SoA excludes it.
    Excluded,
}

impl Kind {
    /// The wire name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Automated => "automated",
            Kind::Manual => "manual",
            Kind::Excluded => "excluded",
        }
    }
}

/// One control of the SoA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlReport {
    /// Canonical id of the SoA's edition.
    pub id: ControlId,
    /// Title.
    pub title: String,
    /// The clause (2005, 2013) or theme (2022) it belongs to: `id title`.
    pub theme: String,
    /// How it is decided.
    pub kind: Kind,
    /// Whether the SoA applies it.
    pub applicable: bool,
    /// Why it was selected or excluded.
    pub justification: String,
    /// Who answers for it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// How far it is implemented, as the SoA says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// The checks that give evidence for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckId>,
    /// Hosts per state (automated controls).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: Counts,
    /// Its state on each host in its scope (automated controls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostState>,
}

/// A (host, control) state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    /// Agent id.
    pub agent: AgentId,
    /// The state.
    pub state: State,
    /// Why.
    #[serde(default)]
    pub detail: Detail,
    /// Sequence numbers of the envelopes whose results decided it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<u64>,
}

/// Totals over a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Hosts in scope.
    pub hosts: u64,
    /// Controls per kind.
    pub controls: BTreeMap<Kind, u64>,
    /// (host, control) cells per state.
    pub cells: Counts,
    /// Cells per state for each theme, in the order the SoA's controls
    /// first reach it.
    pub themes: Vec<ThemeCounts>,
}

/// One theme's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThemeCounts {
    /// `id title` of the clause or theme.
    pub theme: String,
    /// Controls of the theme in scope.
    pub controls: u64,
    /// Controls needing other evidence.
    pub manual: u64,
    /// Excluded controls.
    pub excluded: u64,
    /// Cells per state.
    pub cells: Counts,
}

/// Why a signed report cannot be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not a DSSE envelope.
    #[error("not a signed report (a DSSE envelope): {0}")]
    Envelope(String),
    /// The collector's signature does not verify.
    #[error("the collector's signature does not verify: {0}")]
    Signature(String),
    /// The payload is not a report of this format.
    #[error("the signed payload is not an annexa report: {0}")]
    Payload(String),
}

/// A signed report, opened.
#[derive(Debug)]
pub struct Opened {
    /// The report.
    pub report: Report,
    /// Hex SHA-256 of the payload: the report's digest.
    pub digest: String,
    /// The payload size in bytes.
    pub size: usize,
}

impl Report {
    /// Signs the report: a DSSE envelope over its compact JSON.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, serde_json::Error> {
        let payload = serde_json::to_vec(self)?;
        Ok(dsse::sign(PAYLOAD_TYPE, &payload, key).to_json())
    }
}

/// Opens a signed report: checks the collector's signature with `key` and
/// parses the payload.
pub fn open(bytes: &[u8], key: &PublicKey) -> Result<Opened, OpenError> {
    let env = Envelope::from_json(bytes).map_err(|e| OpenError::Envelope(e.to_string()))?;
    let verified = env
        .verify(PAYLOAD_TYPE, &[*key], 1)
        .map_err(|e| OpenError::Signature(e.to_string()))?;
    parse(&verified.payload)
}

/// Opens a signed report with any key of the collector's log: the
/// report's key transitions, each signed by both its keys, must lead from
/// `trusted` to the key that signed it. Returns the key history too, for
/// checking the report's checkpoint with the key in force at its size.
pub fn open_trusting(bytes: &[u8], trusted: &Verifier) -> Result<(Opened, KeyHistory), OpenError> {
    let follow = |transitions: &[String]| {
        KeyHistory::follow(trusted, transitions)
            .map_err(|e| OpenError::Signature(format!("the collector's key transitions: {e}")))
    };
    // Signed by the key given (the usual case): the report, parsed once,
    // gives the transitions, for checkpoints of older keys. A report is
    // signed by the newest key; one a retired key signed does not open.
    let first = match open(bytes, &trusted.key) {
        Ok(opened) => {
            let history = follow(&opened.report.collector.key_transitions)?;
            if history.current().key == trusted.key {
                return Ok((opened, history));
            }
            return Ok((open(bytes, &history.current().key)?, history));
        }
        Err(e) => e,
    };
    // Signed by a newer key: the transitions vouch for themselves, and the
    // payload they come from counts only once the key they lead to verifies
    // it. Read leniently: anything else wrong is the signature's to report.
    #[derive(Deserialize)]
    struct Peek {
        collector: PeekCollector,
    }
    #[derive(Deserialize)]
    struct PeekCollector {
        #[serde(default)]
        key_transitions: Vec<String>,
    }
    let transitions = Envelope::from_json(bytes)
        .ok()
        .and_then(|env| env.payload_bytes().ok())
        .and_then(|p| serde_json::from_slice::<Peek>(&p).ok())
        .map(|p| p.collector.key_transitions)
        .unwrap_or_default();
    if transitions.is_empty() {
        return Err(first);
    }
    let history = follow(&transitions)?;
    Ok((open(bytes, &history.current().key)?, history))
}

/// Opens a signed report without checking its signature (for rendering a
/// report whose verification is shown separately).
pub fn open_unverified(bytes: &[u8]) -> Result<Opened, OpenError> {
    let env = Envelope::from_json(bytes).map_err(|e| OpenError::Envelope(e.to_string()))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(OpenError::Envelope(format!(
            "payload type `{}`, not `{PAYLOAD_TYPE}`",
            env.payload_type
        )));
    }
    let payload = env
        .payload_bytes()
        .map_err(|e| OpenError::Envelope(e.to_string()))?;
    parse(&payload)
}

fn parse(payload: &[u8]) -> Result<Opened, OpenError> {
    let report: Report =
        serde_json::from_slice(payload).map_err(|e| OpenError::Payload(e.to_string()))?;
    if report.format != FORMAT {
        return Err(OpenError::Payload(format!(
            "format `{}`, not `{FORMAT}`",
            report.format
        )));
    }
    Ok(Opened {
        report,
        digest: crate::sha256_hex(payload),
        size: payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[5u8; 32]).unwrap()
    }

    #[test]
    fn only_a_report_signed_by_the_key_opens() {
        let k = key();
        let not_a_report = dsse::sign(PAYLOAD_TYPE, b"{\"format\":\"x\"}", &k).to_json();
        assert!(matches!(
            open(&not_a_report, &k.public()),
            Err(OpenError::Payload(_))
        ));
        let receipt = dsse::sign("application/vnd.annexa.receipt+json", b"{}", &k).to_json();
        assert!(matches!(
            open(&receipt, &k.public()),
            Err(OpenError::Signature(_))
        ));
        let other = SigningKey::from_seed(&[6u8; 32]).unwrap().public();
        assert!(matches!(
            open(&not_a_report, &other),
            Err(OpenError::Signature(_))
        ));
        assert!(matches!(
            open(b"not json", &k.public()),
            Err(OpenError::Envelope(_))
        ));
    }
}
