//! Evidence submission: verify, chain, commit, receipt.

use std::time::Instant;

use annexa_evidence::api::{AGENT_TIME_HEADER, AgentPolicy, EvidenceResponse, LogState, codes};
use annexa_evidence::dsse::Envelope;
use annexa_evidence::receipt::Receipt;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};

use super::{AppState, Error};
use crate::{clock, ingest};

/// `POST /v1/evidence?log_size=N`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    /// The size of the newest checkpoint the agent holds: the response
    /// proves the new checkpoint consistent with it.
    #[serde(default)]
    pub log_size: Option<u64>,
}

/// `POST /v1/evidence`: the body is the envelope JSON, stored byte for byte.
pub async fn submit(
    State(state): State<AppState>,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EvidenceResponse>, Error> {
    let started = Instant::now();
    let result = match (query, body) {
        (Err(e), _) => Err(Error::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED,
            e.body_text(),
        )),
        (Ok(Query(q)), Ok(body)) => accept(&state, &headers, body, q.log_size).await,
        // Answered as the API's error (and counted) like every other refusal.
        (_, Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            "the envelope is larger than the collector's max_body_bytes",
        )),
        (_, Err(e)) => Err(Error::new(e.status(), codes::MALFORMED, e.body_text())),
    };
    if let Err(e) = &result {
        if e.status != StatusCode::CONFLICT || e.body.error != codes::SEQUENCE {
            state.metrics.reject(&e.body.error);
        }
        tracing::debug!(code = %e.body.error, message = %e.body.message, "evidence rejected");
    } else {
        state
            .metrics
            .ingest_latency
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    log_size: Option<u64>,
) -> Result<Json<EvidenceResponse>, Error> {
    let env = Envelope::from_json(&body)
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, e.to_string()))?;
    // The chain links envelopes by the SHA-256 of their bytes, which the
    // signature does not cover: accept only the one canonical encoding
    // annexa agents emit, so nobody holding an undelivered envelope can
    // submit a re-encoded copy first and break the agent's chain.
    if !env.is_canonical(&body) {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED,
            "envelope is not in canonical form (compact JSON with payload, payloadType, signatures in that order; standard padded base64)",
        ));
    }
    let (agent, retired_after) = ingest::signer(state.store.as_ref(), &state.agents, &env).await?;
    let bytes = body.to_vec();
    // Verification is ~0.1-0.3 ms of CPU: cheaper on this worker than the
    // thread hand-off to a blocking pool would be.
    let mut checked = ingest::check(agent, &env, bytes)?;
    if let Some(last) = retired_after
        && checked.sequence > last
    {
        return Err(Error::new(
            StatusCode::UNAUTHORIZED,
            codes::UNKNOWN_AGENT,
            format!(
                "key {} of agent {} was retired after sequence {last}; envelope {} must be signed with its current key",
                checked.agent.key_id, checked.agent.id, checked.sequence
            ),
        ));
    }
    checked.agent_time = agent_clock(state, headers, &checked)?;
    let (agent_id, sequence, digest) = (
        checked.agent.id.clone(),
        checked.sequence,
        checked.sha256.clone(),
    );
    if let Some((new_key, _)) = &checked.rotate_to {
        // A key already enrolled or retired would fail the whole batch it
        // lands in at the store's unique index: refuse this envelope alone.
        // The agent's own current key is the declaring envelope sent again
        // (the writer answers it as a duplicate).
        let known = state
            .store
            .agent_by_key(new_key)
            .await?
            .is_some_and(|a| a.id != checked.agent.id)
            || state.store.retired_key(new_key).await?.is_some();
        if known {
            return Err(Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::INVALID_STATEMENT,
                format!(
                    "envelope {} declares key {new_key}, which is already in use or retired; a rotation needs a new key",
                    checked.sequence
                ),
            ));
        }
    }
    let rotated = checked.rotate_to.is_some();
    let committed = match state.writer.submit(checked).await {
        Ok(c) => c,
        Err(r) => {
            if r.code == codes::REVOKED_AGENT {
                // Revoked by another process while cached here: look it up
                // in the store from now on.
                state.agents.forget(&agent_id);
            }
            return Err(r.into());
        }
    };
    if rotated && !committed.duplicate {
        // The cache maps the old key to the agent: from now on it is the
        // new key's.
        state.agents.forget(&agent_id);
        tracing::info!(agent = %agent_id, sequence, "agent key rotated");
    }
    let receipt = Receipt {
        envelope_sha256: digest,
        agent_id,
        sequence,
        accepted_at: committed.accepted_at,
        duplicate: committed.duplicate,
        log_index: committed.log_index,
    };
    let cp = &committed.checkpoint;
    // The proof is a courtesy to the agent's own check: a size the log
    // cannot prove from (beyond it, or 0) gets no proof, and the agent
    // reports what it then sees.
    let from = log_size.filter(|m| *m > 0 && *m < cp.size);
    let consistency = match from {
        Some(m) => state
            .log
            .consistency(state.store.as_ref(), m, cp.size)
            .await
            .map(|p| {
                p.iter()
                    .map(|h| annexa_evidence::encoding::b64(h))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Json(EvidenceResponse {
        receipt: receipt.sign(&state.key),
        policy: state.conformity.index.policy().map(|p| AgentPolicy {
            soa_version: p.version,
            params: p.params.clone(),
        }),
        log: Some(LogState {
            checkpoint: cp.note.clone(),
            consistency_from: from,
            consistency,
        }),
        key_transitions: state.log.history().notes().to_vec(),
    }))
}

/// The agent's clock as its `annexa-agent-time` header gives it, checked
/// against the collector's within `clock_skew_tolerance_seconds`. A scan
/// that finished later than the collector's now plus the tolerance is
/// refused too: a fast clock shows there even without the header. The
/// envelope is refused, not stored with a wrong time: the agent keeps it and
/// sends it again once its clock is right.
fn agent_clock(
    state: &AppState,
    headers: &HeaderMap,
    checked: &ingest::Checked,
) -> Result<Option<String>, Error> {
    let said = match headers.get(AGENT_TIME_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(clock::normalize_rfc3339)
                .ok_or_else(|| {
                    Error::new(
                        StatusCode::BAD_REQUEST,
                        codes::MALFORMED,
                        format!(
                            "header {AGENT_TIME_HEADER}: {:?} is not an RFC 3339 time",
                            String::from_utf8_lossy(v.as_bytes())
                        ),
                    )
                })?,
        ),
    };
    let Some(tolerance) = state.clock_skew_tolerance else {
        return Ok(said.map(|(text, _)| text));
    };
    let tolerance = tolerance.as_secs() as i64;
    let now = clock::now_unix();
    let skewed = |what: String, skew: i64| {
        state.metrics.reject(codes::CLOCK_SKEW);
        Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
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
