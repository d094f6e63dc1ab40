//! The API's error response: a status and the JSON body every refusal
//! shares (`ApiError`), and how ingest and store failures become one.
//! Shared by the handlers and the limits in front of them.

use annexa_evidence::api::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::ingest::Rejection;
use crate::store::StoreError;

/// An API error response.
#[derive(Debug)]
pub struct Error {
    pub(super) status: StatusCode,
    pub(super) body: ApiError,
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
        Rejection::from(e).into()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
