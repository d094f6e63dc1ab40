//! Arguments of the commands that work on this host or a root directory:
//! `scan`, `gate` (both modes: collector mode borrows the API arguments),
//! `controls` and `checks`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use annexa_checks::CheckId;
use annexa_checks::catalog::Edition;
use annexa_checks::gate::FailOn;
use annexa_checks::platform::Platform;

use annexa_agent::commands::checks::{list_checks, print_reference};
use annexa_agent::commands::controls::{list_controls, map_control};
use annexa_agent::commands::gate::GateOutputs;
use annexa_agent::commands::gate::fleet::{FleetGateOptions, gate_fleet};
use annexa_agent::commands::gate::local::{LocalGateOptions, gate_local};
use annexa_agent::commands::scan::{self, ScanOptions};
use annexa_agent::commands::{Exit, PackOptions};
use annexa_agent::render::gate;

use super::collector::ApiArgs;
use super::{parse_edition, parse_param};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ScanFormat {
    /// A table grouped by control, failures first (colour on a terminal).
    Text,
    /// The full report (schema annexa.scan/v1, docs/scan-format.md).
    Json,
    /// JUnit XML: one test case per check, one test suite per control.
    Junit,
}

#[derive(Debug, Args)]
pub(super) struct PackArgs {
    /// Directory of additional check packs (*.toml). Repeatable. Replaces
    /// the default directory /etc/annexa/checks.d, which is read only if it
    /// exists.
    #[arg(long = "packs", value_name = "DIR")]
    packs: Vec<PathBuf>,
    /// Do not load the packs built into annexa.
    #[arg(long)]
    no_builtin: bool,
}

#[derive(Debug, Args)]
pub(super) struct ScanArgs {
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
    checks: Vec<CheckId>,
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
pub(super) struct GateArgs {
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
pub(super) enum FailOnArg {
    Nonconformant,
    New,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum GateFormat {
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
pub(super) enum ControlsCommand {
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
pub(super) enum ChecksCommand {
    /// List every check with its severity, probe and controls.
    List {
        #[command(flatten)]
        packs: PackArgs,
        /// Edition of the controls shown.
        #[arg(long, value_name = "YEAR", default_value = "2022", value_parser = parse_edition)]
        edition: Edition,
        /// Only the checks that apply to this platform (`rhel9`,
        /// `ubuntu24.04`, `debian12`, `rocky9`, `fedora40`, or a family:
        /// `debian`, `rhel`), with the probe each runs there.
        #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
        platform: Option<Platform>,
    },
    /// Print the reference of the loaded packs as Markdown: every check with
    /// its controls in the three editions, what it reads, its parameters and
    /// platforms, and the controls they cover (docs/checks.md is this for the
    /// built-in packs).
    Reference {
        #[command(flatten)]
        packs: PackArgs,
    },
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::from_name(s).map_err(|e| e.to_string())
}

impl From<PackArgs> for PackOptions {
    fn from(a: PackArgs) -> PackOptions {
        PackOptions {
            dirs: a.packs,
            no_builtin: a.no_builtin,
        }
    }
}

impl From<ScanArgs> for ScanOptions {
    fn from(a: ScanArgs) -> ScanOptions {
        ScanOptions {
            root: a.root,
            packs: a.packs.into(),
            checks: a.checks,
            controls: a.controls,
            edition: a.edition,
            params: a.params,
            format: match a.format {
                ScanFormat::Text => scan::ScanFormat::Text,
                ScanFormat::Json => scan::ScanFormat::Json,
                ScanFormat::Junit => scan::ScanFormat::Junit,
            },
            output: a.output,
        }
    }
}

impl From<GateFormat> for gate::GateFormat {
    fn from(f: GateFormat) -> gate::GateFormat {
        match f {
            GateFormat::Text => gate::GateFormat::Text,
            GateFormat::Json => gate::GateFormat::Json,
            GateFormat::Junit => gate::GateFormat::Junit,
            GateFormat::Sarif => gate::GateFormat::Sarif,
            GateFormat::Github => gate::GateFormat::Github,
            GateFormat::Markdown => gate::GateFormat::Markdown,
        }
    }
}

impl GateArgs {
    /// Local mode with --root, else collector mode.
    pub(super) fn run(self) -> anyhow::Result<Exit> {
        match self.root.clone() {
            Some(root) => gate_local(self.local(root)),
            None => gate_fleet(self.fleet()?),
        }
    }

    fn outputs(&self) -> GateOutputs {
        GateOutputs {
            format: self.format.into(),
            files: self
                .outputs
                .iter()
                .map(|(f, path)| ((*f).into(), path.clone()))
                .collect(),
        }
    }

    fn local(self, root: PathBuf) -> LocalGateOptions {
        LocalGateOptions {
            outputs: self.outputs(),
            root,
            fail_on: FailOn {
                nonconformant: self.fail_on.contains(&FailOnArg::Nonconformant),
                new: self.fail_on.contains(&FailOnArg::New),
                removed: self.fail_on.contains(&FailOnArg::Removed),
            },
            packs: self.packs.into(),
            soa: self.soa,
            baseline: self.baseline,
            write_baseline: self.write_baseline,
            edition: self.edition,
            params: self.params,
        }
    }

    fn fleet(self) -> anyhow::Result<FleetGateOptions> {
        // clap lets a conflict with --root excuse these; say it plainly.
        for (given, name) in [
            (self.baseline.is_some(), "--baseline"),
            (self.write_baseline.is_some(), "--write-baseline"),
            (self.soa.is_some(), "--soa"),
            (!self.fail_on.is_empty(), "--fail-on"),
            (self.edition.is_some(), "--edition"),
            (!self.params.is_empty(), "--param"),
            (
                !self.packs.packs.is_empty() || self.packs.no_builtin,
                "--packs/--no-builtin",
            ),
        ] {
            if given {
                bail!(
                    "{name} is for local mode (--root DIR); against a collector, the collector's packs and imported SoA decide"
                );
            }
        }
        Ok(FleetGateOptions {
            outputs: self.outputs(),
            api: self.api.into(),
            since: self.since,
            baseline_report: self.baseline_report,
            collector_key: self.collector_key,
            selector: self.selector,
            controls: self.controls,
            min_conformant: self.min_conformant,
        })
    }
}

impl ControlsCommand {
    pub(super) fn run(self) -> anyhow::Result<Exit> {
        match self {
            ControlsCommand::List { edition, json } => {
                list_controls(edition, json)?;
                Ok(Exit::Success)
            }
            ControlsCommand::Map { id, from, to } => map_control(&id, from, to),
        }
    }
}

impl ChecksCommand {
    pub(super) fn run(self) -> anyhow::Result<Exit> {
        match self {
            ChecksCommand::List {
                packs,
                edition,
                platform,
            } => {
                list_checks(&packs.into(), edition, platform.as_ref())?;
                Ok(Exit::Success)
            }
            ChecksCommand::Reference { packs } => {
                print_reference(&packs.into())?;
                Ok(Exit::Success)
            }
        }
    }
}
