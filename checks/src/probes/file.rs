//! A file: exists (or must not), mode no more permissive than a maximum,
//! owner and group, content matching or not matching a pattern, and age.
//! With several `path`s the first one that exists is examined.

use std::time::SystemTime;

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try, one_or_many};
use crate::expect::{Num, Pattern};
use crate::host::HostView;
use crate::result::{Source, SourceKind};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProbe {
    #[serde(deserialize_with = "one_or_many")]
    path: Vec<String>,
    /// `true` (default): the file must exist. `false`: it must not.
    #[serde(default = "yes")]
    exists: bool,
    /// Octal mode the file's permissions must not exceed (e.g. `"0640"`).
    #[serde(default)]
    mode_max: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    group: Option<String>,
    /// The content must match.
    #[serde(default)]
    contains: Option<Pattern>,
    /// The content must not match.
    #[serde(default)]
    lacks: Option<Pattern>,
    /// Modified no longer ago than this many days.
    #[serde(default)]
    max_age_days: Option<Num>,
    /// Every `path` must satisfy the check (RHEL's `system-auth` and
    /// `password-auth` both), instead of the first that exists.
    #[serde(default)]
    each: bool,
}

fn yes() -> bool {
    true
}

pub(crate) fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{s}` is not an octal mode"))
}

impl Probe for FileProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        if !self.each {
            return self.examine(ctx, &self.path);
        }
        let outcomes: Vec<Outcome> = self
            .path
            .iter()
            .map(|p| self.examine(ctx, std::slice::from_ref(p)))
            .collect();
        let worst = outcomes
            .iter()
            .map(|o| o.status)
            .max_by_key(|s| match s {
                crate::result::Status::Error => 3,
                crate::result::Status::Fail => 2,
                _ => 1,
            })
            .unwrap_or(crate::result::Status::Error);
        let pick = |f: fn(&Outcome) -> Option<&String>| {
            outcomes
                .iter()
                .filter_map(f)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut combined = Outcome::new(
            worst,
            outcomes
                .iter()
                .filter(|o| o.status == worst)
                .map(|o| o.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )
        .observed(pick(|o| o.observed.as_ref()));
        if let Some(e) = outcomes.first().and_then(|o| o.expected.clone()) {
            combined = combined.expected(format!("each of {}: {e}", self.path.join(", ")));
        }
        combined.sources = outcomes.into_iter().flat_map(|o| o.sources).collect();
        combined
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.max_age_days])
    }

    fn validate(&self) -> Result<(), String> {
        if self.path.is_empty() {
            return Err("`path` must name at least one file".into());
        }
        if let Some(p) = self.path.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("`path` entries are absolute, got `{p}`"));
        }
        if let Some(m) = &self.mode_max {
            parse_mode(m)?;
        }
        Ok(())
    }
}

impl FileProbe {
    /// The check on the first of `paths` that exists.
    fn examine(&self, ctx: &Ctx<'_>, paths: &[String]) -> Outcome {
        let mut sources = Vec::new();
        let mut found = None;
        for p in paths {
            match host_try!(ctx.host.metadata(p), sources) {
                Some(m) => {
                    found = Some((p.clone(), m));
                    break;
                }
                None => sources.push(HostView::absent_source(p)),
            }
        }
        let names = paths.join(" or ");
        let Some((path, meta)) = found else {
            return Outcome::verdict(!self.exists, format!("{names} does not exist"))
                .expected(if self.exists { "exists" } else { "absent" })
                .observed("absent")
                .sources(sources);
        };
        if !self.exists {
            sources.push(Source {
                kind: SourceKind::Metadata,
                path: path.clone(),
                sha256: None,
                line: None,
            });
            return Outcome::fail(format!("{path} exists"))
                .expected("absent")
                .observed("present")
                .sources(sources);
        }
        let mut problems = Vec::new();
        let mut observed = vec![
            format!("mode {:04o}", meta.mode),
            format!(
                "owner {}:{}",
                ctx.user_name(meta.uid),
                ctx.group_name(meta.gid)
            ),
        ];
        let mut expected = Vec::new();
        if let Some(max) = &self.mode_max {
            let max = parse_mode(max).unwrap_or(0);
            expected.push(format!("mode at most {max:04o}"));
            if meta.mode & !max != 0 {
                problems.push(format!(
                    "mode {:04o} is more permissive than {max:04o}",
                    meta.mode
                ));
            }
        }
        if let Some(owner) = &self.owner {
            expected.push(format!("owner {owner}"));
            let actual = ctx.user_name(meta.uid);
            if &actual != owner {
                problems.push(format!("owned by {actual}, not {owner}"));
            }
        }
        if let Some(group) = &self.group {
            expected.push(format!("group {group}"));
            let actual = ctx.group_name(meta.gid);
            if &actual != group {
                problems.push(format!("group {actual}, not {group}"));
            }
        }
        if let Some(days) = &self.max_age_days {
            let days = match days.resolve(ctx.params) {
                Ok(d) => d,
                Err(e) => return Outcome::error(e),
            };
            expected.push(format!("modified within {days} days"));
            if let Some(age) = meta
                .modified
                .and_then(|m| SystemTime::now().duration_since(m).ok())
            {
                let age_days = age.as_secs() / 86400;
                observed.push(format!("modified {age_days} days ago"));
                if age_days as i64 > days {
                    problems.push(format!(
                        "last modified {age_days} days ago, more than {days}"
                    ));
                }
            }
        }
        let mut source = Source {
            kind: SourceKind::Metadata,
            path: path.clone(),
            sha256: None,
            line: None,
        };
        if self.contains.is_some() || self.lacks.is_some() {
            let Some(file) = host_try!(ctx.read(&path), sources) else {
                return Outcome::error(format!("{path} vanished during the scan")).sources(sources);
            };
            source = file.source();
            let text = file.text();
            if let Some(p) = &self.contains {
                expected.push(format!("content matches /{}/", p.0.as_str()));
                match p.0.find(&text) {
                    Some(m) => source = file.source_at(line_of(&text, m.start())),
                    None => problems.push(format!("no line matches /{}/", p.0.as_str())),
                }
            }
            if let Some(p) = &self.lacks {
                expected.push(format!("content does not match /{}/", p.0.as_str()));
                if let Some(m) = p.0.find(&text) {
                    let line = line_of(&text, m.start());
                    source = file.source_at(line);
                    problems.push(format!(
                        "line {line} matches /{}/: {}",
                        p.0.as_str(),
                        m.as_str().trim()
                    ));
                }
            }
        }
        sources.push(source);
        let ok = problems.is_empty();
        let message = if ok {
            format!("{path}: {}", observed.join(", "))
        } else {
            format!("{path}: {}", problems.join("; "))
        };
        let expected = if expected.is_empty() {
            "exists".to_string()
        } else {
            expected.join(", ")
        };
        Outcome::verdict(ok, message)
            .expected(expected)
            .observed(observed.join(", "))
            .sources(sources)
    }
}

pub(crate) fn line_of(text: &str, offset: usize) -> u32 {
    text[..offset.min(text.len())].matches('\n').count() as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::result::Status;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn mode_owner_content() {
        let (d, view) = root(&[
            ("/etc/issue.net", "Authorized use only\n"),
            ("/etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        ]);
        let p = d.path().join("etc/issue.net");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = run(
            &view,
            r#"{ kind = "file", path = "/etc/issue.net", mode_max = "0644", contains = "(?i)authori[sz]ed" }"#,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.sources.last().unwrap().line, Some(1));
        let o = run(
            &view,
            r#"{ kind = "file", path = "/etc/issue.net", mode_max = "0600" }"#,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("more permissive"), "{}", o.message);
        let o = run(
            &view,
            r#"{ kind = "file", path = "/etc/issue.net", lacks = "use" }"#,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("line 1"));
    }

    #[test]
    fn existence_either_way_and_alternatives() {
        let (_d, view) = root(&[("/etc/chrony/chrony.conf", "pool x\n")]);
        assert_eq!(
            run(
                &view,
                r#"{ kind = "file", path = ["/etc/chrony.conf", "/etc/chrony/chrony.conf"] }"#
            )
            .status,
            Status::Pass
        );
        assert_eq!(
            run(
                &view,
                r#"{ kind = "file", path = "/etc/hosts.equiv", exists = false }"#
            )
            .status,
            Status::Pass
        );
        assert_eq!(
            run(
                &view,
                r#"{ kind = "file", path = "/etc/chrony/chrony.conf", exists = false }"#
            )
            .status,
            Status::Fail
        );
        assert_eq!(
            run(&view, r#"{ kind = "file", path = "/etc/none" }"#).status,
            Status::Fail
        );
    }

    #[test]
    fn age() {
        let (_d, view) = root(&[("/var/lib/clamav/daily.cld", "x")]);
        assert_eq!(
            run(
                &view,
                r#"{ kind = "file", path = "/var/lib/clamav/daily.cld", max_age_days = 7 }"#
            )
            .status,
            Status::Pass
        );
    }
}
