//! The dpkg status database and apt's package lists (`*_Packages`), read
//! without running dpkg or apt.

use std::collections::HashMap;

use memchr::memmem;

/// A package dpkg records as installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Architecture (`amd64`, `all`, …).
    pub arch: String,
    /// 1-based line of the stanza in the status file (0: the database has
    /// no lines, as rpm's has not).
    pub line: u32,
    /// The key that signed it, where the database records one (rpm's
    /// header signature); dpkg records none.
    pub signed_by: Option<String>,
}

/// Parses /var/lib/dpkg/status and returns the packages whose state is
/// `installed` (a removed package leaves `config-files` behind, which does
/// not count). The map is keyed by name; a multi-arch package installed for
/// two architectures keeps both under `name:arch`.
pub fn parse_status(text: &str) -> HashMap<String, Installed> {
    let mut out = HashMap::new();
    let mut line_no = 0u32;
    for stanza in text.split("\n\n") {
        let start = line_no + 1;
        line_no += stanza.matches('\n').count() as u32 + 2;
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut installed = false;
        for l in stanza.lines() {
            if let Some(v) = l.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = l.strip_prefix("Version:") {
                version = Some(v.trim());
            } else if let Some(v) = l.strip_prefix("Architecture:") {
                arch = Some(v.trim());
            } else if let Some(v) = l.strip_prefix("Status:") {
                installed = v.split_whitespace().last() == Some("installed");
            }
        }
        if let (true, Some(name), Some(version)) = (installed, name, version) {
            let arch = arch.unwrap_or("").to_string();
            let key = if out.contains_key(name) {
                format!("{name}:{arch}")
            } else {
                name.to_string()
            };
            out.insert(
                key,
                Installed {
                    name: name.to_string(),
                    version: version.to_string(),
                    arch,
                    line: start,
                    signed_by: None,
                },
            );
        }
    }
    out
}

/// Compares two Debian versions as dpkg does (epoch, upstream, revision,
/// `~` sorting before everything). Unparseable versions compare as text.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (
        a.parse::<debversion::Version>(),
        b.parse::<debversion::Version>(),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// The newest version of an installed package that a package list offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Newest version found.
    pub version: String,
}

/// Scans package lists incrementally: feed it bytes in chunks of any size
/// and it keeps, for each installed package, the newest version offered for
/// the package's architecture (or `all`). Only stanzas of installed packages
/// are parsed beyond their first line, which keeps a 100 MB list cheap.
pub struct ListScanner<'a> {
    installed: &'a HashMap<String, Installed>,
    carry: Vec<u8>,
    /// Newest offered version per installed package name.
    pub newest: HashMap<String, Candidate>,
}

impl<'a> ListScanner<'a> {
    /// A scanner for the given installed set.
    pub fn new(installed: &'a HashMap<String, Installed>) -> Self {
        ListScanner {
            installed,
            carry: Vec::new(),
            newest: HashMap::new(),
        }
    }

    /// Feeds the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        let finder = memmem::Finder::new(b"\n\n");
        // Complete the stanza that straddles the previous chunk boundary,
        // then scan the chunk in place: only the unfinished tail is copied.
        let mut start = 0;
        if !self.carry.is_empty() {
            // The separator may itself straddle the boundary.
            let joined_end = if self.carry.ends_with(b"\n") && chunk.first() == Some(&b'\n') {
                Some(1)
            } else {
                finder.find(chunk).map(|p| p + 2)
            };
            match joined_end {
                Some(end) => {
                    let mut stanza = std::mem::take(&mut self.carry);
                    stanza.extend_from_slice(&chunk[..end]);
                    self.stanza(&stanza);
                    start = end;
                }
                None => {
                    self.carry.extend_from_slice(chunk);
                    return;
                }
            }
        }
        while let Some(pos) = finder.find(&chunk[start..]) {
            let end = start + pos;
            self.stanza(&chunk[start..end]);
            start = end + 2;
        }
        self.carry.extend_from_slice(&chunk[start..]);
    }

    /// Processes what is left at the end of the input.
    pub fn finish(&mut self) {
        let rest = std::mem::take(&mut self.carry);
        if !rest.is_empty() {
            self.stanza(&rest);
        }
    }

    fn stanza(&mut self, s: &[u8]) {
        let s = trim_leading_newlines(s);
        let Some(name) = field(s, b"Package:") else {
            return;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        let Some(inst) = self.installed.get(name) else {
            return;
        };
        let (Some(version), arch) = (field(s, b"Version:"), field(s, b"Architecture:")) else {
            return;
        };
        let arch = arch.and_then(|a| std::str::from_utf8(a).ok()).unwrap_or("");
        if arch != "all" && arch != inst.arch && inst.arch != "all" {
            return;
        }
        let Ok(version) = std::str::from_utf8(version) else {
            return;
        };
        let newer_than_known = match self.newest.get(name) {
            Some(c) => compare_versions(version, &c.version).is_gt(),
            None => true,
        };
        if newer_than_known {
            self.newest.insert(
                name.to_string(),
                Candidate {
                    version: version.to_string(),
                },
            );
        }
    }
}

fn trim_leading_newlines(mut s: &[u8]) -> &[u8] {
    while let [b'\n' | b'\r', rest @ ..] = s {
        s = rest;
    }
    s
}

/// The value of a `Name:` field at the start of a line in a stanza.
fn field<'s>(stanza: &'s [u8], name: &[u8]) -> Option<&'s [u8]> {
    let at = if stanza.starts_with(name) {
        0
    } else {
        let mut needle = Vec::with_capacity(name.len() + 1);
        needle.push(b'\n');
        needle.extend_from_slice(name);
        memmem::find(stanza, &needle)? + 1
    };
    let rest = &stanza[at + name.len()..];
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    Some(trim(&rest[..end]))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n\nPackage: oldpkg\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";

    #[test]
    fn status_keeps_installed_packages_only() {
        let s = parse_status(STATUS);
        assert_eq!(s.len(), 2);
        assert_eq!(s["openssh-server"].version, "1:9.2p1-2+deb12u3");
        assert_eq!(s["tzdata"].line, 11);
        assert!(!s.contains_key("oldpkg"));
    }

    #[test]
    fn versions_compare_like_dpkg() {
        use std::cmp::Ordering::*;
        assert_eq!(
            compare_versions("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u4"),
            Less
        );
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Less);
        assert_eq!(compare_versions("2:0.1", "1:9.9"), Greater);
        assert_eq!(compare_versions("1.0-1", "1.0-1"), Equal);
    }

    #[test]
    fn scanner_finds_newest_matching_version_across_chunk_boundaries() {
        let installed = parse_status(STATUS);
        let list = "Package: openssh-server\nVersion: 1:9.2p1-2+deb12u4\nArchitecture: amd64\n\nPackage: openssh-server\nVersion: 1:9.9-1\nArchitecture: arm64\n\nPackage: zzz\nVersion: 1\nArchitecture: all\n\nPackage: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
        for chunk in [1usize, 7, 64, 4096] {
            let mut sc = ListScanner::new(&installed);
            for piece in list.as_bytes().chunks(chunk) {
                sc.feed(piece);
            }
            sc.finish();
            assert_eq!(
                sc.newest["openssh-server"].version, "1:9.2p1-2+deb12u4",
                "chunk {chunk}"
            );
            assert_eq!(sc.newest["tzdata"].version, "2024a-0+deb12u1");
            assert!(!sc.newest.contains_key("zzz"));
        }
    }
}
