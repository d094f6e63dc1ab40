//! Parsers for the file formats the probes read. Pure functions over text:
//! they never fail on odd content (a line they do not understand is kept as
//! such or skipped), and every value they return carries its 1-based line.

pub mod audit;
pub mod dpkg;
pub mod ini;
pub mod keyvalue;
pub mod passwd;
pub mod repodata;
pub mod rpm;
pub mod shell;
pub mod sshd;
pub mod sudoers;

/// Splits a line into words the way OpenSSH and sudo do: whitespace
/// separates, double quotes group.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                in_quotes = !in_quotes;
                has = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// Strips a `#` comment that starts a line (after white space).
pub fn is_comment_or_blank(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Matches a file name against a shell-style pattern with `*` and `?`
/// (what `Include` and `#includedir`-style globs use).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    // Greedy matching with one backtrack point: O(len(p) * len(n)) even for
    // hostile patterns such as `*a*a*a*a*b`.
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_honour_quotes() {
        assert_eq!(
            words(r#"Banner "/etc/issue net""#),
            ["Banner", "/etc/issue net"]
        );
        assert_eq!(words("  a   b\tc "), ["a", "b", "c"]);
        assert_eq!(words(r#"x """#), ["x", ""]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "10-x.conf"));
        assert!(!glob_match("*.conf", "10-x.conf.bak"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*a*b", "xaxxb"));
        let hostile = "*a".repeat(40) + "b";
        assert!(!glob_match(&hostile, &"a".repeat(200)));
    }
}
