//! Linux software RAID (md): arrays not degraded, and failures reported.
//! Whether an array is degraded is kernel state, so it is read live from
//! /proc/mdstat; in a root directory only the configuration
//! (mdadm.conf's ARRAY lines) can be read, which says what is configured,
//! not how the disks are.

use serde::Deserialize;

use super::systemd_unit::unit_state;
use super::{Ctx, Outcome, Probe, host_try};
use crate::host::HostView;
use crate::result::Source;

const MDADM_CONF: [&str; 2] = ["/etc/mdadm/mdadm.conf", "/etc/mdadm.conf"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    /// Every array has all its members and none is failed or rebuilding.
    Healthy,
    /// mdadm reports failures: MAILADDR or PROGRAM set, and its monitor enabled.
    Monitored,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaidProbe {
    rule: Rule,
}

/// One array of /proc/mdstat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdArray {
    /// `md0`.
    pub name: String,
    /// `active`, `inactive`.
    pub state: String,
    /// `raid1`, `raid5`, `linear`.
    pub level: String,
    /// `[n/m]` and `[UU_]`, where the level has redundancy.
    pub members: Option<(u32, u32, String)>,
    /// Members marked `(F)`.
    pub failed: Vec<String>,
    /// `recovery = 12.6%`, `resync = …`.
    pub rebuilding: Option<String>,
    /// 1-based line of the array in /proc/mdstat.
    pub line: u32,
}

impl MdArray {
    /// What is wrong with the array, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.state != "active" {
            return Some(format!("{} is {}", self.name, self.state));
        }
        if !self.failed.is_empty() {
            return Some(format!(
                "{} has failed members {}",
                self.name,
                self.failed.join(", ")
            ));
        }
        if let Some((n, m, map)) = &self.members {
            if m < n || map.contains('_') {
                return Some(format!(
                    "{} is degraded: {m} of {n} members up [{map}]",
                    self.name
                ));
            }
        }
        self.rebuilding
            .as_ref()
            .map(|r| format!("{} is rebuilding ({r})", self.name))
    }
}

/// Parses /proc/mdstat.
pub fn parse_mdstat(text: &str) -> Vec<MdArray> {
    let mut out: Vec<MdArray> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some((name, rest)) = t.split_once(" : ") {
            if name.starts_with("md") && !name.contains(' ') {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let state = words.first().copied().unwrap_or("").to_string();
                let mut idx = 1;
                // `active (auto-read-only) raid1 …`
                while words.get(idx).is_some_and(|w| w.starts_with('(')) {
                    idx += 1;
                }
                let level = words
                    .get(idx)
                    .filter(|w| w.starts_with("raid") || **w == "linear")
                    .map(|w| w.to_string())
                    .unwrap_or_default();
                let failed = words
                    .iter()
                    .filter(|w| w.ends_with("(F)"))
                    .map(|w| w.trim_end_matches("(F)").to_string())
                    .collect();
                out.push(MdArray {
                    name: name.to_string(),
                    state,
                    level,
                    members: None,
                    failed,
                    rebuilding: None,
                    line: i as u32 + 1,
                });
                continue;
            }
        }
        let Some(a) = out.last_mut() else { continue };
        if line.starts_with(' ') || line.starts_with('\t') {
            if let (Some(s), Some(e)) = (t.find("] ["), t.rfind(']')) {
                let open = t[..s].rfind('[').unwrap_or(0);
                let counts = &t[open + 1..s];
                let map = &t[s + 3..e];
                if let Some((n, m)) = counts.split_once('/') {
                    if let (Ok(n), Ok(m)) = (n.parse(), m.parse()) {
                        a.members = Some((n, m, map.to_string()));
                    }
                }
            }
            for kind in ["recovery", "resync", "reshape", "check"] {
                if let Some(p) = t.find(&format!("{kind} =")) {
                    let pct = t[p..].split_whitespace().nth(2).unwrap_or("");
                    if kind != "check" {
                        a.rebuilding = Some(format!("{kind} {pct}"));
                    }
                }
            }
        }
    }
    out
}

/// ARRAY lines of mdadm.conf, and whether it reports failures (MAILADDR or
/// PROGRAM), with the file read.
fn conf(
    ctx: &Ctx<'_>,
    sources: &mut Vec<Source>,
) -> Result<(Vec<String>, Option<Source>), crate::host::HostError> {
    for p in MDADM_CONF {
        match ctx.read(p)? {
            Some(f) => {
                sources.push(f.source());
                let text = f.text();
                let mut arrays = Vec::new();
                let mut report = None;
                for (i, l) in text.lines().enumerate() {
                    let mut w = l.split_whitespace();
                    match w.next() {
                        Some("ARRAY") => arrays.push(w.next().unwrap_or("?").to_string()),
                        Some("MAILADDR") | Some("PROGRAM") if w.next().is_some() => {
                            report = Some(f.source_at(i as u32 + 1))
                        }
                        _ => {}
                    }
                }
                return Ok((arrays, report));
            }
            None => sources.push(HostView::absent_source(p)),
        }
    }
    Ok((Vec::new(), None))
}

impl Probe for RaidProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let (configured, report) = host_try!(conf(ctx, &mut sources), sources);
        let live = if ctx.is_live() {
            match host_try!(ctx.read("/proc/mdstat"), sources) {
                Some(f) => {
                    sources.push(f.source());
                    Some(parse_mdstat(&f.text()))
                }
                None => {
                    sources.push(HostView::absent_source("/proc/mdstat"));
                    Some(Vec::new())
                }
            }
        } else {
            None
        };
        let names: Vec<String> = match &live {
            Some(arrays) => arrays.iter().map(|a| a.name.clone()).collect(),
            None => configured.clone(),
        };
        if names.is_empty() {
            return Outcome::not_applicable(if live.is_some() {
                "no software RAID arrays (/proc/mdstat lists none)"
            } else {
                "no software RAID arrays configured (no ARRAY line in mdadm.conf)"
            })
            .sources(sources);
        }
        match self.rule {
            Rule::Healthy => {
                let Some(arrays) = live else {
                    return Outcome::not_applicable(format!(
                        "configuration only: {} configured in mdadm.conf; whether an array is degraded is kernel state, visible only on the running host",
                        configured.join(", ")
                    ))
                    .sources(sources);
                };
                let problems: Vec<String> = arrays.iter().filter_map(MdArray::problem).collect();
                let observed = arrays
                    .iter()
                    .map(|a| match &a.members {
                        Some((n, m, map)) => {
                            format!("{} {} {} [{m}/{n}] [{map}]", a.name, a.state, a.level)
                        }
                        None => format!("{} {} {} (no redundancy)", a.name, a.state, a.level),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                Outcome::verdict(
                    problems.is_empty(),
                    if problems.is_empty() {
                        format!("all arrays complete: {observed}")
                    } else {
                        problems.join("; ")
                    },
                )
                .expected("every array active with all members up, none failed or rebuilding")
                .observed(observed)
                .sources(sources)
            }
            Rule::Monitored => {
                let units = vec!["mdmonitor.service".to_string(), "mdadm.service".to_string()];
                let (unit, state) = host_try!(unit_state(ctx.host, &units, &mut sources), sources);
                let mut problems = Vec::new();
                match &report {
                    Some(at) => sources.push(at.clone()),
                    None => problems.push("mdadm.conf sets neither MAILADDR nor PROGRAM, so a failed disk is reported to no one".to_string()),
                }
                if !state.is_enabled() {
                    problems.push(format!("{unit} is {}", state.describe()));
                }
                let observed = format!(
                    "{}; {unit} {}",
                    if report.is_some() {
                        "failures reported (MAILADDR/PROGRAM set)"
                    } else {
                        "no MAILADDR or PROGRAM"
                    },
                    state.describe()
                );
                Outcome::verdict(
                    problems.is_empty(),
                    if problems.is_empty() {
                        observed.clone()
                    } else {
                        problems.join("; ")
                    },
                )
                .expected("MAILADDR or PROGRAM in mdadm.conf and the mdadm monitor enabled")
                .observed(observed)
                .sources(sources)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDSTAT: &str = "Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\nmd1 : active raid1 sda2[0] sdb2[1](F)\n      9432064 blocks super 1.2 [2/1] [U_]\n      [=>...................]  recovery =  8.5% (803840/9432064) finish=0.7min\n\nunused devices: <none>\n";

    #[test]
    fn degraded_failed_and_rebuilding_arrays_are_problems() {
        let a = parse_mdstat(MDSTAT);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].problem(), None);
        assert_eq!(a[0].members, Some((2, 2, "UU".into())));
        let p = a[1].problem().unwrap();
        assert!(p.contains("failed members sdb2"), "{p}");
        let mut b = a[1].clone();
        b.failed.clear();
        assert!(b.problem().unwrap().contains("degraded: 1 of 2"));
        b.members = Some((2, 2, "UU".into()));
        assert!(b.problem().unwrap().contains("recovery 8.5%"));
        let i = parse_mdstat("md127 : inactive sdc[0](S)\n      1000 blocks\n");
        assert!(i[0].problem().unwrap().contains("inactive"));
    }

    #[test]
    fn root_mode_reads_configuration_only() {
        use super::super::testing::run_files;
        use crate::result::Status;
        let p = r#"{ kind = "raid", rule = "healthy" }"#;
        let o = run_files(
            &[(
                "/etc/mdadm/mdadm.conf",
                "ARRAY /dev/md0 metadata=1.2 UUID=x\n",
            )],
            p,
        );
        assert_eq!(o.status, Status::NotApplicable);
        assert!(
            o.message.contains("configuration only: /dev/md0"),
            "{}",
            o.message
        );
        let m = r#"{ kind = "raid", rule = "monitored" }"#;
        let o = run_files(
            &[(
                "/etc/mdadm/mdadm.conf",
                "ARRAY /dev/md0 metadata=1.2 UUID=x\n",
            )],
            m,
        );
        assert_eq!(o.status, Status::Fail);
        assert_eq!(run_files(&[], m).status, Status::NotApplicable);
    }
}
