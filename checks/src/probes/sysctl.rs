//! A kernel parameter: the live value from /proc/sys on a running host, the
//! configured value (procps `sysctl --system` order: sysctl.d directories
//! merged by file name, then /etc/sysctl.conf) on a root directory.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, drop_ins, host_try};
use crate::expect::Expect;
use crate::host::HostView;
use crate::parse::keyvalue;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlProbe {
    /// Dotted key, e.g. `net.ipv4.ip_forward`.
    key: String,
    expect: Expect,
    /// The kernel default, used in root mode when nothing configures the key.
    #[serde(default)]
    default: Option<String>,
}

const DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

fn normalize(key: &str) -> String {
    key.trim().replace('/', ".")
}

impl Probe for SysctlProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let key = normalize(&self.key);
        if ctx.is_live() {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            return match host_try!(ctx.read(&path)) {
                Some(f) => {
                    let value = f.text().split_whitespace().collect::<Vec<_>>().join(" ");
                    ctx.judge(
                        &format!("{key} (live)"),
                        &self.expect,
                        &value,
                        vec![f.source()],
                    )
                }
                None => Outcome::not_applicable(format!("{path} does not exist on this kernel"))
                    .sources(vec![HostView::absent_source(&path)]),
            };
        }
        let mut sources = Vec::new();
        let mut files = host_try!(drop_ins(ctx.host, &DIRS, "*.conf", &mut sources), sources);
        if let Some(f) = host_try!(ctx.read("/etc/sysctl.conf"), sources) {
            files.push(f);
        }
        let mut found = None;
        for f in &files {
            sources.push(f.source());
            for kv in keyvalue::parse_equals(&f.text()) {
                if normalize(&kv.key) == key {
                    found = Some((kv, f.clone()));
                }
            }
        }
        match (found, &self.default) {
            (Some((kv, f)), _) => {
                sources.push(f.source_at(kv.line));
                ctx.judge(
                    &format!("{key} ({}:{})", f.path, kv.line),
                    &self.expect,
                    &kv.value,
                    sources,
                )
            }
            (None, Some(d)) => ctx.judge(
                &format!("{key} (not configured; kernel default)"),
                &self.expect,
                d,
                sources,
            ),
            (None, None) => Outcome::fail(format!(
                "{key} is not configured in sysctl.conf or sysctl.d"
            ))
            .expected(self.expect.describe(ctx.params))
            .observed("not configured")
            .sources(sources),
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, run_files};
    use crate::host::HostView;
    use crate::result::Status;

    const P: &str =
        r#"{ kind = "sysctl", key = "kernel.randomize_va_space", expect = { equals = 2 } }"#;

    #[test]
    fn root_mode_merges_dropins_then_sysctl_conf() {
        let o = run_files(
            &[
                (
                    "/usr/lib/sysctl.d/50-default.conf",
                    "kernel.randomize_va_space = 0\n",
                ),
                (
                    "/etc/sysctl.d/60-hardening.conf",
                    "kernel/randomize_va_space=2\n",
                ),
            ],
            P,
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let o = run_files(
            &[
                (
                    "/etc/sysctl.d/60-hardening.conf",
                    "kernel.randomize_va_space=2\n",
                ),
                ("/etc/sysctl.conf", "kernel.randomize_va_space = 1\n"),
            ],
            P,
        );
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.sources.last().unwrap().path, "/etc/sysctl.conf");
        assert_eq!(run_files(&[], P).status, Status::Fail);
    }

    #[test]
    fn live_mode_reads_proc_sys_of_this_kernel() {
        let view = HostView::live();
        let want = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap();
        let o = run(&view, P);
        assert_eq!(o.observed.as_deref(), Some(want.trim()));
        assert_eq!(o.status == Status::Pass, want.trim() == "2");
        assert_eq!(o.sources[0].path, "/proc/sys/kernel/randomize_va_space");
        let o = run(
            &view,
            r#"{ kind = "sysctl", key = "no.such.key", expect = { equals = 1 } }"#,
        );
        assert_eq!(o.status, Status::NotApplicable);
    }
}
