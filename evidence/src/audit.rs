//! Verifies a whole evidence log from its bundle, trusting only the
//! collector's checkpoint key: recomputes the tree from the entries, checks
//! every checkpoint's signature and root, every envelope's signature and
//! digest, and each agent's sequence chain. Every row changed, deleted or
//! inserted behind the collector's back shows up as a [`Problem`] naming
//! the index and why.
//!
//! Envelope signatures (the bulk of the work) are checked on `threads`
//! threads, a chunk of entries at a time; everything order-dependent runs on
//! the calling thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use crate::collector_keys::KeyHistory;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::encoding::hex;
use crate::ids::AgentId;
use crate::keys::PublicKey;
use crate::log::{
    BUNDLE_FORMAT, BundleEntry, Header, PersonBundleEntry, PersonKeys, Record, RetentionRun,
};
use crate::merkle::{MemoryTree, consistency_proof, verify_consistency};
use crate::note::Verifier;
use crate::statement::{ScanPredicate, parse_scan_statement, subject_name};
use annexa_checks::conformity::parse_time;

/// Entries read and checked per parallel chunk.
const CHUNK: usize = 4096;
/// Problems listed in full; more are only counted.
const MAX_LISTED: usize = 1000;

/// Why a bundle cannot be read at all (as opposed to a [`Problem`] found
/// in a readable one).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading failed.
    #[error("reading the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a record of the format.
    #[error("bundle line {line}: {why}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        why: String,
    },
    /// A verification worker stopped without an answer for its entries.
    #[error(
        "verifying entries from bundle line {line}: a worker thread panicked; the bundle is not verified"
    )]
    Worker {
        /// The first line of its share.
        line: u64,
    },
}

/// Something the verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The leaf index concerned, when one is.
    pub index: Option<u64>,
    /// What is wrong, in words.
    pub what: String,
}

/// What the verification found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verification {
    /// The log's origin.
    pub origin: String,
    /// Entries in the log.
    pub entries: u64,
    /// Envelopes whose signature, digest and statement were checked.
    pub envelopes_verified: u64,
    /// Entries whose envelope the retention job removed.
    pub pruned: u64,
    /// Person statements whose signature, digest and statement were
    /// checked against the signer's key in force when it was accepted.
    pub person_statements_verified: u64,
    /// Agents in the bundle.
    pub agents: usize,
    /// People in the bundle.
    pub people: usize,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints_verified: usize,
    /// The collector's keys, oldest first, each with the checkpoint sizes
    /// it signs (more than one once the key was rotated).
    pub collector_keys: Vec<String>,
    /// The newest verified checkpoint: (size, hex root).
    pub latest_checkpoint: Option<(u64, String)>,
    /// Entries after the newest signed checkpoint (not yet covered by one).
    pub uncovered: u64,
    /// The root of the whole recomputed tree (hex).
    pub root: String,
    /// Retention runs recorded.
    pub retention: Vec<RetentionRun>,
    /// The retention period in force at export.
    pub retention_period: Option<String>,
    /// Problems (the first 1000).
    pub problems: Vec<Problem>,
    /// All problems found.
    pub problem_count: u64,
}

impl Verification {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, index: Option<u64>, what: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(Problem { index, what });
        }
    }
}

/// What checking one envelope yields for the chain.
struct Link {
    previous: Option<String>,
    gap: Option<Vec<u64>>,
    /// The next key this envelope declares, its proof checked.
    rotation: Option<Result<String, String>>,
}

/// An agent's keys as the bundle gives them: each with the last sequence
/// number it signed (`None`: the current key).
struct AgentKeys(Vec<(String, Option<PublicKey>, Option<u64>)>);

impl AgentKeys {
    /// The key in force for `sequence`, and the key after it when this is
    /// the last sequence number it signed.
    fn at(&self, sequence: u64) -> (&str, Option<PublicKey>, Option<&str>) {
        let i = self
            .0
            .iter()
            .position(|(_, _, until)| until.is_none_or(|u| sequence <= u))
            .unwrap_or(self.0.len() - 1);
        let (id, key, until) = &self.0[i];
        let next = (*until == Some(sequence))
            .then(|| self.0.get(i + 1).map(|(k, _, _)| k.as_str()))
            .flatten();
        (id, *key, next)
    }
}

/// A person as the bundle lists them, with each key parsed once (`None`:
/// not a public key).
type ListedPerson = (PersonKeys, Vec<Option<PublicKey>>);

/// A public key a bundle lists under `key_id`, and what is wrong with it.
fn listed_key(public_key: &str, key_id: &str) -> (Option<PublicKey>, Option<String>) {
    match PublicKey::from_b64(public_key).ok() {
        Some(k) if k.key_id() == key_id => (Some(k), None),
        Some(k) => (
            Some(k),
            Some(format!(
                "its public key does not hash to its key id {key_id} (key replaced?)"
            )),
        ),
        None => (
            None,
            Some("the public key is not base64 of 32 bytes".into()),
        ),
    }
}

/// What replaying the entries in order builds, and the entry lines read
/// but not yet checked.
struct Replay {
    tree: MemoryTree,
    chains: HashMap<AgentId, ChainState>,
    /// (agent, sequence) of envelopes seen declaring the agent's next key.
    declared: HashSet<(AgentId, u64)>,
    /// Entry lines (with their line numbers) waiting to be checked.
    pending: Vec<(u64, String)>,
    threads: usize,
}

impl Replay {
    /// Checks the pending entry lines, if any.
    fn flush(
        &mut self,
        v: &mut Verification,
        agents: &HashMap<AgentId, AgentKeys>,
    ) -> Result<(), BundleError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut lines = std::mem::take(&mut self.pending);
        check_chunk(v, self, agents, &lines)?;
        lines.clear();
        self.pending = lines;
        Ok(())
    }
}

/// An agent's chain as far as the log has gone.
struct ChainState {
    next: u64,
    last: Option<String>,
}

/// Verifies a bundle with the collector's checkpoint key. `extra` are
/// checkpoints kept elsewhere (by agents, by an earlier audit), checked
/// against the recomputed tree like the stored ones.
pub fn verify_bundle(
    reader: impl BufRead,
    collector: &Verifier,
    extra: &[String],
    threads: usize,
) -> Result<Verification, BundleError> {
    let mut v = Verification::default();
    // Numbered from 1, as errors name them.
    let mut lines = reader.lines().zip(1u64..);
    let malformed = |line: u64, why: String| BundleError::Malformed { line, why };
    let header: Header = match lines.next().map(|(l, _)| l).transpose()? {
        Some(l) => match serde_json::from_str::<Record>(&l) {
            Ok(Record::Header(h)) => h,
            Ok(_) => return Err(malformed(1, "the first line is not the header".into())),
            Err(e) => return Err(malformed(1, e.to_string())),
        },
        None => return Err(malformed(1, "the bundle is empty".into())),
    };
    if header.format != BUNDLE_FORMAT {
        return Err(malformed(
            1,
            format!("format `{}`, expected `{BUNDLE_FORMAT}`", header.format),
        ));
    }
    v.origin = header.origin.clone();
    v.retention_period = header.retention.clone();
    if header.origin != collector.name {
        v.problem(
            None,
            format!(
                "the bundle is of log `{}`, but the collector key given is `{}`",
                header.origin, collector.name
            ),
        );
    }
    let mut agents: HashMap<AgentId, AgentKeys> = HashMap::new();
    let mut people: HashMap<String, ListedPerson> = HashMap::new();
    let mut checkpoints: Vec<(String, String)> = Vec::new();
    let mut transitions: Vec<String> = Vec::new();
    let mut replay = Replay {
        tree: MemoryTree::new(),
        chains: HashMap::new(),
        declared: HashSet::new(),
        pending: Vec::new(),
        threads: threads.max(1),
    };
    let mut end = None;
    for (line, line_at) in lines {
        let line = line?;
        if end.is_some() {
            return Err(malformed(line_at, "a line follows the end record".into()));
        }
        // A person's statement is rare: checked in order, on this thread.
        if line.starts_with("{\"type\":\"person_entry\"") {
            replay.flush(&mut v, &agents)?;
            let e: PersonBundleEntry =
                serde_json::from_str(&line).map_err(|e| malformed(line_at, e.to_string()))?;
            apply_person_entry(&mut v, &mut replay, &people, e);
            continue;
        }
        // Entries are parsed in parallel with their envelope checks.
        let rec = if line.starts_with("{\"type\":\"entry\"") {
            None
        } else {
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => Some(r),
                // An entry written differently (spacing, key order).
                Err(_) if serde_json::from_str::<BundleEntry>(&line).is_ok() => None,
                Err(e) => return Err(malformed(line_at, e.to_string())),
            }
        };
        let Some(rec) = rec else {
            replay.pending.push((line_at, line));
            if replay.pending.len() == CHUNK {
                replay.flush(&mut v, &agents)?;
            }
            continue;
        };
        replay.flush(&mut v, &agents)?;
        match rec {
            Record::Header(_) => return Err(malformed(line_at, "a second header".into())),
            Record::KeyTransition(t) => transitions.push(t.note),
            Record::Agent(a) => {
                let mut keys = Vec::new();
                let all = a
                    .retired_keys
                    .iter()
                    .map(|r| (&r.key_id, &r.public_key, Some(r.until_sequence)))
                    .chain([(&a.key_id, &a.public_key, None)]);
                for (key_id, public_key, until) in all {
                    let (key, wrong) = listed_key(public_key, key_id);
                    if let Some(wrong) = wrong {
                        v.problem(None, format!("agent {}: {wrong}", a.id));
                    }
                    keys.push((key_id.clone(), key, until));
                }
                v.agents += 1;
                agents.insert(a.id, AgentKeys(keys));
            }
            Record::Person(p) => {
                let mut keys = Vec::with_capacity(p.keys.len());
                for k in &p.keys {
                    let (key, wrong) = listed_key(&k.public_key, &k.key_id);
                    if let Some(wrong) = wrong {
                        v.problem(None, format!("person {}: {wrong}", p.email));
                    }
                    keys.push(key);
                }
                v.people += 1;
                people.insert(p.email.clone(), (p, keys));
            }
            Record::Checkpoint(c) => {
                checkpoints.push((c.note, format!("stored checkpoint signed {}", c.signed_at)))
            }
            Record::Unlogged(u) => v.problem(
                None,
                format!(
                    "the store holds envelope {} sequence {} (sha256 {}) that no log entry names: inserted behind the log",
                    u.agent, u.sequence, u.envelope_sha256
                ),
            ),
            Record::Retention(r) => v.retention.push(r),
            Record::End(e) => end = Some(e),
        }
    }
    replay.flush(&mut v, &agents)?;
    match end {
        None => v.problem(
            None,
            "the bundle has no end record: it was truncated".into(),
        ),
        Some(e) if e.entries != v.entries || header.size != v.entries => v.problem(
            None,
            format!(
                "the bundle says {} entries (header {}), it holds {}",
                e.entries, header.size, v.entries
            ),
        ),
        Some(_) => {}
    }
    v.root = hex(&replay.tree.root());
    for (i, note) in extra.iter().enumerate() {
        checkpoints.push((note.clone(), format!("checkpoint {} given", i + 1)));
    }
    // Every change of an agent's key must have been seen declared, with a
    // valid proof, by the last envelope of the old key: a key history an
    // insider wrote into the database declares nothing.
    let mut ids: Vec<&AgentId> = agents.keys().collect();
    ids.sort();
    for id in ids {
        for (key_id, _, until) in &agents[id].0 {
            if let Some(n) = until
                && !replay.declared.contains(&(id.clone(), *n))
            {
                v.problem(
                    None,
                    format!(
                        "agent {id}: key {key_id} is recorded as retired after sequence {n}, but the log holds no envelope {n} declaring the next key (missing, pruned or never declared)"
                    ),
                );
            }
        }
    }
    // The key given may be any of the log's keys: the transitions, each
    // signed by both its keys, say which signs which sizes.
    let history = KeyHistory::follow(collector, &transitions).unwrap_or_else(|e| {
        v.problem(None, format!("the collector key's transitions: {e}"));
        KeyHistory::single(collector.clone())
    });
    v.collector_keys = history
        .spans()
        .iter()
        .map(|s| match s.until {
            Some(u) => format!("{} signs sizes {} to {u}", s.verifier, s.from),
            None => format!("{} signs sizes from {}", s.verifier, s.from),
        })
        .collect();
    check_checkpoints(&mut v, &replay.tree, &history, &checkpoints);
    Ok(v)
}

/// Parses and checks a chunk of entry lines: envelopes in parallel, then
/// order, chains and the tree in order.
fn check_chunk(
    v: &mut Verification,
    replay: &mut Replay,
    agents: &HashMap<AgentId, AgentKeys>,
    lines: &[(u64, String)],
) -> Result<(), BundleError> {
    let threads = replay.threads;
    type Checked = Result<(BundleEntry, Option<Result<Link, String>>), BundleError>;
    let work = |(line, text): &(u64, String)| -> Checked {
        let e = match serde_json::from_str::<BundleEntry>(text) {
            Ok(e) => e,
            Err(err) => {
                return Err(BundleError::Malformed {
                    line: *line,
                    why: err.to_string(),
                });
            }
        };
        let link = e.envelope.as_ref().map(|raw| {
            let key = agents.get(&e.agent).map(|k| k.at(e.sequence));
            check_envelope(
                &e,
                raw.get().as_bytes(),
                key.and_then(|(id, k, _)| Some((id, k?))),
            )
        });
        Ok((e, link))
    };
    let per = lines.len().div_ceil(threads);
    let results: Vec<Checked> = if threads == 1 || lines.len() < 64 {
        lines.iter().map(work).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = lines
                .chunks(per)
                .map(|part| {
                    let first = part.first().map_or(0, |(line, _)| *line);
                    (
                        first,
                        s.spawn(move || part.iter().map(work).collect::<Vec<_>>()),
                    )
                })
                .collect();
            // A share whose worker panicked is an error, never a gap in
            // what was checked.
            handles
                .into_iter()
                .flat_map(|(line, h)| {
                    h.join()
                        .unwrap_or_else(|_| vec![Err(BundleError::Worker { line })])
                })
                .collect()
        })
    };
    for r in results {
        let (e, link) = r?;
        apply_entry(v, replay, agents, e, link);
    }
    Ok(())
}

/// Digest, signature and statement of one envelope.
fn check_envelope(
    e: &BundleEntry,
    bytes: &[u8],
    key: Option<(&str, PublicKey)>,
) -> Result<Link, String> {
    logged_bytes(bytes, &e.envelope_sha256, "envelope")?;
    let (key_id, key) = key.ok_or_else(|| format!("agent {} is not in the bundle", e.agent))?;
    let p = open_scan_envelope(bytes, key, e.agent.as_str(), e.sequence)?;
    Ok(Link {
        previous: p.previous,
        gap: p.gap.map(|g| g.dropped),
        rotation: p.key_rotation.map(|r| {
            r.verify(e.agent.as_str(), e.sequence, key_id)
                .map(|k| k.key_id())
        }),
    })
}

/// Opens an agent's envelope whose digest was checked: its DSSE signature
/// by `key`, a scan-run statement of agent `agent` with `sequence`, about
/// the agent's host. The log audit and the report verifier both call it.
pub fn open_scan_envelope(
    bytes: &[u8],
    key: PublicKey,
    agent: &str,
    sequence: u64,
) -> Result<ScanPredicate, String> {
    let env = Envelope::from_json(bytes).map_err(|err| format!("envelope: {err}"))?;
    let verified = env
        .verify(IN_TOTO_PAYLOAD_TYPE, &[key], 1)
        .map_err(|err| format!("agent signature by {agent}: {err}"))?;
    let st = parse_scan_statement(&verified.payload).map_err(|err| format!("statement: {err}"))?;
    let p = st.predicate;
    if p.agent.id != agent || p.sequence != sequence {
        return Err(format!(
            "the signed statement is agent {} sequence {}, not agent {agent} sequence {sequence}",
            p.agent.id, p.sequence
        ));
    }
    if st.subject.first().and_then(|s| s.name.as_deref()) != Some(subject_name(agent).as_str()) {
        return Err("the statement's subject is not the agent's host".into());
    }
    Ok(p)
}

/// Puts the next leaf, `leaf` as recomputed from its entry's fields, on
/// the tree: an entry out of its place or whose stored hash (`stored`, hex)
/// is not that leaf is a problem. Returns the index the entry names, where
/// its other problems are reported.
fn place_leaf(
    v: &mut Verification,
    replay: &mut Replay,
    index: u64,
    leaf: crate::merkle::Hash,
    stored: &str,
) -> Option<u64> {
    let i = replay.tree.size();
    if index != i {
        v.problem(
            Some(i),
            format!(
                "entry {index} is where entry {i} belongs: entries were deleted, inserted or reordered"
            ),
        );
    }
    if hex(&leaf) != stored {
        v.problem(
            Some(index),
            "the stored leaf hash is not the hash of the entry's fields: the entry was edited"
                .into(),
        );
    }
    replay.tree.push(leaf);
    v.entries += 1;
    Some(index)
}

/// Whether `bytes` are the ones a leaf logged (hex SHA-256 `logged`);
/// `what` names them in the problem.
fn logged_bytes(bytes: &[u8], logged: &str, what: &str) -> Result<(), String> {
    let digest = crate::sha256_hex(bytes);
    if digest != logged {
        return Err(format!(
            "the {what}'s bytes hash to {digest}, not the logged {logged}: the {what} was altered"
        ));
    }
    Ok(())
}

fn apply_entry(
    v: &mut Verification,
    replay: &mut Replay,
    agents: &HashMap<AgentId, AgentKeys>,
    e: BundleEntry,
    link: Option<Result<Link, String>>,
) {
    let at = place_leaf(v, replay, e.index, e.entry().leaf_hash(), &e.leaf_hash);
    match agents.get(&e.agent).map(|k| k.at(e.sequence)) {
        None => v.problem(at, format!("agent {} is not enrolled", e.agent)),
        Some((key_id, _, _)) if *key_id != e.key_id => v.problem(
            at,
            format!(
                "the entry names key {} but agent {}'s key for sequence {} is {key_id}",
                e.key_id, e.agent, e.sequence
            ),
        ),
        Some((_, _, next)) => {
            // Every change of key is declared, with proof, by the last
            // envelope the old key signed; and only there.
            let declaration = link
                .as_ref()
                .and_then(|l| l.as_ref().ok())
                .map(|l| &l.rotation);
            match (next, declaration) {
                (_, None) => {}
                (Some(n), Some(Some(Ok(k)))) if k == n => {
                    replay.declared.insert((e.agent.clone(), e.sequence));
                }
                (Some(n), Some(d)) => v.problem(
                    at,
                    format!(
                        "agent {}'s key changes to {n} after sequence {}, but that envelope {}",
                        e.agent,
                        e.sequence,
                        match d {
                            None => "declares no rotation".to_string(),
                            Some(Ok(k)) => format!("declares key {k}"),
                            Some(Err(why)) => format!("declares it without valid proof: {why}"),
                        }
                    ),
                ),
                (None, Some(Some(declared))) => v.problem(
                    at,
                    format!(
                        "agent {} sequence {} declares a new key ({}) but the agent's key does not change there",
                        e.agent,
                        e.sequence,
                        declared.as_deref().unwrap_or_else(|why| why)
                    ),
                ),
                (None, Some(None)) => {}
            }
        }
    }
    let link = match (link, &e.pruned_at) {
        (Some(Ok(l)), _) => {
            v.envelopes_verified += 1;
            Some(l)
        }
        (Some(Err(why)), _) => {
            v.problem(at, why);
            None
        }
        (None, Some(_)) => {
            v.pruned += 1;
            None
        }
        (None, None) => {
            v.problem(
                at,
                "the envelope is missing and was not pruned: deleted".into(),
            );
            None
        }
    };
    let chain = replay.chains.entry(e.agent.clone()).or_insert(ChainState {
        next: 1,
        last: None,
    });
    use crate::chain::{Step, step};
    // A pruned envelope's `previous` and gap are gone: only its number is
    // checked.
    let (previous, gap) = match &link {
        Some(l) => (l.previous.as_deref(), l.gap.as_deref().unwrap_or(&[])),
        None => (chain.last.as_deref(), &[][..]),
    };
    match step(chain.next, chain.last.as_deref(), e.sequence, previous, gap) {
        Step::Extends => {}
        Step::UndeclaredJump if link.is_none() => {}
        Step::Behind => v.problem(
            at,
            format!(
                "agent {} sequence {} repeats or goes back (next expected {})",
                e.agent, e.sequence, chain.next
            ),
        ),
        Step::WrongPrevious => v.problem(
            at,
            format!(
                "agent {} sequence {} names previous {} but the agent's preceding entry is {}",
                e.agent,
                e.sequence,
                previous.unwrap_or("none"),
                chain.last.as_deref().unwrap_or("none")
            ),
        ),
        Step::UndeclaredJump => v.problem(
            at,
            format!(
                "agent {} jumps from sequence {} to {} without declaring the gap: entries were deleted",
                e.agent,
                chain.next - 1,
                e.sequence
            ),
        ),
    }
    if e.sequence >= chain.next {
        chain.next = e.sequence + 1;
        chain.last = Some(e.envelope_sha256);
    }
}

/// A person statement's leaf, in order: its fields hash to the stored
/// leaf, its envelope is the one logged, signed by the key the person had
/// when it was accepted (not retired, person not revoked), and its
/// statement is a person statement by that person of the logged type.
fn apply_person_entry(
    v: &mut Verification,
    replay: &mut Replay,
    people: &HashMap<String, ListedPerson>,
    e: PersonBundleEntry,
) {
    let at = place_leaf(v, replay, e.index, e.entry().leaf_hash(), &e.leaf_hash);
    match check_person_statement(&e, people) {
        Ok(()) => v.person_statements_verified += 1,
        Err(why) => v.problem(at, why),
    }
}

fn check_person_statement(
    e: &PersonBundleEntry,
    people: &HashMap<String, ListedPerson>,
) -> Result<(), String> {
    let Some(raw) = &e.envelope else {
        return Err(format!(
            "the statement of {} is missing: person statements are never pruned, so it was deleted",
            e.person
        ));
    };
    let bytes = raw.get().as_bytes();
    logged_bytes(bytes, &e.envelope_sha256, "statement")?;
    let (person, public_keys) = people
        .get(&e.person)
        .ok_or_else(|| format!("person {} is not in the bundle", e.person))?;
    let (key, public) = person
        .keys
        .iter()
        .zip(public_keys)
        .find(|(k, _)| k.key_id == e.key_id)
        .ok_or_else(|| format!("key {} is not one of {}'s keys", e.key_id, e.person))?;
    let accepted = parse_time(&e.accepted_at)
        .ok_or_else(|| format!("accepted_at `{}` is not an RFC 3339 time", e.accepted_at))?;
    let before = |t: &Option<String>| {
        t.as_deref()
            .is_some_and(|t| parse_time(t).is_none_or(|t| t <= accepted))
    };
    if parse_time(&key.added_at).is_none_or(|t| t > accepted) {
        return Err(format!(
            "{}'s key {} was registered at {}, after the statement was accepted at {}",
            e.person, e.key_id, key.added_at, e.accepted_at
        ));
    }
    if before(&key.retired_at) {
        return Err(format!(
            "{}'s key {} was retired before the statement was accepted at {}",
            e.person, e.key_id, e.accepted_at
        ));
    }
    if before(&person.revoked_at) {
        return Err(format!(
            "{} was revoked before the statement was accepted at {}",
            e.person, e.accepted_at
        ));
    }
    let public = public.ok_or_else(|| {
        format!(
            "{}'s key {}: the public key is not base64 of 32 bytes",
            e.person, e.key_id
        )
    })?;
    let statement = crate::person::verify(bytes, &public)
        .map_err(|err| format!("statement by {}: {err}", e.person))?;
    if statement.issued().person.to_lowercase() != e.person {
        return Err(format!(
            "the statement is signed as {}, but logged as {}'s",
            statement.issued().person,
            e.person
        ));
    }
    if statement.predicate_type() != e.predicate_type {
        return Err(format!(
            "the statement is a {}, but logged as a {}",
            statement.predicate_type(),
            e.predicate_type
        ));
    }
    Ok(())
}

/// Every checkpoint: signature, size within the log, root equal to the
/// recomputed tree's at that size, and consistency with the one before.
fn check_checkpoints(
    v: &mut Verification,
    tree: &MemoryTree,
    keys: &KeyHistory,
    notes: &[(String, String)],
) {
    let mut good: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut opened = Vec::new();
    for (note, what) in notes {
        match keys.open_checkpoint(note) {
            Ok(cp) => opened.push((cp, what)),
            Err(e) => v.problem(None, format!("{what}: {e}")),
        }
    }
    opened.sort_by_key(|(cp, _)| cp.size);
    let mut last_good = 0u64;
    for (cp, what) in &opened {
        if cp.size > tree.size() {
            v.problem(
                Some(tree.size()),
                format!(
                    "{what} covers {} entries, the log holds {}: entries from index {} on were deleted",
                    cp.size,
                    tree.size(),
                    tree.size()
                ),
            );
            continue;
        }
        let root = tree.root_at(cp.size).unwrap_or_default();
        if root != cp.root {
            v.problem(
                Some(last_good),
                format!(
                    "{what} (size {}) signed root {}, the entries give {}: an entry between index {last_good} and {} was changed, inserted or deleted",
                    cp.size,
                    hex(&cp.root),
                    hex(&root),
                    cp.size.saturating_sub(1)
                ),
            );
            continue;
        }
        last_good = cp.size;
        good.insert(cp.size, cp.root);
        v.checkpoints_verified += 1;
    }
    // Pairwise: each verified checkpoint extends the one before it.
    let sizes: Vec<(u64, [u8; 32])> = good.into_iter().collect();
    for w in sizes.windows(2) {
        let ((m, r1), (n, r2)) = (w[0], w[1]);
        if m == 0 {
            continue;
        }
        let ok = consistency_proof(tree, m, n)
            .map_err(|e| e.to_string())
            .and_then(|p| verify_consistency(m, n, &p, &r1, &r2).map_err(|e| e.to_string()));
        if let Err(e) = ok {
            v.problem(
                None,
                format!("checkpoints at sizes {m} and {n} are inconsistent: {e}"),
            );
        }
    }
    if let Some((n, r)) = sizes.last() {
        v.latest_checkpoint = Some((*n, hex(r)));
        v.uncovered = tree.size() - n;
    } else {
        v.uncovered = tree.size();
        if tree.size() > 0 {
            v.problem(
                None,
                "no signed checkpoint verifies: nothing vouches for the log".into(),
            );
        }
    }
}
