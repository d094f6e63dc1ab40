//! Command-line interface.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use annexa_checks::catalog::{Edition, catalog};
use annexa_checks::engine::{self, Selection};
use annexa_checks::host::HostView;
use annexa_checks::pack::{DEFAULT_PACK_DIR, PackSet};

use annexa_agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use annexa_agent::daemon::{SHUTDOWN_GRACE, init_logging, run_daemon, shutdown_signal};
use annexa_agent::enroll::{CaPin, EnrollOptions, enroll};
use annexa_agent::run_once;

use crate::output;

/// annexa: ISO/IEC 27001 Annex A compliance evidence from Linux hosts and images.
#[derive(Debug, Parser)]
#[command(name = "annexa", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the checks on this host, or on a root directory with --root.
    ///
    /// Exit status: 0 when no check failed, 1 when at least one check
    /// failed, 2 for usage or configuration errors (a malformed pack, an
    /// unknown check or control, an unusable --root).
    Scan(ScanArgs),
    /// Gate a CI pipeline on control drift, on a root directory (local
    /// mode, --root) or on the fleet as the collector records it
    /// (collector mode: --since, --baseline-report or --min-conformant).
    ///
    /// Local: `--write-baseline FILE` records the scan. `--baseline FILE`
    /// fails when a check that passed in the baseline fails or errors now
    /// (drift); new and removed checks are reported, and fail only with
    /// `--fail-on new` / `--fail-on removed`. `--fail-on nonconformant`
    /// also fails on any failing check that gives evidence for an
    /// applicable control (of --soa, or any control without one).
    ///
    /// Collector (an admin or auditor API token): `--since TIME` fails when
    /// any (host, control) in scope was conformant at TIME or since and is not now;
    /// `--baseline-report FILE` does the same from the states of a signed
    /// report (verified first with --collector-key); `--min-conformant 100%`
    /// fails when a control in scope has fewer of its hosts conformant.
    ///
    /// Exit status: 0 pass, 1 drift or nonconformity, 2 when the gate could
    /// not decide (usage, unreadable or malformed baseline, SoA or pack,
    /// unusable --root, unwritable output, a report that does not verify,
    /// an unreachable collector, a refused token).
    Gate(Box<GateArgs>),
    /// Browse the ISO/IEC 27001 Annex A catalog and its crosswalks.
    Controls {
        #[command(subcommand)]
        command: ControlsCommand,
    },
    /// List the checks of the loaded packs.
    Checks {
        #[command(subcommand)]
        command: ChecksCommand,
    },
    /// Enroll this host with a collector.
    ///
    /// Creates the agent's key in the state directory if needed, presents
    /// it with the single-use token over TLS to the collector's pinned CA
    /// (exactly one of --ca and --ca-fingerprint), and records the agent
    /// id, the collector's receipt key and the pinned CA.
    ///
    /// Exit status: 0 enrolled, 2 on any error (refused token, unreachable
    /// collector, certificate mismatch, unusable state directory).
    Enroll(EnrollArgs),
    /// Print the fleet's conformity with the Statement of Applicability, as
    /// the collector computes it (an admin or auditor API token).
    ///
    /// Without --control or --host: one line per control with the number
    /// of hosts in each state. With --control: every host in the control's
    /// scope. With --host: every control for that host.
    ///
    /// Exit status: 0 when nothing shown is nonconformant, 1 when something
    /// is, 2 on any error (no SoA imported, refused token, unreachable
    /// collector).
    Status(StatusArgs),
    /// Run the agent: scan on schedule, sign, spool and deliver evidence.
    ///
    /// Without --once, runs until SIGTERM or SIGINT (exit 0). With --once,
    /// produces one signed envelope and delivers everything pending.
    ///
    /// Exit status: 0 success (with --once: the spool is empty afterwards,
    /// or --no-send was given), 1 with --once when delivery failed and
    /// envelopes remain spooled, 2 configuration or state errors (not
    /// enrolled with --once, malformed agent.toml or pack).
    Run(RunArgs),
    /// Rotate the agent's key: make a new key (agent.key.next, mode 0600)
    /// that the next run declares in its envelope, signed with the current
    /// key; from the envelope after it, the agent signs with the new key and
    /// the old one is deleted. The collector switches keys when it accepts
    /// the declaring envelope; evidence signed with the old key stays
    /// verifiable (docs/security.md).
    ///
    /// Exit status: 0 a rotation is pending (made now or already), 2 not
    /// enrolled or the state directory is unusable.
    RotateKey {
        /// Configuration file (default /etc/annexa/agent.toml, if it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Evidence reports for auditors: pull a signed report from the
    /// collector, or render one as HTML, OSCAL or CSV.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (annexa.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Manpages {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// Verify what a collector holds, trusting only its checkpoint key.
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum VerifyCommand {
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
struct VerifyReportArgs {
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
enum ReportCommand {
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
struct ReportPullArgs {
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
enum PullFormat {
    Json,
    Html,
    Oscal,
    Csv,
}

#[derive(Debug, Args)]
struct ReportRenderArgs {
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
enum RenderFormat {
    Html,
    Oscal,
    Csv,
}

#[derive(Debug, Args)]
struct VerifyLogArgs {
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

#[derive(Debug, Args)]
struct EnrollArgs {
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
struct CaArgs {
    /// The collector's CA certificate (PEM or DER) to pin.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Pin the collector's CA by the SHA-256 of its certificate,
    /// SHA256:<64 hex>; the certificate the collector presents with that
    /// fingerprint is saved as the pinned CA.
    #[arg(long, value_name = "SHA256:HEX")]
    ca_fingerprint: Option<String>,
}

/// How `annexa status` trusts the collector.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
struct StatusPin {
    /// The collector's CA certificate (PEM or DER).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The collector's CA by the SHA-256 of its certificate, SHA256:<64 hex>.
    #[arg(long, value_name = "SHA256:HEX")]
    ca_fingerprint: Option<String>,
}

#[derive(Debug, Args)]
struct ApiArgs {
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
struct StatusArgs {
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

#[derive(Debug, Args)]
struct RunArgs {
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScanFormat {
    /// A table grouped by control, failures first (colour on a terminal).
    Text,
    /// The full report (schema annexa.scan/v1, docs/scan-format.md).
    Json,
    /// JUnit XML: one test case per check, one test suite per control.
    Junit,
}

#[derive(Debug, Args)]
struct PackArgs {
    /// Directory of additional check packs (*.toml). Repeatable. Replaces
    /// the default directory /etc/annexa/checks.d, which is read only if it
    /// exists.
    #[arg(long = "packs", value_name = "DIR")]
    packs: Vec<PathBuf>,
    /// Do not load the packs built into annexa.
    #[arg(long)]
    no_builtin: bool,
}

impl PackArgs {
    fn load(&self) -> anyhow::Result<PackSet> {
        let (dirs, optional) = if self.packs.is_empty() {
            (vec![PathBuf::from(DEFAULT_PACK_DIR)], true)
        } else {
            (self.packs.clone(), false)
        };
        PackSet::load(!self.no_builtin, &dirs, optional)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Scan this directory as the root file system of a system (an image,
    /// a chroot, a container root) instead of the running host. Paths never
    /// leave it, symbolic links included; checks that need a running system
    /// report not_applicable.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(flatten)]
    packs: PackArgs,
    /// Run only this check (repeatable).
    #[arg(long = "check", value_name = "ID")]
    checks: Vec<String>,
    /// Run only checks giving evidence for this Annex A control (repeatable),
    /// in the --edition given.
    #[arg(long = "control", value_name = "ID")]
    controls: Vec<String>,
    /// Edition for --control and for grouping the text and JUnit output.
    #[arg(long, value_name = "YEAR", default_value = "2022", value_parser = parse_edition)]
    edition: Edition,
    /// Override a check parameter, e.g. session_timeout_seconds=600 (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ScanFormat,
    /// Write the output to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// Local mode: the root directory to scan (an image, a chroot, a build
    /// root).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present_any = ["since", "baseline_report", "min_conformant"],
        conflicts_with_all = ["since", "baseline_report", "min_conformant", "selector", "controls", "collector_key"]
    )]
    root: Option<PathBuf>,
    /// Collector mode: the collector and how to reach it.
    #[command(flatten)]
    api: ApiArgs,
    /// Collector mode: fail on any (host, control) conformant at TIME (RFC
    /// 3339, or a duration ago such as 24h or 7d) or since, and not
    /// conformant now.
    #[arg(long, value_name = "TIME", conflicts_with = "baseline_report")]
    since: Option<String>,
    /// Collector mode: as --since, from the time and the states of this
    /// signed report (`annexa report pull`); its scope is the default.
    #[arg(long, value_name = "FILE", requires = "collector_key")]
    baseline_report: Option<PathBuf>,
    /// The collector's verifier key (file), to verify --baseline-report.
    #[arg(long, value_name = "FILE")]
    collector_key: Option<PathBuf>,
    /// Collector mode: only hosts whose labels match, e.g.
    /// `env=prod;role=db|web`.
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Collector mode: only these controls (repeatable or comma-separated;
    /// default: every control of the SoA).
    #[arg(long = "control", value_name = "ID", value_delimiter = ',')]
    controls: Vec<String>,
    /// Collector mode: fail when a control in scope has less than this
    /// share of its hosts conformant (hosts whose evidence decides; manual
    /// and excluded cells do not count), e.g. 100% or 95%.
    #[arg(long, value_name = "PERCENT", value_parser = annexa_evidence::drift::parse_percent)]
    min_conformant: Option<f64>,
    #[command(flatten)]
    packs: PackArgs,
    /// Statement of Applicability (TOML or CSV): which controls apply, and
    /// the parameters checks are evaluated with. Sets the edition. Local
    /// mode (the collector uses its imported SoA).
    #[arg(long, value_name = "FILE")]
    soa: Option<PathBuf>,
    /// Compare with this baseline.
    #[arg(long, value_name = "FILE", conflicts_with = "write_baseline")]
    baseline: Option<PathBuf>,
    /// Record the scan as a baseline here and pass.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Also fail on: nonconformant, new, removed (repeatable or
    /// comma-separated).
    #[arg(
        long = "fail-on",
        value_enum,
        value_delimiter = ',',
        value_name = "WHAT"
    )]
    fail_on: Vec<FailOnArg>,
    /// Edition of the controls shown (default 2022, or the SoA's).
    #[arg(long, value_name = "YEAR", value_parser = parse_edition)]
    edition: Option<Edition>,
    /// Override a check parameter, e.g. session_timeout_seconds=600
    /// (repeatable; the SoA's values apply first).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value = "text")]
    format: GateFormat,
    /// Also write FORMAT to FILE (repeatable), e.g. --output junit=gate.xml.
    #[arg(long = "output", value_name = "FORMAT=FILE", value_parser = parse_gate_output)]
    outputs: Vec<(GateFormat, PathBuf)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOnArg {
    Nonconformant,
    New,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GateFormat {
    Text,
    Json,
    Junit,
    Sarif,
    Github,
    Markdown,
}

fn parse_gate_output(s: &str) -> Result<(GateFormat, PathBuf), String> {
    let (f, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not FORMAT=FILE"))?;
    let format = GateFormat::from_str(f, true)
        .map_err(|_| format!("`{f}` is not one of text, json, junit, sarif, github, markdown"))?;
    if path.is_empty() {
        return Err(format!("`{s}` names no file"));
    }
    Ok((format, PathBuf::from(path)))
}

#[derive(Debug, Subcommand)]
enum ControlsCommand {
    /// List the controls of an edition.
    List {
        /// 2005, 2013 or 2022.
        #[arg(long, value_name = "YEAR", default_value = "2022", value_parser = parse_edition)]
        edition: Edition,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Map a control to its counterparts in another edition.
    Map {
        /// The control, e.g. A.11.5.5.
        id: String,
        /// The edition of ID; by default the oldest edition that has it.
        #[arg(long, value_name = "YEAR", value_parser = parse_edition)]
        from: Option<Edition>,
        /// The edition to map to; by default every other edition.
        #[arg(long, value_name = "YEAR", value_parser = parse_edition)]
        to: Option<Edition>,
    },
}

#[derive(Debug, Subcommand)]
enum ChecksCommand {
    /// List every check with its severity, probe and controls.
    List {
        #[command(flatten)]
        packs: PackArgs,
        /// Edition of the controls shown.
        #[arg(long, value_name = "YEAR", default_value = "2022", value_parser = parse_edition)]
        edition: Edition,
    },
}

fn parse_edition(s: &str) -> Result<Edition, String> {
    s.parse()
        .map_err(|e: annexa_checks::catalog::CatalogError| e.to_string())
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "annexa", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => scan(args),
        Command::Gate(args) => gate(*args),
        Command::Controls { command } => controls(command),
        Command::Enroll(args) => enroll_command(args),
        Command::Run(args) => run_command(args),
        Command::RotateKey { config } => rotate_key(config),
        Command::Status(args) => status_command(args),
        Command::Verify {
            command: VerifyCommand::Log(args),
        } => verify_log(args),
        Command::Verify {
            command: VerifyCommand::Report(args),
        } => verify_report(args),
        Command::Report {
            command: ReportCommand::Pull(args),
        } => report_pull(args),
        Command::Report {
            command: ReportCommand::Render(args),
        } => report_render(args),
        Command::Checks {
            command: ChecksCommand::List { packs, edition },
        } => {
            let set = packs.load()?;
            let mut out = std::io::stdout().lock();
            for c in set.checks() {
                let ids = c
                    .controls
                    .get(&edition)
                    .map(|v| v.join(" "))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<44} {:<8} {:<16} {}",
                    c.id,
                    c.severity.as_str(),
                    c.probe.kind(),
                    ids
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let set = args.packs.load()?;
    let overrides: BTreeMap<String, String> = args.params.into_iter().collect();
    let params = set.params_with(&overrides).map_err(anyhow::Error::msg)?;
    let host = match &args.root {
        Some(dir) => HostView::root(dir)?,
        None => HostView::live(),
    };
    let selection = Selection {
        checks: args.checks,
        controls: args.controls,
        edition: Some(args.edition),
    };
    let report = engine::scan(&set, &host, &params, &selection, env!("CARGO_PKG_VERSION"))?;
    let rendered = match args.format {
        ScanFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ScanFormat::Junit => output::junit::render(&report, args.edition),
        ScanFormat::Text => {
            let colour = args.output.is_none() && output::text::colour_wanted();
            output::text::render(&report, args.edition, colour)
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, rendered).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().lock().write_all(rendered.as_bytes())?,
    }
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn gate(args: GateArgs) -> anyhow::Result<ExitCode> {
    match args.root.clone() {
        Some(root) => gate_local(args, root),
        None => gate_fleet(args),
    }
}

fn gate_local(args: GateArgs, root: PathBuf) -> anyhow::Result<ExitCode> {
    use annexa_checks::gate::{Baseline, FailOn, judge};
    use output::gate::Gate;
    let fail_on = FailOn {
        nonconformant: args.fail_on.contains(&FailOnArg::Nonconformant),
        new: args.fail_on.contains(&FailOnArg::New),
        removed: args.fail_on.contains(&FailOnArg::Removed),
    };
    if args.baseline.is_none() && args.write_baseline.is_none() && !fail_on.nonconformant {
        bail!(
            "nothing to gate on: give --baseline FILE (drift), --write-baseline FILE (record one) or --fail-on nonconformant"
        );
    }
    let set = args.packs.load()?;
    // Read everything that can be wrong before scanning.
    let baseline = match &args.baseline {
        Some(p) => {
            let label = p.display().to_string();
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {label}"))?;
            Some(Baseline::parse(&label, &text)?)
        }
        None => None,
    };
    let soa = match &args.soa {
        Some(p) => {
            let label = p.display().to_string();
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {label}"))?;
            let format = annexa_checks::soa::Format::from_path(&label);
            Some(
                annexa_checks::soa::lint(&label, &text, format, &set)
                    .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?,
            )
        }
        None => None,
    };
    let edition = args
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
    overrides.extend(args.params);
    let params = set.params_with(&overrides).map_err(anyhow::Error::msg)?;
    let host = HostView::root(&root)?;
    let report = engine::scan(
        &set,
        &host,
        &params,
        &Selection::default(),
        env!("CARGO_PKG_VERSION"),
    )?;
    if let Some(path) = &args.write_baseline {
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
        return Ok(ExitCode::SUCCESS);
    }
    let applicable = soa.as_ref().map(|s| {
        s.coverage(&set)
            .into_values()
            .flat_map(|c| c.checks)
            .collect::<std::collections::BTreeSet<String>>()
    });
    let verdict = judge(
        &report,
        baseline.as_ref(),
        edition,
        applicable.as_ref(),
        fail_on,
    );
    let label = args.baseline.as_ref().map(|p| p.display().to_string());
    let g = Gate {
        report: &report,
        verdict: &verdict,
        root: &root,
        baseline: label.as_deref(),
    };
    let render = |f: GateFormat| match f {
        GateFormat::Text => output::gate::text(&g),
        GateFormat::Json => output::gate::json(&g),
        GateFormat::Junit => output::gate::junit(&g),
        GateFormat::Sarif => output::gate::sarif(&g),
        GateFormat::Github => output::gate::github(&g),
        GateFormat::Markdown => output::gate::markdown(&g),
    };
    emit_gate(args.format, &args.outputs, &render, verdict.failed)
}

/// Writes a gate's verdict: each `--output FORMAT=FILE`, the Markdown step
/// summary under GitHub Actions with `--format github`, then `format` on
/// standard output; the exit status says whether it `failed`.
fn emit_gate(
    format: GateFormat,
    outputs: &[(GateFormat, PathBuf)],
    render: &dyn Fn(GateFormat) -> String,
    failed: bool,
) -> anyhow::Result<ExitCode> {
    for (f, path) in outputs {
        std::fs::write(path, render(*f)).with_context(|| format!("writing {}", path.display()))?;
    }
    if format == GateFormat::Github
        && let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY")
    {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)
            .and_then(|mut f| f.write_all(render(GateFormat::Markdown).as_bytes()))
            .with_context(|| {
                format!(
                    "appending to GITHUB_STEP_SUMMARY {}",
                    summary.to_string_lossy()
                )
            })?;
    }
    std::io::stdout()
        .lock()
        .write_all(render(format).as_bytes())?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

/// Collector mode: the drift the collector records, judged.
fn gate_fleet(args: GateArgs) -> anyhow::Result<ExitCode> {
    use annexa_evidence::drift::{Drift, Thresholds, judge};
    use output::gate_fleet::FleetGate;
    // clap lets a conflict with --root excuse these; say it plainly.
    for (given, name) in [
        (args.baseline.is_some(), "--baseline"),
        (args.write_baseline.is_some(), "--write-baseline"),
        (args.soa.is_some(), "--soa"),
        (!args.fail_on.is_empty(), "--fail-on"),
        (args.edition.is_some(), "--edition"),
        (!args.params.is_empty(), "--param"),
        (
            !args.packs.packs.is_empty() || args.packs.no_builtin,
            "--packs/--no-builtin",
        ),
    ] {
        if given {
            bail!(
                "{name} is for local mode (--root DIR); against a collector, the collector's packs and imported SoA decide"
            );
        }
    }
    // The baseline report is read and verified before the collector is
    // asked anything: a report that does not verify decides nothing.
    let baseline = match &args.baseline_report {
        Some(path) => {
            let label = path.display().to_string();
            let key = args
                .collector_key
                .as_deref()
                .context("--baseline-report needs --collector-key FILE to verify it")?;
            let verifier = read_collector_key(key)?;
            let bytes = std::fs::read(path).with_context(|| format!("reading {label}"))?;
            let (opened, keys) = annexa_evidence::report::open_trusting(&bytes, &verifier)
                .with_context(|| label.clone())?;
            let outcome = annexa_evidence::report::verify::verify_opened(&opened, &keys);
            if !outcome.ok() {
                bail!(
                    "{label}: the baseline report does not verify ({} problems; `annexa verify report` lists them), first: {}",
                    outcome.problem_count,
                    outcome.problems.first().map(String::as_str).unwrap_or("")
                );
            }
            Some((label, opened.report))
        }
        None => None,
    };
    let report = baseline.as_ref().map(|(_, r)| r);
    let from = match (&args.since, report) {
        (Some(s), _) => Some(since_time(s)?),
        (None, Some(r)) => Some(r.period.at.clone()),
        (None, None) => None,
    };
    let selector = match (&args.selector, report) {
        (Some(s), Some(r)) if r.scope.selector.as_deref().is_some_and(|x| x != s) => bail!(
            "--selector `{s}` differs from the baseline report's scope `{}`",
            r.scope.selector.as_deref().unwrap_or("")
        ),
        (Some(s), _) => Some(s.clone()),
        (None, Some(r)) => r.scope.selector.clone(),
        (None, None) => None,
    };
    let controls = match report {
        Some(r) if args.controls.is_empty() => r.scope.controls.clone(),
        _ => args.controls.clone(),
    };
    let wants_cells = args.format == GateFormat::Junit
        || args.outputs.iter().any(|(f, _)| *f == GateFormat::Junit);

    let (client, token, server) = api_target(&args.api)?;
    let mut url = reqwest::Url::parse("https://collector/v1/drift").context("base URL")?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(f) = &from {
            q.append_pair("from", f);
        }
        if let Some(s) = &selector {
            q.append_pair("selector", s);
        }
        if !controls.is_empty() {
            q.append_pair("controls", &controls.join(","));
        }
        if wants_cells {
            q.append_pair("cells", "true");
        }
    }
    let path = api_path(&url);
    let (status, body) = runtime()?.block_on(client.get_with_token(&path, &token))?;
    let route = path.split('?').next().unwrap_or(&path);
    if status != 200 {
        return Err(api_error(&server, &path, status, &body));
    }
    let drift: Drift = serde_json::from_slice(&body)
        .with_context(|| format!("{server}{route}: not a drift answer this annexa understands"))?;
    let thresholds = Thresholds {
        min_conformant: args.min_conformant,
    };
    let verdict = judge(&drift, report, &thresholds);
    let g = FleetGate {
        drift: &drift,
        verdict: &verdict,
        server: &server,
        baseline: baseline.as_ref().map(|(l, _)| l.as_str()),
        min_conformant: args.min_conformant,
    };
    let render = |f: GateFormat| match f {
        GateFormat::Text => output::gate_fleet::text(&g),
        GateFormat::Json => output::gate_fleet::json(&g),
        GateFormat::Junit => output::gate_fleet::junit(&g),
        GateFormat::Sarif => output::gate_fleet::sarif(&g),
        GateFormat::Github => output::gate_fleet::github(&g),
        GateFormat::Markdown => output::gate_fleet::markdown(&g),
    };
    emit_gate(args.format, &args.outputs, &render, verdict.failed)
}

fn controls(command: ControlsCommand) -> anyhow::Result<ExitCode> {
    let cat = catalog();
    let mut out = std::io::stdout().lock();
    match command {
        ControlsCommand::List { edition, json } => {
            let list = cat.controls(edition);
            if json {
                serde_json::to_writer_pretty(&mut out, list)?;
                writeln!(out)?;
            } else {
                let mut group = "";
                for c in list {
                    if c.group_id != group {
                        group = &c.group_id;
                        writeln!(out, "{} {}", c.group_id, c.group_title)?;
                    }
                    writeln!(out, "  {:<10} {}", c.id, c.title)?;
                }
                writeln!(
                    out,
                    "{} controls in ISO/IEC 27001:{edition} Annex A",
                    list.len()
                )?;
            }
        }
        ControlsCommand::Map { id, from, to } => {
            let (control, editions) = match from {
                Some(e) => (cat.control(e, &id)?, vec![e]),
                None => cat.resolve_any(&id)?,
            };
            if from.is_none() && editions.len() > 1 {
                let all: Vec<String> = editions.iter().map(Edition::to_string).collect();
                eprintln!(
                    "annexa: note: {} exists in editions {}; mapping from {} (use --from to choose)",
                    control.id,
                    all.join(" and "),
                    control.edition
                );
            }
            writeln!(
                out,
                "{}  {}  (ISO/IEC 27001:{})",
                control.id, control.title, control.edition
            )?;
            let targets: Vec<Edition> = match to {
                Some(t) => vec![t],
                None => Edition::ALL
                    .into_iter()
                    .filter(|e| *e != control.edition)
                    .collect(),
            };
            if to == Some(control.edition) {
                bail!(
                    "--to {} is the edition {} is already in",
                    control.edition,
                    control.id
                );
            }
            let mut any = false;
            for t in targets {
                let maps = cat.map(control, t);
                if maps.is_empty() {
                    writeln!(out, "  {t}  (no counterpart)")?;
                }
                for m in maps {
                    any = true;
                    let rel = match m.relation {
                        annexa_checks::catalog::Relation::Nearest => {
                            "  [nearest: no longer a control of its own]"
                        }
                        annexa_checks::catalog::Relation::Merged => "  [merged]",
                        _ => "",
                    };
                    writeln!(out, "  {t}  {:<9} {}{rel}", m.to.id, m.to.title)?;
                }
            }
            if !any {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// The collector, TLS trust and API token an API command uses.
fn api_target(
    args: &ApiArgs,
) -> anyhow::Result<(annexa_agent::send::CollectorClient, String, String)> {
    let (server, token_file, pin, config) = (
        args.server.clone(),
        args.token_file.as_deref(),
        &args.pin,
        args.config.as_deref(),
    );
    use annexa_agent::send::CollectorClient;
    use annexa_agent::tls::{FingerprintVerifier, parse_certificates, pinned_client_config};
    let config = AgentConfig::load_or_default(config)?;
    let state = annexa_agent::state::StateDir::open(&config.state_dir).ok();
    let enrolled = state.as_ref().and_then(|s| s.enrollment().ok().flatten());
    let server = server
        .or(config.server.clone())
        .or(enrolled.as_ref().map(|e| e.server.clone()))
        .context("no collector URL: give --server https://HOST:PORT")?;
    let tls = match (&pin.ca, &pin.ca_fingerprint) {
        (Some(path), _) => {
            let label = path.display().to_string();
            let bytes = std::fs::read(path).with_context(|| format!("reading {label}"))?;
            pinned_client_config(&label, &parse_certificates(&label, &bytes)?)?
        }
        (None, Some(fp)) => FingerprintVerifier::new(fp.parse()?).client_config()?,
        (None, None) => {
            let (Some(state), Some(e)) = (&state, &enrolled) else {
                bail!(
                    "this host is not enrolled: give --ca FILE or --ca-fingerprint SHA256:<hex> to trust the collector"
                );
            };
            let path = state.enrolled_ca_path(e);
            let label = path.display().to_string();
            let bytes = std::fs::read(&path).with_context(|| format!("reading {label}"))?;
            pinned_client_config(&label, &parse_certificates(&label, &bytes)?)?
        }
    };
    let token = match token_file {
        Some(path) => read_token(path)?,
        None => std::env::var("ANNEXA_TOKEN")
            .context("no API token: give --token-file FILE or set ANNEXA_TOKEN")?,
    };
    let client = CollectorClient::new(&server, tls)?;
    Ok((client, token, server))
}

fn status_command(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (client, token, server) = api_target(&args.api)?;
    // Segments and query values are the user's: let the URL type encode them.
    let mut url = reqwest::Url::parse("https://collector/v1/conformity").context("base URL")?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|_| anyhow::anyhow!("base URL"))?;
        match (&args.control, &args.host) {
            (Some(c), None) => {
                segments.extend(["controls", c]);
            }
            (_, Some(h)) => {
                segments.extend(["hosts", h]);
            }
            (None, None) => {}
        }
    }
    {
        let mut query = url.query_pairs_mut();
        if let (Some(c), Some(_)) = (&args.control, &args.host) {
            query.append_pair("control", c);
        }
        if let Some(l) = &args.labels {
            query.append_pair("labels", l);
        }
        if let Some(s) = &args.state {
            query.append_pair("state", s);
        }
    }
    let path = api_path(&url);
    let (status, body) = runtime()?.block_on(client.get_with_token(&path, &token))?;
    let value: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
        format!("{server}{path} answered {status} with something other than JSON")
    })?;
    if status != 200 {
        bail!(
            "{server}{path}: {status} {}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or("")
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        output::status::render(&mut out, &value)?;
    }
    Ok(if output::status::any_nonconformant(&value) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads a collector's verifier key file (the first line that is not blank
/// or a comment).
fn read_collector_key(path: &std::path::Path) -> anyhow::Result<annexa_evidence::note::Verifier> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {label}"))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .with_context(|| format!("{label}: no verifier key in the file"))?;
    annexa_evidence::note::Verifier::parse(line).with_context(|| label.clone())
}

fn verify_report(args: VerifyReportArgs) -> anyhow::Result<ExitCode> {
    let verifier = read_collector_key(&args.collector_key)?;
    let label = args.report.display().to_string();
    let bytes = std::fs::read(&args.report).with_context(|| format!("reading {label}"))?;
    let started = std::time::Instant::now();
    let outcome = annexa_evidence::report::verify::verify(&bytes, &verifier)
        .with_context(|| label.clone())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&outcome)?)?;
    } else {
        output::report::render(&mut out, &label, &outcome, started.elapsed())?;
    }
    Ok(if outcome.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report_pull(args: ReportPullArgs) -> anyhow::Result<ExitCode> {
    let (client, token, server) = api_target(&args.api)?;
    let mut url = reqwest::Url::parse("https://collector/v1/reports").context("base URL")?;
    {
        let mut query = url.query_pairs_mut();
        let format = args.format.to_possible_value().context("format name")?;
        query.append_pair("format", format.get_name());
        if let Some(s) = &args.scope {
            query.append_pair("scope", s);
        }
        if !args.controls.is_empty() {
            query.append_pair("controls", &args.controls.join(","));
        }
        if let Some(t) = &args.at {
            query.append_pair("at", t);
        }
        if let Some(t) = &args.from {
            query.append_pair("from", t);
        }
    }
    let path = api_path(&url);
    let tmp = tempfile::NamedTempFile::new_in(
        args.out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new(".")),
    )
    .with_context(|| format!("creating a file beside {}", args.out.display()))?;
    let mut writer = std::io::BufWriter::new(tmp.as_file());
    download(&client, &server, &path, &token, &mut writer)?;
    writer.flush().context("writing the report")?;
    drop(writer);
    tmp.persist(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    eprintln!("wrote {} ({size} bytes) from {server}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The path and query of a URL built on a placeholder base (the client
/// adds its own server).
fn api_path(url: &reqwest::Url) -> String {
    match url.query().filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Streams an API path into `dest`; anything but 200 is an error naming
/// the collector's answer.
fn download(
    client: &annexa_agent::send::CollectorClient,
    server: &str,
    path: &str,
    token: &str,
    dest: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let (status, body) = runtime()?.block_on(client.download_with_token(path, token, dest))?;
    if status != 200 {
        return Err(api_error(server, path, status, &body));
    }
    Ok(())
}

/// A refusal from the API, named by route (without the query): its
/// ApiError code and message, or the body itself when it is not one.
fn api_error(server: &str, path: &str, status: u16, body: &[u8]) -> anyhow::Error {
    let e: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let route = path.split('?').next().unwrap_or(path);
    anyhow::anyhow!(
        "{server}{route}: {status} {}: {}",
        e["error"].as_str().unwrap_or("error"),
        e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    )
}

fn report_render(args: ReportRenderArgs) -> anyhow::Result<ExitCode> {
    use annexa_evidence::report::render::{self, Context, Format, Verification};
    let label = args.report.display().to_string();
    let bytes = std::fs::read(&args.report).with_context(|| format!("reading {label}"))?;
    // Opened once: with a key, verified too.
    let (opened, verification) = match &args.collector_key {
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
    let format = match args.format {
        RenderFormat::Html => Format::Html,
        RenderFormat::Oscal => Format::Oscal,
        RenderFormat::Csv => Format::Csv,
    };
    let ctx = Context::new(&opened.report, &opened.digest, &verification);
    let rendered = render::render(&ctx, format);
    match &args.out {
        // Like `report pull`: host inventories are not for every user, and
        // a file that exists keeps no wider mode.
        Some(p) => annexa_agent::state::write_atomic(p, &rendered, 0o600)
            .with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(&rendered)?,
    }
    Ok(match &verification {
        Verification::Checked { outcome, .. } if !outcome.ok() => {
            eprintln!(
                "annexa: {label} does not verify: {} problems (shown in the rendering)",
                outcome.problem_count
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    })
}

fn verify_log(args: VerifyLogArgs) -> anyhow::Result<ExitCode> {
    let verifier = read_collector_key(&args.collector_key)?;
    let mut extra = Vec::new();
    for p in &args.checkpoints {
        extra.push(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?);
    }
    let (path, label, _tmp) = match &args.bundle {
        Some(b) => (b.clone(), b.display().to_string(), None),
        None => {
            let (client, token, server) = api_target(&args.api)?;
            let (path, tmp) = match &args.save {
                Some(p) => (p.clone(), None),
                None => {
                    let t = tempfile::NamedTempFile::new().context("creating a temporary file")?;
                    (t.path().to_path_buf(), Some(t))
                }
            };
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            download(&client, &server, "/v1/log/export", &token, &mut out)?;
            std::io::Write::flush(&mut out).context("writing the bundle")?;
            (path, format!("{server}/v1/log/export"), tmp)
        }
    };
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let started = std::time::Instant::now();
    let v = annexa_evidence::audit::verify_bundle(
        std::io::BufReader::with_capacity(1 << 20, file),
        &verifier,
        &extra,
        threads,
    )
    .with_context(|| label.clone())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        output::verify::render(&mut out, &label, &v, started.elapsed())?;
    }
    Ok(if v.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A token from a file, or from standard input for `-`.
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_line(&mut t)
            .context("reading the token from standard input")?;
        return Ok(t.trim().to_string());
    }
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading the token from {}", path.display()))?
        .trim()
        .to_string())
}

fn enroll_command(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let config = AgentConfig::load_or_default(args.config.as_deref())?;
    init_logging(config.log_format);
    let server = args.server.or(config.server.clone()).with_context(|| {
        format!(
            "no collector URL: give --server https://HOST:PORT or set `server` in {}",
            args.config
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_string())
        )
    })?;
    let ca = match (&args.pin.ca, &args.pin.ca_fingerprint) {
        (Some(path), None) => CaPin::Certificate {
            label: path.display().to_string(),
            bytes: std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        },
        (None, Some(fp)) => CaPin::Fingerprint(fp.clone()),
        _ => bail!("give exactly one of --ca FILE and --ca-fingerprint SHA256:<hex>"),
    };
    // Only a directory given on the command line can differ from what
    // `annexa run` will use.
    let elsewhere = args
        .state_dir
        .as_ref()
        .filter(|d| **d != config.state_dir)
        .cloned();
    let state_dir = args.state_dir.unwrap_or(config.state_dir.clone());
    let mut labels = config.labels.clone();
    labels.extend(args.labels);
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => read_token(path)?,
        (None, None) => anyhow::bail!("give --token or --token-file"),
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
            "note: `annexa run` reads state_dir from {} (now {}); set state_dir = \"{}\" there",
            args.config
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_string()),
            config.state_dir.display(),
            dir.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rotate_key(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = AgentConfig::load_or_default(config.as_deref())?;
    let state = annexa_agent::state::StateDir::open(&config.state_dir)?;
    let Some(enrollment) = state.enrollment()? else {
        bail!(
            "not enrolled ({} is missing): enroll first with `annexa enroll`",
            state.enrollment_path().display()
        );
    };
    // No state lock: the daemon holds it while it runs, and it reads
    // agent.key.next (written whole, atomically) only at its next run.
    if let Some(n) = state.undropable()?
        && !state.next_key_path().exists()
    {
        bail!(
            "the key declared in envelope {n} is in use but the collector has not acknowledged that envelope yet; \
             rotate again once it is delivered (`annexa run --once`)"
        );
    }
    let (current, _) = state.signing_key()?;
    let (next, made) = state.prepare_rotation()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} key {} for agent {} (now {}): the next run declares it and signs with it from the envelope after",
        if made { "made" } else { "already pending:" },
        next.public().key_id(),
        enrollment.agent_id,
        current.public().key_id()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = AgentConfig::load_or_default(args.config.as_deref())?;
    init_logging(config.log_format);
    let rt = runtime()?;
    if args.once {
        let outcome = rt.block_on(run_once(&config, !args.no_send))?;
        let p = &outcome.produced;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "produced envelope {} ({} bytes, sha256 {}): {} pass, {} fail, {} error, {} not applicable",
            p.sequence,
            p.size,
            p.digest,
            p.summary.pass,
            p.summary.fail,
            p.summary.error,
            p.summary.not_applicable
        )?;
        if let Some(gap) = &p.gap {
            writeln!(
                out,
                "recorded a gap: dropped {:?} ({})",
                gap.dropped, gap.reason
            )?;
        }
        if args.no_send {
            writeln!(
                out,
                "{} envelope(s) spooled, not sent (--no-send)",
                outcome.pending
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        writeln!(
            out,
            "delivered {}, {} still spooled",
            outcome.delivered, outcome.pending
        )?;
        if let Some(e) = &outcome.delivery_error {
            eprintln!("annexa: delivery failed: {e}");
        }
        return Ok(if outcome.pending == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let result = rt.block_on(run_daemon(config, shutdown_signal()));
    // A scan abandoned on a blocking thread must not keep the process.
    rt.shutdown_timeout(SHUTDOWN_GRACE + Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}
