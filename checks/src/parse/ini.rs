//! systemd-style INI files (`[Section]`, `Key=Value`), as used by
//! logind.conf, journald.conf, timesyncd.conf and unit files.

/// One assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The section it stands in (`""` before the first header).
    pub section: String,
    /// The key.
    pub key: String,
    /// The value (trimmed; an empty value resets the key in systemd).
    pub value: String,
    /// 1-based line.
    pub line: u32,
}

/// Parses the assignments of an INI file. Line continuations (`\` at the
/// end) are joined as systemd does.
pub fn parse(text: &str) -> Vec<IniEntry> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending: Option<(String, u32)> = None;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i as u32 + 1;
        let (mut line, start) = match pending.take() {
            Some((acc, start)) => {
                let mut acc = acc.trim_end().to_string();
                acc.push(' ');
                acc.push_str(raw.trim());
                (acc, start)
            }
            None => (raw.trim().to_string(), lineno),
        };
        if line.ends_with('\\') {
            line.pop();
            pending = Some((line, start));
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push(IniEntry {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                line: start,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_and_continuations() {
        let e = parse(
            "# c\n[Login]\nStopIdleSessionSec=900\n;x\n[Time]\nNTP=a.example \\\n  b.example\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].section, "Login");
        assert_eq!(e[0].line, 3);
        assert_eq!(e[1].value, "a.example b.example");
        assert_eq!(e[1].line, 6);
    }
}
