//! The JSON bodies of the collector's HTTP API that agents use
//! (docs/api.md). Shared so that agent and collector cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dsse::Envelope;
use crate::ids::AgentId;

/// `POST /v1/enroll` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The single-use enrollment token.
    pub token: String,
    /// The agent's Ed25519 public key, standard base64 of the 32 raw bytes.
    pub public_key: String,
    /// Host name.
    pub hostname: String,
    /// Hex SHA-256 of the host's stable machine identity (/etc/machine-id).
    pub machine_id_sha256: String,
    /// Labels the agent is configured with (merged with the token's).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host inventory facts at enrollment.
    #[serde(default)]
    pub facts: serde_json::Value,
    /// Standard base64 of the agent key's signature over
    /// [`EnrollRequest::proof_message`]: that the agent holds the key it
    /// enrolls (nobody can enroll another host's public key as theirs).
    pub proof: String,
}

impl EnrollRequest {
    /// What the agent's key signs: the SHA-256 of the (trimmed) token, the
    /// key id and the machine identity, so the proof serves this token,
    /// key and host only.
    pub fn proof_message(token: &str, key_id: &str, machine_id_sha256: &str) -> Vec<u8> {
        format!(
            "annexa enroll v1\n{}\n{key_id}\n{machine_id_sha256}\n",
            crate::sha256_hex(token.trim().as_bytes())
        )
        .into_bytes()
    }

    /// A request for `key`, with its proof.
    pub fn new(
        token: String,
        key: &crate::keys::SigningKey,
        hostname: String,
        machine_id_sha256: String,
        labels: BTreeMap<String, String>,
        facts: serde_json::Value,
    ) -> EnrollRequest {
        let public = key.public();
        let proof = key.sign(&Self::proof_message(
            &token,
            &public.key_id(),
            &machine_id_sha256,
        ));
        EnrollRequest {
            token,
            public_key: public.to_b64(),
            hostname,
            machine_id_sha256,
            labels,
            facts,
            proof: crate::encoding::b64(&proof),
        }
    }

    /// The enrolling key, if `proof` is its signature over this request.
    pub fn proven_key(&self) -> Result<crate::keys::PublicKey, String> {
        let key = crate::keys::PublicKey::from_b64(&self.public_key).map_err(|e| e.to_string())?;
        let sig = crate::encoding::b64_decode(&self.proof)
            .ok_or_else(|| "proof is not base64".to_string())?;
        let message = Self::proof_message(&self.token, &key.key_id(), &self.machine_id_sha256);
        if !key.verify(&message, &sig) {
            return Err(
                "proof is not the enrolling key's signature over this token, key and machine: the agent must hold the key it enrolls"
                    .into(),
            );
        }
        Ok(key)
    }
}

/// `POST /v1/enroll` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The id the collector assigned (stable for the key).
    pub agent_id: AgentId,
    /// The collector's receipt-signing key, standard base64.
    pub collector_public_key: String,
    /// Its key id.
    pub collector_key_id: String,
    /// The next sequence number the collector expects from this agent (1
    /// for a new agent; where the chain stands for an idempotent re-enroll).
    pub next_sequence: u64,
    /// Hex SHA-256 of the last envelope accepted from this agent, if any.
    pub last_digest: Option<String>,
    /// Labels recorded for the agent (token labels and agent labels).
    pub labels: BTreeMap<String, String>,
}

/// `POST /v1/evidence` success: the signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceResponse {
    /// DSSE envelope of a [`crate::receipt::Receipt`], signed by the collector.
    pub receipt: Envelope,
    /// What the organisation's current SoA asks of the agent's next runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<AgentPolicy>,
    /// The evidence log after the envelope was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogState>,
    /// Every rotation of the collector's key, oldest first: transition
    /// notes ([`crate::collector_keys::Transition`]), each signed by the key
    /// it retires and the key it brings in. The receipt and checkpoint are
    /// signed by the newest key; an agent that pinned an older one adopts
    /// it only by following these from the key it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_transitions: Vec<String>,
}

/// The collector's evidence log as an agent sees it in a response: the
/// newest checkpoint and, when the agent named the size of the checkpoint
/// it holds (`POST /v1/evidence?log_size=N`), the proof that the new one
/// extends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogState {
    /// The signed checkpoint (C2SP signed note).
    pub checkpoint: String,
    /// The size the consistency proof starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_from: Option<u64>,
    /// RFC 9162 consistency proof from `consistency_from` to the
    /// checkpoint's size (standard base64 hashes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<String>,
}

/// What the current Statement of Applicability asks of agents: the check
/// parameter values their scans must use for the evidence to count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPolicy {
    /// The SoA version.
    pub soa_version: i64,
    /// Parameter values (they override the agent's configuration).
    pub params: BTreeMap<String, annexa_checks::expect::ParamValue>,
}

/// Every error response of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// A stable machine-readable code (see [`codes`]).
    pub error: String,
    /// What is wrong, for a human.
    pub message: String,
    /// For `sequence` errors: the sequence number the collector expects next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sequence: Option<u64>,
}

/// Error codes.
pub mod codes {
    /// The body is not JSON of the expected shape (400).
    pub const MALFORMED: &str = "malformed";
    /// The body exceeds the size limit (413).
    pub const TOO_LARGE: &str = "too_large";
    /// No enrolled agent has the signing key (401).
    pub const UNKNOWN_AGENT: &str = "unknown_agent";
    /// The agent was revoked (403).
    pub const REVOKED_AGENT: &str = "revoked_agent";
    /// The envelope's signature does not verify (401).
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// The payload is not the expected in-toto statement (422).
    pub const INVALID_STATEMENT: &str = "invalid_statement";
    /// Replayed, out-of-order or chain-breaking sequence (409).
    pub const SEQUENCE: &str = "sequence";
    /// The enrollment token is unknown, used or expired (401).
    pub const BAD_TOKEN: &str = "bad_token";
    /// Missing or invalid credentials for an API route (401).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// Valid credentials without the needed role (403).
    pub const FORBIDDEN: &str = "forbidden";
    /// Not found (404).
    pub const NOT_FOUND: &str = "not_found";
    /// The request conflicts with stored state (409).
    pub const CONFLICT: &str = "conflict";
    /// No Statement of Applicability has been imported yet (409).
    pub const NO_SOA: &str = "no_soa";
    /// The Statement of Applicability does not lint (422); the response
    /// lists every problem.
    pub const INVALID_SOA: &str = "invalid_soa";
    /// The collector cannot accept evidence now (503).
    pub const UNAVAILABLE: &str = "unavailable";
    /// The envelope's payload was removed under the retention policy (its
    /// log entry and metadata remain).
    pub const PRUNED: &str = "pruned";
    /// Too many failed authentications from the client's address (429,
    /// with `Retry-After`).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The agent's clock differs from the collector's by more than the
    /// collector's `clock_skew_tolerance_seconds` (422); the agent keeps the
    /// envelope and sends it again.
    pub const CLOCK_SKEW: &str = "clock_skew";
}

/// The request header in which an agent sends its clock when it delivers
/// an envelope (RFC 3339 UTC), so the collector can compare clocks.
pub const AGENT_TIME_HEADER: &str = "annexa-agent-time";

/// Most labels one agent or token may carry.
pub const MAX_LABELS: usize = 64;

/// Checks labels as the collector accepts them at enrollment: at most
/// [`MAX_LABELS`]; keys of 1 to 63 ASCII letters, digits, `.`, `_`, `-` or
/// `/`; values of at most 256 bytes without control characters. Labels
/// reach log lines, reports and SoA selectors, so nothing in them may
/// break a line or a selector.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels; at most {MAX_LABELS} are accepted",
            labels.len()
        ));
    }
    for (k, v) in labels {
        let key_ok = (1..=63).contains(&k.len())
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
        if !key_ok {
            return Err(format!(
                "label key {k:?}: 1 to 63 ASCII letters, digits, `.`, `_`, `-` or `/`"
            ));
        }
        if v.len() > 256 || v.chars().any(|c| unseen(c) || ";,|=".contains(c)) || v.trim() != v {
            return Err(format!(
                "label {k}: the value must be at most 256 bytes, without control or invisible characters, \
                 without `; , | =` (they separate selector terms) and without leading or trailing spaces"
            ));
        }
    }
    Ok(())
}

/// Characters that change how text reads without being seen: controls,
/// bidirectional overrides, zero-width characters, line and paragraph
/// separators, soft hyphens.
fn unseen(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Checks a host name as the collector accepts it at enrollment: 1 to 253
/// bytes, no whitespace or control characters (it reaches log lines and
/// reports).
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 || name.chars().any(|c| unseen(c) || c.is_whitespace()) {
        return Err(format!(
            "hostname {name:?}: 1 to 253 bytes without whitespace or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_proves_the_key_for_this_token_and_machine() {
        let key = crate::keys::SigningKey::from_seed(&[5; 32]).unwrap();
        let other = crate::keys::SigningKey::from_seed(&[6; 32]).unwrap();
        let req = EnrollRequest::new(
            "annexa-enroll-x".into(),
            &key,
            "h".into(),
            "ab".repeat(32),
            BTreeMap::new(),
            serde_json::Value::Null,
        );
        assert_eq!(req.proven_key().unwrap(), key.public());
        // Someone else's public key, with a proof they cannot make.
        let mut stolen = req.clone();
        stolen.public_key = other.public().to_b64();
        assert!(
            stolen
                .proven_key()
                .unwrap_err()
                .contains("must hold the key")
        );
        // The proof does not carry over to another token or machine.
        let mut moved = req.clone();
        moved.token = "annexa-enroll-y".into();
        assert!(moved.proven_key().is_err());
        let mut host = req;
        host.machine_id_sha256 = "cd".repeat(32);
        assert!(host.proven_key().is_err());
    }

    #[test]
    fn labels_and_host_names_that_could_break_a_log_line_are_refused() {
        let ok: BTreeMap<String, String> = [("env".into(), "prod eu-1".into())].into();
        assert!(check_labels(&ok).is_ok());
        for (k, v) in [
            ("", "x"),
            ("a b", "x"),
            ("env", "a\nforged=1"),
            ("env", "prod|dev"),
            ("env", "prod;role=db"),
            ("env", " prod"),
            ("env", "dev\u{202e}dorp"),
            ("env", "pr\u{200b}od"),
            ("k", &"v".repeat(257)),
        ] {
            let bad: BTreeMap<String, String> = [(k.to_string(), v.to_string())].into();
            assert!(check_labels(&bad).is_err(), "{k:?}={v:?}");
        }
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(check_labels(&many).unwrap_err().contains("65 labels"));
        assert!(check_hostname("web-1.example").is_ok());
        for bad in ["", "a\nb", "a b", &"h".repeat(254)] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
