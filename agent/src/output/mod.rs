//! Renderers for scan reports.

pub mod junit;
pub mod text;

use annexa_checks::catalog::{Edition, catalog};
use annexa_checks::result::CheckResult;

/// The control a result is filed under in grouped output: its first control
/// in the edition, or a placeholder when it has none there.
pub fn primary_control(r: &CheckResult, edition: Edition) -> (String, String) {
    match r.controls.get(&edition).and_then(|ids| ids.first()) {
        Some(id) => {
            let title = catalog().control(edition, id).map(|c| c.title.clone()).unwrap_or_default();
            (id.clone(), title)
        }
        None => ("-".to_string(), format!("no ISO/IEC 27001:{edition} control")),
    }
}

/// Orders control ids the way the standard does (A.9.4.2 before A.10.1.1).
pub fn control_order(id: &str) -> Vec<u32> {
    id.trim_start_matches("A.").split('.').map(|p| p.parse().unwrap_or(u32::MAX)).collect()
}
