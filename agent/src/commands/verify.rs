//! `annexa verify`: check what a collector holds trusting only its key:
//! the whole evidence log (`log`: a bundle given, or downloaded with an
//! API token) and a signed evidence report (`report`), offline.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::client::{Api, ApiOptions, log};
use crate::commands::{Exit, print_result, read_collector_key, runtime};
use crate::render::{verify_log, verify_report};

/// Where the log bundle comes from.
#[derive(Debug, Clone)]
pub enum BundleSource {
    /// A bundle exported with `annexa-collector log export`.
    File(PathBuf),
    /// Downloaded from the collector.
    Collector {
        /// The collector and how to reach it.
        api: ApiOptions,
        /// Keep the bundle here (default: a temporary file).
        save: Option<PathBuf>,
    },
}

/// The log, the key, and what else to check it against.
#[derive(Debug, Clone)]
pub struct VerifyLogOptions {
    /// The collector's checkpoint verifier key (file).
    pub collector_key: PathBuf,
    /// The bundle.
    pub bundle: BundleSource,
    /// Checkpoints kept elsewhere, to check against the log too.
    pub checkpoints: Vec<PathBuf>,
    /// Threads for signature checks (default: every core).
    pub threads: Option<usize>,
    /// Print the result as JSON.
    pub json: bool,
}

/// Verifies the log; [`Exit::Failure`] when problems were found.
pub fn verify_log(opts: VerifyLogOptions) -> anyhow::Result<Exit> {
    let verifier = read_collector_key(&opts.collector_key)?;
    let mut extra = Vec::new();
    for p in &opts.checkpoints {
        extra.push(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?);
    }
    let (path, label, _tmp) = match &opts.bundle {
        BundleSource::File(b) => (b.clone(), b.display().to_string(), None),
        BundleSource::Collector { api, save } => {
            let api = Api::connect(api)?;
            let (path, tmp) = match save {
                Some(p) => (p.clone(), None),
                None => {
                    let t = tempfile::NamedTempFile::new().context("creating a temporary file")?;
                    (t.path().to_path_buf(), Some(t))
                }
            };
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            runtime()?.block_on(log::export(&api, &mut out))?;
            out.flush().context("writing the bundle")?;
            (path, format!("{}{}", api.server(), log::EXPORT), tmp)
        }
    };
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let threads = opts.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let started = Instant::now();
    let v = annexa_evidence::audit::verify_bundle(
        std::io::BufReader::with_capacity(1 << 20, file),
        &verifier,
        &extra,
        threads,
    )
    .with_context(|| label.clone())?;
    print_result(opts.json, &v, |out| {
        verify_log::render(out, &label, &v, started.elapsed())
    })?;
    Ok(Exit::failure_if(!v.ok()))
}

/// The report, the key and the format.
#[derive(Debug, Clone)]
pub struct VerifyReportOptions {
    /// The signed report.
    pub report: PathBuf,
    /// The collector's verifier key (file).
    pub collector_key: PathBuf,
    /// Print the result as JSON.
    pub json: bool,
}

/// Verifies the report; [`Exit::Failure`] when something does not hold.
pub fn verify_report(opts: VerifyReportOptions) -> anyhow::Result<Exit> {
    let verifier = read_collector_key(&opts.collector_key)?;
    let label = opts.report.display().to_string();
    let bytes = std::fs::read(&opts.report).with_context(|| format!("reading {label}"))?;
    let started = Instant::now();
    let outcome = annexa_evidence::report::verify::verify(&bytes, &verifier)
        .with_context(|| label.clone())?;
    print_result(opts.json, &outcome, |out| {
        verify_report::render(out, &label, &outcome, started.elapsed())
    })?;
    Ok(Exit::failure_if(!outcome.ok()))
}
