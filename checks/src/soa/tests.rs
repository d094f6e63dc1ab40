use super::csv::parse_csv;
use super::diff::diff;
use super::*;

const E2005: &str = include_str!("../../../examples/soa/iso27001-2005.toml");
const E2013: &str = include_str!("../../../examples/soa/iso27001-2013.toml");
const E2022: &str = include_str!("../../../examples/soa/iso27001-2022.toml");

fn packs() -> PackSet {
    PackSet::load(true, &[], true).expect("built-in packs")
}

fn lint_toml(text: &str) -> Result<Soa, SoaErrors> {
    lint("soa.toml", text, Format::Toml, &packs())
}

/// The 2022 example with one control's block replaced.
fn edit(id: &str, block: &str) -> String {
    let start = E2022
        .find(&format!("[[control]]\nid = \"{id}\""))
        .expect("control in example");
    let end = E2022[start + 1..]
        .find("[[control]]")
        .map_or(E2022.len(), |i| start + 1 + i);
    format!("{}{}{}", &E2022[..start], block, &E2022[end..])
}

fn messages(e: &SoaErrors) -> Vec<String> {
    e.0.iter().map(ToString::to_string).collect()
}

#[test]
fn the_examples_of_every_edition_lint_cleanly() {
    for (text, edition, n) in [
        (E2005, Edition::E2005, 133),
        (E2013, Edition::E2013, 114),
        (E2022, Edition::E2022, 93),
    ] {
        let soa = lint_toml(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(soa.edition, edition);
        assert_eq!(soa.controls.len(), n);
        assert!(soa.controls.iter().any(|c| !c.applicable));
    }
}

#[test]
fn a_missing_control_is_named() {
    let text = edit("8.5", "");
    let e = lint_toml(&text).unwrap_err();
    let m = messages(&e).join("\n");
    assert!(m.contains("1 of the 93 controls"), "{m}");
    assert!(m.contains(": 8.5"), "{m}");
}

#[test]
fn a_duplicate_control_is_reported_with_both_lines() {
    let text = format!(
        "{E2022}\n[[control]]\nid = \"5.1\"\napplicable = true\njustification = \"x\"\nowner = \"o\"\nstatus = \"implemented\"\n"
    );
    let e = lint_toml(&text).unwrap_err();
    let p = &e.0[0];
    assert!(p.message.contains("listed twice (first on line 14)"), "{p}");
    assert_eq!(p.line, Some(text.lines().count() - 4));
}

#[test]
fn unknown_ids_get_suggestions_and_their_line() {
    let text = E2022.replacen("id = \"5.37\"", "id = \"5.38\"", 1);
    let e = lint_toml(&text).unwrap_err();
    let m = messages(&e).join("\n");
    assert!(
        m.contains("`5.38` is not a control of ISO/IEC 27001:2022"),
        "{m}"
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("id = \"5.38\""))
        .unwrap()
        + 1;
    assert!(
        m.contains(&format!("soa.toml:{line}: control[5.38]")),
        "{m}"
    );
}

#[test]
fn justifications_owners_and_status_are_required() {
    let text = edit(
        "5.2",
        "[[control]]\nid = \"5.2\"\napplicable = true\njustification = \"  \"\n\n",
    );
    let text = edit_in(
        &text,
        "5.3",
        "[[control]]\nid = \"5.3\"\napplicable = false\n\n",
    );
    let m = messages(&lint_toml(&text).unwrap_err()).join("\n");
    assert!(
        m.contains(
            "control[5.2].justification: an applicable control needs the reason for its selection"
        ),
        "{m}"
    );
    assert!(m.contains("control[5.2].owner"), "{m}");
    assert!(m.contains("control[5.2].status"), "{m}");
    assert!(
        m.contains("control[5.3].justification: an excluded control needs the justification"),
        "{m}"
    );
}

fn edit_in(base: &str, id: &str, block: &str) -> String {
    let start = base.find(&format!("[[control]]\nid = \"{id}\"")).unwrap();
    let end = base[start + 1..]
        .find("[[control]]")
        .map_or(base.len(), |i| start + 1 + i);
    format!("{}{}{}", &base[..start], block, &base[end..])
}

#[test]
fn checks_and_params_must_exist_and_agree() {
    let text = edit(
        "8.5",
        "[[control]]\nid = \"8.5\"\napplicable = true\njustification = \"j\"\nowner = \"o\"\nstatus = \"implemented\"\nextra_checks = [\"ssh.permit-root-logn\"]\nparams = { session_timeout_seconds = 600, session_timout = 5 }\n\n",
    );
    let text = edit_in(
        &text,
        "8.2",
        "[[control]]\nid = \"8.2\"\napplicable = true\njustification = \"j\"\nowner = \"o\"\nstatus = \"implemented\"\nparams = { session_timeout_seconds = 300, password_max_days = \"long\" }\n\n",
    );
    let m = messages(&lint_toml(&text).unwrap_err()).join("\n");
    assert!(
        m.contains(
            "no loaded pack has a check `ssh.permit-root-logn`; closest: ssh.permit-root-login"
        ),
        "{m}"
    );
    assert!(
        m.contains("no loaded pack declares a parameter `session_timout`"),
        "{m}"
    );
    assert!(
        m.contains("`password_max_days` takes a whole number, got `long`"),
        "{m}"
    );
    assert!(
        m.contains("sets `session_timeout_seconds` to 300, this control to 600"),
        "{m}"
    );
}

#[test]
fn an_exclusion_cannot_carry_checks() {
    let text = edit(
        "8.30",
        "[[control]]\nid = \"8.30\"\napplicable = false\njustification = \"none outsourced\"\nextra_checks = [\"ssh.banner\"]\n\n",
    );
    let m = messages(&lint_toml(&text).unwrap_err()).join("\n");
    assert!(
        m.contains("an excluded control cannot have extra_checks"),
        "{m}"
    );
}

#[test]
fn malformed_toml_names_the_line() {
    let e = lint_toml("[soa]\nedition = \"2022\"\n[[control]]\nid = 5\n").unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, Some(4), "{}", e.0[0]);
    let e = lint_toml("[soa]\nedition = \"2019\"\n").unwrap_err();
    assert!(
        e.0[0]
            .to_string()
            .contains("soa.toml:2: soa.edition: unknown ISO/IEC 27001 edition `2019`"),
        "{}",
        e.0[0]
    );
}

#[test]
fn toml_and_csv_round_trip() {
    let soa = lint_toml(E2005).unwrap();
    let again = parse_toml("x.toml", &soa.to_toml()).unwrap();
    assert_eq!(strip_lines(&again), strip_lines(&soa));
    let csv = soa.to_csv();
    assert!(csv.starts_with("edition,control,title,applicable"));
    let from_csv = lint("x.csv", &csv, Format::Csv, &packs()).unwrap();
    let mut expected = strip_lines(&soa);
    expected.organisation = None;
    expected.title = None;
    expected.freshness_seconds = None;
    assert_eq!(strip_lines(&from_csv), expected);
}

fn strip_lines(s: &Soa) -> Soa {
    let mut s = s.clone();
    for c in &mut s.controls {
        c.line = 0;
    }
    s
}

#[test]
fn csv_problems_name_the_row() {
    let csv = lint_toml(E2013).unwrap().to_csv();
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    lines[3] = lines[3].replacen(",yes,", ",maybe,", 1);
    lines[5] = lines[5].replacen("2013,", "2022,", 1);
    let e = lint("soa.csv", &lines.join("\n"), Format::Csv, &packs()).unwrap_err();
    let m = messages(&e).join("\n");
    assert_eq!(e.0.len(), 2, "{m}");
    assert!(
        m.contains("soa.csv:4: control[A.6.1.1].applicable: `maybe` is not yes or no"),
        "{m}"
    );
    assert!(
        m.contains("soa.csv:6: control[A.6.1.3].edition: `2022` differs from `2013` on line 2"),
        "{m}"
    );
    let e = parse_csv("soa.csv", "edition,control,colour\n").unwrap_err();
    assert!(
        messages(&e)
            .join("\n")
            .contains("soa.csv:1: colour: unknown column")
    );
}

#[test]
fn scope_selectors() {
    let s = Scope::parse_selector("env=prod; role = db|web").unwrap();
    assert_eq!(s.to_selector(), "env=prod;role=db|web");
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    assert!(s.matches(&labels(&[("env", "prod"), ("role", "web"), ("dc", "x")])));
    assert!(!s.matches(&labels(&[("env", "prod")])));
    assert!(!s.matches(&labels(&[("env", "test"), ("role", "db")])));
    assert!(Scope::default().matches(&labels(&[])));
    assert!(Scope::parse_selector("env").is_err());
    assert!(Scope::parse_selector("env=a;env=b").is_err());
}

#[test]
fn coverage_goes_through_the_crosswalk() {
    // The session checks are tagged A.11.5.5 (2005); a 2022 SoA gets them
    // under 8.5 through the crosswalk.
    let soa = lint_toml(E2022).unwrap();
    let cov = soa.coverage(&packs());
    let c = &cov["8.5"];
    assert!(
        c.checks.contains(&CheckId::from("session.shell-tmout")),
        "{c:?}"
    );
    assert_eq!(c.source, CheckSource::Mapped);
    assert!(cov["5.1"].is_manual());
    assert!(
        !cov.contains_key("8.30"),
        "excluded controls have no coverage"
    );
    let soa = lint_toml(E2005).unwrap();
    let cov = soa.coverage(&packs());
    assert!(cov["A.5.1.1"].is_manual());
    assert_eq!(cov["A.5.1.1"].source, CheckSource::Replaced);
    assert_eq!(cov["A.13.2.3"].source, CheckSource::MappedAndExtra);
    assert!(
        cov["A.13.2.3"]
            .checks
            .contains(&CheckId::from("audit.immutable"))
    );
    assert_eq!(
        soa.params().get("session_timeout_seconds"),
        Some(&ParamValue::Int(600))
    );
}

#[test]
fn diff_names_fields() {
    let a = lint_toml(E2022).unwrap();
    let text = edit(
        "8.30",
        "[[control]]\nid = \"8.30\"\napplicable = true\njustification = \"We now outsource.\"\nowner = \"Vendor manager\"\nstatus = \"planned\"\n\n",
    )
    .replacen("session_timeout_seconds = 600", "session_timeout_seconds = 300", 1);
    let b = lint_toml(&text).unwrap();
    let d = diff(&a, &b);
    let shown = d.to_string();
    assert!(
        shown.contains("~ 8.30\n    applicable: false -> true"),
        "{shown}"
    );
    assert!(
        shown.contains("params.session_timeout_seconds: 600 -> 300"),
        "{shown}"
    );
    assert!(diff(&a, &a).is_empty());
}
