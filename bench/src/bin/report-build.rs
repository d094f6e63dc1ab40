//! Time to build and to verify an evidence report for a fleet.
//!
//! Starts the real collector in-process on a fresh data directory (SQLite),
//! imports the example ISO/IEC 27001:2013 SoA, enrolls HOSTS agents over
//! TLS, and has each send HISTORY real agent-signed envelopes (a scan of
//! the golden-image fixture cut to CHECKS results, the SoA's parameters in
//! force) through the ingest path. Then, not timing any of that:
//!
//! - builds the signed report for every host and control RUNS times with
//!   `annexa_collector::report::build` (store reads, inclusion proofs,
//!   statement parsing, state derivation, JSON and the DSSE signature),
//! - verifies it offline RUNS times with
//!   `annexa_evidence::report::verify::verify` (what `annexa verify
//!   report` runs: every signature and proof, every state recomputed),
//!
//! - asks `GET /v1/drift` over TLS RUNS times for the whole fleet since
//!   before it reported (every (host, control) changed in the window: the
//!   largest answer the CI gate's collector mode can get), with `cells=true`,
//!
//! and prints the median, min and max of each, the report's size and how
//! much of it the envelopes are.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;

use annexa_checks::pack::PackSet;
use annexa_checks::soa::Format;
use annexa_collector::config::CollectorConfig;
use annexa_collector::datadir::{self, DataDir};
use annexa_collector::report::{Request, build};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOA: &str = include_str!("../../../examples/soa/iso27001-2013.toml");

#[derive(Debug, Parser)]
#[command(about = "Build and verify times of an annexa evidence report")]
struct Args {
    /// Hosts (agents) in the report.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Check results per envelope.
    #[arg(long, default_value_t = 50)]
    checks: usize,
    /// Envelopes per host (chained; the report uses the newest).
    #[arg(long, default_value_t = 2)]
    history: u64,
    /// Timed builds and verifications.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Keep the last report here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "median {:.3} s (min {:.3}, max {:.3}, {} runs)",
        v[v.len() / 2].as_secs_f64(),
        v[0].as_secs_f64(),
        v[v.len() - 1].as_secs_f64(),
        v.len()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.hosts > 0 && args.runs > 0 && args.history > 0);
    let tmp = tempfile::Builder::new()
        .prefix("annexa-report-bench")
        .tempdir()?;
    let data = tmp.path().join("data");
    let dir = DataDir::new(&data);
    datadir::init(&dir, &["127.0.0.1".to_string()], true)?;
    let config = CollectorConfig {
        data_dir: data.clone(),
        listen: "127.0.0.1:0".parse()?,
        ..CollectorConfig::default()
    };
    let packs: PackSet = config.packs().map_err(anyhow::Error::msg)?;
    let key = dir.load_signing_key()?;
    {
        let store = annexa_collector::open_store(&config).await?;
        annexa_collector::soa::import(
            store.as_ref(),
            &packs,
            "iso27001-2013.toml",
            SOA,
            Format::Toml,
            "bench",
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let server = annexa_collector::start(&config).await?;
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let admin = annexa_collector::create_api_token(
        server.store.as_ref(),
        "bench",
        annexa_collector::store::Role::Admin,
        None,
    )
    .await?;
    let ca = std::fs::read(data.join("ca.crt"))?;
    let http = annexa_tests::load::tls_client(&ca, 64, Duration::from_secs(60))?;

    // The scan every host reports, with the SoA's parameters in force.
    let mut scan = annexa_tests::load::realistic_scan(args.checks)?;
    let soa = annexa_checks::soa::parse_toml("soa", SOA).map_err(|e| anyhow::anyhow!("{e}"))?;
    scan.params.0.extend(soa.params());

    let before_population = annexa_collector::clock::now_rfc3339();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let populate = Instant::now();
    for chunk in (0..args.hosts).collect::<Vec<_>>().chunks(32) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let (http, url, admin, scan) = (http.clone(), url.clone(), admin.clone(), scan.clone());
            let history = args.history;
            tasks.push(tokio::spawn(async move {
                let a = annexa_tests::load::enroll(
                    &http,
                    &url,
                    &admin,
                    i,
                    serde_json::json!({"env": "prod"}),
                )
                .await?;
                let mut previous = None;
                for seq in 1..=history {
                    let (bytes, digest) = a.envelope(seq, previous, Some(3600), scan.clone());
                    previous = Some(digest);
                    http.post(format!("{url}/v1/evidence"))
                        .header("content-type", "application/json")
                        .body(bytes)
                        .send()
                        .await?
                        .error_for_status()?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    println!(
        "population: {} hosts x {} envelopes of {} results, through the ingest path, in {:.1} s",
        args.hosts,
        args.history,
        args.checks,
        populate.elapsed().as_secs_f64()
    );
    // Let the writer sign a checkpoint that covers everything.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let req = Request::default();
    let mut builds = Vec::new();
    let mut signed = Vec::new();
    let mut report = None;
    for _ in 0..args.runs {
        let t = Instant::now();
        let (r, s) = build(server.store.as_ref(), &server.log, &packs, &key, &req)
            .await
            .context("building the report")?;
        builds.push(t.elapsed());
        signed = s;
        report = Some(r);
    }
    let report = report.context("no run")?;
    ensure!(
        report.hosts.len() == args.hosts,
        "the report has {} hosts",
        report.hosts.len()
    );
    let envelope_bytes: usize = report
        .hosts
        .iter()
        .flat_map(|h| h.evidence.iter().map(|e| e.envelope.get().len()))
        .sum();
    let envelopes: usize = report.hosts.iter().map(|h| h.evidence.len()).sum();
    let cells: u64 = report.summary.cells.values().sum();

    let verifier = server.log.verifier().clone();
    let mut verifies = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        let outcome = annexa_evidence::report::verify::verify(&signed, &verifier)?;
        verifies.push(t.elapsed());
        ensure!(
            outcome.ok(),
            "the report does not verify: {:?}",
            outcome.problems
        );
    }
    println!(
        "report: {} hosts, {} controls, {} (host, control) states, {} envelopes; {:.1} MB signed ({:.1} MB of it envelopes)",
        report.hosts.len(),
        report.controls.len(),
        cells,
        envelopes,
        signed.len() as f64 / 1e6,
        envelope_bytes as f64 / 1e6 * 4.0 / 3.0
    );
    println!("build:  {}", stats(builds));
    println!("verify: {}", stats(verifies));

    let mut drifts = Vec::new();
    let mut drift_bytes = 0;
    let mut changes = 0;
    for _ in 0..args.runs {
        let t = Instant::now();
        let mut q = reqwest::Url::parse(&format!("{url}/v1/drift"))?;
        q.query_pairs_mut()
            .append_pair("from", &before_population)
            .append_pair("cells", "true");
        let body = http
            .get(q)
            .bearer_auth(&admin)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let d: annexa_evidence::drift::Drift = serde_json::from_slice(&body)?;
        drifts.push(t.elapsed());
        drift_bytes = body.len();
        changes = d.changes.len();
    }
    println!(
        "drift:  {} ({} changes, {:.1} MB answer)",
        stats(drifts),
        changes,
        drift_bytes as f64 / 1e6
    );
    if let Some(p) = &args.out {
        std::fs::write(p, &signed)?;
    }
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
