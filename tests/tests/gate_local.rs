//! `annexa gate` on a build root: record a baseline, pass while nothing
//! drifts, fail naming the check and control when a fixture change flips a
//! check, report new and removed checks, gate on nonconformity against an
//! SoA, refuse bad input with exit 2, and emit JUnit and SARIF that validate
//! against their published schemas.

mod common;

use common::utf8 as s;

use std::path::Path;
use std::process::Output;

use annexa_tests::{hardened_root, permit_root, put};
use common::{show, stdout};
use serde_json::Value;

fn gate(root: &Path, args: &[&str]) -> Output {
    gate_env(root, args, &[])
}

/// [`gate`] with environment variables set.
fn gate_env(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let packs = root.join("no-extra-packs");
    let mut all = vec!["gate", "--root", s(root), "--packs", s(&packs)];
    all.extend_from_slice(args);
    common::annexa_env(&all, env)
}

/// A hardened root, with an (empty) extra pack directory so that the host's
/// /etc/annexa/checks.d never takes part.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    hardened_root(dir.path());
    std::fs::create_dir_all(dir.path().join("no-extra-packs")).unwrap();
    dir
}

#[test]
fn drift_from_a_recorded_baseline_fails_the_gate_with_the_check_and_control_named() {
    let dir = root();
    let out = tempfile::tempdir().unwrap();
    let baseline = out.path().join("baseline.json");

    let o = gate(dir.path(), &["--write-baseline", s(&baseline)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let b: Value = serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    assert_eq!(b["format"], "annexa/gate-baseline/v1");
    assert_eq!(b["checks"]["ssh.permit-root-login"]["status"], "pass");

    // Nothing changed: pass.
    let o = gate(dir.path(), &["--baseline", s(&baseline)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("annexa gate passed"), "{}", show(&o));

    // sshd lets root in now: drift, naming the check, its control, the
    // file and line, in every format.
    let (path, text) = permit_root();
    put(dir.path(), path, &text, 0o644);
    let (junit, sarif, md) = (
        out.path().join("gate.xml"),
        out.path().join("gate.sarif"),
        out.path().join("gate.md"),
    );
    let o = gate(
        dir.path(),
        &[
            "--baseline",
            s(&baseline),
            "--output",
            &format!("junit={}", s(&junit)),
            "--output",
            &format!("sarif={}", s(&sarif)),
            "--output",
            &format!("markdown={}", s(&md)),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = stdout(&o);
    assert!(text.contains("FAIL  drift"), "{text}");
    assert!(text.contains("ssh.permit-root-login drifted"), "{text}");
    assert!(
        text.contains("/etc/ssh/sshd_config.d/10-hardening.conf:1"),
        "{text}"
    );
    assert!(text.contains("controls 8.2"), "{text}");
    assert!(text.contains("annexa gate FAILED"), "{text}");
    assert_eq!(
        text.matches("FAIL ").count(),
        1,
        "exactly one check drifted: {text}"
    );

    // JUnit: valid against the Ant JUnit schema, the failing case named.
    let xml = common::junit_valid(&junit);
    assert!(
        xml.contains("<testcase name=\"ssh.permit-root-login\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("observed: yes"), "{xml}");

    // SARIF: valid against the 2.1.0 schema; one result with its rule and
    // the file and line it read.
    let doc = common::sarif_valid(&sarif);
    let run = &doc["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "ssh.permit-root-login");
    assert_eq!(results[0]["level"], "error");
    let loc = &results[0]["locations"][0]["physicalLocation"];
    assert_eq!(
        loc["artifactLocation"]["uri"],
        "etc/ssh/sshd_config.d/10-hardening.conf"
    );
    assert_eq!(loc["region"]["startLine"], 1);
    let rule = &run["tool"]["driver"]["rules"][0];
    assert_eq!(rule["properties"]["controls"][0], "8.2");
    assert!(!rule["help"]["text"].as_str().unwrap().is_empty());

    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("| FAIL | drift | `ssh.permit-root-login`"),
        "{md}"
    );

    // GitHub: an error annotation at the file and line, and the Markdown
    // summary appended to the step summary file.
    let summary = out.path().join("step-summary.md");
    let o = gate_env(
        dir.path(),
        &["--baseline", s(&baseline), "--format", "github"],
        &[("GITHUB_STEP_SUMMARY", &summary)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let annotations = stdout(&o);
    assert!(
        annotations.lines().any(|l| l.starts_with("::error ")
            && l.contains("10-hardening.conf,line=1")
            && l.contains("ssh.permit-root-login")),
        "{annotations}"
    );
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("ssh.permit-root-login")
    );

    // JSON for scripts.
    let o = gate(
        dir.path(),
        &["--baseline", s(&baseline), "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["failed"], true);
    assert_eq!(j["findings"][0]["kind"], "drift");
    assert_eq!(j["findings"][0]["was"], "pass");
    assert_eq!(j["findings"][0]["now"], "fail");
}

#[test]
fn new_and_removed_checks_are_reported_and_fail_only_when_asked() {
    let dir = root();
    let out = tempfile::tempdir().unwrap();
    let baseline = out.path().join("baseline.json");
    let o = gate(dir.path(), &["--write-baseline", s(&baseline)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let mut b: Value = serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    let checks = b["checks"].as_object_mut().unwrap();
    checks.remove("time.sync-daemon");
    checks.insert(
        "retired.check".into(),
        serde_json::json!({"status": "pass"}),
    );
    std::fs::write(&baseline, serde_json::to_vec_pretty(&b).unwrap()).unwrap();

    let o = gate(dir.path(), &["--baseline", s(&baseline)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = stdout(&o);
    assert!(
        text.contains("note  new") && text.contains("time.sync-daemon is new"),
        "{text}"
    );
    assert!(
        text.contains("note  removed") && text.contains("retired.check was in the baseline"),
        "{text}"
    );
    assert!(text.contains("1 new, 1 removed"), "{text}");

    let o = gate(
        dir.path(),
        &["--baseline", s(&baseline), "--fail-on", "removed"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stdout(&o).contains("FAIL  removed"), "{}", show(&o));
    let o = gate(
        dir.path(),
        &["--baseline", s(&baseline), "--fail-on", "new,removed"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
}

const SOA_2022: &str = include_str!("../../examples/soa/iso27001-2022.toml");

/// The example 2022 SoA with `ids` excluded.
fn excluding(ids: &[&str]) -> String {
    let mut soa = SOA_2022.to_string();
    for id in ids {
        let start = soa
            .find(&format!("id = \"{id}\"  #"))
            .expect("control in the example");
        let end = start
            + soa[start..]
                .find("\n\n")
                .expect("end of the control's block");
        soa.replace_range(
            start..end,
            &format!("id = \"{id}\"\napplicable = false\njustification = \"No interactive logins on this image (test).\""),
        );
    }
    soa
}

#[test]
fn nonconformity_against_an_soa_fails_only_for_applicable_controls() {
    let dir = root();
    let (path, text) = permit_root();
    put(dir.path(), path, &text, 0o644);
    let out = tempfile::tempdir().unwrap();
    let applies = out.path().join("applies.toml");
    std::fs::write(&applies, SOA_2022).unwrap();
    let o = gate(
        dir.path(),
        &["--soa", s(&applies), "--fail-on", "nonconformant"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stdout(&o).contains("FAIL  nonconformant ssh.permit-root-login fails"),
        "{}",
        show(&o)
    );

    // The controls it gives evidence for excluded: the same failure no
    // longer counts.
    let excluded = out.path().join("excluded.toml");
    std::fs::write(&excluded, excluding(&["8.2", "8.5"])).unwrap();
    let o = gate(
        dir.path(),
        &["--soa", s(&excluded), "--fail-on", "nonconformant"],
    );
    assert!(
        !stdout(&o).contains("ssh.permit-root-login"),
        "{}",
        show(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn the_gate_never_passes_when_it_could_not_decide() {
    let dir = root();
    let out = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = {
        let bad = out.path().join("bad.json");
        std::fs::write(
            &bad,
            "{\n  \"format\": \"annexa/gate-baseline/v1\",\n  \"checks\": [\n",
        )
        .unwrap();
        let other = out.path().join("other.json");
        std::fs::write(&other, "{\"format\": \"something/else\", \"recorded_at\": \"x\", \"annexa_version\": \"1\", \"packs\": [], \"checks\": {}}").unwrap();
        let soa = out.path().join("soa.toml");
        std::fs::write(&soa, "[soa]\nedition = \"2022\"\n[[control]]\nid = \"9.99\"\napplicable = true\njustification = \"x\"\n").unwrap();
        vec![
            (vec![], "nothing to gate on"),
            (vec!["--baseline".into(), s(&bad).into()], "bad.json:3:12"),
            (
                vec!["--baseline".into(), s(&other).into()],
                "format `something/else`",
            ),
            (
                vec![
                    "--baseline".into(),
                    s(&out.path().join("missing.json")).into(),
                ],
                "missing.json",
            ),
            (
                vec![
                    "--soa".into(),
                    s(&soa).into(),
                    "--fail-on".into(),
                    "nonconformant".into(),
                ],
                "9.99",
            ),
            (
                vec![
                    "--fail-on".into(),
                    "nonconformant".into(),
                    "--output".into(),
                    "pdf=x.pdf".into(),
                ],
                "not one of",
            ),
        ]
    };
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = gate(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert!(common::stderr(&o).contains(want), "{args:?}: {}", show(&o));
    }
    let o = common::annexa(&[
        "gate",
        "--root",
        s(&out.path().join("nope")),
        "--fail-on",
        "nonconformant",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}
