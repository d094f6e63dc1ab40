//! End to end: the real `annexa` binary scans a good and a bad root of each
//! family it supports beside Debian: RHEL 9 (and Rocky 9) with an rpm
//! database written by rpm itself and dnf's cache made by createrepo_c, and
//! Ubuntu 24.04 and 22.04. Every check's verdict is the one the root was
//! made to give (tests/fixtures/roots/SOURCES.md says how each file was
//! made and where its content comes from).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn annexa_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join("annexa");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test --workspace` (it builds the agent binary)",
        bin.display()
    );
    bin
}

/// Builds a fixture root with tests/fixtures/roots/build.sh (rpm, rpmbuild,
/// createrepo_c and modifyrepo_c for the RHEL family; tests/run.sh installs
/// them).
fn build(platform: &str, variant: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/roots/build.sh");
    let out = Command::new(&script)
        .args([platform, variant, root.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {platform} {variant}: {}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, root)
}

fn scan_with(root: &Path, cmd: &mut Command) -> serde_json::Value {
    let out = cmd
        .args(["scan", "--root", root.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn scan(root: &Path) -> serde_json::Value {
    scan_with(root, &mut Command::new(annexa_bin()))
}

fn verdicts(report: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["check_id"].as_str().unwrap().to_string(),
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["message"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn running_as_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
}

/// Checks that need a running system: not applicable to any root.
const LIVE_ONLY: [&str; 5] = [
    "audit.auditd-active",
    "time.kernel-synchronized",
    "firewall.loaded",
    "capacity.disk-usage",
    "capacity.memory-available",
];
const RHEL_ONLY: [&str; 4] = [
    "patching.dnf-automatic-installed",
    "patching.dnf-automatic-timer",
    "patching.dnf-automatic-apply",
    "crypto.policy-not-legacy",
];
const DEBIAN_ONLY: [&str; 3] = [
    "patching.unattended-upgrades-installed",
    "patching.unattended-upgrades-enabled",
    "changes.package-log-kept",
];
/// Checks that no root directory can answer: last logins, LUKS headers,
/// host keys (made on first boot), RAID state; and what a server image
/// has none of (a desktop, a login account with its home).
const ROOT_NA: [&str; 12] = [
    "accounts.dormant",
    "accounts.home-permissions",
    "accounts.ssh-dir-permissions",
    "crypto.luks-cipher",
    "desktop.screen-lock-idle",
    "desktop.screen-lock-enabled",
    "desktop.screen-lock-delay",
    "media.automount-off",
    "media.autorun-never",
    "redundancy.raid-healthy",
    "ssh.host-key-strength",
    "ssh.host-key-permissions",
];
/// The good roots enable a monitoring agent; whether it runs is for a
/// live host (the bad roots have none, and fail).
const GOOD_NA: [&str; 1] = ["monitoring.agent-active"];
/// The Ubuntu roots have no back-up tool and no RAID.
const UBUNTU_NA: [&str; 3] = [
    "backup.job-scheduled",
    "backup.recent",
    "redundancy.raid-monitored",
];

/// Settings of PAM modules the bad roots do not call: no effect there
/// (the checks that the modules are called fail instead).
const BAD_UNUSED: [&str; 2] = ["passwords.quality-minlen", "login.lockout-threshold"];

/// Checks the bad roots were not made to break (the setting is the
/// distribution's own safe default, or the bad root keeps it): they pass.
const BAD_RHEL_PASSES: [&str; 23] = [
    "network.icmp-broadcasts-ignored",
    "network.bogus-icmp-ignored",
    "network.ipv6-no-source-routing",
    "kernel.protected-hardlinks",
    "kernel.protected-symlinks",
    // Unowned files need root to make (chown to an unknown id).
    "files.all-owned",
    "accounts.unique-names",
    "accounts.unique-gids",
    "accounts.shadowed",
    "passwords.warn-age",
    "passwords.encrypt-method",
    "privileges.sudo-no-grant-to-all",
    "audit.auditd-installed",
    "audit.auditd-enabled",
    "audit.log-directory",
    "network.no-source-routing",
    "network.tcp-syncookies",
    "ssh.client-alive-count-max",
    "ssh.permit-empty-passwords",
    "ssh.hostbased-authentication",
    "ssh.ignore-rhosts",
    "inventory.host-facts",
    "kernel.aslr",
];
const BAD_UBUNTU_PASSES: [&str; 28] = [
    "logging.rsyslog-file-mode",
    "network.icmp-broadcasts-ignored",
    "network.bogus-icmp-ignored",
    "network.ipv6-no-source-routing",
    "kernel.protected-hardlinks",
    "kernel.protected-symlinks",
    "files.all-owned",
    "accounts.unique-names",
    "accounts.unique-gids",
    "accounts.shadowed",
    "passwords.warn-age",
    "passwords.encrypt-method",
    "privileges.sudo-no-grant-to-all",
    "privileges.sudo-use-pty",
    "privileges.sudoers-permissions",
    "audit.auditd-installed",
    "audit.auditd-enabled",
    "audit.log-directory",
    "logging.journald-persistent",
    "network.no-source-routing",
    "network.tcp-syncookies",
    "ssh.client-alive-count-max",
    "ssh.permit-empty-passwords",
    "ssh.hostbased-authentication",
    "ssh.ignore-rhosts",
    "inventory.host-facts",
    "kernel.aslr",
    "kernel.no-suid-core-dumps",
];

/// Asserts every verdict: `na` not applicable, `passes` pass, every other
/// check `pass` when `good` and `fail` otherwise; never `error`.
fn assert_verdicts(
    label: &str,
    report: &serde_json::Value,
    good: bool,
    na: &[&str],
    passes: &[&str],
) {
    let mut wrong = Vec::new();
    for (id, (status, message)) in verdicts(report) {
        // Fixture files belong to whoever built them; some checks want root's.
        let owner_check = annexa_tests::ROOT_OWNED_CHECKS.contains(&id.as_str());
        let want = if na.contains(&id.as_str()) {
            "not_applicable"
        } else if good || passes.contains(&id.as_str()) {
            if owner_check && !running_as_root() {
                continue;
            }
            "pass"
        } else {
            "fail"
        };
        if status != want {
            wrong.push(format!("{id}: {status} (want {want}): {message}"));
        }
    }
    assert!(wrong.is_empty(), "{label}:\n{}", wrong.join("\n"));
}

#[test]
fn rhel_family_roots_give_the_verdicts_they_were_made_to_give() {
    let na: Vec<&str> = LIVE_ONLY
        .iter()
        .chain(&DEBIAN_ONLY)
        .chain(&ROOT_NA)
        .copied()
        .collect();
    let good_na: Vec<&str> = na.iter().chain(&GOOD_NA).copied().collect();
    for (platform, name) in [("rhel9", "rhel9.4"), ("rocky9", "rocky9.4")] {
        let (_g, good) = build(platform, "good");
        let report = scan(&good);
        assert_eq!(report["host"]["family"], "rhel");
        assert_eq!(report["host"]["platform"], name);
        assert_verdicts(&format!("{platform} good"), &report, true, &good_na, &[]);
        let v = verdicts(&report);
        assert!(
            v["patching.pending-updates"]
                .1
                .contains("2 updates pending (0 security) per dnf repository metadata"),
            "{:?}",
            v["patching.pending-updates"]
        );
        let (_b, bad) = build(platform, "bad");
        let report = scan(&bad);
        let bad_na: Vec<&str> = na.iter().chain(&BAD_UNUSED).copied().collect();
        assert_verdicts(
            &format!("{platform} bad"),
            &report,
            false,
            &bad_na,
            &BAD_RHEL_PASSES,
        );
        let security = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check_id"] == "patching.no-pending-security-updates")
            .unwrap();
        let observed = security["observed"].as_str().unwrap();
        assert!(observed.starts_with("33 pending, 3 security"), "{observed}");
        assert!(
            observed.contains("(Important)") && observed.contains("(Moderate)"),
            "{observed}"
        );
    }
}

#[test]
fn ubuntu_roots_give_the_verdicts_they_were_made_to_give() {
    let na: Vec<&str> = LIVE_ONLY
        .iter()
        .chain(&RHEL_ONLY)
        .chain(&ROOT_NA)
        .chain(&UBUNTU_NA)
        .copied()
        .collect();
    let good_na: Vec<&str> = na.iter().chain(&GOOD_NA).copied().collect();
    for (platform, name) in [("ubuntu2404", "ubuntu24.04"), ("ubuntu2204", "ubuntu22.04")] {
        let (_g, good) = build(platform, "good");
        let report = scan(&good);
        assert_eq!(report["host"]["family"], "debian");
        assert_eq!(report["host"]["platform"], name);
        assert_verdicts(&format!("{platform} good"), &report, true, &good_na, &[]);
        let (_b, bad) = build(platform, "bad");
        let report = scan(&bad);
        let bad_na: Vec<&str> = na.iter().chain(&BAD_UNUSED).copied().collect();
        assert_verdicts(
            &format!("{platform} bad"),
            &report,
            false,
            &bad_na,
            &BAD_UBUNTU_PASSES,
        );
        let v = verdicts(&report);
        assert!(
            v["patching.no-pending-security-updates"]
                .1
                .contains("3 security updates pending"),
            "the -security pocket and ESM count: {:?}",
            v["patching.no-pending-security-updates"]
        );
    }
}

/// The root's rpm database is read, not the scanning host's, and without
/// rpm: with no program on PATH and no home directory the scan gives the
/// same verdicts, and its package count is what rpm itself lists in the
/// root.
#[test]
fn the_rpm_database_is_read_from_the_root_without_the_hosts_rpm() {
    let (_d, root) = build("rhel9", "good");
    let normal = scan(&root);
    let bare = scan_with(
        &root,
        Command::new(annexa_bin())
            .env_clear()
            .env("PATH", "/nonexistent")
            .env("HOME", "/nonexistent"),
    );
    assert_eq!(verdicts(&normal), verdicts(&bare));
    let listed = Command::new("rpm")
        .args([
            "--root",
            root.to_str().unwrap(),
            "--dbpath",
            "/var/lib/rpm",
            "-qa",
        ])
        .output()
        .expect("rpm (tests/run.sh installs it)");
    let rpm_count = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| !l.starts_with("gpg-pubkey-"))
        .count();
    assert!(rpm_count > 50);
    assert_eq!(normal["host"]["packages"], rpm_count);
}

/// Bad input in a root: a truncated rpm database, RHEL 8's Berkeley DB, an
/// os-release with broken quoting. Each is an `error` or `not_applicable`
/// that names the file; no check passes on what it could not read.
#[test]
fn broken_databases_and_os_release_are_named_never_passed() {
    let (_d, root) = build("rhel9", "good");
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let v = verdicts(&scan(&root));
    for id in [
        "audit.auditd-installed",
        "time.sync-daemon",
        "firewall.configured",
        "patching.pending-updates",
    ] {
        let (status, message) = &v[id];
        assert_eq!(status, "error", "{id}: {message}");
        assert!(
            message.contains("/var/lib/rpm/rpmdb.sqlite"),
            "{id}: {message}"
        );
    }

    std::fs::remove_file(&db).unwrap();
    std::fs::write(root.join("var/lib/rpm/Packages"), vec![0u8; 8192]).unwrap();
    let v = verdicts(&scan(&root));
    let (status, message) = &v["network.no-telnet-server"];
    assert_eq!(status, "error");
    assert!(
        message.contains("/var/lib/rpm/Packages: an rpm database in Berkeley DB"),
        "{message}"
    );

    // A broken line the platform is not made of: the checks run, the
    // inventory says what is wrong.
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Red Hat Enterprise Linux\nID=\"rhel\"\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
    let report = scan(&root);
    assert_eq!(report["host"]["platform"], "rhel9.4");
    let v = verdicts(&report);
    let (status, message) = &v["inventory.host-facts"];
    assert_eq!(status, "error");
    assert!(
        message.contains("/etc/os-release: line 1: NAME: unterminated double quote"),
        "{message}"
    );
    assert_eq!(v["crypto.policy-not-legacy"].0, "pass");

    // A broken ID: which probe applies is unknown, an error for every check
    // written for particular platforms; none of them passes.
    std::fs::write(
        root.join("etc/os-release"),
        "ID=\"rhel\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
    let report = scan(&root);
    assert_eq!(report["host"]["platform"], "unknown");
    let v = verdicts(&report);
    let (status, message) = &v["mac.enforcing"];
    assert_eq!(status, "error");
    assert!(
        message.contains("/etc/os-release: line 1: ID: unterminated double quote"),
        "{message}"
    );
    let bound = [
        "patching.",
        "mac.",
        "crypto.policy-not-legacy",
        "crypto.tls-min-protocol",
        "time.sync",
        "firewall.configured",
        "malware.",
        "integrity.aide-installed",
        "software.",
        "boot.grub-config-permissions",
        "audit.mac-policy-changes",
        "network.no-t",
        "network.no-r",
        "audit.auditd-installed",
        "login.failed",
        "passwords.quality-enforced",
    ];
    for (id, (status, _)) in &v {
        if bound.iter().any(|b| id.starts_with(b)) {
            assert_eq!(
                status, "error",
                "{id} on a platform that cannot be identified"
            );
        }
    }

    // No os-release at all: a platform nobody knows, not applicable. (On
    // RHEL /etc/os-release is a link to /usr/lib/os-release.)
    std::fs::remove_file(root.join("etc/os-release")).unwrap();
    let _ = std::fs::remove_file(root.join("usr/lib/os-release"));
    let v = verdicts(&scan(&root));
    let (status, message) = &v["mac.enforcing"];
    assert_eq!(status, "not_applicable");
    assert!(
        message.starts_with("no variant for platform unknown; this check is for debian, rhel"),
        "{message}"
    );
}
