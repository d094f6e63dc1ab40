//! A setting of a systemd configuration file (logind.conf, journald.conf,
//! timesyncd.conf…) with its drop-ins, merged as systemd merges them: the
//! main file from /etc (or the vendor copy under /usr/lib), then every
//! `NAME.conf.d/*.conf` sorted by file name across /etc, /run and /usr/lib
//! (an earlier directory hides a same-named file), the last assignment
//! winning.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::expect::Expect;
use crate::host::{FileData, HostError, HostView};
use crate::parse::ini::{self, IniEntry};
use crate::result::Source;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdConfProbe {
    /// File name under /etc/systemd, e.g. `logind.conf`.
    file: String,
    /// Section, e.g. `Login`.
    section: String,
    key: String,
    expect: Expect,
    #[serde(default)]
    default: Option<String>,
}

/// The merged assignments of a systemd configuration file, in order.
pub(crate) fn merged(
    host: &HostView,
    file: &str,
    sources: &mut Vec<Source>,
) -> Result<Vec<(IniEntry, Arc<FileData>)>, HostError> {
    let mut out = Vec::new();
    let mains = [
        format!("/etc/systemd/{file}"),
        format!("/usr/lib/systemd/{file}"),
        format!("/lib/systemd/{file}"),
    ];
    let mut found_main = false;
    for main in &mains {
        if let Some(f) = host.read(main)? {
            sources.push(f.source());
            for e in ini::parse(&f.text()) {
                out.push((e, f.clone()));
            }
            found_main = true;
            break;
        }
    }
    if !found_main {
        sources.push(HostView::absent_source(&mains[0]));
    }
    let dirs: Vec<String> = [
        "/etc/systemd",
        "/run/systemd",
        "/usr/local/lib/systemd",
        "/usr/lib/systemd",
        "/lib/systemd",
    ]
    .iter()
    .map(|d| format!("{d}/{file}.d"))
    .collect();
    let dir_refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    for f in drop_ins(host, &dir_refs, "*.conf", sources)? {
        sources.push(f.source());
        for e in ini::parse(&f.text()) {
            out.push((e, f.clone()));
        }
    }
    Ok(out)
}

/// The effective value of `section.key` (an empty assignment resets it).
pub(crate) fn effective<'a>(
    entries: &'a [(IniEntry, Arc<FileData>)],
    section: &str,
    key: &str,
) -> Option<&'a (IniEntry, Arc<FileData>)> {
    let last = entries
        .iter()
        .rev()
        .find(|(e, _)| e.section == section && e.key == key)?;
    if last.0.value.is_empty() {
        None
    } else {
        Some(last)
    }
}

impl Probe for SystemdConfProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let entries = host_try!(merged(ctx.host, &self.file, &mut sources), sources);
        match (effective(&entries, &self.section, &self.key), &self.default) {
            (Some((e, f)), _) => {
                sources.push(f.source_at(e.line));
                ctx.judge(
                    &format!("{}= ({}:{})", self.key, f.path, e.line),
                    &self.expect,
                    &e.value,
                    sources,
                )
            }
            (None, Some(d)) => ctx.judge(
                &format!("{}= (not set; default)", self.key),
                &self.expect,
                d,
                sources,
            ),
            (None, None) => Outcome::fail(format!(
                "{}= is not set in [{}] of {} or its drop-ins",
                self.key, self.section, self.file
            ))
            .expected(self.expect.describe(ctx.params))
            .observed("not set")
            .sources(sources),
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }

    fn validate(&self) -> Result<(), String> {
        if self.file.contains('/') {
            return Err(format!(
                "`file` is a name under /etc/systemd such as `logind.conf`, not a path: `{}`",
                self.file
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "systemd_conf", file = "logind.conf", section = "Login", key = "StopIdleSessionSec", expect = { between = [1, { param = "session_timeout_seconds" }] } }"#;

    #[test]
    fn drop_ins_override_in_name_order_and_etc_hides_vendor() {
        let o = run_files(
            &[
                (
                    "/etc/systemd/logind.conf",
                    "[Login]\nStopIdleSessionSec=infinity\n",
                ),
                (
                    "/usr/lib/systemd/logind.conf.d/10-vendor.conf",
                    "[Login]\nStopIdleSessionSec=3600\n",
                ),
                (
                    "/etc/systemd/logind.conf.d/20-idle.conf",
                    "[Login]\nStopIdleSessionSec=15min\n",
                ),
                (
                    "/usr/lib/systemd/logind.conf.d/20-idle.conf",
                    "[Login]\nStopIdleSessionSec=99999\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed.as_deref(), Some("15min"));
    }

    #[test]
    fn unset_and_wrong_section_fail() {
        let o = run_files(
            &[(
                "/etc/systemd/logind.conf",
                "[Login]\n#StopIdleSessionSec=900\n[Other]\nStopIdleSessionSec=900\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed.as_deref(), Some("not set"));
        let o = run_files(
            &[(
                "/etc/systemd/logind.conf",
                "[Login]\nStopIdleSessionSec=infinity\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Fail, "infinity never times out: {o:?}");
        let o = run_files(
            &[(
                "/etc/systemd/logind.conf",
                "[Login]\nStopIdleSessionSec=soon\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Error, "{o:?}");
    }

    #[test]
    fn empty_assignment_resets() {
        let o = run_files(
            &[
                (
                    "/etc/systemd/logind.conf",
                    "[Login]\nStopIdleSessionSec=600\n",
                ),
                (
                    "/etc/systemd/logind.conf.d/99-reset.conf",
                    "[Login]\nStopIdleSessionSec=\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Fail);
    }
}
