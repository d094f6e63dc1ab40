//! `annexa controls`: the Annex A catalog of an edition, and a control's
//! counterparts in the other editions (the crosswalks).

use std::io::Write;

use anyhow::bail;

use annexa_checks::catalog::{Edition, Relation, catalog};

use super::Exit;

/// Prints the controls of `edition`, by group, or as JSON.
pub fn list_controls(edition: Edition, json: bool) -> anyhow::Result<()> {
    let list = catalog().controls(edition);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, list)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut group = "";
    for c in list {
        if c.group_id != group {
            group = &c.group_id;
            writeln!(out, "{} {}", c.group_id, c.group_title)?;
        }
        writeln!(out, "  {:<10} {}", c.id, c.title)?;
    }
    writeln!(
        out,
        "{} controls in ISO/IEC 27001:{edition} Annex A",
        list.len()
    )?;
    Ok(())
}

/// Prints the counterparts of control `id` (of `from`, else the oldest
/// edition that has it) in `to`, else in every other edition;
/// [`Exit::Failure`] when it has none.
pub fn map_control(id: &str, from: Option<Edition>, to: Option<Edition>) -> anyhow::Result<Exit> {
    let cat = catalog();
    let mut out = std::io::stdout().lock();
    let (control, editions) = match from {
        Some(e) => (cat.control(e, id)?, vec![e]),
        None => cat.resolve_any(id)?,
    };
    if from.is_none() && editions.len() > 1 {
        let all: Vec<String> = editions.iter().map(Edition::to_string).collect();
        eprintln!(
            "annexa: note: {} exists in editions {}; mapping from {} (use --from to choose)",
            control.id,
            all.join(" and "),
            control.edition
        );
    }
    writeln!(
        out,
        "{}  {}  (ISO/IEC 27001:{})",
        control.id, control.title, control.edition
    )?;
    let targets: Vec<Edition> = match to {
        Some(t) => vec![t],
        None => Edition::ALL
            .into_iter()
            .filter(|e| *e != control.edition)
            .collect(),
    };
    if to == Some(control.edition) {
        bail!(
            "--to {} is the edition {} is already in",
            control.edition,
            control.id
        );
    }
    let mut any = false;
    for t in targets {
        let maps = cat.map(control, t);
        if maps.is_empty() {
            writeln!(out, "  {t}  (no counterpart)")?;
        }
        for m in maps {
            any = true;
            let rel = match m.relation {
                Relation::Nearest => "  [nearest: no longer a control of its own]",
                Relation::Merged => "  [merged]",
                _ => "",
            };
            writeln!(out, "  {t}  {:<9} {}{rel}", m.to.id, m.to.title)?;
        }
    }
    Ok(Exit::failure_if(!any))
}
