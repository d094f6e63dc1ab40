//! `annexa enroll`: what the command line gives, completed from agent.toml,
//! handed to [`crate::enroll()`], and the outcome in words.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::client::{CaSource, read_token};
use crate::commands::{Exit, runtime};
use crate::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use crate::daemon::init_logging;
use crate::enroll::{CaPin, EnrollOptions, enroll};

/// Where the single-use enrollment token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Given as it is.
    Value(String),
    /// A file holding it (`-`: standard input).
    File(PathBuf),
}

/// Enrollment as given on the command line.
#[derive(Debug, Clone)]
pub struct EnrollCommand {
    /// The collector's URL (default: `server` in agent.toml).
    pub server: Option<String>,
    /// The token.
    pub token: TokenSource,
    /// The CA to pin.
    pub ca: CaSource,
    /// The state directory (default: `state_dir` in agent.toml).
    pub state_dir: Option<PathBuf>,
    /// agent.toml (default: /etc/annexa/agent.toml, if it exists).
    pub config: Option<PathBuf>,
    /// Labels added to agent.toml's.
    pub labels: Vec<(String, String)>,
}

/// Enrolls this host and says where its state went.
pub fn enroll_host(cmd: EnrollCommand) -> anyhow::Result<Exit> {
    let config = AgentConfig::load_or_default(cmd.config.as_deref())?;
    init_logging(config.log_format);
    let config_path = config_label(cmd.config.as_deref());
    let server = cmd.server.or(config.server.clone()).with_context(|| {
        format!(
            "no collector URL: give --server https://HOST:PORT or set `server` in {config_path}"
        )
    })?;
    let ca = match &cmd.ca {
        CaSource::Certificate(path) => CaPin::Certificate {
            label: path.display().to_string(),
            bytes: std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        },
        CaSource::Fingerprint(fp) => CaPin::Fingerprint(fp.clone()),
    };
    // Only a directory given on the command line can differ from what
    // `annexa run` will use.
    let elsewhere = cmd
        .state_dir
        .as_ref()
        .filter(|d| **d != config.state_dir)
        .cloned();
    let state_dir = cmd.state_dir.unwrap_or(config.state_dir.clone());
    let mut labels = config.labels.clone();
    labels.extend(cmd.labels);
    let token = match cmd.token {
        TokenSource::Value(t) => t,
        TokenSource::File(path) => read_token(&path)?,
    };
    let opts = EnrollOptions {
        server,
        token,
        ca,
        state_dir,
        labels,
    };
    let outcome = runtime()?.block_on(enroll(opts))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "enrolled as agent {}", outcome.agent_id)?;
    writeln!(out, "collector key id {}", outcome.collector_key_id)?;
    writeln!(
        out,
        "state written to {} (agent.key, enrollment.json, ca.pem, chain.json)",
        outcome.state_dir.display()
    )?;
    if let Some(dir) = elsewhere {
        writeln!(
            out,
            "note: `annexa run` reads state_dir from {config_path} (now {}); set state_dir = \"{}\" there",
            config.state_dir.display(),
            dir.display()
        )?;
    }
    Ok(Exit::Success)
}

/// The configuration file as named in messages.
fn config_label(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string())
        .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_string())
}
