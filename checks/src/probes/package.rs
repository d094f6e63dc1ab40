//! A package installed (or not), optionally at a minimum version: from the
//! dpkg status database, or on a live RPM host through `rpm -q`.

use serde::Deserialize;

use super::packages::{self, PackageDb};
use super::{Ctx, Outcome, Probe};
use crate::result::Source;

/// Where an installed package was found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub name: String,
    pub version: String,
    pub signed_by: Option<String>,
    pub source: Source,
    pub db: std::sync::Arc<PackageDb>,
}

/// Looks up installed packages. `Err` when no package database can be read.
pub(crate) fn installed(
    ctx: &Ctx<'_>,
    names: &[String],
) -> Result<(Option<Found>, Vec<Source>), String> {
    let Some(db) = ctx.packages().map_err(|e| e.to_string())? else {
        return Err(format!(
            "no package database found ({}, {})",
            packages::DPKG_STATUS,
            packages::RPMDB_SQLITE.join(", ")
        ));
    };
    for n in names {
        if let Some(p) = db.installed.get(n) {
            return Ok((
                Some(Found {
                    name: n.clone(),
                    version: p.version.clone(),
                    signed_by: p.signed_by.clone(),
                    source: db.source_of(p),
                    db: db.clone(),
                }),
                vec![],
            ));
        }
    }
    Ok((None, vec![db.source.clone()]))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageProbe {
    /// Package names; any one of them satisfies the check.
    names: Vec<String>,
    /// `true` (default): installed; `false`: none of them installed.
    #[serde(default = "yes")]
    installed: bool,
    /// Minimum version, compared as the host's package manager compares.
    #[serde(default)]
    min_version: Option<String>,
}

fn yes() -> bool {
    true
}

impl Probe for PackageProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let names = self.names.join(" / ");
        let (found, mut sources) = match installed(ctx, &self.names) {
            Ok(r) => r,
            Err(e) => return Outcome::error(e),
        };
        match (found, self.installed) {
            (None, want) => Outcome::verdict(!want, format!("{names}: not installed"))
                .expected(if want { "installed" } else { "not installed" })
                .observed("not installed")
                .sources(sources),
            (Some(f), false) => {
                sources.push(f.source);
                Outcome::fail(format!("{} {} is installed", f.name, f.version))
                    .expected("not installed")
                    .observed(format!("{} {}", f.name, f.version))
                    .sources(sources)
            }
            (Some(f), true) => {
                sources.push(f.source);
                let mut observed = format!("{} {}", f.name, f.version);
                if let Some(key) = &f.signed_by {
                    observed.push_str(&format!(", signed by key {key}"));
                }
                match &self.min_version {
                    Some(min) if f.db.compare(&f.version, min).is_lt() => {
                        Outcome::fail(format!("{observed} is older than {min}"))
                            .expected(format!("installed, at least {min}"))
                    }
                    Some(min) => Outcome::pass(format!("{observed} is installed"))
                        .expected(format!("installed, at least {min}")),
                    None => Outcome::pass(format!("{observed} is installed")).expected("installed"),
                }
                .observed(observed)
                .sources(sources)
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.names.is_empty() {
            return Err("`names` must list at least one package".into());
        }
        // Names reach `rpm -q` as arguments: one that starts with `-` would
        // be an option (`--eval=%(…)` runs a command as the agent).
        for n in &self.names {
            super::check_name("package", n)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const STATUS: &str = "Package: auditd\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:3.0.9-1\n\nPackage: telnetd\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 0.17\n";

    #[test]
    fn installed_absent_and_versions() {
        let f = [("/var/lib/dpkg/status", STATUS)];
        let o = run_files(&f, r#"{ kind = "package", names = ["auditd"] }"#);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.sources.last().unwrap().line, Some(1));
        assert_eq!(
            run_files(
                &f,
                r#"{ kind = "package", names = ["auditd"], min_version = "1:3.1" }"#
            )
            .status,
            Status::Fail
        );
        assert_eq!(
            run_files(
                &f,
                r#"{ kind = "package", names = ["auditd"], min_version = "1:3.0.9-1" }"#
            )
            .status,
            Status::Pass
        );
        assert_eq!(run_files(&f, r#"{ kind = "package", names = ["telnetd", "inetutils-telnetd"], installed = false }"#).status, Status::Pass);
        assert_eq!(
            run_files(
                &f,
                r#"{ kind = "package", names = ["auditd"], installed = false }"#
            )
            .status,
            Status::Fail
        );
        assert_eq!(
            run_files(&f, r#"{ kind = "package", names = ["clamav"] }"#).status,
            Status::Fail
        );
    }

    #[test]
    fn no_database_is_an_error() {
        let o = run_files(&[], r#"{ kind = "package", names = ["auditd"] }"#);
        assert_eq!(o.status, Status::Error);
        assert!(o.message.contains("no package database"));
    }
}
