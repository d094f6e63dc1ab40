//! Fixtures shared by annexa's end-to-end tests and benchmarks.
//!
//! [`hardened_root`] writes a Debian-like root file system that satisfies
//! every check of the built-in packs that can be judged from files: the
//! "golden image" a CI pipeline would gate. Tests then break one thing at a
//! time and watch the matching check fail.

pub mod load;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

const PACKAGES: &[(&str, &str, &str)] = &[
    ("auditd", "1:3.0.9-1", "amd64"),
    ("chrony", "4.3-2+deb12u1", "amd64"),
    ("nftables", "1.0.6-2+deb12u2", "amd64"),
    ("unattended-upgrades", "2.9.1+nmu3", "all"),
    ("clamav", "1.0.7+dfsg-1~deb12u1", "amd64"),
    ("clamav-freshclam", "1.0.7+dfsg-1~deb12u1", "amd64"),
    ("aide", "0.18.3-1+deb12u3", "amd64"),
    ("openssh-server", "1:9.2p1-2+deb12u5", "amd64"),
    ("sudo", "1.9.13p3-1+deb12u1", "amd64"),
    ("openssl", "3.0.15-1~deb12u1", "amd64"),
    ("apparmor", "3.0.8-3", "amd64"),
    ("libpam-pwquality", "1.4.5-1+b1", "amd64"),
    ("prometheus-node-exporter", "1.5.0-1+b6", "amd64"),
    ("rsyslog", "8.2302.0-1+deb12u1", "amd64"),
    ("libssl3", "3.0.15-1~deb12u1", "amd64"),
];

/// The hardened root's sshd drop-in, as (path, text).
const SSHD_HARDENING: (&str, &str) = (
    "/etc/ssh/sshd_config.d/10-hardening.conf",
    "PermitRootLogin no\nPermitEmptyPasswords no\nPasswordAuthentication no\nMaxAuthTries 3\nLoginGraceTime 30\nClientAliveInterval 300\nClientAliveCountMax 2\nBanner /etc/issue.net\nHostbasedAuthentication no\nIgnoreRhosts yes\nX11Forwarding no\nAllowTcpForwarding no\nLogLevel VERBOSE\nMACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com\n",
);

/// The hardened root's sshd drop-in with one setting broken: root may log
/// in over SSH (what `ssh.permit-root-login` fails on), as (path, text).
pub fn permit_root() -> (&'static str, String) {
    let (path, text) = SSHD_HARDENING;
    (
        path,
        text.replace("PermitRootLogin no", "PermitRootLogin yes"),
    )
}

/// Checks that require files owned by root, which a fixture root written
/// by another user cannot satisfy.
pub const ROOT_OWNED_CHECKS: &[&str] = &[
    "privileges.sudoers-permissions",
    "audit.log-directory",
    "files.shadow-permissions",
    "files.gshadow-permissions",
    "files.passwd-permissions",
    "files.group-permissions",
    "ssh.config-permissions",
    "boot.grub-config-permissions",
    "cron.crontab-permissions",
    "cron.d-permissions",
];

/// Writes `content` at `path` inside `root` with `mode`.
pub fn put(root: &Path, path: &str, content: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("absolute path")).expect("create parent");
    std::fs::write(&p, content).expect("write fixture file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .expect("chmod fixture file");
}

fn enable(root: &Path, target: &str, unit: &str) {
    let wants = root.join(format!("etc/systemd/system/{target}.wants"));
    std::fs::create_dir_all(&wants).expect("wants dir");
    let _ = symlink(format!("/lib/systemd/system/{unit}"), wants.join(unit));
    put(
        root,
        &format!("/lib/systemd/system/{unit}"),
        &format!("[Unit]\nDescription={unit}\n[Install]\nWantedBy={target}\n"),
        0o644,
    );
}

/// Builds the hardened root under `root` (which must exist and be empty).
pub fn hardened_root(root: &Path) {
    put(
        root,
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        0o644,
    );
    put(root, "/etc/hostname", "golden-image\n", 0o644);
    put(
        root,
        "/etc/machine-id",
        "4f1c0c5b6d7e4a3f9b2e8d1c0a9f8e7d\n",
        0o444,
    );

    let mut status = String::new();
    for (name, version, arch) in PACKAGES {
        status.push_str(&format!("Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: {arch}\nVersion: {version}\nDescription: {name}\n\n"));
    }
    put(root, "/var/lib/dpkg/status", &status, 0o644);
    let mut list = String::new();
    for (name, version, arch) in PACKAGES {
        list.push_str(&format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\nFilename: pool/{name}.deb\n\n"));
    }
    put(
        root,
        "/var/lib/apt/lists/mirror.example_debian_dists_bookworm_main_binary-amd64_Packages",
        &list,
        0o644,
    );
    put(
        root,
        "/var/lib/apt/lists/mirror.example_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
        "Package: openssl\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n",
        0o644,
    );

    put(
        root,
        "/etc/profile",
        "if [ \"$(id -u)\" -eq 0 ]; then PS1='# '; fi\n",
        0o644,
    );
    put(
        root,
        "/etc/profile.d/tmout.sh",
        "TMOUT=900\nreadonly TMOUT\nexport TMOUT\n",
        0o644,
    );
    put(
        root,
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
        0o600,
    );
    put(root, SSHD_HARDENING.0, SSHD_HARDENING.1, 0o644);
    put(
        root,
        "/etc/issue.net",
        "Authorized use only. Activity is logged.\n",
        0o644,
    );
    put(
        root,
        "/etc/systemd/logind.conf.d/idle.conf",
        "[Login]\nStopIdleSessionSec=15min\n",
        0o644,
    );
    put(
        root,
        "/etc/pam.d/common-auth",
        "auth required pam_faillock.so preauth\nauth [success=1 default=ignore] pam_unix.so nullok\nauth [default=die] pam_faillock.so authfail\n",
        0o644,
    );
    // As pam-auth-update writes it with libpam-pwquality installed.
    put(
        root,
        "/etc/pam.d/common-password",
        "password requisite pam_pwquality.so retry=3\npassword [success=1 default=ignore] pam_unix.so obscure use_authtok try_first_pass yescrypt\npassword requisite pam_deny.so\npassword required pam_permit.so\n",
        0o644,
    );
    put(
        root,
        "/etc/default/grub",
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n",
        0o644,
    );
    put(
        root,
        "/etc/pam.d/su",
        "auth sufficient pam_rootok.so\nauth required pam_wheel.so\n",
        0o644,
    );

    put(
        root,
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n_chrony:x:100:102:Chrony daemon:/var/lib/chrony:/usr/sbin/nologin\nops:x:1000:1000:Operator:/home/ops:/bin/bash\n",
        0o644,
    );
    put(
        root,
        "/etc/shadow",
        "root:!:19800:0:99999:7:::\ndaemon:*:19800:0:99999:7:::\n_chrony:!:19800::::::\nops:$y$j9T$4iR1v8wqH0Ehq1C3m1Sgk/$Yt5xPf4lK0gQeR1WmS7iGm8jqfJ3uQe0hQm1nHzX3a8:19800:1:365:7:30::\n",
        0o640,
    );
    put(
        root,
        "/etc/group",
        "root:x:0:\ndaemon:x:1:\nsudo:x:27:ops\n_chrony:x:102:\nops:x:1000:\n",
        0o644,
    );
    put(
        root,
        "/etc/login.defs",
        "MAIL_DIR /var/mail\nPASS_MAX_DAYS 365\nPASS_MIN_DAYS 1\nPASS_WARN_AGE 7\nUMASK 027\nENCRYPT_METHOD YESCRYPT\n",
        0o644,
    );
    put(
        root,
        "/etc/security/pwquality.conf",
        "minlen = 14\nminclass = 3\n",
        0o644,
    );
    put(
        root,
        "/etc/sudoers",
        "Defaults env_reset\nDefaults use_pty\nDefaults logfile=/var/log/sudo.log\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
        0o440,
    );
    put(
        root,
        "/etc/sudoers.d/README",
        "# Files in this directory are read by sudo.\n",
        0o440,
    );

    put(
        root,
        "/etc/audit/rules.d/50-annexa.rules",
        "-D\n-b 8192\n-w /etc/passwd -p wa -k identity\n-a always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k time-change\n-w /etc/localtime -p wa -k time-change\n-a always,exit -F arch=b64 -S sethostname,setdomainname -k system-locale\n-w /etc/hosts -p wa -k system-locale\n-w /etc/hostname -p wa -k system-locale\n-w /var/log/lastlog -p wa -k logins\n-w /var/run/faillock -p wa -k logins\n-w /var/run/utmp -p wa -k session\n-w /var/log/wtmp -p wa -k session\n-w /var/log/btmp -p wa -k session\n-a always,exit -F arch=b64 -S chmod,fchmod,fchmodat,chown,fchown,fchownat,lchown,setxattr,lsetxattr,fsetxattr,removexattr,lremovexattr,fremovexattr -F auid>=1000 -F auid!=unset -k perm_mod\n-a always,exit -F arch=b64 -S mount -F auid>=1000 -F auid!=unset -k mounts\n-a always,exit -F arch=b64 -S unlink,unlinkat,rename,renameat -F auid>=1000 -F auid!=unset -k delete\n-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k kernel_modules\n-w /etc/apparmor/ -p wa -k MAC-policy\n-w /etc/apparmor.d/ -p wa -k MAC-policy\n-w /etc/shadow -p wa -k identity\n-w /etc/group -p wa -k identity\n-w /etc/sudoers -p wa -k scope\n-w /etc/sudoers.d -p wa -k scope\n-a always,exit -F arch=b64 -C euid!=uid -F auid!=unset -S execve -k user_emulation\n-a always,exit -F arch=b32 -C euid!=uid -F auid!=unset -S execve -k user_emulation\n",
        0o640,
    );
    put(
        root,
        "/etc/audit/rules.d/99-finalize.rules",
        "-e 2\n",
        0o640,
    );
    std::fs::create_dir_all(root.join("var/log/audit")).expect("audit dir");
    std::fs::set_permissions(
        root.join("var/log/audit"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    put(root, "/var/log/audit/audit.log", "", 0o600);
    std::fs::create_dir_all(root.join("var/log/journal")).expect("journal dir");
    put(
        root,
        "/etc/systemd/journald.conf",
        "[Journal]\nStorage=persistent\n",
        0o644,
    );
    put(
        root,
        "/etc/rsyslog.conf",
        "module(load=\"imjournal\")\n$FileCreateMode 0640\n$IncludeConfig /etc/rsyslog.d/*.conf\n",
        0o644,
    );
    put(
        root,
        "/etc/rsyslog.d/90-forward.conf",
        "*.* @@logs.corp.example:6514\n",
        0o644,
    );
    put(root, "/var/log/syslog", "", 0o640);
    put(root, "/var/log/sudo.log", "", 0o600);
    put(root, "/var/log/wtmp", "", 0o664);

    put(
        root,
        "/etc/chrony/chrony.conf",
        "confdir /etc/chrony/conf.d\nsourcedir /etc/chrony/sources.d\nmakestep 1 3\nrtcsync\n",
        0o644,
    );
    put(
        root,
        "/etc/chrony/sources.d/corp.sources",
        "server ntp1.corp.example iburst\nserver ntp2.corp.example iburst\n",
        0o644,
    );
    enable(root, "multi-user.target", "chrony.service");
    enable(root, "multi-user.target", "auditd.service");
    enable(root, "sysinit.target", "nftables.service");
    enable(root, "multi-user.target", "clamav-freshclam.service");
    enable(root, "sysinit.target", "apparmor.service");

    put(
        root,
        "/etc/nftables.conf",
        "#!/usr/sbin/nft -f\nflush ruleset\ntable inet filter {\n  chain input {\n    type filter hook input priority filter; policy drop;\n    ct state established,related accept\n    iif lo accept\n    tcp dport 22 accept\n  }\n}\n",
        0o755,
    );
    put(
        root,
        "/etc/sysctl.d/60-annexa.conf",
        "net.ipv4.conf.all.accept_redirects = 0\nkernel.dmesg_restrict = 1\nnet.ipv4.conf.all.log_martians = 1\nnet.ipv4.conf.all.rp_filter = 1\nnet.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.all.secure_redirects = 0\nnet.ipv6.conf.all.accept_redirects = 0\nkernel.kptr_restrict = 1\nkernel.yama.ptrace_scope = 1\nfs.protected_hardlinks = 1\nfs.protected_symlinks = 1\nkernel.unprivileged_bpf_disabled = 1\n",
        0o644,
    );
    put(
        root,
        "/etc/apt/apt.conf.d/20auto-upgrades",
        "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n",
        0o644,
    );
    put(
        root,
        "/var/lib/clamav/daily.cld",
        "ClamAV-VDB:fixture",
        0o644,
    );
    hardening_of_issue_23(root);
}

/// What the checks added for the technological controls (encryption,
/// removable media, integrity baseline, monitoring, retention, software
/// sources) need to pass in a hardened image.
fn hardening_of_issue_23(root: &Path) {
    put(root, "/etc/gshadow", "root:*::\nsudo:*::ops\n", 0o640);
    put(
        root,
        "/etc/default/useradd",
        "SHELL=/bin/bash\nINACTIVE=30\n",
        0o644,
    );
    let mut modprobe = String::new();
    for m in [
        "usb-storage",
        "firewire-core",
        "firewire-ohci",
        "firewire-sbp2",
        "cramfs",
        "freevxfs",
        "hfs",
        "hfsplus",
        "jffs2",
        "udf",
        "dccp",
        "sctp",
        "rds",
        "tipc",
    ] {
        modprobe.push_str(&format!("install {m} /bin/false\nblacklist {m}\n"));
    }
    put(
        root,
        "/etc/modprobe.d/annexa-hardening.conf",
        &modprobe,
        0o644,
    );
    put(
        root,
        "/etc/audit/auditd.conf",
        "log_file = /var/log/audit/audit.log\nmax_log_file = 64\nmax_log_file_action = keep_logs\nspace_left_action = email\nadmin_space_left_action = single\ndisk_full_action = halt\ndisk_error_action = halt\n",
        0o640,
    );
    // LVM on LUKS, as the Debian installer's guided encryption makes it.
    put(
        root,
        "/etc/crypttab",
        "vda3_crypt UUID=5b9e4c1e-0d1a-4b8e-9c59-3f1c7d2a8e10 none luks,discard\n",
        0o644,
    );
    put(
        root,
        "/etc/fstab",
        "/dev/mapper/golden--vg-root / ext4 errors=remount-ro 0 1\nUUID=2d6f0c1e-7a55-4d51-8a0e-b1e2f3a4c5d6 /boot ext4 defaults 0 2\n/dev/mapper/golden--vg-swap_1 none swap sw 0 0\n",
        0o644,
    );
    put(
        root,
        "/etc/lvm/backup/golden-vg",
        "golden-vg {\n\tphysical_volumes {\n\t\tpv0 {\n\t\t\tid = \"fixture\"\n\t\t\tdevice = \"/dev/mapper/vda3_crypt\"\n\t\t}\n\t}\n}\n",
        0o600,
    );
    put(root, "/boot/grub/grub.cfg", "set default=0\n", 0o600);
    put(
        root,
        "/var/lib/aide/aide.db",
        "AIDE baseline (fixture)",
        0o600,
    );
    put(
        root,
        "/lib/systemd/system/dailyaidecheck.service",
        "[Service]\nType=oneshot\nExecStart=/usr/share/aide/bin/dailyaidecheck\n",
        0o644,
    );
    put(
        root,
        "/lib/systemd/system/dailyaidecheck.timer",
        "[Timer]\nOnCalendar=daily\nPersistent=true\n[Install]\nWantedBy=timers.target\n",
        0o644,
    );
    let wants = root.join("etc/systemd/system/timers.target.wants");
    std::fs::create_dir_all(&wants).expect("wants dir");
    let _ = symlink(
        "/lib/systemd/system/dailyaidecheck.timer",
        wants.join("dailyaidecheck.timer"),
    );
    enable(
        root,
        "multi-user.target",
        "prometheus-node-exporter.service",
    );
    enable(root, "multi-user.target", "ssh.service");
    put(
        root,
        "/etc/apt/sources.list.d/debian.sources",
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        0o644,
    );
    put(
        root,
        "/etc/ssl/openssl.cnf",
        "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\nMinProtocol = TLSv1.2\nCipherString = DEFAULT:@SECLEVEL=2\n",
        0o644,
    );
    put(
        root,
        "/etc/logrotate.conf",
        "weekly\nrotate 4\ncreate\ninclude /etc/logrotate.d\n",
        0o644,
    );
    put(
        root,
        "/etc/logrotate.d/rsyslog",
        "/var/log/syslog\n/var/log/auth.log\n{\n\trotate 13\n\tweekly\n\tmissingok\n\tcompress\n}\n",
        0o644,
    );
    put(
        root,
        "/etc/logrotate.d/dpkg",
        "/var/log/dpkg.log {\n\tmonthly\n\trotate 12\n\tcompress\n}\n",
        0o644,
    );
    put(root, "/var/log/dpkg.log", "", 0o640);
    put(root, "/etc/crontab", "SHELL=/bin/sh\n", 0o600);
    std::fs::create_dir_all(root.join("etc/cron.d")).expect("cron.d");
    std::fs::set_permissions(
        root.join("etc/cron.d"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod cron.d");
    std::fs::create_dir_all(root.join("tmp")).expect("tmp");
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod tmp");
}

/// A database of its own on the test PostgreSQL server, dropped when this
/// goes out of scope, so that no test depends on what another left behind.
/// The server is `ANNEXA_TEST_POSTGRES` (a maintenance URL), by default
/// `postgres://postgres@127.0.0.1:5432/postgres`; `.ci/run` starts it.
/// Databases are made and dropped with `psql`, PostgreSQL's own client.
pub struct PgScratch {
    admin: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PgScratch {
    /// Creates `annexa_test_<pid>_<nanoseconds>`.
    pub fn new() -> PgScratch {
        let admin = std::env::var("ANNEXA_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let name = format!("annexa_test_{}_{nanos}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        PgScratch {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Default for PgScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) {
    let o = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (PostgreSQL's client; .ci/run installs and starts PostgreSQL)");
    assert!(
        o.status.success(),
        "psql {url} -c {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
