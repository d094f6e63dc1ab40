//! The HTTP API (docs/api.md): one route group per file. Every route but
//! enrollment, evidence submission and the health check needs a bearer
//! token; agents authenticate by their signatures.

mod auth;
mod conformity;
mod drift;
mod enroll;
mod evidence;
mod hosts;
mod log;
mod ops;
mod report;
mod soa;

use std::sync::Arc;

use annexa_evidence::api::{ApiError, codes};
use annexa_evidence::keys::SigningKey;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::ingest::{AgentCache, Rejection, Writer};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub use auth::{Admin, Reader};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The ingest writer.
    pub writer: Writer,
    /// The conformity index and the packs behind it.
    pub conformity: crate::ingest::Conformity,
    /// The receipt-signing key.
    pub key: Arc<SigningKey>,
    /// Enrolled agents' keys.
    pub agents: Arc<AgentCache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The evidence log.
    pub log: Arc<crate::log::Log>,
    /// The retention period as configured, for exports.
    pub retention: Option<String>,
    /// How far an agent's clock may be off (None: any).
    pub clock_skew_tolerance: Option<std::time::Duration>,
}

/// A comma-separated query value as its non-empty items, trimmed.
fn comma_list(v: Option<&str>) -> Vec<String> {
    v.into_iter()
        .flat_map(|c| c.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The router with every route (tests call it without a socket).
pub fn router(state: AppState, body: crate::limits::BodyLimits) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/evidence", post(evidence::submit))
        .route("/v1/tokens/enroll", post(enroll::create_token))
        .route("/v1/hosts", get(hosts::list))
        .route("/v1/hosts/{id}", get(hosts::show))
        .route("/v1/hosts/{id}/revoke", post(hosts::revoke))
        .route("/v1/hosts/{id}/evidence", get(hosts::evidence))
        .route("/v1/hosts/{id}/evidence/{seq}", get(hosts::envelope))
        .route("/v1/soa", get(soa::list).post(soa::import))
        .route("/v1/soa/diff", get(soa::diff))
        .route("/v1/soa/{version}", get(soa::show))
        .route("/v1/soa/{version}/export", get(soa::export))
        .route("/v1/conformity", get(conformity::fleet))
        .route("/v1/conformity/controls/{id}", get(conformity::control))
        .route("/v1/conformity/hosts/{id}", get(conformity::host))
        .route("/v1/conformity/timeline", get(conformity::timeline))
        .route("/v1/log/checkpoint", get(log::checkpoint))
        .route("/v1/log/proof/inclusion", get(log::inclusion))
        .route("/v1/log/proof/consistency", get(log::consistency))
        .route("/v1/log/export", get(log::export))
        .route("/v1/reports", get(report::get))
        .route("/v1/drift", get(drift::get))
        .route("/v1/openapi.json", get(ops::openapi))
        .fallback(|| async { Error::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(body.max))
        .layer(axum::middleware::from_fn(move |r, n| {
            crate::limits::read_body(body, r, n)
        }))
        .with_state(state)
}

/// An API error response.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    body: ApiError,
}

impl Error {
    /// An error with a code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Error {
        Error {
            status,
            body: ApiError {
                error: code.to_string(),
                message: message.into(),
                expected_sequence: None,
            },
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Error {
        Error {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
            body: ApiError {
                error: r.code.to_string(),
                message: r.message,
                expected_sequence: r.expected_sequence,
            },
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NotFound(m) => Error::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, m),
            StoreError::Denied(m) => Error::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, m),
            StoreError::Conflict(m) => Error::new(StatusCode::CONFLICT, codes::CONFLICT, m),
            StoreError::Broken(m) => {
                tracing::error!(error = %m, "store failure");
                Error::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "the collector's store is unavailable",
                )
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
