//! `GET /v1/reports`: a signed evidence report, or a rendering of one made
//! by the collector, streamed to the caller (a report can hold every
//! envelope of the fleet).

use super::{Api, ClientError, api_path};

/// What the collector sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// The signed report (what `annexa verify report` checks).
    #[default]
    Json,
    /// One self-contained HTML page.
    Html,
    /// OSCAL assessment results.
    Oscal,
    /// The SoA with status.
    Csv,
}

impl ReportFormat {
    /// The name the API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
            ReportFormat::Oscal => "oscal",
            ReportFormat::Csv => "csv",
        }
    }
}

/// The report to ask for.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// Hosts whose labels match this selector (default: every host).
    pub scope: Option<String>,
    /// Only these controls (default: every control of the SoA).
    pub controls: Vec<String>,
    /// The time the states hold at, RFC 3339 (default: now).
    pub at: Option<String>,
    /// Do not use evidence accepted before this time, RFC 3339.
    pub from: Option<String>,
    /// The signed report or a rendering.
    pub format: ReportFormat,
}

/// Streams the report into `dest`; anything but 200 is refused.
pub async fn pull(
    api: &Api,
    q: &ReportQuery,
    dest: &mut (dyn std::io::Write + Send),
) -> Result<(), ClientError> {
    let controls = q.controls.join(",");
    let mut query = vec![("format", q.format.as_str())];
    if let Some(s) = &q.scope {
        query.push(("scope", s.as_str()));
    }
    if !q.controls.is_empty() {
        query.push(("controls", controls.as_str()));
    }
    if let Some(t) = &q.at {
        query.push(("at", t.as_str()));
    }
    if let Some(t) = &q.from {
        query.push(("from", t.as_str()));
    }
    api.download(&api_path("/v1/reports", &query), dest).await
}
