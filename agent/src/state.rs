//! The state directory and the host's machine identity.
//!
//! Layout (docs/agent.md):
//!
//! | file | mode | contents |
//! |---|---|---|
//! | `agent.key` | 0600 | the agent's Ed25519 key (PKCS#8) |
//! | `agent.key.next` | 0600 | the key a pending rotation switches to (`annexa rotate-key`) |
//! | `key-rotation.json` | 0600 | `{sequence, key_id}`: the envelope that declares the next key, until the collector acknowledges it |
//! | `enrollment.json` | 0644 | agent id, server, collector key, CA path, labels |
//! | `ca.pem` | 0644 | the pinned collector CA, PEM |
//! | `chain.json` | 0644 | `{last_sequence, last_digest}`: the chain head |
//! | `receipts.jsonl` | 0644 | one verified receipt envelope per line |
//! | `spool/` | 0700 | envelopes awaiting a receipt |
//! | `lock` | 0600 | held (flock) by the process using the directory |
//! | `policy.json` | 0644 | the check parameters the collector's SoA sets |
//! | `checkpoint` | 0644 | the newest collector checkpoint accepted (signed note) |
//! | `log-alert.json` | 0644 | an inconsistency of the collector's log, until reported |
//! | `log-alert.reported` | 0644 | SHA-256 of the held checkpoint last reported about |
//!
//! The directory itself is created with mode 0700 and refused if group or
//! others can write to it: whoever can replace files in it can make the
//! agent sign and send what they like, or trust another collector.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use annexa_evidence::AgentId;
use annexa_evidence::dsse::Envelope;
use annexa_evidence::keys::{KeyError, PublicKey, SigningKey};

/// Errors about the state directory. File errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory is writable by group or others.
    #[error(
        "{path}: state directory has mode {mode:04o}; it must not be writable by group or others \
         (chmod 700 {path})"
    )]
    Exposed {
        /// The directory.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The path exists but is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A state file is not what the agent wrote.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Another process holds the state directory's lock.
    #[error(
        "{path}: another annexa process (a running `annexa run`?) is using this state directory"
    )]
    Locked {
        /// The lock file.
        path: String,
    },
    /// The signing key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What enrollment established, as stored in `enrollment.json`. Unknown
/// fields are ignored so that an agent can be downgraded over a state
/// directory a newer version wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The id the collector assigned to this agent.
    pub agent_id: AgentId,
    /// The collector URL enrolled with (no trailing slash).
    pub server: String,
    /// The collector's receipt-signing key, standard base64.
    pub collector_public_key: String,
    /// Its key id (hex SHA-256 of the raw key).
    pub collector_key_id: String,
    /// The pinned collector CA certificate(s), PEM: `ca.pem` in the state
    /// directory. A relative path is relative to the state directory.
    pub ca_path: PathBuf,
    /// Labels the collector recorded for the agent.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When enrollment completed (RFC 3339 UTC).
    pub enrolled_at: String,
    /// The collector's key transitions this agent followed from the key it
    /// enrolled with to `collector_public_key`, oldest first
    /// ([`annexa_evidence::collector_keys`]): the held checkpoint may be
    /// signed by a key they retired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collector_key_transitions: Vec<String>,
}

impl Enrollment {
    /// The collector's key in force, as this agent follows it.
    pub fn collector_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_b64(&self.collector_public_key)
    }
}

/// The head of the agent's hash chain, as stored in `chain.json`: the last
/// sequence number used and the hex SHA-256 of that envelope's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// 0 before the first envelope.
    pub last_sequence: u64,
    /// `None` before the first envelope.
    pub last_digest: Option<String>,
}

/// An open state directory. Clones share the in-process spool lock, which
/// keeps the producer from dropping an envelope the sender is delivering.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    spool_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The exclusive lock on a state directory; released when dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// `key-rotation.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Rotation {
    sequence: u64,
    key_id: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a file so that readers see either the old or the new contents,
/// even across a crash or power loss: temporary file, fsync, rename, fsync
/// of the directory (without the last step the rename itself may be lost).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    // A bare file name's parent is "": the current directory.
    sync_dir(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl StateDir {
    /// Opens the state directory, creating it with mode 0700 if needed, and
    /// refuses one that group or others can write.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(m) if !m.is_dir() => {
                return Err(StateError::NotADirectory {
                    path: root.display().to_string(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&root)
                    .map_err(io_err(&root))?;
            }
            Err(e) => return Err(io_err(&root)(e)),
        }
        let mode = std::fs::metadata(&root)
            .map_err(io_err(&root))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o022 != 0 {
            return Err(StateError::Exposed {
                path: root.display().to_string(),
                mode,
            });
        }
        Ok(StateDir {
            root,
            spool_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `agent.key`.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("agent.key")
    }

    /// `enrollment.json`.
    pub fn enrollment_path(&self) -> PathBuf {
        self.root.join("enrollment.json")
    }

    /// `ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// `chain.json`.
    pub fn chain_path(&self) -> PathBuf {
        self.root.join("chain.json")
    }

    /// `receipts.jsonl`.
    pub fn receipts_path(&self) -> PathBuf {
        self.root.join("receipts.jsonl")
    }

    /// `spool/`.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// `orphaned/AGENT_ID/`: envelopes signed for an agent id this host no
    /// longer has (it enrolled anew); kept, never sent.
    pub fn orphan_dir(&self, agent_id: &str) -> PathBuf {
        let safe: String = agent_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("orphaned").join(safe)
    }

    /// The in-process lock serialising spool removals with deliveries.
    pub(crate) fn spool_lock(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.spool_lock
    }

    /// Takes the exclusive lock on the directory (`lock`, flock(2)), so
    /// that two agents never extend the same chain: two producers would
    /// sign different envelopes with one sequence number and the collector
    /// would refuse one of them for ever.
    pub fn try_lock(&self) -> Result<StateLock, StateError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
                path: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// Loads the agent's key, creating it (mode 0600) on first use.
    pub fn signing_key(&self) -> Result<(SigningKey, bool), StateError> {
        Ok(SigningKey::load_or_create(&self.key_path())?)
    }

    /// `agent.key.next`: the key a pending rotation switches to.
    pub fn next_key_path(&self) -> PathBuf {
        self.root.join("agent.key.next")
    }

    fn rotation_path(&self) -> PathBuf {
        self.root.join("key-rotation.json")
    }

    /// Makes the next key (mode 0600) for `annexa rotate-key`, or loads the
    /// one already pending; true when it was made now.
    pub fn prepare_rotation(&self) -> Result<(SigningKey, bool), StateError> {
        Ok(SigningKey::load_or_create(&self.next_key_path())?)
    }

    /// The key a pending rotation switches to, if one is pending.
    pub fn next_key(&self) -> Result<Option<SigningKey>, StateError> {
        Ok(SigningKey::load_if_present(&self.next_key_path())?)
    }

    /// Records, before it is spooled, that envelope `sequence` declares
    /// the next key. The record stays until the collector acknowledges that
    /// envelope: [`StateDir::settle_rotation`] knows after a crash whether
    /// the declaration reached the chain, and the spool never drops the
    /// declaring envelope ([`StateDir::undropable`]).
    pub fn record_rotation(&self, sequence: u64, key_id: &str) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(&Rotation {
            sequence,
            key_id: key_id.to_string(),
        })
        .unwrap_or_default();
        write_atomic(&self.rotation_path(), &bytes, 0o600)
    }

    /// Switches keys once the declaring envelope is in the chain (`head` at
    /// or past its sequence number): the declared next key becomes
    /// `agent.key` and the old key is gone, so it signs nothing more. Only
    /// the key that was declared is installed. A declaration that never
    /// reached the chain is forgotten; the next run declares the key again.
    /// Returns the key id now in force when the switch happened now.
    pub fn settle_rotation(&self, head: u64) -> Result<Option<String>, StateError> {
        let Some(r) = self.read_json::<Rotation>(&self.rotation_path())? else {
            return Ok(None);
        };
        if r.sequence > head {
            self.forget_rotation()?;
            return Ok(None);
        }
        match self.next_key()? {
            Some(next) if next.public().key_id() == r.key_id => {
                std::fs::rename(self.next_key_path(), self.key_path())
                    .map_err(io_err(&self.key_path()))?;
                sync_dir(&self.root)?;
                Ok(Some(r.key_id))
            }
            _ => Ok(None),
        }
    }

    /// The sequence number of an envelope declaring a key that the
    /// collector has not acknowledged yet: a full spool must not drop it,
    /// or the envelopes after it, signed with the new key, would be refused
    /// for ever.
    pub fn undropable(&self) -> Result<Option<u64>, StateError> {
        Ok(self
            .read_json::<Rotation>(&self.rotation_path())?
            .map(|r| r.sequence))
    }

    /// Notes a verified receipt for `sequence`: once the declaring envelope
    /// is acknowledged the rotation is complete.
    pub fn acknowledged(&self, sequence: u64) -> Result<(), StateError> {
        if let Some(r) = self.read_json::<Rotation>(&self.rotation_path())?
            && sequence >= r.sequence
            && !self.next_key_path().exists()
        {
            self.forget_rotation()?;
        }
        Ok(())
    }

    /// Removes `key-rotation.json`, durably.
    fn forget_rotation(&self) -> Result<(), StateError> {
        std::fs::remove_file(self.rotation_path()).map_err(io_err(&self.rotation_path()))?;
        sync_dir(&self.root)
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Malformed {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StateError::Malformed {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(path, &bytes, 0o644)
    }

    /// The enrollment, if the agent is enrolled.
    pub fn enrollment(&self) -> Result<Option<Enrollment>, StateError> {
        self.read_json(&self.enrollment_path())
    }

    /// Records the enrollment (atomically; this is the last step of
    /// enrolling, so its presence means everything else is in place).
    pub fn write_enrollment(&self, e: &Enrollment) -> Result<(), StateError> {
        self.write_json(&self.enrollment_path(), e)
    }

    /// The chain head, if one was recorded.
    pub fn chain(&self) -> Result<Option<ChainHead>, StateError> {
        self.read_json(&self.chain_path())
    }

    /// Records the chain head atomically.
    pub fn write_chain(&self, head: &ChainHead) -> Result<(), StateError> {
        self.write_json(&self.chain_path(), head)
    }

    /// Where the collector's last policy is kept.
    pub fn policy_path(&self) -> PathBuf {
        self.root.join("policy.json")
    }

    /// The policy the collector last sent, if any.
    pub fn policy(&self) -> Result<Option<annexa_evidence::api::AgentPolicy>, StateError> {
        self.read_json(&self.policy_path())
    }

    /// Records the collector's policy atomically.
    pub fn write_policy(&self, p: &annexa_evidence::api::AgentPolicy) -> Result<(), StateError> {
        self.write_json(&self.policy_path(), p)
    }

    /// Where the newest collector checkpoint seen is kept (a signed note).
    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    /// The newest collector checkpoint seen, if any.
    pub fn checkpoint(&self) -> Result<Option<String>, StateError> {
        let path = self.checkpoint_path();
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Records a checkpoint atomically.
    pub fn write_checkpoint(&self, note: &str) -> Result<(), StateError> {
        write_atomic(&self.checkpoint_path(), note.as_bytes(), 0o644)
    }

    /// Where an inconsistency of the collector's log waits to be reported.
    pub fn log_alert_path(&self) -> PathBuf {
        self.root.join("log-alert.json")
    }

    /// The pending log alert, if any.
    pub fn log_alert(&self) -> Result<Option<annexa_evidence::statement::LogAlert>, StateError> {
        self.read_json(&self.log_alert_path())
    }

    /// Records a log alert for the next envelope (the first one found is
    /// kept until it is reported).
    pub fn write_log_alert(
        &self,
        alert: &annexa_evidence::statement::LogAlert,
    ) -> Result<(), StateError> {
        if self.log_alert()?.is_some() {
            return Ok(());
        }
        self.write_json(&self.log_alert_path(), alert)
    }

    /// Forgets the log alert once an envelope carrying it is spooled, and
    /// remembers which held checkpoint it was about: the same
    /// inconsistency is reported once, not in every envelope after.
    pub fn clear_log_alert(&self, held: &str) -> Result<(), StateError> {
        write_atomic(
            &self.root.join("log-alert.reported"),
            sha256_line(held).as_bytes(),
            0o644,
        )?;
        let path = self.log_alert_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Whether an inconsistency with this held checkpoint was reported.
    pub fn log_alert_reported(&self, held: &str) -> bool {
        std::fs::read_to_string(self.root.join("log-alert.reported"))
            .is_ok_and(|t| t == sha256_line(held))
    }

    /// Stores the pinned CA certificate(s) as PEM.
    pub fn write_ca(&self, pem: &str) -> Result<PathBuf, StateError> {
        let path = self.ca_path();
        write_atomic(&path, pem.as_bytes(), 0o644)?;
        Ok(path)
    }

    /// The pinned CA file of an enrollment, resolved against this directory.
    pub fn enrolled_ca_path(&self, e: &Enrollment) -> PathBuf {
        if e.ca_path.is_absolute() {
            e.ca_path.clone()
        } else {
            self.root.join(&e.ca_path)
        }
    }

    /// Appends a verified receipt envelope as one line to
    /// `receipts.jsonl`, synced before returning: the spool file it
    /// acknowledges is removed only after this.
    pub fn append_receipt(&self, receipt: &Envelope) -> Result<(), StateError> {
        let path = self.receipts_path();
        let existed = path.exists();
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&path)
            .map_err(io_err(&path))?;
        // A power cut mid-append can leave a partial last line: start on a
        // fresh line so the torn one stays alone and the new one parses.
        let mut line = Vec::new();
        let len = f.metadata().map_err(io_err(&path))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1)).map_err(io_err(&path))?;
            f.read_exact(&mut last).map_err(io_err(&path))?;
            if last[0] != b'\n' {
                line.push(b'\n');
            }
        }
        line.extend_from_slice(&receipt.to_json());
        line.push(b'\n');
        f.write_all(&line).map_err(io_err(&path))?;
        f.sync_data().map_err(io_err(&path))?;
        if !existed {
            // The new file's directory entry must be durable too.
            File::open(self.root())
                .and_then(|d| d.sync_all())
                .map_err(io_err(self.root()))?;
        }
        Ok(())
    }

    /// The last receipt envelope in `receipts.jsonl`, if any.
    pub fn last_receipt(&self) -> Result<Option<Envelope>, StateError> {
        let path = self.receipts_path();
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        // Receipts are a few hundred bytes; the tail is enough and keeps
        // this cheap however long the audit trail grows.
        let len = f.metadata().map_err(io_err(&path))?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
            .map_err(io_err(&path))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).map_err(io_err(&path))?;
        let Some(line) = tail
            .split(|b| *b == b'\n')
            .rev()
            .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        else {
            return Ok(None);
        };
        Envelope::from_json(line)
            .map(Some)
            .map_err(|e| StateError::Malformed {
                path: path.display().to_string(),
                message: format!("last line: {e}"),
            })
    }
}

/// Hex SHA-256 of some text, with a newline (a marker file's content).
pub(crate) fn sha256_line(text: &str) -> String {
    format!("{}\n", annexa_evidence::sha256_hex(text.as_bytes()))
}

/// The files machine identity is read from, in order.
pub const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/// This host's name: the running kernel's, else /etc/hostname, else
/// `localhost`.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Hex SHA-256 of the host's stable identity: the trimmed contents of the
/// first non-empty of [`MACHINE_ID_FILES`], else of the host name. Hashed so
/// the raw machine id (which some software treats as confidential) never
/// leaves the host.
pub fn machine_id_sha256() -> String {
    machine_id_sha256_from(&MACHINE_ID_FILES.map(Path::new), &hostname())
}

/// [`machine_id_sha256`] over given files and host name.
pub fn machine_id_sha256_from(files: &[&Path], hostname: &str) -> String {
    let id = files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| hostname.trim().to_string());
    annexa_evidence::sha256_hex(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_created_private_and_refused_when_writable_by_others() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        let s = StateDir::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        assert_eq!(s.root(), dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = StateDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("mode 0777") && err.contains("state"), "{err}");
        let file = parent.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            StateDir::open(&file),
            Err(StateError::NotADirectory { .. })
        ));
    }

    #[test]
    fn a_torn_receipt_line_does_not_swallow_the_next_receipt() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path().join("s")).unwrap();
        let key = SigningKey::from_seed(&[4u8; 32]).unwrap();
        let e1 = annexa_evidence::dsse::sign("t", b"one", &key);
        s.append_receipt(&e1).unwrap();
        // A power cut in the middle of the next append.
        let mut f = OpenOptions::new()
            .append(true)
            .open(s.receipts_path())
            .unwrap();
        f.write_all(br#"{"payload":"dHdv","payl"#).unwrap();
        drop(f);
        let e2 = annexa_evidence::dsse::sign("t", b"three", &key);
        s.append_receipt(&e2).unwrap();
        assert_eq!(s.last_receipt().unwrap(), Some(e2));
    }

    #[test]
    fn chain_and_receipts_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path().join("s")).unwrap();
        assert_eq!(s.chain().unwrap(), None);
        let head = ChainHead {
            last_sequence: 7,
            last_digest: Some("ab".repeat(32)),
        };
        s.write_chain(&head).unwrap();
        assert_eq!(s.chain().unwrap(), Some(head));
        assert!(s.last_receipt().unwrap().is_none());
        let key = SigningKey::from_seed(&[3u8; 32]).unwrap();
        let e1 = annexa_evidence::dsse::sign("t", b"one", &key);
        let e2 = annexa_evidence::dsse::sign("t", b"two", &key);
        s.append_receipt(&e1).unwrap();
        s.append_receipt(&e2).unwrap();
        assert_eq!(s.last_receipt().unwrap(), Some(e2));
        let lines = std::fs::read_to_string(s.receipts_path()).unwrap();
        assert_eq!(lines.lines().count(), 2);
        std::fs::write(s.chain_path(), "{").unwrap();
        let err = s.chain().unwrap_err().to_string();
        assert!(err.contains("chain.json"), "{err}");
    }

    #[test]
    fn the_lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let held = s.try_lock().unwrap();
        let err = s.try_lock().unwrap_err().to_string();
        assert!(
            err.contains("lock") && err.contains("another annexa"),
            "{err}"
        );
        drop(held);
        s.try_lock().unwrap();
    }

    #[test]
    fn machine_identity_falls_back_from_file_to_file_to_hostname() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(&b, "  0123abcd\n").unwrap();
        let files = [a.as_path(), b.as_path()];
        assert_eq!(
            machine_id_sha256_from(&files, "host"),
            annexa_evidence::sha256_hex(b"0123abcd")
        );
        std::fs::write(&a, "\n").unwrap();
        assert_eq!(
            machine_id_sha256_from(&files, "host"),
            annexa_evidence::sha256_hex(b"0123abcd")
        );
        std::fs::remove_file(&b).unwrap();
        assert_eq!(
            machine_id_sha256_from(&files, "host\n"),
            annexa_evidence::sha256_hex(b"host")
        );
        assert_eq!(machine_id_sha256().len(), 64);
    }
}
