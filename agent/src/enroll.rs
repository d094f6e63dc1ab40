//! Enrollment: the agent presents a single-use token and its public key to
//! the collector over TLS to a pinned CA, and records what the collector
//! answers (agent id, receipt key, where its chain stands).
//!
//! The CA is pinned either from a certificate given out of band (`--ca`)
//! or by its SHA-256 fingerprint (`--ca-fingerprint`), in which case the
//! certificate the server presents with that fingerprint is saved. Either
//! way, from then on the agent trusts that CA and nothing else for this
//! collector.
//!
//! Files are written in an order that keeps the state usable at every
//! step: the key before the request (so a retried enrollment presents the
//! same key and gets the same agent id), then `ca.pem`, the chain head, and
//! `enrollment.json` last, whose presence means the rest is in place.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, warn};

use annexa_checks::host::HostView;
use annexa_checks::probes::host_facts;
use annexa_evidence::AgentId;
use annexa_evidence::api::{EnrollRequest, EnrollResponse};
use annexa_evidence::keys::PublicKey;

use crate::config::check_server_url;
use crate::send::{api_error, error_chain, explain_tls, http_client};
use crate::spool::{Spool, SpoolError};
use crate::state::{ChainHead, Enrollment, StateDir, StateError, hostname, machine_id_sha256};
use crate::tls::{
    Fingerprint, FingerprintVerifier, PinOutcome, TlsError, certificates_to_pem,
    parse_certificates, pinned_client_config,
};

/// How the collector's CA is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaPin {
    /// Trust exactly these CA certificate bytes (PEM, possibly several
    /// certificates, or one DER certificate). `label` names their source
    /// (a file name) in errors.
    Certificate {
        /// Where the bytes came from.
        label: String,
        /// PEM or DER.
        bytes: Vec<u8>,
    },
    /// Trust the certificate the server presents whose SHA-256 fingerprint
    /// is this (`SHA256:<64 hex>`), as the only root.
    Fingerprint(String),
}

/// What [`enroll`] needs.
#[derive(Clone)]
pub struct EnrollOptions {
    /// Collector URL, `https://HOST:PORT`.
    pub server: String,
    /// The single-use enrollment token (never logged).
    pub token: String,
    /// How to pin the collector's CA.
    pub ca: CaPin,
    /// The state directory to enroll (created if missing).
    pub state_dir: PathBuf,
    /// Labels to record for this agent (merged with the token's by the
    /// collector).
    pub labels: BTreeMap<String, String>,
}

impl fmt::Debug for EnrollOptions {
    // The token is a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollOptions")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("ca", &self.ca)
            .field("state_dir", &self.state_dir)
            .field("labels", &self.labels)
            .finish()
    }
}

impl EnrollOptions {
    /// Options without labels.
    pub fn new(
        server: impl Into<String>,
        token: impl Into<String>,
        ca: CaPin,
        state_dir: impl Into<PathBuf>,
    ) -> EnrollOptions {
        EnrollOptions {
            server: server.into(),
            token: token.into(),
            ca,
            state_dir: state_dir.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// What enrollment established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollOutcome {
    /// The agent id the collector assigned.
    pub agent_id: AgentId,
    /// Key id of the collector's receipt key.
    pub collector_key_id: String,
    /// The state directory written.
    pub state_dir: PathBuf,
    /// The pinned CA file (`ca.pem`).
    pub ca_path: PathBuf,
    /// The next sequence number the agent will use.
    pub next_sequence: u64,
    /// Labels the collector recorded.
    pub labels: BTreeMap<String, String>,
    /// Whether the agent's key was created by this enrollment.
    pub key_created: bool,
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server URL is not acceptable.
    #[error("server: {0}")]
    Server(String),
    /// The token is empty.
    #[error("the enrollment token is empty")]
    EmptyToken,
    /// The pinned CA or fingerprint.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// The spool (moving envelopes of a previous enrollment aside).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// No HTTP response.
    #[error("{url}: {detail}")]
    Network {
        /// The request URL.
        url: String,
        /// The error and its causes.
        detail: String,
    },
    /// The server does not present the CA pinned by fingerprint.
    #[error(
        "{url}: the server presented no certificate with fingerprint {expected} (it presented {}); \
         check the fingerprint with the collector's operator",
        .presented.join(", ")
    )]
    FingerprintMismatch {
        /// The request URL.
        url: String,
        /// The pinned fingerprint.
        expected: String,
        /// Fingerprints of the certificates presented.
        presented: Vec<String>,
    },
    /// The collector refused (bad, used or expired token…).
    #[error("the collector refused enrollment ({status}{}): {message}", if .code.is_empty() { String::new() } else { format!(" {}", .code) })]
    Refused {
        /// HTTP status.
        status: u16,
        /// API error code.
        code: String,
        /// The collector's message.
        message: String,
    },
    /// The response is not the API's.
    #[error("{url}: unexpected response ({status}): {message}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// What is wrong.
        message: String,
    },
    /// The collector's key id does not belong to its key.
    #[error("the collector's key id {claimed} does not match its public key (key id {actual})")]
    KeyMismatch {
        /// As sent.
        claimed: String,
        /// As computed.
        actual: String,
    },
}

/// Enrolls the agent whose state is in `opts.state_dir` with the collector.
///
/// Re-enrolling with the same key is idempotent on the collector's side
/// (same agent id); the local chain head is kept unless the collector is
/// ahead of it. If the agent id changes, envelopes spooled for the old id
/// are moved to `orphaned/OLD_ID/` (kept, never sent) and the chain starts
/// where the collector says.
pub async fn enroll(opts: EnrollOptions) -> Result<EnrollOutcome, EnrollError> {
    let server = check_server_url(&opts.server).map_err(EnrollError::Server)?;
    let token = opts.token.trim().to_string();
    if token.is_empty() {
        return Err(EnrollError::EmptyToken);
    }
    let state = StateDir::open(&opts.state_dir)?;
    let _lock = state.try_lock()?;
    let (key, key_created) = state.signing_key()?;

    let pinned = match &opts.ca {
        CaPin::Certificate { label, .. } => format!("the CA in {label}"),
        CaPin::Fingerprint(fp) => format!("the CA with fingerprint {fp}"),
    };
    let (tls, verifier, given_pem) = match &opts.ca {
        CaPin::Certificate { label, bytes } => {
            let certs = parse_certificates(label, bytes)?;
            (
                pinned_client_config(label, &certs)?,
                None,
                Some(certificates_to_pem(&certs)),
            )
        }
        CaPin::Fingerprint(text) => {
            let fp: Fingerprint = text.parse()?;
            let v = FingerprintVerifier::new(fp);
            (v.client_config()?, Some(v), None)
        }
    };
    let http = http_client(tls).map_err(EnrollError::Client)?;

    // Inventory facts read the host (and sysinfo); keep them off the
    // async workers.
    let facts = tokio::task::spawn_blocking(|| {
        serde_json::to_value(host_facts(&HostView::live()).0).unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    let request = EnrollRequest::new(
        token,
        &key,
        hostname(),
        machine_id_sha256(),
        opts.labels.clone(),
        facts,
    );
    let url = format!("{server}/v1/enroll");
    let sent = http.post(&url).json(&request).send().await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            if let Some(PinOutcome::NoMatch(presented)) =
                verifier.as_ref().and_then(|v| v.outcome())
            {
                return Err(EnrollError::FingerprintMismatch {
                    url,
                    expected: verifier
                        .map(|v| v.fingerprint().to_string())
                        .unwrap_or_default(),
                    presented: presented.iter().map(ToString::to_string).collect(),
                });
            }
            return Err(EnrollError::Network {
                url,
                detail: explain_tls(error_chain(&e), &pinned),
            });
        }
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| EnrollError::Network {
        url: url.clone(),
        detail: error_chain(&e),
    })?;
    if status != 200 {
        let e = api_error(&body);
        return Err(EnrollError::Refused {
            status,
            code: e.error,
            message: e.message,
        });
    }
    let answer: EnrollResponse =
        serde_json::from_slice(&body).map_err(|e| EnrollError::BadResponse {
            url: url.clone(),
            status,
            message: format!("not an enrollment response: {e}"),
        })?;
    let collector = PublicKey::from_b64(&answer.collector_public_key).map_err(|e| {
        EnrollError::BadResponse {
            url: url.clone(),
            status,
            message: e.to_string(),
        }
    })?;
    if collector.key_id() != answer.collector_key_id {
        return Err(EnrollError::KeyMismatch {
            claimed: answer.collector_key_id,
            actual: collector.key_id(),
        });
    }
    // With a fingerprint pin, the CA to keep is the certificate that matched.
    let ca_pem = match given_pem.or_else(|| {
        verifier
            .as_ref()
            .and_then(|v| v.matched_ca())
            .map(|ca| certificates_to_pem(&[ca]))
    }) {
        Some(pem) => pem,
        None => {
            return Err(EnrollError::BadResponse {
                url,
                status,
                message: "the TLS handshake completed without the pinned CA being seen".into(),
            });
        }
    };

    let ca_path = state.write_ca(&ca_pem)?;
    let previous = state.enrollment()?;
    let head = settle_chain(&state, previous.as_ref(), &answer)?;
    state.write_enrollment(&Enrollment {
        agent_id: answer.agent_id.clone(),
        server: server.clone(),
        collector_public_key: answer.collector_public_key.clone(),
        collector_key_id: answer.collector_key_id.clone(),
        ca_path: ca_path.clone(),
        labels: answer.labels.clone(),
        enrolled_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        // The next evidence response carries the collector's transitions.
        collector_key_transitions: Vec::new(),
    })?;
    info!(
        agent_id = %answer.agent_id,
        collector_key_id = %answer.collector_key_id,
        server = %server,
        next_sequence = head.last_sequence + 1,
        "enrolled"
    );
    Ok(EnrollOutcome {
        agent_id: answer.agent_id,
        collector_key_id: answer.collector_key_id,
        state_dir: state.root().to_path_buf(),
        ca_path,
        next_sequence: head.last_sequence + 1,
        labels: answer.labels,
        key_created,
    })
}

/// Decides the chain head after enrolling. The local head wins when it is
/// ahead of the collector (envelopes wait in the spool); the collector's
/// wins when there is no local head, when it is ahead (the state was
/// restored from an older copy: reusing its sequence numbers would be
/// refused), or when the agent id changed.
fn settle_chain(
    state: &StateDir,
    previous: Option<&Enrollment>,
    answer: &EnrollResponse,
) -> Result<ChainHead, EnrollError> {
    let theirs = ChainHead {
        last_sequence: answer.next_sequence.saturating_sub(1),
        last_digest: answer.last_digest.clone(),
    };
    if let Some(prev) = previous
        && prev.agent_id != answer.agent_id
    {
        let moved = set_aside(state, prev.agent_id.as_str(), |_| true)?;
        if let Some(dir) = moved {
            warn!(
                old_agent_id = %prev.agent_id,
                new_agent_id = %answer.agent_id,
                "this host enrolled as a new agent; undelivered envelopes signed for {} were moved \
                 to {} (kept, never sent)",
                prev.agent_id,
                dir.display()
            );
        }
        state.write_chain(&theirs)?;
        return Ok(theirs);
    }
    match state.chain()? {
        Some(ours) if ours.last_sequence > theirs.last_sequence => Ok(ours),
        Some(ours) if ours == theirs => Ok(ours),
        Some(ours) => {
            // Spooled envelopes numbered up to the collector's head are
            // either already there or can never be accepted (it holds other
            // bytes under their numbers); sending them would block the
            // spool for ever.
            let moved = set_aside(state, answer.agent_id.as_str(), |seq| {
                seq <= theirs.last_sequence
            })?;
            warn!(
                local_sequence = ours.last_sequence,
                collector_sequence = theirs.last_sequence,
                "the collector's chain for this agent is ahead of the local chain head (was the \
                 state directory restored from a backup?); continuing from the collector's head{}",
                moved
                    .map(|d| format!(
                        "; spooled envelopes it supersedes were moved to {}",
                        d.display()
                    ))
                    .unwrap_or_default()
            );
            state.write_chain(&theirs)?;
            Ok(theirs)
        }
        None => {
            state.write_chain(&theirs)?;
            Ok(theirs)
        }
    }
}

/// Moves the spooled envelopes selected by sequence number to
/// `orphaned/AGENT_ID/` (mode 0700): kept for the record, never sent.
/// Returns the directory if anything was moved.
fn set_aside(
    state: &StateDir,
    agent_id: &str,
    select: impl Fn(u64) -> bool,
) -> Result<Option<PathBuf>, EnrollError> {
    let spool = Spool::open(state.spool_dir())?;
    let chosen: Vec<(u64, PathBuf)> = spool
        .pending()?
        .into_iter()
        .filter(|(seq, _)| select(*seq))
        .collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    let dir = state.orphan_dir(agent_id);
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| StateError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    for (_, path) in &chosen {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // Never overwrite an envelope set aside earlier under the same number.
        let mut to = dir.join(&name);
        let mut n = 1;
        while to.exists() {
            to = dir.join(format!("{name}.{n}"));
            n += 1;
        }
        std::fs::rename(path, &to).map_err(io(path))?;
    }
    crate::state::sync_dir(&dir)?;
    crate::state::sync_dir(spool.dir())?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(agent: &str, next: u64, last: Option<&str>) -> EnrollResponse {
        EnrollResponse {
            agent_id: agent.into(),
            collector_public_key: String::new(),
            collector_key_id: String::new(),
            next_sequence: next,
            last_digest: last.map(str::to_string),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn the_chain_starts_where_the_collector_says_and_local_progress_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::open(d.path()).unwrap();
        let h = settle_chain(&state, None, &answer("a1", 1, None)).unwrap();
        assert_eq!(h, ChainHead::default());
        // Re-enrolling a fresh state with an agent the collector knows.
        std::fs::remove_file(state.chain_path()).unwrap();
        let h = settle_chain(&state, None, &answer("a1", 5, Some("dd"))).unwrap();
        assert_eq!((h.last_sequence, h.last_digest.as_deref()), (4, Some("dd")));
        // Local envelopes not yet delivered: the local head stays.
        let ahead = ChainHead {
            last_sequence: 7,
            last_digest: Some("ee".into()),
        };
        state.write_chain(&ahead).unwrap();
        assert_eq!(
            settle_chain(&state, None, &answer("a1", 5, Some("dd"))).unwrap(),
            ahead
        );
        // The collector ahead: continue from its head, and move aside the
        // spooled envelopes whose numbers it already holds.
        let spool = Spool::open(state.spool_dir()).unwrap();
        spool.append(7, b"seven").unwrap();
        let h = settle_chain(&state, None, &answer("a1", 10, Some("ff"))).unwrap();
        assert_eq!(h.last_sequence, 9);
        assert_eq!(state.chain().unwrap(), Some(h));
        assert!(spool.pending().unwrap().is_empty());
        let kept = state
            .orphan_dir("a1")
            .join("00000000000000000007.dsse.json");
        assert_eq!(std::fs::read(kept).unwrap(), b"seven");
    }

    #[test]
    fn a_new_agent_id_moves_old_envelopes_aside() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::open(d.path()).unwrap();
        let spool = Spool::open(state.spool_dir()).unwrap();
        spool.append(3, b"old").unwrap();
        state
            .write_chain(&ChainHead {
                last_sequence: 3,
                last_digest: Some("cc".into()),
            })
            .unwrap();
        let prev = Enrollment {
            agent_id: "old/agent".into(),
            server: "https://c.example".into(),
            collector_public_key: String::new(),
            collector_key_id: String::new(),
            ca_path: "ca.pem".into(),
            labels: BTreeMap::new(),
            enrolled_at: String::new(),
            collector_key_transitions: Vec::new(),
        };
        let h = settle_chain(&state, Some(&prev), &answer("new", 1, None)).unwrap();
        assert_eq!(h, ChainHead::default());
        assert!(spool.pending().unwrap().is_empty());
        let kept = state
            .orphan_dir("old/agent")
            .join("00000000000000000003.dsse.json");
        assert_eq!(std::fs::read(kept).unwrap(), b"old");
    }

    #[test]
    fn the_token_is_never_printed() {
        let o = EnrollOptions::new(
            "https://c.example",
            "s3cret-token",
            CaPin::Fingerprint("x".into()),
            "/tmp/s",
        );
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
