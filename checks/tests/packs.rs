//! Pack loading: the built-in packs, and every way a pack can be wrong.

use std::collections::BTreeSet;

use annexa_checks::ControlId;
use annexa_checks::catalog::Edition;
use annexa_checks::pack::{PackOrigin, PackSet, parse_pack};

fn load_dir(files: &[(&str, &str)]) -> Result<PackSet, annexa_checks::pack::PackErrors> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    PackSet::load(false, &[dir.path().to_path_buf()], false)
}

const GOOD: &str = r#"
[pack]
id = "site"
title = "Site checks"
version = "1"

[params.limit]
default = 600
description = "x"

[[check]]
id = "site.tmout"
title = "t"
rationale = "r"
remediation = "m"
severity = "low"
controls = { "2005" = ["A.11.5.5"] }
probe = { kind = "shell_var", var = "TMOUT", expect = { at_most = { param = "limit" } } }
"#;

#[test]
fn builtin_packs_load_and_cover_the_required_controls() {
    let set = PackSet::load(true, &[], true).expect("built-in packs are valid");
    let checks: Vec<_> = set.checks().collect();
    assert!(checks.len() >= 40, "{} checks", checks.len());
    let covered: BTreeSet<&str> = checks
        .iter()
        .flat_map(|c| c.controls[&Edition::E2005].iter().map(ControlId::as_str))
        .collect();
    for control in [
        "A.10.10.1",
        "A.10.10.3",
        "A.10.10.4",
        "A.10.10.6",
        "A.12.6.1",
        "A.11.5.5",
        "A.11.5.1",
        "A.11.5.2",
        "A.11.5.3",
        "A.11.2.2",
        "A.10.4.1",
        "A.7.1.1",
        "A.10.3.1",
        "A.11.4.6",
    ] {
        assert!(covered.contains(control), "no check for {control}");
    }
    for c in &checks {
        for e in Edition::ALL {
            assert!(c.controls.contains_key(&e), "{} lacks edition {e}", c.id);
        }
        assert!(c.pack.digest.starts_with("sha256:") && c.pack.digest.len() == 71);
    }
}

#[test]
fn controls_are_derived_through_the_crosswalk_and_can_be_overridden() {
    let set = PackSet::load(true, &[], true).unwrap();
    let c = set.check("ssh.client-alive-interval").unwrap();
    assert_eq!(c.controls[&Edition::E2013], ["A.9.4.2"]);
    assert_eq!(c.controls[&Edition::E2022], ["8.5"]);
    assert_eq!(c.declared, [Edition::E2005]);
    let text = GOOD.replace(
        r#"controls = { "2005" = ["A.11.5.5"] }"#,
        r#"controls = { "2005" = ["A.11.5.5"], "2022" = ["8.16"] }"#,
    );
    let p = parse_pack("x.toml", PackOrigin::Builtin("x".into()), &text).unwrap();
    assert_eq!(p.checks[0].controls[&Edition::E2022], ["8.16"]);
    assert_eq!(p.checks[0].controls[&Edition::E2013], ["A.9.4.2"]);
}

#[test]
fn operator_packs_add_checks_and_parameters() {
    let set = load_dir(&[("site.toml", GOOD)]).unwrap();
    assert_eq!(set.checks().count(), 1);
    let mut o = std::collections::BTreeMap::new();
    o.insert("limit".to_string(), "300".to_string());
    assert_eq!(set.params_with(&o).unwrap().int("limit").unwrap(), 300);
    o.insert("limit".to_string(), "soon".to_string());
    assert!(set.params_with(&o).unwrap_err().contains("whole number"));
    let mut o = std::collections::BTreeMap::new();
    o.insert("nope".to_string(), "1".to_string());
    assert!(
        set.params_with(&o)
            .unwrap_err()
            .contains("unknown parameter `nope`")
    );
}

fn one_error(text: &str) -> String {
    let errs = load_dir(&[("bad.toml", text)]).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    errs.0[0].to_string()
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let e = one_error("[pack]\nid = \"x\"\ntitle = \n");
    assert!(e.contains("bad.toml:3:"), "{e}");
}

#[test]
fn unknown_fields_are_errors_with_their_line() {
    let e = one_error(&GOOD.replace(
        "severity = \"low\"",
        "severity = \"low\"\nseverity_typo = 1",
    ));
    assert!(e.contains("bad.toml:17"), "{e}");
    assert!(e.contains("severity_typo"), "{e}");
    let e = one_error(&GOOD.replace("var = \"TMOUT\"", "variable = \"TMOUT\""));
    assert!(e.contains("variable"), "{e}");
}

#[test]
fn bad_values_are_errors() {
    let e = one_error(&GOOD.replace("\"low\"", "\"severe\""));
    assert!(e.contains("severe") && e.contains("bad.toml:"), "{e}");
    let e = one_error(&GOOD.replace("shell_var", "shell_variable"));
    assert!(e.contains("shell_variable"), "{e}");
    let e = one_error(&GOOD.replace(
        r#"expect = { at_most = { param = "limit" } }"#,
        r#"expect = { matches = "([" }"#,
    ));
    assert!(e.contains("invalid regular expression"), "{e}");
}

#[test]
fn semantic_errors_name_the_check_and_field() {
    let e = one_error(&GOOD.replace("A.11.5.5", "A.11.5.9"));
    assert!(e.contains("check[site.tmout].controls.2005"), "{e}");
    assert!(
        e.contains("not a control of ISO/IEC 27001:2005") && e.contains("closest: A.11.5."),
        "{e}"
    );
    assert!(e.starts_with("") && e.contains("bad.toml:"), "{e}");
    let e = one_error(&GOOD.replace(r#"{ param = "limit" }"#, r#"{ param = "limits" }"#));
    assert!(e.contains("parameter `limits`"), "{e}");
    let e = one_error(&GOOD.replace(r#"controls = { "2005" = ["A.11.5.5"] }"#, "controls = {}"));
    assert!(e.contains("at least one edition"), "{e}");
    let e = one_error(&GOOD.replace("id = \"site.tmout\"", "id = \"Site TMOUT\""));
    assert!(e.contains("not a valid check id"), "{e}");
}

#[test]
fn duplicate_ids_are_errors_within_and_across_packs() {
    let dup = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[check]]").unwrap()..]);
    let e = one_error(&dup);
    assert!(
        e.contains("duplicate check id `site.tmout`") && e.contains("first defined on line"),
        "{e}"
    );
    let other = GOOD.replace("id = \"site\"", "id = \"site2\"");
    let errs = load_dir(&[("a.toml", GOOD), ("b.toml", &other)]).unwrap_err();
    assert!(
        errs.to_string()
            .contains("check id `site.tmout` is also defined in"),
        "{errs}"
    );
}

#[test]
fn nothing_is_half_loaded() {
    let errs = load_dir(&[("a.toml", GOOD), ("z.toml", "not toml at all [")]).unwrap_err();
    assert!(errs.to_string().contains("no pack was loaded"), "{errs}");
    assert!(errs.to_string().contains("z.toml"), "{errs}");
}

#[test]
fn conflicting_parameter_defaults_are_errors() {
    let other = GOOD
        .replace("id = \"site\"", "id = \"site2\"")
        .replace("site.tmout", "site2.tmout")
        .replace("default = 600", "default = 300");
    let errs = load_dir(&[("a.toml", GOOD), ("b.toml", &other)]).unwrap_err();
    assert!(
        errs.to_string()
            .contains("params.limit: default 300 differs"),
        "{errs}"
    );
}

#[test]
fn a_missing_pack_directory_is_an_error_unless_optional() {
    let missing = std::path::PathBuf::from("/nonexistent/annexa/checks.d");
    assert!(PackSet::load(false, std::slice::from_ref(&missing), false).is_err());
    assert!(PackSet::load(false, &[missing], true).is_ok());
}

/// docs/checks.md is the reference of the built-in packs; regenerate it
/// with `annexa checks reference > docs/checks.md` (or from this test's
/// output) after changing a pack.
#[test]
fn docs_checks_md_is_the_reference_of_the_builtin_packs() {
    let set = PackSet::load(true, &[], true).unwrap();
    let want = annexa_checks::reference::markdown(&set, "Checks");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/checks.md");
    let have = std::fs::read_to_string(path).unwrap_or_default();
    if have != want {
        if std::env::var_os("ANNEXA_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
            return;
        }
        panic!(
            "docs/checks.md is stale: run `annexa checks reference > docs/checks.md` \
             (or ANNEXA_BLESS=1 cargo test -p annexa-checks --test packs)"
        );
    }
}

/// What an auditor's report can show automated evidence for: at least 140
/// checks, 22 of the 34 technological controls of the 2022 edition, and
/// the organisational and physical controls a host can speak to.
#[test]
fn the_builtin_checks_cover_the_controls_a_host_can_evidence() {
    let set = PackSet::load(true, &[], true).unwrap();
    assert!(
        set.checks().count() >= 140,
        "{} checks",
        set.checks().count()
    );
    let covered = annexa_checks::reference::covered(&set, Edition::E2022);
    let technological: Vec<&String> = covered.iter().filter(|c| c.starts_with("8.")).collect();
    assert!(technological.len() >= 22, "{technological:?}");
    for control in [
        "8.1", "8.2", "8.3", "8.5", "8.6", "8.7", "8.8", "8.9", "8.10", "8.12", "8.13", "8.14",
        "8.15", "8.16", "8.17", "8.18", "8.19", "8.20", "8.21", "8.22", "8.24", "8.32", "5.9",
        "5.15", "5.16", "5.17", "5.18", "5.33", "7.10", "7.14",
    ] {
        assert!(
            covered.contains(control),
            "no check gives evidence for {control}"
        );
    }
}
