//! The collector's receipt: a DSSE envelope, signed with the collector's
//! key, over a JSON statement that it durably accepted an envelope.

use serde::{Deserialize, Serialize};

use crate::dsse::{DsseError, Envelope};
use crate::ids::AgentId;
use crate::keys::{PublicKey, SigningKey};

/// The payload type of receipts.
pub const RECEIPT_PAYLOAD_TYPE: &str = "application/vnd.annexa.receipt+json";

/// What the collector acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Lower-case hex SHA-256 of the envelope bytes as received.
    pub envelope_sha256: String,
    /// The agent the envelope came from.
    pub agent_id: AgentId,
    /// The agent's sequence number of the envelope.
    pub sequence: u64,
    /// When the collector committed it (RFC 3339 UTC).
    pub accepted_at: String,
    /// Whether this envelope had already been accepted earlier (a replay of
    /// an acknowledged envelope is answered with its original receipt data).
    #[serde(default)]
    pub duplicate: bool,
    /// The envelope's leaf index in the collector's evidence log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// Errors checking a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The signature or shape is wrong.
    #[error("receipt signature: {0}")]
    Signature(#[from] DsseError),
    /// The payload is not a receipt.
    #[error("receipt payload: {0}")]
    Payload(String),
    /// It acknowledges something else.
    #[error("receipt is for {what}, expected {expected}")]
    Mismatch {
        /// What it names.
        what: String,
        /// What was sent.
        expected: String,
    },
}

impl Receipt {
    /// Signs the receipt.
    pub fn sign(&self, key: &SigningKey) -> Envelope {
        let body = serde_json::to_vec(self).unwrap_or_default();
        crate::dsse::sign(RECEIPT_PAYLOAD_TYPE, &body, key)
    }

    /// Verifies a signed receipt against the collector key and checks that
    /// it acknowledges the envelope with `digest` from `agent_id` at `sequence`.
    pub fn verify(
        env: &Envelope,
        collector: &PublicKey,
        digest: &str,
        agent_id: &str,
        sequence: u64,
    ) -> Result<Receipt, ReceiptError> {
        let v = env.verify(RECEIPT_PAYLOAD_TYPE, std::slice::from_ref(collector), 1)?;
        let r: Receipt =
            serde_json::from_slice(&v.payload).map_err(|e| ReceiptError::Payload(e.to_string()))?;
        if r.envelope_sha256 != digest || r.agent_id != agent_id || r.sequence != sequence {
            return Err(ReceiptError::Mismatch {
                what: format!("{} seq {} ({})", r.agent_id, r.sequence, r.envelope_sha256),
                expected: format!("{agent_id} seq {sequence} ({digest})"),
            });
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_verify_only_for_what_they_acknowledge() {
        let key = SigningKey::from_seed(&[1u8; 32]).unwrap();
        let r = Receipt {
            envelope_sha256: "ab".repeat(32),
            agent_id: "a1".into(),
            sequence: 3,
            accepted_at: "2026-01-01T00:00:00Z".into(),
            duplicate: false,
            log_index: Some(9),
        };
        let env = r.sign(&key);
        assert_eq!(
            Receipt::verify(&env, &key.public(), &"ab".repeat(32), "a1", 3).unwrap(),
            r
        );
        assert!(matches!(
            Receipt::verify(&env, &key.public(), &"ab".repeat(32), "a1", 4),
            Err(ReceiptError::Mismatch { .. })
        ));
        let other = SigningKey::from_seed(&[2u8; 32]).unwrap();
        assert!(matches!(
            Receipt::verify(&env, &other.public(), &"ab".repeat(32), "a1", 3),
            Err(ReceiptError::Signature(_))
        ));
    }
}
