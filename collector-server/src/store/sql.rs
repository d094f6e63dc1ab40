//! What the SQL backends share: every [`Store`] method, written once with
//! `$N` placeholders (which both PostgreSQL and sqlx's SQLite driver take)
//! and expanded per backend by [`sql_store!`]. A backend brings its
//! connection setup, its schema and `begin_write`, the transaction a write
//! that needs a settled state runs in (SQLite: `BEGIN IMMEDIATE`;
//! PostgreSQL: an advisory lock).

/// The names the shared methods use; a backend module imports them all.
pub(super) mod prelude {
    pub(in crate::store) use super::super::rows::{
        self, AGENT_COLUMNS, META_COLUMNS, META_FROM, RETIRED_KEYS, TIMELINE_COLUMNS, chain_heads, hash32,
        labels_json,
    };
    pub(in crate::store) use super::super::{
        Accepted, AgentRecord, ApiToken, CheckpointRow, ConformityChange, Enrolled, EnvelopeMeta,
        ExportRow, HostRows, Hosts, KeyTransitionRow, Labels, LatestRow, LogAppend, NewAgent,
        NewSoa, Pruned, RELOG_MAX, Relog, RetiredKey, Role, SoaVersion, Store, StoreError,
        TimelineEntry, TimelineQuery, WindowEntry,
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
        // Rows per multi-row statement, each under SQLite's limit of 32766
        // bound parameters (PostgreSQL's is 65535).
        const HEAD_ROWS_PER_STATEMENT: usize = 1024;
        const LATEST_ROWS_PER_STATEMENT: usize = 2048;
        const LOG_ROWS_PER_STATEMENT: usize = 4096;

        const CONFORMITY_ROWS_PER_STATEMENT: usize = 2048;
        const HOSTS_PER_STATEMENT: usize = 4096;

        /// Writes conformity changes inside a transaction: current rows upserted
        /// or removed, timeline entries appended.
        async fn write_conformity(
            tx: &mut $conn,
            changes: &[&ConformityChange],
        ) -> Result<(), StoreError> {
            let (upserts, removals) = rows::current_rows(changes);
            for chunk in upserts.chunks(CONFORMITY_ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO conformity (agent_no, control_id, state, detail, since, since_sequence, soa_version) ",
                );
                q.push_values(chunk, |mut row, (c, cur)| {
                    row.push_bind(c.agent_no)
                        .push_bind(&c.control_id)
                        .push_bind(&cur.state)
                        .push_bind(&cur.detail)
                        .push_bind(&cur.since)
                        .push_bind(cur.since_sequence.map(|s| s as i64))
                        .push_bind(c.soa_version);
                });
                q.push(
                    " ON CONFLICT (agent_no, control_id) DO UPDATE SET state = excluded.state, detail = excluded.detail, since = excluded.since, since_sequence = excluded.since_sequence, soa_version = excluded.soa_version",
                );
                q.build().execute(&mut *tx).await?;
            }
            for c in removals {
                sqlx::query("DELETE FROM conformity WHERE agent_no = $1 AND control_id = $2")
                    .bind(c.agent_no)
                    .bind(&c.control_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let events: Vec<(&ConformityChange, &super::StateEvent)> = changes
                .iter()
                .filter_map(|c| c.event.as_ref().map(|e| (*c, e)))
                .collect();
            for chunk in events.chunks(CONFORMITY_ROWS_PER_STATEMENT / 2) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO conformity_timeline (agent_no, control_id, state, previous, at, cause, sequence, soa_version, detail) ",
                );
                q.push_values(chunk, |mut row, (c, e)| {
                    row.push_bind(c.agent_no)
                        .push_bind(&c.control_id)
                        .push_bind(&e.state)
                        .push_bind(&e.previous)
                        .push_bind(&e.at)
                        .push_bind(&e.cause)
                        .push_bind(e.sequence.map(|s| s as i64))
                        .push_bind(c.soa_version)
                        .push_bind(&e.detail);
                });
                q.build().execute(&mut *tx).await?;
            }
            Ok(())
        }

        /// The agent whose `column` (`id` or `key_id`) is `value`.
        async fn agent_where(
            conn: &mut $conn,
            column: &str,
            value: &str,
        ) -> Result<Option<AgentRecord>, StoreError> {
            sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE {column} = $1"))
                .bind(value)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| rows::agent(&r))
                .transpose()
        }

        /// The rows of `sql` (binding `range` as `$1` and `$2` when given),
        /// each through `map`.
        async fn fetch_mapped<T>(
            conn: &mut $conn,
            sql: &str,
            range: Option<(i64, i64)>,
            map: impl Fn(&<<$conn as sqlx::Connection>::Database as sqlx::Database>::Row) -> Result<T, StoreError>,
        ) -> Result<Vec<T>, StoreError> {
            let mut q = sqlx::query(sql);
            if let Some((start, end)) = range {
                q = q.bind(start).bind(end);
            }
            q.fetch_all(&mut *conn).await?.iter().map(map).collect()
        }

        /// The evidence log's size: one past its highest stored index.
        async fn log_size_on(conn: &mut $conn) -> Result<u64, StoreError> {
            let n: i64 = sqlx::query("SELECT COALESCE(MAX(idx) + 1, 0) AS n FROM log_entries")
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
            Ok(n as u64)
        }

        /// The hashes of `of` at indices `start..end` (to the last without
        /// `end`), in order; a gap is [`StoreError::Broken`].
        async fn hashes_from(
            conn: &mut $conn,
            of: &HashColumn,
            start: u64,
            end: Option<u64>,
        ) -> Result<Vec<[u8; 32]>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT idx, {} AS hash FROM {} WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                of.column, of.table
            ))
            .bind(start as i64)
            .bind(end.map_or(i64::MAX, |e| e as i64))
            .fetch_all(&mut *conn)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for (k, r) in rows.iter().enumerate() {
                let want = start + k as u64;
                if r.try_get::<i64, _>("idx")? as u64 != want {
                    return Err(StoreError::Broken(format!("{} {want} is missing", of.item)));
                }
                out.push(hash32(r.try_get("hash")?, of.hash)?);
            }
            Ok(out)
        }

        async fn insert_checkpoint(
            tx: &mut $conn,
            cp: &CheckpointRow,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
            )
            .bind(cp.size as i64)
            .bind(&cp.root[..])
            .bind(&cp.note)
            .bind(&cp.signed_at)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }

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
                let token =
                    sqlx::query("SELECT labels, expires_at, used_by FROM enroll_tokens WHERE hash = $1")
                        .bind(token_hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                let existing = agent_where(&mut tx, "key_id", &agent.key_id).await?;
                let Some(token) = token else {
                    return Err(StoreError::Denied("unknown enrollment token".into()));
                };
                let used_by: Option<String> = token.try_get("used_by")?;
                let expires_at: i64 = token.try_get("expires_at")?;
                if let Some(a) = existing {
                    if a.revoked_at.is_some() {
                        return Err(StoreError::Denied(format!(
                            "agent {} was revoked; a revoked key cannot enroll again",
                            a.id
                        )));
                    }
                    // Re-enrolling with the same key is idempotent: with the token
                    // it used, or with any token still valid (which stays unused).
                    let same = used_by.as_deref() == Some(a.id.as_str());
                    if same || (used_by.is_none() && expires_at > now_unix) {
                        return Ok(Enrolled::Existing(a));
                    }
                }
                if used_by.is_some() {
                    return Err(StoreError::Denied("enrollment token already used".into()));
                }
                if expires_at <= now_unix {
                    return Err(StoreError::Denied("enrollment token expired".into()));
                }
                let token_labels: String = token.try_get("labels")?;
                let token_labels: Labels = serde_json::from_str(&token_labels).unwrap_or_default();
                let mut labels = agent.labels.clone();
                labels.extend(token_labels);
                sqlx::query(
                    "INSERT INTO agents (id, key_id, public_key, hostname, machine_id_sha256, labels, facts, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&agent.id)
                .bind(&agent.key_id)
                .bind(&agent.public_key)
                .bind(&agent.hostname)
                .bind(&agent.machine_id_sha256)
                .bind(labels_json(&labels))
                .bind(agent.facts.to_string())
                .bind(&agent.enrolled_at)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query(
                    "UPDATE enroll_tokens SET used_at = $1, used_by = $2 WHERE hash = $3 AND used_by IS NULL",
                )
                .bind(&agent.enrolled_at)
                .bind(&agent.id)
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict(
                        "enrollment token used concurrently".into(),
                    ));
                }
                let record = agent_where(&mut tx, "id", &agent.id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("agent {}", agent.id)))?;
                tx.commit().await?;
                Ok(Enrolled::New(record))
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
                // The log must end exactly where this writer thinks it does,
                // or the writer must place the batch after what another
                // writer appended; otherwise (or rows added behind the
                // collector) the batch fails.
                let mut moved = 0i64;
                let relogged;
                let mut log = log;
                if let Some(first) = batch.first() {
                        let (size, first) = (log_size_on(&mut tx).await?, first.log_index);
                    if size != first {
                        let refused = || StoreError::Conflict(format!(
                            "the log holds {size} entries, this batch starts at index {first}"
                        ));
                        if size < first || size - first > RELOG_MAX {
                            return Err(refused());
                        }
                        let others = hashes_from(&mut tx, &LEAVES, first, Some(size)).await?;
                        if others.len() as u64 != size - first {
                            return Err(StoreError::Broken(format!(
                                "log entries {first}..{size} are not all stored"
                            )));
                        }
                        relogged = relog(&others).ok_or_else(refused)?;
                        log = &relogged;
                        moved = (size - first) as i64;
                    }
                }
                for chunk in batch.chunks($envelope_rows) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO envelopes (agent_no, sequence, sha256, received_at, agent_time, gap, summary, results, bytes, log_index) ",
                    );
                    q.push_values(chunk, |mut row, a| {
                        row.push_bind(a.agent_no)
                            .push_bind(a.sequence as i64)
                            .push_bind(&a.sha256)
                            .push_bind(&a.received_at)
                            .push_bind(&a.agent_time)
                            .push_bind(&a.gap)
                            .push_bind(&a.summary)
                            .push_bind(&a.results)
                            .push_bind(&a.bytes)
                            .push_bind(a.log_index as i64 + moved);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                for chunk in batch.chunks(LOG_ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO log_entries (idx, agent_no, sequence, envelope_sha256, accepted_at, leaf_hash) ",
                    );
                    q.push_values(chunk, |mut row, a| {
                        row.push_bind(a.log_index as i64 + moved)
                            .push_bind(a.agent_no)
                            .push_bind(a.sequence as i64)
                            .push_bind(&a.sha256)
                            .push_bind(&a.received_at)
                            .push_bind(&a.leaf_hash[..]);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                for (idx, hash) in &log.tiles {
                    sqlx::query("INSERT INTO log_tiles (idx, hash) VALUES ($1, $2)")
                        .bind(*idx as i64)
                        .bind(&hash[..])
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(cp) = &log.checkpoint {
                    insert_checkpoint(&mut tx, cp).await?;
                }
                // Each agent's chain head moves once per batch, and only from where
                // the batch expects it: a second writer on the same agent makes the
                // batch fail whole.
                let heads = chain_heads(batch)?;
                for chunk in heads.chunks(HEAD_ROWS_PER_STATEMENT) {
                    let mut q =
                        sqlx::QueryBuilder::new("WITH v(no, expected, next, digest, seen, profile, key) AS (");
                    q.push_values(chunk, |mut row, h| {
                        row.push_bind(h.agent_no)
                            .push_bind(h.expected as i64)
                            .push_bind(h.next as i64)
                            .push_bind(h.digest)
                            .push_bind(h.seen)
                            .push_bind(h.profile)
                            .push_bind(h.key_id);
                    });
                    q.push(
                        ") UPDATE agents SET next_sequence = v.next, last_digest = v.digest, last_seen_at = v.seen, run_profile = COALESCE(v.profile, agents.run_profile) \
                         FROM v WHERE agents.no = v.no AND agents.next_sequence = v.expected AND agents.revoked_at IS NULL AND agents.key_id = v.key",
                    );
                    let moved = q.build().execute(&mut *tx).await?;
                    if moved.rows_affected() != chunk.len() as u64 {
                        return Err(StoreError::Conflict(format!(
                            "{} of {} agents' chain heads were not where this batch expected them",
                            chunk.len() as u64 - moved.rows_affected(),
                            chunk.len()
                        )));
                    }
                }
                // Key rotations, after the heads: the old key is kept, with the
                // last sequence number it signed, so what it signed verifies.
                for a in batch {
                    let Some((key_id, public_key)) = &a.rotate_to else { continue };
                    sqlx::query(
                        "INSERT INTO agent_keys (agent_no, key_id, public_key, until_sequence, retired_at) \
                         SELECT no, key_id, public_key, $2, $3 FROM agents WHERE no = $1",
                    )
                    .bind(a.agent_no)
                    .bind(a.sequence as i64)
                    .bind(&a.received_at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE agents SET key_id = $2, public_key = $3 WHERE no = $1")
                        .bind(a.agent_no)
                        .bind(key_id)
                        .bind(public_key)
                        .execute(&mut *tx)
                        .await?;
                }
                let changes = rows::latest_changes(batch);
                for chunk in changes.chunks(LATEST_ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO latest_results (agent_no, check_id, status, observed, since_sequence) ",
                    );
                    q.push_values(chunk, |mut row, (no, seq, c)| {
                        row.push_bind(*no)
                            .push_bind(&c.check_id)
                            .push_bind(c.status.as_str())
                            .push_bind(&c.observed)
                            .push_bind(*seq as i64);
                    });
                    q.push(
                        " ON CONFLICT (agent_no, check_id) DO UPDATE SET status = excluded.status, observed = excluded.observed, since_sequence = excluded.since_sequence",
                    );
                    q.build().execute(&mut *tx).await?;
                }
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
                sqlx::query(&format!("SELECT {META_COLUMNS} FROM {META_FROM} WHERE e.agent_no = $1 AND e.sequence > $2 ORDER BY e.sequence LIMIT $3"))
                    .bind(agent_no)
                    .bind(after as i64)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(rows::envelope_meta)
                    .collect()
            }

            async fn envelopes_before(
                &self,
                agent_no: i64,
                below: u64,
                limit: u32,
            ) -> Result<Vec<EnvelopeMeta>, StoreError> {
                sqlx::query(&format!("SELECT {META_COLUMNS} FROM {META_FROM} WHERE e.agent_no = $1 AND e.sequence < $2 ORDER BY e.sequence DESC LIMIT $3"))
                    .bind(agent_no)
                    .bind(below.min(i64::MAX as u64) as i64)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(rows::envelope_meta)
                    .collect()
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
                let start: i64 = sqlx::query("SELECT COALESCE(MAX(up_to), 0) AS s FROM retention_runs")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("s")?;
                // Leaves are in acceptance order: walk from where the last run
                // stopped, up to the first entry not older than the cutoff.
                let rows = sqlx::query(
                    "SELECT idx, agent_no, sequence, accepted_at FROM log_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
                )
                .bind(start)
                .bind(limit as i64 + 1)
                .fetch_all(&mut *tx)
                .await?;
                let mut up_to = start;
                let mut pruned = 0u64;
                let mut more = false;
                for (k, r) in rows.iter().enumerate() {
                    let at: String = r.try_get("accepted_at")?;
                    if at.as_str() >= cutoff {
                        break;
                    }
                    if k == limit as usize {
                        more = true;
                        break;
                    }
                    let done = sqlx::query(
                        // An envelope that declared a key rotation is kept: it is
                        // what proves the agent's next key was its own.
                        "UPDATE envelopes SET bytes = $1, pruned_at = $2 WHERE agent_no = $3 AND sequence = $4 AND pruned_at IS NULL \
                         AND NOT EXISTS (SELECT 1 FROM agent_keys k WHERE k.agent_no = $3 AND k.until_sequence = $4)",
                    )
                    .bind(Vec::<u8>::new())
                    .bind(now)
                    .bind(r.try_get::<i64, _>("agent_no")?)
                    .bind(r.try_get::<i64, _>("sequence")?)
                    .execute(&mut *tx)
                    .await?;
                    pruned += done.rows_affected();
                    up_to = r.try_get::<i64, _>("idx")? + 1;
                }
                if up_to > start {
                    sqlx::query(
                        "INSERT INTO retention_runs (at, cutoff, retention, pruned, up_to) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(now)
                    .bind(cutoff)
                    .bind(retention)
                    .bind(pruned as i64)
                    .bind(up_to)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Pruned { pruned, more })
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
