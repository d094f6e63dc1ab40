//! `annexa-collector soa lint|import|list|show|export|diff`.

use std::fmt::Write as _;
use std::path::Path;

use annexa_checks::soa::Format;

use super::{CommandError, packs, read_text};
use crate::config::CollectorConfig;
use crate::open_store;
use crate::soa::ImportError;
use crate::store::Store;

/// The format of an SoA file: as given (`--format`), else by its name.
pub fn format_of(file: &Path, format: Option<&str>) -> Result<Format, CommandError> {
    match format {
        None => Ok(Format::from_path(&file.display().to_string())),
        Some(f) => f.parse().map_err(|m| CommandError::Usage(format!("--{m}"))),
    }
}

/// Lints an SoA file against the configured packs: a summary, or every
/// problem ([`CommandError::Refused`]).
pub fn lint(
    cfg: &CollectorConfig,
    file: &Path,
    format: Option<&str>,
) -> Result<String, CommandError> {
    let packs = packs(cfg)?;
    let format = format_of(file, format)?;
    let text = read_text(file)?;
    let soa = annexa_checks::soa::lint(&file.display().to_string(), &text, format, &packs)
        .map_err(|e| CommandError::Refused(e.to_string()))?;
    let cov = soa.coverage(&packs);
    let applicable = soa.controls.iter().filter(|c| c.applicable).count();
    let manual = cov.values().filter(|c| c.is_manual()).count();
    Ok(format!(
        "{}: ISO/IEC 27001:{} SoA, {} controls: {applicable} applicable ({} with automated checks, {manual} manual), {} excluded; no problems\n",
        file.display(),
        soa.edition,
        soa.controls.len(),
        applicable - manual,
        soa.controls.len() - applicable
    ))
}

/// What `soa import` records.
pub struct Import<'a> {
    /// The SoA file.
    pub file: &'a Path,
    /// Its format, if not by its name.
    pub format: Option<&'a str>,
    /// Who imports it.
    pub by: &'a str,
    /// Why.
    pub comment: Option<String>,
}

/// Lints and imports an SoA file as the next version; nothing is stored
/// if it does not lint ([`CommandError::Refused`]).
pub async fn import(cfg: &CollectorConfig, what: Import<'_>) -> Result<String, CommandError> {
    let packs = packs(cfg)?;
    let store = open_store(cfg).await?;
    let format = format_of(what.file, what.format)?;
    let text = read_text(what.file)?;
    let name = what.file.display().to_string();
    match crate::soa::import(
        store.as_ref(),
        &packs,
        &name,
        &text,
        format,
        what.by,
        what.comment,
    )
    .await
    {
        Ok((v, _)) => Ok(format!(
            "imported {name} as SoA version {} (ISO/IEC 27001:{}) by {} at {}\n",
            v.version, v.edition, v.imported_by, v.imported_at
        )),
        Err(ImportError::Invalid(e)) => {
            Err(CommandError::Refused(format!("{e}nothing was imported\n")))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

/// Every stored version, one line each.
pub async fn list(cfg: &CollectorConfig) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let mut out = String::new();
    for v in store.soa_versions().await? {
        let _ = writeln!(
            out,
            "{:>4}  {}  {:<5} {}  by {}{}",
            v.version,
            v.imported_at,
            v.edition,
            &v.sha256[..12],
            v.imported_by,
            v.comment.map(|c| format!(": {c}")).unwrap_or_default()
        );
    }
    Ok(out)
}

/// A version (default the newest) with the checks per control, as text or
/// JSON.
pub async fn show(
    cfg: &CollectorConfig,
    version: Option<i64>,
    json: bool,
) -> Result<String, CommandError> {
    let packs = packs(cfg)?;
    let store = open_store(cfg).await?;
    let v = newest_or(store.as_ref(), version).await?;
    let (meta, soa, _) = crate::soa::load(store.as_ref(), v).await?;
    let shown = crate::soa::show(meta, &soa, &packs);
    Ok(if json {
        format!("{}\n", to_json(&shown))
    } else {
        shown.to_string()
    })
}

/// A version (default the newest) as imported (`source`), or as TOML or CSV.
pub async fn export(
    cfg: &CollectorConfig,
    version: Option<i64>,
    format: &str,
) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let v = newest_or(store.as_ref(), version).await?;
    let (_, soa, source) = crate::soa::load(store.as_ref(), v).await?;
    match format {
        "source" => Ok(source),
        "toml" => Ok(soa.to_toml()),
        "csv" => Ok(soa.to_csv()),
        other => Err(CommandError::Usage(format!(
            "--format is `{other}`; expected source, toml or csv"
        ))),
    }
}

/// What changed between two versions, as text or JSON.
pub async fn diff(
    cfg: &CollectorConfig,
    from: i64,
    to: i64,
    json: bool,
) -> Result<String, CommandError> {
    let store = open_store(cfg).await?;
    let (_, a, _) = crate::soa::load(store.as_ref(), from).await?;
    let (_, b, _) = crate::soa::load(store.as_ref(), to).await?;
    let d = annexa_checks::soa::diff::diff(&a, &b);
    Ok(if json {
        format!("{}\n", to_json(&d))
    } else {
        d.to_string()
    })
}

fn to_json(v: &impl serde::Serialize) -> String {
    // Plain data (strings, numbers, maps with string keys): serialising it
    // cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

async fn newest_or(store: &dyn Store, v: Option<i64>) -> Result<i64, CommandError> {
    match v {
        Some(v) => Ok(v),
        None => crate::soa::newest(store).await?.ok_or_else(|| {
            CommandError::Usage("no Statement of Applicability has been imported yet".into())
        }),
    }
}
