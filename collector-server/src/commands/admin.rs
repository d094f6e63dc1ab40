//! `annexa-collector init`, `token create`, `api-token create|revoke`,
//! `agent list|revoke` and `key rotate`.

use std::fmt::Write as _;

use super::CommandError;
use crate::config::CollectorConfig;
use crate::datadir::{self, DataDir};
use crate::store::{Labels, Role};
use crate::{clock, open_store};

/// Prepares the data directory (keys, private CA for `names`, or none
/// with `make_tls` false) and the store; says what agents enroll with.
pub async fn init(
    cfg: &CollectorConfig,
    names: Vec<String>,
    make_tls: bool,
) -> Result<String, CommandError> {
    let names = if names.is_empty() {
        datadir::default_names()
    } else {
        names
    };
    let dir = DataDir::new(&cfg.data_dir);
    let done = datadir::init(&dir, &names, make_tls)?;
    open_store(cfg).await?;
    let mut out = String::new();
    let _ = writeln!(out, "data directory: {}", cfg.data_dir.display());
    let _ = writeln!(out, "receipt key id: {}", done.signing_key_id);
    if let Some(fp) = done.ca_fingerprint {
        let _ = writeln!(out, "CA certificate: {}", dir.ca_cert().display());
        let _ = writeln!(out, "CA fingerprint: {fp}");
        let _ = writeln!(
            out,
            "agents enroll with: annexa enroll --server https://{}:{} --token-file TOKEN_FILE --ca-fingerprint {fp}",
            names.first().map(String::as_str).unwrap_or("localhost"),
            cfg.listen.port()
        );
    }
    if !done.created {
        out.push_str("(everything already existed; nothing was changed)\n");
    }
    Ok(out)
}

/// A single-use enrollment token valid for `ttl` (`1h`, `30m`…) whose
/// agents get `labels`.
pub async fn enroll_token(
    cfg: &CollectorConfig,
    ttl: &str,
    labels: &Labels,
) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let ttl = clock::parse_ttl(ttl).map_err(CommandError::Usage)?;
    let (token, _) = crate::create_enroll_token(store.as_ref(), ttl, labels).await?;
    Ok(format!("{token}\n"))
}

/// A new API token named `name` with `role`, valid for `ttl` or until
/// revoked.
pub async fn api_token(
    cfg: &CollectorConfig,
    name: &str,
    role: Role,
    ttl: Option<&str>,
) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let ttl = ttl
        .map(clock::parse_ttl)
        .transpose()
        .map_err(CommandError::Usage)?;
    let token = crate::create_api_token(store.as_ref(), name, role, ttl).await?;
    Ok(format!("{token}\n"))
}

/// Revokes every active API token named `name`.
pub async fn revoke_api_token(cfg: &CollectorConfig, name: &str) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let n = store.revoke_api_token(name, &clock::now_rfc3339()).await?;
    if n == 0 {
        return Err(CommandError::Usage(format!(
            "no active API token is named `{name}`"
        )));
    }
    Ok(format!("revoked {n} token(s) named `{name}`\n"))
}

/// Every enrolled agent, one line each.
pub async fn agents(cfg: &CollectorConfig) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let mut out = String::new();
    for a in store.agents().await? {
        let state = if a.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        let _ = writeln!(
            out,
            "{}  {:<24} {:<8} next={} last_seen={}",
            a.id,
            a.hostname,
            state,
            a.next_sequence,
            a.last_seen_at.as_deref().unwrap_or("never")
        );
    }
    Ok(out)
}

/// Revokes an agent: its evidence is refused from its next request.
pub async fn revoke_agent(cfg: &CollectorConfig, id: &str) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    store
        .revoke_agent(id, &clock::now_rfc3339())
        .await
        .map_err(|e| CommandError::Failed(format!("revoking {id}: {e}")))?;
    Ok(format!(
        "agent {id} revoked; a running collector refuses its evidence from its next request\n"
    ))
}

/// Rotates the collector's key (the collector must be stopped).
pub async fn rotate_key(cfg: &CollectorConfig) -> Result<String, CommandError> {
    let r = crate::rotate::rotate(cfg).await?;
    let mut out = String::new();
    if r.resumed {
        out.push_str("finished the rotation an earlier run began\n");
    }
    let _ = writeln!(out, "log:       {}", r.origin);
    let _ = writeln!(out, "at size:   {}", r.size);
    let _ = writeln!(out, "retired:   {}", r.old);
    let _ = writeln!(out, "in force:  {}", r.new);
    out.push_str("agents adopt the new key at their next delivery; give auditors the new verifier key (the old one still verifies everything, through the transition)\n");
    Ok(out)
}
