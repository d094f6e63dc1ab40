//! A host firewall. `configured` (both modes): nftables, ufw, firewalld or
//! iptables-persistent installed, enabled and holding input rules.
//! `loaded` (live only): the kernel's ruleset filters incoming traffic.

use serde::Deserialize;

use super::systemd_unit::unit_state;
use super::{Ctx, Outcome, Probe, host_try, package};
use crate::parse::keyvalue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    Configured,
    Loaded,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallProbe {
    rule: Rule,
}

impl Probe for FirewallProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match self.rule {
            Rule::Configured => configured(ctx),
            Rule::Loaded => loaded(ctx),
        }
    }
}

/// firewalld's default zone, when it filters: `Ok(name)`, or `Err(why
/// not)` when it accepts everything (`trusted`, or `target="ACCEPT"`) or is
/// not defined. Zones in /etc/firewalld override the packaged ones in
/// /usr/lib/firewalld, file by file, as firewalld loads them.
fn firewalld_default_zone(
    ctx: &Ctx<'_>,
    sources: &mut Vec<crate::result::Source>,
) -> Result<Result<String, String>, crate::host::HostError> {
    const CONF: &str = "/etc/firewalld/firewalld.conf";
    let mut zone = "public".to_string();
    match ctx.read(CONF)? {
        Some(f) => {
            let kvs = keyvalue::parse_equals(&f.text());
            match keyvalue::last(&kvs, "DefaultZone") {
                Some(kv) => {
                    sources.push(f.source_at(kv.line));
                    zone = kv.value.clone();
                }
                None => sources.push(f.source()),
            }
        }
        None => sources.push(crate::host::HostView::absent_source(CONF)),
    }
    if zone.is_empty()
        || !zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Ok(Err(format!("its default zone `{zone}` is not a zone name")));
    }
    for dir in ["/etc/firewalld/zones", "/usr/lib/firewalld/zones"] {
        let path = format!("{dir}/{zone}.xml");
        let Some(f) = ctx.read(&path)? else { continue };
        sources.push(f.source());
        let (target, _) = zone_info(&f.text()).map_err(|message| crate::host::HostError::Io {
            path: path.clone(),
            message,
        })?;
        if zone == "trusted" || target.as_deref() == Some("ACCEPT") {
            return Ok(Err(format!(
                "its default zone {zone} accepts all traffic (target {})",
                target.as_deref().unwrap_or("ACCEPT")
            )));
        }
        if let Err(why) = accepting_bound_zones(ctx, sources)? {
            return Ok(Err(why));
        }
        return Ok(Ok(zone));
    }
    Ok(Err(format!(
        "its default zone {zone} is not defined (no {zone}.xml in /etc/firewalld/zones or /usr/lib/firewalld/zones)"
    )))
}

/// A firewalld zone file: its `target` attribute and what is bound to it
/// (`<interface name=…>`, `<source address=…>` or `ipset=`).
fn zone_info(xml: &str) -> Result<(Option<String>, Vec<String>), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let attr =
        |e: &quick_xml::events::BytesStart<'_>, name: &str| -> Result<Option<String>, String> {
            for a in e.attributes() {
                let a = a.map_err(|e| e.to_string())?;
                if a.key.local_name().as_ref() == name {
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    return Ok(Some(v.into_owned()));
                }
            }
            Ok(None)
        };
    let mut target = None;
    let mut seen_zone = false;
    let mut bound = Vec::new();
    loop {
        match reader.read_event() {
            Err(e) => {
                return Err(format!(
                    "not well-formed XML at byte {}: {e}",
                    reader.error_position()
                ));
            }
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                "zone" => {
                    seen_zone = true;
                    target = attr(&e, "target")?;
                }
                "interface" => bound.extend(attr(&e, "name")?.map(|n| format!("interface {n}"))),
                "source" => {
                    for key in ["address", "mac", "ipset"] {
                        bound.extend(attr(&e, key)?.map(|v| format!("source {v}")));
                    }
                }
                _ => {}
            },
            Ok(_) => {}
        }
    }
    if !seen_zone {
        return Err("no <zone> element".into());
    }
    Ok((target, bound))
}

/// Zones in /etc/firewalld/zones that accept everything (`trusted`, or
/// `target="ACCEPT"`) and have interfaces or sources bound to them: traffic
/// there is not filtered, whatever the default zone does.
fn accepting_bound_zones(
    ctx: &Ctx<'_>,
    sources: &mut Vec<crate::result::Source>,
) -> Result<Result<(), String>, crate::host::HostError> {
    const DIR: &str = "/etc/firewalld/zones";
    let Some(entries) = ctx.host.read_dir(DIR)? else {
        return Ok(Ok(()));
    };
    sources.push(crate::host::HostView::dir_source(DIR, &entries));
    for e in entries
        .iter()
        .filter(|e| !e.is_dir && e.name.ends_with(".xml"))
    {
        let Some(f) = ctx.read(&e.path)? else {
            continue;
        };
        let (target, bound) =
            zone_info(&f.text()).map_err(|message| crate::host::HostError::Io {
                path: e.path.clone(),
                message,
            })?;
        let zone = e.name.trim_end_matches(".xml");
        if (zone == "trusted" || target.as_deref() == Some("ACCEPT")) && !bound.is_empty() {
            sources.push(f.source());
            return Ok(Err(format!(
                "zone {zone} ({}) accepts all traffic from {}",
                e.path,
                bound.join(", ")
            )));
        }
    }
    Ok(Ok(()))
}

fn configured(ctx: &Ctx<'_>) -> Outcome {
    let mut sources = Vec::new();
    let mut notes = Vec::new();
    let expected = "a firewall installed, enabled at boot and holding input rules";
    let pkg = |names: &[&str]| -> Result<Option<package::Found>, String> {
        package::installed(
            ctx,
            &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .map(|(f, _)| f)
    };
    macro_rules! pkg_or_err {
        ($names:expr) => {
            match pkg($names) {
                Ok(f) => f,
                Err(e) => return Outcome::error(e).sources(sources),
            }
        };
    }
    // nftables
    if let Some(p) = pkg_or_err!(&["nftables"]) {
        sources.push(p.source);
        let (_, state) = host_try!(
            unit_state(ctx.host, &["nftables.service".into()], &mut sources),
            sources
        );
        let conf = host_try!(ctx.read("/etc/nftables.conf"), sources);
        let hooked = conf.as_ref().and_then(|f| {
            sources.push(f.source());
            f.text()
                .lines()
                .position(|l| l.contains("hook input"))
                .map(|i| f.source_at(i as u32 + 1))
        });
        match (state.is_enabled(), hooked) {
            (true, Some(src)) => {
                sources.push(src);
                return Outcome::pass(format!(
                    "nftables is {} and /etc/nftables.conf filters input",
                    state.describe()
                ))
                .expected(expected)
                .observed("nftables")
                .sources(sources);
            }
            (false, _) => notes.push(format!(
                "nftables installed but nftables.service is {}",
                state.describe()
            )),
            (true, None) => {
                notes.push("nftables enabled but /etc/nftables.conf has no input hook".into())
            }
        }
    }
    // ufw
    if let Some(p) = pkg_or_err!(&["ufw"]) {
        sources.push(p.source);
        if let Some(f) = host_try!(ctx.read("/etc/ufw/ufw.conf"), sources) {
            let kvs = keyvalue::parse_equals(&f.text());
            match keyvalue::last(&kvs, "ENABLED") {
                Some(kv) if kv.value.eq_ignore_ascii_case("yes") => {
                    sources.push(f.source_at(kv.line));
                    return Outcome::pass("ufw is enabled (/etc/ufw/ufw.conf ENABLED=yes)")
                        .expected(expected)
                        .observed("ufw")
                        .sources(sources);
                }
                _ => {
                    sources.push(f.source());
                    notes.push("ufw installed but ENABLED is not yes".into());
                }
            }
        }
    }
    // firewalld
    if let Some(p) = pkg_or_err!(&["firewalld"]) {
        sources.push(p.source);
        let (_, state) = host_try!(
            unit_state(ctx.host, &["firewalld.service".into()], &mut sources),
            sources
        );
        if state.is_enabled() {
            match host_try!(firewalld_default_zone(ctx, &mut sources), sources) {
                Ok(zone) => {
                    return Outcome::pass(format!(
                        "firewalld is {}, default zone {zone}",
                        state.describe()
                    ))
                    .expected(expected)
                    .observed(format!("firewalld, default zone {zone}"))
                    .sources(sources);
                }
                Err(why) => notes.push(format!("firewalld is enabled but {why}")),
            }
        } else {
            notes.push(format!("firewalld installed but {}", state.describe()));
        }
    }
    // iptables-persistent
    if let Some(p) = pkg_or_err!(&["iptables-persistent", "netfilter-persistent"]) {
        sources.push(p.source);
        let (_, state) = host_try!(
            unit_state(
                ctx.host,
                &["netfilter-persistent.service".into()],
                &mut sources
            ),
            sources
        );
        let rules = host_try!(ctx.read("/etc/iptables/rules.v4"), sources);
        let has = rules.as_ref().and_then(|f| {
            sources.push(f.source());
            f.text()
                .lines()
                .position(|l| l.starts_with(":INPUT DROP") || l.starts_with("-A INPUT"))
                .map(|i| f.source_at(i as u32 + 1))
        });
        if let (true, Some(src)) = (state.is_enabled(), has) {
            sources.push(src);
            return Outcome::pass("iptables rules are restored at boot by netfilter-persistent")
                .expected(expected)
                .observed("iptables-persistent")
                .sources(sources);
        }
        notes.push("iptables-persistent installed but not enabled or without INPUT rules".into());
    }
    let msg = if notes.is_empty() {
        "no host firewall (nftables, ufw, firewalld, iptables-persistent) is installed".to_string()
    } else {
        notes.join("; ")
    };
    Outcome::fail(msg.clone())
        .expected(expected)
        .observed(msg)
        .sources(sources)
}

fn loaded(ctx: &Ctx<'_>) -> Outcome {
    let Some(live) = ctx.host.live_host() else {
        return Outcome::not_applicable(
            "the loaded ruleset exists only on a running host; the firewall configuration is checked instead",
        );
    };
    let expected = "a loaded ruleset filtering incoming traffic";
    match live.command(&["nft", "list", "ruleset"]) {
        Ok(out) if out.code == Some(0) => {
            let filters = out.stdout.lines().any(|l| l.contains("hook input"));
            let chains = out
                .stdout
                .lines()
                .filter(|l| l.trim_start().starts_with("chain "))
                .count();
            return Outcome::verdict(
                filters,
                if filters {
                    format!("nft ruleset filters input ({chains} chains)")
                } else {
                    format!("nft ruleset has no input hook ({chains} chains)")
                },
            )
            .expected(expected)
            .observed(format!(
                "{chains} chains, input hook {}",
                if filters { "present" } else { "absent" }
            ))
            .sources(vec![out.source()]);
        }
        Ok(out) if out.stderr.contains("Operation not permitted") => {
            return Outcome::error("nft list ruleset: permission denied (the agent needs CAP_NET_ADMIN to read the ruleset)").sources(vec![out.source()]);
        }
        _ => {}
    }
    match live.command(&["iptables", "-S", "INPUT"]) {
        Ok(out) if out.code == Some(0) => {
            let policy_drop = out
                .stdout
                .lines()
                .any(|l| l == "-P INPUT DROP" || l == "-P INPUT REJECT");
            let rules = out
                .stdout
                .lines()
                .filter(|l| l.starts_with("-A INPUT"))
                .count();
            let ok = policy_drop || rules > 0;
            Outcome::verdict(
                ok,
                format!(
                    "iptables INPUT: {rules} rules, policy {}",
                    if policy_drop { "drop" } else { "accept" }
                ),
            )
            .expected(expected)
            .observed(format!("{rules} INPUT rules"))
            .sources(vec![out.source()])
        }
        Ok(out) => Outcome::error(format!(
            "neither nft nor iptables could list the ruleset: {}",
            out.stderr.trim()
        ))
        .sources(vec![out.source()]),
        Err(e) => Outcome::fail(format!(
            "no firewall tooling on this host (nft, iptables): {e}"
        ))
        .expected(expected)
        .observed("no nft or iptables"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run, run_files, wants};
    use crate::result::Status;

    #[test]
    fn nftables_enabled_with_input_hook() {
        let status = "Package: nftables\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0.6-2\n";
        let (d, view) = root(&[
            ("/var/lib/dpkg/status", status),
            (
                "/lib/systemd/system/nftables.service",
                "[Install]\nWantedBy=sysinit.target\n",
            ),
            ("/etc/machine-id", "x\n"),
            (
                "/etc/nftables.conf",
                "table inet filter {\n chain input {\n  type filter hook input priority 0; policy drop;\n }\n}\n",
            ),
        ]);
        let p = r#"{ kind = "firewall", rule = "configured" }"#;
        assert_eq!(run(&view, p).status, Status::Fail);
        wants(
            d.path(),
            "sysinit.target",
            "/lib/systemd/system/nftables.service",
        );
        let o = run(&view, p);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.sources
                .iter()
                .any(|s| s.path == "/etc/nftables.conf" && s.line == Some(3))
        );
    }

    #[test]
    fn ufw_and_none() {
        let status =
            "Package: ufw\nStatus: install ok installed\nArchitecture: all\nVersion: 0.36.2-1\n";
        let p = r#"{ kind = "firewall", rule = "configured" }"#;
        assert_eq!(
            run_files(
                &[
                    ("/var/lib/dpkg/status", status),
                    ("/etc/ufw/ufw.conf", "ENABLED=yes\n")
                ],
                p
            )
            .status,
            Status::Pass
        );
        assert_eq!(
            run_files(
                &[
                    ("/var/lib/dpkg/status", status),
                    ("/etc/ufw/ufw.conf", "ENABLED=no\n")
                ],
                p
            )
            .status,
            Status::Fail
        );
        assert_eq!(
            run_files(&[("/var/lib/dpkg/status", "")], p).status,
            Status::Fail
        );
        assert_eq!(
            run_files(&[], r#"{ kind = "firewall", rule = "loaded" }"#).status,
            Status::NotApplicable
        );
    }

    /// firewalld 1.3 (RHEL 9): enabled, its default zone, and zones that
    /// accept everything from what is bound to them.
    #[test]
    fn firewalld_default_zone_and_accepting_zones() {
        let status = "Package: firewalld\nStatus: install ok installed\nArchitecture: all\nVersion: 1.3.3-1\n";
        let public = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone>\n  <short>Public</short>\n  <service name=\"ssh\"/>\n  <forward/>\n</zone>\n";
        let trusted = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone target=\"ACCEPT\">\n  <short>Trusted</short>\n  <forward/>\n</zone>\n";
        let base = [
            ("/var/lib/dpkg/status", status),
            (
                "/usr/lib/systemd/system/firewalld.service",
                "[Install]\nWantedBy=multi-user.target\n",
            ),
            ("/usr/lib/firewalld/zones/public.xml", public),
            ("/usr/lib/firewalld/zones/trusted.xml", trusted),
        ];
        let p = r#"{ kind = "firewall", rule = "configured" }"#;
        let verdict = |extra: &[(&str, &str)]| {
            let files: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
            let (d, _) = root(&files);
            wants(
                d.path(),
                "multi-user.target",
                "/usr/lib/systemd/system/firewalld.service",
            );
            let view = crate::host::HostView::root(d.path()).unwrap();
            run(&view, p)
        };
        let o = verdict(&[("/etc/firewalld/firewalld.conf", "DefaultZone=public\n")]);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let o = verdict(&[("/etc/firewalld/firewalld.conf", "DefaultZone=trusted\n")]);
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.message
                .contains("default zone trusted accepts all traffic"),
            "{}",
            o.message
        );
        let o = verdict(&[(
            "/etc/firewalld/firewalld.conf",
            "DefaultZone=../../etc/passwd\n",
        )]);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("is not a zone name"), "{}", o.message);
        let o = verdict(&[
            ("/etc/firewalld/firewalld.conf", "DefaultZone=public\n"),
            (
                "/etc/firewalld/zones/trusted.xml",
                &trusted.replace("<forward/>", "<interface name=\"eth0\"/>"),
            ),
        ]);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("zone trusted (/etc/firewalld/zones/trusted.xml) accepts all traffic from interface eth0"), "{}", o.message);
        let o = verdict(&[
            ("/etc/firewalld/firewalld.conf", "DefaultZone=public\n"),
            (
                "/etc/firewalld/zones/public.xml",
                "<zone><short>broken</zone>",
            ),
        ]);
        assert_eq!(o.status, Status::Error);
        assert!(
            o.message.starts_with("/etc/firewalld/zones/public.xml: "),
            "{}",
            o.message
        );
    }
}
