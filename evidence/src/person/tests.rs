use std::collections::BTreeMap;

use annexa_checks::soa::Scope;

use super::rules::{self, PersonRole, RuleError};
use super::*;
use crate::keys::SigningKey;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32]).unwrap()
}

fn soa() -> SoaRef {
    SoaRef {
        version: 3,
        sha256: "ab".repeat(32),
    }
}

fn issued(person: &str, at: &str) -> Issued {
    Issued {
        person: person.into(),
        issued_at: at.into(),
        nonce: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn attestation() -> Attestation {
    Attestation {
        issued: issued("jane@example.org", "2026-12-07T10:00:00Z"),
        control: "5.1".into(),
        soa: soa(),
        statement: "The information security policy was approved by the board.".into(),
        effective: "2026-12-01".into(),
        valid_until: "2027-06-30".into(),
        scope: Scope::parse_selector("env=prod").unwrap(),
    }
}

fn request() -> WaiverRequest {
    WaiverRequest {
        issued: issued("jane@example.org", "2026-12-07T10:00:00Z"),
        control: "8.8".into(),
        check: Some("patching.pending-updates".into()),
        soa: soa(),
        scope: Scope::parse_selector("host=db-3").unwrap(),
        justification: "Vendor certifies only the current kernel.".into(),
        risk: Some("RISK-42".into()),
        compensating: Some("Host isolated in its own VLAN.".into()),
        until: "2027-02-01".into(),
    }
}

fn policy_pdf() -> ResourceDescriptor {
    descriptor("policy.pdf", &crate::sha256_hex(b"%PDF policy"), None)
}

/// The exact bytes of a known attestation (Ed25519 is deterministic), so
/// that docs/evidence-format.md's example and any other implementation
/// can be checked against them.
#[test]
fn attestation_vector() {
    let bytes = sign(
        ATTESTATION_PREDICATE,
        vec![policy_pdf()],
        &attestation(),
        &key(7),
    );
    let expected = include_str!("../../tests/vectors/person-attestation.json").trim_end();
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
    let PersonStatement::Attestation(a, files) = verify(&bytes, &key(7).public()).unwrap() else {
        panic!("not an attestation");
    };
    assert_eq!(a, attestation());
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "policy.pdf");
    assert_eq!(files[0].sha256, crate::sha256_hex(b"%PDF policy"));
}

#[test]
fn another_key_or_a_changed_byte_is_refused() {
    let bytes = sign(
        ATTESTATION_PREDICATE,
        vec![policy_pdf()],
        &attestation(),
        &key(7),
    );
    assert!(matches!(
        verify(&bytes, &key(8).public()),
        Err(PersonError::Signature(_))
    ));
    // Flip one byte of the payload's base64 (a different, still canonical
    // character): the signature no longer covers it.
    let text = String::from_utf8(bytes).unwrap();
    let at = text.find("\"payload\":\"").unwrap() + 40;
    let mut flipped = text.into_bytes();
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    assert!(verify(&flipped, &key(7).public()).is_err());
}

#[test]
fn a_second_signature_is_not_canonical() {
    let bytes = sign(
        ATTESTATION_PREDICATE,
        vec![policy_pdf()],
        &attestation(),
        &key(7),
    );
    let mut env = crate::dsse::Envelope::from_json(&bytes).unwrap();
    env.signatures.push(env.signatures[0].clone());
    let err = verify(&env.to_json(), &key(7).public()).unwrap_err();
    assert!(matches!(err, PersonError::Envelope(_)), "{err}");
}

#[test]
fn an_attestation_without_files_is_about_its_text() {
    let a = attestation();
    let bytes = sign(
        ATTESTATION_PREDICATE,
        vec![statement_subject(&a.statement)],
        &a,
        &key(7),
    );
    let PersonStatement::Attestation(_, files) = verify(&bytes, &key(7).public()).unwrap() else {
        panic!("not an attestation");
    };
    assert!(files.is_empty());
}

#[test]
fn malformed_predicates_name_the_field() {
    let cases: Vec<(serde_json::Value, Vec<ResourceDescriptor>, &str)> = vec![
        (
            {
                let mut v = serde_json::to_value(attestation()).unwrap();
                v["valid_until"] = "2026-01-01".into();
                v
            },
            vec![policy_pdf()],
            "predicate.valid_until",
        ),
        (
            {
                let mut v = serde_json::to_value(attestation()).unwrap();
                v["effective"] = "1 Dec 2026".into();
                v
            },
            vec![policy_pdf()],
            "predicate.effective",
        ),
        (
            {
                let mut v = serde_json::to_value(attestation()).unwrap();
                v["extra"] = "x".into();
                v
            },
            vec![policy_pdf()],
            "predicate",
        ),
        (
            {
                let mut v = serde_json::to_value(attestation()).unwrap();
                v["nonce"] = "short".into();
                v
            },
            vec![policy_pdf()],
            "predicate.nonce",
        ),
        (
            {
                let mut v = serde_json::to_value(attestation()).unwrap();
                v["person"] = "jane".into();
                v
            },
            vec![policy_pdf()],
            "predicate.person",
        ),
        (
            serde_json::to_value(attestation()).unwrap(),
            vec![descriptor("../etc/passwd", &"00".repeat(32), None)],
            "subject[0].name",
        ),
        (
            serde_json::to_value(attestation()).unwrap(),
            vec![descriptor("a.pdf", "ABC", None)],
            "subject[0].digest.sha256",
        ),
        (
            serde_json::to_value(attestation()).unwrap(),
            vec![policy_pdf(), policy_pdf()],
            "subject[1].name",
        ),
        (
            serde_json::to_value(attestation()).unwrap(),
            vec![descriptor("a.pdf", &"00".repeat(32), Some("not a uri"))],
            "subject[0].uri",
        ),
    ];
    for (predicate, subjects, expected_field) in cases {
        let bytes = sign(ATTESTATION_PREDICATE, subjects, &predicate, &key(7));
        match verify(&bytes, &key(7).public()) {
            Err(PersonError::Field { field, problem }) => {
                assert_eq!(field, expected_field, "{problem}")
            }
            other => panic!("{expected_field}: {other:?}"),
        }
    }
}

#[test]
fn subjects_are_bound_to_the_predicate() {
    let r = request();
    // A request about another SoA than its predicate names.
    let other = SoaRef {
        version: 3,
        sha256: "cd".repeat(32),
    };
    let bytes = sign(
        WAIVER_REQUEST_PREDICATE,
        vec![soa_subject(&other)],
        &r,
        &key(7),
    );
    assert!(matches!(
        verify(&bytes, &key(7).public()),
        Err(PersonError::Field { field, .. }) if field == "subject"
    ));
    let good = sign(
        WAIVER_REQUEST_PREDICATE,
        vec![soa_subject(&r.soa)],
        &r,
        &key(7),
    );
    assert!(matches!(
        verify(&good, &key(7).public()).unwrap(),
        PersonStatement::WaiverRequest(_)
    ));
    // A decision whose subject is not the request it names.
    let d = WaiverDecision {
        issued: issued("sam@example.org", "2026-12-07T11:00:00Z"),
        request: crate::sha256_hex(&good),
        decision: Decision::Approve,
        reason: String::new(),
    };
    let moved = sign(
        WAIVER_DECISION_PREDICATE,
        vec![envelope_subject(&"00".repeat(32))],
        &d,
        &key(8),
    );
    assert!(verify(&moved, &key(8).public()).is_err());
    let ok = sign(
        WAIVER_DECISION_PREDICATE,
        vec![envelope_subject(&d.request)],
        &d,
        &key(8),
    );
    assert!(matches!(
        verify(&ok, &key(8).public()).unwrap(),
        PersonStatement::WaiverDecision(_)
    ));
}

#[test]
fn a_refusal_needs_a_reason_and_a_waiver_a_scope() {
    let d = WaiverDecision {
        issued: issued("sam@example.org", "2026-12-07T11:00:00Z"),
        request: "11".repeat(32),
        decision: Decision::Refuse,
        reason: " ".into(),
    };
    let bytes = sign(
        WAIVER_DECISION_PREDICATE,
        vec![envelope_subject(&d.request)],
        &d,
        &key(8),
    );
    assert!(matches!(
        verify(&bytes, &key(8).public()),
        Err(PersonError::Field { field, .. }) if field == "predicate.reason"
    ));
    let mut r = request();
    r.scope = Scope::default();
    let bytes = sign(
        WAIVER_REQUEST_PREDICATE,
        vec![soa_subject(&r.soa)],
        &r,
        &key(7),
    );
    assert!(matches!(
        verify(&bytes, &key(7).public()),
        Err(PersonError::Field { field, .. }) if field == "predicate.scope"
    ));
}

#[test]
fn actions_open_and_close() {
    let a = Action {
        issued: issued("jane@example.org", "2026-12-07T10:00:00Z"),
        control: "8.15".into(),
        soa: soa(),
        scope: Scope::parse_selector("host=db-3").unwrap(),
        owner: "ops@example.org".into(),
        due: "2027-01-15".into(),
        cause: "logrotate keeps four weeks".into(),
    };
    let opened = sign(ACTION_PREDICATE, vec![soa_subject(&a.soa)], &a, &key(7));
    assert_eq!(
        verify(&opened, &key(7).public()).unwrap(),
        PersonStatement::Action(a)
    );
    let c = ActionClose {
        issued: issued("ops@example.org", "2027-01-10T10:00:00Z"),
        action: crate::sha256_hex(&opened),
        resolution: "rotate 13 weekly".into(),
    };
    let closed = sign(
        ACTION_CLOSE_PREDICATE,
        vec![envelope_subject(&c.action)],
        &c,
        &key(9),
    );
    assert_eq!(
        verify(&closed, &key(9).public()).unwrap().predicate_type(),
        ACTION_CLOSE_PREDICATE
    );
}

#[test]
fn unknown_predicate_types_are_refused() {
    let bytes = sign(
        "urn:annexa:predicate:scan-run:v1",
        vec![soa_subject(&soa())],
        &BTreeMap::<String, String>::new(),
        &key(7),
    );
    assert!(matches!(
        verify(&bytes, &key(7).public()),
        Err(PersonError::Field { field, .. }) if field == "predicateType"
    ));
}

#[test]
fn owners_are_the_e_mail_addresses_of_the_owner_field() {
    let o = rules::owners("Jane Doe <Jane@Example.org>, ops@example.org; CISO");
    assert_eq!(
        o.into_iter().collect::<Vec<_>>(),
        ["jane@example.org", "ops@example.org"]
    );
    assert!(
        rules::may_speak_for(
            "jane@example.org",
            &[PersonRole::Owner],
            "5.1",
            3,
            "Jane <jane@example.org>"
        )
        .is_ok()
    );
    let err = rules::may_speak_for("sam@example.org", &[PersonRole::Owner], "5.1", 3, "CISO")
        .unwrap_err();
    assert_eq!(err.code(), "not_owner");
    assert!(
        rules::may_speak_for("root@example.org", &[PersonRole::Admin], "5.1", 3, "CISO").is_ok()
    );
    let err = rules::may_speak_for(
        "jane@example.org",
        &[PersonRole::Approver],
        "5.1",
        3,
        "jane@example.org",
    )
    .unwrap_err();
    assert_eq!(err.code(), "role");
}

#[test]
fn four_eyes_and_the_longest_waiver() {
    let r = request();
    let decide = |person: &str, at: &str| WaiverDecision {
        issued: issued(person, at),
        request: "11".repeat(32),
        decision: Decision::Approve,
        reason: String::new(),
    };
    let own = rules::may_decide(
        &r,
        &decide("Jane@example.org", "2026-12-07T11:00:00Z"),
        &[PersonRole::Approver],
        90,
    );
    assert_eq!(own.unwrap_err().code(), "four_eyes");
    let not_approver = rules::may_decide(
        &r,
        &decide("sam@example.org", "2026-12-07T11:00:00Z"),
        &[PersonRole::Owner],
        90,
    );
    assert_eq!(not_approver.unwrap_err().code(), "role");
    assert!(
        rules::may_decide(
            &r,
            &decide("sam@example.org", "2026-12-07T11:00:00Z"),
            &[PersonRole::Approver],
            90
        )
        .is_ok()
    );
    // 2026-12-07 to 2027-02-01 is 56 days: over a 30-day maximum.
    let long = rules::may_decide(
        &r,
        &decide("sam@example.org", "2026-12-07T11:00:00Z"),
        &[PersonRole::Approver],
        30,
    );
    assert!(matches!(long, Err(RuleError::Expiry(m)) if m.contains("56 days")));
    // Approved after its last day: it would start after it ended.
    let late = rules::may_decide(
        &r,
        &decide("sam@example.org", "2027-02-02T00:00:00Z"),
        &[PersonRole::Approver],
        90,
    );
    assert_eq!(late.unwrap_err().code(), "expiry");
    // In force through its last day, UTC.
    assert_eq!(
        rules::waiver_end(&r, None),
        super::end_of_day("2027-02-01").unwrap()
    );
    assert_eq!(rules::waiver_end(&r, Some(100)), 100);
}

#[test]
fn statements_are_accepted_only_when_just_signed() {
    let i = issued("jane@example.org", "2026-12-07T10:00:00Z");
    let at = annexa_checks::conformity::parse_time("2026-12-07T10:00:00Z").unwrap();
    assert!(rules::fresh(&i, at + 299).is_ok());
    assert_eq!(
        rules::fresh(&i, at + 301).unwrap_err().code(),
        "stale_statement"
    );
    assert_eq!(
        rules::fresh(&i, at - 301).unwrap_err().code(),
        "stale_statement"
    );
}

#[test]
fn dates_count_days() {
    assert_eq!(day_number("1970-01-02"), Some(1));
    assert_eq!(end_of_day("1970-01-01"), Some(86_400));
    assert_eq!(day_number("2027-02-30"), None);
    assert_eq!(day_number("2027-2-3"), None);
}
