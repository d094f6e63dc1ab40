//! Rotating the collector's key against real processes: `annexa-collector
//! key rotate` with the collector stopped, agents adopting the new key only
//! through the transition signed by the key they hold (no log alert), and
//! auditors verifying the log and reports — from before the rotation and
//! after it — with the old verifier key or the new one.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Collector, Host, SOA_2013, annexa, bin, show, statement_of, stdout, utf8 as s, wait_exit,
};

/// `annexa-collector serve` on a data directory it must refuse: its
/// standard error.
fn serve_refused(c: &Collector) -> String {
    let mut cmd = Command::new(bin("annexa-collector"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&c.data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(cfg) = &c.config {
        cmd.arg("--config").arg(cfg);
    }
    let mut child = cmd.spawn().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30), "a refused serve");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "serve started: {err}");
    err
}

fn rotate(c: &Collector) -> String {
    let o = c.cli(&["key", "rotate"]);
    assert_eq!(o.status.code(), Some(0), "key rotate: {}", show(&o));
    stdout(&o)
}

#[test]
fn the_collector_rotates_its_key_and_agents_and_auditors_follow() {
    let mut c = Collector::start_with("checkpoint_seconds = 1\n");
    c.import_soa(SOA_2013);
    let host = Host::enrolled(&c, "");
    let id = host.agent_id();
    host.run_once_ok();
    host.run_once_ok();
    let first_key = c.receipt_key();
    let dir = tempfile::tempdir().unwrap();
    let (old_vkey, token) = common::auditor_files(&c, dir.path());
    std::thread::sleep(Duration::from_millis(1200));
    let before = dir.path().join("before");
    std::fs::create_dir(&before).unwrap();
    let old_report = common::assert_report_verifies(&c, &token, &old_vkey, &before);

    // Not under a running collector.
    let o = c.cli(&["key", "rotate"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("a collector is running on this data directory"),
        "{}",
        show(&o)
    );

    c.stop();
    let out = rotate(&c);
    let old_vkey_text = std::fs::read_to_string(&old_vkey).unwrap();
    assert!(
        out.contains(&format!("retired:   {}", old_vkey_text.trim())),
        "{out}"
    );
    let second_key = c.receipt_key();
    assert_ne!(second_key, first_key);
    let key_file = c.data.join("collector.key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!c.data.join("collector.key.next").exists());

    // The agent delivers to the rotated collector: it follows the
    // transition from the key it enrolled with, verifies the new receipts,
    // and its held checkpoint (signed by the old key) joins the new ones.
    c.restart();
    for run in 0..2 {
        let o = host.run_once(&[]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert!(!show(&o).contains("INCONSISTENT"), "{}", show(&o));
        assert_eq!(
            show(&o).contains("signing key was rotated"),
            run == 0,
            "{}",
            show(&o)
        );
    }
    let enrollment = host.enrollment();
    assert_eq!(
        enrollment["collector_public_key"],
        second_key.to_b64().as_str()
    );
    assert_eq!(
        enrollment["collector_key_transitions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    for seq in [3, 4] {
        let st = statement_of(&c.envelope(&id, seq));
        assert!(
            st["predicate"]["log_alert"].is_null(),
            "envelope {seq} reports a log alert: {}",
            st["predicate"]["log_alert"]
        );
    }

    // The log verifies with the old verifier key and with the new one;
    // every checkpoint under the key in force at its size.
    std::thread::sleep(Duration::from_millis(1200));
    let held = host.state.join("checkpoint");
    let out = common::assert_log_verifies(&c, &token, &old_vkey, &held);
    assert!(out.contains("4 (4 envelopes verified"), "{out}");
    assert_eq!(out.matches("\ncollector    ").count(), 2, "{out}");
    let after = dir.path().join("after");
    std::fs::create_dir(&after).unwrap();
    let new_vkey = common::verifier_key_file(&c, &after);
    assert_ne!(
        std::fs::read_to_string(&new_vkey).unwrap(),
        old_vkey_text,
        "`log key` prints the key in force"
    );
    common::assert_log_verifies(&c, &token, &new_vkey, &held);

    // Reports: the one from before still verifies with the old key; a new
    // one (signed by the new key) with either.
    let o = annexa(&[
        "verify",
        "report",
        s(&old_report),
        "--collector-key",
        s(&old_vkey),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for (i, key) in [&old_vkey, &new_vkey].into_iter().enumerate() {
        let sub = after.join(format!("report-{i}"));
        std::fs::create_dir(&sub).unwrap();
        common::assert_report_verifies(&c, &token, key, &sub);
    }

    // A rotation interrupted after the transition was stored, before the
    // new key replaced collector.key: the collector refuses to start with
    // the retired key, and running the command again finishes it.
    c.stop();
    let kept = dir.path().join("second.key");
    std::fs::copy(&key_file, &kept).unwrap();
    rotate(&c);
    let third_key = c.receipt_key();
    std::fs::rename(&key_file, c.data.join("collector.key.next")).unwrap();
    std::fs::copy(&kept, &key_file).unwrap();
    let err = serve_refused(&c);
    assert!(
        err.contains("was retired by a later rotation")
            && err.contains("annexa-collector key rotate"),
        "{err}"
    );
    let out = rotate(&c);
    assert!(
        out.starts_with("finished the rotation an earlier run began"),
        "{out}"
    );
    assert_eq!(c.receipt_key(), third_key);
    // A key left behind by a rotation that never reached the store signs
    // nothing: the next rotation starts over without it.
    std::fs::copy(&kept, c.data.join("collector.key.next")).unwrap();
    rotate(&c);
    let fourth_key = c.receipt_key();
    assert!(![first_key, second_key, third_key].contains(&fourth_key));
    c.restart();
    host.run_once_ok();
    assert_eq!(
        host.enrollment()["collector_public_key"],
        fourth_key.to_b64().as_str()
    );
    std::thread::sleep(Duration::from_millis(1200));
    let out = common::assert_log_verifies(&c, &token, &old_vkey, &held);
    assert_eq!(out.matches("\ncollector    ").count(), 4, "{out}");

    // An insider who deletes the transitions cannot pass the log off as
    // one key's: the checkpoints the other keys signed no longer verify.
    c.stop();
    common::tamper(&c.data, &["DELETE FROM log_key_transitions".to_string()]);
    c.restart();
    let o = common::annexa_api(
        &["verify", "log"],
        &c.url(),
        &c.ca_path(),
        &token,
        &["--collector-key", s(&old_vkey)],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stdout(&o).contains("has no signature by"), "{}", show(&o));
}
