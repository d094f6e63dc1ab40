//! The embedded store: one SQLite file in the data directory, WAL mode,
//! `synchronous = FULL` so that a receipt is never signed for a batch a power
//! cut could lose (group commit keeps that to one fsync per batch).
//!
//! Write transactions begin IMMEDIATE: a deferred transaction that reads and
//! then writes cannot upgrade its lock under WAL while another connection
//! writes (SQLITE_BUSY_SNAPSHOT), whereas IMMEDIATE waits its turn.

use std::path::Path;
use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::prelude::*;

/// SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// The connection pool (for `migrate`).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Broken(format!("{}: {e}", path.display())))?
            .create_if_missing(true)
            // Envelopes are tens of KiB: large pages mean fewer WAL frames
            // (one write each) per envelope. Takes effect on a new database.
            .page_size(32768)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A commit that failed because the disk was full leaves its
            // connection unusable: SQLite rolled the transaction back by
            // itself, and the driver's own rollback then fails on every use.
            // Such a connection is closed when released, not reused, so that
            // the store works again as soon as space returns.
            .after_release(|conn, _| {
                Box::pin(async move {
                    // A deferred BEGIN takes no lock; the driver refuses it
                    // (rather than nesting a savepoint) only on such a
                    // connection.
                    match sqlx::Connection::begin_with(conn, "BEGIN").await {
                        Ok(tx) => Ok(tx.rollback().await.is_ok()),
                        Err(_) => Ok(false),
                    }
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Broken(format!("{}: {e}", path.display())))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Broken(format!("{}: migrating: {e}", path.display())))?;
        Ok(SqliteStore { pool })
    }
}

super::sql::sql_store!(SqliteStore, sqlx::SqliteConnection, envelope_rows = 512);
