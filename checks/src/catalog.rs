//! The ISO/IEC 27001 Annex A control catalog of the 2005, 2013 and 2022
//! editions, and the crosswalks between them.
//!
//! The data is compiled in from `checks/data/*.csv` (see its README for the
//! sources) and parsed once on first use. Lookups never touch the file system.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::ids::ControlId;

/// An edition of ISO/IEC 27001 whose Annex A annexa knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Edition {
    /// ISO/IEC 27001:2005, 133 controls in 11 clauses (A.5–A.15).
    #[serde(rename = "2005")]
    E2005,
    /// ISO/IEC 27001:2013, 114 controls in 14 clauses (A.5–A.18).
    #[serde(rename = "2013")]
    E2013,
    /// ISO/IEC 27001:2022, 93 controls in 4 themes (5–8).
    #[serde(rename = "2022")]
    E2022,
}

impl Edition {
    /// All editions, oldest first.
    pub const ALL: [Edition; 3] = [Edition::E2005, Edition::E2013, Edition::E2022];

    /// The year as it is written in IDs of files and on the command line.
    pub fn year(self) -> &'static str {
        match self {
            Edition::E2005 => "2005",
            Edition::E2013 => "2013",
            Edition::E2022 => "2022",
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.year())
    }
}

impl FromStr for Edition {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_start_matches("ISO/IEC 27001:") {
            "2005" => Ok(Edition::E2005),
            "2013" => Ok(Edition::E2013),
            "2022" => Ok(Edition::E2022),
            other => Err(CatalogError::UnknownEdition(other.to_string())),
        }
    }
}

/// A control of one edition's Annex A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// The edition the control belongs to.
    pub edition: Edition,
    /// Canonical identifier: `A.11.5.5` (2005, 2013) or `8.5` (2022).
    pub id: ControlId,
    /// The control's short title.
    pub title: String,
    /// 2005/2013: the control objective (`A.11.5`); 2022: the theme (`8`).
    pub group_id: String,
    /// Title of the control objective or theme.
    pub group_title: String,
    /// 2005/2013: the clause (`A.11`); 2022: the theme again.
    pub clause_id: String,
    /// Title of the clause.
    pub clause_title: String,
}

/// How a 2005 control relates to its 2013 successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Carried over, maybe renamed.
    Same,
    /// Folded into the successor.
    Merged,
    /// No longer a control; the successor's guidance covers it.
    Nearest,
    /// Control present in 2013 (or 2022) with a direct counterpart.
    Direct,
}

/// One crosswalk edge from a control of one edition to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The control the edge leads to.
    pub to: Control,
    /// How strong the link is.
    pub relation: Relation,
}

/// Errors of catalog lookups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The edition is not one of 2005, 2013, 2022.
    #[error("unknown ISO/IEC 27001 edition `{0}` (expected 2005, 2013 or 2022)")]
    UnknownEdition(String),
    /// No control with that ID in that edition.
    #[error("{}", unknown_control_message(.id, *.edition, .suggestions))]
    UnknownControl {
        /// The ID as given.
        id: String,
        /// The edition it was looked up in.
        edition: Edition,
        /// The closest existing IDs, best first.
        suggestions: Vec<String>,
    },
    /// The ID exists in no edition at all.
    #[error("`{id}` is not an Annex A control of ISO/IEC 27001:2005, 2013 or 2022{}", suggest_suffix(.suggestions))]
    UnknownAnywhere {
        /// The ID as given.
        id: String,
        /// Close IDs across editions (`2005 A.11.5.5`).
        suggestions: Vec<String>,
    },
}

fn unknown_control_message(id: &str, edition: Edition, suggestions: &[String]) -> String {
    format!(
        "`{id}` is not a control of ISO/IEC 27001:{edition} Annex A{}",
        suggest_suffix(suggestions)
    )
}

fn suggest_suffix(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", suggestions.join(", "))
    }
}

/// The three editions' controls and the crosswalks between them.
#[derive(Debug)]
pub struct Catalog {
    controls: BTreeMap<Edition, Vec<Control>>,
    /// 2005 → 2013 edges, from the 2005 control's id.
    forward_2005: BTreeMap<String, Vec<(String, Relation)>>,
    /// 2013 → 2022 edges.
    forward_2013: BTreeMap<String, Vec<String>>,
}

static CATALOG: OnceLock<Catalog> = OnceLock::new();

const CSV_2005: &str = include_str!("../data/iso27001-2005.csv");
const CSV_2013: &str = include_str!("../data/iso27001-2013.csv");
const CSV_2022: &str = include_str!("../data/iso27001-2022.csv");
const CSV_2005_2013: &str = include_str!("../data/crosswalk-2005-2013.csv");
const CSV_2013_2022: &str = include_str!("../data/crosswalk-2013-2022.csv");

/// The compiled-in catalog.
pub fn catalog() -> &'static Catalog {
    CATALOG.get_or_init(Catalog::load_embedded)
}

fn rows(data: &str) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_reader(data.as_bytes());
    reader
        .records()
        // The embedded CSVs are fixed at build time and covered by the
        // catalog tests (counts, every row well-formed), so a bad row here is
        // a build defect, not input.
        .map(|r| {
            r.expect("embedded catalog CSV is well-formed")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

impl Catalog {
    fn load_embedded() -> Catalog {
        let mut controls = BTreeMap::new();
        for (edition, data) in [(Edition::E2005, CSV_2005), (Edition::E2013, CSV_2013)] {
            let list = rows(data)
                .into_iter()
                .map(|r| Control {
                    edition,
                    id: ControlId::new(&r[0]),
                    title: r[1].clone(),
                    group_id: r[2].clone(),
                    group_title: r[3].clone(),
                    clause_id: r[4].clone(),
                    clause_title: r[5].clone(),
                })
                .collect();
            controls.insert(edition, list);
        }
        let list_2022 = rows(CSV_2022)
            .into_iter()
            .map(|r| Control {
                edition: Edition::E2022,
                id: ControlId::new(&r[0]),
                title: r[1].clone(),
                group_id: r[2].clone(),
                group_title: r[3].clone(),
                clause_id: r[2].clone(),
                clause_title: r[3].clone(),
            })
            .collect();
        controls.insert(Edition::E2022, list_2022);

        let mut forward_2005: BTreeMap<String, Vec<(String, Relation)>> = BTreeMap::new();
        for r in rows(CSV_2005_2013) {
            let relation = match r[2].as_str() {
                "same" => Relation::Same,
                "merged" => Relation::Merged,
                "nearest" => Relation::Nearest,
                _ => continue, // `removed`: no successor
            };
            if !r[1].is_empty() {
                forward_2005
                    .entry(r[0].clone())
                    .or_default()
                    .push((r[1].clone(), relation));
            }
        }
        let mut forward_2013: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in rows(CSV_2013_2022) {
            forward_2013
                .entry(r[0].clone())
                .or_default()
                .push(r[1].clone());
        }
        Catalog {
            controls,
            forward_2005,
            forward_2013,
        }
    }

    /// Every control of an edition, in the standard's order.
    pub fn controls(&self, edition: Edition) -> &[Control] {
        self.controls
            .get(&edition)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Brings an ID into canonical form for an edition: `a.11.5.5` and
    /// `11.5.5` become `A.11.5.5`; `A.8.5` becomes `8.5` in 2022.
    pub fn normalize(edition: Edition, id: &str) -> ControlId {
        let trimmed = id.trim();
        let bare = trimmed
            .strip_prefix("A.")
            .or_else(|| trimmed.strip_prefix("a."))
            .unwrap_or(trimmed);
        match edition {
            Edition::E2022 => ControlId::new(bare),
            Edition::E2005 | Edition::E2013 => ControlId::new(format!("A.{bare}")),
        }
    }

    /// Looks up a control; an unknown ID is an error naming the edition and
    /// the closest IDs.
    pub fn control(&self, edition: Edition, id: &str) -> Result<&Control, CatalogError> {
        let canonical = Self::normalize(edition, id);
        self.controls(edition)
            .iter()
            .find(|c| c.id == canonical)
            .ok_or_else(|| CatalogError::UnknownControl {
                id: id.trim().to_string(),
                edition,
                suggestions: self.closest(edition, canonical.as_str(), 3),
            })
    }

    /// The editions in which an ID names a control, oldest first.
    pub fn editions_of(&self, id: &str) -> Vec<Edition> {
        Edition::ALL
            .into_iter()
            .filter(|&e| self.control(e, id).is_ok())
            .collect()
    }

    /// Resolves an ID without an edition: the oldest edition that has it.
    /// Returns every edition that has it so callers can warn on ambiguity.
    pub fn resolve_any(&self, id: &str) -> Result<(&Control, Vec<Edition>), CatalogError> {
        let editions = self.editions_of(id);
        match editions.first() {
            Some(&first) => Ok((self.control(first, id)?, editions)),
            None => {
                let mut suggestions = Vec::new();
                for e in Edition::ALL {
                    let canonical = Self::normalize(e, id);
                    for s in self.closest(e, canonical.as_str(), 2) {
                        suggestions.push(format!("{s} ({e})"));
                    }
                }
                Err(CatalogError::UnknownAnywhere {
                    id: id.trim().to_string(),
                    suggestions,
                })
            }
        }
    }

    fn closest(&self, edition: Edition, canonical: &str, n: usize) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .controls(edition)
            .iter()
            .map(|c| {
                // Shared leading components matter more than raw edit
                // distance: A.11.5.9 is "near" A.11.5.5, not A.11.3.9.
                let prefix = common_components(canonical, c.id.as_str()) as f64;
                let sim = strsim::normalized_levenshtein(canonical, c.id.as_str());
                (prefix + sim, c.id.as_str())
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(n)
            .map(|(_, id)| id.to_string())
            .collect()
    }

    /// The controls of `to` that `control` maps onto through the crosswalks,
    /// with the weakest relation met along the way.
    ///
    /// Forward (older → newer) follows every edge including `nearest`;
    /// backward follows only `same`/`merged` 2005 edges, because reading a
    /// `nearest` link backwards would attribute evidence to controls it was
    /// never about.
    pub fn map(&self, control: &Control, to: Edition) -> Vec<Mapping> {
        let mut out: BTreeMap<String, Relation> = BTreeMap::new();
        for (id, rel) in self.map_ids(control.edition, control.id.as_str(), to) {
            let slot = out.entry(id).or_insert(rel);
            if weaker(rel, *slot) {
                *slot = rel;
            }
        }
        out.into_iter()
            .filter_map(|(id, relation)| {
                self.control(to, &id).ok().map(|c| Mapping {
                    to: c.clone(),
                    relation,
                })
            })
            .collect()
    }

    fn map_ids(&self, from: Edition, id: &str, to: Edition) -> Vec<(String, Relation)> {
        use Edition::*;
        match (from, to) {
            (a, b) if a == b => vec![(id.to_string(), Relation::Same)],
            (E2005, E2013) => self.forward_2005.get(id).cloned().unwrap_or_default(),
            (E2013, E2022) => self
                .forward_2013
                .get(id)
                .map(|v| v.iter().map(|t| (t.clone(), Relation::Direct)).collect())
                .unwrap_or_default(),
            (E2005, E2022) => self
                .map_ids(E2005, id, E2013)
                .into_iter()
                .flat_map(|(mid, rel)| {
                    self.map_ids(E2013, &mid, E2022)
                        .into_iter()
                        .map(move |(t, _)| (t, rel))
                })
                .collect(),
            (E2013, E2005) => self
                .forward_2005
                .iter()
                .flat_map(|(from_id, edges)| {
                    edges
                        .iter()
                        .filter(|(t, rel)| t == id && *rel != Relation::Nearest)
                        .map(move |(_, rel)| (from_id.clone(), *rel))
                })
                .collect(),
            (E2022, E2013) => self
                .forward_2013
                .iter()
                .filter(|(_, targets)| targets.iter().any(|t| t == id))
                .map(|(from_id, _)| (from_id.clone(), Relation::Direct))
                .collect(),
            (E2022, E2005) => self
                .map_ids(E2022, id, E2013)
                .into_iter()
                .flat_map(|(mid, _)| self.map_ids(E2013, &mid, E2005))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Maps a set of control IDs of one edition to another edition
    /// (deduplicated, in catalog order).
    pub fn map_set(&self, from: Edition, ids: &[ControlId], to: Edition) -> Vec<ControlId> {
        let mut set = BTreeSet::new();
        for id in ids {
            if let Ok(c) = self.control(from, id.as_str()) {
                for m in self.map(c, to) {
                    set.insert(m.to.id);
                }
            }
        }
        self.controls(to)
            .iter()
            .filter(|c| set.contains(&c.id))
            .map(|c| c.id.clone())
            .collect()
    }
}

fn common_components(a: &str, b: &str) -> usize {
    a.split('.')
        .zip(b.split('.'))
        .take_while(|(x, y)| x == y)
        .count()
}

fn weaker(a: Relation, b: Relation) -> bool {
    let rank = |r| match r {
        Relation::Same | Relation::Direct => 0,
        Relation::Merged => 1,
        Relation::Nearest => 2,
    };
    rank(a) > rank(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editions_have_their_published_control_counts() {
        let c = catalog();
        assert_eq!(c.controls(Edition::E2005).len(), 133);
        assert_eq!(c.controls(Edition::E2013).len(), 114);
        assert_eq!(c.controls(Edition::E2022).len(), 93);
    }

    #[test]
    fn control_ids_are_unique_within_an_edition() {
        for e in Edition::ALL {
            let ids: BTreeSet<_> = catalog().controls(e).iter().map(|c| &c.id).collect();
            assert_eq!(ids.len(), catalog().controls(e).len(), "{e}");
        }
    }

    #[test]
    fn edition_2005_spans_a5_to_a15_and_2013_spans_a5_to_a18() {
        let clauses = |e| {
            catalog()
                .controls(e)
                .iter()
                .map(|c| c.clause_id.clone())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(clauses(Edition::E2005).len(), 11);
        assert_eq!(clauses(Edition::E2013).len(), 14);
        let themes: Vec<_> = ["5", "6", "7", "8"]
            .iter()
            .map(|t| {
                catalog()
                    .controls(Edition::E2022)
                    .iter()
                    .filter(|c| c.group_id == *t)
                    .count()
            })
            .collect();
        assert_eq!(themes, vec![37, 8, 14, 34]);
    }

    #[test]
    fn session_timeout_maps_to_secure_logon_and_secure_authentication() {
        let c = catalog();
        let st = c.control(Edition::E2005, "A.11.5.5").unwrap();
        assert_eq!(st.title, "Session time-out");
        let to2013 = c.map(st, Edition::E2013);
        assert_eq!(to2013.len(), 1);
        assert_eq!(to2013[0].to.id, "A.9.4.2");
        assert_eq!(to2013[0].relation, Relation::Nearest);
        let to2022 = c.map(st, Edition::E2022);
        assert_eq!(to2022[0].to.id, "8.5");
        assert_eq!(to2022[0].to.title, "Secure authentication");
        assert_eq!(to2022[0].relation, Relation::Nearest);
    }

    #[test]
    fn crosswalk_examples_from_the_catalog_notes() {
        let c = catalog();
        let chain = |id: &str| {
            let ctl = c.control(Edition::E2005, id).unwrap();
            let m13 = c.map(ctl, Edition::E2013);
            let m22 = c.map(ctl, Edition::E2022);
            (
                m13.into_iter().map(|m| m.to.id).collect::<Vec<_>>(),
                m22.into_iter().map(|m| m.to.id).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            chain("A.10.10.6"),
            (vec!["A.12.4.4".into()], vec!["8.17".into()])
        );
        assert_eq!(
            chain("A.10.10.1"),
            (vec!["A.12.4.1".into()], vec!["8.15".into()])
        );
        assert_eq!(
            chain("A.12.6.1"),
            (vec!["A.12.6.1".into()], vec!["8.8".into()])
        );
        assert_eq!(
            chain("A.11.2.2"),
            (vec!["A.9.2.3".into()], vec!["8.2".into()])
        );
        assert_eq!(
            chain("A.10.4.1"),
            (vec!["A.12.2.1".into()], vec!["8.7".into()])
        );
        assert_eq!(
            chain("A.7.1.1"),
            (vec!["A.8.1.1".into()], vec!["5.9".into()])
        );
        assert_eq!(
            chain("A.10.3.1"),
            (vec!["A.12.1.3".into()], vec!["8.6".into()])
        );
    }

    #[test]
    fn a18_2_3_maps_to_two_2022_controls() {
        let c = catalog();
        let ctl = c.control(Edition::E2013, "A.18.2.3").unwrap();
        let ids: Vec<_> = c
            .map(ctl, Edition::E2022)
            .into_iter()
            .map(|m| m.to.id)
            .collect();
        assert_eq!(ids, vec!["5.36".to_string(), "8.8".to_string()]);
    }

    #[test]
    fn backward_mapping_skips_nearest_links() {
        let c = catalog();
        let ctl = c.control(Edition::E2013, "A.9.4.2").unwrap();
        let ids: Vec<_> = c
            .map(ctl, Edition::E2005)
            .into_iter()
            .map(|m| m.to.id)
            .collect();
        assert!(ids.contains(&ControlId::from("A.11.5.1")), "{ids:?}");
        assert!(!ids.contains(&ControlId::from("A.11.5.5")), "{ids:?}");
    }

    #[test]
    fn every_2013_control_maps_forward_and_2022_new_controls_have_no_predecessor() {
        let c = catalog();
        for ctl in c.controls(Edition::E2013) {
            assert!(!c.map(ctl, Edition::E2022).is_empty(), "{}", ctl.id);
        }
        let new_2022 = [
            "5.7", "5.23", "5.30", "7.4", "8.9", "8.10", "8.11", "8.12", "8.16", "8.23", "8.28",
        ];
        for id in new_2022 {
            let ctl = c.control(Edition::E2022, id).unwrap();
            assert!(c.map(ctl, Edition::E2013).is_empty(), "{id}");
        }
    }

    #[test]
    fn ids_are_normalized() {
        let c = catalog();
        assert_eq!(
            c.control(Edition::E2005, "a.11.5.5").unwrap().id,
            "A.11.5.5"
        );
        assert_eq!(c.control(Edition::E2005, "11.5.5").unwrap().id, "A.11.5.5");
        assert_eq!(c.control(Edition::E2022, "A.8.5").unwrap().id, "8.5");
    }

    #[test]
    fn unknown_control_names_edition_and_suggests_neighbours() {
        let err = catalog().control(Edition::E2005, "A.11.5.9").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ISO/IEC 27001:2005"), "{msg}");
        assert!(msg.contains("closest: A.11.5."), "{msg}");
        match err {
            CatalogError::UnknownControl { suggestions, .. } => {
                assert!(
                    suggestions.iter().all(|s| s.starts_with("A.11.5.")),
                    "{suggestions:?}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn resolve_any_prefers_the_oldest_edition_and_reports_ambiguity() {
        let (ctl, editions) = catalog().resolve_any("A.12.6.1").unwrap();
        assert_eq!(ctl.edition, Edition::E2005);
        assert_eq!(editions, vec![Edition::E2005, Edition::E2013]);
        assert!(catalog().resolve_any("Z.1").is_err());
    }

    #[test]
    fn unknown_edition_is_an_error() {
        assert!("2017".parse::<Edition>().is_err());
        assert_eq!(
            "ISO/IEC 27001:2013".parse::<Edition>().unwrap(),
            Edition::E2013
        );
    }
}
