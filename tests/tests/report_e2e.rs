//! Evidence reports end to end: real agents' evidence in a real collector
//! over TLS, a signed report pulled by an auditor, verified offline by
//! `annexa verify report`, tampered with in every section (by a third
//! party, and by a collector that re-signs its lie), and rendered as HTML
//! (loaded in headless Chromium), OSCAL (validated against NIST's schema)
//! and CSV.

mod common;

use common::utf8 as s;

use std::path::{Path, PathBuf};
use std::process::Output;

use annexa_checks::conformity::State;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::note::Verifier;
use annexa_evidence::report::{self, Kind, Report, verify::verify};
use common::{Collector, Host, SOA_2013, marker_pack, show, soa_with_marker, stdout};
use serde_json::Value;

const OSCAL_SCHEMA: &str = include_str!("../schemas/oscal_assessment-results_schema-1.0.4.json");

struct Setup {
    c: Collector,
    prod: Host,
    dev: Host,
    marker: PathBuf,
    dir: tempfile::TempDir,
    token_file: PathBuf,
    key_file: PathBuf,
    verifier: Verifier,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let c = Collector::start_with(&common::collector_packs(&dir.path().join("packs"), &marker));
    let prod = Host::enrolled(&c, "[labels]\nenv = \"prod\"\n");
    let dev = Host::enrolled(&c, "[labels]\nenv = \"dev\"\n");
    for h in [&prod, &dev] {
        h.add_pack(&marker_pack(&marker));
    }
    let (key_file, token_file) = common::auditor_files(&c, dir.path());
    let verifier = Verifier::parse(std::fs::read_to_string(&key_file).unwrap().trim()).unwrap();
    Setup {
        c,
        prod,
        dev,
        marker,
        dir,
        token_file,
        key_file,
        verifier,
    }
}

impl Setup {
    fn pull(&self, name: &str, extra: &[&str]) -> (Output, PathBuf) {
        let out = self.dir.path().join(name);
        (
            common::pull_report(&self.c, &self.token_file, &out, extra),
            out,
        )
    }

    fn pull_ok(&self, name: &str, extra: &[&str]) -> (Vec<u8>, Report) {
        let (o, path) = self.pull(name, extra);
        assert_eq!(o.status.code(), Some(0), "report pull: {}", show(&o));
        let bytes = std::fs::read(&path).unwrap();
        let r = report::open(&bytes, &self.verifier.key).unwrap().report;
        (bytes, r)
    }

    fn verify_cli(&self, path: &Path) -> Output {
        common::annexa(&[
            "verify",
            "report",
            s(path),
            "--collector-key",
            s(&self.key_file),
        ])
    }

    fn collector_key(&self) -> SigningKey {
        let path = self.c.data.join("collector.key");
        SigningKey::from_pkcs8("collector.key", &std::fs::read(path).unwrap()).unwrap()
    }
}

fn control<'r>(r: &'r Report, id: &str) -> &'r report::ControlReport {
    r.controls
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no control {id} in the report"))
}

fn state_of(r: &Report, control_id: &str, agent: &str) -> State {
    control(r, control_id)
        .hosts
        .iter()
        .find(|h| h.agent == agent)
        .unwrap_or_else(|| panic!("no host {agent} under {control_id}"))
        .state
}

#[test]
fn a_report_is_signed_verified_offline_recomputed_and_rendered() {
    let t = setup();
    let c = &t.c;

    // Before an SoA exists there is nothing to report against.
    let r = c.request("GET", "/v1/reports", Some(&c.admin), None);
    assert_eq!(r.status, 409, "{}", r.text());
    let (o, _) = t.pull("none.json", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("no Statement of Applicability was imported"),
        "{}",
        show(&o)
    );

    c.import_soa(&soa_with_marker());
    t.prod.run_once_ok();
    t.dev.run_once_ok();
    let (prod, dev) = (t.prod.agent_id(), t.dev.agent_id());

    // The auditor pulls a report and verifies it offline.
    let (_, first) = t.pull_ok("first.json", &[]);
    let o = t.verify_cli(&t.dir.path().join("first.json"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("verified     OK"), "{}", show(&o));
    assert!(
        stdout(&o).contains("evidence     2 envelopes of 2 hosts"),
        "{}",
        show(&o)
    );

    // What it says: every control of the SoA, exclusions with their
    // justification, manual controls as such, the marker control failing
    // on both hosts with the observed value, evidence with inventory.
    assert_eq!(first.hosts.len(), 2);
    assert_eq!(first.agents.len(), 2);
    let soa_controls = SOA_2013.matches("\nid = \"A.").count();
    assert_eq!(first.controls.len(), soa_controls);
    let m = control(&first, "A.12.4.1");
    assert_eq!(m.kind, Kind::Automated);
    assert_eq!(m.checks, vec!["e2e.marker".to_string()]);
    for h in &m.hosts {
        assert_eq!(h.state, State::Nonconformant, "{h:?}");
        assert_eq!(h.detail.failing[0].check, "e2e.marker");
        assert_eq!(h.evidence, vec![1]);
    }
    let excluded: Vec<_> = first
        .controls
        .iter()
        .filter(|c| c.kind == Kind::Excluded)
        .collect();
    assert!(!excluded.is_empty());
    assert!(
        excluded
            .iter()
            .all(|c| !c.applicable && !c.justification.is_empty() && c.hosts.is_empty())
    );
    assert!(first.controls.iter().any(|c| c.kind == Kind::Manual));
    for h in &first.hosts {
        assert_eq!(h.evidence.len(), 1);
        assert!(h.inventory.as_ref().unwrap()["hostname"].is_string());
        assert!(!h.evidence[0].proof.is_empty() || first.hosts.len() == 1);
    }
    assert_eq!(first.summary.hosts, 2);

    // Time passes; the marker appears and only the prod host runs again.
    let between = common::a_moment_later();
    std::fs::write(&t.marker, "x").unwrap();
    t.prod.run_once_ok();
    let (now_bytes, now) = t.pull_ok("now.json", &[]);
    assert_eq!(state_of(&now, "A.12.4.1", &prod), State::Conformant);
    assert_eq!(state_of(&now, "A.12.4.1", &dev), State::Nonconformant);
    let o = t.verify_cli(&t.dir.path().join("now.json"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // A report at a past time uses the evidence of that time.
    let (_, past) = t.pull_ok("past.json", &["--at", &between]);
    assert_eq!(state_of(&past, "A.12.4.1", &prod), State::Nonconformant);
    let prod_host = past.hosts.iter().find(|h| h.agent == prod).unwrap();
    assert_eq!(prod_host.evidence.last().unwrap().sequence, 1);
    assert_eq!(
        t.verify_cli(&t.dir.path().join("past.json")).status.code(),
        Some(0)
    );

    // A period that starts after the dev host's only run: no evidence.
    let (_, period) = t.pull_ok("period.json", &["--from", &between]);
    assert_eq!(state_of(&period, "A.12.4.1", &dev), State::NoEvidence);
    assert_eq!(state_of(&period, "A.12.4.1", &prod), State::Conformant);
    assert_eq!(
        t.verify_cli(&t.dir.path().join("period.json"))
            .status
            .code(),
        Some(0)
    );

    // Scope: one label, one control.
    let (_, scoped) = t.pull_ok(
        "scoped.json",
        &["--scope", "env=prod", "--control", "A.12.4.1"],
    );
    assert_eq!(scoped.hosts.len(), 1);
    assert_eq!(scoped.controls.len(), 1);
    assert_eq!(scoped.controls[0].hosts[0].agent, prod);
    assert_eq!(
        t.verify_cli(&t.dir.path().join("scoped.json"))
            .status
            .code(),
        Some(0)
    );

    // Impossible requests name what is wrong.
    for (q, want) in [
        ("?at=yesterday", "RFC 3339"),
        ("?at=2999-01-01T00:00:00Z", "in the future"),
        ("?controls=A.99.1", "not in SoA version 1"),
        ("?scope=env", "scope"),
        ("?format=pdf", "not one of"),
        (
            "?from=2026-01-02T00:00:00Z&at=2026-01-01T00:00:00Z",
            "after",
        ),
    ] {
        let r = c.request("GET", &format!("/v1/reports{q}"), Some(&c.admin), None);
        assert!(
            r.status == 400 || r.status == 409,
            "{q}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.text().contains(want), "{q}: {}", r.text());
    }

    tampering_is_caught(&t, &now_bytes, &prod);
    renderings(&t, &now_bytes);
}

/// Flips one byte in each section of the signed payload: the collector's
/// signature no longer verifies. Then changes each section the way a
/// lying collector would and re-signs it with the collector's own key: the
/// deeper checks name what does not hold.
fn tampering_is_caught(t: &Setup, signed: &[u8], prod: &str) {
    let env: Value = serde_json::from_slice(signed).unwrap();
    let payload = annexa_evidence::encoding::b64_decode(env["payload"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(payload.clone()).unwrap();
    for section in [
        "format",
        "id",
        "generated_at",
        "collector",
        "period",
        "scope",
        "soa",
        "checks",
        "checkpoint",
        "agents",
        "hosts",
        "controls",
        "summary",
    ] {
        let at = text
            .find(&format!("\"{section}\":"))
            .unwrap_or_else(|| panic!("no section {section}"));
        let mut bad = payload.clone();
        let i = at + section.len() + 5;
        bad[i] ^= 0x01;
        let mut e = env.clone();
        e["payload"] = Value::String(annexa_evidence::encoding::b64(&bad));
        let bytes = serde_json::to_vec(&e).unwrap();
        let res = verify(&bytes, &t.verifier);
        assert!(
            matches!(res, Err(report::OpenError::Signature(_))),
            "a flipped byte in {section} went unnoticed: {res:?}"
        );
    }
    // The same through the command line: exit 2, the reason named.
    let flipped = t.dir.path().join("flipped.json");
    let mut e = env.clone();
    let mut bad = payload.clone();
    bad[payload.len() / 2] ^= 0x20;
    e["payload"] = Value::String(annexa_evidence::encoding::b64(&bad));
    std::fs::write(&flipped, serde_json::to_vec(&e).unwrap()).unwrap();
    let o = t.verify_cli(&flipped);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("the collector's signature does not verify"),
        "{}",
        show(&o)
    );

    let key = t.collector_key();
    let lie = |name: &str, change: &dyn Fn(&mut Report), want: &str| {
        let mut r = report::open(signed, &t.verifier.key).unwrap().report;
        change(&mut r);
        let bytes = r.sign(&key).unwrap();
        let out = verify(&bytes, &t.verifier).unwrap();
        assert!(!out.ok(), "{name}: a re-signed lie verified");
        assert!(
            out.problems.iter().any(|p| p.contains(want)),
            "{name}: expected a problem containing {want:?}, got {:#?}",
            out.problems
        );
        if name == "a state" {
            let path = t.dir.path().join("lie.json");
            std::fs::write(&path, &bytes).unwrap();
            let o = t.verify_cli(&path);
            assert_eq!(o.status.code(), Some(1), "{}", show(&o));
            assert!(stdout(&o).contains("FAILED"), "{}", show(&o));
            assert!(stdout(&o).contains(want), "{}", show(&o));
        }
    };
    let prod = prod.to_string();
    let p = prod.clone();
    lie(
        "a state",
        &move |r| {
            let c = r.controls.iter_mut().find(|c| c.id == "A.12.4.1").unwrap();
            for h in &mut c.hosts {
                if h.agent != p {
                    h.state = State::Conformant;
                    h.detail = Default::default();
                }
            }
            *c.counts.entry(State::Conformant).or_default() += 1;
            c.counts.remove(&State::Nonconformant);
        },
        "but its evidence and the SoA give nonconformant",
    );
    lie(
        "the summary",
        &|r| r.summary.hosts += 1,
        "summary: the totals differ",
    );
    lie(
        "the SoA text",
        &|r| {
            r.soa.source = r
                .soa
                .source
                .replacen("applicable = false", "applicable = true", 1)
        },
        "soa: the document hashes to",
    );
    lie(
        "the check list",
        &|r| {
            for c in r.checks.iter_mut().filter(|c| c.id != "e2e.marker") {
                c.controls.clear();
            }
        },
        "evidence does not decide the control",
    );
    lie(
        "an excluded control",
        &|r| {
            let c = r
                .controls
                .iter_mut()
                .find(|c| c.kind == Kind::Excluded)
                .unwrap();
            c.justification = "nobody asked".into();
        },
        "its SoA entry, checks or counts differ",
    );
    lie(
        "the checkpoint",
        &|r| r.checkpoint = r.checkpoint.replacen('\n', "\n1", 1),
        "checkpoint:",
    );
    lie(
        "an agent key",
        &|r| {
            let other = SigningKey::from_seed(&[9u8; 32]).unwrap().public();
            r.agents[0].public_key = other.to_b64();
            r.agents[0].key_id = other.key_id();
        },
        "agent signature",
    );
    lie(
        "a key id",
        &|r| r.agents[0].key_id = "00".repeat(32),
        "is not the SHA-256 of its public key",
    );
    lie(
        "an envelope",
        &|r| {
            let h = &mut r.hosts[0];
            let raw = h.evidence[0]
                .envelope
                .get()
                .replacen("\"sig\":\"", "\"sig\":\"A", 1);
            h.evidence[0].envelope = serde_json::value::RawValue::from_string(raw).unwrap();
        },
        "the envelope hashes to",
    );
    lie(
        "an inclusion proof",
        &|r| {
            let item = &mut r.hosts[0].evidence[0];
            if let Some(first) = item.proof.first_mut() {
                *first = "00".repeat(32);
            } else {
                item.log_index += 1;
            }
        },
        "inclusion proof",
    );
    lie(
        "an acceptance time",
        &|r| r.hosts[0].evidence[0].accepted_at = "2020-01-01T00:00:00Z".into(),
        "inclusion proof",
    );
    lie(
        "the period",
        &|r| r.period.at = "2020-01-01T00:00:00Z".into(),
        "after the report's time",
    );
    lie(
        "an SoA not yet in force",
        &|r| r.soa.imported_at = "2999-01-01T00:00:00Z".into(),
        "after the report's time: it was not in force",
    );
    lie(
        "the log's name",
        &|r| r.collector.origin = "annexa/elsewhere".into(),
        "collector: the report names the log",
    );
    lie(
        "an enrollment time",
        &|r| r.agents[0].enrolled_at = "last tuesday".into(),
        "is not an RFC 3339 time",
    );
    lie(
        "a control listed twice",
        &|r| {
            let c = r.controls[0].clone();
            r.controls.push(c);
        },
        "listed twice",
    );
    lie(
        "controls reordered",
        &|r| r.controls.rotate_left(1),
        "not in the SoA's order",
    );
    lie(
        "the scope",
        &|r| r.scope.selector = Some("env=nowhere".into()),
        "do not match the scope's selector",
    );
    lie(
        "a host left out",
        &|r| {
            r.hosts.pop();
        },
        "has no host section",
    );
    lie(
        "the inventory",
        &|r| r.hosts[0].inventory = Some(serde_json::json!({"hostname": "elsewhere"})),
        "inventory facts differ",
    );
    let pp = prod.clone();
    lie(
        "newer evidence swapped for older",
        &move |r| {
            // Keep only the prod host's first run by pretending the second
            // was never there: its states no longer follow.
            let h = r.hosts.iter_mut().find(|h| h.agent == pp).unwrap();
            h.withheld = Some(report::Withheld {
                sequence: 9,
                pruned_at: "2020-01-01T00:00:00Z".into(),
            });
            h.evidence.clear();
            h.inventory = None;
        },
        "control A.12.4.1 on host",
    );
    // A wrong key: nothing verifies.
    let other = Verifier::new(
        &t.verifier.name,
        SigningKey::from_seed(&[3u8; 32]).unwrap().public(),
    )
    .unwrap();
    assert!(matches!(
        verify(signed, &other),
        Err(report::OpenError::Signature(_))
    ));
    // Not a report at all.
    let junk = t.dir.path().join("junk.json");
    std::fs::write(&junk, b"{\"not\": \"a report\"").unwrap();
    let o = t.verify_cli(&junk);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("junk.json")
            && common::stderr(&o).contains("not a signed report"),
        "{}",
        show(&o)
    );
}

fn renderings(t: &Setup, signed: &[u8]) {
    let path = t.dir.path().join("render.json");
    std::fs::write(&path, signed).unwrap();
    let r = report::open(signed, &t.verifier.key).unwrap().report;

    // HTML, verified first.
    let html = t.dir.path().join("report.html");
    let o = common::annexa(&[
        "report",
        "render",
        s(&path),
        "--format",
        "html",
        "--collector-key",
        s(&t.key_file),
        "--out",
        s(&html),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-verdict=\"verified\""));
    for needle in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
        assert!(
            !page.contains(needle),
            "the page loads an external asset: {needle}"
        );
    }
    chromium_renders(&html, &r);

    // The same page from the collector, verified by the collector itself.
    let g =
        t.c.request("GET", "/v1/reports?format=html", Some(&t.c.admin), None);
    assert_eq!(g.status, 200);
    assert!(g.text().contains("data-verdict=\"verified\""));

    // Without a key, the page says it is not verified.
    let o = common::annexa(&["report", "render", s(&path), "--format", "html"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("data-verdict=\"unchecked\""));

    // OSCAL, valid against NIST's schema.
    let o = common::annexa(&["report", "render", s(&path), "--format", "oscal"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    common::assert_schema_valid(OSCAL_SCHEMA, &doc, "OSCAL output");
    let result = &doc["assessment-results"]["results"][0];
    let findings = result["findings"].as_array().unwrap();
    let marker = findings
        .iter()
        .find(|f| f["target"]["target-id"] == "a.12.4.1")
        .unwrap();
    assert_eq!(marker["target"]["status"]["state"], "not-satisfied");
    let resources: std::collections::HashSet<String> =
        doc["assessment-results"]["back-matter"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("#{}", x["uuid"].as_str().unwrap()))
            .collect();
    for o in result["observations"].as_array().unwrap() {
        for e in o["relevant-evidence"].as_array().into_iter().flatten() {
            assert!(
                resources.contains(e["href"].as_str().unwrap()),
                "dangling evidence link {e}"
            );
        }
    }
    assert_eq!(
        result["observations"].as_array().unwrap().len(),
        r.controls.iter().map(|c| c.hosts.len()).sum::<usize>()
    );

    // CSV: the SoA with status.
    let o = common::annexa(&["report", "render", s(&path), "--format", "csv"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("control,title,theme,applicable,kind")
    );
    assert_eq!(lines.count(), r.controls.len());
    let row = text.lines().find(|l| l.starts_with("A.12.4.1,")).unwrap();
    assert!(row.contains(",nonconformant,2,1,1,"), "{row}");
}

/// Loads the page in headless Chromium: the DOM it builds has a row per
/// SoA control, a drill-down per automated control and the verdict; a
/// screenshot is kept as a test artifact.
fn chromium_renders(html: &Path, r: &Report) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's chromium package is needed for this test (.ci/run installs it)");
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[String]| {
        let mut cmd = std::process::Command::new("timeout");
        cmd.arg("120")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", html.display()));
        cmd.output().expect("running chromium")
    };
    let o = run(&["--dump-dom".into()]);
    assert!(o.status.success(), "chromium --dump-dom: {}", show(&o));
    let dom = String::from_utf8_lossy(&o.stdout);
    for c in &r.controls {
        assert!(
            dom.contains(&format!("<tr data-control=\"{}\"", c.id)),
            "no rendered row for {}",
            c.id
        );
    }
    let automated = r
        .controls
        .iter()
        .filter(|c| c.kind == Kind::Automated)
        .count();
    assert_eq!(dom.matches("<details id=\"c-").count(), automated);
    assert!(dom.contains("data-verdict=\"verified\""));

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let o = run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,1600".into(),
        "--hide-scrollbars".into(),
    ]);
    assert!(o.status.success(), "chromium --screenshot: {}", show(&o));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    let pdf = artifacts.join("report.pdf");
    let o = run(&[
        format!("--print-to-pdf={}", pdf.display()),
        "--no-pdf-header-footer".into(),
    ]);
    assert!(o.status.success(), "chromium --print-to-pdf: {}", show(&o));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
}
