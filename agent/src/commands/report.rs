//! `annexa report`: pull a signed evidence report from the collector
//! (`pull`), or render one for people and other tools (`render`), verified
//! first when the collector's key is given.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use annexa_evidence::report::render::{self, Format, Verification};

use crate::client::report::{ReportQuery, pull};
use crate::client::{Api, ApiOptions};
use crate::commands::{Exit, read_collector_key, runtime};

/// The collector, the report to ask for, and where to write it.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The collector and how to reach it.
    pub api: ApiOptions,
    /// The report.
    pub query: ReportQuery,
    /// The file (created with mode 0600).
    pub out: PathBuf,
}

/// Pulls the report into its file, whole or not at all.
pub fn pull_report(opts: PullOptions) -> anyhow::Result<Exit> {
    let api = Api::connect(&opts.api)?;
    let tmp = tempfile::NamedTempFile::new_in(
        opts.out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .with_context(|| format!("creating a file beside {}", opts.out.display()))?;
    let mut writer = std::io::BufWriter::new(tmp.as_file());
    runtime()?.block_on(pull(&api, &opts.query, &mut writer))?;
    writer.flush().context("writing the report")?;
    drop(writer);
    tmp.persist(&opts.out)
        .with_context(|| format!("writing {}", opts.out.display()))?;
    let size = std::fs::metadata(&opts.out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({size} bytes) from {}",
        opts.out.display(),
        api.server()
    );
    Ok(Exit::Success)
}

/// The report, the rendering, and where it goes.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The signed report.
    pub report: PathBuf,
    /// HTML, OSCAL or CSV.
    pub format: Format,
    /// Verify against this collector key first and show the outcome.
    pub collector_key: Option<PathBuf>,
    /// A file (mode 0600) instead of standard output.
    pub out: Option<PathBuf>,
}

/// Renders the report; [`Exit::Failure`] when it was verified and does not
/// verify (the rendering shows the problems).
pub fn render_report(opts: RenderOptions) -> anyhow::Result<Exit> {
    let label = opts.report.display().to_string();
    let bytes = std::fs::read(&opts.report).with_context(|| format!("reading {label}"))?;
    // Opened once: with a key, verified too.
    let (opened, verification) = match &opts.collector_key {
        Some(path) => {
            let verifier = read_collector_key(path)?;
            let (opened, keys) = annexa_evidence::report::open_trusting(&bytes, &verifier)
                .with_context(|| label.clone())?;
            let outcome = annexa_evidence::report::verify::verify_opened(&opened, &keys);
            let v = Verification::Checked {
                key: verifier.to_string(),
                outcome: Box::new(outcome),
            };
            (opened, v)
        }
        None => (
            annexa_evidence::report::open_unverified(&bytes).with_context(|| label.clone())?,
            Verification::Unchecked,
        ),
    };
    let ctx = render::Context::new(&opened.report, &opened.digest, &verification);
    let rendered = render::render(&ctx, opts.format);
    match &opts.out {
        // Like `report pull`: host inventories are not for every user, and
        // a file that exists keeps no wider mode.
        Some(p) => crate::state::write_atomic(p, &rendered, 0o600)
            .with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(&rendered)?,
    }
    Ok(match &verification {
        Verification::Checked { outcome, .. } if !outcome.ok() => {
            eprintln!(
                "annexa: {label} does not verify: {} problems (shown in the rendering)",
                outcome.problem_count
            );
            Exit::Failure
        }
        _ => Exit::Success,
    })
}
