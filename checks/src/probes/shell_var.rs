//! A variable set in the login shells' profile files, typically `TMOUT`.
//!
//! Files are read in the order a login shell sources them (/etc/profile,
//! /etc/profile.d/*.sh by name, /etc/bash.bashrc). Once a statement makes
//! the variable read-only, later assignments cannot change it; otherwise
//! the last assignment wins. Assignments inside `if`/`case` blocks depend
//! on conditions a scan cannot evaluate and do not count as setting it.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use crate::expect::Expect;
use crate::host::HostView;
use crate::parse::{
    glob_match,
    shell::{self, ShellAction},
};
use crate::result::Source;

fn default_files() -> Vec<String> {
    vec![
        "/etc/profile".into(),
        "/etc/profile.d/*.sh".into(),
        "/etc/bash.bashrc".into(),
    ]
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellVarProbe {
    var: String,
    expect: Expect,
    /// Require the variable to be read-only (so a user cannot unset it).
    #[serde(default)]
    readonly: bool,
    /// Require it to be exported.
    #[serde(default)]
    exported: bool,
    /// Files in sourcing order; a `*`/`?` glob in the last component.
    #[serde(default = "default_files")]
    files: Vec<String>,
}

struct Effective {
    value: String,
    source: Source,
    readonly: bool,
    exported: bool,
}

impl Probe for ShellVarProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let mut paths = Vec::new();
        for pattern in &self.files {
            let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
            if name.contains(['*', '?']) {
                match host_try!(ctx.host.read_dir(dir), sources) {
                    Some(entries) => {
                        sources.push(HostView::dir_source(dir, &entries));
                        paths.extend(
                            entries
                                .into_iter()
                                .filter(|e| !e.is_dir && glob_match(name, &e.name))
                                .map(|e| e.path),
                        );
                    }
                    None => sources.push(HostView::absent_source(dir)),
                }
            } else {
                paths.push(pattern.clone());
            }
        }
        let mut eff: Option<Effective> = None;
        let mut conditional: Option<Source> = None;
        let mut locked = false;
        for path in paths {
            let Some(file) = host_try!(ctx.read(&path), sources) else {
                continue;
            };
            sources.push(file.source());
            for st in shell::statements_for(&file.text(), &self.var) {
                if st.conditional {
                    conditional.get_or_insert(file.source_at(st.line));
                    continue;
                }
                match st.action {
                    ShellAction::Assign {
                        value,
                        readonly,
                        exported,
                    } => {
                        if locked {
                            continue; // the shell refuses to reassign a read-only variable
                        }
                        let keep_export = eff.as_ref().is_some_and(|e| e.exported);
                        eff = Some(Effective {
                            value,
                            source: file.source_at(st.line),
                            readonly,
                            exported: exported || keep_export,
                        });
                        locked = readonly;
                    }
                    ShellAction::MarkReadonly => {
                        if let Some(e) = eff.as_mut() {
                            e.readonly = true;
                            locked = true;
                        }
                    }
                    ShellAction::MarkExported => {
                        if let Some(e) = eff.as_mut() {
                            e.exported = true;
                        }
                    }
                }
            }
        }
        let expected = {
            let mut s = self.expect.describe(ctx.params);
            if self.readonly {
                s.push_str(", read-only");
            }
            if self.exported {
                s.push_str(", exported");
            }
            s
        };
        let Some(e) = eff else {
            let msg = match &conditional {
                Some(c) => format!(
                    "{} is only set conditionally ({}:{}), not for every login",
                    self.var,
                    c.path,
                    c.line.unwrap_or(0)
                ),
                None => format!("{} is not set in any login profile", self.var),
            };
            sources.extend(conditional);
            return Outcome::fail(msg)
                .expected(expected)
                .observed("not set")
                .sources(sources);
        };
        sources.push(e.source.clone());
        let at = format!("{}:{}", e.source.path, e.source.line.unwrap_or(0));
        let mut observed = e.value.clone();
        if e.readonly {
            observed.push_str(", read-only");
        }
        if e.exported {
            observed.push_str(", exported");
        }
        let outcome = match self.expect.judge(&e.value, ctx.params) {
            Err(err) => Outcome::error(format!("{} ({at}): {err}", self.var)),
            Ok(false) => Outcome::fail(format!(
                "{}={} ({at}), expected {}",
                self.var,
                e.value,
                self.expect.describe(ctx.params)
            )),
            Ok(true) if self.readonly && !e.readonly => Outcome::fail(format!(
                "{}={} ({at}) is not read-only, so any user can unset it",
                self.var, e.value
            )),
            Ok(true) if self.exported && !e.exported => {
                Outcome::fail(format!("{}={} ({at}) is not exported", self.var, e.value))
            }
            Ok(true) => Outcome::pass(format!("{}={} ({at})", self.var, observed)),
        };
        outcome
            .expected(expected)
            .observed(observed)
            .sources(sources)
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(f) = self.files.iter().find(|f| !f.starts_with('/')) {
            return Err(format!("`files` entries are absolute paths, got `{f}`"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "shell_var", var = "TMOUT", readonly = true, expect = { between = [1, { param = "session_timeout_seconds" }] } }"#;

    #[test]
    fn readonly_tmout_in_profile_d_passes() {
        let o = run_files(
            &[
                ("/etc/profile", "umask 022\n"),
                (
                    "/etc/profile.d/tmout.sh",
                    "TMOUT=600\nreadonly TMOUT\nexport TMOUT\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed.as_deref(), Some("600, read-only, exported"));
    }

    #[test]
    fn readonly_first_assignment_cannot_be_overridden_later() {
        let o = run_files(
            &[
                ("/etc/profile", "readonly TMOUT=300\n"),
                ("/etc/bash.bashrc", "TMOUT=0\n"),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.sources.last().unwrap().path, "/etc/profile");
    }

    #[test]
    fn failures() {
        let o = run_files(
            &[("/etc/profile.d/tmout.sh", "TMOUT=600\nexport TMOUT\n")],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("not read-only"));
        let o = run_files(&[("/etc/profile.d/tmout.sh", "readonly TMOUT=3600\n")], P);
        assert_eq!(o.status, Status::Fail);
        let o = run_files(&[("/etc/profile", "# TMOUT=600\n")], P);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed.as_deref(), Some("not set"));
        let o = run_files(
            &[(
                "/etc/profile",
                "if [ $UID -ne 0 ]; then\n readonly TMOUT=600\nfi\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("conditionally"), "{}", o.message);
    }
}
