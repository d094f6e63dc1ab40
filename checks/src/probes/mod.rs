//! Probes: the Rust code that examines a host for a check. One probe kind
//! per file; each reads only through the [`Ctx`] (and so through the
//! [`HostView`]) and returns an [`Outcome`] that names every source it read.
//!
//! A probe never panics on host content and never passes silently: content
//! it cannot read or understand gives `error` with the reason.

mod accounts;
mod audit_rules;
mod capacity;
mod clock_state;
mod dconf;
mod dnf_cache;
mod encryption;
mod file;
mod file_tree;
mod firewall;
mod inventory;
mod kernel_module;
mod listeners;
mod log_retention;
mod logging;
mod login_accounts;
mod login_defs;
mod mac;
mod openssl;
mod package;
mod package_sources;
pub mod packages;
mod pending_updates;
mod raid;
mod scheduled;
mod setting;
mod shell_var;
mod special_files;
mod ssh_host_keys;
mod sshd_config;
mod sudoers;
mod sysctl;
mod systemd_conf;
mod systemd_unit;
mod time_sync;
mod walk;

use std::sync::Arc;
use std::sync::OnceLock as OnceCell;

use serde::Deserialize;

use crate::expect::{Expect, Params};
use crate::host::{FileData, HostError, HostView, ScanMode};
use crate::parse::{self, passwd};
use crate::result::{Source, Status};

pub(crate) use inventory::facts_of;

/// The kernel, disk and log formats the probes parse, pure functions over
/// bytes and text (fuzzed by the `kernel_formats` target).
pub mod formats {
    pub use super::encryption::{
        CryptEntry, LuksHeader, Mount, parse_crypttab, parse_fstab, parse_luks, parse_mountinfo,
    };
    pub use super::kernel_module::loaded as loaded_modules;
    pub use super::listeners::{Listener, parse_table as parse_socket_table};
    pub use super::log_retention::{Rotation, rotation_of};
    pub use super::login_accounts::wtmp_logins;
    pub use super::raid::{MdArray, parse_mdstat};
    pub use super::ssh_host_keys::key_strength;
}
pub use inventory::{Detected, HostFacts, host_facts};
pub use packages::{PackageDb, PackageFormat};

/// What a check examines and how: the `probe` table of a check in a pack.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeSpec {
    /// A keyword of the OpenSSH server configuration.
    SshdConfig(sshd_config::SshdConfigProbe),
    /// A setting of /etc/login.defs.
    LoginDefs(login_defs::LoginDefsProbe),
    /// A setting of a systemd configuration file with its drop-ins.
    SystemdConf(systemd_conf::SystemdConfProbe),
    /// A variable assigned in shell profile files.
    ShellVar(shell_var::ShellVarProbe),
    /// A kernel parameter.
    Sysctl(sysctl::SysctlProbe),
    /// A file's existence, mode, owner, content or age.
    File(file::FileProbe),
    /// Permissions of every file under a directory.
    FileTree(file_tree::FileTreeProbe),
    /// A systemd unit enabled and/or active.
    SystemdUnit(systemd_unit::SystemdUnitProbe),
    /// A package installed (or not), at a minimum version.
    Package(package::PackageProbe),
    /// Updates pending according to local package metadata.
    PendingUpdates(pending_updates::PendingUpdatesProbe),
    /// A time synchronisation daemon installed, enabled and configured.
    TimeSync(time_sync::TimeSyncProbe),
    /// The kernel's clock synchronisation state.
    ClockState(clock_state::ClockStateProbe),
    /// Local accounts and groups.
    Accounts(accounts::AccountsProbe),
    /// The sudo policy.
    Sudoers(sudoers::SudoersProbe),
    /// Linux audit rules.
    AuditRules(audit_rules::AuditRulesProbe),
    /// System logging: journald persistence, forwarding.
    Logging(logging::LoggingProbe),
    /// A host firewall configured or loaded.
    Firewall(firewall::FirewallProbe),
    /// Host inventory facts.
    Inventory(inventory::InventoryProbe),
    /// Disk and memory headroom.
    Capacity(capacity::CapacityProbe),
    /// A key in a configuration file and its drop-ins.
    Setting(setting::SettingProbe),
    /// Mandatory access control (SELinux, AppArmor) enforcing.
    Mac(mac::MacProbe),
    /// Accounts that can log in: dormancy, inactivity lock, home and .ssh permissions.
    LoginAccounts(login_accounts::LoginAccountsProbe),
    /// How long logs and audit records are kept.
    LogRetention(log_retention::LogRetentionProbe),
    /// The SSH server's host keys: strength and permissions.
    SshHostKeys(ssh_host_keys::SshHostKeysProbe),
    /// The lowest TLS version the system OpenSSL accepts.
    Openssl(openssl::OpensslProbe),
    /// Network services compared with the allowed ports and programs.
    Listeners(listeners::ListenersProbe),
    /// Package sources authenticated and providing what is installed.
    PackageSources(package_sources::PackageSourcesProbe),
    /// Setuid programs, world-writable and unowned files.
    SpecialFiles(special_files::SpecialFilesProbe),
    /// Volumes on encrypted devices, and their ciphers.
    Encryption(encryption::EncryptionProbe),
    /// A GNOME setting made and locked through dconf.
    Dconf(dconf::DconfProbe),
    /// A job run on a schedule, and its last run.
    Scheduled(scheduled::ScheduledProbe),
    /// Software RAID arrays healthy and monitored.
    Raid(raid::RaidProbe),
    /// Kernel modules that must not load.
    KernelModule(kernel_module::KernelModuleProbe),
}

impl ProbeSpec {
    /// The probe's kind as written in packs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::SshdConfig(_) => "sshd_config",
            ProbeSpec::LoginDefs(_) => "login_defs",
            ProbeSpec::SystemdConf(_) => "systemd_conf",
            ProbeSpec::ShellVar(_) => "shell_var",
            ProbeSpec::Sysctl(_) => "sysctl",
            ProbeSpec::File(_) => "file",
            ProbeSpec::FileTree(_) => "file_tree",
            ProbeSpec::SystemdUnit(_) => "systemd_unit",
            ProbeSpec::Package(_) => "package",
            ProbeSpec::PendingUpdates(_) => "pending_updates",
            ProbeSpec::TimeSync(_) => "time_sync",
            ProbeSpec::ClockState(_) => "clock_state",
            ProbeSpec::Accounts(_) => "accounts",
            ProbeSpec::Sudoers(_) => "sudoers",
            ProbeSpec::AuditRules(_) => "audit_rules",
            ProbeSpec::Logging(_) => "logging",
            ProbeSpec::Firewall(_) => "firewall",
            ProbeSpec::Inventory(_) => "inventory",
            ProbeSpec::Capacity(_) => "capacity",
            ProbeSpec::Setting(_) => "setting",
            ProbeSpec::Mac(_) => "mac",
            ProbeSpec::LoginAccounts(_) => "login_accounts",
            ProbeSpec::LogRetention(_) => "log_retention",
            ProbeSpec::SshHostKeys(_) => "ssh_host_keys",
            ProbeSpec::Openssl(_) => "openssl",
            ProbeSpec::Listeners(_) => "listeners",
            ProbeSpec::PackageSources(_) => "package_sources",
            ProbeSpec::SpecialFiles(_) => "special_files",
            ProbeSpec::Raid(_) => "raid",
            ProbeSpec::Scheduled(_) => "scheduled",
            ProbeSpec::Dconf(_) => "dconf",
            ProbeSpec::Encryption(_) => "encryption",
            ProbeSpec::KernelModule(_) => "kernel_module",
        }
    }

    fn probe(&self) -> &dyn Probe {
        match self {
            ProbeSpec::SshdConfig(p) => p,
            ProbeSpec::LoginDefs(p) => p,
            ProbeSpec::SystemdConf(p) => p,
            ProbeSpec::ShellVar(p) => p,
            ProbeSpec::Sysctl(p) => p,
            ProbeSpec::File(p) => p,
            ProbeSpec::FileTree(p) => p,
            ProbeSpec::SystemdUnit(p) => p,
            ProbeSpec::Package(p) => p,
            ProbeSpec::PendingUpdates(p) => p,
            ProbeSpec::TimeSync(p) => p,
            ProbeSpec::ClockState(p) => p,
            ProbeSpec::Accounts(p) => p,
            ProbeSpec::Sudoers(p) => p,
            ProbeSpec::AuditRules(p) => p,
            ProbeSpec::Logging(p) => p,
            ProbeSpec::Firewall(p) => p,
            ProbeSpec::Inventory(p) => p,
            ProbeSpec::Capacity(p) => p,
            ProbeSpec::Setting(p) => p,
            ProbeSpec::Mac(p) => p,
            ProbeSpec::LoginAccounts(p) => p,
            ProbeSpec::LogRetention(p) => p,
            ProbeSpec::SshHostKeys(p) => p,
            ProbeSpec::Openssl(p) => p,
            ProbeSpec::Listeners(p) => p,
            ProbeSpec::PackageSources(p) => p,
            ProbeSpec::SpecialFiles(p) => p,
            ProbeSpec::Raid(p) => p,
            ProbeSpec::Scheduled(p) => p,
            ProbeSpec::Dconf(p) => p,
            ProbeSpec::Encryption(p) => p,
            ProbeSpec::KernelModule(p) => p,
        }
    }

    /// Runs the probe.
    pub fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        self.probe().run(ctx)
    }

    /// Parameters the probe refers to (checked when the pack loads).
    pub fn param_refs(&self) -> Vec<&str> {
        self.probe().param_refs()
    }

    /// Checks the probe's own settings beyond what the types ensure.
    pub fn validate(&self) -> Result<(), String> {
        self.probe().validate()
    }

    /// Directories the probe walks, how deep, and the subtrees it ignores.
    pub fn walks(&self) -> Vec<WalkRequest<'_>> {
        self.probe().walks()
    }
}

/// A directory one probe walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkRequest<'a> {
    /// The directory, inside the scanned system.
    pub dir: &'a str,
    /// How deep below it.
    pub depth: usize,
    /// Globs of directories whose whole subtree the probe ignores (its
    /// `exclude` entries of the form `DIR/*`, without the `/*`).
    pub prune: Vec<&'a str>,
}

/// How one directory is walked in a scan: to the deepest depth a selected
/// check asks, never below a directory that every check walking it
/// ignores (a container store under /var holds millions of files none of
/// them reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkPlan {
    /// The deepest depth asked.
    pub depth: usize,
    /// Each walking check's prune globs.
    pub prune: Vec<Vec<String>>,
}

impl WalkPlan {
    /// Adds one probe's request.
    pub fn add(&mut self, request: &WalkRequest<'_>) {
        self.depth = self.depth.max(request.depth);
        self.prune
            .push(request.prune.iter().map(|g| g.to_string()).collect());
    }

    /// Whether the walk stays out of `dir`: every walking check ignores it.
    pub fn prunes(&self, dir: &str) -> bool {
        !self.prune.is_empty()
            && self
                .prune
                .iter()
                .all(|globs| globs.iter().any(|g| parse::glob_match(g, dir)))
    }
}

/// The behaviour every probe kind implements.
trait Probe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome;

    fn param_refs(&self) -> Vec<&str> {
        Vec::new()
    }

    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Directories the probe walks, so a scan can walk them ahead on
    /// another core.
    fn walks(&self) -> Vec<WalkRequest<'_>> {
        Vec::new()
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// The expectation in words.
    pub expected: Option<String>,
    /// What was observed.
    pub observed: Option<String>,
    /// One line for a human.
    pub message: String,
    /// What was read.
    pub sources: Vec<Source>,
}

impl Outcome {
    fn new(status: Status, message: impl Into<String>) -> Outcome {
        Outcome {
            status,
            expected: None,
            observed: None,
            message: message.into(),
            sources: Vec::new(),
        }
    }

    /// A passing outcome.
    pub fn pass(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Pass, message)
    }

    /// A failing outcome.
    pub fn fail(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Fail, message)
    }

    /// An outcome for a check that could not be evaluated.
    pub fn error(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Error, message)
    }

    /// An outcome for a check that does not apply.
    pub fn not_applicable(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::NotApplicable, message)
    }

    /// A verdict over several items: `pass` naming the good ones when no
    /// item is bad, else `fail` naming the bad ones; the observed value
    /// lists the bad ones first, then the good.
    pub(crate) fn findings(
        expected: impl Into<String>,
        good: &[String],
        bad: &[String],
        sources: Vec<Source>,
    ) -> Outcome {
        let observed = bad
            .iter()
            .chain(good)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        let message = if bad.is_empty() {
            good.join("; ")
        } else {
            bad.join("; ")
        };
        Outcome::verdict(bad.is_empty(), message)
            .expected(expected)
            .observed(observed)
            .sources(sources)
    }

    /// Pass or fail depending on `ok`.
    pub fn verdict(ok: bool, message: impl Into<String>) -> Outcome {
        Outcome::new(if ok { Status::Pass } else { Status::Fail }, message)
    }

    /// Sets the expected value.
    pub fn expected(mut self, e: impl Into<String>) -> Outcome {
        self.expected = Some(e.into());
        self
    }

    /// Sets the observed value.
    pub fn observed(mut self, o: impl Into<String>) -> Outcome {
        self.observed = Some(o.into());
        self
    }

    /// Sets the sources.
    pub fn sources(mut self, s: Vec<Source>) -> Outcome {
        self.sources = s;
        self
    }

    fn from_host_error(e: &HostError, sources: Vec<Source>) -> Outcome {
        Outcome::error(e.to_string()).sources(sources)
    }
}

/// Returns early with an `error` outcome when a host read fails.
macro_rules! host_try {
    ($expr:expr, $sources:expr) => {
        match $expr {
            Ok(v) => v,
            Err(e) => return $crate::probes::Outcome::from_host_error(&e, $sources.clone()),
        }
    };
    ($expr:expr) => {
        match $expr {
            Ok(v) => v,
            Err(e) => return $crate::probes::Outcome::from_host_error(&e, Vec::new()),
        }
    };
}
pub(crate) use host_try;

/// The state a probe run has access to: the host, the parameters in force,
/// and parsed files shared between the checks of one scan.
pub struct Ctx<'a> {
    /// The scanned system.
    pub host: &'a HostView,
    /// Parameters in force.
    pub params: &'a Params,
    platform: OnceCell<Detected>,
    sshd: OnceCell<Result<Arc<parse::sshd::SshdConfig>, HostError>>,
    packages: OnceCell<Result<Option<Arc<PackageDb>>, HostError>>,
    sudoers: OnceCell<Result<Arc<parse::sudoers::Sudoers>, HostError>>,
    pending: OnceCell<Result<Arc<pending_updates::Pending>, HostError>>,
    walks: std::sync::Mutex<WalkCache>,
    /// The depth each directory is walked to in this scan (the deepest any
    /// selected check asks), so whichever check walks it first walks it
    /// for all.
    walk_plan: OnceCell<std::collections::BTreeMap<String, WalkPlan>>,
}

/// Directory → (the depth it was walked to, the walk), filled once.
type WalkCache = std::collections::HashMap<
    String,
    Arc<OnceCell<(usize, Result<Option<Arc<walk::Walk>>, HostError>)>>,
>;

impl<'a> Ctx<'a> {
    /// A context for one scan.
    pub fn new(host: &'a HostView, params: &'a Params) -> Ctx<'a> {
        Ctx {
            host,
            params,
            platform: OnceCell::new(),
            sshd: OnceCell::new(),
            packages: OnceCell::new(),
            sudoers: OnceCell::new(),
            pending: OnceCell::new(),
            walks: Default::default(),
            walk_plan: OnceCell::new(),
        }
    }

    /// Everything under `dir` to at least `depth` (a deeper walk may
    /// answer: filter by [`walk::Found::depth`]), walked once per scan; a
    /// caller that asks while another thread walks the same directory waits
    /// for that walk instead of repeating it.
    pub(crate) fn walk(
        &self,
        dir: &str,
        depth: usize,
    ) -> Result<Option<Arc<walk::Walk>>, HostError> {
        let planned = self.walk_plan.get().and_then(|p| p.get(dir));
        let depth = depth.max(planned.map_or(0, |p| p.depth));
        // Unplanned walks (a probe run alone) prune nothing: the cache is
        // shared, and only the plan knows every walker's exclusions.
        let prune = |d: &str| planned.is_some_and(|p| p.prunes(d));
        let cell = self
            .walks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(dir.to_string())
            .or_default()
            .clone();
        let (have, result) = cell.get_or_init(|| {
            (
                depth,
                walk::walk(self.host, dir, depth, &prune).map(|w| w.map(Arc::new)),
            )
        });
        if *have >= depth {
            return result.clone();
        }
        // Deeper than the walk made: walk again, uncached (the packs walk
        // each directory to one depth, so this is rare).
        walk::walk(self.host, dir, depth, &prune).map(|w| w.map(Arc::new))
    }

    /// Sets how each directory is walked in this scan (once; a second plan
    /// is ignored).
    pub fn plan_walks(&self, plan: std::collections::BTreeMap<String, WalkPlan>) {
        let _ = self.walk_plan.set(plan);
    }

    /// Walks ahead, on the calling thread, the directories `plan` names
    /// (each to its depth); a directory that is a link is covered by its
    /// target and skipped, as the probes skip it.
    pub fn prefetch_walks(&self, plan: &std::collections::BTreeMap<String, WalkPlan>) {
        for (dir, how) in plan {
            if matches!(self.host.link_target(dir), Ok(None)) {
                let _ = self.walk(dir, how.depth);
            }
        }
    }

    /// Reads the package lists ahead of the checks that need them, so that a
    /// scan can do this (the costliest read, tens of megabytes of lists) on
    /// a second core while the other checks run.
    pub fn prefetch_pending_updates(&self) {
        pending_updates::prefetch(self);
    }

    /// Whether the scan is of the live machine.
    pub fn is_live(&self) -> bool {
        self.host.mode() == ScanMode::Live
    }

    /// The sshd configuration, includes expanded.
    pub fn sshd(&self) -> Result<Arc<parse::sshd::SshdConfig>, HostError> {
        self.sshd
            .get_or_init(|| parse::sshd::load(self.host, "/etc/ssh/sshd_config").map(Arc::new))
            .clone()
    }

    /// The sudo policy, includes expanded.
    pub fn sudoers(&self) -> Result<Arc<parse::sudoers::Sudoers>, HostError> {
        self.sudoers
            .get_or_init(|| parse::sudoers::load(self.host, "/etc/sudoers").map(Arc::new))
            .clone()
    }

    /// The platform, from the scanned system's os-release.
    pub fn platform(&self) -> &Detected {
        self.platform.get_or_init(|| inventory::detect(self.host))
    }

    /// The installed-package database of the platform's family; `Ok(None)`
    /// on a system without one.
    pub fn packages(&self) -> Result<Option<Arc<PackageDb>>, HostError> {
        self.packages
            .get_or_init(|| {
                packages::load(self.host, self.platform().platform.family).map(|o| o.map(Arc::new))
            })
            .clone()
    }

    /// A file, or `None` when absent (cached by the host view).
    pub fn read(&self, path: &str) -> Result<Option<Arc<FileData>>, HostError> {
        self.host.read(path)
    }

    /// Parsed /etc/passwd (empty when absent) and its source.
    pub fn passwd(&self) -> Result<(Vec<passwd::PasswdEntry>, Source), HostError> {
        self.parsed("/etc/passwd", passwd::parse_passwd)
    }

    /// Parsed /etc/shadow.
    pub fn shadow(&self) -> Result<(Vec<passwd::ShadowEntry>, Source), HostError> {
        self.parsed("/etc/shadow", passwd::parse_shadow)
    }

    /// Parsed /etc/group.
    pub fn group(&self) -> Result<(Vec<passwd::GroupEntry>, Source), HostError> {
        self.parsed("/etc/group", passwd::parse_group)
    }

    fn parsed<T>(&self, path: &str, f: fn(&str) -> Vec<T>) -> Result<(Vec<T>, Source), HostError> {
        Ok(match self.host.read(path)? {
            Some(file) => (f(&file.text()), file.source()),
            None => (Vec::new(), HostView::absent_source(path)),
        })
    }

    /// Resolves an expectation against an observed value into an outcome.
    fn judge(&self, what: &str, expect: &Expect, observed: &str, sources: Vec<Source>) -> Outcome {
        let expected = expect.describe(self.params);
        match expect.judge(observed, self.params) {
            Ok(true) => Outcome::pass(format!("{what} is {observed}")),
            Ok(false) => Outcome::fail(format!("{what} is {observed}, expected {expected}")),
            Err(e) => Outcome::error(format!("{what}: {e}")),
        }
        .expected(expected)
        .observed(observed)
        .sources(sources)
    }

    /// A user name for a uid, from the scanned system's own /etc/passwd.
    pub fn user_name(&self, uid: u32) -> String {
        self.passwd()
            .ok()
            .and_then(|(p, _)| p.into_iter().find(|e| e.uid == Some(uid)).map(|e| e.name))
            .unwrap_or_else(|| uid.to_string())
    }

    /// A group name for a gid, from the scanned system's own /etc/group.
    pub fn group_name(&self, gid: u32) -> String {
        self.group()
            .ok()
            .and_then(|(g, _)| g.into_iter().find(|e| e.gid == Some(gid)).map(|e| e.name))
            .unwrap_or_else(|| gid.to_string())
    }
}

/// Whether the host has what a check's `applies_if` asks for: `Ok(())`
/// when it does, else the outcome to report (`not_applicable` naming
/// what was looked for, or `error` when the package database or a path
/// cannot be read).
pub(crate) fn applies(ctx: &Ctx<'_>, cond: &crate::pack::AppliesIf) -> Result<(), Outcome> {
    let mut sources = Vec::new();
    for path in &cond.paths {
        match ctx.host.exists(path) {
            Ok(true) => return Ok(()),
            Ok(false) => sources.push(HostView::absent_source(path)),
            Err(e) => return Err(Outcome::from_host_error(&e, sources)),
        }
    }
    if !cond.packages.is_empty() {
        match ctx.packages() {
            Ok(Some(db)) => {
                if cond.packages.iter().any(|p| db.installed.contains_key(p)) {
                    return Ok(());
                }
                sources.push(db.source.clone());
            }
            Ok(None) => {}
            Err(e) => return Err(Outcome::from_host_error(&e, sources)),
        }
    }
    let mut looked = Vec::new();
    if !cond.packages.is_empty() {
        looked.push(format!("none of {} is installed", cond.packages.join(", ")));
    }
    if !cond.paths.is_empty() {
        looked.push(format!("none of {} exists", cond.paths.join(", ")));
    }
    Err(
        Outcome::not_applicable(format!("{}: {}", cond.otherwise, looked.join(" and ")))
            .sources(sources),
    )
}

/// Deserializes a string or a list of strings as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Reads the drop-in files of `dirs` (`*.conf`, or names matching
/// `pattern`) in systemd order: sorted by file name, and a file in an
/// earlier directory hides a same-named file in a later one.
pub(crate) fn drop_ins(
    host: &HostView,
    dirs: &[&str],
    pattern: &str,
    sources: &mut Vec<Source>,
) -> Result<Vec<Arc<FileData>>, HostError> {
    let mut by_name: std::collections::BTreeMap<String, String> = Default::default();
    for dir in dirs {
        if let Some(entries) = host.read_dir(dir)? {
            sources.push(HostView::dir_source(dir, &entries));
            for e in entries {
                if !e.is_dir && parse::glob_match(pattern, &e.name) {
                    by_name.entry(e.name.clone()).or_insert(e.path);
                }
            }
        }
    }
    let mut files = Vec::new();
    for path in by_name.into_values() {
        // A drop-in linked to /dev/null masks the vendor file of that name.
        if host.link_target(&path)?.as_deref() == Some("/dev/null") {
            continue;
        }
        if let Some(f) = host.read(&path)? {
            files.push(f);
        }
    }
    Ok(files)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fixture roots and probe specs written as in a pack.
    use super::*;

    pub fn root(files: &[(&str, &str)]) -> (tempfile::TempDir, HostView) {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = dir.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let view = HostView::root(dir.path()).unwrap();
        (dir, view)
    }

    /// A root whose file `top` starts a chain of 14 files `f0`…`f13` in
    /// `dir`, each including the next twice (`include(next)` gives the
    /// lines): within the include parsers' depth limit, and 2^14 parses if
    /// nothing else bounded them.
    pub fn fan_out(
        top: &str,
        dir: &str,
        include: impl Fn(&str) -> String,
    ) -> (tempfile::TempDir, HostView) {
        let files: Vec<(String, String)> = (0..14)
            .map(|i| (format!("{dir}/f{i}"), include(&format!("f{}", i + 1))))
            .chain([(top.to_string(), include("f0"))])
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        root(&refs)
    }

    /// Enables `unit_path` (a unit file inside the root) for `target` the
    /// way `systemctl enable` does: a link in /etc/systemd/system/TARGET.wants.
    pub fn wants(root: &std::path::Path, target: &str, unit_path: &str) {
        let dir = root.join(format!("etc/systemd/system/{target}.wants"));
        std::fs::create_dir_all(&dir).unwrap();
        let name = unit_path.rsplit('/').next().unwrap();
        std::os::unix::fs::symlink(unit_path, dir.join(name)).unwrap();
    }

    pub fn spec(toml_probe: &str) -> ProbeSpec {
        #[derive(Deserialize)]
        struct W {
            probe: ProbeSpec,
        }
        let w: W = toml::from_str(&format!("probe = {toml_probe}")).unwrap();
        w.probe
    }

    pub fn params() -> Params {
        let mut p = Params::default();
        p.0.insert(
            "session_timeout_seconds".into(),
            crate::expect::ParamValue::Int(900),
        );
        p
    }

    pub fn run(view: &HostView, toml_probe: &str) -> Outcome {
        let params = params();
        let ctx = Ctx::new(view, &params);
        spec(toml_probe).run(&ctx)
    }

    pub fn run_files(files: &[(&str, &str)], toml_probe: &str) -> Outcome {
        let (_d, view) = root(files);
        run(&view, toml_probe)
    }
}

/// A package or unit name as packs may give it: a letter or digit, then
/// letters, digits and `+ . _ : @ -` (Debian, RPM and systemd names fit).
/// Such names are passed to `rpm` and `systemctl` as arguments, so one
/// that starts with `-` or holds a space or `%` is refused when the pack
/// loads, not run.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+._:@-".contains(&b))
        && name.len() <= 256;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?}: a letter or digit, then letters, digits and + . _ : @ - (at most 256)"
        ))
    }
}

#[cfg(test)]
mod name_tests {
    #[test]
    fn names_that_would_be_options_or_macros_are_refused() {
        for ok in [
            "openssh-server",
            "libc6:amd64",
            "g++",
            "getty@tty1.service",
            "chrony",
        ] {
            assert!(super::check_name("package", ok).is_ok(), "{ok}");
        }
        for bad in ["--eval=%(id)", "-H", "", "a b", "x%{y}", "a/../b"] {
            assert!(super::check_name("package", bad).is_err(), "{bad:?}");
        }
    }
}
