//! What changed between two SoA versions, field by field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::{Soa, SoaControl, format_duration};
use crate::ids::ControlId;

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field (`applicable`, `params.session_timeout_max`).
    pub field: String,
    /// Its value before (`-` when unset).
    pub before: String,
    /// Its value after.
    pub after: String,
}

/// How a control differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlDiff {
    /// The control.
    pub id: ControlId,
    /// Present only in the newer version.
    pub added: bool,
    /// Present only in the older version.
    pub removed: bool,
    /// Fields that differ (for a control in both).
    pub changes: Vec<FieldChange>,
}

/// The difference between two SoAs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoaDiff {
    /// Header fields that differ.
    pub header: Vec<FieldChange>,
    /// Controls that differ, in the newer version's order (removed ones last).
    pub controls: Vec<ControlDiff>,
}

impl SoaDiff {
    /// Whether the two are the same.
    pub fn is_empty(&self) -> bool {
        self.header.is_empty() && self.controls.is_empty()
    }
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

fn fields(c: &SoaControl) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("applicable".into(), c.applicable.to_string());
    m.insert("justification".into(), c.justification.clone());
    m.insert("owner".into(), c.owner.clone());
    m.insert("status".into(), opt(c.status));
    m.insert("scope".into(), c.scope.to_selector());
    m.insert(
        "checks".into(),
        c.checks.as_ref().map_or("(mapped)".into(), |v| {
            if v.is_empty() {
                "(none: manual)".into()
            } else {
                v.join(", ")
            }
        }),
    );
    m.insert("extra_checks".into(), c.extra_checks.join(", "));
    for (k, v) in &c.params {
        m.insert(format!("params.{k}"), v.to_string());
    }
    m.insert(
        "freshness".into(),
        opt(c.freshness_seconds.map(format_duration)),
    );
    m
}

fn changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<FieldChange> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let b = before.get(k).map_or("-", String::as_str);
            let a = after.get(k).map_or("-", String::as_str);
            (a != b).then(|| FieldChange {
                field: k.clone(),
                before: b.to_string(),
                after: a.to_string(),
            })
        })
        .collect()
}

/// Compares `old` with `new`.
pub fn diff(old: &Soa, new: &Soa) -> SoaDiff {
    let header = |s: &Soa| -> BTreeMap<String, String> {
        BTreeMap::from([
            ("edition".to_string(), s.edition.to_string()),
            ("organisation".to_string(), opt(s.organisation.as_ref())),
            ("title".to_string(), opt(s.title.as_ref())),
            (
                "freshness".to_string(),
                opt(s.freshness_seconds.map(format_duration)),
            ),
        ])
    };
    let olds: BTreeMap<&str, &SoaControl> =
        old.controls.iter().map(|c| (c.id.as_str(), c)).collect();
    let news: BTreeMap<&str, &SoaControl> =
        new.controls.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut controls = Vec::new();
    for c in &new.controls {
        match olds.get(c.id.as_str()) {
            None => controls.push(ControlDiff {
                id: c.id.clone(),
                added: true,
                removed: false,
                changes: Vec::new(),
            }),
            Some(o) => {
                let ch = changes(&fields(o), &fields(c));
                if !ch.is_empty() {
                    controls.push(ControlDiff {
                        id: c.id.clone(),
                        added: false,
                        removed: false,
                        changes: ch,
                    });
                }
            }
        }
    }
    for c in &old.controls {
        if !news.contains_key(c.id.as_str()) {
            controls.push(ControlDiff {
                id: c.id.clone(),
                added: false,
                removed: true,
                changes: Vec::new(),
            });
        }
    }
    SoaDiff {
        header: changes(&header(old), &header(new)),
        controls,
    }
}

impl fmt::Display for SoaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no differences");
        }
        for c in &self.header {
            writeln!(f, "soa.{}: {} -> {}", c.field, c.before, c.after)?;
        }
        for c in &self.controls {
            if c.added {
                writeln!(f, "+ {}", c.id)?;
            } else if c.removed {
                writeln!(f, "- {}", c.id)?;
            } else {
                writeln!(f, "~ {}", c.id)?;
                for ch in &c.changes {
                    writeln!(f, "    {}: {} -> {}", ch.field, ch.before, ch.after)?;
                }
            }
        }
        Ok(())
    }
}
