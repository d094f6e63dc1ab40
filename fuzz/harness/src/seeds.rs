//! Starting inputs for each target, made from the repository's own data
//! (built-in packs, example SoAs, packaged configuration files) and from
//! valid artefacts signed with the harness key, so the fuzzer starts past
//! the first syntax and signature checks. `fuzz/run.sh` writes them into
//! the corpus; the replay test runs them too.

use std::collections::BTreeMap;

use annexa_checks::engine::ScanReport;
use annexa_checks::gate::Baseline;
use annexa_checks::host::HostView;
use annexa_checks::pack::BUILTIN_PACKS;
use annexa_evidence::api::LogState;
use annexa_evidence::dsse::{self, IN_TOTO_PAYLOAD_TYPE};
use annexa_evidence::encoding::b64;
use annexa_evidence::merkle::{self, MemoryTree};
use annexa_evidence::statement::{AgentInfo, ScanPredicate, scan_statement};

use crate::{ORIGIN, Watch, harness_key, signed_checkpoint, signed_note};

const SOA_2005: &str = include_str!("../../../examples/soa/iso27001-2005.toml");
const SOA_2013: &str = include_str!("../../../examples/soa/iso27001-2013.toml");
const SOA_2022: &str = include_str!("../../../examples/soa/iso27001-2022.toml");
const AGENT_TOML: &str = include_str!("../../../packaging/etc/agent.toml");
const COLLECTOR_TOML: &str = include_str!("../../../packaging/etc/collector.toml");

/// The sample host the `host_files` seed describes: a little of every
/// file the built-in checks read, and one link that climbs out.
const HOST: &str = "=== /etc/ssh/sshd_config
PermitRootLogin no
Include /etc/ssh/sshd_config.d/*.conf
Match User backup
  PasswordAuthentication no
=== /etc/ssh/sshd_config.d/a.conf
ClientAliveInterval 300
=== /etc/sudoers
Defaults use_pty
%sudo ALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
=== /etc/sudoers.d/a
ops ALL=(ALL) NOPASSWD: /usr/bin/systemctl
=== /etc/login.defs
PASS_MAX_DAYS 90
UMASK 027
=== /etc/passwd
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
=== /etc/shadow
root:$y$j9T$abc$def:19000:0:90:7:::
daemon:*:19000:0:99999:7:::
=== /etc/group
root:x:0:
sudo:x:27:ops
=== /etc/profile.d/a.sh
readonly TMOUT=600; export TMOUT
=== /etc/audit/rules.d/a.rules
-w /etc/passwd -p wa -k identity
-a always,exit -F arch=b64 -S execve -k exec
-e 2
=== /etc/chrony/chrony.conf
pool 2.debian.pool.ntp.org iburst
confdir /etc/chrony/conf.d
=== /etc/systemd/logind.conf
[Login]
StopIdleSessionSec=900
=== /etc/systemd/journald.conf
[Journal]
Storage=persistent
=== /etc/rsyslog.conf
*.* @@logs.example:514
=== /etc/nftables.conf
table inet filter { chain input { type filter hook input priority 0; policy drop; } }
=== /etc/fstab
/dev/mapper/vg-root / ext4 defaults 0 1
/swap.img none swap sw 0 0
=== /etc/crypttab
sda3_crypt UUID=1 none luks
=== /etc/lvm/backup/vg
vg { physical_volumes { pv0 { device = \"/dev/mapper/sda3_crypt\" } } }
=== /etc/modprobe.d/a.conf
install usb-storage /bin/false
=== /etc/mdadm/mdadm.conf
ARRAY /dev/md0 UUID=x
MAILADDR root
=== /etc/apt/sources.list.d/a.sources
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
=== /etc/ssl/openssl.cnf
openssl_conf = init
[init]
ssl_conf = ssl
[ssl]
system_default = sys
[sys]
.include = /etc/ssl/openssl.cnf
MinProtocol = TLSv1.2
=== /etc/logrotate.d/a
/var/log/syslog { weekly rotate 13 }
=== /etc/audit/auditd.conf
max_log_file_action = keep_logs
=== /etc/os-release
ID=debian
VERSION_ID=\"12\"
=== /etc/hostname
fuzz
=== /var/lib/dpkg/status
Package: chrony
Status: install ok installed
Architecture: amd64
Version: 4.3-2

Package: auditd
Status: install ok installed
Architecture: amd64
Version: 1:3.0.9-1
=== /var/lib/apt/lists/a_Packages
Package: chrony
Architecture: amd64
Version: 4.3-2+deb12u1

=== link /etc/sudoers.d/a -> ../../../../../../etc/shadow
";

/// The seeds of the target `name` (none for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let text = |s: &str| s.as_bytes().to_vec();
    let prefixed = |p: u8, s: &str| {
        let mut v = vec![p];
        v.extend_from_slice(s.as_bytes());
        v
    };
    match name {
        "pack" => BUILTIN_PACKS.iter().map(|(_, t)| text(t)).collect(),
        "soa" => {
            let mut v: Vec<Vec<u8>> = [SOA_2005, SOA_2013, SOA_2022]
                .iter()
                .map(|s| prefixed(0, s))
                .collect();
            if let Ok(soa) = annexa_checks::soa::parse_toml("seed", SOA_2013) {
                v.push(prefixed(1, &soa.to_csv()));
            }
            v
        }
        "config" => vec![prefixed(0, AGENT_TOML), prefixed(1, COLLECTOR_TOML)],
        "baseline" => vec![text(&Baseline::of(sample_scan()).to_text())],
        "dsse" => vec![signed_envelope()],
        "statement" => vec![statement_payload(), signed_envelope()],
        "ingest" => vec![statement_payload()],
        "note" => vec![
            text(&signed_checkpoint(3, [1u8; 32])),
            text(&signed_note(&format!("{ORIGIN}\nfree text\n"))),
            text(&format!(
                "{ORIGIN}+0a0b0c0d+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh"
            )),
        ],
        "proofs" => vec![vec![7, 3, 2, 0], {
            let mut v = vec![63, 200, 17, 255];
            v.extend_from_slice(&[0xab; 96]);
            v
        }],
        "logwatch" => vec![watch_seed()],
        "bundle" => vec![bundle_seed()],
        "report" => vec![text("{\"format\":\"annexa/report/v1\",\"id\":\"r\"}")],
        "text" => vec![
            prefixed(
                0,
                "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n",
            ),
            prefixed(
                1,
                "root:x:0:0:root:/root:/bin/bash\nroot:$6$salt$hash:19000:0:90:7:::\n",
            ),
            prefixed(2, "PASS_MAX_DAYS 90\nUMASK=027\n"),
            prefixed(
                3,
                "-w /etc/passwd -p wa -k identity\n-a always,exit -S execve\n-e 2\n",
            ),
            prefixed(
                4,
                "[Login]\nStopIdleSessionSec=900\nTMOUT=600; readonly TMOUT\n",
            ),
            prefixed(5, "1:2.3~rc1-4\n1:2.3-4"),
            prefixed(6, "*.conf\nsshd.conf"),
            prefixed(7, "env=prod,role!=db"),
        ],
        "host_files" => vec![text(HOST)],
        "kernel_formats" => vec![
            prefixed(
                1,
                "Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/1] [U_]\n      [=>...]  recovery =  8.5% (1/2) finish=0.7min\nunused devices: <none>\n",
            ),
            prefixed(
                2,
                "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0\n",
            ),
            prefixed(
                3,
                "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n",
            ),
            prefixed(
                4,
                "/dev/mapper/vg-root / ext4 defaults 0 1\nsda3_crypt UUID=7f1e none luks,discard\n",
            ),
            prefixed(
                6,
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x",
            ),
            prefixed(7, "usb_storage 81920 0 - Live 0x0\n"),
            prefixed(
                8,
                "weekly\nrotate 4\n/var/log/syslog {\n rotate 13\n maxage 30\n}\n",
            ),
            {
                let mut luks = vec![0u8; 1024];
                luks[..6].copy_from_slice(b"LUKS\xba\xbe");
                luks[7] = 1;
                luks[8..11].copy_from_slice(b"aes");
                luks[40..51].copy_from_slice(b"xts-plain64");
                luks[111] = 64;
                [vec![0u8], luks].concat()
            },
        ],
        "distro" => vec![
            prefixed(
                0,
                "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n",
            ),
            [
                vec![1u8],
                hex_bytes(include_str!(
                    "../../../checks/tests/data/rpm/annexa-fixture.hex"
                )),
            ]
            .concat(),
            prefixed(2, "1:3.0.7-27.el9\n1:3.0.7-28.el9_4"),
            prefixed(
                3,
                "<repomd><data type=\"primary\"><location href=\"repodata/a-primary.xml.gz\"/></data></repomd>",
            ),
            prefixed(
                4,
                "<updates><update type=\"security\"><id>RHSA-1</id><severity>Important</severity><pkglist><collection><package name=\"openssl\" version=\"3\" release=\"1\" epoch=\"1\" arch=\"x86_64\"/></collection></pkglist></update></updates>",
            ),
        ],
        _ => Vec::new(),
    }
}

/// A scan of an empty root: a real report of every built-in check.
/// Made once: several targets' seeds carry it.
fn sample_scan() -> &'static ScanReport {
    static SCAN: std::sync::OnceLock<ScanReport> = std::sync::OnceLock::new();
    SCAN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let view = HostView::root(dir.path()).expect("an empty root");
        crate::scan_all(&view)
    })
}

fn statement_payload() -> Vec<u8> {
    let key = harness_key();
    let predicate = ScanPredicate {
        agent: AgentInfo {
            id: "fuzz-agent".into(),
            version: "0.1.0".into(),
            key_id: key.public().key_id(),
        },
        sequence: 1,
        previous: None,
        labels: BTreeMap::from([("env".into(), "fuzz".into())]),
        gap: None,
        interval_seconds: Some(3600),
        log_alert: None,
        key_rotation: None,
        scan: sample_scan().clone(),
    };
    serde_json::to_vec(&scan_statement(predicate, &"0".repeat(64))).expect("a statement serializes")
}

fn signed_envelope() -> Vec<u8> {
    dsse::sign(IN_TOTO_PAYLOAD_TYPE, &statement_payload(), harness_key()).to_json()
}

fn tree(size: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..size {
        t.push(merkle::leaf_hash(&i.to_be_bytes()));
    }
    t
}

fn watch_seed() -> Vec<u8> {
    let t = tree(7);
    let proof = merkle::consistency_proof(&t, 4, 7).expect("a proof");
    let w = Watch {
        held: Some(signed_checkpoint(4, t.root_at(4).expect("a root"))),
        state: LogState {
            checkpoint: signed_checkpoint(7, t.root()),
            consistency_from: Some(4),
            consistency: proof.iter().map(|h| b64(h)).collect(),
        },
        receipt_index: Some(5),
        transitions: Vec::new(),
    };
    serde_json::to_vec(&w).expect("a watch serializes")
}

fn bundle_seed() -> Vec<u8> {
    let t = tree(1);
    let lines = [
        serde_json::json!({"type": "header", "format": annexa_evidence::log::BUNDLE_FORMAT, "origin": ORIGIN,
            "exported_at": "2026-01-01T00:00:00Z", "size": 1}),
        serde_json::json!({"type": "checkpoint", "note": signed_checkpoint(1, t.root()),
            "signed_at": "2026-01-01T00:00:00Z"}),
        serde_json::json!({"type": "end", "entries": 1}),
    ];
    lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Bytes of a hex text file (the rpm header vectors).
fn hex_bytes(hex: &str) -> Vec<u8> {
    let hex = hex.trim();
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}
