use std::collections::BTreeMap;
use std::sync::Arc;

use annexa_checks::pack::PackSet;
use annexa_checks::result::Status;
use annexa_checks::soa::parse_toml;

use super::index::{Filter, HostEntry, Index, Stored};
use super::*;

const E2013: &str = include_str!("../../../examples/soa/iso27001-2013.toml");

fn policy(text: &str) -> Policy {
    let packs = PackSet::load(true, &[], true).unwrap();
    Policy::new(7, parse_toml("soa.toml", text).unwrap(), &packs)
}

fn all_pass(p: &Policy, control: &str) -> Latest {
    p.coverage[control]
        .checks
        .iter()
        .map(|c| (c.clone(), (Status::Pass, None)))
        .collect()
}

fn profile(p: &Policy, at: i64) -> RunProfile {
    RunProfile {
        evidence_at: at,
        interval_seconds: Some(3600),
        params: p.params.clone(),
    }
}

const NOW: i64 = 1_800_000_000;

fn automated_ids(p: &Policy) -> Vec<ControlId> {
    p.soa
        .controls
        .iter()
        .filter(|c| p.is_automated(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect()
}

#[test]
fn states_from_evidence() {
    let p = policy(E2013);
    let prof = profile(&p, NOW);
    let control = "A.9.4.2";
    let mut l = all_pass(&p, control);
    assert_eq!(
        from_evidence(&p, control, &l, &prof).state,
        State::Conformant
    );
    let first = p.coverage[control].checks[0].clone();
    l.insert(first.clone(), (Status::Fail, Some("yes".into())));
    let ev = from_evidence(&p, control, &l, &prof);
    assert_eq!(ev.state, State::Nonconformant);
    assert_eq!(
        ev.detail.failing,
        vec![Failing {
            check: first.clone(),
            observed: Some("yes".into())
        }]
    );
    l.insert(first.clone(), (Status::Error, None));
    assert_eq!(from_evidence(&p, control, &l, &prof).state, State::Error);
    l.remove(&first);
    let ev = from_evidence(&p, control, &l, &prof);
    assert_eq!(ev.state, State::NoEvidence);
    assert_eq!(ev.detail.missing, vec![first.clone()]);
    let na: Latest = p.coverage[control]
        .checks
        .iter()
        .map(|c| (c.clone(), (Status::NotApplicable, None)))
        .collect();
    assert_eq!(
        from_evidence(&p, control, &na, &prof).state,
        State::NoEvidence
    );
}

#[test]
fn evidence_with_other_parameters_is_stale() {
    // The 2013 example sets session_timeout_seconds = 600 on A.9.4.2; the
    // session checks read it, so evidence evaluated with 900 does not count.
    let p = policy(E2013);
    assert_eq!(
        p.params
            .get("session_timeout_seconds")
            .map(ToString::to_string)
            .as_deref(),
        Some("600")
    );
    let control = p
        .coverage
        .iter()
        .find(|(_, c)| c.checks.iter().any(|x| x == "session.shell-tmout"))
        .map(|(k, _)| k.clone())
        .unwrap();
    let mut prof = profile(&p, NOW);
    prof.params.insert(
        "session_timeout_seconds".into(),
        annexa_checks::expect::ParamValue::Int(900),
    );
    let ev = from_evidence(&p, control.as_str(), &all_pass(&p, control.as_str()), &prof);
    assert_eq!(ev.state, State::Stale);
    assert!(
        ev.detail
            .reason
            .unwrap()
            .contains("session_timeout_seconds=900 (the SoA sets 600)")
    );
}

#[test]
fn freshness_windows() {
    let p = policy(E2013);
    let prof = profile(&p, NOW);
    // The header says 2h; A.12.6.1 says 1d.
    assert_eq!(p.freshness("A.9.4.2", Some(&prof)), 7200);
    assert_eq!(p.freshness("A.12.6.1", Some(&prof)), 86400);
    let c = p.control("A.9.4.2").unwrap();
    let prod: crate::store::Labels = [("env".to_string(), "prod".to_string())].into();
    let at = |now| decide(&p, c, true, &prod, Some((&prof, || State::Conformant)), now);
    assert_eq!(at(NOW + 7200), Decision::Evidence(State::Conformant));
    let aged = at(NOW + 7201);
    assert_eq!(aged.state(), Some(State::Stale));
    let Decision::Overdue { age, window } = aged else {
        panic!("{aged:?}")
    };
    assert!(stale_reason(age, window).contains("2h0m old"));
    // Without a freshness in the SoA: twice the agent's interval.
    let p2 = policy(&E2013.replace("freshness = \"2h\"\n", ""));
    assert_eq!(p2.freshness("A.9.4.2", Some(&prof)), 7200);
    let mut prof2 = prof.clone();
    prof2.interval_seconds = Some(600);
    assert_eq!(p2.freshness("A.9.4.2", Some(&prof2)), 1200);
    // What an agent declares is capped: a host that claims to run once a
    // century still goes stale within a week of its last evidence.
    prof2.interval_seconds = Some(u64::MAX);
    assert_eq!(p2.freshness("A.9.4.2", Some(&prof2)), 7 * 86400);
    // The SoA itself may ask for longer.
    let p3 = policy(&E2013.replace("freshness = \"2h\"", "freshness = \"30d\""));
    assert_eq!(p3.freshness("A.9.4.2", Some(&prof2)), 30 * 86400);
}

#[test]
fn changes_record_state_changes_once_with_their_cause() {
    let p = policy(E2013);
    let prof = profile(&p, NOW);
    let labels: crate::store::Labels = [("env".to_string(), "prod".to_string())].into();
    let l = all_pass(&p, "A.9.4.2");
    let none = |_: &str| None;
    let first = changes_for_host(
        &p,
        1,
        &labels,
        &l,
        &prof,
        &none,
        Cause::Envelope(4),
        "t1",
        NOW,
    );
    let a942 = first.iter().find(|(c, _, _)| c == "A.9.4.2").unwrap();
    let ev = a942.2.event.as_ref().unwrap();
    assert_eq!(
        (ev.state.as_str(), ev.cause.as_str(), ev.sequence),
        ("conformant", "envelope", Some(4))
    );
    assert_eq!(ev.previous, None);
    // Same evidence again: nothing changes.
    let stored: BTreeMap<ControlId, Stored> = first
        .iter()
        .filter_map(|(c, s, _)| s.clone().map(|s| (c.clone(), s)))
        .collect();
    let prev = |c: &str| stored.get(c).cloned();
    let again = changes_for_host(
        &p,
        1,
        &labels,
        &l,
        &prof,
        &prev,
        Cause::Envelope(5),
        "t2",
        NOW,
    );
    assert!(again.is_empty(), "{again:?}");
    // A failure: one event, since = this envelope.
    let mut l2 = l.clone();
    let check = p.coverage["A.9.4.2"].checks[0].clone();
    l2.insert(check, (Status::Fail, Some("900".into())));
    let third = changes_for_host(
        &p,
        1,
        &labels,
        &l2,
        &prof,
        &prev,
        Cause::Envelope(6),
        "t3",
        NOW,
    );
    let (_, s, ch) = third.iter().find(|(c, _, _)| c == "A.9.4.2").unwrap();
    let s = s.as_ref().unwrap();
    assert_eq!(
        (s.state, s.since.as_str(), s.since_sequence),
        (State::Nonconformant, "t3", Some(6))
    );
    assert_eq!(
        ch.event.as_ref().unwrap().previous.as_deref(),
        Some("conformant")
    );
    // Out of scope (A.12.6.1 covers prod and staging only): nothing stored.
    let dev: crate::store::Labels = [("env".to_string(), "dev".to_string())].into();
    let fresh = changes_for_host(&p, 2, &dev, &l, &prof, &none, Cause::Soa, "t", NOW);
    assert!(fresh.iter().all(|(c, _, _)| c != "A.12.6.1"));
    assert!(first.iter().any(|(c, _, _)| c == "A.12.6.1"));
}

#[test]
fn the_index_counts_the_fleet_with_manual_excluded_and_stale() {
    let p = Arc::new(policy(E2013));
    let idx = Index::default();
    let mut hosts = BTreeMap::new();
    let labels: crate::store::Labels = [("env".to_string(), "prod".to_string())].into();
    for (no, at) in [(1, NOW), (2, NOW - 3 * 3600)] {
        let prof = profile(&p, at);
        let l = automated_ids(&p)
            .iter()
            .flat_map(|c| p.coverage[c].checks.clone())
            .map(|c| (c, (Status::Pass, None)))
            .collect();
        let none = |_: &str| None;
        let states = changes_for_host(&p, no, &labels, &l, &prof, &none, Cause::Soa, "t", at)
            .into_iter()
            .filter_map(|(c, s, _)| s.map(|s| (c, s)))
            .collect();
        hosts.insert(
            no,
            HostEntry {
                id: format!("ag-{no}").into(),
                hostname: format!("host-{no}"),
                labels: labels.clone(),
                profile: Some(prof),
                states,
            },
        );
    }
    hosts.insert(
        3,
        HostEntry {
            id: "ag-3".into(),
            hostname: "host-3".into(),
            labels: labels.clone(),
            profile: None,
            states: Default::default(),
        },
    );
    idx.replace(Some(p.clone()), hosts);
    let fleet = idx.fleet(&Filter::default(), NOW).unwrap();
    assert_eq!(fleet.soa_version, 7);
    assert_eq!(fleet.hosts, 3);
    let n_auto = automated_ids(&p).len() as u64;
    // Host 1 everywhere, host 2 where a day is fresh enough (A.12.6.1).
    assert_eq!(fleet.totals[&State::Conformant], n_auto + 1);
    assert_eq!(
        fleet.totals[&State::Stale],
        n_auto - 1,
        "host 2 is 3h old; A.12.6.1 allows 1d"
    );
    let noev = Filter {
        state: Some(State::NoEvidence),
        ..Filter::default()
    };
    let (_, c) = idx.cells(&noev, NOW).unwrap();
    let odd: Vec<_> = c
        .iter()
        .filter(|c| c.host != "ag-3")
        .map(|c| (&c.host, &c.control, &c.detail))
        .collect();
    assert_eq!(fleet.totals[&State::NoEvidence], n_auto, "{odd:?}");
    assert_eq!(fleet.totals[&State::Excluded], 3 * 2);
    let filter = Filter {
        control: Some("A.9.4.2".into()),
        ..Filter::default()
    };
    let (_, cells) = idx.cells(&filter, NOW).unwrap();
    let states: Vec<State> = cells.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        vec![State::Conformant, State::Stale, State::NoEvidence]
    );
    assert!(
        cells[1]
            .detail
            .reason
            .as_ref()
            .unwrap()
            .contains("3h0m old")
    );
    let excluded = Filter {
        host: Some("host-1".into()),
        state: Some(State::Excluded),
        ..Filter::default()
    };
    let (_, cells) = idx.cells(&excluded, NOW).unwrap();
    assert_eq!(cells.len(), 2);
    assert!(cells[0].detail.reason.as_ref().unwrap().contains("No "));
}

#[test]
fn the_sweep_records_evidence_going_stale_once() {
    let p = policy(E2013);
    let prof = profile(&p, NOW);
    let labels: crate::store::Labels = [("env".to_string(), "prod".to_string())].into();
    let l = all_pass(&p, "A.9.4.2");
    let none = |_: &str| None;
    let states: std::collections::HashMap<ControlId, Stored> = changes_for_host(
        &p,
        1,
        &labels,
        &l,
        &prof,
        &none,
        Cause::Envelope(1),
        "t",
        NOW,
    )
    .into_iter()
    .filter_map(|(c, s, _)| s.map(|s| (c, s)))
    .collect();
    let mut host = HostEntry {
        id: "ag-1".into(),
        hostname: "h".into(),
        labels,
        profile: Some(prof),
        states,
    };
    assert!(stale_changes(&p, 1, &host, "t1", NOW + 7200).is_empty());
    let went = stale_changes(&p, 1, &host, "t2", NOW + 7201);
    let (control, stored, change) = went.iter().find(|(c, _, _)| c == "A.9.4.2").unwrap();
    assert_eq!(stored.as_ref().unwrap().state, State::Stale);
    let ev = change.event.as_ref().unwrap();
    assert_eq!(
        (ev.cause.as_str(), ev.previous.as_deref()),
        ("freshness", Some("conformant"))
    );
    // A.12.6.1 allows a day: not stale yet.
    assert!(went.iter().all(|(c, _, _)| c != "A.12.6.1"));
    host.states.insert(control.clone(), stored.clone().unwrap());
    assert!(
        stale_changes(&p, 1, &host, "t3", NOW + 9000)
            .iter()
            .all(|(c, _, _)| c != "A.9.4.2"),
        "recorded once"
    );
}
