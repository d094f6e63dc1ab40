//! Line-oriented `KEY VALUE` (login.defs) and `KEY=VALUE` (os-release,
//! sysctl.conf, /etc/default files) formats.

/// One setting and the line it stands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key as written.
    pub key: String,
    /// The value, surrounding quotes removed.
    pub value: String,
    /// 1-based line number.
    pub line: u32,
}

/// Removes one pair of surrounding single or double quotes.
pub(crate) fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// `KEY VALUE` lines; `#` starts a comment line.
pub fn parse_space_separated(text: &str) -> Vec<Kv> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default();
        out.push(Kv {
            key: key.to_string(),
            value: unquote(value),
            line: i as u32 + 1,
        });
    }
    out
}

/// `KEY=VALUE` or `key = value` lines; `#` and `;` start comment lines. A
/// leading `-` (sysctl's "ignore errors" marker) is dropped from the key.
pub fn parse_equals(text: &str) -> Vec<Kv> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = k.trim().trim_start_matches('-').trim();
        if key.is_empty() {
            continue;
        }
        out.push(Kv {
            key: key.to_string(),
            value: unquote(v),
            line: i as u32 + 1,
        });
    }
    out
}

/// The last setting of `key` (what login.defs and sysctl apply).
pub fn last<'a>(kvs: &'a [Kv], key: &str) -> Option<&'a Kv> {
    kvs.iter().rev().find(|kv| kv.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_defs_style() {
        let kvs =
            parse_space_separated("# c\nPASS_MAX_DAYS\t99999\nPASS_MAX_DAYS 90\nUMASK  027 \n");
        assert_eq!(last(&kvs, "PASS_MAX_DAYS").unwrap().value, "90");
        assert_eq!(last(&kvs, "PASS_MAX_DAYS").unwrap().line, 3);
        assert_eq!(last(&kvs, "UMASK").unwrap().value, "027");
    }

    #[test]
    fn equals_style() {
        let kvs = parse_equals(
            "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n-net.ipv4.ip_forward = 0\n; x\nbad line\n",
        );
        assert_eq!(
            last(&kvs, "PRETTY_NAME").unwrap().value,
            "Debian GNU/Linux 12"
        );
        assert_eq!(last(&kvs, "net.ipv4.ip_forward").unwrap().value, "0");
        assert_eq!(kvs.len(), 3);
    }
}
