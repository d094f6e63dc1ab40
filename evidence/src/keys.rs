//! Ed25519 keys: generation, PKCS#8 files with mode 0600, public keys and
//! key ids.
//!
//! A key id is the lower-case hex SHA-256 of the 32-byte raw Ed25519 public
//! key (docs/evidence-format.md). Private keys never leave this module in
//! any form but the file they are kept in.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::encoding::{b64, b64_decode, hex};

/// Errors about keys and key files. File errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 key.
    #[error("{path}: not an Ed25519 private key in PKCS#8 form ({reason})")]
    Malformed {
        /// The key file.
        path: String,
        /// What ring said.
        reason: String,
    },
    /// The file is readable by others.
    #[error(
        "{path}: private key file has mode {mode:04o}; it must not be readable by group or others (chmod 600)"
    )]
    Exposed {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A public key that is not 32 bytes of base64.
    #[error("public key `{0}` is not a base64 Ed25519 public key (32 bytes)")]
    BadPublicKey(String),
    /// Key generation failed (the system RNG).
    #[error("generating an Ed25519 key: {0}")]
    Generate(String),
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// From raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<PublicKey> {
        bytes.try_into().ok().map(PublicKey)
    }

    /// From standard base64 (the form used in annexa's JSON).
    pub fn from_b64(text: &str) -> Result<PublicKey, KeyError> {
        b64_decode(text)
            .and_then(|b| PublicKey::from_bytes(&b))
            .ok_or_else(|| KeyError::BadPublicKey(text.to_string()))
    }

    /// Standard base64 of the raw key.
    pub fn to_b64(&self) -> String {
        b64(&self.0)
    }

    /// Lower-case hex SHA-256 of the raw key.
    pub fn key_id(&self) -> String {
        crate::sha256_hex(&self.0)
    }

    /// Verifies an Ed25519 signature (RFC 8032, with ring's checks on
    /// canonical encodings).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.0))
    }
}

/// An Ed25519 private key. Its `Debug` never shows key material.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public().key_id())
    }
}

impl SigningKey {
    /// Generates a key; returns it with its PKCS#8 encoding.
    pub fn generate() -> Result<(SigningKey, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Generate(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok((SigningKey { pair }, pkcs8.as_ref().to_vec()))
    }

    /// From a PKCS#8 document (`label` names it in errors).
    pub fn from_pkcs8(label: &str, der: &[u8]) -> Result<SigningKey, KeyError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|pair| SigningKey { pair })
            .map_err(|e| KeyError::Malformed {
                path: label.to_string(),
                reason: e.to_string(),
            })
    }

    /// From the 32-byte seed of RFC 8032 (test vectors only need this).
    pub fn from_seed(seed: &[u8]) -> Option<SigningKey> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .ok()
            .map(|pair| SigningKey { pair })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut s = [0u8; 64];
        s.copy_from_slice(self.pair.sign(message).as_ref());
        s
    }

    /// Loads the key at `path`, or creates one there (mode 0600, written
    /// and synced before it is used) if the file does not exist. Returns
    /// whether it was created. A key file readable by others is refused.
    pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool), KeyError> {
        if let Some(key) = SigningKey::load_if_present(path)? {
            return Ok((key, false));
        }
        let (key, der) = SigningKey::generate()?;
        write_private(path, &der).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok((key, true))
    }

    /// Loads the key at `path`. A key file readable by others is refused.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let label = path.display().to_string();
        let io = |source| KeyError::Io {
            path: label.clone(),
            source,
        };
        let der = std::fs::read(path).map_err(io)?;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path: label, mode });
        }
        SigningKey::from_pkcs8(&label, &der)
    }

    /// [`SigningKey::load`], or `None` when there is no file at `path`.
    pub fn load_if_present(path: &Path) -> Result<Option<SigningKey>, KeyError> {
        match SigningKey::load(path) {
            Ok(key) => Ok(Some(key)),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Writes secret bytes to a new file created with mode 0600 (never wider,
/// whatever the umask), synced to disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_are_private_and_reloaded_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        assert!(SigningKey::load_if_present(&path).unwrap().is_none());
        assert!(matches!(SigningKey::load(&path), Err(KeyError::Io { .. })));
        let (k1, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (k2, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        assert!(!format!("{k1:?}").contains(&hex(&std::fs::read(&path).unwrap())));
    }

    #[test]
    fn exposed_or_garbage_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        SigningKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644") && err.contains("agent.key"),
            "{err}"
        );
        std::fs::write(&path, b"garbage").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = SigningKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("not an Ed25519 private key"), "{err}");
    }

    #[test]
    fn key_id_is_sha256_of_the_raw_public_key() {
        let k = SigningKey::from_seed(&[7u8; 32]).unwrap();
        assert_eq!(k.public().key_id(), crate::sha256_hex(&k.public().0));
        assert_eq!(
            PublicKey::from_b64(&k.public().to_b64()).unwrap(),
            k.public()
        );
        assert!(PublicKey::from_b64("AAAA").is_err());
    }
}
