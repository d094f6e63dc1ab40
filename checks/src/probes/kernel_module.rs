//! Kernel modules that must not load: removable-media drivers (USB mass
//! storage, FireWire) and file systems and protocols a server has no use
//! for. Judged from the modprobe configuration as `modprobe` reads it (an
//! `install NAME /bin/false` line, or `blacklist NAME`, which stops the
//! automatic loading a plugged-in device triggers) and, on a live host,
//! from /proc/modules: a module loaded right now fails whatever the files
//! say.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::host::HostView;
use crate::result::Source;

/// modprobe.d(5): a file in an earlier directory hides a same-named one in
/// a later directory.
const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

/// Commands that make `install NAME CMD` refuse the module.
const REFUSING: [&str; 4] = ["false", "true", "nologin", "exit"];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelModuleProbe {
    /// Module names (`-` and `_` are the same to the kernel); each must be
    /// disabled.
    modules: Vec<String>,
}

/// How the configuration treats a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disabled {
    /// `install NAME /bin/false` (or another refusing command) at this line.
    Install(Source),
    /// `blacklist NAME` at this line.
    Blacklist(Source),
    /// Neither.
    No,
}

pub(crate) fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// How `module` is configured across the modprobe files (each file's lines
/// in order; an `install` line wins over a `blacklist`).
pub(crate) fn configured(
    files: &[std::sync::Arc<crate::host::FileData>],
    module: &str,
) -> Disabled {
    let want = normalise(module);
    let mut found = Disabled::No;
    for f in files {
        for (i, raw) in f.text().lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let (Some(cmd), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            if normalise(name) != want {
                continue;
            }
            let at = f.source_at(i as u32 + 1);
            match cmd {
                "install" => {
                    let program = words.next().unwrap_or("");
                    let base = program.rsplit('/').next().unwrap_or(program);
                    if REFUSING.contains(&base) {
                        found = Disabled::Install(at);
                    } else if matches!(found, Disabled::Install(_)) {
                        // A later install line that loads something replaces the refusal.
                        found = Disabled::No;
                    }
                }
                "blacklist" if found == Disabled::No => found = Disabled::Blacklist(at),
                _ => {}
            }
        }
    }
    found
}

/// The names of the modules in a /proc/modules text.
pub fn loaded(proc_modules: &str) -> Vec<String> {
    proc_modules
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(normalise)
        .collect()
}

impl Probe for KernelModuleProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let mut sources = Vec::new();
        let files = host_try!(
            drop_ins(ctx.host, &MODPROBE_DIRS, "*.conf", &mut sources),
            sources
        );
        // Live: the modules loaded now, or `None` when this kernel was built
        // without loadable-module support (no /proc/modules), where only
        // built-in drivers exist.
        let live: Option<Option<Vec<String>>> = if ctx.is_live() {
            match host_try!(ctx.read("/proc/modules"), sources) {
                Some(f) => {
                    sources.push(f.source());
                    Some(Some(loaded(&f.text())))
                }
                None => {
                    sources.push(HostView::absent_source("/proc/modules"));
                    Some(None)
                }
            }
        } else {
            None
        };
        let mut bad = Vec::new();
        let mut how = Vec::new();
        for m in &self.modules {
            let name = normalise(m);
            // A driver compiled into the kernel shows under /sys/module
            // without being in /proc/modules, and no configuration stops it.
            if live.is_some() {
                let sys = format!("/sys/module/{name}");
                let built_in = host_try!(ctx.host.exists(&sys), sources)
                    && !matches!(&live, Some(Some(l)) if l.contains(&name));
                if built_in {
                    sources.push(Source {
                        kind: crate::result::SourceKind::Metadata,
                        path: sys,
                        sha256: None,
                        line: None,
                    });
                    bad.push(format!(
                        "{m}: built into the running kernel, so modprobe.d cannot disable it"
                    ));
                    continue;
                }
            }
            if let Some(None) = &live {
                how.push(format!(
                    "{m}: not in this kernel, which loads no modules (no /proc/modules)"
                ));
                continue;
            }
            match configured(&files, m) {
                Disabled::Install(at) => {
                    how.push(format!(
                        "{m}: install refused ({}:{})",
                        at.path,
                        at.line.unwrap_or(0)
                    ));
                    sources.push(at);
                }
                Disabled::Blacklist(at) => {
                    how.push(format!(
                        "{m}: blacklisted ({}:{})",
                        at.path,
                        at.line.unwrap_or(0)
                    ));
                    sources.push(at);
                }
                Disabled::No => bad.push(format!("{m}: not disabled in modprobe.d")),
            }
            if let Some(Some(loaded)) = &live {
                if loaded.contains(&name) {
                    bad.push(format!("{m}: loaded now (/proc/modules)"));
                }
            }
        }
        let expected = format!(
            "{} disabled (`install NAME /bin/false` or `blacklist NAME` in modprobe.d){}",
            self.modules.join(", "),
            if live.is_some() {
                " and not loaded"
            } else {
                ""
            }
        );
        if bad.is_empty() {
            Outcome::pass(format!("{} cannot be loaded", self.modules.join(", ")))
                .expected(expected)
                .observed(how.join("; "))
                .sources(sources)
        } else {
            Outcome::fail(bad.join("; "))
                .expected(expected)
                .observed(
                    bad.iter()
                        .chain(&how)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; "),
                )
                .sources(sources)
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.modules.is_empty() {
            return Err("`modules` must name at least one module".into());
        }
        for m in &self.modules {
            super::check_name("module", m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "kernel_module", modules = ["usb-storage"] }"#;

    #[test]
    fn install_false_or_blacklist_disables_and_a_later_loader_undoes_it() {
        let o = run_files(
            &[(
                "/etc/modprobe.d/usb.conf",
                "install usb_storage /bin/false\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.observed
                .unwrap()
                .contains("install refused (/etc/modprobe.d/usb.conf:1)")
        );
        let o = run_files(
            &[(
                "/etc/modprobe.d/b.conf",
                "blacklist usb-storage # no sticks\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Pass);
        let o = run_files(
            &[(
                "/etc/modprobe.d/a.conf",
                "install usb-storage /bin/true\ninstall usb-storage /sbin/modprobe --ignore-install usb-storage\n",
            )],
            P,
        );
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert_eq!(run_files(&[], P).status, Status::Fail);
    }

    #[test]
    fn an_etc_file_hides_the_vendor_file_of_the_same_name() {
        let o = run_files(
            &[
                (
                    "/usr/lib/modprobe.d/usb.conf",
                    "install usb-storage /bin/false\n",
                ),
                ("/etc/modprobe.d/usb.conf", "# allowed here\n"),
            ],
            P,
        );
        assert_eq!(o.status, Status::Fail, "{o:?}");
    }

    #[test]
    fn loaded_modules_are_read_from_proc_modules() {
        let l = super::loaded("usb_storage 81920 0 - Live 0x0\nuas 32768 0 - Live 0x0\n");
        assert_eq!(l, ["usb_storage", "uas"]);
    }
}
