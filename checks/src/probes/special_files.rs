//! Files that carry privilege or invite tampering, found by walking system
//! directories: setuid and setgid programs (an inventory compared with
//! what the distribution's own packages install, plus an allowed list),
//! world-writable files, world-writable directories without the sticky
//! bit, and files whose owner or group no account or group names.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::walk::Found;
use super::{Ctx, Outcome, Probe, WalkRequest, host_try};
use crate::host::{HostError, HostView};
use crate::parse::glob_match;
use crate::probes::packages::PackageFormat;
use crate::result::{Source, SourceKind};

/// At most this many offenders are named in a message (all are counted).
const SHOWN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// Setuid/setgid files installed by a package or allowed by the parameter.
    Setuid,
    /// No regular file writable by everyone.
    WorldWritableFiles,
    /// Every world-writable directory has the sticky bit.
    StickyDirs,
    /// Every file's owner and group exist.
    Unowned,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialFilesProbe {
    rule: Rule,
    /// Directories walked (a directory that is a link, such as /bin on a
    /// merged-/usr system, is covered by its target and skipped).
    dirs: Vec<String>,
    /// How deep below each directory.
    #[serde(default = "depth")]
    depth: usize,
    /// Paths (globs) never reported.
    #[serde(default)]
    exclude: Vec<String>,
    /// A text parameter listing further allowed setuid/setgid paths
    /// (comma or space separated).
    #[serde(default)]
    allow_param: Option<String>,
}

fn depth() -> usize {
    8
}

impl SpecialFilesProbe {
    /// The entries under `dirs` that `keep` selects, how many entries were
    /// examined, and what could not be read.
    fn found(
        &self,
        ctx: &Ctx<'_>,
        sources: &mut Vec<Source>,
        keep: impl Fn(&Found) -> bool,
    ) -> Result<(Vec<Found>, usize, Vec<String>), HostError> {
        let mut all = Vec::new();
        let mut examined = 0;
        let mut unreadable = Vec::new();
        for dir in &self.dirs {
            if ctx.host.link_target(dir)?.is_some() {
                continue;
            }
            match ctx.walk(dir, self.depth)? {
                Some(w) => {
                    let mine = w.found.iter().filter(|f| f.depth <= self.depth);
                    // The listing's digest covers what this check examined.
                    sources.push(Source {
                        kind: SourceKind::Directory,
                        path: dir.clone(),
                        sha256: Some(w.digest(self.depth)),
                        line: None,
                    });
                    if w.truncated {
                        unreadable.push(format!(
                            "{dir}: more than 200000 entries, the rest was not read"
                        ));
                    }
                    // Only directories whose entries this check's depth
                    // reaches (a deeper walk may answer for it).
                    unreadable.extend(
                        w.unreadable
                            .iter()
                            .filter(|(_, d)| *d < self.depth)
                            .map(|(u, _)| u.clone()),
                    );
                    for f in mine {
                        examined += 1;
                        if keep(f) && !self.exclude.iter().any(|g| glob_match(g, &f.path)) {
                            all.push(f.clone());
                        }
                    }
                }
                None => sources.push(HostView::absent_source(dir)),
            }
        }
        Ok((all, examined, unreadable))
    }

    fn allowed(&self, ctx: &Ctx<'_>) -> Vec<String> {
        self.allow_param
            .as_deref()
            .map(|name| ctx.params.list(name))
            .unwrap_or_default()
    }
}

/// The same file under the merged-/usr alias (/usr/bin/su and /bin/su):
/// packages list whichever path they ship.
fn aliases(path: &str) -> Vec<String> {
    let mut out = vec![path.to_string()];
    for (a, b) in [
        ("/usr/bin/", "/bin/"),
        ("/usr/sbin/", "/sbin/"),
        ("/usr/lib/", "/lib/"),
    ] {
        if let Some(rest) = path.strip_prefix(a) {
            out.push(format!("{b}{rest}"));
        } else if let Some(rest) = path.strip_prefix(b) {
            out.push(format!("{a}{rest}"));
        }
    }
    out
}

/// Debian and Ubuntu packages that ship setuid or setgid programs (Debian
/// 12 and Ubuntu 24.04 as installed: passwd, su, mount, sudo, ssh-keysign,
/// the D-Bus and polkit helpers, utempter, unix_chkpwd, crontab,
/// fusermount, newuidmap, Xorg.wrap, postdrop, locate and others). Only the
/// order of reading follows this list; see [`dpkg_owners`].
const LIKELY_OWNERS: &[&str] = &[
    "passwd",
    "login",
    "util-linux",
    "mount",
    "sudo",
    "openssh-client",
    "dbus",
    "dbus-daemon",
    "polkitd",
    "pkexec",
    "policykit-1",
    "libutempter0",
    "libpam-modules-bin",
    "cron",
    "fuse",
    "fuse3",
    "ntfs-3g",
    "uidmap",
    "xserver-xorg-legacy",
    "iputils-ping",
    "postfix",
    "exim4-base",
    "at",
    "plocate",
    "mlocate",
    "screen",
    "bsdutils",
    "snapd",
    "chromium-sandbox",
];

/// Which of `paths` dpkg's file lists name: path → package, with the
/// lists that did as sources. The lists hold every file of every package
/// (megabytes), so each is scanned once, line by line, against the few
/// paths asked, the likely owners first, and the scan stops when all are
/// found. A path two lists name (a diversion) is attributed to the first
/// list read.
fn dpkg_owners(
    host: &HostView,
    paths: &[String],
    sources: &mut Vec<Source>,
) -> Result<BTreeMap<String, String>, HostError> {
    let mut owners = BTreeMap::new();
    let dir = "/var/lib/dpkg/info";
    let Some(entries) = host.read_dir(dir)? else {
        return Ok(owners);
    };
    sources.push(HostView::dir_source(dir, &entries));
    // Each name a package may list (either merged-/usr alias) → the path asked.
    let mut wanted: std::collections::HashMap<Vec<u8>, String> = paths
        .iter()
        .flat_map(|p| {
            aliases(p)
                .into_iter()
                .map(move |a| (a.into_bytes(), p.clone()))
        })
        .collect();
    // The lengths of the wanted names, to pass over other lines unhashed
    // (a superset once names are found: it only filters).
    let mut lengths = vec![false; 4096];
    for name in wanted.keys() {
        if let Some(slot) = lengths.get_mut(name.len()) {
            *slot = true;
        }
    }
    let mut chunk = vec![0u8; 256 * 1024];
    // Lists read first: those of packages that commonly ship setuid or
    // setgid programs, and those named like a program asked. The order
    // only decides how soon the reading stops; every list stays eligible,
    // and a path no list names is looked for in all of them.
    let basenames: HashSet<&str> = paths.iter().filter_map(|p| p.rsplit('/').next()).collect();
    let likely = |name: &str| {
        let package = name
            .trim_end_matches(".list")
            .split(':')
            .next()
            .unwrap_or("");
        LIKELY_OWNERS.contains(&package) || basenames.contains(package)
    };
    let mut lists: Vec<&crate::host::Entry> = entries
        .iter()
        .filter(|e| e.name.ends_with(".list"))
        .collect();
    lists.sort_by_key(|e| !likely(&e.name));
    for e in lists {
        if wanted.is_empty() {
            break;
        }
        let Some((file, _)) = host.open_in(dir, &e.name)? else {
            continue;
        };
        let found = scan_list(&file, &wanted, &lengths, &mut chunk)
            .map_err(|err| HostError::io(&e.path, &err))?;
        if found.is_empty() {
            continue;
        }
        let package = e
            .name
            .trim_end_matches(".list")
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        for p in found {
            wanted.retain(|_, asked| *asked != p);
            owners.insert(p, package.clone());
        }
        // Only the few lists that name a path are sources; digest just those.
        let sha256 = crate::host::digest_file(&file).map_err(|err| HostError::io(&e.path, &err))?;
        sources.push(Source {
            kind: SourceKind::File,
            path: e.path.clone(),
            sha256: Some(sha256),
            line: None,
        });
    }
    Ok(owners)
}

/// The paths of one dpkg file list that `wanted` names. The lists hold
/// every file of every package (7 MB on a desktop, one of 4 MB), so they
/// are read in chunks, never whole, and a line is looked up only when
/// `lengths` says a wanted path has its length: nearly every line is
/// passed over without hashing.
fn scan_list(
    file: &std::fs::File,
    wanted: &std::collections::HashMap<Vec<u8>, String>,
    lengths: &[bool],
    chunk: &mut [u8],
) -> std::io::Result<Vec<String>> {
    use std::io::Read;
    let mut found = Vec::new();
    let mut look = |line: &[u8]| {
        if lengths.get(line.len()).copied().unwrap_or(false) {
            if let Some(p) = wanted.get(line) {
                found.push(p.clone());
            }
        }
    };
    let mut reader = crate::host::AtReader { file, offset: 0 };
    // Bytes of a line cut by the chunk boundary, kept at the chunk's start.
    let mut carry = 0;
    // Inside a line longer than the chunk: it names no wanted path.
    let mut overlong = false;
    loop {
        if carry == chunk.len() {
            carry = 0;
            overlong = true;
        }
        let n = reader.read(&mut chunk[carry..])?;
        let filled = carry + n;
        if n == 0 {
            if !overlong {
                look(&chunk[..filled]);
            }
            return Ok(found);
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &chunk[..filled]) {
            if !overlong {
                look(&chunk[start..end]);
            }
            overlong = false;
            start = end + 1;
        }
        chunk.copy_within(start..filled, 0);
        carry = filled - start;
    }
}

/// Which of `paths` rpm says a package owns, asked of the live rpm (for
/// databases whose headers annexa does not read itself).
fn rpm_owners(
    ctx: &Ctx<'_>,
    paths: &[String],
    sources: &mut Vec<Source>,
) -> Result<BTreeMap<String, String>, String> {
    let live = ctx.host.live_host().ok_or(
        "this rpm database format is read through `rpm`, which only answers for the running host",
    )?;
    let mut argv = vec!["rpm", "-qf", "--queryformat", "%{NAME}\\n", "--"];
    argv.extend(paths.iter().map(String::as_str));
    let out = live.command(&argv).map_err(|e| format!("rpm -qf: {e}"))?;
    sources.push(out.source());
    let mut owners = BTreeMap::new();
    for (p, line) in paths.iter().zip(out.stdout.lines()) {
        if !line.contains(' ') && !line.is_empty() {
            owners.insert(p.clone(), line.to_string());
        }
    }
    Ok(owners)
}

fn listed(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

impl Probe for SpecialFilesProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let within = self.dirs.join(", ");
        let (expected, bad, observed, unreadable): (String, Vec<String>, String, Vec<String>) =
            match self.rule {
                Rule::WorldWritableFiles => {
                    let (found, n, unreadable) = host_try!(
                        self.found(ctx, &mut sources, |f| !f.is_dir && f.mode & 0o002 != 0),
                        sources
                    );
                    (
                        format!("no world-writable file under {within}"),
                        found
                            .iter()
                            .map(|f| format!("{} ({:04o})", f.path, f.mode))
                            .collect(),
                        format!("{n} entries examined"),
                        unreadable,
                    )
                }
                Rule::StickyDirs => {
                    let (found, n, unreadable) = host_try!(
                        self.found(ctx, &mut sources, |f| {
                            f.is_dir && f.mode & 0o002 != 0 && f.mode & 0o1000 == 0
                        }),
                        sources
                    );
                    (
                        format!("every world-writable directory under {within} has the sticky bit"),
                        found
                            .iter()
                            .map(|f| format!("{} ({:04o})", f.path, f.mode))
                            .collect(),
                        format!("{n} entries examined"),
                        unreadable,
                    )
                }
                Rule::Unowned => {
                    let (users, src) = host_try!(ctx.passwd(), sources);
                    sources.push(src);
                    let (groups, src) = host_try!(ctx.group(), sources);
                    sources.push(src);
                    let uids: HashSet<u32> = users.iter().filter_map(|u| u.uid).collect();
                    let gids: HashSet<u32> = groups.iter().filter_map(|g| g.gid).collect();
                    if uids.is_empty() {
                        return Outcome::error(
                            "/etc/passwd names no account: owners cannot be judged",
                        )
                        .sources(sources);
                    }
                    let (found, n, unreadable) = host_try!(
                        self.found(ctx, &mut sources, |f| {
                            !uids.contains(&f.uid) || !gids.contains(&f.gid)
                        }),
                        sources
                    );
                    (
                        format!("every file under {within} has an existing owner and group"),
                        found
                            .iter()
                            .map(|f| format!("{} (uid {}, gid {})", f.path, f.uid, f.gid))
                            .collect(),
                        format!("{n} entries examined"),
                        unreadable,
                    )
                }
                Rule::Setuid => {
                    let (found, _, unreadable) = host_try!(
                        self.found(ctx, &mut sources, |f| f.is_file && f.mode & 0o6000 != 0),
                        sources
                    );
                    let privileged: Vec<&Found> = found.iter().collect();
                    let allowed = self.allowed(ctx);
                    let paths: Vec<String> = privileged
                        .iter()
                        .map(|f| f.path.clone())
                        .filter(|p| !allowed.iter().any(|a| glob_match(a, p)))
                        .collect();
                    let db = host_try!(ctx.packages(), sources);
                    let owners: BTreeMap<String, String> = match &db {
                        _ if paths.is_empty() => BTreeMap::new(),
                        Some(db) if db.format == PackageFormat::Dpkg => {
                            host_try!(dpkg_owners(ctx.host, &paths, &mut sources), sources)
                        }
                        Some(db) => match &db.privileged_files {
                            Some(map) => {
                                sources.push(db.source.clone());
                                paths
                                    .iter()
                                    .filter_map(|p| {
                                        aliases(p)
                                            .iter()
                                            .find_map(|a| map.get(a))
                                            .map(|(pkg, _)| (p.clone(), pkg.clone()))
                                    })
                                    .collect()
                            }
                            None => match rpm_owners(ctx, &paths, &mut sources) {
                                Ok(o) => o,
                                Err(e) => return Outcome::error(e).sources(sources),
                            },
                        },
                        None => {
                            return Outcome::error(format!(
                            "no package database, so the setuid/setgid programs {} cannot be told from ones the distribution ships",
                            listed(&paths)
                        ))
                        .sources(sources);
                        }
                    };
                    let inventory: Vec<String> = privileged
                        .iter()
                        .map(|f| {
                            let by = owners
                                .get(&f.path)
                                .map(|p| format!("package {p}"))
                                .unwrap_or_else(|| {
                                    if paths.contains(&f.path) {
                                        "no package".into()
                                    } else {
                                        "allowed".into()
                                    }
                                });
                            format!("{} {:04o} {}", f.path, f.mode, by)
                        })
                        .collect();
                    let bad: Vec<String> = paths
                        .iter()
                        .filter(|p| !owners.contains_key(*p))
                        .map(|p| {
                            let f = privileged
                                .iter()
                                .find(|f| &f.path == p)
                                .map(|f| f.mode)
                                .unwrap_or(0);
                            format!("{p} ({f:04o}, installed by no package)")
                        })
                        .collect();
                    (
                        format!(
                            "every setuid/setgid file under {within} installed by a package or allowed"
                        ),
                        bad,
                        format!(
                            "{} setuid/setgid files: {}",
                            inventory.len(),
                            inventory.join("; ")
                        ),
                        unreadable,
                    )
                }
            };
        if !bad.is_empty() {
            return Outcome::fail(format!("{} found: {}", bad.len(), listed(&bad)))
                .expected(expected)
                .observed(format!("{}; {observed}", listed(&bad)))
                .sources(sources);
        }
        if !unreadable.is_empty() {
            return Outcome::error(format!(
                "could not read all of {within} ({}): run the scan as root",
                listed(&unreadable)
            ))
            .sources(sources);
        }
        Outcome::pass(format!("none found under {within}; {observed}"))
            .expected(expected)
            .observed(observed)
            .sources(sources)
    }

    fn validate(&self) -> Result<(), String> {
        if self.dirs.is_empty() {
            return Err("`dirs` must name at least one directory".into());
        }
        if let Some(d) = self.dirs.iter().find(|d| !d.starts_with('/')) {
            return Err(format!("`dirs` entries are absolute, got `{d}`"));
        }
        if self.depth == 0 || self.depth > 32 {
            return Err("`depth` is between 1 and 32".into());
        }
        if self.allow_param.is_some() && self.rule != Rule::Setuid {
            return Err("`allow_param` is for rule `setuid`".into());
        }
        Ok(())
    }

    fn param_refs(&self) -> Vec<&str> {
        self.allow_param.as_deref().into_iter().collect()
    }

    fn walks(&self) -> Vec<WalkRequest<'_>> {
        let prune: Vec<&str> = self
            .exclude
            .iter()
            .filter_map(|g| g.strip_suffix("/*"))
            .collect();
        self.dirs
            .iter()
            .map(|d| WalkRequest {
                dir: d,
                depth: self.depth,
                prune: prune.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::result::Status;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(d: &std::path::Path, p: &str, mode: u32) {
        std::fs::set_permissions(
            d.join(p.trim_start_matches('/')),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }

    #[test]
    fn setuid_programs_are_compared_with_dpkg_file_lists() {
        let p = r#"{ kind = "special_files", rule = "setuid", dirs = ["/usr/bin"] }"#;
        let (d, view) = root(&[
            ("/etc/os-release", "ID=debian\nVERSION_ID=12\n"),
            (
                "/var/lib/dpkg/status",
                "Package: login\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n",
            ),
            ("/var/lib/dpkg/info/login.list", "/.\n/bin\n/bin/su\n"),
            ("/usr/bin/su", "elf"),
            ("/usr/bin/ls", "elf"),
        ]);
        chmod(d.path(), "/usr/bin/su", 0o4755);
        let o = run(&view, p);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.observed
                .unwrap()
                .contains("/usr/bin/su 4755 package login")
        );
        std::fs::write(d.path().join("usr/bin/rootme"), "elf").unwrap();
        chmod(d.path(), "/usr/bin/rootme", 0o4755);
        let view = crate::host::HostView::root(d.path()).unwrap();
        let o = run(&view, p);
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.message
                .contains("/usr/bin/rootme (4755, installed by no package)"),
            "{}",
            o.message
        );
    }

    #[test]
    fn the_likely_owners_lists_are_read_first_and_reading_stops_when_all_are_found() {
        let p = r#"{ kind = "special_files", rule = "setuid", dirs = ["/usr/bin"] }"#;
        let (d, view) = root(&[
            ("/etc/os-release", "ID=debian\nVERSION_ID=12\n"),
            (
                "/var/lib/dpkg/status",
                "Package: passwd\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n",
            ),
            ("/var/lib/dpkg/info/passwd.list", "/.\n/usr/bin/passwd\n"),
            ("/var/lib/dpkg/info/zzz.list", "/usr/bin/local-tool\n"),
            ("/usr/bin/passwd", "elf"),
            ("/usr/bin/local-tool", "elf"),
        ]);
        // Reading this list would be an error: it is never reached.
        std::fs::create_dir(d.path().join("var/lib/dpkg/info/aaa.list")).unwrap();
        chmod(d.path(), "/usr/bin/passwd", 0o4755);
        let o = run(&view, p);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.observed
                .unwrap()
                .contains("/usr/bin/passwd 4755 package passwd")
        );
        // A path no likely list names is looked for in all of them.
        chmod(d.path(), "/usr/bin/local-tool", 0o4755);
        let view = crate::host::HostView::root(d.path()).unwrap();
        let o = run(&view, p);
        assert_eq!(o.status, Status::Error, "{o:?}");
        assert!(o.message.contains("aaa.list"), "{}", o.message);
    }

    #[test]
    fn list_lines_cut_by_the_chunk_boundary_or_too_long_are_judged_whole() {
        use std::io::Write;
        let wanted: std::collections::HashMap<Vec<u8>, String> = [
            (b"/usr/bin/su".to_vec(), "/usr/bin/su".to_string()),
            (b"/bin/mount".to_vec(), "/usr/bin/mount".to_string()),
        ]
        .into_iter()
        .collect();
        let mut lengths = vec![false; 4096];
        lengths[11] = true;
        lengths[10] = true;
        let mut f = tempfile::tempfile().unwrap();
        // A line longer than the chunk whose tail reads like a wanted path,
        // a wanted path across the boundary, and one last without a newline.
        let long = format!("/x{}\n/usr/bin/su-not\n", "a".repeat(40));
        // 64 bytes before the tail, a multiple of the smaller chunks: the
        // tail starts a chunk of its own and must still not match.
        let overlong = format!("/{}/usr/bin/su\n", "b".repeat(63));
        write!(f, "{overlong}{long}/.\n/usr/bin/su\n/bin/mount").unwrap();
        for size in [16, 32, 33, 64, 4096] {
            let mut chunk = vec![0u8; size];
            let found = super::scan_list(&f, &wanted, &lengths, &mut chunk).unwrap();
            assert_eq!(found, ["/usr/bin/su", "/usr/bin/mount"], "chunk of {size}");
        }
    }

    #[test]
    fn a_subtree_every_walker_excludes_is_not_walked_one_walker_that_looks_keeps_it() {
        use crate::probes::{Ctx, WalkPlan};
        let (d, view) = root(&[
            ("/var/spool/ok", "x"),
            ("/var/lib/docker/overlay2/a/diff/etc/passwd", "x"),
            ("/var/lib/docker/overlay2/b/diff/bin/sh", "x"),
        ]);
        chmod(
            d.path(),
            "/var/lib/docker/overlay2/a/diff/etc/passwd",
            0o666,
        );
        let ww = r#"{ kind = "special_files", rule = "world_writable_files", dirs = ["/var"], exclude = ["/var/lib/docker/*"] }"#;
        let unowned_all = r#"{ kind = "special_files", rule = "unowned", dirs = ["/var"] }"#;
        let examined = |o: &crate::probes::Outcome| o.observed.clone().unwrap();
        let params = super::super::testing::params();
        let plan_of = |probes: &[&str]| {
            let specs: Vec<_> = probes
                .iter()
                .map(|p| super::super::testing::spec(p))
                .collect();
            let mut plan = std::collections::BTreeMap::<String, WalkPlan>::new();
            for s in &specs {
                for r in s.walks() {
                    plan.entry(r.dir.to_string()).or_default().add(&r);
                }
            }
            plan
        };
        // Alone, without a plan, the walk descends and the exclusion only
        // filters what is reported: every entry is examined.
        let alone = run(&view, ww);
        assert_eq!(alone.status, Status::Pass, "{alone:?}");
        assert!(
            examined(&alone).contains("13 entries examined"),
            "{alone:?}"
        );
        // Planned for the one check that ignores the store: not walked.
        let ctx = Ctx::new(&view, &params);
        ctx.plan_walks(plan_of(&[ww]));
        let planned = super::super::testing::spec(ww).run(&ctx);
        assert_eq!(planned.status, Status::Pass, "{planned:?}");
        assert!(
            examined(&planned).contains("4 entries examined"),
            "{planned:?}"
        );
        // A second walker of /var that looks everywhere keeps it walked.
        let ctx = Ctx::new(&view, &params);
        ctx.plan_walks(plan_of(&[ww, unowned_all]));
        let shared = super::super::testing::spec(ww).run(&ctx);
        assert!(
            examined(&shared).contains("13 entries examined"),
            "{shared:?}"
        );
    }

    #[test]
    fn world_writable_files_and_directories_without_sticky_bit() {
        let (d, view) = root(&[("/etc/app/conf", "x"), ("/var/tmp/keep", "")]);
        std::fs::create_dir_all(d.path().join("var/spool/drop")).unwrap();
        chmod(d.path(), "/var/tmp", 0o1777);
        let ww =
            r#"{ kind = "special_files", rule = "world_writable_files", dirs = ["/etc", "/var"] }"#;
        let sticky = r#"{ kind = "special_files", rule = "sticky_dirs", dirs = ["/etc", "/var"] }"#;
        assert_eq!(run(&view, ww).status, Status::Pass);
        assert_eq!(run(&view, sticky).status, Status::Pass);
        chmod(d.path(), "/etc/app/conf", 0o666);
        chmod(d.path(), "/var/spool/drop", 0o777);
        let view = crate::host::HostView::root(d.path()).unwrap();
        let o = run(&view, ww);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("/etc/app/conf (0666)"));
        let o = run(&view, sticky);
        assert!(
            o.message.contains("/var/spool/drop (0777)"),
            "{}",
            o.message
        );
    }
}
