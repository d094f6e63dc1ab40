//! Scan reports (`annexa scan`) for people and CI systems: the text table
//! and JUnit XML, both grouped by Annex A control. The grouping is here,
//! shared by the two.

pub mod junit;
pub mod text;

use std::collections::BTreeMap;

use annexa_checks::catalog::{Edition, catalog};
use annexa_checks::engine::ScanReport;
use annexa_checks::result::CheckResult;

/// The results filed under one control.
pub struct ControlGroup<'a> {
    /// Control id (`-` for checks without a control in the edition).
    pub id: String,
    /// Control title.
    pub title: String,
    /// The results, in report order.
    pub results: Vec<&'a CheckResult>,
}

/// Groups results by their primary control, in the standard's order.
pub fn group_by_control(report: &ScanReport, edition: Edition) -> Vec<ControlGroup<'_>> {
    let mut groups: BTreeMap<Vec<u32>, ControlGroup<'_>> = BTreeMap::new();
    for r in &report.results {
        let (id, title) = primary_control(r, edition);
        groups
            .entry(control_order(&id))
            .or_insert_with(|| ControlGroup {
                id,
                title,
                results: Vec::new(),
            })
            .results
            .push(r);
    }
    groups.into_values().collect()
}

/// The control a result is filed under in grouped output: its first control
/// in the edition, or a placeholder when it has none there.
fn primary_control(r: &CheckResult, edition: Edition) -> (String, String) {
    match r.controls.get(&edition).and_then(|ids| ids.first()) {
        Some(id) => {
            let title = catalog()
                .control(edition, id.as_str())
                .map(|c| c.title.clone())
                .unwrap_or_default();
            (id.to_string(), title)
        }
        None => (
            "-".to_string(),
            format!("no ISO/IEC 27001:{edition} control"),
        ),
    }
}

/// Orders control ids the way the standard does (A.9.4.2 before A.10.1.1).
fn control_order(id: &str) -> Vec<u32> {
    id.trim_start_matches("A.")
        .split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}
