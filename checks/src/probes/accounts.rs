//! Local accounts and groups from the scanned system's /etc/passwd,
//! /etc/shadow and /etc/group.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Ctx, Outcome, Probe};
use crate::expect::Num;
use crate::parse::passwd::{is_nologin_shell, runs_only_its_command};
use crate::result::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// No two accounts share a UID.
    UniqueUids,
    /// No two accounts share a name.
    UniqueNames,
    /// No two groups share a GID.
    UniqueGids,
    /// Only `root` has UID 0.
    OnlyRootUid0,
    /// No account has an empty password (in passwd or shadow).
    NoEmptyPasswords,
    /// Every account's password is in /etc/shadow (`x` in passwd, a shadow entry).
    Shadowed,
    /// Accounts with a usable password expire it within `max_days`.
    PasswordMaxAge,
    /// Usable passwords are hashed with a strong scheme (yescrypt, sha512, bcrypt).
    StrongHashes,
    /// System accounts (UID below 1000, not root) have no login shell and no usable password.
    SystemAccountsLocked,
    /// At most `max_members` members of the privileged groups.
    PrivilegedGroupMembers,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsProbe {
    rule: Rule,
    #[serde(default)]
    max_days: Option<Num>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    max_members: Option<Num>,
}

struct Finding {
    text: String,
    source: Source,
}

impl AccountsProbe {
    fn findings(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
    ) -> Result<(Vec<Finding>, String), String> {
        let (passwd, psrc) = ctx.passwd().map_err(|e| e.to_string())?;
        sources.push(psrc.clone());
        let need_shadow = matches!(
            self.rule,
            Rule::NoEmptyPasswords
                | Rule::Shadowed
                | Rule::PasswordMaxAge
                | Rule::StrongHashes
                | Rule::SystemAccountsLocked
        );
        let (shadow, ssrc) = if need_shadow {
            ctx.shadow().map_err(|e| e.to_string())?
        } else {
            (Vec::new(), psrc.clone())
        };
        if need_shadow {
            sources.push(ssrc.clone());
        }
        if passwd.is_empty() {
            return Err("/etc/passwd is absent or empty".into());
        }
        let shadow_of = |name: &str| shadow.iter().find(|s| s.name == name);
        let mut f = Vec::new();
        let expected;
        match self.rule {
            Rule::UniqueUids | Rule::UniqueNames => {
                expected = if self.rule == Rule::UniqueUids {
                    "every UID used once"
                } else {
                    "every account name used once"
                }
                .to_string();
                let mut by: BTreeMap<String, Vec<&crate::parse::passwd::PasswdEntry>> =
                    BTreeMap::new();
                for e in &passwd {
                    let key = if self.rule == Rule::UniqueUids {
                        e.uid.map(|u| u.to_string()).unwrap_or_else(|| "?".into())
                    } else {
                        e.name.clone()
                    };
                    by.entry(key).or_default().push(e);
                }
                for (k, v) in by.into_iter().filter(|(_, v)| v.len() > 1) {
                    let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
                    f.push(Finding {
                        text: format!("{k} used by {}", names.join(", ")),
                        source: psrc.at_line(v[1].line),
                    });
                }
            }
            Rule::UniqueGids => {
                expected = "every GID used once".into();
                let (groups, gsrc) = ctx.group().map_err(|e| e.to_string())?;
                sources.push(gsrc.clone());
                let mut by: BTreeMap<u32, Vec<&crate::parse::passwd::GroupEntry>> = BTreeMap::new();
                for g in &groups {
                    if let Some(gid) = g.gid {
                        by.entry(gid).or_default().push(g);
                    }
                }
                for (k, v) in by.into_iter().filter(|(_, v)| v.len() > 1) {
                    let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
                    f.push(Finding {
                        text: format!("GID {k} used by {}", names.join(", ")),
                        source: gsrc.at_line(v[1].line),
                    });
                }
            }
            Rule::OnlyRootUid0 => {
                expected = "only root has UID 0".into();
                for e in passwd
                    .iter()
                    .filter(|e| e.uid == Some(0) && e.name != "root")
                {
                    f.push(Finding {
                        text: format!("{} has UID 0", e.name),
                        source: psrc.at_line(e.line),
                    });
                }
            }
            Rule::NoEmptyPasswords => {
                expected = "no account without a password".into();
                for e in &passwd {
                    if e.password.is_empty() {
                        f.push(Finding {
                            text: format!("{} has an empty password field in /etc/passwd", e.name),
                            source: psrc.at_line(e.line),
                        });
                    }
                }
                for s in shadow.iter().filter(|s| s.hash.is_empty()) {
                    f.push(Finding {
                        text: format!("{} has an empty password", s.name),
                        source: ssrc.at_line(s.line),
                    });
                }
            }
            Rule::Shadowed => {
                expected = "every password in /etc/shadow".into();
                for e in &passwd {
                    if e.password != "x" && !e.password.is_empty() {
                        f.push(Finding {
                            text: format!("{} keeps its password hash in /etc/passwd", e.name),
                            source: psrc.at_line(e.line),
                        });
                    } else if e.password == "x" && shadow_of(&e.name).is_none() {
                        f.push(Finding {
                            text: format!("{} has no /etc/shadow entry", e.name),
                            source: psrc.at_line(e.line),
                        });
                    }
                }
            }
            Rule::PasswordMaxAge => {
                let max = self
                    .max_days
                    .as_ref()
                    .map(|n| n.resolve(ctx.params))
                    .transpose()?
                    .unwrap_or(365);
                expected = format!("passwords expire within {max} days");
                for s in shadow.iter().filter(|s| s.has_usable_password()) {
                    match s.max_days {
                        Some(d) if d <= max => {}
                        Some(d) => f.push(Finding {
                            text: format!("{} expires after {d} days", s.name),
                            source: ssrc.at_line(s.line),
                        }),
                        None => f.push(Finding {
                            text: format!("{} never expires", s.name),
                            source: ssrc.at_line(s.line),
                        }),
                    }
                }
            }
            Rule::StrongHashes => {
                expected = "passwords hashed with yescrypt, sha512 or bcrypt".into();
                for s in &shadow {
                    if let Some(scheme) = s.scheme() {
                        if !matches!(scheme, "yescrypt" | "gost-yescrypt" | "sha512" | "bcrypt") {
                            f.push(Finding {
                                text: format!("{} uses {scheme}", s.name),
                                source: ssrc.at_line(s.line),
                            });
                        }
                    }
                }
            }
            Rule::SystemAccountsLocked => {
                expected = "system accounts without login shell or password".into();
                for e in passwd
                    .iter()
                    .filter(|e| e.name != "root" && e.uid.is_some_and(|u| u < 1000))
                {
                    let usable = shadow_of(&e.name).is_some_and(|s| s.has_usable_password());
                    let shell = !is_nologin_shell(&e.shell)
                        && !runs_only_its_command(&e.name, &e.shell)
                        && !e.shell.is_empty();
                    let uid = e.uid.unwrap_or(0);
                    let why = match (usable, shell) {
                        (true, true) => format!(
                            "{} (UID {uid}) has a usable password and the login shell {}",
                            e.name, e.shell
                        ),
                        (true, false) => format!("{} (UID {uid}) has a usable password", e.name),
                        (false, true) => {
                            format!("{} (UID {uid}) has the login shell {}", e.name, e.shell)
                        }
                        (false, false) => continue,
                    };
                    f.push(Finding {
                        text: why,
                        source: psrc.at_line(e.line),
                    });
                }
            }
            Rule::PrivilegedGroupMembers => {
                let max = self
                    .max_members
                    .as_ref()
                    .map(|n| n.resolve(ctx.params))
                    .transpose()?
                    .unwrap_or(0);
                let (groups, gsrc) = ctx.group().map_err(|e| e.to_string())?;
                sources.push(gsrc.clone());
                let mut members: Vec<(String, Source)> = Vec::new();
                for g in groups.iter().filter(|g| self.groups.contains(&g.name)) {
                    for m in &g.members {
                        members.push((format!("{m} ({})", g.name), gsrc.at_line(g.line)));
                    }
                    // Accounts whose primary group is privileged are members too.
                    for e in passwd.iter().filter(|e| e.gid.is_some() && e.gid == g.gid) {
                        members.push((
                            format!("{} ({}, primary)", e.name, g.name),
                            psrc.at_line(e.line),
                        ));
                    }
                }
                expected = format!("at most {max} members of {}", self.groups.join(", "));
                let count = members.len();
                let list: Vec<String> = members.iter().map(|(m, _)| m.clone()).collect();
                if count as i64 > max {
                    for (text, source) in members {
                        f.push(Finding { text, source });
                    }
                }
                return Ok((
                    f,
                    format!(
                        "{expected}|{count} members: {}",
                        if list.is_empty() {
                            "none".into()
                        } else {
                            list.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok((f, expected))
    }
}

impl Probe for AccountsProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let (findings, expected) = match self.findings(ctx, &mut sources) {
            Ok(r) => r,
            Err(e) => return Outcome::error(e).sources(sources),
        };
        let (expected, summary) = match expected.split_once('|') {
            Some((e, s)) => (e.to_string(), Some(s.to_string())),
            None => (expected, None),
        };
        if findings.is_empty() {
            let observed = summary.unwrap_or_else(|| "no exceptions".into());
            return Outcome::pass(observed.clone())
                .expected(expected)
                .observed(observed)
                .sources(sources);
        }
        let texts: Vec<String> = findings.iter().map(|f| f.text.clone()).collect();
        sources.extend(findings.into_iter().take(50).map(|f| f.source));
        let observed = summary.unwrap_or_else(|| texts.join("; "));
        Outcome::fail(texts.join("; "))
            .expected(expected)
            .observed(observed)
            .sources(sources)
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.max_days, &self.max_members])
    }

    fn validate(&self) -> Result<(), String> {
        match self.rule {
            Rule::PrivilegedGroupMembers if self.groups.is_empty() => {
                Err("rule `privileged_group_members` needs `groups`".into())
            }
            Rule::PasswordMaxAge if self.max_days.is_none() => {
                Err("rule `password_max_age` needs `max_days`".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n";
    const SHADOW: &str = "root:!:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nalice:$y$j9T$salt$hash:19000:1:90:7:::\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n";

    fn ok(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![
            ("/etc/passwd", PASSWD),
            ("/etc/shadow", SHADOW),
            ("/etc/group", GROUP),
        ];
        for (p, c) in extra {
            v.retain(|(q, _)| q != p);
            v.push((p, c));
        }
        v
    }

    fn rule(r: &str) -> String {
        format!(
            r#"{{ kind = "accounts", rule = "{r}", max_days = 365, groups = ["sudo", "wheel"], max_members = 1 }}"#
        )
    }

    #[test]
    fn a_clean_system_passes_every_rule() {
        for r in [
            "unique_uids",
            "unique_names",
            "unique_gids",
            "only_root_uid0",
            "no_empty_passwords",
            "shadowed",
            "password_max_age",
            "strong_hashes",
            "system_accounts_locked",
            "privileged_group_members",
        ] {
            let o = run_files(&ok(&[]), &rule(r));
            assert_eq!(o.status, Status::Pass, "{r}: {o:?}");
        }
    }

    #[test]
    fn each_rule_fails_on_its_defect() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "unique_uids",
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/h:/bin/sh\neve:x:1000:1000::/h:/bin/sh\n",
            ),
            (
                "only_root_uid0",
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n",
            ),
            (
                "no_empty_passwords",
                "/etc/shadow",
                "root:!:1:0:99999:7:::\nalice::19000:0:90:7:::\n",
            ),
            ("shadowed", "/etc/shadow", "root:!:1:0:99999:7:::\n"),
            (
                "password_max_age",
                "/etc/shadow",
                "root:!:1:0:99999:7:::\nalice:$6$s$h:19000:0:99999:7:::\n",
            ),
            (
                "strong_hashes",
                "/etc/shadow",
                "root:!:1::::::\nalice:$1$s$h:19000:0:90:7:::\n",
            ),
            (
                "system_accounts_locked",
                "/etc/shadow",
                "root:!:1::::::\ndaemon:$6$s$h:1::::::\nalice:!:1::::::\n",
            ),
            (
                "privileged_group_members",
                "/etc/group",
                "root:x:0:\nsudo:x:27:alice,bob\nalice:x:1000:\n",
            ),
            (
                "unique_gids",
                "/etc/group",
                "root:x:0:\nsudo:x:27:\nadm:x:27:\n",
            ),
        ];
        for (r, file, content) in cases {
            let o = run_files(&ok(&[(file, content)]), &rule(r));
            assert_eq!(o.status, Status::Fail, "{r}: {o:?}");
            assert!(
                o.sources.iter().any(|s| s.line.is_some()),
                "{r} names a line: {o:?}"
            );
        }
        let o = run_files(
            &ok(&[
                (
                    "/etc/passwd",
                    "root:x:0:0::/root:/bin/sh\ndaemon:x:1:1::/:/bin/sh\n",
                ),
                ("/etc/shadow", "root:!:1::::::\ndaemon:$6$s$h:1::::::\n"),
            ]),
            &rule("system_accounts_locked"),
        );
        assert!(
            o.message
                .contains("daemon (UID 1) has a usable password and the login shell /bin/sh"),
            "{}",
            o.message
        );
    }

    /// RHEL's passwd: sync, shutdown and halt run their one command; a
    /// daemon given /sbin/shutdown as a shell is still a login shell.
    #[test]
    fn rhel_single_command_accounts_are_not_login_shells() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nsync:x:5:0:sync:/sbin:/bin/sync\nshutdown:x:6:0:shutdown:/sbin:/sbin/shutdown\nhalt:x:7:0:halt:/sbin:/sbin/halt\n";
        let shadow = "root:!:1::::::\nsync:*:19469:0:99999:7:::\nshutdown:*:19469:0:99999:7:::\nhalt:*:19469:0:99999:7:::\n";
        let o = run_files(
            &ok(&[("/etc/passwd", passwd), ("/etc/shadow", shadow)]),
            &rule("system_accounts_locked"),
        );
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let passwd: &'static str =
            "root:x:0:0:root:/root:/bin/bash\nbackup:x:34:34::/:/sbin/shutdown\n";
        let o = run_files(
            &ok(&[("/etc/passwd", passwd), ("/etc/shadow", shadow)]),
            &rule("system_accounts_locked"),
        );
        assert_eq!(o.status, Status::Fail, "{}", o.message);
    }

    #[test]
    fn missing_passwd_is_an_error() {
        assert_eq!(run_files(&[], &rule("unique_uids")).status, Status::Error);
    }
}
