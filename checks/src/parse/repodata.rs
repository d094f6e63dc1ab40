//! rpm-md repository metadata as dnf caches it: `repomd.xml` (which files
//! the repository has), `primary.xml` (every package offered) and
//! `updateinfo.xml` (advisories: security, bug fix, enhancement, with
//! severity). Read as streams: a primary file of a full distribution is tens
//! of megabytes, and only the packages installed on the host are kept.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::rpm::Evr;

/// Metadata that is not what rpm-md says it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepodataError {
    /// Not well-formed XML.
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset in the (decompressed) document.
        position: u64,
        /// The parser's message.
        message: String,
    },
    /// Well-formed, but missing what the format requires.
    #[error("{0}")]
    Format(String),
}

/// A file `repomd.xml` lists: its `type` (`primary`, `updateinfo`, …) and
/// its file name inside the cache's `repodata/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// The data type.
    pub kind: String,
    /// The file name, without directories.
    pub file_name: String,
}

/// One advisory that names an installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// `RHSA-2024:1234`, `FEDORA-2024-…`.
    pub id: String,
    /// `security`, `bugfix`, `enhancement`, `newpackage`.
    pub kind: String,
    /// `Critical`, `Important`, `Moderate`, `Low`, or empty when not given.
    pub severity: String,
    /// (name, arch, fixed version) of the packages it updates.
    pub packages: Vec<(String, String, Evr)>,
}

fn xml_err<R>(reader: &Reader<R>, e: impl std::fmt::Display) -> RepodataError {
    RepodataError::Xml {
        position: reader.error_position().max(reader.buffer_position()),
        message: e.to_string(),
    }
}

fn attr<R>(
    reader: &Reader<R>,
    e: &BytesStart<'_>,
    name: &str,
) -> Result<Option<String>, RepodataError> {
    for a in e.attributes() {
        let a = a.map_err(|err| xml_err(reader, err))?;
        if a.key.local_name().as_ref() == name {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| xml_err(reader, err))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// An `epoch` attribute: absent or empty is 0; anything but digits is an
/// error (a silent 0 would rank the package wrongly).
fn epoch_of(package: &str, epoch: Option<String>) -> Result<u32, RepodataError> {
    match epoch.as_deref().map(str::trim) {
        None | Some("") => Ok(0),
        Some(e) => e.parse().map_err(|_| {
            RepodataError::Format(format!("package {package}: epoch `{e}` is not a number"))
        }),
    }
}

/// The files a `repomd.xml` lists. Only the last component of each
/// `location href` is kept: the cache holds them flat in `repodata/`, and a
/// hostile `../` must not lead a read out of it.
pub fn repomd(input: impl BufRead) -> Result<Vec<RepoFile>, RepodataError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut kind: Option<String> = None;
    let mut root_seen = false;
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(xml_err(&reader, e)),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = e.local_name();
                match name.as_ref() {
                    "repomd" => root_seen = true,
                    "data" => kind = attr(&reader, &e, "type")?,
                    "location" => {
                        if let (Some(k), Some(href)) = (&kind, attr(&reader, &e, "href")?) {
                            let file_name = href.rsplit('/').next().unwrap_or("").to_string();
                            if file_name.is_empty() || file_name == ".." || file_name == "." {
                                return Err(RepodataError::Format(format!(
                                    "data type {k}: location `{href}` names no file"
                                )));
                            }
                            out.push(RepoFile {
                                kind: k.clone(),
                                file_name,
                            });
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == "data" => kind = None,
            Ok(_) => {}
        }
        buf.clear();
    }
    if !root_seen {
        return Err(RepodataError::Format("no <repomd> element".into()));
    }
    Ok(out)
}

/// The newest version `primary.xml` offers of each (name, arch) whose name
/// is in `wanted`.
pub fn newest_offered(
    input: impl BufRead,
    wanted: &HashSet<&str>,
) -> Result<HashMap<(String, String), Evr>, RepodataError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut out: HashMap<(String, String), Evr> = HashMap::new();
    let mut root_seen = false;
    // Inside a <package>: which child element's text is being read, and
    // what has been read so far.
    let mut in_package = false;
    let mut field: Option<&'static str> = None;
    let (mut name, mut arch, mut evr) = (String::new(), String::new(), None::<Evr>);
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(xml_err(&reader, e)),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                "metadata" => root_seen = true,
                "package" => {
                    in_package = true;
                    name.clear();
                    arch.clear();
                    evr = None;
                }
                "name" if in_package => field = Some("name"),
                "arch" if in_package => field = Some("arch"),
                "version" if in_package => {
                    let get = |k: &str| attr(&reader, &e, k);
                    let epoch = epoch_of(&name, get("epoch")?)?;
                    let ver = get("ver")?.ok_or_else(|| {
                        RepodataError::Format(format!("package {name}: <version> without ver"))
                    })?;
                    let rel = get("rel")?;
                    evr = Some(Evr {
                        epoch,
                        version: ver,
                        release: rel,
                    });
                }
                _ => {}
            },
            Ok(Event::Text(t)) => match field {
                Some("name") => name.push_str(&t),
                Some("arch") => arch.push_str(&t),
                _ => {}
            },
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                "name" | "arch" => field = None,
                "package" => {
                    in_package = false;
                    if arch == "src" || !wanted.contains(name.as_str()) {
                        continue;
                    }
                    let Some(v) = evr.take() else {
                        return Err(RepodataError::Format(format!(
                            "package {name}: no <version>"
                        )));
                    };
                    let key = (std::mem::take(&mut name), std::mem::take(&mut arch));
                    match out.get(&key) {
                        Some(old) if old.cmp_rpm(&v).is_ge() => {}
                        _ => {
                            out.insert(key, v);
                        }
                    }
                }
                _ => {}
            },
            Ok(_) => {}
        }
        buf.clear();
    }
    if !root_seen {
        return Err(RepodataError::Format("no <metadata> element".into()));
    }
    Ok(out)
}

/// The advisories of an `updateinfo.xml` that name a package in `wanted`.
pub fn advisories(
    input: impl BufRead,
    wanted: &HashSet<&str>,
) -> Result<Vec<Advisory>, RepodataError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut root_seen = false;
    let mut current: Option<Advisory> = None;
    let mut field: Option<&'static str> = None;
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(xml_err(&reader, e)),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                "updates" => root_seen = true,
                "update" => {
                    current = Some(Advisory {
                        id: String::new(),
                        kind: attr(&reader, &e, "type")?.unwrap_or_default(),
                        severity: String::new(),
                        packages: Vec::new(),
                    })
                }
                "id" if current.is_some() => field = Some("id"),
                "severity" if current.is_some() => field = Some("severity"),
                "package" => {
                    if let Some(adv) = current.as_mut() {
                        let name = attr(&reader, &e, "name")?.unwrap_or_default();
                        if wanted.contains(name.as_str()) {
                            let get = |k: &str| attr(&reader, &e, k);
                            let version = get("version")?.ok_or_else(|| {
                                RepodataError::Format(format!(
                                    "package {name}: no version attribute"
                                ))
                            })?;
                            let evr = Evr {
                                epoch: epoch_of(&name, get("epoch")?)?,
                                version,
                                release: get("release")?,
                            };
                            let arch = get("arch")?.unwrap_or_default();
                            adv.packages.push((name, arch, evr));
                        }
                    }
                }
                _ => {}
            },
            Ok(Event::Text(t)) => {
                if let (Some(adv), Some(f)) = (current.as_mut(), field) {
                    let text = t.trim();
                    match f {
                        "id" => adv.id.push_str(text),
                        _ => adv.severity.push_str(text),
                    }
                }
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                "id" | "severity" => field = None,
                "update" => {
                    if let Some(adv) = current.take() {
                        if adv.id.is_empty() {
                            return Err(RepodataError::Format("an <update> without <id>".into()));
                        }
                        if !adv.packages.is_empty() {
                            out.push(adv);
                        }
                    }
                }
                _ => {}
            },
            Ok(_) => {}
        }
        buf.clear();
    }
    if !root_seen {
        return Err(RepodataError::Format("no <updates> element".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped as createrepo_c writes them (repomd, primary) and as Red Hat
    // publishes updateinfo.
    const REPOMD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1714000000</revision>
  <data type="primary">
    <checksum type="sha256">ab</checksum>
    <location href="repodata/ab12-primary.xml.gz"/>
  </data>
  <data type="updateinfo">
    <location href="repodata/cd34-updateinfo.xml.gz"/>
  </data>
</repomd>"#;

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="4">
<package type="rpm"><name>openssl</name><arch>x86_64</arch><version epoch="1" ver="3.0.7" rel="27.el9"/></package>
<package type="rpm"><name>openssl</name><arch>x86_64</arch><version epoch="1" ver="3.0.7" rel="28.el9_4"/></package>
<package type="rpm"><name>openssl</name><arch>src</arch><version epoch="1" ver="3.0.9" rel="1.el9"/></package>
<package type="rpm"><name>unrelated</name><arch>noarch</arch><version epoch="0" ver="9" rel="1"/></package>
</metadata>"#;

    const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="release-engineering@redhat.com" status="final" type="security" version="2">
    <id>RHSA-2024:1234</id>
    <title>Important: openssl security update</title>
    <severity>Important</severity>
    <pkglist><collection short="x"><name>x</name>
      <package name="openssl" version="3.0.7" release="28.el9_4" epoch="1" arch="x86_64"><filename>openssl.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update type="bugfix"><id>RHBA-2024:1</id><pkglist><collection><package name="other" version="1" release="1" epoch="0" arch="noarch"/></collection></pkglist></update>
</updates>"#;

    #[test]
    fn repomd_lists_file_names_only() {
        let files = repomd(REPOMD.as_bytes()).unwrap();
        assert_eq!(files[0].kind, "primary");
        assert_eq!(files[0].file_name, "ab12-primary.xml.gz");
        assert_eq!(files[1].file_name, "cd34-updateinfo.xml.gz");
        let hostile = REPOMD.replace("repodata/ab12-primary.xml.gz", "../../");
        assert!(repomd(hostile.as_bytes()).is_err());
    }

    #[test]
    fn newest_offered_per_installed_name_and_arch() {
        let wanted: HashSet<&str> = ["openssl"].into();
        let got = newest_offered(PRIMARY.as_bytes(), &wanted).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[&("openssl".into(), "x86_64".into())].to_string(),
            "1:3.0.7-28.el9_4"
        );
    }

    #[test]
    fn advisories_keep_type_severity_and_installed_packages() {
        let wanted: HashSet<&str> = ["openssl"].into();
        let got = advisories(UPDATEINFO.as_bytes(), &wanted).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].id.as_str(),
                got[0].kind.as_str(),
                got[0].severity.as_str()
            ),
            ("RHSA-2024:1234", "security", "Important")
        );
        assert_eq!(got[0].packages[0].2.to_string(), "1:3.0.7-28.el9_4");
    }

    #[test]
    fn what_is_not_xml_or_not_rpm_md_is_an_error() {
        let wanted: HashSet<&str> = ["openssl"].into();
        let e = advisories("this is not xml <updates".as_bytes(), &wanted).unwrap_err();
        assert!(
            e.to_string().contains("<updates>") || e.to_string().contains("XML"),
            "{e}"
        );
        let e = advisories("<html><body/></html>".as_bytes(), &wanted).unwrap_err();
        assert_eq!(e.to_string(), "no <updates> element");
        let e = newest_offered(
            "<metadata><package><name>openssl</name></pkg></metadata>".as_bytes(),
            &wanted,
        )
        .unwrap_err();
        assert!(matches!(e, RepodataError::Xml { .. }), "{e}");
        assert!(repomd("{\"json\": true}".as_bytes()).is_err());
    }
}
