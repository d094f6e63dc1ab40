//! Benchmark: inclusion and consistency proofs from the collector's log at
//! ten million leaves (issue 5 target: an inclusion proof in under 5 ms).
//!
//! Builds a log of --leaves leaves in a fresh SQLite store: one enrolled
//! agent, leaves computed by the collector's own staging code
//! ([`annexa_collector::log::Log`]), written straight into `log_entries`
//! and `log_tiles` in large transactions (the envelope rows play no part
//! in proofs and would only make the fixture take hours). Not timed. Then
//! opens the log as a restarted collector does (timed: start-up check), and
//! answers --queries inclusion proofs for random leaves and as many
//! consistency proofs for random sizes, each through `Log::inclusion` /
//! `Log::consistency` (what the API handlers call: tiles read from the
//! store, upper levels from memory), checking a sample of them against the
//! signed root. Prints median, p99 and max per run, and the median of the
//! runs' medians. Run through bench/log.sh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use annexa_collector::log::Log;
use annexa_collector::store::sqlite::SqliteStore;
use annexa_collector::store::{NewAgent, Store};
use annexa_collector::{clock, tokens};
use annexa_evidence::AgentId;
use annexa_evidence::keys::SigningKey;
use annexa_evidence::log::LogEntry;
use annexa_evidence::merkle::{verify_consistency, verify_inclusion};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Leaves in the log.
    #[arg(long, default_value_t = 10_000_000)]
    leaves: u64,
    /// Proofs of each kind per run.
    #[arg(long, default_value_t = 2000)]
    queries: usize,
    /// Runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Directory for the database (default: the system temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// A small deterministic generator (xorshift): reproducible query sets.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn stats(mut d: Vec<Duration>) -> (f64, f64, f64) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    (
        ms(d[d.len() / 2]),
        ms(d[(d.len() * 99 / 100).min(d.len() - 1)]),
        ms(d[d.len() - 1]),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.leaves >= 2, "--leaves must be at least 2");
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let db = tmp.path().join("collector.db");
    let store = SqliteStore::open(&db).await?;
    let key = Arc::new(SigningKey::from_seed(&[7u8; 32]).ok_or_else(|| anyhow::anyhow!("seed"))?);
    let origin = "annexa/bench";

    // One agent for every leaf's foreign key.
    store
        .create_enroll_token(
            "bench",
            &Default::default(),
            i64::MAX,
            "2026-01-01T00:00:00Z",
        )
        .await?;
    let agent_key = SigningKey::from_seed(&[8u8; 32]).ok_or_else(|| anyhow::anyhow!("seed"))?;
    let agent = store
        .enroll(
            "bench",
            clock::now_unix(),
            NewAgent {
                id: tokens::agent_id().map_err(anyhow::Error::msg)?,
                key_id: agent_key.public().key_id(),
                public_key: agent_key.public().to_b64(),
                hostname: "bench".into(),
                machine_id_sha256: "00".repeat(32),
                labels: Default::default(),
                facts: serde_json::json!({}),
                enrolled_at: clock::now_rfc3339(),
            },
        )
        .await?
        .agent()
        .clone();

    let built = Instant::now();
    let log = Log::open(&store, key.clone(), origin).await?;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Off),
        )
        .await?;
    const BATCH: u64 = 200_000;
    const ROWS: usize = 5000;
    let mut done = 0u64;
    while done < args.leaves {
        let n = BATCH.min(args.leaves - done);
        let mut staged = log.stage();
        let mut rows = Vec::with_capacity(n as usize);
        for i in done..done + n {
            let e = LogEntry {
                agent_id: AgentId::new(&agent.id),
                key_id: agent.key_id.clone(),
                sequence: i + 1,
                envelope_sha256: format!("{i:064x}"),
                accepted_at: "2026-11-23T00:00:00Z".into(),
            };
            let (idx, leaf) = staged.push(&e);
            rows.push((idx, e, leaf));
        }
        let (signed, append) = log.seal(&staged, false);
        let mut tx = pool.begin().await?;
        for chunk in rows.chunks(ROWS) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO log_entries (idx, agent_no, sequence, envelope_sha256, accepted_at, leaf_hash) ",
            );
            q.push_values(chunk, |mut b, (idx, e, leaf)| {
                b.push_bind(*idx as i64)
                    .push_bind(agent.no)
                    .push_bind(e.sequence as i64)
                    .push_bind(&e.envelope_sha256)
                    .push_bind(&e.accepted_at)
                    .push_bind(&leaf[..]);
            });
            q.build().execute(&mut *tx).await?;
        }
        for (idx, hash) in &append.tiles {
            sqlx::query("INSERT INTO log_tiles (idx, hash) VALUES (?, ?)")
                .bind(*idx as i64)
                .bind(&hash[..])
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        log.commit(staged, signed, false);
        done += n;
        eprint!("\rbuilding: {done}/{} leaves", args.leaves);
    }
    eprintln!();
    annexa_collector::ingest::store_checkpoint(&store, &log).await?;
    pool.close().await;
    drop(log);
    println!(
        "built a log of {} leaves ({:.2} GB database) in {:.1} s",
        args.leaves,
        std::fs::metadata(&db)?.len() as f64 / 1e9,
        built.elapsed().as_secs_f64()
    );

    // As a restarted collector: load tiles, check the stored checkpoint.
    let opened = Instant::now();
    let log = Log::open(&store, key, origin).await?;
    println!(
        "opened the log (tiles loaded, root checked against the stored checkpoint) in {:.0} ms",
        opened.elapsed().as_secs_f64() * 1e3
    );
    let n = log.size();
    let root = log.latest().root;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut inclusion_medians = Vec::new();
    let mut consistency_medians = Vec::new();
    for run in 1..=args.runs {
        let mut times = Vec::with_capacity(args.queries);
        for q in 0..args.queries {
            let i = rng.below(n);
            let t = Instant::now();
            let (leaf, proof) = log.inclusion(&store, i, n).await?;
            times.push(t.elapsed());
            if q % 100 == 0 {
                let stored = store.log_leaves(i, i + 1).await?;
                anyhow::ensure!(stored[0] == leaf, "leaf {i} differs from the stored one");
                verify_inclusion(&leaf, i, n, &proof, &root)?;
            }
        }
        let (med, p99, max) = stats(times);
        println!(
            "run {run}: inclusion proof at size {n}: median {med:.3} ms, p99 {p99:.3} ms, max {max:.3} ms ({} proofs)",
            args.queries
        );
        inclusion_medians.push(med);
        let mut times = Vec::with_capacity(args.queries);
        for q in 0..args.queries {
            let m = 1 + rng.below(n - 1);
            let t = Instant::now();
            let proof = log.consistency(&store, m, n).await?;
            times.push(t.elapsed());
            if q % 100 == 0 {
                let old = log.root_at(&store, m).await?;
                verify_consistency(m, n, &proof, &old, &root)?;
            }
        }
        let (med, p99, max) = stats(times);
        println!(
            "run {run}: consistency proof to size {n}: median {med:.3} ms, p99 {p99:.3} ms, max {max:.3} ms"
        );
        consistency_medians.push(med);
    }
    inclusion_medians.sort_by(f64::total_cmp);
    consistency_medians.sort_by(f64::total_cmp);
    println!(
        "median of run medians: inclusion {:.3} ms (target: under 5 ms), consistency {:.3} ms",
        inclusion_medians[inclusion_medians.len() / 2],
        consistency_medians[consistency_medians.len() / 2]
    );
    Ok(())
}
