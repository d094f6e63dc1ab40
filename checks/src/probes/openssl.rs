//! The lowest TLS version the system's OpenSSL accepts, from its
//! configuration: `openssl_conf` → its `ssl_conf` section → that section's
//! `system_default` section → `MinProtocol` (or `TLS.MinProtocol`, as the
//! RHEL crypto-policies back-end writes it), following `.include`. With no
//! `MinProtocol`, the library's own default decides: OpenSSL 3 refuses
//! TLS 1.0 and 1.1 at security level 1 and above (its release notes:
//! SHA-1 and MD5 signatures no longer count as secure), so the installed
//! library's version and the configured `@SECLEVEL` are read too.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use crate::host::{HostError, HostView};
use crate::result::Source;

const CONFIGS: [&str; 3] = [
    "/etc/ssl/openssl.cnf",
    "/etc/pki/tls/openssl.cnf",
    "/usr/lib/ssl/openssl.cnf",
];
const LIBRARIES: [&str; 5] = [
    "libssl3",
    "libssl3t64",
    "openssl-libs",
    "libssl1.1",
    "libssl1.0.2",
];
const ORDER: [&str; 6] = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "None"];
const MAX_INCLUDE_DEPTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpensslProbe {
    /// The lowest acceptable minimum, e.g. `TLSv1.2`.
    min_protocol: String,
}

type Sections = BTreeMap<String, Vec<(String, String, Source)>>;

fn parse_into(
    host: &HostView,
    path: &str,
    section: &mut String,
    out: &mut Sections,
    sources: &mut Vec<Source>,
    depth: usize,
) -> Result<(), HostError> {
    let Some(f) = host.read(path)? else {
        sources.push(HostView::absent_source(path));
        return Ok(());
    };
    sources.push(f.source());
    for (i, raw) in f.text().lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(inc) = line.strip_prefix(".include") {
            let target = inc
                .trim()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"')
                .to_string();
            if depth >= MAX_INCLUDE_DEPTH || !target.starts_with('/') {
                continue;
            }
            match host.read_dir(&target)? {
                Some(entries) => {
                    for e in entries
                        .iter()
                        .filter(|e| e.name.ends_with(".cnf") || e.name.ends_with(".conf"))
                    {
                        parse_into(host, &e.path, section, out, sources, depth + 1)?;
                    }
                }
                None => parse_into(host, &target, section, out, sources, depth + 1)?,
            }
            continue;
        }
        if line.starts_with('.') {
            continue; // .pragma
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            *section = name.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone()).or_default().push((
                k.trim().to_string(),
                v.trim().trim_matches('"').to_string(),
                f.source_at(i as u32 + 1),
            ));
        }
    }
    Ok(())
}

fn get<'s>(s: &'s Sections, section: &str, keys: &[&str]) -> Option<&'s (String, String, Source)> {
    s.get(section)?
        .iter()
        .rev()
        .find(|(k, _, _)| keys.contains(&k.as_str()))
}

fn rank(p: &str) -> Option<usize> {
    ORDER.iter().position(|o| o.eq_ignore_ascii_case(p))
}

impl Probe for OpensslProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let want = rank(&self.min_protocol).unwrap_or(3);
        let expected = format!(
            "TLS below {} refused by the system OpenSSL",
            self.min_protocol
        );
        let mut found = None;
        for c in CONFIGS {
            if host_try!(ctx.host.exists(c), sources) {
                found = Some(c);
                break;
            }
            sources.push(HostView::absent_source(c));
        }
        let db = host_try!(ctx.packages(), sources);
        let library = db.as_ref().and_then(|db| {
            LIBRARIES.iter().find_map(|n| {
                db.installed
                    .get(*n)
                    .map(|i| (n.to_string(), i.version.clone(), db.source_of(i)))
            })
        });
        let Some(config) = found else {
            return match library {
                None => Outcome::not_applicable(
                    "OpenSSL is not installed (no openssl.cnf, no libssl package)",
                )
                .sources(sources),
                Some((n, v, _)) => Outcome::error(format!(
                    "{n} {v} is installed but none of {} exists",
                    CONFIGS.join(", ")
                ))
                .sources(sources),
            };
        };
        let mut sections = Sections::new();
        host_try!(
            parse_into(
                ctx.host,
                config,
                &mut "default".to_string(),
                &mut sections,
                &mut sources,
                0
            ),
            sources
        );
        let chain = get(&sections, "default", &["openssl_conf"])
            .and_then(|(_, init, _)| get(&sections, init, &["ssl_conf"]))
            .and_then(|(_, ssl, _)| get(&sections, ssl, &["system_default"]))
            .map(|(_, sys, _)| sys.clone());
        let min = chain
            .as_ref()
            .and_then(|sys| get(&sections, sys, &["MinProtocol", "TLS.MinProtocol"]));
        if let Some((_, value, at)) = min {
            sources.push(at.clone());
            let Some(r) = rank(value) else {
                return Outcome::error(format!(
                    "{}:{}: MinProtocol `{value}` is not a protocol OpenSSL knows",
                    at.path,
                    at.line.unwrap_or(0)
                ))
                .sources(sources);
            };
            return Outcome::verdict(
                r >= want,
                format!(
                    "MinProtocol = {value} ({}:{})",
                    at.path,
                    at.line.unwrap_or(0)
                ),
            )
            .expected(expected)
            .observed(format!("MinProtocol = {value}"))
            .sources(sources);
        }
        let seclevel = chain
            .as_ref()
            .and_then(|sys| get(&sections, sys, &["CipherString"]))
            .and_then(|(_, v, at)| {
                let n = v.split("@SECLEVEL=").nth(1)?.chars().next()?.to_digit(10)?;
                Some((n, at.clone()))
            });
        let Some((name, version, src)) = library else {
            return Outcome::fail(format!(
                "{config} sets no MinProtocol and the OpenSSL library's version is unknown"
            ))
            .expected(expected)
            .observed("no MinProtocol")
            .sources(sources);
        };
        sources.push(src);
        let major = version
            .split(':')
            .next_back()
            .unwrap_or("")
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        let level = seclevel.as_ref().map(|(n, _)| *n).unwrap_or(1);
        if let Some((_, at)) = &seclevel {
            sources.push(at.clone());
        }
        let observed =
            format!("no MinProtocol in {config}; {name} {version}, security level {level}");
        let ok = major >= 3 && level >= 1 && want <= 3;
        Outcome::verdict(
            ok,
            if ok {
                format!("{observed}: OpenSSL 3 refuses TLS 1.0 and 1.1 at this level")
            } else {
                format!("{observed}: TLS below {} may be negotiated; set MinProtocol = {} in the system_default section", self.min_protocol, self.min_protocol)
            },
        )
        .expected(expected)
        .observed(observed)
        .sources(sources)
    }

    fn validate(&self) -> Result<(), String> {
        rank(&self.min_protocol)
            .map(|_| ())
            .ok_or_else(|| format!("`min_protocol` is one of {}", ORDER.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "openssl", min_protocol = "TLSv1.2" }"#;
    const DEB: (&str, &str) = ("/etc/os-release", "ID=debian\nVERSION_ID=12\n");
    const CHAIN: &str = "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\n";

    #[test]
    fn an_explicit_minimum_decides() {
        let ok = format!("{CHAIN}MinProtocol = TLSv1.2\nCipherString = DEFAULT:@SECLEVEL=2\n");
        assert_eq!(
            run_files(&[DEB, ("/etc/ssl/openssl.cnf", &ok)], P).status,
            Status::Pass
        );
        let low = format!("{CHAIN}MinProtocol = TLSv1\n");
        let o = run_files(&[DEB, ("/etc/ssl/openssl.cnf", &low)], P);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("openssl.cnf:7"), "{}", o.message);
    }

    #[test]
    fn rhel_crypto_policy_include_and_library_defaults() {
        let cnf = "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_module\n[ssl_module]\nsystem_default = crypto_policy\n[crypto_policy]\n.include = /etc/crypto-policies/back-ends/opensslcnf.config\n";
        let o = run_files(
            &[
                ("/etc/pki/tls/openssl.cnf", cnf),
                (
                    "/etc/crypto-policies/back-ends/opensslcnf.config",
                    "CipherString = @SECLEVEL=2:kEECDH\nTLS.MinProtocol = TLSv1.2\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let status = "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n\n";
        let o = run_files(
            &[
                DEB,
                ("/etc/ssl/openssl.cnf", CHAIN),
                ("/var/lib/dpkg/status", status),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let zero = format!("{CHAIN}CipherString = DEFAULT:@SECLEVEL=0\n");
        assert_eq!(
            run_files(
                &[
                    DEB,
                    ("/etc/ssl/openssl.cnf", &zero),
                    ("/var/lib/dpkg/status", status)
                ],
                P
            )
            .status,
            Status::Fail
        );
        let old = status
            .replace("libssl3", "libssl1.1")
            .replace("3.0.15", "1.1.1w");
        assert_eq!(
            run_files(
                &[
                    DEB,
                    ("/etc/ssl/openssl.cnf", CHAIN),
                    ("/var/lib/dpkg/status", &old)
                ],
                P
            )
            .status,
            Status::Fail
        );
        assert_eq!(run_files(&[DEB], P).status, Status::NotApplicable);
    }
}
