//! Resolving a path of the scanned system to a path on the scanning machine
//! without ever leaving the root.
//!
//! The semantics are those of `chroot(2)` (and of `openat2`'s
//! `RESOLVE_IN_ROOT`): `..` at the root stays at the root, and an absolute
//! symbolic link target is taken relative to the root, so a link in an image
//! that points to `/etc/shadow` means the image's shadow file, never the
//! scanning machine's. Every component is resolved with `lstat` before it is
//! followed.
//!
//! The root is assumed not to change under the scan (an image, a mounted
//! snapshot): a concurrent rename between resolution and `open` is outside
//! what this resolver defends against.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::HostError;

/// Linux's own limit for symbolic link hops in one resolution.
const MAX_SYMLINK_HOPS: usize = 40;

/// The outcome of resolving a path inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The path exists; this is where it is on the scanning machine.
    Found(PathBuf),
    /// Some component does not exist.
    Missing,
}

/// What `lstat` found at a path, remembered for the rest of a scan.
#[derive(Debug, Clone)]
enum Node {
    Missing,
    Symlink(String),
    Other,
}

/// The `lstat` (and `readlink`) answers of one scan, by path on the
/// scanning machine: the components every path shares (`/etc`, `/usr/lib`,
/// RHEL's `/lib -> usr/lib`) are looked at once per scan instead of once
/// per file. The root is a snapshot for the scan, as the read cache already
/// assumes.
#[derive(Debug, Default)]
pub struct ResolveCache {
    nodes: std::sync::Mutex<std::collections::HashMap<PathBuf, Node>>,
}

impl ResolveCache {
    fn node(&self, candidate: &Path, shown: impl Fn() -> String) -> Result<Node, HostError> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map
        // is still consistent.
        if let Some(n) = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(candidate)
        {
            return Ok(n.clone());
        }
        let node = lstat(candidate, shown)?;
        // Absence is not remembered: probes look for many paths once each,
        // and what exists is what later paths go through.
        if !matches!(node, Node::Missing) {
            self.nodes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(candidate.to_path_buf(), node.clone());
        }
        Ok(node)
    }
}

fn lstat(candidate: &Path, shown: impl Fn() -> String) -> Result<Node, HostError> {
    let meta = match std::fs::symlink_metadata(candidate) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Node::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Node::Missing),
        Err(e) => return Err(HostError::io(&shown(), &e)),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(candidate).map_err(|e| HostError::io(&shown(), &e))?;
        Ok(Node::Symlink(target.to_string_lossy().into_owned()))
    } else {
        Ok(Node::Other)
    }
}

/// Resolves `path` (absolute, as seen from inside the scanned system) under
/// `root`. With `follow_last = false` the final component is not followed if
/// it is a symbolic link (like `lstat`).
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<Resolved, HostError> {
    resolve_cached(root, path, follow_last, None)
}

/// [`resolve_in_root`], remembering what it looked at in `cache`.
pub fn resolve_cached(
    root: &Path,
    path: &str,
    follow_last: bool,
    cache: Option<&ResolveCache>,
) -> Result<Resolved, HostError> {
    if !path.starts_with('/') {
        return Err(HostError::Relative {
            path: path.to_string(),
        });
    }
    // Components still to walk, last first so `pop` yields the next one.
    let mut pending: Vec<String> = components(path).into_iter().rev().collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0usize;

    while let Some(name) = pending.pop() {
        match name.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = join(root, &resolved).join(&name);
        let shown = || display(&resolved, &name);
        let node = match cache {
            Some(c) => c.node(&candidate, shown)?,
            None => lstat(&candidate, shown)?,
        };
        let is_last = pending.is_empty();
        match node {
            Node::Missing => return Ok(Resolved::Missing),
            Node::Symlink(target) if follow_last || !is_last => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(HostError::Loop {
                        path: path.to_string(),
                    });
                }
                if target.starts_with('/') {
                    resolved.clear();
                }
                for part in components(&target).into_iter().rev() {
                    pending.push(part);
                }
            }
            _ => resolved.push(name),
        }
    }
    Ok(Resolved::Found(join(root, &resolved)))
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            Component::CurDir => Some(".".to_string()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in parts {
        p.push(part);
    }
    p
}

fn display(resolved: &[String], name: &str) -> String {
    let mut s = String::new();
    for part in resolved {
        s.push('/');
        s.push_str(part);
    }
    s.push('/');
    s.push_str(name);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(r.join("etc/ssh/sshd_config"), "Port 22\n").unwrap();
        dir
    }

    #[test]
    fn dotdot_cannot_climb_above_the_root() {
        let dir = tree();
        let r = dir.path();
        let got = resolve_in_root(r, "/../../../etc/passwd", true).unwrap();
        assert_eq!(got, Resolved::Found(r.join("etc/passwd")));
    }

    #[test]
    fn absolute_symlink_is_rerooted() {
        let dir = tree();
        let r = dir.path();
        symlink("/etc/passwd", r.join("etc/link")).unwrap();
        let got = resolve_in_root(r, "/etc/link", true).unwrap();
        assert_eq!(got, Resolved::Found(r.join("etc/passwd")));
    }

    #[test]
    fn relative_symlink_escaping_with_dotdot_is_clamped() {
        let dir = tree();
        let r = dir.path();
        symlink("../../../../../../../../etc/passwd", r.join("etc/ssh/evil")).unwrap();
        let got = resolve_in_root(r, "/etc/ssh/evil", true).unwrap();
        assert_eq!(got, Resolved::Found(r.join("etc/passwd")));
    }

    #[test]
    fn symlinked_directory_component_is_rerooted() {
        let dir = tree();
        let r = dir.path();
        // A directory link to the scanning machine's /etc must land in the root's.
        symlink("/etc", r.join("hostetc")).unwrap();
        let got = resolve_in_root(r, "/hostetc/ssh/sshd_config", true).unwrap();
        assert_eq!(got, Resolved::Found(r.join("etc/ssh/sshd_config")));
    }

    #[test]
    fn missing_paths_and_loops() {
        let dir = tree();
        let r = dir.path();
        assert_eq!(
            resolve_in_root(r, "/etc/nope", true).unwrap(),
            Resolved::Missing
        );
        assert_eq!(
            resolve_in_root(r, "/etc/passwd/child", true).unwrap(),
            Resolved::Missing
        );
        symlink("/loop-b", r.join("loop-a")).unwrap();
        symlink("/loop-a", r.join("loop-b")).unwrap();
        assert!(matches!(
            resolve_in_root(r, "/loop-a", true),
            Err(HostError::Loop { .. })
        ));
        assert!(matches!(
            resolve_in_root(r, "etc/passwd", true),
            Err(HostError::Relative { .. })
        ));
    }

    #[test]
    fn last_component_can_be_left_unfollowed() {
        let dir = tree();
        let r = dir.path();
        symlink("/dev/null", r.join("etc/masked")).unwrap();
        assert_eq!(
            resolve_in_root(r, "/etc/masked", false).unwrap(),
            Resolved::Found(r.join("etc/masked"))
        );
        assert_eq!(
            resolve_in_root(r, "/etc/masked", true).unwrap(),
            Resolved::Missing
        );
    }
}
