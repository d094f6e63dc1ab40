//! Linux audit rules as augenrules assembles them: `/etc/audit/rules.d/*.rules`
//! in name order, or `/etc/audit/audit.rules` when rules.d is empty.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::host::HostView;
use crate::parse::audit::{self, AuditRule};
use crate::result::Source;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRulesProbe {
    /// At least this many watch/syscall rules.
    #[serde(default)]
    min_rules: usize,
    /// Paths that must be watched (by `-w` or `-F path=`/`dir=`).
    #[serde(default)]
    watches: Vec<String>,
    /// System calls that must be audited (`-S`).
    #[serde(default)]
    syscalls: Vec<String>,
    /// The configuration must end with `-e 2` (immutable until reboot).
    #[serde(default)]
    immutable: bool,
}

impl Probe for AuditRulesProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let mut rules: Vec<(AuditRule, Source)> = Vec::new();
        let files = host_try!(
            drop_ins(ctx.host, &["/etc/audit/rules.d"], "*.rules", &mut sources),
            sources
        );
        let files = if files.is_empty() {
            match host_try!(ctx.read("/etc/audit/audit.rules"), sources) {
                Some(f) => vec![f],
                None => {
                    sources.push(HostView::absent_source("/etc/audit/audit.rules"));
                    Vec::new()
                }
            }
        } else {
            files
        };
        for f in &files {
            sources.push(f.source());
            for r in audit::parse(&f.text()) {
                let src = f.source_at(r.line);
                rules.push((r, src));
            }
        }
        let count = rules.iter().filter(|(r, _)| r.is_rule()).count();
        let mut problems = Vec::new();
        let mut expected = Vec::new();
        if self.min_rules > 0 {
            expected.push(format!("at least {} rules", self.min_rules));
            if count < self.min_rules {
                problems.push(format!(
                    "{count} audit rules, fewer than {}",
                    self.min_rules
                ));
            }
        }
        for w in &self.watches {
            expected.push(format!("watch {w}"));
            match rules.iter().find(|(r, _)| {
                // `-w /etc/apparmor.d/` watches the same directory as `-w /etc/apparmor.d`.
                r.watched_path().map(|p| p.trim_end_matches('/')) == Some(w.trim_end_matches('/'))
            }) {
                Some((_, s)) => sources.push(s.clone()),
                None => problems.push(format!("{w} is not watched")),
            }
        }
        for sc in &self.syscalls {
            expected.push(format!("audit {sc}"));
            match rules.iter().find(|(r, _)| r.audits_syscall(sc)) {
                Some((_, s)) => sources.push(s.clone()),
                None => problems.push(format!("no rule audits {sc}")),
            }
        }
        if self.immutable {
            expected.push("-e 2 (immutable)".into());
            match rules.iter().rev().find(|(r, _)| r.text.starts_with("-e ")) {
                Some((r, s)) if r.is_immutable_marker() => sources.push(s.clone()),
                _ => problems.push("the rules do not end in -e 2".into()),
            }
        }
        let observed = format!("{count} rules in {} files", files.len());
        Outcome::verdict(
            problems.is_empty(),
            if problems.is_empty() {
                observed.clone()
            } else {
                problems.join("; ")
            },
        )
        .expected(expected.join(", "))
        .observed(observed)
        .sources(sources)
    }

    fn validate(&self) -> Result<(), String> {
        if self.min_rules == 0
            && self.watches.is_empty()
            && self.syscalls.is_empty()
            && !self.immutable
        {
            return Err("set `min_rules`, `watches`, `syscalls` or `immutable`".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const RULES: &str = "-D\n-w /etc/sudoers -p wa -k scope\n-w /etc/sudoers.d -p wa -k scope\n-a always,exit -F arch=b64 -S execve -F euid=0 -k rootcmd\n-e 2\n";

    #[test]
    fn rules_d_is_preferred_and_requirements_are_named() {
        let f = [
            ("/etc/audit/rules.d/50-scope.rules", RULES),
            ("/etc/audit/audit.rules", "-D\n"),
        ];
        let p = r#"{ kind = "audit_rules", min_rules = 3, watches = ["/etc/sudoers"], syscalls = ["execve"], immutable = true }"#;
        let o = run_files(&f, p);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let o = run_files(&[("/etc/audit/audit.rules", "-D\n-b 8192\n")], p);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("/etc/sudoers is not watched"));
        assert!(o.message.contains("no rule audits execve"));
        assert_eq!(
            run_files(&[], r#"{ kind = "audit_rules", min_rules = 1 }"#).status,
            Status::Fail
        );
    }
}
