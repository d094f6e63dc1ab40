//! A bounded walk of system directories, shared by the checks of one scan
//! that look at every file under them (setuid programs, world-writable
//! files, files without an owner): the tree is read once per scan.
//!
//! The walk never follows symbolic links and stays on the file system of
//! the directory it starts from (as `find -xdev`), so a container's
//! overlay or a network mount under /var is not scanned as the host's.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, StatxFlags};
use std::path::PathBuf;

use crate::host::{HostError, HostView, Resolved};

/// At most this many entries per start directory, so a hostile tree cannot
/// stall the scan; reaching it is reported.
const MAX_ENTRIES: usize = 200_000;

/// One file or directory met on the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Path inside the scanned system.
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub is_dir: bool,
    pub is_file: bool,
    /// 1 for an entry of the start directory, 2 below that, …
    pub depth: usize,
}

/// Everything under one directory.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub found: Vec<Found>,
    /// Directories that could not be listed (permission), with the reason
    /// and their depth (0 for the start directory).
    pub unreadable: Vec<(String, usize)>,
    /// Whether [`MAX_ENTRIES`] stopped the walk.
    pub truncated: bool,
    /// Listing digests already made, by depth: the checks sharing a walk
    /// name the same listing as their source.
    digests: std::sync::Mutex<std::collections::BTreeMap<usize, String>>,
}

impl Walk {
    /// The SHA-256 of the listing to `depth`: one `PATH MODE(octal) UID
    /// GID` line per entry, in path order (docs/scan-format.md).
    pub fn digest(&self, depth: usize) -> String {
        use std::fmt::Write;
        let mut cache = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(depth)
            .or_insert_with(|| {
                let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
                let mut line = String::new();
                for f in self.found.iter().filter(|f| f.depth <= depth) {
                    line.clear();
                    let _ = writeln!(line, "{} {:o} {} {}", f.path, f.mode, f.uid, f.gid);
                    digest.update(line.as_bytes());
                }
                crate::host::hex(digest.finish().as_ref())
            })
            .clone()
    }
}

/// Walks `dir` (inside the scanned system) to `max_depth`, not below the
/// directories `prune` names (they are listed, their entries are not);
/// `Ok(None)` when it does not exist.
pub(crate) fn walk(
    host: &HostView,
    dir: &str,
    max_depth: usize,
    prune: &dyn Fn(&str) -> bool,
) -> Result<Option<Walk>, HostError> {
    let real = match host.resolve(dir)? {
        Resolved::Found(p) => p,
        Resolved::Missing => return Ok(None),
    };
    let top = std::fs::symlink_metadata(&real).map_err(|e| HostError::io(dir, &e))?;
    if !top.is_dir() {
        return Ok(None);
    }
    let device = top.dev();
    let base = dir.trim_end_matches('/').to_string();
    let mut out = Walk::default();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(real, base, 0)];
    // One listing buffer for the whole walk: a directory of thousands of
    // entries is read in a few system calls, and no name is copied.
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
    while let Some((real, shown, depth)) = stack.pop() {
        // O_NOFOLLOW: a directory swapped for a link since it was listed
        // is not followed out of the tree.
        let fd = match rustix::fs::open(
            &real,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let e = std::io::Error::from(e);
                out.unreadable.push((format!("{shown}: {e}"), depth));
                continue;
            }
        };
        let mut listing = RawDir::new(fd.as_fd(), &mut buf);
        while let Some(item) = listing.next() {
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    let e = std::io::Error::from(e);
                    out.unreadable.push((format!("{shown}: {e}"), depth));
                    break;
                }
            };
            let name = item.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            // The entry's type comes with the listing: links (a third of
            // the library directories) are passed over without a stat.
            if item.file_type() == FileType::Symlink {
                continue;
            }
            // Only what the rules read: no birth time, sizes or times.
            let Ok(m) = rustix::fs::statx(
                fd.as_fd(),
                name,
                AtFlags::SYMLINK_NOFOLLOW,
                StatxFlags::TYPE | StatxFlags::MODE | StatxFlags::UID | StatxFlags::GID,
            ) else {
                continue;
            };
            let kind = FileType::from_raw_mode(u32::from(m.stx_mode));
            if kind == FileType::Symlink {
                continue;
            }
            if out.found.len() >= MAX_ENTRIES {
                out.truncated = true;
                return Ok(Some(out));
            }
            let name = name.to_string_lossy();
            let mut path = String::with_capacity(shown.len() + 1 + name.len());
            path.push_str(&shown);
            path.push('/');
            path.push_str(&name);
            let is_dir = kind == FileType::Directory;
            let same_device = rustix::fs::makedev(m.stx_dev_major, m.stx_dev_minor) == device;
            if is_dir && depth + 1 < max_depth && same_device && !prune(&path) {
                stack.push((real.join(&*name), path.clone(), depth + 1));
            }
            out.found.push(Found {
                path,
                mode: u32::from(m.stx_mode) & 0o7777,
                uid: m.stx_uid,
                gid: m.stx_gid,
                is_dir,
                is_file: kind == FileType::RegularFile,
                depth: depth + 1,
            });
        }
    }
    // Sorted through an index: moving the entries themselves costs more
    // than comparing their paths.
    let mut order: Vec<u32> = (0..out.found.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| out.found[a as usize].path.cmp(&out.found[b as usize].path));
    let mut slots: Vec<Option<Found>> = std::mem::take(&mut out.found)
        .into_iter()
        .map(Some)
        .collect();
    out.found = order
        .into_iter()
        .filter_map(|i| slots[i as usize].take())
        .collect();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn the_listing_digest_is_the_documented_one_and_skips_links() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(etc.join("app/deep")).unwrap();
        std::fs::write(etc.join("app-x"), "x").unwrap();
        std::fs::write(etc.join("app/deep/conf"), "c").unwrap();
        std::fs::set_permissions(etc.join("app-x"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        symlink("/nowhere", etc.join("link")).unwrap();
        let view = HostView::root(d.path()).unwrap();
        let w = walk(&view, "/etc", 10, &|_| false).unwrap().unwrap();
        // Byte order of the whole path: "app-x" sorts between "app" and
        // "app/deep", where a walk visiting each directory in turn would not.
        let paths: Vec<&str> = w.found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/app",
                "/etc/app-x",
                "/etc/app/deep",
                "/etc/app/deep/conf"
            ]
        );
        let meta = |p: &str| std::fs::metadata(d.path().join(p.trim_start_matches('/'))).unwrap();
        let line = |p: &str| {
            use std::os::unix::fs::MetadataExt;
            let m = meta(p);
            format!("{p} {:o} {} {}\n", m.mode() & 0o7777, m.uid(), m.gid())
        };
        let all: String = paths.iter().map(|p| line(p)).collect();
        assert_eq!(w.digest(10), crate::host::sha256_hex(all.as_bytes()));
        assert!(all.contains("/etc/app-x 4755 "), "{all}");
        // A shallower view digests only the entries to its depth.
        let top: String = ["/etc/app", "/etc/app-x"].iter().map(|p| line(p)).collect();
        assert_eq!(w.digest(1), crate::host::sha256_hex(top.as_bytes()));
        assert_ne!(w.digest(1), w.digest(10));
    }
}
