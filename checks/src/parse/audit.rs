//! Linux audit rules as auditctl reads them (`/etc/audit/audit.rules`,
//! `/etc/audit/rules.d/*.rules`).

/// One audit rule line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRule {
    /// The rule as written.
    pub text: String,
    /// 1-based line.
    pub line: u32,
}

impl AuditRule {
    /// Whether this is a watch or syscall rule (not a control line such as
    /// `-D`, `-b 8192`, `-f 1` or `-e 2`).
    pub fn is_rule(&self) -> bool {
        let t = self.text.as_str();
        t.starts_with("-w ") || t.starts_with("-a ") || t.starts_with("-A ")
    }

    /// The watched path of a `-w PATH` rule, or of a syscall rule filtering
    /// on `-F path=`/`-F dir=`.
    pub fn watched_path(&self) -> Option<&str> {
        let words: Vec<&str> = self.text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "-w" {
                return words.get(i + 1).copied();
            }
            if *w == "-F" {
                if let Some(next) = words.get(i + 1) {
                    if let Some(p) = next
                        .strip_prefix("path=")
                        .or_else(|| next.strip_prefix("dir="))
                    {
                        return Some(p);
                    }
                }
            }
        }
        None
    }

    /// Whether the rule audits `syscall` (named in a `-S` list).
    pub fn audits_syscall(&self, syscall: &str) -> bool {
        let words: Vec<&str> = self.text.split_whitespace().collect();
        words
            .windows(2)
            .any(|w| w[0] == "-S" && w[1].split(',').any(|s| s == syscall || s == "all"))
    }

    /// Whether the rule sets the configuration immutable (`-e 2`).
    pub fn is_immutable_marker(&self) -> bool {
        self.text.split_whitespace().collect::<Vec<_>>() == ["-e", "2"]
    }
}

/// Parses a rules file (comments and blank lines dropped).
pub fn parse(text: &str) -> Vec<AuditRule> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                None
            } else {
                Some(AuditRule {
                    text: t.to_string(),
                    line: i as u32 + 1,
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_watches() {
        let r = parse(
            "-D\n-b 8192\n# x\n-w /etc/sudoers -p wa -k scope\n-a always,exit -F arch=b64 -S execve -F euid=0 -k rootcmd\n-a always,exit -F path=/usr/bin/sudo -F perm=x -k priv\n-e 2\n",
        );
        assert_eq!(r.iter().filter(|x| x.is_rule()).count(), 3);
        assert_eq!(r[2].watched_path(), Some("/etc/sudoers"));
        assert!(r[3].audits_syscall("execve"));
        assert!(!r[2].audits_syscall("execve"));
        assert_eq!(r[4].watched_path(), Some("/usr/bin/sudo"));
        assert!(r[5].is_immutable_marker());
    }
}
