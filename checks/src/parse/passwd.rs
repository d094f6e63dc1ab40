//! /etc/passwd, /etc/shadow and /etc/group.

/// An /etc/passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Password field (`x` when shadowed).
    pub password: String,
    /// Numeric user id; `None` when the field is not a number.
    pub uid: Option<u32>,
    /// Numeric primary group id.
    pub gid: Option<u32>,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// 1-based line.
    pub line: u32,
}

/// An /etc/shadow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    /// Login name.
    pub name: String,
    /// The hashed password, `!`/`*` locks, or empty.
    pub hash: String,
    /// Maximum password age in days (`None` when empty: no ageing).
    pub max_days: Option<i64>,
    /// Minimum days between changes.
    pub min_days: Option<i64>,
    /// Warning days before expiry.
    pub warn_days: Option<i64>,
    /// Days after expiry before the account is locked (`None`: never).
    pub inactive_days: Option<i64>,
    /// Day (since 1970) of the last password change.
    pub last_change: Option<i64>,
    /// 1-based line.
    pub line: u32,
}

impl ShadowEntry {
    /// Whether the account can log in with a password at all.
    pub fn has_usable_password(&self) -> bool {
        !self.hash.is_empty() && !self.hash.starts_with('!') && !self.hash.starts_with('*')
    }

    /// The hashing scheme of a usable password: `yescrypt`, `sha512`,
    /// `sha256`, `bcrypt`, `md5` or `des`.
    pub fn scheme(&self) -> Option<&'static str> {
        if !self.has_usable_password() {
            return None;
        }
        let h = self.hash.as_str();
        Some(if h.starts_with("$y$") || h.starts_with("$7$") {
            "yescrypt"
        } else if h.starts_with("$gy$") {
            "gost-yescrypt"
        } else if h.starts_with("$6$") {
            "sha512"
        } else if h.starts_with("$5$") {
            "sha256"
        } else if h.starts_with("$2") {
            "bcrypt"
        } else if h.starts_with("$1$") {
            "md5"
        } else if h.starts_with('$') {
            "unknown"
        } else {
            "des"
        })
    }
}

/// An /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Numeric id.
    pub gid: Option<u32>,
    /// Listed members.
    pub members: Vec<String>,
    /// 1-based line.
    pub line: u32,
}

fn fields(text: &str) -> impl Iterator<Item = (u32, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') || l.starts_with('+') || l.starts_with('-') {
            // NIS compat lines (`+`, `-`) name no local account.
            None
        } else {
            Some((i as u32 + 1, l.split(':').collect()))
        }
    })
}

fn field<'a>(f: &[&'a str], i: usize) -> &'a str {
    f.get(i).copied().unwrap_or("")
}

fn num(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// Parses /etc/passwd.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    fields(text)
        .map(|(line, f)| PasswdEntry {
            name: field(&f, 0).to_string(),
            password: field(&f, 1).to_string(),
            uid: field(&f, 2).parse().ok(),
            gid: field(&f, 3).parse().ok(),
            home: field(&f, 5).to_string(),
            shell: field(&f, 6).to_string(),
            line,
        })
        .collect()
}

/// Parses /etc/shadow.
pub fn parse_shadow(text: &str) -> Vec<ShadowEntry> {
    fields(text)
        .map(|(line, f)| ShadowEntry {
            name: field(&f, 0).to_string(),
            hash: field(&f, 1).to_string(),
            min_days: num(field(&f, 3)),
            max_days: num(field(&f, 4)),
            warn_days: num(field(&f, 5)),
            inactive_days: num(field(&f, 6)),
            last_change: num(field(&f, 2)),
            line,
        })
        .collect()
}

/// Parses /etc/group.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    fields(text)
        .map(|(line, f)| GroupEntry {
            name: field(&f, 0).to_string(),
            gid: field(&f, 2).parse().ok(),
            members: field(&f, 3)
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
            line,
        })
        .collect()
}

/// Shells that mean "no interactive login".
pub fn is_nologin_shell(shell: &str) -> bool {
    shell.ends_with("/nologin") || shell.ends_with("/false") || shell == "/bin/sync"
}

/// The traditional `sync`, `shutdown` and `halt` accounts whose "shell" is
/// their one command (RHEL ships them so; CIS exempts them): logging in runs
/// that command and ends, so it is no interactive shell.
pub fn runs_only_its_command(name: &str, shell: &str) -> bool {
    matches!(name, "sync" | "shutdown" | "halt")
        && ["/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/"]
            .iter()
            .any(|dir| shell.strip_prefix(dir) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_shadow_group() {
        let p = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n+::::::\nbad\nalice:x:1000:1000::/home/a:/bin/sh\n",
        );
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].uid, Some(0));
        assert_eq!(p[1].uid, None);
        assert_eq!(p[2].line, 4);
        let s = parse_shadow(
            "root:$y$j9T$abc:19000:0:99999:7:::\nbob::19000::::::\nsvc:!*:19000::::::\nold:$1$x$y:1:0:90:7:::\n",
        );
        assert_eq!(s[0].scheme(), Some("yescrypt"));
        assert_eq!(s[0].max_days, Some(99999));
        assert!(!s[1].has_usable_password());
        assert_eq!(s[1].hash, "");
        assert_eq!(s[2].scheme(), None);
        assert_eq!(s[3].scheme(), Some("md5"));
        let g = parse_group("sudo:x:27:alice, bob\nwheel:x:10:\n");
        assert_eq!(g[0].members, ["alice", "bob"]);
        assert!(g[1].members.is_empty());
    }
}
