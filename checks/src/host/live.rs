//! Facts only a running machine has: the kernel clock discipline, resource
//! usage and inventory through `sysinfo`, and read-only commands such as
//! `systemctl is-active` or `nft list ruleset`.
//!
//! Nothing here changes the host. Commands run with a fixed locale, no shell
//! and a time limit.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sha256_hex;
use crate::result::{Source, SourceKind};

/// How long a read-only command may take before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The kernel's view of clock synchronisation, from `adjtimex(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClockState {
    /// The kernel considers the clock synchronised (return value is not
    /// `TIME_ERROR` and `STA_UNSYNC` is clear).
    pub synchronized: bool,
    /// Maximum error in microseconds.
    pub max_error_us: i64,
    /// Estimated error in microseconds.
    pub est_error_us: i64,
    /// Current offset as reported (microseconds, or nanoseconds under
    /// `STA_NANO`; kept raw).
    pub offset: i64,
    /// The raw status word.
    pub status: i32,
}

impl ClockState {
    /// The kernel interface as a source.
    pub fn source(&self) -> Source {
        let text = serde_json::to_string(self).unwrap_or_default();
        Source {
            kind: SourceKind::Kernel,
            path: "adjtimex(2)".into(),
            sha256: Some(sha256_hex(text.as_bytes())),
            line: None,
        }
    }
}

/// What a command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The command line as run.
    pub command: String,
    /// Exit status code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    /// The command as a source.
    pub fn source(&self) -> Source {
        Source {
            kind: SourceKind::Command,
            path: self.command.clone(),
            sha256: Some(sha256_hex(self.stdout.as_bytes())),
            line: None,
        }
    }
}

/// One mounted file system's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    /// Mount point.
    pub mount_point: String,
    /// File system type.
    pub file_system: String,
    /// Device or source name.
    pub device: String,
    /// Total bytes.
    pub total_bytes: u64,
    /// Available bytes.
    pub available_bytes: u64,
}

impl DiskUsage {
    /// Used share in percent (0 when the size is unknown).
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            100.0 * (self.total_bytes - self.available_bytes.min(self.total_bytes)) as f64
                / self.total_bytes as f64
        }
    }
}

/// Memory figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryUsage {
    /// Total bytes of RAM.
    pub total_bytes: u64,
    /// Bytes available for new work.
    pub available_bytes: u64,
    /// Total swap.
    pub swap_total_bytes: u64,
    /// Free swap.
    pub swap_free_bytes: u64,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Addresses with prefix length.
    pub addresses: Vec<String>,
}

/// Host inventory facts from the running system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveInventory {
    /// Host name.
    pub hostname: Option<String>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// OS name and version as the running system reports them.
    pub os: Option<String>,
    /// CPU architecture.
    pub arch: String,
    /// CPU model.
    pub cpu_model: Option<String>,
    /// Logical CPUs.
    pub cpu_count: usize,
    /// Memory.
    pub memory: MemoryUsage,
    /// Mounted file systems.
    pub disks: Vec<DiskUsage>,
    /// Network interfaces.
    pub interfaces: Vec<Interface>,
    /// Seconds since boot.
    pub uptime_seconds: u64,
}

/// Access to the running machine's live state.
#[derive(Debug, Default)]
pub struct LiveHost {
    inventory: std::sync::OnceLock<LiveInventory>,
}

impl LiveHost {
    /// A handle on the running machine.
    pub fn new() -> LiveHost {
        LiveHost::default()
    }

    /// The sockets of one transport and family that wait for peers
    /// (sock_diag(7)).
    pub fn bound_sockets(
        &self,
        transport: super::sockets::Transport,
        v6: bool,
    ) -> std::io::Result<Vec<super::sockets::Bound>> {
        super::sockets::bound(transport, v6)
    }

    /// The kernel clock state.
    pub fn clock(&self) -> std::io::Result<ClockState> {
        read_adjtimex()
    }

    /// Inventory facts (collected once per scan).
    pub fn inventory(&self) -> &LiveInventory {
        self.inventory.get_or_init(collect_inventory)
    }

    /// Runs a read-only command with `LC_ALL=C` and a time limit. The
    /// program is looked up in the usual system directories only.
    pub fn command(&self, argv: &[&str]) -> std::io::Result<CommandOutput> {
        run_command(argv)
    }
}

#[allow(unsafe_code)]
fn read_adjtimex() -> std::io::Result<ClockState> {
    // SAFETY: `timex` is a plain C struct of integers for which all-zero is a
    // valid value; `modes = 0` makes adjtimex a read-only query, and the
    // kernel writes only within the struct we pass.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed timex for the call.
    let rc = unsafe { libc::adjtimex(&mut tx) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unsync = tx.status & libc::STA_UNSYNC != 0;
    Ok(ClockState {
        synchronized: rc != libc::TIME_ERROR && !unsync,
        max_error_us: tx.maxerror,
        est_error_us: tx.esterror,
        offset: tx.offset,
        status: tx.status,
    })
}

fn collect_inventory() -> LiveInventory {
    use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System};
    // Refresh only what the inventory reports: a full refresh walks every
    // process and costs tens of milliseconds. Each part that the kernel
    // refuses to report is left empty rather than failing the scan; the
    // checks that need it then say so.
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_memory(MemoryRefreshKind::everything())
            .with_cpu(CpuRefreshKind::nothing()),
    )
    .ok();
    let cpus = sys.as_ref().map(|s| s.cpus()).unwrap_or(&[]);
    let cpu_model = cpus
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|s| !s.is_empty());
    let disks = Disks::new_with_refreshed_list()
        .map(|disks| {
            disks
                .iter()
                .map(|d| DiskUsage {
                    mount_point: d.mount_point().to_string_lossy().into_owned(),
                    file_system: d.file_system().to_string_lossy().into_owned(),
                    device: d.name().to_string_lossy().into_owned(),
                    total_bytes: d.total_space(),
                    available_bytes: d.available_space(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut interfaces: Vec<Interface> = Networks::new_with_refreshed_list()
        .map(|nets| {
            nets.iter()
                .map(|(name, data)| Interface {
                    name: name.to_string_lossy().into_owned(),
                    mac: data.mac_address().to_string(),
                    addresses: data
                        .ip_networks()
                        .iter()
                        .map(|n| format!("{}/{}", n.addr, n.prefix))
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    let mem = |f: fn(&System) -> u64| sys.as_ref().map(f).unwrap_or(0);
    LiveInventory {
        hostname: System::host_name().ok(),
        kernel: System::kernel_version().ok(),
        os: System::long_os_version().ok(),
        arch: System::cpu_arch(),
        cpu_model,
        cpu_count: cpus.len(),
        memory: MemoryUsage {
            total_bytes: mem(System::total_memory),
            available_bytes: mem(System::available_memory),
            swap_total_bytes: mem(System::total_swap),
            swap_free_bytes: mem(System::free_swap),
        },
        disks,
        interfaces,
        uptime_seconds: System::uptime().unwrap_or(0),
    }
}

fn run_command(argv: &[&str]) -> std::io::Result<CommandOutput> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let path = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{program}: not found in /usr/sbin, /usr/bin, /sbin, /bin"),
            )
        })?;
    let mut child = Command::new(&path)
        .args(args)
        .env_clear()
        .env("LC_ALL", "C")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    // Drain both pipes on threads so a chatty command cannot fill a pipe and
    // block forever while we wait for it.
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = stdout_pipe.as_mut() {
            let _ = p.take(16 * 1024 * 1024).read_to_end(&mut s);
        }
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = stderr_pipe.as_mut() {
            let _ = p.take(1024 * 1024).read_to_end(&mut s);
        }
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{} did not finish within {COMMAND_TIMEOUT:?}",
                    argv.join(" ")
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Ok(CommandOutput {
        command: argv.join(" "),
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjtimex_query_works_without_privileges() {
        let state = LiveHost::new().clock().expect("adjtimex read-only query");
        assert!(state.max_error_us >= 0);
        assert_eq!(state.source().path, "adjtimex(2)");
    }

    #[test]
    fn commands_run_without_a_shell_and_report_their_exit_code() {
        let host = LiveHost::new();
        let out = host.command(&["true"]).unwrap();
        assert_eq!(out.code, Some(0));
        let out = host.command(&["sh", "-c", "echo $LC_ALL; exit 3"]).unwrap();
        assert_eq!(out.stdout.trim(), "C");
        assert_eq!(out.code, Some(3));
        let err = host.command(&["no-such-program-annexa"]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn inventory_reports_this_machine() {
        let inv = LiveHost::new().inventory().clone();
        assert!(inv.cpu_count >= 1);
        assert!(inv.memory.total_bytes > 0);
        assert!(inv.uptime_seconds > 0);
    }
}
