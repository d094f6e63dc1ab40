//! The host as the probes see it: the live machine, or a root directory
//! (a mounted image, a chroot, a container file system).
//!
//! Every read goes through a [`HostView`], which resolves the path inside the
//! root (see [`resolve`]), caches the bytes for the rest of the scan, and
//! hands back their SHA-256 so that each verdict can name exactly what it
//! read. Facts that only a running system has (the kernel clock, services'
//! run state, live firewall rules, resource usage) are available only in
//! live mode through [`HostView::live`].

pub mod live;
pub mod resolve;
pub mod sockets;

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use live::LiveHost;
pub use resolve::Resolved;

use crate::result::{Source, SourceKind};

/// Files larger than this are refused: no configuration file a probe reads
/// is anywhere near it, and reading a hostile multi-gigabyte file into memory
/// must not be possible.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Errors reading the scanned system. Paths are as seen inside the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An I/O error other than "not found".
    #[error("{path}: {message}")]
    Io {
        /// The path concerned.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// Symbolic links nest deeper than Linux allows.
    #[error("{path}: too many levels of symbolic links")]
    Loop {
        /// The path concerned.
        path: String,
    },
    /// Paths inside the scanned system are absolute.
    #[error("{path}: not an absolute path")]
    Relative {
        /// The path concerned.
        path: String,
    },
    /// The file exceeds [`MAX_FILE_BYTES`].
    #[error("{path}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit for files a check reads")]
    TooLarge {
        /// The path concerned.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The root directory given for the scan is unusable.
    #[error("root directory {path}: {message}")]
    BadRoot {
        /// The root as given.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl HostError {
    pub(crate) fn io(path: &str, err: &std::io::Error) -> HostError {
        HostError::Io {
            path: path.to_string(),
            message: err.to_string(),
        }
    }
}

/// Whether the scan looks at the running machine or at a file system tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanMode {
    /// The running machine: kernel state, services and usage are available.
    Live,
    /// A root directory: configuration on disk only.
    Root,
}

/// The bytes of one file and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    /// Path inside the scanned system.
    pub path: String,
    /// The bytes as read.
    pub bytes: Vec<u8>,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl FileData {
    /// The content as text; invalid UTF-8 is replaced, never fatal, because
    /// configuration files in the wild carry stray Latin-1 comments.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }

    /// This file as a source for a result.
    pub fn source(&self) -> Source {
        Source {
            kind: SourceKind::File,
            path: self.path.clone(),
            sha256: Some(self.sha256.clone()),
            line: None,
        }
    }

    /// This file as a source pointing at a line.
    pub fn source_at(&self, line: u32) -> Source {
        self.source().at_line(line)
    }
}

/// Metadata of a path inside the scanned system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Owner's numeric id (names come from the root's own /etc/passwd).
    pub uid: u32,
    /// Group's numeric id.
    pub gid: u32,
    /// Size in bytes.
    pub len: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// Modification time.
    pub modified: Option<SystemTime>,
}

/// A directory entry, not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Full path inside the scanned system.
    pub path: String,
    /// Where it points, if it is a symbolic link.
    pub link_target: Option<String>,
    /// Whether it is a directory (not followed).
    pub is_dir: bool,
}

type ReadCache = HashMap<String, Result<Option<Arc<FileData>>, HostError>>;

/// The scanned system.
#[derive(Debug)]
pub struct HostView {
    root: PathBuf,
    mode: ScanMode,
    live: Option<LiveHost>,
    reads: Mutex<ReadCache>,
    resolved: resolve::ResolveCache,
}

impl HostView {
    /// The running machine.
    pub fn live() -> HostView {
        HostView {
            root: PathBuf::from("/"),
            mode: ScanMode::Live,
            live: Some(LiveHost::new()),
            reads: Mutex::new(HashMap::new()),
            resolved: resolve::ResolveCache::default(),
        }
    }

    /// A root directory; the directory must exist.
    pub fn root(dir: impl AsRef<Path>) -> Result<HostView, HostError> {
        let dir = dir.as_ref();
        let shown = dir.display().to_string();
        let canonical = std::fs::canonicalize(dir).map_err(|e| HostError::BadRoot {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if !canonical.is_dir() {
            return Err(HostError::BadRoot {
                path: shown,
                message: "not a directory".into(),
            });
        }
        Ok(HostView {
            root: canonical,
            mode: ScanMode::Root,
            live: None,
            reads: Mutex::new(HashMap::new()),
            resolved: resolve::ResolveCache::default(),
        })
    }

    /// Live or root mode.
    pub fn mode(&self) -> ScanMode {
        self.mode
    }

    /// The root directory on the scanning machine (`/` when live).
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// Live-only facts; `None` in root mode.
    pub fn live_host(&self) -> Option<&LiveHost> {
        self.live.as_ref()
    }

    /// Where `path` is on the scanning machine, following symbolic links
    /// inside the root.
    pub fn resolve(&self, path: &str) -> Result<Resolved, HostError> {
        resolve::resolve_cached(&self.root, path, true, Some(&self.resolved))
    }

    /// Reads a whole file. `Ok(None)` when it does not exist. Reads are
    /// cached for the life of the view, so every check that reads a file sees
    /// the same bytes and the same digest.
    pub fn read(&self, path: &str) -> Result<Option<Arc<FileData>>, HostError> {
        // A poisoned lock only means another check panicked mid-insert; the
        // map itself is still consistent, so keep using it.
        let mut cache = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(path) {
            return hit.clone();
        }
        let result = self.read_uncached(path);
        cache.insert(path.to_string(), result.clone());
        result
    }

    fn read_uncached(&self, path: &str) -> Result<Option<Arc<FileData>>, HostError> {
        let real = match self.resolve(path)? {
            Resolved::Found(p) => p,
            Resolved::Missing => return Ok(None),
        };
        let (file, meta) = open_regular(&real, path)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(HostError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
            });
        }
        // Kernel files (/proc, /sys) report size 0; reading them in one
        // large read matters: /proc/net/tcp walks the whole connection hash
        // table on every read call.
        let capacity = if meta.len() == 0 {
            64 * 1024
        } else {
            meta.len() as usize
        };
        let mut bytes = Vec::with_capacity(capacity);
        // Bounded again while reading: the file may grow after the fstat.
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
            &mut bytes,
        )
        .map_err(|e| HostError::io(path, &e))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(HostError::TooLarge {
                path: path.to_string(),
                size: bytes.len() as u64,
            });
        }
        bytes.shrink_to_fit();
        let sha256 = sha256_hex(&bytes);
        Ok(Some(Arc::new(FileData {
            path: path.to_string(),
            bytes,
            sha256,
        })))
    }

    /// Opens a file for streaming (for large files such as package lists,
    /// which are not cached). `Ok(None)` when it does not exist.
    pub fn open(&self, path: &str) -> Result<Option<(std::fs::File, Meta)>, HostError> {
        let real = match self.resolve(path)? {
            Resolved::Found(p) => p,
            Resolved::Missing => return Ok(None),
        };
        let (file, m) = open_regular(&real, path)?;
        Ok(Some((file, meta_of(&m))))
    }

    /// Opens the entry `name` of directory `dir` for streaming, as
    /// [`HostView::open`] does `DIR/NAME`, for the many files of one
    /// directory (dpkg's file lists): the directory is resolved once and
    /// each name opened under it, instead of resolving every path.
    pub fn open_in(
        &self,
        dir: &str,
        name: &str,
    ) -> Result<Option<(std::fs::File, Meta)>, HostError> {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(HostError::Io {
                path,
                message: "not a name inside the directory".into(),
            });
        }
        let real = match self.resolve(dir)? {
            Resolved::Found(p) => p.join(name),
            Resolved::Missing => return Ok(None),
        };
        match open_regular(&real, &path) {
            Ok((file, m)) => Ok(Some((file, meta_of(&m)))),
            Err(e) => match std::fs::symlink_metadata(&real) {
                // A link (O_NOFOLLOW refused it) is followed inside the root
                // the way every other path is.
                Ok(m) if m.is_symlink() => self.open(&path),
                // Gone since the listing: absent. Any other failure (no
                // permission) is an error, never a missing file.
                Err(gone)
                    if gone.kind() == std::io::ErrorKind::NotFound
                        || gone.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    Ok(None)
                }
                _ => Err(e),
            },
        }
    }

    /// Metadata of a path (symbolic links followed inside the root).
    pub fn metadata(&self, path: &str) -> Result<Option<Meta>, HostError> {
        let real = match self.resolve(path)? {
            Resolved::Found(p) => p,
            Resolved::Missing => return Ok(None),
        };
        let m = std::fs::metadata(&real).map_err(|e| HostError::io(path, &e))?;
        Ok(Some(meta_of(&m)))
    }

    /// Whether a path exists (following links inside the root).
    pub fn exists(&self, path: &str) -> Result<bool, HostError> {
        Ok(matches!(self.resolve(path)?, Resolved::Found(_)))
    }

    /// Where a symbolic link points, without following it; `None` when the
    /// path is missing or not a link.
    pub fn link_target(&self, path: &str) -> Result<Option<String>, HostError> {
        let real = match resolve::resolve_cached(&self.root, path, false, Some(&self.resolved))? {
            Resolved::Found(p) => p,
            Resolved::Missing => return Ok(None),
        };
        match std::fs::read_link(&real) {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(None),
            Err(e) => Err(HostError::io(path, &e)),
        }
    }

    /// The entries of a directory, sorted by name; `Ok(None)` when the
    /// directory does not exist.
    pub fn read_dir(&self, path: &str) -> Result<Option<Vec<Entry>>, HostError> {
        let real = match self.resolve(path)? {
            Resolved::Found(p) => p,
            Resolved::Missing => return Ok(None),
        };
        let iter = match std::fs::read_dir(&real) {
            Ok(it) => it,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(HostError::io(path, &e)),
        };
        let base = path.trim_end_matches('/');
        let mut entries = Vec::new();
        for item in iter {
            let item = item.map_err(|e| HostError::io(path, &e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let ft = item.file_type().map_err(|e| HostError::io(path, &e))?;
            let link_target = if ft.is_symlink() {
                std::fs::read_link(item.path())
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned())
            } else {
                None
            };
            entries.push(Entry {
                path: format!("{base}/{name}"),
                name,
                link_target,
                is_dir: ft.is_dir(),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(entries))
    }

    /// A directory listing as a source: the digest covers the sorted names,
    /// so adding or removing a drop-in changes it.
    pub fn dir_source(path: &str, entries: &[Entry]) -> Source {
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        Source {
            kind: SourceKind::Directory,
            path: path.to_string(),
            sha256: Some(sha256_hex(names.join("\n").as_bytes())),
            line: None,
        }
    }

    /// A source recording that a path was looked for and is absent.
    pub fn absent_source(path: &str) -> Source {
        Source {
            kind: SourceKind::Absent,
            path: path.to_string(),
            sha256: None,
            line: None,
        }
    }
}

/// Opens a resolved path for reading only if it is a regular file, judged
/// on the open descriptor itself: a device node, FIFO or socket in a root
/// being scanned would block or stream for ever, and a symbolic link put in
/// place of the last component after resolution is not followed out of the
/// root (`O_NOFOLLOW`). `O_NONBLOCK` keeps the open itself from waiting on a
/// FIFO with no writer.
fn open_regular(real: &Path, path: &str) -> Result<(std::fs::File, std::fs::Metadata), HostError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(real)
        .map_err(|e| HostError::io(path, &e))?;
    let meta = file.metadata().map_err(|e| HostError::io(path, &e))?;
    if meta.is_dir() {
        return Err(HostError::Io {
            path: path.to_string(),
            message: "is a directory, expected a file".into(),
        });
    }
    if !meta.is_file() {
        return Err(HostError::Io {
            path: path.to_string(),
            message: "is not a regular file (a device, FIFO or socket); not read".into(),
        });
    }
    Ok((file, meta))
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        len: m.len(),
        is_dir: m.is_dir(),
        is_file: m.is_file(),
        modified: m.modified().ok(),
    }
}

/// Reads a file from an offset with positioned reads, so that several
/// readers can share one open file (a digest and a parser reading the same
/// bytes).
pub struct AtReader<'f> {
    /// The open file.
    pub file: &'f std::fs::File,
    /// Where the next read starts.
    pub offset: u64,
}

impl std::io::Read for AtReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Lower-case hex SHA-256 of a whole open file, streamed.
pub fn digest_file(file: &std::fs::File) -> std::io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut reader = AtReader { file, offset: 0 };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)?;
        if n == 0 {
            return Ok(hex(ctx.finish().as_ref()));
        }
        ctx.update(&buf[..n]);
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    hex(digest.as_ref())
}

/// Lower-case hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn open_in_opens_a_listed_name_follows_links_inside_the_root_and_refuses_paths() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("login.list"), "/bin/su\n").unwrap();
        std::fs::write(dir.path().join("outside.list"), "/x\n").unwrap();
        // An absolute link is the scanned system's path, not the scanner's.
        symlink("/outside.list", info.join("linked.list")).unwrap();
        let view = HostView::root(dir.path()).unwrap();
        let d = "/var/lib/dpkg/info";
        let read = |name: &str| {
            let (file, _) = view.open_in(d, name).unwrap().unwrap();
            std::io::read_to_string(file).unwrap()
        };
        assert_eq!(read("login.list"), "/bin/su\n");
        assert_eq!(read("linked.list"), "/x\n");
        assert!(view.open_in(d, "gone.list").unwrap().is_none());
        assert!(view.open_in("/var/lib/none", "x.list").unwrap().is_none());
        for bad in ["../../../outside.list", "..", "", "a/b"] {
            let e = view.open_in(d, bad).unwrap_err().to_string();
            assert!(e.contains("not a name inside the directory"), "{bad}: {e}");
        }
        std::fs::create_dir(info.join("sub.list")).unwrap();
        assert!(view.open_in(d, "sub.list").is_err());
    }

    #[test]
    fn reads_are_rooted_digested_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "img\n").unwrap();
        symlink("/etc/hostname", dir.path().join("etc/alias")).unwrap();
        let view = HostView::root(dir.path()).unwrap();
        let f = view.read("/etc/alias").unwrap().unwrap();
        assert_eq!(f.bytes, b"img\n");
        assert_eq!(f.path, "/etc/alias");
        assert_eq!(f.sha256, sha256_hex(b"img\n"));
        // The scan sees one consistent snapshot of each file.
        std::fs::write(dir.path().join("etc/hostname"), "changed\n").unwrap();
        assert_eq!(view.read("/etc/alias").unwrap().unwrap().bytes, b"img\n");
        assert!(view.read("/etc/missing").unwrap().is_none());
    }

    #[test]
    fn fifos_and_device_nodes_in_a_root_are_errors_not_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let fifo = dir.path().join("etc/login.defs");
        // std has no mkfifo, and the crate denies unsafe code.
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", fifo.display());
        // A FIFO with no writer would block a read for ever; so, reached
        // through a link, would it.
        symlink("/etc/login.defs", dir.path().join("etc/zero")).unwrap();
        let view = HostView::root(dir.path()).unwrap();
        let started = std::time::Instant::now();
        for path in ["/etc/login.defs", "/etc/zero"] {
            let err = view.read(path).unwrap_err().to_string();
            assert!(err.contains("not a regular file"), "{path}: {err}");
            assert!(err.contains(path), "{err}");
            assert!(view.open(path).is_err());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn unreadable_file_is_an_error_not_absence() {
        if running_as_root() {
            // root reads mode-000 files; the error path is covered by the
            // directory case below instead.
        } else {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("secret");
            std::fs::write(&p, "x").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
            let view = HostView::root(dir.path()).unwrap();
            assert!(matches!(view.read("/secret"), Err(HostError::Io { .. })));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let view = HostView::root(dir.path()).unwrap();
        let err = view.read("/d").unwrap_err();
        assert!(err.to_string().contains("/d: is a directory"), "{err}");
    }

    fn running_as_root() -> bool {
        std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }

    #[test]
    fn root_must_be_an_existing_directory() {
        let err = HostView::root("/definitely/not/here").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("root directory /definitely/not/here")
        );
    }

    #[test]
    fn listing_and_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/x.d")).unwrap();
        std::fs::write(dir.path().join("etc/x.d/b.conf"), "").unwrap();
        std::fs::write(dir.path().join("etc/x.d/a.conf"), "").unwrap();
        symlink("/dev/null", dir.path().join("etc/x.d/c.conf")).unwrap();
        let view = HostView::root(dir.path()).unwrap();
        let names: Vec<_> = view
            .read_dir("/etc/x.d")
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.conf", "b.conf", "c.conf"]);
        assert_eq!(
            view.link_target("/etc/x.d/c.conf").unwrap().as_deref(),
            Some("/dev/null")
        );
        assert_eq!(view.link_target("/etc/x.d/a.conf").unwrap(), None);
        assert!(view.read_dir("/etc/none").unwrap().is_none());
    }
}
