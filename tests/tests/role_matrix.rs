//! The role matrix: every API route of a real collector, tried with every
//! kind of credential, against the access the router declares for it
//! (`annexa_collector::api::route_table`). A route the matrix has no example
//! request for fails the test, so no route is added unchecked. Then the
//! limit on failed authentications.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use annexa_collector::api::{Access, route_table};
use annexa_evidence::api::codes;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::sha256_hex;
use common::{Collector, Host, Response, show, sign_statement, statement_of};
use serde_json::Value;

/// The kinds of credential a caller can present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    None,
    Wrong,
    Expired,
    Revoked,
    AgentKey,
    EnrollmentToken,
    Auditor,
    Admin,
}

const KINDS: [Kind; 8] = [
    Kind::None,
    Kind::Wrong,
    Kind::Expired,
    Kind::Revoked,
    Kind::AgentKey,
    Kind::EnrollmentToken,
    Kind::Auditor,
    Kind::Admin,
];

/// Which kinds a route's declared access admits.
fn admitted(access: Access, kind: Kind) -> bool {
    match access {
        Access::Anyone => true,
        Access::EnrollmentToken => kind == Kind::EnrollmentToken,
        Access::AgentSignature => kind == Kind::AgentKey,
        Access::Reader => matches!(kind, Kind::Auditor | Kind::Admin),
        Access::Admin => kind == Kind::Admin,
    }
}

/// The next envelope of `host`'s chain after `last` (sequence, bytes),
/// signed with its key.
fn next_envelope(c: &Collector, host: &Host, last: &mut (u64, Vec<u8>)) -> Vec<u8> {
    let id = host.agent_id();
    let mut st = statement_of(&c.envelope(&id, 1));
    st["predicate"]["sequence"] = Value::from(last.0 + 1);
    st["predicate"]["previous"] = Value::from(sha256_hex(&last.1));
    st["predicate"]["gap"] = Value::Null;
    let bytes = sign_statement(&st, &host.key());
    *last = (last.0 + 1, bytes.clone());
    bytes
}

/// The credentials of each kind, made on a real collector.
struct Credentials {
    expired: String,
    revoked: String,
    auditor: String,
    agent: Host,
    agent_last: (u64, Vec<u8>),
    revoked_agent: Host,
    revoked_last: (u64, Vec<u8>),
}

#[test]
fn every_route_admits_exactly_the_credentials_it_declares() {
    // The failure limit would answer 429 long before the matrix is done.
    let c = Collector::start_with("auth_failures_per_minute = 0\n");
    let o = c.cli(&[
        "api-token",
        "create",
        "--name",
        "brief",
        "--ttl",
        "1s",
        "--role",
        "admin",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let expired = common::stdout(&o).trim().to_string();
    let revoked = c.api_token("gone", "admin");
    let o = c.cli(&["api-token", "revoke", "--name", "gone"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let auditor = c.api_token("aud", "auditor");
    let agent = Host::enrolled(&c, "");
    agent.run_once_ok();
    let revoked_agent = Host::enrolled(&c, "");
    revoked_agent.run_once_ok();
    let (a, r) = (agent.agent_id(), revoked_agent.agent_id());
    let revoke = c.request(
        "POST",
        &format!("/v1/hosts/{r}/revoke"),
        Some(&c.admin),
        None,
    );
    assert_eq!(revoke.status, 200, "{}", revoke.text());
    let soa = common::SOA_2013.to_string();
    let r1 = c.request(
        "POST",
        "/v1/soa",
        Some(&c.admin),
        Some(soa.clone().into_bytes()),
    );
    assert_eq!(r1.status, 201, "{}", r1.text());
    let mut creds = Credentials {
        expired,
        revoked,
        auditor,
        agent_last: (1, c.envelope(&a, 1)),
        revoked_last: (1, c.envelope(&r, 1)),
        agent,
        revoked_agent,
    };
    std::thread::sleep(Duration::from_millis(1100)); // `brief` has expired

    // An example request per route (path with its parameters, body).
    let examples: BTreeMap<(&str, &str), (String, Option<String>)> = [
        (("GET", "/healthz"), ("/healthz".to_string(), None)),
        (("GET", "/metrics"), ("/metrics".into(), None)),
        (("POST", "/v1/enroll"), ("/v1/enroll".into(), None)),
        (("POST", "/v1/evidence"), ("/v1/evidence".into(), None)),
        (
            ("POST", "/v1/tokens/enroll"),
            ("/v1/tokens/enroll".into(), Some("{}".into())),
        ),
        (("GET", "/v1/hosts"), ("/v1/hosts".into(), None)),
        (("GET", "/v1/hosts/{id}"), (format!("/v1/hosts/{a}"), None)),
        // Revoking the revoked host again: allowed for an admin, idempotent.
        (
            ("POST", "/v1/hosts/{id}/revoke"),
            (format!("/v1/hosts/{r}/revoke"), None),
        ),
        (
            ("GET", "/v1/hosts/{id}/evidence"),
            (format!("/v1/hosts/{a}/evidence"), None),
        ),
        (
            ("GET", "/v1/hosts/{id}/evidence/{seq}"),
            (format!("/v1/hosts/{a}/evidence/1"), None),
        ),
        (("GET", "/v1/people"), ("/v1/people".into(), None)),
        (("GET", "/v1/soa"), ("/v1/soa".into(), None)),
        (("POST", "/v1/soa"), ("/v1/soa".into(), Some(soa))),
        (
            ("GET", "/v1/soa/diff"),
            ("/v1/soa/diff?from=1&to=1".into(), None),
        ),
        (
            ("GET", "/v1/soa/{version}"),
            ("/v1/soa/current".into(), None),
        ),
        (
            ("GET", "/v1/soa/{version}/export"),
            ("/v1/soa/1/export".into(), None),
        ),
        (("GET", "/v1/conformity"), ("/v1/conformity".into(), None)),
        (
            ("GET", "/v1/conformity/controls/{id}"),
            ("/v1/conformity/controls/A.9.4.2".into(), None),
        ),
        (
            ("GET", "/v1/conformity/hosts/{id}"),
            (format!("/v1/conformity/hosts/{a}"), None),
        ),
        (
            ("GET", "/v1/conformity/timeline"),
            ("/v1/conformity/timeline".into(), None),
        ),
        (
            ("GET", "/v1/log/checkpoint"),
            ("/v1/log/checkpoint".into(), None),
        ),
        (
            ("GET", "/v1/log/proof/inclusion"),
            ("/v1/log/proof/inclusion?index=0".into(), None),
        ),
        (
            ("GET", "/v1/log/proof/consistency"),
            ("/v1/log/proof/consistency?from=1".into(), None),
        ),
        (("GET", "/v1/log/export"), ("/v1/log/export".into(), None)),
        (("GET", "/v1/reports"), ("/v1/reports".into(), None)),
        (
            ("GET", "/v1/drift"),
            ("/v1/drift?from=2026-01-01T00:00:00Z".into(), None),
        ),
        (
            ("GET", "/v1/openapi.json"),
            ("/v1/openapi.json".into(), None),
        ),
    ]
    .into_iter()
    .collect();

    let table = route_table();
    for (method, path, _) in &table {
        assert!(
            examples.contains_key(&(*method, *path)),
            "{method} {path} is a route the role matrix does not know: add an example request for it here"
        );
    }
    assert_eq!(
        examples.len(),
        table.len(),
        "the matrix lists a route the router does not have"
    );

    let mut tried = 0;
    for (method, path, access) in table {
        let (url, body) = &examples[&(method, path)];
        for kind in KINDS {
            let r = attempt(&c, &mut creds, method, path, url, body.as_deref(), kind);
            let what = format!("{method} {url} with {kind:?} (declared {access:?})");
            if admitted(access, kind) {
                assert!(r.status < 300, "{what}: {} {}", r.status, r.text());
            } else {
                // Credentials that prove nothing are 401; a valid token of
                // the wrong role, or a revoked agent, is 403.
                let denied = match (access, kind) {
                    (Access::Admin, Kind::Auditor) => 403,
                    (Access::AgentSignature, Kind::Revoked) => 403,
                    _ => 401,
                };
                assert_eq!(r.status, denied, "{what}: {}", r.text());
            }
            tried += 1;
        }
    }
    assert_eq!(tried, examples.len() * KINDS.len());
}

/// One request of `kind` to a route.
fn attempt(
    c: &Collector,
    creds: &mut Credentials,
    method: &str,
    path: &str,
    url: &str,
    body: Option<&str>,
    kind: Kind,
) -> Response {
    let bearer: Option<String> = match kind {
        Kind::None => None,
        Kind::Wrong => Some(format!("annexa-api-{}", "0".repeat(43))),
        Kind::Expired => Some(creds.expired.clone()),
        Kind::Revoked => Some(creds.revoked.clone()),
        // What an agent holds: its key; its key id is no bearer token.
        Kind::AgentKey => Some(creds.agent.key().public().key_id()),
        Kind::EnrollmentToken => Some(c.enroll_token(None)),
        Kind::Auditor => Some(creds.auditor.clone()),
        Kind::Admin => Some(c.admin.clone()),
    };
    let body: Option<Vec<u8>> = match path {
        // The enrollment token travels in the body.
        "/v1/enroll" => {
            let token = match kind {
                Kind::EnrollmentToken => c.enroll_token(None),
                Kind::Expired => {
                    let t = c.enroll_token(Some("1s"));
                    std::thread::sleep(Duration::from_millis(1100));
                    t
                }
                // A used token: spent by an earlier enrollment.
                Kind::Revoked => {
                    let t = c.enroll_token(None);
                    let first = enroll_body(&t, &SigningKey::generate().unwrap().0);
                    let r = c.request("POST", "/v1/enroll", None, Some(first));
                    assert_eq!(r.status, 200, "{}", r.text());
                    t
                }
                // Any other credential stands in for the token.
                _ => bearer.clone().unwrap_or_default(),
            };
            Some(enroll_body(&token, &SigningKey::generate().unwrap().0))
        }
        // Agents authenticate by their signature on the envelope.
        "/v1/evidence" => Some(match kind {
            Kind::AgentKey => next_envelope(c, &creds.agent, &mut creds.agent_last),
            Kind::Revoked => next_envelope(c, &creds.revoked_agent, &mut creds.revoked_last),
            _ => {
                // The agent's statement under a key no agent enrolled with.
                let (stranger, _) = SigningKey::generate().unwrap();
                let st = statement_of(&creds.agent_last.1);
                sign_statement(&st, &stranger)
            }
        }),
        _ => body.map(|b| b.as_bytes().to_vec()),
    };
    let bearer = match path {
        "/v1/enroll" | "/v1/evidence" => None,
        _ => bearer,
    };
    c.request(method, url, bearer.as_deref(), body)
}

fn enroll_body(token: &str, key: &SigningKey) -> Vec<u8> {
    serde_json::to_vec(&annexa_evidence::api::EnrollRequest::new(
        token.to_string(),
        key,
        "matrix".into(),
        sha256_hex(key.public().to_b64().as_bytes()),
        Default::default(),
        serde_json::json!({}),
    ))
    .unwrap()
}

#[test]
fn nobody_can_enroll_a_public_key_they_do_not_hold() {
    let c = Collector::start();
    let victim = SigningKey::generate().unwrap().0;
    let attacker = SigningKey::generate().unwrap().0;
    let mut req = annexa_evidence::api::EnrollRequest::new(
        c.enroll_token(None),
        &attacker,
        "squatter".into(),
        "ab".repeat(32),
        Default::default(),
        serde_json::json!({}),
    );
    req.public_key = victim.public().to_b64();
    let r = c.request(
        "POST",
        "/v1/enroll",
        None,
        Some(serde_json::to_vec(&req).unwrap()),
    );
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (400, codes::MALFORMED),
        "{}",
        r.text()
    );
    assert!(r.text().contains("must hold the key"), "{}", r.text());
    assert!(c.hosts().is_empty());
}

#[test]
fn repeated_authentication_failures_from_one_address_are_answered_429() {
    let c = Collector::start_with("auth_failures_per_minute = 5\n");
    let host = Host::enrolled(&c, "");
    let wrong = format!("annexa-api-{}", "1".repeat(43));
    for i in 0..5 {
        let r = c.request("GET", "/v1/hosts", Some(&wrong), None);
        assert_eq!(r.status, 401, "failure {i}: {}", r.text());
    }
    // The address is now refused before any credential is looked at, even
    // a valid one, and bad enrollment tokens count the same.
    let r = c.request("GET", "/v1/hosts", Some(&c.admin), None);
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (429, codes::RATE_LIMITED),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("auth_failures_per_minute"),
        "{}",
        r.text()
    );
    let r = c.request(
        "POST",
        "/v1/enroll",
        None,
        Some(enroll_body(
            "annexa-enroll-x",
            &SigningKey::generate().unwrap().0,
        )),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        c.log().contains("exceed auth_failures_per_minute"),
        "{}",
        c.log()
    );
    // Agents' evidence and the health check are never held back by it.
    assert_eq!(c.request("GET", "/healthz", None, None).status, 200);
    host.run_once_ok();
    // The allowance refills at 5 a minute: one request after 12 s.
    std::thread::sleep(Duration::from_secs(13));
    assert_eq!(
        c.request("GET", "/v1/hosts", Some(&c.admin), None).status,
        200
    );
}
