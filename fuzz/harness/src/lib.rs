//! The bodies of annexa's fuzz targets: each takes the fuzzer's bytes,
//! feeds them to the parser a user's input reaches, and asserts what must
//! hold whatever the input (no panic, and the target's own oracle: round
//! trips, forgeries refused, proofs that verify only when valid, reads that
//! stay inside the scanned root).
//!
//! `fuzz/` (cargo fuzz, not a workspace member) calls them from libFuzzer;
//! `tests/replay.rs` replays every file of `fuzz/regressions/<target>/` and
//! the generated seeds through them on every `cargo test`, so a crash found
//! once stays fixed. docs/fuzzing.md says how to run them.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use annexa_checks::engine::{self, Selection};
use annexa_checks::expect::Params;
use annexa_checks::gate::Baseline;
use annexa_checks::host::HostView;
use annexa_checks::host::resolve::{Resolved, resolve_in_root};
use annexa_checks::pack::{PackOrigin, PackSet, parse_pack};
use annexa_checks::parse::{self, dpkg, keyvalue, passwd};
use annexa_checks::soa;
use annexa_evidence::api::LogState;
use annexa_evidence::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::keys::SigningKey;
use annexa_evidence::merkle::{self, MemoryTree};
use annexa_evidence::note::{self, Checkpoint, Note, Verifier};
use annexa_evidence::report::{self, render};
use annexa_evidence::{audit, statement};

mod seeds;
pub use seeds::seeds;

/// A fuzz target: its name (the file name under `fuzz/fuzz_targets/` and
/// the directory under `fuzz/regressions/`) and its body.
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
}

/// Every target, in the order docs/fuzzing.md lists them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "pack",
        run: pack,
    },
    Target {
        name: "soa",
        run: soa,
    },
    Target {
        name: "config",
        run: config,
    },
    Target {
        name: "baseline",
        run: baseline,
    },
    Target {
        name: "dsse",
        run: dsse,
    },
    Target {
        name: "statement",
        run: statement,
    },
    Target {
        name: "ingest",
        run: ingest,
    },
    Target {
        name: "note",
        run: note,
    },
    Target {
        name: "proofs",
        run: proofs,
    },
    Target {
        name: "logwatch",
        run: logwatch,
    },
    Target {
        name: "bundle",
        run: bundle,
    },
    Target {
        name: "report",
        run: report,
    },
    Target {
        name: "text",
        run: text,
    },
    Target {
        name: "host_files",
        run: host_files,
    },
    Target {
        name: "distro",
        run: distro,
    },
    Target {
        name: "kernel_formats",
        run: kernel_formats,
    },
];

/// The key the harness signs with where the input must get past a
/// signature to reach the parser behind it. The fuzzer sees this key's
/// signatures only in seeds, never its private half.
pub fn harness_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed(&[7u8; 32]).expect("a 32-byte seed"))
}

/// A key no seed and no input was ever signed with: nothing may verify
/// against it.
fn stranger_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed(&[9u8; 32]).expect("a 32-byte seed"))
}

/// The log origin of the harness's checkpoints and notes (the name of the
/// harness key's verifier).
pub const ORIGIN: &str = "fuzz.example/log";

/// The verifier of notes and checkpoints signed with the harness key.
fn harness_verifier() -> Verifier {
    Verifier::new(ORIGIN, harness_key().public()).expect("a verifier")
}

fn builtin_packs() -> &'static PackSet {
    static PACKS: OnceLock<PackSet> = OnceLock::new();
    PACKS.get_or_init(|| PackSet::load(true, &[], true).expect("the built-in packs load"))
}

fn utf8(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A check pack: parsing never panics, and a pack that parses joins the
/// built-in ones or is refused with errors, never silently.
pub fn pack(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    match parse_pack("fuzz.toml", PackOrigin::Builtin("fuzz".into()), text) {
        Ok(p) => {
            let _ = PackSet::from_packs(vec![p]);
        }
        Err(errors) => assert!(!errors.is_empty(), "a pack refused without an error"),
    }
}

/// A Statement of Applicability, TOML or CSV by the first byte: parsing
/// and linting against the built-in packs never panic, and an SoA that
/// parses comes back the same from its own TOML and CSV.
pub fn soa(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Some(text) = utf8(rest) else { return };
    let format = if which % 2 == 0 {
        soa::Format::Toml
    } else {
        soa::Format::Csv
    };
    let _ = soa::lint("fuzz", text, format, builtin_packs());
    let Ok(parsed) = soa::parse("fuzz", text, format) else {
        return;
    };
    let again = soa::parse_toml("fuzz.toml", &parsed.to_toml())
        .unwrap_or_else(|e| panic!("an SoA's own TOML does not parse: {e}"));
    same_soa(&parsed, &again, "TOML");
    let again = soa::csv::parse_csv("fuzz.csv", &parsed.to_csv())
        .unwrap_or_else(|e| panic!("an SoA's own CSV does not parse: {e}"));
    for (a, b) in parsed.controls.iter().zip(&again.controls) {
        assert_eq!(
            (
                &a.id,
                a.applicable,
                &a.justification,
                &a.owner,
                &a.status,
                &a.scope
            ),
            (
                &b.id,
                b.applicable,
                &b.justification,
                &b.owner,
                &b.status,
                &b.scope
            ),
            "a control changed through the SoA's CSV"
        );
    }
    assert_eq!(
        parsed.controls.len(),
        again.controls.len(),
        "controls lost through the SoA's CSV"
    );
}

/// The same SoA but for where each control was written (its line).
fn same_soa(a: &soa::Soa, b: &soa::Soa, through: &str) {
    let unlined = |s: &soa::Soa| {
        let mut s = s.clone();
        for c in &mut s.controls {
            c.line = 0;
        }
        s
    };
    let (a, b) = (unlined(a), unlined(b));
    if a != b {
        let first = a.controls.iter().zip(&b.controls).find(|(x, y)| x != y);
        panic!("the SoA changed through its {through}: first difference {first:?}");
    }
}

/// agent.toml and collector.toml (first byte): errors, never panics.
pub fn config(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Some(text) = utf8(rest) else { return };
    if which % 2 == 0 {
        let _ = annexa_agent::config::AgentConfig::from_toml("agent.toml", text);
    } else {
        let _ = annexa_collector::config::CollectorConfig::parse("collector.toml", text);
    }
}

/// The CI gate's baseline (JSON): what parses round-trips exactly.
pub fn baseline(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    if let Ok(b) = Baseline::parse("baseline.json", text) {
        let again = Baseline::parse("baseline.json", &b.to_text())
            .unwrap_or_else(|e| panic!("a baseline's own text does not parse: {e}"));
        assert_eq!(again, b, "the baseline changed through its text");
    }
}

/// DSSE envelopes: parsing never panics, a canonical envelope is its own
/// serialization, and nothing verifies under a key that signed nothing.
pub fn dsse(data: &[u8]) {
    let Ok(env) = Envelope::from_json(data) else {
        return;
    };
    if env.is_canonical(data) {
        assert_eq!(
            env.to_json(),
            data,
            "a canonical envelope is not its own serialization"
        );
    }
    let _ = env.payload_bytes();
    let stranger = stranger_key().public();
    assert!(
        env.verify(IN_TOTO_PAYLOAD_TYPE, &[stranger], 1).is_err(),
        "an envelope verified under a key that signed nothing"
    );
}

/// in-toto statements and the scan evidence statement, bare and in an
/// envelope.
pub fn statement(data: &[u8]) {
    let _ = statement::parse_statement(data);
    let _ = statement::parse_scan_statement(data);
    let _ = statement::parse_scan_envelope(data);
}

/// The collector's check of a signed envelope, with the input as the
/// signed payload: the statement rules refuse with a status, never panic.
pub fn ingest(data: &[u8]) {
    let key = harness_key();
    let env = dsse::sign(IN_TOTO_PAYLOAD_TYPE, data, key);
    let bytes = env.to_json();
    let agent = annexa_collector::store::AgentRecord {
        no: 1,
        id: "fuzz-agent".into(),
        key_id: key.public().key_id(),
        public_key: key.public().to_b64(),
        hostname: "fuzz".into(),
        machine_id_sha256: "0".repeat(64),
        labels: Default::default(),
        enrolled_at: "2026-01-01T00:00:00Z".into(),
        revoked_at: None,
        next_sequence: 1,
        last_digest: None,
        last_seen_at: None,
        run_profile: None,
    };
    let _ = annexa_collector::ingest::check(agent, &env, bytes);
}

/// Signed notes, verifier keys and checkpoints: parsing never panics, a
/// checkpoint's text parses back to itself, and no note opens under a key
/// that signed nothing.
pub fn note(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    let stranger = Verifier::new(ORIGIN, stranger_key().public()).expect("a verifier");
    if let Ok(n) = Note::parse(text) {
        assert!(
            n.verify(&stranger).is_err(),
            "a note verified under a key that signed nothing"
        );
    }
    let _ = Verifier::parse(text.lines().next().unwrap_or_default());
    if let Ok(c) = Checkpoint::parse_text(text) {
        let again = Checkpoint::parse_text(&c.text()).expect("a checkpoint's own text parses");
        assert_eq!(
            (again.origin, again.size, again.root),
            (c.origin, c.size, c.root)
        );
    }
    assert!(
        Checkpoint::open(text, &stranger).is_err(),
        "a checkpoint opened under a stranger's key"
    );
}

/// RFC 6962 proofs against a tree the input shapes: the proofs the tree
/// gives verify, and the same proofs with one bit flipped do not.
pub fn proofs(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let size = u64::from(data[0] % 64) + 1;
    let index = u64::from(data[1]) % size;
    let old = u64::from(data[2]) % size + 1;
    let flip = usize::from(data[3]);
    let mut tree = MemoryTree::new();
    for i in 0..size {
        let mut leaf = data[4..].to_vec();
        leaf.extend_from_slice(&i.to_be_bytes());
        tree.push(merkle::leaf_hash(&leaf));
    }
    let root = tree.root();
    let leaf = tree.level(0)[index as usize];
    let proof = merkle::inclusion_proof(&tree, index, size).expect("an inclusion proof in range");
    merkle::verify_inclusion(&leaf, index, size, &proof, &root).expect("a true inclusion proof");
    if let Some(bad) = flipped(&proof, flip) {
        assert!(
            merkle::verify_inclusion(&leaf, index, size, &bad, &root).is_err(),
            "a forged inclusion proof"
        );
    }
    let old_root = tree.root_at(old).expect("a root in range");
    let consistency =
        merkle::consistency_proof(&tree, old, size).expect("a consistency proof in range");
    merkle::verify_consistency(old, size, &consistency, &old_root, &root)
        .expect("a true consistency proof");
    if let Some(bad) = flipped(&consistency, flip) {
        assert!(
            merkle::verify_consistency(old, size, &bad, &old_root, &root).is_err(),
            "a forged consistency proof"
        );
    }
    // The input itself as a proof: refused or verified, never a panic.
    let hashes: Vec<[u8; 32]> = data[4..]
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    let n = u64::from_be_bytes([data[0], data[1], data[2], data[3], 0, 0, 0, 0]);
    let _ = merkle::verify_inclusion(&leaf, n >> 40, n >> 36, &hashes, &root);
    let _ = merkle::verify_consistency(n >> 40, n >> 36, &hashes, &old_root, &root);
}

/// `proof` with one of its bits (the `bit`-th, modulo its length) flipped;
/// `None` for an empty proof.
fn flipped(proof: &[merkle::Hash], bit: usize) -> Option<Vec<merkle::Hash>> {
    if proof.is_empty() {
        return None;
    }
    let mut bad = proof.to_vec();
    let i = bit % (bad.len() * 256);
    bad[i / 256][(i % 256) / 8] ^= 1 << (i % 8);
    Some(bad)
}

/// What the `logwatch` target reads: the checkpoint an agent holds, the
/// log state a collector answered with, and the receipt's leaf index.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Watch {
    /// The held checkpoint note.
    pub held: Option<String>,
    /// The collector's answer.
    pub state: LogState,
    /// Where the receipt put the agent's envelope.
    pub receipt_index: Option<u64>,
    /// The collector key's transitions the agent followed.
    #[serde(default)]
    pub transitions: Vec<String>,
}

/// The agent's check of the collector's log state against the checkpoint
/// it holds, with the harness key as the collector's; nothing is accepted
/// under a key that signed nothing.
pub fn logwatch(data: &[u8]) {
    let Ok(w) = serde_json::from_slice::<Watch>(data) else {
        return;
    };
    use annexa_agent::logwatch::{CollectorKeys, check};
    let keys = CollectorKeys {
        current: harness_key().public(),
        transitions: &w.transitions,
    };
    let _ = check(w.held.as_deref(), &w.state, &keys, w.receipt_index);
    let stranger = CollectorKeys {
        current: stranger_key().public(),
        transitions: &[],
    };
    assert!(
        check(None, &w.state, &stranger, None).is_err(),
        "a log state accepted under a key that signed nothing"
    );
}

/// A log export bundle (JSON lines) through the auditor's verification.
pub fn bundle(data: &[u8]) {
    let verifier = harness_verifier();
    let extra: Vec<String> = Vec::new();
    let _ = audit::verify_bundle(Cursor::new(data), &verifier, &extra, 1);
}

/// A report: opened without and with a signature (the harness signs the
/// input as the payload), verified, and rendered in every format.
pub fn report(data: &[u8]) {
    let verifier = harness_verifier();
    let _ = report::verify::verify(data, &verifier);
    let signed = dsse::sign(report::PAYLOAD_TYPE, data, harness_key()).to_json();
    let Ok(opened) = report::open(&signed, &harness_key().public()) else {
        return;
    };
    let keys = annexa_evidence::collector_keys::KeyHistory::single(verifier);
    let outcome = report::verify::verify_opened(&opened, &keys);
    let verification = render::Verification::Checked {
        key: "fuzz".into(),
        outcome: Box::new(outcome),
    };
    let ctx = render::Context::new(&opened.report, &opened.digest, &verification);
    for format in [
        render::Format::Html,
        render::Format::Oscal,
        render::Format::Csv,
    ] {
        let _ = render::render(&ctx, format);
    }
}

/// The probes' text parsers, by the first byte, and the properties a
/// comparison must have.
pub fn text(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 8 {
        0 => {
            let installed = dpkg::parse_status(&text);
            // apt lists: the same answer whatever the chunking.
            let split = rest.len() / 2;
            let mut whole = dpkg::ListScanner::new(&installed);
            whole.feed(rest);
            whole.finish();
            let mut chunked = dpkg::ListScanner::new(&installed);
            chunked.feed(&rest[..split]);
            chunked.feed(&rest[split..]);
            chunked.finish();
            assert_eq!(
                whole.newest, chunked.newest,
                "apt lists read differently in two chunks"
            );
        }
        1 => {
            let _ = passwd::parse_passwd(&text);
            for s in passwd::parse_shadow(&text) {
                let _ = (s.scheme(), s.has_usable_password());
            }
            let _ = passwd::parse_group(&text);
        }
        2 => {
            let _ = keyvalue::parse_space_separated(&text);
            let _ = keyvalue::parse_equals(&text);
        }
        3 => {
            for rule in parse::audit::parse(&text) {
                let _ = (
                    rule.is_rule(),
                    rule.watched_path(),
                    rule.audits_syscall("execve"),
                );
            }
        }
        4 => {
            let _ = parse::ini::parse(&text);
            let _ = parse::shell::statements_for(&text, "TMOUT");
        }
        5 => {
            let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
            let ab = dpkg::compare_versions(a, b);
            assert_eq!(
                dpkg::compare_versions(b, a),
                ab.reverse(),
                "version order not antisymmetric: {a:?} {b:?}"
            );
        }
        6 => {
            let (p, n) = text.split_once('\n').unwrap_or((&text, ""));
            let _ = parse::glob_match(p, n);
            let _ = parse::words(&text);
        }
        _ => {
            let _ = soa::Scope::parse_selector(&text);
            let _ = annexa_checks::expect::parse_duration_secs(&text);
            let _ = annexa_checks::conformity::parse_time(&text);
            let _ = annexa_collector::clock::parse_ttl(&text);
        }
    }
}

/// The formats of the platforms beside Debian (first byte): os-release,
/// rpm header blobs, rpm's version order, and rpm-md repository metadata
/// (repomd, primary, updateinfo). Errors, never panics; rpm's order is
/// antisymmetric.
pub fn distro(data: &[u8]) {
    use annexa_checks::parse::{repodata, rpm};
    use annexa_checks::platform::Platform;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let names: std::collections::HashSet<&str> = ["openssl", "sudo", "a"].into();
    match which % 5 {
        0 => {
            let (p, _) = Platform::from_os_release(&text);
            let _ = p.name();
        }
        1 => {
            if let Ok(pkg) = rpm::parse_header_blob(rest) {
                let _ = pkg.evr().to_string();
            }
            if let Ok(files) = rpm::header_privileged_files(rest) {
                for (_, mode) in files {
                    assert!(mode & 0o6000 != 0, "a file without setuid/setgid reported");
                }
            }
        }
        2 => {
            let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
            assert_eq!(
                rpm::vercmp(b, a),
                rpm::vercmp(a, b).reverse(),
                "rpm version order not antisymmetric: {a:?} {b:?}"
            );
            let (ea, eb) = (rpm::Evr::parse(a), rpm::Evr::parse(b));
            assert_eq!(ea.cmp_rpm(&eb), eb.cmp_rpm(&ea).reverse(), "{a:?} {b:?}");
        }
        3 => {
            let _ = repodata::repomd(rest);
            let _ = repodata::newest_offered(rest, &names);
        }
        _ => {
            let _ = repodata::advisories(rest, &names);
        }
    }
}

/// The formats of kernel interfaces, disks and logs the probes parse
/// (first byte): a LUKS header, /proc/mdstat, a /proc/net socket table,
/// /proc/self/mountinfo, fstab and crypttab, wtmp records, an OpenSSH
/// public key, /proc/modules, logrotate configuration. None may panic; a
/// LUKS key size is a whole number of bytes, and what mdstat calls healthy
/// has every member up.
pub fn kernel_formats(data: &[u8]) {
    use annexa_checks::host::FileData;
    use annexa_checks::probes::formats;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 9 {
        0 => {
            if let Ok(h) = formats::parse_luks(rest) {
                assert_eq!(h.key_bits % 8, 0, "key bits from bytes");
            }
        }
        1 => {
            for a in formats::parse_mdstat(&text) {
                if let (None, Some((n, m, map))) = (a.problem(), &a.members) {
                    assert!(m >= n && !map.contains('_'), "{a:?} judged healthy");
                }
            }
        }
        2 => {
            let _ = formats::parse_socket_table(&text, "tcp", false);
            let _ = formats::parse_socket_table(&text, "udp", true);
        }
        3 => {
            let _ = formats::parse_mountinfo(&text);
        }
        4 => {
            let _ = formats::parse_fstab(&text);
            let _ = formats::parse_crypttab(&text);
        }
        5 => {
            let _ = formats::wtmp_logins(rest);
        }
        6 => {
            let _ = formats::key_strength(&text);
        }
        7 => {
            let _ = formats::loaded_modules(&text);
        }
        _ => {
            let file = std::sync::Arc::new(FileData {
                path: "/etc/logrotate.conf".into(),
                bytes: rest.to_vec(),
                sha256: String::new(),
            });
            if let Some(Ok(days)) =
                formats::rotation_of(&[file], "/var/log/syslog").map(|r| r.days())
            {
                assert!(days >= 0.0, "negative retention {days}");
            }
        }
    }
}

/// The paths `host_files` may write: the files the built-in checks read.
pub const HOST_PATHS: &[&str] = &[
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d/a.conf",
    "/etc/sudoers",
    "/etc/sudoers.d/a",
    "/etc/login.defs",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/profile",
    "/etc/profile.d/a.sh",
    "/etc/audit/audit.rules",
    "/etc/audit/rules.d/a.rules",
    "/etc/chrony/chrony.conf",
    "/etc/ntp.conf",
    "/etc/systemd/timesyncd.conf",
    "/etc/systemd/logind.conf",
    "/etc/systemd/journald.conf",
    "/etc/rsyslog.conf",
    "/etc/rsyslog.d/a.conf",
    "/etc/nftables.conf",
    "/etc/ufw/ufw.conf",
    "/etc/sysctl.conf",
    "/etc/os-release",
    "/etc/hostname",
    "/etc/machine-id",
    "/var/lib/dpkg/status",
    "/var/lib/apt/lists/a_Packages",
    "/etc/pam.d/common-password",
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/lvm/backup/vg",
    "/etc/modprobe.d/a.conf",
    "/etc/dconf/profile/user",
    "/etc/dconf/db/local.d/a",
    "/etc/dconf/db/local.d/locks/a",
    "/etc/mdadm/mdadm.conf",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/a.sources",
    "/etc/apt/apt.conf.d/a",
    "/etc/yum.repos.d/a.repo",
    "/etc/dnf/dnf.conf",
    "/etc/ssl/openssl.cnf",
    "/etc/logrotate.conf",
    "/etc/logrotate.d/a",
    "/etc/audit/auditd.conf",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/crontab",
    "/etc/cron.d/a",
    "/etc/default/useradd",
    "/etc/systemd/system/a.timer",
    "/etc/systemd/system/a.service",
];

/// A root directory the input describes, scanned with every built-in
/// check. The input is a list of sections:
///
/// ```text
/// === /etc/ssh/sshd_config
/// (content)
/// === link /etc/sudoers.d/a -> ../../../../etc/shadow
/// ```
///
/// Files go only to [`HOST_PATHS`]; a link's target is anything. The scan
/// never panics, and every path the view resolves stays inside the root.
pub fn host_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path();
    let mut links = Vec::new();
    for section in text.split("=== ").skip(1) {
        let (head, body) = section.split_once('\n').unwrap_or((section, ""));
        let head = head.trim();
        if let Some(link) = head.strip_prefix("link ") {
            let Some((path, target)) = link.split_once(" -> ") else {
                continue;
            };
            if HOST_PATHS.contains(&path) && make_link(root, path, target) {
                links.push(path.to_string());
            }
        } else if HOST_PATHS.contains(&head) {
            write_file(root, head, body.as_bytes());
        }
    }
    let Ok(view) = HostView::root(root) else {
        return;
    };
    let canonical = std::fs::canonicalize(root).expect("the tempdir exists");
    for path in links
        .iter()
        .map(String::as_str)
        .chain(HOST_PATHS.iter().copied())
    {
        if let Ok(Resolved::Found(real)) = resolve_in_root(&canonical, path, true) {
            assert!(
                real.starts_with(&canonical),
                "{path} resolved outside the root: {}",
                real.display()
            );
        }
    }
    scan_all(&view);
}

/// Every built-in check with default parameters on `view`.
fn scan_all(view: &HostView) -> engine::ScanReport {
    let params = builtin_packs()
        .params_with(&BTreeMap::new())
        .unwrap_or_else(|_| Params(BTreeMap::new()));
    engine::scan(
        builtin_packs(),
        view,
        &params,
        &Selection::default(),
        "fuzz",
    )
    .expect("every check selected")
}

fn write_file(root: &Path, path: &str, content: &[u8]) {
    let at = root.join(path.trim_start_matches('/'));
    if let Some(parent) = at.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(at, content);
}

fn make_link(root: &Path, path: &str, target: &str) -> bool {
    let at = root.join(path.trim_start_matches('/'));
    if let Some(parent) = at.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::remove_file(&at);
    std::os::unix::fs::symlink(target, at).is_ok()
}

/// Makes a signed checkpoint note for `size` and `root` with the harness
/// key: seeds for the note, logwatch and bundle targets.
pub fn signed_checkpoint(size: u64, root: [u8; 32]) -> String {
    let c = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
    };
    c.sign(harness_key()).expect("a checkpoint signs")
}

/// Signs `text` as a note with the harness key.
pub fn signed_note(text: &str) -> String {
    note::sign(text, ORIGIN, harness_key()).expect("a note signs")
}
