//! Capacity headroom on a running host: file systems not fuller than a
//! threshold, memory available above a floor.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe};
use crate::expect::Num;
use crate::result::{Source, SourceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rule {
    DiskUsage,
    MemoryAvailable,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityProbe {
    rule: Rule,
    /// `disk_usage`: highest acceptable used percentage.
    #[serde(default)]
    max_used_percent: Option<Num>,
    /// `memory_available`: lowest acceptable available percentage.
    #[serde(default)]
    min_available_percent: Option<Num>,
}

/// File systems that hold no data worth a threshold.
fn pseudo(fs: &str, mount: &str) -> bool {
    matches!(
        fs,
        "tmpfs"
            | "devtmpfs"
            | "overlay"
            | "squashfs"
            | "proc"
            | "sysfs"
            | "nsfs"
            | "ramfs"
            | "iso9660"
    ) || mount.starts_with("/proc")
        || mount.starts_with("/sys")
        || mount.starts_with("/dev")
        || mount.starts_with("/run")
}

impl Probe for CapacityProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let Some(live) = ctx.host.live_host() else {
            return Outcome::not_applicable("resource usage exists only on a running host");
        };
        let inv = live.inventory();
        let source = |what: &str| Source {
            kind: SourceKind::Kernel,
            path: format!("sysinfo:{what}"),
            sha256: None,
            line: None,
        };
        match self.rule {
            Rule::DiskUsage => {
                let max = match self
                    .max_used_percent
                    .as_ref()
                    .map(|n| n.resolve(ctx.params))
                    .transpose()
                {
                    Ok(m) => m.unwrap_or(90),
                    Err(e) => return Outcome::error(e),
                };
                let disks: Vec<_> = inv
                    .disks
                    .iter()
                    .filter(|d| !pseudo(&d.file_system, &d.mount_point) && d.total_bytes > 0)
                    .collect();
                let full: Vec<String> = disks
                    .iter()
                    .filter(|d| d.used_percent() > max as f64)
                    .map(|d| format!("{} {:.1}%", d.mount_point, d.used_percent()))
                    .collect();
                let all: Vec<String> = disks
                    .iter()
                    .map(|d| format!("{} {:.1}%", d.mount_point, d.used_percent()))
                    .collect();
                if disks.is_empty() {
                    return Outcome::error("sysinfo reported no disk-backed file system")
                        .sources(vec![source("disks")]);
                }
                Outcome::verdict(
                    full.is_empty(),
                    if full.is_empty() {
                        format!("{} file systems below {max}% used", disks.len())
                    } else {
                        format!("above {max}% used: {}", full.join(", "))
                    },
                )
                .expected(format!("every file system at most {max}% used"))
                .observed(all.join(", "))
                .sources(vec![source("disks")])
            }
            Rule::MemoryAvailable => {
                let min = match self
                    .min_available_percent
                    .as_ref()
                    .map(|n| n.resolve(ctx.params))
                    .transpose()
                {
                    Ok(m) => m.unwrap_or(10),
                    Err(e) => return Outcome::error(e),
                };
                let m = inv.memory;
                let pct = if m.total_bytes == 0 {
                    0.0
                } else {
                    100.0 * m.available_bytes as f64 / m.total_bytes as f64
                };
                let observed = format!(
                    "{:.1}% available ({} of {} MiB)",
                    pct,
                    m.available_bytes >> 20,
                    m.total_bytes >> 20
                );
                Outcome::verdict(pct >= min as f64, format!("memory: {observed}"))
                    .expected(format!("at least {min}% of memory available"))
                    .observed(observed)
                    .sources(vec![source("memory")])
            }
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        crate::expect::param_refs([&self.max_used_percent, &self.min_available_percent])
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::host::HostView;
    use crate::result::Status;

    #[test]
    fn thresholds_decide_on_this_machine() {
        let live = HostView::live();
        assert_eq!(
            run(
                &live,
                r#"{ kind = "capacity", rule = "disk_usage", max_used_percent = 100 }"#
            )
            .status,
            Status::Pass
        );
        let o = run(
            &live,
            r#"{ kind = "capacity", rule = "memory_available", min_available_percent = 101 }"#,
        );
        assert_eq!(o.status, Status::Fail);
        assert_eq!(
            run(
                &live,
                r#"{ kind = "capacity", rule = "memory_available", min_available_percent = 0 }"#
            )
            .status,
            Status::Pass
        );
        let (_d, view) = root(&[]);
        assert_eq!(
            run(&view, r#"{ kind = "capacity", rule = "disk_usage" }"#).status,
            Status::NotApplicable
        );
    }
}
