//! The collector on PostgreSQL end to end: a real collector process with
//! `database_url` on a fresh database, real agents over TLS, the SoA and
//! conformity, a SIGKILL and a restart that rebuilds the log and the
//! conformity index from the database alone, and `annexa verify log` and
//! `annexa verify report` passing on what it serves; and a SQLite store
//! migrated to PostgreSQL with the same log, its agents' chains and
//! checkpoints continuing; and two collectors on one database with agents
//! spread across them, the log one tree that `annexa verify log` accepts;
//! and three collectors under load from simulated agents, one SIGKILLed
//! and restarted mid-load, losing nothing they acknowledged.

mod common;

use annexa_tests::PgScratch;
use common::{Collector, Host, show, soa_with_marker, stdout};

#[test]
fn a_collector_on_postgres_keeps_evidence_log_and_conformity_across_a_kill() {
    let db = PgScratch::new();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let packs = common::collector_packs(&dir.path().join("packs"), &marker);
    let mut c = Collector::start_with(&format!(
        "database_url = \"{}\"\ndatabase_max_connections = 4\ncheckpoint_seconds = 1\n{packs}",
        db.url
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
    let (key, token) = auditor_after_checkpoint(&c, dir.path());
    let out = common::assert_log_verifies(&c, &token, &key, &hosts[0].state.join("checkpoint"));
    assert!(out.contains("4 (4 envelopes verified"), "{out}");

    common::assert_report_verifies(&c, &token, &key, dir.path());
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
    let (key, token) = auditor_after_checkpoint(&c, dir.path());
    common::assert_log_verifies(&c, &token, &key, &host.state.join("checkpoint"));
}

#[test]
fn two_collectors_on_one_database_keep_one_log() {
    let db = PgScratch::new();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let packs = common::collector_packs(&dir.path().join("packs"), &marker);
    let a = Collector::start_with(&format!(
        "database_url = \"{}\"\ncheckpoint_seconds = 1\nconformity_sweep_seconds = 1\n{packs}",
        db.url
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
    // Rounds in turn: each collector's next batch follows the other's, and
    // meets an append it has not seen. The collector takes it in and
    // stores the batch: every run is delivered at once.
    for _ in 0..4 {
        for h in &hosts {
            h.run_once_ok();
        }
    }
    for h in &hosts {
        let seqs = a.sequences(&h.agent_id());
        assert_eq!(
            seqs,
            (1..=4).collect::<Vec<_>>(),
            "one unbroken chain per agent across both collectors"
        );
    }
    assert!(
        b.log()
            .contains("took in evidence another collector accepted")
            && a.log()
                .contains("took in evidence another collector accepted"),
        "each collector took in the other's entries:\n{}\n{}",
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
    let (key, token) = auditor_after_checkpoint(&a, dir.path());
    for (c, h) in [(&a, &hosts[2]), (&b, &hosts[0])] {
        common::assert_log_verifies(c, &token, &key, &h.state.join("checkpoint"));
    }
}

#[test]
fn three_collectors_under_load_lose_nothing_when_one_is_killed() {
    use annexa_evidence::api::EvidenceResponse;
    use annexa_evidence::receipt::Receipt;
    use annexa_tests::load::{Route, enroll, realistic_scan, tls_client};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    const AGENTS: usize = 24;
    const PER_AGENT: u64 = 12;
    let db = PgScratch::new();
    let dir = tempfile::tempdir().unwrap();
    let a = Collector::start_with(&format!(
        "database_url = \"{}\"\ncheckpoint_seconds = 1\nconformity_sweep_seconds = 1\n",
        db.url
    ));
    let mut b = a.sibling();
    let c = a.sibling();
    let servers: Arc<[String]> = vec![a.url(), b.url(), c.url()].into();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = std::fs::read(a.ca_path()).unwrap();
    let http = tls_client(&ca, AGENTS, Duration::from_secs(30)).unwrap();
    let scan = realistic_scan(5).unwrap();

    // Each agent enrolls at its own collector and signs its whole chain.
    let agents = rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..AGENTS {
            let e = enroll(&http, &servers[i % 3], &a.admin, i, serde_json::json!({}))
                .await
                .unwrap();
            let mut previous = None;
            let mut chain = Vec::new();
            for seq in 1..=PER_AGENT {
                let (bytes, digest) = e.envelope(seq, previous, None, scan.clone());
                previous = Some(digest.clone());
                chain.push((bytes, digest));
            }
            out.push((e.response.agent_id.clone(), chain));
        }
        out
    });
    // One key for all three: they share the data directory's collector.key.
    let collector_key = a.receipt_key();

    // Every agent sends its chain in order to its collector, moving on when
    // that one is gone, while the test kills and restarts collector b.
    let receipts = Arc::new(AtomicUsize::new(0));
    let first_checkpoint = Arc::new(std::sync::Mutex::new(None::<String>));
    let tasks: Vec<_> = agents
        .into_iter()
        .enumerate()
        .map(|(i, (id, chain))| {
            let http = http.clone();
            let mut route = Route::new(servers.clone(), i);
            let receipts = receipts.clone();
            let first_checkpoint = first_checkpoint.clone();
            rt.spawn(async move {
                let mut got = Vec::new();
                for (seq, (bytes, digest)) in (1..).zip(chain) {
                    let (status, body) = route
                        .post_envelope(&http, &bytes, Instant::now() + Duration::from_secs(90))
                        .await?;
                    anyhow::ensure!(
                        status.is_success(),
                        "agent {id} sequence {seq}: HTTP {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    let resp: EvidenceResponse = serde_json::from_slice(&body)?;
                    if let Some(log) = &resp.log {
                        first_checkpoint
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| log.checkpoint.clone());
                    }
                    receipts.fetch_add(1, Ordering::SeqCst);
                    got.push((seq, digest, resp));
                }
                anyhow::Ok((id, got, route.failovers))
            })
        })
        .collect();
    let total = AGENTS * PER_AGENT as usize;
    common::wait_for(
        "a third of the envelopes acknowledged",
        common::WAIT,
        || receipts.load(Ordering::SeqCst) >= total / 3,
        || format!("{} of {total}", receipts.load(Ordering::SeqCst)),
    );
    b.kill();
    let at_kill = receipts.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    b.restart();
    let mut failovers = 0;
    let mut sent = Vec::new();
    for t in tasks {
        let (id, got, f) = rt.block_on(t).unwrap().unwrap_or_else(|e| {
            panic!(
                "{e:#}\n--- a\n{}\n--- b\n{}\n--- c\n{}",
                a.log(),
                b.log(),
                c.log()
            )
        });
        failovers += f;
        sent.push((id, got));
    }
    assert!(
        at_kill < total,
        "the kill came after the load ({at_kill} of {total})"
    );
    assert!(
        failovers > 0,
        "no agent had to move off the killed collector"
    );

    // Every receipt is the collector's, for that envelope; every agent's
    // chain is stored whole, in order, once, whichever collector is asked.
    for (id, got) in &sent {
        for (seq, digest, resp) in got {
            Receipt::verify(&resp.receipt, &collector_key, digest, id.as_str(), *seq).unwrap();
        }
        for c in [&a, &b, &c] {
            assert_eq!(
                c.sequences(id.as_str()),
                (1..=PER_AGENT).collect::<Vec<_>>(),
                "agent {id} at {}",
                c.url()
            );
        }
    }

    // One log, verified through each collector against the key, consistent
    // with a checkpoint an agent got early in the load.
    let held = dir.path().join("checkpoint");
    std::fs::write(&held, first_checkpoint.lock().unwrap().clone().unwrap()).unwrap();
    let (key, token) = auditor_after_checkpoint(&a, dir.path());
    for c in [&a, &b, &c] {
        let out = common::assert_log_verifies(c, &token, &key, &held);
        assert!(
            out.contains(&format!("{total} ({total} envelopes verified")),
            "{out}"
        );
    }
}

/// The auditor's verifier key and token (in files under `dir`), once the
/// collector has signed a checkpoint over what it holds now (the tests run
/// with `checkpoint_seconds = 1`).
fn auditor_after_checkpoint(
    c: &Collector,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let files = common::auditor_files(c, dir);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    files
}
