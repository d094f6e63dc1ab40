//! `GET /v1/people`: who may sign attestations, waivers and actions, with
//! every key they have had (what a client needs to verify their statements
//! and to know whom to ask for an approval).

use axum::Json;
use axum::extract::State;

use super::auth::Reader;
use super::{AppState, Error};
use crate::store::PersonRecord;

/// Every registered person, by e-mail.
pub async fn list(
    State(state): State<AppState>,
    _r: Reader,
) -> Result<Json<Vec<PersonRecord>>, Error> {
    Ok(Json(state.store.people().await?))
}
