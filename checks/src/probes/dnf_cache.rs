//! Pending updates on the RHEL family from dnf's own cache of repository
//! metadata (`/var/cache/dnf/<repo>-<hash>/repodata/`, dnf 4; and
//! `/var/cache/libdnf5/…`, dnf 5), read as files in both live and root
//! mode: the same answer `dnf -C check-update` and `dnf -C updateinfo
//! --security` give, without running dnf or reaching a network, and with
//! the advisories' severities and the metadata's age.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::time::SystemTime;

use super::PackageDb;
use super::pending_updates::Pending;
use crate::host::{AtReader, HostError, HostView, digest_file};
use crate::parse::repodata::{self, RepoFile};
use crate::parse::rpm::Evr;
use crate::result::{Source, SourceKind};

/// Where dnf 4 and dnf 5 keep downloaded metadata.
pub const CACHE_DIRS: [&str; 2] = ["/var/cache/dnf", "/var/cache/libdnf5"];
const REPOS_DIR: &str = "/etc/yum.repos.d";

/// Repository ids the `.repo` files declare, each with whether it is
/// enabled (dnf's default: yes) and where that was said. The last
/// assignment wins within a section.
fn declared_repos(
    host: &HostView,
    sources: &mut Vec<Source>,
) -> Result<BTreeMap<String, (bool, Source)>, HostError> {
    let mut repos: BTreeMap<String, (bool, Source)> = BTreeMap::new();
    for file in super::drop_ins(host, &[REPOS_DIR], "*.repo", sources)? {
        sources.push(file.source());
        let mut section: Option<String> = None;
        for (i, line) in file.text().lines().enumerate() {
            let line = line.trim();
            let at = file.source_at(i as u32 + 1);
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim().to_string();
                repos.entry(name.clone()).or_insert((true, at));
                section = Some(name);
            } else if let (Some(s), Some((k, v))) = (&section, line.split_once('=')) {
                if k.trim() == "enabled" {
                    let on = !matches!(
                        v.trim().to_ascii_lowercase().as_str(),
                        "0" | "false" | "no" | "off"
                    );
                    repos.insert(s.clone(), (on, at));
                }
            }
        }
    }
    Ok(repos)
}

/// The repository id of a cache directory `<id>-<16 hex>`.
fn repo_id(dir_name: &str) -> Option<&str> {
    let (id, hash) = dir_name.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Opens a metadata file with the decompression its name says, after
/// digesting it; `Err` names the file.
fn open_metadata(
    host: &HostView,
    path: &str,
    sources: &mut Vec<Source>,
    run: &mut dyn FnMut(&mut dyn BufRead) -> Result<(), String>,
) -> Result<(), HostError> {
    let fail = |message: String| HostError::Io {
        path: path.to_string(),
        message,
    };
    let Some((file, _)) = host.open(path)? else {
        return Err(fail(
            "listed in repomd.xml but missing from the cache".into(),
        ));
    };
    let sha256 = digest_file(&file).map_err(|e| fail(e.to_string()))?;
    sources.push(Source {
        kind: SourceKind::File,
        path: path.to_string(),
        sha256: Some(sha256),
        line: None,
    });
    let raw = AtReader {
        file: &file,
        offset: 0,
    };
    let mut reader: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else if path.ends_with(".zst") {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(raw)
                .map_err(|e| fail(format!("not zstd-compressed: {e}")))?,
        )
    } else if path.ends_with(".xml") {
        Box::new(raw)
    } else {
        let ext = path.rsplit('.').next().unwrap_or("");
        return Err(fail(format!(
            "compressed as .{ext}, which annexa does not read (it reads .gz, .zst and plain .xml)"
        )));
    };
    let mut buffered = BufReader::with_capacity(1 << 16, &mut reader);
    run(&mut buffered).map_err(fail)
}

/// Reads every enabled repository's cached metadata and compares it with
/// the installed packages.
pub(crate) fn scan(host: &HostView, db: &PackageDb) -> Result<Pending, HostError> {
    let mut sources = Vec::new();
    let declared = declared_repos(host, &mut sources)?;
    let mut cached: HashSet<String> = HashSet::new();
    let wanted: HashSet<&str> = db.installed.values().map(|p| p.name.as_str()).collect();
    let mut offered: HashMap<(String, String), Evr> = HashMap::new();
    let mut advisories = Vec::new();
    let mut newest_mtime: Option<SystemTime> = None;
    let mut repos = 0;
    for base in CACHE_DIRS {
        let Some(entries) = host.read_dir(base)? else {
            continue;
        };
        sources.push(HostView::dir_source(base, &entries));
        for dir in entries.iter().filter(|e| e.is_dir) {
            let Some(id) = repo_id(&dir.name) else {
                continue;
            };
            if declared.get(id).is_some_and(|(on, _)| !on) {
                continue;
            }
            let repomd_path = format!("{}/repodata/repomd.xml", dir.path);
            let Some(repomd) = host.read(&repomd_path)? else {
                continue;
            };
            sources.push(repomd.source());
            cached.insert(id.to_string());
            if let Some(modified) = host.metadata(&repomd_path)?.and_then(|m| m.modified) {
                // A time in the future would make stale metadata look fresh.
                if modified > SystemTime::now() {
                    return Err(HostError::Io {
                        path: repomd_path,
                        message: "modified in the future; its age cannot be judged".into(),
                    });
                }
                newest_mtime = newest_mtime.max(Some(modified));
            }
            let files: Vec<RepoFile> =
                repodata::repomd(&repomd.bytes[..]).map_err(|e| HostError::Io {
                    path: repomd_path.clone(),
                    message: e.to_string(),
                })?;
            repos += 1;
            let path_of = |kind: &str| {
                files
                    .iter()
                    .find(|f| f.kind == kind)
                    .map(|f| format!("{}/repodata/{}", dir.path, f.file_name))
            };
            // dnf downloads the zchunk form instead when the repository
            // offers it (Fedora's default).
            let present = |kind: &str| -> Result<Option<String>, HostError> {
                match path_of(kind) {
                    Some(p) if host.exists(&p)? => Ok(Some(p)),
                    _ => Ok(None),
                }
            };
            let primary = match (present("primary")?, present("primary_zck")?) {
                (Some(p), _) => p,
                (None, Some(zck)) => {
                    return Err(HostError::Io {
                        path: zck,
                        message: "zchunk-compressed (.zck), which annexa does not read; set zchunk=False in /etc/dnf/dnf.conf and run dnf makecache".into(),
                    });
                }
                (None, None) => {
                    return Err(HostError::Io {
                        path: repomd_path,
                        message: match path_of("primary") {
                            Some(p) => {
                                format!("lists primary metadata {p}, which is not in the cache")
                            }
                            None => "lists no primary metadata".into(),
                        },
                    });
                }
            };
            open_metadata(host, &primary, &mut sources, &mut |r| {
                for (key, evr) in repodata::newest_offered(r, &wanted).map_err(|e| e.to_string())? {
                    match offered.get(&key) {
                        Some(old) if old.cmp_rpm(&evr).is_ge() => {}
                        _ => {
                            offered.insert(key, evr);
                        }
                    }
                }
                Ok(())
            })?;
            if let Some(zck) = present("updateinfo_zck")?
                .filter(|_| present("updateinfo").ok().flatten().is_none())
            {
                return Err(HostError::Io {
                    path: zck,
                    message: "zchunk-compressed (.zck), which annexa does not read; set zchunk=False in /etc/dnf/dnf.conf and run dnf makecache".into(),
                });
            }
            if let Some(updateinfo) = path_of("updateinfo") {
                open_metadata(host, &updateinfo, &mut sources, &mut |r| {
                    advisories.extend(repodata::advisories(r, &wanted).map_err(|e| e.to_string())?);
                    Ok(())
                })?;
            }
        }
    }
    // An enabled repository dnf has no metadata for hides its updates.
    for (id, (on, at)) in &declared {
        if *on && !cached.contains(id) {
            return Err(HostError::Io {
                path: at.path.clone(),
                message: format!(
                    "line {}: repository {id} is enabled, but dnf's cache has no metadata for it (dnf makecache has not run since); its updates cannot be counted",
                    at.line.unwrap_or(0)
                ),
            });
        }
    }
    let mut upgrades = BTreeMap::new();
    let mut pending_advisories = BTreeMap::new();
    let mut unoffered = Vec::new();
    for (key, inst) in &db.installed {
        if ![inst.arch.as_str(), "noarch"]
            .iter()
            .any(|a| offered.contains_key(&(inst.name.clone(), a.to_string())))
        {
            unoffered.push(format!("{key} {}", inst.version));
        }
        let installed = Evr::parse(&inst.version);
        let candidates = [inst.arch.as_str(), "noarch"];
        let newest = candidates
            .iter()
            .filter_map(|a| offered.get(&(inst.name.clone(), a.to_string())))
            .filter(|v| v.cmp_rpm(&installed).is_gt())
            .max_by(|a, b| a.cmp_rpm(b));
        let Some(newest) = newest else { continue };
        let mut security = false;
        for adv in advisories.iter().filter(|a| a.kind == "security") {
            let fixes = adv.packages.iter().any(|(name, arch, fixed)| {
                *name == inst.name
                    && (arch == &inst.arch || arch == "noarch" || inst.arch == "noarch")
                    && fixed.cmp_rpm(&installed).is_gt()
            });
            if fixes {
                security = true;
                pending_advisories.insert(adv.id.clone(), adv.severity.clone());
            }
        }
        upgrades.insert(
            key.clone(),
            (inst.version.clone(), newest.to_string(), security),
        );
    }
    let newest_list_age_days = newest_mtime
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .map(|d| d.as_secs() / 86400);
    Ok(Pending {
        sources,
        upgrades,
        newest_list_age_days,
        lists: repos,
        advisories: pending_advisories,
        what: "dnf repository metadata",
        unoffered: {
            unoffered.sort();
            unoffered
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::packages::tests::rpm_root;
    use super::super::testing::run;
    use super::repo_id;
    use crate::result::Status;
    use std::io::Write;

    const PROBE: &str =
        r#"{ kind = "pending_updates", security_max = 0, total_max = 1, max_list_age_days = 7 }"#;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    /// A dnf 4 cache directory as dnf makes it, with the given primary and
    /// updateinfo documents gzip-compressed.
    fn cache(root: &std::path::Path, primary: &str, updateinfo: &[u8]) {
        let dir = root.join("var/cache/dnf/baseos-044cae74d71fe9ea/repodata");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("repomd.xml"),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision>
<data type="primary"><location href="repodata/aa-primary.xml.gz"/></data>
<data type="updateinfo"><location href="repodata/bb-updateinfo.xml.gz"/></data></repomd>"#,
        )
        .unwrap();
        std::fs::write(dir.join("aa-primary.xml.gz"), gz(primary)).unwrap();
        std::fs::write(dir.join("bb-updateinfo.xml.gz"), updateinfo).unwrap();
    }

    const PRIMARY: &str = r#"<metadata xmlns="http://linux.duke.edu/metadata/common" packages="2">
<package type="rpm"><name>annexa-fixture</name><arch>noarch</arch><version epoch="0" ver="1.2.3" rel="5.test"/></package>
<package type="rpm"><name>annexa-epoch</name><arch>noarch</arch><version epoch="2" ver="0.9~rc1" rel="1"/></package>
</metadata>"#;

    #[test]
    fn pending_and_security_updates_from_the_cache_of_a_root() {
        let (dir, view) = rpm_root();
        let advisory = r#"<updates><update type="security"><id>RHSA-2026:0001</id><severity>Important</severity>
<pkglist><collection><package name="annexa-fixture" version="1.2.3" release="5.test" epoch="0" arch="noarch"/></collection></pkglist></update></updates>"#;
        cache(dir.path(), PRIMARY, &gz(advisory));
        let o = run(&view, PROBE);
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        let observed = o.observed.unwrap();
        assert!(observed.starts_with("1 pending, 1 security, metadata 0 days old: annexa-fixture 1.2.3-4.test -> 1.2.3-5.test (security)"), "{observed}");
        assert!(
            observed.contains("RHSA-2026:0001 (Important)"),
            "{observed}"
        );
        assert!(
            o.sources
                .iter()
                .any(|s| s.path.ends_with("bb-updateinfo.xml.gz") && s.sha256.is_some())
        );
        // The same update as a bug fix: pending, not security.
        let (dir, view) = rpm_root();
        cache(
            dir.path(),
            PRIMARY,
            &gz(&advisory.replace("security", "bugfix")),
        );
        let o = run(&view, PROBE);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
    }

    #[test]
    fn metadata_that_is_not_xml_or_missing_is_an_error_naming_the_file() {
        let (dir, view) = rpm_root();
        cache(dir.path(), PRIMARY, &gz("<<this is not XML"));
        let o = run(&view, PROBE);
        assert_eq!(o.status, Status::Error);
        assert!(
            o.message.starts_with(
                "/var/cache/dnf/baseos-044cae74d71fe9ea/repodata/bb-updateinfo.xml.gz: "
            ),
            "{}",
            o.message
        );
        let (dir, view) = rpm_root();
        cache(dir.path(), PRIMARY, b"plain text, not gzip");
        let o = run(&view, PROBE);
        assert_eq!(o.status, Status::Error);
        assert!(o.message.contains("bb-updateinfo.xml.gz"), "{}", o.message);
        // No cache at all: dnf makecache never ran.
        let (_dir, view) = rpm_root();
        let o = run(&view, PROBE);
        assert_eq!(o.status, Status::Error);
        assert!(
            o.message.contains("dnf makecache has never run"),
            "{}",
            o.message
        );
    }

    #[test]
    fn cache_directories_name_their_repository() {
        assert_eq!(repo_id("baseos-044cae74d71fe9ea"), Some("baseos"));
        assert_eq!(
            repo_id("rhel-9-for-x86_64-appstream-rpms-5b3a3c7b0d8e9f10"),
            Some("rhel-9-for-x86_64-appstream-rpms")
        );
        assert_eq!(repo_id("baseos.solv"), None);
        assert_eq!(repo_id("tmp"), None);
    }
}
