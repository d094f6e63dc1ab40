//! The agent's configuration: `/etc/annexa/agent.toml` (or `--config FILE`).
//!
//! Every key is optional and has a documented default; an unknown key is an
//! error naming the file, the key and its line, because a misspelt key that
//! is silently ignored leaves a host running with settings nobody chose.
//! The reference is in docs/agent.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use annexa_checks::pack::line_col;
use serde::Deserialize;
use toml::Spanned;

use annexa_checks::expect::ParamValue;
use annexa_checks::pack::DEFAULT_PACK_DIR;

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/annexa/agent.toml";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/annexa";
/// Default schedule: hourly, on the hour (cron with seconds).
pub const DEFAULT_SCHEDULE: &str = "0 0 * * * *";
/// Default maximum splay before a scheduled scan, in seconds.
pub const DEFAULT_SPLAY_SECONDS: u64 = 300;
/// The largest per-host delay: a day (beyond that a schedule means nothing,
/// and date arithmetic on it could overflow).
pub const MAX_SPLAY_SECONDS: u64 = 86_400;
/// Default bound on the spool's size: 64 MiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default ceiling of the delivery retry delay, in seconds.
pub const DEFAULT_RETRY_MAX_SECONDS: u64 = 300;
/// Default interval at which a daemon that is not enrolled looks for
/// `enrollment.json`, in seconds.
pub const DEFAULT_ENROLL_POLL_SECONDS: u64 = 30;

/// How the agent writes its log lines (always to standard error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The agent's configuration. Build it with [`AgentConfig::new`] in code or
/// [`AgentConfig::load`] from a file; [`AgentConfig::validate`] checks a
/// configuration built in code the way loading checks a file.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Base URL of the collector, `https://HOST:PORT`. Optional: enrollment
    /// records the URL it enrolled with and that is used when this is
    /// `None`. Set it to reach the same collector under another address
    /// (its certificate must still chain to the pinned CA). Plain `http://`
    /// is refused: evidence only travels over TLS to the pinned CA.
    pub server: Option<String>,
    /// The state directory (key, enrollment, chain head, receipts, spool).
    /// Default `/var/lib/annexa`. A relative path in a file is relative to
    /// the file's directory.
    pub state_dir: PathBuf,
    /// When to scan: a cron expression with seconds, in the `cron` crate's
    /// 6-field (`sec min hour day-of-month month day-of-week`) or 7-field
    /// (`… year`) syntax, evaluated in UTC. Default `0 0 * * * *` (hourly).
    pub schedule: String,
    /// Upper bound, in seconds, of the delay added to every scheduled scan
    /// so that a fleet does not scan and deliver at the same second. Each
    /// host's delay is derived from its machine identity and agent id: the
    /// fleet spreads evenly over the window and a host keeps its slot.
    /// Default 300; 0 disables it.
    pub splay_seconds: u64,
    /// Directory of additional check packs (`*.toml`), read only if it
    /// exists; the built-in packs are always loaded. Default
    /// `/etc/annexa/checks.d`.
    pub packs_dir: PathBuf,
    /// Check parameter overrides, name → integer or string (as
    /// `annexa scan --param NAME=VALUE`).
    pub params: BTreeMap<String, ParamValue>,
    /// Operator labels recorded in every envelope (`env = "prod"`), on top
    /// of the labels the collector recorded at enrollment.
    pub labels: BTreeMap<String, String>,
    /// `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Bound on the bytes of undelivered envelopes kept in the spool.
    /// When a new envelope would exceed it, every pending envelope is
    /// dropped (the new run supersedes them) and the new envelope records
    /// the dropped sequence numbers as a gap. Default 64 MiB.
    pub spool_max_bytes: u64,
    /// Ceiling, in seconds, of the delay between delivery attempts
    /// (exponential backoff from 1 s with full jitter). Default 300.
    pub retry_max_seconds: u64,
    /// How often, in seconds, a daemon started before enrollment looks for
    /// `enrollment.json` (it does not hold the state lock meanwhile, so
    /// `annexa enroll` can run). Default 30; at least 1.
    pub enroll_poll_seconds: u64,
}

impl Default for AgentConfig {
    /// Every default, without a server (the enrolled one is used).
    fn default() -> Self {
        AgentConfig {
            server: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            schedule: DEFAULT_SCHEDULE.to_string(),
            splay_seconds: DEFAULT_SPLAY_SECONDS,
            packs_dir: PathBuf::from(DEFAULT_PACK_DIR),
            params: BTreeMap::new(),
            labels: BTreeMap::new(),
            log_format: LogFormat::Text,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            retry_max_seconds: DEFAULT_RETRY_MAX_SECONDS,
            enroll_poll_seconds: DEFAULT_ENROLL_POLL_SECONDS,
        }
    }
}

/// What is wrong with a configuration. Every variant names the file
/// (`<code>` for a configuration built in code).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The configuration file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not TOML of the expected shape (unknown key, wrong type…).
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The configuration file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the TOML parser said, naming the key.
        message: String,
    },
    /// A key with a value that is well-formed TOML but not acceptable.
    #[error("{path}{}: {key}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The configuration file.
        path: String,
        /// The line of the value, when known.
        line: Option<usize>,
        /// The key.
        key: String,
        /// Why the value is refused.
        message: String,
    },
}

/// The file's shape. Values that need checking keep their span so that the
/// error can point at the line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<Spanned<String>>,
    state_dir: Option<PathBuf>,
    schedule: Option<Spanned<String>>,
    splay_seconds: Option<u64>,
    packs_dir: Option<PathBuf>,
    #[serde(default)]
    params: BTreeMap<String, ParamValue>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    log_format: Option<LogFormat>,
    spool_max_bytes: Option<Spanned<u64>>,
    retry_max_seconds: Option<Spanned<u64>>,
    enroll_poll_seconds: Option<Spanned<u64>>,
}

/// Checks a collector URL: absolute, `https`, with a host. Returns it
/// without a trailing slash, the form API paths are appended to.
pub fn check_server_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("`{url}` is not a URL ({e}); expected https://HOST:PORT"))?;
    if parsed.scheme() != "https" {
        return Err(format!(
            "`{url}` uses {}; the collector must be reached over https (the agent trusts only \
             the collector's pinned CA), e.g. https://collector.example:8443",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host name"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("`{url}` must not have a query or fragment"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Parses and checks a schedule: cron with seconds, and it must fire at
/// least once more.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let schedule = cron::Schedule::from_str(expr.trim()).map_err(|e| {
        format!(
            "`{expr}` is not a cron expression with seconds ({e}); expected 6 or 7 fields \
             `sec min hour day-of-month month day-of-week [year]`, e.g. \"0 0 * * * *\" for hourly"
        )
    })?;
    if schedule.upcoming(chrono::Utc).next().is_none() {
        return Err(format!("`{expr}` never fires again"));
    }
    Ok(schedule)
}

impl AgentConfig {
    /// Defaults, with this collector URL and state directory: what an
    /// embedding program (the collector's `quickstart`) starts from.
    pub fn new(server: impl Into<String>, state_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            server: Some(server.into()),
            state_dir: state_dir.into(),
            ..AgentConfig::default()
        }
    }

    /// Loads a configuration file; it must exist.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = AgentConfig::from_toml(&path.display().to_string(), &text)?;
        // Relative paths in a system file would otherwise depend on the
        // daemon's working directory.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut config.state_dir, &mut config.packs_dir] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Loads `--config FILE` if given (it must exist); otherwise
    /// [`DEFAULT_CONFIG_PATH`] if it exists, else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
        match path {
            Some(p) => AgentConfig::load(p),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                AgentConfig::load(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Ok(AgentConfig::default()),
        }
    }

    /// Parses configuration text; `label` names it in errors.
    pub fn from_toml(label: &str, text: &str) -> Result<AgentConfig, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Syntax {
                path: label.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let invalid = |start: usize, key: &str, message: String| ConfigError::Invalid {
            path: label.to_string(),
            line: Some(line_col(text, start).0),
            key: key.to_string(),
            message,
        };
        let d = AgentConfig::default();
        let server = match file.server {
            Some(s) => Some(
                check_server_url(s.get_ref()).map_err(|m| invalid(s.span().start, "server", m))?,
            ),
            None => None,
        };
        let schedule = match file.schedule {
            Some(s) => {
                parse_schedule(s.get_ref()).map_err(|m| invalid(s.span().start, "schedule", m))?;
                s.into_inner()
            }
            None => d.schedule,
        };
        let positive = |v: Option<Spanned<u64>>, key: &str, default: u64| match v {
            Some(v) if *v.get_ref() == 0 => Err(invalid(
                v.span().start,
                key,
                "must be greater than 0".into(),
            )),
            Some(v) => Ok(v.into_inner()),
            None => Ok(default),
        };
        let splay_seconds = file.splay_seconds.unwrap_or(d.splay_seconds);
        if splay_seconds > MAX_SPLAY_SECONDS {
            return Err(ConfigError::Invalid {
                path: label.to_string(),
                line: None,
                key: "splay_seconds".into(),
                message: format!("{splay_seconds} is more than a day ({MAX_SPLAY_SECONDS})"),
            });
        }
        // The collector refuses such labels at enrollment; say so here,
        // where the operator wrote them.
        annexa_evidence::api::check_labels(&file.labels).map_err(|message| {
            ConfigError::Invalid {
                path: label.to_string(),
                line: None,
                key: "labels".into(),
                message,
            }
        })?;
        Ok(AgentConfig {
            server,
            state_dir: file.state_dir.unwrap_or(d.state_dir),
            schedule,
            splay_seconds,
            packs_dir: file.packs_dir.unwrap_or(d.packs_dir),
            params: file.params,
            labels: file.labels,
            log_format: file.log_format.unwrap_or_default(),
            spool_max_bytes: positive(file.spool_max_bytes, "spool_max_bytes", d.spool_max_bytes)?,
            retry_max_seconds: positive(
                file.retry_max_seconds,
                "retry_max_seconds",
                d.retry_max_seconds,
            )?,
            enroll_poll_seconds: positive(
                file.enroll_poll_seconds,
                "enroll_poll_seconds",
                d.enroll_poll_seconds,
            )?,
        })
    }

    /// Checks a configuration built in code as loading checks a file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: "<code>".into(),
            line: None,
            key: key.into(),
            message,
        };
        if let Some(s) = &self.server {
            check_server_url(s).map_err(|m| invalid("server", m))?;
        }
        parse_schedule(&self.schedule).map_err(|m| invalid("schedule", m))?;
        if self.splay_seconds > MAX_SPLAY_SECONDS {
            return Err(invalid(
                "splay_seconds",
                format!("must be at most {MAX_SPLAY_SECONDS} (a day)"),
            ));
        }
        if self.spool_max_bytes == 0 {
            return Err(invalid("spool_max_bytes", "must be greater than 0".into()));
        }
        if self.retry_max_seconds == 0 {
            return Err(invalid(
                "retry_max_seconds",
                "must be greater than 0".into(),
            ));
        }
        if self.enroll_poll_seconds == 0 {
            return Err(invalid(
                "enroll_poll_seconds",
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }

    /// The parsed schedule.
    pub fn parsed_schedule(&self) -> Result<cron::Schedule, ConfigError> {
        parse_schedule(&self.schedule).map_err(|message| ConfigError::Invalid {
            path: "<config>".into(),
            line: None,
            key: "schedule".into(),
            message,
        })
    }

    /// Seconds between two scheduled runs (the collector's default
    /// freshness window is twice this), plus the splay.
    pub fn interval_seconds(&self) -> Option<u64> {
        let schedule = parse_schedule(&self.schedule).ok()?;
        let mut next = schedule.upcoming(chrono::Utc);
        let (a, b) = (next.next()?, next.next()?);
        let gap = (b - a).num_seconds();
        (gap > 0).then(|| gap as u64 + self.splay_seconds)
    }

    /// The parameter overrides in the form `PackSet::params_with` takes.
    pub fn param_overrides(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }

    /// This host's delay after each scheduled time: a deterministic point
    /// in `[0, splay_seconds]` derived from the machine identity and agent
    /// id. Hashing spreads a fleet uniformly over the window, and being
    /// deterministic keeps each host in its slot across restarts, so the
    /// collector sees a steady load instead of bursts.
    pub fn splay(&self, machine_id_sha256: &str, agent_id: &str) -> Duration {
        if self.splay_seconds == 0 {
            return Duration::ZERO;
        }
        let digest =
            annexa_evidence::sha256_hex(format!("{machine_id_sha256}\n{agent_id}").as_bytes());
        // 16 hex digits = 64 bits; the modulo bias over a window of at most
        // a few hours in milliseconds is negligible.
        let n = u64::from_str_radix(&digest[..16], 16).unwrap_or(0);
        let window_ms = self.splay_seconds.saturating_mul(1000).saturating_add(1);
        Duration::from_millis(n % window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_valid_file_is_read_with_every_key() {
        let text = r#"
server = "https://collector.example:8443/"
state_dir = "/srv/annexa"
schedule = "0 */15 * * * *"
splay_seconds = 60
packs_dir = "/srv/packs"
log_format = "json"
spool_max_bytes = 1048576
retry_max_seconds = 30
enroll_poll_seconds = 5

[params]
session_timeout_seconds = 600
ntp_server = "time.example"

[labels]
env = "prod"
"#;
        let c = AgentConfig::from_toml("agent.toml", text).unwrap();
        assert_eq!(c.server.as_deref(), Some("https://collector.example:8443"));
        assert_eq!(c.state_dir, PathBuf::from("/srv/annexa"));
        assert_eq!(c.schedule, "0 */15 * * * *");
        assert_eq!(c.splay_seconds, 60);
        assert_eq!(c.packs_dir, PathBuf::from("/srv/packs"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.spool_max_bytes, 1 << 20);
        assert_eq!(c.retry_max_seconds, 30);
        assert_eq!(c.enroll_poll_seconds, 5);
        assert_eq!(c.params["session_timeout_seconds"], ParamValue::Int(600));
        assert_eq!(c.param_overrides()["ntp_server"], "time.example");
        assert_eq!(c.labels["env"], "prod");
        c.validate().unwrap();
        // An empty file is all defaults.
        let d = AgentConfig::from_toml("agent.toml", "").unwrap();
        assert_eq!(d, AgentConfig::default());
    }

    #[test]
    fn an_unknown_key_names_the_file_the_key_and_the_line() {
        let text = "server = \"https://c.example\"\n\nschedul = \"0 0 * * * *\"\n";
        let err = AgentConfig::from_toml("/etc/annexa/agent.toml", text).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{msg}");
        assert!(msg.starts_with("/etc/annexa/agent.toml:3:1: "), "{msg}");
        assert!(msg.contains("`schedul`"), "{msg}");
    }

    #[test]
    fn a_bad_cron_expression_is_refused_at_load_with_its_line() {
        for bad in ["*/5 * * * *", "every hour", "0 0 25 * * *"] {
            let text = format!("# hourly\nschedule = \"{bad}\"\n");
            let err = AgentConfig::from_toml("agent.toml", &text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("agent.toml:2: schedule: "), "{err}");
            assert!(err.contains("cron expression with seconds"), "{err}");
        }
        let ok = AgentConfig::from_toml("agent.toml", "schedule = \"0 30 2 * * Mon-Fri\"\n");
        assert!(ok.is_ok());
    }

    #[test]
    fn plain_http_servers_are_refused() {
        let err = AgentConfig::from_toml("agent.toml", "server = \"http://c.example:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("agent.toml:1: server: "), "{err}");
        assert!(err.contains("must be reached over https"), "{err}");
        assert!(
            AgentConfig::new("http://c.example", "/tmp")
                .validate()
                .is_err()
        );
        assert!(check_server_url("not a url").is_err());
        assert!(
            AgentConfig::new("https://c.example", "/tmp")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn wrong_types_and_zero_bounds_are_refused() {
        let err = AgentConfig::from_toml("a.toml", "log_format = \"xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.toml:1:") && err.contains("xml"), "{err}");
        let err = AgentConfig::from_toml("a.toml", "\nspool_max_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "a.toml:2: spool_max_bytes: must be greater than 0");
        let err = AgentConfig::from_toml("a.toml", "enroll_poll_seconds = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "a.toml:1: enroll_poll_seconds: must be greater than 0");
        let err = AgentConfig::from_toml("a.toml", "[labels]\nenv = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.toml:2:"), "{err}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "state_dir = \"state\"\n").unwrap();
        let c = AgentConfig::load(&path).unwrap();
        assert_eq!(c.state_dir, dir.path().join("state"));
        let err = AgentConfig::load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }

    #[test]
    fn splay_is_stable_per_host_and_within_the_window() {
        let c = AgentConfig::default();
        let a = c.splay("m1", "agent-1");
        assert_eq!(a, c.splay("m1", "agent-1"));
        assert!(a <= Duration::from_secs(300));
        let spread: std::collections::BTreeSet<u64> = (0..50)
            .map(|i| c.splay("m", &format!("agent-{i}")).as_secs())
            .collect();
        assert!(spread.len() > 30, "{spread:?}");
        let none = AgentConfig {
            splay_seconds: 0,
            ..AgentConfig::default()
        };
        assert_eq!(none.splay("m1", "agent-1"), Duration::ZERO);
    }
}
