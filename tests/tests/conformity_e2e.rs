//! End to end: the organisation's Statement of Applicability imported into
//! the real collector, real agents' signed evidence turned into conformity
//! per (host, control) with a timeline, the SoA's parameters reaching the
//! agents, `annexa status`, and the role matrix of every API route.

mod common;

use annexa_evidence::api::codes;
use serde_json::Value;

use common::{
    Collector, Host, WAIT, marker_pack, show, soa_with_marker, statement_of, stdout, wait_for,
};

struct Fleet {
    c: Collector,
    host: Host,
    marker: std::path::PathBuf,
    _packs: tempfile::TempDir,
}

fn fleet() -> Fleet {
    let packs = tempfile::tempdir().unwrap();
    let marker = packs.path().join("marker");
    let c = Collector::start_with(&format!(
        "{}conformity_sweep_seconds = 1\n",
        common::collector_packs(packs.path(), &marker)
    ));
    let host = Host::enrolled(&c, "[labels]\nenv = \"prod\"\n");
    host.add_pack(&marker_pack(&marker));
    Fleet {
        c,
        host,
        marker,
        _packs: packs,
    }
}

fn post_soa(c: &Collector, token: &str, body: &str, query: &str) -> common::Response {
    c.request(
        "POST",
        &format!("/v1/soa{query}"),
        Some(token),
        Some(body.as_bytes().to_vec()),
    )
}

fn cell<'a>(v: &'a Value, key: &str, field: &str, id: &str) -> &'a Value {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[field] == id)
        .unwrap_or_else(|| panic!("no {field} {id} in {v}"))
}

#[test]
fn evidence_becomes_conformity_against_the_soa_with_a_timeline() {
    let f = fleet();
    let c = &f.c;
    let id = f.host.agent_id();

    // Before any SoA: conformity says so.
    let r = c.request("GET", "/v1/conformity", Some(&c.admin), None);
    assert_eq!((r.status, r.error().error.as_str()), (409, codes::NO_SOA));

    // An SoA that does not lint is refused with every problem and its line;
    // nothing is stored.
    let bad = soa_with_marker()
        .replacen("id = \"A.5.1.2\"", "id = \"A.5.1.9\"", 1)
        .replacen("checks = [\"e2e.marker\"]", "checks = [\"e2e.markr\"]", 1);
    let r = post_soa(c, &c.admin, &bad, "");
    assert_eq!(r.status, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], codes::INVALID_SOA);
    let problems = v["problems"].as_array().unwrap();
    let text = r.text();
    assert!(
        problems.iter().any(|p| p["message"]
            .as_str()
            .unwrap()
            .contains("closest: A.5.1.1, A.5.1.2")),
        "{text}"
    );
    assert!(
        text.contains("no loaded pack has a check `e2e.markr`; closest: e2e.marker"),
        "{text}"
    );
    let line = bad
        .lines()
        .position(|l| l.starts_with("id = \"A.5.1.9\""))
        .unwrap()
        + 1;
    assert!(problems.iter().any(|p| p["line"] == line), "{text}");
    assert_eq!(c.get("/v1/soa").json(), Value::Array(vec![]));

    // Imported by an admin: version 1, named by whom.
    let r = post_soa(c, &c.admin, &soa_with_marker(), "?comment=initial");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    assert_eq!(r.json()["imported_by"], "admin");

    // `soa show` says which checks give evidence for each control.
    let shown = c.get("/v1/soa/current").json();
    let a1241 = cell(&shown, "controls", "id", "A.12.4.1");
    assert_eq!(a1241["checks"], serde_json::json!(["e2e.marker"]));
    assert_eq!(a1241["check_source"], "replaced");
    let a942 = cell(&shown, "controls", "id", "A.9.4.2");
    assert!(
        a942["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "ssh.permit-root-login"),
        "{a942}"
    );

    // The host enrolled but has not reported: no evidence.
    let v = c.get("/v1/conformity/controls/A.12.4.1").json();
    assert_eq!(cell(&v, "hosts", "host", &id)["state"], "no_evidence");

    // First run: the marker is absent, the control is nonconformant, named
    // with its check and what it saw, since envelope 1.
    f.host.run_once_ok();
    let v = c.get("/v1/conformity/controls/A.12.4.1").json();
    assert_eq!(v["soa_version"], 1);
    let h = cell(&v, "hosts", "host", &id);
    assert_eq!(h["state"], "nonconformant", "{v}");
    assert_eq!(h["detail"]["failing"][0]["check"], "e2e.marker");
    assert_eq!(h["since_sequence"], 1);
    assert_eq!(v["counts"]["nonconformant"], 1);

    // The agent got the SoA's parameters with its receipt.
    let policy: Value =
        serde_json::from_slice(&std::fs::read(f.host.state.join("policy.json")).unwrap()).unwrap();
    assert_eq!(policy["soa_version"], 1);
    assert_eq!(policy["params"]["session_timeout_seconds"], 600);
    let first = statement_of(&c.envelope(&id, 1));
    assert_eq!(
        first["predicate"]["scan"]["params"]["session_timeout_seconds"],
        900
    );
    assert_eq!(first["predicate"]["interval_seconds"], 3600);

    // Controls whose checks read that parameter are stale until the agent
    // runs with the SoA's value.
    let v = c
        .get(&format!("/v1/conformity/hosts/{id}?control=A.9.4.2"))
        .json();
    let s = &v["controls"][0];
    assert_eq!(s["state"], "stale", "{v}");
    assert!(
        s["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("session_timeout_seconds=900 (the SoA sets 600)"),
        "{s}"
    );

    // Second run: the marker exists; the SoA's parameter was used.
    std::fs::write(&f.marker, "x").unwrap();
    f.host.run_once_ok();
    let second = statement_of(&c.envelope(&id, 2));
    assert_eq!(
        second["predicate"]["scan"]["params"]["session_timeout_seconds"],
        600
    );
    let v = c.get(&format!("/v1/conformity/hosts/{id}")).json();
    assert_eq!(
        cell(&v, "controls", "control", "A.12.4.1")["state"],
        "conformant"
    );
    assert_ne!(cell(&v, "controls", "control", "A.9.4.2")["state"], "stale");
    assert_eq!(
        cell(&v, "controls", "control", "A.5.1.1")["state"],
        "manual"
    );
    let excl = cell(&v, "controls", "control", "A.14.2.7");
    assert_eq!(excl["state"], "excluded");
    assert!(
        excl["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("No outsourced development")
    );

    // Since when, and why: the timeline of (host, control), by host name.
    let hostname = c.host(&id)["hostname"].as_str().unwrap().to_string();
    let t = c
        .get(&format!(
            "/v1/conformity/timeline?host={hostname}&control=A.12.4.1"
        ))
        .json();
    let states: Vec<(&str, u64)> = t
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap(),
                e["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("nonconformant", 1), ("conformant", 2)], "{t}");
    assert_eq!(t[1]["previous"], "nonconformant");
    assert_eq!(t[1]["cause"], "envelope");

    // The fleet table.
    let v = c.get("/v1/conformity?labels=env%3Dprod").json();
    assert_eq!(
        (v["hosts"].as_u64(), v["soa_version"].as_i64()),
        (Some(1), Some(1))
    );
    let row = cell(&v, "controls", "control", "A.12.4.1");
    assert_eq!(row["counts"]["conformant"], 1);
    let none = c.get("/v1/conformity?labels=env%3Dtest").json();
    assert_eq!(none["hosts"], 0);
    let r = c.request("GET", "/v1/conformity?state=fine", Some(&c.admin), None);
    assert_eq!(r.status, 400);
    let r = c.request("GET", "/v1/conformity/controls/8.5", Some(&c.admin), None);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("2013 edition"), "{}", r.text());

    // `annexa status`: the table for people, exit 1 while anything shown is
    // nonconformant, 0 for a conformant control.
    let token_file = f.host.dir().join("auditor.token");
    std::fs::write(&token_file, c.api_token("auditor-1", "auditor")).unwrap();
    let url = c.url();
    let ca = c.ca_path();
    let status = |extra: &[&str]| {
        let mut args = vec![
            "status",
            "--server",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--token-file",
            token_file.to_str().unwrap(),
            "--config",
            f.host.config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        f.host.annexa(&args)
    };
    let o = status(&["--control", "A.12.4.1", "--labels", "env=prod;role=db|web"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("conformant 0"),
        "no host has a role label: {}",
        show(&o)
    );
    let o = status(&["--control", "A.12.4.1", "--labels", "env=prod"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("conformant"), "{}", show(&o));
    let o = status(&[]);
    let out = stdout(&o);
    assert!(
        out.contains("hosts against SoA version 1 (ISO/IEC 27001:2013)"),
        "{}",
        show(&o)
    );
    assert!(out.contains("A.12.4.1"), "{out}");
    let nonconformant = c.get("/v1/conformity").json()["totals"]["nonconformant"]
        .as_u64()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(if nonconformant > 0 { 1 } else { 0 }),
        "{}",
        show(&o)
    );
    std::fs::write(&token_file, "annexa-api-not-a-token").unwrap();
    let o = status(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("401 unauthorized"), "{}", show(&o));

    // A second version imported with the CLI (another process) is picked
    // up by the running collector within its sweep; diff names the change.
    let v2 = f.host.dir().join("soa-v2.toml");
    std::fs::write(
        &v2,
        soa_with_marker().replacen(
            "applicable = true\nchecks = [\"e2e.marker\"]\n",
            "applicable = false\n",
            1,
        ),
    )
    .unwrap();
    let o = c.cli(&["soa", "import", v2.to_str().unwrap(), "--by", "carol"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("as SoA version 2 (ISO/IEC 27001:2013) by carol"),
        "{}",
        show(&o)
    );
    wait_for(
        "the collector to adopt SoA version 2",
        WAIT,
        || c.get("/v1/conformity").json()["soa_version"] == 2,
        || c.log(),
    );
    let v = c.get("/v1/conformity/controls/A.12.4.1").json();
    assert_eq!(cell(&v, "hosts", "host", &id)["state"], "excluded");
    let t = c
        .get(&format!(
            "/v1/conformity/timeline?host={id}&control=A.12.4.1&state=excluded"
        ))
        .json();
    assert_eq!(t[0]["cause"], "soa", "{t}");
    assert_eq!(t[0]["soa_version"], 2, "{t}");
    let o = c.cli(&["soa", "diff", "1", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "~ A.12.4.1\n    applicable: true -> false\n    checks: e2e.marker -> (mapped)"
        ),
        "{out}"
    );
    let o = c.cli(&["soa", "list"]);
    let out = stdout(&o);
    assert!(
        out.contains("by admin: initial") && out.contains("by carol"),
        "{out}"
    );
    // What was imported is kept exactly.
    assert_eq!(c.get("/v1/soa/1/export").text(), soa_with_marker());
    // A file that does not lint is refused by the CLI too.
    std::fs::write(&v2, "[soa]\nedition = \"2013\"\n").unwrap();
    let o = c.cli(&["soa", "import", v2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        common::stderr(&o).contains("114 controls of ISO/IEC 27001:2013 Annex A are missing"),
        "{}",
        show(&o)
    );
    assert!(common::stderr(&o).contains("nothing was imported"));
    assert_eq!(c.get("/v1/soa").json().as_array().unwrap().len(), 2);
}
