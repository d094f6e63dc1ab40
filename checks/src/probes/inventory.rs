//! Host inventory facts (asset inventory evidence): operating system from
//! os-release, host name, machine id, installed package count, and on a
//! running host kernel, CPU, memory, disks, interfaces and uptime.

use serde::{Deserialize, Serialize};

use super::{Ctx, Outcome, Probe};
use crate::host::live::LiveInventory;
use crate::host::{HostView, ScanMode};
use crate::platform::{Family, OS_RELEASE_PATHS, Platform, parse_os_release};
use crate::result::Source;

/// What the scan learnt about the host itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    /// os-release `ID`.
    pub os_id: Option<String>,
    /// os-release `ID_LIKE` words.
    pub os_like: Vec<String>,
    /// os-release `VERSION_ID`.
    pub os_version: Option<String>,
    /// os-release `PRETTY_NAME`.
    pub os_name: Option<String>,
    /// The family the checks treated the host as (`debian`, `rhel`,
    /// `unknown`).
    #[serde(default)]
    pub family: Family,
    /// The platform the checks' variants were chosen for (`rhel9.4`,
    /// `ubuntu24.04`, `unknown`).
    #[serde(default)]
    pub platform: String,
    /// Why the platform could not be identified, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_problem: Option<String>,
    /// Host name (/etc/hostname, or the running kernel's).
    pub hostname: Option<String>,
    /// /etc/machine-id when initialised.
    pub machine_id: Option<String>,
    /// Number of installed packages (dpkg).
    pub packages: Option<usize>,
    /// Live facts (absent in root mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<serde_json::Value>,
}

/// The platform as the scan identified it.
#[derive(Debug, Clone, Default)]
pub struct Detected {
    /// What os-release says (unknown when it is absent or malformed).
    pub platform: Platform,
    /// os-release `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// The os-release file read.
    pub source: Option<Source>,
    /// What is wrong: the file is absent, unreadable or malformed (named,
    /// with the line).
    pub problem: Option<String>,
    /// The file is there but could not be read, or breaks its grammar: a
    /// check that needs the platform cannot answer (`error`), where an
    /// absent file is a platform it does not know (`not_applicable`).
    pub broken: bool,
}

/// Identifies the platform from the first os-release file that exists.
pub(crate) fn detect(view: &HostView) -> Detected {
    for path in OS_RELEASE_PATHS {
        let file = match view.read(path) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                return Detected {
                    problem: Some(e.to_string()),
                    broken: true,
                    ..Detected::default()
                };
            }
        };
        let text = file.text();
        let (fields, problems) = parse_os_release(&text);
        let platform = Platform::from_fields(&fields, &problems);
        let first = problems.first();
        return Detected {
            pretty_name: fields.get("PRETTY_NAME").cloned(),
            source: Some(first.map_or_else(|| file.source(), |e| file.source_at(e.line as u32))),
            problem: first.map(|e| format!("{path}: {e}")),
            broken: first.is_some(),
            platform,
        };
    }
    Detected {
        problem: Some(format!("no {}", OS_RELEASE_PATHS.join(" or "))),
        ..Detected::default()
    }
}

/// Collects the facts and the sources they came from.
pub fn host_facts(view: &HostView) -> (HostFacts, Vec<Source>) {
    let params = crate::expect::Params::default();
    facts_of(&Ctx::new(view, &params))
}

/// The facts through a scan's context, sharing its parsed package database
/// with the checks instead of parsing dpkg's status file once more.
pub(crate) fn facts_of(ctx: &Ctx<'_>) -> (HostFacts, Vec<Source>) {
    let view = ctx.host;
    let mut sources = Vec::new();
    let mut facts = HostFacts {
        os_id: None,
        os_like: Vec::new(),
        os_version: None,
        os_name: None,
        family: Family::Unknown,
        platform: String::new(),
        platform_problem: None,
        hostname: None,
        machine_id: None,
        packages: None,
        live: None,
    };
    let detected = ctx.platform();
    if let Some(src) = &detected.source {
        sources.push(src.clone());
    }
    facts.os_id = detected.platform.id.clone();
    facts.os_like = detected.platform.like.clone();
    facts.os_version = detected.platform.version.clone();
    facts.os_name = detected.pretty_name.clone();
    facts.family = detected.platform.family;
    facts.platform = detected.platform.name();
    facts.platform_problem = detected.problem.clone();
    if let Ok(Some(f)) = view.read("/etc/hostname") {
        let name = f.text().trim().to_string();
        if !name.is_empty() {
            facts.hostname = Some(name);
        }
        sources.push(f.source());
    }
    if let Ok(Some(f)) = view.read("/etc/machine-id") {
        let id = f.text().trim().to_string();
        if !id.is_empty() && id != "uninitialized" {
            facts.machine_id = Some(id);
        }
        sources.push(f.source());
    }
    if let Ok(Some(db)) = ctx.packages() {
        facts.packages = Some(db.installed.len());
    }
    if view.mode() == ScanMode::Live {
        if let Some(live) = view.live_host() {
            let inv: &LiveInventory = live.inventory();
            if let Some(h) = &inv.hostname {
                facts.hostname = Some(h.clone());
            }
            facts.live = serde_json::to_value(inv).ok();
            let text = serde_json::to_string(inv).unwrap_or_default();
            sources.push(Source {
                kind: crate::result::SourceKind::Kernel,
                path: "sysinfo".into(),
                sha256: Some(crate::host::sha256_hex(text.as_bytes())),
                line: None,
            });
        }
    }
    (facts, sources)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryProbe {}

impl Probe for InventoryProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let (facts, sources) = facts_of(ctx);
        if let (Some(problem), true) = (&facts.platform_problem, ctx.platform().broken) {
            return Outcome::error(format!(
                "the operating system cannot be identified: {problem}"
            ))
            .expected("operating system and host name identified")
            .sources(sources);
        }
        let mut missing = Vec::new();
        if facts.os_id.is_none() {
            missing.push("operating system (no /etc/os-release)");
        }
        if facts.hostname.is_none() {
            missing.push("host name");
        }
        let mut parts = vec![
            facts
                .os_name
                .clone()
                .or(facts.os_id.clone())
                .unwrap_or_else(|| "unknown OS".into()),
            format!("host {}", facts.hostname.as_deref().unwrap_or("unknown")),
        ];
        if let Some(n) = facts.packages {
            parts.push(format!("{n} packages"));
        }
        if let Some(live) = ctx.host.live_host() {
            let inv = live.inventory();
            parts.push(format!("kernel {}", inv.kernel.as_deref().unwrap_or("?")));
            parts.push(format!("{} CPUs", inv.cpu_count));
            parts.push(format!(
                "{} MiB RAM",
                inv.memory.total_bytes / (1024 * 1024)
            ));
            parts.push(format!("{} file systems", inv.disks.len()));
            parts.push(format!("{} interfaces", inv.interfaces.len()));
        }
        let observed = parts.join(", ");
        Outcome::verdict(
            missing.is_empty(),
            if missing.is_empty() {
                format!("inventory: {observed}")
            } else {
                format!(
                    "inventory incomplete: cannot determine {}",
                    missing.join(", ")
                )
            },
        )
        .expected("operating system and host name identified")
        .observed(observed)
        .sources(sources)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, run_files};
    use crate::host::HostView;
    use crate::result::Status;

    #[test]
    fn root_and_live() {
        let o = run_files(
            &[
                (
                    "/etc/os-release",
                    "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                ),
                ("/etc/hostname", "img-01\n"),
            ],
            r#"{ kind = "inventory" }"#,
        );
        assert_eq!(o.status, Status::Pass);
        assert!(
            o.observed
                .unwrap()
                .starts_with("Debian GNU/Linux 12 (bookworm), host img-01")
        );
        assert_eq!(
            run_files(&[("/etc/hostname", "x\n")], r#"{ kind = "inventory" }"#).status,
            Status::Fail
        );
        let o = run(&HostView::live(), r#"{ kind = "inventory" }"#);
        assert!(o.observed.unwrap().contains("CPUs"));
    }

    #[test]
    fn a_malformed_os_release_is_an_error_naming_file_and_line() {
        let o = run_files(
            &[
                (
                    "/etc/os-release",
                    "ID=rhel\nNAME=\"Red Hat Enterprise Linux\nVERSION_ID=9.4\n",
                ),
                ("/etc/hostname", "img\n"),
            ],
            r#"{ kind = "inventory" }"#,
        );
        assert_eq!(o.status, Status::Error);
        assert!(
            o.message
                .contains("/etc/os-release: line 2: NAME: unterminated double quote"),
            "{}",
            o.message
        );
        assert_eq!(o.sources[0].line, Some(2));
        let (_d, view) = crate::probes::testing::root(&[(
            "/etc/os-release",
            "ID=debian\nPRETTY_NAME=Debian 12\n",
        )]);
        let params = crate::probes::testing::params();
        let ctx = crate::probes::Ctx::new(&view, &params);
        let d = ctx.platform();
        // The broken line is not one the platform is made of.
        assert_eq!(d.platform.name(), "debian");
        assert!(d.broken);
        assert!(
            d.problem
                .as_deref()
                .unwrap()
                .contains("line 2: PRETTY_NAME: `Debian 12`: a value with spaces"),
            "{:?}",
            d.problem
        );
    }
}
