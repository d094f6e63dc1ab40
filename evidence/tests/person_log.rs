//! A person's statement in the evidence log: its own leaf kind, listed in
//! a bundle with the person's keys, and verified by the whole-log audit
//! (signature by the key in force when it was accepted, the logged digest
//! and type, the signer's name), next to agents' envelopes.

use annexa_evidence::audit::{Verification, verify_bundle};
use annexa_evidence::keys::SigningKey;
use annexa_evidence::log::PersonLogEntry;
use annexa_evidence::merkle::MemoryTree;
use annexa_evidence::note::{Checkpoint, Verifier};
use serde_json::{Value, json};

const ORIGIN: &str = "annexa.test/log";
const ACCEPTED: &str = "2026-12-07T10:00:01Z";
/// Signed by the key of seed 0x07 as jane@example.org (see
/// src/person/tests.rs).
const STATEMENT: &str = include_str!("vectors/person-attestation.json");

fn jane() -> SigningKey {
    SigningKey::from_seed(&[7; 32]).unwrap()
}

fn person(keys: Value, revoked_at: Option<&str>) -> Value {
    let mut p =
        json!({"type": "person", "email": "jane@example.org", "roles": ["owner"], "keys": keys});
    if let Some(r) = revoked_at {
        p["revoked_at"] = r.into();
    }
    p
}

fn key(k: &SigningKey, added: &str, retired: Option<&str>) -> Value {
    let mut v = json!({"key_id": k.public().key_id(), "public_key": k.public().to_b64(), "added_at": added});
    if let Some(r) = retired {
        v["retired_at"] = r.into();
    }
    v
}

/// A bundle of one person entry, `person_record` listing the signer, and a
/// checkpoint over the tree of the entry as `logged` describes it.
fn bundle(person_record: Value, logged: PersonLogEntry, envelope: &str) -> String {
    let collector = SigningKey::from_seed(&[1; 32]).unwrap();
    let mut tree = MemoryTree::new();
    tree.push(logged.leaf_hash());
    let note = Checkpoint {
        origin: ORIGIN.into(),
        size: 1,
        root: tree.root(),
    }
    .sign(&collector)
    .unwrap();
    let entry = format!(
        r#"{{"type":"person_entry","index":0,"person":"{}","key_id":"{}","predicate_type":"{}","envelope_sha256":"{}","accepted_at":"{}","leaf_hash":"{}","envelope":{}}}"#,
        logged.person,
        logged.key_id,
        logged.predicate_type,
        logged.envelope_sha256,
        logged.accepted_at,
        annexa_evidence::encoding::hex(&logged.leaf_hash()),
        envelope
    );
    [
        json!({"type": "header", "format": "annexa-log-bundle/1", "origin": ORIGIN, "exported_at": ACCEPTED, "size": 1}).to_string(),
        person_record.to_string(),
        entry,
        json!({"type": "checkpoint", "note": note, "signed_at": ACCEPTED}).to_string(),
        json!({"type": "end", "entries": 1}).to_string(),
    ]
    .join("\n")
}

fn logged() -> PersonLogEntry {
    PersonLogEntry {
        person: "jane@example.org".into(),
        key_id: jane().public().key_id(),
        predicate_type: "urn:annexa:predicate:attestation:v1".into(),
        envelope_sha256: annexa_evidence::sha256_hex(STATEMENT.trim_end().as_bytes()),
        accepted_at: ACCEPTED.into(),
    }
}

fn audit(bundle: &str) -> Verification {
    let collector = SigningKey::from_seed(&[1; 32]).unwrap();
    let verifier = Verifier::new(ORIGIN, collector.public()).unwrap();
    verify_bundle(bundle.as_bytes(), &verifier, &[], 1).unwrap()
}

fn problems(v: &Verification) -> String {
    v.problems
        .iter()
        .map(|p| p.what.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_leaf_is_six_lines_of_its_own_kind() {
    let text = String::from_utf8(logged().to_bytes()).unwrap();
    assert_eq!(
        text,
        format!(
            "annexa/log-entry/person/v1\nperson jane@example.org\nkey {}\ntype urn:annexa:predicate:attestation:v1\nenvelope sha256:{}\naccepted {ACCEPTED}\n",
            jane().public().key_id(),
            logged().envelope_sha256
        )
    );
}

#[test]
fn a_statement_by_a_registered_key_verifies() {
    let v = audit(&bundle(
        person(json!([key(&jane(), "2026-12-01T00:00:00Z", None)]), None),
        logged(),
        STATEMENT.trim_end(),
    ));
    assert!(v.ok(), "{}", problems(&v));
    assert_eq!((v.entries, v.person_statements_verified), (1, 1));
}

#[test]
fn every_tampering_or_wrong_key_is_a_problem_at_its_index() {
    let registered = || person(json!([key(&jane(), "2026-12-01T00:00:00Z", None)]), None);
    let other = SigningKey::from_seed(&[9; 32]).unwrap();
    let mut as_sam = logged();
    as_sam.person = "sam@example.org".into();
    let sam = json!({"type": "person", "email": "sam@example.org", "roles": ["owner"],
        "keys": [key(&jane(), "2026-12-01T00:00:00Z", None)]});
    let mut as_waiver = logged();
    as_waiver.predicate_type = "urn:annexa:predicate:waiver-request:v1".into();
    // One character of the signed payload changed (still valid base64).
    let at = STATEMENT.find("\"payload\":\"").unwrap() + 60;
    let mut altered = STATEMENT.trim_end().to_string();
    let c = if &altered[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    altered.replace_range(at..at + 1, c);
    let mut altered_logged = logged();
    altered_logged.envelope_sha256 = annexa_evidence::sha256_hex(altered.as_bytes());

    let cases: Vec<(&str, Value, PersonLogEntry, String, &str)> = vec![
        (
            "altered after logging",
            registered(),
            logged(),
            altered.clone(),
            "the statement was altered",
        ),
        (
            "altered before logging",
            registered(),
            altered_logged,
            altered,
            "statement by jane@example.org: signature",
        ),
        (
            "key retired before",
            person(
                json!([
                    key(
                        &jane(),
                        "2026-12-01T00:00:00Z",
                        Some("2026-12-05T00:00:00Z")
                    ),
                    key(&other, "2026-12-05T00:00:00Z", None)
                ]),
                None,
            ),
            logged(),
            STATEMENT.trim_end().into(),
            "was retired before",
        ),
        (
            "key registered after",
            person(json!([key(&jane(), "2026-12-08T00:00:00Z", None)]), None),
            logged(),
            STATEMENT.trim_end().into(),
            "after the statement was accepted",
        ),
        (
            "person revoked before",
            person(
                json!([key(&jane(), "2026-12-01T00:00:00Z", None)]),
                Some("2026-12-06T00:00:00Z"),
            ),
            logged(),
            STATEMENT.trim_end().into(),
            "was revoked before",
        ),
        (
            "another person's key",
            person(json!([key(&other, "2026-12-01T00:00:00Z", None)]), None),
            logged(),
            STATEMENT.trim_end().into(),
            "is not one of jane@example.org's keys",
        ),
        (
            "logged as someone else",
            sam,
            as_sam,
            STATEMENT.trim_end().into(),
            "signed as jane@example.org",
        ),
        (
            "logged as another type",
            registered(),
            as_waiver,
            STATEMENT.trim_end().into(),
            "logged as a urn:annexa:predicate:waiver-request:v1",
        ),
    ];
    for (what, record, entry, envelope, expected) in cases {
        let v = audit(&bundle(record, entry, &envelope));
        assert!(!v.ok(), "{what}: not caught");
        assert_eq!(v.person_statements_verified, 0, "{what}");
        assert!(problems(&v).contains(expected), "{what}: {}", problems(&v));
        assert!(
            v.problems.iter().all(|p| p.index.is_none_or(|i| i == 0)),
            "{what}"
        );
    }
}

#[test]
fn an_edited_leaf_no_longer_matches_its_hash_or_the_checkpoint() {
    let good = bundle(
        person(json!([key(&jane(), "2026-12-01T00:00:00Z", None)]), None),
        logged(),
        STATEMENT.trim_end(),
    );
    // The accepted time edited in the stored row, its leaf hash left.
    let edited = good.replacen(
        &format!("\"accepted_at\":\"{ACCEPTED}\""),
        "\"accepted_at\":\"2026-12-07T09:00:00Z\"",
        1,
    );
    let v = audit(&edited);
    assert!(
        problems(&v).contains("the entry was edited"),
        "{}",
        problems(&v)
    );
    assert!(problems(&v).contains("root"), "{}", problems(&v));
}
