//! `annexa-collector person`: registering the people who sign attestations,
//! waivers and actions, rotating their keys and revoking them. Offline, on
//! the data directory, like the token commands.

use std::fmt::Write as _;

use annexa_evidence::keys::PublicKey;
use annexa_evidence::person::check_email;

use super::CommandError;
use crate::config::CollectorConfig;
use crate::store::{NewPerson, PersonRole};
use crate::{clock, open_store};

/// Who registers people from the command line (the operator at the
/// collector's console, not an API credential).
const CONSOLE: &str = "console";

fn public_key(text: &str) -> Result<PublicKey, CommandError> {
    PublicKey::from_b64(text.trim()).map_err(|e| {
        CommandError::Usage(format!(
            "--public-key: {e} (give the `public key:` line `annexa person show` prints)"
        ))
    })
}

/// Registers a person with their public key and roles.
pub async fn add(
    cfg: &CollectorConfig,
    name: &str,
    email: &str,
    public_key_b64: &str,
    roles: &[PersonRole],
) -> Result<String, CommandError> {
    check_email("--email", email).map_err(|e| CommandError::Usage(e.to_string()))?;
    let email = email.to_lowercase();
    let name = name.trim();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(CommandError::Usage(
            "--name: give the person's name (1 to 256 bytes, no control characters)".into(),
        ));
    }
    if roles.is_empty() {
        return Err(CommandError::Usage(
            "--role: give at least one of owner, approver, auditor, admin".into(),
        ));
    }
    let key = public_key(public_key_b64)?;
    let store = open_store(cfg).await?;
    store
        .add_person(&NewPerson {
            email: email.clone(),
            name: name.to_string(),
            roles: roles.to_vec(),
            key_id: key.key_id(),
            public_key: key.to_b64(),
            created_by: CONSOLE.into(),
            now: clock::now_rfc3339(),
        })
        .await?;
    Ok(format!(
        "registered {} ({}) with key {} as {}\n",
        email,
        name,
        key.key_id(),
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Every registered person, one line each, then their keys.
pub async fn list(cfg: &CollectorConfig) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let mut out = String::new();
    for p in store.people().await? {
        let state = match &p.revoked_at {
            Some(at) => format!("revoked {at}"),
            None => "active".into(),
        };
        let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(
            out,
            "{}  {}  [{}]  {state}",
            p.email,
            p.name,
            roles.join(",")
        );
        for k in &p.keys {
            let _ = match &k.retired_at {
                Some(at) => writeln!(out, "  key {} added {} retired {at}", k.key_id, k.added_at),
                None => writeln!(out, "  key {} added {} (current)", k.key_id, k.added_at),
            };
        }
    }
    if out.is_empty() {
        out.push_str("no person is registered (annexa-collector person add)\n");
    }
    Ok(out)
}

/// Revokes a person: nothing they sign is accepted from now on; what they
/// signed before stays verifiable.
pub async fn revoke(cfg: &CollectorConfig, email: &str) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    store.revoke_person(email, &clock::now_rfc3339()).await?;
    Ok(format!("revoked {}\n", email.to_lowercase()))
}

/// Replaces a person's key: the old one is retired (it verifies what it
/// signed before, and signs nothing new).
pub async fn rotate_key(
    cfg: &CollectorConfig,
    email: &str,
    public_key_b64: &str,
) -> Result<String, CommandError> {
    let key = public_key(public_key_b64)?;
    let store = open_store(cfg).await?;
    store
        .rotate_person_key(email, &key.key_id(), &key.to_b64(), &clock::now_rfc3339())
        .await?;
    Ok(format!(
        "{} now signs with key {}; the previous key is retired\n",
        email.to_lowercase(),
        key.key_id()
    ))
}
