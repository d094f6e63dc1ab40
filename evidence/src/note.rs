//! Signed notes (c2sp.org/signed-note) with Ed25519, and transparency-log
//! checkpoints (c2sp.org/tlog-checkpoint) as their text.
//!
//! Byte for byte as the specifications define them: a note is its text
//! (ending in a newline), a blank line, and signature lines
//! `— <key name> base64(key ID || signature)`; the key ID is the first four
//! bytes of SHA-256(key name || 0x0A || 0x01 || public key). Tested against
//! the C2SP and Go checksum-database vectors.

use std::fmt;

use ring::digest::{SHA256, digest};

use crate::encoding::{b64, b64_decode_strict};
use crate::keys::{PublicKey, SigningKey};

/// The signature type byte of Ed25519 in key IDs and verifier keys.
const ED25519_TYPE: u8 = 0x01;
/// Signature lines start with an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// At most this many signature lines are read (the spec asks for at least 16).
const MAX_SIGNATURES: usize = 100;

/// Errors reading or verifying notes, checkpoints and verifier keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not in the signed-note format.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// The verifier key is not `name+hex(id)+base64(0x01 || key)`.
    #[error("malformed verifier key `{key}`: {why}")]
    BadVerifierKey {
        /// The key as given.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// No signature by the trusted key is on the note.
    #[error("the note has no signature by {0}")]
    Unsigned(String),
    /// A signature by the trusted key (name and ID match) does not verify.
    #[error("invalid signature for key {0}")]
    BadSignature(String),
    /// The note is signed but its text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
}

/// The name a signer uses and its Ed25519 public key: what a verifier needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    /// The key name (no spaces, no `+`).
    pub name: String,
    /// The 4-byte key ID.
    pub id: u32,
    /// The public key.
    pub key: PublicKey,
}

/// The key ID of an Ed25519 key under `name`.
pub fn key_id(name: &str, key: &PublicKey) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ED25519_TYPE);
    buf.extend_from_slice(&key.0);
    let h = digest(&SHA256, &buf);
    u32::from_be_bytes([h.as_ref()[0], h.as_ref()[1], h.as_ref()[2], h.as_ref()[3]])
}

/// Checks a key name: non-empty, no Unicode spaces, no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

impl Verifier {
    /// The verifier for `key` under `name`.
    pub fn new(name: &str, key: PublicKey) -> Result<Verifier, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadVerifierKey {
                key: name.to_string(),
                why: "a key name must be non-empty, without spaces or `+`".into(),
            });
        }
        Ok(Verifier {
            name: name.to_string(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parses a verifier key `<name>+<hex key ID>+<base64(0x01 || key)>`.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        let text = text.trim();
        let bad = |why: &str| NoteError::BadVerifierKey {
            key: text.to_string(),
            why: why.to_string(),
        };
        // The base64 part may itself contain `+`: split at most twice.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected name+keyid+key"));
        };
        if !valid_name(name) {
            return Err(bad("the key name is empty or contains a space"));
        }
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key ID must be 8 hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("the key ID is not hex"))?;
        let raw = b64_decode_strict(key_b64).ok_or_else(|| bad("the key is not base64"))?;
        if raw.first() != Some(&ED25519_TYPE) {
            return Err(bad("only Ed25519 keys (type 0x01) are supported"));
        }
        let key =
            PublicKey::from_bytes(&raw[1..]).ok_or_else(|| bad("an Ed25519 key is 32 bytes"))?;
        if key_id(name, &key) != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(Verifier {
            name: name.to_string(),
            id,
            key,
        })
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![ED25519_TYPE];
        raw.extend_from_slice(&self.key.0);
        write!(f, "{}+{:08x}+{}", self.name, self.id, b64(&raw))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub id: u32,
    /// The signature bytes (after the key ID).
    pub sig: Vec<u8>,
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// Its signatures in order.
    pub signatures: Vec<Signature>,
}

impl Note {
    /// Parses a signed note.
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_string());
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad("contains an ASCII control character"));
        }
        // The text ends at the last blank line.
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line separates the text from the signatures"))?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        if !sigs.ends_with('\n') {
            return Err(bad("the last signature line does not end in a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(bad("more than 100 signatures"));
            }
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad("a signature line must start with an em dash and a space"))?;
            let (name, sig_b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line is `— name signature`"))?;
            if !valid_name(name) || sig_b64.contains(' ') {
                return Err(bad("a signature line has a bad key name"));
            }
            let raw = b64_decode_strict(sig_b64)
                .filter(|r| r.len() >= 5)
                .ok_or_else(|| bad("a signature is not base64 of a key ID and signature"))?;
            signatures.push(Signature {
                name: name.to_string(),
                id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                sig: raw[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(bad("no signature lines"));
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// Verifies the note with one trusted key and returns its text.
    /// Signatures by other keys are ignored; a signature whose name and ID
    /// match the trusted key must verify.
    pub fn verify(&self, verifier: &Verifier) -> Result<&str, NoteError> {
        let mut verified = false;
        for s in &self.signatures {
            if s.name != verifier.name || s.id != verifier.id {
                continue;
            }
            if !verifier.key.verify(self.text.as_bytes(), &s.sig) {
                return Err(NoteError::BadSignature(format!(
                    "{}+{:08x}",
                    verifier.name, verifier.id
                )));
            }
            verified = true;
        }
        if verified {
            Ok(&self.text)
        } else {
            Err(NoteError::Unsigned(format!(
                "{}+{:08x}",
                verifier.name, verifier.id
            )))
        }
    }
}

/// Signs `text` (which must end in a newline) as a note by `name`.
pub fn sign(text: &str, name: &str, key: &SigningKey) -> Result<String, NoteError> {
    sign_all(text, &[(name, key)])
}

/// Signs `text` as a note by several keys, one signature line each, in
/// the order given.
pub fn sign_all(text: &str, signers: &[(&str, &SigningKey)]) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the text must end in a newline".into(),
        ));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed(
            "the text contains an ASCII control character".into(),
        ));
    }
    if signers.is_empty() || signers.len() > MAX_SIGNATURES {
        return Err(NoteError::Malformed(format!(
            "a note has 1 to {MAX_SIGNATURES} signatures"
        )));
    }
    let mut note = format!("{text}\n");
    for (name, key) in signers {
        let v = Verifier::new(name, key.public())?;
        let mut raw = v.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&key.sign(text.as_bytes()));
        note.push_str(&format!("{SIG_PREFIX}{name} {}\n", b64(&raw)));
    }
    Ok(note)
}

/// A tree size as notes write it: a decimal without leading zeros.
pub(crate) fn parse_size(size: &str) -> Result<u64, String> {
    let size_ok = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    size.parse()
        .ok()
        .filter(|_| size_ok)
        .ok_or_else(|| format!("tree size `{size}` is not a decimal without leading zeros"))
}

/// A transparency-log checkpoint: the tree head at one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (first line).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash at that size.
    pub root: [u8; 32],
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, each on its own line.
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, b64(&self.root))
    }

    /// Signs the checkpoint as a note under the origin as key name.
    pub fn sign(&self, key: &SigningKey) -> Result<String, NoteError> {
        sign(&self.text(), &self.origin, key)
    }

    /// Parses checkpoint text (extension lines are allowed and ignored).
    pub fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: String| NoteError::Checkpoint(m);
        let mut lines = text.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines.next().unwrap_or_default();
        let root = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("the origin line is empty".into()));
        }
        let size = parse_size(size).map_err(bad)?;
        let root: [u8; 32] = b64_decode_strict(root)
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad(format!("root hash `{root}` is not base64 of 32 bytes")))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// Parses and verifies a signed checkpoint: the signature by `verifier`
    /// and, as tlog-checkpoint asks, an origin equal to the key name.
    pub fn open(note: &str, verifier: &Verifier) -> Result<Checkpoint, NoteError> {
        let parsed = Note::parse(note)?;
        let text = parsed.verify(verifier)?;
        let cp = Checkpoint::parse_text(text)?;
        if cp.origin != verifier.name {
            return Err(NoteError::Checkpoint(format!(
                "origin `{}` is not the log's `{}`",
                cp.origin, verifier.name
            )));
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_bind_every_field() {
        let key = SigningKey::from_seed(&[7u8; 32]).unwrap();
        let v = Verifier::new("annexa.test/log", key.public()).unwrap();
        let cp = Checkpoint {
            origin: "annexa.test/log".into(),
            size: 42,
            root: [9u8; 32],
        };
        let note = cp.sign(&key).unwrap();
        assert_eq!(Checkpoint::open(&note, &v).unwrap(), cp);
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            Checkpoint::open(&forged, &v),
            Err(NoteError::BadSignature(_))
        ));
        let other = Verifier::new("annexa.test/other", key.public()).unwrap();
        assert!(matches!(
            Checkpoint::open(&note, &other),
            Err(NoteError::Unsigned(_))
        ));
        assert_eq!(Verifier::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn sizes_with_leading_zeros_are_refused() {
        let text = format!("o\n042\n{}\n", b64(&[0u8; 32]));
        assert!(Checkpoint::parse_text(&text).is_err());
        let text = format!("o\n0\n{}\n", b64(&[0u8; 32]));
        assert_eq!(Checkpoint::parse_text(&text).unwrap().size, 0);
    }
}
