//! The `annexa` command line: exit codes, formats, help, and root scans.

use std::path::Path;
use std::process::{Command, Output};

fn annexa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn root_with_sshd(config: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "/etc/os-release",
        "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    write(d.path(), "/etc/hostname", "golden\n");
    write(d.path(), "/etc/ssh/sshd_config", config);
    d
}

#[test]
fn exit_codes_follow_the_verdicts() {
    let good = root_with_sshd("ClientAliveInterval 300\n");
    let bad = root_with_sshd("ClientAliveInterval 0\n");
    let root = |d: &tempfile::TempDir| d.path().to_str().unwrap().to_string();
    let o = annexa(&[
        "scan",
        "--root",
        &root(&good),
        "--check",
        "ssh.client-alive-interval",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let o = annexa(&[
        "scan",
        "--root",
        &root(&bad),
        "--check",
        "ssh.client-alive-interval",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("FAIL  ssh.client-alive-interval"),
        "{}",
        text(&o.stdout)
    );
    assert!(text(&o.stdout).contains("at /etc/ssh/sshd_config:1"));
    // The threshold is a parameter.
    let o = annexa(&[
        "scan",
        "--root",
        &root(&good),
        "--check",
        "ssh.client-alive-interval",
        "--param",
        "session_timeout_seconds=120",
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn usage_and_configuration_errors_exit_2_with_a_clear_message() {
    let good = root_with_sshd("ClientAliveInterval 300\n");
    let r = good.path().to_str().unwrap();
    let o = annexa(&["scan", "--root", r, "--check", "ssh.client-alive-intervall"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(
            "unknown check `ssh.client-alive-intervall`; closest: ssh.client-alive-interval"
        ),
        "{}",
        text(&o.stderr)
    );
    let o = annexa(&[
        "scan",
        "--root",
        r,
        "--control",
        "A.11.5.9",
        "--edition",
        "2005",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not a control of ISO/IEC 27001:2005"));
    let o = annexa(&[
        "scan",
        "--root",
        r,
        "--control",
        "A.5.1.1",
        "--edition",
        "2005",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no loaded check gives evidence for A.5.1.1"),
        "{}",
        text(&o.stderr)
    );
    let o = annexa(&["scan", "--root", "/no/such/root"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("root directory /no/such/root"));
    let o = annexa(&["scan", "--param", "nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    let o = annexa(&["scan", "--format", "yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let packs = tempfile::tempdir().unwrap();
    write(
        packs.path(),
        "/bad.toml",
        "[pack]\nid = \"x\"\ntitle = \"t\"\nversion = \"1\"\n[[check]]\nid = \"x.y\"\n",
    );
    let o = annexa(&[
        "scan",
        "--root",
        r,
        "--packs",
        packs.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.toml:5") && err.contains("missing field"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing is scanned with a broken pack");
}

#[test]
fn selection_by_control_in_any_edition() {
    let good = root_with_sshd("ClientAliveInterval 300\nClientAliveCountMax 2\n");
    let r = good.path().to_str().unwrap();
    let o = annexa(&[
        "scan",
        "--root",
        r,
        "--control",
        "A.11.5.5",
        "--edition",
        "2005",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["check_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"session.shell-tmout")
            && ids.contains(&"ssh.client-alive-interval")
            && ids.contains(&"session.logind-idle"),
        "{ids:?}"
    );
    assert!(!ids.contains(&"kernel.aslr"));
}

#[test]
fn json_report_carries_digests_controls_and_sources() {
    let d = root_with_sshd("ClientAliveInterval 300\n");
    let o = annexa(&[
        "scan",
        "--root",
        d.path().to_str().unwrap(),
        "--format",
        "json",
        "--check",
        "ssh.client-alive-interval",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["schema"], "annexa.scan/v1");
    assert_eq!(report["target"]["mode"], "root");
    assert_eq!(report["host"]["hostname"], "golden");
    let r = &report["results"][0];
    assert_eq!(r["status"], "pass");
    assert_eq!(r["controls"]["2005"][0], "A.11.5.5");
    assert_eq!(r["controls"]["2013"][0], "A.9.4.2");
    assert_eq!(r["controls"]["2022"][0], "8.5");
    assert!(r["pack"]["digest"].as_str().unwrap().starts_with("sha256:"));
    let src = r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["line"] == 1)
        .unwrap();
    assert_eq!(src["path"], "/etc/ssh/sshd_config");
    assert_eq!(src["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn junit_is_well_formed_with_one_case_per_check() {
    let d = root_with_sshd("ClientAliveInterval 0\n");
    let o = annexa(&[
        "scan",
        "--root",
        d.path().to_str().unwrap(),
        "--format",
        "junit",
        "--control",
        "A.11.5.5",
        "--edition",
        "2005",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let xml = text(&o.stdout);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut depth_ok) = (0, 0, true);
    let mut depth = 0i32;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) => {
                depth += 1;
                if e.name().0 == "testcase" {
                    cases += 1;
                }
                if e.name().0 == "failure" {
                    failures += 1;
                }
            }
            quick_xml::events::Event::Empty(e) if e.name().0 == "testcase" => cases += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        depth_ok &= depth >= 0;
    }
    assert!(depth_ok && depth == 0);
    assert_eq!(cases, 4, "{xml}");
    assert!(failures >= 2, "{xml}");
    assert!(
        xml.contains("testsuite name=\"A.11.5.5 Session time-out\""),
        "{xml}"
    );
    assert!(xml.contains("expected: between 1 and 900"), "{xml}");
}

#[test]
fn text_output_has_no_colour_off_a_terminal_and_a_summary_line() {
    let d = root_with_sshd("ClientAliveInterval 0\n");
    let o = Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(["scan", "--root", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(!out.contains('\x1b'));
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("74 checks: ") || last.contains(" checks: "),
        "{last}"
    );
    // Failures come first: the first group listed has a failure.
    let first_group = out.lines().nth(2).unwrap();
    assert!(first_group.contains("fail"), "{first_group}");
}

#[test]
fn a_symlink_pointing_outside_the_root_is_not_followed_out() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "/evil.conf", "ClientAliveInterval 300\n");
    let d = root_with_sshd("");
    let link = d.path().join("etc/ssh/sshd_config");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(outside.path().join("evil.conf"), &link).unwrap();
    let o = annexa(&[
        "scan",
        "--root",
        d.path().to_str().unwrap(),
        "--check",
        "ssh.client-alive-interval",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The link's target does not exist inside the root, so there is no sshd configuration.
    assert_eq!(report["results"][0]["status"], "not_applicable", "{report}");
}

#[test]
fn controls_list_and_map() {
    for (edition, count) in [("2005", 133), ("2013", 114), ("2022", 93)] {
        let o = annexa(&["controls", "list", "--edition", edition]);
        assert!(text(&o.stdout).contains(&format!("{count} controls in ISO/IEC 27001:{edition}")));
    }
    let o = annexa(&["controls", "map", "A.11.5.5", "--to", "2022"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(
        out.contains("8.5") && out.contains("Secure authentication"),
        "{out}"
    );
    let o = annexa(&["controls", "map", "A.11.5.5"]);
    let out = text(&o.stdout);
    assert!(
        out.contains("2013  A.9.4.2   Secure log-on procedures") && out.contains("2022  8.5"),
        "{out}"
    );
    let o = annexa(&["controls", "map", "A.11.5.9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("closest"));
    let o = annexa(&["controls", "list", "--edition", "2017"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_is_available_for_every_command() {
    for args in [
        &["--help"][..],
        &["scan", "--help"],
        &["controls", "--help"],
        &["controls", "list", "--help"],
        &["controls", "map", "--help"],
        &["checks", "list", "--help"],
    ] {
        let o = annexa(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(text(&o.stdout).contains("Usage:"), "{args:?}");
    }
    let o = annexa(&["scan", "--help"]);
    let help = text(&o.stdout);
    for flag in [
        "--root",
        "--packs",
        "--check",
        "--control",
        "--edition",
        "--format",
        "--param",
        "--no-builtin",
        "--output",
    ] {
        assert!(help.contains(flag), "scan --help lacks {flag}");
    }
    assert!(help.contains("Exit status"));
}

#[test]
fn person_keygen_makes_a_private_key_once_and_show_prints_its_public_half() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_annexa"))
            .args(args)
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    };
    let made = run(&["person", "keygen"]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let key = home.path().join(".config/annexa/person.key");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    let public = text(&made.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("public key: ").map(str::to_string))
        .unwrap();
    assert_eq!(public.len(), 44, "{public}");
    assert!(text(&made.stdout).contains("never the key file"));
    // Never replaced: the same key is shown afterwards.
    let before = std::fs::read(&key).unwrap();
    let again = run(&["person", "keygen"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let shown = run(&["person", "show"]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    assert!(text(&shown.stdout).contains(&format!("public key: {public}")));
    // A key readable by others is refused, naming the file.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = run(&["person", "show", "--key", key.to_str().unwrap()]);
    assert_eq!(exposed.status.code(), Some(2));
    assert!(
        text(&exposed.stderr).contains(key.to_str().unwrap()),
        "{}",
        text(&exposed.stderr)
    );
    let other = home.path().join("elsewhere/p.key");
    let made = run(&["person", "keygen", "--key", other.to_str().unwrap()]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    assert_eq!(mode(&other), 0o600);
}
