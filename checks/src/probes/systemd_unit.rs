//! systemd units: whether a unit is installed and enabled, read from the
//! unit files and the `.wants`/`.requires` symlinks under the root (and,
//! for a root that has never booted, the preset files that first boot will
//! apply); whether it is active, asked of the running systemd.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use std::sync::Arc;

use crate::host::{Entry, FileData, HostError, HostView, ScanMode};
use crate::result::{Source, SourceKind};

const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
const PRESET_DIRS: [&str; 4] = [
    "/etc/systemd/system-preset",
    "/run/systemd/system-preset",
    "/usr/lib/systemd/system-preset",
    "/lib/systemd/system-preset",
];

/// How a unit is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Enablement {
    /// No unit file found.
    NotInstalled,
    /// Linked to /dev/null.
    Masked,
    /// Pulled in by a `.wants`/`.requires` link in this directory.
    Enabled(String),
    /// Not linked, but the presets enable it on first boot of an image whose
    /// machine-id is not yet initialised.
    PresetEnabled(String),
    /// Installed but not enabled.
    Disabled,
}

impl Enablement {
    pub(crate) fn is_enabled(&self) -> bool {
        matches!(self, Enablement::Enabled(_) | Enablement::PresetEnabled(_))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Enablement::NotInstalled => "not installed".into(),
            Enablement::Masked => "masked".into(),
            Enablement::Enabled(by) => format!("enabled ({by})"),
            Enablement::PresetEnabled(by) => format!("enabled at first boot by preset ({by})"),
            Enablement::Disabled => "disabled".into(),
        }
    }
}

/// The state of the first of `units` that is enabled, else of the first
/// that is installed (aliases followed): units that stand for one another
/// (`dnf-automatic.timer`, `dnf-automatic-install.timer`) are satisfied by
/// any one of them.
/// `unit`'s state when it is enabled, with its sources added to
/// `sources`; `None` (and no sources) when it is not.
pub(crate) fn enabled_unit(
    host: &HostView,
    unit: &str,
    sources: &mut Vec<Source>,
) -> Result<Option<Enablement>, HostError> {
    let mut unit_sources = Vec::new();
    let (_, state) = unit_state(host, &[unit.to_string()], &mut unit_sources)?;
    if !state.is_enabled() {
        return Ok(None);
    }
    sources.extend(unit_sources);
    Ok(Some(state))
}

pub(crate) fn unit_state(
    host: &HostView,
    units: &[String],
    sources: &mut Vec<Source>,
) -> Result<(String, Enablement), HostError> {
    let mut installed = None;
    for unit in units {
        let state = one_unit(host, unit, sources)?;
        if state.is_enabled() {
            return Ok((unit.clone(), state));
        }
        if state != Enablement::NotInstalled && installed.is_none() {
            installed = Some((unit.clone(), state));
        }
    }
    Ok(installed.unwrap_or_else(|| {
        (
            units.first().cloned().unwrap_or_default(),
            Enablement::NotInstalled,
        )
    }))
}

fn one_unit(
    host: &HostView,
    unit: &str,
    sources: &mut Vec<Source>,
) -> Result<Enablement, HostError> {
    // Find the unit file; an alias link (sshd.service -> ssh.service) names the real unit.
    let mut names = vec![unit.to_string()];
    let mut found = None;
    for dir in UNIT_DIRS {
        let path = format!("{dir}/{unit}");
        if let Some(target) = host.link_target(&path)? {
            if target == "/dev/null" {
                sources.push(Source {
                    kind: SourceKind::Metadata,
                    path,
                    sha256: None,
                    line: None,
                });
                return Ok(Enablement::Masked);
            }
            if let Some(real) = target.rsplit('/').next() {
                if real != unit && real.contains('.') {
                    names.push(real.to_string());
                }
            }
        }
        if let Some(f) = host.read(&path).ok().flatten() {
            found = Some(f);
            break;
        }
    }
    let Some(file) = found else {
        return Ok(Enablement::NotInstalled);
    };
    sources.push(file.source());
    for dir in [
        "/etc/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ] {
        let Some(entries) = host.read_dir(dir)? else {
            continue;
        };
        for e in entries
            .iter()
            .filter(|e| e.is_dir && (e.name.ends_with(".wants") || e.name.ends_with(".requires")))
        {
            for name in &names {
                let link = format!("{}/{}", e.path, name);
                if host.link_target(&link)?.is_some() || host.exists(&link)? {
                    sources.push(Source {
                        kind: SourceKind::Metadata,
                        path: link.clone(),
                        sha256: None,
                        line: None,
                    });
                    return Ok(Enablement::Enabled(link));
                }
            }
        }
    }
    // An image that has not booted yet gets `systemctl preset-all` on first boot.
    let machine_id = host.read("/etc/machine-id")?;
    let uninitialized = match &machine_id {
        None => true,
        Some(f) => {
            let t = f.text();
            t.trim().is_empty() || t.trim() == "uninitialized"
        }
    };
    if uninitialized && host.mode() != ScanMode::Live {
        if let Some((enable, at)) = preset(host, &names[0], sources)? {
            if enable {
                return Ok(Enablement::PresetEnabled(at));
            }
        }
    }
    Ok(Enablement::Disabled)
}

/// The first preset rule matching `unit`: (enable?, file:line).
fn preset(
    host: &HostView,
    unit: &str,
    sources: &mut Vec<Source>,
) -> Result<Option<(bool, String)>, HostError> {
    let files = super::drop_ins(host, &PRESET_DIRS, "*.preset", sources)?;
    for f in files {
        for (i, line) in f.text().lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [verb @ ("enable" | "disable"), pattern, ..] = words.as_slice() {
                if crate::parse::glob_match(pattern, unit) {
                    sources.push(f.source_at(i as u32 + 1));
                    return Ok(Some((*verb == "enable", format!("{}:{}", f.path, i + 1))));
                }
            }
        }
    }
    Ok(None)
}

/// The unit files whose names end in `suffix` (`.timer`, `.socket`),
/// each name once: the file in the first unit directory that has it, as
/// systemd loads it.
pub(crate) fn unit_files(host: &HostView, suffix: &str) -> Result<Vec<Entry>, HostError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for dir in UNIT_DIRS {
        let Some(entries) = host.read_dir(dir)? else {
            continue;
        };
        for e in entries {
            if e.name.ends_with(suffix) && !e.is_dir && seen.insert(e.name.clone()) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// The file of the unit `name` from the first unit directory that has it.
pub(crate) fn unit_file(host: &HostView, name: &str) -> Result<Option<Arc<FileData>>, HostError> {
    for dir in UNIT_DIRS {
        if let Some(f) = host.read(&format!("{dir}/{name}"))? {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// Whether systemd is the running init (so `systemctl` can answer).
pub(crate) fn systemd_running(host: &HostView) -> bool {
    host.exists("/run/systemd/system").unwrap_or(false)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdUnitProbe {
    /// Unit names; the first installed one is examined (`chrony.service`, `chronyd.service`).
    #[serde(default)]
    units: Vec<String>,
    /// A text parameter listing further units (comma or space separated),
    /// so the SoA can name the ones this organisation accepts.
    #[serde(default)]
    units_param: Option<String>,
    /// Require enabled (`true`) or not enabled (`false`).
    #[serde(default)]
    enabled: Option<bool>,
    /// Require active (live hosts only).
    #[serde(default)]
    active: Option<bool>,
}

impl Probe for SystemdUnitProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let mut units = self.units.clone();
        if let Some(p) = &self.units_param {
            for u in ctx.params.list(p) {
                if let Err(e) = super::check_name("unit", &u) {
                    return Outcome::error(format!("parameter `{p}`: {e}"));
                }
                units.push(u);
            }
        }
        if units.is_empty() {
            return Outcome::error(format!(
                "no units to look for: parameter `{}` is empty",
                self.units_param.as_deref().unwrap_or("")
            ));
        }
        let (unit, state) = host_try!(unit_state(ctx.host, &units, &mut sources), sources);
        let names = if units.len() > 4 {
            format!("{} (and {} more)", units[..4].join(" / "), units.len() - 4)
        } else {
            units.join(" / ")
        };
        if state == Enablement::NotInstalled {
            let wanted = self.enabled != Some(false) && self.active != Some(false);
            return Outcome::verdict(!wanted, format!("{names}: no unit file installed"))
                .expected(if wanted { "installed" } else { "not enabled" })
                .observed("not installed")
                .sources(sources);
        }
        if let Some(want) = self.enabled {
            if state.is_enabled() != want {
                return Outcome::fail(format!("{unit} is {}", state.describe()))
                    .expected(if want { "enabled" } else { "not enabled" })
                    .observed(state.describe())
                    .sources(sources);
            }
        }
        let Some(want_active) = self.active else {
            return Outcome::pass(format!("{unit} is {}", state.describe()))
                .expected("enabled")
                .observed(state.describe())
                .sources(sources);
        };
        let Some(live) = ctx.host.live_host() else {
            return Outcome::not_applicable(format!(
                "whether {unit} is active can only be seen on a running host; it is {}",
                state.describe()
            ))
            .sources(sources);
        };
        if !systemd_running(ctx.host) {
            return Outcome::not_applicable(format!("systemd is not the running init (/run/systemd/system is absent), so whether {unit} is active cannot be read; it is {}", state.describe()))
                .sources(sources);
        }
        let out = match live.command(&["systemctl", "is-active", "--", &unit]) {
            Ok(o) => o,
            Err(e) => {
                return Outcome::error(format!("systemctl is-active {unit}: {e}")).sources(sources);
            }
        };
        sources.push(out.source());
        let active_state = out.stdout.trim().to_string();
        let is_active = active_state == "active";
        Outcome::verdict(
            is_active == want_active,
            format!("{unit} is {active_state} and {}", state.describe()),
        )
        .expected(if want_active { "active" } else { "inactive" })
        .observed(active_state)
        .sources(sources)
    }

    fn param_refs(&self) -> Vec<&str> {
        self.units_param.as_deref().into_iter().collect()
    }

    fn validate(&self) -> Result<(), String> {
        if self.units.is_empty() && self.units_param.is_none() {
            return Err(
                "`units` must name at least one unit (or `units_param` a parameter that does)"
                    .into(),
            );
        }
        // Unit names reach `systemctl` as arguments.
        for u in &self.units {
            super::check_name("unit", u)?;
        }
        if self.enabled.is_none() && self.active.is_none() {
            return Err("set `enabled` and/or `active`".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run, wants};
    use crate::result::Status;
    use std::os::unix::fs::symlink;

    const UNIT: &str =
        "[Service]\nExecStart=/usr/sbin/chronyd\n[Install]\nWantedBy=multi-user.target\n";
    const P: &str = r#"{ kind = "systemd_unit", units = ["chrony.service", "chronyd.service"], enabled = true }"#;

    #[test]
    fn enabled_by_wants_link_and_through_an_alias() {
        let (d, view) = root(&[
            ("/usr/lib/systemd/system/chrony.service", UNIT),
            ("/etc/machine-id", "abc\n"),
        ]);
        assert_eq!(run(&view, P).status, Status::Fail);
        wants(
            d.path(),
            "multi-user.target",
            "/usr/lib/systemd/system/chrony.service",
        );
        let o = run(&view, P);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(o.observed.unwrap().contains("multi-user.target.wants"));

        let (d, view) = root(&[
            ("/lib/systemd/system/ssh.service", UNIT),
            ("/etc/machine-id", "abc\n"),
        ]);
        wants(
            d.path(),
            "multi-user.target",
            "/lib/systemd/system/ssh.service",
        );
        symlink(
            "/lib/systemd/system/ssh.service",
            d.path().join("etc/systemd/system/sshd.service"),
        )
        .unwrap();
        let o = run(
            &view,
            r#"{ kind = "systemd_unit", units = ["sshd.service"], enabled = true }"#,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
    }

    #[test]
    fn masked_and_missing() {
        let (d, view) = root(&[("/usr/lib/systemd/system/chrony.service", UNIT)]);
        std::fs::create_dir_all(d.path().join("etc/systemd/system")).unwrap();
        symlink(
            "/dev/null",
            d.path().join("etc/systemd/system/chrony.service"),
        )
        .unwrap();
        let o = run(&view, P);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed.as_deref(), Some("masked"));
        let (_d, view) = root(&[]);
        assert_eq!(run(&view, P).observed.as_deref(), Some("not installed"));
        assert_eq!(
            run(
                &view,
                r#"{ kind = "systemd_unit", units = ["telnet.socket"], enabled = false }"#
            )
            .status,
            Status::Pass
        );
    }

    #[test]
    fn presets_count_only_before_first_boot() {
        let files = [
            ("/usr/lib/systemd/system/chrony.service", UNIT),
            (
                "/usr/lib/systemd/system-preset/90-systemd.preset",
                "enable chrony.*\ndisable *\n",
            ),
        ];
        let (_d, view) = root(&files);
        let o = run(&view, P);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(o.observed.unwrap().contains("preset"));
        let mut booted = files.to_vec();
        booted.push(("/etc/machine-id", "0123456789abcdef\n"));
        let (_d, view) = root(&booted);
        assert_eq!(run(&view, P).status, Status::Fail);
    }

    #[test]
    fn active_is_not_applicable_in_root_mode() {
        let (d, view) = root(&[
            ("/usr/lib/systemd/system/chrony.service", UNIT),
            ("/etc/machine-id", "x\n"),
        ]);
        wants(
            d.path(),
            "multi-user.target",
            "/usr/lib/systemd/system/chrony.service",
        );
        let o = run(
            &view,
            r#"{ kind = "systemd_unit", units = ["chrony.service"], enabled = true, active = true }"#,
        );
        assert_eq!(o.status, Status::NotApplicable);
    }
}
