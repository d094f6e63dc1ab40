//! DSSE (Dead Simple Signing Envelope) v1.0: the JSON envelope, the
//! pre-authentication encoding, Ed25519 signing and threshold verification.
//!
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body,
//! where LEN is the byte length in ASCII decimal. Signatures are over the
//! PAE, never over the payload alone. Verification hands back the payload
//! bytes that were verified; callers parse those, never a re-encoding.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::encoding::{b64, b64_decode};
use crate::keys::{PublicKey, SigningKey};

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope in its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Base64 of the serialized body.
    pub payload: String,
    /// How to interpret the payload.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures over PAE(payloadType, payload).
    pub signatures: Vec<Signature>,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Optional, unauthenticated hint of which key signed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 of the signature bytes.
    pub sig: String,
}

/// Why an envelope does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The envelope is not valid JSON of the DSSE shape.
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// The payload is not base64.
    #[error("payload is not base64")]
    PayloadEncoding,
    /// The payload type is not the one expected.
    #[error("payloadType is `{found}`, expected `{expected}`")]
    PayloadType {
        /// As found.
        found: String,
        /// As expected.
        expected: String,
    },
    /// Too few distinct trusted keys signed.
    #[error("{valid} valid signature(s) from distinct trusted keys, {threshold} required")]
    Threshold {
        /// Distinct trusted keys with a valid signature.
        valid: usize,
        /// Required.
        threshold: usize,
    },
    /// No signature at all.
    #[error("envelope has no signatures")]
    Unsigned,
}

/// The pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` with one key; the keyid is the key's id.
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload: b64(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![Signature {
            keyid: key.public().key_id(),
            sig: b64(&sig),
        }],
    }
}

/// A verified envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The payload bytes exactly as signed.
    pub payload: Vec<u8>,
    /// The trusted keys whose signature verified.
    pub signers: Vec<PublicKey>,
}

impl Envelope {
    /// Parses the JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, DsseError> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))
    }

    /// Whether `bytes` are this envelope in the one encoding annexa emits:
    /// compact JSON with the fields in order, standard padded base64, and
    /// exactly one signature whose key id is 64 lower-case hex digits.
    /// (DSSE lets verifiers accept other encodings and extra signatures;
    /// annexa's hash chain, which links envelopes by the digest of their
    /// bytes, needs exactly one encoding of each signed payload, and neither
    /// key ids nor signature entries are covered by the signature.)
    pub fn is_canonical(&self, bytes: &[u8]) -> bool {
        let canonical_b64 = |text: &str| b64_decode(text).is_some_and(|raw| b64(&raw) == text);
        let [only] = self.signatures.as_slice() else {
            return false;
        };
        crate::encoding::is_lower_hex(&only.keyid, 64)
            && canonical_b64(&only.sig)
            && canonical_b64(&self.payload)
            && self.to_json() == bytes
    }

    /// The payload bytes, not verified (for an envelope whose signature was
    /// checked elsewhere, or is about to be).
    pub fn payload_bytes(&self) -> Result<Vec<u8>, DsseError> {
        b64_decode(&self.payload).ok_or(DsseError::PayloadEncoding)
    }

    /// The JSON form (compact).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Verifies that at least `threshold` distinct keys of `trusted` signed
    /// PAE(payloadType, payload), and that the payload type is `expected`.
    /// Each trusted key counts once, however many signatures it made; key
    /// ids are hints only and are not trusted.
    pub fn verify(
        &self,
        expected_type: &str,
        trusted: &[PublicKey],
        threshold: usize,
    ) -> Result<Verified, DsseError> {
        if self.payload_type != expected_type {
            return Err(DsseError::PayloadType {
                found: self.payload_type.clone(),
                expected: expected_type.to_string(),
            });
        }
        if self.signatures.is_empty() {
            return Err(DsseError::Unsigned);
        }
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        let mut signers = BTreeSet::new();
        for s in &self.signatures {
            let Some(sig) = b64_decode(&s.sig) else {
                continue;
            };
            for (i, key) in trusted.iter().enumerate() {
                if !signers.contains(&i) && key.verify(&message, &sig) {
                    signers.insert(i);
                    break;
                }
            }
        }
        if signers.len() < threshold.max(1) {
            return Err(DsseError::Threshold {
                valid: signers.len(),
                threshold: threshold.max(1),
            });
        }
        Ok(Verified {
            payload,
            signers: signers.into_iter().map(|i| trusted[i]).collect(),
        })
    }
}
