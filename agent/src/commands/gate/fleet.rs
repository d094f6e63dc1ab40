//! `annexa gate` in collector mode: the drift the collector records
//! between a time (given, or a signed baseline report's) and now, and the
//! conformant share of each control, judged
//! (`annexa_evidence::drift::judge`).

use std::path::PathBuf;

use anyhow::{Context, bail};

use annexa_evidence::drift::{Thresholds, judge};
use annexa_evidence::report::Report;

use super::GateOutputs;
use crate::client::drift::{DriftQuery, drift};
use crate::client::{Api, ApiOptions};
use crate::commands::{Exit, read_collector_key, runtime};
use crate::render::gate::GateFormat;
use crate::render::gate::fleet::FleetGate;

/// The collector, the window and scope, the thresholds and the outputs.
#[derive(Debug, Clone, Default)]
pub struct FleetGateOptions {
    /// The collector and how to reach it.
    pub api: ApiOptions,
    /// The start: RFC 3339, or a duration ago (`24h`, `7d`).
    pub since: Option<String>,
    /// A signed report whose time, states and scope are the baseline.
    pub baseline_report: Option<PathBuf>,
    /// The collector's verifier key, to verify `baseline_report`.
    pub collector_key: Option<PathBuf>,
    /// Only hosts whose labels match this selector.
    pub selector: Option<String>,
    /// Only these controls.
    pub controls: Vec<String>,
    /// The least share of a control's hosts that must be conformant.
    pub min_conformant: Option<f64>,
    /// Where the verdict goes.
    pub outputs: GateOutputs,
}

/// Gates the fleet.
pub fn gate_fleet(opts: FleetGateOptions) -> anyhow::Result<Exit> {
    // The baseline report is read and verified before the collector is
    // asked anything: a report that does not verify decides nothing.
    let baseline = match &opts.baseline_report {
        Some(path) => Some(verified_baseline(path, opts.collector_key.as_deref())?),
        None => None,
    };
    let report = baseline.as_ref().map(|(_, r)| r);
    let from = match (&opts.since, report) {
        (Some(s), _) => Some(since_time(s)?),
        (None, Some(r)) => Some(r.period.at.clone()),
        (None, None) => None,
    };
    let selector = match (&opts.selector, report) {
        (Some(s), Some(r)) if r.scope.selector.as_deref().is_some_and(|x| x != s) => bail!(
            "--selector `{s}` differs from the baseline report's scope `{}`",
            r.scope.selector.as_deref().unwrap_or("")
        ),
        (Some(s), _) => Some(s.clone()),
        (None, Some(r)) => r.scope.selector.clone(),
        (None, None) => None,
    };
    let controls = match report {
        Some(r) if opts.controls.is_empty() => {
            r.scope.controls.iter().map(ToString::to_string).collect()
        }
        _ => opts.controls.clone(),
    };
    let query = DriftQuery {
        from,
        selector,
        controls,
        cells: opts.outputs.wants(GateFormat::Junit),
    };
    let api = Api::connect(&opts.api)?;
    let drift = runtime()?.block_on(drift(&api, &query))?;
    let thresholds = Thresholds {
        min_conformant: opts.min_conformant,
    };
    let verdict = judge(&drift, report, &thresholds);
    let g = FleetGate {
        drift: &drift,
        verdict: &verdict,
        server: api.server(),
        baseline: baseline.as_ref().map(|(l, _)| l.as_str()),
        min_conformant: opts.min_conformant,
    };
    opts.outputs.emit(&g, verdict.failed)
}

/// The baseline report, named and verified against the collector's key.
fn verified_baseline(
    path: &std::path::Path,
    key: Option<&std::path::Path>,
) -> anyhow::Result<(String, Report)> {
    let label = path.display().to_string();
    let key = key.context("--baseline-report needs --collector-key FILE to verify it")?;
    let verifier = read_collector_key(key)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {label}"))?;
    let (opened, keys) =
        annexa_evidence::report::open_trusting(&bytes, &verifier).with_context(|| label.clone())?;
    let outcome = annexa_evidence::report::verify::verify_opened(&opened, &keys);
    if !outcome.ok() {
        bail!(
            "{label}: the baseline report does not verify ({} problems; `annexa verify report` lists them), first: {}",
            outcome.problem_count,
            outcome.problems.first().map(String::as_str).unwrap_or("")
        );
    }
    Ok((label, opened.report))
}

/// `--since`: an RFC 3339 time as given, or a duration ago (`24h`, `7d`).
fn since_time(s: &str) -> anyhow::Result<String> {
    if annexa_checks::conformity::parse_time(s).is_some() {
        return Ok(s.to_string());
    }
    let seconds = annexa_checks::expect::parse_duration_secs(s).with_context(|| {
        format!(
            "--since `{s}` is neither an RFC 3339 time (2026-11-23T12:00:00Z) nor a duration ago (30m, 24h, 7d)"
        )
    })?;
    let t = time::OffsetDateTime::now_utc()
        .checked_sub(time::Duration::seconds(seconds))
        .with_context(|| format!("--since `{s}` is out of range"))?;
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}
