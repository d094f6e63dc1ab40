//! `annexa gate` against a real collector over TLS: two agents whose
//! checked files change between runs, the drift API with the envelopes that
//! caused each change, the gate failing on (host, control) drift since a
//! time or since a signed baseline report, on a conformant share below a
//! threshold, with JUnit and SARIF that validate; and exit 2 with a clear
//! message for a wrong token, an unreachable collector, a tampered report
//! and bad input.

mod common;

use common::utf8 as s;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Collector, Host, show, soa_with_marker, stderr, stdout};
use serde_json::Value;

struct Fleet {
    c: Collector,
    web: Host,
    db: Host,
    db_marker: PathBuf,
    dir: tempfile::TempDir,
    token_file: PathBuf,
    key_file: PathBuf,
}

/// Two prod agents (role web and db), each with its own marker file: the
/// check of A.12.4.1 passes while the file exists.
fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let packs = common::collector_packs(&dir.path().join("packs"), &dir.path().join("marker"));
    let c = Collector::start_with(&format!("{packs}conformity_sweep_seconds = 1\n"));
    c.import_soa(&soa_with_marker());
    let mut hosts = Vec::new();
    for role in ["web", "db"] {
        let h = Host::enrolled(
            &c,
            &format!("[labels]\nenv = \"prod\"\nrole = \"{role}\"\n"),
        );
        let marker = dir.path().join(format!("{role}.marker"));
        std::fs::write(&marker, "").unwrap();
        h.add_pack(&common::marker_pack(&marker));
        h.run_once_ok();
        hosts.push(h);
    }
    let (key_file, token_file) = common::auditor_files(&c, dir.path());
    let db = hosts.pop().unwrap();
    let web = hosts.pop().unwrap();
    Fleet {
        c,
        web,
        db,
        db_marker: dir.path().join("db.marker"),
        dir,
        token_file,
        key_file,
    }
}

impl Fleet {
    /// `annexa gate --server … --ca … --token-file … ARGS`.
    fn gate(&self, args: &[&str]) -> Output {
        self.gate_env(args, &[])
    }

    /// [`Fleet::gate`] with environment variables set.
    fn gate_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        common::annexa_api(
            &["gate"],
            &self.c.url(),
            &self.c.ca_path(),
            &self.token_file,
            args,
            env,
        )
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn drift(&self, query: &str) -> Value {
        let r = self.c.request(
            "GET",
            &format!("/v1/drift?{query}"),
            Some(&self.c.admin),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn the_gate_fails_on_fleet_drift_with_the_host_control_and_envelope_named() {
    let f = fleet();
    let (web, db) = (f.web.agent_id(), f.db.agent_id());
    let t0 = common::a_moment_later();

    // Nothing changed since t0: the gate passes, JUnit has a passing case
    // per (host, control) of A.12.4.1.
    let junit = f.out("pass.xml");
    let o = f.gate(&[
        "--since",
        &t0,
        "--selector",
        "env=prod",
        "--control",
        "A.12.4.1",
        "--output",
        &format!("junit={}", s(&junit)),
    ]);
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("annexa gate passed: 2 hosts, 1 controls"),
        "{}",
        show(&o)
    );
    let xml = common::junit_valid(&junit);
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 0, "{xml}");

    // A signed report at this moment, for the baseline-report mode.
    let report = f.out("baseline.json");
    let o = common::pull_report(
        &f.c,
        &f.token_file,
        &report,
        &["--scope", "env=prod", "--control", "A.12.4.1"],
    );
    assert_eq!(code(&o), Some(0), "report pull: {}", show(&o));
    let _ = common::a_moment_later();

    // The db host's checked file goes away: its next run fails the check.
    std::fs::remove_file(&f.db_marker).unwrap();
    f.db.run_once(&[]);
    let envelope = f.c.evidence(&db).last().cloned().unwrap();
    assert_eq!(envelope["sequence"], 2);

    // The drift API names the change and the envelope that caused it.
    let d = f.drift(&format!("from={t0}&controls=A.12.4.1"));
    assert_eq!(d["format"], "annexa/drift/v1");
    assert_eq!(d["live"], true);
    let changes = d["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{d:#}");
    let ch = &changes[0];
    assert_eq!(
        (
            ch["host"].as_str(),
            ch["control"].as_str(),
            ch["kind"].as_str()
        ),
        (Some(db.as_str()), Some("A.12.4.1"), Some("drift"))
    );
    assert_eq!(
        (ch["before"].as_str(), ch["after"].as_str()),
        (Some("conformant"), Some("nonconformant"))
    );
    assert_eq!(ch["detail"]["failing"][0]["check"], "e2e.marker");
    let t = &ch["transitions"][0];
    assert_eq!(t["cause"], "envelope");
    assert_eq!(t["envelope"]["sequence"], 2);
    assert_eq!(t["envelope"]["sha256"], envelope["sha256"]);
    assert!(t["envelope"]["log_index"].is_u64(), "{t:#}");
    assert_eq!(d["counts"]["drift"], 1);
    let c = &d["controls"][0];
    assert_eq!(
        (
            c["counts"]["conformant"].as_u64(),
            c["counts"]["nonconformant"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(d["checks"][0]["id"], "e2e.marker");
    // A window that ends before the change shows none.
    let before = f.drift(&format!("from={t0}&to={t0}"));
    assert!(
        before["changes"].as_array().unwrap().is_empty(),
        "{before:#}"
    );

    // The gate fails, naming host, control, check and envelope, in every
    // format; JUnit and SARIF validate against their schemas.
    let (junit, sarif, md, json) = (
        f.out("drift.xml"),
        f.out("drift.sarif"),
        f.out("drift.md"),
        f.out("drift.json"),
    );
    let o = f.gate(&[
        "--since",
        &t0,
        "--selector",
        "env=prod",
        "--control",
        "A.12.4.1",
        "--output",
        &format!("junit={}", s(&junit)),
        "--output",
        &format!("sarif={}", s(&sarif)),
        "--output",
        &format!("markdown={}", s(&md)),
        "--output",
        &format!("json={}", s(&json)),
    ]);
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("drift") && l.contains("A.12.4.1 on ")),
        "{text}"
    );
    assert!(text.contains(&format!("({db}): conformant at ")), "{text}");
    assert!(
        text.contains("nonconformant now: failing e2e.marker"),
        "{text}"
    );
    assert!(text.contains("caused by envelope 2 of "), "{text}");
    assert!(text.contains("annexa gate FAILED"), "{text}");
    assert!(!text.contains(&web), "only the db host drifted: {text}");

    let xml = common::junit_valid(&junit);
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("expected: conformant"), "{xml}");
    assert!(xml.contains("observed: nonconformant"), "{xml}");

    let doc = common::sarif_valid(&sarif);
    let run = &doc["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{doc:#}");
    assert_eq!(results[0]["ruleId"], "e2e.marker");
    assert_eq!(results[0]["properties"]["control"], "A.12.4.1");
    assert!(
        results[0]["locations"][0]["logicalLocations"][0]["name"]
            .as_str()
            .unwrap()
            .contains(&db)
    );
    let rule = &run["tool"]["driver"]["rules"][0];
    assert_eq!(rule["help"]["text"], "touch it");
    assert_eq!(rule["properties"]["controls"][0], "A.12.4.1");

    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["failed"], true);
    assert_eq!(v["findings"][0]["host"]["id"], db);
    assert_eq!(
        v["findings"][0]["transitions"][0]["envelope"]["sha256"],
        envelope["sha256"]
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("### ❌ annexa gate FAILED"), "{md}");

    // GitHub: an error annotation and the step summary.
    let summary = f.out("summary.md");
    let o = f.gate_env(
        &[
            "--since",
            &t0,
            "--control",
            "A.12.4.1",
            "--format",
            "github",
        ],
        &[("GITHUB_STEP_SUMMARY", &summary)],
    );
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    assert!(
        stdout(&o).contains("::error title=annexa drift%3A A.12.4.1 on "),
        "{}",
        show(&o)
    );
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("| FAIL | drift |")
    );

    // Scoped to the web hosts, nothing drifted.
    let o = f.gate(&["--since", &t0, "--selector", "role=web"]);
    assert_eq!(code(&o), Some(0), "{}", show(&o));

    // From the signed report: the same drift, the report's states the
    // reference; a tampered report decides nothing.
    let o = f.gate(&[
        "--baseline-report",
        s(&report),
        "--collector-key",
        s(&f.key_file),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["findings"][0]["kind"], "drift");
    assert_eq!(v["findings"][0]["host"]["id"], db);
    assert_eq!(
        v["selector"], "env=prod",
        "the report's scope is the default"
    );
    let mut bytes = std::fs::read(&report).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let tampered = f.out("tampered.json");
    std::fs::write(&tampered, &bytes).unwrap();
    let o = f.gate(&[
        "--baseline-report",
        s(&tampered),
        "--collector-key",
        s(&f.key_file),
    ]);
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("tampered.json"), "{}", show(&o));

    // Thresholds: 1 of 2 hosts conformant.
    let o = f.gate(&["--min-conformant", "100%", "--control", "A.12.4.1"]);
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    assert!(
        stdout(&o).contains("A.12.4.1: 1 of 2 hosts conformant (50%), below the required 100%"),
        "{}",
        show(&o)
    );
    let o = f.gate(&["--min-conformant", "50%", "--control", "A.12.4.1"]);
    assert_eq!(code(&o), Some(0), "{}", show(&o));

    // Fixed again: a transient change is noted, the gate passes.
    std::fs::write(&f.db_marker, "").unwrap();
    f.db.run_once_ok();
    let o = f.gate(&["--since", &t0, "--control", "A.12.4.1"]);
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("note  transient"), "{}", show(&o));
}

#[test]
fn the_gate_exits_2_when_it_cannot_decide() {
    let f = fleet();

    // A wrong token.
    let wrong = f.out("wrong.token");
    std::fs::write(&wrong, "annexa-api-nope").unwrap();
    let ca = f.c.ca_path();
    let o = common::annexa_api(&["gate"], &f.c.url(), &ca, &wrong, &["--since", "1h"], &[]);
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("401"), "{}", show(&o));

    // An unreachable collector (a port nothing listens on).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = common::annexa_api(
        &["gate"],
        &format!("https://127.0.0.1:{port}"),
        &ca,
        &f.token_file,
        &["--since", "1h"],
        &[],
    );
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        show(&o)
    );

    // Bad input, named.
    for (args, needle) in [
        (vec!["--since", "last tuesday"], "--since `last tuesday`"),
        (
            vec!["--since", "1h", "--control", "A.99.1"],
            "control `A.99.1` is not in the current SoA",
        ),
        (vec!["--since", "1h", "--selector", "env"], "selector"),
        (vec!["--min-conformant", "120%"], "120%"),
        (
            vec![
                "--baseline-report",
                "/nonexistent/r.json",
                "--collector-key",
                "/nonexistent/k",
            ],
            "/nonexistent",
        ),
        (vec![], "--root"),
    ] {
        let o = f.gate(&args);
        assert_eq!(code(&o), Some(2), "{args:?}: {}", show(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", show(&o));
    }
    // Local-mode options are refused in collector mode, and the reverse.
    let o = f.gate(&["--since", "1h", "--baseline", "b.json"]);
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    let o = common::annexa(&["gate", "--root", "/", "--since", "1h"]);
    assert_eq!(code(&o), Some(2), "{}", show(&o));

    // The API refuses bad windows with 400 and says why.
    for (q, needle) in [
        (
            "from=yesterday",
            "`from`: `yesterday` is not an RFC 3339 time",
        ),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "is after `to`",
        ),
        (
            "from=2026-01-01T00:00:00Z&to=2999-01-01T00:00:00Z",
            "in the future",
        ),
        ("controls=A.99.1", "control `A.99.1`"),
        ("selector=env", "selector"),
    ] {
        let r =
            f.c.request("GET", &format!("/v1/drift?{q}"), Some(&f.c.admin), None);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.text().contains(needle), "{q}: {}", r.text());
    }
}
