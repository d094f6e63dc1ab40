//! What both SQL backends share: rows turned into the store's types (the
//! column names are the same in both schemas), and the pure parts of a
//! batch append (where each agent's chain head goes).

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{
    Accepted, AgentRecord, CheckpointRow, ConformityChange, CurrentState, EnvelopeMeta, ExportRow,
    KeyTransitionRow, Labels, LatestChange, LatestRow, PersonKey, PersonRecord, PersonRole,
    SoaVersion, StoreError, StoredState, TimelineEntry, WindowEntry,
};
use annexa_checks::result::Status;
use annexa_evidence::log::RetentionRun;

/// Rows of either backend: named columns of text, integers and bytes.
pub trait AnyRow {
    /// A text column.
    fn text(&self, col: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    /// An integer column.
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    /// A byte column.
    fn blob(&self, col: &str) -> Result<Vec<u8>, StoreError>;
    /// A nullable byte column.
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<R> AnyRow for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn blob(&self, col: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(col)?)
    }
}

/// The columns [`agent`] reads.
pub const AGENT_COLUMNS: &str = "no, id, key_id, public_key, hostname, machine_id_sha256, labels, enrolled_at, revoked_at, next_sequence, last_digest, last_seen_at, run_profile";

/// The columns [`envelope_meta`] reads, from [`META_FROM`]. The acceptance
/// time is the one the envelope's log leaf binds (`log_entries`), not the
/// copy in `envelopes`, which no signature covers; only envelopes that
/// predate the log have no leaf.
pub const META_COLUMNS: &str = "e.sequence, e.sha256, COALESCE(l.accepted_at, e.received_at) AS received_at, \
     e.agent_time, e.gap, e.summary, e.results, e.log_index, e.pruned_at";

/// Envelopes with their log entries, for [`META_COLUMNS`].
pub const META_FROM: &str = "envelopes e LEFT JOIN log_entries l ON l.idx = e.log_index";

/// Labels as stored (JSON).
pub fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

/// A stored 32-byte hash.
pub fn hash32(v: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Broken(format!("{what}: not a 32-byte hash")))
}

/// An `agents` row ([`AGENT_COLUMNS`]).
pub fn agent<R: AnyRow>(row: &R) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        no: row.int("no")?,
        id: row.text("id")?,
        key_id: row.text("key_id")?,
        public_key: row.text("public_key")?,
        hostname: row.text("hostname")?,
        machine_id_sha256: row.text("machine_id_sha256")?,
        labels: serde_json::from_str(&row.text("labels")?)
            .map_err(|e| StoreError::Broken(format!("agent labels: {e}")))?,
        enrolled_at: row.text("enrolled_at")?,
        revoked_at: row.opt_text("revoked_at")?,
        next_sequence: row.int("next_sequence")? as u64,
        last_digest: row.opt_text("last_digest")?,
        last_seen_at: row.opt_text("last_seen_at")?,
        run_profile: row.opt_text("run_profile")?,
    })
}

/// An `envelopes` row's metadata ([`META_COLUMNS`]).
pub fn envelope_meta<R: AnyRow>(row: &R) -> Result<EnvelopeMeta, StoreError> {
    let parse = |col: &str| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&row.text(col)?)
            .map_err(|e| StoreError::Broken(format!("envelope {col}: {e}")))
    };
    Ok(EnvelopeMeta {
        sequence: row.int("sequence")? as u64,
        sha256: row.text("sha256")?,
        received_at: row.text("received_at")?,
        agent_time: row.opt_text("agent_time")?,
        gap: row
            .opt_text("gap")?
            .and_then(|g| serde_json::from_str(&g).ok()),
        summary: parse("summary")?,
        results: parse("results")?,
        log_index: row.opt_int("log_index")?.map(|i| i as u64),
        pruned_at: row.opt_text("pruned_at")?,
    })
}

/// A `latest_results` row.
pub fn latest<R: AnyRow>(row: &R) -> Result<LatestRow, StoreError> {
    Ok(LatestRow {
        check_id: row.text("check_id")?,
        status: status(&row.text("status")?)?,
        observed: row.opt_text("observed")?,
        since_sequence: row.int("since_sequence")? as u64,
    })
}

/// A stored check status.
fn status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s)
        .ok_or_else(|| StoreError::Broken(format!("latest_results: `{s}` is not a check status")))
}

/// A `log_checkpoints` row.
pub fn checkpoint<R: AnyRow>(row: &R) -> Result<CheckpointRow, StoreError> {
    Ok(CheckpointRow {
        size: row.int("size")? as u64,
        root: hash32(row.blob("root")?, "checkpoint root")?,
        note: row.text("note")?,
        signed_at: row.text("signed_at")?,
    })
}

/// A `log_key_transitions` row.
pub fn key_transition<R: AnyRow>(row: &R) -> Result<KeyTransitionRow, StoreError> {
    Ok(KeyTransitionRow {
        size: row.int("size")? as u64,
        note: row.text("note")?,
        rotated_at: row.text("rotated_at")?,
    })
}

/// A row of the export join (log entry, agent, envelope).
pub fn export<R: AnyRow>(row: &R) -> Result<ExportRow, StoreError> {
    let no = row.int("agent_no")?;
    let pruned_at = row.opt_text("pruned_at")?;
    let present = row.opt_int("e_agent")?;
    Ok(ExportRow {
        index: row.int("idx")? as u64,
        agent_id: row
            .opt_text("agent_id")?
            .unwrap_or_else(|| format!("#{no}")),
        key_id: row.opt_text("key_id")?.unwrap_or_default(),
        sequence: row.int("sequence")? as u64,
        envelope_sha256: row.text("envelope_sha256")?,
        accepted_at: row.text("accepted_at")?,
        leaf_hash: row.blob("leaf_hash")?,
        bytes: if present.is_some() && pruned_at.is_none() {
            row.opt_blob("bytes")?
        } else {
            None
        },
        pruned_at,
    })
}

/// A `retention_runs` row.
pub fn retention_run<R: AnyRow>(row: &R) -> Result<RetentionRun, StoreError> {
    Ok(RetentionRun {
        at: row.text("at")?,
        cutoff: row.text("cutoff")?,
        retention: row.text("retention")?,
        pruned: row.int("pruned")? as u64,
    })
}

/// A `soa_versions` row (without its source).
pub fn soa_version<R: AnyRow>(row: &R) -> Result<SoaVersion, StoreError> {
    Ok(SoaVersion {
        version: row.int("version")?,
        edition: row.text("edition")?,
        format: row.text("format")?,
        sha256: row.text("sha256")?,
        imported_by: row.text("imported_by")?,
        imported_at: row.text("imported_at")?,
        comment: row.opt_text("comment")?,
    })
}

/// Roles as stored: their names, comma-separated, in order.
pub fn roles_text(roles: &[PersonRole]) -> String {
    let mut r = roles.to_vec();
    r.sort();
    r.dedup();
    r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

/// A `people` row with its `person_keys` rows.
pub fn person<R: AnyRow>(row: &R, keys: &[R]) -> Result<PersonRecord, StoreError> {
    let roles = row
        .text("roles")?
        .split(',')
        .map(|r| {
            PersonRole::parse(r)
                .ok_or_else(|| StoreError::Broken(format!("unknown person role `{r}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PersonRecord {
        email: row.text("email")?,
        name: row.text("name")?,
        roles,
        created_at: row.text("created_at")?,
        created_by: row.text("created_by")?,
        revoked_at: row.opt_text("revoked_at")?,
        keys: keys
            .iter()
            .map(|k| {
                Ok(PersonKey {
                    key_id: k.text("key_id")?,
                    public_key: k.text("public_key")?,
                    added_at: k.text("added_at")?,
                    retired_at: k.opt_text("retired_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
    })
}

/// A `conformity` row.
pub fn stored_state<R: AnyRow>(row: &R) -> Result<StoredState, StoreError> {
    Ok(StoredState {
        agent_no: row.int("agent_no")?,
        control_id: row.text("control_id")?,
        soa_version: row.int("soa_version")?,
        current: CurrentState {
            state: row.text("state")?,
            detail: row.text("detail")?,
            since: row.text("since")?,
            since_sequence: row.opt_int("since_sequence")?.map(|s| s as u64),
        },
    })
}

/// The columns [`timeline_entry`] reads (timeline `t` joined with agents `a`).
pub const TIMELINE_COLUMNS: &str = "t.id, a.id AS host, a.hostname, t.control_id, t.state, t.previous, t.at, t.cause, t.sequence, t.soa_version, t.detail";

/// A timeline row ([`TIMELINE_COLUMNS`]).
pub fn timeline_entry<R: AnyRow>(row: &R) -> Result<TimelineEntry, StoreError> {
    Ok(TimelineEntry {
        id: row.int("id")?,
        host: row.text("host")?,
        hostname: row.text("hostname")?,
        control: row.text("control_id")?,
        state: row.text("state")?,
        previous: row.opt_text("previous")?,
        at: row.text("at")?,
        cause: row.text("cause")?,
        sequence: row.opt_int("sequence")?.map(|s| s as u64),
        soa_version: row.int("soa_version")?,
        detail: serde_json::from_str(&row.text("detail")?).unwrap_or(serde_json::Value::Null),
    })
}

/// A timeline row with its causing envelope's `e_sha256`, `e_log_index`
/// and `e_received_at` (null without one).
pub fn window_entry<R: AnyRow>(row: &R) -> Result<WindowEntry, StoreError> {
    let entry = timeline_entry(row)?;
    let envelope = match (entry.sequence, row.opt_text("e_sha256")?) {
        (Some(sequence), Some(sha)) => Some(annexa_evidence::drift::EnvelopeRef {
            sequence,
            sha256: Some(sha),
            log_index: row.opt_int("e_log_index")?.map(|i| i as u64),
            accepted_at: Some(row.text("e_received_at")?),
        }),
        _ => None,
    };
    Ok(WindowEntry { entry, envelope })
}

/// One agent's chain head after a batch.
pub struct Head<'a> {
    /// The agent.
    pub agent_no: i64,
    /// Where the batch expects the head to be.
    pub expected: u64,
    /// Where it moves to.
    pub next: u64,
    /// The digest of the agent's last envelope in the batch.
    pub digest: &'a str,
    /// When that envelope was accepted.
    pub seen: &'a str,
    /// Its run profile, if the batch brings one.
    pub profile: Option<&'a str>,
    /// The key the batch's first envelope of the agent was signed with.
    pub key_id: &'a str,
}

/// Where each agent's chain head goes in a batch (envelopes of one agent
/// are in sequence order within it).
pub fn chain_heads(batch: &[Accepted]) -> Result<Vec<Head<'_>>, StoreError> {
    let mut heads: Vec<Head<'_>> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for a in batch {
        match index.get(&a.agent_no) {
            Some(&i) => {
                let h = &mut heads[i];
                if a.previous_next != h.next {
                    return Err(StoreError::Conflict(format!(
                        "agent #{}: envelope {} follows {} in the batch but expects the head at {}",
                        a.agent_no,
                        a.sequence,
                        h.next - 1,
                        a.previous_next
                    )));
                }
                h.next = a.sequence + 1;
                h.digest = &a.sha256;
                h.seen = &a.received_at;
                if a.profile.is_some() {
                    h.profile = a.profile.as_deref();
                }
            }
            None => {
                index.insert(a.agent_no, heads.len());
                heads.push(Head {
                    agent_no: a.agent_no,
                    expected: a.previous_next,
                    next: a.sequence + 1,
                    digest: &a.sha256,
                    seen: &a.received_at,
                    profile: a.profile.as_deref(),
                    key_id: &a.key_id,
                });
            }
        }
    }
    Ok(heads)
}

/// The last of several items with the same key, in the order of those last
/// occurrences: one multi-row upsert may not touch a row twice (PostgreSQL
/// refuses it; SQLite would let the later row win, which is the same).
fn last_per_key<T, K: std::hash::Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last: HashMap<K, usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        last.insert(key(it), i);
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, it)| last.get(&key(it)) == Some(i))
        .map(|(_, it)| it)
        .collect()
}

/// A batch's latest-result changes as (agent, sequence, change), the last
/// per (agent, check).
pub fn latest_changes(batch: &[Accepted]) -> Vec<(i64, u64, &LatestChange)> {
    let all = batch
        .iter()
        .flat_map(|a| a.changes.iter().map(move |c| (a.agent_no, a.sequence, c)))
        .collect();
    last_per_key(all, |&(no, _, c)| (no, c.check_id.as_str()))
}

/// Conformity changes split into the current rows to upsert and those to
/// remove, by the last change per (agent, control).
pub fn current_rows<'a>(
    changes: &[&'a ConformityChange],
) -> (
    Vec<(&'a ConformityChange, &'a CurrentState)>,
    Vec<&'a ConformityChange>,
) {
    let last = last_per_key(changes.to_vec(), |&c| (c.agent_no, c.control_id.as_str()));
    let upserts = last
        .iter()
        .filter_map(|c| c.current.as_ref().map(|cur| (*c, cur)))
        .collect();
    let removals = last.into_iter().filter(|c| c.current.is_none()).collect();
    (upserts, removals)
}

/// Retired keys with their agent's id (`agent_id`), as [`retired_key`]
/// reads them; a query adds its `WHERE` or `ORDER BY`.
pub const RETIRED_KEYS: &str = "SELECT a.id AS agent_id, k.key_id, k.public_key, k.until_sequence, k.retired_at \
     FROM agent_keys k JOIN agents a ON a.no = k.agent_no";

/// An `agent_keys` row (`key_id, public_key, until_sequence, retired_at`).
pub fn retired_key<R: AnyRow>(row: &R) -> Result<super::RetiredKey, StoreError> {
    Ok(super::RetiredKey {
        key_id: row.text("key_id")?,
        public_key: row.text("public_key")?,
        until_sequence: row.int("until_sequence")? as u64,
        retired_at: row.text("retired_at")?,
    })
}
