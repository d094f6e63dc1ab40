//! A keyword of the OpenSSH server configuration, with sshd's semantics
//! (first value wins, includes in place) and `Match` blocks noticed: a
//! `Match` block that sets the keyword to a value that does not meet the
//! expectation fails the check, naming the block.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe};
use crate::expect::Expect;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshdConfigProbe {
    /// The keyword (case-insensitive).
    key: String,
    /// What its value must satisfy.
    expect: Expect,
    /// sshd's compiled-in default, used when the keyword is not set.
    #[serde(default)]
    default: Option<String>,
}

/// The sshd configuration, or the outcome of a host without one:
/// `not_applicable` when sshd_config is absent, `error` when unreadable.
pub(crate) fn present_config(
    ctx: &Ctx<'_>,
) -> Result<std::sync::Arc<crate::parse::sshd::SshdConfig>, Outcome> {
    let cfg = ctx
        .sshd()
        .map_err(|e| Outcome::from_host_error(&e, Vec::new()))?;
    if !cfg.present {
        return Err(Outcome::not_applicable(
            "no OpenSSH server configuration (/etc/ssh/sshd_config is absent)",
        )
        .sources(cfg.sources.clone()));
    }
    Ok(cfg)
}

impl Probe for SshdConfigProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let cfg = match present_config(ctx) {
            Ok(cfg) => cfg,
            Err(outcome) => return outcome,
        };
        let mut sources = cfg.sources.clone();
        let (value, what) = match cfg.effective(&self.key) {
            Some(s) => {
                sources.push(s.source.clone());
                (
                    s.value.clone(),
                    format!(
                        "{} ({}:{})",
                        self.key,
                        s.source.path,
                        s.source.line.unwrap_or(0)
                    ),
                )
            }
            None => match &self.default {
                Some(d) => (d.clone(), format!("{} (not set; sshd default)", self.key)),
                None => {
                    return Outcome::fail(format!("{} is not set", self.key))
                        .expected(self.expect.describe(ctx.params))
                        .observed("not set")
                        .sources(sources);
                }
            },
        };
        let mut outcome = ctx.judge(&what, &self.expect, &value, sources);
        if outcome.status == crate::result::Status::Pass {
            for o in cfg.match_overrides(&self.key) {
                if !self.expect.judge(&o.value, ctx.params).unwrap_or(false) {
                    outcome.status = crate::result::Status::Fail;
                    outcome.message = format!(
                        "{} is {} globally but `Match {}` sets {} ({}:{})",
                        self.key,
                        value,
                        o.match_criteria.as_deref().unwrap_or(""),
                        o.value,
                        o.source.path,
                        o.source.line.unwrap_or(0)
                    );
                    outcome.observed = Some(format!(
                        "{value}; Match {}: {}",
                        o.match_criteria.as_deref().unwrap_or(""),
                        o.value
                    ));
                    outcome.sources.push(o.source.clone());
                    break;
                }
            }
        }
        outcome
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "sshd_config", key = "ClientAliveInterval", default = "0", expect = { between = [1, { param = "session_timeout_seconds" }] } }"#;

    #[test]
    fn pass_from_an_included_drop_in() {
        let o = run_files(
            &[
                (
                    "/etc/ssh/sshd_config",
                    "Include /etc/ssh/sshd_config.d/*.conf\n",
                ),
                (
                    "/etc/ssh/sshd_config.d/50-idle.conf",
                    "ClientAliveInterval 300\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed.as_deref(), Some("300"));
        let decisive = o.sources.iter().find(|s| s.line.is_some()).unwrap();
        assert_eq!(decisive.path, "/etc/ssh/sshd_config.d/50-idle.conf");
        assert_eq!(decisive.line, Some(1));
        assert!(decisive.sha256.is_some());
    }

    #[test]
    fn fail_on_default_and_on_too_large_values() {
        let o = run_files(&[("/etc/ssh/sshd_config", "Port 22\n")], P);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed.as_deref(), Some("0"));
        assert_eq!(
            o.expected.as_deref(),
            Some("between 1 and 900 (session_timeout_seconds)")
        );
        let o = run_files(&[("/etc/ssh/sshd_config", "ClientAliveInterval 1h\n")], P);
        assert_eq!(o.status, Status::Fail);
    }

    #[test]
    fn a_match_block_that_weakens_the_setting_fails() {
        let o = run_files(
            &[(
                "/etc/ssh/sshd_config",
                "ClientAliveInterval 300\nMatch Group contractors\n ClientAliveInterval 0\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.message.contains("Match Group contractors"),
            "{}",
            o.message
        );
    }

    #[test]
    fn no_sshd_is_not_applicable_and_garbage_values_are_errors() {
        let o = run_files(&[], P);
        assert_eq!(o.status, Status::NotApplicable);
        let o = run_files(
            &[("/etc/ssh/sshd_config", "ClientAliveInterval often\n")],
            P,
        );
        assert_eq!(o.status, Status::Error);
    }

    /// RHEL 9's layout: sshd_config includes sshd_config.d first; the
    /// vendor's 50-redhat.conf sets X11Forwarding yes and includes the
    /// crypto policy's cipher list; the first value obtained wins.
    #[test]
    fn rhel9_include_order_and_the_crypto_policy() {
        // openssh-8.7p1-38.el9 and crypto-policies-20240202 (DEFAULT / LEGACY).
        let base = [
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysFile .ssh/authorized_keys\nSubsystem sftp /usr/libexec/openssh/sftp-server\n",
            ),
            (
                "/etc/ssh/sshd_config.d/50-redhat.conf",
                "Include /etc/crypto-policies/back-ends/opensshserver.config\nSyslogFacility AUTHPRIV\nChallengeResponseAuthentication no\nGSSAPIAuthentication yes\nGSSAPICleanupCredentials no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\n",
            ),
        ];
        let default_policy = (
            "/etc/crypto-policies/back-ends/opensshserver.config",
            "Ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes128-gcm@openssh.com,aes128-ctr\nMACs hmac-sha2-256-etm@openssh.com,hmac-sha1-etm@openssh.com\n",
        );
        let legacy_policy = (
            "/etc/crypto-policies/back-ends/opensshserver.config",
            "Ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes256-cbc,aes128-gcm@openssh.com,aes128-ctr,aes128-cbc\n",
        );
        let x11 = r#"{ kind = "sshd_config", key = "X11Forwarding", default = "no", expect = { equals = "no" } }"#;
        let ciphers = r#"{ kind = "sshd_config", key = "Ciphers", default = "aes128-ctr", expect = { lacks = '(?i)(-cbc|arcfour|3des)' } }"#;
        let mut files = base.to_vec();
        files.push(default_policy);
        assert_eq!(run_files(&files, x11).status, Status::Fail);
        assert_eq!(run_files(&files, ciphers).status, Status::Pass);
        files.push((
            "/etc/ssh/sshd_config.d/10-hardening.conf",
            "X11Forwarding no\n",
        ));
        let o = run_files(&files, x11);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let mut legacy = base.to_vec();
        legacy.push(legacy_policy);
        let o = run_files(&legacy, ciphers);
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert!(
            o.sources.iter().any(|s| s.path
                == "/etc/crypto-policies/back-ends/opensshserver.config"
                && s.line == Some(1)),
            "{:?}",
            o.sources
        );
    }
}
