//! Network services: what listens for connections from other hosts,
//! compared with the ports and programs the organisation allows.
//!
//! Live, from the kernel's socket tables (TCP sockets in LISTEN, UDP
//! sockets bound and unconnected), asked through sock_diag(7), or read from
//! /proc/net/tcp, tcp6, udp and udp6 where the kernel lacks it; the owning
//! program found through /proc/PID/fd. Sockets bound to a loopback address
//! are not network services and are left out. In a root directory there
//! are no sockets; the enabled systemd socket units (their `ListenStream=`
//! and `ListenDatagram=` ports) and the enabled services of well-known
//! network daemons stand in for them.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Deserialize;

use super::systemd_unit::{enabled_unit, unit_files};
use super::{Ctx, Outcome, Probe, host_try};
use crate::host::HostView;
use crate::host::sockets::{Bound, Transport};
use crate::result::Source;

/// Daemons that listen on the network as installed (not on loopback
/// only): unit, program, ports. Daemons whose packaged configuration
/// binds to localhost (MariaDB, PostgreSQL, Redis, CUPS, Exim on Debian)
/// are not listed: in a root directory they are not network services.
const KNOWN_DAEMONS: &[(&str, &str, &str)] = &[
    ("ssh.service", "sshd", "22/tcp"),
    ("sshd.service", "sshd", "22/tcp"),
    ("apache2.service", "apache2", "80/tcp 443/tcp"),
    ("httpd.service", "httpd", "80/tcp 443/tcp"),
    ("nginx.service", "nginx", "80/tcp 443/tcp"),
    ("postfix.service", "master", "25/tcp"),
    ("vsftpd.service", "vsftpd", "21/tcp"),
    ("proftpd.service", "proftpd", "21/tcp"),
    ("smbd.service", "smbd", "139/tcp 445/tcp"),
    ("smb.service", "smbd", "139/tcp 445/tcp"),
    ("nmbd.service", "nmbd", "137/udp 138/udp"),
    ("nfs-server.service", "nfsd", "2049/tcp"),
    ("rpcbind.service", "rpcbind", "111/tcp 111/udp"),
    ("avahi-daemon.service", "avahi-daemon", "5353/udp"),
    ("named.service", "named", "53/tcp 53/udp"),
    ("bind9.service", "named", "53/tcp 53/udp"),
    ("dnsmasq.service", "dnsmasq", "53/tcp 53/udp"),
    ("slapd.service", "slapd", "389/tcp"),
    (
        "dovecot.service",
        "dovecot",
        "110/tcp 143/tcp 993/tcp 995/tcp",
    ),
    ("squid.service", "squid", "3128/tcp"),
    ("xinetd.service", "xinetd", "(per /etc/xinetd.d)"),
    ("inetd.service", "inetd", "(per /etc/inetd.conf)"),
    ("rsync.service", "rsync", "873/tcp"),
    ("xrdp.service", "xrdp", "3389/tcp"),
    ("telnet.socket", "telnetd", "23/tcp"),
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersProbe {
    /// Text parameter: allowed `PORT/PROTO` entries (`22/tcp, 68/udp`).
    ports_param: String,
    /// Text parameter: allowed program names (`sshd, chronyd`).
    programs_param: String,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// The local address as shown (`0.0.0.0`, `[::]`).
    pub addr: String,
    /// The local port.
    pub port: u16,
    /// The socket's inode (to find its process).
    pub inode: u64,
    /// Bound to a loopback address: not a network service.
    pub loopback: bool,
}

fn ipv4(hex: &str) -> Option<[u8; 4]> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    Some(n.to_le_bytes())
}

/// Parses one /proc/net table; `udp` selects the UDP reading of the state.
pub fn parse_table(text: &str, proto: &'static str, v6: bool) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(inode)) =
            (f.get(1), f.get(2), f.get(3), f.get(9))
        else {
            continue;
        };
        let listening = if proto == "tcp" {
            *state == "0A"
        } else {
            *state == "07"
                && remote.ends_with(":0000")
                && remote.trim_start_matches('0').starts_with(':')
        };
        if !listening {
            continue;
        }
        let Some((a, p)) = local.split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(p, 16) else {
            continue;
        };
        let (addr, loopback) = if v6 {
            if a.len() != 32 {
                continue;
            }
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let Some(word) = ipv4(&a[w * 8..w * 8 + 8]) else {
                    continue;
                };
                bytes[w * 4..w * 4 + 4].copy_from_slice(&word);
            }
            let ip = std::net::Ipv6Addr::from(bytes);
            let loop4 = ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
            (format!("[{ip}]"), ip.is_loopback() || loop4)
        } else {
            let Some(b) = ipv4(a) else { continue };
            let ip = std::net::Ipv4Addr::from(b);
            (ip.to_string(), ip.is_loopback())
        };
        out.push(Listener {
            proto,
            addr,
            port,
            inode: inode.parse().unwrap_or(0),
            loopback,
        });
    }
    out
}

/// A /proc/net socket table in as few reads as possible: every read of
/// these files walks the kernel's whole connection hash table (milliseconds
/// on a host with much memory), so one large read is made, and another
/// only when the first came near the end of the buffer (the kernel fills a
/// read with whole lines while they fit, so a read that leaves more than a
/// line's room was the last).
fn read_table(host: &HostView, path: &str) -> Result<Option<Vec<u8>>, crate::host::HostError> {
    use std::io::Read;
    const CHUNK: usize = 1 << 20;
    let Some((mut file, _)) = host.open(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    loop {
        let start = bytes.len();
        bytes.resize(start + CHUNK, 0);
        let n = file
            .read(&mut bytes[start..])
            .map_err(|e| crate::host::HostError::io(path, &e))?;
        bytes.truncate(start + n);
        if n + 4096 <= CHUNK || bytes.len() > 64 * CHUNK {
            return Ok(Some(bytes));
        }
    }
}

/// A socket as sock_diag reported it.
fn listener(proto: &'static str, b: &Bound) -> Listener {
    let loopback = match b.addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    let addr = match b.addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    Listener {
        proto,
        addr,
        port: b.port,
        inode: b.inode,
        loopback,
    }
}

/// The sock_diag answer standing for the /proc/net table `file` names
/// (`sock_diag:/proc/net/tcp`): its digest covers one `ADDRESS PORT INODE`
/// line per socket, in the order of the answer (sorted).
fn diag_source(file: &str, bound: &[Bound]) -> Source {
    let text: String = bound
        .iter()
        .map(|b| format!("{} {} {}\n", b.addr, b.port, b.inode))
        .collect();
    Source {
        kind: crate::result::SourceKind::Kernel,
        path: format!("sock_diag:{file}"),
        sha256: Some(crate::host::sha256_hex(text.as_bytes())),
        line: None,
    }
}

/// A list parameter, lower-cased (ports and program names compare so).
fn list_param(ctx: &Ctx<'_>, name: &str) -> Vec<String> {
    ctx.params
        .list(name)
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

/// Socket inode → program name, for the inodes asked, through /proc/PID/fd.
fn owners(host: &HostView, wanted: &BTreeSet<u64>) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    let Ok(Some(procs)) = host.read_dir("/proc") else {
        return out;
    };
    for p in procs
        .iter()
        .filter(|p| p.name.bytes().all(|b| b.is_ascii_digit()))
    {
        let Ok(Some(fds)) = host.read_dir(&format!("{}/fd", p.path)) else {
            continue;
        };
        for fd in fds {
            let Some(t) = fd.link_target else { continue };
            let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) else {
                continue;
            };
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            if wanted.contains(&inode) && !out.contains_key(&inode) {
                let comm = host
                    .read(&format!("{}/comm", p.path))
                    .ok()
                    .flatten()
                    .map(|f| f.text().trim().to_string())
                    .unwrap_or_default();
                out.insert(inode, comm);
            }
        }
        if out.len() == wanted.len() {
            break;
        }
    }
    out
}

impl ListenersProbe {
    fn live(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
    ) -> Result<Vec<(String, String, String)>, crate::host::HostError> {
        let mut all = Vec::new();
        for (file, transport, proto, v6) in [
            ("/proc/net/tcp", Transport::Tcp, "tcp", false),
            ("/proc/net/tcp6", Transport::Tcp, "tcp", true),
            ("/proc/net/udp", Transport::Udp, "udp", false),
            ("/proc/net/udp6", Transport::Udp, "udp", true),
        ] {
            // The kernel's sock_diag first; /proc/net where the kernel lacks
            // it (built without inet_diag or udp_diag) or refuses it.
            if let Some(live) = ctx.host.live_host() {
                if let Ok(bound) = live.bound_sockets(transport, v6) {
                    sources.push(diag_source(file, &bound));
                    all.extend(bound.iter().map(|b| listener(proto, b)));
                    continue;
                }
            }
            match read_table(ctx.host, file)? {
                Some(bytes) => {
                    sources.push(Source {
                        kind: crate::result::SourceKind::Kernel,
                        path: file.to_string(),
                        sha256: Some(crate::host::sha256_hex(&bytes)),
                        line: None,
                    });
                    all.extend(parse_table(&String::from_utf8_lossy(&bytes), proto, v6));
                }
                // IPv6 may be off; IPv4 tables are always there.
                None if v6 => sources.push(HostView::absent_source(file)),
                None => {
                    return Err(crate::host::HostError::Io {
                        path: file.into(),
                        message: "missing: the socket table cannot be read".into(),
                    });
                }
            }
        }
        all.retain(|l| !l.loopback);
        let allowed_ports = list_param(ctx, &self.ports_param);
        let need: BTreeSet<u64> = all
            .iter()
            .filter(|l| !allowed_ports.contains(&format!("{}/{}", l.port, l.proto)))
            .map(|l| l.inode)
            .collect();
        let programs = if need.is_empty() {
            HashMap::new()
        } else {
            owners(ctx.host, &need)
        };
        let mut out: Vec<(String, String, String)> = all
            .iter()
            .map(|l| {
                let program = programs.get(&l.inode).cloned().unwrap_or_default();
                let shown = if program.is_empty() {
                    String::new()
                } else {
                    format!(" ({program})")
                };
                (
                    format!("{}/{}", l.port, l.proto),
                    program,
                    format!("{} {}:{}{shown}", l.proto, l.addr, l.port),
                )
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn configured(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
    ) -> Result<Vec<(String, String, String)>, crate::host::HostError> {
        let mut out = Vec::new();
        for e in unit_files(ctx.host, ".socket")? {
            let Some(f) = ctx.read(&e.path)? else {
                continue;
            };
            let listens: Vec<(String, u32)> = crate::parse::ini::parse(&f.text())
                .into_iter()
                .filter(|x| {
                    x.section == "Socket" && (x.key == "ListenStream" || x.key == "ListenDatagram")
                })
                .filter_map(|x| {
                    let port = x.value.rsplit(':').next()?.trim().parse::<u16>().ok()?;
                    let local = x.value.starts_with("127.")
                        || x.value.starts_with("[::1]")
                        || x.value.starts_with("localhost");
                    (!local).then(|| {
                        (
                            format!(
                                "{port}/{}",
                                if x.key == "ListenStream" {
                                    "tcp"
                                } else {
                                    "udp"
                                }
                            ),
                            x.line,
                        )
                    })
                })
                .collect();
            if listens.is_empty() {
                continue;
            }
            let Some(state) = enabled_unit(ctx.host, &e.name, sources)? else {
                continue;
            };
            let program = e.name.trim_end_matches(".socket").to_string();
            for (port, line) in listens {
                sources.push(f.source_at(line));
                out.push((
                    port.clone(),
                    program.clone(),
                    format!("{port} ({}, {})", e.name, state.describe()),
                ));
            }
        }
        for (unit, program, ports) in KNOWN_DAEMONS {
            if let Some(state) = enabled_unit(ctx.host, unit, sources)? {
                for port in ports.split(' ') {
                    out.push((
                        port.to_string(),
                        program.to_string(),
                        format!("{port} ({unit}, {})", state.describe()),
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl Probe for ListenersProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let ports = list_param(ctx, &self.ports_param);
        let programs = list_param(ctx, &self.programs_param);
        let expected = format!(
            "only allowed ports ({}) or programs ({}) reachable from the network",
            ports.join(", "),
            programs.join(", ")
        );
        let (seen, what): (Vec<(String, String, String)>, &str) = if ctx.is_live() {
            (
                host_try!(self.live(ctx, &mut sources), sources),
                "listening sockets",
            )
        } else {
            (
                host_try!(self.configured(ctx, &mut sources), sources),
                "enabled socket units and network daemons",
            )
        };
        let bad: Vec<String> = seen
            .iter()
            .filter(|(port, program, _)| {
                !ports.contains(port) && !programs.contains(&program.to_ascii_lowercase())
            })
            .map(|(_, _, d)| d.clone())
            .collect();
        let observed = if seen.is_empty() {
            format!("no {what}")
        } else {
            seen.iter()
                .map(|s| s.2.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        if bad.is_empty() {
            Outcome::pass(format!("{} network services, all allowed", seen.len()))
                .expected(expected)
                .observed(observed)
                .sources(sources)
        } else {
            Outcome::fail(format!("not allowed: {}", bad.join("; ")))
                .expected(expected)
                .observed(observed)
                .sources(sources)
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        vec![self.ports_param.as_str(), self.programs_param.as_str()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0\n   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 1002 1 0\n   2: 0F02000A:0016 0A02000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0\n";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0\n   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0\n";

    #[test]
    fn listening_sockets_and_loopback() {
        let l = parse_table(TCP, "tcp", false);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(
            (l[0].addr.as_str(), l[0].port, l[0].loopback),
            ("0.0.0.0", 22, false)
        );
        assert!(l[1].loopback);
        let l6 = parse_table(TCP6, "tcp", true);
        assert_eq!(
            (l6[0].addr.as_str(), l6[0].port, l6[0].loopback),
            ("[::1]", 631, true)
        );
        assert_eq!((l6[1].port, l6[1].loopback), (8080, false));
    }

    #[test]
    fn root_mode_reads_enabled_sockets_and_daemons() {
        use super::super::testing::{root, wants};
        use crate::expect::ParamValue;
        use crate::result::Status;
        let (d, view) = root(&[
            (
                "/lib/systemd/system/ssh.service",
                "[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n",
            ),
            (
                "/lib/systemd/system/rpcbind.socket",
                "[Socket]\nListenStream=/run/rpcbind.sock\nListenStream=0.0.0.0:111\nListenDatagram=0.0.0.0:111\n",
            ),
        ]);
        wants(
            d.path(),
            "multi-user.target",
            "/lib/systemd/system/ssh.service",
        );
        let mut params = crate::probes::testing::params();
        params
            .0
            .insert("p".into(), ParamValue::Text("22/tcp".into()));
        params
            .0
            .insert("q".into(), ParamValue::Text("chronyd".into()));
        let spec = crate::probes::testing::spec(
            r#"{ kind = "listeners", ports_param = "p", programs_param = "q" }"#,
        );
        let o = spec.run(&crate::probes::Ctx::new(&view, &params));
        assert_eq!(o.status, Status::Pass, "{o:?}");
        wants(
            d.path(),
            "sockets.target",
            "/lib/systemd/system/rpcbind.socket",
        );
        let view = HostView::root(d.path()).unwrap();
        let o = spec.run(&crate::probes::Ctx::new(&view, &params));
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.message.contains("111/tcp (rpcbind.socket"),
            "{}",
            o.message
        );
        assert!(o.message.contains("111/udp"), "{}", o.message);
    }

    #[test]
    fn a_live_socket_of_this_process_is_seen_with_its_program() {
        use crate::expect::ParamValue;
        use crate::result::Status;
        let sock = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let view = HostView::live();
        let mut params = crate::probes::testing::params();
        params
            .0
            .insert("p".into(), ParamValue::Text("22/tcp".into()));
        params.0.insert("q".into(), ParamValue::Text("sshd".into()));
        let spec = crate::probes::testing::spec(
            r#"{ kind = "listeners", ports_param = "p", programs_param = "q" }"#,
        );
        let o = spec.run(&crate::probes::Ctx::new(&view, &params));
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(
            o.message.contains(&format!("tcp 0.0.0.0:{port} (")),
            "{}",
            o.message
        );
        params
            .0
            .insert("p".into(), ParamValue::Text(format!("{port}/tcp")));
        let o = spec.run(&crate::probes::Ctx::new(&view, &params));
        // Other services of this machine may still fail the check; this socket is allowed now.
        assert!(
            !o.message.contains(&format!("0.0.0.0:{port}")),
            "{}",
            o.message
        );
        drop(sock);
    }
}
