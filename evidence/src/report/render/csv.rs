//! The SoA with its status, one row per control, for spreadsheets.

use super::{Context, EVIDENCED, overall};

/// Renders the CSV (RFC 4180, header row first).
pub fn render(ctx: &Context<'_>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "control",
        "title",
        "theme",
        "applicable",
        "kind",
        "implementation",
        "owner",
        "justification",
        "checks",
        "status",
        "hosts",
    ];
    header.extend(EVIDENCED.iter().map(|s| s.as_str()));
    // Writing to a Vec cannot fail; a failed row would only be missing.
    let _ = w.write_record(&header);
    for c in &ctx.report.controls {
        let mut row = vec![
            c.id.to_string(),
            c.title.clone(),
            c.theme.clone(),
            if c.applicable { "yes" } else { "no" }.to_string(),
            c.kind.as_str().to_string(),
            c.implementation.clone().unwrap_or_default(),
            c.owner.clone(),
            c.justification.clone(),
            c.checks.join(" "),
            overall(c).to_string(),
            c.hosts.len().to_string(),
        ];
        row.extend(
            EVIDENCED
                .iter()
                .map(|s| c.counts.get(s).copied().unwrap_or(0).to_string()),
        );
        let _ = w.write_record(&row);
    }
    w.into_inner().unwrap_or_default()
}
