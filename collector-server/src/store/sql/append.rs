//! One batch of accepted envelopes into the store, as the steps of
//! `Store::append_relog`'s one transaction: place the batch at the end of
//! the log, insert the envelopes and their log entries, move each agent's
//! chain head, retire rotated keys, update the latest results. Expanded by
//! `sql_store!` on the backend's connection type, after `sql_helpers!`.

/// Defines the steps for connections of type `$conn`, inserting at most
/// `$envelope_rows` envelopes per statement.
macro_rules! sql_append {
    ($conn:ty, envelope_rows = $envelope_rows:expr) => {
        /// Where the batch goes: the log must end exactly where the writer
        /// thinks it does, or the writer places the batch after what
        /// another writer appended (`relog`, handed their leaves, gives the
        /// log rows anew); otherwise (or rows added behind the collector)
        /// the batch fails. Returns how far the batch moved and the log
        /// rows that replace the ones staged, if it moved.
        async fn place_batch(
            tx: &mut $conn,
            batch: &[Accepted],
            relog: Relog<'_>,
        ) -> Result<(i64, Option<LogAppend>), StoreError> {
            let Some(first) = batch.first() else {
                return Ok((0, None));
            };
            let (size, first) = (log_size_on(&mut *tx).await?, first.log_index);
            if size == first {
                return Ok((0, None));
            }
            let refused = || {
                StoreError::Conflict(format!(
                    "the log holds {size} entries, this batch starts at index {first}"
                ))
            };
            if size < first || size - first > RELOG_MAX {
                return Err(refused());
            }
            let others = hashes_from(&mut *tx, &LEAVES, first, Some(size)).await?;
            if others.len() as u64 != size - first {
                return Err(StoreError::Broken(format!(
                    "log entries {first}..{size} are not all stored"
                )));
            }
            let relogged = relog(&others).ok_or_else(refused)?;
            Ok(((size - first) as i64, Some(relogged)))
        }

        /// The envelopes, bytes as received, at their log indices.
        async fn insert_envelopes(
            tx: &mut $conn,
            batch: &[Accepted],
            moved: i64,
        ) -> Result<(), StoreError> {
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
            Ok(())
        }

        /// The batch's log entries, the tiles it closes and its checkpoint.
        async fn insert_log(
            tx: &mut $conn,
            batch: &[Accepted],
            log: &LogAppend,
            moved: i64,
        ) -> Result<(), StoreError> {
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
                insert_checkpoint(&mut *tx, cp).await?;
            }
            Ok(())
        }

        /// Each agent's chain head moves once per batch, and only from where
        /// the batch expects it: a second writer on the same agent makes the
        /// batch fail whole.
        async fn move_chain_heads(tx: &mut $conn, batch: &[Accepted]) -> Result<(), StoreError> {
            let heads = chain_heads(batch)?;
            for chunk in heads.chunks(HEAD_ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "WITH v(no, expected, next, digest, seen, profile, key) AS (",
                );
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
            Ok(())
        }

        /// Key rotations, after the heads: the old key is kept, with the
        /// last sequence number it signed, so what it signed verifies.
        async fn retire_rotated_keys(
            tx: &mut $conn,
            batch: &[Accepted],
        ) -> Result<(), StoreError> {
            for a in batch {
                let Some((key_id, public_key)) = &a.rotate_to else {
                    continue;
                };
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
            Ok(())
        }

        /// The latest result of each check the batch changed.
        async fn upsert_latest(tx: &mut $conn, batch: &[Accepted]) -> Result<(), StoreError> {
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
            Ok(())
        }
    };
}

pub(in crate::store) use sql_append;
