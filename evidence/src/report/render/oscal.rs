//! The report as an OSCAL assessment-results document: one result for the
//! report's time; each host an inventory item; each (host, automated
//! control) an observation carrying the checks' observed values and the
//! envelope as relevant evidence; each automated control a finding,
//! satisfied only when every host in its scope is conformant. Manual and
//! excluded controls are named in the result's remarks and the reviewed
//! controls' exclusions, because a finding must be satisfied or not and
//! these are neither.
//!
//! OSCAL control ids are tokens that must start with a letter, so a control
//! `A.9.2.1` becomes `a.9.2.1` and a 2022 control `8.5` becomes `a.8.5`; the
//! control's own id is kept in an `annexa-control` property.
//!
//! UUIDs are derived from the report id and the item they name (SHA-256,
//! shaped as version 4), so rendering a report twice gives one document.

use serde_json::{Value, json};

use super::{Context, overall};
use crate::report::{ControlReport, Kind};

/// The OSCAL version the document declares.
pub const OSCAL_VERSION: &str = "1.1.2";
/// Namespace of annexa's OSCAL properties.
pub const NS: &str = "https://annexa.dev/ns/oscal";

/// Renders the document (pretty JSON).
pub fn render(ctx: &Context<'_>) -> Vec<u8> {
    let r = ctx.report;
    let uuid = |name: &str| derived_uuid(&r.id, name);
    let prop = |name: &str, value: &str| json!({"name": name, "ns": NS, "value": value});
    let tool = uuid("tool");

    let mut items = Vec::new();
    for h in &r.hosts {
        let a = ctx.agents.get(h.agent.as_str()).copied();
        let mut props = vec![prop("agent-id", h.agent.as_str())];
        if let Some(a) = a {
            props.push(prop("key-id", &a.key_id));
            for (k, v) in &a.labels {
                props.push(prop("label", &format!("{k}={v}")));
            }
        }
        if let Some(os) = ctx
            .hosts
            .get(h.agent.as_str())
            .and_then(|x| x.newest.as_ref())
            .and_then(|p| p.scan.host.os_name.clone())
        {
            props.push(prop("os", &os));
        }
        items.push(json!({
            "uuid": uuid(&format!("host/{}", h.agent)),
            "description": format!("Host {} (annexa agent {})", ctx.hostname(h.agent.as_str()), h.agent),
            "props": props,
        }));
    }

    let mut observations = Vec::new();
    let mut findings = Vec::new();
    for c in r.controls.iter().filter(|c| c.kind == Kind::Automated) {
        let mut related = Vec::new();
        for hs in &c.hosts {
            let obs = uuid(&format!("obs/{}/{}", c.id, hs.agent));
            related.push(json!({"observation-uuid": obs}));
            let results = ctx.hosts.get(hs.agent.as_str());
            let mut lines = vec![format!(
                "{} on {}: {}",
                c.id,
                ctx.hostname(hs.agent.as_str()),
                hs.state.as_str().replace('_', " ")
            )];
            if let Some(reason) = &hs.detail.reason {
                lines.push(reason.clone());
            }
            let mut evidence = Vec::new();
            for check in &c.checks {
                if let Some((res, seq, index)) = results.and_then(|x| x.results.get(check)) {
                    lines.push(format!(
                        "{check}: {} (expected {}; observed {})",
                        res.status.as_str(),
                        res.expected.as_deref().unwrap_or("-"),
                        res.observed.as_deref().unwrap_or(&res.message)
                    ));
                    let ev = json!({
                        "href": format!("#{}", uuid(&format!("envelope/{index}"))),
                        "description": format!("Envelope sequence {seq} of agent {} (evidence log index {index}), signed by the agent", hs.agent),
                    });
                    if !evidence.contains(&ev) {
                        evidence.push(ev);
                    }
                } else {
                    lines.push(format!("{check}: no result"));
                }
            }
            let collected = results
                .and_then(|x| x.newest.as_ref())
                .map_or_else(|| r.period.at.clone(), |p| p.scan.finished_at.clone());
            let mut o = json!({
                "uuid": obs,
                "title": format!("{} on {}", c.id, ctx.hostname(hs.agent.as_str())),
                "description": lines.join("\n"),
                "props": [prop("state", hs.state.as_str()), prop("annexa-control", c.id.as_str())],
                "methods": ["TEST"],
                "types": ["control-objective"],
                "origins": [{"actors": [{"type": "tool", "actor-uuid": tool}]}],
                "subjects": [{"subject-uuid": uuid(&format!("host/{}", hs.agent)), "type": "inventory-item"}],
                "collected": collected,
            });
            if !evidence.is_empty() {
                o["relevant-evidence"] = Value::Array(evidence);
            }
            observations.push(o);
        }
        let status = overall(c);
        let satisfied = status == "conformant";
        let mut f = json!({
            "uuid": uuid(&format!("finding/{}", c.id)),
            "title": format!("{} {}", c.id, c.title),
            "description": finding_text(c),
            "props": [prop("annexa-control", c.id.as_str()), prop("status", status)],
            "target": {
                "type": "objective-id",
                "target-id": control_token(c.id.as_str()),
                "status": {"state": if satisfied { "satisfied" } else { "not-satisfied" }},
            },
        });
        if !related.is_empty() {
            f["related-observations"] = Value::Array(related);
        }
        findings.push(f);
    }

    let include: Vec<Value> = r
        .controls
        .iter()
        .filter(|c| c.kind != Kind::Excluded)
        .map(|c| json!({"control-id": control_token(c.id.as_str())}))
        .collect();
    let exclude: Vec<Value> = r
        .controls
        .iter()
        .filter(|c| c.kind == Kind::Excluded)
        .map(|c| json!({"control-id": control_token(c.id.as_str())}))
        .collect();
    let mut selection = json!({"description": "The SoA's controls in the report's scope"});
    if !include.is_empty() {
        selection["include-controls"] = Value::Array(include);
    } else {
        selection["include-all"] = json!({});
    }
    if !exclude.is_empty() {
        selection["exclude-controls"] = Value::Array(exclude);
    }

    let mut remarks = Vec::new();
    for c in &r.controls {
        match c.kind {
            Kind::Manual => remarks.push(format!(
                "{} {}: applicable; needs evidence other than host checks. {}",
                c.id, c.title, c.justification
            )),
            Kind::Excluded => remarks.push(format!(
                "{} {}: excluded by the SoA. {}",
                c.id, c.title, c.justification
            )),
            Kind::Automated => {}
        }
    }

    let mut result = json!({
        "uuid": uuid("result"),
        "title": format!("Conformity at {}", r.period.at),
        "description": format!(
            "Technical evidence from annexa agents, signed by each host's agent and logged by collector {}; states recomputable offline from report {} (sha256:{}).",
            r.collector.origin, r.id, ctx.digest
        ),
        "start": r.period.from.clone().unwrap_or_else(|| earliest(ctx)),
        "end": r.period.at,
        "props": [prop("report-id", &r.id), prop("report-sha256", ctx.digest), prop("soa-version", &r.soa.version.to_string())],
        "reviewed-controls": {"control-selections": [selection]},
    });
    if !items.is_empty() {
        result["local-definitions"] = json!({"inventory-items": items});
    }
    if !observations.is_empty() {
        result["observations"] = Value::Array(observations);
    }
    if !findings.is_empty() {
        result["findings"] = Value::Array(findings);
    }
    if !remarks.is_empty() {
        result["remarks"] = Value::String(remarks.join("\n\n"));
    }

    // Each envelope a back-matter resource, so relevant-evidence links
    // resolve inside the document.
    let resources: Vec<Value> = r
        .hosts
        .iter()
        .flat_map(|h| h.evidence.iter().map(move |e| (h, e)))
        .map(|(h, e)| {
            json!({
                "uuid": uuid(&format!("envelope/{}", e.log_index)),
                "title": format!("Envelope {} of agent {}", e.sequence, h.agent),
                "description": format!(
                    "DSSE envelope signed by annexa agent {}, accepted {}, leaf {} of the evidence log; its bytes and inclusion proof are in report {}",
                    h.agent, e.accepted_at, e.log_index, r.id
                ),
                "props": [
                    prop("envelope-sha256", &e.sha256),
                    prop("log-index", &e.log_index.to_string()),
                    prop("sequence", &e.sequence.to_string()),
                ],
            })
        })
        .collect();
    let doc = json!({
        "assessment-results": {
            "uuid": uuid("assessment-results"),
            "metadata": {
                "title": format!("annexa evidence report {}", r.id),
                "last-modified": r.generated_at,
                "version": format!("soa-{}", r.soa.version),
                "oscal-version": OSCAL_VERSION,
                "parties": [{"uuid": tool, "type": "organization", "name": format!("annexa collector {}", r.collector.origin)}],
            },
            "import-ap": {"href": "#", "remarks": "annexa assesses against the organisation's Statement of Applicability, not an OSCAL assessment plan."},
            "results": [result],
        }
    });
    let mut doc = doc;
    if !resources.is_empty() {
        doc["assessment-results"]["back-matter"] = json!({"resources": resources});
    }
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

fn finding_text(c: &ControlReport) -> String {
    let counts = c
        .counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str().replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} hosts in scope: {}. Checks: {}.",
        c.hosts.len(),
        if counts.is_empty() {
            "none".into()
        } else {
            counts
        },
        c.checks.join(", ")
    )
}

fn earliest(ctx: &Context<'_>) -> String {
    ctx.report
        .hosts
        .iter()
        .flat_map(|h| h.evidence.iter().map(|e| e.accepted_at.as_str()))
        .min()
        .unwrap_or(ctx.report.period.at.as_str())
        .to_string()
}

/// A control id as an OSCAL token.
pub fn control_token(id: &str) -> String {
    let lower = id.to_ascii_lowercase();
    if lower.starts_with(|c: char| c.is_ascii_alphabetic()) {
        lower
    } else {
        format!("a.{lower}")
    }
}

/// A version-4-shaped UUID derived from a report id and a name.
pub fn derived_uuid(report: &str, name: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{report}\n{name}").as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    crate::encoding::uuid_v4(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_ids_become_oscal_tokens() {
        assert_eq!(control_token("A.9.2.1"), "a.9.2.1");
        assert_eq!(control_token("8.5"), "a.8.5");
    }

    #[test]
    fn derived_uuids_are_stable_version_4_shaped_and_distinct() {
        let a = derived_uuid("r1", "host/x");
        assert_eq!(a, derived_uuid("r1", "host/x"));
        assert_ne!(a, derived_uuid("r1", "host/y"));
        assert_ne!(a, derived_uuid("r2", "host/x"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }
}
