//! The evidence log: checkpoint, inclusion and consistency proofs (RFC
//! 9162), and the whole log as a bundle. Readers (auditors, admins) only.

use annexa_evidence::api::codes;
use annexa_evidence::encoding::{b64, hex};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{AppState, Error, Reader};
use crate::log::LogError;

impl From<LogError> for Error {
    fn from(e: LogError) -> Error {
        match e {
            LogError::Store(s) => s.into(),
            LogError::Proof(p) => {
                Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, p.to_string())
            }
            other => {
                tracing::error!(error = %other, "evidence log failure");
                Error::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    other.to_string(),
                )
            }
        }
    }
}

/// `GET /v1/log/checkpoint`: the newest signed checkpoint, as the C2SP
/// signed note (`text/plain`).
pub async fn checkpoint(State(state): State<AppState>, _r: Reader) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        state.log.latest().note.clone(),
    )
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// Leaf index.
    pub index: u64,
    /// Tree size (default: the newest checkpoint's).
    #[serde(default)]
    pub size: Option<u64>,
}

/// An inclusion proof.
#[derive(Debug, Serialize)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub size: u64,
    /// The leaf hash (hex).
    pub leaf_hash: String,
    /// Hashes, leaf side first (standard base64).
    pub proof: Vec<String>,
}

/// `GET /v1/log/proof/inclusion`.
pub async fn inclusion(
    State(state): State<AppState>,
    _r: Reader,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionProof>, Error> {
    let size = q.size.unwrap_or_else(|| state.log.latest().size);
    let (leaf, proof) = state
        .log
        .inclusion(state.store.as_ref(), q.index, size)
        .await?;
    Ok(Json(InclusionProof {
        index: q.index,
        size,
        leaf_hash: hex(&leaf),
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
}

/// `GET /v1/log/proof/consistency?from=&to=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older tree size.
    pub from: u64,
    /// The newer tree size (default: the newest checkpoint's).
    #[serde(default)]
    pub to: Option<u64>,
}

/// A consistency proof.
#[derive(Debug, Serialize)]
pub struct ConsistencyProof {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// Hashes (standard base64).
    pub proof: Vec<String>,
}

/// `GET /v1/log/proof/consistency`.
pub async fn consistency(
    State(state): State<AppState>,
    _r: Reader,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, Error> {
    let to = q.to.unwrap_or_else(|| state.log.latest().size);
    let proof = state
        .log
        .consistency(state.store.as_ref(), q.from, to)
        .await?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to,
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
}

/// `GET /v1/log/export`: the whole log with its envelopes as a bundle
/// (JSON Lines), streamed. The newest checkpoint is stored first, so the
/// bundle is covered to its end.
pub async fn export(State(state): State<AppState>, r: Reader) -> Result<impl IntoResponse, Error> {
    crate::ingest::store_checkpoint(state.store.as_ref(), &state.log).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let store = state.store.clone();
    let origin = state.log.origin().to_string();
    let retention = state.retention.clone();
    tracing::info!(by = %r.0.name, "evidence log export");
    tokio::spawn(async move {
        if let Err(e) = crate::export::export(store.as_ref(), &origin, retention, tx).await {
            tracing::warn!(error = %e, "evidence log export stopped");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    ))
}
