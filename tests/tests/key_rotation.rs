//! Rotating an agent's key against a real collector: the declaring
//! envelope, the switch, the old key refused for anything new, and the
//! evidence signed before the rotation still verifying — online through
//! `annexa verify log`, in a signed report, and not when the retired key
//! is removed from the database.

mod common;

use std::os::unix::fs::PermissionsExt;

use annexa_evidence::api::codes;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::sha256_hex;
use common::{Collector, Host, SOA_2013, show, sign_statement, statement_of, stdout, utf8 as s};

#[test]
fn an_agent_rotates_its_key_and_its_old_evidence_still_verifies() {
    let mut c = Collector::start_with("checkpoint_seconds = 1\n");
    c.import_soa(SOA_2013);
    let host = Host::enrolled(&c, "");
    let id = host.agent_id();
    host.run_once_ok();
    host.run_once_ok();
    let old = host.key();

    // `annexa rotate-key` makes the next key; asking again keeps it.
    let o = host.annexa(&["rotate-key", "--config", host.cfg()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).starts_with("made key "), "{}", show(&o));
    let next_path = host.state.join("agent.key.next");
    let mode = std::fs::metadata(&next_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let o = host.annexa(&["rotate-key", "--config", host.cfg()]);
    assert!(stdout(&o).starts_with("already pending"), "{}", show(&o));

    // Envelope 3 declares the key, signed with the old one; 4 is signed
    // with the new one, and the collector holds the new key.
    host.run_once_ok();
    assert!(!next_path.exists());
    let new = host.key();
    assert_ne!(new.public(), old.public());
    host.run_once_ok();
    let three = c.envelope(&id, 3);
    let declared = &statement_of(&three)["predicate"]["key_rotation"];
    assert_eq!(declared["key_id"], new.public().key_id().as_str());
    let signer = |seq: u64| {
        let env = annexa_evidence::dsse::Envelope::from_json(&c.envelope(&id, seq)).unwrap();
        [old.public(), new.public()].into_iter().position(|k| {
            env.verify(annexa_evidence::dsse::IN_TOTO_PAYLOAD_TYPE, &[k], 1)
                .is_ok()
        })
    };
    assert_eq!(
        (1..=4).map(signer).collect::<Vec<_>>(),
        vec![Some(0), Some(0), Some(0), Some(1)],
        "envelopes 1 to 3 are signed with the old key, 4 with the new"
    );
    assert_eq!(c.host(&id)["key_id"], new.public().key_id().as_str());

    // The old key: what it signed before is still recognised (a re-send is
    // answered with the original receipt); nothing new is accepted.
    let r = c.post_evidence(&three);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["receipt"].is_object());
    let mut st = statement_of(&c.envelope(&id, 4));
    st["predicate"]["sequence"] = 5.into();
    st["predicate"]["previous"] = sha256_hex(&c.envelope(&id, 4)).into();
    st["predicate"]["agent"]["key_id"] = old.public().key_id().into();
    let r = c.post_evidence(&sign_statement(&st, &old));
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (401, codes::UNKNOWN_AGENT),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("retired after sequence 3"),
        "{}",
        r.text()
    );

    // The whole log verifies, each entry under the key in force at its
    // sequence number, and so does a signed report.
    let dir = tempfile::tempdir().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (key, token) = common::auditor_files(&c, dir.path());
    let out = common::assert_log_verifies(&c, &token, &key, &host.state.join("checkpoint"));
    assert!(out.contains("4 (4 envelopes verified"), "{out}");
    common::assert_report_verifies(&c, &token, &key, dir.path());

    // Without the retired key on record, the entries it signed no longer
    // verify: an insider cannot quietly drop a host's key history.
    c.stop();
    common::tamper(&c.data, &["DELETE FROM agent_keys".to_string()]);
    c.restart();
    let held = host.state.join("checkpoint");
    let verify = |c: &Collector| {
        common::annexa_api(
            &["verify", "log"],
            &c.url(),
            &c.ca_path(),
            &token,
            &["--collector-key", s(&key), "--checkpoint", s(&held)],
            &[],
        )
    };
    let o = verify(&c);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(
        out.contains("index 0: the stored leaf hash is not the hash of the entry's fields")
            && out.contains("index 0: agent signature by"),
        "{}",
        show(&o)
    );

    // Nor can an insider write a key history of their own: a retired key
    // whose last envelope declares nothing is found.
    let forged = SigningKey::generate().unwrap().0.public();
    c.stop();
    common::tamper(
        &c.data,
        &[format!(
            "INSERT INTO agent_keys (agent_no, key_id, public_key, until_sequence, retired_at) \
             SELECT no, '{}', '{}', 2, '2026-01-01T00:00:00Z' FROM agents",
            forged.key_id(),
            forged.to_b64()
        )],
    );
    c.restart();
    let o = verify(&c);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stdout(&o).contains(&format!(
            "key {} is recorded as retired after sequence 2, but the log holds no envelope 2 declaring the next key",
            forged.key_id()
        )),
        "{}",
        show(&o)
    );
}

#[test]
fn a_rotation_declared_without_a_valid_proof_is_refused() {
    let c = Collector::start();
    let host = Host::enrolled(&c, "");
    host.run_once_ok();
    let id = host.agent_id();
    let key = host.key();
    let one = c.envelope(&id, 1);
    let (next, _) = SigningKey::generate().unwrap();
    let mut st = statement_of(&one);
    st["predicate"]["sequence"] = 2.into();
    st["predicate"]["previous"] = sha256_hex(&one).into();
    // A proof made for another sequence number.
    let wrong = annexa_evidence::statement::KeyRotation::new(&id, 7, &key.public().key_id(), &next);
    st["predicate"]["key_rotation"] = serde_json::to_value(&wrong).unwrap();
    let r = c.post_evidence(&sign_statement(&st, &key));
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (422, codes::INVALID_STATEMENT),
        "{}",
        r.text()
    );
    assert!(r.text().contains("key_rotation.proof"), "{}", r.text());
    assert_eq!(c.sequences(&id), vec![1]);
    assert_eq!(c.host(&id)["key_id"], key.public().key_id().as_str());
}
