//! The evidence log end to end: a real collector over TLS, real agents,
//! proofs checked with the published algorithms, `annexa verify log` online
//! and offline, and the SQLite file rewritten behind the collector's back.

mod common;

use common::utf8 as s;

use annexa_evidence::encoding::{b64_decode, hex};
use annexa_evidence::log::LogEntry;
use annexa_evidence::merkle::{Hash, MemoryTree, verify_consistency, verify_inclusion};
use annexa_evidence::note::{Checkpoint, Verifier};
use annexa_evidence::statement::parse_scan_statement;
use common::{Collector, Host, show, stdout};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn collector_cli(data: &Path, args: &[&str]) -> Output {
    common::collector_cli(data, None, args)
}

fn verify(args: &[&str]) -> Output {
    let mut all = vec!["verify", "log"];
    all.extend_from_slice(args);
    common::annexa(&all)
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| b64_decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

/// Every leaf of the collector's log, rebuilt from what the API lists.
fn leaves(c: &Collector, hosts: &[&Host]) -> Vec<(u64, Hash)> {
    let mut out = Vec::new();
    for h in hosts {
        let id = h.agent_id();
        for m in c.evidence(&id) {
            let e = LogEntry {
                agent_id: id.clone().into(),
                key_id: h.key().public().key_id(),
                sequence: m["sequence"].as_u64().unwrap(),
                envelope_sha256: m["sha256"].as_str().unwrap().into(),
                accepted_at: m["received_at"].as_str().unwrap().into(),
            };
            out.push((m["log_index"].as_u64().unwrap(), e.leaf_hash()));
        }
    }
    out.sort();
    out
}

#[test]
fn proofs_checkpoints_and_verification_online_and_offline() {
    let c = Collector::start_with("checkpoint_seconds = 1\n");
    let dir = tempfile::tempdir().unwrap();
    let key_file = common::verifier_key_file(&c, dir.path());
    let verifier = Verifier::parse(std::fs::read_to_string(&key_file).unwrap().trim()).unwrap();
    let (a, b) = (Host::enrolled(&c, ""), Host::enrolled(&c, ""));
    for _ in 0..3 {
        a.run_once_ok();
        b.run_once_ok();
    }
    // Each agent now holds a checkpoint that covers its own envelopes.
    for h in [&a, &b] {
        let held = std::fs::read_to_string(h.state.join("checkpoint")).unwrap();
        let cp = Checkpoint::open(&held, &verifier).unwrap();
        assert!(cp.size >= 5, "{held}");
        assert!(!h.state.join("log-alert.json").exists());
    }
    let auditor = c.api_token("aud", "auditor");
    let r = c.request("GET", "/v1/log/checkpoint", Some(&auditor), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cp = Checkpoint::open(&r.text(), &verifier).unwrap();
    assert_eq!(cp.size, 6);

    // Inclusion of every envelope, from leaves computed independently.
    let all = leaves(&c, &[&a, &b]);
    assert_eq!(
        all.iter().map(|l| l.0).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    let mut tree = MemoryTree::new();
    for (i, leaf) in &all {
        tree.push(*leaf);
        let r = c.request(
            "GET",
            &format!("/v1/log/proof/inclusion?index={i}&size=6"),
            Some(&auditor),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let p = r.json();
        assert_eq!(p["leaf_hash"].as_str().unwrap(), hex(leaf));
        verify_inclusion(leaf, *i, 6, &hashes(&p["proof"]), &cp.root).unwrap();
    }
    assert_eq!(tree.root(), cp.root);
    // Consistency from every earlier size to the checkpoint.
    for m in 1..6 {
        let r = c.request(
            "GET",
            &format!("/v1/log/proof/consistency?from={m}&to=6"),
            Some(&auditor),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        verify_consistency(
            m,
            6,
            &hashes(&r.json()["proof"]),
            &tree.root_at(m).unwrap(),
            &cp.root,
        )
        .unwrap();
    }
    // Questions the log cannot answer are refused, saying why.
    for bad in [
        "/v1/log/proof/inclusion?index=6&size=6",
        "/v1/log/proof/inclusion?index=0&size=99",
        "/v1/log/proof/consistency?from=0&to=6",
        "/v1/log/proof/consistency?from=5&to=3",
        "/v1/log/proof/inclusion?index=x",
    ] {
        let r = c.request("GET", bad, Some(&auditor), None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    // Online verification with the auditor's token and the pinned CA.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &auditor).unwrap();
    let text = common::assert_log_verifies(&c, &token_file, &key_file, &a.state.join("checkpoint"));
    assert!(
        text.contains("entries      6 (6 envelopes verified"),
        "{text}"
    );
    assert!(text.contains("OK: every entry"), "{text}");

    // Offline: an export taken while the collector runs.
    let bundle = dir.path().join("log.bundle");
    let o = c.cli(&["log", "export", "--out", s(&bundle)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = verify(&[
        "--bundle",
        s(&bundle),
        "--collector-key",
        s(&key_file),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["entries"], 6);
    assert_eq!(v["root"].as_str().unwrap(), hex(&cp.root));
    // A wrong key proves nothing: every checkpoint fails.
    let other = dir.path().join("other.vkey");
    let foreign = Verifier::new(
        &verifier.name,
        annexa_evidence::keys::SigningKey::from_seed(&[9u8; 32])
            .unwrap()
            .public(),
    )
    .unwrap();
    std::fs::write(&other, foreign.to_string()).unwrap();
    let o = verify(&["--bundle", s(&bundle), "--collector-key", s(&other)]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stdout(&o).contains("no signed checkpoint verifies"),
        "{}",
        show(&o)
    );
    // A truncated bundle is noticed.
    let text = std::fs::read_to_string(&bundle).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    let short = dir.path().join("short.bundle");
    std::fs::write(&short, cut[..cut.len() - 3].join("\n") + "\n").unwrap();
    let o = verify(&["--bundle", s(&short), "--collector-key", s(&key_file)]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stdout(&o).contains("truncated"), "{}", show(&o));
    // Garbage is an error naming the line, not a verdict.
    let junk = dir.path().join("junk.bundle");
    std::fs::write(&junk, "{\"type\":\"header\"}\n").unwrap();
    let o = verify(&["--bundle", s(&junk), "--collector-key", s(&key_file)]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(common::stderr(&o).contains("line 1"), "{}", show(&o));
}

fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn rows_changed_deleted_or_inserted_in_the_database_are_found_with_index_and_why() {
    let mut c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = common::verifier_key_file(&c, dir.path());
    let h = Host::enrolled(&c, "");
    for _ in 0..4 {
        h.run_once_ok();
    }
    let id = h.agent_id();
    let meta = c.evidence(&id);
    let stop = c.stop();
    assert!(stop.success());
    let leaf_of = |i: usize, accepted_at: &str| {
        hex(&LogEntry {
            agent_id: id.clone().into(),
            key_id: h.key().public().key_id(),
            sequence: i as u64 + 1,
            envelope_sha256: meta[i]["sha256"].as_str().unwrap().into(),
            accepted_at: accepted_at.into(),
        }
        .leaf_hash())
    };
    let other_key = annexa_evidence::keys::SigningKey::from_seed(&[5u8; 32]).unwrap();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "envelope bytes edited",
            vec!["UPDATE envelopes SET bytes = CAST(replace(CAST(bytes AS TEXT), '\"payload\":\"', '\"payload\":\"A') AS BLOB) WHERE sequence = 2".into()],
            "index 1: the envelope's bytes hash to",
        ),
        (
            "an entry back-dated",
            vec!["UPDATE log_entries SET accepted_at = '2020-01-01T00:00:00Z' WHERE idx = 2".into()],
            "index 2: the stored leaf hash is not the hash of the entry's fields",
        ),
        (
            "an entry back-dated with its leaf hash recomputed",
            vec![format!(
                "UPDATE log_entries SET accepted_at = '2020-01-01T00:00:00Z', leaf_hash = X'{}' WHERE idx = 2",
                leaf_of(2, "2020-01-01T00:00:00Z")
            )],
            "and 3 was changed, inserted or deleted",
        ),
        (
            "an envelope and its entry deleted",
            vec![
                "DELETE FROM envelopes WHERE sequence = 2".into(),
                "DELETE FROM log_entries WHERE idx = 1".into(),
            ],
            "index 1: entry 2 is where entry 1 belongs",
        ),
        (
            "the newest envelope and entry deleted",
            vec![
                "DELETE FROM envelopes WHERE sequence = 4".into(),
                "DELETE FROM log_entries WHERE idx = 3".into(),
            ],
            "covers 4 entries, the log holds 3",
        ),
        (
            "an envelope inserted behind the log",
            vec!["INSERT INTO envelopes (agent_no, sequence, sha256, received_at, summary, results, bytes) SELECT agent_no, 99, sha256, received_at, summary, results, bytes FROM envelopes WHERE sequence = 1".into()],
            "sequence 99",
        ),
        (
            "an agent's key replaced",
            vec![format!(
                "UPDATE agents SET public_key = '{}'",
                other_key.public().to_b64()
            )],
            "does not hash to its key id",
        ),
    ];
    for (what, sql, expect) in cases {
        let data = dir.path().join(what.replace(' ', "-"));
        copy_dir(&c.data, &data);
        common::tamper(&data, &sql);
        let bundle = data.join("log.bundle");
        let o = collector_cli(&data, &["log", "export", "--out", s(&bundle)]);
        assert_eq!(o.status.code(), Some(0), "{what}: export: {}", show(&o));
        let o = verify(&["--bundle", s(&bundle), "--collector-key", s(&key_file)]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", show(&o));
        assert!(
            stdout(&o).contains(expect),
            "{what}: expected `{expect}` in\n{}",
            show(&o)
        );
    }
    // The untouched copy still verifies.
    let clean = dir.path().join("clean");
    copy_dir(&c.data, &clean);
    let bundle = clean.join("log.bundle");
    let o = collector_cli(&clean, &["log", "export", "--out", s(&bundle)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = verify(&["--bundle", s(&bundle), "--collector-key", s(&key_file)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // A collector whose stored leaves no longer give its last checkpoint's
    // root refuses to start (it would sign checkpoints over the rewrite).
    let data = dir.path().join("refuse");
    copy_dir(&c.data, &data);
    common::tamper(
        &data,
        &[format!(
            "UPDATE log_entries SET accepted_at = '2020-01-01T00:00:00Z', leaf_hash = X'{}' WHERE idx = 2",
            leaf_of(2, "2020-01-01T00:00:00Z")
        )],
    );
    let o = collector_cli(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("does not match its last signed checkpoint"),
        "{}",
        show(&o)
    );
}

#[test]
fn an_agent_reports_a_rewritten_log_in_its_next_envelope() {
    let mut c = Collector::start();
    let (a, b) = (Host::enrolled(&c, ""), Host::enrolled(&c, ""));
    a.run_once_ok();
    b.run_once_ok();
    let held = std::fs::read_to_string(b.state.join("checkpoint")).unwrap();
    assert!(held.contains("\n2\n"), "{held}");
    // Someone with write access back-dates A's envelope, recomputes its
    // leaf, and removes the checkpoints that would give it away.
    let id = a.agent_id();
    let sha = c.evidence(&id)[0]["sha256"].as_str().unwrap().to_string();
    assert!(c.stop().success());
    let forged = LogEntry {
        agent_id: id.into(),
        key_id: a.key().public().key_id(),
        sequence: 1,
        envelope_sha256: sha,
        accepted_at: "2020-01-01T00:00:00Z".into(),
    };
    common::tamper(
        &c.data,
        &[
            format!(
                "UPDATE log_entries SET accepted_at = '2020-01-01T00:00:00Z', leaf_hash = X'{}' WHERE idx = 0",
                hex(&forged.leaf_hash())
            ),
            "DELETE FROM log_checkpoints".into(),
        ],
    );
    c.restart();
    // B's next delivery shows it a checkpoint that does not extend its own.
    b.run_once_ok();
    let alert: Value =
        serde_json::from_slice(&std::fs::read(b.state.join("log-alert.json")).unwrap()).unwrap();
    assert!(
        alert["error"]
            .as_str()
            .unwrap()
            .contains("consistency proof"),
        "{alert}"
    );
    assert_eq!(alert["previous_checkpoint"].as_str().unwrap(), held);
    // The agent kept its checkpoint, and says so in its next envelope.
    assert_eq!(
        std::fs::read_to_string(b.state.join("checkpoint")).unwrap(),
        held
    );
    b.run_once_ok();
    assert!(!b.state.join("log-alert.json").exists());
    let bytes = c.envelope(&b.agent_id(), 3);
    let env = annexa_evidence::dsse::Envelope::from_json(&bytes).unwrap();
    let st = parse_scan_statement(&b64_decode(&env.payload).unwrap()).unwrap();
    let reported = st
        .predicate
        .log_alert
        .expect("the alert travels in the envelope");
    assert_eq!(reported.previous_checkpoint, held);
}

#[test]
fn retention_removes_payloads_and_the_log_still_verifies() {
    let c = Collector::start_with("retention = \"2s\"\nconformity_sweep_seconds = 1\n");
    let dir = tempfile::tempdir().unwrap();
    let key_file = common::verifier_key_file(&c, dir.path());
    let h = Host::enrolled(&c, "");
    h.run_once_ok();
    h.run_once_ok();
    let id = h.agent_id();
    common::wait_for(
        "the retention job to prune both payloads",
        Duration::from_secs(20),
        || c.evidence(&id).iter().all(|m| m["pruned_at"].is_string()),
        || format!("{:?}\n{}", c.evidence(&id), c.log()),
    );
    // The record says what happened to the payload, and why.
    let r = c.request(
        "GET",
        &format!("/v1/hosts/{id}/evidence/1"),
        Some(&c.admin),
        None,
    );
    assert_eq!(r.status, 410, "{}", r.text());
    let e = r.error();
    assert_eq!(e.error, "pruned");
    assert!(e.message.contains("retention policy (2s)"), "{}", e.message);
    // Metadata and results stay; the log verifies with the payloads gone.
    let meta = c.evidence(&id);
    assert_eq!(meta.len(), 2);
    assert!(meta[0]["results"].as_array().is_some_and(|r| !r.is_empty()));
    let bundle = dir.path().join("log.bundle");
    let o = c.cli(&["log", "export", "--out", s(&bundle)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = verify(&["--bundle", s(&bundle), "--collector-key", s(&key_file)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = stdout(&o);
    assert!(
        text.contains("(0 envelopes verified, 2 pruned under the retention policy)"),
        "{text}"
    );
    assert!(
        text.contains("removed under the retention policy (2s)"),
        "{text}"
    );
    // New evidence is still accepted and kept until it is old enough.
    h.run_once_ok();
    assert!(!c.envelope(&id, 3).is_empty());
}

#[test]
fn an_envelope_is_shown_with_the_acceptance_time_its_log_leaf_binds() {
    let mut c = Collector::start();
    c.import_soa(include_str!("../../examples/soa/iso27001-2013.toml"));
    let host = Host::enrolled(&c, "");
    host.run_once_ok();
    let id = host.agent_id();
    let receipt = &host.receipts()[0].receipt;
    let listed = c.evidence(&id);
    assert_eq!(listed[0]["received_at"], receipt.accepted_at.as_str());
    // The copy in `envelopes` is bound by no signature and no leaf: an edit
    // to it changes nothing the API says.
    c.stop();
    common::tamper(
        &c.data,
        &["UPDATE envelopes SET received_at = '2020-01-01T00:00:00Z'".to_string()],
    );
    c.restart();
    let listed = c.evidence(&id);
    assert_eq!(
        listed[0]["received_at"],
        receipt.accepted_at.as_str(),
        "{listed:?}"
    );
    // The drift API names the envelope behind each change by the same time.
    let drift = c.get("/v1/drift?from=2000-01-01T00:00:00Z").json();
    let text = drift.to_string();
    assert!(text.contains(&receipt.accepted_at), "{text}");
    assert!(!text.contains("2020-01-01"), "{text}");
}
