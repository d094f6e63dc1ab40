//! Arguments of the agent's own commands: `enroll` and `run`
//! (`rotate-key` has only `--config`).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use annexa_agent::client::CaSource;
use annexa_agent::commands::enroll::{EnrollCommand, TokenSource};
use annexa_agent::commands::run::RunOptions;

use super::parse_param;

#[derive(Debug, Args)]
pub(super) struct EnrollArgs {
    /// Collector URL, https://HOST:PORT (default: `server` in the
    /// configuration file).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The single-use enrollment token from the collector. Visible to other
    /// local users in the process list while enrolling: prefer --token-file.
    #[arg(
        long,
        value_name = "TOKEN",
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// Read the enrollment token from this file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    pin: CaArgs,
    /// State directory (default: `state_dir` in the configuration file, else
    /// /var/lib/annexa).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Configuration file (default /etc/annexa/agent.toml, if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A label to record for this host, e.g. env=prod (repeatable; added to
    /// the configuration file's labels).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_param)]
    labels: Vec<(String, String)>,
}

/// Exactly one way to pin the collector's CA.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(super) struct CaArgs {
    /// The collector's CA certificate (PEM or DER) to pin.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Pin the collector's CA by the SHA-256 of its certificate,
    /// SHA256:<64 hex>; the certificate the collector presents with that
    /// fingerprint is saved as the pinned CA.
    #[arg(long, value_name = "SHA256:HEX")]
    ca_fingerprint: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Configuration file (default /etc/annexa/agent.toml, if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Produce one envelope, deliver everything pending, and exit.
    #[arg(long)]
    once: bool,
    /// With --once: produce into the spool only, deliver nothing.
    #[arg(long, requires = "once")]
    no_send: bool,
}

impl TryFrom<EnrollArgs> for EnrollCommand {
    type Error = anyhow::Error;

    fn try_from(a: EnrollArgs) -> anyhow::Result<EnrollCommand> {
        // clap enforces both; the messages stay for a definition that
        // drifts from it.
        let ca = match (a.pin.ca, a.pin.ca_fingerprint) {
            (Some(path), None) => CaSource::Certificate(path),
            (None, Some(fp)) => CaSource::Fingerprint(fp),
            _ => bail!("give exactly one of --ca FILE and --ca-fingerprint SHA256:<hex>"),
        };
        let token = match (a.token, a.token_file) {
            (Some(t), _) => TokenSource::Value(t),
            (None, Some(path)) => TokenSource::File(path),
            (None, None) => bail!("give --token or --token-file"),
        };
        Ok(EnrollCommand {
            server: a.server,
            token,
            ca,
            state_dir: a.state_dir,
            config: a.config,
            labels: a.labels,
        })
    }
}

impl From<RunArgs> for RunOptions {
    fn from(a: RunArgs) -> RunOptions {
        RunOptions {
            config: a.config,
            once: a.once,
            no_send: a.no_send,
        }
    }
}
