//! `POST /v1/evidence`: HTTP in and out of [`ingest::Intake::submit`],
//! where every rule that refuses an envelope lives (`ingest::acceptance`).

use std::time::Instant;

use annexa_evidence::api::{AGENT_TIME_HEADER, AgentPolicy, EvidenceResponse, LogState, codes};
use annexa_evidence::receipt::Receipt;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};

use super::{AppState, Error};
use crate::ingest;

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
    query: Result<Query<SubmitQuery>, QueryRejection>,
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
    match &result {
        Err(e) => {
            // Every refusal is counted here, once.
            state.metrics.reject(&e.body.error);
            tracing::debug!(code = %e.body.error, message = %e.body.message, "evidence rejected");
        }
        Ok(_) => state
            .metrics
            .ingest_latency
            .observe(started.elapsed().as_secs_f64()),
    }
    result
}

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    log_size: Option<u64>,
) -> Result<Json<EvidenceResponse>, Error> {
    let intake = ingest::Intake {
        gate: ingest::Gate {
            store: state.store.as_ref(),
            agents: &state.agents,
            clock_skew_tolerance: state.clock_skew_tolerance,
        },
        writer: &state.writer,
        log: &state.log,
    };
    let agent_time = headers.get(AGENT_TIME_HEADER).map(|v| v.as_bytes());
    // The request's only handle on the bytes: taken over without a copy.
    let s = intake.submit(Vec::from(body), agent_time, log_size).await?;
    let receipt = Receipt {
        envelope_sha256: s.sha256,
        agent_id: s.agent_id,
        sequence: s.sequence,
        accepted_at: s.committed.accepted_at,
        duplicate: s.committed.duplicate,
        log_index: s.committed.log_index,
    };
    Ok(Json(EvidenceResponse {
        receipt: receipt.sign(&state.key),
        policy: state.conformity.index.policy().map(|p| AgentPolicy {
            soa_version: p.version,
            params: p.params.clone(),
        }),
        log: Some(LogState {
            checkpoint: s.committed.checkpoint.note.clone(),
            consistency_from: s.consistency_from,
            consistency: s
                .consistency
                .iter()
                .map(|h| annexa_evidence::encoding::b64(h))
                .collect(),
        }),
        key_transitions: state.log.history().notes().to_vec(),
    }))
}
