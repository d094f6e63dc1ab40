//! The Statement of Applicability (ISO/IEC 27001 4.2.1 j / 6.1.3 d): for
//! every Annex A control of one edition, whether it applies and why, who
//! owns it, how far it is implemented, and — for annexa — which hosts it
//! covers, which checks give evidence for it, with which parameters, and how
//! fresh that evidence must be.
//!
//! Read from TOML (docs/soa.md) or CSV ([`csv`]); [`lint`] checks a parsed
//! SoA against the catalog and the loaded check packs and reports every
//! problem with its line. Pure: no I/O.

pub mod csv;
pub mod diff;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::{Catalog, Edition, catalog};
use crate::expect::{ParamValue, parse_duration_secs};
use crate::ids::{CheckId, ControlId};
use crate::pack::{PackSet, line_col};

/// How far an applicable control is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Implementation {
    /// In place and operating.
    Implemented,
    /// Partly in place.
    Partial,
    /// Decided, not yet in place.
    Planned,
    /// Not in place, and no work begun.
    NotStarted,
}

impl Implementation {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Implemented => "implemented",
            Implementation::Partial => "partial",
            Implementation::Planned => "planned",
            Implementation::NotStarted => "not_started",
        }
    }

    /// Parses the name used in files.
    pub fn parse(s: &str) -> Option<Implementation> {
        match s.trim() {
            "implemented" => Some(Implementation::Implemented),
            "partial" => Some(Implementation::Partial),
            "planned" => Some(Implementation::Planned),
            "not_started" => Some(Implementation::NotStarted),
            _ => None,
        }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which hosts a control covers: every label named must have one of the
/// listed values. Empty: every host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope(pub BTreeMap<String, Vec<String>>);

impl Scope {
    /// Whether a host with these labels is in scope.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|(k, vs)| labels.get(k).is_some_and(|v| vs.iter().any(|w| w == v)))
    }

    /// `env=prod;role=db|web` (the CSV and display form).
    pub fn to_selector(&self) -> String {
        self.0
            .iter()
            .map(|(k, vs)| format!("{k}={}", vs.join("|")))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Parses `env=prod;role=db|web` (also `,` between terms).
    pub fn parse_selector(s: &str) -> Result<Scope, String> {
        let mut out = BTreeMap::new();
        for term in s.split([';', ',']).map(str::trim).filter(|t| !t.is_empty()) {
            let (k, v) = term
                .split_once('=')
                .ok_or_else(|| format!("`{term}` is not LABEL=VALUE"))?;
            let k = k.trim();
            if !valid_label(k) {
                return Err(format!("`{k}` is not a label name"));
            }
            let values: Vec<String> = v
                .split('|')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect();
            if values.is_empty() {
                return Err(format!("label `{k}` has no value"));
            }
            if out.insert(k.to_string(), values).is_some() {
                return Err(format!("label `{k}` appears twice"));
            }
        }
        Ok(Scope(out))
    }
}

fn valid_label(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// One control's line in the SoA.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoaControl {
    /// Canonical control id of the SoA's edition.
    pub id: ControlId,
    /// Line in the source where the control is declared (0 if unknown).
    #[serde(skip)]
    pub line: usize,
    /// Whether the control applies.
    pub applicable: bool,
    /// Why it was selected, or why it is excluded.
    pub justification: String,
    /// Who answers for it.
    pub owner: String,
    /// How far it is implemented (applicable controls).
    pub status: Option<Implementation>,
    /// Hosts it covers.
    pub scope: Scope,
    /// Checks that replace the ones mapped from the catalog (`[]`: manual).
    pub checks: Option<Vec<CheckId>>,
    /// Checks added to the mapped ones.
    pub extra_checks: Vec<CheckId>,
    /// Parameter values the checks must be evaluated with.
    pub params: BTreeMap<String, ParamValue>,
    /// How old evidence may be, in seconds (`None`: the SoA's default).
    pub freshness_seconds: Option<u64>,
}

/// A Statement of Applicability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Soa {
    /// The edition whose Annex A it covers.
    pub edition: Edition,
    /// The organisation.
    pub organisation: Option<String>,
    /// A title or document reference.
    pub title: Option<String>,
    /// Default freshness in seconds (`None`: twice each agent's schedule interval).
    pub freshness_seconds: Option<u64>,
    /// One entry per control, in source order.
    pub controls: Vec<SoaControl>,
}

/// One problem in an SoA, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoaProblem {
    /// The file (as named by the caller).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The control or field concerned.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SoaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in an SoA; nothing of it is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SoaErrors(pub Vec<SoaProblem>);

impl fmt::Display for SoaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the Statement of Applicability:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoaFile {
    soa: Header,
    #[serde(default, rename = "control")]
    controls: Vec<ControlDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    edition: Spanned<String>,
    organisation: Option<String>,
    title: Option<String>,
    freshness: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlDecl {
    id: Spanned<String>,
    applicable: bool,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    owner: String,
    status: Option<Spanned<String>>,
    #[serde(default)]
    scope: BTreeMap<String, OneOrMany>,
    checks: Option<Vec<CheckId>>,
    #[serde(default)]
    extra_checks: Vec<CheckId>,
    #[serde(default)]
    params: BTreeMap<String, ParamValue>,
    freshness: Option<Spanned<String>>,
}

/// A control as read from any source format, before it is checked.
#[derive(Debug, Clone)]
pub(crate) struct RawControl {
    pub line: usize,
    pub id: String,
    pub applicable: bool,
    pub justification: String,
    pub owner: String,
    pub status: Option<String>,
    pub scope: Result<Scope, String>,
    pub checks: Option<Vec<CheckId>>,
    pub extra_checks: Vec<CheckId>,
    pub params: BTreeMap<String, ParamValue>,
    pub freshness: Option<String>,
}

/// The header as read from any source format.
#[derive(Debug, Clone)]
pub(crate) struct RawHeader {
    pub line: usize,
    pub edition: String,
    pub organisation: Option<String>,
    pub title: Option<String>,
    pub freshness: Option<String>,
}

/// Parses an SoA from TOML and checks it against the catalog (every
/// control once, known ids, justifications). `file` names it in problems.
/// Checks and parameters are checked by [`lint`], which needs the packs.
pub fn parse_toml(file: &str, text: &str) -> Result<Soa, SoaErrors> {
    complete(parse_toml_partial(file, text)?)
}

/// Parses an SoA in either format (as [`parse_toml`] and
/// [`csv::parse_csv`] do).
pub fn parse(file: &str, text: &str, format: Format) -> Result<Soa, SoaErrors> {
    match format {
        Format::Toml => parse_toml(file, text),
        Format::Csv => csv::parse_csv(file, text),
    }
}

/// An SoA with problems that do not stop it being read (an unknown control,
/// a missing justification) alongside those problems.
pub(crate) type Partial = (Soa, Vec<SoaProblem>);

pub(crate) fn complete(partial: Partial) -> Result<Soa, SoaErrors> {
    let (soa, problems) = partial;
    if problems.is_empty() {
        Ok(soa)
    } else {
        Err(SoaErrors(problems))
    }
}

pub(crate) fn parse_toml_partial(file: &str, text: &str) -> Result<Partial, SoaErrors> {
    let parsed: SoaFile = toml::from_str(text).map_err(|e| {
        SoaErrors(vec![SoaProblem {
            file: file.to_string(),
            line: e.span().map(|s| line_col(text, s.start).0),
            field: None,
            message: e.message().trim().to_string(),
        }])
    })?;
    let at = |offset: usize| line_col(text, offset).0;
    let header = RawHeader {
        line: at(parsed.soa.edition.span().start),
        edition: parsed.soa.edition.get_ref().clone(),
        organisation: parsed.soa.organisation,
        title: parsed.soa.title,
        freshness: parsed.soa.freshness.map(|f| f.into_inner()),
    };
    let controls = parsed
        .controls
        .into_iter()
        .map(|c| {
            let line = at(c.id.span().start);
            let mut scope = BTreeMap::new();
            for (k, v) in c.scope {
                let vs = match v {
                    OneOrMany::One(s) => vec![s],
                    OneOrMany::Many(v) => v,
                };
                scope.insert(k, vs);
            }
            RawControl {
                line,
                id: c.id.into_inner(),
                applicable: c.applicable,
                justification: c.justification,
                owner: c.owner,
                status: c.status.map(|s| s.into_inner()),
                scope: check_scope(Scope(scope)),
                checks: c.checks,
                extra_checks: c.extra_checks,
                params: c.params,
                freshness: c.freshness.map(|f| f.into_inner()),
            }
        })
        .collect();
    build(file, header, controls)
}

fn check_scope(scope: Scope) -> Result<Scope, String> {
    for (k, vs) in &scope.0 {
        if !valid_label(k) {
            return Err(format!("`{k}` is not a label name"));
        }
        if vs.is_empty() || vs.iter().any(|v| v.trim().is_empty()) {
            return Err(format!("label `{k}` needs a non-empty value"));
        }
    }
    Ok(scope)
}

fn freshness(s: &str) -> Result<u64, String> {
    match parse_duration_secs(s) {
        Some(n) if n >= 60 => Ok(n as u64),
        Some(_) => Err(format!(
            "`{s}` is shorter than a minute; evidence cannot be that fresh"
        )),
        None => Err(format!(
            "`{s}` is not a duration (for example `2h`, `90m`, `2d`)"
        )),
    }
}

/// Turns raw controls into an SoA, collecting every problem the catalog
/// alone can find.
pub(crate) fn build(
    file: &str,
    header: RawHeader,
    controls: Vec<RawControl>,
) -> Result<Partial, SoaErrors> {
    let mut problems = Vec::new();
    let problem = |line: usize, field: &str, message: String| SoaProblem {
        file: file.to_string(),
        line: (line > 0).then_some(line),
        field: Some(field.to_string()),
        message,
    };
    let edition: Edition = match header.edition.parse() {
        Ok(e) => e,
        Err(e) => {
            return Err(SoaErrors(vec![problem(
                header.line,
                "soa.edition",
                e.to_string(),
            )]));
        }
    };
    let default_freshness = match header.freshness.as_deref().map(freshness).transpose() {
        Ok(f) => f,
        Err(m) => {
            problems.push(problem(header.line, "soa.freshness", m));
            None
        }
    };
    let cat: &Catalog = catalog();
    let mut seen: BTreeMap<ControlId, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for c in controls {
        let field = format!("control[{}]", c.id);
        let id = match cat.control(edition, &c.id) {
            Ok(ctl) => ctl.id.clone(),
            Err(e) => {
                problems.push(problem(c.line, &field, e.to_string()));
                continue;
            }
        };
        if let Some(first) = seen.insert(id.clone(), c.line) {
            problems.push(problem(
                c.line,
                &field,
                format!("{id} is listed twice (first on line {first}); each control appears exactly once"),
            ));
            continue;
        }
        if c.justification.trim().is_empty() {
            problems.push(problem(
                c.line,
                &format!("{field}.justification"),
                if c.applicable {
                    "an applicable control needs the reason for its selection (ISO/IEC 27001 4.2.1 j)".into()
                } else {
                    "an excluded control needs the justification for its exclusion (ISO/IEC 27001 4.2.1 j)".into()
                },
            ));
        }
        let status = match c.status.as_deref() {
            Some(s) => match Implementation::parse(s) {
                Some(st) => Some(st),
                None => {
                    problems.push(problem(
                        c.line,
                        &format!("{field}.status"),
                        format!("`{s}` is not one of implemented, partial, planned, not_started"),
                    ));
                    None
                }
            },
            None => None,
        };
        let freshness_seconds = match c.freshness.as_deref().map(freshness).transpose() {
            Ok(f) => f,
            Err(m) => {
                problems.push(problem(c.line, &format!("{field}.freshness"), m));
                None
            }
        };
        let scope = match c.scope {
            Ok(s) => s,
            Err(m) => {
                problems.push(problem(c.line, &format!("{field}.scope"), m));
                Scope::default()
            }
        };
        if c.applicable {
            if c.owner.trim().is_empty() {
                problems.push(problem(
                    c.line,
                    &format!("{field}.owner"),
                    "an applicable control needs an owner".into(),
                ));
            }
            if status.is_none() && c.status.is_none() {
                problems.push(problem(
                    c.line,
                    &format!("{field}.status"),
                    "an applicable control needs its implementation status (implemented, partial, planned, not_started)".into(),
                ));
            }
        } else {
            let contradictions: Vec<&str> = [
                ("checks", c.checks.is_some()),
                ("extra_checks", !c.extra_checks.is_empty()),
                ("params", !c.params.is_empty()),
                ("scope", !scope.0.is_empty()),
                ("freshness", c.freshness.is_some()),
            ]
            .into_iter()
            .filter_map(|(n, set)| set.then_some(n))
            .collect();
            if !contradictions.is_empty() {
                problems.push(problem(
                    c.line,
                    &field,
                    format!(
                        "an excluded control cannot have {}: nothing is checked for it",
                        contradictions.join(", ")
                    ),
                ));
            }
        }
        if c.checks.is_some() && !c.extra_checks.is_empty() {
            problems.push(problem(
                c.line,
                &field,
                "`checks` replaces the mapped checks and `extra_checks` adds to them; use one"
                    .into(),
            ));
        }
        out.push(SoaControl {
            id,
            line: c.line,
            applicable: c.applicable,
            justification: c.justification.trim().to_string(),
            owner: c.owner.trim().to_string(),
            status,
            scope,
            checks: c.checks,
            extra_checks: c.extra_checks,
            params: c.params,
            freshness_seconds,
        });
    }
    let missing: Vec<&str> = cat
        .controls(edition)
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !seen.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        problems.push(SoaProblem {
            file: file.to_string(),
            line: (header.line > 0).then_some(header.line),
            field: Some("control".into()),
            message: format!(
                "{} of the {} controls of ISO/IEC 27001:{edition} Annex A are missing; every control must be listed, applicable or excluded: {}",
                missing.len(),
                cat.controls(edition).len(),
                missing.join(", ")
            ),
        });
    }
    Ok((
        Soa {
            edition,
            organisation: header.organisation.filter(|s| !s.trim().is_empty()),
            title: header.title.filter(|s| !s.trim().is_empty()),
            freshness_seconds: default_freshness,
            controls: out,
        },
        problems,
    ))
}

/// Where a control's checks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckSource {
    /// Mapped from the packs' control tags through the catalog.
    Mapped,
    /// Mapped, plus the SoA's `extra_checks`.
    MappedAndExtra,
    /// The SoA's `checks`, replacing the mapped ones.
    Replaced,
}

/// Which checks give evidence for a control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Check ids, sorted.
    pub checks: Vec<CheckId>,
    /// Where they come from.
    pub source: CheckSource,
}

impl Coverage {
    /// No automated check: the control needs evidence agents cannot collect.
    pub fn is_manual(&self) -> bool {
        self.checks.is_empty()
    }
}

/// For every check of `packs`, the controls of `edition` it gives evidence
/// for (through the crosswalk when the pack tags another edition).
pub fn checks_by_control(
    packs: &PackSet,
    edition: Edition,
) -> BTreeMap<ControlId, BTreeSet<CheckId>> {
    let mut out: BTreeMap<ControlId, BTreeSet<CheckId>> = BTreeMap::new();
    for check in packs.checks() {
        for id in check.controls.get(&edition).into_iter().flatten() {
            out.entry(id.clone()).or_default().insert(check.id.clone());
        }
    }
    out
}

impl Soa {
    /// The control entry for `id` (canonical id of the SoA's edition).
    pub fn control(&self, id: &str) -> Option<&SoaControl> {
        self.controls.iter().find(|c| c.id == id)
    }

    /// Which checks give evidence for each applicable control.
    pub fn coverage(&self, packs: &PackSet) -> BTreeMap<ControlId, Coverage> {
        self.coverage_from(&checks_by_control(packs, self.edition))
    }

    /// [`Soa::coverage`] from the checks mapped to each control of the
    /// SoA's edition (as [`checks_by_control`] gives them).
    pub fn coverage_from(
        &self,
        mapped: &BTreeMap<ControlId, BTreeSet<CheckId>>,
    ) -> BTreeMap<ControlId, Coverage> {
        self.controls
            .iter()
            .filter(|c| c.applicable)
            .map(|c| {
                let cov = match &c.checks {
                    Some(replace) => Coverage {
                        checks: sorted(replace.iter().cloned()),
                        source: CheckSource::Replaced,
                    },
                    None => {
                        let base = mapped.get(&c.id).cloned().unwrap_or_default();
                        Coverage {
                            source: if c.extra_checks.is_empty() {
                                CheckSource::Mapped
                            } else {
                                CheckSource::MappedAndExtra
                            },
                            checks: sorted(base.into_iter().chain(c.extra_checks.iter().cloned())),
                        }
                    }
                };
                (c.id.clone(), cov)
            })
            .collect()
    }

    /// The parameter values the SoA sets (lint guarantees no two controls
    /// set one parameter differently).
    pub fn params(&self) -> BTreeMap<String, ParamValue> {
        let mut out = BTreeMap::new();
        for c in self.controls.iter().filter(|c| c.applicable) {
            for (k, v) in &c.params {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

fn sorted(it: impl Iterator<Item = CheckId>) -> Vec<CheckId> {
    let set: BTreeSet<CheckId> = it.collect();
    set.into_iter().collect()
}

/// Checks an SoA against the loaded packs: every named check exists, every
/// parameter is declared with the right type and set consistently.
pub fn check_against(file: &str, soa: &Soa, packs: &PackSet) -> Vec<SoaProblem> {
    let mut problems = Vec::new();
    let declared = packs.params_with(&BTreeMap::new()).unwrap_or_default();
    let mut set_by: BTreeMap<&str, (&ParamValue, &SoaControl)> = BTreeMap::new();
    for c in soa.controls.iter().filter(|c| c.applicable) {
        let field = format!("control[{}]", c.id);
        let problem = |f: String, message: String| SoaProblem {
            file: file.to_string(),
            line: (c.line > 0).then_some(c.line),
            field: Some(f),
            message,
        };
        let named = c.checks.iter().flatten().map(|id| ("checks", id));
        for (what, id) in named.chain(c.extra_checks.iter().map(|id| ("extra_checks", id))) {
            if packs.check(id.as_str()).is_none() {
                let close = packs.closest_check_ids(id.as_str(), 3);
                problems.push(problem(
                    format!("{field}.{what}"),
                    format!(
                        "no loaded pack has a check `{id}`{}",
                        if close.is_empty() {
                            String::new()
                        } else {
                            format!("; closest: {}", close.join(", "))
                        }
                    ),
                ));
            }
        }
        for (name, value) in &c.params {
            match declared.0.get(name) {
                None => problems.push(problem(
                    format!("{field}.params.{name}"),
                    format!(
                        "no loaded pack declares a parameter `{name}`; declared: {}",
                        declared.0.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )),
                Some(default)
                    if std::mem::discriminant(default) != std::mem::discriminant(value) =>
                {
                    problems.push(problem(
                        format!("{field}.params.{name}"),
                        format!(
                            "`{name}` takes {}, got `{value}`",
                            match default {
                                ParamValue::Int(_) => "a whole number",
                                ParamValue::Text(_) => "a string",
                            }
                        ),
                    ))
                }
                Some(_) => {}
            }
            if let Some((other, by)) = set_by.get(name.as_str()) {
                if *other != value {
                    problems.push(problem(
                        format!("{field}.params.{name}"),
                        format!(
                            "{} (line {}) sets `{name}` to {other}, this control to {value}; a parameter has one value in an SoA",
                            by.id, by.line
                        ),
                    ));
                }
            } else {
                set_by.insert(name, (value, c));
            }
        }
    }
    problems
}

/// Parses and checks an SoA completely (what `soa lint` and `soa import`
/// run), reporting every problem of every kind at once.
pub fn lint(file: &str, text: &str, format: Format, packs: &PackSet) -> Result<Soa, SoaErrors> {
    let (soa, mut problems) = match format {
        Format::Toml => parse_toml_partial(file, text)?,
        Format::Csv => csv::parse_csv_partial(file, text)?,
    };
    problems.extend(check_against(file, &soa, packs));
    problems.sort_by_key(|p| p.line);
    complete((soa, problems))
}

/// The source formats of an SoA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// docs/soa.md.
    Toml,
    /// One row per control, the same fields.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "toml" => Ok(Format::Toml),
            "csv" => Ok(Format::Csv),
            other => Err(format!("format is `{other}`; expected toml or csv")),
        }
    }
}

impl Format {
    /// The format a file name suggests (`.csv` is CSV, anything else TOML).
    pub fn from_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".csv") {
            Format::Csv
        } else {
            Format::Toml
        }
    }

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Toml => "toml",
            Format::Csv => "csv",
        }
    }
}

#[derive(Serialize)]
struct OutFile<'a> {
    soa: OutHeader<'a>,
    control: Vec<OutControl<'a>>,
}

#[derive(Serialize)]
struct OutHeader<'a> {
    edition: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    organisation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    freshness: Option<String>,
}

#[derive(Serialize)]
struct OutControl<'a> {
    id: &'a str,
    applicable: bool,
    justification: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    owner: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    scope: &'a BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<&'a Vec<CheckId>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_checks: &'a Vec<CheckId>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    params: &'a BTreeMap<String, ParamValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    freshness: Option<String>,
}

/// Writes a duration in seconds as the shortest exact `d`/`h`/`m`/`s` form.
pub fn format_duration(secs: u64) -> String {
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if secs >= n && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

impl Soa {
    /// The SoA as TOML (docs/soa.md); parses back to an equal SoA.
    pub fn to_toml(&self) -> String {
        let out = OutFile {
            soa: OutHeader {
                edition: self.edition.year(),
                organisation: self.organisation.as_deref(),
                title: self.title.as_deref(),
                freshness: self.freshness_seconds.map(format_duration),
            },
            control: self
                .controls
                .iter()
                .map(|c| OutControl {
                    id: c.id.as_str(),
                    applicable: c.applicable,
                    justification: &c.justification,
                    owner: &c.owner,
                    status: c.status.map(Implementation::as_str),
                    scope: &c.scope.0,
                    checks: c.checks.as_ref(),
                    extra_checks: &c.extra_checks,
                    params: &c.params,
                    freshness: c.freshness_seconds.map(format_duration),
                })
                .collect(),
        };
        toml::to_string(&out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
