//! The collector on PostgreSQL end to end: a real collector process with
//! `database_url` on a fresh database, real agents over TLS, the SoA and
//! conformity, a SIGKILL and a restart that rebuilds the log and the
//! conformity index from the database alone, and `annexa verify log` and
//! `annexa verify report` passing on what it serves; and a SQLite store
//! migrated to PostgreSQL with the same log, its agents' chains and
//! checkpoints continuing; and two collectors on one database with agents
//! spread across them, the log one tree that `annexa verify log` accepts.

mod common;

use common::utf8 as s;

use annexa_tests::PgScratch;
use common::{Collector, Host, show, soa_with_marker, stdout};

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
            h.add_pack(&common::marker_pack(&marker));
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
    let (key, token) = common::auditor_files(&c, dir.path());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let o = common::verify_log_online(&c, &token, &key, &hosts[0].state.join("checkpoint"));
    assert_eq!(o.status.code(), Some(0), "verify log: {}", show(&o));
    assert!(
        stdout(&o).contains("4 (4 envelopes verified"),
        "{}",
        show(&o)
    );

    let report = dir.path().join("report.json");
    let o = common::pull_report(&c, &token, &report, &[]);
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
    host.add_pack(&common::marker_pack(&marker));
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
    let (key, token) = common::auditor_files(&c, dir.path());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let o = common::verify_log_online(&c, &token, &key, &host.state.join("checkpoint"));
    assert_eq!(o.status.code(), Some(0), "verify log: {}", show(&o));
}

#[test]
fn two_collectors_on_one_database_keep_one_log() {
    let db = PgScratch::new();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let packs = dir.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    std::fs::write(packs.join("e2e.toml"), common::marker_pack(&marker)).unwrap();
    let a = Collector::start_with(&format!(
        "database_url = \"{}\"\ncheckpoint_seconds = 1\nconformity_sweep_seconds = 1\npack_dirs = [\"{}\"]\n",
        db.url,
        packs.display()
    ));
    a.import_soa(&soa_with_marker());
    let b = a.sibling();
    // Two agents on each collector, enrolled there.
    let hosts: Vec<Host> = [&a, &a, &b, &b]
        .iter()
        .map(|c| {
            let h = Host::enrolled(c, "[labels]\nenv = \"prod\"\n");
            h.add_pack(&common::marker_pack(&marker));
            h
        })
        .collect();
    // Rounds in turn: each collector's next batch follows the other's.
    for _ in 0..3 {
        for h in &hosts {
            let o = h.run_once(&[]);
            assert!(
                matches!(o.status.code(), Some(0 | 1)),
                "run --once: {}",
                show(&o)
            );
        }
    }
    // Whatever a refused batch left in a spool goes with the next run.
    for h in &hosts {
        for attempt in 0.. {
            let o = h.run_once(&[]);
            if o.status.code() == Some(0) {
                break;
            }
            assert!(attempt < 5, "never delivered: {}", show(&o));
        }
    }
    for h in &hosts {
        let seqs = a.sequences(&h.agent_id());
        assert!(seqs.len() >= 4, "{seqs:?}");
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "one unbroken chain per agent across both collectors"
        );
    }
    assert!(
        b.log()
            .contains("another collector appended to the evidence log")
            || a.log()
                .contains("another collector appended to the evidence log"),
        "a collector took in the other's entries:\n{}\n{}",
        a.log(),
        b.log()
    );

    // Each collector's conformity takes in what the other accepted.
    for c in [&a, &b] {
        common::wait_for(
            "every host conformant at both collectors",
            common::WAIT,
            || {
                let v = c.get("/v1/conformity?control=A.12.4.1").json();
                v["controls"][0]["counts"]["conformant"] == 4
            },
            || {
                format!(
                    "{}\n{}",
                    c.get("/v1/conformity?control=A.12.4.1").json(),
                    c.log()
                )
            },
        );
    }

    // One log: verified through either collector, each agent's held
    // checkpoint consistent with it.
    let (key, token) = common::auditor_files(&a, dir.path());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    for (c, h) in [(&a, &hosts[2]), (&b, &hosts[0])] {
        let o = common::verify_log_online(c, &token, &key, &h.state.join("checkpoint"));
        assert_eq!(
            o.status.code(),
            Some(0),
            "verify log at {}: {}",
            c.url(),
            show(&o)
        );
    }
}
