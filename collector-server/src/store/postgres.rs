//! The PostgreSQL store, for fleets that outgrow one collector: several
//! collectors can share one database (`database_url` in collector.toml).
//!
//! Every write that must see a settled state (an append to the evidence
//! log, a chain head, an SoA version number, a retention run) first takes
//! one transaction-scoped advisory lock, so that writers from several
//! collectors are sequenced by the database and each waits only for the
//! other's commit. Reads never take it.

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use super::sql::prelude::*;

/// PostgreSQL-backed [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key that sequences writers (any fixed number; this is
/// "annexa" in ASCII).
const WRITER_LOCK: i64 = 0x616e_6e65_7861;

/// Whether `url` names a PostgreSQL database (`postgres://` or
/// `postgresql://`).
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A database URL as messages show it: the password replaced by `***`,
/// whether it stands in the authority (`user:password@`) or in a query
/// parameter (`?password=…`, `sslpassword=…`).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<database_url that is not a URL>".into();
    };
    // The authority ends at the first `/` or `?`: an `@` in the query must
    // not be taken for the end of the credentials.
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((auth, host)) if auth.contains(':') => {
            let user = auth.split(':').next().unwrap_or("");
            format!("{user}:***@{host}")
        }
        _ => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("password")
                            || k.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{k}=***")
                    }
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Why `url` may not be used as it stands: a database on another machine
/// reached without a verified TLS connection. sqlx's default
/// (`sslmode=prefer`) falls back to plain text, and whoever can then read
/// or change that traffic holds the evidence store; the loopback address
/// and a Unix socket (no host) need no TLS.
pub fn insecure_transport(url: &str) -> Option<String> {
    // Judged on what the driver itself makes of the URL (its `host` and
    // `hostaddr` parameters, the last `sslmode`, the environment); a URL
    // it cannot parse is refused when connecting, with the driver's reason.
    let options: PgConnectOptions = url.parse().ok()?;
    let host = options.get_host();
    let local = options.get_socket().is_some()
        || host.starts_with('/')
        || matches!(host, "localhost" | "::1" | "[::1]")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback());
    let verified = matches!(
        options.get_ssl_mode(),
        PgSslMode::VerifyFull | PgSslMode::VerifyCa
    );
    (!local && !verified).then(|| {
        format!(
            "the database at {host} is not on this machine and the URL does not ask for a verified TLS connection: add ?sslmode=verify-full&sslrootcert=FILE (or verify-ca)"
        )
    })
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`,
    /// `?sslmode=require` for TLS) with at most `max_connections`, and
    /// applies migrations (under the migrator's own lock, so collectors
    /// starting together do not race).
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Broken(format!("database_url {shown}: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Broken(format!("{shown}: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Broken(format!("{shown}: migrating: {e}")))?;
        Ok(PgStore { pool })
    }

    /// The connection pool (for `migrate`).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITER_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

// Envelopes are tens of KiB each: a connection's buffers grow to its
// largest statement and stay so; 64 per statement keeps them a few MiB.
super::sql::sql_store!(PgStore, sqlx::PgConnection, envelope_rows = 64);
