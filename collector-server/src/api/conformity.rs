//! Conformity of the fleet against the current SoA (admin or auditor).
//! Every answer names the SoA version it was computed against.

use annexa_checks::catalog::catalog;
use annexa_checks::soa::Scope;
use annexa_checks::{CheckId, ControlId};
use annexa_evidence::AgentId;
use annexa_evidence::api::codes;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{AppState, Error, Reader};
use crate::clock;
use crate::conformity::Policy;
use crate::conformity::State as CState;
use crate::conformity::index::{Cell, Counts, Filter, Fleet};
use crate::store::{Labels, TimelineEntry, TimelineQuery};

/// Filters of the conformity routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A control id (of the SoA's edition).
    #[serde(default)]
    pub control: Option<String>,
    /// An agent id or host name.
    #[serde(default)]
    pub host: Option<String>,
    /// A label selector: `env=prod;role=db|web`.
    #[serde(default)]
    pub labels: Option<String>,
    /// A state name.
    #[serde(default)]
    pub state: Option<String>,
}

fn bad(m: String) -> Error {
    Error::new(StatusCode::BAD_REQUEST, codes::MALFORMED, m)
}

fn control_id(policy: &Policy, id: &str) -> Result<ControlId, Error> {
    catalog()
        .control(policy.soa.edition, id)
        .map(|c| c.id.clone())
        .map_err(|e| {
            Error::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                format!(
                    "{e} (the current SoA, version {}, is of the {} edition)",
                    policy.version, policy.soa.edition
                ),
            )
        })
}

fn filter(policy: &Policy, p: Params) -> Result<Filter, Error> {
    Ok(Filter {
        control: p.control.map(|c| control_id(policy, &c)).transpose()?,
        host: p.host,
        labels: p
            .labels
            .as_deref()
            .map(Scope::parse_selector)
            .transpose()
            .map_err(|m| bad(format!("labels: {m}")))?
            .unwrap_or_default(),
        state: p
            .state
            .map(|s| {
                CState::parse(&s).ok_or_else(|| {
                    bad(format!(
                        "state `{s}` is not one of {}",
                        CState::ALL.map(CState::as_str).join(", ")
                    ))
                })
            })
            .transpose()?,
    })
}

fn policy(state: &AppState) -> Result<std::sync::Arc<Policy>, Error> {
    state
        .conformity
        .index
        .policy()
        .ok_or_else(super::soa::no_soa)
}

/// The fleet table.
#[derive(Debug, Serialize)]
pub struct FleetResponse {
    /// When it was computed.
    pub generated_at: String,
    /// The table.
    #[serde(flatten)]
    pub fleet: Fleet,
}

/// `GET /v1/conformity?control=&host=&labels=&state=`.
pub async fn fleet(
    State(state): State<AppState>,
    _r: Reader,
    Query(p): Query<Params>,
) -> Result<Json<FleetResponse>, Error> {
    let f = filter(&*policy(&state)?, p)?;
    let fleet = state
        .conformity
        .index
        .fleet(&f, clock::now_unix())
        .ok_or_else(super::soa::no_soa)?;
    Ok(Json(FleetResponse {
        generated_at: clock::now_rfc3339(),
        fleet,
    }))
}

/// One control across the fleet.
#[derive(Debug, Serialize)]
pub struct ControlResponse {
    /// The SoA version.
    pub soa_version: i64,
    /// When it was computed.
    pub generated_at: String,
    /// The control.
    pub control: ControlId,
    /// Its title.
    pub title: String,
    /// Whether the SoA applies it.
    pub applicable: bool,
    /// The SoA's justification.
    pub justification: String,
    /// The SoA's owner.
    pub owner: String,
    /// The checks that give evidence for it.
    pub checks: Vec<CheckId>,
    /// Hosts per state.
    pub counts: Counts,
    /// Every host in scope with its state.
    pub hosts: Vec<Cell>,
}

fn count(cells: &[Cell]) -> Counts {
    let mut c: Counts = CState::ALL.into_iter().map(|s| (s, 0)).collect();
    for cell in cells {
        *c.entry(cell.state).or_default() += 1;
    }
    c
}

/// `GET /v1/conformity/controls/{id}?labels=&state=&host=`.
pub async fn control(
    State(state): State<AppState>,
    _r: Reader,
    Path(id): Path<String>,
    Query(mut p): Query<Params>,
) -> Result<Json<ControlResponse>, Error> {
    let pol = policy(&state)?;
    let id = control_id(&pol, &id)?;
    p.control = Some(id.to_string());
    let f = filter(&pol, p)?;
    let (pol, mut hosts) = state
        .conformity
        .index
        .cells(&f, clock::now_unix())
        .ok_or_else(super::soa::no_soa)?;
    // Said once at the top; 10,000 copies would only weigh.
    for h in &mut hosts {
        h.title.clear();
        h.checks.clear();
    }
    let c = pol
        .control(id.as_str())
        .ok_or_else(|| Error::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, id.to_string()))?;
    Ok(Json(ControlResponse {
        soa_version: pol.version,
        generated_at: clock::now_rfc3339(),
        title: pol.title(id.as_str()),
        applicable: c.applicable,
        justification: c.justification.clone(),
        owner: c.owner.clone(),
        checks: pol
            .coverage
            .get(&id)
            .map(|x| x.checks.clone())
            .unwrap_or_default(),
        counts: count(&hosts),
        hosts,
        control: id,
    }))
}

/// One host against every control.
#[derive(Debug, Serialize)]
pub struct HostResponse {
    /// The SoA version.
    pub soa_version: i64,
    /// When it was computed.
    pub generated_at: String,
    /// Agent id.
    pub host: AgentId,
    /// Host name.
    pub hostname: String,
    /// Labels.
    pub labels: Labels,
    /// When its newest evidence was produced.
    pub evidence_at: Option<String>,
    /// Controls per state.
    pub counts: Counts,
    /// Every control with its state.
    pub controls: Vec<Cell>,
}

/// `GET /v1/conformity/hosts/{id}?control=&state=` (id: agent id or host name).
pub async fn host(
    State(state): State<AppState>,
    _r: Reader,
    Path(id): Path<String>,
    Query(mut p): Query<Params>,
) -> Result<Json<HostResponse>, Error> {
    let pol = policy(&state)?;
    let index = &state.conformity.index;
    let Some(entry) = index.find(&id).and_then(|no| index.host(no)) else {
        return Err(match state.store.agent(&id).await? {
            Some(a) if a.revoked_at.is_some() => Error::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                format!(
                    "agent {} is revoked; it is not part of the fleet's conformity",
                    a.id
                ),
            ),
            _ => Error::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                format!("no active host with agent id or host name `{id}`"),
            ),
        });
    };
    p.host = Some(entry.id.to_string());
    let f = filter(&pol, p)?;
    let (pol, controls) = state
        .conformity
        .index
        .cells(&f, clock::now_unix())
        .ok_or_else(super::soa::no_soa)?;
    Ok(Json(HostResponse {
        soa_version: pol.version,
        generated_at: clock::now_rfc3339(),
        host: entry.id,
        hostname: entry.hostname,
        labels: entry.labels,
        evidence_at: entry.profile.map(|p| clock::rfc3339(p.evidence_at)),
        counts: count(&controls),
        controls,
    }))
}

/// Query of the timeline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineParams {
    /// An agent id or host name.
    #[serde(default)]
    pub host: Option<String>,
    /// A control id.
    #[serde(default)]
    pub control: Option<String>,
    /// Entries into this state.
    #[serde(default)]
    pub state: Option<String>,
    /// At or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Entries after this id (paging).
    #[serde(default)]
    pub after: i64,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/conformity/timeline?host=&control=&state=&since=&after=&limit=`:
/// changes of (host, control) states, oldest first.
pub async fn timeline(
    State(state): State<AppState>,
    _r: Reader,
    Query(p): Query<TimelineParams>,
) -> Result<Json<Vec<TimelineEntry>>, Error> {
    let agent_no = match &p.host {
        None => None,
        Some(h) => Some(match state.conformity.index.find(h) {
            Some(no) => no,
            // Revoked hosts keep their history, by agent id.
            None => state.store.agent(h).await?.map(|a| a.no).ok_or_else(|| {
                Error::new(
                    StatusCode::NOT_FOUND,
                    codes::NOT_FOUND,
                    format!("no host with agent id or host name `{h}`"),
                )
            })?,
        }),
    };
    let control = match (&p.control, state.conformity.index.policy()) {
        (Some(c), Some(pol)) => Some(control_id(&pol, c)?.into_string()),
        (Some(c), None) => Some(c.clone()),
        (None, _) => None,
    };
    if let Some(s) = &p.state
        && CState::parse(s).is_none()
    {
        return Err(bad(format!("state `{s}` is not a conformity state")));
    }
    if let Some(s) = &p.since
        && clock::parse_rfc3339(s).is_none()
    {
        return Err(bad(format!("since `{s}` is not an RFC 3339 time")));
    }
    let q = TimelineQuery {
        agent_no,
        control,
        state: p.state,
        since: p.since,
        after_id: p.after,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(state.store.timeline(&q).await?))
}
