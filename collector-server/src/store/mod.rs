//! Storage behind one trait, so that SQLite (embedded, the default) and
//! PostgreSQL (a fleet of collectors) run the same contract test suite.
//!
//! Only this module knows SQL. The ingest path writes through
//! [`Store::append`], one transaction per batch (group commit).

pub mod migrate;
pub mod postgres;
mod records;
mod rows;
mod sql;
pub mod sqlite;

pub use records::*;

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Labels of a host (`env = "prod"`).
pub type Labels = BTreeMap<String, String>;

/// Errors of a store, by what the caller can do about them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with what is stored (a used token, a sequence
    /// already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is refused (an expired or unknown token, a revoked agent).
    #[error("{0}")]
    Denied(String),
    /// The store itself failed (I/O, corruption, a full disk).
    #[error("storage failure: {0}")]
    Broken(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            other => StoreError::Broken(other.to_string()),
        }
    }
}

/// The storage contract (see tests/store_contract.rs).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records an enrollment token (by hash) valid until `expires_at`.
    async fn create_enroll_token(
        &self,
        hash: &str,
        labels: &Labels,
        expires_at: i64,
        now: &str,
    ) -> Result<(), StoreError>;

    /// Enrolls an agent with a token: consumes the token and records the
    /// agent in one transaction, or returns the agent already enrolled with
    /// that key (when the token is unused or was used by that same agent).
    async fn enroll(
        &self,
        token_hash: &str,
        now_unix: i64,
        agent: NewAgent,
    ) -> Result<Enrolled, StoreError>;

    /// Records an API token (by hash).
    async fn create_api_token(
        &self,
        hash: &str,
        name: &str,
        role: Role,
        expires_at: Option<i64>,
        now: &str,
    ) -> Result<(), StoreError>;

    /// Looks up an API token by hash.
    async fn api_token(&self, hash: &str) -> Result<Option<ApiToken>, StoreError>;

    /// Revokes API tokens by name; returns how many.
    async fn revoke_api_token(&self, name: &str, now: &str) -> Result<u64, StoreError>;

    /// Registers a person with their first key; `Conflict` if the e-mail
    /// or the key is registered already.
    async fn add_person(&self, person: &NewPerson) -> Result<(), StoreError>;

    /// Every person with their keys, by e-mail.
    async fn people(&self) -> Result<Vec<PersonRecord>, StoreError>;

    /// The person who has, or once had, the key `key_id`.
    async fn person_by_key(&self, key_id: &str) -> Result<Option<PersonRecord>, StoreError>;

    /// Revokes a person: nothing they sign is accepted from now on.
    /// `NotFound` for an unknown e-mail.
    async fn revoke_person(&self, email: &str, now: &str) -> Result<(), StoreError>;

    /// Retires a person's current key and registers `key_id` in its place,
    /// in one transaction; `Conflict` if the key is registered already,
    /// `Denied` for a revoked person.
    async fn rotate_person_key(
        &self,
        email: &str,
        key_id: &str,
        public_key: &str,
        now: &str,
    ) -> Result<(), StoreError>;

    /// The agent that once signed with `key_id`, and that key, if it has
    /// rotated away from it.
    async fn retired_key(
        &self,
        key_id: &str,
    ) -> Result<Option<(AgentRecord, RetiredKey)>, StoreError>;

    /// Every retired key, by agent id, oldest first.
    async fn retired_keys(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<RetiredKey>>, StoreError>;

    /// An agent by its (current) signing key id.
    async fn agent_by_key(&self, key_id: &str) -> Result<Option<AgentRecord>, StoreError>;

    /// An agent by id.
    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError>;

    /// Every agent.
    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Revokes an agent: its evidence is refused from now on.
    async fn revoke_agent(&self, id: &str, now: &str) -> Result<(), StoreError>;

    /// Stores a batch of accepted envelopes in one transaction: the bytes,
    /// their log leaves (and the tiles and checkpoint of `log`), the
    /// agents' chain heads, and the latest-result changes. Fails whole
    /// (nothing stored) if any agent's chain head is not where the batch
    /// expects it, or if the log does not end where the batch begins.
    async fn append(&self, batch: &[Accepted], log: &LogAppend) -> Result<(), StoreError> {
        self.append_relog(batch, log, &mut |_| None).await
    }

    /// [`Store::append`], except that when the log has grown by at most
    /// [`RELOG_MAX`] entries beyond where the batch begins (another
    /// collector on the same database appended), `relog` is called under
    /// the write lock with those entries' leaf hashes. If it answers with
    /// the tiles and checkpoint of the batch placed after them, the batch
    /// is stored there (each index moved by their number); if not, the
    /// batch fails as in [`Store::append`].
    async fn append_relog(
        &self,
        batch: &[Accepted],
        log: &LogAppend,
        relog: Relog<'_>,
    ) -> Result<(), StoreError>;

    /// Number of leaves in the log.
    async fn log_size(&self) -> Result<u64, StoreError>;

    /// Stored leaf hashes of `[start, end)`, in order.
    async fn log_leaves(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>, StoreError>;

    /// The stored tile roots (level-8 subtrees) from tile `from` on, in
    /// order.
    async fn log_tiles(&self, from: u64) -> Result<Vec<[u8; 32]>, StoreError>;

    /// Every stored checkpoint, by size.
    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError>;

    /// The stored checkpoint of the largest size.
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError>;

    /// Stores a checkpoint (a second one of the same size is ignored).
    async fn record_checkpoint(&self, cp: &CheckpointRow) -> Result<(), StoreError>;

    /// The collector key's transitions, oldest first.
    async fn key_transitions(&self) -> Result<Vec<KeyTransitionRow>, StoreError>;

    /// Records a rotation of the collector's key with the retiring key's
    /// checkpoint at the same size, in one transaction; refused with
    /// `Conflict` unless the log holds exactly `t.size` entries.
    async fn record_key_transition(
        &self,
        t: &KeyTransitionRow,
        last_checkpoint: &CheckpointRow,
    ) -> Result<(), StoreError>;

    /// Log entries `[from, to)` with their envelopes, at most `limit`.
    async fn log_export(
        &self,
        from: u64,
        to: u64,
        limit: u32,
    ) -> Result<Vec<ExportRow>, StoreError>;

    /// Envelopes stored without a matching log entry.
    async fn unlogged(&self) -> Result<Vec<annexa_evidence::log::Unlogged>, StoreError>;

    /// Removes the payloads of up to `limit` envelopes accepted before
    /// `cutoff` (RFC 3339), keeping their rows and leaves; records the run.
    async fn prune(
        &self,
        cutoff: &str,
        now: &str,
        retention: &str,
        limit: u32,
    ) -> Result<Pruned, StoreError>;

    /// Every recorded retention run.
    async fn retention_runs(&self) -> Result<Vec<annexa_evidence::log::RetentionRun>, StoreError>;

    /// An envelope's metadata and bytes.
    async fn envelope(
        &self,
        agent_no: i64,
        sequence: u64,
    ) -> Result<Option<(EnvelopeMeta, Vec<u8>)>, StoreError>;

    /// Envelopes of an agent after a sequence number, ascending.
    async fn envelopes(
        &self,
        agent_no: i64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EnvelopeMeta>, StoreError>;

    /// Envelopes of an agent below a sequence number, newest first.
    async fn envelopes_before(
        &self,
        agent_no: i64,
        below: u64,
        limit: u32,
    ) -> Result<Vec<EnvelopeMeta>, StoreError>;

    /// The latest result per check of an agent.
    async fn latest(&self, agent_no: i64) -> Result<Vec<LatestRow>, StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Records an SoA as the next version; returns it.
    async fn import_soa(&self, soa: NewSoa) -> Result<SoaVersion, StoreError>;

    /// Every SoA version, oldest first.
    async fn soa_versions(&self) -> Result<Vec<SoaVersion>, StoreError>;

    /// One SoA version with its source.
    async fn soa(&self, version: i64) -> Result<Option<(SoaVersion, String)>, StoreError>;

    /// Applies conformity changes in one transaction (SoA reconciliation,
    /// freshness); envelopes carry theirs in [`Store::append`].
    ///
    /// A change with a timeline entry is applied only if the stored state
    /// is still the entry's `previous` (no row for `None`), and is left out
    /// whole otherwise: another collector on the same database moved that
    /// state first, and applying it as well would record the same
    /// transition twice or one that never happened. Returns how many
    /// changes were applied.
    async fn record_conformity(&self, changes: &[ConformityChange]) -> Result<usize, StoreError>;

    /// Agents with their stored conformity states and latest results: of
    /// the whole fleet (what a collector's conformity index is built
    /// from), or of the agents whose envelopes are at some log indices
    /// (what a collector reloads for the hosts another collector on the
    /// same database served). Latest results only `with_latest` (they
    /// are what an SoA is evaluated on; without one they go unread).
    async fn host_rows(&self, which: Hosts, with_latest: bool) -> Result<HostRows, StoreError>;

    /// Timeline entries, oldest first.
    async fn timeline(&self, q: &TimelineQuery) -> Result<Vec<TimelineEntry>, StoreError>;

    /// The timeline around a window, oldest first: for each (host,
    /// control) its last entry at or before `from` (the state then), and
    /// every entry after `from` and at or before `to`. Times are RFC 3339
    /// UTC as recorded.
    /// Each with the envelope that caused it, if one did and it is stored.
    async fn timeline_window(&self, from: &str, to: &str) -> Result<Vec<WindowEntry>, StoreError>;
}
