//! Permissions of every file under a directory, for example that log files
//! under /var/log are not readable or writable by everyone.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, file::parse_mode, host_try};
use crate::host::HostView;
use crate::parse::glob_match;
use crate::result::{Source, SourceKind};

/// At most this many entries are examined, so a hostile tree cannot stall
/// the scan; reaching it is reported.
const MAX_ENTRIES: usize = 100_000;
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTreeProbe {
    dir: String,
    /// Octal mode regular files must not exceed.
    mode_max: String,
    /// File names (globs) that are exempt, e.g. `wtmp`.
    #[serde(default)]
    exclude: Vec<String>,
    /// Descend into subdirectories.
    #[serde(default = "yes")]
    recursive: bool,
}

fn yes() -> bool {
    true
}

impl Probe for FileTreeProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let max = parse_mode(&self.mode_max).unwrap_or(0);
        let mut sources = Vec::new();
        let mut offenders: Vec<(String, u32)> = Vec::new();
        let mut stack = vec![(self.dir.clone(), 0usize)];
        let mut examined = 0usize;
        let mut truncated = false;
        let mut root_seen = false;
        while let Some((dir, depth)) = stack.pop() {
            let Some(entries) = host_try!(ctx.host.read_dir(&dir), sources) else {
                if !root_seen {
                    return Outcome::not_applicable(format!("{dir} does not exist"))
                        .sources(vec![HostView::absent_source(&dir)]);
                }
                continue;
            };
            root_seen = true;
            if depth == 0 {
                sources.push(HostView::dir_source(&dir, &entries));
            }
            for e in entries {
                if e.link_target.is_some() {
                    continue; // links are not files of this directory
                }
                if e.is_dir {
                    if self.recursive && depth < MAX_DEPTH {
                        stack.push((e.path, depth + 1));
                    }
                    continue;
                }
                if self.exclude.iter().any(|g| glob_match(g, &e.name)) {
                    continue;
                }
                examined += 1;
                if examined > MAX_ENTRIES {
                    truncated = true;
                    break;
                }
                if let Some(m) = host_try!(ctx.host.metadata(&e.path), sources) {
                    if m.is_file && m.mode & !max != 0 {
                        offenders.push((e.path, m.mode));
                    }
                }
            }
            if truncated {
                break;
            }
        }
        offenders.sort();
        for (p, _) in offenders.iter().take(50) {
            sources.push(Source {
                kind: SourceKind::Metadata,
                path: p.clone(),
                sha256: None,
                line: None,
            });
        }
        let expected = format!("files under {} at most {max:04o}", self.dir);
        if truncated {
            return Outcome::error(format!(
                "{} holds more than {MAX_ENTRIES} files; not all were examined",
                self.dir
            ))
            .expected(expected)
            .sources(sources);
        }
        if offenders.is_empty() {
            return Outcome::pass(format!(
                "{examined} files under {} are at most {max:04o}",
                self.dir
            ))
            .expected(expected)
            .observed(format!("{examined} files, none more permissive"))
            .sources(sources);
        }
        let listed: Vec<String> = offenders
            .iter()
            .take(10)
            .map(|(p, m)| format!("{p} ({m:04o})"))
            .collect();
        let more = if offenders.len() > 10 {
            format!(" and {} more", offenders.len() - 10)
        } else {
            String::new()
        };
        Outcome::fail(format!(
            "{} of {examined} files under {} are more permissive than {max:04o}: {}{more}",
            offenders.len(),
            self.dir,
            listed.join(", ")
        ))
        .expected(expected)
        .observed(listed.join(", ") + &more)
        .sources(sources)
    }

    fn validate(&self) -> Result<(), String> {
        parse_mode(&self.mode_max).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::result::Status;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finds_world_readable_logs_and_honours_excludes() {
        let (d, view) = root(&[
            ("/var/log/syslog", "x"),
            ("/var/log/apt/history.log", "x"),
            ("/var/log/wtmp", "x"),
        ]);
        let set = |p: &str, m| {
            std::fs::set_permissions(d.path().join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        set("var/log/syslog", 0o640);
        set("var/log/apt/history.log", 0o640);
        set("var/log/wtmp", 0o664);
        let spec = r#"{ kind = "file_tree", dir = "/var/log", mode_max = "0640", exclude = ["wtmp", "btmp", "lastlog"] }"#;
        assert_eq!(run(&view, spec).status, Status::Pass);
        set("var/log/apt/history.log", 0o644);
        let o = run(&view, spec);
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.message.contains("/var/log/apt/history.log (0644)"),
            "{}",
            o.message
        );
        let o = run(
            &view,
            r#"{ kind = "file_tree", dir = "/nope", mode_max = "0640" }"#,
        );
        assert_eq!(o.status, Status::NotApplicable);
    }
}
