//! Disk encryption: whether the root, home and swap volumes sit on an
//! encrypted device, and whether the encrypted volumes use a strong
//! cipher.
//!
//! Live, the answer comes from the kernel: the mount's device in
//! /proc/self/mountinfo (or /proc/swaps), followed down the device-mapper
//! stack in /sys/class/block (`dm/uuid` of a dm-crypt device starts with
//! `CRYPT-`; LVM and RAID devices name theirs under `slaves/`). In a root
//! directory it comes from the configuration: the device /etc/fstab names
//! must be a /dev/mapper volume of /etc/crypttab, directly or as an LVM
//! logical volume whose physical volume is one (/etc/lvm/backup/VG).
//! LUKS headers (for the cipher) are read from the devices themselves,
//! so only live and as root.

use std::io::Read;

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use crate::host::{HostView, Resolved};
use crate::result::{Source, SourceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// The volume mounted at `mount` (or every swap device) is encrypted.
    Volume,
    /// Every LUKS or plain dm-crypt volume of /etc/crypttab uses a strong cipher.
    Cipher,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionProbe {
    rule: Rule,
    /// A mount point, or `swap`.
    #[serde(default)]
    mount: Option<String>,
}

/// One line of /etc/crypttab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptEntry {
    /// The mapped name (`/dev/mapper/NAME`).
    pub name: String,
    /// The underlying device (`UUID=…`, `/dev/sda3`).
    pub device: String,
    /// The key file, `none` for a passphrase.
    pub key: String,
    /// Comma-separated options (`luks`, `discard`, `cipher=…`).
    pub options: Vec<String>,
    /// 1-based line.
    pub line: u32,
}

/// Parses /etc/crypttab.
pub fn parse_crypttab(text: &str) -> Vec<CryptEntry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(CryptEntry {
                name: f[0].to_string(),
                device: f.get(1)?.to_string(),
                key: f.get(2).unwrap_or(&"none").to_string(),
                options: f
                    .get(3)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
                line: i as u32 + 1,
            })
        })
        .collect()
}

/// One line of /etc/fstab: (device, mount point, type, line).
pub fn parse_fstab(text: &str) -> Vec<(String, String, String, u32)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f[0].to_string(),
                f.get(1)?.replace("\\040", " "),
                f.get(2)?.to_string(),
                i as u32 + 1,
            ))
        })
        .collect()
}

/// A /dev/mapper name's volume group, undoing LVM's `--` escape of `-`.
fn lvm_vg(mapper_name: &str) -> Option<String> {
    let b = mapper_name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            return Some(mapper_name[..i].replace("--", "-"));
        }
        i += 1;
    }
    None
}

fn mapper_name(spec: &str) -> Option<&str> {
    spec.strip_prefix("/dev/mapper/")
        .or_else(|| spec.strip_prefix("/dev/disk/by-id/dm-name-"))
}

impl EncryptionProbe {
    /// Root mode: whether the fstab device `spec` is a crypttab volume.
    fn configured(
        &self,
        ctx: &Ctx<'_>,
        spec: &str,
        crypt: &[CryptEntry],
        sources: &mut Vec<Source>,
    ) -> Result<Result<String, String>, crate::host::HostError> {
        if spec == "/dev/zram0" || spec.starts_with("/dev/zram") {
            return Ok(Ok(format!(
                "{spec} is compressed memory, never written to disk"
            )));
        }
        let Some(name) = mapper_name(spec) else {
            return Ok(Err(format!("{spec} is not a device-mapper volume")));
        };
        if let Some(c) = crypt.iter().find(|c| c.name == name) {
            return Ok(Ok(format!(
                "{spec} is crypttab volume {} (line {})",
                c.name, c.line
            )));
        }
        if let Some(vg) = lvm_vg(name) {
            let path = format!("/etc/lvm/backup/{vg}");
            if let Some(f) = ctx.read(&path)? {
                sources.push(f.source());
                let text = f.text();
                let pvs: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("device = \""))
                    .filter_map(|d| d.split('"').next())
                    .collect();
                if !pvs.is_empty()
                    && pvs
                        .iter()
                        .all(|d| mapper_name(d).is_some_and(|n| crypt.iter().any(|c| c.name == n)))
                {
                    return Ok(Ok(format!(
                        "{spec} is a logical volume of {vg}, whose physical volumes ({}) are crypttab volumes",
                        pvs.join(", ")
                    )));
                }
                return Ok(Err(format!(
                    "{spec} is a logical volume of {vg}, whose physical volumes ({}) are not all crypttab volumes",
                    pvs.join(", ")
                )));
            }
            sources.push(HostView::absent_source(&path));
        }
        Ok(Err(format!("{spec} is not a volume of /etc/crypttab")))
    }

    fn root_mode(&self, ctx: &Ctx<'_>, mount: &str) -> Outcome {
        let mut sources = Vec::new();
        let Some(fstab) = host_try!(ctx.read("/etc/fstab"), sources) else {
            return Outcome::not_applicable(
                "no /etc/fstab: the image's volumes are made where it is deployed; scan the running host",
            )
            .sources(vec![HostView::absent_source("/etc/fstab")]);
        };
        sources.push(fstab.source());
        let crypt = match host_try!(ctx.read("/etc/crypttab"), sources) {
            Some(f) => {
                sources.push(f.source());
                parse_crypttab(&f.text())
            }
            None => {
                sources.push(HostView::absent_source("/etc/crypttab"));
                Vec::new()
            }
        };
        let entries = parse_fstab(&fstab.text());
        let chosen: Vec<_> = if mount == "swap" {
            entries.iter().filter(|e| e.2 == "swap").collect()
        } else {
            let own = entries.iter().rev().find(|e| e.1 == mount);
            own.or_else(|| entries.iter().rev().find(|e| e.1 == "/"))
                .into_iter()
                .collect()
        };
        if chosen.is_empty() {
            return Outcome::not_applicable(if mount == "swap" {
                "no swap in /etc/fstab: nothing to encrypt".to_string()
            } else {
                format!("/etc/fstab has no entry for {mount} or /: the runtime provides it")
            })
            .sources(sources);
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (spec, mp, _, line) in chosen {
            sources.push(fstab.source_at(*line));
            let mut on = if mp != mount && mount != "swap" {
                format!("{mount} is on {mp}: ")
            } else {
                String::new()
            };
            // A swap file (/swap.img) is as encrypted as the file system holding it.
            let mut spec = spec;
            if mount == "swap" && spec.starts_with('/') && !spec.starts_with("/dev/") {
                let holder = entries
                    .iter()
                    .filter(|e| {
                        e.2 != "swap"
                            && (e.1 == "/"
                                || spec.starts_with(&format!("{}/", e.1.trim_end_matches('/'))))
                    })
                    .max_by_key(|e| e.1.len());
                match holder {
                    Some(h) => {
                        sources.push(fstab.source_at(h.3));
                        on = format!("swap file {spec} is on {}: ", h.1);
                        spec = &h.0;
                    }
                    None => {
                        bad.push(format!("swap file {spec}: no /etc/fstab entry holds it"));
                        continue;
                    }
                }
            }
            match host_try!(self.configured(ctx, spec, &crypt, &mut sources), sources) {
                Ok(why) => good.push(format!("{on}{why}")),
                Err(why) => bad.push(format!("{on}{why}")),
            }
        }
        verdict(mount, good, bad, sources)
    }

    fn live_mode(&self, ctx: &Ctx<'_>, mount: &str) -> Outcome {
        let mut sources = Vec::new();
        let Some(info) = host_try!(ctx.read("/proc/self/mountinfo"), sources) else {
            return Outcome::error("/proc/self/mountinfo is missing: the mounts cannot be read")
                .sources(vec![HostView::absent_source("/proc/self/mountinfo")]);
        };
        sources.push(info.source());
        let mounts = parse_mountinfo(&info.text());
        let mut devices: Vec<(String, Mount)> = Vec::new();
        if mount == "swap" {
            let Some(swaps) = host_try!(ctx.read("/proc/swaps"), sources) else {
                return Outcome::error("/proc/swaps is missing: swap devices cannot be read")
                    .sources(sources);
            };
            sources.push(swaps.source());
            for l in swaps.text().lines().skip(1) {
                let Some(file) = l.split_whitespace().next() else {
                    continue;
                };
                let kind = l.split_whitespace().nth(1).unwrap_or("");
                if kind == "file" {
                    // A swap file is as encrypted as the file system holding it.
                    if let Some(m) = holding(&mounts, file) {
                        devices.push((format!("swap file {file} on {}", m.point), m.clone()));
                    }
                } else {
                    devices.push((
                        format!("swap {file}"),
                        Mount {
                            point: "swap".into(),
                            majmin: String::new(),
                            fstype: "swap".into(),
                            source: file.replace("\\040", " "),
                        },
                    ));
                }
            }
            if devices.is_empty() {
                return Outcome::not_applicable(
                    "no swap is in use (/proc/swaps): nothing to encrypt",
                )
                .sources(sources);
            }
        } else {
            let Some(m) = holding(&mounts, mount) else {
                return Outcome::error(format!("no mount holds {mount} in /proc/self/mountinfo"))
                    .sources(sources);
            };
            let label = if m.point == mount {
                mount.to_string()
            } else {
                format!("{mount} (on {})", m.point)
            };
            devices.push((label, m.clone()));
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (label, m) in devices {
            if matches!(m.fstype.as_str(), "overlay" | "tmpfs" | "ramfs")
                || m.source.starts_with("/dev/zram")
            {
                if m.source.starts_with("/dev/zram") || m.fstype != "overlay" {
                    good.push(format!(
                        "{label} is in memory ({} {}), never written to disk",
                        m.fstype, m.source
                    ));
                    continue;
                }
                return Outcome::not_applicable(format!(
                    "{label} is an overlay ({}): this is a container, whose disks are the host's; scan the host",
                    m.source
                ))
                .sources(sources);
            }
            let block = host_try!(block_name(ctx.host, &m), sources);
            let Some(block) = block else {
                bad.push(format!(
                    "{label}: {} is not a block device this host shows in /sys/class/block",
                    m.source
                ));
                continue;
            };
            match host_try!(crypt_chain(ctx.host, &block, 0, &mut sources), sources) {
                Some(chain) => good.push(format!("{label} is on {} ({chain})", m.source)),
                None => bad.push(format!("{label} is on {} ({block}), which is not dm-crypt and stands on no dm-crypt device", m.source)),
            }
        }
        verdict(mount, good, bad, sources)
    }

    fn cipher(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let Some(tab) = host_try!(ctx.read("/etc/crypttab"), sources) else {
            return Outcome::not_applicable(
                "no /etc/crypttab: no encrypted volumes are configured",
            )
            .sources(vec![HostView::absent_source("/etc/crypttab")]);
        };
        sources.push(tab.source());
        let entries = parse_crypttab(&tab.text());
        if entries.is_empty() {
            return Outcome::not_applicable("/etc/crypttab names no volume").sources(sources);
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut unread = Vec::new();
        for e in &entries {
            sources.push(tab.source_at(e.line));
            let plain = e.options.iter().any(|o| o == "plain")
                || (!e.options.iter().any(|o| o == "luks")
                    && (e.key.starts_with("/dev/urandom") || e.key.starts_with("/dev/random")));
            if plain {
                let cipher = e.options.iter().find_map(|o| o.strip_prefix("cipher="));
                let size = e
                    .options
                    .iter()
                    .find_map(|o| o.strip_prefix("size="))
                    .and_then(|s| s.parse().ok());
                match cipher {
                    Some(c) => judge(&mut good, &mut bad, &e.name, c, size.unwrap_or(256), "crypttab options"),
                    None => bad.push(format!("{}: plain dm-crypt without a cipher= option (the cryptsetup default applies)", e.name)),
                }
                continue;
            }
            if !ctx.is_live() {
                unread.push(e.name.clone());
                continue;
            }
            let dev = device_path(&e.device);
            match read_header(ctx.host, &dev) {
                Ok(bytes) => {
                    sources.push(Source {
                        kind: SourceKind::File,
                        path: dev.clone(),
                        sha256: Some(crate::host::sha256_hex(&bytes)),
                        line: None,
                    });
                    match parse_luks(&bytes) {
                        Ok(h) => judge(
                            &mut good,
                            &mut bad,
                            &e.name,
                            &h.cipher,
                            h.key_bits,
                            &format!("LUKS{} header of {dev}", h.version),
                        ),
                        Err(m) => {
                            return Outcome::error(format!(
                                "{dev} (crypttab volume {}): {m}",
                                e.name
                            ))
                            .sources(sources);
                        }
                    }
                }
                Err(m) => {
                    return Outcome::error(format!("{dev} (crypttab volume {}): {m}", e.name))
                        .sources(sources);
                }
            }
        }
        if good.is_empty() && bad.is_empty() {
            return Outcome::not_applicable(format!(
                "the LUKS headers of {} are on the deployed disks, not in this root; scan the running host",
                unread.join(", ")
            ))
            .sources(sources);
        }
        let expected =
            "XTS mode with a 512-bit key (AES-256), or Adiantum; no CBC, ECB or ESSIV".to_string();
        Outcome::findings(expected, &good, &bad, sources)
    }
}

fn judge(
    good: &mut Vec<String>,
    bad: &mut Vec<String>,
    name: &str,
    cipher: &str,
    bits: u32,
    from: &str,
) {
    let c = cipher.to_ascii_lowercase();
    let strong = c.contains("adiantum")
        || (c.contains("-xts-") && bits >= 512 && !c.contains("essiv") && !c.ends_with("-plain"));
    let line = format!("{name}: {cipher}, {bits}-bit key ({from})");
    if strong {
        good.push(line);
    } else {
        bad.push(line);
    }
}

fn verdict(mount: &str, good: Vec<String>, bad: Vec<String>, sources: Vec<Source>) -> Outcome {
    let expected = format!("{mount} on an encrypted (dm-crypt/LUKS) device");
    Outcome::findings(expected, &good, &bad, sources)
}

/// One mount of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Mount point.
    pub point: String,
    /// The device number, `MAJOR:MINOR`.
    pub majmin: String,
    /// File system type.
    pub fstype: String,
    /// The mount source (a device path for block devices).
    pub source: String,
}

/// Parses /proc/self/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let lf: Vec<&str> = left.split_whitespace().collect();
            let rf: Vec<&str> = right.split_whitespace().collect();
            Some(Mount {
                majmin: lf.get(2)?.to_string(),
                point: lf.get(4)?.replace("\\040", " "),
                fstype: rf.first()?.to_string(),
                source: rf.get(1).unwrap_or(&"").replace("\\040", " "),
            })
        })
        .collect()
}

/// The mount that holds `path`: the last-mounted of the longest mount points.
pub(crate) fn holding<'m>(mounts: &'m [Mount], path: &str) -> Option<&'m Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts {
        let inside = m.point == "/"
            || path == m.point
            || path.starts_with(&format!("{}/", m.point.trim_end_matches('/')));
        if inside && best.is_none_or(|b| m.point.len() >= b.point.len()) {
            best = Some(m);
        }
    }
    best
}

/// The kernel's name for the block device behind a mount (`dm-0`, `sda2`).
fn block_name(host: &HostView, m: &Mount) -> Result<Option<String>, crate::host::HostError> {
    if m.source.starts_with("/dev/") {
        if let Resolved::Found(real) = host.resolve(&m.source)? {
            if let Some(name) = real.file_name() {
                let name = name.to_string_lossy().into_owned();
                if host.exists(&format!("/sys/class/block/{name}"))? {
                    return Ok(Some(name));
                }
            }
        }
    }
    // Btrfs and others show an anonymous device; the number still names
    // the real one for most file systems.
    if let Some(t) = host.link_target(&format!("/sys/dev/block/{}", m.majmin))? {
        return Ok(t.rsplit('/').next().map(str::to_string));
    }
    Ok(None)
}

/// `Some(description)` when `block` is dm-crypt or stands only on dm-crypt
/// devices (LVM, RAID), following `slaves/`.
fn crypt_chain(
    host: &HostView,
    block: &str,
    depth: usize,
    sources: &mut Vec<Source>,
) -> Result<Option<String>, crate::host::HostError> {
    if depth > 8 {
        return Ok(None);
    }
    let uuid_path = format!("/sys/class/block/{block}/dm/uuid");
    if let Some(f) = host.read(&uuid_path)? {
        sources.push(f.source());
        let uuid = f.text().trim().to_string();
        if uuid.starts_with("CRYPT-") {
            let kind = uuid.split('-').nth(1).unwrap_or("").to_string();
            return Ok(Some(format!("{block} is dm-crypt {kind}")));
        }
    }
    let slaves_dir = format!("/sys/class/block/{block}/slaves");
    let Some(slaves) = host.read_dir(&slaves_dir)? else {
        return Ok(None);
    };
    if slaves.is_empty() {
        return Ok(None);
    }
    let mut found = Vec::new();
    for s in &slaves {
        match crypt_chain(host, &s.name, depth + 1, sources)? {
            Some(d) => found.push(d),
            None => return Ok(None),
        }
    }
    Ok(Some(format!("{block} on {}", found.join(" and "))))
}

fn device_path(spec: &str) -> String {
    for (prefix, dir) in [
        ("UUID=", "/dev/disk/by-uuid/"),
        ("PARTUUID=", "/dev/disk/by-partuuid/"),
        ("LABEL=", "/dev/disk/by-label/"),
        ("PARTLABEL=", "/dev/disk/by-partlabel/"),
    ] {
        if let Some(v) = spec.strip_prefix(prefix) {
            return format!("{dir}{}", v.trim_matches('"'));
        }
    }
    spec.to_string()
}

/// Reads a LUKS header (binary header and, for LUKS2, the JSON area) from
/// a block device of the live host.
fn read_header(host: &HostView, dev: &str) -> Result<Vec<u8>, String> {
    let real = match host.resolve(dev).map_err(|e| e.to_string())? {
        Resolved::Found(p) => p,
        Resolved::Missing => return Err("the device does not exist".into()),
    };
    let mut f = std::fs::File::open(&real).map_err(|e| format!("cannot read its header: {e}"))?;
    let mut bytes = Vec::new();
    f.by_ref()
        .take(LUKS2_MAX_HEADER)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read its header: {e}"))?;
    Ok(bytes)
}

const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
const LUKS2_MAX_HEADER: u64 = 4 << 20;

/// What a LUKS header says about the volume's encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksHeader {
    /// 1 or 2.
    pub version: u16,
    /// `cipher-mode`, e.g. `aes-xts-plain64`.
    pub cipher: String,
    /// The volume key's size in bits.
    pub key_bits: u32,
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Parses a LUKS1 (cryptsetup's on-disk format 1.2.3) or LUKS2 header.
pub fn parse_luks(b: &[u8]) -> Result<LuksHeader, String> {
    if b.len() < 592 || &b[..6] != LUKS_MAGIC {
        return Err("no LUKS header (magic LUKS\\xba\\xbe missing)".into());
    }
    let version = u16::from_be_bytes([b[6], b[7]]);
    match version {
        1 => {
            let cipher = format!("{}-{}", c_string(&b[8..40]), c_string(&b[40..72]));
            let key_bytes = u32::from_be_bytes([b[108], b[109], b[110], b[111]]);
            Ok(LuksHeader {
                version,
                cipher,
                key_bits: key_bytes.saturating_mul(8),
            })
        }
        2 => {
            let mut size = [0u8; 8];
            size.copy_from_slice(&b[8..16]);
            let hdr = u64::from_be_bytes(size) as usize;
            if hdr <= 4096 || hdr > b.len() {
                return Err(format!(
                    "LUKS2 header size {hdr} is outside the bytes read ({})",
                    b.len()
                ));
            }
            let json = &b[4096..hdr];
            let end = json.iter().position(|&c| c == 0).unwrap_or(json.len());
            let v: serde_json::Value = serde_json::from_slice(&json[..end])
                .map_err(|e| format!("LUKS2 JSON area: {e}"))?;
            let seg = v["segments"]
                .as_object()
                .and_then(|s| s.values().find(|x| x["type"] == "crypt"))
                .ok_or("LUKS2 JSON area has no crypt segment")?;
            let cipher = seg["encryption"]
                .as_str()
                .ok_or("LUKS2 segment has no encryption")?
                .to_string();
            let key_bits = v["keyslots"]
                .as_object()
                .and_then(|k| k.values().filter_map(|x| x["key_size"].as_u64()).min())
                .map(|n| (n * 8) as u32)
                .ok_or("LUKS2 JSON area has no keyslot with a key_size")?;
            Ok(LuksHeader {
                version,
                cipher,
                key_bits,
            })
        }
        v => Err(format!("LUKS version {v} is unknown")),
    }
}

impl Probe for EncryptionProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match self.rule {
            Rule::Cipher => self.cipher(ctx),
            Rule::Volume => {
                let mount = self.mount.as_deref().unwrap_or("/");
                if ctx.is_live() {
                    self.live_mode(ctx, mount)
                } else {
                    self.root_mode(ctx, mount)
                }
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        match (self.rule, &self.mount) {
            (Rule::Volume, Some(m)) if m == "swap" || m.starts_with('/') => Ok(()),
            (Rule::Volume, _) => {
                Err("rule `volume` needs `mount`: an absolute mount point or `swap`".into())
            }
            (Rule::Cipher, None) => Ok(()),
            (Rule::Cipher, Some(_)) => Err("rule `cipher` takes no `mount`".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use super::*;
    use crate::result::Status;

    const ROOT: &str = r#"{ kind = "encryption", rule = "volume", mount = "/" }"#;
    const HOME: &str = r#"{ kind = "encryption", rule = "volume", mount = "/home" }"#;
    const SWAP: &str = r#"{ kind = "encryption", rule = "volume", mount = "swap" }"#;

    #[test]
    fn lvm_on_luks_as_the_debian_installer_makes_it() {
        let files = [
            ("/etc/crypttab", "sda3_crypt UUID=7f1e none luks,discard\n"),
            (
                "/etc/fstab",
                "/dev/mapper/deb--vg-root / ext4 errors=remount-ro 0 1\n/dev/mapper/deb--vg-swap_1 none swap sw 0 0\n",
            ),
            (
                "/etc/lvm/backup/deb-vg",
                "deb-vg {\nphysical_volumes {\npv0 {\nid = \"x\"\ndevice = \"/dev/mapper/sda3_crypt\"\n}\n}\n}\n",
            ),
        ];
        for p in [ROOT, HOME, SWAP] {
            let o = run_files(&files, p);
            assert_eq!(o.status, Status::Pass, "{p}: {o:?}");
        }
        let o = run_files(&files, HOME);
        assert!(o.message.contains("/home is on /"), "{}", o.message);
    }

    #[test]
    fn plain_partitions_fail_and_missing_swap_is_not_applicable() {
        let files = [(
            "/etc/fstab",
            "UUID=1234 / ext4 defaults 0 1\n/dev/sda2 /home ext4 defaults 0 2\n",
        )];
        assert_eq!(run_files(&files, ROOT).status, Status::Fail);
        let o = run_files(&files, HOME);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("/dev/sda2"));
        assert_eq!(run_files(&files, SWAP).status, Status::NotApplicable);
        assert_eq!(run_files(&[], ROOT).status, Status::NotApplicable);
    }

    #[test]
    fn mountinfo_and_the_holding_mount() {
        let m = parse_mountinfo(
            "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n30 22 8:1 / /boot rw - ext4 /dev/sda1 rw\n",
        );
        assert_eq!(holding(&m, "/home").unwrap().source, "/dev/mapper/vg-root");
        assert_eq!(holding(&m, "/boot/efi").unwrap().majmin, "8:1");
        assert_eq!(lvm_vg("my--vg-root").as_deref(), Some("my-vg"));
    }

    fn luks1(cipher: &str, mode: &str, key_bytes: u32) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[..6].copy_from_slice(LUKS_MAGIC);
        b[7] = 1;
        b[8..8 + cipher.len()].copy_from_slice(cipher.as_bytes());
        b[40..40 + mode.len()].copy_from_slice(mode.as_bytes());
        b[108..112].copy_from_slice(&key_bytes.to_be_bytes());
        b
    }

    #[test]
    fn luks_headers_of_both_versions() {
        let h = parse_luks(&luks1("aes", "xts-plain64", 64)).unwrap();
        assert_eq!((h.cipher.as_str(), h.key_bits), ("aes-xts-plain64", 512));
        let h = parse_luks(&luks1("aes", "cbc-essiv:sha256", 32)).unwrap();
        let (mut g, mut b) = (Vec::new(), Vec::new());
        judge(&mut g, &mut b, "v", &h.cipher, h.key_bits, "t");
        assert_eq!(b.len(), 1);
        let json = br#"{"keyslots":{"0":{"type":"luks2","key_size":64}},"segments":{"0":{"type":"crypt","encryption":"aes-xts-plain64"}}}"#;
        let mut b2 = vec![0u8; 16384];
        b2[..6].copy_from_slice(LUKS_MAGIC);
        b2[7] = 2;
        b2[8..16].copy_from_slice(&16384u64.to_be_bytes());
        b2[4096..4096 + json.len()].copy_from_slice(json);
        let h = parse_luks(&b2).unwrap();
        assert_eq!(
            (h.version, h.cipher.as_str(), h.key_bits),
            (2, "aes-xts-plain64", 512)
        );
        assert!(parse_luks(b"not luks").is_err());
        b2[4096] = b'x';
        assert!(parse_luks(&b2).unwrap_err().contains("JSON"));
    }

    #[test]
    fn plain_swap_with_a_random_key_is_judged_by_its_options() {
        let c = r#"{ kind = "encryption", rule = "cipher" }"#;
        let o = run_files(
            &[(
                "/etc/crypttab",
                "cswap /dev/sda4 /dev/urandom swap,cipher=aes-xts-plain64,size=512\n",
            )],
            c,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let o = run_files(
            &[(
                "/etc/crypttab",
                "cswap /dev/sda4 /dev/urandom swap,cipher=aes-cbc-essiv:sha256,size=256\n",
            )],
            c,
        );
        assert_eq!(o.status, Status::Fail);
        let o = run_files(&[("/etc/crypttab", "root_crypt UUID=1 none luks\n")], c);
        assert_eq!(o.status, Status::NotApplicable, "{o:?}");
    }
}
