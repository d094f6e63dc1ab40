//! A setting in a key-value configuration file with its drop-in directory:
//! `pwquality.conf` and `pwquality.conf.d/*.conf`, `faillock.conf`,
//! `/etc/selinux/config`, `firewalld.conf`, dnf's `automatic.conf` (INI
//! sections). The files are read in order (the listed files, then the
//! drop-ins sorted by name) and the last assignment wins, as libpwquality,
//! pam_faillock, dnf and the others read them.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, drop_ins, host_try, one_or_many};
use crate::expect::Expect;
use crate::host::{FileData, HostView};
use crate::result::Source;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Separator {
    /// `key = value` (spaces around `=` optional).
    #[default]
    Equals,
    /// `key value`.
    Space,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingProbe {
    /// The configuration files, read in order.
    #[serde(deserialize_with = "one_or_many")]
    path: Vec<String>,
    /// Drop-in directories read after them (`*.conf`, sorted by name).
    #[serde(default)]
    drop_ins: Vec<String>,
    /// The INI section the key must stand in.
    #[serde(default)]
    section: Option<String>,
    key: String,
    #[serde(default)]
    separator: Separator,
    /// The program's built-in value when no file sets the key.
    #[serde(default)]
    default: Option<String>,
    /// A PAM module (`pam_faillock.so`) that reads this file: an argument
    /// `key=value` on its line in `pam_files` overrides the file, and where
    /// no line calls it the setting has no effect (not applicable).
    #[serde(default)]
    pam_module: Option<String>,
    /// The PAM stack files to look in for `pam_module`.
    #[serde(default)]
    pam_files: Vec<String>,
    expect: Expect,
}

/// A PAM line's module (file name only) and its arguments, or `None` for
/// comments and lines that are not rules. The control field may be a
/// bracketed list with spaces (`[success=1 default=ignore]`).
fn pam_rule(line: &str) -> Option<(&str, Vec<&str>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (_kind, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let rest = if let Some(inner) = rest.strip_prefix('[') {
        inner.split_once(']')?.1
    } else {
        rest.split_once(char::is_whitespace)?.1
    };
    let mut words = rest.split_whitespace();
    let module = words.next()?;
    let module = module.rsplit('/').next().unwrap_or(module);
    Some((module, words.collect()))
}

/// The last assignment of the key in one file: (value, line).
fn find(file: &FileData, probe: &SettingProbe) -> Option<(String, u32)> {
    let mut section: Option<String> = None;
    let mut found = None;
    for (i, raw) in file.text().lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if probe.section.is_some() && section != probe.section {
            continue;
        }
        let split = match probe.separator {
            Separator::Equals => line.split_once('='),
            Separator::Space => line.split_once(char::is_whitespace),
        };
        let Some((k, v)) = split else { continue };
        if k.trim() != probe.key {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(v);
        found = Some((v.to_string(), i as u32 + 1));
    }
    found
}

impl Probe for SettingProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources: Vec<Source> = Vec::new();
        let mut files = Vec::new();
        for p in &self.path {
            match host_try!(ctx.read(p), sources) {
                Some(f) => files.push(f),
                None => sources.push(HostView::absent_source(p)),
            }
        }
        let dirs: Vec<&str> = self.drop_ins.iter().map(String::as_str).collect();
        files.extend(host_try!(
            drop_ins(ctx.host, &dirs, "*.conf", &mut sources),
            sources
        ));
        let mut last: Option<(String, Source)> = None;
        for f in &files {
            sources.push(f.source());
            if let Some((value, line)) = find(f, self) {
                last = Some((value, f.source_at(line)));
            }
        }
        let key = match &self.section {
            Some(s) => format!("[{s}] {}", self.key),
            None => self.key.clone(),
        };
        if let Some(module) = &self.pam_module {
            let mut calls = 0;
            let mut args: Vec<(String, Source)> = Vec::new();
            for p in &self.pam_files {
                let Some(f) = host_try!(ctx.read(p), sources) else {
                    sources.push(HostView::absent_source(p));
                    continue;
                };
                sources.push(f.source());
                for (i, line) in f.text().lines().enumerate() {
                    let Some((m, words)) = pam_rule(line) else {
                        continue;
                    };
                    if m != module {
                        continue;
                    }
                    calls += 1;
                    for w in words {
                        if let Some(v) = w.strip_prefix(&format!("{}=", self.key)) {
                            args.push((v.to_string(), f.source_at(i as u32 + 1)));
                        }
                    }
                }
            }
            if calls == 0 {
                return Outcome::not_applicable(format!(
                    "{module} is not called in {}, so {key} has no effect (the check that the module is used judges that)",
                    self.pam_files.join(", ")
                ))
                .sources(sources);
            }
            // An argument on the module's line overrides the file; with
            // several lines, each must hold.
            if !args.is_empty() {
                let mut outcome = None;
                for (value, at) in args {
                    let what = format!(
                        "{key}= on the {module} line ({}:{})",
                        at.path,
                        at.line.unwrap_or(0)
                    );
                    let mut with = sources.clone();
                    with.push(at);
                    let o = ctx.judge(&what, &self.expect, &value, with);
                    let failed = o.status != crate::result::Status::Pass;
                    outcome = Some(o);
                    if failed {
                        break;
                    }
                }
                if let Some(o) = outcome {
                    return o;
                }
            }
        }
        match (last, &self.default) {
            (Some((value, at)), _) => {
                let what = format!("{key} ({}:{})", at.path, at.line.unwrap_or(0));
                sources.push(at);
                ctx.judge(&what, &self.expect, &value, sources)
            }
            (None, Some(d)) => ctx.judge(
                &format!("{key} (not set; the built-in default)"),
                &self.expect,
                d,
                sources,
            ),
            (None, None) => Outcome::fail(format!(
                "{key} is not set in {}",
                self.path
                    .iter()
                    .chain(self.drop_ins.iter().map(|d| d as &String))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .expected(self.expect.describe(ctx.params))
            .observed("not set")
            .sources(sources),
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }

    fn validate(&self) -> Result<(), String> {
        for p in self.path.iter().chain(&self.drop_ins) {
            if !p.starts_with('/') {
                return Err(format!(
                    "`path` and `drop_ins` entries are absolute, got `{p}`"
                ));
            }
        }
        if self.path.is_empty() {
            return Err("`path` must name at least one file".into());
        }
        if self.key.trim().is_empty() || self.key.contains(char::is_whitespace) {
            return Err(format!("`key` {:?} must be one word", self.key));
        }
        if self.pam_module.is_some() == self.pam_files.is_empty() {
            return Err("`pam_module` and `pam_files` go together".into());
        }
        if let Some(p) = self.pam_files.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("`pam_files` entries are absolute, got `{p}`"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const MINLEN: &str = r#"{ kind = "setting", path = "/etc/security/pwquality.conf", drop_ins = ["/etc/security/pwquality.conf.d"], key = "minlen", default = "8", expect = { at_least = 12 } }"#;

    #[test]
    fn drop_ins_override_the_main_file_and_defaults_apply() {
        // libpwquality 1.4.4 (RHEL 9) ships pwquality.conf all commented out.
        let main = (
            "/etc/security/pwquality.conf",
            "# minlen = 8\n# minclass = 0\n",
        );
        let o = run_files(&[main], MINLEN);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("built-in default"), "{}", o.message);
        let o = run_files(
            &[
                main,
                (
                    "/etc/security/pwquality.conf.d/50-site.conf",
                    "minlen = 14\n",
                ),
            ],
            MINLEN,
        );
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        assert!(o.message.contains("50-site.conf:1"), "{}", o.message);
        let o = run_files(
            &[
                ("/etc/security/pwquality.conf", "minlen = 14\n"),
                ("/etc/security/pwquality.conf.d/90-weak.conf", "minlen=6\n"),
            ],
            MINLEN,
        );
        assert_eq!(o.status, Status::Fail);
    }

    #[test]
    fn ini_sections_and_absent_files() {
        const APPLY: &str = r#"{ kind = "setting", path = "/etc/dnf/automatic.conf", section = "commands", key = "apply_updates", expect = { equals = "yes" } }"#;
        // dnf-automatic 4.14 (RHEL 9) ships apply_updates = no.
        let conf = "[commands]\nupgrade_type = default\napply_updates = no\n[emitters]\napply_updates = yes\n";
        let o = run_files(&[("/etc/dnf/automatic.conf", conf)], APPLY);
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        let o = run_files(
            &[(
                "/etc/dnf/automatic.conf",
                &conf.replacen("apply_updates = no", "apply_updates = yes", 1),
            )],
            APPLY,
        );
        assert_eq!(o.status, Status::Pass);
        let o = run_files(&[], APPLY);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed.as_deref(), Some("not set"));
        assert_eq!(o.sources[0].path, "/etc/dnf/automatic.conf");
    }

    /// pam_faillock's `deny=` on its PAM line overrides faillock.conf; with
    /// no line calling the module, the setting has no effect.
    #[test]
    fn pam_arguments_override_the_file_and_an_unused_module_does_not_apply() {
        const DENY: &str = r#"{ kind = "setting", path = "/etc/security/faillock.conf", key = "deny", default = "3", pam_module = "pam_faillock.so", pam_files = ["/etc/pam.d/system-auth", "/etc/pam.d/password-auth"], expect = { between = [1, 5] } }"#;
        // authselect's sssd profile with-faillock (RHEL 9), trimmed.
        let auth = "auth        required                                     pam_env.so\nauth        required                                     pam_faillock.so preauth silent\nauth        [default=1 ignore=ignore success=ok]         pam_usertype.so isregular\nauth        required                                     pam_faillock.so authfail\n";
        let files = |conf: &'static str, a: String| {
            vec![
                ("/etc/security/faillock.conf", conf.to_string()),
                ("/etc/pam.d/system-auth", a.clone()),
                ("/etc/pam.d/password-auth", a),
            ]
        };
        let go = |v: Vec<(&'static str, String)>| {
            let refs: Vec<(&str, &str)> = v.iter().map(|(p, t)| (*p, t.as_str())).collect();
            run_files(&refs, DENY)
        };
        assert_eq!(
            go(files("deny = 5\n", auth.to_string())).status,
            Status::Pass
        );
        assert_eq!(
            go(files("# deny = 3\n", auth.to_string())).status,
            Status::Pass
        );
        let o = go(files(
            "deny = 5\n",
            auth.replace("authfail", "authfail deny=50"),
        ));
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert!(
            o.message
                .contains("on the pam_faillock.so line (/etc/pam.d/system-auth:4)"),
            "{}",
            o.message
        );
        let o = go(files(
            "deny = 5\n",
            "auth required pam_unix.so\n".to_string(),
        ));
        assert_eq!(o.status, Status::NotApplicable, "{}", o.message);
        assert!(
            o.message.starts_with(
                "pam_faillock.so is not called in /etc/pam.d/system-auth, /etc/pam.d/password-auth"
            ),
            "{}",
            o.message
        );
    }
}
