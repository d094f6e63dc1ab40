//! The private helpers every backend's [`Store`](crate::store::Store)
//! methods share: statement sizes, conformity writes, single lookups and
//! the log's hash tables. Expanded by `sql_store!` on the backend's
//! connection type.

/// Defines the helpers for connections of type `$conn`.
macro_rules! sql_helpers {
    ($conn:ty) => {
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

        /// Where a page of an agent's envelopes starts.
        enum Page {
            /// After this sequence number, oldest first.
            After(u64),
            /// Before this sequence number, newest first.
            Before(u64),
        }

        /// Up to `limit` of an agent's envelopes' metadata from `page`.
        async fn envelope_page(
            conn: &mut $conn,
            agent_no: i64,
            page: Page,
            limit: u32,
        ) -> Result<Vec<EnvelopeMeta>, StoreError> {
            let (cmp, order, bound) = match page {
                Page::After(s) => (">", "", s),
                Page::Before(s) => ("<", " DESC", s),
            };
            sqlx::query(&format!(
                "SELECT {META_COLUMNS} FROM {META_FROM} WHERE e.agent_no = $1 AND e.sequence {cmp} $2 ORDER BY e.sequence{order} LIMIT $3"
            ))
            .bind(agent_no)
            .bind(bound.min(i64::MAX as u64) as i64)
            .bind(limit as i64)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(rows::envelope_meta)
            .collect()
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
    };
}

pub(in crate::store) use sql_helpers;
