//! `annexa checks list`: every check of the loaded packs with its
//! severity, probe and controls.

use std::io::Write;

use annexa_checks::catalog::Edition;

use super::PackOptions;

/// Prints one line per check, its controls in `edition`.
pub fn list_checks(packs: &PackOptions, edition: Edition) -> anyhow::Result<()> {
    let set = packs.load()?;
    let mut out = std::io::stdout().lock();
    for c in set.checks() {
        let ids = c
            .controls
            .get(&edition)
            .map(|v| v.join(" "))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<44} {:<8} {:<16} {}",
            c.id,
            c.severity.as_str(),
            c.probe.kind(),
            ids
        )?;
    }
    Ok(())
}
