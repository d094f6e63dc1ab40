//! The scan engine: selects checks, runs their probes over a host view, and
//! assembles the scan report (format in docs/scan-format.md).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::{CatalogError, Edition, catalog};
use crate::expect::Params;
use crate::host::{HostView, ScanMode};
use crate::ids::{CheckId, ControlId};
use crate::pack::{Check, PackSet, ProbeChoice};
use crate::probes::{Ctx, Detected, HostFacts, Outcome, WalkPlan, facts_of};
use crate::result::{CheckResult, Status, Summary};

/// The version tag of the scan report format.
pub const SCAN_SCHEMA: &str = "annexa.scan/v1";

/// Which checks to run. Empty lists select everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Check ids.
    pub checks: Vec<CheckId>,
    /// Control ids as written: any edition's form, normalized when looked up.
    pub controls: Vec<String>,
    /// The edition `controls` are written in; guessed per id when absent.
    pub edition: Option<Edition>,
}

/// A selection that names nothing real.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// No such check.
    #[error("unknown check `{id}`{}", if .suggestions.is_empty() { String::new() } else { format!("; closest: {}", .suggestions.join(", ")) })]
    UnknownCheck {
        /// As given.
        id: CheckId,
        /// Close ids.
        suggestions: Vec<CheckId>,
    },
    /// No such control.
    #[error(transparent)]
    UnknownControl(#[from] CatalogError),
    /// A real control that no loaded check covers: running nothing and
    /// passing would be a silent pass.
    #[error("no loaded check gives evidence for {control} (ISO/IEC 27001:{edition})")]
    Uncovered {
        /// Canonical id.
        control: ControlId,
        /// Its edition.
        edition: Edition,
    },
}

/// What was scanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Live host or root directory.
    pub mode: ScanMode,
    /// The root directory on the scanning machine (`/` when live).
    pub root: String,
}

/// A pack as it took part in a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackSummary {
    /// Pack id.
    pub id: String,
    /// Declared version.
    pub version: String,
    /// `sha256:` digest of its bytes.
    pub digest: String,
    /// `builtin:NAME` or a file path.
    pub origin: String,
}

/// The result of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Always [`SCAN_SCHEMA`].
    pub schema: String,
    /// The version of annexa that ran the scan.
    pub annexa_version: String,
    /// What was scanned.
    pub target: Target,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Host inventory facts.
    pub host: HostFacts,
    /// Packs loaded.
    pub packs: Vec<PackSummary>,
    /// Parameter values in force.
    pub params: Params,
    /// Counts per status.
    pub summary: Summary,
    /// One result per selected check.
    pub results: Vec<CheckResult>,
}

impl ScanReport {
    /// Whether any check failed (the CLI's exit code 1).
    pub fn has_failures(&self) -> bool {
        self.summary.fail > 0
    }
}

/// Resolves a selection to the checks it names, in pack order.
pub fn select<'a>(set: &'a PackSet, sel: &Selection) -> Result<Vec<&'a Check>, SelectionError> {
    for id in &sel.checks {
        if set.check(id.as_str()).is_none() {
            return Err(SelectionError::UnknownCheck {
                id: id.clone(),
                suggestions: set.closest_check_ids(id.as_str(), 3),
            });
        }
    }
    let mut wanted_controls: Vec<(Edition, ControlId)> = Vec::new();
    for raw in &sel.controls {
        let control = match sel.edition {
            Some(e) => catalog().control(e, raw)?,
            None => catalog().resolve_any(raw)?.0,
        };
        let key = (control.edition, control.id.clone());
        if !set.checks().any(|c| {
            c.controls
                .get(&key.0)
                .is_some_and(|ids| ids.contains(&key.1))
        }) {
            return Err(SelectionError::Uncovered {
                control: key.1,
                edition: key.0,
            });
        }
        wanted_controls.push(key);
    }
    Ok(set
        .checks()
        .filter(|c| sel.checks.is_empty() || sel.checks.contains(&c.id))
        .filter(|c| {
            wanted_controls.is_empty()
                || wanted_controls
                    .iter()
                    .any(|(e, id)| c.controls.get(e).is_some_and(|ids| ids.contains(id)))
        })
        .collect())
}

/// Runs one check: the probe its pack chose for the host's platform, or
/// `not_applicable` when it has none there.
pub fn run_check(check: &Check, ctx: &Ctx<'_>) -> CheckResult {
    let detected = ctx.platform();
    let outcome = match check.probe_for(&detected.platform) {
        ProbeChoice::Run { probe, .. } => match &check.applies_if {
            Some(cond) => match crate::probes::applies(ctx, cond) {
                Ok(()) => probe.run(ctx),
                Err(outcome) => outcome,
            },
            None => probe.run(ctx),
        },
        // A broken os-release is data the check needs and cannot read.
        ProbeChoice::NoVariant if detected.broken && detected.platform.id.is_none() => {
            Outcome::error(format!(
                "the platform cannot be identified, so which probe applies is unknown: {}",
                detected.problem.as_deref().unwrap_or("os-release")
            ))
        }
        ProbeChoice::NoVariant => Outcome::not_applicable(no_variant(check, detected)),
    };
    CheckResult {
        check_id: check.id.clone(),
        title: check.title.clone(),
        pack: check.pack.clone(),
        controls: check.controls.clone(),
        severity: check.severity,
        remediation: (outcome.status == Status::Fail).then(|| check.remediation.clone()),
        status: outcome.status,
        expected: outcome.expected,
        observed: outcome.observed,
        message: outcome.message,
        sources: outcome.sources,
    }
}

/// Why a check does not apply here, naming the platform and what the check
/// is for.
fn no_variant(check: &Check, detected: &Detected) -> String {
    let mut named: Vec<String> = if check.platforms.is_empty() {
        check
            .variants
            .iter()
            .flat_map(|v| v.platforms.iter().map(|s| s.to_string()))
            .collect()
    } else {
        check.platforms.iter().map(|s| s.to_string()).collect()
    };
    named.dedup();
    let mut reason = format!(
        "no variant for platform {}; this check is for {}",
        detected.platform.name(),
        named.join(", ")
    );
    if let Some(problem) = &detected.problem {
        reason.push_str(&format!(" (the platform is unknown: {problem})"));
    }
    reason
}

fn now() -> (OffsetDateTime, String) {
    let t = OffsetDateTime::now_utc();
    let s = t.format(&Rfc3339).unwrap_or_default();
    (t, s)
}

/// Runs the selected checks and builds the report.
pub fn scan(
    set: &PackSet,
    host: &HostView,
    params: &Params,
    sel: &Selection,
    annexa_version: &str,
) -> Result<ScanReport, SelectionError> {
    let checks = select(set, sel)?;
    let (_, started_at) = now();
    let clock = Instant::now();
    let ctx = Ctx::new(host, params);
    // What each check waits for: 2 the package lists (the longest read),
    // 1 a directory walk, 0 nothing prefetched.
    let waits: Vec<u8> = checks
        .iter()
        .map(|c| {
            if c.probes().any(|p| p.kind() == "pending_updates") {
                2
            } else if c.probes().any(|p| !p.walks().is_empty()) {
                1
            } else {
                0
            }
        })
        .collect();
    let wants_lists = waits.contains(&2);
    // Directories the special-files checks walk, each to the deepest depth
    // asked: walked ahead on their own thread, since they are file-system
    // bound and the checks need them only near the end.
    let mut walk_plan: BTreeMap<String, WalkPlan> = BTreeMap::new();
    for c in &checks {
        for p in c.probes() {
            for request in p.walks() {
                walk_plan
                    .entry(request.dir.to_string())
                    .or_default()
                    .add(&request);
            }
        }
    }
    ctx.plan_walks(walk_plan.clone());
    // The checks that need what is prefetched run last, those waiting for
    // the package lists (the longest read) after those waiting for walks,
    // so that the prefetching overlaps every other check.
    let mut order: Vec<usize> = (0..checks.len()).collect();
    order.sort_by_key(|&i| waits[i]);
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<CheckResult>> = checks.iter().map(|_| OnceLock::new()).collect();
    let facts: HostFacts = std::thread::scope(|s| {
        if !walk_plan.is_empty() {
            s.spawn(|| ctx.prefetch_walks(&walk_plan));
        }
        // The package database and lists are by far the largest inputs:
        // read them on the other core from the start while the checks that
        // need neither run here. The host facts (which count the packages)
        // come last, so they do not wait for that read up front.
        s.spawn(|| {
            if wants_lists {
                ctx.prefetch_pending_updates();
            } else {
                let _ = ctx.packages();
            }
        });
        // Two workers take the checks in `order`: while one waits for a
        // prefetched input, the other goes on, so a core is not left idle.
        // Each result keeps its check's place.
        let work = || {
            while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                let _ = slots[i].set(run_check(checks[i], &ctx));
            }
        };
        s.spawn(work);
        work();
        let (facts, _) = facts_of(&ctx);
        facts
    });
    // The scope joined both workers, so every slot is filled.
    let results: Vec<CheckResult> = slots.into_iter().filter_map(OnceLock::into_inner).collect();
    let (_, finished_at) = now();
    let used: BTreeMap<&str, ()> = checks.iter().map(|c| (c.pack.id.as_str(), ())).collect();
    let packs = set
        .packs
        .iter()
        .filter(|p| used.contains_key(p.reference.id.as_str()))
        .map(|p| PackSummary {
            id: p.reference.id.clone(),
            version: p.reference.version.clone(),
            digest: p.reference.digest.clone(),
            origin: p.origin.to_string(),
        })
        .collect();
    Ok(ScanReport {
        schema: SCAN_SCHEMA.to_string(),
        annexa_version: annexa_version.to_string(),
        target: Target {
            mode: host.mode(),
            root: host.root_dir().display().to_string(),
        },
        started_at,
        finished_at,
        duration_ms: clock.elapsed().as_millis() as u64,
        host: facts,
        packs,
        params: params.clone(),
        summary: Summary::of(&results),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing::root;

    #[test]
    fn results_keep_pack_order_whichever_worker_ran_them_and_repeat_exactly() {
        let set = PackSet::load(true, &[], false).unwrap();
        let params = set.params_with(&BTreeMap::new()).unwrap();
        let (_dir, host) = root(&[
            ("/etc/os-release", "ID=debian\nVERSION_ID=12\n"),
            ("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
            ("/etc/group", "root:x:0:\n"),
            ("/usr/bin/ls", "elf"),
            ("/var/lib/dpkg/status", ""),
        ]);
        let sel = Selection::default();
        let first = scan(&set, &host, &params, &sel, "test").unwrap();
        let ids: Vec<&str> = first.results.iter().map(|r| r.check_id.as_str()).collect();
        let order: Vec<&str> = select(&set, &sel)
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, order);
        for _ in 0..3 {
            let again = scan(&set, &host, &params, &sel, "test").unwrap();
            assert_eq!(again.results, first.results);
        }
    }
}
