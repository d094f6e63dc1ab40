//! System logging: journald keeps logs across reboots, and logs leave the
//! host (rsyslog/syslog-ng forwarding or systemd-journal-upload), so that an
//! intruder with root on the host cannot erase the record.

use serde::Deserialize;

use super::systemd_conf;
use super::systemd_unit::unit_state;
use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::host::HostView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// journald `Storage=persistent`, or `auto` with /var/log/journal present.
    JournaldPersistent,
    /// Logs are forwarded to another host.
    Forwarding,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingProbe {
    rule: Rule,
}

impl Probe for LoggingProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        match self.rule {
            Rule::JournaldPersistent => {
                let entries = host_try!(
                    systemd_conf::merged(ctx.host, "journald.conf", &mut sources),
                    sources
                );
                let (storage, at) = match systemd_conf::effective(&entries, "Journal", "Storage") {
                    Some((e, f)) => {
                        sources.push(f.source_at(e.line));
                        (
                            e.value.to_ascii_lowercase(),
                            format!("{}:{}", f.path, e.line),
                        )
                    }
                    None => ("auto".to_string(), "default".to_string()),
                };
                let dir = host_try!(ctx.host.metadata("/var/log/journal"), sources)
                    .is_some_and(|m| m.is_dir);
                if !dir {
                    sources.push(HostView::absent_source("/var/log/journal"));
                }
                let ok = storage == "persistent" || (storage == "auto" && dir);
                let observed = format!(
                    "Storage={storage} ({at}), /var/log/journal {}",
                    if dir { "present" } else { "absent" }
                );
                Outcome::verdict(
                    ok,
                    if ok {
                        format!("journald keeps logs on disk: {observed}")
                    } else {
                        format!("journald logs are lost at reboot: {observed}")
                    },
                )
                .expected("Storage=persistent, or auto with /var/log/journal")
                .observed(observed)
                .sources(sources)
            }
            Rule::Forwarding => {
                let mut found = Vec::new();
                // rsyslog: legacy `*.* @host` / `@@host`, or RainerScript omfwd/omrelp actions.
                let mut files = Vec::new();
                if let Some(f) = host_try!(ctx.read("/etc/rsyslog.conf"), sources) {
                    files.push(f);
                }
                files.extend(host_try!(
                    drop_ins(ctx.host, &["/etc/rsyslog.d"], "*.conf", &mut sources),
                    sources
                ));
                for f in &files {
                    sources.push(f.source());
                    for (i, line) in f.text().lines().enumerate() {
                        let t = line.trim();
                        if t.starts_with('#') {
                            continue;
                        }
                        let legacy = t
                            .split_whitespace()
                            .nth(1)
                            .is_some_and(|a| a.starts_with('@') && a.len() > 1);
                        let action = t.contains("omfwd") || t.contains("omrelp");
                        if legacy || action {
                            found.push((format!("rsyslog: {t}"), f.source_at(i as u32 + 1)));
                        }
                    }
                }
                // syslog-ng network destinations.
                let mut ng = Vec::new();
                if let Some(f) = host_try!(ctx.read("/etc/syslog-ng/syslog-ng.conf"), sources) {
                    ng.push(f);
                }
                ng.extend(host_try!(
                    drop_ins(ctx.host, &["/etc/syslog-ng/conf.d"], "*.conf", &mut sources),
                    sources
                ));
                for f in &ng {
                    sources.push(f.source());
                    for (i, line) in f.text().lines().enumerate() {
                        let t = line.trim();
                        if !t.starts_with('#')
                            && t.contains("destination")
                            && ["network(", "tcp(", "udp(", "syslog("]
                                .iter()
                                .any(|k| t.contains(k))
                        {
                            found.push((format!("syslog-ng: {t}"), f.source_at(i as u32 + 1)));
                        }
                    }
                }
                // systemd-journal-upload enabled with a URL.
                let (_, state) = host_try!(
                    unit_state(
                        ctx.host,
                        &["systemd-journal-upload.service".to_string()],
                        &mut sources
                    ),
                    sources
                );
                if state.is_enabled() {
                    let entries = host_try!(
                        systemd_conf::merged(ctx.host, "journal-upload.conf", &mut sources),
                        sources
                    );
                    if let Some((e, f)) = systemd_conf::effective(&entries, "Upload", "URL") {
                        found.push((
                            format!("systemd-journal-upload to {}", e.value),
                            f.source_at(e.line),
                        ));
                    }
                }
                let list: Vec<String> = found.iter().map(|(t, _)| t.clone()).collect();
                sources.extend(found.into_iter().map(|(_, s)| s));
                Outcome::verdict(!list.is_empty(), if list.is_empty() { "logs are kept only on this host: no rsyslog/syslog-ng forwarding or journal upload configured".to_string() } else { format!("logs are forwarded: {}", list.join("; ")) })
                    .expected("logs forwarded to a remote collector")
                    .observed(if list.is_empty() { "no forwarding".into() } else { list.join("; ") })
                    .sources(sources)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run, run_files};
    use crate::result::Status;

    #[test]
    fn journald_persistence() {
        let p = r#"{ kind = "logging", rule = "journald_persistent" }"#;
        assert_eq!(
            run_files(
                &[(
                    "/etc/systemd/journald.conf",
                    "[Journal]\nStorage=persistent\n"
                )],
                p
            )
            .status,
            Status::Pass
        );
        assert_eq!(
            run_files(
                &[(
                    "/etc/systemd/journald.conf",
                    "[Journal]\nStorage=volatile\n"
                )],
                p
            )
            .status,
            Status::Fail
        );
        let (d, view) = root(&[("/etc/systemd/journald.conf", "[Journal]\n#Storage=auto\n")]);
        assert_eq!(run(&view, p).status, Status::Fail);
        std::fs::create_dir_all(d.path().join("var/log/journal")).unwrap();
        assert_eq!(run(&view, p).status, Status::Pass);
    }

    #[test]
    fn forwarding_in_rsyslog_and_syslog_ng() {
        let p = r#"{ kind = "logging", rule = "forwarding" }"#;
        assert_eq!(
            run_files(
                &[(
                    "/etc/rsyslog.conf",
                    "*.* /var/log/syslog\n# *.* @@old.example\n"
                )],
                p
            )
            .status,
            Status::Fail
        );
        let o = run_files(
            &[
                (
                    "/etc/rsyslog.conf",
                    "$IncludeConfig /etc/rsyslog.d/*.conf\n",
                ),
                (
                    "/etc/rsyslog.d/90-remote.conf",
                    "*.* @@logs.corp.example:6514\n",
                ),
            ],
            p,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.sources
                .iter()
                .any(|s| s.path == "/etc/rsyslog.d/90-remote.conf" && s.line == Some(1))
        );
        assert_eq!(
            run_files(
                &[(
                    "/etc/rsyslog.d/remote.conf",
                    "action(type=\"omfwd\" target=\"10.0.0.5\" port=\"514\" protocol=\"tcp\")\n"
                )],
                p
            )
            .status,
            Status::Pass
        );
        assert_eq!(
            run_files(
                &[(
                    "/etc/syslog-ng/conf.d/remote.conf",
                    "destination d_remote { network(\"logs.example\" transport(\"tls\")); };\n"
                )],
                p
            )
            .status,
            Status::Pass
        );
    }
}
