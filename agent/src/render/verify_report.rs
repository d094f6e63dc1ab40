//! `annexa verify report` as text.

use std::io::{self, Write};
use std::time::Duration;

use annexa_evidence::report::verify::Outcome;

/// Prints what was checked, then the verdict and the first problems.
pub fn render(out: &mut dyn Write, source: &str, o: &Outcome, took: Duration) -> io::Result<()> {
    writeln!(out, "report       {} ({source})", o.id)?;
    writeln!(out, "digest       sha256:{} ({} bytes)", o.digest, o.size)?;
    match &o.from {
        Some(f) => writeln!(out, "period       {f} .. {}", o.at)?,
        None => writeln!(out, "at           {}", o.at)?,
    }
    writeln!(out, "soa          version {}", o.soa_version)?;
    writeln!(
        out,
        "checkpoint   {} at size {}",
        o.origin, o.checkpoint_size
    )?;
    writeln!(
        out,
        "evidence     {} envelopes of {} hosts: agent signatures and inclusion proofs",
        o.envelopes, o.hosts
    )?;
    let cells: u64 = o.cells.values().sum();
    let counts = o
        .cells
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        out,
        "states       {cells} recomputed over {} controls ({counts})",
        o.controls
    )?;
    if o.ok() {
        writeln!(out, "verified     OK in {:.2}s", took.as_secs_f64())?;
    } else {
        writeln!(
            out,
            "FAILED       {} problems (first {} shown):",
            o.problem_count,
            o.problems.len()
        )?;
        for p in &o.problems {
            writeln!(out, "  - {p}")?;
        }
    }
    Ok(())
}
