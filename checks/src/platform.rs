//! Which operating system a scanned host runs, from its os-release file, and
//! which pack selectors (`platforms = [...]`) name it.
//!
//! A family groups the systems whose files a probe reads the same way:
//! `debian` (Debian, Ubuntu and their derivatives) and `rhel` (RHEL, its
//! rebuilds, CentOS Stream, Oracle Linux and Fedora). Anything else is
//! `unknown`, and a check that declares platforms never runs there: it is
//! `not_applicable` rather than a verdict on files it does not know.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The paths os-release may be at, in the order the specification reads them.
pub const OS_RELEASE_PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// A family of distributions whose files probes read alike.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Debian, Ubuntu and derivatives: dpkg, apt, AppArmor.
    Debian,
    /// RHEL, its rebuilds, CentOS Stream, Oracle Linux, Fedora: rpm, dnf,
    /// SELinux, firewalld, authselect, crypto-policies.
    Rhel,
    /// Not identified.
    #[default]
    Unknown,
}

impl Family {
    /// The family as written in packs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Debian => "debian",
            Family::Rhel => "rhel",
            Family::Unknown => "unknown",
        }
    }

    fn of(id: &str, like: &[String]) -> Family {
        let is = |w: &str| id == w || like.iter().any(|l| l == w);
        if ["debian", "ubuntu"].iter().any(|w| is(w)) {
            Family::Debian
        } else if ENTERPRISE_LINUX.contains(&id)
            || ["rhel", "fedora", "centos"].iter().any(|w| is(w))
        {
            Family::Rhel
        } else {
            Family::Unknown
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The os-release fields a platform is made of.
const IDENTITY: [&str; 3] = ["ID", "ID_LIKE", "VERSION_ID"];

/// The `ID_LIKE` words a selector may match through.
const LIKE_NAMES: [&str; 3] = ["debian", "ubuntu", "rhel"];

/// os-release `ID`s of RHEL and its rebuilds, which a `rhelN` selector
/// names alike: their major versions track RHEL's, file for file.
const ENTERPRISE_LINUX: [&str; 5] = ["rhel", "rocky", "almalinux", "centos", "ol"];

/// The identified operating system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Platform {
    /// os-release `ID` (lower case).
    pub id: Option<String>,
    /// os-release `ID_LIKE` words.
    pub like: Vec<String>,
    /// os-release `VERSION_ID`.
    pub version: Option<String>,
    /// The family derived from `id` and `like`.
    pub family: Family,
}

/// An os-release file that does not follow its specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct OsReleaseError {
    /// 1-based line.
    pub line: usize,
    /// The variable of that line (empty when it has none).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A `platforms` selector in a pack, or `--platform` on the command line,
/// that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a platform: {reason}")]
pub struct SelectorError {
    /// As given.
    pub given: String,
    /// Why not.
    pub reason: String,
}

impl Platform {
    /// The platform an os-release file describes, and what is wrong with
    /// the file. A line that breaks the grammar is skipped, as systemd skips
    /// it; when it is one of the lines the platform is made of (`ID`,
    /// `ID_LIKE`, `VERSION_ID`), or there is no `ID` (the specification's
    /// default `linux`), the platform is unknown.
    pub fn from_os_release(text: &str) -> (Platform, Vec<OsReleaseError>) {
        let (fields, problems) = parse_os_release(text);
        (Platform::from_fields(&fields, &problems), problems)
    }

    /// The platform of an os-release file already parsed, with what was
    /// wrong with it (see [`Platform::from_os_release`]).
    pub fn from_fields(fields: &BTreeMap<String, String>, problems: &[OsReleaseError]) -> Platform {
        if problems.iter().any(|p| IDENTITY.contains(&p.key.as_str())) {
            return Platform::default();
        }
        let id = fields.get("ID").map(|s| s.to_ascii_lowercase());
        let like: Vec<String> = fields
            .get("ID_LIKE")
            .map(|s| s.split_whitespace().map(str::to_ascii_lowercase).collect())
            .unwrap_or_default();
        let family = id
            .as_deref()
            .map(|i| Family::of(i, &like))
            .unwrap_or(Family::Unknown);
        Platform {
            id,
            like,
            version: fields.get("VERSION_ID").cloned(),
            family,
        }
    }

    /// The platform a selector such as `rhel9`, `ubuntu22.04` or `debian`
    /// stands for, for `annexa checks list --platform`.
    pub fn from_name(name: &str) -> Result<Platform, SelectorError> {
        let sel = Selector::parse(name)?;
        let like = if ENTERPRISE_LINUX.contains(&sel.name.as_str()) && sel.name != "rhel" {
            vec!["rhel".to_string()]
        } else {
            Vec::new()
        };
        let family = Family::of(&sel.name, &like);
        Ok(Platform {
            id: Some(sel.name),
            like,
            version: sel.version,
            family,
        })
    }

    /// `id` and `VERSION_ID` run together (`rhel9.4`, `ubuntu24.04`), or
    /// `unknown`.
    pub fn name(&self) -> String {
        match (&self.id, &self.version) {
            (Some(id), Some(v)) => format!("{id}{v}"),
            (Some(id), None) => id.clone(),
            (None, _) => "unknown".into(),
        }
    }

    /// Whether a pack's selector names this platform. A name matches the
    /// os-release `ID`, the family, or (for `debian`, `ubuntu` and `rhel`
    /// only) a word of `ID_LIKE`: derivatives of those keep their files,
    /// while `ID_LIKE=fedora` on RHEL says less. A version is compared
    /// with `VERSION_ID` only where the versions are the same line: the
    /// same `ID`, or RHEL and its rebuilds for `rhelN`. Linux Mint 22 is
    /// `ubuntu`, never `ubuntu22`.
    pub fn matches(&self, selector: &Selector) -> bool {
        let Some(id) = self.id.as_deref() else {
            return false;
        };
        let rhel_line = selector.name == "rhel" && ENTERPRISE_LINUX.contains(&id);
        match &selector.version {
            None => {
                selector.name == id
                    || selector.name == self.family.as_str()
                    || rhel_line
                    || (LIKE_NAMES.contains(&selector.name.as_str())
                        && self.like.contains(&selector.name))
            }
            Some(want) => {
                (selector.name == id || rhel_line)
                    && self
                        .version
                        .as_deref()
                        .is_some_and(|v| version_prefix(want, v))
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} family)", self.name(), self.family)
    }
}

/// Whether `want` (`9`, `22.04`) is `have` (`9.4`, `22.04`) or a leading
/// part of it, component by component.
fn version_prefix(want: &str, have: &str) -> bool {
    let have: Vec<&str> = have.split('.').collect();
    let want: Vec<&str> = want.split('.').collect();
    want.len() <= have.len() && want.iter().zip(&have).all(|(w, h)| w == h)
}

/// One entry of a `platforms` list: a family (`debian`, `rhel`), an os-release
/// `ID` (`ubuntu`, `rocky`, `fedora`), either with a version (`rhel9`,
/// `ubuntu22.04`, `debian12`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selector {
    /// The name part, lower case.
    pub name: String,
    /// The version part, when given.
    pub version: Option<String>,
}

impl Selector {
    /// Parses `name[version]`: a lower-case name of letters (and `-`, `_`)
    /// followed by digits and dots.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let err = |reason: &str| SelectorError {
            given: s.to_string(),
            reason: reason.to_string(),
        };
        let split = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        let (name, version) = s.split_at(split);
        if name.is_empty() {
            return Err(err(
                "it must start with a distribution or family name (debian, ubuntu, rhel, rocky, fedora…)",
            ));
        }
        if name == "unknown" {
            return Err(err(
                "`unknown` names no platform: a check applies to platforms it knows",
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
        {
            return Err(err(
                "the name is lower-case letters, `-` and `_`, then an optional version such as 9 or 22.04",
            ));
        }
        if !version.is_empty()
            && (version.ends_with('.')
                || version.contains("..")
                || !version.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            return Err(err(
                "the version is digits separated by dots, such as 9 or 22.04",
            ));
        }
        Ok(Selector {
            name: name.trim_end_matches(['-', '_']).to_string(),
            version: (!version.is_empty()).then(|| version.to_string()),
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.version.as_deref().unwrap_or(""))
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Selector, D::Error> {
        let s = String::deserialize(d)?;
        Selector::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The fields of an os-release file (freedesktop.org os-release(5)):
/// `KEY=value` lines, values bare or in single or double quotes with shell
/// escapes (`\"`, `\\`, `\$`, `` \` ``) inside double quotes; blank lines and
/// `#` comments ignored. A later assignment wins. Lines that break the
/// grammar are skipped and returned as problems, and so is a missing `ID`.
pub fn parse_os_release(text: &str) -> (BTreeMap<String, String>, Vec<OsReleaseError>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |key: &str, message: String| OsReleaseError {
            line: i + 1,
            key: key.to_string(),
            message,
        };
        let Some((key, value)) = line.split_once('=') else {
            problems.push(err("", format!("`{}` is not KEY=value", shorten(line))));
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(err(
                &key.to_ascii_uppercase(),
                format!(
                    "`{}` is not a variable name (upper-case letters, digits, `_`)",
                    shorten(key)
                ),
            ));
            continue;
        }
        match unquote(value.trim()) {
            Ok(v) => {
                out.insert(key.to_string(), v);
            }
            Err(m) => problems.push(err(key, format!("{key}: {m}"))),
        }
    }
    if !out.contains_key("ID") && !problems.iter().any(|p| p.key == "ID") {
        problems.push(OsReleaseError {
            line: text.lines().count().max(1),
            key: "ID".into(),
            message: "no ID field".into(),
        });
    }
    (out, problems)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn unquote(v: &str) -> Result<String, String> {
    let mut chars = v.chars();
    match chars.next() {
        Some(q @ ('"' | '\'')) => {
            let mut out = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    c if c == q => {
                        closed = true;
                        break;
                    }
                    '\\' if q == '"' => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => return Err("ends inside an escape".into()),
                    },
                    c => out.push(c),
                }
            }
            if !closed {
                return Err(format!(
                    "unterminated {} quote",
                    if q == '"' { "double" } else { "single" }
                ));
            }
            let rest: String = chars.collect();
            if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                return Err(format!(
                    "text after the closing quote: `{}`",
                    shorten(rest.trim())
                ));
            }
            Ok(out)
        }
        _ => {
            if v.contains(['"', '\'', '`', '$', '\\']) || v.contains(char::is_whitespace) {
                return Err(format!(
                    "`{}`: a value with spaces, quotes, `$`, `` ` `` or `\\` must be quoted",
                    shorten(v)
                ));
            }
            Ok(v.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    // Each os-release below is the distribution's own file, trimmed to the
    // fields that matter (as shipped in their base images).
    const RHEL94: &str = "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"9.4 (Plow)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n";
    const ROCKY9: &str = "NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n";
    const ALMA8: &str = "NAME=\"AlmaLinux\"\nVERSION=\"8.10 (Cerulean Leopard)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.10\"\n";
    const OL9: &str = "NAME=\"Oracle Linux Server\"\nVERSION=\"9.4\"\nID=\"ol\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n";
    const FEDORA40: &str =
        "NAME=\"Fedora Linux\"\nVERSION=\"40 (Container Image)\"\nID=fedora\nVERSION_ID=40\n";
    const STREAM9: &str = "NAME=\"CentOS Stream\"\nVERSION=\"9\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"9\"\n";
    const UBUNTU2204: &str = "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\n";
    const DEBIAN12: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
    const ALPINE: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\n";

    #[test]
    fn families_and_names_of_real_os_release_files() {
        for (text, name, family) in [
            (RHEL94, "rhel9.4", Family::Rhel),
            (ROCKY9, "rocky9.4", Family::Rhel),
            (ALMA8, "almalinux8.10", Family::Rhel),
            (OL9, "ol9.4", Family::Rhel),
            (FEDORA40, "fedora40", Family::Rhel),
            (STREAM9, "centos9", Family::Rhel),
            (UBUNTU2204, "ubuntu22.04", Family::Debian),
            (DEBIAN12, "debian12", Family::Debian),
            (ALPINE, "alpine3.20.0", Family::Unknown),
        ] {
            let p = Platform::from_os_release(text).0;
            assert_eq!((p.name().as_str(), p.family), (name, family), "{text}");
        }
    }

    #[test]
    fn selectors_name_families_distributions_and_versions() {
        let rocky = Platform::from_os_release(ROCKY9).0;
        let ol = Platform::from_os_release(OL9).0;
        let fedora = Platform::from_os_release(FEDORA40).0;
        let ubuntu = Platform::from_os_release(UBUNTU2204).0;
        let debian = Platform::from_os_release(DEBIAN12).0;
        let alma8 = Platform::from_os_release(ALMA8).0;
        for (p, yes, no) in [
            (
                &rocky,
                &["rhel", "rhel9", "rocky", "rocky9.4"][..],
                &["rhel8", "debian", "fedora40", "rhel9.5", "fedora", "centos"][..],
            ),
            (&ol, &["rhel", "rhel9", "ol9"], &["rhel8", "ubuntu"]),
            (
                &fedora,
                &["rhel", "fedora", "fedora40"],
                &["rhel9", "fedora39"],
            ),
            (
                &ubuntu,
                &["debian", "ubuntu", "ubuntu22.04", "ubuntu22"],
                &["debian12", "ubuntu24.04", "rhel"],
            ),
            (&debian, &["debian", "debian12"], &["ubuntu", "debian11"]),
            (&alma8, &["rhel8", "rhel8.10"], &["rhel9"]),
        ] {
            for s in yes {
                assert!(p.matches(&sel(s)), "{s} should name {p}");
            }
            for s in no {
                assert!(!p.matches(&sel(s)), "{s} should not name {p}");
            }
        }
        let unknown = Platform::default();
        assert_eq!(unknown.name(), "unknown");
        assert!(!unknown.matches(&sel("debian")));
        // A derivative is its parent by name, never by the parent's version.
        let (mint, _) = Platform::from_os_release(
            "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"22\"\n",
        );
        assert!(mint.matches(&sel("ubuntu")) && mint.matches(&sel("debian")));
        assert!(!mint.matches(&sel("ubuntu22")) && !mint.matches(&sel("debian12")));
        // RHEL says ID_LIKE=fedora; a `fedora` selector does not name it.
        let (rhel, _) = Platform::from_os_release(RHEL94);
        assert!(!rhel.matches(&sel("fedora")) && rhel.matches(&sel("rhel9")));
        let (alpine, _) = Platform::from_os_release(ALPINE);
        assert!(!alpine.matches(&sel("debian")) && !alpine.matches(&sel("rhel")));
    }

    #[test]
    fn platform_names_from_the_command_line() {
        let p = Platform::from_name("rhel9").unwrap();
        assert_eq!((p.family, p.name().as_str()), (Family::Rhel, "rhel9"));
        assert!(p.matches(&sel("rhel")) && p.matches(&sel("rhel9")) && !p.matches(&sel("rhel8")));
        let p = Platform::from_name("rocky9").unwrap();
        assert!(p.matches(&sel("rhel9")));
        let p = Platform::from_name("ubuntu24.04").unwrap();
        assert_eq!(p.family, Family::Debian);
        assert!(p.matches(&sel("debian")));
        for bad in [
            "", "9", "RHEL9", "rhel9.", "rhel 9", "rhel9..1", "rhel9a", "unknown",
        ] {
            let e = Platform::from_name(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn odd_quoting_is_a_problem_that_names_the_line() {
        let (ok, problems) = parse_os_release(
            "# c\n\nNAME='Single Quoted'\nPRETTY_NAME=\"Say \\\"hi\\\" \\$HOME\"\nID=x\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(ok["NAME"], "Single Quoted");
        assert_eq!(ok["PRETTY_NAME"], "Say \"hi\" $HOME");
        for (text, line, what) in [
            ("ID=debian\nNAME=\"Debian\n", 2, "unterminated double quote"),
            ("ID='x\n", 1, "unterminated single quote"),
            (
                "ID=debian\nPRETTY_NAME=Debian GNU/Linux\n",
                2,
                "must be quoted",
            ),
            ("ID=debian\njust words\n", 2, "is not KEY=value"),
            ("ID=x\nid=debian\n", 2, "is not a variable name"),
            ("ID=x\nNAME=\"a\" b\n", 2, "text after the closing quote"),
        ] {
            let (_, problems) = parse_os_release(text);
            let e = &problems[0];
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
        // A broken line elsewhere leaves the platform known; a broken ID,
        // or none, does not.
        let (p, problems) = Platform::from_os_release(
            "ID=rhel\nVERSION_ID=9.4\nPRETTY_NAME=Red Hat Enterprise Linux 9.4\n",
        );
        assert_eq!((p.name().as_str(), problems.len()), ("rhel9.4", 1));
        let (p, problems) = Platform::from_os_release("ID=\"rhel\nVERSION_ID=9.4\n");
        assert_eq!(
            (p.name().as_str(), problems[0].key.as_str()),
            ("unknown", "ID")
        );
        let (p, problems) = Platform::from_os_release("NAME=Something\n");
        assert_eq!((p.family, p.name().as_str()), (Family::Unknown, "unknown"));
        assert_eq!(problems[0].message, "no ID field");
    }
}
