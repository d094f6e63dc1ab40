//! `GET /v1/drift`: the (host, control) state changes between two times,
//! with the envelopes that caused them. Readers (auditors, admins) only;
//! the CI gate's collector mode (`annexa gate --server`) is built on it.

use annexa_evidence::api::codes;
use annexa_evidence::drift::Drift;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{AppState, Error, Reader};
use crate::clock;
use crate::drift::{self, DriftError, Request};

/// The query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    /// Start of the window (RFC 3339; default: `to`, the states at `to`
    /// only).
    #[serde(default)]
    pub from: Option<String>,
    /// End of the window (RFC 3339; default: now, with live states).
    #[serde(default)]
    pub to: Option<String>,
    /// Hosts whose labels match this selector (`env=prod;role=db|web`).
    #[serde(default)]
    pub selector: Option<String>,
    /// Comma-separated controls (default: every control of the SoA).
    #[serde(default)]
    pub controls: Option<String>,
    /// `true`: every host's state per control at `to`.
    #[serde(default)]
    pub cells: Option<bool>,
}

impl From<DriftError> for Error {
    fn from(e: DriftError) -> Error {
        match e {
            DriftError::Invalid(m) => Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, m),
            DriftError::NoSoa => super::soa::no_soa(),
            DriftError::Store(s) => s.into(),
        }
    }
}

/// `GET /v1/drift?from=&to=&selector=&controls=&cells=`.
pub async fn get(
    State(state): State<AppState>,
    _r: Reader,
    Query(q): Query<DriftQuery>,
) -> Result<Json<Drift>, Error> {
    let req = Request {
        from: q.from.filter(|f| !f.is_empty()),
        to: q.to.filter(|t| !t.is_empty()),
        selector: q.selector,
        controls: super::comma_list(q.controls.as_deref()),
        cells: q.cells.unwrap_or(false),
    };
    let d = drift::build(
        state.store.as_ref(),
        &state.conformity.index,
        &state.conformity.packs,
        &req,
        clock::now_unix(),
    )
    .await?;
    Ok(Json(d))
}
