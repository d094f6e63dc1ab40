//! The in-toto Statement v1 and annexa's scan-run predicate.
//!
//! An agent signs one statement per scan run. Its subject is the host (the
//! enrolled agent id as name, the SHA-256 of the host's stable machine
//! identity as digest); its predicate carries the run: agent, sequence
//! number and the digest of the previous envelope (a per-agent hash chain),
//! labels, and the scan report of `annexa-checks`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use annexa_checks::engine::ScanReport;

use crate::ids::AgentId;

/// The statement type this module emits and accepts.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// annexa's predicate type for a scan run.
pub const SCAN_PREDICATE_TYPE: &str = "urn:annexa:predicate:scan-run:v1";

/// An in-toto ResourceDescriptor, as far as a subject uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    /// Name of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URI of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm → lower-case hex digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<BTreeMap<String, String>>,
    /// Other descriptor fields, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// An in-toto Statement with a predicate of type `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement<P> {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// What the statement is about.
    pub subject: Vec<ResourceDescriptor>,
    /// The predicate's type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate (required, as in the reference implementation).
    pub predicate: P,
}

/// Why a statement is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// Not JSON of the statement shape (names the field where possible).
    #[error("statement is not valid: {0}")]
    Malformed(String),
    /// `_type` is not in-toto Statement v1.
    #[error("_type is `{0}`, expected `{STATEMENT_TYPE}`")]
    Type(String),
    /// No subject.
    #[error("statement has no subject")]
    SubjectRequired,
    /// A subject with none of name, uri, digest.
    #[error("subject {0} has none of name, uri or digest")]
    DescriptorField(usize),
    /// A subject without a digest.
    #[error("subject {0} has no digest")]
    DigestRequired(usize),
    /// Empty predicate type.
    #[error("predicateType is empty")]
    PredicateTypeRequired,
    /// No predicate.
    #[error("predicate is missing")]
    PredicateRequired,
    /// A different predicate type than expected.
    #[error("predicateType is `{found}`, expected `{expected}`")]
    PredicateType {
        /// As found.
        found: String,
        /// As expected.
        expected: String,
    },
}

fn statement_error(e: serde_json::Error) -> StatementError {
    // serde names a missing field in its message; the reference
    // implementation reports this case as its own error.
    if e.to_string().contains("missing field `predicate`") {
        StatementError::PredicateRequired
    } else {
        StatementError::Malformed(e.to_string())
    }
}

/// Parses and validates a statement with any predicate (the rules of the
/// in-toto reference implementation's `Validate`).
pub fn parse_statement(bytes: &[u8]) -> Result<Statement<serde_json::Value>, StatementError> {
    let st: Statement<Option<serde_json::Value>> =
        serde_json::from_slice(bytes).map_err(statement_error)?;
    validate_header(&st.type_, &st.subject, &st.predicate_type)?;
    let predicate = st.predicate.ok_or(StatementError::PredicateRequired)?;
    Ok(Statement {
        type_: st.type_,
        subject: st.subject,
        predicate_type: st.predicate_type,
        predicate,
    })
}

/// The rules of the in-toto reference implementation's `Validate` that do
/// not depend on the predicate.
fn validate_header(
    type_: &str,
    subject: &[ResourceDescriptor],
    predicate_type: &str,
) -> Result<(), StatementError> {
    if type_ != STATEMENT_TYPE {
        return Err(StatementError::Type(type_.to_string()));
    }
    if subject.is_empty() {
        return Err(StatementError::SubjectRequired);
    }
    for (i, s) in subject.iter().enumerate() {
        if s.name.is_none() && s.uri.is_none() && s.digest.is_none() {
            return Err(StatementError::DescriptorField(i));
        }
        if s.digest.as_ref().is_none_or(|d| d.is_empty()) {
            return Err(StatementError::DigestRequired(i));
        }
    }
    if predicate_type.is_empty() {
        return Err(StatementError::PredicateTypeRequired);
    }
    Ok(())
}

/// The agent that produced a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// The id the collector assigned at enrollment.
    pub id: AgentId,
    /// annexa version.
    pub version: String,
    /// Key id of the agent's signing key.
    pub key_id: String,
}

/// Sequence numbers that the agent had to drop from its spool (it was
/// full); recorded in the next envelope so the chain shows the gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    /// Dropped sequence numbers, ascending.
    pub dropped: Vec<u64>,
    /// Why.
    pub reason: String,
}

/// annexa's scan-run predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPredicate {
    /// Who produced it.
    pub agent: AgentInfo,
    /// 1 for the agent's first envelope, then +1 for each.
    pub sequence: u64,
    /// Hex SHA-256 of the agent's previous envelope bytes; `None` for
    /// sequence 1.
    pub previous: Option<String>,
    /// Operator labels of the host (`env = "prod"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Runs dropped before this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    /// Seconds between the agent's scheduled runs, when it runs on a
    /// schedule (the collector's default freshness window is twice this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// A collector checkpoint this agent found inconsistent with one it
    /// saw before, reported once in the next envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_alert: Option<LogAlert>,
    /// The agent's next key: from the next sequence number on, its
    /// envelopes are signed with this key, not with the one that signed
    /// this envelope (docs/security.md, "Rotating an agent's key").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation: Option<KeyRotation>,
    /// The scan itself.
    pub scan: ScanReport,
}

/// An agent's declaration of its next key, inside an envelope signed with
/// its current key (which so vouches for the new one), with the new key's
/// own signature as proof that the agent holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    /// The new key's id (hex SHA-256 of the raw public key).
    pub key_id: String,
    /// The new Ed25519 public key, standard base64.
    pub public_key: String,
    /// Standard base64 of the new key's signature over
    /// [`KeyRotation::message`].
    pub proof: String,
}

impl KeyRotation {
    /// What the new key signs: the agent, the sequence number of the
    /// declaring envelope and both key ids, so the proof cannot be moved to
    /// another agent, envelope or key.
    pub fn message(agent_id: &str, sequence: u64, old_key_id: &str, new_key_id: &str) -> Vec<u8> {
        format!("annexa key rotation v1\n{agent_id}\n{sequence}\n{old_key_id}\n{new_key_id}\n")
            .into_bytes()
    }

    /// The declaration of `next` in envelope `sequence` of `agent_id`, whose
    /// current key is `old_key_id`.
    pub fn new(
        agent_id: &str,
        sequence: u64,
        old_key_id: &str,
        next: &crate::keys::SigningKey,
    ) -> KeyRotation {
        let key_id = next.public().key_id();
        let proof = next.sign(&Self::message(agent_id, sequence, old_key_id, &key_id));
        KeyRotation {
            public_key: next.public().to_b64(),
            proof: crate::encoding::b64(&proof),
            key_id,
        }
    }

    /// The new key, when the declaration is well-formed and its proof
    /// verifies for this agent, envelope and old key.
    pub fn verify(
        &self,
        agent_id: &str,
        sequence: u64,
        old_key_id: &str,
    ) -> Result<crate::keys::PublicKey, String> {
        let key = crate::keys::PublicKey::from_b64(&self.public_key)
            .map_err(|e| format!("key_rotation.public_key: {e}"))?;
        if key.key_id() != self.key_id {
            return Err(format!(
                "key_rotation: the public key hashes to {}, not to key_id {}",
                key.key_id(),
                self.key_id
            ));
        }
        if self.key_id == old_key_id {
            return Err("key_rotation names the key that signed it".into());
        }
        let proof = crate::encoding::b64_decode(&self.proof)
            .ok_or_else(|| "key_rotation.proof is not base64".to_string())?;
        if !key.verify(
            &Self::message(agent_id, sequence, old_key_id, &self.key_id),
            &proof,
        ) {
            return Err(format!(
                "key_rotation.proof is not the new key's signature over agent {agent_id}, sequence {sequence}, keys {old_key_id} -> {}",
                self.key_id
            ));
        }
        Ok(key)
    }
}

/// Evidence that the collector's log was rewritten: two signed checkpoints
/// that no consistency proof joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogAlert {
    /// When the agent found it (RFC 3339 UTC).
    pub detected_at: String,
    /// The checkpoint the agent held (signed note).
    pub previous_checkpoint: String,
    /// The checkpoint it was then shown (signed note).
    pub new_checkpoint: String,
    /// Why they are inconsistent.
    pub error: String,
}

/// The subject name for an agent.
pub fn subject_name(agent_id: &str) -> String {
    format!("annexa-agent:{agent_id}")
}

/// Builds the statement for a scan run.
pub fn scan_statement(
    predicate: ScanPredicate,
    machine_identity_sha256: &str,
) -> Statement<ScanPredicate> {
    let mut digest = BTreeMap::new();
    digest.insert("sha256".to_string(), machine_identity_sha256.to_string());
    Statement {
        type_: STATEMENT_TYPE.to_string(),
        subject: vec![ResourceDescriptor {
            name: Some(subject_name(predicate.agent.id.as_str())),
            uri: None,
            digest: Some(digest),
            other: BTreeMap::new(),
        }],
        predicate_type: SCAN_PREDICATE_TYPE.to_string(),
        predicate,
    }
}

/// The scan statement of a DSSE envelope's bytes, its signature not
/// checked: for envelopes verified before they were spooled or stored, or
/// verified elsewhere.
pub fn parse_scan_envelope(bytes: &[u8]) -> Result<Statement<ScanPredicate>, String> {
    let env = crate::dsse::Envelope::from_json(bytes).map_err(|e| e.to_string())?;
    let payload = env.payload_bytes().map_err(|e| e.to_string())?;
    parse_scan_statement(&payload).map_err(|e| e.to_string())
}

/// Parses a statement and its annexa scan predicate in one pass: the
/// predicate is first kept as raw JSON (no allocation), the statement's own
/// rules and predicate type are checked, and only then is the predicate
/// parsed into its types.
pub fn parse_scan_statement(bytes: &[u8]) -> Result<Statement<ScanPredicate>, StatementError> {
    let st: Statement<Option<&serde_json::value::RawValue>> =
        serde_json::from_slice(bytes).map_err(statement_error)?;
    validate_header(&st.type_, &st.subject, &st.predicate_type)?;
    if st.predicate_type != SCAN_PREDICATE_TYPE {
        return Err(StatementError::PredicateType {
            found: st.predicate_type,
            expected: SCAN_PREDICATE_TYPE.to_string(),
        });
    }
    let raw = st.predicate.ok_or(StatementError::PredicateRequired)?;
    let predicate: ScanPredicate = serde_json::from_str(raw.get())
        .map_err(|e| StatementError::Malformed(format!("predicate: {e}")))?;
    Ok(Statement {
        type_: st.type_,
        subject: st.subject,
        predicate_type: st.predicate_type,
        predicate,
    })
}

#[cfg(test)]
mod rotation_tests {
    use super::KeyRotation;
    use crate::keys::SigningKey;

    #[test]
    fn a_rotation_proof_binds_agent_sequence_and_both_keys() {
        let old = SigningKey::from_seed(&[1; 32]).unwrap().public().key_id();
        let next = SigningKey::from_seed(&[2; 32]).unwrap();
        let r = KeyRotation::new("ag-1", 7, &old, &next);
        assert_eq!(r.verify("ag-1", 7, &old).unwrap(), next.public());
        assert!(r.verify("ag-2", 7, &old).is_err());
        assert!(r.verify("ag-1", 8, &old).is_err());
        assert!(r.verify("ag-1", 7, &"0".repeat(64)).is_err());
        let mut other = r.clone();
        other.public_key = SigningKey::from_seed(&[3; 32]).unwrap().public().to_b64();
        assert!(
            other
                .verify("ag-1", 7, &old)
                .unwrap_err()
                .contains("hashes to")
        );
        assert!(
            KeyRotation::new("ag-1", 7, &next.public().key_id(), &next)
                .verify("ag-1", 7, &next.public().key_id())
                .is_err()
        );
    }
}
