//! `annexa-collector migrate --from sqlite:PATH --to postgres://…`: moves a
//! whole store from the embedded SQLite file to an empty PostgreSQL
//! database, row for row (ids, bytes and times unchanged), in one
//! PostgreSQL transaction read from one SQLite snapshot, so that a failure
//! leaves the destination empty. The evidence log is then opened on both
//! sides: the same size and the same root, or the migration is reported as
//! broken.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row, Sqlite};

use crate::store::StoreError;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// A column's kind, to read it from SQLite and bind it in PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Blob,
}

use Kind::{Blob, Int, Text};

/// How to page through a table.
enum Page {
    /// By its integer key, an identity column whose sequence must continue
    /// after the copy.
    Identity(&'static str),
    /// By its integer key.
    Key(&'static str),
    /// By offsets, in the order of these columns (its primary key): for the
    /// few tables without an integer key.
    Offset(&'static str),
}

/// A table to copy: its columns and how to page through it.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    page: Page,
}

impl Page {
    /// The integer key paged by, if any.
    fn key(&self) -> Option<&'static str> {
        match *self {
            Page::Identity(k) | Page::Key(k) => Some(k),
            Page::Offset(_) => None,
        }
    }
}

/// In foreign-key order.
const TABLES: &[Table] = &[
    Table {
        name: "agents",
        columns: &[
            ("no", Int),
            ("id", Text),
            ("key_id", Text),
            ("public_key", Text),
            ("hostname", Text),
            ("machine_id_sha256", Text),
            ("labels", Text),
            ("facts", Text),
            ("enrolled_at", Text),
            ("revoked_at", Text),
            ("next_sequence", Int),
            ("last_digest", Text),
            ("last_seen_at", Text),
            ("run_profile", Text),
        ],
        page: Page::Identity("no"),
    },
    Table {
        name: "enroll_tokens",
        columns: &[
            ("hash", Text),
            ("labels", Text),
            ("created_at", Text),
            ("expires_at", Int),
            ("used_at", Text),
            ("used_by", Text),
        ],
        page: Page::Offset("hash"),
    },
    Table {
        name: "api_tokens",
        columns: &[
            ("hash", Text),
            ("name", Text),
            ("role", Text),
            ("created_at", Text),
            ("expires_at", Int),
            ("revoked_at", Text),
        ],
        page: Page::Offset("hash"),
    },
    Table {
        name: "envelopes",
        columns: &[
            ("id", Int),
            ("agent_no", Int),
            ("sequence", Int),
            ("sha256", Text),
            ("received_at", Text),
            ("agent_time", Text),
            ("gap", Text),
            ("summary", Text),
            ("results", Text),
            ("bytes", Blob),
            ("log_index", Int),
            ("pruned_at", Text),
        ],
        page: Page::Identity("id"),
    },
    Table {
        name: "agent_keys",
        columns: &[
            ("agent_no", Int),
            ("key_id", Text),
            ("public_key", Text),
            ("until_sequence", Int),
            ("retired_at", Text),
        ],
        page: Page::Offset("agent_no, until_sequence"),
    },
    Table {
        name: "people",
        columns: &[
            ("no", Int),
            ("email", Text),
            ("name", Text),
            ("roles", Text),
            ("created_at", Text),
            ("created_by", Text),
            ("revoked_at", Text),
        ],
        page: Page::Identity("no"),
    },
    Table {
        name: "person_keys",
        columns: &[
            ("key_id", Text),
            ("person_no", Int),
            ("public_key", Text),
            ("added_at", Text),
            ("retired_at", Text),
        ],
        page: Page::Offset("key_id"),
    },
    Table {
        name: "latest_results",
        columns: &[
            ("agent_no", Int),
            ("check_id", Text),
            ("status", Text),
            ("observed", Text),
            ("since_sequence", Int),
        ],
        page: Page::Offset("agent_no, check_id"),
    },
    Table {
        name: "soa_versions",
        columns: &[
            ("version", Int),
            ("edition", Text),
            ("format", Text),
            ("source", Text),
            ("sha256", Text),
            ("imported_by", Text),
            ("imported_at", Text),
            ("comment", Text),
        ],
        page: Page::Key("version"),
    },
    Table {
        name: "conformity",
        columns: &[
            ("agent_no", Int),
            ("control_id", Text),
            ("state", Text),
            ("detail", Text),
            ("since", Text),
            ("since_sequence", Int),
            ("soa_version", Int),
        ],
        page: Page::Offset("agent_no, control_id"),
    },
    Table {
        name: "conformity_timeline",
        columns: &[
            ("id", Int),
            ("agent_no", Int),
            ("control_id", Text),
            ("state", Text),
            ("previous", Text),
            ("at", Text),
            ("cause", Text),
            ("sequence", Int),
            ("soa_version", Int),
            ("detail", Text),
        ],
        page: Page::Identity("id"),
    },
    Table {
        name: "log_entries",
        columns: &[
            ("idx", Int),
            ("agent_no", Int),
            ("sequence", Int),
            ("envelope_sha256", Text),
            ("accepted_at", Text),
            ("leaf_hash", Blob),
        ],
        page: Page::Key("idx"),
    },
    Table {
        name: "log_tiles",
        columns: &[("idx", Int), ("hash", Blob)],
        page: Page::Key("idx"),
    },
    Table {
        name: "log_checkpoints",
        columns: &[
            ("size", Int),
            ("root", Blob),
            ("note", Text),
            ("signed_at", Text),
        ],
        page: Page::Key("size"),
    },
    Table {
        name: "log_key_transitions",
        columns: &[
            ("id", Int),
            ("size", Int),
            ("note", Text),
            ("rotated_at", Text),
        ],
        page: Page::Key("id"),
    },
    Table {
        name: "retention_runs",
        columns: &[
            ("id", Int),
            ("at", Text),
            ("cutoff", Text),
            ("retention", Text),
            ("pruned", Int),
            ("up_to", Int),
        ],
        page: Page::Identity("id"),
    },
];

/// Rows per page read and per multi-row insert (envelopes are tens of KiB;
/// a page stays a few MiB).
const PAGE: i64 = 200;

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

fn read(row: &sqlx::sqlite::SqliteRow, col: &str, kind: Kind) -> Result<Value, StoreError> {
    Ok(match kind {
        Int => Value::Int(row.try_get(col)?),
        Text => Value::Text(row.try_get(col)?),
        Blob => Value::Blob(row.try_get(col)?),
    })
}

/// Rows copied per table, in copy order.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies every table of `from` into `to`, which must hold nothing yet.
pub async fn copy(from: &SqliteStore, to: &PgStore) -> Result<Copied, StoreError> {
    let mut src = from.pool().begin().await?;
    let mut dst = to.pool().begin().await?;
    for t in [
        "agents",
        "envelopes",
        "log_entries",
        "soa_versions",
        "api_tokens",
        "people",
    ] {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {t}"))
            .fetch_one(&mut *dst)
            .await?
            .try_get("n")?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "the destination already holds data ({n} rows in {t}); migrate into an empty database"
            )));
        }
    }
    let mut copied = Vec::new();
    for t in TABLES {
        let names: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        let list = names.join(", ");
        let insert = format!(
            "INSERT INTO {} ({list}){} ",
            t.name,
            if matches!(t.page, Page::Identity(_)) {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            }
        );
        let mut total = 0u64;
        let mut after: Option<i64> = None;
        loop {
            let rows = match t.page {
                Page::Identity(k) | Page::Key(k) => {
                    sqlx::query::<Sqlite>(&format!(
                        "SELECT {list} FROM {} WHERE {k} > ? ORDER BY {k} LIMIT ?",
                        t.name
                    ))
                    .bind(after.unwrap_or(i64::MIN))
                    .bind(PAGE)
                    .fetch_all(&mut *src)
                    .await?
                }
                Page::Offset(order) => {
                    sqlx::query::<Sqlite>(&format!(
                        "SELECT {list} FROM {} ORDER BY {order} LIMIT ? OFFSET ?",
                        t.name
                    ))
                    .bind(PAGE)
                    .bind(total as i64)
                    .fetch_all(&mut *src)
                    .await?
                }
            };
            if rows.is_empty() {
                break;
            }
            let mut values = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut row = Vec::with_capacity(t.columns.len());
                for (c, kind) in t.columns {
                    row.push(read(r, c, *kind)?);
                }
                values.push(row);
            }
            if let Some(k) = t.page.key() {
                after = Some(rows[rows.len() - 1].try_get(k)?);
            }
            let mut q = sqlx::QueryBuilder::<Postgres>::new(&insert);
            q.push_values(values, |mut b, row| {
                for v in row {
                    match v {
                        Value::Int(x) => b.push_bind(x),
                        Value::Text(x) => b.push_bind(x),
                        Value::Blob(x) => b.push_bind(x),
                    };
                }
            });
            let built: Query<'_, Postgres, PgArguments> = q.build();
            built.execute(&mut *dst).await?;
            total += rows.len() as u64;
        }
        if let Page::Identity(col) = t.page {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{col}'), COALESCE(MAX({col}), 0) + 1, false) FROM {0}",
                t.name
            ))
            .execute(&mut *dst)
            .await?;
        }
        copied.push((t.name, total));
    }
    dst.commit().await?;
    src.rollback().await?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    /// A table or column added by a migration and not to [`super::TABLES`]
    /// would be silently left behind by `migrate`.
    #[tokio::test]
    async fn every_table_and_column_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(&dir.path().join("c.db"))
            .await
            .unwrap();
        let tables = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let mut schema = Vec::new();
        for t in tables {
            let name: String = t.get("name");
            let columns = sqlx::query(&format!("SELECT name FROM pragma_table_info('{name}')"))
                .fetch_all(store.pool())
                .await
                .unwrap();
            let mut columns: Vec<String> = columns.iter().map(|c| c.get("name")).collect();
            columns.sort();
            schema.push((name, columns));
        }
        let mut copied: Vec<(String, Vec<String>)> = super::TABLES
            .iter()
            .map(|t| {
                let mut c: Vec<String> = t.columns.iter().map(|(c, _)| c.to_string()).collect();
                c.sort();
                (t.name.to_string(), c)
            })
            .collect();
        copied.sort();
        assert_eq!(copied, schema);
    }
}
