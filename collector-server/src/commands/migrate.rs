//! `annexa-collector migrate --from sqlite:PATH --to postgres://…`: the
//! copy (`store::migrate`) checked by opening the evidence log on both
//! sides.

use std::path::Path;
use std::sync::Arc;

use super::{CommandError, log_origin};
use crate::config::CollectorConfig;
use crate::log::Log;
use crate::store::{postgres, sqlite};

/// Copies the SQLite store at `from` (`sqlite:PATH`) into the empty
/// PostgreSQL database `to`, and compares the log's size and root on
/// both sides; returns the lines to print.
pub async fn migrate(cfg: &CollectorConfig, from: &str, to: &str) -> Result<String, CommandError> {
    let path = from
        .strip_prefix("sqlite:")
        .ok_or_else(|| CommandError::Usage(format!("--from `{from}` is not sqlite:PATH")))?;
    let path = Path::new(path);
    // Opening creates a missing file: a typo must not migrate an empty store.
    if !path.is_file() {
        return Err(CommandError::Usage(format!(
            "--from {}: no such SQLite file",
            path.display()
        )));
    }
    let shown = postgres::redact(to);
    if !postgres::is_url(to) {
        return Err(CommandError::Usage(format!(
            "--to `{shown}` is not a postgres:// URL"
        )));
    }
    if let Some(why) = postgres::insecure_transport(to) {
        return Err(CommandError::Usage(format!("--to `{shown}`: {why}")));
    }
    let src = sqlite::SqliteStore::open(path).await?;
    let dst = postgres::PgStore::connect(to, 4).await?;
    let (origin, key) = log_origin(cfg, &src).await?;
    let key = Arc::new(key);
    let opened = |what: String| move |source| CommandError::Log { what, source };
    let before = Log::open(&src, key.clone(), &origin)
        .await
        .map_err(opened(format!("the evidence log in {}", path.display())))?
        .latest();
    let copied = crate::store::migrate::copy(&src, &dst).await?;
    let mut out = String::new();
    for (table, n) in &copied {
        out.push_str(&format!("{table:<20} {n} rows\n"));
    }
    let after = Log::open(&dst, key, &origin)
        .await
        .map_err(opened(format!("the evidence log in {shown}")))?
        .latest();
    let hex = annexa_evidence::encoding::hex;
    out.push_str(&format!(
        "log before: {} entries, root {}\n",
        before.size,
        hex(&before.root)
    ));
    out.push_str(&format!(
        "log after:  {} entries, root {}\n",
        after.size,
        hex(&after.root)
    ));
    if (before.size, before.root) != (after.size, after.root) {
        return Err(CommandError::Failed(format!(
            "the evidence log differs after the migration ({}, {}): do not use the destination",
            out.lines().nth_back(1).unwrap_or_default(),
            out.lines().last().unwrap_or_default()
        )));
    }
    out.push_str(&format!(
        "migrated to {shown}; set database_url to it and start the collector\n"
    ));
    Ok(out)
}
