//! Builds signed evidence reports (docs/report-format.md): gathers the SoA
//! in force, the enrolled hosts in scope, each host's newest envelopes up
//! to the report's time with inclusion proofs against the newest
//! checkpoint, and states them with the shared rules
//! ([`annexa_evidence::report::assess`]) that the offline verifier applies
//! again.

use std::collections::BTreeSet;

use annexa_checks::CheckId;
use annexa_checks::pack::PackSet;
use annexa_checks::soa::{Scope, Soa};
use annexa_evidence::AgentId;
use annexa_evidence::encoding::hex;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::report::assess::{self, HostInput, Run};
use annexa_evidence::report::{
    CheckInfo, CollectorInfo, Enrollment, EvidenceItem, FORMAT, HostEvidence, Period, Report,
    ReportScope, SoaRecord, Withheld,
};
use annexa_evidence::statement::parse_scan_envelope;
use serde_json::value::RawValue;

use crate::clock;
use crate::log::{Log, LogError};
use crate::store::{AgentRecord, Store, StoreError};

/// Envelopes a report walks back over per host to find a result for every
/// check its controls need (each run normally has them all).
const MAX_RUNS_PER_HOST: usize = 8;

/// What a report is asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The time the states hold at (Unix seconds; default: now).
    pub at: Option<i64>,
    /// Evidence accepted before this is not used.
    pub from: Option<i64>,
    /// Hosts whose labels match (`key=value,…`).
    pub selector: Option<String>,
    /// Controls (empty: all of the SoA).
    pub controls: Vec<String>,
}

/// Why a report cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request is impossible as asked.
    #[error("{0}")]
    Invalid(String),
    /// No SoA was in force at the report's time.
    #[error("{0}")]
    NoSoa(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Builds and signs a report.
pub async fn build(
    store: &dyn Store,
    log: &Log,
    packs: &PackSet,
    key: &SigningKey,
    req: &Request,
) -> Result<(Report, Vec<u8>), ReportError> {
    // The checkpoint first: evidence it does not cover is after the report.
    let checkpoint = log.latest();
    let now = clock::now_unix();
    let at = req.at.unwrap_or(now);
    if at > now {
        return Err(ReportError::Invalid(format!(
            "`at` {} is in the future",
            clock::rfc3339(at)
        )));
    }
    if req.from.is_some_and(|f| f > at) {
        return Err(ReportError::Invalid("`from` is after `at`".into()));
    }
    let selector = req
        .selector
        .as_deref()
        .map(Scope::parse_selector)
        .transpose()
        .map_err(|e| ReportError::Invalid(format!("scope: {e}")))?;

    let (record, soa) = soa_at(store, at).await?;
    let mut controls = Vec::new();
    for c in &req.controls {
        let id = annexa_checks::catalog::Catalog::normalize(soa.edition, c);
        if !soa.controls.iter().any(|x| x.id == id) {
            return Err(ReportError::Invalid(format!(
                "control `{c}` is not in SoA version {} ({} edition)",
                record.version,
                soa.edition.year()
            )));
        }
        if !controls.contains(&id) {
            controls.push(id);
        }
    }
    let checks = check_infos(packs, &soa);
    let policy = assess::policy(record.version, soa, &checks);
    let in_scope = assess::controls_in_scope(&policy, &controls);

    let mut agents: Vec<AgentRecord> = store
        .agents()
        .await?
        .into_iter()
        .filter(|a| {
            clock::parse_rfc3339(&a.enrolled_at).is_some_and(|t| t <= at)
                && a.revoked_at
                    .as_deref()
                    .and_then(clock::parse_rfc3339)
                    .is_none_or(|t| t > at)
                && assess::in_scope(selector.as_ref(), &a.labels)
        })
        .collect();
    agents.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
    let mut retired = store.retired_keys().await?;

    let mut hosts = Vec::with_capacity(agents.len());
    let mut runs = Vec::with_capacity(agents.len());
    for a in &agents {
        let (evidence, host_runs, withheld) =
            host_evidence(store, &policy, &in_scope, a, at, req.from, checkpoint.size).await?;
        hosts.push(HostEvidence {
            agent: AgentId::new(&a.id),
            inventory: host_runs
                .last()
                .and_then(|r| serde_json::to_value(&r.predicate.scan.host).ok()),
            evidence,
            withheld,
        });
        runs.push(host_runs);
    }
    let indices: Vec<u64> = hosts
        .iter()
        .flat_map(|h| h.evidence.iter().map(|e| e.log_index))
        .collect();
    let mut proofs = log
        .inclusions(store, &indices, checkpoint.size)
        .await?
        .into_iter();
    for item in hosts.iter_mut().flat_map(|h| h.evidence.iter_mut()) {
        item.proof = proofs
            .next()
            .unwrap_or_default()
            .iter()
            .map(|h| hex(h))
            .collect();
    }
    let inputs: Vec<HostInput<'_>> = agents
        .iter()
        .zip(&hosts)
        .zip(&runs)
        .map(|((a, h), r)| HostInput {
            agent: &h.agent,
            labels: &a.labels,
            runs: r,
            withheld: h.withheld.as_ref(),
        })
        .collect();
    let (control_reports, summary) = assess::assess(&policy, &controls, &inputs, at);

    let report = Report {
        format: FORMAT.into(),
        id: crate::tokens::uuid().map_err(|e| ReportError::Store(StoreError::Broken(e)))?,
        generated_at: clock::now_rfc3339(),
        collector: CollectorInfo {
            origin: log.origin().to_string(),
            key: log.verifier().to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
            key_transitions: log.history().notes().to_vec(),
        },
        period: Period {
            from: req.from.map(clock::rfc3339),
            at: clock::rfc3339(at),
        },
        scope: ReportScope {
            selector: req.selector.clone(),
            controls,
        },
        soa: record,
        checks,
        checkpoint: checkpoint.note.clone(),
        agents: agents
            .iter()
            .map(|a| Enrollment {
                id: AgentId::new(&a.id),
                hostname: a.hostname.clone(),
                key_id: a.key_id.clone(),
                public_key: a.public_key.clone(),
                labels: a.labels.clone(),
                enrolled_at: a.enrolled_at.clone(),
                revoked_at: a.revoked_at.clone(),
                retired_keys: retired.remove(&a.id).unwrap_or_default(),
            })
            .collect(),
        hosts,
        controls: control_reports,
        summary,
    };
    let signed = report.sign(key).map_err(|e| {
        ReportError::Store(StoreError::Broken(format!("serializing the report: {e}")))
    })?;
    Ok((report, signed))
}

/// The SoA version in force at `at`: the newest imported by then.
async fn soa_at(store: &dyn Store, at: i64) -> Result<(SoaRecord, Soa), ReportError> {
    let versions = store.soa_versions().await?;
    let version = versions
        .iter()
        .filter(|v| clock::parse_rfc3339(&v.imported_at).is_some_and(|t| t <= at))
        .map(|v| v.version)
        .max()
        .ok_or_else(|| {
            ReportError::NoSoa(format!(
                "no Statement of Applicability was imported by {}; import one with `annexa-collector soa import`",
                clock::rfc3339(at)
            ))
        })?;
    let (v, soa, source) = crate::soa::load(store, version).await?;
    Ok((
        SoaRecord {
            version,
            format: v.format,
            sha256: v.sha256,
            imported_by: v.imported_by,
            imported_at: v.imported_at,
            comment: v.comment,
            source,
        },
        soa,
    ))
}

/// Every check of the packs, with the controls of the SoA's edition it
/// gives evidence for and the parameters it reads.
fn check_infos(packs: &PackSet, soa: &Soa) -> Vec<CheckInfo> {
    packs.checks().map(|c| check_info(c, soa.edition)).collect()
}

/// A check as reports and drift answers describe it, with the controls of
/// `edition` it gives evidence for.
pub fn check_info(
    c: &annexa_checks::pack::Check,
    edition: annexa_checks::catalog::Edition,
) -> CheckInfo {
    CheckInfo {
        id: c.id.clone(),
        title: c.title.clone(),
        severity: c.severity.as_str().into(),
        remediation: c.remediation.clone(),
        pack: format!("{}@{}", c.pack.id, c.pack.version),
        controls: c.controls.get(&edition).cloned().unwrap_or_default(),
        params: c.param_names(),
    }
}

/// A host's envelopes for the report: the newest accepted by `at` (and
/// covered by the checkpoint), then older ones of an unbroken chain while a
/// check its controls need has no result yet and the older one has one.
async fn host_evidence(
    store: &dyn Store,
    policy: &annexa_checks::conformity::Policy,
    controls: &[&annexa_checks::soa::SoaControl],
    agent: &AgentRecord,
    at: i64,
    from: Option<i64>,
    checkpoint_size: u64,
) -> Result<(Vec<EvidenceItem>, Vec<Run>, Option<Withheld>), ReportError> {
    let mut items: Vec<EvidenceItem> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut below = agent.next_sequence;
    let mut missing = BTreeSet::new();
    // Usually the newest envelope or two decide: read few first, more per
    // page when a report's `at` lies behind many newer envelopes.
    let mut page_size = MAX_RUNS_PER_HOST as u32;
    'pages: loop {
        let page = store.envelopes_before(agent.no, below, page_size).await?;
        page_size = (page_size * 2).min(256);
        let Some(last) = page.last() else { break };
        below = last.sequence;
        for meta in page {
            let accepted = clock::parse_rfc3339(&meta.received_at).unwrap_or(i64::MAX);
            let Some(index) = meta.log_index else {
                // Not in the log (stored before it existed): not provable.
                if items.is_empty() {
                    continue;
                }
                break 'pages;
            };
            if items.is_empty() && (accepted > at || index >= checkpoint_size) {
                continue;
            }
            if from.is_some_and(|f| accepted < f) {
                break 'pages;
            }
            if let Some(pruned_at) = meta.pruned_at.clone() {
                if items.is_empty() {
                    return Ok((
                        Vec::new(),
                        Vec::new(),
                        Some(Withheld {
                            sequence: meta.sequence,
                            pruned_at,
                        }),
                    ));
                }
                break 'pages;
            }
            if !runs.is_empty() && !meta_contributes(&meta.results, &missing) {
                // An older run without any of the missing results: the
                // host does not run those checks; going further back
                // would only find older versions of what is here.
                break 'pages;
            }
            if let Some(next) = runs.last() {
                // Only an unbroken chain: the newer envelope names this one.
                let links = next.sequence == meta.sequence + 1
                    && next.predicate.previous.as_deref() == Some(meta.sha256.as_str());
                if !links {
                    break 'pages;
                }
            }
            let Some((_, bytes)) = store.envelope(agent.no, meta.sequence).await? else {
                break 'pages;
            };
            let predicate = parse_scan_envelope(&bytes)
                .map_err(|e| {
                    StoreError::Broken(format!(
                        "stored envelope {} of agent {}: {e}",
                        meta.sequence, agent.id
                    ))
                })?
                .predicate;
            let envelope = RawValue::from_string(String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|e| StoreError::Broken(format!("stored envelope is not JSON: {e}")))?;
            items.push(EvidenceItem {
                sequence: meta.sequence,
                log_index: index,
                accepted_at: meta.received_at.clone(),
                sha256: meta.sha256.clone(),
                // Filled in for every host at once.
                proof: Vec::new(),
                envelope,
            });
            runs.push(Run {
                sequence: meta.sequence,
                accepted_at: accepted,
                predicate,
            });
            missing = assess::missing_checks(policy, controls, &agent.labels, &runs);
            if items.len() >= MAX_RUNS_PER_HOST || missing.is_empty() {
                break 'pages;
            }
        }
    }
    // Collected newest first; reports list them oldest first.
    items.reverse();
    runs.reverse();
    Ok((items, runs, None))
}

/// Whether an envelope's per-check statuses (as stored beside it) include
/// one of `missing`.
fn meta_contributes(results: &serde_json::Value, missing: &BTreeSet<CheckId>) -> bool {
    results.as_array().is_some_and(|rs| {
        rs.iter()
            .any(|r| r["check_id"].as_str().is_some_and(|c| missing.contains(c)))
    })
}
