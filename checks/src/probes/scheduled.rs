//! A job that runs on a schedule (an AIDE check, a backup) and, where the
//! host records it, how long ago it last ran.
//!
//! A job is found as an enabled systemd timer whose service runs the
//! command (or a timer named in the pack), a cron entry that runs it
//! (/etc/crontab, /etc/cron.d, the per-user crontabs and the
//! /etc/cron.{hourly,daily,weekly,monthly} scripts, which count only while
//! a cron daemon is enabled), or an enabled service that runs it as a
//! daemon (a Bacula or Bareos file daemon, driven by its director). The
//! last run is the newest of the timers' stamps
//! (/var/lib/systemd/timers/stamp-NAME, kept for `Persistent=` timers) and
//! the state files the pack names.

use std::time::SystemTime;

use serde::Deserialize;

use super::systemd_unit::{enabled_unit, unit_file, unit_files, unit_state};
use super::{Ctx, Outcome, Probe, host_try};
use crate::expect::{Num, Pattern};
use crate::host::{HostError, HostView};
use crate::result::Source;

const CRON_FILES: [&str; 2] = ["/etc/crontab", "/etc/anacrontab"];
const CRON_DIRS: [&str; 3] = ["/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron"];
const CRON_SCRIPT_DIRS: [&str; 4] = [
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
];
const CRON_DAEMONS: [&str; 4] = [
    "cron.service",
    "crond.service",
    "cronie.service",
    "anacron.timer",
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledProbe {
    /// What the job is, for messages ("a backup job").
    what: String,
    /// What the job runs, matched against cron lines, cron script names and
    /// contents, and the `ExecStart=` of timers' services.
    command: Pattern,
    /// Timers that count whatever their service runs.
    #[serde(default)]
    timers: Vec<String>,
    /// Services that run the job as a daemon; enabled counts as scheduled.
    #[serde(default)]
    services: Vec<String>,
    /// The last run must be at most this many days ago.
    #[serde(default)]
    max_age_days: Option<Num>,
    /// Files whose modification time records a successful run.
    #[serde(default)]
    state_files: Vec<String>,
}

/// A job found: how it is scheduled, its timer (for the stamp), and where.
struct Job {
    how: String,
    timer: Option<String>,
    source: Source,
}

impl ScheduledProbe {
    fn timers(&self, ctx: &Ctx<'_>, sources: &mut Vec<Source>) -> Result<Vec<Job>, HostError> {
        let mut jobs = Vec::new();
        for e in unit_files(ctx.host, ".timer")? {
            let named = self.timers.contains(&e.name);
            let Some(timer) = ctx.read(&e.path)? else {
                continue;
            };
            let service = crate::parse::ini::parse(&timer.text())
                .into_iter()
                .find(|x| x.section == "Timer" && x.key == "Unit")
                .map(|x| x.value)
                .unwrap_or_else(|| e.name.replace(".timer", ".service"));
            let runs = unit_file(ctx.host, &service)?.and_then(|f| {
                crate::parse::ini::parse(&f.text())
                    .into_iter()
                    .find(|x| {
                        x.section == "Service"
                            && x.key == "ExecStart"
                            && self.command.0.is_match(&x.value)
                    })
                    .map(|x| (x.value.clone(), f.source_at(x.line)))
            });
            if !named && runs.is_none() {
                continue;
            }
            if enabled_unit(ctx.host, &e.name, sources)?.is_none() {
                continue;
            }
            let (how, source) = match runs {
                Some((cmd, at)) => (format!("timer {} runs `{cmd}`", e.name), at),
                None => (format!("timer {}", e.name), timer.source()),
            };
            jobs.push(Job {
                how,
                timer: Some(e.name.clone()),
                source,
            });
        }
        Ok(jobs)
    }

    fn cron(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
        unreadable: &mut Vec<String>,
    ) -> Result<Vec<Job>, HostError> {
        let mut files: Vec<String> = CRON_FILES.iter().map(|s| s.to_string()).collect();
        let mut scripts = Vec::new();
        for dir in CRON_DIRS.iter().chain(&CRON_SCRIPT_DIRS) {
            match ctx.host.read_dir(dir) {
                Ok(Some(entries)) => {
                    for e in entries
                        .iter()
                        .filter(|e| !e.is_dir && !e.name.starts_with('.'))
                    {
                        if CRON_SCRIPT_DIRS.contains(dir) {
                            scripts.push(e.path.clone());
                        } else {
                            files.push(e.path.clone());
                        }
                    }
                }
                Ok(None) => {}
                // The spool is root's alone; a scan without privilege cannot see it.
                Err(HostError::Io { .. }) => unreadable.push(dir.to_string()),
                Err(e) => return Err(e),
            }
        }
        let mut jobs = Vec::new();
        for path in files {
            let f = match ctx.read(&path) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(HostError::Io { .. }) => {
                    unreadable.push(path);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (i, line) in f.text().lines().enumerate() {
                let l = line.trim();
                if l.starts_with('#') || l.is_empty() || !self.command.0.is_match(l) {
                    continue;
                }
                jobs.push(Job {
                    how: format!("cron entry `{l}`"),
                    timer: None,
                    source: f.source_at(i as u32 + 1),
                });
            }
        }
        for path in scripts {
            let name = path.rsplit('/').next().unwrap_or("");
            let Some(f) = ctx.read(&path)? else { continue };
            let hit = self.command.0.is_match(name)
                || f.text()
                    .lines()
                    .any(|l| !l.trim_start().starts_with('#') && self.command.0.is_match(l));
            if hit {
                sources.push(f.source());
                jobs.push(Job {
                    how: format!("cron script {path}"),
                    timer: None,
                    source: f.source(),
                });
            }
        }
        Ok(jobs)
    }

    fn last_run(
        &self,
        ctx: &Ctx<'_>,
        jobs: &[Job],
        sources: &mut Vec<Source>,
    ) -> Result<Option<(SystemTime, String)>, HostError> {
        let mut paths: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.timer.as_ref())
            .map(|t| format!("/var/lib/systemd/timers/stamp-{t}"))
            .collect();
        paths.extend(self.state_files.iter().cloned());
        let mut newest: Option<(SystemTime, String)> = None;
        for p in paths {
            match ctx.host.metadata(&p)? {
                Some(m) => {
                    sources.push(Source {
                        kind: crate::result::SourceKind::Metadata,
                        path: p.clone(),
                        sha256: None,
                        line: None,
                    });
                    if let Some(t) = m.modified {
                        if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                            newest = Some((t, p));
                        }
                    }
                }
                None => sources.push(HostView::absent_source(&p)),
            }
        }
        Ok(newest)
    }
}

impl Probe for ScheduledProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let mut unreadable = Vec::new();
        let mut jobs = host_try!(self.timers(ctx, &mut sources), sources);
        let cron_jobs = host_try!(self.cron(ctx, &mut sources, &mut unreadable), sources);
        if !cron_jobs.is_empty() {
            let daemons: Vec<String> = CRON_DAEMONS.iter().map(|s| s.to_string()).collect();
            let (unit, state) = host_try!(unit_state(ctx.host, &daemons, &mut sources), sources);
            if state.is_enabled() {
                jobs.extend(cron_jobs);
            } else if jobs.is_empty() {
                sources.extend(cron_jobs.iter().map(|j| j.source.clone()));
                return Outcome::fail(format!(
                    "{} is in cron ({}), but no cron daemon is enabled ({unit} is {})",
                    self.what,
                    cron_jobs[0].how,
                    state.describe()
                ))
                .expected(format!("{} scheduled", self.what))
                .observed("cron entry without a cron daemon")
                .sources(sources);
            }
        }
        if !self.services.is_empty() {
            let (unit, state) =
                host_try!(unit_state(ctx.host, &self.services, &mut sources), sources);
            if state.is_enabled() {
                jobs.push(Job {
                    how: format!("{unit} runs as a daemon ({})", state.describe()),
                    timer: None,
                    source: HostView::absent_source(&unit),
                });
            }
        }
        let expected = format!("{} scheduled", self.what);
        if jobs.is_empty() {
            if !unreadable.is_empty() {
                return Outcome::error(format!(
                    "no {} found, and {} could not be read (the scan needs root to see every crontab)",
                    self.what,
                    unreadable.join(", ")
                ))
                .sources(sources);
            }
            return Outcome::fail(format!(
                "no enabled timer, cron entry or service runs {}",
                self.what
            ))
            .expected(expected)
            .observed("none")
            .sources(sources);
        }
        for j in &jobs {
            if j.source.kind != crate::result::SourceKind::Absent {
                sources.push(j.source.clone());
            }
        }
        let found = jobs
            .iter()
            .map(|j| j.how.clone())
            .collect::<Vec<_>>()
            .join("; ");
        let Some(max) = &self.max_age_days else {
            return Outcome::pass(found.clone())
                .expected(expected)
                .observed(found)
                .sources(sources);
        };
        let max = match max.resolve(ctx.params) {
            Ok(n) => n,
            Err(e) => return Outcome::error(e).sources(sources),
        };
        let expected = format!("{} last run at most {max} days ago", self.what);
        let Some((when, path)) = host_try!(self.last_run(ctx, &jobs, &mut sources), sources) else {
            return Outcome::not_applicable(format!(
                "{found}: the host keeps no record of its last run (no timer stamp{}); its age is evidenced where the tool reports it",
                if self.state_files.is_empty() { String::new() } else { format!(", none of {}", self.state_files.join(", ")) }
            ))
            .sources(sources);
        };
        let age = SystemTime::now()
            .duration_since(when)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let days = age as f64 / 86_400.0;
        let observed = format!("last run {days:.1} days ago ({path})");
        Outcome::verdict(days <= max as f64, format!("{}: {observed}", self.what))
            .expected(expected)
            .observed(observed)
            .sources(sources)
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.max_age_days])
    }

    fn validate(&self) -> Result<(), String> {
        for u in self.timers.iter().chain(&self.services) {
            super::check_name("unit", u)?;
        }
        if let Some(p) = self.state_files.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("`state_files` entries are absolute, got `{p}`"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run, wants};
    use crate::result::Status;

    const P: &str = r#"{ kind = "scheduled", what = "a backup job", command = '\b(restic|borg)\b', max_age_days = 2 }"#;
    const TIMER: &str =
        "[Timer]\nOnCalendar=daily\nPersistent=true\n[Install]\nWantedBy=timers.target\n";
    const SERVICE: &str = "[Service]\nType=oneshot\nExecStart=/usr/bin/restic backup /srv\n";

    #[test]
    fn an_enabled_timer_with_a_recent_stamp_passes() {
        let (d, view) = root(&[
            ("/etc/systemd/system/backup.timer", TIMER),
            ("/etc/systemd/system/backup.service", SERVICE),
            ("/var/lib/systemd/timers/stamp-backup.timer", ""),
        ]);
        wants(
            d.path(),
            "timers.target",
            "/etc/systemd/system/backup.timer",
        );
        let o = run(&view, P);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(o.observed.unwrap().contains("stamp-backup.timer"));
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(5 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(d.path().join("var/lib/systemd/timers/stamp-backup.timer"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let view = crate::host::HostView::root(d.path()).unwrap();
        assert_eq!(run(&view, P).status, Status::Fail);
    }

    #[test]
    fn a_disabled_timer_or_cron_without_a_daemon_does_not_count() {
        let (_d, view) = root(&[
            ("/etc/systemd/system/backup.timer", TIMER),
            ("/etc/systemd/system/backup.service", SERVICE),
        ]);
        assert_eq!(run(&view, P).status, Status::Fail);
        let (_d, view) = root(&[(
            "/etc/cron.d/borg",
            "0 2 * * * root borg create ::{now} /srv\n",
        )]);
        let o = run(&view, P);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("no cron daemon"), "{}", o.message);
        let (d, view) = root(&[
            (
                "/etc/cron.d/borg",
                "0 2 * * * root borg create ::{now} /srv\n",
            ),
            (
                "/lib/systemd/system/cron.service",
                "[Service]\nExecStart=/usr/sbin/cron -f\n",
            ),
        ]);
        wants(
            d.path(),
            "multi-user.target",
            "/lib/systemd/system/cron.service",
        );
        let o = run(&view, P);
        assert_eq!(o.status, Status::NotApplicable, "{o:?}");
        assert!(o.message.contains("no record of its last run"));
    }
}
