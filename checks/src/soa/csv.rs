//! The SoA as CSV, because SoAs live in spreadsheets: one row per control
//! with the same fields as the TOML form (docs/soa.md). The `title` column
//! is written for people and ignored when read. The document's header
//! fields other than the edition (organisation, title, default freshness)
//! have no column; a CSV import leaves them unset.

use std::collections::BTreeMap;

use super::{Implementation, RawControl, RawHeader, Scope, Soa, SoaErrors, SoaProblem, build};
use crate::catalog::catalog;
use crate::expect::ParamValue;
use crate::ids::CheckId;

/// The columns, in the order written.
pub const COLUMNS: [&str; 12] = [
    "edition",
    "control",
    "title",
    "applicable",
    "justification",
    "owner",
    "status",
    "scope",
    "checks",
    "extra_checks",
    "params",
    "freshness",
];

/// The `checks` cell that means "no automated check" (a manual control);
/// an empty cell means "the mapped checks".
pub const NO_CHECKS: &str = "none";

/// Parses an SoA from CSV. `file` names it in problems.
pub fn parse_csv(file: &str, text: &str) -> Result<Soa, SoaErrors> {
    super::complete(parse_csv_partial(file, text)?)
}

pub(crate) fn parse_csv_partial(file: &str, text: &str) -> Result<super::Partial, SoaErrors> {
    let problem = |line: Option<usize>, field: Option<String>, message: String| SoaProblem {
        file: file.to_string(),
        line,
        field,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::Fields)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| SoaErrors(vec![problem(Some(1), None, e.to_string())]))?
        .clone();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim_start_matches('\u{feff}');
        match COLUMNS.iter().find(|c| **c == h) {
            Some(c) => {
                if index.insert(c, i).is_some() {
                    problems.push(problem(
                        Some(1),
                        Some(h.into()),
                        "column appears twice".into(),
                    ));
                }
            }
            None => problems.push(problem(
                Some(1),
                Some(h.into()),
                format!("unknown column; the columns are {}", COLUMNS.join(", ")),
            )),
        }
    }
    for required in ["edition", "control", "applicable", "justification"] {
        if !index.contains_key(required) {
            problems.push(problem(
                Some(1),
                Some(required.into()),
                "required column missing".into(),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SoaErrors(problems));
    }
    let mut edition: Option<(String, usize)> = None;
    let mut controls = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                problems.push(problem(line, None, e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let cell =
            |name: &str| -> &str { index.get(name).and_then(|i| record.get(*i)).unwrap_or("") };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let id = cell("control").to_string();
        let field = |c: &str| Some(format!("control[{id}].{c}"));
        let row_edition = cell("edition").to_string();
        match &edition {
            None => edition = Some((row_edition, line)),
            Some((e, first)) if *e != row_edition => problems.push(problem(
                Some(line),
                field("edition"),
                format!(
                    "`{row_edition}` differs from `{e}` on line {first}; an SoA covers one edition"
                ),
            )),
            Some(_) => {}
        }
        let applicable = match cell("applicable").to_ascii_lowercase().as_str() {
            "yes" | "true" | "y" | "1" => true,
            "no" | "false" | "n" | "0" => false,
            other => {
                problems.push(problem(
                    Some(line),
                    field("applicable"),
                    format!("`{other}` is not yes or no"),
                ));
                // Still counted as listed, so that it is not also reported missing.
                true
            }
        };
        let list = |s: &str| -> Vec<CheckId> {
            s.split([';', ','])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(CheckId::from)
                .collect()
        };
        let checks = match cell("checks") {
            "" => None,
            s if s.eq_ignore_ascii_case(NO_CHECKS) => Some(Vec::new()),
            s => Some(list(s)),
        };
        let mut params = BTreeMap::new();
        for term in cell("params")
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            match term.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let value = v
                        .parse::<i64>()
                        .map(ParamValue::Int)
                        .unwrap_or_else(|_| ParamValue::Text(v.to_string()));
                    params.insert(k.trim().to_string(), value);
                }
                None => problems.push(problem(
                    Some(line),
                    field("params"),
                    format!("`{term}` is not NAME=VALUE"),
                )),
            }
        }
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        controls.push(RawControl {
            line,
            id: id.clone(),
            applicable,
            justification: cell("justification").to_string(),
            owner: cell("owner").to_string(),
            status: opt(cell("status")),
            scope: Scope::parse_selector(cell("scope")),
            checks,
            extra_checks: list(cell("extra_checks")),
            params,
            freshness: opt(cell("freshness")),
        });
    }
    let Some((edition, line)) = edition else {
        problems.push(problem(Some(1), None, "no control rows".into()));
        return Err(SoaErrors(problems));
    };
    let built = build(
        file,
        RawHeader {
            line,
            edition,
            organisation: None,
            title: None,
            freshness: None,
        },
        controls,
    );
    match built {
        Ok((soa, more)) => {
            problems.extend(more);
            problems.sort_by_key(|p| p.line);
            Ok((soa, problems))
        }
        Err(SoaErrors(more)) => {
            problems.extend(more);
            problems.sort_by_key(|p| p.line);
            Err(SoaErrors(problems))
        }
    }
}

impl Soa {
    /// The SoA as CSV ([`COLUMNS`]); parses back to an equal SoA except for
    /// the header fields CSV has no column for.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(COLUMNS);
        let cat = catalog();
        for c in &self.controls {
            let title = cat
                .control(self.edition, c.id.as_str())
                .map(|x| x.title.clone())
                .unwrap_or_default();
            let checks = match &c.checks {
                None => String::new(),
                Some(v) if v.is_empty() => NO_CHECKS.to_string(),
                Some(v) => v.join(";"),
            };
            let params = c
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";");
            let _ = w.write_record([
                self.edition.year(),
                c.id.as_str(),
                &title,
                if c.applicable { "yes" } else { "no" },
                &c.justification,
                &c.owner,
                c.status.map(Implementation::as_str).unwrap_or(""),
                &c.scope.to_selector(),
                &checks,
                &c.extra_checks.join(";"),
                &params,
                &c.freshness_seconds
                    .map(super::format_duration)
                    .unwrap_or_default(),
            ]);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}
