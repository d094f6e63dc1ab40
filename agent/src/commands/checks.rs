//! `annexa checks list`: every check of the loaded packs with its
//! severity, probe and controls; for one platform, only the checks that
//! apply there, with the probe each would run. `annexa checks reference`:
//! the same packs as a Markdown reference.

use std::io::Write;

use annexa_checks::catalog::Edition;
use annexa_checks::pack::ProbeChoice;
use annexa_checks::platform::Platform;

use super::PackOptions;

/// Prints one line per check, its controls in `edition`; with a platform,
/// the checks that apply to it and, for a check with variants, which
/// variant runs.
pub fn list_checks(
    packs: &PackOptions,
    edition: Edition,
    platform: Option<&Platform>,
) -> anyhow::Result<()> {
    let set = packs.load()?;
    let mut out = std::io::stdout().lock();
    for c in set.checks() {
        let kind = match platform {
            None => c.probe_kinds(),
            Some(p) => match c.probe_for(p) {
                ProbeChoice::NoVariant => continue,
                ProbeChoice::Run { probe, variant } => match variant {
                    Some(sel) => format!(
                        "{} [{}]",
                        probe.kind(),
                        sel.iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    None => probe.kind().to_string(),
                },
            },
        };
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
            kind,
            ids
        )?;
    }
    Ok(())
}

/// Prints the Markdown reference of the loaded packs.
pub fn print_reference(packs: &PackOptions) -> anyhow::Result<()> {
    let set = packs.load()?;
    let text = annexa_checks::reference::markdown(&set, "Checks");
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
