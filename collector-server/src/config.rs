//! `collector.toml`: typed, every key documented, unknown keys are errors
//! that name the key and the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/annexa/collector.toml";

/// Collector configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Data directory (keys, certificates, the SQLite store).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Address to listen on (HTTPS only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain to serve instead of the data directory's.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, in bytes (an envelope of 50 results
    /// is about 40 KiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Most connections open at once (TLS handshakes included); beyond it
    /// new connections are closed at once, so that a flood of idle sockets
    /// cannot exhaust the service's file descriptors.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has for its TLS handshake, for its first request
    /// and for each request's headers (slow clients are dropped).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's whole body.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// Failed authentications (any `401`: unknown, expired or revoked
    /// token, bad enrollment token) one client address may make per
    /// minute, as a burst that refills evenly; beyond it the address is
    /// answered `429` on every route but evidence and the health check.
    /// 0 turns the limit off.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: u32,
    /// How far, in seconds, an agent's clock may be from the collector's
    /// when it delivers an envelope; beyond it the envelope is refused
    /// (`422 clock_skew`) and the agent keeps it. 0 accepts any skew. Both
    /// clocks are recorded with every envelope either way.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_tolerance_seconds: u64,
    /// Most envelopes committed in one transaction.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// Longest an envelope waits for others to share its commit, in
    /// milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Log format: `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Directories of extra check packs (the agents' custom packs), so that
    /// the SoA can name their checks and map them to controls.
    #[serde(default)]
    pub pack_dirs: Vec<PathBuf>,
    /// How often, in seconds, conformity is swept for evidence that went
    /// stale and for SoA versions or agents changed by another process.
    #[serde(default = "default_sweep_seconds")]
    pub conformity_sweep_seconds: u64,
    /// The evidence log's origin: the first line of its checkpoints and
    /// the name of its key (default: `annexa/collector-<key id prefix>`).
    /// Fixed once the log has a checkpoint: auditors' verifier keys carry it.
    #[serde(default)]
    pub log_origin: Option<String>,
    /// A signed checkpoint is stored at least this often, in seconds, while
    /// the log grows.
    #[serde(default = "default_checkpoint_seconds")]
    pub checkpoint_seconds: u64,
    /// How long envelope payloads are kept (`400d`, `52w`; units s, m, h,
    /// d, w). Older payloads are removed; their log entries, metadata and
    /// results stay. Unset: kept for ever.
    #[serde(default)]
    pub retention: Option<String>,
    /// The store: unset, the SQLite file in the data directory; or a
    /// PostgreSQL URL (`postgres://user:password@host:5432/annexa`, with
    /// `?sslmode=verify-full&sslrootcert=…` for TLS), which several
    /// collectors may share. Never logged with its password.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Most connections to PostgreSQL per collector.
    #[serde(default = "default_database_connections")]
    pub database_max_connections: u32,
}

fn default_database_connections() -> u32 {
    16
}

fn default_checkpoint_seconds() -> u64 {
    10
}

fn default_sweep_seconds() -> u64 {
    30
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/annexa-collector")
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_max_connections() -> usize {
    // The unit's LimitNOFILE is 65536; the store and logs need a few.
    16384
}

fn default_header_timeout() -> u64 {
    10
}

fn default_body_timeout() -> u64 {
    30
}

fn default_auth_failures() -> u32 {
    30
}

fn default_clock_skew() -> u64 {
    // Five minutes: what Kerberos allows, far beyond a synchronised
    // clock's error, well short of a time-zone or DST mistake.
    300
}

fn default_batch_max() -> usize {
    512
}
fn default_batch_wait_ms() -> u64 {
    4
}
fn default_log_format() -> String {
    "text".into()
}

impl Default for CollectorConfig {
    fn default() -> Self {
        // An empty document takes every default.
        toml::from_str("").unwrap_or_else(|_| unreachable!("empty config is valid"))
    }
}

impl CollectorConfig {
    /// The log's origin: configured, or derived from the collector's key
    /// (`annexa/collector-<first 12 hex digits of its key id>`). A log keeps
    /// its origin for life: once it has checkpoints, theirs is used
    /// ([`crate::log_origin`]), so a rotated key does not change it.
    pub fn origin(&self, key: &annexa_evidence::keys::PublicKey) -> String {
        self.log_origin
            .clone()
            .unwrap_or_else(|| format!("annexa/collector-{}", &key.key_id()[..12]))
    }

    /// The retention period in seconds with its text, if set.
    pub fn retention_period(&self) -> Option<(i64, String)> {
        let r = self.retention.as_ref()?;
        annexa_checks::expect::parse_duration_secs(r).map(|s| (s, r.clone()))
    }

    /// The check packs the collector maps checks to controls with: the
    /// built-in ones and those of `pack_dirs`.
    pub fn packs(&self) -> Result<annexa_checks::pack::PackSet, String> {
        for dir in &self.pack_dirs {
            annexa_checks::pack::check_trusted_dir(dir)?;
        }
        annexa_checks::pack::PackSet::load(true, &self.pack_dirs, false)
            .map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Reads a configuration file; a missing default file means defaults.
    pub fn load(path: &Path, required: bool) -> Result<CollectorConfig, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(CollectorConfig::default());
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses configuration text; `label` names it in errors.
    pub fn parse(label: &str, text: &str) -> Result<CollectorConfig, String> {
        let cfg: CollectorConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    format!(
                        ":{}:{}",
                        before.matches('\n').count() + 1,
                        before.rfind('\n').map_or(s.start + 1, |i| s.start - i)
                    )
                })
                .unwrap_or_default();
            format!("{label}{at}: {}", e.message().trim())
        })?;
        if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
            return Err(format!("{label}: tls_cert and tls_key go together"));
        }
        if !matches!(cfg.log_format.as_str(), "text" | "json") {
            return Err(format!(
                "{label}: log_format is `{}`, expected `text` or `json`",
                cfg.log_format
            ));
        }
        if cfg.conformity_sweep_seconds == 0 {
            return Err(format!(
                "{label}: conformity_sweep_seconds must be at least 1"
            ));
        }
        if cfg.checkpoint_seconds == 0 {
            return Err(format!("{label}: checkpoint_seconds must be at least 1"));
        }
        if let Some(r) = &cfg.retention {
            match annexa_checks::expect::parse_duration_secs(r) {
                Some(s) if s > 0 => {}
                _ => {
                    return Err(format!(
                        "{label}: retention is `{r}`, expected a duration such as 400d or 52w"
                    ));
                }
            }
        }
        if let Some(o) = &cfg.log_origin
            && (o.is_empty() || o.chars().any(|c| c.is_whitespace() || c == '+'))
        {
            return Err(format!(
                "{label}: log_origin `{o}` must be non-empty, without spaces or `+` (a schema-less URL such as example.com/annexa)"
            ));
        }
        for (name, value) in [
            ("batch_max", cfg.batch_max as u64),
            ("max_connections", cfg.max_connections as u64),
            ("header_timeout_seconds", cfg.header_timeout_seconds),
            ("body_timeout_seconds", cfg.body_timeout_seconds),
        ] {
            if value == 0 {
                return Err(format!("{label}: {name} must be at least 1"));
            }
        }
        if cfg.clock_skew_tolerance_seconds > 365 * 86400 {
            return Err(format!(
                "{label}: clock_skew_tolerance_seconds = {} is more than a year; use 0 to accept any skew",
                cfg.clock_skew_tolerance_seconds
            ));
        }
        if let Some(u) = &cfg.database_url
            && !crate::store::postgres::is_url(u)
        {
            return Err(format!(
                "{label}: database_url `{}` is not a postgres:// URL (leave it unset for the embedded SQLite store)",
                crate::store::postgres::redact(u)
            ));
        }
        if let Some(why) = cfg
            .database_url
            .as_deref()
            .and_then(crate::store::postgres::insecure_transport)
        {
            return Err(format!("{label}: database_url: {why}"));
        }
        if cfg.database_max_connections == 0 {
            return Err(format!(
                "{label}: database_max_connections must be at least 1"
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_must_be_postgres_and_is_shown_without_its_password() {
        let e =
            CollectorConfig::parse("c.toml", "database_url = \"mysql://u:hunter2@db/annexa\"\n")
                .unwrap_err();
        assert!(e.contains("is not a postgres:// URL"), "{e}");
        assert!(
            e.contains("mysql://u:***@db/annexa") && !e.contains("hunter2"),
            "{e}"
        );
        for (url, shown) in [
            (
                "postgres://u@db/annexa?password=hunter2&sslmode=require",
                "postgres://u@db/annexa?password=***&sslmode=require",
            ),
            (
                "postgres://u:hunter2@db/annexa?sslpassword=hunter2&application_name=a@b",
                "postgres://u:***@db/annexa?sslpassword=***&application_name=a@b",
            ),
        ] {
            assert_eq!(crate::store::postgres::redact(url), shown);
        }
        for (url, ok) in [
            ("postgres://u:p@db:5432/annexa", false),
            ("postgres://u:p@db:5432/annexa?sslmode=require", false),
            ("postgres://u:p@db:5432/annexa?sslmode=verify-full", true),
            ("postgres://u@127.0.0.1:5432/annexa", true),
            ("postgres://u@[::1]/annexa", true),
            ("postgres://u@localhost/annexa", true),
            ("postgres:///annexa?host=/run/postgresql", true),
            ("postgres://u@[2001:db8::1]/annexa", false),
            ("postgres://u@localhost/annexa?host=db.example", false),
            ("postgres://u@localhost/annexa?hostaddr=192.0.2.7", false),
            (
                "postgres://u@db/annexa?sslmode=verify-full&sslmode=prefer",
                false,
            ),
            ("postgres://u@db/annexa?ssl-mode=verify-ca", true),
        ] {
            let r = CollectorConfig::parse("c.toml", &format!("database_url = \"{url}\"\n"));
            assert_eq!(r.is_ok(), ok, "{url}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains("sslmode=verify-full"), "{e}");
            }
        }
        let c = CollectorConfig::parse(
            "c.toml",
            "database_url = \"postgres://u:p@db:5432/annexa?sslmode=verify-full\"\n",
        )
        .unwrap();
        assert_eq!(c.database_max_connections, 16);
        assert!(CollectorConfig::parse("c.toml", "database_max_connections = 0\n").is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let c = CollectorConfig::default();
        assert_eq!(c.listen.port(), 8443);
        let c = CollectorConfig::parse("c.toml", "listen = \"127.0.0.1:9443\"\nbatch_max = 64\n")
            .unwrap();
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(c.batch_max, 64);
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let e = CollectorConfig::parse("c.toml", "listen = \"127.0.0.1:9443\"\nbatch_mx = 64\n")
            .unwrap_err();
        assert!(e.starts_with("c.toml:2:") && e.contains("batch_mx"), "{e}");
        assert!(
            CollectorConfig::parse("c.toml", "tls_cert = \"/x\"\n")
                .unwrap_err()
                .contains("go together")
        );
        assert!(CollectorConfig::parse("c.toml", "listen = \"nowhere\"\n").is_err());
    }
}
