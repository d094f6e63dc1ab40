//! End to end: the real `annexa` agent enrolls with and delivers signed
//! evidence to the real `annexa-collector` over TLS on 127.0.0.1; the
//! collector refuses every kind of bad envelope (storing nothing), guards
//! its API with tokens, and counts what it accepted and refused.
//!
//! Faults (collector or agent stopped or killed at bad moments, a full
//! spool) are in evidence_faults.rs; the harness is in common/mod.rs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use annexa_evidence::api::codes;
use annexa_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::encoding::{b64, b64_decode};
use annexa_evidence::keys::SigningKey;
use annexa_evidence::receipt::Receipt;
use annexa_evidence::sha256_hex;
use annexa_evidence::statement::parse_scan_statement;
use serde_json::{Value, json};

use common::{
    Collector, Host, WAIT, metric, one_to, receipts_match, show, sign_payload, sign_statement,
    statement_of, stderr, stdout, stored_chain, wait_for,
};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A data directory of another collector (never served): its CA is not
/// the one the collector under test presents.
fn other_ca() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = std::process::Command::new(common::bin("annexa-collector"))
        .args(["init", "--name", "127.0.0.1", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let ca = data.join("ca.crt");
    let fp = common::pem_fingerprint(&ca);
    (dir, ca, fp)
}

#[test]
fn an_enrolled_agent_delivers_signed_evidence_and_keeps_verified_receipts() {
    let c = Collector::start();
    let host = Host::new(&c.url(), "[labels]\nenv = \"test\"\n");
    let token = c.enroll_token(None);
    let o = host.enroll(&c, &token);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let id = host.agent_id();
    let out = stdout(&o);
    assert!(out.contains(&format!("enrolled as agent {id}")), "{out}");
    assert!(out.contains(&c.receipt_key().key_id()), "{out}");
    assert!(out.contains(&host.state.display().to_string()), "{out}");
    assert!(
        !out.contains(&token) && !stderr(&o).contains(&token),
        "the token is never printed or logged"
    );

    // The state directory: private, with the pinned CA being the
    // collector's CA (found by fingerprint), the collector's receipt key
    // and an empty chain.
    assert_eq!(mode(&host.state) & 0o077, 0);
    assert_eq!(mode(&host.state.join("agent.key")), 0o600);
    let enrollment = host.enrollment();
    assert_eq!(enrollment["server"], c.url().as_str());
    assert_eq!(
        enrollment["collector_public_key"],
        c.receipt_key().to_b64().as_str()
    );
    assert_eq!(enrollment["labels"]["env"], "test");
    assert_eq!(
        std::fs::read_to_string(host.state.join("ca.pem"))
            .unwrap()
            .trim(),
        std::fs::read_to_string(c.ca_path()).unwrap().trim()
    );
    assert_eq!(host.chain(), (0, None));

    // The collector lists the agent with its key.
    let agent_key = host.key().public();
    let hosts = c.hosts();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["id"], id.as_str());
    assert_eq!(hosts[0]["public_key"], agent_key.to_b64().as_str());
    assert_eq!(hosts[0]["key_id"], agent_key.key_id().as_str());
    assert_eq!(hosts[0]["next_sequence"], 1);
    assert_eq!(hosts[0]["revoked_at"], Value::Null);
    assert!(c.sequences(&id).is_empty());

    // One run: produced, delivered, acknowledged.
    let out = host.run_once_ok();
    assert!(out.contains("produced envelope 1 "), "{out}");
    assert!(out.contains("delivered 1, 0 still spooled"), "{out}");
    assert!(host.spooled().is_empty());
    let receipts = host.receipts();
    assert_eq!(receipts.len(), 1);
    let r = &receipts[0].receipt;
    assert_eq!(
        (r.sequence, r.agent_id.as_str(), r.duplicate),
        (1, id.as_str(), false)
    );
    assert_eq!(c.sequences(&id), [1]);
    let first = c.envelope(&id, 1);
    assert_eq!(
        sha256_hex(&first),
        r.envelope_sha256,
        "stored byte for byte"
    );
    Receipt::verify(
        &receipts[0].envelope,
        &c.receipt_key(),
        &sha256_hex(&first),
        &id,
        1,
    )
    .expect("the receipt verifies with the collector's key");
    let verified = Envelope::from_json(&first)
        .unwrap()
        .verify(IN_TOTO_PAYLOAD_TYPE, &[agent_key], 1)
        .expect("the stored envelope verifies with the agent's key");
    let st = parse_scan_statement(&verified.payload).unwrap();
    assert_eq!(
        st.subject[0].name.as_deref(),
        Some(format!("annexa-agent:{id}").as_str())
    );
    assert_eq!(st.predicate.sequence, 1);
    assert_eq!(st.predicate.previous, None);
    assert_eq!(st.predicate.agent.key_id, agent_key.key_id());
    assert_eq!(st.predicate.labels["env"], "test");
    assert!(!st.predicate.scan.results.is_empty());
    assert_eq!(host.chain(), (1, Some(sha256_hex(&first))));

    // The second run links to the first.
    let out = host.run_once_ok();
    assert!(out.contains("produced envelope 2 "), "{out}");
    let second = statement_of(&c.envelope(&id, 2));
    assert_eq!(second["predicate"]["sequence"], 2);
    assert_eq!(second["predicate"]["previous"], sha256_hex(&first).as_str());
    let chain = stored_chain(&c, &id, &agent_key);
    assert_eq!(chain.iter().map(|s| s.sequence).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(receipts_match(&c, &host, &chain), [1, 2]);
    let detail = c.host(&id);
    assert_eq!(detail["next_sequence"], 3);
    assert_eq!(detail["last_digest"], chain[1].sha256.as_str());
    assert!(!detail["latest"].as_array().unwrap().is_empty());
    // Metadata carries the summary of each run.
    assert!(
        chain[1].meta["summary"]["pass"].is_u64(),
        "{}",
        chain[1].meta
    );
}

#[test]
fn enrollment_refusals_exit_2_with_the_collectors_reason() {
    let c = Collector::start();
    let (_other, other_ca, other_fp) = other_ca();
    let a = Host::new(&c.url(), "");
    let token = c.enroll_token(None);

    // A fingerprint that matches nothing the collector presents.
    let o = a.annexa(&[
        "enroll",
        "--server",
        &c.url(),
        "--token",
        &token,
        "--ca-fingerprint",
        &other_fp,
        "--config",
        a.config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("no certificate with fingerprint"), "{err}");
    assert!(err.contains(&other_fp["SHA256:".len()..]), "{err}");
    // Another collector's CA file: the handshake fails.
    let o = a.annexa(&[
        "enroll",
        "--server",
        &c.url(),
        "--token",
        &token,
        "--ca",
        other_ca.to_str().unwrap(),
        "--config",
        a.config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("certificate"), "{}", show(&o));
    assert!(!a.state.join("enrollment.json").exists());
    assert!(c.hosts().is_empty(), "failed handshakes enroll nothing");

    // The failed attempts did not spend the token; enroll with the CA file.
    let o = a.enroll_with_ca(&c, &token);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let id = a.agent_id();

    // Used, unknown and expired tokens.
    let b = Host::new(&c.url(), "");
    let o = b.enroll(&c, &token);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("(401 bad_token): enrollment token already used"),
        "{}",
        show(&o)
    );
    let o = b.enroll(&c, "annexa-enroll-thisisnotatokenthecollectorissued");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("unknown enrollment token"),
        "{}",
        show(&o)
    );
    let short = c.enroll_token(Some("1s"));
    let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // It expires when the clock reaches the next whole second.
    let expired_at = Duration::from_secs(created.as_secs() + 1);
    let left = expired_at.saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
    std::thread::sleep(left + Duration::from_millis(50));
    let o = b.enroll(&c, &short);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("enrollment token expired"),
        "{}",
        show(&o)
    );
    assert!(!b.state.join("enrollment.json").exists());

    // Re-enrolling with the same key is idempotent: with the token it used,
    // or with a valid token, which stays unused.
    let o = a.enroll(&c, &token);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(a.agent_id(), id);
    let fresh = c.enroll_token(None);
    let o = a.enroll(&c, &fresh);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(a.agent_id(), id);
    let o = b.enroll(&c, &fresh);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_ne!(b.agent_id(), id);
    let mut ids: Vec<String> = c
        .hosts()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = vec![id.clone(), b.agent_id()];
    want.sort();
    assert_eq!(ids, want);

    // Usage errors, before anything is sent.
    let o = b.annexa(&["enroll", "--server", &c.url(), "--token", "t"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "exactly one of --ca and --ca-fingerprint"
    );
    let o = b.annexa(&[
        "enroll",
        "--server",
        "http://127.0.0.1:1",
        "--token",
        "t",
        "--ca-fingerprint",
        &c.fingerprint,
        "--config",
        b.config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("https"), "{}", show(&o));

    let m = c.metrics();
    assert_eq!(metric(&m, "annexa_agents_enrolled_total"), 2.0, "{m}");
    assert_eq!(
        metric(&m, "annexa_envelopes_rejected_total{reason=\"bad_token\"}"),
        3.0,
        "{m}"
    );
}

/// Asserts a refusal of `POST /v1/evidence` and that nothing was stored.
#[track_caller]
fn refused(
    c: &Collector,
    id: &str,
    bytes: &[u8],
    status: u16,
    code: &str,
    stored: &[u64],
) -> Value {
    let r = c.post_evidence(bytes);
    let e = r.error();
    assert_eq!((r.status, e.error.as_str()), (status, code), "{}", r.text());
    assert_eq!(c.sequences(id), stored, "a refused envelope is not stored");
    r.json()
}

/// `max_body_bytes` of the collector that refuses bad envelopes.
const LIMIT: usize = 1 << 20;

/// Two envelopes of `statement` padded with a label: the largest that
/// fits in `limit` bytes and one just over it. (Only just over: a
/// collector that refuses a body closes the connection with the rest of
/// the body unread, and a client still sending it sees a reset instead of
/// the answer.)
fn around_the_limit(statement: &Value, key: &SigningKey, limit: usize) -> (Vec<u8>, Vec<u8>) {
    let padded = |n: usize| {
        let mut s = statement.clone();
        s["predicate"]["labels"]["padding"] = json!("x".repeat(n));
        sign_statement(&s, key)
    };
    // The size grows with the padding: find the first padding over the limit.
    let (mut lo, mut hi) = (0, limit);
    assert!(padded(lo).len() <= limit && padded(hi).len() > limit);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if padded(mid).len() <= limit {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (padded(lo), padded(hi))
}

#[test]
fn every_bad_envelope_is_refused_with_its_code_and_nothing_is_stored() {
    let c = Collector::start_with(&format!("max_body_bytes = {LIMIT}\n"));
    let host = Host::enrolled(&c, "");
    let id = host.agent_id();
    let key = host.key();
    host.run_once_ok();
    let first = c.envelope(&id, 1);
    let sha1 = sha256_hex(&first);
    let st1 = statement_of(&first);
    // A valid next envelope, forged with the agent's key.
    let mut st2 = st1.clone();
    st2["predicate"]["sequence"] = json!(2);
    st2["predicate"]["previous"] = json!(sha1);
    let valid2 = sign_statement(&st2, &key);

    // Signed by a key no agent enrolled.
    let (stranger, _) = SigningKey::generate().unwrap();
    refused(
        &c,
        &id,
        &sign_statement(&st2, &stranger),
        401,
        codes::UNKNOWN_AGENT,
        &[1],
    );
    // The agent's key id, a signature that does not verify.
    let mut env = Envelope::from_json(&valid2).unwrap();
    let mut sig = b64_decode(&env.signatures[0].sig).unwrap();
    sig[10] ^= 0x01;
    env.signatures[0].sig = b64(&sig);
    refused(&c, &id, &env.to_json(), 401, codes::BAD_SIGNATURE, &[1]);
    // The payload signed, then changed.
    let mut env = Envelope::from_json(&valid2).unwrap();
    let mut other = st2.clone();
    other["predicate"]["labels"] = json!({"env": "forged"});
    env.payload = b64(&serde_json::to_vec(&other).unwrap());
    refused(&c, &id, &env.to_json(), 401, codes::BAD_SIGNATURE, &[1]);

    // Validly signed, but not the statement the collector expects.
    for (what, payload) in [
        ("other JSON", br#"{"hello":"world"}"#.to_vec()),
        ("not JSON", b"scan ok".to_vec()),
        ("another predicate type", {
            let mut s = st2.clone();
            s["predicateType"] = json!("https://slsa.dev/provenance/v1");
            serde_json::to_vec(&s).unwrap()
        }),
        ("another statement type", {
            let mut s = st2.clone();
            s["_type"] = json!("https://in-toto.io/Statement/v0.1");
            serde_json::to_vec(&s).unwrap()
        }),
        ("another agent in the predicate", {
            let mut s = st2.clone();
            s["predicate"]["agent"]["id"] = json!("ag-someone-else");
            serde_json::to_vec(&s).unwrap()
        }),
        ("another machine", {
            let mut s = st2.clone();
            s["subject"][0]["digest"]["sha256"] = json!("0".repeat(64));
            serde_json::to_vec(&s).unwrap()
        }),
    ] {
        let r = c.post_evidence(&sign_payload(&payload, &key));
        assert_eq!(
            (r.status, r.error().error.as_str()),
            (422, codes::INVALID_STATEMENT),
            "{what}: {}",
            r.text()
        );
    }
    let other_type =
        annexa_evidence::dsse::sign("application/json", &serde_json::to_vec(&st2).unwrap(), &key);
    refused(
        &c,
        &id,
        &other_type.to_json(),
        422,
        codes::INVALID_STATEMENT,
        &[1],
    );

    // Sequence rules: sequence 1 again with other bytes, a jump without a
    // gap, and the right number not linking to the last envelope.
    let mut replay = st1.clone();
    replay["predicate"]["labels"] = json!({"env": "rewritten"});
    let e = refused(
        &c,
        &id,
        &sign_statement(&replay, &key),
        409,
        codes::SEQUENCE,
        &[1],
    );
    assert_eq!(e["expected_sequence"], 2, "{e}");
    let mut jump = st2.clone();
    jump["predicate"]["sequence"] = json!(3);
    let e = refused(
        &c,
        &id,
        &sign_statement(&jump, &key),
        409,
        codes::SEQUENCE,
        &[1],
    );
    assert_eq!(e["expected_sequence"], 2, "{e}");
    let mut unlinked = st2.clone();
    unlinked["predicate"]["previous"] = json!("ab".repeat(32));
    let e = refused(
        &c,
        &id,
        &sign_statement(&unlinked, &key),
        409,
        codes::SEQUENCE,
        &[1],
    );
    assert_eq!(e["expected_sequence"], 2, "{e}");

    // The exact bytes again: the original acceptance, marked duplicate.
    let original = host.receipts()[0].receipt.clone();
    let r = c.post_evidence(&first);
    assert_eq!(r.status, 200, "{}", r.text());
    let receipt = Envelope::from_json(&serde_json::to_vec(&r.json()["receipt"]).unwrap()).unwrap();
    let dup = Receipt::verify(&receipt, &c.receipt_key(), &sha1, &id, 1).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.accepted_at, original.accepted_at);
    assert_eq!(c.sequences(&id), [1]);

    // Too large: one byte over max_body_bytes is refused, a valid envelope
    // of exactly as many bytes as fit is accepted below.
    let (largest, too_large) = around_the_limit(&st2, &key, LIMIT);
    assert!(largest.len() <= LIMIT && too_large.len() > LIMIT);
    let r = c.post_evidence(&too_large);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error().error, codes::TOO_LARGE, "{}", r.text());
    assert_eq!(c.sequences(&id), [1]);
    refused(&c, &id, b"{\"payload\": ", 400, codes::MALFORMED, &[1]);
    refused(&c, &id, b"[1, 2, 3]", 400, codes::MALFORMED, &[1]);
    let mut extra: Value = serde_json::from_slice(&valid2).unwrap();
    extra["comment"] = json!("unknown fields are refused");
    refused(
        &c,
        &id,
        &serde_json::to_vec(&extra).unwrap(),
        400,
        codes::MALFORMED,
        &[1],
    );

    // Everything refused left the chain where it was: the forged but valid
    // envelope 2, as large as the limit allows, is accepted.
    let valid2 = largest;
    let r = c.post_evidence(&valid2);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.sequences(&id), [1, 2]);

    // Revoked with the command line while the collector runs (it has the
    // agent's key cached): refused from then on, replays included.
    let mut st3 = st2.clone();
    st3["predicate"]["sequence"] = json!(3);
    st3["predicate"]["previous"] = json!(sha256_hex(&valid2));
    let o = c.cli(&["agent", "revoke", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    refused(
        &c,
        &id,
        &sign_statement(&st3, &key),
        403,
        codes::REVOKED_AGENT,
        &[1, 2],
    );
    refused(&c, &id, &valid2, 403, codes::REVOKED_AGENT, &[1, 2]);
    assert!(c.host(&id)["revoked_at"].is_string());
    // The agent reports the refusal and keeps its envelope.
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("revoked_agent"), "{}", show(&o));
    assert_eq!(host.spooled(), [2]);
    assert_eq!(c.sequences(&id), [1, 2]);

    // Every refusal was counted by its reason.
    let m = c.metrics();
    for (reason, n) in [
        (codes::UNKNOWN_AGENT, 1.0),
        (codes::BAD_SIGNATURE, 2.0),
        (codes::INVALID_STATEMENT, 7.0),
        (codes::SEQUENCE, 3.0),
        (codes::TOO_LARGE, 1.0),
        (codes::MALFORMED, 3.0),
        (codes::REVOKED_AGENT, 3.0),
    ] {
        let sample = format!("annexa_envelopes_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &sample), n, "{sample}\n{m}");
    }
    assert_eq!(metric(&m, "annexa_envelopes_accepted_total"), 2.0, "{m}");
    assert_eq!(metric(&m, "annexa_envelopes_duplicate_total"), 1.0, "{m}");
}

#[test]
fn an_agent_revoked_through_the_api_is_refused_at_once() {
    let c = Collector::start();
    let host = Host::enrolled(&c, "");
    let id = host.agent_id();
    host.run_once_ok();
    let auditor = c.api_token("auditor", "auditor");
    let r = c.request(
        "POST",
        &format!("/v1/hosts/{id}/revoke"),
        Some(&auditor),
        None,
    );
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (403, codes::FORBIDDEN)
    );
    let r = c.request(
        "POST",
        &format!("/v1/hosts/{id}/revoke"),
        Some(&c.admin),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["revoked_at"].is_string());
    refused(
        &c,
        &id,
        &c.envelope(&id, 1),
        403,
        codes::REVOKED_AGENT,
        &[1],
    );
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("revoked"), "{}", show(&o));
    assert_eq!(c.sequences(&id), [1]);
    // A revoked key cannot enroll again.
    let o = host.enroll(&c, &c.enroll_token(None));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("revoked"), "{}", show(&o));
}

#[test]
fn the_api_needs_a_valid_token_and_metrics_need_an_admin() {
    let c = Collector::start();
    let get = |path: &str, token: Option<&str>| c.request("GET", path, token, None);
    let r = get("/healthz", None);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let unauthorized = |path: &str, token: Option<&str>| {
        let r = get(path, token);
        assert_eq!(
            (r.status, r.error().error.as_str()),
            (401, codes::UNAUTHORIZED),
            "GET {path} with {token:?}: {}",
            r.text()
        );
    };
    unauthorized("/v1/hosts", None);
    unauthorized("/metrics", None);
    unauthorized("/v1/hosts", Some("annexa-api-notatoken"));
    let enroll_token = c.enroll_token(None);
    unauthorized("/v1/hosts", Some(&enroll_token));
    assert_eq!(get("/v1/hosts", Some(&c.admin)).status, 200);

    // Auditors read but do not administer.
    let auditor = c.api_token("auditor", "auditor");
    assert_eq!(get("/v1/hosts", Some(&auditor)).status, 200);
    let r = get("/metrics", Some(&auditor));
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (403, codes::FORBIDDEN)
    );
    let r = c.request(
        "POST",
        "/v1/tokens/enroll",
        Some(&auditor),
        Some(b"{}".to_vec()),
    );
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (403, codes::FORBIDDEN)
    );

    // Revocation and expiry take effect at the next request.
    let ops = c.api_token("ops", "admin");
    assert_eq!(get("/v1/hosts", Some(&ops)).status, 200);
    let o = c.cli(&["api-token", "revoke", "--name", "ops"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    unauthorized("/v1/hosts", Some(&ops));
    unauthorized("/metrics", Some(&ops));
    let o = c.cli(&["api-token", "create", "--name", "brief", "--ttl", "1s"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let brief = stdout(&o).trim().to_string();
    let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let left = Duration::from_secs(created.as_secs() + 1)
        .saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
    std::thread::sleep(left + Duration::from_millis(50));
    unauthorized("/v1/hosts", Some(&brief));

    // An admin creates enrollment tokens over the API.
    let r = c.request(
        "POST",
        "/v1/tokens/enroll",
        Some(&c.admin),
        Some(br#"{"ttl": "10m"}"#.to_vec()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["token"]
            .as_str()
            .unwrap()
            .starts_with("annexa-enroll-")
    );

    // Metrics count refusals by reason.
    let (stranger, _) = SigningKey::generate().unwrap();
    let forged = sign_payload(br#"{"hello":"world"}"#, &stranger);
    for _ in 0..2 {
        assert_eq!(c.post_evidence(&forged).status, 401);
    }
    assert_eq!(c.post_evidence(b"not json").status, 400);
    let m = c.metrics();
    assert!(m.contains("\nannexa_envelopes_accepted_total "), "{m}");
    assert_eq!(metric(&m, "annexa_envelopes_accepted_total"), 0.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "annexa_envelopes_rejected_total{reason=\"unknown_agent\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "annexa_envelopes_rejected_total{reason=\"malformed\"}"),
        1.0,
        "{m}"
    );
    assert!(m.contains("annexa_ingest_latency_seconds"), "{m}");
}

#[test]
fn the_daemon_waits_for_enrollment_then_delivers_and_stops_on_sigterm() {
    let c = Collector::start();
    let host = Host::new(&c.url(), "enroll_poll_seconds = 1\nlog_format = \"json\"\n");
    let mut daemon = host.daemon();
    let told = |log: &str| log.lines().filter(|l| l.contains("not enrolled")).count();
    wait_for(
        "the daemon's not-enrolled message",
        Duration::from_secs(20),
        || told(&daemon.log()) == 1,
        || daemon.log(),
    );
    // Three polls later it has said it once, and how to enroll.
    std::thread::sleep(Duration::from_millis(3200));
    let log = daemon.log();
    assert_eq!(told(&log), 1, "one message, not one per poll:\n{log}");
    let line: Value =
        serde_json::from_str(log.lines().find(|l| l.contains("not enrolled")).unwrap()).unwrap();
    let message = line["fields"]["message"].as_str().unwrap_or_default();
    assert!(
        message
            .contains("annexa enroll --server https://HOST:PORT --token-file TOKEN_FILE --ca FILE")
            && message.contains("--ca-fingerprint")
            && message.contains("every 1 s"),
        "{line}"
    );
    for l in log.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    assert!(daemon.exited().is_none(), "{log}");

    // Enrolling while it waits works: it does not hold the state lock.
    let o = host.enroll(&c, &c.enroll_token(None));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let id = host.agent_id();
    // The receipt is kept before the spooled envelope is removed: wait for
    // both.
    wait_for(
        "the first delivery",
        WAIT,
        || host.receipts().len() == 1 && host.spooled().is_empty(),
        || daemon.log(),
    );
    assert_eq!(c.sequences(&id), [1]);
    // A second agent on the same state directory is refused.
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("another annexa process"),
        "{}",
        show(&o)
    );

    let status = daemon.terminate();
    let log = daemon.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("next scan at"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("\"stopped\""), "{log}");
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(chain.len(), 1);
    assert_eq!(common::receipts_match(&c, &host, &chain), [1]);
}

#[test]
fn run_refuses_to_start_unenrolled_or_misconfigured() {
    let host = Host::new("https://127.0.0.1:9", "");
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("not enrolled") && err.contains("annexa enroll --server"),
        "{err}"
    );
    let o = host.annexa(&[
        "run",
        "--no-send",
        "--config",
        host.config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "--no-send only with --once");
    for (extra, key, line) in [
        ("schedul = \"0 0 * * * *\"\n", "schedul", 6),
        ("enroll_poll_seconds = 0\n", "enroll_poll_seconds", 6),
    ] {
        let bad = Host::new("https://127.0.0.1:9", extra);
        let o = bad.run_once(&[]);
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("agent.toml:{line}")) && err.contains(key),
            "{err}"
        );
    }
}

#[test]
fn a_state_directory_restored_from_backup_is_refused_then_recovered_by_enrolling_again() {
    let c = Collector::start();
    let token = c.enroll_token(None);
    let host = Host::new(&c.url(), "");
    let o = host.enroll(&c, &token);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let id = host.agent_id();
    host.run_once_ok();
    let backup = host.dir().join("backup");
    let cp = |from: &std::path::Path, to: &std::path::Path| {
        let s = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(s.success());
    };
    cp(&host.state, &backup);
    host.run_once_ok();
    host.run_once_ok();
    assert_eq!(c.sequences(&id), [1, 2, 3]);

    // Restore the older state: the agent numbers its next envelope 2
    // again, with other bytes, and the collector refuses it.
    std::fs::remove_dir_all(&host.state).unwrap();
    cp(&backup, &host.state);
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("the collector expects sequence 4"),
        "{}",
        show(&o)
    );
    assert_eq!(host.spooled(), [2]);
    assert_eq!(host.receipts().len(), 1);
    assert_eq!(c.sequences(&id), [1, 2, 3]);

    // The documented recovery: enroll again with the same state directory.
    let o = host.enroll(&c, &token);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stderr(&o).contains("ahead of the local chain head"),
        "{}",
        show(&o)
    );
    assert!(host.spooled().is_empty());
    assert!(
        host.state
            .join(format!("orphaned/{id}/00000000000000000002.dsse.json"))
            .exists()
    );
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(host.chain(), (3, Some(chain[2].sha256.clone())));
    let out = host.run_once_ok();
    assert!(out.contains("produced envelope 4 "), "{out}");
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(
        chain.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        one_to(4)
    );
    assert_eq!(receipts_match(&c, &host, &chain), [1, 4]);
}

#[test]
fn the_agent_library_enrolls_and_runs_in_process_against_the_collector() {
    use annexa_agent::{AgentConfig, CaPin, EnrollOptions, enroll, run_once};
    let c = Collector::start();
    let token = c.enroll_token(None);
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let mut opts = EnrollOptions::new(
        c.url(),
        token,
        CaPin::Certificate {
            label: "collector CA".into(),
            bytes: std::fs::read(c.ca_path()).unwrap(),
        },
        &state_dir,
    );
    opts.labels.insert("role".into(), "web".into());
    let mut config = AgentConfig::new(c.url(), &state_dir);
    config.packs_dir = dir.path().join("no-packs");
    // The harness blocks and owns a runtime of its own: only the library
    // calls run on this one.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (outcome, once) = rt.block_on(async {
        let outcome = enroll(opts).await.unwrap();
        (outcome, run_once(&config, true).await.unwrap())
    });
    assert_eq!(outcome.next_sequence, 1);
    assert_eq!(outcome.labels["role"], "web");
    assert!(outcome.key_created);
    assert_eq!(once.produced.sequence, 1);
    assert_eq!((once.delivered, once.pending), (1, 0));
    assert!(once.delivery_error.is_none());
    let chain = stored_chain(&c, outcome.agent_id.as_str(), &{
        let der = std::fs::read(state_dir.join("agent.key")).unwrap();
        SigningKey::from_pkcs8("agent.key", &der).unwrap().public()
    });
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].sha256, once.produced.digest);
}

/// The `public key:` line of `annexa person keygen` or `show`.
fn public_key_line(o: &std::process::Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("no public key line: {}", show(o)))
        .to_string()
}

#[test]
fn people_are_registered_with_keys_they_made_rotated_and_revoked() {
    let c = Collector::start();
    let home = tempfile::tempdir().unwrap();
    let first = home.path().join("first.key");
    let second = home.path().join("second.key");
    let keygen = |key: &std::path::Path| {
        let o = common::annexa(&["person", "keygen", "--key", key.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        public_key_line(&o)
    };
    let (k1, k2) = (keygen(&first), keygen(&second));

    let add = |email: &str, key: &str, roles: &[&str]| {
        let mut args = vec![
            "person",
            "add",
            "--name",
            "Jane Doe",
            "--email",
            email,
            "--public-key",
            key,
        ];
        for r in roles {
            args.extend(["--role", r]);
        }
        c.cli(&args)
    };
    let o = add("Jane@Example.org", &k1, &["owner", "approver"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("registered jane@example.org"),
        "{}",
        show(&o)
    );

    // Bad input is named, and nothing is registered by it.
    for (email, key, roles, expected) in [
        (
            "sam@example.org",
            "not base64!",
            vec!["owner"],
            "--public-key",
        ),
        ("sam", k2.as_str(), vec!["owner"], "--email"),
        (
            "sam@example.org",
            k2.as_str(),
            vec!["root"],
            "not a person role",
        ),
        (
            "jane@example.org",
            k2.as_str(),
            vec!["owner"],
            "registered already",
        ),
        (
            "sam@example.org",
            k1.as_str(),
            vec!["owner"],
            "registered already",
        ),
    ] {
        let o = add(email, key, &roles);
        assert_ne!(o.status.code(), Some(0), "{email}: {}", show(&o));
        assert!(
            common::stderr(&o).contains(expected),
            "{expected}: {}",
            show(&o)
        );
    }
    let o = c.cli(&["person", "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let listed = stdout(&o);
    assert!(
        listed.contains("jane@example.org  Jane Doe  [owner,approver]  active"),
        "{listed}"
    );
    assert!(!listed.contains("sam@"), "{listed}");

    let o = c.cli(&[
        "person",
        "rotate-key",
        "--email",
        "jane@example.org",
        "--public-key",
        &k2,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let listed = stdout(&c.cli(&["person", "list"]));
    assert_eq!(listed.matches(" retired ").count(), 1, "{listed}");
    assert_eq!(listed.matches("(current)").count(), 1, "{listed}");

    let o = c.cli(&["person", "revoke", "--email", "jane@example.org"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&c.cli(&["person", "list"])).contains("revoked 20"));
    let o = c.cli(&["person", "revoke", "--email", "jane@example.org"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("no active person"),
        "{}",
        show(&o)
    );
}
