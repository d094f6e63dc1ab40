//! What the SQL backends share: every [`Store`] method, written once with
//! `$N` placeholders (which both PostgreSQL and sqlx's SQLite driver take)
//! and expanded per backend by [`sql_store!`]. A backend brings its
//! connection setup, its schema and `begin_write`, the transaction a write
//! that needs a settled state runs in (SQLite: `BEGIN IMMEDIATE`;
//! PostgreSQL: an advisory lock).

pub(super) mod append;
pub(super) mod helpers;
pub(super) mod people;
pub(super) mod writes;

/// The names the shared methods use; a backend module imports them all.
pub(super) mod prelude {
    pub(in crate::store) use super::super::rows::{
        self, AGENT_COLUMNS, META_COLUMNS, META_FROM, RETIRED_KEYS, TIMELINE_COLUMNS, chain_heads,
        hash32, labels_json,
    };
    pub(in crate::store) use super::super::{
        Accepted, AgentRecord, ApiToken, CheckpointRow, ConformityChange, Enrolled, EnvelopeMeta,
        ExportRow, HostRows, Hosts, KeyTransitionRow, Labels, LatestRow, LogAppend, NewAgent,
        NewPerson, NewSoa, PersonRecord, Pruned, RELOG_MAX, Relog, RetiredKey, Role, SoaVersion,
        Store, StoreError, TimelineEntry, TimelineQuery, WindowEntry,
    };
    pub(in crate::store) use super::{HashColumn, LEAVES, TILES};
    pub(in crate::store) use annexa_evidence::log::{RetentionRun, Unlogged};
    pub(in crate::store) use sqlx::Row;
    pub(in crate::store) use std::collections::HashMap;
}

/// A table of hashes by log index, as `hashes_from` reads it; the
/// names are for its queries and its error messages.
pub(super) struct HashColumn {
    pub(super) table: &'static str,
    pub(super) column: &'static str,
    /// What one row is, in "… N is missing".
    pub(super) item: &'static str,
    /// What the hash is, in "… is not 32 bytes".
    pub(super) hash: &'static str,
}

/// The leaf hashes of the evidence log's entries.
pub(super) const LEAVES: HashColumn = HashColumn {
    table: "log_entries",
    column: "leaf_hash",
    item: "log entry",
    hash: "leaf hash",
};

/// The stored roots of the log's full tiles.
pub(super) const TILES: HashColumn = HashColumn {
    table: "log_tiles",
    column: "hash",
    item: "log tile",
    hash: "tile hash",
};

/// Implements [`Store`] for `$store` (a struct with a `pool` field and an
/// async `begin_write`) on connections of type `$conn`, inserting at most
/// `$envelope_rows` envelopes per statement. Expand it in a module that
/// imports `prelude::*`.
macro_rules! sql_store {
    ($store:ty, $conn:ty, envelope_rows = $envelope_rows:expr) => {
        $crate::store::sql::helpers::sql_helpers!($conn);
        $crate::store::sql::append::sql_append!($conn, envelope_rows = $envelope_rows);
        $crate::store::sql::writes::sql_writes!($conn);
        $crate::store::sql::people::sql_people!($conn);

        #[async_trait::async_trait]
        impl Store for $store {
            async fn create_enroll_token(
                &self,
                hash: &str,
                labels: &Labels,
                expires_at: i64,
                now: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO enroll_tokens (hash, labels, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(hash)
                .bind(labels_json(labels))
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn enroll(
                &self,
                token_hash: &str,
                now_unix: i64,
                agent: NewAgent,
            ) -> Result<Enrolled, StoreError> {
                // Guessed tokens are refused on a read, before the write lock
                // every ingest needs: a stream of them cannot stall evidence.
                let known = sqlx::query("SELECT 1 FROM enroll_tokens WHERE hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                if known.is_none() {
                    return Err(StoreError::Denied("unknown enrollment token".into()));
                }
                let retired = sqlx::query("SELECT 1 FROM agent_keys WHERE key_id = $1")
                    .bind(&agent.key_id)
                    .fetch_optional(&self.pool)
                    .await?;
                if retired.is_some() {
                    return Err(StoreError::Denied(format!(
                        "key {} was retired by a key rotation; a retired key cannot enroll again",
                        agent.key_id
                    )));
                }
                let mut tx = self.begin_write().await?;
                let enrolled = enroll_in(&mut tx, token_hash, now_unix, agent).await?;
                if let Enrolled::New(_) = &enrolled {
                    tx.commit().await?;
                }
                Ok(enrolled)
            }

            async fn create_api_token(
                &self,
                hash: &str,
                name: &str,
                role: Role,
                expires_at: Option<i64>,
                now: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO api_tokens (hash, name, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(hash)
                    .bind(name)
                    .bind(role.as_str())
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn api_token(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
                let row = sqlx::query(
                    "SELECT name, role, expires_at, revoked_at FROM api_tokens WHERE hash = $1",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    let role: String = r.try_get("role")?;
                    Ok(ApiToken {
                        name: r.try_get("name")?,
                        role: Role::parse(&role)
                            .ok_or_else(|| StoreError::Broken(format!("unknown role `{role}`")))?,
                        expires_at: r.try_get("expires_at")?,
                        revoked_at: r.try_get("revoked_at")?,
                    })
                })
                .transpose()
            }

            async fn revoke_api_token(&self, name: &str, now: &str) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(name)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn add_person(&self, person: &NewPerson) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                add_person_in(&mut tx, person).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn people(&self) -> Result<Vec<PersonRecord>, StoreError> {
                people_where(&mut *self.pool.acquire().await?, None).await
            }

            async fn person_by_key(&self, key_id: &str) -> Result<Option<PersonRecord>, StoreError> {
                let found = people_where(
                    &mut *self.pool.acquire().await?,
                    Some(("no IN (SELECT person_no FROM person_keys WHERE key_id = $1)", key_id)),
                )
                .await?;
                Ok(found.into_iter().next())
            }

            async fn revoke_person(&self, email: &str, now: &str) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE people SET revoked_at = $1 WHERE email = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(email.to_lowercase())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!(
                        "no active person is registered as {email}"
                    )));
                }
                Ok(())
            }

            async fn rotate_person_key(
                &self,
                email: &str,
                key_id: &str,
                public_key: &str,
                now: &str,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                rotate_person_key_in(&mut tx, email, key_id, public_key, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn agent_by_key(&self, key_id: &str) -> Result<Option<AgentRecord>, StoreError> {
                agent_where(&mut *self.pool.acquire().await?, "key_id", key_id).await
            }

            async fn retired_key(
                &self,
                key_id: &str,
            ) -> Result<Option<(AgentRecord, RetiredKey)>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let Some(row) = sqlx::query(&format!("{RETIRED_KEYS} WHERE k.key_id = $1"))
                .bind(key_id)
                .fetch_optional(&mut *conn)
                .await?
                else {
                    return Ok(None);
                };
                let id: String = row.try_get("agent_id")?;
                let key = rows::retired_key(&row)?;
                Ok(agent_where(&mut conn, "id", &id).await?.map(|a| (a, key)))
            }

            async fn retired_keys(
                &self,
            ) -> Result<std::collections::BTreeMap<String, Vec<RetiredKey>>, StoreError> {
                let mut out: std::collections::BTreeMap<String, Vec<RetiredKey>> = Default::default();
                let found = sqlx::query(&format!("{RETIRED_KEYS} ORDER BY a.id, k.until_sequence"))
                .fetch_all(&self.pool)
                .await?;
                for row in found {
                    let id: String = row.try_get("agent_id")?;
                    out.entry(id).or_default().push(rows::retired_key(&row)?);
                }
                Ok(out)
            }

            async fn agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
                agent_where(&mut *self.pool.acquire().await?, "id", id).await
            }

            async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
                sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY no"))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(rows::agent)
                    .collect()
            }

            async fn revoke_agent(&self, id: &str, now: &str) -> Result<(), StoreError> {
                let done =
                    sqlx::query("UPDATE agents SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                        .bind(now)
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("agent {id}")));
                }
                Ok(())
            }

            async fn append_relog(
                &self,
                batch: &[Accepted],
                log: &LogAppend,
                relog: Relog<'_>,
            ) -> Result<(), StoreError> {
                // A handful of multi-row statements per batch, whatever its size:
                // per-row statements cost a round trip to SQLite's worker each.
                let mut tx = self.begin_write().await?;
                let (moved, relogged) = place_batch(&mut tx, batch, relog).await?;
                let log = relogged.as_ref().unwrap_or(log);
                insert_envelopes(&mut tx, batch, moved).await?;
                insert_log(&mut tx, batch, log, moved).await?;
                move_chain_heads(&mut tx, batch).await?;
                retire_rotated_keys(&mut tx, batch).await?;
                upsert_latest(&mut tx, batch).await?;
                let conformity: Vec<&ConformityChange> =
                    batch.iter().flat_map(|a| a.conformity.iter()).collect();
                write_conformity(&mut tx, &conformity).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn envelope(
                &self,
                agent_no: i64,
                sequence: u64,
            ) -> Result<Option<(EnvelopeMeta, Vec<u8>)>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {META_COLUMNS}, e.bytes FROM {META_FROM} WHERE e.agent_no = $1 AND e.sequence = $2"
                ))
                .bind(agent_no)
                .bind(sequence as i64)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Ok((rows::envelope_meta(&r)?, r.try_get::<Vec<u8>, _>("bytes")?)))
                    .transpose()
            }

            async fn envelopes(
                &self,
                agent_no: i64,
                after: u64,
                limit: u32,
            ) -> Result<Vec<EnvelopeMeta>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                envelope_page(&mut conn, agent_no, Page::After(after), limit).await
            }

            async fn envelopes_before(
                &self,
                agent_no: i64,
                below: u64,
                limit: u32,
            ) -> Result<Vec<EnvelopeMeta>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                envelope_page(&mut conn, agent_no, Page::Before(below), limit).await
            }

            async fn latest(&self, agent_no: i64) -> Result<Vec<LatestRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT check_id, status, observed, since_sequence FROM latest_results WHERE agent_no = $1 ORDER BY check_id",
                )
                .bind(agent_no)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(rows::latest).collect()
            }

            async fn log_size(&self) -> Result<u64, StoreError> {
                log_size_on(&mut *self.pool.acquire().await?).await
            }

            async fn log_leaves(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>, StoreError> {
                hashes_from(&mut *self.pool.acquire().await?, &LEAVES, start, Some(end)).await
            }

            async fn log_tiles(&self, from: u64) -> Result<Vec<[u8; 32]>, StoreError> {
                hashes_from(&mut *self.pool.acquire().await?, &TILES, from, None).await
            }

            async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
                let rows =
                    sqlx::query("SELECT size, root, note, signed_at FROM log_checkpoints ORDER BY size")
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(rows::checkpoint).collect()
            }

            async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
                sqlx::query(
                    "SELECT size, root, note, signed_at FROM log_checkpoints ORDER BY size DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rows::checkpoint)
                .transpose()
            }

            async fn record_checkpoint(&self, cp: &CheckpointRow) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                insert_checkpoint(&mut tx, cp).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn key_transitions(&self) -> Result<Vec<KeyTransitionRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT size, note, rotated_at FROM log_key_transitions ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(rows::key_transition).collect()
            }

            async fn record_key_transition(
                &self,
                t: &KeyTransitionRow,
                last_checkpoint: &CheckpointRow,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let size = log_size_on(&mut tx).await?;
                if size != t.size || last_checkpoint.size != t.size {
                    return Err(StoreError::Conflict(format!(
                        "the log holds {size} entries, the key transition is at size {} (is another collector running on this database?)",
                        t.size
                    )));
                }
                insert_checkpoint(&mut tx, last_checkpoint).await?;
                // Explicit ids keep the order the same in both backends.
                sqlx::query(
                    "INSERT INTO log_key_transitions (id, size, note, rotated_at) \
                     SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM log_key_transitions",
                )
                .bind(t.size as i64)
                .bind(&t.note)
                .bind(&t.rotated_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn log_export(
                &self,
                from: u64,
                to: u64,
                limit: u32,
            ) -> Result<Vec<ExportRow>, StoreError> {
                let rows = sqlx::query(
                    // The key an entry names is the agent's key at its
                    // sequence number: a retired key up to the last number
                    // it signed, the current key after.
                    "SELECT l.idx, l.agent_no, a.id AS agent_id, \
                            COALESCE((SELECT k.key_id FROM agent_keys k WHERE k.agent_no = l.agent_no AND k.until_sequence >= l.sequence \
                                      ORDER BY k.until_sequence LIMIT 1), a.key_id) AS key_id, \
                            l.sequence, l.envelope_sha256, l.accepted_at, l.leaf_hash, \
                            e.bytes, e.pruned_at, e.agent_no AS e_agent \
                     FROM log_entries l \
                     LEFT JOIN agents a ON a.no = l.agent_no \
                     LEFT JOIN envelopes e ON e.agent_no = l.agent_no AND e.sequence = l.sequence \
                     WHERE l.idx >= $1 AND l.idx < $2 ORDER BY l.idx LIMIT $3",
                )
                .bind(from as i64)
                .bind(to as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(rows::export).collect()
            }

            async fn unlogged(&self) -> Result<Vec<Unlogged>, StoreError> {
                let rows = sqlx::query(
                    "SELECT COALESCE(a.id, '#' || e.agent_no) AS agent, e.sequence, e.sha256 FROM envelopes e \
                     LEFT JOIN agents a ON a.no = e.agent_no \
                     LEFT JOIN log_entries l ON l.idx = e.log_index AND l.agent_no = e.agent_no AND l.sequence = e.sequence \
                     WHERE l.idx IS NULL ORDER BY e.id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(Unlogged {
                            agent: r.try_get("agent")?,
                            sequence: r.try_get::<i64, _>("sequence")? as u64,
                            envelope_sha256: r.try_get("sha256")?,
                        })
                    })
                    .collect()
            }

            async fn prune(
                &self,
                cutoff: &str,
                now: &str,
                retention: &str,
                limit: u32,
            ) -> Result<Pruned, StoreError> {
                let mut tx = self.begin_write().await?;
                let pruned = prune_in(&mut tx, cutoff, now, retention, limit).await?;
                tx.commit().await?;
                Ok(pruned)
            }

            async fn retention_runs(&self) -> Result<Vec<RetentionRun>, StoreError> {
                let rows =
                    sqlx::query("SELECT at, cutoff, retention, pruned FROM retention_runs ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(rows::retention_run).collect()
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn import_soa(&self, soa: NewSoa) -> Result<SoaVersion, StoreError> {
                let mut tx = self.begin_write().await?;
                let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM soa_versions")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("v")?;
                sqlx::query("INSERT INTO soa_versions (version, edition, format, source, sha256, imported_by, imported_at, comment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(next)
                    .bind(&soa.edition)
                    .bind(&soa.format)
                    .bind(&soa.source)
                    .bind(&soa.sha256)
                    .bind(&soa.imported_by)
                    .bind(&soa.imported_at)
                    .bind(&soa.comment)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(SoaVersion {
                    version: next,
                    edition: soa.edition,
                    format: soa.format,
                    sha256: soa.sha256,
                    imported_by: soa.imported_by,
                    imported_at: soa.imported_at,
                    comment: soa.comment,
                })
            }

            async fn soa_versions(&self) -> Result<Vec<SoaVersion>, StoreError> {
                sqlx::query("SELECT version, edition, format, sha256, imported_by, imported_at, comment FROM soa_versions ORDER BY version")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(rows::soa_version)
                    .collect()
            }

            async fn soa(&self, version: i64) -> Result<Option<(SoaVersion, String)>, StoreError> {
                sqlx::query("SELECT version, edition, format, sha256, imported_by, imported_at, comment, source FROM soa_versions WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| Ok((rows::soa_version(&r)?, r.try_get("source")?)))
                    .transpose()
            }

            async fn record_conformity(&self, changes: &[ConformityChange]) -> Result<usize, StoreError> {
                if changes.is_empty() {
                    // No write lock for nothing: it would queue behind appends.
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                // Under the write lock: what is stored now for the hosts
                // whose transitions this records.
                let mut hosts: Vec<i64> = changes
                    .iter()
                    .filter(|c| c.event.is_some())
                    .map(|c| c.agent_no)
                    .collect();
                hosts.sort_unstable();
                hosts.dedup();
                let mut stored: HashMap<(i64, String), String> = HashMap::new();
                for chunk in hosts.chunks(HOSTS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::new(
                        "SELECT agent_no, control_id, state FROM conformity WHERE agent_no IN (",
                    );
                    let mut list = q.separated(", ");
                    for no in chunk {
                        list.push_bind(*no);
                    }
                    q.push(")");
                    for r in q.build().fetch_all(&mut *tx).await? {
                        stored.insert((r.try_get("agent_no")?, r.try_get("control_id")?), r.try_get("state")?);
                    }
                }
                // A batch may hold several changes of one (host, control):
                // each must follow the one before it.
                let mut kept: Vec<&ConformityChange> = Vec::with_capacity(changes.len());
                for c in changes {
                    let key = (c.agent_no, c.control_id.clone());
                    if let Some(e) = &c.event
                        && stored.get(&key) != e.previous.as_ref()
                    {
                        continue;
                    }
                    match &c.current {
                        Some(cur) => stored.insert(key, cur.state.clone()),
                        None => stored.remove(&key),
                    };
                    kept.push(c);
                }
                write_conformity(&mut tx, &kept).await?;
                tx.commit().await?;
                Ok(kept.len())
            }

            async fn host_rows(&self, which: Hosts, with_latest: bool) -> Result<HostRows, StoreError> {
                // The same reads, for every agent or those in a log range.
                let range = match which {
                    Hosts::All => None,
                    Hosts::InLog(r) => Some((r.start as i64, r.end as i64)),
                };
                let filtered = |column: &str| match range {
                    None => String::new(),
                    Some(_) => format!(
                        " WHERE {column} IN (SELECT DISTINCT agent_no FROM log_entries WHERE idx >= $1 AND idx < $2)"
                    ),
                };
                let mut conn = self.pool.acquire().await?;
                let agents = fetch_mapped(
                    &mut conn,
                    &format!("SELECT {AGENT_COLUMNS} FROM agents{}", filtered("no")),
                    range,
                    rows::agent,
                )
                .await?;
                let states = fetch_mapped(
                    &mut conn,
                    &format!(
                        "SELECT agent_no, control_id, state, detail, since, since_sequence, soa_version FROM conformity{}",
                        filtered("agent_no")
                    ),
                    range,
                    rows::stored_state,
                )
                .await?;
                let latest = if with_latest {
                    fetch_mapped(
                        &mut conn,
                        &format!(
                            "SELECT agent_no, check_id, status, observed, since_sequence FROM latest_results{}",
                            filtered("agent_no")
                        ),
                        range,
                        |r| Ok((r.try_get("agent_no")?, rows::latest(r)?)),
                    )
                    .await?
                } else {
                    Vec::new()
                };
                Ok(HostRows { agents, states, latest })
            }

            async fn timeline(&self, q: &TimelineQuery) -> Result<Vec<TimelineEntry>, StoreError> {
                let mut b = sqlx::QueryBuilder::new(format!(
                    "SELECT {TIMELINE_COLUMNS} FROM conformity_timeline t JOIN agents a ON a.no = t.agent_no WHERE t.id > "
                ));
                b.push_bind(q.after_id);
                if let Some(no) = q.agent_no {
                    b.push(" AND t.agent_no = ").push_bind(no);
                }
                if let Some(c) = &q.control {
                    b.push(" AND t.control_id = ").push_bind(c.clone());
                }
                if let Some(s) = &q.state {
                    b.push(" AND t.state = ").push_bind(s.clone());
                }
                if let Some(s) = &q.since {
                    b.push(" AND t.at >= ").push_bind(s.clone());
                }
                b.push(" ORDER BY t.id LIMIT ").push_bind(q.limit as i64);
                let rows = b.build().fetch_all(&self.pool).await?;
                rows.iter().map(rows::timeline_entry).collect()
            }

            async fn timeline_window(
                &self,
                from: &str,
                to: &str,
            ) -> Result<Vec<WindowEntry>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {TIMELINE_COLUMNS}, e.sha256 AS e_sha256, e.log_index AS e_log_index, COALESCE(l.accepted_at, e.received_at) AS e_received_at \
                     FROM conformity_timeline t JOIN agents a ON a.no = t.agent_no \
                     LEFT JOIN envelopes e ON e.agent_no = t.agent_no AND e.sequence = t.sequence \
                     LEFT JOIN log_entries l ON l.idx = e.log_index \
                     WHERE t.id IN (SELECT MAX(id) FROM conformity_timeline WHERE at <= $1 GROUP BY agent_no, control_id) \
                        OR (t.at > $1 AND t.at <= $2) \
                     ORDER BY t.id"
                ))
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(rows::window_entry).collect()
            }
        }
    };
}

pub(super) use sql_store;
