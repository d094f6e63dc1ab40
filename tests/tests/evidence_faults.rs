//! End to end, with faults: the real collector stopped or killed while real
//! agents scan and send, agents killed between spooling and sending or in
//! the middle of a delivery, and a spool too small to keep everything.
//! Afterwards every agent's chain on the collector is complete (or has a
//! declared gap), in order, without duplicates, and every receipt an agent
//! kept names an envelope the collector stored.
//!
//! The harness is in common/mod.rs.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use annexa_evidence::sha256_hex;

use common::{
    Collector, Daemon, Host, WAIT, distinct, one_to, random_u64, receipts_match, show,
    sign_statement, statement_of, stderr, stdout, stored_chain, wait_for,
};

/// Every second, so that the daemon keeps producing while things break.
const EVERY_SECOND: &str = "schedule = \"* * * * * *\"\n";

fn sequences(chain: &[common::Stored]) -> Vec<u64> {
    chain.iter().map(|s| s.sequence).collect()
}

#[test]
fn a_collector_stopped_while_the_daemon_scans_gets_every_envelope_once_in_order() {
    let mut c = Collector::start();
    let host = Host::enrolled(&c, EVERY_SECOND);
    let id = host.agent_id();
    let mut d = host.daemon();
    wait_for(
        "two deliveries",
        WAIT,
        || host.receipts().len() >= 2,
        || d.log(),
    );
    assert_eq!(c.stop().code(), Some(0), "{}", c.log());
    // The daemon goes on scanning every second and fails to deliver.
    wait_for(
        "three envelopes spooled while the collector is down",
        WAIT,
        || host.spooled().len() >= 3,
        || d.log(),
    );
    assert!(d.log().contains("delivery failed"), "{}", d.log());
    assert!(d.exited().is_none(), "{}", d.log());

    c.restart();
    wait_for(
        "the spool to drain into the restarted collector",
        WAIT,
        || {
            let (head, _) = host.chain();
            host.spooled().is_empty() && c.sequences(&id).last() == Some(&head)
        },
        || format!("{}\nspool {:?}", d.log(), host.spooled()),
    );
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log());
    // Whatever the daemon produced as it stopped goes with one more run.
    host.run_once_ok();
    assert!(host.spooled().is_empty());

    let (head, _) = host.chain();
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(
        sequences(&chain),
        one_to(head),
        "contiguous, nothing missing"
    );
    // Exactly once, in order: one receipt per envelope, ascending.
    assert_eq!(receipts_match(&c, &host, &chain), one_to(head));
    assert!(host.receipts().iter().all(|r| !r.receipt.duplicate));
}

#[test]
fn envelopes_spooled_by_runs_that_never_sent_are_delivered_in_order_by_the_next_run() {
    let c = Collector::start();
    let host = Host::enrolled(&c, "");
    let id = host.agent_id();
    for n in 1..=3 {
        let o = host.run_once(&["--no-send"]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert!(
            stdout(&o).contains(&format!("{n} envelope(s) spooled, not sent")),
            "{}",
            show(&o)
        );
    }
    assert_eq!(host.spooled(), [1, 2, 3]);
    assert!(c.sequences(&id).is_empty());

    // Killed after writing envelope 4 to the spool and before recording it
    // in chain.json: the file is there, the chain head still says 3.
    let third = std::fs::read(host.spool_file(3)).unwrap();
    let mut st = statement_of(&third);
    st["predicate"]["sequence"] = json!(4);
    st["predicate"]["previous"] = json!(sha256_hex(&third));
    let fourth = sign_statement(&st, &host.key());
    std::fs::write(host.spool_file(4), &fourth).unwrap();
    std::fs::set_permissions(host.spool_file(4), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(host.chain(), (3, Some(sha256_hex(&third))));

    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stderr(&o).contains("adopting spooled envelope 4"),
        "{}",
        show(&o)
    );
    assert!(
        stdout(&o).contains("produced envelope 5 ")
            && stdout(&o).contains("delivered 5, 0 still spooled"),
        "{}",
        show(&o)
    );
    assert!(host.spooled().is_empty());
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(sequences(&chain), one_to(5));
    assert_eq!(
        chain[3].bytes, fourth,
        "the adopted envelope, byte for byte"
    );
    assert_eq!(receipts_match(&c, &host, &chain), one_to(5));
}

#[test]
fn a_daemon_killed_at_random_moments_while_sending_leaves_a_complete_chain() {
    // Envelopes wait up to 50 ms for a group commit: a wider window in
    // which a delivery is in flight.
    let c = Collector::start_with("batch_wait_ms = 50\n");
    let host = Host::enrolled(&c, EVERY_SECOND);
    let id = host.agent_id();
    let produced = |d: &Daemon| d.log().matches("produced envelope").count();
    let mut moments = Vec::new();
    for _ in 0..4 {
        let mut d = host.daemon();
        wait_for(
            "an envelope to deliver",
            WAIT,
            || produced(&d) >= 1,
            || d.log(),
        );
        // The sender starts on it at once; kill somewhere in its delivery.
        let ms = random_u64() % 120;
        std::thread::sleep(Duration::from_millis(ms));
        d.kill();
        moments.push((ms, host.spooled(), host.receipts().len()));
    }
    eprintln!("kills (ms after producing, spool, receipts): {moments:?}");
    // The next run delivers whatever the killed daemons left.
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(0), "{}\nkills: {moments:?}", show(&o));
    assert!(host.spooled().is_empty());

    let (head, _) = host.chain();
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(
        sequences(&chain),
        one_to(head),
        "complete and without duplicates; kills (ms after producing, spool, receipts): {moments:?}"
    );
    // A daemon killed after the collector committed but before it kept the
    // receipt sends the envelope again and keeps the duplicate's receipt.
    let receipts = receipts_match(&c, &host, &chain);
    assert_eq!(distinct(&receipts), one_to(head).into_iter().collect());
    assert!(receipts.windows(2).all(|w| w[0] <= w[1]), "{receipts:?}");
}

#[test]
fn a_collector_killed_mid_ingest_loses_nothing_it_acknowledged() {
    // Envelopes wait up to 200 ms for a group commit: the kill finds
    // batches being gathered and committed.
    let mut c = Collector::start_with("batch_wait_ms = 200\n");
    let hosts: Vec<Host> = (0..10).map(|_| Host::enrolled(&c, EVERY_SECOND)).collect();
    let mut daemons: Vec<Daemon> = hosts.iter().map(Host::daemon).collect();
    let logs = |daemons: &[Daemon]| {
        daemons
            .iter()
            .map(Daemon::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    wait_for(
        "a first delivery from every agent",
        WAIT,
        || hosts.iter().all(|h| !h.receipts().is_empty()),
        || logs(&daemons),
    );
    // Kill while several agents have an envelope out (spooled, being sent).
    let in_flight = || hosts.iter().filter(|h| !h.spooled().is_empty()).count();
    let start = std::time::Instant::now();
    while in_flight() < 3 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(random_u64() % 100));
    let out_at_kill = in_flight();
    c.kill();
    let heads: Vec<u64> = hosts.iter().map(|h| h.chain().0).collect();
    std::thread::sleep(Duration::from_millis(500));
    c.restart();
    wait_for(
        "every agent to deliver an envelope produced after the restart",
        WAIT,
        || {
            hosts
                .iter()
                .zip(&heads)
                .all(|(h, head)| h.receipts().iter().any(|r| r.receipt.sequence > *head))
        },
        || logs(&daemons),
    );
    for d in &mut daemons {
        assert_eq!(d.terminate().code(), Some(0), "{}", d.log());
    }

    let failed = daemons
        .iter()
        .filter(|d| d.log().contains("delivery failed"))
        .count();
    let duplicates: usize = hosts
        .iter()
        .map(|h| h.receipts().iter().filter(|r| r.receipt.duplicate).count())
        .sum();
    eprintln!(
        "collector killed with {out_at_kill} agents sending; {failed} agents saw a delivery fail; \
         {duplicates} envelopes were acknowledged again after the restart"
    );
    for h in &hosts {
        let id = h.agent_id();
        let chain = stored_chain(&c, &id, &h.key().public());
        let n = chain.len() as u64;
        assert_eq!(sequences(&chain), one_to(n), "{id}: contiguous");
        // Every receipt names an envelope stored with the same digest.
        let receipts = receipts_match(&c, h, &chain);
        assert!(
            receipts.windows(2).all(|w| w[0] <= w[1]),
            "{id}: {receipts:?}"
        );
        // Nothing lost: what is not stored is still spooled, and a spooled
        // envelope the collector has is the same bytes.
        let (head, _) = h.chain();
        let spooled = h.spooled();
        for s in &spooled {
            if let Some(stored) = chain.iter().find(|x| x.sequence == *s) {
                assert_eq!(std::fs::read(h.spool_file(*s)).unwrap(), stored.bytes);
            }
        }
        let all: BTreeSet<u64> = sequences(&chain).into_iter().chain(spooled).collect();
        assert_eq!(
            all,
            one_to(head).into_iter().collect(),
            "{id}: nothing lost"
        );
    }
}

#[test]
fn a_full_spool_drops_old_envelopes_and_the_collector_accepts_the_declared_gap() {
    let mut c = Collector::start();
    // Room for no more than the newest envelope.
    let host = Host::enrolled(&c, "spool_max_bytes = 1\n");
    let id = host.agent_id();
    host.run_once_ok();
    assert_eq!(c.stop().code(), Some(0), "{}", c.log());

    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("delivery failed"), "{}", show(&o));
    assert_eq!(host.spooled(), [2]);
    let o = host.run_once(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("spool full"), "{}", show(&o));
    assert!(
        stdout(&o).contains("recorded a gap: dropped [2]"),
        "{}",
        show(&o)
    );
    assert_eq!(host.spooled(), [3]);
    let third = statement_of(&std::fs::read(host.spool_file(3)).unwrap());
    assert_eq!(third["predicate"]["gap"]["dropped"], json!([2]));

    // The collector is back; the daemon's sender delivers envelope 3, gap
    // and all, while its first scan runs.
    c.restart();
    let mut d = host.daemon();
    wait_for(
        "envelopes 3 and 4",
        WAIT,
        || c.sequences(&id).len() >= 3,
        || d.log(),
    );
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log());
    let chain = stored_chain(&c, &id, &host.key().public());
    assert_eq!(sequences(&chain)[..3], [1, 3, 4]);
    assert_eq!(chain[1].gap.as_deref(), Some(&[2u64][..]));
    assert_eq!(chain[1].meta["gap"], json!([2]));
    assert_eq!(chain[2].gap, None);
    assert_eq!(chain[2].previous.as_deref(), Some(chain[1].sha256.as_str()));
    let receipts = receipts_match(&c, &host, &chain);
    assert_eq!(receipts[..3], [1, 3, 4]);
}
