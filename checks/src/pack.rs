//! Check packs: compliance as code in TOML (format in docs/pack-format.md).
//!
//! A pack is loaded whole or not at all: every problem in every file is
//! collected and reported with its file, line and field, and a set of packs
//! with any error yields no checks. The SHA-256 of each pack file's bytes is
//! carried into every result it produces.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::{Edition, catalog};
use crate::expect::{ParamValue, Params};
use crate::host::sha256_hex;
use crate::ids::{CheckId, ControlId};
use crate::platform::{Platform, Selector};
use crate::probes::ProbeSpec;
use crate::result::PackRef;
// Severity is part of every result; packs declare it (and re-export it for
// their readers).
pub use crate::result::Severity;

/// The packs shipped inside the binary: (file name, contents).
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    ("accounts.toml", include_str!("../packs/accounts.toml")),
    ("endpoint.toml", include_str!("../packs/endpoint.toml")),
    ("logging.toml", include_str!("../packs/logging.toml")),
    ("network.toml", include_str!("../packs/network.toml")),
    ("patching.toml", include_str!("../packs/patching.toml")),
    ("resilience.toml", include_str!("../packs/resilience.toml")),
    ("session.toml", include_str!("../packs/session.toml")),
    ("software.toml", include_str!("../packs/software.toml")),
    ("system.toml", include_str!("../packs/system.toml")),
];

/// The directory operators drop their own packs into.
pub const DEFAULT_PACK_DIR: &str = "/etc/annexa/checks.d";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    pack: PackHeader,
    #[serde(default)]
    params: BTreeMap<String, Spanned<ParamDecl>>,
    #[serde(default, rename = "check")]
    checks: Vec<Spanned<CheckDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackHeader {
    id: Spanned<String>,
    title: String,
    version: String,
    #[serde(default)]
    description: String,
}

/// A parameter a pack declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    /// Value used unless the operator overrides it.
    pub default: ParamValue,
    /// What it controls.
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckDecl {
    id: Spanned<String>,
    title: String,
    rationale: String,
    remediation: String,
    severity: Severity,
    controls: ControlsDecl,
    #[serde(default)]
    probe: Option<Spanned<ProbeSpec>>,
    #[serde(default)]
    platforms: Vec<Selector>,
    #[serde(default, rename = "variant")]
    variants: Vec<Spanned<VariantDecl>>,
    #[serde(default)]
    applies_if: Option<Spanned<AppliesIf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantDecl {
    platforms: Vec<Selector>,
    probe: Spanned<ProbeSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlsDecl {
    #[serde(rename = "2005")]
    e2005: Option<Spanned<Vec<String>>>,
    #[serde(rename = "2013")]
    e2013: Option<Spanned<Vec<String>>>,
    #[serde(rename = "2022")]
    e2022: Option<Spanned<Vec<String>>>,
}

/// Where a pack came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackOrigin {
    /// Compiled into the binary.
    Builtin(String),
    /// Read from a file.
    File(PathBuf),
}

impl fmt::Display for PackOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackOrigin::Builtin(name) => write!(f, "builtin:{name}"),
            PackOrigin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A check ready to run.
#[derive(Debug, Clone)]
pub struct Check {
    /// Unique id across all loaded packs.
    pub id: CheckId,
    /// One-line title.
    pub title: String,
    /// Why the check matters.
    pub rationale: String,
    /// How to fix a failure.
    pub remediation: String,
    /// How serious a failure is.
    pub severity: Severity,
    /// Controls per edition: declared ones as written, the others derived
    /// through the crosswalk.
    pub controls: BTreeMap<Edition, Vec<ControlId>>,
    /// Editions the pack declared explicitly.
    pub declared: Vec<Edition>,
    /// What to examine on a platform no variant names; `None` when only
    /// the variants' platforms are covered.
    pub probe: Option<ProbeSpec>,
    /// `probe` exactly as the pack writes it (for the reference).
    pub probe_text: Option<String>,
    /// Per-platform probes, the first that names the host's platform wins.
    pub variants: Vec<Variant>,
    /// The platforms this check applies to at all (empty: every platform).
    pub platforms: Vec<Selector>,
    /// What the host must have for the check to have anything to judge
    /// (a desktop, a RAID tool); `None`: every host.
    pub applies_if: Option<AppliesIf>,
    /// The pack it belongs to.
    pub pack: PackRef,
}

/// What a host must have for a check to apply: any of `packages`
/// installed or any of `paths` present. Without it the check is
/// `not_applicable`, and `otherwise` says what the host lacks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesIf {
    /// Package names, any one installed.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Absolute paths, any one present.
    #[serde(default)]
    pub paths: Vec<String>,
    /// What the host lacks when none is there, e.g. "no desktop".
    pub otherwise: String,
}

impl AppliesIf {
    fn validate(&self) -> Result<(), String> {
        if self.packages.is_empty() && self.paths.is_empty() {
            return Err("name `packages` and/or `paths`".into());
        }
        for p in &self.packages {
            crate::probes::check_name("package", p)?;
        }
        if let Some(p) = self.paths.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("`paths` entries are absolute, got `{p}`"));
        }
        if self.otherwise.trim().is_empty() {
            return Err("`otherwise` says what a host without them lacks".into());
        }
        Ok(())
    }
}

/// A probe for some platforms only.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The platforms it is for.
    pub platforms: Vec<Selector>,
    /// What to examine there.
    pub probe: ProbeSpec,
    /// `probe` exactly as the pack writes it.
    pub probe_text: String,
}

/// Which probe a check runs on a platform.
#[derive(Debug, Clone, Copy)]
pub enum ProbeChoice<'a> {
    /// This probe; `variant` is the selector list that chose it, `None` for
    /// the check's own probe.
    Run {
        /// The probe.
        probe: &'a ProbeSpec,
        /// The variant's platforms, when a variant was chosen.
        variant: Option<&'a [Selector]>,
    },
    /// The check has nothing for this platform.
    NoVariant,
}

impl Check {
    /// The parameters its probes read (every variant's).
    pub fn param_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .probes()
            .flat_map(|p| p.param_refs())
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Its probes: its own, then each variant's.
    pub fn probes(&self) -> impl Iterator<Item = &ProbeSpec> {
        self.probe
            .iter()
            .chain(self.variants.iter().map(|v| &v.probe))
    }

    /// The probe to run on `platform`: the first variant that names it,
    /// else the check's own probe, provided the check applies there at all.
    pub fn probe_for(&self, platform: &Platform) -> ProbeChoice<'_> {
        if !self.platforms.is_empty() && !self.platforms.iter().any(|s| platform.matches(s)) {
            return ProbeChoice::NoVariant;
        }
        if let Some(v) = self
            .variants
            .iter()
            .find(|v| v.platforms.iter().any(|s| platform.matches(s)))
        {
            return ProbeChoice::Run {
                probe: &v.probe,
                variant: Some(&v.platforms),
            };
        }
        match &self.probe {
            Some(probe) => ProbeChoice::Run {
                probe,
                variant: None,
            },
            None => ProbeChoice::NoVariant,
        }
    }

    /// The kinds of its probes, `/`-separated (for listings).
    pub fn probe_kinds(&self) -> String {
        let mut kinds: Vec<&str> = self.probes().map(|p| p.kind()).collect();
        kinds.dedup();
        kinds.join("/")
    }
}

/// A loaded pack.
#[derive(Debug, Clone)]
pub struct Pack {
    /// Identity and digest.
    pub reference: PackRef,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Where it was read from.
    pub origin: PackOrigin,
    /// Parameters it declares.
    pub params: BTreeMap<String, ParamDecl>,
    /// Its checks, in file order.
    pub checks: Vec<Check>,
}

/// One problem with a pack, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackError {
    /// The pack file (or `builtin:NAME`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field concerned (`check[ssh.root-login].controls.2005`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found while loading a set of packs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PackErrors(pub Vec<PackError>);

impl fmt::Display for PackErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in check packs; no pack was loaded:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset in `text` (for errors that a
/// TOML parser reports as spans).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

struct Located<'a> {
    file: &'a str,
    text: &'a str,
}

impl Located<'_> {
    fn at(&self, offset: usize, field: impl Into<String>, message: impl Into<String>) -> PackError {
        let (line, column) = line_col(self.text, offset);
        PackError {
            file: self.file.to_string(),
            line: Some(line),
            column: Some(column),
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

fn valid_check_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

/// Parses one pack from its text. `file` names it in errors.
pub fn parse_pack(file: &str, origin: PackOrigin, text: &str) -> Result<Pack, Vec<PackError>> {
    let loc = Located { file, text };
    let parsed: PackFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_col(text, s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        vec![PackError {
            file: file.to_string(),
            line,
            column,
            field: None,
            message: e.message().trim().to_string(),
        }]
    })?;

    let mut errors = Vec::new();
    let digest = format!("sha256:{}", sha256_hex(text.as_bytes()));
    let pack_id = parsed.pack.id.get_ref().clone();
    if !valid_check_id(&pack_id) {
        errors.push(loc.at(
            parsed.pack.id.span().start,
            "pack.id",
            format!("`{pack_id}` is not a valid id (lower-case letters, digits, `.`, `-`, `_`)"),
        ));
    }
    let reference = PackRef {
        id: pack_id,
        version: parsed.pack.version.clone(),
        digest,
    };
    let params: BTreeMap<String, ParamDecl> = parsed
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect();

    let mut checks = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for decl in parsed.checks {
        let span = decl.span();
        let decl = decl.into_inner();
        let id = decl.id.get_ref().clone();
        let field = |f: &str| format!("check[{id}].{f}");
        if !valid_check_id(&id) {
            errors.push(loc.at(
                decl.id.span().start,
                "check.id",
                format!(
                    "`{id}` is not a valid check id (lower-case letters, digits, `.`, `-`, `_`)"
                ),
            ));
        }
        if let Some(first) = seen.get(&id) {
            let (line, _) = line_col(text, *first);
            errors.push(loc.at(
                decl.id.span().start,
                field("id"),
                format!("duplicate check id `{id}` (first defined on line {line})"),
            ));
        } else {
            seen.insert(id.clone(), decl.id.span().start);
        }

        let mut declared: BTreeMap<Edition, Vec<ControlId>> = BTreeMap::new();
        for (edition, list) in [
            (Edition::E2005, &decl.controls.e2005),
            (Edition::E2013, &decl.controls.e2013),
            (Edition::E2022, &decl.controls.e2022),
        ] {
            let Some(list) = list else { continue };
            let mut ids = Vec::new();
            for raw in list.get_ref() {
                match catalog().control(edition, raw) {
                    Ok(c) => ids.push(c.id.clone()),
                    Err(e) => errors.push(loc.at(
                        list.span().start,
                        field(&format!("controls.{edition}")),
                        e.to_string(),
                    )),
                }
            }
            if list.get_ref().is_empty() {
                errors.push(loc.at(
                    list.span().start,
                    field(&format!("controls.{edition}")),
                    "empty list (omit the edition to derive it through the crosswalk)",
                ));
            }
            declared.insert(edition, ids);
        }
        if declared.is_empty() {
            errors.push(loc.at(
                span.start,
                field("controls"),
                "at least one edition's controls (\"2005\", \"2013\" or \"2022\") must be given",
            ));
        }
        let mut probes: Vec<(String, &Spanned<ProbeSpec>)> = Vec::new();
        if let Some(p) = &decl.probe {
            probes.push((field("probe"), p));
        }
        for (i, v) in decl.variants.iter().enumerate() {
            probes.push((field(&format!("variant[{i}].probe")), &v.get_ref().probe));
            if v.get_ref().platforms.is_empty() {
                errors.push(loc.at(
                    v.span().start,
                    field(&format!("variant[{i}].platforms")),
                    "empty list: a variant names the platforms it is for",
                ));
            }
        }
        if let Some(a) = &decl.applies_if {
            if let Err(msg) = a.get_ref().validate() {
                errors.push(loc.at(a.span().start, field("applies_if"), msg));
            }
        }
        if probes.is_empty() {
            errors.push(loc.at(
                span.start,
                field("probe"),
                "missing: a check has a `probe`, or `[[check.variant]]` entries with theirs",
            ));
        }
        for (name, probe) in &probes {
            for p in probe.get_ref().param_refs() {
                if !params.contains_key(p) {
                    errors.push(loc.at(
                        probe.span().start,
                        name.clone(),
                        format!(
                            "refers to parameter `{p}`, which this pack does not declare under [params]"
                        ),
                    ));
                }
            }
            if let Err(msg) = probe.get_ref().validate() {
                errors.push(loc.at(probe.span().start, name.clone(), msg));
            }
        }
        checks.push(Check {
            id: CheckId::new(id),
            title: decl.title,
            rationale: decl.rationale,
            remediation: decl.remediation,
            severity: decl.severity,
            controls: derive_controls(&declared),
            declared: declared.keys().copied().collect(),
            probe_text: decl
                .probe
                .as_ref()
                .map(|p| text.get(p.span()).unwrap_or_default().trim().to_string()),
            probe: decl.probe.map(Spanned::into_inner),
            variants: decl
                .variants
                .into_iter()
                .map(|v| {
                    let v = v.into_inner();
                    Variant {
                        platforms: v.platforms,
                        probe_text: text
                            .get(v.probe.span())
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                        probe: v.probe.into_inner(),
                    }
                })
                .collect(),
            platforms: decl.platforms,
            applies_if: decl.applies_if.map(Spanned::into_inner),
            pack: reference.clone(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Pack {
        reference,
        title: parsed.pack.title,
        description: parsed.pack.description,
        origin,
        params,
        checks,
    })
}

/// Fills in the editions a check did not declare, through the crosswalk.
/// Declared editions are kept exactly as written (an override).
fn derive_controls(
    declared: &BTreeMap<Edition, Vec<ControlId>>,
) -> BTreeMap<Edition, Vec<ControlId>> {
    let mut out = declared.clone();
    for target in Edition::ALL {
        if out.contains_key(&target) {
            continue;
        }
        // Derive from the nearest declared edition; forward links are the
        // more reliable direction, so prefer an older source on ties.
        let source = declared.keys().copied().min_by_key(|e| {
            (
                (e.year().parse::<i32>().unwrap_or(0) - target.year().parse::<i32>().unwrap_or(0))
                    .abs(),
                *e > target,
            )
        });
        if let Some(src) = source {
            out.insert(target, catalog().map_set(src, &declared[&src], target));
        }
    }
    out
}

/// All loaded packs, their checks and the parameter values in force.
#[derive(Debug, Clone, Default)]
pub struct PackSet {
    /// Packs in load order (built-in first, then files by name).
    pub packs: Vec<Pack>,
    /// Declared parameters with their defaults and the pack that declared them.
    pub params: BTreeMap<String, (ParamDecl, String)>,
}

impl PackSet {
    /// Loads the built-in packs (if `builtin`) and every `*.toml` in `dirs`
    /// (a missing directory is skipped only if `skip_missing`).
    pub fn load(
        builtin: bool,
        dirs: &[PathBuf],
        skip_missing: bool,
    ) -> Result<PackSet, PackErrors> {
        let mut packs = Vec::new();
        let mut errors = Vec::new();
        if builtin {
            for (name, text) in BUILTIN_PACKS {
                let label = format!("builtin:{name}");
                match parse_pack(&label, PackOrigin::Builtin(name.to_string()), text) {
                    Ok(p) => packs.push(p),
                    Err(e) => errors.extend(e),
                }
            }
        }
        for dir in dirs {
            match pack_files(dir) {
                Ok(files) => {
                    for path in files {
                        let label = path.display().to_string();
                        match std::fs::read(&path) {
                            Ok(bytes) => match String::from_utf8(bytes) {
                                Ok(text) => {
                                    match parse_pack(&label, PackOrigin::File(path.clone()), &text)
                                    {
                                        Ok(p) => packs.push(p),
                                        Err(e) => errors.extend(e),
                                    }
                                }
                                Err(_) => errors.push(file_error(&label, "not valid UTF-8")),
                            },
                            Err(e) => errors.push(file_error(&label, &e.to_string())),
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && skip_missing => {}
                Err(e) => errors.push(file_error(&dir.display().to_string(), &e.to_string())),
            }
        }
        let set = Self::assemble(packs, &mut errors);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(PackErrors(errors))
        }
    }

    /// Builds a set from already parsed packs, checking what only the whole
    /// set can show: check ids and pack ids unique across packs, parameters
    /// declared consistently.
    pub fn from_packs(packs: Vec<Pack>) -> Result<PackSet, PackErrors> {
        let mut errors = Vec::new();
        let set = Self::assemble(packs, &mut errors);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(PackErrors(errors))
        }
    }

    fn assemble(packs: Vec<Pack>, errors: &mut Vec<PackError>) -> PackSet {
        let mut check_owner: HashMap<&CheckId, &Pack> = HashMap::new();
        let mut pack_owner: HashMap<&str, &Pack> = HashMap::new();
        let mut params: BTreeMap<String, (ParamDecl, String)> = BTreeMap::new();
        for pack in &packs {
            let label = pack.origin.to_string();
            if let Some(other) = pack_owner.insert(&pack.reference.id, pack) {
                errors.push(PackError {
                    file: label.clone(),
                    line: None,
                    column: None,
                    field: Some("pack.id".into()),
                    message: format!(
                        "pack id `{}` is also used by {}",
                        pack.reference.id, other.origin
                    ),
                });
            }
            for check in &pack.checks {
                if let Some(other) = check_owner.insert(&check.id, pack) {
                    errors.push(PackError {
                        file: label.clone(),
                        line: None,
                        column: None,
                        field: Some(format!("check[{}].id", check.id)),
                        message: format!(
                            "check id `{}` is also defined in {}",
                            check.id, other.origin
                        ),
                    });
                }
            }
            for (name, decl) in &pack.params {
                match params.get(name) {
                    Some((existing, owner)) if existing.default != decl.default => {
                        errors.push(PackError {
                            file: label.clone(),
                            line: None,
                            column: None,
                            field: Some(format!("params.{name}")),
                            message: format!(
                                "default {} differs from the default {} declared by {owner}",
                                decl.default, existing.default
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        params.insert(name.clone(), (decl.clone(), label.clone()));
                    }
                }
            }
        }
        PackSet { packs, params }
    }

    /// Every check of every pack.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.packs.iter().flat_map(|p| p.checks.iter())
    }

    /// A check by id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks().find(|c| c.id == id)
    }

    /// The ids closest to an unknown one, for "did you mean".
    pub fn closest_check_ids(&self, id: &str, n: usize) -> Vec<CheckId> {
        let mut scored: Vec<(f64, &CheckId)> = self
            .checks()
            .map(|c| (strsim::jaro_winkler(id, c.id.as_str()), &c.id))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(n).map(|(_, s)| s.clone()).collect()
    }

    /// Parameter values: declared defaults overlaid with `overrides`. An
    /// override of an undeclared parameter, or of the wrong type, is an error.
    pub fn params_with(&self, overrides: &BTreeMap<String, String>) -> Result<Params, String> {
        let mut out = Params::default();
        for (name, (decl, _)) in &self.params {
            out.0.insert(name.clone(), decl.default.clone());
        }
        for (name, raw) in overrides {
            let Some((decl, _)) = self.params.get(name) else {
                let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                return Err(format!(
                    "unknown parameter `{name}`; the loaded packs declare: {}",
                    known.join(", ")
                ));
            };
            let value = match decl.default {
                ParamValue::Int(_) => ParamValue::Int(raw.trim().parse().map_err(|_| {
                    format!("parameter `{name}` takes a whole number, got `{raw}`")
                })?),
                ParamValue::Text(_) => ParamValue::Text(raw.clone()),
            };
            out.0.insert(name.clone(), value);
        }
        Ok(out)
    }
}

fn file_error(file: &str, message: &str) -> PackError {
    PackError {
        file: file.to_string(),
        line: None,
        column: None,
        field: None,
        message: message.to_string(),
    }
}

fn pack_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Refuses a pack directory, or a file in it, that group or others may
/// write, or that neither root nor this process's user owns: a pack decides
/// what a check looks at and what passes, so whoever can write one can make
/// an agent sign a clean bill of health, or a collector map checks to
/// controls as they like. A missing directory is fine (nothing is loaded).
/// For the daemons' configured directories, not for a CI run's `--packs`.
pub fn check_trusted_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // std has no safe geteuid; /proc/self belongs to the effective user.
    let me = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    let check = |path: &std::path::Path| -> Result<(), String> {
        // What is loaded is what a link points to: judge that.
        let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if m.mode() & 0o022 != 0 {
            return Err(format!(
                "{}: mode {:04o} lets group or others write check packs (chmod go-w)",
                path.display(),
                m.mode() & 0o7777
            ));
        }
        if m.uid() != 0 && m.uid() != me {
            return Err(format!(
                "{}: owned by uid {}, neither root nor this process's user (uid {me})",
                path.display(),
                m.uid()
            ));
        }
        Ok(())
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
        Ok(_) => check(dir)?,
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        check(&entry.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod trusted_dir_tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_pack_directory_others_can_write_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let packs = d.path().join("packs");
        std::fs::create_dir(&packs).unwrap();
        std::fs::set_permissions(&packs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(packs.join("a.toml"), "").unwrap();
        std::fs::set_permissions(packs.join("a.toml"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        super::check_trusted_dir(&packs).unwrap();
        super::check_trusted_dir(&d.path().join("missing")).unwrap();
        std::fs::set_permissions(packs.join("a.toml"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let e = super::check_trusted_dir(&packs).unwrap_err();
        assert!(e.contains("a.toml") && e.contains("0666"), "{e}");
        std::fs::set_permissions(packs.join("a.toml"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::set_permissions(&packs, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            super::check_trusted_dir(&packs)
                .unwrap_err()
                .contains("0777")
        );
    }
}
