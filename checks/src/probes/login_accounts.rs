//! Accounts that can log in: whether they still do, whether an unused one
//! locks itself, and whether their home and `.ssh` directories are their
//! own.
//!
//! An account can log in when its shell is a login shell and it has a
//! usable password or an `authorized_keys` file. Its last login comes from
//! /var/log/lastlog (one 292-byte record per UID: a 32-bit time, the line
//! and the host) and /var/log/wtmp (384-byte utmp records of type
//! USER_PROCESS), whichever is newer; both describe the running host, so
//! dormancy is judged live only.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{Ctx, Outcome, Probe};
use crate::expect::Num;
use crate::host::{HostError, HostView};
use crate::parse::passwd::{PasswdEntry, ShadowEntry, is_nologin_shell, runs_only_its_command};
use crate::result::{Source, SourceKind};

const LASTLOG: &str = "/var/log/lastlog";
const WTMP: &str = "/var/log/wtmp";
const LASTLOG_RECORD: u64 = 292;
const UTMP_RECORD: usize = 384;
const USER_PROCESS: i16 = 7;
/// wtmp grows until it is rotated; read at most its last this many bytes.
const WTMP_TAIL: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// No account that can log in has been unused for more than `max_days`.
    Dormant,
    /// Accounts with a password lock at most `max_days` after it expires.
    InactiveLock,
    /// Home directories are owned by their user and not open to others.
    HomePermissions,
    /// `.ssh` directories and the keys in them are their user's alone.
    SshDirPermissions,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginAccountsProbe {
    rule: Rule,
    #[serde(default)]
    max_days: Option<Num>,
}

fn login_shell(e: &PasswdEntry) -> bool {
    !e.shell.is_empty() && !is_nologin_shell(&e.shell) && !runs_only_its_command(&e.name, &e.shell)
}

fn days_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 / 86_400)
        .unwrap_or(0)
}

/// Newest login time (seconds) per user name from wtmp records.
pub fn wtmp_logins(bytes: &[u8]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for rec in bytes.chunks_exact(UTMP_RECORD) {
        if i16::from_ne_bytes([rec[0], rec[1]]) != USER_PROCESS {
            continue;
        }
        let user = &rec[44..76];
        let end = user.iter().position(|&b| b == 0).unwrap_or(user.len());
        let name = String::from_utf8_lossy(&user[..end]).into_owned();
        let t = i32::from_ne_bytes([rec[340], rec[341], rec[342], rec[343]]) as i64;
        let e = out.entry(name).or_insert(t);
        *e = (*e).max(t);
    }
    out
}

/// /etc/passwd and /etc/shadow, both added to `sources`, and shadow's
/// source (for pointing at its lines).
fn accounts(
    ctx: &Ctx<'_>,
    sources: &mut Vec<Source>,
) -> Result<(Vec<PasswdEntry>, Vec<ShadowEntry>, Source), HostError> {
    let (passwd, psrc) = ctx.passwd()?;
    let (shadow, ssrc) = ctx.shadow()?;
    sources.extend([psrc, ssrc.clone()]);
    Ok((passwd, shadow, ssrc))
}

impl LoginAccountsProbe {
    fn can_log_in(
        &self,
        ctx: &Ctx<'_>,
        e: &PasswdEntry,
        shadow: &[ShadowEntry],
    ) -> Result<bool, HostError> {
        if !login_shell(e) {
            return Ok(false);
        }
        if shadow
            .iter()
            .any(|s| s.name == e.name && s.has_usable_password())
        {
            return Ok(true);
        }
        Ok(!e.home.is_empty()
            && ctx.host.exists(&format!(
                "{}/.ssh/authorized_keys",
                e.home.trim_end_matches('/')
            ))?)
    }

    fn dormant(
        &self,
        ctx: &Ctx<'_>,
        max: i64,
        sources: &mut Vec<Source>,
    ) -> Result<Outcome, HostError> {
        let (passwd, shadow, _) = accounts(ctx, sources)?;
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        let mut read_any = false;
        if let Some((file, meta)) = ctx.host.open(WTMP)? {
            let start = meta.len.saturating_sub(WTMP_TAIL);
            let start = start - start % UTMP_RECORD as u64;
            let mut bytes = Vec::new();
            let mut f = file;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))
                .map_err(|e| HostError::io(WTMP, &e))?;
            f.read_to_end(&mut bytes)
                .map_err(|e| HostError::io(WTMP, &e))?;
            sources.push(Source {
                kind: SourceKind::File,
                path: WTMP.into(),
                sha256: Some(crate::host::sha256_hex(&bytes)),
                line: None,
            });
            last = wtmp_logins(&bytes);
            read_any = true;
        } else {
            sources.push(HostView::absent_source(WTMP));
        }
        let lastlog = ctx.host.open(LASTLOG)?;
        if lastlog.is_none() {
            sources.push(HostView::absent_source(LASTLOG));
        }
        if lastlog.is_none() && !read_any {
            return Ok(Outcome::error(format!(
                "neither {LASTLOG} nor {WTMP} exists: last logins cannot be read"
            )));
        }
        let mut read_records = Vec::new();
        let today = days_now();
        let mut dormant = Vec::new();
        let mut active = 0;
        for e in &passwd {
            if !self.can_log_in(ctx, e, &shadow)? {
                continue;
            }
            let mut t = last.get(&e.name).copied().unwrap_or(0);
            if let (Some((f, _)), Some(uid)) = (&lastlog, e.uid) {
                let mut rec = [0u8; 4];
                if f.read_at(&mut rec, uid as u64 * LASTLOG_RECORD).ok() == Some(4) {
                    read_records.push(format!("{uid}:{}", i32::from_ne_bytes(rec)));
                    t = t.max(i32::from_ne_bytes(rec) as i64);
                }
            }
            if t > 0 {
                let days = today - t / 86_400;
                if days > max {
                    dormant.push(format!("{} (last login {days} days ago)", e.name));
                } else {
                    active += 1;
                }
            } else {
                // Never logged in: dormant once the account is older than the limit.
                let changed = shadow
                    .iter()
                    .find(|s| s.name == e.name)
                    .and_then(|s| s.last_change);
                match changed {
                    Some(d) if today - d > max => dormant.push(format!(
                        "{} (never logged in; password set {} days ago)",
                        e.name,
                        today - d
                    )),
                    Some(_) => active += 1,
                    None => dormant.push(format!(
                        "{} (never logged in; no password change date)",
                        e.name
                    )),
                }
            }
        }
        if lastlog.is_some() {
            sources.push(Source {
                kind: SourceKind::File,
                path: LASTLOG.into(),
                sha256: Some(crate::host::sha256_hex(read_records.join("\n").as_bytes())),
                line: None,
            });
        }
        let expected = format!("every account that can log in used within {max} days");
        if dormant.is_empty() && active == 0 {
            return Ok(Outcome::not_applicable(
                "no account can log in (no login shell with a password or authorized_keys)",
            ));
        }
        Ok(if dormant.is_empty() {
            Outcome::pass(format!(
                "{active} accounts can log in, all used within {max} days"
            ))
            .expected(expected)
            .observed(format!("{active} active"))
        } else {
            Outcome::fail(format!("dormant: {}", dormant.join(", ")))
                .expected(expected)
                .observed(dormant.join(", "))
        })
    }

    fn inactive_lock(
        &self,
        ctx: &Ctx<'_>,
        max: i64,
        sources: &mut Vec<Source>,
    ) -> Result<Outcome, HostError> {
        let (passwd, shadow, ssrc) = accounts(ctx, sources)?;
        let mut bad = Vec::new();
        let mut good = 0;
        for s in shadow.iter().filter(|s| s.has_usable_password()) {
            if !passwd.iter().any(|e| e.name == s.name && login_shell(e)) {
                continue;
            }
            match s.inactive_days {
                Some(d) if (0..=max).contains(&d) => good += 1,
                Some(d) => {
                    bad.push(format!("{} locks {d} days after expiry", s.name));
                    sources.push(ssrc.at_line(s.line));
                }
                None => {
                    bad.push(format!(
                        "{} never locks after expiry (no inactive days)",
                        s.name
                    ));
                    sources.push(ssrc.at_line(s.line));
                }
            }
        }
        let expected = format!("accounts with a password lock at most {max} days after it expires");
        if bad.is_empty() && good == 0 {
            return Ok(Outcome::not_applicable(
                "no account that can log in has a password",
            ));
        }
        Ok(if bad.is_empty() {
            Outcome::pass(format!(
                "{good} accounts with a password, each locks within {max} days of expiry"
            ))
            .expected(expected)
            .observed(format!("{good} accounts"))
        } else {
            Outcome::fail(bad.join("; "))
                .expected(expected)
                .observed(bad.join("; "))
        })
    }

    fn permissions(&self, ctx: &Ctx<'_>, sources: &mut Vec<Source>) -> Result<Outcome, HostError> {
        let (passwd, shadow, _) = accounts(ctx, sources)?;
        let mut bad = Vec::new();
        let mut seen = 0;
        for e in &passwd {
            let people = e.uid.is_some_and(|u| u == 0 || u >= 1000);
            if !people
                || !self.can_log_in(ctx, e, &shadow)?
                || !e.home.starts_with('/')
                || e.home == "/"
            {
                continue;
            }
            let uid = e.uid.unwrap_or(u32::MAX);
            let home = e.home.trim_end_matches('/').to_string();
            let mut check = |path: String, max_mode: u32, what: &str| -> Result<(), HostError> {
                if let Some(m) = ctx.host.metadata(&path)? {
                    seen += 1;
                    sources.push(Source {
                        kind: SourceKind::Metadata,
                        path: path.clone(),
                        sha256: None,
                        line: None,
                    });
                    if m.mode & !max_mode != 0 || m.uid != uid {
                        bad.push(format!(
                            "{path} ({what} of {}): {:04o} owned by {}, expected at most {max_mode:04o} owned by {}",
                            e.name,
                            m.mode,
                            ctx.user_name(m.uid),
                            e.name
                        ));
                    }
                }
                Ok(())
            };
            match self.rule {
                Rule::HomePermissions => check(home.clone(), 0o750, "home")?,
                _ => {
                    let ssh = format!("{home}/.ssh");
                    check(ssh.clone(), 0o700, ".ssh directory")?;
                    if let Some(entries) = ctx.host.read_dir(&ssh)? {
                        for f in entries
                            .iter()
                            .filter(|f| !f.is_dir && f.link_target.is_none())
                        {
                            let max = if f.name.ends_with(".pub") || f.name == "known_hosts" {
                                0o644
                            } else {
                                0o600
                            };
                            check(f.path.clone(), max, "SSH file")?;
                        }
                    }
                }
            }
        }
        let expected = match self.rule {
            Rule::HomePermissions => "home directories owned by their user, mode at most 0750",
            _ => {
                ".ssh directories 0700 and the keys in them 0600 (public keys 0644), owned by their user"
            }
        };
        if bad.is_empty() && seen == 0 {
            return Ok(Outcome::not_applicable(
                "no account that can log in has one (no login shell with a password or authorized_keys)",
            ));
        }
        Ok(if bad.is_empty() {
            Outcome::pass(format!("{seen} paths examined, all their users' own"))
                .expected(expected)
                .observed(format!("{seen} paths"))
        } else {
            Outcome::fail(bad.join("; "))
                .expected(expected)
                .observed(bad.join("; "))
        })
    }
}

impl Probe for LoginAccountsProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let max = match self
            .max_days
            .as_ref()
            .map(|n| n.resolve(ctx.params))
            .transpose()
        {
            Ok(m) => m,
            Err(e) => return Outcome::error(e),
        };
        let result = match self.rule {
            Rule::Dormant if !ctx.is_live() => {
                return Outcome::not_applicable(
                    "last logins are recorded on the running host (lastlog, wtmp); a root directory has none of its own",
                );
            }
            Rule::Dormant => self.dormant(ctx, max.unwrap_or(90), &mut sources),
            Rule::InactiveLock => self.inactive_lock(ctx, max.unwrap_or(30), &mut sources),
            Rule::HomePermissions | Rule::SshDirPermissions => self.permissions(ctx, &mut sources),
        };
        match result {
            Ok(o) => o.sources(sources),
            Err(e) => Outcome::from_host_error(&e, sources),
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.max_days])
    }

    fn validate(&self) -> Result<(), String> {
        match (self.rule, &self.max_days) {
            (Rule::Dormant | Rule::InactiveLock, None) => Err("this rule needs `max_days`".into()),
            (Rule::HomePermissions | Rule::SshDirPermissions, Some(_)) => {
                Err("this rule takes no `max_days`".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::result::Status;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn wtmp_user_process_records() {
        let mut rec = vec![0u8; 384];
        rec[..2].copy_from_slice(&7i16.to_ne_bytes());
        rec[44..47].copy_from_slice(b"ops");
        rec[340..344].copy_from_slice(&1_700_000_000i32.to_ne_bytes());
        let mut boot = vec![0u8; 384];
        boot[..2].copy_from_slice(&2i16.to_ne_bytes());
        let mut all = boot;
        all.extend(&rec);
        assert_eq!(super::wtmp_logins(&all).get("ops"), Some(&1_700_000_000));
        assert_eq!(super::wtmp_logins(&all).len(), 1);
    }

    #[test]
    fn inactive_lock_and_dormancy_in_root_mode() {
        let passwd = (
            "/etc/passwd",
            "root:x:0:0::/root:/bin/bash\nops:x:1000:1000::/home/ops:/bin/bash\nsvc:x:999:999::/:/usr/sbin/nologin\n",
        );
        let good = (
            "/etc/shadow",
            "root:!:19800::::::\nops:$y$x:19800:1:365:7:30::\nsvc:!:19800::::::\n",
        );
        let bad = (
            "/etc/shadow",
            "root:!:19800::::::\nops:$y$x:19800:1:365:7:::\nsvc:!:19800::::::\n",
        );
        let p = r#"{ kind = "login_accounts", rule = "inactive_lock", max_days = 30 }"#;
        let (_d, v) = root(&[passwd, good]);
        assert_eq!(run(&v, p).status, Status::Pass);
        let (_d, v) = root(&[passwd, bad]);
        let o = run(&v, p);
        assert!(o.message.contains("ops never locks"), "{}", o.message);
        let d = r#"{ kind = "login_accounts", rule = "dormant", max_days = 90 }"#;
        assert_eq!(run(&v, d).status, Status::NotApplicable);
    }

    #[test]
    fn home_and_ssh_permissions() {
        let passwd = ("/etc/passwd", "ops:x:@UID@:1000::/home/ops:/bin/bash\n");
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap();
        let passwd = (passwd.0, passwd.1.replace("@UID@", &uid.to_string()));
        let shadow = ("/etc/shadow", "ops:$y$x:19800:1:365:7:30::\n");
        let (d, v) = root(&[
            (passwd.0, passwd.1.as_str()),
            shadow,
            ("/home/ops/.ssh/authorized_keys", "ssh-ed25519 AAAA"),
        ]);
        let set = |p: &str, m: u32| {
            std::fs::set_permissions(d.path().join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        set("home/ops", 0o750);
        set("home/ops/.ssh", 0o700);
        set("home/ops/.ssh/authorized_keys", 0o600);
        let home = r#"{ kind = "login_accounts", rule = "home_permissions" }"#;
        let ssh = r#"{ kind = "login_accounts", rule = "ssh_dir_permissions" }"#;
        assert_eq!(run(&v, home).status, Status::Pass);
        assert_eq!(run(&v, ssh).status, Status::Pass, "{:?}", run(&v, ssh));
        set("home/ops", 0o755);
        set("home/ops/.ssh/authorized_keys", 0o644);
        let v = crate::host::HostView::root(d.path()).unwrap();
        let o = run(&v, home);
        assert!(
            o.message.contains("/home/ops (home of ops): 0755"),
            "{}",
            o.message
        );
        assert!(
            run(&v, ssh)
                .message
                .contains("authorized_keys (SSH file of ops): 0644")
        );
    }
}
