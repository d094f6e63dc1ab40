//! `annexa gate --root` verdicts (local mode: a scan against a baseline)
//! for people and CI systems: text, JSON, JUnit XML (one test case per
//! check), SARIF 2.1.0 (one result per failing check, with the file and
//! line read), GitHub workflow commands and Markdown.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use annexa_checks::engine::ScanReport;
use annexa_checks::gate::{Finding, FindingKind, Verdict};
use annexa_checks::result::Status;

use super::{Case, GateVerdict, Outcome, gh_escape, gh_prop, junit_suite, md_cell, sarif_doc};

/// A local gate's verdict with the scan it judged: what the renderings
/// show.
pub struct Gate<'a> {
    /// The scan.
    pub report: &'a ScanReport,
    /// The verdict.
    pub verdict: &'a Verdict,
    /// The scanned root as given (source paths are inside it).
    pub root: &'a Path,
    /// What the baseline was, for the summary line.
    pub baseline: Option<&'a str>,
}

impl GateVerdict for Gate<'_> {
    /// Plain text.
    fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.verdict.findings {
            out.push_str(&format!(
                "{:<5} {:<13} {}\n",
                if f.fails { "FAIL" } else { "note" },
                f.kind.as_str(),
                f.message
            ));
            if let Some(e) = &f.expected {
                out.push_str(&format!("      expected {e}\n"));
            }
            if let Some((path, line)) = location(f) {
                out.push_str(&format!(
                    "      source   {path}{}\n",
                    line.map(|l| format!(":{l}")).unwrap_or_default()
                ));
            }
            if !f.controls.is_empty() {
                out.push_str(&format!("      controls {}\n", f.controls.join(", ")));
            }
            if f.fails
                && let Some(r) = &f.remediation
            {
                out.push_str(&format!("      fix      {r}\n"));
            }
        }
        out.push_str(&headline(self));
        out.push('\n');
        out
    }

    /// JSON: the verdict with the scan's identity.
    fn json(&self) -> String {
        let v = json!({
            "failed": self.verdict.failed,
            "baseline": self.baseline,
            "root": self.root.display().to_string(),
            "finished_at": self.report.finished_at,
            "checks": self.verdict.checks,
            "counts": self.verdict.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect::<BTreeMap<_, _>>(),
            "findings": self.verdict.findings,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    /// JUnit XML: one `<testsuite>` (the Ant JUnit schema's root element) with
    /// a test case per check of the scan and per removed check.
    fn junit(&self) -> String {
        let by_check: BTreeMap<&str, &Finding> = self
            .verdict
            .findings
            .iter()
            .map(|f| (f.check_id.as_str(), f))
            .collect();
        let failure = |f: &Finding| Outcome::Failure {
            message: f.message.clone(),
            kind: f.kind.as_str(),
            text: details(f),
        };
        let mut cases: Vec<Case<'_>> = self
            .report
            .results
            .iter()
            .map(|r| Case {
                name: r.check_id.to_string(),
                classname: &r.pack.id,
                outcome: match by_check.get(r.check_id.as_str()) {
                    Some(f) if f.fails => failure(f),
                    _ if r.status == Status::NotApplicable => Outcome::Skipped,
                    _ => Outcome::Pass,
                },
            })
            .collect();
        cases.extend(
            self.verdict
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::Removed)
                .map(|f| Case {
                    name: f.check_id.to_string(),
                    classname: "removed",
                    outcome: if f.fails {
                        failure(f)
                    } else {
                        Outcome::Skipped
                    },
                }),
        );
        let root = self.root.display().to_string();
        let mut props = vec![("root", root.as_str())];
        if let Some(b) = self.baseline {
            props.push(("baseline", b));
        }
        junit_suite(
            &self.report.started_at,
            self.report.duration_ms as f64 / 1000.0,
            &props,
            &cases,
            &headline(self),
        )
    }

    /// SARIF 2.1.0: a rule per check that has a result, a result per finding
    /// whose check fails now (level `error` when it fails the gate), located at
    /// the file and line it read, relative to the scanned root (`ROOT`).
    fn sarif(&self) -> String {
        let mut rules: Vec<Value> = Vec::new();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut results = Vec::new();
        for f in self
            .verdict
            .findings
            .iter()
            .filter(|f| matches!(f.now, Some(Status::Fail | Status::Error)))
        {
            let r = self
                .report
                .results
                .iter()
                .find(|r| r.check_id == f.check_id);
            let i = *index.entry(f.check_id.as_str()).or_insert_with(|| {
                rules.push(json!({
                    "id": f.check_id,
                    "name": f.check_id,
                    "shortDescription": {"text": f.title},
                    "fullDescription": {"text": format!("{} (ISO/IEC 27001 Annex A {})", f.title, f.controls.join(", "))},
                    "help": {"text": f.remediation.clone().unwrap_or_else(|| "See the check's pack for remediation.".into())},
                    "properties": {
                        "controls": f.controls,
                        "severity": r.map(|r| r.severity.as_str()).unwrap_or("medium"),
                        "tags": ["compliance", "iso27001"],
                    },
                }));
                rules.len() - 1
            });
            let mut result = json!({
                "ruleId": f.check_id,
                "ruleIndex": i,
                "level": if f.fails { "error" } else { "warning" },
                "kind": "fail",
                "message": {"text": f.message},
                "properties": {"finding": f.kind.as_str(), "expected": f.expected, "observed": f.observed},
            });
            if let Some((path, line)) = location(f) {
                let mut phys = json!({
                    "artifactLocation": {"uri": uri_path(path), "uriBaseId": "ROOT"},
                });
                if let Some(l) = line {
                    phys["region"] = json!({"startLine": l});
                }
                result["locations"] = json!([{"physicalLocation": phys}]);
            }
            results.push(result);
        }
        let root = std::fs::canonicalize(self.root).unwrap_or_else(|_| self.root.to_path_buf());
        let root_uri = match uri_path(&root.display().to_string()).trim_end_matches('/') {
            "" => "file:///".to_string(),
            r => format!("file:///{r}/"),
        };
        sarif_doc(
            &self.report.annexa_version,
            rules,
            results,
            Some(json!({"ROOT": {"uri": root_uri}})),
        )
    }

    /// GitHub Actions workflow commands: an annotation per finding (error when
    /// it fails the gate), pointing at the file under the root where there is
    /// one.
    fn github(&self) -> String {
        let mut out = String::new();
        for f in &self.verdict.findings {
            let level = if f.fails { "error" } else { "notice" };
            let mut props = vec![format!(
                "title={}",
                gh_prop(&format!("annexa {}: {}", f.kind.as_str(), f.check_id))
            )];
            if let Some((path, line)) = location(f) {
                let file = self.root.join(path.trim_start_matches('/'));
                props.push(format!("file={}", gh_prop(&file.display().to_string())));
                if let Some(l) = line {
                    props.push(format!("line={l}"));
                }
            }
            let mut msg = f.message.clone();
            if let Some(r) = f.remediation.as_ref().filter(|_| f.fails) {
                msg.push_str(&format!("\nFix: {r}"));
            }
            out.push_str(&format!(
                "::{level} {}::{}\n",
                props.join(","),
                gh_escape(&msg)
            ));
        }
        out.push_str(&format!("{}\n", headline(self)));
        out
    }

    /// A Markdown summary (GitHub step summary, GitLab merge request note).
    fn markdown(&self) -> String {
        let cell = md_cell;
        let mut out = format!(
            "### {} {}\n\n",
            if self.verdict.failed { "❌" } else { "✅" },
            cell(&headline(self))
        );
        if self.verdict.findings.is_empty() {
            out.push_str("No drift, nothing new or removed.\n");
            return out;
        }
        out.push_str("| | Finding | Check | Controls | Expected | Observed | Source |\n|---|---|---|---|---|---|---|\n");
        for f in &self.verdict.findings {
            let src = location(f)
                .map(|(p, l)| format!("`{p}{}`", l.map(|l| format!(":{l}")).unwrap_or_default()))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {} | `{}` {} | {} | {} | {} | {} |\n",
                if f.fails { "FAIL" } else { "note" },
                f.kind.as_str(),
                cell(f.check_id.as_str()),
                cell(&f.title),
                cell(&f.controls.join(", ")),
                cell(f.expected.as_deref().unwrap_or("")),
                cell(f.observed.as_deref().unwrap_or("")),
                src
            ));
        }
        out
    }
}

fn headline(g: &Gate<'_>) -> String {
    let counts = g
        .verdict
        .counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "annexa gate {}: {} checks{}{}",
        if g.verdict.failed { "FAILED" } else { "passed" },
        g.verdict.checks,
        g.baseline
            .map(|b| format!(" against baseline {b}"))
            .unwrap_or_default(),
        if counts.is_empty() {
            String::new()
        } else {
            format!("; {counts}")
        }
    )
}

/// The source a finding points at: the first with a line, else the first.
fn location(f: &Finding) -> Option<(&str, Option<u32>)> {
    f.sources
        .iter()
        .find(|s| s.line.is_some())
        .or_else(|| f.sources.first())
        .map(|s| (s.path.as_str(), s.line))
}

fn details(f: &Finding) -> String {
    let mut s = String::new();
    if let Some(w) = f.was {
        s.push_str(&format!("baseline: {w}\n"));
    }
    if let Some(n) = f.now {
        s.push_str(&format!("now: {n}\n"));
    }
    if let Some(e) = &f.expected {
        s.push_str(&format!("expected: {e}\n"));
    }
    if let Some(o) = &f.observed {
        s.push_str(&format!("observed: {o}\n"));
    }
    if let Some(o) = &f.observed_before {
        s.push_str(&format!("observed in the baseline: {o}\n"));
    }
    if let Some((path, line)) = location(f) {
        s.push_str(&format!(
            "source: {path}{}\n",
            line.map(|l| format!(":{l}")).unwrap_or_default()
        ));
    }
    if !f.controls.is_empty() {
        s.push_str(&format!("controls: {}\n", f.controls.join(", ")));
    }
    if let Some(r) = &f.remediation {
        s.push_str(&format!("remediation: {r}\n"));
    }
    s
}

/// A path as a relative URI reference: no leading slash, reserved
/// characters percent-encoded.
fn uri_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.trim_start_matches('/').bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
