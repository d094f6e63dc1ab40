//! `annexa person keygen` and `annexa person show`: a person's own signing
//! key, made on their machine, never sent anywhere. What the person later
//! states (attestations, waivers) is signed with it, so neither the
//! collector nor anyone with its database can write in their name; the
//! collector knows only the public half, which an admin registers.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use annexa_evidence::keys::{SigningKey, write_private};

use crate::commands::Exit;

/// Where a person's key lives when no path is given:
/// `$XDG_CONFIG_HOME/annexa/person.key`, else `~/.config/annexa/person.key`.
pub fn default_key_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("neither XDG_CONFIG_HOME nor HOME is set: give the key file with --key"),
        },
    };
    Ok(base.join("annexa").join("person.key"))
}

/// Makes a key at `path` (mode 0600, its directory 0700 when created);
/// never replaces an existing file.
pub fn keygen(path: Option<&Path>) -> anyhow::Result<Exit> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => default_key_path()?,
    };
    if std::fs::symlink_metadata(&path).is_ok() {
        bail!(
            "{} exists: a person key is never replaced (to see its public key: `annexa person show --key {}`)",
            path.display(),
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let (key, der) = SigningKey::generate()?;
    write_private(&path, &der).with_context(|| format!("writing {}", path.display()))?;
    print_public(&key, &path, "made")?;
    Ok(Exit::Success)
}

/// Prints the public half of the key at `path`.
pub fn show(path: Option<&Path>) -> anyhow::Result<Exit> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => default_key_path()?,
    };
    let key = SigningKey::load(&path)?;
    print_public(&key, &path, "key")?;
    Ok(Exit::Success)
}

fn print_public(key: &SigningKey, path: &Path, what: &str) -> anyhow::Result<()> {
    let public = key.public();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{what} {} (private key: {})",
        public.key_id(),
        path.display()
    )?;
    writeln!(out, "public key: {}", public.to_b64())?;
    writeln!(
        out,
        "give the public key (never the key file) to the collector's admin, who registers it"
    )?;
    Ok(())
}
