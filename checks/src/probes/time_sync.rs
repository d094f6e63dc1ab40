//! A time synchronisation daemon installed, enabled and configured with at
//! least one time source: chrony, ntpd/ntpsec or systemd-timesyncd.

use serde::Deserialize;

use super::systemd_conf;
use super::systemd_unit::unit_state;
use super::{Ctx, Outcome, Probe, drop_ins, host_try, package};
use crate::host::{HostError, HostView};
use crate::result::Source;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSyncProbe {
    /// Accept systemd-timesyncd relying on its compiled-in fallback servers
    /// when no `NTP=`/`FallbackNTP=` is configured.
    #[serde(default)]
    allow_builtin_servers: bool,
}

struct Daemon {
    name: &'static str,
    packages: &'static [&'static str],
    units: &'static [&'static str],
}

const DAEMONS: [Daemon; 3] = [
    Daemon {
        name: "chrony",
        packages: &["chrony"],
        units: &["chrony.service", "chronyd.service"],
    },
    Daemon {
        name: "ntpd",
        packages: &["ntpsec", "ntp", "openntpd"],
        units: &[
            "ntpsec.service",
            "ntp.service",
            "ntpd.service",
            "openntpd.service",
        ],
    },
    Daemon {
        name: "systemd-timesyncd",
        packages: &["systemd-timesyncd"],
        units: &["systemd-timesyncd.service"],
    },
];

/// Server lines (`server`, `pool`, `peer`) in chrony or ntp configuration,
/// following chrony's `confdir`/`sourcedir`/`include`.
fn ntp_style_servers(
    host: &HostView,
    files: &[&str],
    sources: &mut Vec<Source>,
) -> Result<Vec<(String, Source)>, HostError> {
    let mut out = Vec::new();
    let mut queue: Vec<String> = files.iter().map(|s| s.to_string()).collect();
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        let Some(f) = host.read(&path)? else { continue };
        sources.push(f.source());
        for (i, line) in f.text().lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["server" | "pool" | "peer", host_name, ..] => {
                    out.push((host_name.to_string(), f.source_at(i as u32 + 1)))
                }
                ["confdir" | "sourcedir", dir, ..] => {
                    let pattern = if words[0] == "confdir" {
                        "*.conf"
                    } else {
                        "*.sources"
                    };
                    for inc in drop_ins(host, &[dir], pattern, sources)? {
                        queue.push(inc.path.clone());
                    }
                }
                ["include", p, ..] if !p.contains('*') => queue.push(p.to_string()),
                _ => {}
            }
        }
    }
    Ok(out)
}

impl Probe for TimeSyncProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let mut findings = Vec::new();
        for d in &DAEMONS {
            let pkgs: Vec<String> = d.packages.iter().map(|s| s.to_string()).collect();
            let (pkg, psrc) = match package::installed(ctx, &pkgs) {
                Ok(r) => r,
                Err(e) => return Outcome::error(e),
            };
            sources.extend(psrc);
            let units: Vec<String> = d.units.iter().map(|s| s.to_string()).collect();
            let (unit, state) = host_try!(unit_state(ctx.host, &units, &mut sources), sources);
            // timesyncd ships inside the systemd package on many distributions.
            let installed = pkg.is_some() || state != super::systemd_unit::Enablement::NotInstalled;
            if !installed {
                continue;
            }
            if let Some(p) = &pkg {
                sources.push(p.source.clone());
            }
            let servers = match d.name {
                "chrony" => host_try!(
                    ntp_style_servers(
                        ctx.host,
                        &["/etc/chrony/chrony.conf", "/etc/chrony.conf"],
                        &mut sources
                    ),
                    sources
                ),
                "ntpd" => host_try!(
                    ntp_style_servers(
                        ctx.host,
                        &[
                            "/etc/ntpsec/ntp.conf",
                            "/etc/ntp.conf",
                            "/etc/openntpd/ntpd.conf"
                        ],
                        &mut sources
                    ),
                    sources
                ),
                _ => {
                    let entries = host_try!(
                        systemd_conf::merged(ctx.host, "timesyncd.conf", &mut sources),
                        sources
                    );
                    ["NTP", "FallbackNTP"]
                        .iter()
                        .filter_map(|k| systemd_conf::effective(&entries, "Time", k))
                        .flat_map(|(e, f)| {
                            e.value
                                .split_whitespace()
                                .map(|s| (s.to_string(), f.source_at(e.line)))
                                .collect::<Vec<_>>()
                        })
                        .collect()
                }
            };
            let builtin_ok = d.name == "systemd-timesyncd" && self.allow_builtin_servers;
            findings.push((d.name, unit, state, servers, builtin_ok));
        }
        let expected = "a time daemon installed, enabled and configured with at least one server";
        if findings.is_empty() {
            return Outcome::fail(
                "no time synchronisation daemon (chrony, ntpd, systemd-timesyncd) is installed",
            )
            .expected(expected)
            .observed("none installed")
            .sources(sources);
        }
        let mut notes = Vec::new();
        for (name, unit, state, servers, builtin_ok) in &findings {
            let configured = !servers.is_empty() || *builtin_ok;
            if state.is_enabled() && configured {
                for (_, s) in servers.iter().take(4) {
                    sources.push(s.clone());
                }
                let list: Vec<&str> = servers.iter().map(|(h, _)| h.as_str()).collect();
                let shown = if list.is_empty() {
                    "built-in servers".to_string()
                } else {
                    list.join(", ")
                };
                return Outcome::pass(format!("{name} is {} and uses {shown}", state.describe()))
                    .expected(expected)
                    .observed(format!(
                        "{name} ({unit}) {}, servers: {shown}",
                        state.describe()
                    ))
                    .sources(sources);
            }
            notes.push(if !state.is_enabled() {
                format!("{name} is installed but {unit} is {}", state.describe())
            } else {
                format!("{name} is enabled but configures no server")
            });
        }
        Outcome::fail(notes.join("; "))
            .expected(expected)
            .observed(notes.join("; "))
            .sources(sources)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::root;
    use super::super::testing::{run, wants};
    use crate::result::Status;

    const STATUS: &str =
        "Package: chrony\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.3-2\n";

    fn enable(d: &std::path::Path, unit: &str) {
        wants(
            d,
            "multi-user.target",
            &format!("/lib/systemd/system/{unit}"),
        );
    }

    #[test]
    fn chrony_with_sourcedir_passes() {
        let (d, view) = root(&[
            ("/var/lib/dpkg/status", STATUS),
            (
                "/lib/systemd/system/chrony.service",
                "[Install]\nWantedBy=multi-user.target\n",
            ),
            ("/etc/machine-id", "x\n"),
            (
                "/etc/chrony/chrony.conf",
                "sourcedir /etc/chrony/sources.d\nmakestep 1 3\n",
            ),
            (
                "/etc/chrony/sources.d/corp.sources",
                "server ntp1.corp.example iburst\n",
            ),
        ]);
        enable(d.path(), "chrony.service");
        let o = run(&view, r#"{ kind = "time_sync" }"#);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(o.observed.unwrap().contains("ntp1.corp.example"));
        assert!(
            o.sources
                .iter()
                .any(|s| s.path == "/etc/chrony/sources.d/corp.sources" && s.line == Some(1))
        );
    }

    #[test]
    fn failures_name_the_reason() {
        let (_d, view) = root(&[("/var/lib/dpkg/status", "")]);
        assert_eq!(run(&view, r#"{ kind = "time_sync" }"#).status, Status::Fail);
        let (_d, view) = root(&[
            ("/var/lib/dpkg/status", STATUS),
            (
                "/lib/systemd/system/chrony.service",
                "[Install]\nWantedBy=multi-user.target\n",
            ),
            ("/etc/machine-id", "x\n"),
            ("/etc/chrony/chrony.conf", "server a.example\n"),
        ]);
        let o = run(&view, r#"{ kind = "time_sync" }"#);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("disabled"), "{}", o.message);
    }

    #[test]
    fn timesyncd_needs_explicit_servers_unless_allowed() {
        let st = "Package: systemd-timesyncd\nStatus: install ok installed\nArchitecture: amd64\nVersion: 252.38-1\n";
        let (d, view) = root(&[
            ("/var/lib/dpkg/status", st),
            (
                "/lib/systemd/system/systemd-timesyncd.service",
                "[Install]\nWantedBy=sysinit.target\n",
            ),
            ("/etc/machine-id", "x\n"),
            ("/etc/systemd/timesyncd.conf", "[Time]\n#NTP=\n"),
        ]);
        enable(d.path(), "systemd-timesyncd.service");
        assert_eq!(run(&view, r#"{ kind = "time_sync" }"#).status, Status::Fail);
        assert_eq!(
            run(
                &view,
                r#"{ kind = "time_sync", allow_builtin_servers = true }"#
            )
            .status,
            Status::Pass
        );
        std::fs::create_dir_all(d.path().join("etc/systemd/timesyncd.conf.d")).unwrap();
        std::fs::write(
            d.path().join("etc/systemd/timesyncd.conf.d/corp.conf"),
            "[Time]\nNTP=ntp.corp.example\n",
        )
        .unwrap();
        let (_d2, view2) = (0, crate::host::HostView::root(d.path()).unwrap());
        assert_eq!(
            run(&view2, r#"{ kind = "time_sync" }"#).status,
            Status::Pass
        );
    }
}
