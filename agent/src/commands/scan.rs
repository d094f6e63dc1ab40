//! `annexa scan`: the checks of the loaded packs on this host, or on a
//! root directory, as a table, the JSON report or JUnit XML.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use annexa_checks::CheckId;
use annexa_checks::catalog::Edition;
use annexa_checks::engine::{self, Selection};
use annexa_checks::host::HostView;

use super::{Exit, PackOptions};
use crate::render::scan::{junit, text};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanFormat {
    /// A table grouped by control, failures first (colour on a terminal).
    #[default]
    Text,
    /// The full report (schema annexa.scan/v1).
    Json,
    /// JUnit XML: one test case per check, one test suite per control.
    Junit,
}

/// What to scan, with what, and where the output goes.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// A root directory to scan instead of the running host.
    pub root: Option<PathBuf>,
    /// The packs.
    pub packs: PackOptions,
    /// Only these checks.
    pub checks: Vec<CheckId>,
    /// Only checks giving evidence for these controls (of `edition`).
    pub controls: Vec<String>,
    /// The edition of `controls` and of the grouping.
    pub edition: Edition,
    /// Parameter overrides, `(name, value)`.
    pub params: Vec<(String, String)>,
    /// The output format.
    pub format: ScanFormat,
    /// A file instead of standard output.
    pub output: Option<PathBuf>,
}

/// Scans and writes the report; [`Exit::Failure`] when a check failed.
pub fn scan(opts: ScanOptions) -> anyhow::Result<Exit> {
    let set = opts.packs.load()?;
    let overrides: BTreeMap<String, String> = opts.params.into_iter().collect();
    let params = set.params_with(&overrides).map_err(anyhow::Error::msg)?;
    let host = match &opts.root {
        Some(dir) => HostView::root(dir)?,
        None => HostView::live(),
    };
    let selection = Selection {
        checks: opts.checks,
        controls: opts.controls,
        edition: Some(opts.edition),
    };
    let report = engine::scan(&set, &host, &params, &selection, crate::VERSION)?;
    let rendered = match opts.format {
        ScanFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ScanFormat::Junit => junit::render(&report, opts.edition),
        ScanFormat::Text => {
            let colour = opts.output.is_none() && text::colour_wanted();
            text::render(&report, opts.edition, colour)
        }
    };
    match &opts.output {
        Some(path) => {
            std::fs::write(path, rendered).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().lock().write_all(rendered.as_bytes())?,
    }
    Ok(Exit::failure_if(report.has_failures()))
}
