//! The HTTP API (docs/api.md): one route group per file. Every route but
//! enrollment, evidence submission and the health check needs a bearer
//! token; agents authenticate by their signatures.

mod auth;
mod conformity;
mod drift;
mod enroll;
pub mod error;
mod evidence;
mod hosts;
mod log;
mod ops;
mod people;
mod report;
mod soa;

use std::sync::Arc;

use annexa_evidence::api::codes;
use annexa_evidence::keys::SigningKey;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::ingest::{AgentCache, Writer};
use crate::metrics::Metrics;
use crate::store::Store;

pub use auth::{Admin, Reader};
pub use error::Error;

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
    /// Reports built at once: building, verifying and rendering one is
    /// seconds of CPU on a request's task, so however many readers ask
    /// (or one stolen token asks often), ingest keeps the other cores.
    pub reports: Arc<tokio::sync::Semaphore>,
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

/// Who may call a route. Declared beside each route for the role-matrix
/// test (tests/tests/role_matrix.rs), which tries every route with every
/// kind of credential and fails on a route it does not know; the handlers'
/// extractors ([`Admin`], [`Reader`]) and the enrollment and evidence
/// handlers enforce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, the API description).
    Anyone,
    /// An unused, unexpired enrollment token in the body.
    EnrollmentToken,
    /// A DSSE envelope signed by an enrolled, unrevoked agent's key.
    AgentSignature,
    /// An admin or auditor API token.
    Reader,
    /// An admin API token.
    Admin,
}

type Route = (
    &'static str,
    &'static str,
    Access,
    axum::routing::MethodRouter<AppState>,
);

/// Every route: method, path, who may call it, and its handler.
fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        ("GET", "/healthz", Anyone, get(ops::healthz)),
        ("GET", "/metrics", Admin, get(ops::metrics)),
        ("POST", "/v1/enroll", EnrollmentToken, post(enroll::enroll)),
        (
            "POST",
            "/v1/evidence",
            AgentSignature,
            post(evidence::submit),
        ),
        (
            "POST",
            "/v1/tokens/enroll",
            Admin,
            post(enroll::create_token),
        ),
        ("GET", "/v1/hosts", Reader, get(hosts::list)),
        ("GET", "/v1/hosts/{id}", Reader, get(hosts::show)),
        ("POST", "/v1/hosts/{id}/revoke", Admin, post(hosts::revoke)),
        (
            "GET",
            "/v1/hosts/{id}/evidence",
            Reader,
            get(hosts::evidence),
        ),
        (
            "GET",
            "/v1/hosts/{id}/evidence/{seq}",
            Reader,
            get(hosts::envelope),
        ),
        ("GET", "/v1/people", Reader, get(people::list)),
        ("GET", "/v1/soa", Reader, get(soa::list)),
        ("POST", "/v1/soa", Admin, post(soa::import)),
        ("GET", "/v1/soa/diff", Reader, get(soa::diff)),
        ("GET", "/v1/soa/{version}", Reader, get(soa::show)),
        ("GET", "/v1/soa/{version}/export", Reader, get(soa::export)),
        ("GET", "/v1/conformity", Reader, get(conformity::fleet)),
        (
            "GET",
            "/v1/conformity/controls/{id}",
            Reader,
            get(conformity::control),
        ),
        (
            "GET",
            "/v1/conformity/hosts/{id}",
            Reader,
            get(conformity::host),
        ),
        (
            "GET",
            "/v1/conformity/timeline",
            Reader,
            get(conformity::timeline),
        ),
        ("GET", "/v1/log/checkpoint", Reader, get(log::checkpoint)),
        (
            "GET",
            "/v1/log/proof/inclusion",
            Reader,
            get(log::inclusion),
        ),
        (
            "GET",
            "/v1/log/proof/consistency",
            Reader,
            get(log::consistency),
        ),
        ("GET", "/v1/log/export", Reader, get(log::export)),
        ("GET", "/v1/reports", Reader, get(report::get)),
        ("GET", "/v1/drift", Reader, get(drift::get)),
        ("GET", "/v1/openapi.json", Anyone, get(ops::openapi)),
    ]
}

/// Every route as (method, path, who may call it).
pub fn route_table() -> Vec<(&'static str, &'static str, Access)> {
    routes().into_iter().map(|(m, p, a, _)| (m, p, a)).collect()
}

/// The router with every route (tests call it without a socket).
pub fn router(state: AppState, body: crate::limits::BodyLimits) -> Router {
    routes()
        .into_iter()
        // Two methods on one path merge into one method router.
        .fold(Router::new(), |r, (_, path, _, handler)| {
            r.route(path, handler)
        })
        .fallback(|| async { Error::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(body.max))
        .layer(axum::middleware::from_fn(move |r, n| {
            crate::limits::read_body(body, r, n)
        }))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described_in_openapi_json_and_nothing_else_is() {
        let api: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap();
        let mut described: Vec<(String, String)> = api["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(|m| (m.to_ascii_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut routed: Vec<(String, String)> = super::route_table()
            .into_iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        described.sort();
        routed.sort();
        assert_eq!(routed, described);
    }
}
