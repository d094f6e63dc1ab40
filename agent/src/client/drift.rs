//! `GET /v1/drift`: what changed in the fleet's conformity since a time,
//! and where it stands now; the fleet gate judges it
//! (`annexa_evidence::drift::judge`).

use annexa_evidence::drift::Drift;

use super::{Api, ClientError, api_path, route};

/// The window and the scope to ask for.
#[derive(Debug, Clone, Default)]
pub struct DriftQuery {
    /// The start, RFC 3339 (default: now, so only the states now).
    pub from: Option<String>,
    /// Only hosts whose labels match this selector.
    pub selector: Option<String>,
    /// Only these controls (default: every control of the SoA).
    pub controls: Vec<String>,
    /// Also every (host, control) state, not only the changes (JUnit has
    /// a test case per cell).
    pub cells: bool,
}

/// Asks the collector; anything but 200 is refused.
pub async fn drift(api: &Api, q: &DriftQuery) -> Result<Drift, ClientError> {
    let controls = q.controls.join(",");
    let mut query = Vec::new();
    if let Some(f) = &q.from {
        query.push(("from", f.as_str()));
    }
    if let Some(s) = &q.selector {
        query.push(("selector", s.as_str()));
    }
    if !q.controls.is_empty() {
        query.push(("controls", controls.as_str()));
    }
    if q.cells {
        query.push(("cells", "true"));
    }
    let path = api_path("/v1/drift", &query);
    let (status, body) = api.get(&path).await?;
    if status != 200 {
        return Err(api.refused(&path, status, &body));
    }
    serde_json::from_slice(&body).map_err(|source| ClientError::NotDrift {
        server: api.server().to_string(),
        route: route(&path).to_string(),
        source,
    })
}
