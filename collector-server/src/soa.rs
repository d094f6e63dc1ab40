//! Importing and reading SoA versions: what `annexa-collector soa …` and
//! the `/v1/soa` routes share. An SoA that does not lint is never stored.

use annexa_checks::pack::PackSet;
use annexa_checks::soa::{self, CheckSource, Format, Implementation, Soa, SoaErrors};
use annexa_checks::{CheckId, ControlId};
use serde::Serialize;

use crate::clock;
use crate::store::{NewSoa, SoaVersion, Store, StoreError};

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file does not lint; nothing was stored.
    #[error("{0}")]
    Invalid(SoaErrors),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lints `text` and, if it is clean, records it as the next version.
pub async fn import(
    store: &dyn Store,
    packs: &PackSet,
    name: &str,
    text: &str,
    format: Format,
    by: &str,
    comment: Option<String>,
) -> Result<(SoaVersion, Soa), ImportError> {
    let parsed = soa::lint(name, text, format, packs).map_err(ImportError::Invalid)?;
    let version = store
        .import_soa(NewSoa {
            edition: parsed.edition.to_string(),
            format: format.as_str().into(),
            source: text.to_string(),
            sha256: annexa_evidence::sha256_hex(text.as_bytes()),
            imported_by: by.to_string(),
            imported_at: clock::now_rfc3339(),
            comment,
        })
        .await?;
    Ok((version, parsed))
}

/// A stored version: its record, the SoA parsed back (it linted when
/// imported) and its source exactly as imported.
pub async fn load(
    store: &dyn Store,
    version: i64,
) -> Result<(SoaVersion, Soa, String), StoreError> {
    let (meta, source) = store
        .soa(version)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("SoA version {version}")))?;
    let name = format!("SoA version {version}");
    let format = meta.format.parse().map_err(StoreError::Broken)?;
    let parsed =
        soa::parse(&name, &source, format).map_err(|e| StoreError::Broken(e.to_string()))?;
    Ok((meta, parsed, source))
}

/// The newest version's number, if any.
pub async fn newest(store: &dyn Store) -> Result<Option<i64>, StoreError> {
    Ok(store.soa_versions().await?.last().map(|v| v.version))
}

/// One control as `soa show` presents it.
#[derive(Debug, Clone, Serialize)]
pub struct ShownControl {
    /// The control.
    pub id: ControlId,
    /// Its title.
    pub title: String,
    /// Whether it applies.
    pub applicable: bool,
    /// Why (selected or excluded).
    pub justification: String,
    /// Who owns it.
    pub owner: String,
    /// Implementation status.
    pub status: Option<Implementation>,
    /// Hosts covered (`env=prod;role=db|web`; empty: all).
    pub scope: String,
    /// The checks that give evidence for it.
    pub checks: Vec<CheckId>,
    /// Where they come from.
    pub check_source: Option<CheckSource>,
    /// No automated check.
    pub manual: bool,
    /// Parameter values set.
    pub params: std::collections::BTreeMap<String, annexa_checks::expect::ParamValue>,
    /// Freshness window in seconds, when set.
    pub freshness_seconds: Option<u64>,
}

/// An SoA version as `soa show` presents it.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The version's record.
    #[serde(flatten)]
    pub version: SoaVersion,
    /// The organisation.
    pub organisation: Option<String>,
    /// The title.
    pub title: Option<String>,
    /// Default freshness in seconds.
    pub freshness_seconds: Option<u64>,
    /// Every control.
    pub controls: Vec<ShownControl>,
}

/// What `soa show` presents.
pub fn show(version: SoaVersion, soa: &Soa, packs: &PackSet) -> Shown {
    let coverage = soa.coverage(packs);
    let cat = annexa_checks::catalog::catalog();
    Shown {
        organisation: soa.organisation.clone(),
        title: soa.title.clone(),
        freshness_seconds: soa.freshness_seconds,
        controls: soa
            .controls
            .iter()
            .map(|c| {
                let cov = coverage.get(&c.id);
                ShownControl {
                    id: c.id.clone(),
                    title: cat
                        .control(soa.edition, c.id.as_str())
                        .map(|x| x.title.clone())
                        .unwrap_or_default(),
                    applicable: c.applicable,
                    justification: c.justification.clone(),
                    owner: c.owner.clone(),
                    status: c.status,
                    scope: c.scope.to_selector(),
                    checks: cov.map(|x| x.checks.clone()).unwrap_or_default(),
                    check_source: cov.map(|x| x.source),
                    manual: cov.is_some_and(|x| x.is_manual()),
                    params: c.params.clone(),
                    freshness_seconds: c.freshness_seconds,
                }
            })
            .collect(),
        version,
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = &self.version;
        writeln!(
            f,
            "SoA version {} (ISO/IEC 27001:{}), imported by {} at {}{}",
            v.version,
            v.edition,
            v.imported_by,
            v.imported_at,
            v.comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        )?;
        if let Some(o) = &self.organisation {
            writeln!(f, "organisation: {o}")?;
        }
        let applicable = self.controls.iter().filter(|c| c.applicable).count();
        let manual = self.controls.iter().filter(|c| c.manual).count();
        writeln!(
            f,
            "{} controls: {applicable} applicable ({} with automated checks, {manual} manual), {} excluded\n",
            self.controls.len(),
            applicable - manual,
            self.controls.len() - applicable
        )?;
        for c in &self.controls {
            if !c.applicable {
                writeln!(f, "{:<10} excluded      {}", c.id, c.title)?;
                writeln!(f, "           why: {}", c.justification)?;
                continue;
            }
            let status = c.status.map_or("-", Implementation::as_str);
            writeln!(f, "{:<10} {:<13} {}", c.id, status, c.title)?;
            if !c.scope.is_empty() {
                writeln!(f, "           scope: {}", c.scope)?;
            }
            if c.manual {
                writeln!(f, "           evidence: manual (no automated check)")?;
            } else {
                writeln!(f, "           evidence: {}", c.checks.join(", "))?;
            }
            for (k, val) in &c.params {
                writeln!(f, "           param: {k} = {val}")?;
            }
        }
        Ok(())
    }
}
