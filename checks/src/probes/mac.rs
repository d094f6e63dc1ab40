//! Mandatory access control enforcing: SELinux on the RHEL family, AppArmor
//! on the Debian family. In a root, what the next boot will do (the
//! configuration and the kernel command line it will boot with); on a live
//! host, also what the running kernel does now.

use serde::Deserialize;

use super::systemd_unit::unit_state;
use super::{Ctx, Outcome, Probe, drop_ins, host_try, package};
use crate::host::HostView;
use crate::parse::keyvalue;
use crate::result::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Framework {
    Selinux,
    Apparmor,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacProbe {
    framework: Framework,
}

/// Where the kernel command line of the next boot is written: GRUB's
/// defaults and their drop-ins (Debian, Ubuntu, RHEL 8), kernel-install's
/// file and the boot loader entries grubby edits (RHEL 9, Fedora), and
/// RHEL 8's `kernelopts` in grubenv.
const BOOT_FILES: [&str; 3] = [
    "/etc/default/grub",
    "/etc/kernel/cmdline",
    "/boot/grub2/grubenv",
];
const BOOT_DIRS: [(&str, &str); 2] = [
    ("/etc/default/grub.d", "*.cfg"),
    ("/boot/loader/entries", "*.conf"),
];

/// The value of a shell assignment as the shell would see it: quotes
/// removed, a trailing comment dropped.
fn shell_value(v: &str) -> String {
    let v = v.trim();
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                    out.push(d);
                }
            }
            '#' if out.is_empty() || out.ends_with(char::is_whitespace) => break,
            c if c.is_whitespace() => break,
            c => out.push(c),
        }
    }
    out
}

/// The kernel arguments a file gives, each with its 1-based line.
fn boot_args(path: &str, text: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let args = if path.ends_with("/cmdline") {
            line.to_string()
        } else if path.ends_with("/grubenv") {
            match line.strip_prefix("kernelopts=") {
                Some(v) => v.to_string(),
                None => continue,
            }
        } else if path.starts_with("/boot/loader/entries/") {
            match line.strip_prefix("options") {
                Some(v) if v.starts_with(char::is_whitespace) => v.to_string(),
                _ => continue,
            }
        } else {
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            match line.split_once('=') {
                Some((k, v)) if k.starts_with("GRUB_CMDLINE_LINUX") => shell_value(v),
                _ => continue,
            }
        };
        out.extend(
            args.split_whitespace()
                .map(|a| (a.trim_matches(['"', '\'']).to_string(), i as u32 + 1)),
        );
    }
    out
}

/// The first kernel argument among `words` that the next boot (root) or
/// this boot (live: /proc/cmdline) is given: (argument, where).
fn kernel_arg(
    ctx: &Ctx<'_>,
    words: &[&str],
    sources: &mut Vec<Source>,
) -> Result<Option<(String, Source)>, crate::host::HostError> {
    let mut files = Vec::new();
    if ctx.is_live() {
        files.extend(ctx.read("/proc/cmdline")?);
    } else {
        for path in BOOT_FILES {
            files.extend(ctx.read(path)?);
        }
        for (dir, pattern) in BOOT_DIRS {
            files.extend(drop_ins(ctx.host, &[dir], pattern, sources)?);
        }
    }
    for f in files {
        sources.push(f.source());
        for (arg, line) in boot_args(&f.path, &f.text()) {
            if words.contains(&arg.as_str()) {
                return Ok(Some((arg, f.source_at(line))));
            }
        }
    }
    Ok(None)
}

fn selinux(ctx: &Ctx<'_>) -> Outcome {
    const CONFIG: &str = "/etc/selinux/config";
    let expected = "SELinux enforcing";
    let mut sources = Vec::new();
    let Some(conf) = host_try!(ctx.read(CONFIG)) else {
        return Outcome::fail(format!("{CONFIG} is absent: SELinux is disabled"))
            .expected(expected)
            .observed("not configured")
            .sources(vec![HostView::absent_source(CONFIG)]);
    };
    let kvs = keyvalue::parse_equals(&conf.text());
    let Some(mode) = keyvalue::last(&kvs, "SELINUX") else {
        return Outcome::fail(format!("{CONFIG} does not set SELINUX"))
            .expected(expected)
            .observed("not set")
            .sources(vec![conf.source()]);
    };
    sources.push(conf.source_at(mode.line));
    let configured = mode.value.to_ascii_lowercase();
    if configured != "enforcing" {
        return Outcome::fail(format!("{CONFIG} sets SELINUX={configured}"))
            .expected(expected)
            .observed(configured)
            .sources(sources);
    }
    if let Some((arg, at)) = host_try!(
        kernel_arg(ctx, &["selinux=0", "enforcing=0"], &mut sources),
        sources
    ) {
        sources.push(at);
        return Outcome::fail(format!(
            "the kernel command line has {arg}, which overrides SELINUX=enforcing"
        ))
        .expected(expected)
        .observed(arg)
        .sources(sources);
    }
    if ctx.is_live() {
        const ENFORCE: &str = "/sys/fs/selinux/enforce";
        let now = host_try!(ctx.read(ENFORCE), sources);
        let Some(now) = now else {
            sources.push(HostView::absent_source(ENFORCE));
            return Outcome::fail(
                "SELinux is configured but not enabled in the running kernel (no selinuxfs)",
            )
            .expected(expected)
            .observed("disabled at run time")
            .sources(sources);
        };
        sources.push(now.source());
        if now.text().trim() != "1" {
            return Outcome::fail(
                "SELinux is configured enforcing but runs permissive (setenforce 0?)",
            )
            .expected(expected)
            .observed("permissive at run time")
            .sources(sources);
        }
    }
    Outcome::pass(format!("SELinux is enforcing ({CONFIG})"))
        .expected(expected)
        .observed("enforcing")
        .sources(sources)
}

fn apparmor(ctx: &Ctx<'_>) -> Outcome {
    let expected =
        "AppArmor installed, enabled at boot and not disabled on the kernel command line";
    let mut sources = Vec::new();
    let (pkg, psrc) = match package::installed(ctx, &["apparmor".to_string()]) {
        Ok(r) => r,
        Err(e) => return Outcome::error(e),
    };
    sources.extend(psrc);
    let Some(pkg) = pkg else {
        return Outcome::fail("the apparmor package is not installed")
            .expected(expected)
            .observed("not installed")
            .sources(sources);
    };
    sources.push(pkg.source);
    let (_, state) = host_try!(
        unit_state(ctx.host, &["apparmor.service".into()], &mut sources),
        sources
    );
    if !state.is_enabled() {
        return Outcome::fail(format!("apparmor.service is {}", state.describe()))
            .expected(expected)
            .observed(format!("apparmor.service {}", state.describe()))
            .sources(sources);
    }
    if let Some((arg, at)) = host_try!(
        kernel_arg(
            ctx,
            &[
                "apparmor=0",
                "security=selinux",
                "security=smack",
                "security=tomoyo"
            ],
            &mut sources
        ),
        sources
    ) {
        sources.push(at);
        return Outcome::fail(format!(
            "the kernel command line has {arg}, which turns AppArmor off"
        ))
        .expected(expected)
        .observed(arg)
        .sources(sources);
    }
    if ctx.is_live() {
        const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
        match host_try!(ctx.read(ENABLED), sources) {
            Some(f) if f.text().trim() == "Y" => sources.push(f.source()),
            other => {
                sources
                    .push(other.map_or_else(|| HostView::absent_source(ENABLED), |f| f.source()));
                return Outcome::fail("AppArmor is not enabled in the running kernel")
                    .expected(expected)
                    .observed("disabled at run time")
                    .sources(sources);
            }
        }
    }
    Outcome::pass(format!(
        "AppArmor is installed and apparmor.service is {}",
        state.describe()
    ))
    .expected(expected)
    .observed("enabled")
    .sources(sources)
}

impl Probe for MacProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        match self.framework {
            Framework::Selinux => selinux(ctx),
            Framework::Apparmor => apparmor(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run, run_files, wants};
    use crate::result::Status;

    const SELINUX: &str = r#"{ kind = "mac", framework = "selinux" }"#;
    const APPARMOR: &str = r#"{ kind = "mac", framework = "apparmor" }"#;
    // RHEL 9's /etc/selinux/config (selinux-policy 38.1), comments trimmed.
    const CONFIG: &str = "SELINUX=enforcing\nSELINUXTYPE=targeted\n";

    #[test]
    fn selinux_in_a_root() {
        let o = run_files(&[("/etc/selinux/config", CONFIG)], SELINUX);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let o = run_files(
            &[(
                "/etc/selinux/config",
                &CONFIG.replace("enforcing", "permissive"),
            )],
            SELINUX,
        );
        assert_eq!(
            (o.status, o.observed.as_deref()),
            (Status::Fail, Some("permissive"))
        );
        let o = run_files(
            &[
                ("/etc/selinux/config", CONFIG),
                (
                    "/etc/kernel/cmdline",
                    "root=UUID=1 ro crashkernel=1G-4G:192M selinux=0\n",
                ),
            ],
            SELINUX,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("selinux=0"), "{}", o.message);
        assert_eq!(run_files(&[], SELINUX).status, Status::Fail);
        // What grubby writes on RHEL 9, and a quoted GRUB line with a comment.
        for (path, text) in [
            (
                "/boot/loader/entries/0f3a-5.14.0-427.el9.x86_64.conf",
                "title Red Hat Enterprise Linux (5.14.0-427.el9.x86_64) 9.4 (Plow)\nversion 5.14.0-427.el9.x86_64\nlinux /vmlinuz-5.14.0-427.el9.x86_64\noptions root=/dev/mapper/rhel-root ro enforcing=0\n",
            ),
            (
                "/etc/default/grub",
                "export GRUB_CMDLINE_LINUX=\"crashkernel=1G-4G:192M rd.lvm.lv=rhel/root selinux=0\" # debugging\n",
            ),
            (
                "/boot/grub2/grubenv",
                "# GRUB Environment Block\nkernelopts=root=/dev/mapper/rhel-root ro selinux=0\n",
            ),
        ] {
            let o = run_files(&[("/etc/selinux/config", CONFIG), (path, text)], SELINUX);
            assert_eq!(o.status, Status::Fail, "{path}: {}", o.message);
            assert!(
                o.sources.iter().any(|s| s.path == path && s.line.is_some()),
                "{path}: {:?}",
                o.sources
            );
        }
    }

    #[test]
    fn grub_values_read_as_the_shell_reads_them() {
        assert_eq!(
            super::shell_value("\"quiet splash\" # note"),
            "quiet splash"
        );
        assert_eq!(super::shell_value("'a b'c"), "a bc");
        assert_eq!(
            super::shell_value("\"$GRUB_CMDLINE_LINUX apparmor=0\""),
            "$GRUB_CMDLINE_LINUX apparmor=0"
        );
        let args: Vec<String> = super::boot_args(
            "/etc/default/grub",
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet apparmor=0\" #x\nGRUB_TIMEOUT=5\n",
        )
        .into_iter()
        .map(|a| a.0)
        .collect();
        assert_eq!(args, ["quiet", "apparmor=0"]);
    }

    #[test]
    fn apparmor_in_a_root() {
        let status = "Package: apparmor\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.8-3\n\n";
        let (dir, view) = root(&[
            ("/var/lib/dpkg/status", status),
            (
                "/usr/lib/systemd/system/apparmor.service",
                "[Install]\nWantedBy=sysinit.target\n",
            ),
            (
                "/etc/default/grub",
                "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n",
            ),
        ]);
        assert_eq!(run(&view, APPARMOR).status, Status::Fail, "not enabled yet");
        wants(
            dir.path(),
            "sysinit.target",
            "/usr/lib/systemd/system/apparmor.service",
        );
        let o = run(&view, APPARMOR);
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        std::fs::write(
            dir.path().join("etc/default/grub"),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet apparmor=0\"\n",
        )
        .unwrap();
        let view = crate::host::HostView::root(dir.path()).unwrap();
        let o = run(&view, APPARMOR);
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("apparmor=0"), "{}", o.message);
    }
}
