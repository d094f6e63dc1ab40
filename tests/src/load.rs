//! Simulated agents for load: enrolled over the API with real keys, sending
//! real signed, chained envelopes, to one collector or several behind what
//! a load balancer would do. Shared by the benchmarks' load generators and
//! the end-to-end tests that put collectors under load.

use std::sync::Arc;
use std::time::Duration;

/// A rustls (ring) client configuration that trusts only the CA
/// certificates in `ca_pem`.
pub fn tls_config(ca_pem: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTP/1.1 client over [`tls_config`], keeping up to `idle_per_host`
/// connections.
pub fn tls_client(
    ca_pem: &[u8],
    idle_per_host: usize,
    timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca_pem)?)
        .http1_only()
        .pool_max_idle_per_host(idle_per_host)
        .timeout(timeout)
        .build()?)
}

/// A scan of the hardened golden-image fixture cut to `results` results:
/// what a real agent's report looks like.
pub fn realistic_scan(results: usize) -> anyhow::Result<annexa_checks::engine::ScanReport> {
    use annexa_checks::engine::{Selection, scan};
    use annexa_checks::host::HostView;
    use annexa_checks::pack::PackSet;
    let dir = tempfile::tempdir()?;
    crate::hardened_root(dir.path());
    let packs = PackSet::load(true, &[], true).map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = packs
        .params_with(&Default::default())
        .map_err(anyhow::Error::msg)?;
    let mut report = scan(
        &packs,
        &HostView::root(dir.path())?,
        &params,
        &Selection::default(),
        "bench",
    )?;
    report.results.truncate(results);
    report.summary = annexa_checks::result::Summary::of(&report.results);
    Ok(report)
}

/// A load generator's agent, enrolled over the API.
pub struct Enrolled {
    /// Its signing key.
    pub key: annexa_evidence::keys::SigningKey,
    /// The machine identity it enrolled with (hex SHA-256).
    pub machine: String,
    /// The collector's answer.
    pub response: annexa_evidence::api::EnrollResponse,
}

/// Enrolls agent number `i` (host name `bench-NNNNN`) with a fresh key and
/// an enrollment token carrying `labels`, made with the admin token.
pub async fn enroll(
    http: &reqwest::Client,
    server: &str,
    admin: &str,
    i: usize,
    labels: serde_json::Value,
) -> anyhow::Result<Enrolled> {
    use annexa_evidence::api::{EnrollRequest, EnrollResponse};
    let (key, _) = annexa_evidence::keys::SigningKey::generate()?;
    let token: serde_json::Value = http
        .post(format!("{server}/v1/tokens/enroll"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"ttl": "1h", "labels": labels}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let machine = annexa_evidence::sha256_hex(format!("bench-machine-{i}").as_bytes());
    let response: EnrollResponse = http
        .post(format!("{server}/v1/enroll"))
        .json(&EnrollRequest::new(
            token["token"].as_str().unwrap_or_default().to_string(),
            &key,
            format!("bench-{i:05}"),
            machine.clone(),
            Default::default(),
            serde_json::json!({}),
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Enrolled {
        key,
        machine,
        response,
    })
}

impl Enrolled {
    /// The agent's signed envelope for run `sequence` of `scan`, chained to
    /// `previous`; returns its bytes and digest.
    pub fn envelope(
        &self,
        sequence: u64,
        previous: Option<String>,
        interval_seconds: Option<u64>,
        scan: annexa_checks::engine::ScanReport,
    ) -> (Vec<u8>, String) {
        use annexa_evidence::statement::{AgentInfo, ScanPredicate, scan_statement};
        let predicate = ScanPredicate {
            agent: AgentInfo {
                id: self.response.agent_id.clone(),
                version: "bench".into(),
                key_id: self.key.public().key_id(),
            },
            sequence,
            interval_seconds,
            log_alert: None,
            key_rotation: None,
            previous,
            labels: Default::default(),
            gap: None,
            scan,
        };
        let statement =
            serde_json::to_vec(&scan_statement(predicate, &self.machine)).unwrap_or_default();
        let bytes = annexa_evidence::dsse::sign(
            annexa_evidence::dsse::IN_TOTO_PAYLOAD_TYPE,
            &statement,
            &self.key,
        )
        .to_json();
        let digest = annexa_evidence::sha256_hex(&bytes);
        (bytes, digest)
    }
}

/// The collectors an agent may reach, as a load balancer presents them:
/// the agent stays with one until it fails it (no connection, or 503: down,
/// shutting down, or its store unavailable), then moves to the next.
pub struct Route {
    servers: Arc<[String]>,
    at: usize,
    /// How often it moved to another collector.
    pub failovers: u64,
}

impl Route {
    /// Starts at server `first` (modulo their number).
    pub fn new(servers: Arc<[String]>, first: usize) -> Route {
        let at = first % servers.len().max(1);
        Route {
            servers,
            at,
            failovers: 0,
        }
    }

    /// The collector it sends to now.
    pub fn server(&self) -> &str {
        &self.servers[self.at]
    }

    /// Submits one envelope, moving on and retrying with backoff until
    /// `deadline`; returns the first answer that is not a 503, with its
    /// whole body.
    pub async fn post_envelope(
        &mut self,
        http: &reqwest::Client,
        bytes: &[u8],
        deadline: std::time::Instant,
    ) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
        let mut pause = Duration::from_millis(20);
        loop {
            let sent = http
                .post(format!("{}/v1/evidence", self.server()))
                .header("content-type", "application/json")
                .body(bytes.to_vec())
                .send()
                .await;
            let failure = match sent {
                Ok(resp) if resp.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) => return Ok((status, body.to_vec())),
                        Err(e) => format!("reading the answer: {e}"),
                    }
                }
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => format!("{e}"),
            };
            if std::time::Instant::now() + pause > deadline {
                anyhow::bail!("{}: {failure}; no collector took it in time", self.server());
            }
            self.at = (self.at + 1) % self.servers.len();
            self.failovers += 1;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}
