//! Where software comes from: every configured package source is
//! authenticated, and every installed package is offered by one.
//!
//! APT: one-line sources (`deb [options] URI suite components`) in
//! /etc/apt/sources.list and sources.list.d/*.list, and deb822 stanzas in
//! sources.list.d/*.sources. A source is authenticated when it names its
//! key (`signed-by`) or apt's global keyring holds keys, and neither the
//! source (`trusted=yes`, `allow-insecure=yes`, `allow-weak=yes`,
//! `allow-downgrade-to-insecure=yes`) nor apt.conf
//! (`Acquire::AllowInsecureRepositories`,
//! `Acquire::AllowDowngradeToInsecureRepositories`,
//! `APT::Get::AllowUnauthenticated`) switches the check off.
//!
//! DNF: every enabled repository of /etc/yum.repos.d checks package
//! signatures (`gpgcheck`, in the repository or else in dnf.conf's
//! `[main]`; dnf's own default is off), and dnf.conf does not turn off the
//! check of local packages (`localpkg_gpgcheck=0`).

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::host::{HostError, HostView};
use crate::parse::ini;
use crate::platform::Family;
use crate::result::Source;

const APT_CONF_OFF: [&str; 3] = [
    "acquire::allowinsecurerepositories",
    "acquire::allowdowngradetoinsecurerepositories",
    "apt::get::allowunauthenticated",
];
const APT_SOURCE_OFF: [&str; 4] = [
    "trusted",
    "allow-insecure",
    "allow-weak",
    "allow-downgrade-to-insecure",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// Every source checks signatures.
    Authenticated,
    /// Every installed package is offered by a configured source.
    Provided,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSourcesProbe {
    rule: Rule,
}

fn yes(v: &str) -> bool {
    matches!(
        v.trim()
            .trim_matches('"')
            .trim_end_matches(';')
            .trim_matches('"')
            .to_ascii_lowercase()
            .as_str(),
        "yes" | "true" | "1" | "on" | "enable"
    )
}

/// One APT source: (what it says, its options as lower-case key → value, where).
struct AptSource {
    text: String,
    options: Vec<(String, String)>,
    at: Source,
}

fn one_line_sources(file: &crate::host::FileData) -> Vec<AptSource> {
    let mut out = Vec::new();
    for (i, raw) in file.text().lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb-src")
            .or_else(|| line.strip_prefix("deb"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let mut options = Vec::new();
        if let Some(inner) = rest.strip_prefix('[') {
            let Some((opts, _)) = inner.split_once(']') else {
                continue;
            };
            for o in opts.split_whitespace() {
                if let Some((k, v)) = o.split_once('=') {
                    options.push((k.to_ascii_lowercase(), v.to_string()));
                }
            }
        }
        out.push(AptSource {
            text: line.to_string(),
            options,
            at: file.source_at(i as u32 + 1),
        });
    }
    out
}

fn deb822_sources(file: &crate::host::FileData) -> Vec<AptSource> {
    let mut out = Vec::new();
    let text = file.text();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 0u32;
    let mut flush = |fields: &mut Vec<(String, String)>, start: u32| {
        if fields.is_empty() {
            return;
        }
        let enabled = fields
            .iter()
            .find(|(k, _)| k == "enabled")
            .is_none_or(|(_, v)| yes(v));
        if enabled {
            let uris = fields
                .iter()
                .find(|(k, _)| k == "uris")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let suites = fields
                .iter()
                .find(|(k, _)| k == "suites")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let options = fields.clone();
            out.push(AptSource {
                text: format!("{uris} {suites}"),
                options,
                at: file.source_at(start),
            });
        }
        fields.clear();
    };
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            flush(&mut fields, start);
            continue;
        }
        if raw.starts_with('#') {
            continue;
        }
        if raw.starts_with(' ') || raw.starts_with('\t') {
            // A continuation line (an inline Signed-By key block).
            continue;
        }
        if let Some((k, v)) = raw.split_once(':') {
            if fields.is_empty() {
                start = i as u32 + 1;
            }
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    flush(&mut fields, start);
    out
}

impl PackageSourcesProbe {
    fn apt(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        let mut bad = Vec::new();
        let mut good = Vec::new();
        let mut files = Vec::new();
        if let Some(f) = ctx.read("/etc/apt/sources.list")? {
            files.push(f);
        }
        files.extend(drop_ins(
            ctx.host,
            &["/etc/apt/sources.list.d"],
            "*.list",
            sources,
        )?);
        let deb822 = drop_ins(ctx.host, &["/etc/apt/sources.list.d"], "*.sources", sources)?;
        let global = {
            let mut keys = Vec::new();
            if ctx.host.exists("/etc/apt/trusted.gpg")? {
                keys.push("/etc/apt/trusted.gpg".to_string());
            }
            if let Some(e) = ctx.host.read_dir("/etc/apt/trusted.gpg.d")? {
                sources.push(HostView::dir_source("/etc/apt/trusted.gpg.d", &e));
                keys.extend(
                    e.iter()
                        .filter(|e| e.name.ends_with(".gpg") || e.name.ends_with(".asc"))
                        .map(|e| e.path.clone()),
                );
            }
            keys
        };
        let mut all: Vec<AptSource> = files.iter().flat_map(|f| one_line_sources(f)).collect();
        all.extend(deb822.iter().flat_map(|f| deb822_sources(f)));
        for f in files.iter().chain(&deb822) {
            sources.push(f.source());
        }
        for s in &all {
            let off: Vec<String> = s
                .options
                .iter()
                .filter(|(k, v)| APT_SOURCE_OFF.contains(&k.as_str()) && yes(v))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let loc = format!("{}:{}", s.at.path, s.at.line.unwrap_or(0));
            if !off.is_empty() {
                bad.push(format!("`{}` ({loc}) sets {}", s.text, off.join(", ")));
                sources.push(s.at.clone());
            } else if let Some((_, key)) = s.options.iter().find(|(k, _)| k == "signed-by") {
                let key = if key.contains("BEGIN PGP") {
                    "an inline key".to_string()
                } else {
                    key.clone()
                };
                good.push(format!("`{}` signed by {key}", s.text));
            } else if !global.is_empty() {
                good.push(format!(
                    "`{}` checked against the global keyring ({})",
                    s.text,
                    global.join(", ")
                ));
            } else {
                bad.push(format!(
                    "`{}` ({loc}) names no signed-by key and apt's global keyring is empty",
                    s.text
                ));
                sources.push(s.at.clone());
            }
        }
        let mut conf = Vec::new();
        if let Some(f) = ctx.read("/etc/apt/apt.conf")? {
            conf.push(f);
        }
        conf.extend(drop_ins(ctx.host, &["/etc/apt/apt.conf.d"], "*", sources)?);
        for f in &conf {
            for (i, raw) in f.text().lines().enumerate() {
                let line = raw.split("//").next().unwrap_or("").trim();
                let Some((key, value)) = line.split_once(char::is_whitespace) else {
                    continue;
                };
                if APT_CONF_OFF.contains(&key.to_ascii_lowercase().as_str()) && yes(value) {
                    bad.push(format!("{}:{} sets {key} {}", f.path, i + 1, value.trim()));
                    sources.push(f.source_at(i as u32 + 1));
                }
            }
        }
        if all.is_empty() && bad.is_empty() {
            bad.push(
                "no APT source is configured (/etc/apt/sources.list and sources.list.d name none)"
                    .into(),
            );
        }
        Ok((good, bad))
    }

    fn dnf(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        let mut bad = Vec::new();
        let mut good = Vec::new();
        let mut main_gpgcheck = None;
        for conf in ["/etc/dnf/dnf.conf", "/etc/yum.conf"] {
            if let Some(f) = ctx.read(conf)? {
                sources.push(f.source());
                for e in ini::parse(&f.text())
                    .into_iter()
                    .filter(|e| e.section == "main")
                {
                    match e.key.as_str() {
                        "gpgcheck" => main_gpgcheck = Some((yes(&e.value), f.source_at(e.line))),
                        "localpkg_gpgcheck" if !yes(&e.value) => {
                            bad.push(format!("{conf}:{} sets localpkg_gpgcheck={}, so local packages install unverified", e.line, e.value));
                            sources.push(f.source_at(e.line));
                        }
                        _ => {}
                    }
                }
                break;
            }
        }
        let files = drop_ins(ctx.host, &["/etc/yum.repos.d"], "*.repo", sources)?;
        let mut repos = 0;
        for f in &files {
            sources.push(f.source());
            let entries = ini::parse(&f.text());
            let mut sections: Vec<&str> = entries
                .iter()
                .map(|e| e.section.as_str())
                .filter(|s| !s.is_empty())
                .collect();
            sections.dedup();
            for sec in sections {
                let get = |k: &str| {
                    entries
                        .iter()
                        .rev()
                        .find(|e| e.section == sec && e.key == k)
                };
                if get("enabled").is_some_and(|e| !yes(&e.value)) {
                    continue;
                }
                repos += 1;
                match (get("gpgcheck"), &main_gpgcheck) {
                    (Some(e), _) if yes(&e.value) => good.push(format!("{sec}: gpgcheck={}", e.value)),
                    (Some(e), _) => {
                        bad.push(format!("{sec} ({}:{}) sets gpgcheck={}", f.path, e.line, e.value));
                        sources.push(f.source_at(e.line));
                    }
                    (None, Some((true, at))) => good.push(format!("{sec}: gpgcheck from {}:{}", at.path, at.line.unwrap_or(0))),
                    (None, _) => bad.push(format!("{sec} ({}) has no gpgcheck, and dnf.conf does not turn it on (dnf's default is off)", f.path)),
                }
            }
        }
        if repos == 0 && bad.is_empty() {
            bad.push("no enabled repository in /etc/yum.repos.d".into());
        }
        Ok((good, bad))
    }
}

impl Probe for PackageSourcesProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let family = ctx.platform().platform.family;
        match self.rule {
            Rule::Authenticated => {
                let (good, bad) = match family {
                    Family::Debian => host_try!(self.apt(ctx, &mut sources), sources),
                    Family::Rhel => host_try!(self.dnf(ctx, &mut sources), sources),
                    Family::Unknown => {
                        return Outcome::not_applicable(
                            "the platform's package manager is not APT or DNF",
                        );
                    }
                };
                let expected = "every package source verifies signatures".to_string();
                if bad.is_empty() {
                    Outcome::pass(format!("{} sources, all authenticated", good.len()))
                        .expected(expected)
                        .observed(good.join("; "))
                        .sources(sources)
                } else {
                    Outcome::fail(bad.join("; "))
                        .expected(expected)
                        .observed(bad.join("; "))
                        .sources(sources)
                }
            }
            Rule::Provided => {
                let Some(db) = host_try!(ctx.packages(), sources) else {
                    return Outcome::error(
                        "no package database: installed packages cannot be listed",
                    );
                };
                sources.push(db.source.clone());
                let pending = host_try!(super::pending_updates::pending_of(ctx, &db), sources);
                sources.extend(pending.sources.iter().cloned());
                if pending.lists == 0 {
                    return Outcome::error(format!(
                        "no {} on the host: which source offers what is unknown (refresh the package metadata)",
                        pending.what
                    ))
                    .sources(sources);
                }
                let expected = format!(
                    "every installed package offered by a configured source ({})",
                    pending.what
                );
                let n = pending.unoffered.len();
                if n == 0 {
                    return Outcome::pass(format!(
                        "all {} installed packages are offered by a configured source",
                        db.installed.len()
                    ))
                    .expected(expected)
                    .observed(format!(
                        "{} packages, none without a source",
                        db.installed.len()
                    ))
                    .sources(sources);
                }
                let shown: Vec<&String> = pending.unoffered.iter().take(20).collect();
                let more = if n > 20 {
                    format!(" and {} more", n - 20)
                } else {
                    String::new()
                };
                let list = format!(
                    "{}{more}",
                    shown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                Outcome::fail(format!("{n} installed packages no configured source offers (local or orphaned installs): {list}"))
                    .expected(expected)
                    .observed(list)
                    .sources(sources)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "package_sources", rule = "authenticated" }"#;
    const DEB: (&str, &str) = ("/etc/os-release", "ID=debian\nVERSION_ID=12\n");
    const RHEL: (&str, &str) = ("/etc/os-release", "ID=rhel\nVERSION_ID=9.4\n");

    #[test]
    fn apt_sources_need_a_key_and_no_switch_that_turns_checks_off() {
        let signed = (
            "/etc/apt/sources.list.d/debian.sources",
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        );
        assert_eq!(run_files(&[DEB, signed], P).status, Status::Pass);
        let o = run_files(
            &[
                DEB,
                (
                    "/etc/apt/sources.list",
                    "deb [trusted=yes] http://repo.example/ stable main\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("trusted=yes"), "{}", o.message);
        let o = run_files(
            &[
                DEB,
                (
                    "/etc/apt/sources.list",
                    "deb http://repo.example/ stable main\n",
                ),
            ],
            P,
        );
        assert!(
            o.message.contains("global keyring is empty"),
            "{}",
            o.message
        );
        let o = run_files(
            &[
                DEB,
                signed,
                (
                    "/etc/apt/apt.conf.d/99insecure",
                    "APT::Get::AllowUnauthenticated \"true\";\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("99insecure:1"), "{}", o.message);
    }

    #[test]
    fn dnf_repositories_check_signatures() {
        let main = ("/etc/dnf/dnf.conf", "[main]\ngpgcheck=1\n");
        let repo = (
            "/etc/yum.repos.d/rhel.repo",
            "[baseos]\nbaseurl=https://cdn.example/baseos\n\n[extra]\nbaseurl=http://x\ngpgcheck=0\nenabled=0\n",
        );
        assert_eq!(run_files(&[RHEL, main, repo], P).status, Status::Pass);
        let bad = (
            "/etc/yum.repos.d/local.repo",
            "[local]\nbaseurl=file:///srv/repo\ngpgcheck=0\n",
        );
        let o = run_files(&[RHEL, main, repo, bad], P);
        assert!(
            o.message
                .contains("local (/etc/yum.repos.d/local.repo:3) sets gpgcheck=0"),
            "{}",
            o.message
        );
        let o = run_files(
            &[
                RHEL,
                (
                    "/etc/dnf/dnf.conf",
                    "[main]\nlocalpkg_gpgcheck=0\ngpgcheck=1\n",
                ),
                repo,
            ],
            P,
        );
        assert!(o.message.contains("localpkg_gpgcheck=0"));
        let o = run_files(&[RHEL, repo], P);
        assert!(o.message.contains("dnf's default is off"), "{}", o.message);
    }
}
