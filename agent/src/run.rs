//! Producing evidence: one scan of this host, signed as a DSSE envelope of
//! an in-toto statement, appended to the agent's hash chain and spooled.
//!
//! Crash-safety order (docs/agent.md): the envelope is durable in the spool
//! before `chain.json` names it as the head. If the agent dies between the
//! two, the next run finds a spool file beyond the recorded head and adopts
//! it (its bytes and digest are already fixed), so a sequence number is
//! never reused for different bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tracing::{info, warn};

use annexa_checks::engine::{self, ScanReport, Selection, SelectionError};
use annexa_checks::host::HostView;
use annexa_checks::pack::PackSet;
use annexa_checks::result::Summary;
use annexa_evidence::api::AgentPolicy;
use annexa_evidence::dsse::IN_TOTO_PAYLOAD_TYPE;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::receipt::Receipt;
use annexa_evidence::statement::{
    AgentInfo, Gap, KeyRotation, ScanPredicate, parse_scan_envelope, scan_statement,
};

use crate::config::{AgentConfig, ConfigError};
use crate::send::SendError;
use crate::spool::{Spool, SpoolError};
use crate::state::{ChainHead, Enrollment, StateDir, StateError, machine_id_sha256};

/// Why no envelope was produced.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent has not enrolled.
    #[error(
        "not enrolled: {path} does not exist; enroll first with \
         `annexa enroll --server https://HOST:PORT --token-file TOKEN_FILE --ca FILE`"
    )]
    NotEnrolled {
        /// The missing enrollment.json.
        path: String,
    },
    /// Enrolled, but the chain head is missing and nothing in the spool
    /// tells where the chain stands.
    #[error(
        "{path} is missing: the agent does not know its next sequence number; run `annexa enroll` \
         again with the same state directory (the collector tells where the chain stands)"
    )]
    NoChain {
        /// The missing chain.json.
        path: String,
    },
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// The spool.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The check packs could not be loaded.
    #[error("{0}")]
    Packs(String),
    /// A parameter override in the configuration is not acceptable.
    #[error("params: {0}")]
    Params(String),
    /// The scan engine refused the selection.
    #[error(transparent)]
    Scan(#[from] SelectionError),
    /// A spooled envelope that is not what this agent writes.
    #[error("{path}: spooled envelope {sequence} cannot be read back: {message}")]
    Corrupt {
        /// The spool file.
        path: String,
        /// Its sequence number.
        sequence: u64,
        /// What is wrong.
        message: String,
    },
    /// Setting up delivery failed (the pinned CA, the server URL).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The scan task died.
    #[error("the scan task failed: {0}")]
    Task(String),
}

/// One envelope produced and spooled.
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    /// Its sequence number.
    pub sequence: u64,
    /// Hex SHA-256 of its bytes (what the next envelope's `previous` names
    /// and the collector's receipt acknowledges).
    pub digest: String,
    /// The spool file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Envelopes dropped from a full spool, recorded in this one.
    pub gap: Option<Gap>,
    /// The scan's counts.
    pub summary: Summary,
}

/// What signing needs besides the scan.
struct Signer<'a> {
    key: &'a SigningKey,
    /// The key to declare for the next envelopes (a pending rotation).
    next_key: Option<&'a SigningKey>,
    enrollment: &'a Enrollment,
    machine_id_sha256: String,
    labels: BTreeMap<String, String>,
    interval_seconds: Option<u64>,
    log_alert: Option<annexa_evidence::statement::LogAlert>,
}

impl Signer<'_> {
    /// The envelope's JSON bytes for a run.
    fn envelope(
        &self,
        sequence: u64,
        previous: &Option<String>,
        gap: &Option<Gap>,
        scan: &ScanReport,
    ) -> Vec<u8> {
        let predicate = ScanPredicate {
            agent: AgentInfo {
                id: self.enrollment.agent_id.clone(),
                version: crate::VERSION.to_string(),
                key_id: self.key.public().key_id(),
            },
            sequence,
            previous: previous.clone(),
            labels: self.labels.clone(),
            gap: gap.clone(),
            interval_seconds: self.interval_seconds,
            log_alert: self.log_alert.clone(),
            key_rotation: self.next_key.map(|next| {
                KeyRotation::new(
                    self.enrollment.agent_id.as_str(),
                    sequence,
                    &self.key.public().key_id(),
                    next,
                )
            }),
            scan: scan.clone(),
        };
        let statement = scan_statement(predicate, &self.machine_id_sha256);
        // Serializing plain data into a Vec cannot fail.
        let payload = serde_json::to_vec(&statement).unwrap_or_default();
        annexa_evidence::dsse::sign(IN_TOTO_PAYLOAD_TYPE, &payload, self.key).to_json()
    }
}

/// Produces one envelope: scans this host (built-in packs plus
/// `config.packs_dir` if it exists, with `config.params`), signs the run as
/// the next link of the chain, spools it and records it as the chain head.
///
/// Blocking (file I/O and the scan): from async code call it in
/// `tokio::task::spawn_blocking` (it waits on the in-process spool lock
/// with `blocking_lock`, which must not run on an async worker). When
/// other processes may use the state directory, hold its lock
/// ([`StateDir::try_lock`]) as [`crate::run_once`] does.
pub fn produce(config: &AgentConfig, state: &StateDir) -> Result<Produced, RunError> {
    let enrollment = enrolled(state)?;
    let spool = Spool::open(state.spool_dir())?;
    // Before scanning: a state problem should not cost a scan.
    recover_chain(state, &spool)?;
    let policy = state.policy()?;
    let report = scan_live(config, policy.as_ref())?;
    seal(config, state, &enrollment, &report)
}

/// The enrollment, or the error telling how to enroll.
pub(crate) fn enrolled(state: &StateDir) -> Result<Enrollment, RunError> {
    state.enrollment()?.ok_or_else(|| RunError::NotEnrolled {
        path: state.enrollment_path().display().to_string(),
    })
}

/// Scans the running host with the configuration's parameters, overridden
/// by those the collector's SoA sets (the organisation's SoA decides what
/// evidence counts; a parameter no loaded pack declares is left out).
pub fn scan_live(
    config: &AgentConfig,
    policy: Option<&AgentPolicy>,
) -> Result<ScanReport, RunError> {
    annexa_checks::pack::check_trusted_dir(&config.packs_dir).map_err(RunError::Packs)?;
    let set = PackSet::load(true, std::slice::from_ref(&config.packs_dir), true)
        .map_err(|e| RunError::Packs(e.to_string().trim_end().to_string()))?;
    let mut overrides = config.param_overrides();
    if let Some(p) = policy {
        let declared = set
            .params_with(&Default::default())
            .map_err(RunError::Params)?;
        for (k, v) in &p.params {
            if !declared.0.contains_key(k) {
                tracing::warn!(param = %k, soa_version = p.soa_version, "the SoA sets a parameter no loaded pack declares; ignored");
                continue;
            }
            let v = v.to_string();
            if let Some(local) = overrides.get(k)
                && *local != v
            {
                tracing::warn!(param = %k, local = %local, soa = %v, soa_version = p.soa_version, "agent.toml sets a parameter the SoA sets differently; using the SoA's value");
            }
            overrides.insert(k.clone(), v);
        }
    }
    let params = set.params_with(&overrides).map_err(RunError::Params)?;
    Ok(engine::scan(
        &set,
        &HostView::live(),
        &params,
        &Selection::default(),
        crate::VERSION,
    )?)
}

/// The chain head, adopting a spooled envelope beyond it: the agent
/// stopped after spooling that envelope and before recording it in
/// chain.json. Its bytes are fixed (and maybe already delivered), so it
/// must stay the holder of its sequence number.
pub fn recover_chain(state: &StateDir, spool: &Spool) -> Result<ChainHead, RunError> {
    let recorded = state.chain()?;
    let pending = spool.pending()?;
    let floor = recorded.as_ref().map_or(0, |h| h.last_sequence);
    match pending.last() {
        Some((seq, path)) if *seq > floor || recorded.is_none() => {
            let bytes = spool.read(*seq)?;
            let corrupt = |message: String| RunError::Corrupt {
                path: path.display().to_string(),
                sequence: *seq,
                message,
            };
            // Adopt only what this agent evidently wrote for that number.
            let st = parse_scan_envelope(&bytes).map_err(corrupt)?;
            if st.predicate.sequence != *seq {
                return Err(corrupt(format!(
                    "its predicate says sequence {}",
                    st.predicate.sequence
                )));
            }
            let head = ChainHead {
                last_sequence: *seq,
                last_digest: Some(annexa_evidence::sha256_hex(&bytes)),
            };
            warn!(
                sequence = seq,
                recorded = floor,
                "adopting spooled envelope {seq} as the chain head: the agent stopped after \
                 spooling it and before recording it in chain.json"
            );
            state.write_chain(&head)?;
            Ok(head)
        }
        _ => recorded.ok_or_else(|| RunError::NoChain {
            path: state.chain_path().display().to_string(),
        }),
    }
}

/// Removes the lowest spooled envelope if the last receipt on file
/// already acknowledges it: the agent stopped between recording the
/// receipt and removing the file. Dropping it into a gap instead would
/// declare as skipped a sequence the collector has.
fn forget_acknowledged(
    state: &StateDir,
    spool: &Spool,
    enrollment: &Enrollment,
) -> Result<(), RunError> {
    let Some((seq, _)) = spool.pending()?.into_iter().next() else {
        return Ok(());
    };
    // Only an optimisation: a torn last line (power cut mid-append) must not
    // stop the agent from producing evidence.
    let (Ok(Some(env)), Ok(key)) = (state.last_receipt(), enrollment.collector_key()) else {
        return Ok(());
    };
    let digest = annexa_evidence::sha256_hex(&spool.read(seq)?);
    if Receipt::verify(&env, &key, &digest, enrollment.agent_id.as_str(), seq).is_ok() {
        spool.remove(seq)?;
    }
    Ok(())
}

/// The sequence numbers the envelopes about to be dropped had themselves
/// declared as gaps: if they are dropped unsent, those are still skipped
/// from the collector's point of view.
fn inherited_gap(spool: &Spool, dropped: &[u64]) -> Vec<u64> {
    dropped
        .iter()
        .filter_map(|seq| parse_scan_envelope(&spool.read(*seq).ok()?).ok())
        .flat_map(|st| st.predicate.gap.map(|g| g.dropped).unwrap_or_default())
        .collect()
}

/// Signs a scan as the next envelope and makes it durable: the spool file
/// first, then the chain head.
fn seal(
    config: &AgentConfig,
    state: &StateDir,
    enrollment: &Enrollment,
    report: &ScanReport,
) -> Result<Produced, RunError> {
    // Spool changes must not interleave with a delivery in progress.
    let lock = state.spool_lock().clone();
    let _guard = lock.blocking_lock();
    let spool = Spool::open(state.spool_dir())?;
    let head = recover_chain(state, &spool)?;
    forget_acknowledged(state, &spool, enrollment)?;
    if let Some(k) = state.settle_rotation(head.last_sequence)? {
        info!(key = %k, "key rotation completed: the agent signs with key {k}");
    }
    // Loaded here, under the spool lock: a rotation changes it.
    let (key, _) = state.signing_key()?;
    let next_key = state.next_key()?;
    let mut labels = enrollment.labels.clone();
    labels.extend(config.labels.clone());
    let signer = Signer {
        key: &key,
        next_key: next_key.as_ref(),
        enrollment,
        machine_id_sha256: machine_id_sha256(),
        labels,
        interval_seconds: config.interval_seconds(),
        log_alert: state.log_alert()?,
    };
    let sequence = head.last_sequence + 1;
    let mut gap = None;
    let mut dropped: Vec<u64> = Vec::new();
    let mut bytes = signer.envelope(sequence, &head.last_digest, &gap, report);
    // The gap is signed, so the drop is decided before the final signature.
    if !spool.fits(bytes.len() as u64, config.spool_max_bytes)? {
        dropped = spool.plan_room(bytes.len() as u64, config.spool_max_bytes)?;
        // An envelope declaring a key the collector has not acknowledged
        // stays, and so does everything before it (its chain link).
        if let Some(keep) = state.undropable()? {
            dropped.retain(|s| *s > keep);
        }
        let inherited = inherited_gap(&spool, &dropped);
        if !dropped.is_empty() {
            let all: BTreeSet<u64> = inherited
                .into_iter()
                .chain(dropped.iter().copied())
                .collect();
            gap = Some(Gap {
                dropped: all.into_iter().collect(),
                reason: format!(
                    "spool full: {} undelivered envelope(s) exceeded spool_max_bytes = {}; \
                     superseded by this run",
                    dropped.len(),
                    config.spool_max_bytes
                ),
            });
            bytes = signer.envelope(sequence, &head.last_digest, &gap, report);
        }
        if bytes.len() as u64 > config.spool_max_bytes {
            warn!(
                sequence,
                size = bytes.len(),
                spool_max_bytes = config.spool_max_bytes,
                "envelope {sequence} alone is larger than spool_max_bytes; spooling it anyway \
                 (the newest evidence is always kept)"
            );
        }
    }
    let digest = annexa_evidence::sha256_hex(&bytes);
    if let Some(next) = &next_key {
        state.record_rotation(sequence, &next.public().key_id())?;
    }
    let path = spool.append(sequence, &bytes)?;
    state.write_chain(&ChainHead {
        last_sequence: sequence,
        last_digest: Some(digest.clone()),
    })?;
    if let Some(k) = state.settle_rotation(sequence)? {
        info!(
            sequence,
            key = %k,
            "envelope {sequence} declares the agent's next key {k}; later envelopes are signed with it"
        );
    }
    // Only now that the envelope recording the gap is durable.
    spool.drop_superseded(&dropped, config.spool_max_bytes)?;
    if let Some(alert) = &signer.log_alert {
        state.clear_log_alert(&alert.previous_checkpoint)?;
    }
    info!(
        sequence,
        digest = %digest,
        size = bytes.len(),
        pass = report.summary.pass,
        fail = report.summary.fail,
        error = report.summary.error,
        "produced envelope {sequence}"
    );
    Ok(Produced {
        sequence,
        digest,
        path,
        size: bytes.len() as u64,
        gap,
        summary: report.summary,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use annexa_evidence::dsse::Envelope;
    use annexa_evidence::receipt::RECEIPT_PAYLOAD_TYPE;
    use std::sync::OnceLock;

    /// A scan report of a small root directory, made once.
    pub(crate) fn small_report() -> ScanReport {
        static REPORT: OnceLock<ScanReport> = OnceLock::new();
        REPORT
            .get_or_init(|| {
                let root = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(root.path().join("etc/ssh")).unwrap();
                std::fs::write(root.path().join("etc/os-release"), "ID=debian\n").unwrap();
                std::fs::write(
                    root.path().join("etc/ssh/sshd_config"),
                    "ClientAliveInterval 300\n",
                )
                .unwrap();
                let set = PackSet::load(true, &[], true).unwrap();
                let params = set.params_with(&Default::default()).unwrap();
                let host = HostView::root(root.path()).unwrap();
                let sel = Selection {
                    checks: vec!["ssh.client-alive-interval".into()],
                    ..Default::default()
                };
                engine::scan(&set, &host, &params, &sel, "test").unwrap()
            })
            .clone()
    }

    /// An enrolled state directory with a fresh chain.
    pub(crate) fn enrolled_state(dir: &std::path::Path) -> (StateDir, SigningKey) {
        let state = StateDir::open(dir).unwrap();
        let collector = SigningKey::from_seed(&[9u8; 32]).unwrap();
        state
            .write_enrollment(&Enrollment {
                agent_id: "agent-1".into(),
                server: "https://collector.example".into(),
                collector_public_key: collector.public().to_b64(),
                collector_key_id: collector.public().key_id(),
                ca_path: "ca.pem".into(),
                labels: [("env".to_string(), "test".to_string())].into(),
                enrolled_at: "2026-01-01T00:00:00Z".into(),
                collector_key_transitions: Vec::new(),
            })
            .unwrap();
        state.write_chain(&ChainHead::default()).unwrap();
        (state, collector)
    }

    fn seal_one(config: &AgentConfig, state: &StateDir) -> Produced {
        let e = state.enrollment().unwrap().unwrap();
        seal(config, state, &e, &small_report()).unwrap()
    }

    fn predicate_of(bytes: &[u8]) -> ScanPredicate {
        parse_scan_envelope(bytes).unwrap().predicate
    }

    #[test]
    fn a_rotation_is_declared_with_the_old_key_then_the_new_key_signs() {
        let d = tempfile::tempdir().unwrap();
        let (state, _) = enrolled_state(d.path());
        let config = AgentConfig::default();
        let old = state.signing_key().unwrap().0.public();
        seal_one(&config, &state);
        let (next, made) = state.prepare_rotation().unwrap();
        assert!(
            made && !state.prepare_rotation().unwrap().1,
            "one pending key"
        );
        let declaring = seal_one(&config, &state);
        let bytes = std::fs::read(&declaring.path).unwrap();
        let env = Envelope::from_json(&bytes).unwrap();
        env.verify(IN_TOTO_PAYLOAD_TYPE, &[old], 1).unwrap();
        let r = predicate_of(&bytes).key_rotation.expect("declared");
        assert_eq!(
            r.verify("agent-1", 2, &old.key_id()).unwrap(),
            next.public()
        );
        // From the next envelope on: the new key, no declaration, and the
        // old key is gone from the state directory.
        assert!(!state.next_key_path().exists());
        assert_eq!(state.signing_key().unwrap().0.public(), next.public());
        let after = std::fs::read(seal_one(&config, &state).path).unwrap();
        assert!(predicate_of(&after).key_rotation.is_none());
        Envelope::from_json(&after)
            .unwrap()
            .verify(IN_TOTO_PAYLOAD_TYPE, &[next.public()], 1)
            .unwrap();
        // A declaration that never reached the chain (a crash before the
        // spool write) is forgotten, and the key stays pending.
        let (third, _) = state.prepare_rotation().unwrap();
        state.record_rotation(9, &third.public().key_id()).unwrap();
        assert_eq!(state.settle_rotation(3).unwrap(), None);
        assert!(state.next_key_path().exists());
        assert_eq!(state.signing_key().unwrap().0.public(), next.public());
    }

    #[test]
    fn envelopes_chain_by_sequence_and_digest_and_verify() {
        let d = tempfile::tempdir().unwrap();
        let (state, _) = enrolled_state(d.path());
        let config = AgentConfig::default();
        let a = seal_one(&config, &state);
        let b = seal_one(&config, &state);
        assert_eq!((a.sequence, b.sequence), (1, 2));
        assert_eq!(
            state.chain().unwrap().unwrap(),
            ChainHead {
                last_sequence: 2,
                last_digest: Some(b.digest.clone())
            }
        );
        let bytes = std::fs::read(&b.path).unwrap();
        assert_eq!(annexa_evidence::sha256_hex(&bytes), b.digest);
        let p = predicate_of(&bytes);
        assert_eq!(p.previous.as_deref(), Some(a.digest.as_str()));
        assert_eq!(p.agent.id, "agent-1");
        assert_eq!(p.labels["env"], "test");
        let (key, _) = state.signing_key().unwrap();
        Envelope::from_json(&bytes)
            .unwrap()
            .verify(IN_TOTO_PAYLOAD_TYPE, &[key.public()], 1)
            .unwrap();
        assert!(
            predicate_of(&std::fs::read(&a.path).unwrap())
                .previous
                .is_none()
        );
    }

    #[test]
    fn a_spooled_envelope_beyond_the_recorded_head_is_adopted() {
        let d = tempfile::tempdir().unwrap();
        let (state, _) = enrolled_state(d.path());
        let config = AgentConfig::default();
        let first = seal_one(&config, &state);
        let second = seal_one(&config, &state);
        // The agent died after spooling 2 and before recording it.
        state
            .write_chain(&ChainHead {
                last_sequence: 1,
                last_digest: Some(first.digest.clone()),
            })
            .unwrap();
        let spool = Spool::open(state.spool_dir()).unwrap();
        let head = recover_chain(&state, &spool).unwrap();
        assert_eq!(head.last_sequence, 2);
        assert_eq!(head.last_digest.as_deref(), Some(second.digest.as_str()));
        assert_eq!(state.chain().unwrap().unwrap(), head);
        // So the next run is 3, chained to the adopted bytes; 2 is not reused.
        let third = seal_one(&config, &state);
        assert_eq!(third.sequence, 3);
        let p = predicate_of(&std::fs::read(&third.path).unwrap());
        assert_eq!(p.previous.as_deref(), Some(second.digest.as_str()));
        assert_eq!(
            std::fs::read(&second.path).unwrap(),
            spool.read(2).unwrap(),
            "the adopted envelope is untouched"
        );
        // With chain.json lost altogether, the spool still tells.
        std::fs::remove_file(state.chain_path()).unwrap();
        assert_eq!(recover_chain(&state, &spool).unwrap().last_sequence, 3);
        // A file that is not an envelope is never adopted.
        spool.append(9, b"not an envelope").unwrap();
        let err = recover_chain(&state, &spool).unwrap_err().to_string();
        assert!(err.contains("00000000000000000009.dsse.json"), "{err}");
    }

    #[test]
    fn without_chain_or_spool_the_agent_refuses_to_guess() {
        let d = tempfile::tempdir().unwrap();
        let (state, _) = enrolled_state(d.path());
        std::fs::remove_file(state.chain_path()).unwrap();
        let spool = Spool::open(state.spool_dir()).unwrap();
        let err = recover_chain(&state, &spool).unwrap_err();
        assert!(matches!(err, RunError::NoChain { .. }), "{err}");
    }

    #[test]
    fn a_full_spool_is_superseded_and_the_gap_signed_and_inherited() {
        let d = tempfile::tempdir().unwrap();
        let (state, _) = enrolled_state(d.path());
        let roomy = AgentConfig::default();
        let one = seal_one(&roomy, &state);
        seal_one(&roomy, &state);
        seal_one(&roomy, &state);
        // Room for about two envelopes: the fourth overflows.
        let tight = AgentConfig {
            spool_max_bytes: one.size * 3,
            ..AgentConfig::default()
        };
        let fourth = seal_one(&tight, &state);
        assert_eq!(fourth.sequence, 4);
        let gap = fourth.gap.clone().unwrap();
        assert_eq!(gap.dropped, [1, 2, 3]);
        let spool = Spool::open(state.spool_dir()).unwrap();
        let seqs: Vec<u64> = spool.pending().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [4]);
        let p = predicate_of(&spool.read(4).unwrap());
        assert_eq!(p.gap, Some(gap));
        // 4 was never delivered either: when it is dropped in turn, the
        // next gap names everything the collector will have skipped.
        seal_one(&tight, &state);
        let sixth = seal_one(&tight, &state);
        assert_eq!(sixth.gap.unwrap().dropped, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_full_spool_never_drops_an_unacknowledged_key_declaration() {
        let d = tempfile::tempdir().unwrap();
        let (state, _) = enrolled_state(d.path());
        let roomy = AgentConfig::default();
        let one = seal_one(&roomy, &state);
        state.prepare_rotation().unwrap();
        let declaring = seal_one(&roomy, &state);
        seal_one(&roomy, &state);
        let tight = AgentConfig {
            spool_max_bytes: one.size * 3,
            ..AgentConfig::default()
        };
        // Envelopes 1 and 2 stay (2 declares the key that signs 3 on, and
        // needs 1 before it); only what follows the declaration is dropped.
        let fourth = seal_one(&tight, &state);
        assert_eq!(fourth.gap.clone().unwrap().dropped, [3]);
        let fifth = seal_one(&tight, &state);
        assert_eq!(fifth.gap.clone().unwrap().dropped, [3, 4]);
        let spool = Spool::open(state.spool_dir()).unwrap();
        let seqs: Vec<u64> = spool.pending().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 2, 5]);
        assert_eq!(state.undropable().unwrap(), Some(declaring.sequence));
        // Delivered and acknowledged, the declaration is no longer held.
        spool.remove(1).unwrap();
        spool.remove(2).unwrap();
        state.acknowledged(2).unwrap();
        assert_eq!(state.undropable().unwrap(), None);
        let tighter = AgentConfig {
            spool_max_bytes: one.size + 1,
            ..AgentConfig::default()
        };
        let sixth = seal_one(&tighter, &state);
        assert_eq!(sixth.gap.unwrap().dropped, [3, 4, 5]);
    }

    #[test]
    fn an_acknowledged_envelope_is_not_declared_dropped() {
        let d = tempfile::tempdir().unwrap();
        let (state, collector) = enrolled_state(d.path());
        let roomy = AgentConfig::default();
        let one = seal_one(&roomy, &state);
        seal_one(&roomy, &state);
        // Envelope 1 was acknowledged and its receipt recorded, but the
        // agent stopped before removing the spool file.
        let receipt = Receipt {
            envelope_sha256: one.digest.clone(),
            agent_id: "agent-1".into(),
            sequence: 1,
            accepted_at: "2026-01-01T00:00:00Z".into(),
            duplicate: false,
            log_index: Some(0),
        }
        .sign(&collector);
        assert_eq!(receipt.payload_type, RECEIPT_PAYLOAD_TYPE);
        state.append_receipt(&receipt).unwrap();
        let tight = AgentConfig {
            spool_max_bytes: one.size * 2,
            ..AgentConfig::default()
        };
        let third = seal_one(&tight, &state);
        assert_eq!(third.gap.unwrap().dropped, [2]);
    }
}
