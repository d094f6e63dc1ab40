//! The collector's data directory: created mode 0700 with the collector's
//! Ed25519 receipt-signing key, and — unless an operator supplies a
//! certificate — a private CA and a server certificate for the collector's
//! names, whose fingerprint agents pin.
//!
//! ```text
//! DIR/                 0700
//!   collector.key      0600  Ed25519 PKCS#8 (signs receipts)
//!   ca.crt  ca.key     0644 / 0600  private CA (ECDSA P-256)
//!   server.crt server.key  0644 / 0600  leaf for the collector's names
//!   collector.db       SQLite store
//! ```

use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use annexa_evidence::keys::{SigningKey, write_private};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// Errors preparing the data directory; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// File system trouble.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
    /// The directory is open to other users.
    #[error(
        "{path}: data directory has mode {mode:04o}; it must not be accessible to group or others (chmod 700)"
    )]
    Exposed {
        /// The path.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// Another process holds the directory's lock.
    #[error(
        "{path}: a collector is running on this data directory (collector.lock is held); stop it first"
    )]
    Busy {
        /// The directory.
        path: String,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Cert(String),
    /// Key trouble.
    #[error(transparent)]
    Key(#[from] annexa_evidence::keys::KeyError),
}

fn io(path: &Path, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory.
    pub root: PathBuf,
}

impl DataDir {
    /// The directory at `root` (not yet checked).
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }
    /// Receipt-signing key.
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("collector.key")
    }
    /// The key a rotation brings in, until the rotation is complete.
    pub fn next_signing_key(&self) -> PathBuf {
        self.root.join("collector.key.next")
    }
    /// Held (flock) by the collector serving from the directory and by a
    /// key rotation.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("collector.lock")
    }
    /// CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    /// CA key (PEM).
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    /// Server certificate chain (PEM: leaf then CA).
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.crt")
    }
    /// Server key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("collector.db")
    }

    /// Checks the directory exists and is private.
    pub fn check(&self) -> Result<(), DataDirError> {
        let meta = std::fs::metadata(&self.root).map_err(|e| io(&self.root, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(DataDirError::Exposed {
                path: self.root.display().to_string(),
                mode,
            });
        }
        Ok(())
    }

    /// Takes the directory's lock: only one collector serves from a data
    /// directory, and its key is not rotated under it.
    pub fn try_lock(&self) -> Result<DirLock, DataDirError> {
        let path = self.lock_file();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::Busy {
                path: self.root.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path, e)),
        }
    }

    /// The receipt-signing key.
    pub fn load_signing_key(&self) -> Result<SigningKey, DataDirError> {
        Ok(SigningKey::load(&self.signing_key())?)
    }

    /// The key an interrupted rotation created, if there is one.
    pub fn load_next_signing_key(&self) -> Result<Option<SigningKey>, DataDirError> {
        Ok(SigningKey::load_if_present(&self.next_signing_key())?)
    }
}

/// The data directory's lock, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// What `init` produced.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    /// `SHA256:` + hex SHA-256 of the CA certificate's DER, for agents to pin
    /// (absent when the operator brings their own certificate).
    pub ca_fingerprint: Option<String>,
    /// Key id of the receipt-signing key.
    pub signing_key_id: String,
    /// Whether anything new was created.
    pub created: bool,
}

/// Creates the directory (0700), the signing key and, if `make_tls`, the
/// CA and server certificate for `names`. Existing files are kept, so
/// running init twice changes nothing.
pub fn init(dir: &DataDir, names: &[String], make_tls: bool) -> Result<InitOutcome, DataDirError> {
    let mut created = false;
    if !dir.root.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir.root)
            .map_err(|e| io(&dir.root, e))?;
        created = true;
    }
    dir.check()?;
    let (key, new_key) = SigningKey::load_or_create(&dir.signing_key())?;
    created |= new_key;
    let mut ca_fingerprint = None;
    if make_tls {
        if !dir.ca_cert().exists() {
            make_certificates(dir, names)?;
            created = true;
        }
        ca_fingerprint = Some(fingerprint_of_pem_file(&dir.ca_cert())?);
    }
    Ok(InitOutcome {
        ca_fingerprint,
        signing_key_id: key.public().key_id(),
        created,
    })
}

fn make_certificates(dir: &DataDir, names: &[String]) -> Result<(), DataDirError> {
    let cert_err = |e: rcgen::Error| DataDirError::Cert(e.to_string());
    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "annexa collector CA");
    dn.push(DnType::OrganizationName, "annexa");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_err)?;

    let leaf_key = KeyPair::generate().map_err(cert_err)?;
    let mut leaf = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "localhost".into()),
    );
    leaf.distinguished_name = dn;
    leaf.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .map_err(cert_err)?;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(825);
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(cert_err)?;

    let public = |path: PathBuf, pem: String| -> Result<(), DataDirError> {
        std::fs::write(&path, pem).map_err(|e| io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io(&path, e))
    };
    let private = |path: PathBuf, pem: String| -> Result<(), DataDirError> {
        write_private(&path, pem.as_bytes()).map_err(|e| io(&path, e))
    };
    private(dir.ca_key(), ca_key.serialize_pem())?;
    private(dir.server_key(), leaf_key.serialize_pem())?;
    public(
        dir.server_cert(),
        format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
    )?;
    // The CA certificate last: its presence marks a complete set.
    public(dir.ca_cert(), ca_cert.pem())?;
    Ok(())
}

/// `SHA256:` + hex of the first certificate's DER in a PEM file.
pub fn fingerprint_of_pem_file(path: &Path) -> Result<String, DataDirError> {
    let pem = std::fs::read(path).map_err(|e| io(path, e))?;
    let der = first_cert_der(&pem).ok_or_else(|| io(path, "no PEM certificate in file"))?;
    Ok(format!("SHA256:{}", annexa_evidence::sha256_hex(&der)))
}

fn first_cert_der(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()?
        .ok()
        .map(|c| c.as_ref().to_vec())
}

/// The collector's default names: localhost, loopback addresses and this
/// host's name.
pub fn default_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && !names.iter().any(|n| n == h) {
            names.push(h.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_directory_keys_and_certificates_once() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::new(parent.path().join("data"));
        let first = init(&dir, &["localhost".into(), "127.0.0.1".into()], true).unwrap();
        assert!(first.created);
        let fp = first.ca_fingerprint.clone().unwrap();
        assert!(fp.starts_with("SHA256:") && fp.len() == 71);
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.root.clone()), 0o700);
        assert_eq!(mode(dir.signing_key()), 0o600);
        assert_eq!(mode(dir.ca_key()), 0o600);
        assert_eq!(mode(dir.server_key()), 0o600);
        let second = init(&dir, &["localhost".into()], true).unwrap();
        assert!(!second.created);
        assert_eq!(second.ca_fingerprint.unwrap(), fp);
        assert_eq!(second.signing_key_id, first.signing_key_id);
    }

    #[test]
    fn an_open_data_directory_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("data");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = init(&DataDir::new(&root), &[], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode 0755"), "{err}");
    }
}
