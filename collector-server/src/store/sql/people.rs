//! People and their keys: registration, lookup by key, revocation and key
//! rotation. Expanded by `sql_store!` on the backend's connection type.

/// Defines the steps for connections of type `$conn`.
macro_rules! sql_people {
    ($conn:ty) => {
        /// People matching `filter` (a condition on `p`, with `$1` bound to
        /// `arg`, or every person without one), each with their keys: two
        /// queries, whatever the number of people.
        async fn people_where(
            conn: &mut $conn,
            filter: Option<(&str, &str)>,
        ) -> Result<Vec<PersonRecord>, StoreError> {
            let (condition, arg) = filter.unwrap_or(("TRUE", ""));
            let found = sqlx::query(&format!(
                "SELECT no, email, name, roles, created_at, created_by, revoked_at \
                 FROM people p WHERE {condition} ORDER BY email"
            ))
            .bind(arg)
            .fetch_all(&mut *conn)
            .await?;
            let mut keys: HashMap<i64, Vec<_>> = HashMap::new();
            for k in sqlx::query(&format!(
                "SELECT person_no, key_id, public_key, added_at, retired_at FROM person_keys \
                 WHERE person_no IN (SELECT no FROM people p WHERE {condition}) \
                 ORDER BY person_no, added_at, key_id"
            ))
            .bind(arg)
            .fetch_all(&mut *conn)
            .await?
            {
                let no: i64 = k.try_get("person_no")?;
                keys.entry(no).or_default().push(k);
            }
            found
                .iter()
                .map(|row| {
                    let no: i64 = row.try_get("no")?;
                    rows::person(row, keys.get(&no).map_or(&[][..], Vec::as_slice))
                })
                .collect()
        }

        async fn add_person_in(tx: &mut $conn, p: &NewPerson) -> Result<(), StoreError> {
            let roles = rows::roles_text(&p.roles);
            let row = sqlx::query(
                "INSERT INTO people (email, name, roles, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING no",
            )
            .bind(p.email.to_lowercase())
            .bind(&p.name)
            .bind(roles)
            .bind(&p.now)
            .bind(&p.created_by)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("{} is registered already", p.email))
                }
                other => other,
            })?;
            let no: i64 = row.try_get("no")?;
            insert_person_key(tx, no, &p.key_id, &p.public_key, &p.now).await
        }

        async fn insert_person_key(
            tx: &mut $conn,
            no: i64,
            key_id: &str,
            public_key: &str,
            now: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO person_keys (key_id, person_no, public_key, added_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(key_id)
            .bind(no)
            .bind(public_key)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("key {key_id} is registered already"))
                }
                other => other,
            })?;
            Ok(())
        }

        async fn rotate_person_key_in(
            tx: &mut $conn,
            email: &str,
            key_id: &str,
            public_key: &str,
            now: &str,
        ) -> Result<(), StoreError> {
            let row = sqlx::query("SELECT no, revoked_at FROM people WHERE email = $1")
                .bind(email.to_lowercase())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no person is registered as {email}")))?;
            let no: i64 = row.try_get("no")?;
            let revoked: Option<String> = row.try_get("revoked_at")?;
            if let Some(at) = revoked {
                return Err(StoreError::Denied(format!("{email} was revoked at {at}")));
            }
            sqlx::query(
                "UPDATE person_keys SET retired_at = $1 WHERE person_no = $2 AND retired_at IS NULL",
            )
            .bind(now)
            .bind(no)
            .execute(&mut *tx)
            .await?;
            insert_person_key(tx, no, key_id, public_key, now).await
        }
    };
}

pub(in crate::store) use sql_people;
