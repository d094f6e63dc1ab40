//! Bearer-token authentication and roles. Tokens are looked up by their
//! SHA-256 on every request, so revocation takes effect at once.

use annexa_evidence::api::codes;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::{AppState, Error};
use crate::store::{ApiToken, Role};
use crate::{clock, tokens};

async fn authenticate(parts: &Parts, state: &AppState) -> Result<ApiToken, Error> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::new(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                "missing Authorization: Bearer token",
            )
        })?;
    let token = header.strip_prefix("Bearer ").ok_or_else(|| {
        Error::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "Authorization must be `Bearer TOKEN`",
        )
    })?;
    let record = state
        .store
        .api_token(&tokens::hash(token))
        .await?
        .ok_or_else(|| {
            Error::new(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                "unknown token",
            )
        })?;
    if record.revoked_at.is_some() {
        return Err(Error::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "token revoked",
        ));
    }
    if record.expires_at.is_some_and(|t| t <= clock::now_unix()) {
        return Err(Error::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "token expired",
        ));
    }
    Ok(record)
}

/// A request made with an admin token.
pub struct Admin(pub ApiToken);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let t = authenticate(parts, state).await?;
        if t.role != Role::Admin {
            return Err(Error::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                format!(
                    "this route needs an admin token; `{}` is {}",
                    t.name, t.role
                ),
            ));
        }
        Ok(Admin(t))
    }
}

/// A request made with a token that may read evidence (admin or auditor).
pub struct Reader(pub ApiToken);

impl FromRequestParts<AppState> for Reader {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Reader(authenticate(parts, state).await?))
    }
}
