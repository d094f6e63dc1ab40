//! What arrived: hosts and their evidence (admin or auditor token).

use annexa_evidence::api::codes;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{Admin, AppState, Error, Reader};
use crate::clock;
use crate::store::{AgentRecord, EnvelopeMeta, LatestRow};

async fn agent(state: &AppState, id: &str) -> Result<AgentRecord, Error> {
    state.store.agent(id).await?.ok_or_else(|| {
        Error::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no agent {id}"),
        )
    })
}

/// `GET /v1/hosts`.
pub async fn list(
    State(state): State<AppState>,
    _r: Reader,
) -> Result<Json<Vec<AgentRecord>>, Error> {
    Ok(Json(state.store.agents().await?))
}

/// One host with its latest results.
#[derive(Debug, Serialize)]
pub struct HostDetail {
    /// The agent.
    #[serde(flatten)]
    pub agent: AgentRecord,
    /// Latest result per check.
    pub latest: Vec<LatestRow>,
}

/// `GET /v1/hosts/{id}`.
pub async fn show(
    State(state): State<AppState>,
    _r: Reader,
    Path(id): Path<String>,
) -> Result<Json<HostDetail>, Error> {
    let a = agent(&state, &id).await?;
    let latest = state.store.latest(a.no).await?;
    Ok(Json(HostDetail { agent: a, latest }))
}

/// `POST /v1/hosts/{id}/revoke` (admin): refuse the agent's evidence from now on.
pub async fn revoke(
    State(state): State<AppState>,
    Admin(token): Admin,
    Path(id): Path<String>,
) -> Result<Json<AgentRecord>, Error> {
    state.store.revoke_agent(&id, &clock::now_rfc3339()).await?;
    state.agents.forget(&id);
    let revoked = agent(&state, &id).await?;
    state.conformity.index.remove_host(revoked.no);
    tracing::warn!(agent = %id, by = %token.name, "agent revoked");
    Ok(Json(agent(&state, &id).await?))
}

/// Paging of `GET /v1/hosts/{id}/evidence`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// List envelopes with a sequence number above this.
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/hosts/{id}/evidence?after=&limit=`.
pub async fn evidence(
    State(state): State<AppState>,
    _r: Reader,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<EnvelopeMeta>>, Error> {
    let a = agent(&state, &id).await?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.store.envelopes(a.no, page.after, limit).await?))
}

/// `GET /v1/hosts/{id}/evidence/{seq}`: the envelope bytes exactly as received.
pub async fn envelope(
    State(state): State<AppState>,
    _r: Reader,
    Path((id, seq)): Path<(String, u64)>,
) -> Result<impl IntoResponse, Error> {
    let a = agent(&state, &id).await?;
    let (meta, bytes) = state.store.envelope(a.no, seq).await?.ok_or_else(|| {
        Error::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("agent {id} has no envelope {seq}"),
        )
    })?;
    if let Some(at) = &meta.pruned_at {
        return Err(Error::new(
            StatusCode::GONE,
            codes::PRUNED,
            format!(
                "the payload of envelope {seq} of agent {id} (accepted {}, sha256 {}) was removed on {at} under the retention policy ({}); its log entry {} and results remain",
                meta.received_at,
                meta.sha256,
                state.retention.as_deref().unwrap_or("since changed"),
                meta.log_index
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
        ));
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes))
}
