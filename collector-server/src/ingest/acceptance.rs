//! Where an envelope is refused, and why: every rule that turns an
//! envelope away, and the [`Rejection`] each one answers with.
//!
//! The rules run in two places, both named here:
//! - [`accept`], on the request's task (so that signature checks use every
//!   core): the canonical encoding, the signer (key id, enrolled, retired,
//!   revoked), the signature and the statement ([`check`]), the retired
//!   key's span, the agent's clock, and a declared next key that is new;
//! - [`decide`], on the single writer, against the agent's chain head:
//!   the chain rule (sequence, previous digest, declared gap) and the key
//!   in force at that head.
//!
//! The store itself refuses one more thing at commit: moving the chain of
//! an agent revoked by another process (answered as revoked by the batch).

use std::time::Duration;

use annexa_checks::CheckId;
use annexa_checks::result::Status;
use annexa_evidence::api::codes;
use annexa_evidence::chain::{Step, step};
use annexa_evidence::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::keys::PublicKey;
use annexa_evidence::statement::{parse_scan_statement, subject_name};
use serde_json::json;

use super::AgentCache;
use crate::clock;
use crate::conformity::RunProfile;
use crate::store::{AgentRecord, Store, StoreError};

/// Why an envelope is refused; maps to an HTTP status and API error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// API error code.
    pub code: &'static str,
    /// Message for the agent's log.
    pub message: String,
    /// For sequence errors.
    pub expected_sequence: Option<u64>,
}

impl Rejection {
    pub(super) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            code,
            message: message.into(),
            expected_sequence: None,
        }
    }

    fn sequence(message: impl Into<String>, expected: u64) -> Rejection {
        Rejection {
            expected_sequence: Some(expected),
            ..Rejection::new(409, codes::SEQUENCE, message)
        }
    }

    /// The store could not answer: the agent keeps the envelope and retries.
    pub(super) fn unavailable(e: StoreError) -> Rejection {
        Rejection::new(503, codes::UNAVAILABLE, e.to_string())
    }

    fn invalid(message: impl Into<String>) -> Rejection {
        Rejection::new(422, codes::INVALID_STATEMENT, message)
    }
}

/// A store failure as the API answers it on every route: the caller's
/// case (not found, refused, conflict) by name; a broken store logged here
/// and answered without its internals.
impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Rejection {
        match e {
            StoreError::NotFound(m) => Rejection::new(404, codes::NOT_FOUND, m),
            StoreError::Denied(m) => Rejection::new(403, codes::FORBIDDEN, m),
            StoreError::Conflict(m) => Rejection::new(409, codes::CONFLICT, m),
            StoreError::Broken(m) => {
                tracing::error!(error = %m, "store failure");
                Rejection::new(
                    503,
                    codes::UNAVAILABLE,
                    "the collector's store is unavailable",
                )
            }
        }
    }
}

/// An envelope whose signature and statement have been checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The agent that signed it.
    pub agent: AgentRecord,
    /// Its sequence number.
    pub sequence: u64,
    /// Its declared previous digest.
    pub previous: Option<String>,
    /// Declared dropped sequences.
    pub gap: Option<Vec<u64>>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Summary counts (JSON).
    pub summary: String,
    /// `[{check_id, status}]` (JSON).
    pub results: String,
    /// (check, status, observed) for the latest-results table.
    pub latest: Vec<(CheckId, Status, Option<String>)>,
    /// How the scan was produced (its time is capped at acceptance).
    pub profile: RunProfile,
    /// The bytes as received.
    pub bytes: Vec<u8>,
    /// The agent's clock when it delivered the envelope (RFC 3339 UTC), as
    /// it said in its `annexa-agent-time` header.
    pub agent_time: Option<String>,
    /// When the scan finished, by the agent's clock (signed).
    pub finished_at: String,
    /// The next key this envelope declares: (key id, public key).
    pub rotate_to: Option<(String, String)>,
}

/// What the request-side rules read besides the envelope.
pub struct Gate<'a> {
    /// Enrolled and retired agent keys.
    pub store: &'a dyn Store,
    /// Enrolled agents' keys already looked up.
    pub agents: &'a AgentCache,
    /// How far an agent's clock may be off (None: any).
    pub clock_skew_tolerance: Option<Duration>,
}

/// Every rule that can refuse an envelope before the writer sees it, in
/// the order they cost: `body` is the envelope as received (kept as the
/// stored bytes, not copied), `agent_time` the raw `annexa-agent-time`
/// header.
pub async fn accept(
    gate: &Gate<'_>,
    body: Vec<u8>,
    agent_time: Option<&[u8]>,
) -> Result<Checked, Rejection> {
    let env = Envelope::from_json(&body)
        .map_err(|e| Rejection::new(400, codes::MALFORMED, e.to_string()))?;
    canonical(&env, &body)?;
    let (agent, retired_after) = signer(gate.store, gate.agents, &env).await?;
    // Verification is ~0.1-0.3 ms of CPU: cheaper on this worker than the
    // thread hand-off to a blocking pool would be.
    let mut checked = check(agent, &env, body)?;
    within_retired_span(&checked, retired_after)?;
    checked.agent_time = agent_clock(
        gate.clock_skew_tolerance,
        agent_time,
        &checked,
        clock::now_unix(),
    )?;
    new_key_is_new(gate.store, &checked).await?;
    Ok(checked)
}

/// The chain links envelopes by the SHA-256 of their bytes, which the
/// signature does not cover: only the one canonical encoding annexa agents
/// emit is accepted, so nobody holding an undelivered envelope can submit
/// a re-encoded copy first and break the agent's chain.
fn canonical(env: &Envelope, body: &[u8]) -> Result<(), Rejection> {
    if env.is_canonical(body) {
        return Ok(());
    }
    Err(Rejection::new(
        400,
        codes::MALFORMED,
        "envelope is not in canonical form (compact JSON with payload, payloadType, signatures in that order; standard padded base64)",
    ))
}

/// Looks up the agent that signed an envelope. A key the agent rotated
/// away from is found too, as the agent with that key and the last
/// sequence number the key signed: re-sent envelopes it signed are still
/// recognised (and answered with their receipts), nothing newer.
pub async fn signer(
    store: &dyn Store,
    cache: &AgentCache,
    env: &Envelope,
) -> Result<(AgentRecord, Option<u64>), Rejection> {
    // The key id is a hint: it picks the enrolled agent, whose key the
    // collector holds; the signature is then verified with that key, never
    // with anything the envelope says. Canonical envelopes carry exactly one
    // signature, so one lookup per envelope, however many entries it lists.
    let [only] = env.signatures.as_slice() else {
        return Err(Rejection::new(
            400,
            codes::MALFORMED,
            format!(
                "the envelope has {} signatures; annexa agents sign with exactly one",
                env.signatures.len()
            ),
        ));
    };
    let key_id = only.keyid.as_str();
    if key_id.len() != 64 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::new(
            401,
            codes::UNKNOWN_AGENT,
            "the signature names no key id (64 hex digits); annexa agents sign with their key id",
        ));
    }
    let (agent, retired_after) = match cache.get(key_id) {
        Some(a) => (a, None),
        None => match store
            .agent_by_key(key_id)
            .await
            .map_err(Rejection::unavailable)?
        {
            Some(found) => {
                cache.put(found.clone());
                (found, None)
            }
            None => {
                let (mut agent, old) = store
                    .retired_key(key_id)
                    .await
                    .map_err(Rejection::unavailable)?
                    .ok_or_else(|| {
                        Rejection::new(
                            401,
                            codes::UNKNOWN_AGENT,
                            format!("no enrolled agent has key {key_id}"),
                        )
                    })?;
                agent.key_id = old.key_id;
                agent.public_key = old.public_key;
                (agent, Some(old.until_sequence))
            }
        },
    };
    if agent.revoked_at.is_some() {
        return Err(Rejection::new(
            403,
            codes::REVOKED_AGENT,
            format!("agent {} is revoked", agent.id),
        ));
    }
    Ok((agent, retired_after))
}

/// Verifies signature and statement. CPU-bound; no I/O.
pub fn check(agent: AgentRecord, env: &Envelope, bytes: Vec<u8>) -> Result<Checked, Rejection> {
    let key = PublicKey::from_b64(&agent.public_key).map_err(|e| {
        Rejection::new(
            503,
            codes::UNAVAILABLE,
            format!("stored key of {}: {e}", agent.id),
        )
    })?;
    let verified = env
        .verify(IN_TOTO_PAYLOAD_TYPE, &[key], 1)
        .map_err(|e| match e {
            DsseError::PayloadType { .. } => Rejection::invalid(e.to_string()),
            other => Rejection::new(401, codes::BAD_SIGNATURE, other.to_string()),
        })?;
    let st =
        parse_scan_statement(&verified.payload).map_err(|e| Rejection::invalid(e.to_string()))?;
    let p = &st.predicate;
    if p.agent.id != agent.id {
        return Err(Rejection::invalid(format!(
            "predicate names agent {}, but the envelope is signed by agent {}",
            p.agent.id, agent.id
        )));
    }
    if p.agent.key_id != agent.key_id {
        return Err(Rejection::invalid(format!(
            "predicate names key {}, but the envelope is signed with {}",
            p.agent.key_id, agent.key_id
        )));
    }
    let subject = &st.subject[0];
    if st.subject.len() != 1 || subject.name.as_deref() != Some(subject_name(&agent.id).as_str()) {
        return Err(Rejection::invalid(format!(
            "the subject must be the one host `{}`",
            subject_name(&agent.id)
        )));
    }
    let machine = subject.digest.as_ref().and_then(|d| d.get("sha256"));
    if machine.map(String::as_str) != Some(agent.machine_id_sha256.as_str()) {
        return Err(Rejection::invalid(
            "the subject's machine identity differs from the one enrolled",
        ));
    }
    if p.sequence == 0 || p.sequence > i64::MAX as u64 {
        return Err(Rejection::invalid(format!(
            "sequence {} is outside 1..=2^63-1",
            p.sequence
        )));
    }
    if let Some(alert) = &p.log_alert {
        tracing::error!(
            agent = %agent.id,
            sequence = p.sequence,
            error = ?alert.error,
            detected_at = ?alert.detected_at,
            "an agent reports that this collector's evidence log is inconsistent with a checkpoint it held: investigate with `annexa verify log`"
        );
    }
    let results: Vec<serde_json::Value> = p
        .scan
        .results
        .iter()
        .map(|r| json!({"check_id": r.check_id, "status": r.status}))
        .collect();
    let latest = p
        .scan
        .results
        .iter()
        .map(|r| (r.check_id.clone(), r.status, r.observed.clone()))
        .collect();
    let rotate_to = match &p.key_rotation {
        None => None,
        Some(r) => {
            let key = r
                .verify(&agent.id, p.sequence, &agent.key_id)
                .map_err(|m| Rejection::invalid(format!("envelope {}: {m}", p.sequence)))?;
            Some((key.key_id(), key.to_b64()))
        }
    };
    let profile = RunProfile::of(&p.scan, p.interval_seconds, clock::now_unix());
    Ok(Checked {
        profile,
        sha256: annexa_evidence::sha256_hex(&bytes),
        sequence: p.sequence,
        previous: p.previous.clone(),
        gap: p.gap.as_ref().map(|g| g.dropped.clone()),
        summary: serde_json::to_string(&p.scan.summary).unwrap_or_default(),
        results: serde_json::Value::Array(results).to_string(),
        latest,
        bytes,
        agent,
        agent_time: None,
        finished_at: p.scan.finished_at.clone(),
        rotate_to,
    })
}

/// A retired key signs nothing after the envelope that declared its
/// successor (`retired_after`, from [`signer`]).
fn within_retired_span(checked: &Checked, retired_after: Option<u64>) -> Result<(), Rejection> {
    match retired_after {
        Some(last) if checked.sequence > last => Err(Rejection::new(
            401,
            codes::UNKNOWN_AGENT,
            format!(
                "key {} of agent {} was retired after sequence {last}; envelope {} must be signed with its current key",
                checked.agent.key_id, checked.agent.id, checked.sequence
            ),
        )),
        _ => Ok(()),
    }
}

/// The agent's clock as its `annexa-agent-time` header gives it, checked
/// against the collector's (`now`) within `tolerance`. A scan that
/// finished later than now plus the tolerance is refused too: a fast clock
/// shows there even without the header. The envelope is refused, not
/// stored with a wrong time: the agent keeps it and sends it again once its
/// clock is right.
fn agent_clock(
    tolerance: Option<Duration>,
    header: Option<&[u8]>,
    checked: &Checked,
    now: i64,
) -> Result<Option<String>, Rejection> {
    use annexa_evidence::api::AGENT_TIME_HEADER;
    let said = match header {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(clock::normalize_rfc3339)
                .ok_or_else(|| {
                    Rejection::new(
                        400,
                        codes::MALFORMED,
                        format!(
                            "header {AGENT_TIME_HEADER}: {:?} is not an RFC 3339 time",
                            String::from_utf8_lossy(v)
                        ),
                    )
                })?,
        ),
    };
    let Some(tolerance) = tolerance else {
        return Ok(said.map(|(text, _)| text));
    };
    let tolerance = tolerance.as_secs() as i64;
    let skewed = |what: String, skew: i64| {
        Rejection::new(
            422,
            codes::CLOCK_SKEW,
            format!(
                "{what}, {} s {} the collector's clock ({}); clock_skew_tolerance_seconds is {tolerance}. \
                 Synchronise the agent's clock; it keeps the envelope and sends it again",
                skew.abs(),
                if skew > 0 { "ahead of" } else { "behind" },
                clock::rfc3339(now)
            ),
        )
    };
    if let Some((text, at)) = &said
        && (at - now).abs() > tolerance
    {
        return Err(skewed(format!("the agent's clock reads {text}"), at - now));
    }
    // Only without the header: an agent whose clock is right now may still
    // hold envelopes it signed while it was wrong, and refusing those would
    // block its chain until real time caught up with them.
    if said.is_none()
        && let Some(finished) = clock::parse_rfc3339(&checked.finished_at)
        && finished - now > tolerance
    {
        return Err(skewed(
            format!(
                "envelope {} says its scan finished at {}",
                checked.sequence, checked.finished_at
            ),
            finished - now,
        ));
    }
    Ok(said.map(|(text, _)| text))
}

/// A declared next key already enrolled or retired would fail the whole
/// batch it lands in at the store's unique index: this envelope is refused
/// alone. The agent's own current key is the declaring envelope sent again
/// (the writer answers it as a duplicate).
async fn new_key_is_new(store: &dyn Store, checked: &Checked) -> Result<(), Rejection> {
    let Some((new_key, _)) = &checked.rotate_to else {
        return Ok(());
    };
    let known = store
        .agent_by_key(new_key)
        .await?
        .is_some_and(|a| a.id != checked.agent.id)
        || store.retired_key(new_key).await?.is_some();
    if known {
        return Err(Rejection::invalid(format!(
            "envelope {} declares key {new_key}, which is already in use or retired; a rotation needs a new key",
            checked.sequence
        )));
    }
    Ok(())
}

/// An agent's chain as the writer holds it: what the next envelope must
/// continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The next sequence number.
    pub next: u64,
    /// The digest of the last accepted envelope.
    pub last: Option<String>,
    /// The agent's key as of this head: a key rotated away from signs
    /// nothing after the envelope that declared the next one.
    pub key_id: String,
}

/// What the writer does with an envelope, by the chain rule.
#[derive(Debug)]
pub enum Decision {
    /// It extends the chain.
    Accept,
    /// Already accepted: answered with the original receipt if the bytes
    /// are the same.
    Duplicate,
    /// Refused.
    Reject(Rejection),
}

/// Applies the chain rule and the key in force to one envelope.
pub fn decide(head: &ChainHead, c: &Checked) -> Decision {
    let decision = match step(
        head.next,
        head.last.as_deref(),
        c.sequence,
        c.previous.as_deref(),
        c.gap.as_deref().unwrap_or(&[]),
    ) {
        Step::Extends => Decision::Accept,
        Step::Behind => Decision::Duplicate,
        Step::WrongPrevious => Decision::Reject(Rejection::sequence(
            format!(
                "sequence {} names previous {} but the last accepted envelope is {}",
                c.sequence,
                c.previous.as_deref().unwrap_or("none"),
                head.last.as_deref().unwrap_or("none")
            ),
            head.next,
        )),
        Step::UndeclaredJump => Decision::Reject(Rejection::sequence(
            format!(
                "sequence {} is out of order; expected {}",
                c.sequence, head.next
            ),
            head.next,
        )),
    };
    match decision {
        Decision::Accept if c.agent.key_id != head.key_id => Decision::Reject(Rejection::new(
            401,
            codes::UNKNOWN_AGENT,
            format!(
                "envelope {} is signed with key {}, which agent {} rotated away from; its key is {}",
                c.sequence, c.agent.key_id, c.agent.id, head.key_id
            ),
        )),
        d => d,
    }
}

/// A duplicate's bytes must be the ones accepted under its sequence.
pub(super) fn different_content(c: &Checked, next: u64) -> Rejection {
    Rejection::sequence(
        format!(
            "sequence {} was already accepted with different content; expected {next}",
            c.sequence
        ),
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(sequence: u64, previous: Option<&str>, gap: Option<Vec<u64>>) -> Checked {
        Checked {
            agent: AgentRecord {
                no: 1,
                id: "ag-1".into(),
                key_id: "k".into(),
                public_key: String::new(),
                hostname: "h".into(),
                machine_id_sha256: String::new(),
                labels: Default::default(),
                enrolled_at: String::new(),
                revoked_at: None,
                next_sequence: 1,
                last_digest: None,
                last_seen_at: None,
                run_profile: None,
            },
            profile: RunProfile::default(),
            sequence,
            previous: previous.map(str::to_string),
            gap,
            sha256: format!("{sequence:064x}"),
            summary: String::new(),
            results: String::new(),
            latest: Vec::new(),
            bytes: Vec::new(),
            agent_time: None,
            finished_at: String::new(),
            rotate_to: None,
        }
    }

    fn head(next: u64, last: Option<&str>) -> ChainHead {
        ChainHead {
            next,
            last: last.map(str::to_string),
            key_id: "k".into(),
        }
    }

    fn accepted(d: Decision) -> bool {
        matches!(d, Decision::Accept)
    }

    #[test]
    fn chain_rules() {
        let c = head(5, Some("d4"));
        assert!(accepted(decide(&c, &checked(5, Some("d4"), None))));
        assert!(
            matches!(decide(&c, &checked(5, Some("dx"), None)), Decision::Reject(r) if r.expected_sequence == Some(5))
        );
        assert!(matches!(
            decide(&c, &checked(4, Some("d3"), None)),
            Decision::Duplicate
        ));
        assert!(matches!(
            decide(&c, &checked(7, Some("d6"), None)),
            Decision::Reject(_)
        ));
        assert!(accepted(decide(
            &c,
            &checked(7, Some("d6"), Some(vec![5, 6]))
        )));
        assert!(matches!(
            decide(&c, &checked(7, Some("d6"), Some(vec![6]))),
            Decision::Reject(_)
        ));
    }

    #[test]
    fn a_gap_may_name_numbers_already_stored_whose_receipt_was_lost() {
        let c = head(5, Some("d4"));
        assert!(accepted(decide(
            &c,
            &checked(7, Some("d6"), Some(vec![3, 4, 5, 6]))
        )));
    }

    #[test]
    fn a_huge_sequence_is_refused_without_allocating_the_range() {
        let c = head(5, Some("d4"));
        assert!(matches!(
            decide(&c, &checked(u64::MAX, None, Some(vec![5]))),
            Decision::Reject(_)
        ));
        assert!(matches!(
            decide(&c, &checked(1 << 40, None, None)),
            Decision::Reject(_)
        ));
    }

    #[test]
    fn a_key_rotated_away_from_extends_no_chain() {
        let mut c = head(5, Some("d4"));
        c.key_id = "k2".into();
        assert!(
            matches!(decide(&c, &checked(5, Some("d4"), None)), Decision::Reject(r) if r.code == codes::UNKNOWN_AGENT)
        );
    }

    #[test]
    fn a_retired_key_signs_nothing_past_its_span() {
        let c = checked(8, None, None);
        assert!(within_retired_span(&c, Some(8)).is_ok());
        assert!(within_retired_span(&c, None).is_ok());
        let r = within_retired_span(&c, Some(7)).unwrap_err();
        assert_eq!((r.status, r.code), (401, codes::UNKNOWN_AGENT));
        assert!(
            r.message.contains("retired after sequence 7"),
            "{}",
            r.message
        );
    }

    #[test]
    fn the_agent_clock_is_held_to_the_tolerance() {
        let now = 1_800_000_000;
        let mut c = checked(3, None, None);
        c.finished_at = clock::rfc3339(now);
        let five_min = Some(Duration::from_secs(300));
        let at = |secs: i64| clock::rfc3339(now + secs).into_bytes();
        assert_eq!(
            agent_clock(five_min, Some(&at(-299)), &c, now).unwrap(),
            Some(clock::rfc3339(now - 299))
        );
        let r = agent_clock(five_min, Some(&at(-301)), &c, now).unwrap_err();
        assert_eq!((r.status, r.code), (422, codes::CLOCK_SKEW));
        assert!(r.message.contains("301 s behind"), "{}", r.message);
        // Any clock is accepted without a tolerance, but a header must be a time.
        assert!(agent_clock(None, Some(&at(-86_400)), &c, now).is_ok());
        let r = agent_clock(None, Some(b"yesterday"), &c, now).unwrap_err();
        assert_eq!((r.status, r.code), (400, codes::MALFORMED));
        // A scan from the future shows a fast clock without the header.
        c.finished_at = clock::rfc3339(now + 3600);
        let r = agent_clock(five_min, None, &c, now).unwrap_err();
        assert!(r.message.contains("3600 s ahead of"), "{}", r.message);
        // With the header, the clock now is what counts.
        assert!(agent_clock(five_min, Some(&at(0)), &c, now).is_ok());
    }
}
