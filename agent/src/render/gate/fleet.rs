//! `annexa gate` verdicts in collector mode: the fleet's drift between
//! two times and its conformity against thresholds, as text, JSON, JUnit
//! XML (one test case per host and control, one per control's threshold),
//! SARIF 2.1.0 (one result per failing check of a drifted host, located at
//! the host), GitHub workflow commands and Markdown.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use annexa_checks::conformity::State;
use annexa_evidence::drift::{Drift, FleetFinding, FleetKind, FleetVerdict, Transition, why};

use super::{Case, GateVerdict, Outcome, gh_escape, gh_prop, junit_suite, md_cell, sarif_doc};

/// A fleet gate's verdict with the collector's answer it judged: what
/// the renderings show.
pub struct FleetGate<'a> {
    /// The collector's answer.
    pub drift: &'a Drift,
    /// The verdict.
    pub verdict: &'a FleetVerdict,
    /// The collector's URL.
    pub server: &'a str,
    /// The baseline report, if one set the start.
    pub baseline: Option<&'a str>,
    /// The required conformant share, if one was given.
    pub min_conformant: Option<f64>,
}

impl GateVerdict for FleetGate<'_> {
    /// Plain text.
    fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.verdict.findings {
            out.push_str(&format!(
                "{:<5} {:<15} {}\n",
                if f.fails { "FAIL" } else { "note" },
                f.kind.as_str(),
                f.message
            ));
            for t in &f.transitions {
                out.push_str(&format!(
                    "      {} {} → {} ({}{})\n",
                    t.at,
                    t.previous.map(State::as_str).unwrap_or("-"),
                    t.state,
                    t.cause,
                    t.envelope
                        .as_ref()
                        .map(|e| format!(" #{}", e.sequence))
                        .unwrap_or_default()
                ));
            }
            if let Some(c) = cause(f).filter(|_| f.fails) {
                out.push_str(&format!("      caused by {c}\n"));
            }
        }
        for d in &self.verdict.disagreements {
            out.push_str(&format!("note  disagreement    {d}\n"));
        }
        out.push_str(&headline(self));
        out.push('\n');
        out
    }

    /// JSON: the verdict with the window.
    fn json(&self) -> String {
        let v = json!({
            "failed": self.verdict.failed,
            "server": self.server,
            "baseline_report": self.baseline,
            "from": self.drift.from,
            "to": self.drift.to,
            "soa_version": self.drift.soa_version,
            "selector": self.drift.selector,
            "min_conformant": self.min_conformant,
            "hosts": self.verdict.hosts,
            "controls": self.verdict.controls,
            "counts": self.verdict.counts,
            "findings": self.verdict.findings,
            "disagreements": self.verdict.disagreements,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    /// JUnit XML: a test case per (host, control) in scope (class: the
    /// control, name: the host), failed where it drifted; skipped where the
    /// SoA excludes the control or no check evidences it; and a test case per
    /// control for the conformant threshold.
    fn junit(&self) -> String {
        let failing: HashMap<(&str, &str), &FleetFinding> = self
            .verdict
            .findings
            .iter()
            .filter(|f| f.fails)
            .filter_map(|f| Some(((f.host.as_ref()?.id.as_str(), f.control.as_str()), f)))
            .collect();
        let below: HashMap<&str, &FleetFinding> = self
            .verdict
            .findings
            .iter()
            .filter(|f| f.kind == FleetKind::BelowThreshold)
            .map(|f| (f.control.as_str(), f))
            .collect();
        let failure = |f: &FleetFinding| Outcome::Failure {
            message: f.message.clone(),
            kind: f.kind.as_str(),
            text: details(f),
        };
        let threshold = self
            .min_conformant
            .map(|m| format!("at least {} conformant", annexa_evidence::drift::percent(m)));
        let mut cases = Vec::new();
        for c in &self.drift.controls {
            for (h, state) in self
                .drift
                .hosts
                .iter()
                .zip(c.states.iter().flatten())
                .filter_map(|(h, s)| Some((h, (*s)?)))
            {
                cases.push(Case {
                    name: h.label(),
                    classname: c.control.as_str(),
                    outcome: match failing.get(&(h.id.as_str(), c.control.as_str())) {
                        Some(f) => failure(f),
                        None if matches!(state, State::Manual | State::Excluded) => {
                            Outcome::Skipped
                        }
                        None => Outcome::Pass,
                    },
                });
            }
            if let Some(name) = &threshold {
                cases.push(Case {
                    name: name.clone(),
                    classname: c.control.as_str(),
                    outcome: match below.get(c.control.as_str()) {
                        Some(f) => failure(f),
                        None if annexa_evidence::drift::conformant_share(c).is_none() => {
                            Outcome::Skipped
                        }
                        None => Outcome::Pass,
                    },
                });
            }
        }
        let soa = self.drift.soa_version.to_string();
        let mut props = vec![
            ("server", self.server),
            ("from", self.drift.from.as_str()),
            ("to", self.drift.to.as_str()),
            ("soa_version", soa.as_str()),
        ];
        if let Some(s) = &self.drift.selector {
            props.push(("selector", s));
        }
        if let Some(b) = self.baseline {
            props.push(("baseline_report", b));
        }
        junit_suite(&self.drift.to, 0.0, &props, &cases, &headline(self))
    }

    /// SARIF 2.1.0: a rule per check that fails on a drifted host (title,
    /// controls, remediation), a rule per state for drift without a failing
    /// check (stale, no evidence, error), one for thresholds; a result per
    /// failing check per drifted host and per control below its threshold,
    /// located at the host (a logical location: hosts are not files).
    fn sarif(&self) -> String {
        let checks: BTreeMap<&str, &annexa_evidence::report::CheckInfo> = self
            .drift
            .checks
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect();
        let mut rules: Vec<Value> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut rule = |id: String, make: &dyn Fn() -> Value| -> usize {
            *index.entry(id).or_insert_with(|| {
                rules.push(make());
                rules.len() - 1
            })
        };
        let mut results = Vec::new();
        for f in self.verdict.findings.iter().filter(|f| f.fails) {
            let host = f.host.as_ref().map(|h| h.label()).unwrap_or_default();
            let location = |kind: &str, name: &str| json!([{"logicalLocations": [{"name": name, "fullyQualifiedName": name, "kind": kind}]}]);
            let props = json!({
                "control": f.control,
                "before": f.before,
                "after": f.after,
                "cause": cause(f),
            });
            if f.kind == FleetKind::BelowThreshold {
                let i = rule("annexa.threshold".into(), &|| {
                    json!({
                        "id": "annexa.threshold",
                        "name": "conformant-share",
                        "shortDescription": {"text": "A control's conformant share is below the required threshold"},
                        "help": {"text": "Bring the nonconformant hosts of the control back to conformance, or review the threshold."},
                        "properties": {"tags": ["compliance", "iso27001"]},
                    })
                });
                results.push(json!({
                    "ruleId": "annexa.threshold", "ruleIndex": i, "level": "error", "kind": "fail",
                    "message": {"text": f.message},
                    "locations": location("control", f.control.as_str()),
                    "properties": props,
                }));
                continue;
            }
            let failing = f
                .detail
                .as_ref()
                .map(|d| d.failing.as_slice())
                .unwrap_or(&[]);
            if failing.is_empty() {
                let state = f.after.map(State::as_str).unwrap_or("unknown");
                let id = format!("annexa.state.{state}");
                let i = rule(id.clone(), &|| {
                    json!({
                        "id": id,
                        "name": format!("control-{state}"),
                        "shortDescription": {"text": format!("A control that was conformant is {state}")},
                        "help": {"text": "Make sure the host's agent runs on schedule and its checks can run; see the host's evidence."},
                        "properties": {"tags": ["compliance", "iso27001"]},
                    })
                });
                results.push(json!({
                    "ruleId": id, "ruleIndex": i, "level": "error", "kind": "fail",
                    "message": {"text": f.message},
                    "locations": location("host", &host),
                    "properties": props,
                }));
                continue;
            }
            for failed in failing {
                let info = checks.get(failed.check.as_str()).copied();
                let i = rule(failed.check.to_string(), &|| match info {
                    Some(c) => json!({
                        "id": c.id,
                        "name": c.id,
                        "shortDescription": {"text": c.title},
                        "fullDescription": {"text": format!("{} (ISO/IEC 27001 Annex A {})", c.title, c.controls.join(", "))},
                        "help": {"text": c.remediation},
                        "properties": {"controls": c.controls, "severity": c.severity, "tags": ["compliance", "iso27001"]},
                    }),
                    None => json!({"id": failed.check, "name": failed.check}),
                });
                results.push(json!({
                    "ruleId": failed.check, "ruleIndex": i, "level": "error", "kind": "fail",
                    "message": {"text": format!(
                        "{} on {host}: {} fails{}",
                        f.control,
                        failed.check,
                        failed.observed.as_deref().map(|o| format!(" (observed {o})")).unwrap_or_default()
                    )},
                    "locations": location("host", &host),
                    "properties": props,
                }));
            }
        }
        sarif_doc(env!("CARGO_PKG_VERSION"), rules, results, None)
    }

    /// GitHub Actions workflow commands: an annotation per finding (error when
    /// it fails the gate), and the headline.
    fn github(&self) -> String {
        let mut out = String::new();
        for f in &self.verdict.findings {
            let level = if f.fails { "error" } else { "notice" };
            let on = f
                .host
                .as_ref()
                .map(|h| format!(" on {}", h.label()))
                .unwrap_or_default();
            let title = gh_prop(&format!("annexa {}: {}{on}", f.kind.as_str(), f.control));
            let mut msg = f.message.clone();
            if let Some(c) = cause(f).filter(|_| f.fails) {
                msg.push_str(&format!("\nCaused by {c}"));
            }
            out.push_str(&format!("::{level} title={title}::{}\n", gh_escape(&msg)));
        }
        out.push_str(&format!("{}\n", headline(self)));
        out
    }

    /// A Markdown summary (GitHub step summary, GitLab merge request note).
    fn markdown(&self) -> String {
        let mut out = format!(
            "### {} {}\n\n",
            if self.verdict.failed { "❌" } else { "✅" },
            md_cell(&headline(self))
        );
        if self.verdict.findings.is_empty() {
            out.push_str("No (host, control) changed state and every threshold holds.\n");
            return out;
        }
        out.push_str("| | Finding | Control | Host | Before | Now | Why | Caused by |\n|---|---|---|---|---|---|---|---|\n");
        for f in &self.verdict.findings {
            out.push_str(&format!(
                "| {} | {} | `{}` {} | {} | {} | {} | {} | {} |\n",
                if f.fails { "FAIL" } else { "note" },
                f.kind.as_str(),
                md_cell(f.control.as_str()),
                md_cell(&f.title),
                md_cell(&f.host.as_ref().map(|h| h.label()).unwrap_or_default()),
                f.before.map(State::as_str).unwrap_or(""),
                f.after.map(State::as_str).unwrap_or(""),
                md_cell(
                    f.detail
                        .as_ref()
                        .map(why)
                        .unwrap_or_else(|| f.message.clone())
                        .trim_start_matches(": ")
                ),
                md_cell(&cause(f).unwrap_or_default())
            ));
        }
        out
    }
}

fn headline(g: &FleetGate<'_>) -> String {
    let counts = g
        .verdict
        .counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let since = match (g.baseline, g.drift.from == g.drift.to) {
        (Some(b), _) => format!(" since baseline report {b} ({})", g.drift.from),
        (None, false) => format!(" since {}", g.drift.from),
        (None, true) => String::new(),
    };
    format!(
        "annexa gate {}: {} hosts, {} controls{since}{}{}",
        if g.verdict.failed { "FAILED" } else { "passed" },
        g.verdict.hosts,
        g.verdict.controls,
        g.min_conformant
            .map(|m| format!(
                ", at least {} conformant",
                annexa_evidence::drift::percent(m)
            ))
            .unwrap_or_default(),
        if counts.is_empty() {
            String::new()
        } else {
            format!("; {counts}")
        }
    )
}

/// The envelope that brought the last recorded change, as `agent#seq`.
fn cause(f: &FleetFinding) -> Option<String> {
    let t: &Transition = f.transitions.iter().rev().find(|t| t.envelope.is_some())?;
    let e = t.envelope.as_ref()?;
    Some(format!(
        "envelope {} of {}{}{}",
        e.sequence,
        f.host.as_ref().map(|h| h.label()).unwrap_or_default(),
        e.log_index
            .map(|i| format!(", log index {i}"))
            .unwrap_or_default(),
        e.sha256
            .as_deref()
            .map(|d| format!(", sha256 {d}"))
            .unwrap_or_default()
    ))
}

fn details(f: &FleetFinding) -> String {
    let mut s = String::new();
    if let Some(h) = &f.host {
        s.push_str(&format!("host: {} ({})\n", h.hostname, h.id));
    }
    s.push_str(&format!("control: {} {}\n", f.control, f.title));
    if let Some(b) = f.before {
        s.push_str(&format!("expected: {b} (as before)\n"));
    }
    if let Some(a) = f.after {
        s.push_str(&format!(
            "observed: {a}{}\n",
            f.detail.as_ref().map(why).unwrap_or_default()
        ));
    }
    if let Some(c) = cause(f) {
        s.push_str(&format!("caused by: {c}\n"));
    }
    s
}
