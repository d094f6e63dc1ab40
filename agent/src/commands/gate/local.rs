//! `annexa gate --root`: scan a root directory (an image, a chroot, a
//! build root) and judge it against a recorded baseline, or against the
//! SoA (`checks::gate::judge`); or record the scan as the baseline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, bail};

use annexa_checks::CheckId;
use annexa_checks::catalog::Edition;
use annexa_checks::engine::{self, Selection};
use annexa_checks::gate::{Baseline, FailOn, judge};
use annexa_checks::host::HostView;

use super::GateOutputs;
use crate::commands::{Exit, PackOptions, read_text};
use crate::render::gate::local::Gate;

/// The root, what to judge it against, and the outputs.
#[derive(Debug, Clone)]
pub struct LocalGateOptions {
    /// The root directory to scan.
    pub root: PathBuf,
    /// The packs.
    pub packs: PackOptions,
    /// The Statement of Applicability (TOML or CSV).
    pub soa: Option<PathBuf>,
    /// The baseline to compare with.
    pub baseline: Option<PathBuf>,
    /// Record the scan as a baseline here instead of judging it.
    pub write_baseline: Option<PathBuf>,
    /// What fails the gate besides drift.
    pub fail_on: FailOn,
    /// The edition of the controls shown (default 2022, or the SoA's).
    pub edition: Option<Edition>,
    /// Parameter overrides, `(name, value)`, applied after the SoA's.
    pub params: Vec<(String, String)>,
    /// Where the verdict goes.
    pub outputs: GateOutputs,
}

/// Gates the root, or records its baseline.
pub fn gate_local(opts: LocalGateOptions) -> anyhow::Result<Exit> {
    if opts.baseline.is_none() && opts.write_baseline.is_none() && !opts.fail_on.nonconformant {
        bail!(
            "nothing to gate on: give --baseline FILE (drift), --write-baseline FILE (record one) or --fail-on nonconformant"
        );
    }
    let set = opts.packs.load()?;
    // Read everything that can be wrong before scanning.
    let baseline = match &opts.baseline {
        Some(p) => {
            let (label, text) = read_text(p)?;
            Some(Baseline::parse(&label, &text)?)
        }
        None => None,
    };
    let soa = match &opts.soa {
        Some(p) => {
            let (label, text) = read_text(p)?;
            let format = annexa_checks::soa::Format::from_path(&label);
            Some(
                annexa_checks::soa::lint(&label, &text, format, &set)
                    .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?,
            )
        }
        None => None,
    };
    let edition = opts
        .edition
        .or(soa.as_ref().map(|s| s.edition))
        .unwrap_or(Edition::E2022);
    let mut overrides: BTreeMap<String, String> = soa
        .as_ref()
        .map(|s| {
            s.params()
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    overrides.extend(opts.params);
    let params = set.params_with(&overrides).map_err(anyhow::Error::msg)?;
    let host = HostView::root(&opts.root)?;
    let report = engine::scan(&set, &host, &params, &Selection::default(), crate::VERSION)?;
    if let Some(path) = &opts.write_baseline {
        let b = Baseline::of(&report);
        std::fs::write(path, b.to_text()).with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "annexa gate: recorded {} checks ({} pass, {} fail, {} error, {} not applicable) in {}",
            report.results.len(),
            report.summary.pass,
            report.summary.fail,
            report.summary.error,
            report.summary.not_applicable,
            path.display()
        );
        return Ok(Exit::Success);
    }
    let applicable = soa.as_ref().map(|s| {
        s.coverage(&set)
            .into_values()
            .flat_map(|c| c.checks)
            .collect::<BTreeSet<CheckId>>()
    });
    let verdict = judge(
        &report,
        baseline.as_ref(),
        edition,
        applicable.as_ref(),
        opts.fail_on,
    );
    let label = opts.baseline.as_ref().map(|p| p.display().to_string());
    let g = Gate {
        report: &report,
        verdict: &verdict,
        root: &opts.root,
        baseline: label.as_deref(),
    };
    opts.outputs.emit(&g, verdict.failed)
}
