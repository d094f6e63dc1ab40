//! OpenSSH server configuration with the semantics sshd applies: keywords
//! are case-insensitive, the first value obtained wins, `Include` expands
//! globs in place (relative paths under /etc/ssh), and a `Match` block lasts
//! until the next `Match` or the end of the file it stands in.

use std::sync::Arc;

use crate::host::{FileData, HostError, HostView};
use crate::result::Source;

/// OpenSSH's own limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;
/// Files and directories one configuration may pull in: depth alone does
/// not bound a file that includes itself twice (2^16 parses).
const MAX_SOURCES: usize = 1024;

/// One keyword occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdSetting {
    /// Keyword as written.
    pub key: String,
    /// Everything after the keyword.
    pub value: String,
    /// The `Match` criteria it stands under, if any.
    pub match_criteria: Option<String>,
    /// Where it stands.
    pub source: Source,
}

/// A whole server configuration, includes expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshdConfig {
    /// Settings in the order sshd reads them.
    pub settings: Vec<SshdSetting>,
    /// Every file and directory consulted.
    pub sources: Vec<Source>,
    /// Whether the main file exists at all.
    pub present: bool,
}

impl SshdConfig {
    /// The value sshd uses outside any `Match` block: the first occurrence.
    pub fn effective(&self, key: &str) -> Option<&SshdSetting> {
        self.settings
            .iter()
            .find(|s| s.match_criteria.is_none() && s.key.eq_ignore_ascii_case(key))
    }

    /// The first occurrence of `key` in each `Match` block (what sshd uses
    /// for connections matching that block, if no earlier global setting
    /// already fixed it — for most keywords a Match block overrides).
    pub fn match_overrides(&self, key: &str) -> Vec<&SshdSetting> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for s in &self.settings {
            if let Some(c) = &s.match_criteria {
                if s.key.eq_ignore_ascii_case(key) && !seen.contains(&c.as_str()) {
                    seen.push(c);
                    out.push(s);
                }
            }
        }
        out
    }
}

/// Reads `/etc/ssh/sshd_config` (or `main`) and everything it includes.
pub fn load(view: &HostView, main: &str) -> Result<SshdConfig, HostError> {
    let mut cfg = SshdConfig::default();
    match view.read(main)? {
        None => {
            cfg.sources.push(HostView::absent_source(main));
        }
        Some(file) => {
            cfg.present = true;
            parse_file(view, &file, None, 0, &mut cfg)?;
        }
    }
    Ok(cfg)
}

fn split_keyword(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    // A trailing comment is not part of the value.
    let rest = match rest.find(" #") {
        Some(i) => rest[..i].trim_end(),
        None => rest,
    };
    Some((key, rest))
}

fn parse_file(
    view: &HostView,
    file: &Arc<FileData>,
    inherited_match: Option<String>,
    depth: usize,
    cfg: &mut SshdConfig,
) -> Result<(), HostError> {
    if cfg.sources.len() >= MAX_SOURCES {
        return Err(HostError::Io {
            path: file.path.clone(),
            message: format!(
                "more than {MAX_SOURCES} files and directories included; an include loop or fan-out is not followed"
            ),
        });
    }
    cfg.sources.push(file.source());
    let mut current_match = inherited_match;
    for (i, line) in file.text().lines().enumerate() {
        let lineno = i as u32 + 1;
        let Some((key, value)) = split_keyword(line) else {
            continue;
        };
        if key.eq_ignore_ascii_case("Match") {
            current_match = if value.eq_ignore_ascii_case("all") {
                None
            } else {
                Some(value.to_string())
            };
            continue;
        }
        if key.eq_ignore_ascii_case("Include") {
            if depth + 1 > MAX_INCLUDE_DEPTH {
                return Err(HostError::Io {
                    path: file.path.clone(),
                    message: format!(
                        "line {lineno}: Include nested deeper than {MAX_INCLUDE_DEPTH} levels"
                    ),
                });
            }
            for pattern in super::words(value) {
                for path in expand_include(view, &pattern, cfg)? {
                    if let Some(inc) = view.read(&path)? {
                        parse_file(view, &inc, current_match.clone(), depth + 1, cfg)?;
                    }
                }
            }
            continue;
        }
        cfg.settings.push(SshdSetting {
            key: key.to_string(),
            value: value.to_string(),
            match_criteria: current_match.clone(),
            source: file.source_at(lineno),
        });
    }
    Ok(())
}

fn expand_include(
    view: &HostView,
    pattern: &str,
    cfg: &mut SshdConfig,
) -> Result<Vec<String>, HostError> {
    let full = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("/etc/ssh/{pattern}")
    };
    let (dir, name) = full.rsplit_once('/').unwrap_or(("", full.as_str()));
    let dir = if dir.is_empty() { "/" } else { dir };
    if !name.contains(['*', '?']) {
        if !view.exists(&full)? {
            cfg.sources.push(HostView::absent_source(&full));
        }
        return Ok(vec![full]);
    }
    match view.read_dir(dir)? {
        None => {
            cfg.sources.push(HostView::absent_source(dir));
            Ok(Vec::new())
        }
        Some(entries) => {
            cfg.sources.push(HostView::dir_source(dir, &entries));
            Ok(entries
                .into_iter()
                .filter(|e| !e.is_dir && super::glob_match(name, &e.name))
                .map(|e| e.path)
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing::root;

    #[test]
    fn include_is_expanded_in_place_and_first_value_wins() {
        let (_d, view) = root(&[
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/sshd_config.d/*.conf\nClientAliveInterval 900\nPermitRootLogin yes\n",
            ),
            (
                "/etc/ssh/sshd_config.d/10-a.conf",
                "clientaliveinterval=300\n",
            ),
            (
                "/etc/ssh/sshd_config.d/20-b.conf",
                "ClientAliveInterval 600\n",
            ),
            (
                "/etc/ssh/sshd_config.d/x.conf.disabled",
                "PermitRootLogin no\n",
            ),
        ]);
        let cfg = load(&view, "/etc/ssh/sshd_config").unwrap();
        let s = cfg.effective("ClientAliveInterval").unwrap();
        assert_eq!(s.value, "300");
        assert_eq!(s.source.path, "/etc/ssh/sshd_config.d/10-a.conf");
        assert_eq!(s.source.line, Some(1));
        assert_eq!(cfg.effective("permitrootlogin").unwrap().value, "yes");
    }

    #[test]
    fn match_blocks_are_noticed_not_applied_globally() {
        let (_d, view) = root(&[(
            "/etc/ssh/sshd_config",
            "PasswordAuthentication no\nMatch User backup\n  PasswordAuthentication yes\nMatch all\nX11Forwarding no\n",
        )]);
        let cfg = load(&view, "/etc/ssh/sshd_config").unwrap();
        assert_eq!(cfg.effective("PasswordAuthentication").unwrap().value, "no");
        let o = cfg.match_overrides("PasswordAuthentication");
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].match_criteria.as_deref(), Some("User backup"));
        assert_eq!(o[0].source.line, Some(3));
        assert_eq!(cfg.effective("X11Forwarding").unwrap().value, "no");
    }

    #[test]
    fn match_in_an_included_file_ends_with_that_file() {
        let (_d, view) = root(&[
            (
                "/etc/ssh/sshd_config",
                "Include extra.conf\nMaxAuthTries 3\n",
            ),
            (
                "/etc/ssh/extra.conf",
                "Match Address 10.0.0.0/8\nMaxAuthTries 10\n",
            ),
        ]);
        let cfg = load(&view, "/etc/ssh/sshd_config").unwrap();
        assert_eq!(cfg.effective("MaxAuthTries").unwrap().value, "3");
        assert_eq!(cfg.match_overrides("MaxAuthTries").len(), 1);
    }

    #[test]
    fn recursive_include_is_an_error_not_a_hang() {
        let (_d, view) = root(&[("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config\n")]);
        let err = load(&view, "/etc/ssh/sshd_config").unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn an_include_fan_out_is_an_error_not_an_exponential_parse() {
        let (_d, view) = crate::probes::testing::fan_out("/etc/ssh/sshd_config", "/etc/ssh", |n| {
            format!("Include {n} {n}\n")
        });
        let started = std::time::Instant::now();
        let err = load(&view, "/etc/ssh/sshd_config").unwrap_err();
        assert!(err.to_string().contains("more than 1024 files"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn missing_file_is_recorded() {
        let (_d, view) = root(&[]);
        let cfg = load(&view, "/etc/ssh/sshd_config").unwrap();
        assert!(!cfg.present);
        assert_eq!(cfg.sources[0].path, "/etc/ssh/sshd_config");
    }
}
