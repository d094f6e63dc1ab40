//! `annexa gate`: fail a CI pipeline on control drift, in one of two
//! modes with the same outputs and exit statuses: [`local`] scans a root
//! directory and compares it with a baseline file; [`fleet`] judges what
//! the collector records of the fleet. Here: where a verdict is written
//! (`crate::render::gate` renders it).

pub mod fleet;
pub mod local;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::Exit;
use crate::render::gate::{GateFormat, GateVerdict};

/// Where the verdict goes.
#[derive(Debug, Clone, Default)]
pub struct GateOutputs {
    /// The format on standard output.
    pub format: GateFormat,
    /// Also these formats into these files.
    pub files: Vec<(GateFormat, PathBuf)>,
}

impl GateOutputs {
    /// Whether any output is in `format`.
    fn wants(&self, format: GateFormat) -> bool {
        self.format == format || self.files.iter().any(|(f, _)| *f == format)
    }

    /// Writes a verdict: each file, the Markdown step summary under GitHub
    /// Actions with `--format github`, then standard output; the exit
    /// status says whether it `failed`.
    fn emit(&self, verdict: &dyn GateVerdict, failed: bool) -> anyhow::Result<Exit> {
        for (f, path) in &self.files {
            std::fs::write(path, verdict.render(*f))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.format == GateFormat::Github
            && let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY")
        {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&summary)
                .and_then(|mut f| f.write_all(verdict.render(GateFormat::Markdown).as_bytes()))
                .with_context(|| {
                    format!(
                        "appending to GITHUB_STEP_SUMMARY {}",
                        summary.to_string_lossy()
                    )
                })?;
        }
        std::io::stdout()
            .lock()
            .write_all(verdict.render(self.format).as_bytes())?;
        Ok(Exit::failure_if(failed))
    }
}
