//! Offline verification of a signed report, trusting only the collector's
//! key: the collector's signature; the checkpoint's signature; each
//! agent's key against its enrollment record; each envelope's digest,
//! agent signature, statement and inclusion proof; each host's chain;
//! that all evidence lies in the period and every host in the scope; and
//! that every stated state follows from the evidence and the SoA
//! ([`super::assess`] recomputed).

use std::collections::{BTreeMap, HashMap, HashSet};

use annexa_checks::soa::{Scope, Soa};
use serde::Serialize;

use super::assess::{self, HostInput, Run};
use super::{Counts, Enrollment, EvidenceItem, HostEvidence, OpenError, Opened, Report};
use crate::chain::{Step, step};
use crate::collector_keys::KeyHistory;
use crate::encoding::hex_decode;
use crate::keys::PublicKey;
use crate::log::LogEntry;
use crate::merkle::verify_inclusion;
use crate::note::{Checkpoint, Verifier};
use annexa_checks::conformity::parse_time;

/// Problems listed in full; more are only counted.
const MAX_LISTED: usize = 50;

/// What verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The report's id.
    pub id: String,
    /// Hex SHA-256 of the signed payload.
    pub digest: String,
    /// Payload size in bytes.
    pub size: usize,
    /// The report's time.
    pub at: String,
    /// The start of its evidence window, if it has one.
    pub from: Option<String>,
    /// The SoA version.
    pub soa_version: i64,
    /// The checkpoint: size and origin.
    pub checkpoint_size: u64,
    /// The log's origin.
    pub origin: String,
    /// Hosts.
    pub hosts: usize,
    /// Envelopes whose signature and inclusion proof were checked.
    pub envelopes: usize,
    /// Controls in scope.
    pub controls: usize,
    /// (host, control) states recomputed.
    pub cells: Counts,
    /// The first problems, in words.
    pub problems: Vec<String>,
    /// How many problems in all.
    pub problem_count: usize,
}

impl Outcome {
    /// Whether everything held.
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, what: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(what);
        }
    }
}

/// Verifies a signed report against the collector's key. An error means
/// the report could not be opened at all (bad signature, not a report);
/// anything else wrong is listed in the outcome's problems.
/// The key may be any of the log's keys: the report's key transitions
/// lead from it to the key that signed the report.
pub fn verify(bytes: &[u8], collector: &Verifier) -> Result<Outcome, OpenError> {
    let (opened, keys) = super::open_trusting(bytes, collector)?;
    Ok(verify_opened(&opened, &keys))
}

/// [`verify`] for a report already opened ([`super::open_trusting`]), for
/// callers that go on to use the report.
pub fn verify_opened(opened: &Opened, keys: &KeyHistory) -> Outcome {
    let collector = keys.current();
    let r = &opened.report;
    let mut out = Outcome {
        id: r.id.clone(),
        digest: opened.digest.clone(),
        size: opened.size,
        at: r.period.at.clone(),
        from: r.period.from.clone(),
        soa_version: r.soa.version,
        origin: r.collector.origin.clone(),
        hosts: r.hosts.len(),
        controls: r.controls.len(),
        ..Outcome::default()
    };
    if Verifier::parse(&r.collector.key).ok().as_ref() != Some(collector) {
        out.problem(format!(
            "collector: the report names the key `{}`, not the one given",
            r.collector.key
        ));
    }
    if r.collector.origin != collector.name {
        out.problem(format!(
            "collector: the report names the log `{}`, the key is `{}`'s",
            r.collector.origin, collector.name
        ));
    }
    let checkpoint = match keys.open_checkpoint(&r.checkpoint) {
        Ok(cp) => Some(cp),
        Err(e) => {
            out.problem(format!("checkpoint: {e}"));
            None
        }
    };
    out.checkpoint_size = checkpoint.as_ref().map_or(0, |c| c.size);
    let at = parse_time(&r.period.at);
    let from = r.period.from.as_deref().map(parse_time);
    if at.is_none() {
        out.problem(format!(
            "period: `at` {:?} is not an RFC 3339 time",
            r.period.at
        ));
    }
    if let Some(None) = from {
        out.problem("period: `from` is not an RFC 3339 time".into());
    }
    let from = from.flatten();
    let selector = match r.scope.selector.as_deref().map(Scope::parse_selector) {
        Some(Err(e)) => {
            out.problem(format!("scope: selector: {e}"));
            None
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    match (parse_time(&r.soa.imported_at), at) {
        (None, _) => out.problem(format!(
            "soa: imported_at {:?} is not an RFC 3339 time",
            r.soa.imported_at
        )),
        (Some(imported), Some(at)) if imported > at => out.problem(format!(
            "soa: version {} was imported at {}, after the report's time: it was not in force",
            r.soa.version, r.soa.imported_at
        )),
        _ => {}
    }
    let agents = check_agents(&mut out, r, at, selector.as_ref());
    let soa = check_soa(&mut out, r);

    let mut hosts_seen = HashSet::new();
    let mut runs_per_host: Vec<(&HostEvidence, &Enrollment, Vec<Run>)> =
        Vec::with_capacity(r.hosts.len());
    for h in &r.hosts {
        let here = format!("host {}", h.agent);
        if !hosts_seen.insert(h.agent.as_str()) {
            out.problem(format!("{here}: listed twice"));
        }
        let Some((enrollment, key)) = agents.get(h.agent.as_str()) else {
            out.problem(format!(
                "{here}: no enrollment record for this agent in the report"
            ));
            continue;
        };
        let mut runs = Vec::with_capacity(h.evidence.len());
        let mut previous: Option<&EvidenceItem> = None;
        for item in &h.evidence {
            out.envelopes += 1;
            let run = match check_item(item, enrollment, *key, checkpoint.as_ref(), at, from) {
                Ok(run) => run,
                Err(e) => {
                    out.problem(format!("{here} sequence {}: {e}", item.sequence));
                    continue;
                }
            };
            if let Some(prev) = previous {
                let p = &run.predicate;
                let gap = p.gap.as_ref().map_or(&[][..], |g| &g.dropped);
                let s = step(
                    prev.sequence + 1,
                    Some(&prev.sha256),
                    p.sequence,
                    p.previous.as_deref(),
                    gap,
                );
                if s != Step::Extends {
                    out.problem(format!(
                        "{here} sequence {}: does not follow sequence {} in the agent's chain ({s:?}): envelopes between them are left out",
                        item.sequence, prev.sequence
                    ));
                }
            }
            previous = Some(item);
            runs.push(run);
        }
        if let Some(last) = runs.last() {
            let facts = serde_json::to_value(&last.predicate.scan.host).ok();
            if h.inventory != facts {
                out.problem(format!(
                    "{here}: the inventory facts differ from those its newest envelope signs"
                ));
            }
        } else if h.inventory.is_some() {
            out.problem(format!(
                "{here}: inventory facts without an envelope that signs them"
            ));
        }
        runs_per_host.push((h, *enrollment, runs));
    }
    for id in agents.keys() {
        if !hosts_seen.contains(id) {
            out.problem(format!(
                "agent {id}: enrolled in scope but has no host section"
            ));
        }
    }

    // Recompute every state from the checked evidence.
    if let (Some(soa), Some(at)) = (soa, at) {
        let policy = assess::policy(r.soa.version, soa, &r.checks);
        for c in &r.scope.controls {
            if policy.control(c.as_str()).is_none() {
                out.problem(format!("scope: control {c} is not in the SoA"));
            }
        }
        let inputs: Vec<HostInput<'_>> = runs_per_host
            .iter()
            .map(|(h, enrollment, runs)| HostInput {
                agent: &h.agent,
                labels: &enrollment.labels,
                runs,
                withheld: h.withheld.as_ref(),
            })
            .collect();
        let (controls, summary) = assess::assess(&policy, &r.scope.controls, &inputs, at);
        compare_controls(&mut out, &r.controls, &controls);
        if summary != r.summary {
            out.problem(
                "summary: the totals differ from those of the recomputed states".to_string(),
            );
        }
        out.cells = summary.cells;
    }
    out
}

/// Enrollment records: keys well formed and matching their ids, enrolled
/// by `at` and not revoked by then, labels in the scope.
fn check_agents<'r>(
    out: &mut Outcome,
    r: &'r Report,
    at: Option<i64>,
    selector: Option<&Scope>,
) -> HashMap<&'r str, (&'r Enrollment, PublicKey)> {
    let mut agents = HashMap::new();
    for a in &r.agents {
        let here = format!("agent {}", a.id);
        let key = match PublicKey::from_b64(&a.public_key) {
            Ok(k) => k,
            Err(e) => {
                out.problem(format!("{here}: public key: {e}"));
                continue;
            }
        };
        if key.key_id() != a.key_id {
            out.problem(format!(
                "{here}: the key id {} is not the SHA-256 of its public key",
                a.key_id
            ));
            continue;
        }
        for old in &a.retired_keys {
            if PublicKey::from_b64(&old.public_key)
                .map(|k| k.key_id())
                .ok()
                .as_deref()
                != Some(old.key_id.as_str())
            {
                out.problem(format!(
                    "{here}: retired key {} is not the SHA-256 of its public key",
                    old.key_id
                ));
            }
        }
        match parse_time(&a.enrolled_at) {
            None => out.problem(format!(
                "{here}: enrolled_at {:?} is not an RFC 3339 time",
                a.enrolled_at
            )),
            Some(enrolled) if at.is_some_and(|at| enrolled > at) => out.problem(format!(
                "{here}: enrolled at {}, after the report's time",
                a.enrolled_at
            )),
            Some(_) => {}
        }
        if let Some(revoked_at) = &a.revoked_at {
            match parse_time(revoked_at) {
                None => out.problem(format!(
                    "{here}: revoked_at {revoked_at:?} is not an RFC 3339 time"
                )),
                Some(revoked) if at.is_some_and(|at| revoked <= at) => out.problem(format!(
                    "{here}: revoked at {revoked_at}, before the report's time"
                )),
                Some(_) => {}
            }
        }
        if !assess::in_scope(selector, &a.labels) {
            out.problem(format!(
                "{here}: its labels do not match the scope's selector"
            ));
        }
        if agents.insert(a.id.as_str(), (a, key)).is_some() {
            out.problem(format!("{here}: listed twice"));
        }
    }
    agents
}

/// The SoA: its digest and that it parses.
fn check_soa(out: &mut Outcome, r: &Report) -> Option<Soa> {
    let digest = crate::sha256_hex(r.soa.source.as_bytes());
    if digest != r.soa.sha256 {
        out.problem(format!(
            "soa: the document hashes to {digest}, not the recorded {}",
            r.soa.sha256
        ));
    }
    match r.soa.parse() {
        Ok(soa) => Some(soa),
        Err(e) => {
            out.problem(format!("soa: {e}"));
            None
        }
    }
}

/// One envelope: digest, agent signature, statement, leaf, proof, period.
fn check_item(
    item: &EvidenceItem,
    enrollment: &Enrollment,
    key: PublicKey,
    checkpoint: Option<&Checkpoint>,
    at: Option<i64>,
    from: Option<i64>,
) -> Result<Run, String> {
    let bytes = item.envelope.get().as_bytes();
    let digest = crate::sha256_hex(bytes);
    if digest != item.sha256 {
        return Err(format!(
            "the envelope hashes to {digest}, not the stated {}",
            item.sha256
        ));
    }
    // A rotated agent's older envelopes verify with the key they were
    // signed with (its digest was checked with the agent's record).
    let (key_id, public_key) = enrollment.key_at(item.sequence);
    let key = if key_id == enrollment.key_id {
        key
    } else {
        PublicKey::from_b64(public_key).map_err(|e| format!("retired key {key_id}: {e}"))?
    };
    let p = crate::audit::open_scan_envelope(bytes, key, enrollment.id.as_str(), item.sequence)?;
    let accepted = parse_time(&item.accepted_at)
        .ok_or_else(|| format!("accepted_at {:?} is not an RFC 3339 time", item.accepted_at))?;
    if at.is_some_and(|at| accepted > at) {
        return Err(format!(
            "accepted at {}, after the report's time",
            item.accepted_at
        ));
    }
    if from.is_some_and(|from| accepted < from) {
        return Err(format!(
            "accepted at {}, before the report's period",
            item.accepted_at
        ));
    }
    let leaf = LogEntry {
        agent_id: enrollment.id.clone(),
        key_id: key_id.to_string(),
        sequence: item.sequence,
        envelope_sha256: item.sha256.clone(),
        accepted_at: item.accepted_at.clone(),
    }
    .leaf_hash();
    let proof: Vec<[u8; 32]> = item
        .proof
        .iter()
        .map(|h| hex_decode(h).and_then(|b| b.try_into().ok()))
        .collect::<Option<_>>()
        .ok_or("the inclusion proof is not a list of hex SHA-256 hashes")?;
    let cp = checkpoint.ok_or("no verified checkpoint to check the inclusion proof against")?;
    verify_inclusion(&leaf, item.log_index, cp.size, &proof, &cp.root).map_err(|e| {
        format!(
            "inclusion proof of log index {} in the checkpoint of size {}: {e}",
            item.log_index, cp.size
        )
    })?;
    Ok(Run {
        sequence: p.sequence,
        accepted_at: accepted,
        predicate: p,
    })
}

/// The stated control section against the recomputed one, naming each
/// difference.
fn compare_controls(
    out: &mut Outcome,
    stated: &[super::ControlReport],
    computed: &[super::ControlReport],
) {
    let by_id: BTreeMap<&str, &super::ControlReport> =
        computed.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut stated_ids: HashSet<&str> = HashSet::new();
    for c in stated {
        if !stated_ids.insert(c.id.as_str()) {
            out.problem(format!("control {}: listed twice", c.id));
        }
    }
    let order = |cs: &[super::ControlReport]| cs.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    if stated_ids.len() == stated.len()
        && stated.len() == computed.len()
        && order(stated) != order(computed)
    {
        out.problem("controls: not in the SoA's order".into());
    }
    for c in computed {
        if !stated_ids.contains(c.id.as_str()) {
            out.problem(format!(
                "control {}: in scope but missing from the report",
                c.id
            ));
        }
    }
    for s in stated {
        let Some(c) = by_id.get(s.id.as_str()) else {
            out.problem(format!(
                "control {}: not a control of the SoA in scope",
                s.id
            ));
            continue;
        };
        if *c == s {
            continue;
        }
        let mut named = false;
        let hosts: HashMap<&str, &super::HostState> =
            c.hosts.iter().map(|h| (h.agent.as_str(), h)).collect();
        for h in &s.hosts {
            match hosts.get(h.agent.as_str()) {
                None => {
                    named = true;
                    out.problem(format!(
                        "control {} on host {}: stated {}, but by the SoA and the check list this host's evidence does not decide the control",
                        s.id, h.agent, h.state
                    ));
                }
                Some(want) if *want != h => {
                    named = true;
                    let why = if want.state == h.state {
                        "with other reasons or evidence".to_string()
                    } else {
                        format!("but its evidence and the SoA give {}", want.state)
                    };
                    out.problem(format!(
                        "control {} on host {}: stated {} {why}",
                        s.id, h.agent, h.state
                    ));
                }
                Some(_) => {}
            }
        }
        if s.hosts.len() != c.hosts.len() {
            named = true;
            out.problem(format!(
                "control {}: states for {} hosts, the evidence gives {}",
                s.id,
                s.hosts.len(),
                c.hosts.len()
            ));
        }
        if !named {
            out.problem(format!(
                "control {}: its SoA entry, checks or counts differ from the SoA and check list (stated {:?}, recomputed {:?})",
                s.id, s.kind, c.kind
            ));
        }
    }
}
