//! The `annexa` command line: the clap definitions (whose doc comments are
//! the help text, the manual pages and the completions), their conversion
//! into the options of `annexa_agent::commands`, and the dispatch. The
//! arguments are grouped as the commands are: [`local`] (scan, gate,
//! controls, checks), [`agent`] (enroll, run), [`collector`] (status,
//! report, verify); `person` (a person's key) is here.

mod agent;
mod collector;
mod local;

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use annexa_checks::catalog::Edition;

use annexa_agent::commands::{self, Exit};

use agent::{EnrollArgs, RunArgs};
use collector::{ReportCommand, StatusArgs, VerifyCommand};
use local::{ChecksCommand, ControlsCommand, GateArgs, ScanArgs};

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
    /// A person's own signing key (for attestations and waivers): make
    /// one on your machine (mode 0600, never replaced) or print its public
    /// half, which the collector's admin registers.
    ///
    /// Exit status: 0 done, 2 the key file exists (keygen), is missing,
    /// malformed or readable by others (show).
    Person {
        #[command(subcommand)]
        command: PersonCommand,
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

pub(crate) fn parse_edition(s: &str) -> Result<Edition, String> {
    s.parse()
        .map_err(|e: annexa_checks::catalog::CatalogError| e.to_string())
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "annexa", &mut std::io::stdout());
            Ok(Exit::Success)
        }
        Command::Manpages { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            Ok(Exit::Success)
        }
        Command::Scan(args) => commands::scan::scan(args.into()),
        Command::Gate(args) => args.run(),
        Command::Controls { command } => command.run(),
        Command::Checks { command } => command.run(),
        Command::Enroll(args) => commands::enroll::enroll_host(args.try_into()?),
        Command::Run(args) => commands::run::run_agent(args.into()),
        Command::Person { command } => command.run(),
        Command::RotateKey { config } => commands::rotate_key::rotate_key(config.as_deref()),
        Command::Status(args) => commands::status::status(args.into()),
        Command::Verify { command } => command.run(),
        Command::Report { command } => command.run(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the whole command tree (unique argument ids, among
    /// others) only when a command is parsed in a debug build; this
    /// checks every subcommand at once.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

/// `annexa person …`.
#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// Make a new key. Default file: $XDG_CONFIG_HOME/annexa/person.key,
    /// else ~/.config/annexa/person.key.
    Keygen {
        /// The key file to make.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Print the key id and public key of an existing key.
    Show {
        /// The key file (default as for keygen).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
}

impl PersonCommand {
    fn run(self) -> anyhow::Result<Exit> {
        match self {
            PersonCommand::Keygen { key } => commands::person::keygen(key.as_deref()),
            PersonCommand::Show { key } => commands::person::show(key.as_deref()),
        }
    }
}
