//! Health and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::{Admin, AppState, Error};

/// `GET /healthz`: 200 when the store answers (for load balancers; no token).
pub async fn healthz(State(state): State<AppState>) -> Result<&'static str, Error> {
    state.store.ping().await?;
    Ok("ok\n")
}

/// `GET /metrics`: Prometheus text format (admin token).
pub async fn metrics(State(state): State<AppState>, _admin: Admin) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
}

/// `GET /v1/openapi.json`: the API's OpenAPI description (docs/openapi.json).
pub async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../../docs/openapi.json"),
    )
}
