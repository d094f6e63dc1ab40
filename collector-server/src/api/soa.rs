//! The Statement of Applicability: admins import versions, admins and
//! auditors read them.

use annexa_checks::soa::{Format, SoaProblem, diff::SoaDiff};
use annexa_evidence::api::codes;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{Admin, AppState, Error, Reader};
use crate::soa::{ImportError, Shown};
use crate::store::SoaVersion;

/// `GET /v1/soa`: every version, oldest first.
pub async fn list(
    State(state): State<AppState>,
    _r: Reader,
) -> Result<Json<Vec<SoaVersion>>, Error> {
    Ok(Json(state.store.soa_versions().await?))
}

/// Query of `POST /v1/soa`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `toml` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
    /// Why this version.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The answer to an import that does not lint.
#[derive(Debug, Serialize)]
pub struct Invalid {
    /// [`codes::INVALID_SOA`].
    pub error: &'static str,
    /// A summary.
    pub message: String,
    /// Every problem, with its line.
    pub problems: Vec<SoaProblem>,
}

fn format_of(s: Option<&str>) -> Result<Format, Error> {
    s.unwrap_or("toml")
        .parse()
        .map_err(|m: String| Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, m))
}

/// `POST /v1/soa?format=&comment=` (admin): the body is the file. Answers
/// 201 with the new version once conformity has been re-evaluated.
pub async fn import(
    State(state): State<AppState>,
    Admin(token): Admin,
    Query(q): Query<ImportQuery>,
    body: String,
) -> Result<Response, Error> {
    let format = format_of(q.format.as_deref())?;
    let name = format!("request body ({})", format.as_str());
    match crate::soa::import(
        state.store.as_ref(),
        &state.conformity.packs,
        &name,
        &body,
        format,
        &token.name,
        q.comment,
    )
    .await
    {
        Ok((version, _)) => {
            tracing::info!(version = version.version, by = %token.name, "SoA imported");
            state.writer.reconcile().await?;
            Ok((StatusCode::CREATED, Json(version)).into_response())
        }
        Err(ImportError::Invalid(e)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Invalid {
                error: codes::INVALID_SOA,
                message: format!(
                    "the Statement of Applicability has {} problem(s); nothing was imported",
                    e.0.len()
                ),
                problems: e.0,
            }),
        )
            .into_response()),
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

async fn version_of(state: &AppState, v: &str) -> Result<i64, Error> {
    if v == "current" {
        return crate::soa::newest(state.store.as_ref())
            .await?
            .ok_or_else(no_soa);
    }
    v.parse().map_err(|_| {
        Error::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED,
            format!("`{v}` is not a version number or `current`"),
        )
    })
}

/// The error when no SoA was imported.
pub fn no_soa() -> Error {
    Error::new(
        StatusCode::CONFLICT,
        codes::NO_SOA,
        "no Statement of Applicability has been imported; import one with `annexa-collector soa import FILE` or POST /v1/soa",
    )
}

/// `GET /v1/soa/{version}` (`current` for the newest): the controls and,
/// for each, the checks that give evidence for it.
pub async fn show(
    State(state): State<AppState>,
    _r: Reader,
    Path(v): Path<String>,
) -> Result<Json<Shown>, Error> {
    let v = version_of(&state, &v).await?;
    let (meta, soa, _) = crate::soa::load(state.store.as_ref(), v).await?;
    Ok(Json(crate::soa::show(meta, &soa, &state.conformity.packs)))
}

/// Query of the export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `source` (default: the file exactly as imported), `toml` or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /v1/soa/{version}/export?format=source|toml|csv`.
pub async fn export(
    State(state): State<AppState>,
    _r: Reader,
    Path(v): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, Error> {
    let v = version_of(&state, &v).await?;
    let (meta, soa, source) = crate::soa::load(state.store.as_ref(), v).await?;
    let (text, ctype) = match q.format.as_deref().unwrap_or("source") {
        "source" => {
            let ctype = if meta.format == "csv" {
                "text/csv; charset=utf-8"
            } else {
                "application/toml"
            };
            (source, ctype)
        }
        "toml" => (soa.to_toml(), "application/toml"),
        "csv" => (soa.to_csv(), "text/csv; charset=utf-8"),
        other => {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                codes::MALFORMED,
                format!("format is `{other}`; expected source, toml or csv"),
            ));
        }
    };
    Ok(([(header::CONTENT_TYPE, ctype)], text).into_response())
}

/// Query of the diff.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older version.
    pub from: i64,
    /// The newer version.
    pub to: i64,
}

/// `GET /v1/soa/diff?from=&to=`.
pub async fn diff(
    State(state): State<AppState>,
    _r: Reader,
    Query(q): Query<DiffQuery>,
) -> Result<Json<SoaDiff>, Error> {
    let (_, a, _) = crate::soa::load(state.store.as_ref(), q.from).await?;
    let (_, b, _) = crate::soa::load(state.store.as_ref(), q.to).await?;
    Ok(Json(annexa_checks::soa::diff::diff(&a, &b)))
}
