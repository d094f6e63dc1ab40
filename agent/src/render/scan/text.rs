//! `annexa scan` as a table for people: results grouped by control,
//! failures first.

use std::fmt::Write;
use std::io::IsTerminal;

use annexa_checks::catalog::Edition;
use annexa_checks::engine::ScanReport;
use annexa_checks::host::ScanMode;
use annexa_checks::result::Status;

use super::{ControlGroup, group_by_control};

/// Colour only on a terminal, and never when NO_COLOR is set.
pub fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn label(status: Status, colour: bool) -> String {
    let (text, code) = match status {
        Status::Fail => ("FAIL", "31;1"),
        Status::Error => ("ERROR", "33;1"),
        Status::Pass => ("PASS", "32"),
        Status::NotApplicable => ("N/A", "2"),
    };
    if colour {
        format!("\x1b[{code}m{text:<5}\x1b[0m")
    } else {
        format!("{text:<5}")
    }
}

/// Renders the report as text.
pub fn render(report: &ScanReport, edition: Edition, colour: bool) -> String {
    let mut ordered = group_by_control(report, edition);
    // Groups with failures first, then errors, then the rest; the standard's
    // order within each (the sort is stable).
    ordered.sort_by_key(|g| g.results.iter().map(|r| r.status).min());

    let mut out = String::new();
    let target = match report.target.mode {
        ScanMode::Live => format!(
            "the live host {}",
            report.host.hostname.as_deref().unwrap_or("(unnamed)")
        ),
        ScanMode::Root => format!("root directory {}", report.target.root),
    };
    let os = report.host.os_name.as_deref().unwrap_or("unidentified OS");
    let platform = if report.host.platform.is_empty() {
        "unknown".to_string()
    } else {
        report.host.platform.clone()
    };
    let _ = writeln!(
        out,
        "annexa scan of {target} ({os}; platform {platform}, {} family): {} checks, grouped by ISO/IEC 27001:{edition} control",
        report.host.family,
        report.results.len()
    );
    if let Some(problem) = &report.host.platform_problem {
        let _ = writeln!(
            out,
            "the platform is unknown ({problem}): checks written for particular platforms are not applicable"
        );
    }
    let _ = writeln!(out);
    for ControlGroup {
        id,
        title,
        results: mut rs,
    } in ordered
    {
        rs.sort_by_key(|r| (r.status, r.check_id.clone()));
        let count = |s| rs.iter().filter(|r| r.status == s).count();
        let mut tally = Vec::new();
        for (s, name) in [
            (Status::Fail, "fail"),
            (Status::Error, "error"),
            (Status::Pass, "pass"),
            (Status::NotApplicable, "n/a"),
        ] {
            if count(s) > 0 {
                tally.push(format!("{} {name}", count(s)));
            }
        }
        let _ = writeln!(out, "{id} {title}  ({})", tally.join(", "));
        for r in rs {
            let _ = writeln!(
                out,
                "  {} {:<40} {}",
                label(r.status, colour),
                r.check_id,
                r.message
            );
            if r.status == Status::Fail || r.status == Status::Error {
                let decisive: Vec<String> = r
                    .sources
                    .iter()
                    .filter(|s| s.line.is_some())
                    .map(|s| format!("{}:{}", s.path, s.line.unwrap_or(0)))
                    .take(3)
                    .collect();
                if !decisive.is_empty() {
                    let _ = writeln!(out, "        at {}", decisive.join(", "));
                }
                if let Some(fix) = &r.remediation {
                    let _ = writeln!(out, "        fix: {fix}");
                }
            }
        }
        out.push('\n');
    }
    let s = report.summary;
    let _ = writeln!(
        out,
        "{} checks: {} pass, {} fail, {} error, {} not applicable ({} ms)",
        s.total(),
        s.pass,
        s.fail,
        s.error,
        s.not_applicable,
        report.duration_ms
    );
    out
}
