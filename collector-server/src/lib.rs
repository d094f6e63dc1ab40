//! # annexa-collector
//!
//! Receives signed evidence from annexa agents over HTTPS, verifies every
//! envelope against the key its agent enrolled, enforces each agent's
//! sequence and hash chain, stores the envelope bytes exactly as received
//! with their parsed results (group commit), and answers with a receipt
//! signed by the collector.
//!
//! Invariants: only [`store`] knows SQL; nothing is acknowledged before it
//! is committed; a rejected envelope leaves no trace in the store.

#![forbid(unsafe_code)]

pub mod api;
pub mod clock;
pub mod commands;
pub mod config;
pub mod conformity;
pub mod datadir;
pub mod drift;
pub mod export;
pub mod ingest;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod report;
pub mod rotate;
pub mod soa;
pub mod store;
pub mod tls;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use store::{Labels, Role, Store, StoreError};

/// Creates an enrollment token valid for `ttl_seconds`; returns it and its
/// expiry (Unix seconds). Only its hash is stored.
pub async fn create_enroll_token(
    store: &dyn Store,
    ttl_seconds: i64,
    labels: &Labels,
) -> Result<(String, i64), StoreError> {
    // The labels every agent enrolled with it gets: checked as theirs are.
    annexa_evidence::api::check_labels(labels).map_err(StoreError::Denied)?;
    let token = tokens::generate(tokens::ENROLL_PREFIX).map_err(StoreError::Broken)?;
    let expires_at = clock::now_unix() + ttl_seconds;
    store
        .create_enroll_token(
            &tokens::hash(&token),
            labels,
            expires_at,
            &clock::now_rfc3339(),
        )
        .await?;
    Ok((token, expires_at))
}

/// Creates an API token with a role; returns it (shown once).
pub async fn create_api_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    ttl_seconds: Option<i64>,
) -> Result<String, StoreError> {
    let token = tokens::generate(tokens::API_PREFIX).map_err(StoreError::Broken)?;
    let expires = ttl_seconds.map(|t| clock::now_unix() + t);
    store
        .create_api_token(
            &tokens::hash(&token),
            name,
            role,
            expires,
            &clock::now_rfc3339(),
        )
        .await?;
    Ok(token)
}

/// The origin the log's stored checkpoints carry, if it has any.
pub async fn stored_origin(store: &dyn Store) -> Result<Option<String>, StoreError> {
    Ok(store
        .latest_checkpoint()
        .await?
        .and_then(|c| c.note.split('\n').next().map(str::to_string)))
}

/// The evidence log's origin: configured, else the one its stored
/// checkpoints carry (a rotated key keeps the origin the first key gave
/// the log), else derived from `key`.
pub async fn log_origin(
    config: &config::CollectorConfig,
    store: &dyn Store,
    key: &annexa_evidence::keys::PublicKey,
) -> Result<String, StoreError> {
    if let Some(o) = &config.log_origin {
        return Ok(o.clone());
    }
    Ok(stored_origin(store)
        .await?
        .unwrap_or_else(|| config.origin(key)))
}

/// Opens the store a configuration names.
pub async fn open_store(config: &config::CollectorConfig) -> Result<Arc<dyn Store>, StoreError> {
    let dir = datadir::DataDir::new(&config.data_dir);
    dir.check().map_err(|e| StoreError::Broken(e.to_string()))?;
    Ok(match &config.database_url {
        Some(url) => {
            Arc::new(store::postgres::PgStore::connect(url, config.database_max_connections).await?)
        }
        None => Arc::new(store::sqlite::SqliteStore::open(&dir.database()).await?),
    })
}

/// A running collector.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The store it writes to.
    pub store: Arc<dyn Store>,
    /// The fleet's conformity as the API answers it.
    pub conformity: Arc<conformity::index::Index>,
    /// The evidence log.
    pub log: Arc<log::Log>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Held while serving: no second collector, no key rotation.
    _lock: datadir::DirLock,
}

impl Server {
    /// Stops accepting, lets requests in flight finish (up to `grace`), and waits.
    pub async fn shutdown(self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        let _ = self.task.await;
        // The newest checkpoint covers everything committed: keep it.
        if let Err(e) = ingest::store_checkpoint(self.store.as_ref(), &self.log).await {
            tracing::error!(error = %e, "storing the last checkpoint at shutdown failed");
        }
    }
}

/// Why the collector could not start; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory: its modes, its lock, its keys.
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration names files that are not what it says (TLS
    /// certificate and key, check packs).
    #[error("{0}")]
    Config(String),
    /// The evidence log in the store does not open or does not verify.
    #[error("opening the evidence log")]
    Log(#[from] log::LogError),
    /// Conformity could not be evaluated before serving.
    #[error("evaluating conformity against the Statement of Applicability: {0}")]
    Reconcile(StoreError),
    /// The listen address.
    #[error("listening on {addr}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Starts the collector described by `config` on its listen address
/// (port 0 picks a free port; see [`Server::addr`]).
pub async fn start(config: &config::CollectorConfig) -> Result<Server, StartError> {
    let dir = datadir::DataDir::new(&config.data_dir);
    dir.check()?;
    let lock = dir.try_lock()?;
    let key = Arc::new(dir.load_signing_key()?);
    let store = open_store(config).await?;
    let (cert, tls_key) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => (dir.server_cert(), dir.server_key()),
    };
    let tls = tls::server_config(&cert, &tls_key).map_err(StartError::Config)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let packs = Arc::new(config.packs().map_err(StartError::Config)?);
    let conformity = ingest::Conformity {
        index: Arc::new(conformity::index::Index::default()),
        packs,
        sweep_every: Duration::from_secs(config.conformity_sweep_seconds),
    };
    let origin = log_origin(config, store.as_ref(), &key.public()).await?;
    let log = Arc::new(log::Log::open(store.as_ref(), key.clone(), &origin).await?);
    let writer = ingest::Writer::start(
        store.clone(),
        metrics.clone(),
        conformity.clone(),
        ingest::LogSettings {
            log: log.clone(),
            checkpoint_every: Duration::from_secs(config.checkpoint_seconds),
            retention: config.retention_period(),
        },
        config.batch_max,
        Duration::from_millis(config.batch_wait_ms),
    );
    // Before serving: the index answers conformity queries.
    writer.reconcile().await.map_err(StartError::Reconcile)?;
    let index = conformity.index.clone();
    let state = api::AppState {
        store: store.clone(),
        writer,
        conformity,
        key,
        agents: Arc::new(ingest::AgentCache::default()),
        metrics,
        log: log.clone(),
        retention: config.retention.clone(),
        clock_skew_tolerance: (config.clock_skew_tolerance_seconds > 0)
            .then(|| Duration::from_secs(config.clock_skew_tolerance_seconds)),
        reports: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        )),
    };
    let app = api::router(
        state,
        limits::BodyLimits {
            timeout: Duration::from_secs(config.body_timeout_seconds),
            max: config.max_body_bytes,
        },
    );
    let failures = Arc::new(limits::FailureLimit::new(config.auth_failures_per_minute));
    let app = app.layer(axum::middleware::from_fn(move |r, n| {
        limits::limit_failures(failures.clone(), r, n)
    }));
    let listener = std::net::TcpListener::bind(config.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let handle = axum_server::Handle::new();
    let slow = Duration::from_secs(config.header_timeout_seconds);
    let tls = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .handshake_timeout(slow);
    let mut server = axum_server::from_tcp(listener)
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?
        .acceptor(limits::Capped::new(tls, config.max_connections))
        .first_request_timeout(slow)
        .handle(handle.clone());
    let http = server.http_builder();
    http.http1().header_read_timeout(slow);
    http.http2()
        .max_concurrent_streams(64)
        .keep_alive_interval(slow)
        .keep_alive_timeout(slow);
    let task = tokio::spawn(async move {
        server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
    });
    Ok(Server {
        addr,
        store,
        conformity: index,
        log,
        handle,
        task,
        _lock: lock,
    })
}
