//! `annexa gate` verdicts in the formats people and CI systems read
//! ([`GateFormat`]). The two modes judge different things (`local`: a scan
//! of a root directory against a baseline; `fleet`: the collector's record
//! of the fleet), so each renders its own [`GateVerdict`]; the writers here
//! are the parts of those formats that do not depend on what was judged:
//! the JUnit suite, the SARIF log, GitHub workflow command escaping and
//! Markdown cells.

pub mod fleet;
pub mod local;

use quick_xml::Writer;
use quick_xml::events::BytesText;
use serde_json::{Value, json};

/// The formats of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GateFormat {
    /// Plain text.
    #[default]
    Text,
    /// JSON.
    Json,
    /// JUnit XML.
    Junit,
    /// SARIF 2.1.0.
    Sarif,
    /// GitHub Actions workflow commands.
    Github,
    /// A Markdown summary (GitHub step summary, GitLab merge request note).
    Markdown,
}

/// A gate's verdict, in every [`GateFormat`].
pub trait GateVerdict {
    /// Plain text.
    fn text(&self) -> String;
    /// JSON.
    fn json(&self) -> String;
    /// JUnit XML.
    fn junit(&self) -> String;
    /// SARIF 2.1.0.
    fn sarif(&self) -> String;
    /// GitHub Actions workflow commands.
    fn github(&self) -> String;
    /// A Markdown summary.
    fn markdown(&self) -> String;

    /// The verdict in `format`.
    fn render(&self, format: GateFormat) -> String {
        match format {
            GateFormat::Text => self.text(),
            GateFormat::Json => self.json(),
            GateFormat::Junit => self.junit(),
            GateFormat::Sarif => self.sarif(),
            GateFormat::Github => self.github(),
            GateFormat::Markdown => self.markdown(),
        }
    }
}

/// A JUnit test case.
pub struct Case<'a> {
    /// Its name.
    pub name: String,
    /// Its class (what groups it).
    pub classname: &'a str,
    /// How it ended.
    pub outcome: Outcome,
}

/// How a JUnit test case ended.
pub enum Outcome {
    /// It passed.
    Pass,
    /// It was not evaluated.
    Skipped,
    /// It failed.
    Failure {
        /// One line.
        message: String,
        /// The failure's type.
        kind: &'static str,
        /// Expected, observed and the rest, a line each.
        text: String,
    },
}

/// One `<testsuite>` named `annexa gate`, valid against the Ant JUnit
/// schema: `started` is an RFC 3339 UTC time, `seconds` the duration.
pub fn junit_suite(
    started: &str,
    seconds: f64,
    props: &[(&str, &str)],
    cases: &[Case<'_>],
    system_out: &str,
) -> String {
    let count =
        |p: fn(&Outcome) -> bool| cases.iter().filter(|c| p(&c.outcome)).count().to_string();
    let tests = cases.len().to_string();
    let failures = count(|o| matches!(o, Outcome::Failure { .. }));
    let skipped = count(|o| matches!(o, Outcome::Skipped));
    let time = format!("{seconds:.3}");
    // The schema wants local time without zone or fraction; ours is UTC.
    let timestamp: String = started.chars().take(19).collect();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let _ = w
        .create_element("testsuite")
        .with_attributes([
            ("name", "annexa gate"),
            ("timestamp", timestamp.as_str()),
            ("hostname", "annexa"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("properties").write_inner_content(|w| {
                for (k, v) in props {
                    w.create_element("property")
                        .with_attributes([("name", *k), ("value", *v)])
                        .write_empty()?;
                }
                Ok(())
            })?;
            for c in cases {
                let el = w.create_element("testcase").with_attributes([
                    ("name", c.name.as_str()),
                    ("classname", c.classname),
                    ("time", "0"),
                ]);
                match &c.outcome {
                    Outcome::Pass => {
                        el.write_empty()?;
                    }
                    Outcome::Skipped => {
                        el.write_inner_content(|w| {
                            w.create_element("skipped").write_empty().map(|_| ())
                        })?;
                    }
                    Outcome::Failure {
                        message,
                        kind,
                        text,
                    } => {
                        el.write_inner_content(|w| {
                            w.create_element("failure")
                                .with_attributes([("message", message.as_str()), ("type", *kind)])
                                .write_text_content(BytesText::new(text))
                                .map(|_| ())
                        })?;
                    }
                }
            }
            w.create_element("system-out")
                .write_text_content(BytesText::new(system_out))?;
            w.create_element("system-err").write_empty()?;
            Ok(())
        });
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&String::from_utf8_lossy(&w.into_inner()));
    out.push('\n');
    out
}

/// A SARIF 2.1.0 log with one run of annexa.
pub fn sarif_doc(
    version: &str,
    rules: Vec<Value>,
    results: Vec<Value>,
    base_ids: Option<Value>,
) -> String {
    let mut run = json!({
        "tool": {"driver": {
            "name": "annexa",
            "version": version,
            "informationUri": "https://example.invalid/annexa",
            "rules": rules,
        }},
        "results": results,
    });
    if let Some(b) = base_ids {
        run["originalUriBaseIds"] = b;
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// A workflow command's message, escaped.
pub fn gh_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value, escaped.
pub fn gh_prop(s: &str) -> String {
    gh_escape(s).replace(':', "%3A").replace(',', "%2C")
}

/// A Markdown table cell.
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
