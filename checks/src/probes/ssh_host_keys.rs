//! The SSH server's host keys: of a type and size that resist forgery
//! (no DSA; RSA of at least the configured bits; ECDSA and Ed25519), and
//! private keys readable by root alone (or, on the RHEL family, by the
//! `ssh_keys` group its key helper runs as). The keys are those named by
//! `HostKey` lines, else OpenSSH's defaults; their type and size come
//! from the public halves (`.pub`), which are world-readable.

use base64::Engine;
use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use crate::expect::Num;
use crate::host::HostView;
use crate::result::{Source, SourceKind};

const DEFAULT_KEYS: [&str; 3] = [
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// Key types and sizes.
    Strength,
    /// Private key files' permissions.
    Permissions,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshHostKeysProbe {
    rule: Rule,
    /// Fewest bits an RSA key may have.
    #[serde(default)]
    rsa_min_bits: Option<Num>,
}

/// The type and size of an OpenSSH public key line (`ssh-rsa AAAA… comment`).
pub fn key_strength(line: &str) -> Result<(String, u32), String> {
    let mut words = line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err("not an OpenSSH public key line".into());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|e| format!("the key is not base64: {e}"))?;
    let mut fields = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 4 && fields.len() < 3 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + n {
            return Err("the key blob is truncated".into());
        }
        fields.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    let inner = fields
        .first()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default();
    if inner != kind {
        return Err(format!("the line says {kind} but the key blob is {inner}"));
    }
    let bits = match kind {
        "ssh-rsa" => {
            let n = fields.get(2).ok_or("the RSA key has no modulus")?;
            let n: &[u8] = n;
            let skip = n.iter().take_while(|b| **b == 0).count();
            let n = &n[skip..];
            match n.first() {
                Some(b) => (n.len() as u32 - 1) * 8 + (8 - b.leading_zeros()),
                None => 0,
            }
        }
        "ssh-dss" => 1024,
        "ecdsa-sha2-nistp256" => 256,
        "ecdsa-sha2-nistp384" => 384,
        "ecdsa-sha2-nistp521" => 521,
        "ssh-ed25519" => 256,
        "ssh-ed448" => 456,
        other => return Err(format!("unknown key type {other}")),
    };
    Ok((kind.to_string(), bits))
}

impl Probe for SshHostKeysProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let cfg = match super::sshd_config::present_config(ctx) {
            Ok(cfg) => cfg,
            Err(outcome) => return outcome,
        };
        let mut sources = cfg.sources.clone();
        let named: Vec<&crate::parse::sshd::SshdSetting> = cfg
            .settings
            .iter()
            .filter(|s| s.key.eq_ignore_ascii_case("HostKey") && s.match_criteria.is_none())
            .collect();
        let keys: Vec<String> = if named.is_empty() {
            DEFAULT_KEYS.iter().map(|s| s.to_string()).collect()
        } else {
            sources.extend(named.iter().map(|s| s.source.clone()));
            named.iter().map(|s| s.value.clone()).collect()
        };
        let mut present = Vec::new();
        for k in &keys {
            match host_try!(ctx.host.metadata(k), sources) {
                Some(m) => present.push((k.clone(), m)),
                None => sources.push(HostView::absent_source(k)),
            }
        }
        if present.is_empty() {
            if ctx.is_live() {
                return Outcome::error(format!(
                    "sshd is configured but none of its host keys exists ({})",
                    keys.join(", ")
                ))
                .sources(sources);
            }
            return Outcome::not_applicable(format!(
                "no host keys in this root ({}): they are made on first boot, on the deployed host",
                keys.join(", ")
            ))
            .sources(sources);
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        match self.rule {
            Rule::Strength => {
                let min = match self
                    .rsa_min_bits
                    .as_ref()
                    .map(|n| n.resolve(ctx.params))
                    .transpose()
                {
                    Ok(n) => n.unwrap_or(3072) as u32,
                    Err(e) => return Outcome::error(e).sources(sources),
                };
                for (k, _) in &present {
                    let pub_path = format!("{k}.pub");
                    let Some(f) = host_try!(ctx.read(&pub_path), sources) else {
                        return Outcome::error(format!(
                            "{pub_path} is missing: the type and size of {k} cannot be read"
                        ))
                        .sources(sources);
                    };
                    sources.push(f.source());
                    match key_strength(f.text().trim()) {
                        Ok((kind, bits)) => {
                            let line = format!("{k}: {kind} {bits} bits");
                            let weak = kind == "ssh-dss" || (kind == "ssh-rsa" && bits < min);
                            if weak {
                                bad.push(line)
                            } else {
                                good.push(line)
                            }
                        }
                        Err(e) => {
                            return Outcome::error(format!("{pub_path}: {e}")).sources(sources);
                        }
                    }
                }
                let expected =
                    format!("no DSA host key; RSA of at least {min} bits; ECDSA or Ed25519");
                Outcome::findings(expected, &good, &bad, sources)
            }
            Rule::Permissions => {
                for (k, m) in &present {
                    sources.push(Source {
                        kind: SourceKind::Metadata,
                        path: k.clone(),
                        sha256: None,
                        line: None,
                    });
                    let group = ctx.group_name(m.gid);
                    let owner = ctx.user_name(m.uid);
                    let line = format!("{k}: {:04o} {owner}:{group}", m.mode);
                    let ok = m.uid == 0
                        && (m.mode & 0o077 == 0 || (group == "ssh_keys" && m.mode & 0o037 == 0));
                    if ok { good.push(line) } else { bad.push(line) }
                }
                Outcome::findings(
                    "private host keys owned by root, mode 0600 (0640 with group ssh_keys)",
                    &good,
                    &bad,
                    sources,
                )
            }
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.rsa_min_bits])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ssh-keygen -t ed25519` and `-t rsa -b 1024` public halves.
    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";

    #[test]
    fn key_types_and_rsa_modulus_bits() {
        assert_eq!(key_strength(ED).unwrap(), ("ssh-ed25519".into(), 256));
        // An RSA blob: "ssh-rsa", e = 65537, n = 0x00 followed by 128 bytes with the top bit set.
        let mut blob = Vec::new();
        for part in [b"ssh-rsa".to_vec(), vec![1, 0, 1], {
            let mut n = vec![0u8];
            n.extend(std::iter::repeat_n(0xffu8, 128));
            n
        }] {
            blob.extend((part.len() as u32).to_be_bytes());
            blob.extend(part);
        }
        let line = format!(
            "ssh-rsa {}",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        assert_eq!(key_strength(&line).unwrap(), ("ssh-rsa".into(), 1024));
        assert!(key_strength("ssh-rsa !!!").is_err());
        assert!(
            key_strength(&line.replace("ssh-rsa ", "ssh-ed25519 "))
                .unwrap_err()
                .contains("blob is ssh-rsa")
        );
    }

    #[test]
    fn host_keys_in_a_root() {
        use super::super::testing::run_files;
        use crate::result::Status;
        let p = r#"{ kind = "ssh_host_keys", rule = "strength" }"#;
        let conf = (
            "/etc/ssh/sshd_config",
            "HostKey /etc/ssh/ssh_host_ed25519_key\n",
        );
        let o = run_files(
            &[
                conf,
                ("/etc/ssh/ssh_host_ed25519_key", "private"),
                ("/etc/ssh/ssh_host_ed25519_key.pub", ED),
            ],
            p,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(run_files(&[conf], p).status, Status::NotApplicable);
        let dsa = (
            "/etc/ssh/sshd_config",
            "HostKey /etc/ssh/ssh_host_dsa_key\n",
        );
        let o = run_files(
            &[
                dsa,
                ("/etc/ssh/ssh_host_dsa_key", "x"),
                (
                    "/etc/ssh/ssh_host_dsa_key.pub",
                    "ssh-dss AAAAB3NzaC1kc3MAAAAA",
                ),
            ],
            p,
        );
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(o.message.contains("ssh-dss"));
    }
}
