//! Load generator for the collector's ingest path.
//!
//! Enrolls N agents, pre-signs M chained envelopes per agent (a real scan of
//! the golden-image fixture, 50 results each) before the clock starts, then
//! submits them from N concurrent agents over TLS with keep-alive, each agent
//! sending its envelopes in order. Prints envelopes/s durably accepted
//! (answered with a receipt), results/s, and latency percentiles; receipts
//! are verified after the clock stops.
//!
//! With several `--server`s (collectors on one database), agent i enrolls
//! at and sends to server i mod n, and moves to the next one when its
//! collector refuses with 503 or cannot be reached, as behind a load
//! balancer; the failovers are counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use annexa_evidence::AgentId;
use annexa_evidence::api::EvidenceResponse;
use annexa_evidence::keys::PublicKey;
use annexa_evidence::receipt::Receipt;
use annexa_tests::load::Route;

#[derive(Debug, Parser)]
#[command(about = "Load generator for annexa-collector's ingest path")]
struct Args {
    /// Collector URL, https://127.0.0.1:PORT; repeat for several
    /// collectors sharing one database.
    #[arg(long, required = true)]
    server: Vec<String>,
    /// The collector's CA certificate (PEM).
    #[arg(long)]
    ca: std::path::PathBuf,
    /// An admin API token (to create enrollment tokens).
    #[arg(long)]
    admin_token: String,
    /// Concurrent agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Envelopes per agent.
    #[arg(long, default_value_t = 8)]
    per_agent: usize,
    /// Results per envelope.
    #[arg(long, default_value_t = 50)]
    results: usize,
    /// Offered load in envelopes/s, spread evenly over the agents (open
    /// loop: latency is measured from each envelope's scheduled time, so a
    /// collector that falls behind shows it). 0: every agent sends as fast
    /// as it gets receipts (closed loop, maximum throughput).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Envelopes per agent sent before the clock starts (agents the
    /// collector already knows: steady state rather than a fleet's first
    /// contact, which writes every check's latest result).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

struct Agent {
    id: AgentId,
    envelopes: Vec<(Vec<u8>, String)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca = std::fs::read(&args.ca).with_context(|| format!("{}", args.ca.display()))?;
    let http = annexa_tests::load::tls_client(&ca, args.agents, Duration::from_secs(60))?;
    let report = annexa_tests::load::realistic_scan(args.results)?;

    // Enroll every agent (not timed).
    let mut enrolled = Vec::with_capacity(args.agents);
    let mut collector_key = None;
    for chunk in (0..args.agents).collect::<Vec<_>>().chunks(64) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let http = http.clone();
            let server = args.server[i % args.server.len()].clone();
            let admin = args.admin_token.clone();
            tasks.push(tokio::spawn(async move {
                annexa_tests::load::enroll(&http, &server, &admin, i, serde_json::json!({})).await
            }));
        }
        for t in tasks {
            enrolled.push(t.await??);
        }
    }
    for a in &enrolled {
        collector_key.get_or_insert(PublicKey::from_b64(&a.response.collector_public_key)?);
    }
    let collector_key = collector_key.context("no agent enrolled")?;

    // Pre-sign every envelope on all cores (not timed).
    let per_agent = args.per_agent;
    let report = Arc::new(report);
    let signing_started = Instant::now();
    let agents: Vec<Agent> = {
        let enrolled = Arc::new(enrolled);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut handles = Vec::new();
        for t in 0..threads {
            let enrolled = enrolled.clone();
            let report = report.clone();
            handles.push(std::thread::spawn(move || {
                let mut out = Vec::new();
                for (i, a) in enrolled
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % threads == t)
                {
                    let mut previous: Option<String> = None;
                    let mut envelopes = Vec::with_capacity(per_agent);
                    for seq in 1..=per_agent as u64 {
                        let (bytes, digest) = a.envelope(seq, previous, None, (*report).clone());
                        previous = Some(digest.clone());
                        envelopes.push((bytes, digest));
                    }
                    out.push((
                        i,
                        Agent {
                            id: a.response.agent_id.clone(),
                            envelopes,
                        },
                    ));
                }
                out
            }));
        }
        let mut all: Vec<(usize, Agent)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, a)| a).collect()
    };
    let envelope_bytes = agents
        .first()
        .and_then(|a| a.envelopes.first())
        .map(|e| e.0.len())
        .unwrap_or(0);
    eprintln!(
        "prepared {} agents x {} envelopes of {} bytes ({} results) in {:.1}s",
        agents.len(),
        per_agent,
        envelope_bytes,
        report.results.len(),
        signing_started.elapsed().as_secs_f64()
    );

    // Warm-up (not timed): the first envelopes of every agent.
    let servers: Arc<[String]> = args.server.clone().into();
    // Long enough to ride out a collector's restart.
    let patience = Duration::from_secs(120);
    let mut agents = agents;
    let mut warm_receipts: Vec<Vec<(Vec<u8>, String)>> = Vec::new();
    {
        let mut tasks = Vec::new();
        for (i, agent) in agents.iter_mut().enumerate() {
            let first: Vec<(Vec<u8>, String)> = agent
                .envelopes
                .drain(..args.warmup.min(agent.envelopes.len()))
                .collect();
            let http = http.clone();
            let mut route = Route::new(servers.clone(), i);
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for (bytes, digest) in first {
                    let (status, body) = route
                        .post_envelope(&http, &bytes, Instant::now() + patience)
                        .await?;
                    if !status.is_success() {
                        bail!("warm-up: HTTP {status}: {}", String::from_utf8_lossy(&body));
                    }
                    out.push((body, digest));
                }
                anyhow::Ok(out)
            }));
        }
        for t in tasks {
            warm_receipts.push(t.await??);
        }
    }

    // The measured part: every agent sends its envelopes in order, concurrently.
    let started = Instant::now();
    let n_agents = agents.len();
    let mut tasks = Vec::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let http = http.clone();
        let mut route = Route::new(servers.clone(), i);
        let rate = args.rate;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(agent.envelopes.len());
            let mut receipts = Vec::with_capacity(agent.envelopes.len());
            for (k, (bytes, digest)) in agent.envelopes.into_iter().enumerate() {
                let t = if rate > 0.0 {
                    // Envelope k of agent i is due at (k * N + i) / rate.
                    let due = started + Duration::from_secs_f64((k * n_agents + i) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    due
                } else {
                    Instant::now()
                };
                let (status, body) = route
                    .post_envelope(&http, &bytes, Instant::now() + patience)
                    .await?;
                latencies.push(t.elapsed());
                if !status.is_success() {
                    bail!(
                        "agent {}: HTTP {status}: {}",
                        agent.id,
                        String::from_utf8_lossy(&body)
                    );
                }
                receipts.push((body, digest));
            }
            anyhow::Ok((agent.id, latencies, receipts, route.failovers))
        }));
    }
    let mut latencies = Vec::new();
    let mut all_receipts = Vec::new();
    let mut failovers = 0;
    for t in tasks {
        let (id, l, r, f) = t.await??;
        latencies.extend(l);
        all_receipts.push((id, r));
        failovers += f;
    }
    let elapsed = started.elapsed();

    // Every answer must be a valid receipt for exactly that envelope.
    let mut verified = 0usize;
    for ((id, receipts), warm) in all_receipts.iter().zip(&warm_receipts) {
        for (seq, (body, digest)) in warm.iter().chain(receipts.iter()).enumerate() {
            let resp: EvidenceResponse = serde_json::from_slice(body)?;
            Receipt::verify(
                &resp.receipt,
                &collector_key,
                digest,
                id.as_str(),
                seq as u64 + 1,
            )?;
            verified += 1;
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    };
    let n = latencies.len() as f64;
    let mode = if args.rate > 0.0 {
        format!("open loop at {:.0}/s offered", args.rate)
    } else {
        "closed loop".to_string()
    };
    println!(
        "ingest ({mode}, {} collector(s)): {} agents, {} envelopes ({} bytes, {} results each) in {:.2} s: {:.0} envelopes/s, {:.0} results/s, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} receipts verified; {} failovers",
        servers.len(),
        all_receipts.len(),
        latencies.len(),
        envelope_bytes,
        report.results.len(),
        elapsed.as_secs_f64(),
        n / elapsed.as_secs_f64(),
        n * report.results.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        verified,
        failovers
    );
    Ok(())
}
