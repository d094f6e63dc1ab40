//! End to end: the real `annexa` binary scans a golden-image root directory
//! as CI would, and every verdict can be re-checked from the bytes it names.

use std::path::PathBuf;
use std::process::{Command, Output};

use annexa_tests::{ROOT_OWNED_CHECKS, hardened_root, permit_root, put};

/// The `annexa` binary built by `cargo test --workspace` next to this test.
fn annexa_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = dir.join("annexa");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test --workspace` (it builds the agent binary)",
        bin.display()
    );
    bin
}

fn scan(root: &std::path::Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(annexa_bin())
        .args(["scan", "--root", root.to_str().unwrap(), "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out, report)
}

fn failing(report: &serde_json::Value) -> Vec<String> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "fail" || r["status"] == "error")
        .map(|r| {
            format!(
                "{}: {}",
                r["check_id"].as_str().unwrap(),
                r["message"].as_str().unwrap()
            )
        })
        .collect()
}

fn running_as_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
}

#[test]
fn a_hardened_image_passes_every_check_that_can_be_judged_from_files() {
    let dir = tempfile::tempdir().unwrap();
    hardened_root(dir.path());
    let (out, report) = scan(dir.path(), &[]);
    let mut bad = failing(&report);
    if !running_as_root() {
        // Fixture files belong to the user running the tests; sudo policy
        // files must be root's.
        bad.retain(|b| {
            !ROOT_OWNED_CHECKS
                .iter()
                .any(|c| b.starts_with(&format!("{c}:")))
        });
    }
    assert!(bad.is_empty(), "unexpected failures:\n{}", bad.join("\n"));
    if running_as_root() {
        assert_eq!(out.status.code(), Some(0));
    }
    assert_eq!(report["target"]["mode"], "root");
    let na: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "not_applicable")
        .map(|r| r["check_id"].as_str().unwrap())
        .collect();
    // Exactly the checks that need a running system (last logins, LUKS
    // headers, host keys made on first boot, RAID state, services running),
    // those for what a server image does not have (a desktop, a back-up
    // tool, a login account with a home), and those written for the RHEL
    // family only, do not apply to a Debian server image.
    assert_eq!(
        na,
        [
            "accounts.dormant",
            "accounts.home-permissions",
            "accounts.ssh-dir-permissions",
            "crypto.luks-cipher",
            "desktop.screen-lock-idle",
            "desktop.screen-lock-enabled",
            "desktop.screen-lock-delay",
            "media.automount-off",
            "media.autorun-never",
            "audit.auditd-active",
            "time.kernel-synchronized",
            "firewall.loaded",
            "patching.dnf-automatic-installed",
            "patching.dnf-automatic-timer",
            "patching.dnf-automatic-apply",
            "backup.job-scheduled",
            "backup.recent",
            "redundancy.raid-healthy",
            "redundancy.raid-monitored",
            "monitoring.agent-active",
            "ssh.host-key-strength",
            "ssh.host-key-permissions",
            "capacity.disk-usage",
            "capacity.memory-available",
            "crypto.policy-not-legacy"
        ]
    );
    for r in report["results"].as_array().unwrap() {
        if r["check_id"].as_str().unwrap().starts_with("patching.dnf-") {
            assert!(
                r["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("no variant for platform debian12; this check is for rhel"),
                "{r}"
            );
        }
    }
    assert_eq!(report["host"]["family"], "debian");
    assert_eq!(report["host"]["platform"], "debian12");
}

#[test]
fn every_file_source_digest_matches_the_bytes_in_the_root() {
    let dir = tempfile::tempdir().unwrap();
    hardened_root(dir.path());
    let (_, report) = scan(dir.path(), &[]);
    let mut checked = 0;
    for r in report["results"].as_array().unwrap() {
        for s in r["sources"].as_array().unwrap() {
            if s["kind"] == "file" {
                let path = dir
                    .path()
                    .join(s["path"].as_str().unwrap().trim_start_matches('/'));
                let bytes = std::fs::read(&path).unwrap();
                let want = ring::digest::digest(&ring::digest::SHA256, &bytes);
                let want: String = want.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(s["sha256"].as_str().unwrap(), want, "{}", path.display());
                if let Some(line) = s["line"].as_u64() {
                    let lines = String::from_utf8_lossy(&bytes).lines().count() as u64;
                    assert!(
                        line >= 1 && line <= lines.max(1),
                        "{} line {line}",
                        path.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} file sources");
}

#[test]
fn breaking_one_setting_fails_exactly_the_check_for_it() {
    let permit_root = permit_root();
    let cases: &[(&str, &str, u32, &str)] = &[
        (
            permit_root.0,
            &permit_root.1,
            0o644,
            "ssh.permit-root-login",
        ),
        (
            "/etc/profile.d/tmout.sh",
            "TMOUT=900\nexport TMOUT\n",
            0o644,
            "session.shell-tmout",
        ),
        (
            "/etc/sudoers.d/ci",
            "ci ALL=(ALL) NOPASSWD: ALL\n",
            0o440,
            "privileges.sudo-no-nopasswd",
        ),
        (
            "/etc/chrony/sources.d/corp.sources",
            "# no servers\n",
            0o644,
            "time.sync-daemon",
        ),
        (
            "/var/lib/apt/lists/mirror.example_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
            "Package: openssl\nVersion: 3.0.17-1~deb12u2\nArchitecture: amd64\n",
            0o644,
            "patching.no-pending-security-updates",
        ),
        ("/var/log/syslog", "", 0o644, "logging.var-log-permissions"),
        (
            "/etc/audit/rules.d/99-finalize.rules",
            "-e 1\n",
            0o640,
            "audit.immutable",
        ),
        ("/etc/hosts.equiv", "+\n", 0o644, "network.no-hosts-equiv"),
    ];
    for (path, content, mode, check) in cases {
        let dir = tempfile::tempdir().unwrap();
        hardened_root(dir.path());
        put(dir.path(), path, content, *mode);
        let (out, report) = scan(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{check}");
        let mut bad: Vec<String> = failing(&report)
            .into_iter()
            .map(|b| b.split(':').next().unwrap().to_string())
            .collect();
        if !running_as_root() {
            bad.retain(|b| !ROOT_OWNED_CHECKS.contains(&b.as_str()));
        }
        assert_eq!(bad, [check.to_string()], "after changing {path}");
    }
}

#[test]
fn an_explicit_pack_directory_that_is_missing_is_an_error_not_an_empty_scan() {
    let dir = tempfile::tempdir().unwrap();
    hardened_root(dir.path());
    let out = Command::new(annexa_bin())
        .args([
            "scan",
            "--root",
            dir.path().to_str().unwrap(),
            "--packs",
            "/nonexistent-annexa-test-dir",
            "--no-builtin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-annexa-test-dir"));
    assert!(out.stdout.is_empty());
}
