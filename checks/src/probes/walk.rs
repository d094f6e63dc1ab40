//! A bounded walk of system directories, shared by the checks of one scan
//! that look at every file under them (setuid programs, world-writable
//! files, files without an owner): the tree is read once per scan.
//!
//! The walk never follows symbolic links and stays on the file system of
//! the directory it starts from (as `find -xdev`), so a container's
//! overlay or a network mount under /var is not scanned as the host's.

use std::os::unix::fs::MetadataExt;
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Walk {
    pub found: Vec<Found>,
    /// Directories that could not be listed (permission), with the reason.
    pub unreadable: Vec<String>,
    /// Whether [`MAX_ENTRIES`] stopped the walk.
    pub truncated: bool,
}

/// Walks `dir` (inside the scanned system) to `max_depth`; `Ok(None)` when
/// it does not exist.
pub(crate) fn walk(
    host: &HostView,
    dir: &str,
    max_depth: usize,
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
    while let Some((real, shown, depth)) = stack.pop() {
        let iter = match std::fs::read_dir(&real) {
            Ok(it) => it,
            Err(e) => {
                out.unreadable.push(format!("{shown}: {e}"));
                continue;
            }
        };
        for item in iter {
            let Ok(item) = item else { continue };
            let name = item.file_name().to_string_lossy().into_owned();
            let path = format!("{shown}/{name}");
            let Ok(m) = item.metadata() else { continue };
            if m.file_type().is_symlink() {
                continue;
            }
            if out.found.len() >= MAX_ENTRIES {
                out.truncated = true;
                return Ok(Some(out));
            }
            let is_dir = m.is_dir();
            out.found.push(Found {
                path: path.clone(),
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                is_dir,
                is_file: m.is_file(),
                depth: depth + 1,
            });
            if is_dir && depth + 1 < max_depth && m.dev() == device {
                stack.push((item.path(), path, depth + 1));
            }
        }
    }
    out.found.sort_by(|a, b| a.path.cmp(&b.path));
    out.found.shrink_to_fit();
    Ok(Some(out))
}
