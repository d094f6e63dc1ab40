//! The collector's evidence log: what one leaf binds, and the bundle a
//! whole log is exported as (docs/evidence-format.md, "The evidence log").

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::AgentId;
use crate::merkle::{Hash, leaf_hash};

/// The first line of every leaf entry.
pub const ENTRY_MAGIC: &str = "annexa/log-entry/v1";
/// The first line of the leaf entry of a person's statement.
pub const PERSON_ENTRY_MAGIC: &str = "annexa/log-entry/person/v1";
/// The `format` of a bundle's header.
pub const BUNDLE_FORMAT: &str = "annexa-log-bundle/1";

/// One accepted envelope as the log records it. Its leaf is
/// SHA-256(0x00 ‖ [`LogEntry::to_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The agent that signed the envelope.
    pub agent_id: AgentId,
    /// Hex SHA-256 of that agent's public key.
    pub key_id: String,
    /// The agent's sequence number of the envelope.
    pub sequence: u64,
    /// Hex SHA-256 of the envelope bytes as received.
    pub envelope_sha256: String,
    /// When the collector accepted it (RFC 3339 UTC).
    pub accepted_at: String,
}

impl LogEntry {
    /// The entry's bytes: six lines of text, each ending in a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{ENTRY_MAGIC}\nagent {}\nkey {}\nsequence {}\nenvelope sha256:{}\naccepted {}\n",
            self.agent_id, self.key_id, self.sequence, self.envelope_sha256, self.accepted_at
        )
        .into_bytes()
    }

    /// Its leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }
}

/// One accepted person statement as the log records it. Its leaf is
/// SHA-256(0x00 ‖ [`PersonLogEntry::to_bytes`]); its first line differs
/// from an agent entry's, so no bytes are a leaf of both kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonLogEntry {
    /// The signer's e-mail (lower-case), as registered.
    pub person: String,
    /// Hex SHA-256 of the signing public key.
    pub key_id: String,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// Hex SHA-256 of the envelope bytes as received.
    pub envelope_sha256: String,
    /// When the collector accepted it (RFC 3339 UTC).
    pub accepted_at: String,
}

impl PersonLogEntry {
    /// The entry's bytes: six lines of text, each ending in a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{PERSON_ENTRY_MAGIC}\nperson {}\nkey {}\ntype {}\nenvelope sha256:{}\naccepted {}\n",
            self.person, self.key_id, self.predicate_type, self.envelope_sha256, self.accepted_at
        )
        .into_bytes()
    }

    /// Its leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }
}

/// One line of a bundle (JSON Lines, in this order: the header, the
/// collector key's transitions, agents, checkpoints, entries by index,
/// unlogged envelopes, retention runs, end).
/// Entries are [`BundleEntry`] lines (`"type":"entry"`): they carry the
/// envelope as raw JSON, which an internally tagged enum cannot hold.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// What the bundle is.
    Header(Header),
    /// A rotation of the collector's key, oldest first.
    KeyTransition(KeyTransition),
    /// An enrolled agent and its key.
    Agent(AgentKey),
    /// A registered person and every key they have had.
    Person(PersonKeys),
    /// A signed checkpoint the collector stored.
    Checkpoint(StoredCheckpoint),
    /// An envelope the store holds that no leaf names.
    Unlogged(Unlogged),
    /// A run of the retention job.
    Retention(RetentionRun),
    /// The last line: counts, so that a truncated bundle is noticed.
    End(End),
}

/// The bundle's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The log's origin (checkpoint first line and key name).
    pub origin: String,
    /// When it was exported (RFC 3339 UTC).
    pub exported_at: String,
    /// Number of entries in the bundle.
    pub size: u64,
    /// The retention period in force when exported, if any (`400d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
}

/// A rotation of the collector's key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTransition {
    /// The transition note ([`crate::collector_keys::Transition`]), signed
    /// by the key it retires and the key it brings in.
    pub note: String,
    /// When the key was rotated (not covered by the signatures).
    pub rotated_at: String,
}

/// An agent's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentKey {
    /// Agent id.
    pub id: AgentId,
    /// Hex SHA-256 of the key.
    pub key_id: String,
    /// Standard base64 of the Ed25519 public key.
    pub public_key: String,
    /// Host name at enrollment.
    pub hostname: String,
    /// Enrollment time.
    pub enrolled_at: String,
    /// Revocation time, if revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// Keys it rotated away from, oldest first: `key_id` is its key from
    /// the sequence number after the last of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_keys: Vec<RetiredKey>,
}

/// A key an agent signed with before it rotated to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    /// Its key id.
    pub key_id: String,
    /// Standard base64 of the public key.
    pub public_key: String,
    /// The last sequence number it signed: the envelope that declared the
    /// next key.
    pub until_sequence: u64,
    /// When the collector accepted that envelope.
    pub retired_at: String,
}

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCheckpoint {
    /// The signed note.
    pub note: String,
    /// When it was signed (not covered by the signature).
    pub signed_at: String,
}

/// A person as a bundle lists them, before the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonKeys {
    /// E-mail (lower-case).
    pub email: String,
    /// Roles.
    pub roles: Vec<crate::person::rules::PersonRole>,
    /// When they were revoked: nothing they signed after is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Every key they have had, oldest first.
    pub keys: Vec<PersonKey>,
}

/// One key of a person, with when it was in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonKey {
    /// Hex SHA-256 of the public key.
    pub key_id: String,
    /// The Ed25519 public key, standard base64.
    pub public_key: String,
    /// Registered at.
    pub added_at: String,
    /// Replaced at, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
}

/// The `type` of an entry line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryTag {
    /// `"entry"`.
    Entry,
    /// `"person_entry"`.
    PersonEntry,
}

/// A person statement's leaf, its stored hash and its envelope.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonBundleEntry {
    /// Always `person_entry`; first, as for entries.
    #[serde(rename = "type")]
    pub kind: EntryTag,
    /// Leaf index (0-based).
    pub index: u64,
    /// The signer's e-mail.
    pub person: String,
    /// The signing key's id.
    pub key_id: String,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// Hex SHA-256 of the envelope.
    pub envelope_sha256: String,
    /// Acceptance time.
    pub accepted_at: String,
    /// The leaf hash the store holds (hex), checked against the fields.
    pub leaf_hash: String,
    /// The envelope exactly as received.
    pub envelope: Option<Box<RawValue>>,
}

impl PersonBundleEntry {
    /// The entry the leaf binds.
    pub fn entry(&self) -> PersonLogEntry {
        PersonLogEntry {
            person: self.person.clone(),
            key_id: self.key_id.clone(),
            predicate_type: self.predicate_type.clone(),
            envelope_sha256: self.envelope_sha256.clone(),
            accepted_at: self.accepted_at.clone(),
        }
    }
}

/// A leaf, its stored hash and its envelope (a line of its own type).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// Always `entry`; first, so that entry lines are told apart cheaply.
    #[serde(rename = "type")]
    pub kind: EntryTag,
    /// Leaf index (0-based).
    pub index: u64,
    /// Agent id.
    pub agent: AgentId,
    /// Agent key id.
    pub key_id: String,
    /// Sequence number.
    pub sequence: u64,
    /// Hex SHA-256 of the envelope.
    pub envelope_sha256: String,
    /// Acceptance time.
    pub accepted_at: String,
    /// The leaf hash the store holds (hex), checked against the fields.
    pub leaf_hash: String,
    /// The envelope exactly as received; absent once pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Box<RawValue>>,
    /// When the retention job removed the envelope, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<String>,
}

impl BundleEntry {
    /// The entry the leaf binds.
    pub fn entry(&self) -> LogEntry {
        LogEntry {
            agent_id: self.agent.clone(),
            key_id: self.key_id.clone(),
            sequence: self.sequence,
            envelope_sha256: self.envelope_sha256.clone(),
            accepted_at: self.accepted_at.clone(),
        }
    }
}

/// An envelope stored without a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unlogged {
    /// Agent id.
    pub agent: String,
    /// Sequence number.
    pub sequence: u64,
    /// Hex SHA-256 as stored.
    pub envelope_sha256: String,
}

/// One run of the retention job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRun {
    /// When it ran.
    pub at: String,
    /// Envelopes accepted before this were pruned.
    pub cutoff: String,
    /// The retention period (`400d`).
    pub retention: String,
    /// How many payloads it removed.
    pub pruned: u64,
}

/// The bundle's last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// Entries written.
    pub entries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_is_six_lines_of_text() {
        let e = LogEntry {
            agent_id: "ag-1".into(),
            key_id: "ab".repeat(32),
            sequence: 7,
            envelope_sha256: "cd".repeat(32),
            accepted_at: "2026-11-23T10:00:00Z".into(),
        };
        let text = String::from_utf8(e.to_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                "annexa/log-entry/v1\nagent ag-1\nkey {}\nsequence 7\nenvelope sha256:{}\naccepted 2026-11-23T10:00:00Z\n",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
        let mut pre = vec![0u8];
        pre.extend_from_slice(text.as_bytes());
        assert_eq!(
            e.leaf_hash().to_vec(),
            ring::digest::digest(&ring::digest::SHA256, &pre).as_ref()
        );
    }
}
