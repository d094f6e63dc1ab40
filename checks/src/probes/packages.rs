//! The installed-package database, read once per scan: dpkg's status file on
//! the Debian family, rpm's database on the RHEL family. Both are read from
//! the scanned system's own files, never through the scanning host's
//! package tools or their configuration, so a root is judged by what is in
//! it. The one exception is a live host whose rpm database is in a format
//! annexa does not read (Berkeley DB, RHEL 8): there the host's own `rpm`
//! answers, which on a live host is the host's own truth.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::host::{HostError, HostView, MAX_FILE_BYTES};
use crate::parse::dpkg::{self, Installed};
use crate::parse::rpm::{self, Evr};
use crate::platform::Family;
use crate::result::{Source, SourceKind};

/// Which package manager's database was read; it decides how versions
/// compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageFormat {
    /// dpkg's status file.
    Dpkg,
    /// rpm's database.
    Rpm,
}

/// The installed packages as read once per scan.
#[derive(Debug, Clone)]
pub struct PackageDb {
    /// Whose database it is.
    pub format: PackageFormat,
    /// Installed packages by name (`name:arch` for a second architecture).
    pub installed: HashMap<String, Installed>,
    /// The database file (or the command that listed it).
    pub source: Source,
    /// Setuid and setgid files the packages install (path → package and
    /// mode), where the database records file modes (rpm's headers);
    /// `None` for dpkg, whose database does not.
    pub privileged_files: Option<HashMap<String, (String, u32)>>,
}

impl PackageDb {
    /// Compares two versions the way this database's package manager does.
    pub fn compare(&self, a: &str, b: &str) -> Ordering {
        match self.format {
            PackageFormat::Dpkg => dpkg::compare_versions(a, b),
            PackageFormat::Rpm => Evr::parse(a).cmp_rpm(&Evr::parse(b)),
        }
    }

    /// Where one package was read: its line in dpkg's status file, or the
    /// rpm database as a whole (its records have no lines).
    pub fn source_of(&self, p: &Installed) -> Source {
        if p.line > 0 {
            self.source.at_line(p.line)
        } else {
            self.source.clone()
        }
    }
}

/// dpkg's status database.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// rpm's SQLite database, in the order rpm looks (Fedora 36 and later keep it
/// under /usr; /var/lib/rpm is then a link to it).
pub const RPMDB_SQLITE: [&str; 2] = [
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/var/lib/rpm/rpmdb.sqlite",
];
/// rpm databases in older formats: (path, format).
const RPMDB_OTHER: [(&str, &str); 4] = [
    ("/var/lib/rpm/Packages", "Berkeley DB (RHEL 8 and older)"),
    (
        "/usr/lib/sysimage/rpm/Packages",
        "Berkeley DB (RHEL 8 and older)",
    ),
    ("/var/lib/rpm/Packages.db", "ndb (SUSE)"),
    ("/usr/lib/sysimage/rpm/Packages.db", "ndb (SUSE)"),
];

/// Reads the package database the platform's family uses; on an unknown
/// family, whichever is present (dpkg first). `Ok(None)` when there is none.
pub(crate) fn load(host: &HostView, family: Family) -> Result<Option<PackageDb>, HostError> {
    match family {
        Family::Debian => load_dpkg(host),
        Family::Rhel => load_rpm(host),
        Family::Unknown => match load_dpkg(host)? {
            Some(db) => Ok(Some(db)),
            None => load_rpm(host),
        },
    }
}

fn load_dpkg(host: &HostView) -> Result<Option<PackageDb>, HostError> {
    let Some(file) = host.read(DPKG_STATUS)? else {
        return Ok(None);
    };
    Ok(Some(PackageDb {
        format: PackageFormat::Dpkg,
        installed: dpkg::parse_status(&file.text()),
        source: file.source(),
        privileged_files: None,
    }))
}

fn load_rpm(host: &HostView) -> Result<Option<PackageDb>, HostError> {
    for path in RPMDB_SQLITE {
        if host.exists(path)? {
            return read_sqlite(host, path).map(Some);
        }
    }
    for (path, format) in RPMDB_OTHER {
        if !host.exists(path)? {
            continue;
        }
        return match host.live_host() {
            Some(live) => list_with_rpm(live).map(Some),
            None => Err(HostError::Io {
                path: path.to_string(),
                message: format!(
                    "an rpm database in {format} format, which annexa reads only on the running host (through rpm); in --root mode it reads rpm's SQLite database (RHEL 9, Fedora)"
                ),
            }),
        };
    }
    Ok(None)
}

/// Reads rpm's SQLite database. The bytes are copied, through the
/// descriptors the root-confined opens returned, into a private directory
/// that SQLite then opens: SQLite never opens a path inside the scanned
/// system (where a link swapped in mid-scan could lead it out of the root),
/// nothing is written into the root (no lock, no `-shm`), the write-ahead
/// log rpm leaves beside the database (its latest transactions) is read
/// with it, and the digest covers exactly the bytes SQLite read.
fn read_sqlite(host: &HostView, path: &str) -> Result<PackageDb, HostError> {
    let err = |message: String| HostError::Io {
        path: path.to_string(),
        message,
    };
    let private = tempfile::Builder::new()
        .prefix("annexa-rpmdb-")
        .tempdir()
        .map_err(|e| err(format!("making a private copy: {e}")))?;
    let sha256 = copy_out(host, path, &private.path().join("rpmdb.sqlite"))?
        .ok_or_else(|| err("disappeared while being read".into()))?;
    let wal = format!("{path}-wal");
    let mut wal_sha256 = None;
    if host.exists(&wal)? {
        wal_sha256 = copy_out(host, &wal, &private.path().join("rpmdb.sqlite-wal"))?;
    }
    let sql = |e: rusqlite::Error| err(format!("not a readable rpm SQLite database: {e}"));
    // Read-write only when there is a log to replay into the private copy;
    // otherwise the copy is opened immutable (no lock, no -shm to set up).
    let copy = private.path().join("rpmdb.sqlite");
    let has_log =
        std::fs::metadata(private.path().join("rpmdb.sqlite-wal")).is_ok_and(|m| m.len() > 0);
    let base =
        rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = if has_log {
        rusqlite::Connection::open_with_flags(
            &copy,
            base | rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
    } else {
        // The temporary directory comes from TMPDIR: escape what a URI
        // would read as its query or fragment.
        let path = copy
            .display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        let uri = format!("file:{path}?immutable=1");
        rusqlite::Connection::open_with_flags(
            uri,
            base | rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
    }
    .map_err(sql)?;
    // A hostile database must not run code of its own making: no triggers
    // or views run with trust, and `Packages` must be a plain table (a view
    // could be a recursive query that never ends).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(sql)?;
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;")
        .map_err(sql)?;
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(sql)?;
    if kind.as_deref() != Some("table") {
        return Err(err(format!(
            "not an rpm database: `Packages` is {}",
            kind.map_or("missing".to_string(), |k| format!("a {k}, not a table"))
        )));
    }
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut installed: HashMap<String, Installed> = HashMap::new();
    let mut privileged = HashMap::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let hnum: i64 = row.get(0).map_err(sql)?;
        let blob = row.get_ref(1).map_err(sql)?;
        let bytes = blob
            .as_blob()
            .map_err(|_| err(format!("package record {hnum}: the header is not a blob")))?;
        let pkg = rpm::parse_header_blob(bytes)
            .map_err(|e| err(format!("package record {hnum}: {e}")))?;
        for (file, mode) in rpm::header_privileged_files(bytes)
            .map_err(|e| err(format!("package record {hnum}: {e}")))?
        {
            privileged.insert(file, (pkg.name.clone(), mode));
        }
        // Public keys imported into rpm are stored as `gpg-pubkey` headers;
        // they are not installed software.
        if pkg.name == "gpg-pubkey" {
            continue;
        }
        insert(&mut installed, pkg);
    }
    // The digest names both files when the log held transactions.
    let digest = match wal_sha256 {
        Some(w) => crate::host::sha256_hex(format!("{sha256}\n{w}\n").as_bytes()),
        None => sha256,
    };
    Ok(PackageDb {
        format: PackageFormat::Rpm,
        installed,
        source: Source {
            kind: SourceKind::File,
            path: path.to_string(),
            sha256: Some(digest),
            line: None,
        },
        privileged_files: Some(privileged),
    })
}

/// Copies a file of the scanned system to `to` through the descriptor the
/// root-confined open returned, at most [`MAX_FILE_BYTES`]; its SHA-256, or
/// `None` when it does not exist.
fn copy_out(
    host: &HostView,
    path: &str,
    to: &std::path::Path,
) -> Result<Option<String>, HostError> {
    let err = |message: String| HostError::Io {
        path: path.to_string(),
        message,
    };
    let Some((file, meta)) = host.open(path)? else {
        return Ok(None);
    };
    if meta.len > MAX_FILE_BYTES {
        return Err(HostError::TooLarge {
            path: path.to_string(),
            size: meta.len,
        });
    }
    let mut out =
        std::fs::File::create(to).map_err(|e| err(format!("making a private copy: {e}")))?;
    let mut reader = std::io::Read::take(&file, MAX_FILE_BYTES + 1);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf).map_err(|e| err(e.to_string()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_FILE_BYTES {
            return Err(HostError::TooLarge {
                path: path.to_string(),
                size: total,
            });
        }
        ctx.update(&buf[..n]);
        std::io::Write::write_all(&mut out, &buf[..n])
            .map_err(|e| err(format!("making a private copy: {e}")))?;
    }
    Ok(Some(crate::host::hex(ctx.finish().as_ref())))
}

/// Keeps one entry per name and architecture: the newest, as dnf compares an
/// install-only package (several kernels) with what repositories offer.
fn insert(installed: &mut HashMap<String, Installed>, pkg: rpm::HeaderPackage) {
    let version = pkg.evr().to_string();
    let arch = pkg.arch.clone().unwrap_or_default();
    let entry = Installed {
        name: pkg.name.clone(),
        version,
        arch: arch.clone(),
        line: 0,
        signed_by: pkg.key_id.clone(),
    };
    let key = match installed.get(&pkg.name) {
        Some(other) if other.arch != arch => format!("{}:{arch}", pkg.name),
        _ => pkg.name.clone(),
    };
    match installed.get(&key) {
        Some(old) if Evr::parse(&old.version).cmp_rpm(&pkg.evr()).is_ge() => {}
        _ => {
            installed.insert(key, entry);
        }
    }
}

/// The running host's own `rpm`, for database formats annexa does not read.
fn list_with_rpm(live: &crate::host::LiveHost) -> Result<PackageDb, HostError> {
    let qf = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n";
    let out = live
        .command(&["rpm", "-qa", "--qf", qf])
        .map_err(|e| HostError::Io {
            path: "rpm -qa".into(),
            message: e.to_string(),
        })?;
    if out.code != Some(0) {
        return Err(HostError::Io {
            path: out.command.clone(),
            message: format!("exited with {:?}: {}", out.code, out.stderr.trim()),
        });
    }
    let mut installed = HashMap::new();
    for (i, line) in out.stdout.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, release, arch] = f[..] else {
            return Err(HostError::Io {
                path: out.command.clone(),
                message: format!(
                    "output line {}: expected 5 tab-separated fields, got {line:?}",
                    i + 1
                ),
            });
        };
        if name == "gpg-pubkey" {
            continue;
        }
        insert(
            &mut installed,
            rpm::HeaderPackage {
                name: name.to_string(),
                epoch: epoch.parse().ok().filter(|e| *e != 0),
                version: version.to_string(),
                release: release.to_string(),
                arch: Some(arch.to_string()),
                key_id: None,
            },
        );
    }
    Ok(PackageDb {
        format: PackageFormat::Rpm,
        installed,
        source: out.source(),
        // `rpm -qa` lists no files; ownership is asked of rpm per file.
        privileged_files: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testing::{root, run};
    use crate::result::Status;

    /// Header blobs that rpm 4.18 wrote into a real rpmdb.sqlite
    /// (checks/tests/data/rpm/README.md has the commands and rpm's output).
    fn blob(hex: &str) -> Vec<u8> {
        let hex = hex.trim();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A root with a RHEL os-release and an rpm database in rpm's own
    /// schema holding those blobs.
    pub(crate) fn rpm_root() -> (tempfile::TempDir, crate::host::HostView) {
        let (dir, _) = root(&[(
            "/etc/os-release",
            "ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n",
        )]);
        let db = dir.path().join("var/lib/rpm");
        std::fs::create_dir_all(&db).unwrap();
        let conn = rusqlite::Connection::open(db.join("rpmdb.sqlite")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .unwrap();
        for hex in [
            include_str!("../../tests/data/rpm/annexa-fixture.hex"),
            include_str!("../../tests/data/rpm/annexa-epoch.hex"),
            include_str!("../../tests/data/rpm/gpg-pubkey.hex"),
        ] {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob(hex)])
                .unwrap();
        }
        drop(conn);
        let view = crate::host::HostView::root(dir.path()).unwrap();
        (dir, view)
    }

    #[test]
    fn rpm_database_of_a_root_is_read_without_rpm() {
        let (dir, view) = rpm_root();
        let o = run(&view, r#"{ kind = "package", names = ["annexa-fixture"] }"#);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let observed = o.observed.unwrap();
        assert!(
            observed.starts_with("annexa-fixture 1.2.3-4.test, signed by key "),
            "{observed}"
        );
        assert_eq!(o.sources.last().unwrap().path, "/var/lib/rpm/rpmdb.sqlite");
        // rpm's order: 2:0.9~rc1 is newer than 1.0 by its epoch.
        let o = run(
            &view,
            r#"{ kind = "package", names = ["annexa-epoch"], min_version = "1:5.0" }"#,
        );
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let o = run(
            &view,
            r#"{ kind = "package", names = ["annexa-epoch"], min_version = "2:0.9-1" }"#,
        );
        assert_eq!(
            o.status,
            Status::Fail,
            "0.9~rc1 is older than 0.9: {}",
            o.message
        );
        // Imported keys are not software.
        let o = run(&view, r#"{ kind = "package", names = ["gpg-pubkey"] }"#);
        assert_eq!(o.status, Status::Fail);
        // Reading wrote nothing into the root: no -wal, -shm or lock.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("var/lib/rpm"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["rpmdb.sqlite"]);
    }

    /// rpm's latest transactions can sit in the write-ahead log beside the
    /// database; they are read with it.
    #[test]
    fn transactions_in_the_write_ahead_log_are_read() {
        let (dir, _) = rpm_root();
        let file = dir.path().join("var/lib/rpm/rpmdb.sqlite");
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        conn.execute(
            "INSERT INTO Packages (blob) VALUES (?1)",
            [blob(include_str!("../../tests/data/rpm/annexa-caret.hex"))],
        )
        .unwrap();
        // As a crashed or still-running rpm leaves it: not checkpointed.
        std::mem::forget(conn);
        assert!(
            std::fs::metadata(format!("{}-wal", file.display()))
                .unwrap()
                .len()
                > 0
        );
        let view = crate::host::HostView::root(dir.path()).unwrap();
        let o = run(&view, r#"{ kind = "package", names = ["annexa-caret"] }"#);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
    }

    /// A database whose `Packages` is a view (a query that could run for
    /// ever) is refused, not run.
    #[test]
    fn a_view_in_place_of_the_packages_table_is_refused() {
        let (dir, _) = root(&[("/etc/os-release", "ID=rhel\nVERSION_ID=9.4\n")]);
        std::fs::create_dir_all(dir.path().join("var/lib/rpm")).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("var/lib/rpm/rpmdb.sqlite")).unwrap();
        conn.execute_batch("CREATE VIEW Packages AS WITH RECURSIVE c(hnum, blob) AS (SELECT 1, x'00' UNION ALL SELECT hnum + 1, blob FROM c) SELECT * FROM c;").unwrap();
        drop(conn);
        let view = crate::host::HostView::root(dir.path()).unwrap();
        let o = run(&view, r#"{ kind = "package", names = ["openssl"] }"#);
        assert_eq!(o.status, Status::Error);
        assert!(
            o.message.contains("`Packages` is a view, not a table"),
            "{}",
            o.message
        );
    }

    #[test]
    fn a_corrupt_truncated_or_old_format_database_is_an_error_naming_it() {
        let (dir, _) = rpm_root();
        let file = dir.path().join("var/lib/rpm/rpmdb.sqlite");
        let bytes = std::fs::read(&file).unwrap();
        for broken in [
            &bytes[..bytes.len() / 3],
            b"this is not a database at all, only text".as_slice(),
        ] {
            std::fs::write(&file, broken).unwrap();
            let view = crate::host::HostView::root(dir.path()).unwrap();
            let o = run(&view, r#"{ kind = "package", names = ["annexa-fixture"] }"#);
            assert_eq!(o.status, Status::Error, "{}", o.message);
            assert!(
                o.message.starts_with("/var/lib/rpm/rpmdb.sqlite: "),
                "{}",
                o.message
            );
        }
        // A record whose header does not parse names its record.
        std::fs::remove_file(&file).unwrap();
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL); INSERT INTO Packages (blob) VALUES (x'0000000200000010');").unwrap();
        drop(conn);
        let view = crate::host::HostView::root(dir.path()).unwrap();
        let o = run(&view, r#"{ kind = "package", names = ["annexa-fixture"] }"#);
        assert_eq!(o.status, Status::Error);
        assert!(o.message.contains("package record 1: "), "{}", o.message);
        // RHEL 8's Berkeley DB: said so, never an empty list.
        std::fs::remove_file(&file).unwrap();
        std::fs::write(dir.path().join("var/lib/rpm/Packages"), [0u8; 4096]).unwrap();
        let view = crate::host::HostView::root(dir.path()).unwrap();
        let o = run(
            &view,
            r#"{ kind = "package", names = ["openssl"], installed = false }"#,
        );
        assert_eq!(o.status, Status::Error);
        assert!(
            o.message
                .contains("/var/lib/rpm/Packages: an rpm database in Berkeley DB"),
            "{}",
            o.message
        );
    }
}
