//! Updates pending according to the package metadata already on the host —
//! no network access. On Debian-family systems the installed versions from
//! the dpkg status are compared with the newest version each apt list under
//! /var/lib/apt/lists offers for the package's architecture (plain, `.lz4`
//! or `.gz` lists); a list from a `*security*` suite counts as a security
//! update. The newest offered version stands in for apt's candidate: pinning
//! is not evaluated. On a live RPM host, dnf's cached metadata is asked
//! (`dnf -C`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use super::{Ctx, Outcome, PackageDb, PackageFormat, Probe, host_try};
use crate::expect::Num;
use crate::host::{AtReader, HostError, HostView, digest_file};
use crate::parse::dpkg::{Installed, ListScanner, compare_versions};
use crate::result::{Source, SourceKind};

const LISTS: &str = "/var/lib/apt/lists";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingUpdatesProbe {
    /// Most security updates allowed to be pending.
    #[serde(default)]
    security_max: Option<Num>,
    /// Most updates of any kind allowed to be pending.
    #[serde(default)]
    total_max: Option<Num>,
    /// The newest package list must be at most this many days old, or the
    /// pending figures cannot be trusted.
    #[serde(default)]
    max_list_age_days: Option<Num>,
}

/// What the package metadata says, computed once per scan (it can be
/// large).
pub(crate) struct Pending {
    pub(crate) sources: Vec<Source>,
    /// name → (installed, newest offered, a security update)
    pub(crate) upgrades: BTreeMap<String, (String, String, bool)>,
    pub(crate) newest_list_age_days: Option<u64>,
    /// apt lists or dnf repositories read.
    pub(crate) lists: usize,
    /// Security advisories that a pending update fixes: id → severity (dnf;
    /// apt lists carry none).
    pub(crate) advisories: BTreeMap<String, String>,
    /// What was read, for messages.
    pub(crate) what: &'static str,
    /// Installed packages (`name version`) that no source offers in any
    /// version: installed from a local file, or left behind by a source
    /// that was removed.
    pub(crate) unoffered: Vec<String>,
}

fn scan_lists(
    host: &HostView,
    installed: &HashMap<String, Installed>,
) -> Result<Pending, HostError> {
    let mut sources = Vec::new();
    let sources = &mut sources;
    let entries = host.read_dir(LISTS)?.unwrap_or_default();
    sources.push(HostView::dir_source(LISTS, &entries));
    let mut best: HashMap<String, (String, bool)> = HashMap::new();
    let mut newest_mtime: Option<SystemTime> = None;
    let mut lists = 0;
    for e in entries
        .iter()
        .filter(|e| !e.is_dir && e.link_target.is_none())
    {
        let name = e.name.as_str();
        let (is_list, compression) = if name.ends_with("_Packages") {
            (true, "")
        } else if name.ends_with("_Packages.lz4") {
            (true, "lz4")
        } else if name.ends_with("_Packages.gz") {
            (true, "gz")
        } else {
            (false, "")
        };
        if !is_list {
            continue;
        }
        let Some((file, meta)) = host.open(&e.path)? else {
            continue;
        };
        lists += 1;
        // A time in the future would make a stale list look fresh.
        if meta.modified.is_some_and(|m| m > SystemTime::now()) {
            return Err(HostError::Io {
                path: e.path.clone(),
                message: "modified in the future; its age cannot be judged".into(),
            });
        }
        newest_mtime = newest_mtime.max(meta.modified);
        let security = name.contains("security");
        let mut scanner = ListScanner::new(installed);
        // The lists are the largest input of a scan (≈100 MB uncompressed on
        // a Debian host), so their digest, their decompression and the scan
        // of the stanzas run on three threads. All three read the same open
        // file (positioned reads), so the digest covers exactly the bytes
        // that were scanned.
        let file = &file;
        let (read, scanned, digest) = std::thread::scope(|s| {
            let digest = s.spawn(move || digest_file(file));
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let scan = s.spawn(move || {
                for chunk in rx {
                    scanner.feed(&chunk);
                }
                scanner
            });
            let reader = AtReader { file, offset: 0 };
            let read = match compression {
                "lz4" => pump(lz4_flex::frame::FrameDecoder::new(reader), &tx),
                "gz" => pump(flate2::read::GzDecoder::new(reader), &tx),
                _ => pump(reader, &tx),
            };
            drop(tx);
            (read, scan.join(), digest.join())
        });
        let failed = |what: &str| HostError::Io {
            path: e.path.clone(),
            message: format!("reading package list: {what}"),
        };
        read.map_err(|err| failed(&err.to_string()))?;
        let mut scanner = scanned.map_err(|_| failed("the scanning thread panicked"))?;
        let digest = digest
            .map_err(|_| failed("the digest thread panicked"))?
            .map_err(|err| failed(&err.to_string()))?;
        scanner.finish();
        sources.push(Source {
            kind: SourceKind::File,
            path: e.path.clone(),
            sha256: Some(digest),
            line: None,
        });
        for (pkg, cand) in scanner.newest {
            match best.get_mut(&pkg) {
                Some((v, sec)) => match compare_versions(&cand.version, v) {
                    std::cmp::Ordering::Greater => {
                        *v = cand.version;
                        *sec = security;
                    }
                    std::cmp::Ordering::Equal => *sec |= security,
                    std::cmp::Ordering::Less => {}
                },
                None => {
                    best.insert(pkg, (cand.version, security));
                }
            }
        }
    }
    let mut unoffered: Vec<String> = installed
        .iter()
        .filter(|(key, _)| {
            let bare = key.split(':').next().unwrap_or(key);
            !best.contains_key(*key) && !best.contains_key(bare)
        })
        .map(|(key, inst)| format!("{key} {}", inst.version))
        .collect();
    unoffered.sort();
    let mut upgrades = BTreeMap::new();
    for (name, (version, security)) in best {
        if let Some(inst) = installed.get(&name) {
            if compare_versions(&version, &inst.version).is_gt() {
                upgrades.insert(name, (inst.version.clone(), version, security));
            }
        }
    }
    let newest_list_age_days = newest_mtime
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .map(|d| d.as_secs() / 86400);
    Ok(Pending {
        sources: std::mem::take(sources),
        upgrades,
        newest_list_age_days,
        lists,
        advisories: BTreeMap::new(),
        what: "apt package lists",
        unoffered,
    })
}

pub(crate) fn pending_of(ctx: &Ctx<'_>, db: &PackageDb) -> Result<Arc<Pending>, HostError> {
    ctx.pending
        .get_or_init(|| {
            match db.format {
                PackageFormat::Dpkg => scan_lists(ctx.host, &db.installed),
                PackageFormat::Rpm => super::dnf_cache::scan(ctx.host, db),
            }
            .map(Arc::new)
        })
        .clone()
}

pub(crate) fn prefetch(ctx: &Ctx<'_>) {
    if let Ok(Some(db)) = ctx.packages() {
        let _ = pending_of(ctx, &db);
    }
}

/// The size of the decompressed pieces handed to the scanning thread: with
/// the channel's four slots, at most six pieces are alive at once, which
/// bounds the memory the lists take whatever their size.
const PIECE: usize = 256 * 1024;

fn pump(mut reader: impl Read, tx: &std::sync::mpsc::SyncSender<Vec<u8>>) -> std::io::Result<()> {
    loop {
        let mut buf = vec![0u8; PIECE];
        let mut filled = 0;
        while filled < buf.len() {
            let n = reader.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(());
        }
        buf.truncate(filled);
        if tx.send(buf).is_err() {
            return Ok(());
        }
    }
}

/// Resolved limits: (security updates, all updates, list age in days).
type Limits = (Option<i64>, Option<i64>, Option<i64>);

impl PendingUpdatesProbe {
    fn limits(&self, ctx: &Ctx<'_>) -> Result<Limits, String> {
        let r = |n: &Option<Num>| n.as_ref().map(|n| n.resolve(ctx.params)).transpose();
        Ok((
            r(&self.security_max)?,
            r(&self.total_max)?,
            r(&self.max_list_age_days)?,
        ))
    }

    fn expected(&self, sec: Option<i64>, total: Option<i64>, age: Option<i64>) -> String {
        let mut e = Vec::new();
        if let Some(s) = sec {
            e.push(format!("at most {s} security updates pending"));
        }
        if let Some(t) = total {
            e.push(format!("at most {t} updates pending"));
        }
        if let Some(a) = age {
            e.push(format!("package lists at most {a} days old"));
        }
        e.join(", ")
    }
}

impl Probe for PendingUpdatesProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let (sec, total, age) = match self.limits(ctx) {
            Ok(l) => l,
            Err(e) => return Outcome::error(e),
        };
        let db = match host_try!(ctx.packages()) {
            Some(db) => db,
            None => {
                return Outcome::error(format!(
                    "no package database ({}, {}); pending updates cannot be determined",
                    super::packages::DPKG_STATUS,
                    super::packages::RPMDB_SQLITE.join(", ")
                ))
                .sources(vec![HostView::absent_source(super::packages::DPKG_STATUS)]);
            }
        };
        let mut sources = vec![db.source.clone()];
        let pending = host_try!(pending_of(ctx, &db), sources);
        sources.extend(pending.sources.iter().cloned());
        let expected = self.expected(sec, total, age);
        if pending.lists == 0 {
            let missing = match db.format {
                PackageFormat::Dpkg => {
                    format!("no package lists under {LISTS} (apt update has never run here)")
                }
                PackageFormat::Rpm => format!(
                    "no enabled repository's metadata under {} (dnf makecache has never run here)",
                    super::dnf_cache::CACHE_DIRS.join(" or ")
                ),
            };
            return Outcome::error(format!("{missing}; pending updates cannot be determined"))
                .expected(expected)
                .sources(sources);
        }
        let security = pending.upgrades.values().filter(|u| u.2).count();
        let all = pending.upgrades.len();
        let mut problems = Vec::new();
        if let Some(s) = sec {
            if security as i64 > s {
                problems.push(format!("{security} security updates pending"));
            }
        }
        if let Some(t) = total {
            if all as i64 > t {
                problems.push(format!("{all} updates pending"));
            }
        }
        if let (Some(max_age), Some(days)) = (age, pending.newest_list_age_days) {
            if days as i64 > max_age {
                problems.push(format!("the newest {} is {days} days old", pending.what));
            }
        }
        let mut names: Vec<String> = pending
            .upgrades
            .iter()
            .filter(|(_, u)| u.2 || sec.is_none())
            .take(20)
            .map(|(n, (from, to, s))| {
                format!("{n} {from} -> {to}{}", if *s { " (security)" } else { "" })
            })
            .collect();
        if names.is_empty() {
            names = pending
                .upgrades
                .iter()
                .take(20)
                .map(|(n, (from, to, _))| format!("{n} {from} -> {to}"))
                .collect();
        }
        let mut observed = format!("{all} pending, {security} security");
        if let Some(d) = pending.newest_list_age_days {
            observed.push_str(&format!(", metadata {d} days old"));
        }
        if !names.is_empty() {
            observed.push_str(": ");
            observed.push_str(&names.join(", "));
        }
        if !pending.advisories.is_empty() {
            let list: Vec<String> = pending
                .advisories
                .iter()
                .take(20)
                .map(|(id, sev)| {
                    if sev.is_empty() {
                        id.clone()
                    } else {
                        format!("{id} ({sev})")
                    }
                })
                .collect();
            observed.push_str(&format!("; advisories: {}", list.join(", ")));
        }
        let message = if problems.is_empty() {
            format!(
                "{all} updates pending ({security} security) per {} ({})",
                pending.what, pending.lists
            )
        } else {
            problems.join("; ")
        };
        Outcome::verdict(problems.is_empty(), message)
            .expected(expected)
            .observed(observed)
            .sources(sources)
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.security_max, &self.total_max, &self.max_list_age_days])
    }

    fn validate(&self) -> Result<(), String> {
        if self.security_max.is_none()
            && self.total_max.is_none()
            && self.max_list_age_days.is_none()
        {
            return Err(
                "set at least one of `security_max`, `total_max`, `max_list_age_days`".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::result::Status;
    use std::io::Write;

    const STATUS: &str = "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.11-1~deb12u2\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";
    const MAIN: &str = "Package: openssl\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\n";
    const SECURITY: &str = "Package: openssl\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n";
    const MAIN_LIST: &str =
        "/var/lib/apt/lists/mirror.example_debian_dists_bookworm_main_binary-amd64_Packages";
    const SEC_LIST: &str = "/var/lib/apt/lists/mirror.example_debian-security_dists_bookworm-security_main_binary-amd64_Packages";

    #[test]
    fn security_updates_are_counted_apart() {
        let (_d, view) = root(&[
            ("/var/lib/dpkg/status", STATUS),
            (MAIN_LIST, MAIN),
            (SEC_LIST, SECURITY),
        ]);
        let o = run(&view, r#"{ kind = "pending_updates", security_max = 0 }"#);
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(
            o.observed
                .as_ref()
                .unwrap()
                .starts_with("2 pending, 1 security"),
            "{o:?}"
        );
        assert!(
            o.observed
                .as_ref()
                .unwrap()
                .contains("openssl 3.0.11-1~deb12u2 -> 3.0.15-1~deb12u1 (security)")
        );
        assert!(
            o.sources
                .iter()
                .any(|s| s.path == SEC_LIST && s.sha256.is_some())
        );
        assert_eq!(
            run(&view, r#"{ kind = "pending_updates", total_max = 2 }"#).status,
            Status::Pass
        );
        assert_eq!(
            run(&view, r#"{ kind = "pending_updates", total_max = 1 }"#).status,
            Status::Fail
        );
        assert_eq!(
            run(
                &view,
                r#"{ kind = "pending_updates", max_list_age_days = 7 }"#
            )
            .status,
            Status::Pass
        );
    }

    #[test]
    fn up_to_date_passes_and_compressed_lists_are_read() {
        let (d, view) = root(&[("/var/lib/dpkg/status", STATUS)]);
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(SECURITY.as_bytes()).unwrap();
        let path = d
            .path()
            .join(SEC_LIST.trim_start_matches('/').to_string() + ".lz4");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, lz4.finish().unwrap()).unwrap();
        let o = run(&view, r#"{ kind = "pending_updates", security_max = 0 }"#);
        assert_eq!(o.status, Status::Fail, "{o:?}");
        let (_d, view) = root(&[
            ("/var/lib/dpkg/status", STATUS),
            (
                MAIN_LIST,
                "Package: openssl\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n",
            ),
        ]);
        assert_eq!(
            run(
                &view,
                r#"{ kind = "pending_updates", security_max = 0, total_max = 0 }"#
            )
            .status,
            Status::Pass
        );
    }

    #[test]
    fn a_corrupt_compressed_list_is_an_error_naming_it() {
        let (d, view) = root(&[("/var/lib/dpkg/status", STATUS)]);
        let path = d
            .path()
            .join(SEC_LIST.trim_start_matches('/').to_string() + ".lz4");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"\x04\x22\x4d\x18garbage that is not an lz4 frame").unwrap();
        let o = run(&view, r#"{ kind = "pending_updates", security_max = 0 }"#);
        assert_eq!(o.status, Status::Error, "{o:?}");
        assert!(
            o.message.contains("Packages.lz4: reading package list"),
            "{}",
            o.message
        );
    }

    #[test]
    fn without_lists_or_status_the_answer_is_error_not_pass() {
        let (_d, view) = root(&[("/var/lib/dpkg/status", STATUS)]);
        let o = run(&view, r#"{ kind = "pending_updates", security_max = 0 }"#);
        assert_eq!(o.status, Status::Error);
        assert!(o.message.contains("no package lists"));
        let (_d, view) = root(&[]);
        assert_eq!(
            run(&view, r#"{ kind = "pending_updates", security_max = 0 }"#).status,
            Status::Error
        );
    }

    /// Ubuntu's security pocket and the ESM pockets (apps, infra) count as
    /// security lists, by the names apt gives their files.
    #[test]
    fn ubuntu_security_and_esm_pockets_count_as_security() {
        let status = "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.13-0ubuntu3.1\n\nPackage: imagemagick\nStatus: install ok installed\nArchitecture: amd64\nVersion: 8:6.9.12.98+dfsg1-5.2build2\n\nPackage: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 8.5.0-2ubuntu10.1\n";
        let (_d, view) = root(&[
            (
                "/etc/os-release",
                "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n",
            ),
            ("/var/lib/dpkg/status", status),
            (
                "/var/lib/apt/lists/archive.ubuntu.com_ubuntu_dists_noble-updates_main_binary-amd64_Packages",
                "Package: curl\nVersion: 8.5.0-2ubuntu10.4\nArchitecture: amd64\n",
            ),
            (
                "/var/lib/apt/lists/security.ubuntu.com_ubuntu_dists_noble-security_main_binary-amd64_Packages",
                "Package: openssl\nVersion: 3.0.13-0ubuntu3.4\nArchitecture: amd64\n",
            ),
            (
                "/var/lib/apt/lists/esm.ubuntu.com_apps_ubuntu_dists_noble-apps-security_main_binary-amd64_Packages",
                "Package: imagemagick\nVersion: 8:6.9.12.98+dfsg1-5.2build2+esm1\nArchitecture: amd64\n",
            ),
        ]);
        let o = run(&view, r#"{ kind = "pending_updates", security_max = 0 }"#);
        assert_eq!(o.status, Status::Fail, "{o:?}");
        let observed = o.observed.unwrap();
        assert!(observed.starts_with("3 pending, 2 security"), "{observed}");
        assert!(observed.contains("imagemagick 8:6.9.12.98+dfsg1-5.2build2 -> 8:6.9.12.98+dfsg1-5.2build2+esm1 (security)"), "{observed}");
    }
}
