//! The reference of a set of packs as Markdown: every check with its
//! controls in the three editions, what it reads (its probe as the pack
//! writes it), its parameters, platforms and the condition it applies
//! under; the parameters with their defaults; and which controls of each
//! edition's Annex A the checks give evidence for. docs/checks.md is this
//! for the built-in packs (a test keeps it current); `annexa checks
//! reference` prints it for the packs a host loads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::catalog::{Edition, catalog};
use crate::pack::{Check, PackSet};

/// Markdown-safe text for a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    if s.is_empty() {
        return "(empty)".into();
    }
    // A backtick run longer than any inside keeps the span intact.
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", cell(s))
}

/// The controls of `edition` that at least one check gives evidence for.
pub fn covered(set: &PackSet, edition: Edition) -> BTreeSet<String> {
    set.checks()
        .flat_map(|c| c.controls.get(&edition).into_iter().flatten())
        .map(|id| id.as_str().to_string())
        .collect()
}

fn controls(c: &Check, e: Edition) -> String {
    c.controls
        .get(&e)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.iter()
                .map(|id| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "—".into())
}

/// The reference of `set`, titled `title`.
pub fn markdown(set: &PackSet, title: &str) -> String {
    let mut out = String::new();
    let checks: Vec<&Check> = set.checks().collect();
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(
        out,
        "Generated from the packs by `annexa checks reference`; do not edit by hand. \
         {} checks in {} packs. A check's probe is shown as the pack writes it; \
         docs/pack-format.md says what each probe kind reads. Controls written in \
         the pack are marked \\*; the others are derived through the crosswalks.\n",
        checks.len(),
        set.packs.len()
    );

    let _ = writeln!(out, "## Coverage\n");
    let _ = writeln!(
        out,
        "| edition | clause or theme | controls with automated evidence | of |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for e in [Edition::E2022, Edition::E2013, Edition::E2005] {
        let cov = covered(set, e);
        let mut by_group: BTreeMap<String, (String, usize, Vec<String>)> = BTreeMap::new();
        for c in catalog().controls(e) {
            let g = by_group
                .entry(c.clause_id.clone())
                .or_insert_with(|| (c.clause_title.clone(), 0, Vec::new()));
            g.1 += 1;
            if cov.contains(c.id.as_str()) {
                g.2.push(c.id.as_str().to_string());
            }
        }
        let mut groups: Vec<_> = by_group.into_iter().collect();
        groups.sort_by_key(|a| natural(&a.0));
        for (gid, (gtitle, total, ids)) in groups {
            if ids.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {e} | {gid} {} | {} ({}) | {total} |",
                cell(&gtitle),
                ids.len(),
                ids.join(", ")
            );
        }
    }
    out.push('\n');

    let _ = writeln!(out, "## Parameters\n");
    let _ = writeln!(
        out,
        "Set per control in the SoA (`params = {{ NAME = VALUE }}`, docs/soa.md) or for one scan with `annexa scan --param NAME=VALUE`.\n"
    );
    let _ = writeln!(out, "| parameter | default | pack | meaning |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for (name, (decl, pack)) in &set.params {
        let _ = writeln!(
            out,
            "| `{name}` | {} | {pack} | {} |",
            code(&decl.default.to_string()),
            cell(&decl.description)
        );
    }
    out.push('\n');

    for pack in &set.packs {
        let _ = writeln!(out, "## {} — {}\n", pack.reference.id, cell(&pack.title));
        if !pack.description.is_empty() {
            let _ = writeln!(out, "{}\n", pack.description);
        }
        let _ = writeln!(
            out,
            "| check | severity | 2022 | 2013 | 2005 | platforms | parameters |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
        for c in &pack.checks {
            let mark = |e: Edition| {
                let s = controls(c, e);
                if c.declared.contains(&e) {
                    format!("{s}\\*")
                } else {
                    s
                }
            };
            let platforms = if c.platforms.is_empty() {
                "all".to_string()
            } else {
                c.platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let params = c.param_names();
            let _ = writeln!(
                out,
                "| [`{}`](#{}) {} | {} | {} | {} | {} | {} | {} |",
                c.id,
                anchor(c.id.as_str()),
                cell(&c.title),
                c.severity.as_str(),
                mark(Edition::E2022),
                mark(Edition::E2013),
                mark(Edition::E2005),
                platforms,
                if params.is_empty() {
                    "—".into()
                } else {
                    params.join(", ")
                }
            );
        }
        out.push('\n');
        for c in &pack.checks {
            let _ = writeln!(out, "### {}\n", c.id);
            let _ = writeln!(out, "{}. {}\n", cell(&c.title), c.rationale);
            if let Some(a) = &c.applies_if {
                let mut what = Vec::new();
                if !a.packages.is_empty() {
                    what.push(format!("one of the packages {}", a.packages.join(", ")));
                }
                if !a.paths.is_empty() {
                    what.push(format!("one of {}", a.paths.join(", ")));
                }
                let _ = writeln!(
                    out,
                    "- Applies where the host has {}; elsewhere not applicable: “{}”.",
                    what.join(" or "),
                    a.otherwise
                );
            }
            for v in &c.variants {
                let sel = v
                    .platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(out, "- Reads on {sel}: {}", code(&v.probe_text));
            }
            if let Some(p) = &c.probe_text {
                let on = if c.variants.is_empty() {
                    "Reads"
                } else {
                    "Reads elsewhere"
                };
                let _ = writeln!(out, "- {on}: {}", code(p));
            }
            let _ = writeln!(out, "- Remediation: {}\n", c.remediation);
        }
    }
    out
}

/// A heading's anchor as GitHub renders it: lower case, dots dropped.
fn anchor(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_lowercase()
}

/// `A.10` after `A.9`, `8` after `7`.
fn natural(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}
