//! Known-answer tests against published vectors (see tests/vectors/README.md).

use annexa_evidence::dsse::{Envelope, pae};
use annexa_evidence::encoding::hex_decode;
use annexa_evidence::keys::{PublicKey, SigningKey};
use annexa_evidence::statement::{StatementError, parse_statement};

fn vectors(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hex(v: &serde_json::Value) -> Vec<u8> {
    hex_decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn dsse_protocol_pae_vector() {
    let v = vectors("dsse.json");
    let got = pae(
        v["payload_type"].as_str().unwrap(),
        v["serialized_body_ascii"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(got, v["pae_ascii"].as_str().unwrap().as_bytes());
    // The published envelope decodes to the same payload and type.
    let env: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    assert_eq!(env.payload_type, v["payload_type"]);
    assert_eq!(
        annexa_evidence::encoding::b64_decode(&env.payload).unwrap(),
        b"hello world"
    );
}

#[test]
fn dsse_ed25519_vectors_accept_and_reject_as_published() {
    let v = vectors("dsse-ed25519-vectors.json");
    let key = |name: &str| PublicKey::from_bytes(&hex(&v["keys"][name]["public"])).unwrap();
    for case in v["vectors"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let env: Envelope = serde_json::from_value(case["envelope"].clone()).unwrap();
        let trusted: Vec<PublicKey> = case["trustedKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| key(k.as_str().unwrap()))
            .collect();
        let threshold = case["threshold"].as_u64().unwrap() as usize;
        // `pae` is what the signer signed; for a rejected (tampered)
        // envelope it differs from the envelope's own PAE by design.
        if let (Some(p), true) = (case.get("pae"), case["expect"] == "accept") {
            let payload = annexa_evidence::encoding::b64_decode(&env.payload).unwrap();
            assert_eq!(pae(&env.payload_type, &payload), hex(p), "{id}: PAE");
        }
        let supported: Vec<&str> = case["supportedPayloadTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let accepted = supported
            .iter()
            .any(|t| env.verify(t, &trusted, threshold).is_ok());
        assert_eq!(accepted, case["expect"] == "accept", "{id}");
    }
}

#[test]
fn our_signatures_match_rfc8032_and_verify_with_the_published_keys() {
    let v = vectors("rfc8032_ed25519.json");
    for case in v["valid"].as_array().unwrap() {
        let key = SigningKey::from_seed(&hex(&case["seed"])).unwrap();
        assert_eq!(
            key.public().0.to_vec(),
            hex(&case["public"]),
            "{}",
            case["name"]
        );
        let msg = hex(&case["message"]);
        assert_eq!(
            key.sign(&msg).to_vec(),
            hex(&case["signature"]),
            "{}",
            case["name"]
        );
    }
    for case in v["invalid"].as_array().unwrap() {
        let public = PublicKey::from_bytes(&hex(&case["public"])).unwrap();
        assert!(
            !public.verify(&hex(&case["message"]), &hex(&case["signature"])),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn wycheproof_ed25519_verification() {
    let v = vectors("wycheproof_ed25519_test.json");
    let mut n = 0;
    for group in v["testGroups"].as_array().unwrap() {
        let Some(public) = PublicKey::from_bytes(&hex(&group["publicKey"]["pk"])) else {
            continue;
        };
        for t in group["tests"].as_array().unwrap() {
            let ok = public.verify(&hex(&t["msg"]), &hex(&t["sig"]));
            assert_eq!(ok, t["result"] == "valid", "tcId {}", t["tcId"]);
            n += 1;
        }
    }
    assert!(n >= 145, "{n}");
}

#[test]
fn in_toto_statement_cases() {
    let v = vectors("statement_v1_cases.json");
    for s in v["valid"].as_array().unwrap() {
        parse_statement(s.as_str().unwrap().as_bytes()).unwrap();
    }
    for case in v["invalid"].as_array().unwrap() {
        let err = parse_statement(case["input"].as_str().unwrap().as_bytes()).unwrap_err();
        let want = case["err"].as_str().unwrap();
        let matches = match want {
            "ErrInvalidStatementType" => matches!(err, StatementError::Type(_)),
            "ErrSubjectRequired" => err == StatementError::SubjectRequired,
            "ErrRDRequiredField" => matches!(err, StatementError::DescriptorField(_)),
            "ErrDigestRequired" => matches!(err, StatementError::DigestRequired(_)),
            "ErrPredicateTypeRequired" => err == StatementError::PredicateTypeRequired,
            "ErrPredicateRequired" => err == StatementError::PredicateRequired,
            other => panic!("unknown expected error {other}"),
        };
        assert!(matches, "{}: got {err:?}, want {want}", case["desc"]);
    }
}

#[test]
fn only_the_encoding_annexa_emits_is_canonical() {
    let key = SigningKey::from_seed(&[9u8; 32]).unwrap();
    let env = annexa_evidence::dsse::sign("application/vnd.in-toto+json", b"{\"a\":1}??>", &key);
    let json = env.to_json();
    assert!(env.is_canonical(&json));
    let spaced = String::from_utf8(json.clone()).unwrap().replace(":", ": ");
    assert!(
        !Envelope::from_json(spaced.as_bytes())
            .unwrap()
            .is_canonical(spaced.as_bytes())
    );
    let mut url_safe = env.clone();
    url_safe.payload = url_safe.payload.replace('+', "-").replace('/', "_");
    assert_ne!(
        url_safe.payload, env.payload,
        "the payload must contain + or / for this test"
    );
    assert!(!url_safe.is_canonical(&url_safe.to_json()));
    // Key ids and extra signature entries are outside the signature: a copy
    // with either changed would still verify, so neither is canonical.
    let mut upper = env.clone();
    upper.signatures[0].keyid = upper.signatures[0].keyid.to_ascii_uppercase();
    assert!(!upper.is_canonical(&upper.to_json()));
    let mut doubled = env.clone();
    doubled.signatures.push(doubled.signatures[0].clone());
    assert!(
        doubled
            .verify("application/vnd.in-toto+json", &[key.public()], 1)
            .is_ok()
    );
    assert!(!doubled.is_canonical(&doubled.to_json()));
    let mut unnamed = env.clone();
    unnamed.signatures[0].keyid.clear();
    assert!(!unnamed.is_canonical(&unnamed.to_json()));
    // Still a valid DSSE envelope: only annexa's ingest insists on one encoding.
    assert!(
        url_safe
            .verify("application/vnd.in-toto+json", &[key.public()], 1)
            .is_ok()
    );
}

#[test]
fn a_signed_envelope_round_trips_and_any_flipped_byte_is_caught() {
    let key = SigningKey::from_seed(&[9u8; 32]).unwrap();
    let env = annexa_evidence::dsse::sign("application/vnd.in-toto+json", br#"{"a":1}"#, &key);
    let json = env.to_json();
    let back = Envelope::from_json(&json).unwrap();
    assert_eq!(
        back.verify("application/vnd.in-toto+json", &[key.public()], 1)
            .unwrap()
            .payload,
        br#"{"a":1}"#
    );
    for i in 0..json.len() {
        let mut bad = json.clone();
        bad[i] ^= 0x01;
        if let Ok(e) = Envelope::from_json(&bad) {
            if let Ok(v) = e.verify("application/vnd.in-toto+json", &[key.public()], 1) {
                // A flip in the keyid hint, or one that decodes to the same bytes, is harmless.
                assert_eq!(v.payload, br#"{"a":1}"#, "byte {i}");
            }
        }
    }
}
