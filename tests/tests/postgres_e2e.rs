//! The collector on PostgreSQL end to end: a real collector process with
//! `database_url` on a fresh database, real agents over TLS, the SoA and
//! conformity, a SIGKILL and a restart that rebuilds the log and the
//! conformity index from the database alone, and `annexa verify log` and
//! `annexa verify report` passing on what it serves; and a SQLite store
//! migrated to PostgreSQL with the same log, its agents' chains and
//! checkpoints continuing.

mod common;

use std::path::Path;

use annexa_tests::PgScratch;
use common::{Collector, Host, show, soa_with_marker, stdout};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn a_collector_on_postgres_keeps_evidence_log_and_conformity_across_a_kill() {
    let db = PgScratch::new();
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(packs.join("e2e.toml"), common::marker_pack(&marker)).unwrap();
    let mut c = Collector::start_with(&format!(
        "database_url = \"{}\"\ndatabase_max_connections = 4\npack_dirs = [\"{}\"]\ncheckpoint_seconds = 1\n",
        db.url,
        packs.display()
    ));
    c.import_soa(&soa_with_marker());
    let hosts: Vec<Host> = (0..2)
        .map(|_| {
            let h = Host::enrolled(&c, "[labels]\nenv = \"prod\"\n");
            std::fs::write(
                h.dir().join("checks.d").join("e2e.toml"),
                common::marker_pack(&marker),
            )
            .unwrap();
            h
        })
        .collect();
    std::fs::write(&marker, "").unwrap();
    for h in &hosts {
        h.run_once_ok();
    }

    // SIGKILL, restart: everything acknowledged is in PostgreSQL.
    c.kill();
    c.restart();
    for h in &hosts {
        h.run_once_ok();
    }
    for h in &hosts {
        assert_eq!(c.sequences(&h.agent_id()), vec![1, 2]);
    }
    let v = c.get("/v1/conformity?control=A.12.4.1").json();
    assert_eq!(v["hosts"], 2, "{v:#}");
    assert_eq!(v["controls"][0]["counts"]["conformant"], 2, "{v:#}");

    // The log verifies online against the key, with an agent's held
    // checkpoint, and a report verifies offline.
    let o = c.cli(&["log", "key"]);
    assert_eq!(o.status.code(), Some(0), "log key: {}", show(&o));
    let key = dir.path().join("collector.vkey");
    std::fs::write(&key, stdout(&o)).unwrap();
    let token = dir.path().join("auditor.token");
    std::fs::write(&token, c.api_token("auditor", "auditor")).unwrap();
    let (url, ca) = (c.url(), c.ca_path());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let o = common::annexa(&[
        "verify",
        "log",
        "--server",
        &url,
        "--ca",
        s(&ca),
        "--token-file",
        s(&token),
        "--collector-key",
        s(&key),
        "--checkpoint",
        s(&hosts[0].state.join("checkpoint")),
    ]);
    assert_eq!(o.status.code(), Some(0), "verify log: {}", show(&o));
    assert!(
        stdout(&o).contains("4 (4 envelopes verified"),
        "{}",
        show(&o)
    );

    let report = dir.path().join("report.json");
    let o = common::annexa(&[
        "report",
        "pull",
        "--server",
        &url,
        "--ca",
        s(&ca),
        "--token-file",
        s(&token),
        "--out",
        s(&report),
    ]);
    assert_eq!(o.status.code(), Some(0), "report pull: {}", show(&o));
    let o = common::annexa(&["verify", "report", s(&report), "--collector-key", s(&key)]);
    assert_eq!(o.status.code(), Some(0), "verify report: {}", show(&o));
}

/// The size and root lines `migrate` prints for the log before and after.
fn roots(out: &str) -> (String, String) {
    let line = |p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap_or_else(|| panic!("no `{p}` line in {out}"))
            .trim()
            .to_string()
    };
    (line("log before:"), line("log after:"))
}

#[test]
fn a_sqlite_store_migrates_to_postgres_with_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let mut c = Collector::start();
    let host = Host::enrolled(&c, "[labels]\nenv = \"prod\"\n");
    std::fs::write(
        host.dir().join("checks.d").join("e2e.toml"),
        common::marker_pack(&marker),
    )
    .unwrap();
    host.run_once_ok();
    host.run_once_ok();
    c.stop();

    let db = PgScratch::new();
    let from = format!("sqlite:{}", c.data.join("collector.db").display());
    let o = c.cli(&["migrate", "--from", &from, "--to", &db.url]);
    assert_eq!(o.status.code(), Some(0), "migrate: {}", show(&o));
    let (before, after) = roots(&stdout(&o));
    assert!(before.starts_with("2 entries, root "), "{}", show(&o));
    assert_eq!(before, after, "the log's size and root are unchanged");
    assert!(
        stdout(&o).contains("envelopes            2 rows"),
        "{}",
        show(&o)
    );

    // Not twice into the same database; not from a file that is not there.
    let o = c.cli(&["migrate", "--from", &from, "--to", &db.url]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("already holds data"),
        "{}",
        show(&o)
    );
    let o = c.cli(&[
        "migrate",
        "--from",
        "sqlite:/nonexistent/c.db",
        "--to",
        &db.url,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("no such SQLite file"),
        "{}",
        show(&o)
    );

    // The collector on the migrated store: the agent's chain continues and
    // its held checkpoint is proved consistent with the new ones.
    c.reconfigure(&format!(
        "database_url = \"{}\"\ncheckpoint_seconds = 1\n",
        db.url
    ));
    c.restart();
    host.run_once_ok();
    assert_eq!(c.sequences(&host.agent_id()), vec![1, 2, 3]);
    let o = c.cli(&["log", "key"]);
    assert_eq!(o.status.code(), Some(0), "log key: {}", show(&o));
    let key = dir.path().join("collector.vkey");
    std::fs::write(&key, stdout(&o)).unwrap();
    let token = dir.path().join("auditor.token");
    std::fs::write(&token, c.api_token("auditor", "auditor")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (url, ca) = (c.url(), c.ca_path());
    let o = common::annexa(&[
        "verify",
        "log",
        "--server",
        &url,
        "--ca",
        s(&ca),
        "--token-file",
        s(&token),
        "--collector-key",
        s(&key),
        "--checkpoint",
        s(&host.state.join("checkpoint")),
    ]);
    assert_eq!(o.status.code(), Some(0), "verify log: {}", show(&o));
}
