//! The write transactions besides a batch of evidence, as steps that run
//! inside the transaction `begin_write` opened: enrolling an agent with a
//! token, and one slice of retention. Expanded by `sql_store!` on the
//! backend's connection type, after `sql_helpers!`.

/// Defines the steps for connections of type `$conn`.
macro_rules! sql_writes {
    ($conn:ty) => {
        /// Enrolls `agent` with the token whose hash is `token_hash`, or
        /// finds it enrolled already with the same key (idempotent); the
        /// caller commits a new enrollment.
        async fn enroll_in(
            tx: &mut $conn,
            token_hash: &str,
            now_unix: i64,
            agent: NewAgent,
        ) -> Result<Enrolled, StoreError> {
            let token =
                sqlx::query("SELECT labels, expires_at, used_by FROM enroll_tokens WHERE hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
            let existing = agent_where(&mut *tx, "key_id", &agent.key_id).await?;
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
            let record = agent_where(&mut *tx, "id", &agent.id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("agent {}", agent.id)))?;
            Ok(Enrolled::New(record))
        }

        /// Removes the payloads of up to `limit` envelopes accepted before
        /// `cutoff`, from where the last run stopped, and records the run.
        async fn prune_in(
            tx: &mut $conn,
            cutoff: &str,
            now: &str,
            retention: &str,
            limit: u32,
        ) -> Result<Pruned, StoreError> {
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
            Ok(Pruned { pruned, more })
        }
    };
}

pub(in crate::store) use sql_writes;
