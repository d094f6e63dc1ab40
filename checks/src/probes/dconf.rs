//! A GNOME setting made by the system administrator through dconf: the
//! keyfiles under /etc/dconf/db/NAME.d/ of the system databases that the
//! user profile (/etc/dconf/profile/user) reads, locked under
//! NAME.d/locks/ so that users cannot change it, and compiled (`dconf
//! update`) after the last keyfile changed, because GNOME reads only the
//! compiled database.

use std::time::SystemTime;

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use crate::expect::Expect;
use crate::host::HostView;
use crate::parse::ini;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DconfProbe {
    /// The key's path, e.g. `org/gnome/desktop/session/idle-delay`.
    key: String,
    /// GNOME's schema default, used when no system database sets the key.
    #[serde(default)]
    default: Option<String>,
    expect: Expect,
    /// The key must be locked (default true): a value users can change is
    /// a preference, not a control.
    #[serde(default = "yes")]
    locked: bool,
}

fn yes() -> bool {
    true
}

/// A GVariant text value without its type annotation or quotes
/// (`uint32 900` → `900`, `'nothing'` → `nothing`).
pub(crate) fn plain_value(v: &str) -> String {
    let mut v = v.trim();
    for prefix in [
        "uint32 ", "int32 ", "uint64 ", "int64 ", "uint16 ", "int16 ", "byte ", "double ",
    ] {
        if let Some(rest) = v.strip_prefix(prefix) {
            v = rest.trim();
        }
    }
    v.trim_matches(|c| c == '\'' || c == '"').to_string()
}

/// The system databases the user profile names, in lookup order.
fn system_dbs(profile: &str) -> Vec<String> {
    profile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("system-db:"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .collect()
}

impl Probe for DconfProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let (dir, name) = self.key.rsplit_once('/').unwrap_or(("", &self.key));
        let expected = format!(
            "{} {}{}",
            self.key,
            self.expect.describe(ctx.params),
            if self.locked { ", locked" } else { "" }
        );
        let dbs = match host_try!(ctx.read("/etc/dconf/profile/user"), sources) {
            Some(f) => {
                sources.push(f.source());
                system_dbs(&f.text())
            }
            None => {
                sources.push(HostView::absent_source("/etc/dconf/profile/user"));
                Vec::new()
            }
        };
        let mut value: Option<(String, crate::result::Source)> = None;
        let mut lock = None;
        let mut stale = Vec::new();
        for db in &dbs {
            let d = format!("/etc/dconf/db/{db}.d");
            let Some(entries) = host_try!(ctx.host.read_dir(&d), sources) else {
                continue;
            };
            sources.push(HostView::dir_source(&d, &entries));
            let mut newest: Option<SystemTime> = None;
            let mut db_value = None;
            for e in entries.iter().filter(|e| !e.is_dir) {
                let Some(f) = host_try!(ctx.read(&e.path), sources) else {
                    continue;
                };
                if let Some(m) = host_try!(ctx.host.metadata(&e.path), sources) {
                    newest = newest.max(m.modified);
                }
                for entry in ini::parse(&f.text()) {
                    if entry.section.trim_matches('/') == dir && entry.key == name {
                        // Later files override earlier ones within a database.
                        db_value = Some((plain_value(&entry.value), f.source_at(entry.line)));
                    }
                }
            }
            if let Some(locks) = host_try!(ctx.host.read_dir(&format!("{d}/locks")), sources) {
                for e in locks.iter().filter(|e| !e.is_dir) {
                    if let Some(f) = host_try!(ctx.read(&e.path), sources) {
                        for (i, l) in f.text().lines().enumerate() {
                            if l.trim().trim_start_matches('/') == self.key && lock.is_none() {
                                lock = Some(f.source_at(i as u32 + 1));
                            }
                        }
                    }
                }
            }
            if db_value.is_some() || lock.is_some() {
                let compiled = format!("/etc/dconf/db/{db}");
                match host_try!(ctx.host.metadata(&compiled), sources) {
                    Some(m) if m.modified >= newest => {}
                    Some(_) => {
                        stale.push(format!("{compiled} is older than {d}: run `dconf update`"))
                    }
                    None => stale.push(format!("{compiled} is missing: run `dconf update`")),
                }
            }
            if value.is_none() {
                value = db_value;
            }
        }
        let (observed, how) = match (&value, &self.default) {
            (Some((v, at)), _) => {
                sources.push(at.clone());
                (
                    v.clone(),
                    format!("set in {}:{}", at.path, at.line.unwrap_or(0)),
                )
            }
            (None, Some(d)) => (
                d.clone(),
                "GNOME's default; no system database sets it".to_string(),
            ),
            (None, None) => {
                return Outcome::fail(format!(
                    "{} is not set in any system dconf database ({})",
                    self.key,
                    if dbs.is_empty() {
                        "the user profile names none".to_string()
                    } else {
                        dbs.join(", ")
                    }
                ))
                .expected(expected)
                .observed("not set")
                .sources(sources);
            }
        };
        let ok = match self.expect.judge(&observed, ctx.params) {
            Ok(ok) => ok,
            Err(e) => return Outcome::error(format!("{}: {e}", self.key)).sources(sources),
        };
        let mut problems = Vec::new();
        if !ok {
            problems.push(format!("{} is {observed} ({how})", self.key));
        }
        if self.locked {
            match &lock {
                Some(at) => sources.push(at.clone()),
                None => problems.push(format!(
                    "{} is not locked, so users can change it",
                    self.key
                )),
            }
        }
        problems.extend(stale);
        let observed_text = format!(
            "{observed} ({how}){}",
            if lock.is_some() {
                ", locked"
            } else {
                ", not locked"
            }
        );
        if problems.is_empty() {
            Outcome::pass(format!("{} is {observed_text}", self.key))
                .expected(expected)
                .observed(observed_text)
                .sources(sources)
        } else {
            Outcome::fail(problems.join("; "))
                .expected(expected)
                .observed(observed_text)
                .sources(sources)
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }

    fn validate(&self) -> Result<(), String> {
        if !self.key.contains('/') || self.key.starts_with('/') || self.key.ends_with('/') {
            return Err(format!(
                "`key` is a dconf path like org/gnome/desktop/session/idle-delay, got `{}`",
                self.key
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::root;
    use super::super::testing::run;
    use crate::result::Status;

    const P: &str = r#"{ kind = "dconf", key = "org/gnome/desktop/session/idle-delay", default = "300", expect = { between = [1, 900] } }"#;

    #[test]
    fn a_locked_compiled_setting_passes_and_each_gap_fails() {
        let profile = ("/etc/dconf/profile/user", "user-db:user\nsystem-db:local\n");
        let key = (
            "/etc/dconf/db/local.d/00-screensaver",
            "[org/gnome/desktop/session]\nidle-delay=uint32 600\n",
        );
        let lock = (
            "/etc/dconf/db/local.d/locks/screensaver",
            "/org/gnome/desktop/session/idle-delay\n",
        );
        let (d, view) = root(&[profile, key, lock]);
        std::fs::write(d.path().join("etc/dconf/db/local"), b"compiled").unwrap();
        let o = run(&view, P);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(o.observed.unwrap().starts_with("600"));

        let (_d, view) = root(&[profile, key, lock]);
        let o = run(&view, P);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("dconf update"), "{}", o.message);

        let (d, view) = root(&[profile, key]);
        std::fs::write(d.path().join("etc/dconf/db/local"), b"compiled").unwrap();
        assert!(run(&view, P).message.contains("not locked"));

        let (d, view) = root(&[
            profile,
            (
                "/etc/dconf/db/local.d/00",
                "[org/gnome/desktop/session]\nidle-delay=uint32 0\n",
            ),
            lock,
        ]);
        std::fs::write(d.path().join("etc/dconf/db/local"), b"compiled").unwrap();
        assert_eq!(run(&view, P).status, Status::Fail);
    }

    #[test]
    fn values_lose_their_type_annotations() {
        assert_eq!(super::plain_value("uint32 900"), "900");
        assert_eq!(super::plain_value("'nothing'"), "nothing");
        assert_eq!(super::plain_value("true"), "true");
    }
}
