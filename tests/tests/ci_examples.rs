//! The CI examples of docs/ci.md, run as written: the `annexa` commands of
//! its GitHub Actions and GitLab CI blocks (and the baseline recording
//! command) are extracted from the document and run with bash in a
//! workspace laid out as the examples expect, with `annexa` on PATH, a real
//! collector over TLS behind `$ANNEXA_SERVER`. They pass on a good image and
//! fleet, and fail (exit 1) once a fixture change flips a check and an
//! agent's checked file goes away.

mod common;

use std::process::{Command, Output};

use annexa_tests::{hardened_root, permit_root, put};
use common::{Collector, Host, show, soa_with_marker};

const CI_MD: &str = include_str!("../../docs/ci.md");

/// The fenced blocks of a language in a Markdown text.
fn blocks(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match &mut current {
            None if line.trim() == format!("```{lang}") => current = Some(String::new()),
            Some(_) if line.trim() == "```" => out.extend(current.take()),
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

/// The shell of a GitHub Actions workflow's `run: |` blocks.
fn github_runs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() == "run: |" {
            let base = indent(l);
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|x| x.trim().is_empty() || indent(x) > base)
                .map(|x| x.trim())
                .collect();
            out.push(body.join("\n").trim().to_string());
        }
    }
    out
}

/// The commands of GitLab CI `script:` lists.
fn gitlab_scripts(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() == "script:" {
            let base = indent(l);
            out.extend(
                lines[i + 1..]
                    .iter()
                    .take_while(|x| indent(x) > base && x.trim().starts_with("- "))
                    .map(|x| x.trim()[2..].to_string()),
            );
        }
    }
    out
}

fn annexa_commands(all: Vec<String>) -> Vec<String> {
    all.into_iter()
        .filter(|c| c.starts_with("annexa "))
        .collect()
}

struct Workspace {
    dir: tempfile::TempDir,
    c: Collector,
    host: Host,
    marker: std::path::PathBuf,
    token: String,
}

impl Workspace {
    fn bash(&self, script: &str) -> Output {
        let bin_dir = common::bin("annexa").parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("ANNEXA_SERVER", self.c.url())
            .env("ANNEXA_TOKEN", &self.token)
            .env("GITHUB_STEP_SUMMARY", self.dir.path().join("summary.md"))
            .env("NO_COLOR", "1")
            .output()
            .expect("running bash")
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }
}

fn workspace() -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    hardened_root(&dir.path().join("rootfs"));
    std::fs::create_dir_all(dir.path().join("ci")).unwrap();

    let marker = dir.path().join("marker");
    let c = Collector::start_with(&common::collector_packs(
        &dir.path().join("collector-packs"),
        &marker,
    ));
    c.import_soa(&soa_with_marker());
    std::fs::copy(c.ca_path(), dir.path().join("ci/collector-ca.pem")).unwrap();
    let host = Host::enrolled(&c, "[labels]\nenv = \"prod\"\n");
    host.add_pack(&common::marker_pack(&marker));
    std::fs::write(&marker, "").unwrap();
    host.run_once_ok();
    let token = c.api_token("ci", "auditor");
    Workspace {
        dir,
        c,
        host,
        marker,
        token,
    }
}

fn assert_code(o: &Output, code: i32, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}: {}", show(o));
}

#[test]
fn the_documented_github_and_gitlab_examples_gate_as_documented() {
    let yaml = blocks(CI_MD, "yaml");
    let github = yaml
        .iter()
        .find(|b| b.contains("runs-on:"))
        .expect("a GitHub Actions block in docs/ci.md");
    let gitlab = yaml
        .iter()
        .find(|b| b.contains("script:"))
        .expect("a GitLab CI block in docs/ci.md");
    let gh = annexa_commands(github_runs(github));
    let gl = annexa_commands(gitlab_scripts(gitlab));
    assert_eq!(gh.len(), 2, "GitHub: an image and a fleet gate: {gh:#?}");
    assert_eq!(gl.len(), 2, "GitLab: an image and a fleet gate: {gl:#?}");
    let record = blocks(CI_MD, "sh")
        .into_iter()
        .find(|b| b.contains("--write-baseline"))
        .expect("the baseline recording command in docs/ci.md");
    let (image, fleet): (Vec<&String>, Vec<&String>) =
        gh.iter().chain(&gl).partition(|c| c.contains("--root"));
    assert_eq!((image.len(), fleet.len()), (2, 2));

    let w = workspace();
    assert_code(&w.bash(&record), 0, "recording the baseline");
    assert!(w.path("ci/annexa-baseline.json").is_file());

    // A good image and a conformant fleet pass.
    for cmd in image.iter().chain(&fleet) {
        assert_code(&w.bash(cmd), 0, cmd);
    }
    for f in ["annexa-junit.xml", "fleet-junit.xml"] {
        common::junit_valid(&w.path(f));
    }
    common::sarif_valid(&w.path("annexa.sarif"));
    let summary = std::fs::read_to_string(w.path("summary.md")).unwrap();
    assert!(summary.contains("✅ annexa gate passed"), "{summary}");
    assert!(
        std::fs::read_to_string(w.path("annexa-gate.md"))
            .unwrap()
            .contains("annexa gate passed")
    );

    // The image drifts: root may log in over SSH again.
    let (path, text) = permit_root();
    put(&w.path("rootfs"), path, &text, 0o644);
    // The fleet drifts: the agent's checked file goes away.
    std::fs::remove_file(&w.marker).unwrap();
    let o = w.host.run_once(&[]);
    assert!(o.status.code().is_some(), "{}", show(&o));
    for cmd in image.iter().chain(&fleet) {
        let o = w.bash(cmd);
        assert_code(&o, 1, cmd);
        let out = String::from_utf8_lossy(&o.stdout);
        if cmd.contains("--root") {
            assert!(out.contains("ssh.permit-root-login"), "{cmd}: {out}");
        } else {
            assert!(out.contains("A.12.4.1"), "{cmd}: {out}");
        }
    }
    let junit = common::junit_valid(&w.path("annexa-junit.xml"));
    assert!(junit.contains("<failure"), "{junit}");
    let fleet_junit = common::junit_valid(&w.path("fleet-junit.xml"));
    assert!(fleet_junit.contains("<failure"), "{fleet_junit}");
    let sarif = common::sarif_valid(&w.path("annexa.sarif"));
    assert_eq!(
        sarif["runs"][0]["results"][0]["ruleId"],
        "ssh.permit-root-login"
    );
    let summary = std::fs::read_to_string(w.path("summary.md")).unwrap();
    assert!(summary.contains("❌ annexa gate FAILED"), "{summary}");
}
