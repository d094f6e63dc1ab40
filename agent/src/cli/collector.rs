//! Arguments of the commands that ask the collector's API with a token
//! (`status`, `report pull`, `verify log` online) or check what it signed
//! offline (`verify`, `report render`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use annexa_evidence::report::render::Format;

use annexa_agent::client::report::{ReportFormat, ReportQuery};
use annexa_agent::client::status::ConformityQuery;
use annexa_agent::client::{ApiOptions, CaSource};
use annexa_agent::commands::Exit;
use annexa_agent::commands::report::{PullOptions, RenderOptions, pull_report, render_report};
use annexa_agent::commands::status::StatusOptions;
use annexa_agent::commands::verify::{
    BundleSource, VerifyLogOptions, VerifyReportOptions, verify_log, verify_report,
};

#[derive(Debug, Subcommand)]
pub(super) enum VerifyCommand {
    /// Verify the whole evidence log: recompute the Merkle tree from every
    /// entry, check every checkpoint's signature and root and their
    /// consistency, every envelope's signature and digest, and each agent's
    /// sequence chain. Any row changed, deleted or inserted behind the
    /// collector is reported with its index and why.
    ///
    /// Online (--server, an admin or auditor API token) the collector
    /// streams its log bundle; offline (--bundle) a bundle exported with
    /// `annexa-collector log export` is read.
    ///
    /// Exit status: 0 the log verifies, 1 problems were found, 2 on any
    /// error (unreadable bundle or key, refused token, unreachable
    /// collector).
    Log(VerifyLogArgs),
    /// Verify a signed evidence report offline, trusting only the
    /// collector's key: its signature, the checkpoint's, every agent key
    /// against its enrollment record, every envelope's agent signature and
    /// inclusion proof, that all evidence lies in the report's period and
    /// every host in its scope, and that every stated state follows from
    /// the evidence and the SoA (recomputed).
    ///
    /// Exit status: 0 the report verifies, 1 something does not hold (the
    /// first problems are named), 2 the report or key cannot be read or
    /// the report's signature does not verify.
    Report(VerifyReportArgs),
}

#[derive(Debug, Args)]
pub(super) struct VerifyReportArgs {
    /// The signed report (from `annexa report pull`).
    report: PathBuf,
    /// The collector's verifier key, as printed by `annexa-collector log
    /// key` (`<origin>+<key id>+<base64 key>`).
    #[arg(long, value_name = "FILE")]
    collector_key: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub(super) enum ReportCommand {
    /// Fetch a signed evidence report (an admin or auditor API token).
    ///
    /// Exit status: 0 written, 2 on any error (no SoA at that time, refused
    /// token, unreachable collector, unwritable file).
    Pull(ReportPullArgs),
    /// Render a signed report for people or other tools: one self-contained
    /// HTML page, an OSCAL assessment-results document, or the SoA with
    /// status as CSV. With --collector-key the report is verified first and
    /// the page shows the outcome.
    ///
    /// Exit status: 0 rendered (and, with --collector-key, verified), 1
    /// rendered but verification found problems, 2 on any error.
    Render(ReportRenderArgs),
}

#[derive(Debug, Args)]
pub(super) struct ReportPullArgs {
    /// The collector and how to reach it.
    #[command(flatten)]
    api: ApiArgs,
    /// Hosts whose labels match this selector, `key=value[,key=value]`
    /// (default: every host).
    #[arg(long, value_name = "SELECTOR")]
    scope: Option<String>,
    /// Only these controls (repeatable or comma-separated; default: every
    /// control of the SoA).
    #[arg(long = "control", value_name = "ID", value_delimiter = ',')]
    controls: Vec<String>,
    /// The time the states hold at, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Do not use evidence accepted before this time, RFC 3339.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// `json` (the signed report) or a rendering made by the collector.
    #[arg(long, value_enum, default_value_t = PullFormat::Json)]
    format: PullFormat,
    /// Where to write it (created with mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum PullFormat {
    Json,
    Html,
    Oscal,
    Csv,
}

#[derive(Debug, Args)]
pub(super) struct ReportRenderArgs {
    /// The signed report.
    report: PathBuf,
    /// The rendering.
    #[arg(long, value_enum)]
    format: RenderFormat,
    /// Verify against this collector key first and show the outcome.
    #[arg(long, value_name = "FILE")]
    collector_key: Option<PathBuf>,
    /// Where to write it (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum RenderFormat {
    Html,
    Oscal,
    Csv,
}

#[derive(Debug, Args)]
pub(super) struct VerifyLogArgs {
    /// The collector's checkpoint verifier key, as printed by
    /// `annexa-collector log key` (`<origin>+<key id>+<base64 key>`).
    #[arg(long, value_name = "FILE")]
    collector_key: PathBuf,
    /// An exported log bundle to verify offline.
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    bundle: Option<PathBuf>,
    /// Online (without --bundle): the collector and how to reach it.
    #[command(flatten)]
    api: ApiArgs,
    /// Online: keep the downloaded bundle here.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    save: Option<PathBuf>,
    /// A checkpoint kept elsewhere (an agent's state `checkpoint` file, an
    /// earlier audit's) to check against the log too. Repeatable.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// Threads for signature checks (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// How `annexa status` trusts the collector.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub(super) struct StatusPin {
    /// The collector's CA certificate (PEM or DER).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The collector's CA by the SHA-256 of its certificate, SHA256:<64 hex>.
    #[arg(long, value_name = "SHA256:HEX")]
    ca_fingerprint: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ApiArgs {
    /// Collector URL, https://HOST:PORT (default: `server` in the
    /// configuration file, else the one this host enrolled with).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// File holding an admin or auditor API token (`-` for standard input);
    /// default: the ANNEXA_TOKEN environment variable.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// How to trust the collector (default: the CA this host pinned when it
    /// enrolled).
    #[command(flatten)]
    pin: StatusPin,
    /// Configuration file (default /etc/annexa/agent.toml, if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The collector and how to reach it.
    #[command(flatten)]
    api: ApiArgs,
    /// One control: every host in its scope with its state.
    #[arg(long, value_name = "ID")]
    control: Option<String>,
    /// One host (agent id or host name): every control with its state.
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Only hosts whose labels match, e.g. `env=prod;role=db|web`.
    #[arg(long, value_name = "SELECTOR")]
    labels: Option<String>,
    /// Only cells in this state (conformant, nonconformant, stale,
    /// no_evidence, error, manual, excluded).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Print the collector's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl From<ApiArgs> for ApiOptions {
    fn from(a: ApiArgs) -> ApiOptions {
        ApiOptions {
            server: a.server,
            token_file: a.token_file,
            ca: match (a.pin.ca, a.pin.ca_fingerprint) {
                (Some(path), _) => Some(CaSource::Certificate(path)),
                (None, Some(fp)) => Some(CaSource::Fingerprint(fp)),
                (None, None) => None,
            },
            config: a.config,
        }
    }
}

impl From<StatusArgs> for StatusOptions {
    fn from(a: StatusArgs) -> StatusOptions {
        StatusOptions {
            api: a.api.into(),
            query: ConformityQuery {
                control: a.control,
                host: a.host,
                labels: a.labels,
                state: a.state,
            },
            json: a.json,
        }
    }
}

impl VerifyCommand {
    pub(super) fn run(self) -> anyhow::Result<Exit> {
        match self {
            VerifyCommand::Log(a) => verify_log(VerifyLogOptions {
                collector_key: a.collector_key,
                bundle: match a.bundle {
                    Some(path) => BundleSource::File(path),
                    None => BundleSource::Collector {
                        api: a.api.into(),
                        save: a.save,
                    },
                },
                checkpoints: a.checkpoints,
                threads: a.threads,
                json: a.json,
            }),
            VerifyCommand::Report(a) => verify_report(VerifyReportOptions {
                report: a.report,
                collector_key: a.collector_key,
                json: a.json,
            }),
        }
    }
}

impl ReportCommand {
    pub(super) fn run(self) -> anyhow::Result<Exit> {
        match self {
            ReportCommand::Pull(a) => pull_report(PullOptions {
                api: a.api.into(),
                query: ReportQuery {
                    scope: a.scope,
                    controls: a.controls,
                    at: a.at,
                    from: a.from,
                    format: match a.format {
                        PullFormat::Json => ReportFormat::Json,
                        PullFormat::Html => ReportFormat::Html,
                        PullFormat::Oscal => ReportFormat::Oscal,
                        PullFormat::Csv => ReportFormat::Csv,
                    },
                },
                out: a.out,
            }),
            ReportCommand::Render(a) => render_report(RenderOptions {
                report: a.report,
                format: match a.format {
                    RenderFormat::Html => Format::Html,
                    RenderFormat::Oscal => Format::Oscal,
                    RenderFormat::Csv => Format::Csv,
                },
                collector_key: a.collector_key,
                out: a.out,
            }),
        }
    }
}
