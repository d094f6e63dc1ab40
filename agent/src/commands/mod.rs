//! The bodies of the `annexa` commands, one command (or one pair of
//! subcommands) per file; the binary parses the command line into these
//! options and calls them. Each reads its inputs, decides, and prints to
//! standard output what the command prints (notes and progress on
//! standard error), returning how it came out: [`Exit`] for the status 0
//! or 1, an error for 2.
//!
//! On the host: [`scan`], [`gate::local`], [`checks`], [`controls`];
//! as the agent: [`enroll`], [`run`], [`rotate_key`]; a person's key:
//! [`person`]; against the
//! collector's API ([`crate::client`]): [`status`], [`report`] (`pull`),
//! [`gate::fleet`]; offline, trusting only the collector's key:
//! [`verify`], [`report`] (`render`).
//!
//! Errors are `anyhow` here, at the edge: each names the file, the flag
//! or the route it is about, and the binary prints the chain.

pub mod checks;
pub mod controls;
pub mod enroll;
pub mod gate;
pub mod person;
pub mod report;
pub mod rotate_key;
pub mod run;
pub mod scan;
pub mod status;
pub mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use annexa_checks::pack::{DEFAULT_PACK_DIR, PackSet};
use annexa_evidence::note::Verifier;

/// How a command that ran to its end came out. Errors, which exit 2, are
/// the `Err` of the command's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit status 0.
    Success,
    /// Exit status 1: a check failed, the gate failed, something is
    /// nonconformant, a verification found problems, envelopes remain
    /// undelivered.
    Failure,
}

impl Exit {
    /// `Failure` when `failed`.
    pub fn failure_if(failed: bool) -> Exit {
        if failed { Exit::Failure } else { Exit::Success }
    }

    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
        }
    }
}

/// Which check packs to load.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Directories of packs; none: /etc/annexa/checks.d, if it exists.
    pub dirs: Vec<PathBuf>,
    /// Leave out the packs built into annexa.
    pub no_builtin: bool,
}

impl PackOptions {
    /// Loads the packs, all or nothing.
    pub fn load(&self) -> anyhow::Result<PackSet> {
        let (dirs, optional) = if self.dirs.is_empty() {
            (vec![PathBuf::from(DEFAULT_PACK_DIR)], true)
        } else {
            (self.dirs.clone(), false)
        };
        PackSet::load(!self.no_builtin, &dirs, optional)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }
}

/// Reads a collector's verifier key file (the first line that is not blank
/// or a comment).
pub fn read_collector_key(path: &Path) -> anyhow::Result<Verifier> {
    let (label, text) = read_text(path)?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .with_context(|| format!("{label}: no verifier key in the file"))?;
    Verifier::parse(line).with_context(|| label.clone())
}

/// A runtime for the networked commands. Its shutdown is bounded: a scan
/// still running on a blocking thread when the daemon stops must not hold
/// the process (every write is crash-safe).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints a command's result on standard output: as JSON, or as `text`
/// writes it for people.
fn print_result<T: serde::Serialize>(
    json: bool,
    result: &T,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(result)?)?;
    } else {
        text(&mut out)?;
    }
    Ok(())
}

/// Reads a file that a command needs whole, naming it when it cannot.
fn read_text(path: &Path) -> anyhow::Result<(String, String)> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {label}"))?;
    Ok((label, text))
}
