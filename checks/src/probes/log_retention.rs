//! How long records are kept: the rotation of a log file by logrotate
//! (rotations kept × rotation period, capped by `maxage`), the journal's
//! `MaxRetentionSec`, and what auditd does when its log is full.

use serde::Deserialize;

use super::systemd_conf::{effective, merged};
use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::expect::{Num, parse_duration_secs};
use crate::host::{FileData, HostView};
use crate::result::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// The first of `files` that exists is kept `min_days` by logrotate.
    Logrotate,
    /// The journal keeps entries `min_days` (`MaxRetentionSec`).
    Journald,
    /// auditd keeps its logs when full, or rotates through `min_logs`.
    Auditd,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRetentionProbe {
    rule: Rule,
    /// Log files (logrotate rule), the first that exists is judged.
    #[serde(default)]
    files: Vec<String>,
    /// Fewest days of records kept (logrotate, journald).
    #[serde(default)]
    min_days: Option<Num>,
    /// Fewest auditd log files when it rotates.
    #[serde(default)]
    min_logs: Option<Num>,
}

/// Rotation settings that apply to one log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rotation {
    /// Days per rotation (daily 1, weekly 7, monthly 30, yearly 365).
    pub period_days: Option<f64>,
    /// `rotate N`: rotated files kept.
    pub rotate: Option<i64>,
    /// `maxage N`: rotated files older than N days are removed.
    pub maxage: Option<i64>,
    /// `size` without a period: rotated by size alone.
    pub size_only: bool,
    /// file:line of the block (or of the global settings).
    pub at: Option<Source>,
}

impl Rotation {
    fn apply(&mut self, words: &[&str]) {
        match words {
            ["hourly"] => self.period_days = Some(1.0 / 24.0),
            ["daily"] => self.period_days = Some(1.0),
            ["weekly", ..] => self.period_days = Some(7.0),
            ["monthly"] => self.period_days = Some(30.0),
            ["yearly"] => self.period_days = Some(365.0),
            ["rotate", n] => self.rotate = n.parse().ok(),
            ["maxage", n] => self.maxage = n.parse().ok(),
            ["size", _] => self.size_only = true,
            _ => {}
        }
    }

    /// Days of records kept, or why it cannot be said.
    pub fn days(&self) -> Result<f64, String> {
        let rotate = self.rotate.unwrap_or(0);
        let Some(period) = self.period_days else {
            if self.size_only {
                return Err(
                    "rotated by size only, so how many days the kept files cover is unknown".into(),
                );
            }
            return Err("no rotation period (daily, weekly, monthly or yearly)".into());
        };
        let mut days = (rotate.max(0) as f64 + 1.0) * period;
        if let Some(m) = self.maxage {
            days = days.min(m as f64);
        }
        Ok(days)
    }
}

/// The rotation logrotate applies to `log`, from the main file (globals,
/// `include`s) and its blocks; `None` when no block names it.
pub fn rotation_of(files: &[std::sync::Arc<FileData>], log: &str) -> Option<Rotation> {
    let mut globals = Rotation::default();
    let mut found = None;
    for f in files {
        let text = f.text();
        let mut in_block: Option<(bool, Rotation)> = None;
        let mut pending_paths: Vec<String> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some((matches, rot)) = &mut in_block {
                if line.starts_with('}') {
                    if *matches && found.is_none() {
                        found = Some(rot.clone());
                    }
                    in_block = None;
                    continue;
                }
                if matches!(
                    line,
                    "postrotate" | "prerotate" | "firstaction" | "lastaction" | "preremove"
                ) {
                    continue;
                }
                rot.apply(&line.split_whitespace().collect::<Vec<_>>());
                continue;
            }
            if let Some(head) = line.strip_suffix('{') {
                pending_paths.extend(
                    head.split_whitespace()
                        .map(|p| p.trim_matches('"').to_string()),
                );
                let matches = pending_paths
                    .iter()
                    .any(|p| crate::parse::glob_match(p, log));
                let mut rot = globals.clone();
                rot.at = Some(f.source_at(i as u32 + 1));
                in_block = Some((matches, rot));
                pending_paths.clear();
                continue;
            }
            if line.starts_with('/') {
                // A path list spread over lines before the `{`.
                pending_paths.extend(
                    line.split_whitespace()
                        .map(|p| p.trim_matches('"').to_string()),
                );
                continue;
            }
            globals.apply(&line.split_whitespace().collect::<Vec<_>>());
            globals.at = Some(f.source_at(i as u32 + 1));
        }
    }
    found
}

impl LogRetentionProbe {
    fn logrotate(&self, ctx: &Ctx<'_>, min: i64) -> Outcome {
        let mut sources = Vec::new();
        let mut log = None;
        for f in &self.files {
            if host_try!(ctx.host.exists(f), sources) {
                log = Some(f.clone());
                break;
            }
            sources.push(HostView::absent_source(f));
        }
        let Some(log) = log else {
            return Outcome::not_applicable(format!(
                "none of {} exists: no such log on this host",
                self.files.join(", ")
            ))
            .sources(sources);
        };
        let mut files = Vec::new();
        match host_try!(ctx.read("/etc/logrotate.conf"), sources) {
            Some(f) => files.push(f),
            None => sources.push(HostView::absent_source("/etc/logrotate.conf")),
        }
        files.extend(host_try!(
            drop_ins(ctx.host, &["/etc/logrotate.d"], "*", &mut sources),
            sources
        ));
        for f in &files {
            sources.push(f.source());
        }
        let expected = format!("{log} kept at least {min} days");
        let Some(rot) = rotation_of(&files, &log) else {
            return Outcome::pass(format!(
                "{log} is not rotated by logrotate: its records are kept until removed by hand"
            ))
            .expected(expected)
            .observed("not rotated")
            .sources(sources);
        };
        if let Some(at) = &rot.at {
            sources.push(at.clone());
        }
        let at = rot
            .at
            .as_ref()
            .map(|a| format!(" ({}:{})", a.path, a.line.unwrap_or(0)))
            .unwrap_or_default();
        match rot.days() {
            Ok(days) => {
                let observed = format!(
                    "rotate {} × {} days{} = {days:.0} days{at}",
                    rot.rotate.unwrap_or(0),
                    rot.period_days.unwrap_or(0.0),
                    rot.maxage
                        .map(|m| format!(", maxage {m}"))
                        .unwrap_or_default()
                );
                Outcome::verdict(days >= min as f64, format!("{log}: {observed}"))
                    .expected(expected)
                    .observed(observed)
                    .sources(sources)
            }
            Err(why) => Outcome::fail(format!("{log}{at}: {why}"))
                .expected(expected)
                .observed(why)
                .sources(sources),
        }
    }

    fn journald(&self, ctx: &Ctx<'_>, min: i64) -> Outcome {
        let mut sources = Vec::new();
        let entries = host_try!(merged(ctx.host, "journald.conf", &mut sources), sources);
        let expected = format!(
            "journal entries kept at least {min} days (MaxRetentionSec unset, 0, or at least that)"
        );
        let size = effective(&entries, "Journal", "SystemMaxUse")
            .map(|(e, _)| format!("; size limit SystemMaxUse={}", e.value))
            .unwrap_or_else(|| {
                "; size limit: journald's default (10% of the file system, at most 4G)".into()
            });
        match effective(&entries, "Journal", "MaxRetentionSec") {
            None => Outcome::pass(format!(
                "MaxRetentionSec is not set: entries are removed for space only{size}"
            ))
            .expected(expected)
            .observed(format!("not set{size}"))
            .sources(sources),
            Some((e, f)) => {
                sources.push(f.source_at(e.line));
                let secs = if e.value.trim() == "0" {
                    Some(0)
                } else {
                    parse_duration_secs(&e.value)
                };
                let Some(secs) = secs else {
                    return Outcome::error(format!(
                        "{}:{}: MaxRetentionSec={} is not a duration",
                        f.path, e.line, e.value
                    ))
                    .sources(sources);
                };
                let observed = format!("MaxRetentionSec={} ({}:{}){size}", e.value, f.path, e.line);
                Outcome::verdict(secs == 0 || secs >= min * 86_400, observed.clone())
                    .expected(expected)
                    .observed(observed)
                    .sources(sources)
            }
        }
    }

    fn auditd(&self, ctx: &Ctx<'_>, min_logs: i64) -> Outcome {
        let path = "/etc/audit/auditd.conf";
        let Some(f) = host_try!(ctx.read(path)) else {
            return Outcome::not_applicable("auditd is not installed (no /etc/audit/auditd.conf): there are no audit records to keep")
                .sources(vec![HostView::absent_source(path)]);
        };
        let mut sources = vec![f.source()];
        let get = |key: &str| {
            f.text()
                .lines()
                .enumerate()
                .filter_map(|(i, l)| {
                    let (k, v) = l.split('#').next()?.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case(key))
                        .then(|| (v.trim().to_ascii_lowercase(), i as u32 + 1))
                })
                .last()
        };
        let expected =
            format!("max_log_file_action keep_logs, or rotate with num_logs at least {min_logs}");
        // auditd's default action is rotate, with num_logs 0 (treated as 1... rotate nothing kept).
        let (action, aline) = get("max_log_file_action").unwrap_or(("rotate".into(), 0));
        if aline > 0 {
            sources.push(f.source_at(aline));
        }
        match action.as_str() {
            "keep_logs" => Outcome::pass(format!("max_log_file_action = keep_logs ({path}:{aline}): full logs are kept"))
                .expected(expected)
                .observed("keep_logs")
                .sources(sources),
            "rotate" => {
                let (n, nline) = get("num_logs").unwrap_or(("0".into(), 0));
                if nline > 0 {
                    sources.push(f.source_at(nline));
                }
                let Ok(n) = n.parse::<i64>() else {
                    return Outcome::error(format!("{path}:{nline}: num_logs = {n} is not a number")).sources(sources);
                };
                let observed = format!("rotate, num_logs = {n}");
                Outcome::verdict(
                    n >= min_logs,
                    format!("max_log_file_action = rotate with num_logs = {n}: the oldest records are deleted after {n} files"),
                )
                .expected(expected)
                .observed(observed)
                .sources(sources)
            }
            other => Outcome::fail(format!(
                "max_log_file_action = {other} ({path}:{aline}): when the log is full, records are {}",
                if other == "suspend" || other == "ignore" || other == "syslog" { "no longer written" } else { "not kept" }
            ))
            .expected(expected)
            .observed(other.to_string())
            .sources(sources),
        }
    }
}

impl Probe for LogRetentionProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let need = |n: &Option<Num>| n.as_ref().map(|n| n.resolve(ctx.params)).transpose();
        match self.rule {
            Rule::Logrotate | Rule::Journald => match need(&self.min_days) {
                Ok(Some(min)) if self.rule == Rule::Logrotate => self.logrotate(ctx, min),
                Ok(Some(min)) => self.journald(ctx, min),
                Ok(None) => Outcome::error("`min_days` is required"),
                Err(e) => Outcome::error(e),
            },
            Rule::Auditd => match need(&self.min_logs) {
                Ok(Some(n)) => self.auditd(ctx, n),
                Ok(None) => Outcome::error("`min_logs` is required"),
                Err(e) => Outcome::error(e),
            },
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.min_days, &self.min_logs])
    }

    fn validate(&self) -> Result<(), String> {
        match self.rule {
            Rule::Logrotate if self.files.is_empty() || self.min_days.is_none() => {
                Err("rule `logrotate` needs `files` and `min_days`".into())
            }
            Rule::Journald if self.min_days.is_none() => {
                Err("rule `journald` needs `min_days`".into())
            }
            Rule::Auditd if self.min_logs.is_none() => Err("rule `auditd` needs `min_logs`".into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const LR: &str = r#"{ kind = "log_retention", rule = "logrotate", files = ["/var/log/syslog", "/var/log/messages"], min_days = 90 }"#;
    const RSYSLOG: &str = "/var/log/syslog\n/var/log/mail.log\n{\n\trotate 4\n\tweekly\n\tmissingok\n\tpostrotate\n\t\t/usr/lib/rsyslog/rsyslog-rotate\n\tendscript\n}\n";

    #[test]
    fn rotations_times_period_against_the_minimum() {
        let conf = (
            "/etc/logrotate.conf",
            "weekly\nrotate 4\ncreate\ninclude /etc/logrotate.d\n",
        );
        let o = run_files(
            &[
                conf,
                ("/etc/logrotate.d/rsyslog", RSYSLOG),
                ("/var/log/syslog", ""),
            ],
            LR,
        );
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(o.observed.unwrap().contains("35 days"));
        let long = RSYSLOG.replace("rotate 4\n\tweekly", "rotate 13\n\tmonthly");
        let o = run_files(
            &[
                conf,
                ("/etc/logrotate.d/rsyslog", &long),
                ("/var/log/syslog", ""),
            ],
            LR,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let capped = long.replace("missingok", "maxage 30");
        assert_eq!(
            run_files(
                &[
                    conf,
                    ("/etc/logrotate.d/rsyslog", &capped),
                    ("/var/log/syslog", "")
                ],
                LR
            )
            .status,
            Status::Fail
        );
        assert_eq!(run_files(&[conf], LR).status, Status::NotApplicable);
        let size = "/var/log/messages {\n size 100M\n rotate 5\n}\n";
        let o = run_files(
            &[("/etc/logrotate.d/syslog", size), ("/var/log/messages", "")],
            LR,
        );
        assert!(o.message.contains("size only"), "{}", o.message);
    }

    #[test]
    fn journald_and_auditd() {
        let j = r#"{ kind = "log_retention", rule = "journald", min_days = 90 }"#;
        assert_eq!(
            run_files(
                &[(
                    "/etc/systemd/journald.conf",
                    "[Journal]\nStorage=persistent\n"
                )],
                j
            )
            .status,
            Status::Pass
        );
        let o = run_files(
            &[(
                "/etc/systemd/journald.conf.d/r.conf",
                "[Journal]\nMaxRetentionSec=1month\n",
            )],
            j,
        );
        assert_eq!(o.status, Status::Fail, "{o:?}");
        let a = r#"{ kind = "log_retention", rule = "auditd", min_logs = 5 }"#;
        let conf = |t: &'static str| [("/etc/audit/auditd.conf", t)];
        assert_eq!(
            run_files(&conf("max_log_file_action = keep_logs\n"), a).status,
            Status::Pass
        );
        assert_eq!(
            run_files(&conf("max_log_file_action = ROTATE\nnum_logs = 5\n"), a).status,
            Status::Pass
        );
        assert_eq!(
            run_files(&conf("max_log_file_action = ROTATE\nnum_logs = 2\n"), a).status,
            Status::Fail
        );
        assert_eq!(
            run_files(&conf("max_log_file_action = ignore\n"), a).status,
            Status::Fail
        );
        assert_eq!(run_files(&[], a).status, Status::NotApplicable);
    }
}
