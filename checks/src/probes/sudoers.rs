//! The sudo policy: who may become root and on what terms.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, file::parse_mode, host_try};
use crate::parse::sudoers::LineKind;
use crate::result::{Source, SourceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// No user specification grants `NOPASSWD`, and no `Defaults !authenticate`.
    NoNopasswd,
    /// No specification grants everything to every user (`ALL ALL=(ALL) ALL`).
    NoGrantToAll,
    /// sudo keeps its own log of commands (`Defaults logfile=` or `log_output`).
    CommandLog,
    /// Commands run in a pseudo-terminal (`Defaults use_pty`), so a
    /// background process cannot outlive the session.
    UsePty,
    /// Policy files are owned by root and not writable by others (mode at most 0440).
    FilePermissions,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SudoersProbe {
    rule: Rule,
}

impl Probe for SudoersProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let policy = host_try!(ctx.sudoers());
        let mut sources = policy.sources.clone();
        if !policy.present {
            return Outcome::not_applicable("sudo is not configured (/etc/sudoers is absent)")
                .sources(sources);
        }
        let defaults = || policy.lines.iter().filter(|l| l.kind == LineKind::Defaults);
        match self.rule {
            Rule::NoNopasswd => {
                let bad: Vec<_> = policy
                    .lines
                    .iter()
                    .filter(|l| {
                        l.grants_nopasswd()
                            || (l.kind == LineKind::Defaults && l.text.contains("!authenticate"))
                    })
                    .collect();
                let texts: Vec<String> = bad
                    .iter()
                    .map(|l| {
                        format!(
                            "{}:{}: {}",
                            l.source.path,
                            l.source.line.unwrap_or(0),
                            l.text
                        )
                    })
                    .collect();
                sources.extend(bad.iter().map(|l| l.source.clone()));
                Outcome::verdict(
                    bad.is_empty(),
                    if bad.is_empty() {
                        "every sudo grant requires the user's password".into()
                    } else {
                        format!(
                            "{} grant(s) without password: {}",
                            bad.len(),
                            texts.join("; ")
                        )
                    },
                )
                .expected("no NOPASSWD grants, no !authenticate")
                .observed(if texts.is_empty() {
                    "none".into()
                } else {
                    texts.join("; ")
                })
                .sources(sources)
            }
            Rule::NoGrantToAll => {
                let bad: Vec<_> = policy
                    .lines
                    .iter()
                    .filter(|l| l.kind == LineKind::UserSpec && l.principal() == "ALL")
                    .collect();
                sources.extend(bad.iter().map(|l| l.source.clone()));
                let texts: Vec<String> = bad.iter().map(|l| l.text.clone()).collect();
                Outcome::verdict(
                    bad.is_empty(),
                    if bad.is_empty() {
                        "no grant applies to every user".into()
                    } else {
                        format!("grants to every user: {}", texts.join("; "))
                    },
                )
                .expected("no user specification for ALL users")
                .observed(if texts.is_empty() {
                    "none".into()
                } else {
                    texts.join("; ")
                })
                .sources(sources)
            }
            Rule::CommandLog | Rule::UsePty => {
                let (needles, what): (&[&str], &str) = match self.rule {
                    Rule::CommandLog => (
                        &["logfile=", "logfile =", "log_output"],
                        "Defaults logfile= or log_output",
                    ),
                    _ => (&["use_pty"], "Defaults use_pty"),
                };
                let hit = defaults().find(|l| {
                    needles.iter().any(|n| l.text.contains(n))
                        && !l.text.contains(&format!("!{}", needles[0]))
                });
                match hit {
                    Some(l) => {
                        sources.push(l.source.clone());
                        Outcome::pass(format!(
                            "{} ({}:{})",
                            l.text,
                            l.source.path,
                            l.source.line.unwrap_or(0)
                        ))
                        .expected(what)
                        .observed(l.text.clone())
                        .sources(sources)
                    }
                    None => Outcome::fail(format!("no {what} in the sudo policy"))
                        .expected(what)
                        .observed("not set")
                        .sources(sources),
                }
            }
            Rule::FilePermissions => {
                let max = parse_mode("0440").unwrap_or(0o440);
                let mut bad = Vec::new();
                for path in &policy.files {
                    if let Some(m) = host_try!(ctx.host.metadata(path), sources) {
                        sources.push(Source {
                            kind: SourceKind::Metadata,
                            path: path.clone(),
                            sha256: None,
                            line: None,
                        });
                        if m.mode & !max != 0 || m.uid != 0 {
                            bad.push(format!(
                                "{path} ({:04o}, owner {})",
                                m.mode,
                                ctx.user_name(m.uid)
                            ));
                        }
                    }
                }
                Outcome::verdict(
                    bad.is_empty(),
                    if bad.is_empty() {
                        format!(
                            "{} policy files are root-owned and at most 0440",
                            policy.files.len()
                        )
                    } else {
                        format!("unsafe policy files: {}", bad.join(", "))
                    },
                )
                .expected("owner root, mode at most 0440")
                .observed(if bad.is_empty() {
                    "all compliant".into()
                } else {
                    bad.join(", ")
                })
                .sources(sources)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run, run_files};
    use crate::result::Status;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn nopasswd_found_through_includedir() {
        let good = [(
            "/etc/sudoers",
            "Defaults use_pty\nDefaults logfile=/var/log/sudo.log\nroot ALL=(ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
        )];
        for r in ["no_nopasswd", "no_grant_to_all", "command_log", "use_pty"] {
            let o = run_files(&good, &format!(r#"{{ kind = "sudoers", rule = "{r}" }}"#));
            assert_eq!(o.status, Status::Pass, "{r}: {o:?}");
        }
        let bad = [
            (
                "/etc/sudoers",
                "root ALL=(ALL) ALL\n@includedir /etc/sudoers.d\n",
            ),
            (
                "/etc/sudoers.d/ci",
                "ci ALL=(ALL) NOPASSWD: ALL\nALL ALL=(ALL) /usr/bin/id\n",
            ),
        ];
        let o = run_files(&bad, r#"{ kind = "sudoers", rule = "no_nopasswd" }"#);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("/etc/sudoers.d/ci:1"), "{}", o.message);
        assert_eq!(
            run_files(&bad, r#"{ kind = "sudoers", rule = "no_grant_to_all" }"#).status,
            Status::Fail
        );
        assert_eq!(
            run_files(&bad, r#"{ kind = "sudoers", rule = "use_pty" }"#).status,
            Status::Fail
        );
        assert_eq!(
            run_files(&[], r#"{ kind = "sudoers", rule = "use_pty" }"#).status,
            Status::NotApplicable
        );
    }

    #[test]
    fn permissions() {
        let (d, view) = root(&[("/etc/sudoers", "root ALL=(ALL) ALL\n")]);
        let p = d.path().join("etc/sudoers");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o440)).unwrap();
        let o = run(&view, r#"{ kind = "sudoers", rule = "file_permissions" }"#);
        let owned_by_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        assert_eq!(o.status == Status::Pass, owned_by_root, "{o:?}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            run(&view, r#"{ kind = "sudoers", rule = "file_permissions" }"#).status,
            Status::Fail
        );
    }
}
