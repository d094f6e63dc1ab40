//! Who may state what, and when a statement is in force: the rules the
//! collector applies when it accepts a person statement and that
//! `annexa verify report` applies again to the statements a report carries.
//! Pure: times are Unix seconds given by the caller.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Issued, WaiverDecision, WaiverRequest, end_of_day};

/// A person's role on the collector (apart from API tokens' roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    /// Attests for the controls the SoA says they own, requests waivers,
    /// opens and closes actions.
    Owner,
    /// Approves or refuses waivers, never their own request.
    Approver,
    /// Reads.
    Auditor,
    /// Everything an owner may, for every control.
    Admin,
}

impl PersonRole {
    /// Every role, in order.
    pub const ALL: [PersonRole; 4] = [
        PersonRole::Owner,
        PersonRole::Approver,
        PersonRole::Auditor,
        PersonRole::Admin,
    ];

    /// The name used in commands, files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonRole::Owner => "owner",
            PersonRole::Approver => "approver",
            PersonRole::Auditor => "auditor",
            PersonRole::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<PersonRole> {
        PersonRole::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }
}

impl fmt::Display for PersonRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a statement is not acceptable, with a code an API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The signer lacks the role.
    #[error("{person} does not have the {role} role")]
    Role {
        /// The signer.
        person: String,
        /// The role needed.
        role: PersonRole,
    },
    /// Not an owner of the control in the SoA.
    #[error(
        "{person} is not an owner of control {control} in SoA version {soa_version} (its owner field is `{owner}`)"
    )]
    NotOwner {
        /// The signer.
        person: String,
        /// The control.
        control: String,
        /// The SoA's version.
        soa_version: u64,
        /// The SoA's owner field for the control.
        owner: String,
    },
    /// Four eyes: the approver requested it.
    #[error("{person} requested this waiver and cannot decide on it (four eyes)")]
    OwnRequest {
        /// The person.
        person: String,
    },
    /// Signed too long ago, or in the future.
    #[error("issued_at {issued_at} is {skew} s from the collector's clock; at most {max} s")]
    Stale {
        /// As signed.
        issued_at: String,
        /// Seconds off.
        skew: i64,
        /// Allowed.
        max: i64,
    },
    /// The waiver's expiry is past the maximum, or already past.
    #[error("{0}")]
    Expiry(String),
}

impl RuleError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::Role { .. } => "role",
            RuleError::NotOwner { .. } => "not_owner",
            RuleError::OwnRequest { .. } => "four_eyes",
            RuleError::Stale { .. } => "stale_statement",
            RuleError::Expiry(_) => "expiry",
        }
    }
}

/// How far `issued_at` may be from the receiver's clock: a statement is
/// sent when it is signed, so one older than this is a replay or was
/// backdated.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Whether a statement was signed just now (within [`MAX_SKEW_SECONDS`]).
pub fn fresh(issued: &Issued, now: i64) -> Result<(), RuleError> {
    let at = annexa_checks::conformity::parse_time(&issued.issued_at).unwrap_or(i64::MIN / 2);
    let skew = (now - at).abs();
    if skew > MAX_SKEW_SECONDS {
        return Err(RuleError::Stale {
            issued_at: issued.issued_at.clone(),
            skew,
            max: MAX_SKEW_SECONDS,
        });
    }
    Ok(())
}

/// The e-mail addresses an SoA `owner` field names: every
/// whitespace-, comma- or semicolon-separated word with an `@`, angle
/// brackets removed, lower-cased (`"Jane Doe <jane@example.org>, ops@example.org"`).
pub fn owners(owner_field: &str) -> BTreeSet<String> {
    owner_field
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .map(|w| w.trim_matches(|c| c == '<' || c == '>' || c == '"' || c == '\''))
        .filter(|w| w.contains('@'))
        .map(str::to_lowercase)
        .collect()
}

/// Whether `person` (with `roles`) may attest for, request a waiver for or
/// open an action on a control whose SoA owner field is `owner_field`: an
/// admin for any control, an owner for the controls that name them.
pub fn may_speak_for(
    person: &str,
    roles: &[PersonRole],
    control: &str,
    soa_version: u64,
    owner_field: &str,
) -> Result<(), RuleError> {
    if roles.contains(&PersonRole::Admin) {
        return Ok(());
    }
    if !roles.contains(&PersonRole::Owner) {
        return Err(RuleError::Role {
            person: person.to_string(),
            role: PersonRole::Owner,
        });
    }
    if owners(owner_field).contains(&person.to_lowercase()) {
        Ok(())
    } else {
        Err(RuleError::NotOwner {
            person: person.to_string(),
            control: control.to_string(),
            soa_version,
            owner: owner_field.to_string(),
        })
    }
}

/// Whether `decision` by someone with `roles` may decide `request`:
/// approvers only, never the requester (four eyes); an approval at `at`
/// (Unix seconds) only while the request's `until` is ahead and at most
/// `max_days` days after the approval's day, so a waiver neither starts
/// before it is approved nor outlasts the maximum.
pub fn may_decide(
    request: &WaiverRequest,
    decision: &WaiverDecision,
    roles: &[PersonRole],
    max_days: u32,
) -> Result<(), RuleError> {
    let person = &decision.issued.person;
    if person.eq_ignore_ascii_case(&request.issued.person) {
        return Err(RuleError::OwnRequest {
            person: person.clone(),
        });
    }
    if !roles.contains(&PersonRole::Approver) {
        return Err(RuleError::Role {
            person: person.clone(),
            role: PersonRole::Approver,
        });
    }
    if decision.decision == super::Decision::Approve {
        let at = annexa_checks::conformity::parse_time(&decision.issued.issued_at).unwrap_or(0);
        waiver_window(&request.until, at, max_days)?;
    }
    Ok(())
}

/// Whether a waiver until `until`, starting at `start` (Unix seconds), is
/// within `max_days` and not already over.
pub fn waiver_window(until: &str, start: i64, max_days: u32) -> Result<(), RuleError> {
    let Some(end) = end_of_day(until) else {
        return Err(RuleError::Expiry(format!("until `{until}` is not a date")));
    };
    if end <= start {
        return Err(RuleError::Expiry(format!(
            "until {until} is already past; a waiver cannot be backdated"
        )));
    }
    let start_day = start.div_euclid(86_400);
    let days = end / 86_400 - 1 - start_day;
    if days > i64::from(max_days) {
        return Err(RuleError::Expiry(format!(
            "until {until} is {days} days after the start; the maximum is {max_days} days"
        )));
    }
    Ok(())
}

/// When an approved waiver ends (Unix seconds): the end of its `until`
/// day, or its revocation if earlier.
pub fn waiver_end(request: &WaiverRequest, revoked_at: Option<i64>) -> i64 {
    let end = end_of_day(&request.until).unwrap_or(0);
    revoked_at.map_or(end, |r| r.min(end))
}
