//! `annexa verify log` as text.

use std::io::{self, Write};
use std::time::Duration;

use annexa_evidence::audit::Verification;

/// Prints a verification: what was checked, then every problem.
pub fn render(
    out: &mut dyn Write,
    source: &str,
    v: &Verification,
    took: Duration,
) -> io::Result<()> {
    writeln!(out, "log          {} ({source})", v.origin)?;
    writeln!(
        out,
        "entries      {} ({} envelopes verified, {} pruned under the retention policy)",
        v.entries, v.envelopes_verified, v.pruned
    )?;
    writeln!(out, "agents       {}", v.agents)?;
    // Only logs that hold people's statements say so.
    if v.people > 0 || v.person_statements_verified > 0 {
        writeln!(
            out,
            "people       {} ({} signed statements verified)",
            v.people, v.person_statements_verified
        )?;
    }
    // One key needs no listing; after a rotation, which signs what.
    if v.collector_keys.len() > 1 {
        for k in &v.collector_keys {
            writeln!(out, "collector    {k}")?;
        }
    }
    match &v.latest_checkpoint {
        Some((size, root)) => writeln!(
            out,
            "checkpoints  {} verified; newest at size {size}, root {root}",
            v.checkpoints_verified
        )?,
        None => writeln!(out, "checkpoints  none verified")?,
    }
    if v.uncovered > 0 {
        writeln!(
            out,
            "uncovered    {} entries after the newest checkpoint (appended since; verified but not yet signed for)",
            v.uncovered
        )?;
    }
    writeln!(out, "root         {}", v.root)?;
    if let Some(r) = &v.retention_period {
        writeln!(out, "retention    {r}")?;
    }
    for r in &v.retention {
        writeln!(
            out,
            "             {}: payloads of {} envelopes accepted before {} removed under the retention policy ({})",
            r.at, r.pruned, r.cutoff, r.retention
        )?;
    }
    let rate = v.entries as f64 / took.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "took         {:.1} s ({rate:.0} entries/s)",
        took.as_secs_f64()
    )?;
    for p in &v.problems {
        match p.index {
            Some(i) => writeln!(out, "PROBLEM      index {i}: {}", p.what)?,
            None => writeln!(out, "PROBLEM      {}", p.what)?,
        }
    }
    if v.problem_count as usize > v.problems.len() {
        writeln!(
            out,
            "             ... and {} more",
            v.problem_count as usize - v.problems.len()
        )?;
    }
    if v.ok() {
        writeln!(
            out,
            "OK: every entry, envelope, sequence chain and checkpoint verifies"
        )
    } else {
        writeln!(out, "FAILED: {} problem(s)", v.problem_count)
    }
}
