//! Enrollment: agents trade a single-use token for an agent id.

use std::collections::BTreeMap;

use annexa_evidence::AgentId;
use annexa_evidence::api::{EnrollRequest, EnrollResponse, codes};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Admin, AppState, Error};
use crate::store::{Enrolled, NewAgent, StoreError};
use crate::{clock, tokens};

/// `POST /v1/enroll` (no token header: the enrollment token is the credential).
pub async fn enroll(
    State(state): State<AppState>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<EnrollResponse>, Error> {
    let Json(req) =
        body.map_err(|e| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, e.body_text()))?;
    let key = req
        .proven_key()
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, e))?;
    if req.machine_id_sha256.len() != 64
        || !req.machine_id_sha256.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED,
            "machine_id_sha256 must be 64 hex digits",
        ));
    }
    annexa_evidence::api::check_hostname(&req.hostname)
        .and_then(|()| annexa_evidence::api::check_labels(&req.labels))
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, e))?;
    let id = tokens::agent_id()
        .map_err(|e| Error::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, e))?;
    let new = NewAgent {
        id,
        key_id: key.key_id(),
        public_key: key.to_b64(),
        hostname: req.hostname,
        machine_id_sha256: req.machine_id_sha256.to_ascii_lowercase(),
        labels: req.labels,
        facts: req.facts,
        enrolled_at: clock::now_rfc3339(),
    };
    let outcome = state
        .store
        .enroll(&tokens::hash(&req.token), clock::now_unix(), new)
        .await
        .map_err(|e| match e {
            StoreError::Denied(m) | StoreError::Conflict(m) => {
                state.metrics.reject(codes::BAD_TOKEN);
                Error::new(StatusCode::UNAUTHORIZED, codes::BAD_TOKEN, m)
            }
            other => other.into(),
        })?;
    state.conformity.index.upsert_host(outcome.agent());
    if let Enrolled::New(a) = &outcome {
        state.metrics.enrolled.inc();
        tracing::info!(agent = %a.id, host = ?a.hostname, key = %a.key_id, "agent enrolled");
    }
    let a = outcome.agent();
    state.agents.put(a.clone());
    Ok(Json(EnrollResponse {
        agent_id: AgentId::new(&a.id),
        collector_public_key: state.key.public().to_b64(),
        collector_key_id: state.key.public().key_id(),
        next_sequence: a.next_sequence,
        last_digest: a.last_digest.clone(),
        labels: a.labels.clone(),
    }))
}

/// Request of `POST /v1/tokens/enroll`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime such as `1h` (default 1h).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Labels given to agents enrolled with it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Response of `POST /v1/tokens/enroll`.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The token (shown once; only its hash is stored).
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// `POST /v1/tokens/enroll` (admin): creates an enrollment token.
pub async fn create_token(
    State(state): State<AppState>,
    _admin: Admin,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, Error> {
    let Json(req) =
        body.map_err(|e| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, e.body_text()))?;
    let ttl = clock::parse_ttl(req.ttl.as_deref().unwrap_or("1h"))
        .and_then(|ttl| annexa_evidence::api::check_labels(&req.labels).map(|()| ttl))
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, e))?;
    let (token, expires_at) =
        crate::create_enroll_token(state.store.as_ref(), ttl, &req.labels).await?;
    Ok(Json(TokenResponse { token, expires_at }))
}
