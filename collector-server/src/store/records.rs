//! The records the [`Store`](super::Store) takes and gives: agents, tokens,
//! accepted envelopes with their log rows, SoA versions, conformity
//! states and their timeline. Plain data; only the store's modules map
//! them to and from rows.

use std::fmt;

use annexa_checks::result::Status;
use serde::{Deserialize, Serialize};

use super::Labels;
pub use annexa_evidence::person::rules::PersonRole;

/// An API credential's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages tokens, agents and (later) the SoA.
    Admin,
    /// Reads conformity, evidence and reports.
    Auditor,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRecord {
    /// Internal number (compact keys for evidence rows).
    #[serde(skip)]
    pub no: i64,
    /// Public id.
    pub id: String,
    /// Key id of its signing key.
    pub key_id: String,
    /// Its public key, standard base64.
    pub public_key: String,
    /// Host name at enrollment.
    pub hostname: String,
    /// Hex SHA-256 of the machine identity.
    pub machine_id_sha256: String,
    /// Labels.
    pub labels: Labels,
    /// When it enrolled (RFC 3339).
    pub enrolled_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// The sequence number expected next.
    pub next_sequence: u64,
    /// Hex SHA-256 of the last accepted envelope.
    pub last_digest: Option<String>,
    /// When its last envelope was accepted.
    pub last_seen_at: Option<String>,
    /// How its newest evidence was produced (JSON of
    /// [`crate::conformity::RunProfile`]).
    #[serde(skip)]
    pub run_profile: Option<String>,
}

/// A new agent to record at enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgent {
    /// Public id to assign.
    pub id: String,
    /// Key id.
    pub key_id: String,
    /// Public key, base64.
    pub public_key: String,
    /// Host name.
    pub hostname: String,
    /// Machine identity digest.
    pub machine_id_sha256: String,
    /// Labels the agent asked for (the token's labels take precedence).
    pub labels: Labels,
    /// Inventory facts.
    pub facts: serde_json::Value,
    /// Now (RFC 3339).
    pub enrolled_at: String,
}

/// The result of an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// A new agent was recorded.
    New(AgentRecord),
    /// The key was already enrolled: the same agent (idempotent).
    Existing(AgentRecord),
}

impl Enrolled {
    /// The agent either way.
    pub fn agent(&self) -> &AgentRecord {
        match self {
            Enrolled::New(a) | Enrolled::Existing(a) => a,
        }
    }
}

/// An API token as stored (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Expiry (Unix seconds), if any.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// A person registered to sign statements (docs/security.md, "People").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonRecord {
    /// Their e-mail, lower-cased: the name statements sign with.
    pub email: String,
    /// Their name, for people.
    pub name: String,
    /// What they may state.
    pub roles: Vec<PersonRole>,
    /// When they were registered.
    pub created_at: String,
    /// Who registered them (the admin credential's name).
    pub created_by: String,
    /// When they were revoked, if they were.
    pub revoked_at: Option<String>,
    /// Every key they have had, oldest first; the last without
    /// `retired_at` is current.
    pub keys: Vec<PersonKey>,
}

impl PersonRecord {
    /// The key they sign with now, unless revoked.
    pub fn current_key(&self) -> Option<&PersonKey> {
        self.keys.iter().rev().find(|k| k.retired_at.is_none())
    }
}

/// One key of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonKey {
    /// Hex SHA-256 of the raw public key.
    pub key_id: String,
    /// The Ed25519 public key, standard base64.
    pub public_key: String,
    /// When it was registered.
    pub added_at: String,
    /// When it was replaced, if it was.
    pub retired_at: Option<String>,
}

/// A person to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    /// E-mail (stored lower-cased).
    pub email: String,
    /// Name.
    pub name: String,
    /// Roles (at least one).
    pub roles: Vec<PersonRole>,
    /// Their first key's id.
    pub key_id: String,
    /// Their first key, standard base64.
    pub public_key: String,
    /// Who registers them.
    pub created_by: String,
    /// Now.
    pub now: String,
}

/// A change of a (host, check) latest result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestChange {
    /// The check.
    pub check_id: String,
    /// New status.
    pub status: Status,
    /// New observed value.
    pub observed: Option<String>,
}

pub use annexa_evidence::log::RetiredKey;

/// An envelope the ingest path accepted, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The agent's internal number.
    pub agent_no: i64,
    /// Its sequence number.
    pub sequence: u64,
    /// The expected sequence before this one (for the store's own check).
    pub previous_next: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// RFC 3339 acceptance time.
    pub received_at: String,
    /// The key id that signed it: the agent's chain head moves only while
    /// that is still the agent's key (another collector may have rotated
    /// it).
    pub key_id: String,
    /// The agent's next key, when this envelope declares a rotation:
    /// (key id, public key).
    pub rotate_to: Option<(String, String)>,
    /// The agent's clock at delivery (RFC 3339), if it sent it.
    pub agent_time: Option<String>,
    /// Declared gap (dropped sequences), as JSON.
    pub gap: Option<String>,
    /// Summary counts, as JSON.
    pub summary: String,
    /// `[{check_id, status}]`, as JSON.
    pub results: String,
    /// Exactly the bytes received.
    pub bytes: Vec<u8>,
    /// Latest-result rows that change.
    pub changes: Vec<LatestChange>,
    /// The agent's run profile after this envelope (JSON).
    pub profile: Option<String>,
    /// Conformity changes this envelope causes.
    pub conformity: Vec<ConformityChange>,
    /// Its leaf index in the evidence log.
    pub log_index: u64,
    /// Its leaf hash.
    pub leaf_hash: [u8; 32],
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: [u8; 32],
    /// The signed note.
    pub note: String,
    /// When it was signed.
    pub signed_at: String,
}

/// A rotation of the collector's key as stored: the transition note
/// (signed by both keys) and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTransitionRow {
    /// The log size it takes effect at.
    pub size: u64,
    /// The signed note ([`annexa_evidence::collector_keys::Transition`]).
    pub note: String,
    /// When the key was rotated.
    pub rotated_at: String,
}

/// What a batch adds to the log besides its leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogAppend {
    /// Complete 256-leaf subtrees the batch closes: (tile index, root).
    pub tiles: Vec<(u64, [u8; 32])>,
    /// A checkpoint to store with the batch.
    pub checkpoint: Option<CheckpointRow>,
}

/// One log entry with its envelope, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    /// Leaf index.
    pub index: u64,
    /// Agent id (`#<number>` if the agent row is gone).
    pub agent_id: String,
    /// Agent key id as stored now.
    pub key_id: String,
    /// Sequence number.
    pub sequence: u64,
    /// Logged envelope digest.
    pub envelope_sha256: String,
    /// Logged acceptance time.
    pub accepted_at: String,
    /// Stored leaf hash.
    pub leaf_hash: Vec<u8>,
    /// The envelope bytes, unless pruned or missing.
    pub bytes: Option<Vec<u8>>,
    /// When pruned, if it was.
    pub pruned_at: Option<String>,
}

/// What one retention run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Payloads removed.
    pub pruned: u64,
    /// Whether entries older than the cutoff remain (run again).
    pub more: bool,
}

/// A new SoA version to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSoa {
    /// Its edition.
    pub edition: String,
    /// `toml` or `csv`.
    pub format: String,
    /// The file exactly as imported.
    pub source: String,
    /// Hex SHA-256 of the source.
    pub sha256: String,
    /// Who imported it (a token's name or the operator's).
    pub imported_by: String,
    /// When (RFC 3339).
    pub imported_at: String,
    /// Why, if said.
    pub comment: Option<String>,
}

/// A recorded SoA version (without its source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoaVersion {
    /// The version number (1, 2, ...).
    pub version: i64,
    /// Its edition.
    pub edition: String,
    /// `toml` or `csv`.
    pub format: String,
    /// Hex SHA-256 of the source as imported.
    pub sha256: String,
    /// Who imported it.
    pub imported_by: String,
    /// When.
    pub imported_at: String,
    /// Why, if said.
    pub comment: Option<String>,
}

/// The current state of a (host, automated control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentState {
    /// State name.
    pub state: String,
    /// Detail (JSON).
    pub detail: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// The envelope that brought it.
    pub since_sequence: Option<u64>,
}

/// A timeline entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    /// The new state.
    pub state: String,
    /// The state before, if there was one.
    pub previous: Option<String>,
    /// When (RFC 3339).
    pub at: String,
    /// `envelope`, `soa` or `freshness`.
    pub cause: String,
    /// The envelope that caused it.
    pub sequence: Option<u64>,
    /// Detail (JSON).
    pub detail: String,
}

/// A change to one (host, control): its current row (`None` removes it)
/// and, when the state changed, a timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformityChange {
    /// The host.
    pub agent_no: i64,
    /// The control.
    pub control_id: String,
    /// The SoA version that decided it.
    pub soa_version: i64,
    /// The new current row.
    pub current: Option<CurrentState>,
    /// The timeline entry.
    pub event: Option<StateEvent>,
}

/// A stored current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// The host.
    pub agent_no: i64,
    /// The control.
    pub control_id: String,
    /// The SoA version that decided it.
    pub soa_version: i64,
    /// The row.
    pub current: CurrentState,
}

/// See [`Store::append_relog`]: given the leaf hashes of the entries the
/// batch did not expect (the log now ends after them), the batch's new
/// tiles and checkpoint, or `None` to refuse.
pub type Relog<'a> = &'a mut (dyn FnMut(&[[u8; 32]]) -> Option<LogAppend> + Send);

/// The most entries another collector may have appended for a batch to be
/// placed after them under the lock; beyond it the collector takes them in
/// first ([`Store::append`] fails with a conflict).
pub const RELOG_MAX: u64 = 8192;

/// Whose rows [`Store::host_rows`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    /// Every agent (revoked ones included).
    All,
    /// The agents with envelopes at these log indices.
    InLog(std::ops::Range<u64>),
}

/// Agents with their stored conformity states and latest results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostRows {
    /// The agents (revoked ones included).
    pub agents: Vec<AgentRecord>,
    /// Their stored current states.
    pub states: Vec<StoredState>,
    /// Their latest results, by agent number.
    pub latest: Vec<(i64, LatestRow)>,
}

/// Which timeline entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineQuery {
    /// One host.
    pub agent_no: Option<i64>,
    /// One control.
    pub control: Option<String>,
    /// Entries into this state.
    pub state: Option<String>,
    /// At or after this time (RFC 3339).
    pub since: Option<String>,
    /// Entries with an id above this (paging).
    pub after_id: i64,
    /// At most this many.
    pub limit: u32,
}

/// A timeline entry as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// Position in the timeline (for paging).
    pub id: i64,
    /// Agent id.
    pub host: String,
    /// Host name.
    pub hostname: String,
    /// The control.
    pub control: String,
    /// The state entered.
    pub state: String,
    /// The state left.
    pub previous: Option<String>,
    /// When.
    pub at: String,
    /// `envelope`, `soa` or `freshness`.
    pub cause: String,
    /// The envelope that caused it.
    pub sequence: Option<u64>,
    /// The SoA version in force.
    pub soa_version: i64,
    /// Why.
    pub detail: serde_json::Value,
}

/// A timeline entry of a window, with its causing envelope as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEntry {
    /// The entry.
    pub entry: TimelineEntry,
    /// Its envelope (when the entry has a sequence and the envelope's
    /// metadata is stored).
    pub envelope: Option<annexa_evidence::drift::EnvelopeRef>,
}

/// An envelope's metadata as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvelopeMeta {
    /// Sequence number.
    pub sequence: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Acceptance time (the collector's clock).
    pub received_at: String,
    /// The agent's clock when it delivered the envelope, if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_time: Option<String>,
    /// Dropped sequences declared by the agent, if any.
    pub gap: Option<serde_json::Value>,
    /// Summary counts.
    pub summary: serde_json::Value,
    /// Per-check status.
    pub results: serde_json::Value,
    /// Its leaf index in the evidence log.
    pub log_index: Option<u64>,
    /// When the retention job removed its payload, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<String>,
}

/// A latest result row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestRow {
    /// The check.
    pub check_id: String,
    /// Its current status.
    pub status: Status,
    /// Its current observed value.
    pub observed: Option<String>,
    /// Sequence of the envelope that brought this value.
    pub since_sequence: u64,
}
