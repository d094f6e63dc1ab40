//! The quickstart's steps: collector, enrolled agent, one delivered run,
//! and what the collector recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use annexa_agent::{AgentConfig, CaPin, EnrollOptions, enroll, run_once};

use annexa_collector::config::CollectorConfig;
use annexa_collector::datadir::{self, DataDir};
use annexa_collector::{clock, conformity, soa};

const EXAMPLE_SOA: &str = include_str!("../../examples/soa/iso27001-2022.toml");

/// Runs the quickstart in `data` (created if missing). Prints as it goes.
pub async fn quickstart(data: &Path) -> anyhow::Result<()> {
    let dir = DataDir::new(data.join("collector"));
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let init = datadir::init(&dir, &names, true)?;
    println!(
        "1. collector data directory {} (CA {})",
        dir.root.display(),
        init.ca_fingerprint.as_deref().unwrap_or("-")
    );

    let config = CollectorConfig {
        data_dir: dir.root.clone(),
        listen: "127.0.0.1:0".parse()?,
        ..CollectorConfig::default()
    };
    // The example SoA of the 2022 edition, so that the evidence is read
    // against controls (kept if the directory already has an SoA).
    let store = annexa_collector::open_store(&config).await?;
    if soa::newest(store.as_ref()).await?.is_none() {
        let packs = config.packs().map_err(anyhow::Error::msg)?;
        soa::import(
            store.as_ref(),
            &packs,
            "examples/soa/iso27001-2022.toml",
            EXAMPLE_SOA,
            annexa_checks::soa::Format::Toml,
            "quickstart",
            Some("the example SoA shipped with annexa".into()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    drop(store);
    let server = annexa_collector::start(&config).await?;
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    println!("2. collector listening on {url} (HTTPS, embedded SQLite store)");

    let labels = BTreeMap::from([("env".to_string(), "quickstart".to_string())]);
    let (token, _) =
        annexa_collector::create_enroll_token(server.store.as_ref(), 3600, &labels).await?;
    let state_dir: PathBuf = data.join("agent");
    let ca = std::fs::read(dir.ca_cert()).with_context(|| dir.ca_cert().display().to_string())?;
    let enrolled = enroll(EnrollOptions::new(
        &url,
        token,
        CaPin::Certificate {
            label: dir.ca_cert().display().to_string(),
            bytes: ca,
        },
        &state_dir,
    ))
    .await?;
    println!(
        "3. local agent enrolled as {} (state {})",
        enrolled.agent_id,
        state_dir.display()
    );

    let agent = AgentConfig::new(&url, &state_dir);
    let outcome = run_once(&agent, true).await?;
    if let Some(e) = outcome.delivery_error {
        anyhow::bail!("delivery failed: {e}");
    }
    println!(
        "4. scanned this machine, signed envelope #{} ({} bytes), delivered {} with a verified receipt",
        outcome.produced.sequence, outcome.produced.size, outcome.delivered
    );

    let record = server
        .store
        .agent(enrolled.agent_id.as_str())
        .await?
        .context("the collector has no record of the agent it just enrolled")?;
    let envelopes = server.store.envelopes(record.no, 0, 10).await?;
    let latest = server.store.latest(record.no).await?;
    println!("\nWhat the collector recorded:");
    println!(
        "  host {} ({}), labels {:?}",
        record.hostname, record.id, record.labels
    );
    for e in &envelopes {
        println!(
            "  envelope #{} sha256:{} accepted {} summary {}",
            e.sequence, e.sha256, e.received_at, e.summary
        );
    }
    let mut by_status: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in &latest {
        by_status
            .entry(row.status.as_str())
            .or_default()
            .push(row.check_id.as_str());
    }
    for (status, checks) in &by_status {
        println!("  {status:<15} {:>3} checks", checks.len());
    }
    if let Some(failing) = by_status.get("fail") {
        println!("  failing: {}", failing.join(", "));
    }
    let filter = conformity::index::Filter {
        host: Some(record.id.clone()),
        ..Default::default()
    };
    if let Some((policy, cells)) = server.conformity.cells(&filter, clock::now_unix()) {
        println!(
            "\nConformity with the example Statement of Applicability (version {}, ISO/IEC 27001:{}):",
            policy.version, policy.soa.edition
        );
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &cells {
            *counts.entry(c.state.as_str()).or_default() += 1;
        }
        for (state, n) in &counts {
            println!("  {state:<15} {n:>3} controls");
        }
        for c in cells
            .iter()
            .filter(|c| c.state == conformity::State::Nonconformant)
        {
            let checks: Vec<&str> = c.detail.failing.iter().map(|f| f.check.as_str()).collect();
            println!(
                "  nonconformant   {} {}: {}",
                c.control,
                c.title,
                checks.join(", ")
            );
        }
        for c in cells.iter().filter(|c| c.state == conformity::State::Stale) {
            println!(
                "  stale           {} {}: {}",
                c.control,
                c.title,
                c.detail.reason.as_deref().unwrap_or("")
            );
        }
        println!(
            "  (annexa-collector soa show --data {} lists the checks per control)",
            dir.root.display()
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
