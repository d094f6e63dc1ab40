//! `GET /v1/reports`: a signed evidence report (docs/report-format.md), or
//! its HTML, OSCAL or CSV rendering. Readers (auditors, admins) only.

use annexa_evidence::api::codes;
use annexa_evidence::report::render::{self, Context, Format, Verification};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, Error, Reader};
use crate::clock;
use crate::report::{self, ReportError, Request};

/// The query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Hosts whose labels match this selector (`key=value,…`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Comma-separated controls (default: every control of the SoA).
    #[serde(default)]
    pub controls: Option<String>,
    /// The time the states hold at (RFC 3339; default: now).
    #[serde(default)]
    pub at: Option<String>,
    /// Evidence accepted before this time is not used (RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    /// `json` (the signed report, default), `html`, `oscal` or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

impl From<ReportError> for Error {
    fn from(e: ReportError) -> Error {
        match e {
            ReportError::Invalid(m) => Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, m),
            ReportError::NoSoa(m) => Error::new(StatusCode::CONFLICT, codes::NO_SOA, m),
            ReportError::Store(s) => s.into(),
            ReportError::Log(l) => l.into(),
        }
    }
}

fn time(name: &str, value: Option<&str>) -> Result<Option<i64>, Error> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            clock::time_param(name, v)
                .map(|(_, unix)| unix)
                .map_err(|m| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, m))
        })
        .transpose()
}

/// `GET /v1/reports`.
pub async fn get(
    State(state): State<AppState>,
    _r: Reader,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Error> {
    let format = match q.format.as_deref() {
        None | Some("json") => None,
        Some(f) => Some(Format::parse(f).ok_or_else(|| {
            Error::new(
                StatusCode::BAD_REQUEST,
                codes::MALFORMED,
                format!("`format`: `{f}` is not one of json, html, oscal, csv"),
            )
        })?),
    };
    let req = Request {
        at: time("at", q.at.as_deref())?,
        from: time("from", q.from.as_deref())?,
        selector: q.scope.filter(|s| !s.is_empty()),
        controls: super::comma_list(q.controls.as_deref()),
    };
    // Queued, not refused: a report asked for is built, one core's worth at
    // a time.
    let _turn = state.reports.acquire().await.map_err(|_| {
        Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            "the collector is shutting down",
        )
    })?;
    let (report, signed) = report::build(
        state.store.as_ref(),
        &state.log,
        &state.conformity.packs,
        &state.key,
        &req,
    )
    .await?;
    let (body, media) = match format {
        None => (signed, "application/json"),
        Some(f) => {
            // Verified like an auditor would, with the collector's own key:
            // a report whose proofs or states do not hold says so.
            let verifier = state.log.verifier();
            let outcome =
                annexa_evidence::report::verify::verify(&signed, verifier).map_err(|e| {
                    Error::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        codes::UNAVAILABLE,
                        e.to_string(),
                    )
                })?;
            let v = Verification::Checked {
                key: verifier.to_string(),
                outcome: Box::new(outcome.clone()),
            };
            let ctx = Context::new(&report, &outcome.digest, &v);
            (render::render(&ctx, f), f.media_type())
        }
    };
    Ok(([(header::CONTENT_TYPE, media)], Body::from(body)).into_response())
}
