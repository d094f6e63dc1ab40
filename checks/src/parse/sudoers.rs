//! sudoers with its include directives (`#include`, `@include`,
//! `#includedir`, `@includedir`): `#include` is a directive, any other `#`
//! starts a comment; relative include paths are taken from the including
//! file's directory; an included directory contributes its files whose names
//! neither end in `~` nor contain a `.`, in lexical order — exactly the
//! files sudo itself reads.

use std::sync::Arc;

use crate::host::{FileData, HostError, HostView};
use crate::result::Source;

const MAX_INCLUDE_DEPTH: usize = 16;
/// Files and directories one policy may pull in: depth alone does not
/// bound a file that includes itself twice (2^16 parses).
const MAX_SOURCES: usize = 1024;

/// What a logical sudoers line declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `Defaults…` settings.
    Defaults,
    /// `User_Alias`, `Runas_Alias`, `Host_Alias`, `Cmnd_Alias`/`Cmd_Alias`.
    Alias,
    /// A user specification (who may run what).
    UserSpec,
}

/// One logical line (continuations joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudoersLine {
    /// What the line declares.
    pub kind: LineKind,
    /// The text with continuations joined.
    pub text: String,
    /// File and first line.
    pub source: Source,
}

impl SudoersLine {
    /// Whether a user specification grants commands without a password.
    pub fn grants_nopasswd(&self) -> bool {
        self.kind == LineKind::UserSpec && self.text.contains("NOPASSWD")
    }

    /// Who a user specification is for (the first field).
    pub fn principal(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or("")
    }
}

/// The whole policy, includes expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sudoers {
    /// Logical lines in the order sudo reads them.
    pub lines: Vec<SudoersLine>,
    /// Every file and directory consulted.
    pub sources: Vec<Source>,
    /// Paths of the policy files read (for permission checks).
    pub files: Vec<String>,
    /// Whether the main file exists.
    pub present: bool,
}

/// Reads `main` (normally /etc/sudoers) and what it includes.
pub fn load(view: &HostView, main: &str) -> Result<Sudoers, HostError> {
    let mut s = Sudoers::default();
    match view.read(main)? {
        None => s.sources.push(HostView::absent_source(main)),
        Some(f) => {
            s.present = true;
            parse_file(view, &f, 0, &mut s)?;
        }
    }
    Ok(s)
}

fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut acc: Option<(u32, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i as u32 + 1;
        let (start, mut buf) = acc.take().unwrap_or((lineno, String::new()));
        if !buf.is_empty() {
            buf.push(' ');
        }
        if let Some(stripped) = raw.trim_end().strip_suffix('\\') {
            buf.push_str(stripped.trim());
            acc = Some((start, buf));
        } else {
            buf.push_str(raw.trim());
            out.push((start, buf));
        }
    }
    if let Some(last) = acc {
        out.push(last);
    }
    out
}

fn parse_file(
    view: &HostView,
    file: &Arc<FileData>,
    depth: usize,
    s: &mut Sudoers,
) -> Result<(), HostError> {
    if s.sources.len() >= MAX_SOURCES {
        return Err(HostError::Io {
            path: file.path.clone(),
            message: format!(
                "more than {MAX_SOURCES} files and directories included; an include loop or fan-out is not followed"
            ),
        });
    }
    s.sources.push(file.source());
    s.files.push(file.path.clone());
    let dir = file.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    for (lineno, line) in logical_lines(&file.text()) {
        let directive = line
            .strip_prefix("#includedir")
            .or_else(|| line.strip_prefix("@includedir"))
            .map(|rest| (true, rest))
            .or_else(|| {
                line.strip_prefix("#include")
                    .or_else(|| line.strip_prefix("@include"))
                    .map(|rest| (false, rest))
            });
        if let Some((is_dir, rest)) = directive {
            if !rest.starts_with(char::is_whitespace) {
                continue; // e.g. `#includes are…` in a comment
            }
            if depth + 1 > MAX_INCLUDE_DEPTH {
                return Err(HostError::Io {
                    path: file.path.clone(),
                    message: format!(
                        "line {lineno}: includes nested deeper than {MAX_INCLUDE_DEPTH} levels"
                    ),
                });
            }
            let target = rest.trim().trim_matches('"');
            let target = if target.starts_with('/') {
                target.to_string()
            } else {
                format!("{dir}/{target}")
            };
            if is_dir {
                match view.read_dir(&target)? {
                    None => s.sources.push(HostView::absent_source(&target)),
                    Some(entries) => {
                        s.sources.push(HostView::dir_source(&target, &entries));
                        for e in entries {
                            if e.is_dir || e.name.ends_with('~') || e.name.contains('.') {
                                continue;
                            }
                            if let Some(f) = view.read(&e.path)? {
                                parse_file(view, &f, depth + 1, s)?;
                            }
                        }
                    }
                }
            } else {
                match view.read(&target)? {
                    None => s.sources.push(HostView::absent_source(&target)),
                    Some(f) => parse_file(view, &f, depth + 1, s)?,
                }
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        let kind = if first.starts_with("Defaults") {
            LineKind::Defaults
        } else if matches!(
            first,
            "User_Alias" | "Runas_Alias" | "Host_Alias" | "Cmnd_Alias" | "Cmd_Alias"
        ) {
            LineKind::Alias
        } else {
            LineKind::UserSpec
        };
        s.lines.push(SudoersLine {
            kind,
            text: line,
            source: file.source_at(lineno),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing::root;

    #[test]
    fn includedir_reads_only_the_files_sudo_reads() {
        let (_d, view) = root(&[
            (
                "/etc/sudoers",
                "Defaults env_reset\n# a comment\nroot ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\n",
            ),
            (
                "/etc/sudoers.d/deploy",
                "deploy ALL=(ALL) NOPASSWD: \\\n   /usr/bin/systemctl\n",
            ),
            ("/etc/sudoers.d/README", "# nothing\n"),
            ("/etc/sudoers.d/old.bak", "bad ALL=(ALL) NOPASSWD: ALL\n"),
            ("/etc/sudoers.d/edit~", "bad ALL=(ALL) NOPASSWD: ALL\n"),
        ]);
        let s = load(&view, "/etc/sudoers").unwrap();
        let nopw: Vec<_> = s.lines.iter().filter(|l| l.grants_nopasswd()).collect();
        assert_eq!(nopw.len(), 1);
        assert_eq!(nopw[0].principal(), "deploy");
        assert_eq!(nopw[0].source.path, "/etc/sudoers.d/deploy");
        assert_eq!(nopw[0].source.line, Some(1));
        assert!(nopw[0].text.contains("/usr/bin/systemctl"));
        assert_eq!(s.lines[0].kind, LineKind::Defaults);
        assert_eq!(
            s.files,
            [
                "/etc/sudoers",
                "/etc/sudoers.d/README",
                "/etc/sudoers.d/deploy"
            ]
        );
    }

    #[test]
    fn an_include_fan_out_is_an_error_not_an_exponential_parse() {
        let (_d, view) = crate::probes::testing::fan_out("/etc/sudoers", "/etc", |n| {
            format!("@include {n}\n@include {n}\n")
        });
        let started = std::time::Instant::now();
        let err = load(&view, "/etc/sudoers").unwrap_err();
        assert!(err.to_string().contains("more than 1024 files"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn at_include_with_relative_path() {
        let (_d, view) = root(&[
            ("/etc/sudoers", "@include extra\n"),
            ("/etc/extra", "%ops ALL=(ALL) NOPASSWD: ALL\n"),
        ]);
        let s = load(&view, "/etc/sudoers").unwrap();
        assert!(s.lines[0].grants_nopasswd());
        assert_eq!(s.lines[0].principal(), "%ops");
    }

    #[test]
    fn self_include_is_bounded() {
        let (_d, view) = root(&[("/etc/sudoers", "#include /etc/sudoers\n")]);
        assert!(load(&view, "/etc/sudoers").is_err());
    }
}
