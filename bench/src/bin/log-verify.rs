//! Benchmark: full verification of an evidence log bundle (issue 5 target:
//! at least 20,000 entries/s for a 1-million-entry log, signatures
//! included, using both cores).
//!
//! Builds a bundle the way `annexa-collector log export` writes one: AGENTS
//! agents with chained, really signed envelopes (a realistic scan cut to
//! --results results: about 2 KiB an envelope), their leaves, and a signed
//! checkpoint every 100,000 entries and at the end. Not timed. Then runs
//! the verifier (`annexa_evidence::audit::verify_bundle`, what `annexa
//! verify log --bundle` calls) --runs times and prints entries/s per run and
//! the median. Run through bench/log.sh.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use annexa_evidence::AgentId;
use annexa_evidence::dsse::{IN_TOTO_PAYLOAD_TYPE, sign};
use annexa_evidence::keys::SigningKey;
use annexa_evidence::log::{
    AgentKey, BUNDLE_FORMAT, BundleEntry, End, EntryTag, Header, LogEntry, Record, StoredCheckpoint,
};
use annexa_evidence::merkle::MemoryTree;
use annexa_evidence::note::{Checkpoint, Verifier};
use annexa_evidence::statement::{AgentInfo, ScanPredicate, scan_statement};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Entries in the log.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Agents the entries are spread over.
    #[arg(long, default_value_t = 1000)]
    agents: u64,
    /// Results per envelope.
    #[arg(long, default_value_t = 3)]
    results: usize,
    /// Verifier threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Verification runs.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Directory for the bundle (default: the system temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let path = tmp.path().join("log.bundle");
    let report = annexa_tests::load::realistic_scan(args.results)?;
    let collector = SigningKey::from_seed(&[42u8; 32]).ok_or_else(|| anyhow::anyhow!("seed"))?;
    let origin = "annexa/bench";
    let verifier = Verifier::new(origin, collector.public())?;
    let keys: Vec<SigningKey> = (0..args.agents)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i + 1).to_le_bytes());
            SigningKey::from_seed(&seed).ok_or_else(|| anyhow::anyhow!("seed"))
        })
        .collect::<Result<_, _>>()?;
    let ids: Vec<AgentId> = (0..args.agents)
        .map(|i| AgentId::new(format!("ag-bench-{i:06}")))
        .collect();
    let machine = annexa_evidence::sha256_hex(b"bench-machine");

    let built = Instant::now();
    // Envelopes are signed on every core, a round of one per agent at a time.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let rounds = args.entries.div_ceil(args.agents);
    let mut previous: Vec<Option<String>> = vec![None; args.agents as usize];
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    line(
        &mut out,
        &Record::Header(Header {
            format: BUNDLE_FORMAT.into(),
            origin: origin.into(),
            exported_at: "2026-11-23T00:00:00Z".into(),
            size: args.entries,
            retention: None,
        }),
    )?;
    for (id, key) in ids.iter().zip(&keys) {
        line(
            &mut out,
            &Record::Agent(AgentKey {
                id: id.clone(),
                key_id: key.public().key_id(),
                public_key: key.public().to_b64(),
                hostname: id.to_string(),
                enrolled_at: "2026-01-01T00:00:00Z".into(),
                revoked_at: None,
                retired_keys: Vec::new(),
            }),
        )?;
    }
    let mut tree = MemoryTree::new();
    let mut checkpoints = Vec::new();
    let mut entries: Vec<BundleEntry> = Vec::new();
    let mut index = 0u64;
    for round in 0..rounds {
        let seq = round + 1;
        let n = (args.entries - index).min(args.agents) as usize;
        let signed: Vec<(usize, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (keys, ids, previous, report, machine) =
                        (&keys, &ids, &previous, &report, &machine);
                    s.spawn(move || {
                        (0..n)
                            .filter(|a| a % threads == t)
                            .map(|a| {
                                let predicate = ScanPredicate {
                                    agent: AgentInfo {
                                        id: ids[a].clone(),
                                        version: "bench".into(),
                                        key_id: keys[a].public().key_id(),
                                    },
                                    sequence: seq,
                                    previous: previous[a].clone(),
                                    labels: Default::default(),
                                    gap: None,
                                    interval_seconds: None,
                                    log_alert: None,
                                    key_rotation: None,
                                    scan: report.clone(),
                                };
                                let st = serde_json::to_vec(&scan_statement(predicate, machine))
                                    .unwrap_or_default();
                                (a, sign(IN_TOTO_PAYLOAD_TYPE, &st, &keys[a]).to_json())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<(usize, Vec<u8>)> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            all.sort_by_key(|(a, _)| *a);
            all
        });
        for (a, bytes) in signed {
            let digest = annexa_evidence::sha256_hex(&bytes);
            let entry = LogEntry {
                agent_id: ids[a].clone(),
                key_id: keys[a].public().key_id(),
                sequence: seq,
                envelope_sha256: digest.clone(),
                accepted_at: "2026-11-23T00:00:00Z".into(),
            };
            let leaf = entry.leaf_hash();
            tree.push(leaf);
            previous[a] = Some(digest.clone());
            let text = String::from_utf8(bytes)?;
            entries.push(BundleEntry {
                kind: EntryTag::Entry,
                index,
                agent: entry.agent_id,
                key_id: entry.key_id,
                sequence: seq,
                envelope_sha256: digest,
                accepted_at: entry.accepted_at,
                leaf_hash: annexa_evidence::encoding::hex(&leaf),
                envelope: Some(serde_json::value::RawValue::from_string(text)?),
                pruned_at: None,
            });
            index += 1;
            if index.is_multiple_of(100_000) || index == args.entries {
                let cp = Checkpoint {
                    origin: origin.into(),
                    size: index,
                    root: tree.root(),
                };
                checkpoints.push(cp.sign(&collector)?);
            }
        }
        if entries.len() >= 50_000 || index == args.entries {
            spill(&path, &mut entries)?;
        }
    }
    for note in &checkpoints {
        line(
            &mut out,
            &Record::Checkpoint(StoredCheckpoint {
                note: note.clone(),
                signed_at: "2026-11-23T00:00:00Z".into(),
            }),
        )?;
    }
    // Entries were spilled to a side file in order; append them now.
    out.flush()?;
    drop(out);
    join_spill(&path)?;
    let mut out = std::fs::OpenOptions::new().append(true).open(&path)?;
    serde_json::to_writer(
        &mut out,
        &Record::End(End {
            entries: args.entries,
        }),
    )?;
    out.write_all(b"\n")?;
    drop(out);
    let size = std::fs::metadata(&path)?.len();
    println!(
        "built a bundle of {} entries from {} agents ({} results each): {:.2} GB, {} checkpoints, in {:.1} s",
        args.entries,
        args.agents,
        args.results,
        size as f64 / 1e9,
        checkpoints.len(),
        built.elapsed().as_secs_f64()
    );

    let threads = args.threads.unwrap_or(threads);
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let started = Instant::now();
        let file = std::fs::File::open(&path)?;
        let v = annexa_evidence::audit::verify_bundle(
            std::io::BufReader::with_capacity(1 << 20, file),
            &verifier,
            &[],
            threads,
        )?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            v.ok() && v.envelopes_verified == args.entries,
            "the bundle did not verify: {:?}",
            &v.problems[..v.problems.len().min(5)]
        );
        let rate = args.entries as f64 / secs;
        println!(
            "run {run}: verified {} entries ({} envelope signatures, {} checkpoints) in {secs:.2} s on {threads} threads: {rate:.0} entries/s",
            v.entries, v.envelopes_verified, v.checkpoints_verified
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median: {:.0} entries/s over {} runs (target: at least 20000)",
        rates[rates.len() / 2],
        rates.len()
    );
    Ok(())
}

/// Entry lines go to a side file as they are produced (the bundle's order
/// puts checkpoints, known only at the end, before them).
fn spill(path: &std::path::Path, entries: &mut Vec<BundleEntry>) -> anyhow::Result<()> {
    let side = path.with_extension("entries");
    let mut f = BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(side)?,
    );
    for e in entries.drain(..) {
        serde_json::to_writer(&mut f, &e)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// One record as a JSON line.
fn line(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn join_spill(path: &std::path::Path) -> anyhow::Result<()> {
    let side = path.with_extension("entries");
    let mut from = std::fs::File::open(&side)?;
    let mut to = std::fs::OpenOptions::new().append(true).open(path)?;
    std::io::copy(&mut from, &mut to)?;
    std::fs::remove_file(side)?;
    Ok(())
}
