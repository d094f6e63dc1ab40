//! `annexa scan` as JUnit XML: one test suite per control (in the chosen
//! edition), one test case per check. A failing check is a `<failure>`, a
//! check that could not run an `<error>`, a check that does not apply
//! `<skipped>`.

use quick_xml::Writer;
use quick_xml::events::BytesText;

use annexa_checks::catalog::Edition;
use annexa_checks::engine::ScanReport;
use annexa_checks::result::{CheckResult, Status};

use super::{ControlGroup, group_by_control};

fn details(r: &CheckResult) -> String {
    let mut s = String::new();
    if let Some(e) = &r.expected {
        s.push_str(&format!("expected: {e}\n"));
    }
    if let Some(o) = &r.observed {
        s.push_str(&format!("observed: {o}\n"));
    }
    for src in &r.sources {
        s.push_str(&format!(
            "source: {}{} {}\n",
            src.path,
            src.line.map(|l| format!(":{l}")).unwrap_or_default(),
            src.sha256
                .as_deref()
                .map(|h| format!("sha256:{h}"))
                .unwrap_or_else(|| format!("({:?})", src.kind).to_lowercase())
        ));
    }
    if let Some(fix) = &r.remediation {
        s.push_str(&format!("remediation: {fix}\n"));
    }
    s
}

/// Renders the report as JUnit XML.
pub fn render(report: &ScanReport, edition: Edition) -> String {
    let groups = group_by_control(report, edition);
    let s = report.summary;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let total = s.total().to_string();
    let fail = s.fail.to_string();
    let err = s.error.to_string();
    let skip = s.not_applicable.to_string();
    let time = format!("{:.3}", report.duration_ms as f64 / 1000.0);
    let result = w
        .create_element("testsuites")
        .with_attributes([
            ("name", "annexa scan"),
            ("tests", total.as_str()),
            ("failures", fail.as_str()),
            ("errors", err.as_str()),
            ("skipped", skip.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            for ControlGroup {
                id,
                title,
                results: rs,
            } in &groups
            {
                let count = |st| rs.iter().filter(|r| r.status == st).count().to_string();
                let name = format!("{id} {title}");
                let tests = rs.len().to_string();
                let (f, e, sk) = (
                    count(Status::Fail),
                    count(Status::Error),
                    count(Status::NotApplicable),
                );
                w.create_element("testsuite")
                    .with_attributes([
                        ("name", name.as_str()),
                        ("tests", tests.as_str()),
                        ("failures", f.as_str()),
                        ("errors", e.as_str()),
                        ("skipped", sk.as_str()),
                        ("timestamp", report.started_at.as_str()),
                    ])
                    .write_inner_content(|w| {
                        for r in rs {
                            let classname = format!("annexa.{edition}.{id}");
                            let controls: Vec<String> = r
                                .controls
                                .iter()
                                .map(|(e, ids)| format!("{e}: {}", ids.join(" ")))
                                .collect();
                            w.create_element("testcase")
                                .with_attributes([
                                    ("name", r.check_id.as_str()),
                                    ("classname", classname.as_str()),
                                    ("time", "0"),
                                ])
                                .write_inner_content(|w| {
                                    let body = details(r);
                                    match r.status {
                                        Status::Fail => {
                                            w.create_element("failure")
                                                .with_attributes([
                                                    ("message", r.message.as_str()),
                                                    ("type", r.severity.as_str()),
                                                ])
                                                .write_text_content(BytesText::new(&body))?;
                                        }
                                        Status::Error => {
                                            w.create_element("error")
                                                .with_attributes([
                                                    ("message", r.message.as_str()),
                                                    ("type", "error"),
                                                ])
                                                .write_text_content(BytesText::new(&body))?;
                                        }
                                        Status::NotApplicable => {
                                            w.create_element("skipped")
                                                .with_attribute(("message", r.message.as_str()))
                                                .write_empty()?;
                                        }
                                        Status::Pass => {}
                                    }
                                    w.create_element("properties").write_inner_content(|w| {
                                        for (k, v) in [
                                            ("title", r.title.clone()),
                                            ("controls", controls.join("; ")),
                                            (
                                                "pack",
                                                format!(
                                                    "{} {} {}",
                                                    r.pack.id, r.pack.version, r.pack.digest
                                                ),
                                            ),
                                        ] {
                                            w.create_element("property")
                                                .with_attributes([
                                                    ("name", k),
                                                    ("value", v.as_str()),
                                                ])
                                                .write_empty()?;
                                        }
                                        Ok::<(), std::io::Error>(())
                                    })?;
                                    if r.status == Status::Pass {
                                        w.create_element("system-out")
                                            .write_text_content(BytesText::new(&body))?;
                                    }
                                    Ok::<(), std::io::Error>(())
                                })?;
                        }
                        Ok::<(), std::io::Error>(())
                    })?;
            }
            Ok::<(), std::io::Error>(())
        });
    // Writing into a Vec cannot fail.
    debug_assert!(result.is_ok());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&String::from_utf8_lossy(&w.into_inner()));
    xml.push('\n');
    xml
}
