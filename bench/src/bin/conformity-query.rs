//! Latency of the collector's conformity queries on a large synthetic fleet.
//!
//! Builds a store of HOSTS enrolled hosts (80% `env=prod`, 20%
//! `env=staging`), each with HISTORY chained envelopes whose latest results
//! cover CHECKS real built-in check ids (mostly pass, ~5% fail with an
//! observed value, ~1% error), written straight through the `Store` trait
//! (envelope bytes are small placeholders: this measures queries, not
//! signatures). Imports an SoA (default: examples/soa/iso27001-2013.toml),
//! starts the collector in-process (whose start reconciles every host
//! against the SoA before it serves), then times, one request at a time
//! over HTTPS with keep-alive and an auditor token:
//!
//! - `GET /v1/conformity` (the fleet table),
//! - `GET /v1/conformity/controls/{CONTROL}` (one control's host list),
//! - `GET /v1/conformity/hosts/{agent id}` (one host against every control),
//!
//! checking that each answers 200 with the expected number of hosts or
//! controls, and prints median, p90 and max latency, response sizes and the
//! process's RSS (the collector runs in this process).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;

use annexa_checks::CheckId;
use annexa_checks::pack::PackSet;
use annexa_checks::result::Status;
use annexa_checks::soa::{Format, Soa};
use annexa_collector::config::CollectorConfig;
use annexa_collector::conformity::RunProfile;
use annexa_collector::datadir::{self, DataDir};
use annexa_collector::store::{Accepted, Labels, LatestChange, NewAgent, Role, Store};
use annexa_collector::{clock, tokens};
use annexa_evidence::AgentId;
use annexa_evidence::keys::SigningKey;

// As the collector's binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_SOA: &str = include_str!("../../../examples/soa/iso27001-2013.toml");

#[derive(Debug, Parser)]
#[command(about = "Latency of annexa-collector's conformity queries on a synthetic fleet")]
struct Args {
    /// Hosts to enroll.
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    /// Envelopes of history per host (chained, sequence 1..=N).
    #[arg(long, default_value_t = 3)]
    history: u64,
    /// Built-in checks each host reports (those of --control first).
    #[arg(long, default_value_t = 50)]
    checks: usize,
    /// Timed requests per query.
    #[arg(long, default_value_t = 15)]
    requests: usize,
    /// Untimed requests per query before the timed ones.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// The control whose host list is queried.
    #[arg(long, default_value = "A.9.4.2")]
    control: String,
    /// Envelopes per `Store::append` while populating.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Enrollments in flight while populating.
    #[arg(long, default_value_t = 32)]
    enroll_concurrency: usize,
    /// SoA file (TOML) to import (default: the example 2013 SoA).
    #[arg(long)]
    soa: Option<PathBuf>,
    /// Directory to create the data directory in (default: the system
    /// temporary directory); removed at the end.
    #[arg(long)]
    tmp: Option<PathBuf>,
    /// Before starting the collector, replay the read-only phases of its
    /// start-up reconciliation (policy, agents, latest results, evaluation)
    /// and print their times: what start takes beyond them is writing the
    /// conformity rows.
    #[arg(long)]
    breakdown: bool,
    /// Seed of the synthetic results.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// SplitMix64: reproducible results without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One check's result: (status, observed).
type Result1 = (Status, Option<String>);

fn roll(rng: &mut Rng) -> Result1 {
    let x = rng.unit();
    if x < 0.05 {
        (
            Status::Fail,
            Some(format!("observed-{}", rng.next() % 1000)),
        )
    } else if x < 0.06 {
        (Status::Error, None)
    } else {
        (Status::Pass, None)
    }
}

struct Host {
    no: i64,
    id: String,
    key_id: String,
    labels: Labels,
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or_else(|| "?".to_string(), |kb| format!("{} MB", kb / 1024))
    };
    format!("VmRSS {}, peak VmHWM {}", field("VmRSS:"), field("VmHWM:"))
}

/// Enrolls `n` hosts, each with its own enrollment token.
async fn enroll_all(
    store: &Arc<dyn Store>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Host>> {
    let mut hosts = Vec::with_capacity(n);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(concurrency.max(1)) {
        let mut tasks = tokio::task::JoinSet::new();
        for &i in chunk {
            let store = store.clone();
            tasks.spawn(async move {
                let env = if i % 5 == 4 { "staging" } else { "prod" };
                let labels: Labels = [("env".to_string(), env.to_string())].into();
                let (token, _) =
                    annexa_collector::create_enroll_token(store.as_ref(), 3600, &labels).await?;
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                let key = SigningKey::from_seed(&seed).context("key from seed")?;
                let agent = NewAgent {
                    id: tokens::agent_id().map_err(anyhow::Error::msg)?,
                    key_id: key.public().key_id(),
                    public_key: key.public().to_b64(),
                    hostname: format!("host-{i:05}"),
                    machine_id_sha256: annexa_evidence::sha256_hex(
                        format!("bench-machine-{i}").as_bytes(),
                    ),
                    labels: Labels::new(),
                    facts: serde_json::json!({}),
                    enrolled_at: clock::now_rfc3339(),
                };
                let a = store
                    .enroll(&tokens::hash(&token), clock::now_unix(), agent)
                    .await?;
                let a = a.agent();
                anyhow::Ok((
                    i,
                    Host {
                        no: a.no,
                        id: a.id.clone(),
                        key_id: a.key_id.clone(),
                        labels: a.labels.clone(),
                    },
                ))
            });
        }
        let mut done = Vec::with_capacity(chunk.len());
        while let Some(r) = tasks.join_next().await {
            done.push(r??);
        }
        done.sort_by_key(|(i, _)| *i);
        hosts.extend(done.into_iter().map(|(_, h)| h));
    }
    Ok(hosts)
}

/// Appends `history` chained envelopes per host, round by round, in
/// batches of `batch` envelopes.
#[allow(clippy::too_many_arguments)]
async fn append_history(
    store: &dyn Store,
    log: &annexa_collector::log::Log,
    hosts: &[Host],
    checks: &[CheckId],
    history: u64,
    batch: usize,
    params: &BTreeMap<String, annexa_checks::expect::ParamValue>,
    now: i64,
    seed: u64,
) -> anyhow::Result<(usize, usize)> {
    let mut rng = Rng(seed);
    let mut latest: Vec<Vec<Result1>> = vec![Vec::new(); hosts.len()];
    let (mut envelopes, mut rows) = (0usize, 0usize);
    for seq in 1..=history {
        // Hourly history ending now.
        let at = now - (history - seq) as i64 * 3600;
        let received_at = clock::rfc3339(at);
        let profile = serde_json::to_string(&RunProfile {
            evidence_at: at,
            interval_seconds: Some(3600),
            params: params.clone(),
        })?;
        for (chunk_no, chunk) in hosts.chunks(batch.max(1)).enumerate() {
            let mut out = Vec::with_capacity(chunk.len());
            let mut staged = log.stage();
            for (k, h) in chunk.iter().enumerate() {
                let hi = chunk_no * batch.max(1) + k;
                let now_results: Vec<Result1> = checks.iter().map(|_| roll(&mut rng)).collect();
                let changes: Vec<LatestChange> = checks
                    .iter()
                    .zip(&now_results)
                    .enumerate()
                    .filter(|(j, (_, r))| latest[hi].get(*j) != Some(*r))
                    .map(|(_, (c, (s, o)))| LatestChange {
                        check_id: c.to_string(),
                        status: *s,
                        observed: o.clone(),
                    })
                    .collect();
                let count = |s: Status| now_results.iter().filter(|r| r.0 == s).count();
                let summary = serde_json::json!({
                    "pass": count(Status::Pass), "fail": count(Status::Fail),
                    "error": count(Status::Error), "not_applicable": 0,
                })
                .to_string();
                let results = serde_json::Value::Array(
                    checks
                        .iter()
                        .zip(&now_results)
                        .map(|(c, (s, _))| serde_json::json!({"check_id": c, "status": s}))
                        .collect(),
                )
                .to_string();
                // Placeholder bytes (about 1 KiB): not a signed envelope.
                let bytes = format!(
                    "{{\"bench\":\"{}\",\"sequence\":{seq},\"pad\":\"{}\"}}",
                    h.id,
                    "x".repeat(960)
                )
                .into_bytes();
                rows += changes.len();
                let sha256 = annexa_evidence::sha256_hex(&bytes);
                let (log_index, leaf_hash) = staged.push(&annexa_evidence::log::LogEntry {
                    agent_id: AgentId::new(&h.id),
                    key_id: h.key_id.clone(),
                    sequence: seq,
                    envelope_sha256: sha256.clone(),
                    accepted_at: received_at.clone(),
                });
                out.push(Accepted {
                    log_index,
                    leaf_hash,
                    agent_no: h.no,
                    sequence: seq,
                    previous_next: seq,
                    sha256,
                    received_at: received_at.clone(),
                    key_id: h.key_id.clone(),
                    rotate_to: None,
                    agent_time: None,
                    gap: None,
                    summary,
                    results,
                    bytes,
                    changes,
                    profile: Some(profile.clone()),
                    conformity: vec![],
                });
                latest[hi] = now_results;
            }
            envelopes += out.len();
            let (signed, append) = log.seal(&staged, false);
            store.append(&out, &append).await?;
            log.commit(staged, signed, false);
        }
    }
    Ok((envelopes, rows))
}

struct Timed {
    latencies: Vec<Duration>,
    bytes: usize,
    body: serde_json::Value,
}

async fn time_get(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    warmup: usize,
    requests: usize,
) -> anyhow::Result<Timed> {
    let mut latencies = Vec::with_capacity(requests);
    let mut last = Vec::new();
    for i in 0..warmup + requests {
        let started = Instant::now();
        let resp = http.get(url).bearer_auth(token).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        let took = started.elapsed();
        if !status.is_success() {
            bail!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        if i >= warmup {
            latencies.push(took);
        }
        last = body.to_vec();
    }
    latencies.sort();
    Ok(Timed {
        latencies,
        bytes: last.len(),
        body: serde_json::from_slice(&last).with_context(|| format!("{url}: not JSON"))?,
    })
}

fn figures(t: &Timed) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(t.latencies[((t.latencies.len() as f64 - 1.0) * p).round() as usize]);
    let size = if t.bytes >= 1 << 20 {
        format!("{:.1} MiB", t.bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", t.bytes as f64 / 1024.0)
    };
    format!(
        "median {:.1} ms, p90 {:.1} ms, max {:.1} ms over {} requests; response {size}",
        pct(0.5),
        pct(0.9),
        pct(1.0),
        t.latencies.len()
    )
}

/// Controls the SoA answers for a host with these labels: excluded ones for
/// every host, applicable ones whose scope matches.
fn controls_for(soa: &Soa, labels: &Labels) -> usize {
    soa.controls
        .iter()
        .filter(|c| !c.applicable || c.scope.matches(labels))
        .count()
}

/// Times what the collector's start-up reconciliation reads and computes
/// (annexa_collector::ingest::reconcile_all, without its writes).
async fn replay_reconcile(store: &dyn Store, packs: &PackSet) -> anyhow::Result<String> {
    use annexa_collector::conformity::{Cause, Latest, changes_for_host};
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let policy = annexa_collector::ingest::load_policy(store, packs)
        .await?
        .context("no SoA")?;
    let t_policy = ms(t);
    let t = Instant::now();
    let annexa_collector::store::HostRows {
        agents,
        states,
        latest: rows,
    } = store
        .host_rows(annexa_collector::store::Hosts::All, true)
        .await?;
    let n_rows = rows.len();
    let t_rows = ms(t);
    let t = Instant::now();
    let mut latest: std::collections::HashMap<i64, Latest> = Default::default();
    for (no, row) in rows {
        latest
            .entry(no)
            .or_default()
            .insert(CheckId::from(row.check_id), (row.status, row.observed));
    }
    let t_group = ms(t);
    let t = Instant::now();
    let (at, now) = (clock::now_rfc3339(), clock::now_unix());
    let empty = Latest::new();
    let mut changes = 0usize;
    let mut events = 0usize;
    for a in &agents {
        let Some(profile) = a
            .run_profile
            .as_deref()
            .and_then(|p| serde_json::from_str::<RunProfile>(p).ok())
        else {
            continue;
        };
        for (_, _, change) in changes_for_host(
            &policy,
            a.no,
            &a.labels,
            latest.get(&a.no).unwrap_or(&empty),
            &profile,
            &|_| None,
            Cause::Soa,
            &at,
            now,
        ) {
            changes += 1;
            events += usize::from(change.event.is_some());
        }
    }
    let t_eval = ms(t);
    Ok(format!(
        "reconcile replayed without writes: load SoA policy {t_policy:.0} ms, reading {} agents, {} stored states and {n_rows} latest results {t_rows:.0} ms, grouping {t_group:.0} ms, evaluating {t_eval:.0} ms -> {changes} conformity rows + {events} timeline entries to write",
        agents.len(),
        states.len()
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.hosts > 0 && args.history > 0 && args.requests > 0);
    let soa_text = match &args.soa {
        Some(p) => std::fs::read_to_string(p).with_context(|| p.display().to_string())?,
        None => DEFAULT_SOA.to_string(),
    };
    let soa_name = args
        .soa
        .as_ref()
        .map_or("iso27001-2013.toml".to_string(), |p| {
            p.display().to_string()
        });
    let packs = PackSet::load(true, &[], true).map_err(|e| anyhow::anyhow!("{e}"))?;
    let soa = annexa_checks::soa::lint(&soa_name, &soa_text, Format::Toml, &packs)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let coverage = soa.coverage(&packs);
    let control = annexa_checks::catalog::catalog()
        .control(soa.edition, &args.control)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .id
        .clone();
    let control_checks = coverage
        .get(&control)
        .filter(|c| !c.is_manual())
        .map(|c| c.checks.clone())
        .with_context(|| format!("{control} has no automated check in this SoA"))?;

    // The checks every host reports: the control's, then built-in order.
    let mut checks: Vec<CheckId> = control_checks
        .iter()
        .filter(|c| packs.check(c.as_str()).is_some())
        .cloned()
        .collect();
    for c in packs.checks() {
        if checks.len() >= args.checks {
            break;
        }
        if !checks.contains(&c.id) {
            checks.push(c.id.clone());
        }
    }
    checks.truncate(args.checks.max(control_checks.len()));
    // What an agent reports: the packs' defaults with the SoA's values.
    let mut params = packs
        .params_with(&BTreeMap::new())
        .map_err(anyhow::Error::msg)?
        .0;
    params.extend(soa.params());

    let tmp = match &args.tmp {
        Some(d) => tempfile::Builder::new()
            .prefix("annexa-conformity-bench")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("annexa-conformity-bench")
            .tempdir()?,
    };
    let data = tmp.path().join("data");
    let dir = DataDir::new(&data);
    datadir::init(&dir, &["127.0.0.1".to_string()], true)?;
    let config = CollectorConfig {
        data_dir: data.clone(),
        listen: "127.0.0.1:0".parse()?,
        ..CollectorConfig::default()
    };

    // Populate (not timed against the goal; printed).
    let populate = Instant::now();
    let store = annexa_collector::open_store(&config).await?;
    let key = std::sync::Arc::new(dir.load_signing_key()?);
    let log = annexa_collector::log::Log::open(
        store.as_ref(),
        key.clone(),
        &config.origin(&key.public()),
    )
    .await?;
    let hosts = enroll_all(&store, args.hosts, args.enroll_concurrency).await?;
    let enrolled = populate.elapsed();
    let now = clock::now_unix();
    let (envelopes, rows) = append_history(
        store.as_ref(),
        &log,
        &hosts,
        &checks,
        args.history,
        args.batch,
        &params,
        now,
        args.seed,
    )
    .await?;
    annexa_collector::ingest::store_checkpoint(store.as_ref(), &log).await?;
    let populated = populate.elapsed();
    let (soa_version, _) = annexa_collector::soa::import(
        store.as_ref(),
        &packs,
        &soa_name,
        &soa_text,
        Format::Toml,
        "bench",
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token =
        annexa_collector::create_api_token(store.as_ref(), "bench-auditor", Role::Auditor, None)
            .await?;
    let breakdown = if args.breakdown {
        Some(replay_reconcile(store.as_ref(), &packs).await?)
    } else {
        None
    };
    drop(store);
    let db_mb = std::fs::metadata(dir.database())
        .map(|m| m.len() / (1 << 20))
        .unwrap_or(0);
    println!(
        "population: {} hosts x {} envelopes ({} checks each, {} latest-result rows written) in {:.1} s (enrollment {:.1} s, envelopes {:.1} s); database {db_mb} MB in {}",
        hosts.len(),
        args.history,
        checks.len(),
        rows,
        populated.as_secs_f64(),
        enrolled.as_secs_f64(),
        (populated - enrolled).as_secs_f64(),
        tmp.path().display()
    );
    ensure!(envelopes == hosts.len() * args.history as usize);
    let automated = coverage.values().filter(|c| !c.is_manual()).count();
    println!(
        "SoA version {} ({}, ISO/IEC 27001:{}): {} controls, {} with automated checks; {control} maps {} checks: {}",
        soa_version.version,
        soa_name,
        soa.edition,
        soa.controls.len(),
        automated,
        control_checks.len(),
        control_checks.join(", ")
    );
    if let Some(b) = &breakdown {
        println!("{b}");
    }
    println!("RSS before start: {}", rss());

    // Start: reconciles every host against the SoA before serving.
    let started = Instant::now();
    let server = annexa_collector::start(&config).await?;
    let start_took = started.elapsed();
    println!(
        "start (reconcile {} hosts against SoA version {}): {:.0} ms; RSS after start: {}",
        hosts.len(),
        soa_version.version,
        start_took.as_secs_f64() * 1000.0,
        rss()
    );

    let ca = std::fs::read(dir.ca_cert())?;
    let http = annexa_tests::load::tls_client(&ca, 8, Duration::from_secs(300))?;
    let base = format!("https://{}", server.addr);

    // The fleet table.
    let fleet = time_get(
        &http,
        &format!("{base}/v1/conformity"),
        &token,
        args.warmup,
        args.requests,
    )
    .await?;
    let n = fleet.body["hosts"].as_u64().unwrap_or(0) as usize;
    ensure!(
        n == hosts.len(),
        "fleet summary counts {n} hosts, expected {}",
        hosts.len()
    );
    ensure!(fleet.body["soa_version"].as_i64() == Some(soa_version.version));
    println!("fleet summary ({n} hosts): {}", figures(&fleet));
    println!("  totals: {}", fleet.body["totals"]);

    // One control's host list.
    let in_scope = soa
        .control(control.as_str())
        .map(|c| hosts.iter().filter(|h| c.scope.matches(&h.labels)).count())
        .unwrap_or(0);
    let ctl = time_get(
        &http,
        &format!("{base}/v1/conformity/controls/{control}"),
        &token,
        args.warmup,
        args.requests,
    )
    .await?;
    let listed = ctl.body["hosts"].as_array().map_or(0, Vec::len);
    ensure!(
        listed == in_scope && listed > 0,
        "{control} lists {listed} hosts, expected {in_scope}"
    );
    let counts = &ctl.body["counts"];
    let evidenced = ["conformant", "nonconformant", "error"]
        .iter()
        .map(|s| counts[*s].as_u64().unwrap_or(0))
        .sum::<u64>();
    ensure!(
        evidenced as usize == listed,
        "{control}: only {evidenced} of {listed} hosts have a state from evidence: {counts}"
    );
    println!("control {control} ({listed} hosts): {}", figures(&ctl));
    println!("  counts: {counts}");

    // One host against every control.
    let h = &hosts[hosts.len() / 2];
    let expected = controls_for(&soa, &h.labels);
    let one = time_get(
        &http,
        &format!("{base}/v1/conformity/hosts/{}", h.id),
        &token,
        args.warmup,
        args.requests,
    )
    .await?;
    let controls = one.body["controls"].as_array().map_or(0, Vec::len);
    ensure!(
        controls == expected && one.body["host"].as_str() == Some(h.id.as_str()),
        "host {}: {controls} controls, expected {expected}",
        h.id
    );
    println!("host {} ({controls} controls): {}", h.id, figures(&one));
    println!("  counts: {}", one.body["counts"]);
    // The same host by its host name (the route falls back to listing agents).
    let by_name = time_get(
        &http,
        &format!("{base}/v1/conformity/hosts/host-{:05}", hosts.len() / 2),
        &token,
        args.warmup,
        args.requests,
    )
    .await?;
    ensure!(by_name.body["host"].as_str() == Some(h.id.as_str()));
    println!(
        "host by name host-{:05}: {}",
        hosts.len() / 2,
        figures(&by_name)
    );

    println!("collector process RSS (in-process): {}", rss());
    server.shutdown(Duration::from_secs(5)).await;

    // A restart: the states are stored now, so reconciliation only reads.
    let started = Instant::now();
    let server = annexa_collector::start(&config).await?;
    println!(
        "restart (conformity already stored, nothing to write): {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
