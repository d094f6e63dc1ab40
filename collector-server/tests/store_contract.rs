//! The `Store` contract: every backend must pass these, the embedded SQLite
//! store and the PostgreSQL store (on a fresh database of the server at
//! `ANNEXA_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! which `.ci/run` starts).

use std::collections::BTreeMap;

use annexa_checks::result::Status;
use annexa_collector::store::postgres::PgStore;
use annexa_collector::store::sqlite::SqliteStore;
use annexa_collector::store::{
    Accepted, CheckpointRow, ConformityChange, CurrentState, Enrolled, HostRows, Hosts,
    KeyTransitionRow, LatestChange, LogAppend, NewAgent, NewPerson, NewSoa, PersonRole, Role,
    StateEvent, Store, StoreError, TimelineQuery,
};
use annexa_tests::PgScratch;

const NOW: &str = "2026-11-23T10:00:00Z";
const NOW_UNIX: i64 = 1_795_000_000;

fn new_agent(id: &str, key: &str) -> NewAgent {
    NewAgent {
        id: id.into(),
        key_id: key.into(),
        public_key: "AAAA".into(),
        hostname: format!("{id}.example"),
        machine_id_sha256: "ab".repeat(32),
        labels: BTreeMap::from([("role".to_string(), "web".to_string())]),
        facts: serde_json::json!({"os": "debian"}),
        enrolled_at: NOW.into(),
    }
}

fn accepted(agent_no: i64, seq: u64, changes: &[(&str, &str)]) -> Accepted {
    Accepted {
        agent_no,
        sequence: seq,
        previous_next: seq,
        sha256: format!("{seq:064x}"),
        received_at: NOW.into(),
        key_id: String::new(), // filled in by `keyed`
        rotate_to: None,
        agent_time: Some(format!("2026-11-23T11:59:{:02}Z", seq % 60)),
        gap: None,
        summary: r#"{"pass":1,"fail":0,"error":0,"not_applicable":0}"#.into(),
        results: r#"[{"check_id":"a","status":"pass"}]"#.into(),
        bytes: format!("envelope {seq}").into_bytes(),
        changes: changes
            .iter()
            .map(|(c, s)| LatestChange {
                check_id: c.to_string(),
                status: Status::parse(s).unwrap(),
                observed: Some(format!("{c}={s}")),
            })
            .collect(),
        profile: None,
        conformity: Vec::new(),
        log_index: 0,
        leaf_hash: [0; 32],
    }
}

/// Appends a batch at the end of the log (leaf hashes stand in: the store
/// keeps what it is given; the log module computes real ones).
/// Each envelope signed with its agent's key as the store holds it.
async fn keyed(store: &dyn Store, batch: &mut [Accepted]) {
    let agents = store.agents().await.unwrap();
    for a in batch.iter_mut().filter(|a| a.key_id.is_empty()) {
        if let Some(r) = agents.iter().find(|r| r.no == a.agent_no) {
            a.key_id = r.key_id.clone();
        }
    }
}

async fn append(store: &dyn Store, mut batch: Vec<Accepted>) -> Result<(), StoreError> {
    keyed(store, &mut batch).await;
    let mut next = store.log_size().await.unwrap();
    for a in &mut batch {
        a.log_index = next;
        a.leaf_hash = [next as u8; 32];
        next += 1;
    }
    store.append(&batch, &LogAppend::default()).await
}

fn change(
    agent_no: i64,
    control: &str,
    state: &str,
    previous: Option<&str>,
    seq: Option<u64>,
    at: &str,
) -> ConformityChange {
    ConformityChange {
        agent_no,
        control_id: control.into(),
        soa_version: 1,
        current: Some(CurrentState {
            state: state.into(),
            detail: r#"{"failing":[{"check":"ssh.x","observed":"yes"}]}"#.into(),
            since: at.into(),
            since_sequence: seq,
        }),
        event: Some(StateEvent {
            state: state.into(),
            previous: previous.map(str::to_string),
            at: at.into(),
            cause: if seq.is_some() { "envelope" } else { "soa" }.into(),
            sequence: seq,
            detail: "{}".into(),
        }),
    }
}

async fn soa_versions_and_conformity_with_their_timeline(store: &dyn Store) {
    assert!(store.soa_versions().await.unwrap().is_empty());
    let new = |src: &str| NewSoa {
        edition: "2013".into(),
        format: "toml".into(),
        source: src.into(),
        sha256: "00".repeat(32),
        imported_by: "alice".into(),
        imported_at: NOW.into(),
        comment: Some("first".into()),
    };
    let v1 = store.import_soa(new("one")).await.unwrap();
    let v2 = store.import_soa(new("two")).await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(store.soa(2).await.unwrap().unwrap().1, "two");
    assert_eq!(store.soa_versions().await.unwrap()[0].imported_by, "alice");
    assert!(store.soa(3).await.unwrap().is_none());

    token(store, "tc", NOW_UNIX + 60).await;
    let a = store
        .enroll("tc", NOW_UNIX, new_agent("ag-c", "kc"))
        .await
        .unwrap()
        .agent()
        .clone();
    // Conformity changes commit with the envelope that caused them.
    let mut env = accepted(a.no, 1, &[("ssh.x", "fail")]);
    env.profile = Some(r#"{"evidence_at":1,"params":{}}"#.into());
    env.conformity = vec![change(
        a.no,
        "A.9.4.2",
        "nonconformant",
        None,
        Some(1),
        "2026-11-23T10:00:00Z",
    )];
    append(store, vec![env]).await.unwrap();
    assert_eq!(
        store
            .agent("ag-c")
            .await
            .unwrap()
            .unwrap()
            .run_profile
            .as_deref(),
        Some(r#"{"evidence_at":1,"params":{}}"#)
    );
    let recovered = change(
        a.no,
        "A.9.4.2",
        "conformant",
        Some("nonconformant"),
        None,
        "2026-11-23T11:00:00Z",
    );
    assert_eq!(
        store
            .record_conformity(std::slice::from_ref(&recovered))
            .await
            .unwrap(),
        1
    );
    // The same transition again (a second collector that saw the same
    // thing) is not recorded twice, nor one from a state no longer stored;
    // a change of another control in the same call still is.
    let from_elsewhere = change(
        a.no,
        "A.9.4.2",
        "stale",
        Some("nonconformant"),
        None,
        "2026-11-23T11:00:01Z",
    );
    let mut other = change(
        a.no,
        "A.12.4.1",
        "conformant",
        None,
        None,
        "2026-11-23T11:00:00Z",
    );
    assert_eq!(
        store
            .record_conformity(&[recovered, from_elsewhere, other.clone()])
            .await
            .unwrap(),
        1
    );
    other.current = None;
    other.event.as_mut().unwrap().previous = Some("conformant".into());
    other.event.as_mut().unwrap().state = "excluded".into();
    assert_eq!(store.record_conformity(&[other]).await.unwrap(), 1);
    let states = store.host_rows(Hosts::All, true).await.unwrap().states;
    let mine: Vec<_> = states.iter().filter(|s| s.agent_no == a.no).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].current.state, "conformant");
    let q = TimelineQuery {
        agent_no: Some(a.no),
        control: Some("A.9.4.2".into()),
        limit: 10,
        ..TimelineQuery::default()
    };
    let t = store.timeline(&q).await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].state.as_str(), t[0].sequence, t[0].host.as_str()),
        ("nonconformant", Some(1), "ag-c")
    );
    assert_eq!(t[1].previous.as_deref(), Some("nonconformant"));
    let since = TimelineQuery {
        since: Some("2026-11-23T10:30:00Z".into()),
        ..q.clone()
    };
    assert_eq!(store.timeline(&since).await.unwrap().len(), 1);
    let failing = TimelineQuery {
        state: Some("nonconformant".into()),
        ..q.clone()
    };
    assert_eq!(
        store.timeline(&failing).await.unwrap()[0].at,
        "2026-11-23T10:00:00Z"
    );
    let paged = TimelineQuery {
        after_id: t[0].id,
        ..q
    };
    assert_eq!(store.timeline(&paged).await.unwrap().len(), 1);
    // Removing a current row keeps its history.
    let mut gone = change(
        a.no,
        "A.9.4.2",
        "excluded",
        Some("conformant"),
        None,
        "2026-11-23T12:00:00Z",
    );
    gone.current = None;
    store.record_conformity(&[gone]).await.unwrap();
    assert!(
        store
            .host_rows(Hosts::All, true)
            .await
            .unwrap()
            .states
            .iter()
            .all(|s| s.agent_no != a.no)
    );
    let all = store.host_rows(Hosts::All, true).await.unwrap().latest;
    assert!(
        all.iter()
            .any(|(no, r)| *no == a.no && r.check_id == "ssh.x" && r.status == Status::Fail)
    );
    // Without an SoA to evaluate, latest results are not read.
    let without = store.host_rows(Hosts::All, false).await.unwrap();
    assert!(without.latest.is_empty() && !without.agents.is_empty());
    // What another collector reloads for the hosts at some log indices:
    // this one's envelope is the last entry.
    let end = store.log_size().await.unwrap();
    let rows = store
        .host_rows(Hosts::InLog(end - 1..end), true)
        .await
        .unwrap();
    assert_eq!(
        rows.agents
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["ag-c"]
    );
    assert!(rows.states.is_empty(), "its only state was removed");
    assert_eq!(
        rows.latest
            .iter()
            .map(|(no, r)| (*no, r.check_id.as_str(), r.status.as_str()))
            .collect::<Vec<_>>(),
        [(a.no, "ssh.x", "fail")]
    );
    assert_eq!(
        store
            .host_rows(Hosts::InLog(end..end + 5), true)
            .await
            .unwrap(),
        HostRows::default()
    );

    // A window: the state at its start, then the changes in it.
    let window = |from: &'static str, to: &'static str| async move {
        store
            .timeline_window(from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|w| w.entry)
            .filter(|e| e.host == "ag-c" && e.control == "A.9.4.2")
            .map(|e| (e.state, e.at))
            .collect::<Vec<_>>()
    };
    let st = |s: &str, at: &str| (s.to_string(), at.to_string());
    assert_eq!(
        window("2026-11-23T10:30:00Z", "2026-11-23T11:30:00Z").await,
        vec![
            st("nonconformant", "2026-11-23T10:00:00Z"),
            st("conformant", "2026-11-23T11:00:00Z")
        ]
    );
    assert_eq!(
        window("2026-11-23T11:00:00Z", "2026-11-23T13:00:00Z").await,
        vec![
            st("conformant", "2026-11-23T11:00:00Z"),
            st("excluded", "2026-11-23T12:00:00Z")
        ],
        "a change at the start is the state then, not a change in the window"
    );
    assert!(
        window("2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")
            .await
            .is_empty()
    );
    // The entry an envelope caused comes with that envelope.
    let caused = store
        .timeline_window("2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z")
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.entry.host == "ag-c" && w.entry.control == "A.9.4.2")
        .unwrap();
    assert_eq!(
        caused.envelope.and_then(|e| e.sha256),
        Some(format!("{:064x}", 1))
    );
}

async fn token(store: &dyn Store, hash: &str, expires: i64) {
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    store
        .create_enroll_token(hash, &labels, expires, NOW)
        .await
        .unwrap();
}

async fn enrollment_is_single_use_and_idempotent_per_key(store: &dyn Store) {
    token(store, "t1", NOW_UNIX + 3600).await;
    let a = store
        .enroll("t1", NOW_UNIX, new_agent("ag-1", "k1"))
        .await
        .unwrap();
    let Enrolled::New(a) = a else {
        panic!("new agent expected")
    };
    assert_eq!(a.next_sequence, 1);
    assert_eq!(
        a.labels.get("env").map(String::as_str),
        Some("prod"),
        "token labels are applied"
    );
    assert_eq!(a.labels.get("role").map(String::as_str), Some("web"));
    // Same key, same token: the same agent.
    let again = store
        .enroll("t1", NOW_UNIX, new_agent("ag-other", "k1"))
        .await
        .unwrap();
    assert_eq!(again, Enrolled::Existing(a.clone()));
    // Another key cannot use the token.
    let used = store
        .enroll("t1", NOW_UNIX, new_agent("ag-2", "k2"))
        .await
        .unwrap_err();
    assert_eq!(
        used,
        StoreError::Denied("enrollment token already used".into())
    );
    // Unknown and expired tokens.
    assert!(
        matches!(store.enroll("nope", NOW_UNIX, new_agent("ag-3", "k3")).await, Err(StoreError::Denied(m)) if m.contains("unknown"))
    );
    token(store, "t-old", NOW_UNIX - 1).await;
    assert!(
        matches!(store.enroll("t-old", NOW_UNIX, new_agent("ag-4", "k4")).await, Err(StoreError::Denied(m)) if m.contains("expired"))
    );
    assert!(
        store.agent_by_key("k4").await.unwrap().is_none(),
        "nothing is recorded for a refused enrollment"
    );
}

async fn revoked_agents_cannot_enroll_or_append(store: &dyn Store) {
    token(store, "t5", NOW_UNIX + 60).await;
    let a = store
        .enroll("t5", NOW_UNIX, new_agent("ag-5", "k5"))
        .await
        .unwrap()
        .agent()
        .clone();
    store.revoke_agent("ag-5", NOW).await.unwrap();
    assert!(
        store
            .agent("ag-5")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    token(store, "t6", NOW_UNIX + 60).await;
    assert!(matches!(
        store.enroll("t6", NOW_UNIX, new_agent("ag-6", "k5")).await,
        Err(StoreError::Denied(_))
    ));
    assert!(matches!(
        append(store, vec![accepted(a.no, 1, &[])]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.revoke_agent("ag-none", NOW).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn append_moves_the_chain_and_keeps_bytes(store: &dyn Store) {
    token(store, "t7", NOW_UNIX + 60).await;
    let a = store
        .enroll("t7", NOW_UNIX, new_agent("ag-7", "k7"))
        .await
        .unwrap()
        .agent()
        .clone();
    append(
        store,
        vec![
            accepted(a.no, 1, &[("a", "pass"), ("b", "fail")]),
            accepted(a.no, 2, &[("b", "pass")]),
        ],
    )
    .await
    .unwrap();
    let head = store.agent("ag-7").await.unwrap().unwrap();
    assert_eq!(head.next_sequence, 3);
    assert_eq!(
        head.last_digest.as_deref(),
        Some(format!("{:064x}", 2).as_str())
    );
    let (meta, bytes) = store.envelope(a.no, 2).await.unwrap().unwrap();
    assert_eq!(bytes, b"envelope 2");
    assert_eq!(meta.sequence, 2);
    // Both clocks are kept: the collector's and the agent's at delivery.
    assert_eq!(meta.received_at, NOW);
    assert_eq!(meta.agent_time.as_deref(), Some("2026-11-23T11:59:02Z"));
    assert_eq!(store.envelopes(a.no, 0, 10).await.unwrap().len(), 2);
    assert_eq!(store.envelopes(a.no, 1, 10).await.unwrap()[0].sequence, 2);
    // Newest first below a sequence (reports walk back from the newest).
    let back = store.envelopes_before(a.no, u64::MAX, 10).await.unwrap();
    assert_eq!(
        back.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let back = store.envelopes_before(a.no, 2, 10).await.unwrap();
    assert_eq!(back.iter().map(|m| m.sequence).collect::<Vec<_>>(), vec![1]);
    assert!(
        store
            .envelopes_before(a.no, 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.envelopes_before(a.no, 3, 1).await.unwrap().len(), 1);
    let latest = store.latest(a.no).await.unwrap();
    assert_eq!(latest.len(), 2);
    assert_eq!(
        (
            latest[1].check_id.as_str(),
            latest[1].status.as_str(),
            latest[1].since_sequence
        ),
        ("b", "pass", 2)
    );
    assert_eq!(latest[0].since_sequence, 1);
}

async fn a_batch_with_a_stale_chain_head_stores_nothing(store: &dyn Store) {
    token(store, "t8", NOW_UNIX + 60).await;
    let a = store
        .enroll("t8", NOW_UNIX, new_agent("ag-8", "k8"))
        .await
        .unwrap()
        .agent()
        .clone();
    append(store, vec![accepted(a.no, 1, &[])]).await.unwrap();
    // Second envelope fine, third claims a head the store does not have.
    let mut bad = accepted(a.no, 3, &[("x", "fail")]);
    bad.previous_next = 5;
    let err = append(store, vec![accepted(a.no, 2, &[]), bad])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.agent("ag-8").await.unwrap().unwrap().next_sequence,
        2,
        "the whole batch rolled back"
    );
    assert!(store.envelope(a.no, 2).await.unwrap().is_none());
    assert!(store.latest(a.no).await.unwrap().is_empty());
    // Replaying an accepted sequence is a conflict, not a second copy.
    let dup = append(store, vec![accepted(a.no, 1, &[])])
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup:?}");
}

async fn api_tokens_by_hash_with_roles_and_revocation(store: &dyn Store) {
    store
        .create_api_token("h-admin", "ops", Role::Admin, None, NOW)
        .await
        .unwrap();
    store
        .create_api_token(
            "h-aud",
            "auditor-1",
            Role::Auditor,
            Some(NOW_UNIX + 10),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        store.api_token("h-admin").await.unwrap().unwrap().role,
        Role::Admin
    );
    let aud = store.api_token("h-aud").await.unwrap().unwrap();
    assert_eq!(
        (aud.role, aud.expires_at),
        (Role::Auditor, Some(NOW_UNIX + 10))
    );
    assert!(store.api_token("unknown").await.unwrap().is_none());
    assert_eq!(store.revoke_api_token("ops", NOW).await.unwrap(), 1);
    assert!(
        store
            .api_token("h-admin")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(store.revoke_api_token("ops", NOW).await.unwrap(), 0);
}

async fn concurrent_enrollments_all_succeed(store: std::sync::Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let hash = format!("ct-{i}");
            token(store.as_ref(), &hash, NOW_UNIX + 60).await;
            store
                .enroll(
                    &hash,
                    NOW_UNIX,
                    new_agent(&format!("ag-c{i}"), &format!("kc{i}")),
                )
                .await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Ok(Enrolled::New(_))));
    }
}

async fn the_log_appends_with_its_envelopes_and_prunes_payloads_only(store: &dyn Store) {
    token(store, "tl", NOW_UNIX + 60).await;
    let a = store
        .enroll("tl", NOW_UNIX, new_agent("ag-l", "kl"))
        .await
        .unwrap()
        .agent()
        .clone();
    let start = store.log_size().await.unwrap();
    let first = accepted(a.no, 1, &[]);
    let mut second = accepted(a.no, 2, &[]);
    second.received_at = "2026-11-24T00:00:00Z".into();
    let cp = CheckpointRow {
        size: start + 2,
        root: [7; 32],
        note: "origin\n2\nroot\n\n— origin sig\n".into(),
        signed_at: NOW.into(),
    };
    let mut batch = vec![first, second];
    keyed(store, &mut batch).await;
    for (k, e) in batch.iter_mut().enumerate() {
        e.log_index = start + k as u64;
        e.leaf_hash = [k as u8 + 1; 32];
    }
    // A batch that does not start where the log ends stores nothing.
    let mut wrong = batch.clone();
    for e in &mut wrong {
        e.log_index += 1;
    }
    assert!(matches!(
        store.append(&wrong, &LogAppend::default()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.log_size().await.unwrap(), start);
    // A batch that begins before the log's end (another collector
    // appended): the writer is shown those leaves under the lock and may
    // place the batch after them; refusing stores nothing.
    if start > 0 {
        let mut behind = batch.clone();
        for e in &mut behind {
            e.log_index -= 1;
        }
        let mut shown = Vec::new();
        assert!(matches!(
            store
                .append_relog(&behind, &LogAppend::default(), &mut |others| {
                    shown.push(others.to_vec());
                    None
                })
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(shown.len(), 1);
        // Shown up to the log's end: the batch began one entry before it.
        assert_eq!(behind[0].log_index + shown[0].len() as u64, start);
        assert_eq!(shown[0], store.log_leaves(start - 1, start).await.unwrap());
        assert_eq!(store.log_size().await.unwrap(), start);
    }
    let mut relogged = 0;
    let behind_by = start.min(1);
    let mut placed = batch.clone();
    for e in &mut placed {
        e.log_index -= behind_by;
    }
    store
        .append_relog(
            &placed,
            &LogAppend {
                tiles: vec![],
                checkpoint: None,
            },
            &mut |_| {
                relogged += 1;
                Some(LogAppend {
                    tiles: vec![],
                    checkpoint: Some(cp.clone()),
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(
        relogged, behind_by,
        "shown the others' leaves only if behind"
    );
    assert_eq!(store.log_size().await.unwrap(), start + 2);
    assert_eq!(
        store.log_leaves(start, start + 2).await.unwrap(),
        vec![[1; 32], [2; 32]]
    );
    assert_eq!(store.checkpoints().await.unwrap().last(), Some(&cp));
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(cp.clone()));
    // The same size again is ignored, not an error.
    store.record_checkpoint(&cp).await.unwrap();
    assert_eq!(store.checkpoints().await.unwrap().len(), 1);
    let smaller = CheckpointRow {
        size: start + 1,
        ..cp.clone()
    };
    store.record_checkpoint(&smaller).await.unwrap();
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(cp.clone()));
    let meta = store.envelope(a.no, 2).await.unwrap().unwrap().0;
    assert_eq!(meta.log_index, Some(start + 1));
    let rows = store.log_export(start, start + 2, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].agent_id, "ag-l");
    assert_eq!(rows[0].key_id, "kl");
    assert_eq!(rows[1].bytes.as_deref(), Some(&b"envelope 2"[..]));
    assert!(store.unlogged().await.unwrap().is_empty());
    // Retention removes payloads older than the cutoff (every envelope of
    // this store up to and including sequence 1 here) and nothing else.
    let cutoff = "2026-11-23T12:00:00Z";
    let before = store.prune(cutoff, NOW, "1y", 1000).await.unwrap();
    // All but one: the envelope that declared agent ag-k's key rotation
    // is kept, as what proves its next key was its own.
    assert_eq!(before.pruned, start);
    let rotated = store.agent("ag-k").await.unwrap().unwrap();
    let declaring = store.envelope(rotated.no, 1).await.unwrap().unwrap();
    assert_eq!(declaring.0.pruned_at, None);
    assert!(!declaring.1.is_empty());
    let pruned = store.envelope(a.no, 1).await.unwrap().unwrap();
    assert_eq!(pruned.0.pruned_at.as_deref(), Some(NOW));
    assert!(pruned.1.is_empty());
    assert_eq!(pruned.0.sha256, format!("{:064x}", 1));
    let rows = store.log_export(start, start + 2, 10).await.unwrap();
    assert_eq!(rows[0].bytes, None);
    assert_eq!(rows[0].pruned_at.as_deref(), Some(NOW));
    assert!(rows[1].bytes.is_some());
    assert_eq!(store.log_size().await.unwrap(), start + 2);
    let runs = store.retention_runs().await.unwrap();
    assert_eq!((runs.len(), runs[0].pruned), (1, start));
    // Nothing more to do: no new run is recorded.
    store.prune(cutoff, NOW, "1y", 1000).await.unwrap();
    assert_eq!(store.retention_runs().await.unwrap().len(), 1);
}

async fn a_key_rotation_retires_the_old_key_with_its_last_sequence(store: &dyn Store) {
    token(store, "tk", NOW_UNIX + 60).await;
    let a = store
        .enroll("tk", NOW_UNIX, new_agent("ag-k", "kold"))
        .await
        .unwrap()
        .agent()
        .clone();
    let mut declaring = accepted(a.no, 1, &[]);
    declaring.rotate_to = Some(("knew".into(), "BBBB".into()));
    append(store, vec![declaring]).await.unwrap();
    let now = store.agent("ag-k").await.unwrap().unwrap();
    assert_eq!(
        (now.key_id.as_str(), now.public_key.as_str()),
        ("knew", "BBBB")
    );
    assert!(store.agent_by_key("kold").await.unwrap().is_none());
    let (who, old) = store.retired_key("kold").await.unwrap().unwrap();
    assert_eq!(
        (who.id.as_str(), old.until_sequence, old.public_key.as_str()),
        ("ag-k", 1, "AAAA")
    );
    assert_eq!(store.retired_keys().await.unwrap()["ag-k"], vec![old]);
    // The old key moves the chain no more, and cannot enroll again.
    let mut stale = accepted(a.no, 2, &[]);
    stale.key_id = "kold".into();
    assert!(matches!(
        append(store, vec![stale]).await,
        Err(StoreError::Conflict(_))
    ));
    append(store, vec![accepted(a.no, 2, &[])]).await.unwrap();
    token(store, "tk2", NOW_UNIX + 60).await;
    assert!(matches!(
        store.enroll("tk2", NOW_UNIX, new_agent("ag-k2", "kold")).await,
        Err(StoreError::Denied(m)) if m.contains("retired")
    ));
}

async fn collector_key_transitions_are_kept_in_order_at_the_log_size(store: &dyn Store) {
    let size = store.log_size().await.unwrap();
    let cp = |size: u64| CheckpointRow {
        size,
        root: [size as u8; 32],
        note: format!("origin\n{size}\nroot\n\n— origin old\n"),
        signed_at: NOW.into(),
    };
    let row = |n: u64, size: u64| KeyTransitionRow {
        size,
        note: format!("transition {n}\n"),
        rotated_at: NOW.into(),
    };
    // Only at the size the log holds: another collector may have appended.
    assert!(matches!(
        store.record_key_transition(&row(0, size + 1), &cp(size + 1)).await,
        Err(StoreError::Conflict(m)) if m.contains("another collector")
    ));
    assert!(store.key_transitions().await.unwrap().is_empty());
    store
        .record_key_transition(&row(1, size), &cp(size))
        .await
        .unwrap();
    store
        .record_key_transition(&row(2, size), &cp(size))
        .await
        .unwrap();
    let notes: Vec<String> = store
        .key_transitions()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.note)
        .collect();
    assert_eq!(notes, ["transition 1\n", "transition 2\n"]);
    // A checkpoint at that size is stored with the transition (one stored
    // before at the same size is kept).
    assert_eq!(
        store.latest_checkpoint().await.unwrap().map(|c| c.size),
        Some(size)
    );
}

fn new_person(email: &str, key: &str, roles: &[PersonRole]) -> NewPerson {
    NewPerson {
        email: email.into(),
        name: format!("{email}'s name"),
        roles: roles.to_vec(),
        key_id: key.into(),
        public_key: format!("pub-{key}"),
        created_by: "ops".into(),
        now: NOW.into(),
    }
}

async fn people_with_roles_keys_rotation_and_revocation(store: &dyn Store) {
    store
        .add_person(&new_person(
            "Jane@Example.org",
            "kj1",
            &[PersonRole::Owner, PersonRole::Approver],
        ))
        .await
        .unwrap();
    store
        .add_person(&new_person(
            "sam@example.org",
            "ks1",
            &[PersonRole::Approver],
        ))
        .await
        .unwrap();
    // The same e-mail in another case, or a key already taken: refused.
    let dup = store
        .add_person(&new_person("jane@example.org", "kj9", &[PersonRole::Owner]))
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, StoreError::Conflict(m) if m.contains("registered already")),
        "{dup:?}"
    );
    let dup_key = store
        .add_person(&new_person("kim@example.org", "ks1", &[PersonRole::Owner]))
        .await
        .unwrap_err();
    assert!(matches!(dup_key, StoreError::Conflict(_)), "{dup_key:?}");
    assert!(
        store
            .people()
            .await
            .unwrap()
            .iter()
            .all(|p| p.email != "kim@example.org"),
        "a refused registration leaves nothing behind"
    );

    let jane = store.person_by_key("kj1").await.unwrap().unwrap();
    assert_eq!(jane.email, "jane@example.org");
    assert_eq!(jane.roles, [PersonRole::Owner, PersonRole::Approver]);
    assert_eq!(jane.current_key().unwrap().key_id, "kj1");

    // Rotation: the old key still names the person (what it signed stays
    // verifiable) but is retired; the new one is current.
    store
        .rotate_person_key("jane@example.org", "kj2", "pub-kj2", "2026-11-24T10:00:00Z")
        .await
        .unwrap();
    let jane = store.person_by_key("kj1").await.unwrap().unwrap();
    assert_eq!(jane.keys.len(), 2);
    assert_eq!(
        jane.keys[0].retired_at.as_deref(),
        Some("2026-11-24T10:00:00Z")
    );
    assert_eq!(jane.current_key().unwrap().key_id, "kj2");
    let taken = store
        .rotate_person_key("jane@example.org", "ks1", "pub-ks1", NOW)
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::Conflict(_)), "{taken:?}");
    assert_eq!(
        store
            .person_by_key("kj2")
            .await
            .unwrap()
            .unwrap()
            .current_key()
            .unwrap()
            .key_id,
        "kj2",
        "a refused rotation keeps the current key"
    );

    store.revoke_person("SAM@example.org", NOW).await.unwrap();
    assert!(
        store
            .person_by_key("ks1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(matches!(
        store.revoke_person("sam@example.org", NOW).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .rotate_person_key("sam@example.org", "ks2", "pub", NOW)
            .await,
        Err(StoreError::Denied(_))
    ));
    assert!(matches!(
        store
            .rotate_person_key("nobody@example.org", "kn", "pub", NOW)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.person_by_key("unknown").await.unwrap().is_none());
    let emails: Vec<String> = store
        .people()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.email)
        .collect();
    assert_eq!(emails, ["jane@example.org", "sam@example.org"]);
}

async fn run_contract(store: &dyn Store) {
    store.ping().await.unwrap();
    enrollment_is_single_use_and_idempotent_per_key(store).await;
    revoked_agents_cannot_enroll_or_append(store).await;
    append_moves_the_chain_and_keeps_bytes(store).await;
    a_key_rotation_retires_the_old_key_with_its_last_sequence(store).await;
    a_batch_with_a_stale_chain_head_stores_nothing(store).await;
    api_tokens_by_hash_with_roles_and_revocation(store).await;
    people_with_roles_keys_rotation_and_revocation(store).await;
    soa_versions_and_conformity_with_their_timeline(store).await;
    the_log_appends_with_its_envelopes_and_prunes_payloads_only(store).await;
    collector_key_transitions_are_kept_in_order_at_the_log_size(store).await;
    assert_eq!(store.agents().await.unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).await.unwrap();
    run_contract(&store).await;
    concurrent_enrollments_all_succeed(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn sqlite_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        token(&store, "t", NOW_UNIX + 60).await;
        let a = store
            .enroll("t", NOW_UNIX, new_agent("ag-r", "kr"))
            .await
            .unwrap()
            .agent()
            .clone();
        append(&store, vec![accepted(a.no, 1, &[("a", "pass")])])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.agent("ag-r").await.unwrap().unwrap().next_sequence, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_meets_the_contract() {
    let db = PgScratch::new();
    let store = PgStore::connect(&db.url, 8).await.unwrap();
    run_contract(&store).await;
    concurrent_enrollments_all_succeed(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_store_survives_reconnecting_and_migrates_once() {
    let db = PgScratch::new();
    {
        let store = PgStore::connect(&db.url, 2).await.unwrap();
        token(&store, "t", NOW_UNIX + 60).await;
        let a = store
            .enroll("t", NOW_UNIX, new_agent("ag-r", "kr"))
            .await
            .unwrap()
            .agent()
            .clone();
        append(&store, vec![accepted(a.no, 1, &[("a", "pass")])])
            .await
            .unwrap();
    }
    // A second collector on the same database: migrations already applied,
    // the chain where the first left it.
    let store = PgStore::connect(&db.url, 2).await.unwrap();
    assert_eq!(store.agent("ag-r").await.unwrap().unwrap().next_sequence, 2);
}

#[tokio::test]
async fn a_bad_database_url_is_named_without_its_password() {
    let e = PgStore::connect("postgres://annexa:s3cret@127.0.0.1:1/annexa", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("127.0.0.1:1"), "{e}");
    assert!(!e.contains("s3cret"), "the password leaked: {e}");
}
