//! What a person states, signed with their own key: attestations for the
//! controls no agent can check, waiver requests and the decisions on them,
//! corrective actions opened and closed (docs/evidence-format.md, "Person
//! statements").
//!
//! Each is a DSSE envelope over an in-toto Statement v1, in the one
//! canonical encoding annexa emits (one signature, [`Envelope::is_canonical`]),
//! signed by the person's Ed25519 key. Every predicate names its signer by
//! e-mail and carries `issued_at` and a random `nonce`, so that the
//! collector can refuse a replayed or backdated statement, and the SoA it
//! was made against (version and SHA-256), so that an auditor sees which
//! SoA an owner or approver was answering.
//!
//! This module parses and verifies; who may state what (owners, approvers,
//! four eyes, the longest waiver) is [`rules`], shared by the collector and
//! `annexa verify report`.

pub mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use annexa_checks::soa::Scope;

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::encoding::is_lower_hex;
use crate::keys::{PublicKey, SigningKey};
use crate::statement::{ResourceDescriptor, STATEMENT_TYPE, Statement, parse_statement};

/// A person's attestation that a control is in place.
pub const ATTESTATION_PREDICATE: &str = "urn:annexa:predicate:attestation:v1";
/// A request to accept the risk of a nonconformity for a while.
pub const WAIVER_REQUEST_PREDICATE: &str = "urn:annexa:predicate:waiver-request:v1";
/// An approver's approval or refusal of a waiver request, or its revocation.
pub const WAIVER_DECISION_PREDICATE: &str = "urn:annexa:predicate:waiver-decision:v1";
/// A corrective action opened for a nonconformity.
pub const ACTION_PREDICATE: &str = "urn:annexa:predicate:action:v1";
/// An action's owner closing it by a signed statement.
pub const ACTION_CLOSE_PREDICATE: &str = "urn:annexa:predicate:action-close:v1";

/// Longest free text (statement, justification, cause), in bytes.
pub const MAX_TEXT: usize = 16 * 1024;
/// Longest short field (control, check, risk, e-mail, file name), in bytes.
pub const MAX_SHORT: usize = 256;
/// Most subjects (attached files) of one attestation.
pub const MAX_SUBJECTS: usize = 64;

/// The SoA a statement was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaRef {
    /// The collector's version number of the SoA.
    pub version: u64,
    /// Hex SHA-256 of the SoA exactly as imported.
    pub sha256: String,
}

/// Who signed, when, and a nonce that makes the statement unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issued {
    /// The signer's e-mail, as registered on the collector.
    pub person: String,
    /// When it was signed (RFC 3339 UTC, seconds).
    pub issued_at: String,
    /// 32 lower-case hex digits, random.
    pub nonce: String,
}

/// `urn:annexa:predicate:attestation:v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// Signer, time, nonce.
    #[serde(flatten)]
    pub issued: Issued,
    /// The control (id of the SoA's edition).
    pub control: String,
    /// The SoA in force when it was made.
    pub soa: SoaRef,
    /// What the person states, in their words.
    pub statement: String,
    /// From when it holds (`YYYY-MM-DD`).
    pub effective: String,
    /// Through when it holds, that day included (`YYYY-MM-DD`, UTC).
    pub valid_until: String,
    /// The hosts it speaks for (empty: the control's whole scope).
    #[serde(default)]
    pub scope: Scope,
}

/// `urn:annexa:predicate:waiver-request:v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaiverRequest {
    /// Signer, time, nonce.
    #[serde(flatten)]
    pub issued: Issued,
    /// The control whose nonconformity is accepted.
    pub control: String,
    /// One check of it only, or every check of the control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The SoA in force when it was requested.
    pub soa: SoaRef,
    /// The hosts it covers (at least one label).
    pub scope: Scope,
    /// Why the risk is accepted.
    pub justification: String,
    /// The risk register's entry, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
    /// What limits the risk meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensating: Option<String>,
    /// The last day it is in force (`YYYY-MM-DD`, UTC, that day included).
    pub until: String,
}

/// What an approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The risk is accepted until the request's `until`.
    Approve,
    /// Not accepted.
    Refuse,
    /// An approved waiver ends now.
    Revoke,
}

impl Decision {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Refuse => "refuse",
            Decision::Revoke => "revoke",
        }
    }
}

/// `urn:annexa:predicate:waiver-decision:v1`; its subject is the request
/// envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaiverDecision {
    /// Signer, time, nonce.
    #[serde(flatten)]
    pub issued: Issued,
    /// Hex SHA-256 of the request envelope's bytes.
    pub request: String,
    /// Approve, refuse or revoke.
    pub decision: Decision,
    /// Why (required for a refusal or revocation).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `urn:annexa:predicate:action:v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Signer, time, nonce.
    #[serde(flatten)]
    pub issued: Issued,
    /// The nonconformant control.
    pub control: String,
    /// The SoA in force when it was opened.
    pub soa: SoaRef,
    /// The hosts concerned (at least one label).
    pub scope: Scope,
    /// Who answers for it (a registered person's e-mail).
    pub owner: String,
    /// When it must be done (`YYYY-MM-DD`).
    pub due: String,
    /// The cause found.
    pub cause: String,
}

/// `urn:annexa:predicate:action-close:v1`; its subject is the opening
/// envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionClose {
    /// Signer, time, nonce.
    #[serde(flatten)]
    pub issued: Issued,
    /// Hex SHA-256 of the opening envelope's bytes.
    pub action: String,
    /// What was done.
    pub resolution: String,
}

/// One verified person statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonStatement {
    /// An attestation and its subjects (the attached files).
    Attestation(Attestation, Vec<Attached>),
    /// A waiver request.
    WaiverRequest(WaiverRequest),
    /// A decision on a request.
    WaiverDecision(WaiverDecision),
    /// An action opened.
    Action(Action),
    /// An action closed by its owner.
    ActionClose(ActionClose),
}

impl PersonStatement {
    /// Signer, time and nonce.
    pub fn issued(&self) -> &Issued {
        match self {
            PersonStatement::Attestation(a, _) => &a.issued,
            PersonStatement::WaiverRequest(r) => &r.issued,
            PersonStatement::WaiverDecision(d) => &d.issued,
            PersonStatement::Action(a) => &a.issued,
            PersonStatement::ActionClose(c) => &c.issued,
        }
    }

    /// The predicate type.
    pub fn predicate_type(&self) -> &'static str {
        match self {
            PersonStatement::Attestation(..) => ATTESTATION_PREDICATE,
            PersonStatement::WaiverRequest(_) => WAIVER_REQUEST_PREDICATE,
            PersonStatement::WaiverDecision(_) => WAIVER_DECISION_PREDICATE,
            PersonStatement::Action(_) => ACTION_PREDICATE,
            PersonStatement::ActionClose(_) => ACTION_CLOSE_PREDICATE,
        }
    }
}

/// A file an attestation is about: its name, its digest, and for a file
/// kept elsewhere the URI where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The file name (no directory).
    pub name: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Where it is kept, for a reference (the collector does not hold it).
    pub uri: Option<String>,
}

/// Why a person statement is refused. Each names the field and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonError {
    /// Not a DSSE envelope, not canonical, or not an in-toto payload.
    #[error("envelope: {0}")]
    Envelope(String),
    /// The signature is not the registered key's.
    #[error("signature: {0}")]
    Signature(String),
    /// The statement or a predicate field is malformed.
    #[error("{field}: {problem}")]
    Field {
        /// The field, as a JSON path below the statement.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn field(field: &str, problem: impl Into<String>) -> PersonError {
    PersonError::Field {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// Signs a statement about `subject` with `predicate` as `key`, in the
/// canonical envelope encoding.
pub fn sign<P: Serialize>(
    predicate_type: &str,
    subject: Vec<ResourceDescriptor>,
    predicate: &P,
    key: &SigningKey,
) -> Vec<u8> {
    let statement = Statement {
        type_: STATEMENT_TYPE.to_string(),
        subject,
        predicate_type: predicate_type.to_string(),
        predicate,
    };
    // Serializing these plain types into a Vec cannot fail.
    let payload = serde_json::to_vec(&statement).unwrap_or_default();
    crate::dsse::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key).to_json()
}

/// A subject naming bytes by their SHA-256.
pub fn descriptor(name: &str, sha256: &str, uri: Option<&str>) -> ResourceDescriptor {
    ResourceDescriptor {
        name: Some(name.to_string()),
        uri: uri.map(str::to_string),
        digest: Some(BTreeMap::from([("sha256".to_string(), sha256.to_string())])),
        other: BTreeMap::new(),
    }
}

/// The subject of a statement made against an SoA: the SoA itself.
pub fn soa_subject(soa: &SoaRef) -> ResourceDescriptor {
    descriptor(&format!("annexa-soa:{}", soa.version), &soa.sha256, None)
}

/// The subject of a statement about an earlier one: that envelope.
pub fn envelope_subject(sha256: &str) -> ResourceDescriptor {
    descriptor("annexa-envelope", sha256, None)
}

/// The subject of an attestation with no file: its own statement text.
pub fn statement_subject(statement: &str) -> ResourceDescriptor {
    descriptor("statement", &crate::sha256_hex(statement.as_bytes()), None)
}

/// Parses a person statement without checking its signature: for
/// statements already verified (stored, or in a report whose verifier
/// checks the signatures itself).
pub fn parse(bytes: &[u8]) -> Result<PersonStatement, PersonError> {
    parse_envelope(bytes).and_then(|(_, payload)| parse_payload(&payload))
}

fn parse_envelope(bytes: &[u8]) -> Result<(Envelope, Vec<u8>), PersonError> {
    let env = Envelope::from_json(bytes).map_err(|e| PersonError::Envelope(e.to_string()))?;
    if !env.is_canonical(bytes) {
        return Err(PersonError::Envelope(
            "not in the canonical encoding (compact JSON, padded base64, exactly one signature with a 64-hex key id)".into(),
        ));
    }
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(PersonError::Envelope(format!(
            "payloadType is `{}`, expected `{IN_TOTO_PAYLOAD_TYPE}`",
            env.payload_type
        )));
    }
    let payload = env
        .payload_bytes()
        .map_err(|e| PersonError::Envelope(e.to_string()))?;
    Ok((env, payload))
}

/// Verifies the envelope's one signature with `key` (the signer's
/// registered key), then parses and checks the statement.
pub fn verify(bytes: &[u8], key: &PublicKey) -> Result<PersonStatement, PersonError> {
    let (env, payload) = parse_envelope(bytes)?;
    if env.signatures[0].keyid != key.key_id() {
        return Err(PersonError::Signature(format!(
            "key id {} is not the key {}",
            env.signatures[0].keyid,
            key.key_id()
        )));
    }
    env.verify(IN_TOTO_PAYLOAD_TYPE, std::slice::from_ref(key), 1)
        .map_err(|e| PersonError::Signature(e.to_string()))?;
    parse_payload(&payload)
}

fn parse_payload(payload: &[u8]) -> Result<PersonStatement, PersonError> {
    let st = parse_statement(payload).map_err(|e| field("statement", e.to_string()))?;
    let predicate = st.predicate;
    let subjects = st.subject;
    let parsed = match st.predicate_type.as_str() {
        ATTESTATION_PREDICATE => {
            let a: Attestation = from_value(predicate)?;
            check_attestation(&a)?;
            let attached = attached(&subjects, &a)?;
            PersonStatement::Attestation(a, attached)
        }
        WAIVER_REQUEST_PREDICATE => {
            let r: WaiverRequest = from_value(predicate)?;
            check_request(&r)?;
            only_subject(&subjects, &soa_subject(&r.soa))?;
            PersonStatement::WaiverRequest(r)
        }
        WAIVER_DECISION_PREDICATE => {
            let d: WaiverDecision = from_value(predicate)?;
            check_issued(&d.issued)?;
            check_hex64("predicate.request", &d.request)?;
            if d.decision != Decision::Approve && d.reason.trim().is_empty() {
                return Err(field(
                    "predicate.reason",
                    format!("a decision to {} needs a reason", d.decision.as_str()),
                ));
            }
            check_text("predicate.reason", &d.reason, MAX_TEXT)?;
            only_subject(&subjects, &envelope_subject(&d.request))?;
            PersonStatement::WaiverDecision(d)
        }
        ACTION_PREDICATE => {
            let a: Action = from_value(predicate)?;
            check_action(&a)?;
            only_subject(&subjects, &soa_subject(&a.soa))?;
            PersonStatement::Action(a)
        }
        ACTION_CLOSE_PREDICATE => {
            let c: ActionClose = from_value(predicate)?;
            check_issued(&c.issued)?;
            check_hex64("predicate.action", &c.action)?;
            required("predicate.resolution", &c.resolution, MAX_TEXT)?;
            only_subject(&subjects, &envelope_subject(&c.action))?;
            PersonStatement::ActionClose(c)
        }
        other => {
            return Err(field(
                "predicateType",
                format!("`{other}` is not a person statement annexa knows"),
            ));
        }
    };
    Ok(parsed)
}

fn from_value<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, PersonError> {
    serde_json::from_value(v).map_err(|e| field("predicate", e.to_string()))
}

fn check_issued(i: &Issued) -> Result<(), PersonError> {
    check_email("predicate.person", &i.person)?;
    if annexa_checks::conformity::parse_time(&i.issued_at).is_none() || !i.issued_at.ends_with('Z')
    {
        return Err(field(
            "predicate.issued_at",
            format!(
                "`{}` is not an RFC 3339 UTC time such as 2026-12-07T10:00:00Z",
                i.issued_at
            ),
        ));
    }
    if !is_lower_hex(&i.nonce, 32) {
        return Err(field("predicate.nonce", "must be 32 lower-case hex digits"));
    }
    Ok(())
}

fn check_attestation(a: &Attestation) -> Result<(), PersonError> {
    check_issued(&a.issued)?;
    required("predicate.control", &a.control, MAX_SHORT)?;
    check_soa(&a.soa)?;
    required("predicate.statement", &a.statement, MAX_TEXT)?;
    let from = date("predicate.effective", &a.effective)?;
    let until = date("predicate.valid_until", &a.valid_until)?;
    if until < from {
        return Err(field(
            "predicate.valid_until",
            format!("{} is before effective {}", a.valid_until, a.effective),
        ));
    }
    Ok(())
}

fn check_request(r: &WaiverRequest) -> Result<(), PersonError> {
    check_issued(&r.issued)?;
    required("predicate.control", &r.control, MAX_SHORT)?;
    if let Some(c) = &r.check {
        required("predicate.check", c, MAX_SHORT)?;
    }
    check_soa(&r.soa)?;
    check_hosts(&r.scope, "a waiver")?;
    required("predicate.justification", &r.justification, MAX_TEXT)?;
    if let Some(risk) = &r.risk {
        required("predicate.risk", risk, MAX_SHORT)?;
    }
    if let Some(c) = &r.compensating {
        required("predicate.compensating", c, MAX_TEXT)?;
    }
    date("predicate.until", &r.until)?;
    Ok(())
}

fn check_action(a: &Action) -> Result<(), PersonError> {
    check_issued(&a.issued)?;
    required("predicate.control", &a.control, MAX_SHORT)?;
    check_soa(&a.soa)?;
    check_hosts(&a.scope, "an action")?;
    check_email("predicate.owner", &a.owner)?;
    date("predicate.due", &a.due)?;
    required("predicate.cause", &a.cause, MAX_TEXT)?;
    Ok(())
}

/// A scope that names hosts: `what` (a waiver, an action) never covers a
/// control's whole scope by leaving it empty.
fn check_hosts(scope: &Scope, what: &str) -> Result<(), PersonError> {
    if scope.0.is_empty() {
        return Err(field(
            "predicate.scope",
            format!("{what} names the hosts it covers (at least one label, such as host=db-3)"),
        ));
    }
    Ok(())
}

fn check_soa(s: &SoaRef) -> Result<(), PersonError> {
    if s.version == 0 {
        return Err(field("predicate.soa.version", "SoA versions start at 1"));
    }
    check_hex64("predicate.soa.sha256", &s.sha256)
}

/// The attestation's subjects as attached files: each a file name with a
/// SHA-256 and at most a URI; or, with no file, the statement text alone.
fn attached(
    subjects: &[ResourceDescriptor],
    a: &Attestation,
) -> Result<Vec<Attached>, PersonError> {
    if subjects.len() > MAX_SUBJECTS {
        return Err(field(
            "subject",
            format!("{} files; at most {MAX_SUBJECTS}", subjects.len()),
        ));
    }
    if subjects.len() == 1 && subjects[0] == statement_subject(&a.statement) {
        return Ok(Vec::new());
    }
    let mut out: Vec<Attached> = Vec::with_capacity(subjects.len());
    for (i, s) in subjects.iter().enumerate() {
        let at = format!("subject[{i}]");
        let name = s
            .name
            .as_deref()
            .ok_or_else(|| field(&at, "has no file name"))?;
        check_file_name(&format!("{at}.name"), name)?;
        let digest = s.digest.as_ref().filter(|d| d.len() == 1);
        let Some(sha256) = digest.and_then(|d| d.get("sha256")) else {
            return Err(field(&format!("{at}.digest"), "must be exactly one sha256"));
        };
        check_hex64(&format!("{at}.digest.sha256"), sha256)?;
        if !s.other.is_empty() {
            return Err(field(
                &at,
                format!(
                    "has fields annexa does not define: {}",
                    s.other.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if let Some(uri) = &s.uri {
            check_uri(&format!("{at}.uri"), uri)?;
        }
        if out.iter().any(|o| o.name == name) {
            return Err(field(
                &format!("{at}.name"),
                format!("`{name}` is attached twice"),
            ));
        }
        out.push(Attached {
            name: name.to_string(),
            sha256: sha256.clone(),
            uri: s.uri.clone(),
        });
    }
    Ok(out)
}

fn only_subject(
    subjects: &[ResourceDescriptor],
    expected: &ResourceDescriptor,
) -> Result<(), PersonError> {
    match subjects {
        [only] if only == expected => Ok(()),
        _ => Err(field(
            "subject",
            format!(
                "must be exactly [{{\"name\":\"{}\",\"digest\":{{\"sha256\":\"…\"}}}}] matching the predicate",
                expected.name.as_deref().unwrap_or_default()
            ),
        )),
    }
}

fn required(name: &str, value: &str, max: usize) -> Result<(), PersonError> {
    if value.trim().is_empty() {
        return Err(field(name, "is empty"));
    }
    check_text(name, value, max)
}

fn check_text(name: &str, value: &str, max: usize) -> Result<(), PersonError> {
    if value.len() > max {
        return Err(field(
            name,
            format!("is {} bytes; at most {max}", value.len()),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(field(name, "contains control characters"));
    }
    Ok(())
}

/// An e-mail address as a registry key: one `@`, no spaces or controls.
pub fn check_email(name: &str, value: &str) -> Result<(), PersonError> {
    check_text(name, value, MAX_SHORT)?;
    let ok = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
    }) && !value.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(field(name, format!("`{value}` is not an e-mail address")))
    }
}

/// A file name an attestation may carry: no directory part, no hidden or
/// special name, printable.
pub fn check_file_name(name: &str, value: &str) -> Result<(), PersonError> {
    required(name, value, MAX_SHORT)?;
    if value.contains(['/', '\\']) || value == "." || value == ".." || value.starts_with('.') {
        return Err(field(
            name,
            format!("`{value}` is not a plain file name (no directory, not hidden)"),
        ));
    }
    Ok(())
}

fn check_uri(name: &str, value: &str) -> Result<(), PersonError> {
    check_text(name, value, 2048)?;
    let scheme_ok = value.split_once(':').is_some_and(|(s, rest)| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            && !rest.is_empty()
    });
    if !scheme_ok || value.chars().any(char::is_whitespace) {
        return Err(field(name, format!("`{value}` is not an absolute URI")));
    }
    Ok(())
}

fn check_hex64(name: &str, value: &str) -> Result<(), PersonError> {
    if is_lower_hex(value, 64) {
        Ok(())
    } else {
        Err(field(name, "must be 64 lower-case hex digits (SHA-256)"))
    }
}

/// A `YYYY-MM-DD` date as days since 1970-01-01.
pub fn date(name: &str, value: &str) -> Result<i64, PersonError> {
    day_number(value)
        .ok_or_else(|| field(name, format!("`{value}` is not a date such as 2027-06-30")))
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn day_number(value: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(value, &fmt).ok()?;
    Some((d - time::macros::date!(1970 - 01 - 01)).whole_days())
}

/// The first second after the day `value` (`YYYY-MM-DD`): a date "until"
/// or "valid until" holds through that day, UTC.
pub fn end_of_day(value: &str) -> Option<i64> {
    day_number(value).map(|d| (d + 1) * 86_400)
}

#[cfg(test)]
mod tests;
