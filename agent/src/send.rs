//! Delivering spooled envelopes to the collector.
//!
//! Envelopes go out in ascending sequence order, each as the exact bytes
//! that were spooled (the collector's receipt names their SHA-256). An
//! envelope leaves the spool only after the collector's signed receipt for
//! exactly those bytes, this agent and this sequence number has been
//! verified and appended to `receipts.jsonl`; anything else leaves it
//! where it is.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info};

use annexa_evidence::api::{ApiError, EvidenceResponse, codes};
use annexa_evidence::keys::KeyError;
use annexa_evidence::receipt::{Receipt, ReceiptError};

use crate::config::{AgentConfig, check_server_url};
use crate::spool::{Spool, SpoolError};
use crate::state::{StateDir, StateError};
use crate::tls::{TlsError, parse_certificates, pinned_client_config};

/// How long to wait for a TCP and TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all. Envelopes are a few hundred KiB.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why delivery stopped.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// There is no enrollment in the state directory.
    #[error(
        "not enrolled: {path} does not exist; enroll first with \
         `annexa enroll --server https://HOST:PORT --token-file TOKEN_FILE --ca FILE`"
    )]
    NotEnrolled {
        /// The missing enrollment.json.
        path: String,
    },
    /// The collector URL is not acceptable.
    #[error("server: {0}")]
    Server(String),
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// The spool.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The pinned CA.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The pinned CA file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The enrolled collector key is not a valid key.
    #[error("{path}: collector_public_key: {source}")]
    CollectorKey {
        /// enrollment.json.
        path: String,
        /// Why.
        source: KeyError,
    },
    /// The response's collector key transitions do not lead from the key
    /// this agent holds: the receipt cannot be trusted.
    #[error(
        "envelope {sequence}: the collector's signing key changed and {message}; the envelope is kept and sent again"
    )]
    KeyTransition {
        /// The envelope's sequence number.
        sequence: u64,
        /// Why.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// No HTTP response (connection, TLS, time-out). Transient.
    #[error("{url}: {detail}")]
    Network {
        /// The request URL.
        url: String,
        /// The error and its causes.
        detail: String,
    },
    /// The collector answered that it cannot take evidence now (5xx, 408,
    /// 429). Transient.
    #[error("{url}: the collector is unavailable ({status}): {message}")]
    Unavailable {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The collector refused the envelope's sequence number (409).
    #[error(
        "envelope {sequence} refused: the collector expects sequence {} next: {message}",
        .expected.map(|e| e.to_string()).unwrap_or_else(|| "(not given)".into())
    )]
    Sequence {
        /// The envelope's sequence number.
        sequence: u64,
        /// What the collector expects instead.
        expected: Option<u64>,
        /// The collector's message.
        message: String,
    },
    /// The collector refused the envelope for another reason (4xx).
    #[error("envelope {sequence} refused by the collector ({status} {code}): {message}")]
    Rejected {
        /// The envelope's sequence number.
        sequence: u64,
        /// HTTP status.
        status: u16,
        /// The API error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// A receipt that does not verify: the envelope stays spooled.
    #[error("envelope {sequence}: {source}")]
    Receipt {
        /// The envelope's sequence number.
        sequence: u64,
        /// Why the receipt was refused.
        source: ReceiptError,
    },
    /// A response that is not what the API defines. Transient (a proxy or
    /// a collector mid-upgrade may answer like this).
    #[error("{url}: unexpected response ({status}): {message}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// What is wrong.
        message: String,
    },
}

impl SendError {
    /// Whether retrying soon may succeed (network trouble, an unavailable
    /// collector) as opposed to a refusal that needs someone to act.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SendError::Network { .. }
                | SendError::Unavailable { .. }
                | SendError::BadResponse { .. }
        )
    }
}

/// An error and its causes on one line (reqwest's own message alone says
/// only "error sending request"; the cause says TLS, DNS or refused).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = c.source();
    }
    out
}

/// Adds what a certificate failure means here: rustls names the check
/// that failed, not which trust decision it broke.
pub(crate) fn explain_tls(detail: String, pinned: &str) -> String {
    if detail.contains("invalid peer certificate") {
        format!(
            "{detail} (the collector's certificate does not chain to {pinned}, or is not valid for \
             the host name in the server URL)"
        )
    } else {
        detail
    }
}

/// An HTTP client over a preconfigured rustls configuration: https only,
/// no redirects (a redirected evidence POST would go somewhere the agent
/// did not choose), bounded time.
pub(crate) fn http_client(tls: rustls::ClientConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("annexa-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| error_chain(&e))
}

/// An API error body's code, message and expected sequence; the raw text
/// (shortened) when the body is not the API's error JSON.
pub(crate) fn api_error(body: &[u8]) -> ApiError {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let short: String = text.chars().take(300).collect();
        ApiError {
            error: String::new(),
            message: if short.is_empty() {
                "(empty body)".into()
            } else {
                short
            },
            expected_sequence: None,
        }
    })
}

/// A connection to the collector that trusts only its pinned CA.
#[derive(Debug, Clone)]
pub struct CollectorClient {
    http: reqwest::Client,
    server: String,
    /// What the client trusts, for error messages.
    pinned: String,
}

impl CollectorClient {
    /// A client for `server` (`https://HOST:PORT`) over this rustls
    /// configuration.
    pub fn new(server: &str, tls: rustls::ClientConfig) -> Result<CollectorClient, SendError> {
        let server = check_server_url(server).map_err(SendError::Server)?;
        Ok(CollectorClient {
            http: http_client(tls).map_err(SendError::Client)?,
            server,
            pinned: "the pinned CA".into(),
        })
    }

    /// The client for an enrolled agent: the configured server if any,
    /// else the enrolled one, trusting only the CA pinned at enrollment.
    pub fn for_state(config: &AgentConfig, state: &StateDir) -> Result<CollectorClient, SendError> {
        let enrollment = state.enrollment()?.ok_or_else(|| SendError::NotEnrolled {
            path: state.enrollment_path().display().to_string(),
        })?;
        let ca_path = state.enrolled_ca_path(&enrollment);
        let label = ca_path.display().to_string();
        let bytes = std::fs::read(&ca_path).map_err(|source| SendError::Io {
            path: label.clone(),
            source,
        })?;
        let roots = parse_certificates(&label, &bytes)?;
        let server = config.server.as_deref().unwrap_or(&enrollment.server);
        let mut client = CollectorClient::new(server, pinned_client_config(&label, &roots)?)?;
        client.pinned = format!("the pinned CA in {label}");
        Ok(client)
    }

    /// The collector's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// GETs an API path with a bearer token; returns the status and body.
    pub async fn get_with_token(
        &self,
        path: &str,
        token: &str,
    ) -> Result<(u16, Vec<u8>), SendError> {
        let url = self.url(path);
        self.exchange(&url, self.http.get(&url).bearer_auth(token))
            .await
    }

    /// GETs an API path with a bearer token and streams a 200 body into
    /// `dest` (no overall time limit: a log bundle can be gigabytes);
    /// returns the status and, for any other status, the body.
    pub async fn download_with_token(
        &self,
        path: &str,
        token: &str,
        dest: &mut (dyn std::io::Write + Send),
    ) -> Result<(u16, Vec<u8>), SendError> {
        let url = self.url(path);
        let network = |e: reqwest::Error| SendError::Network {
            url: url.clone(),
            detail: explain_tls(error_chain(&e), &self.pinned),
        };
        let mut resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(7 * 24 * 3600))
            .send()
            .await
            .map_err(network)?;
        let status = resp.status().as_u16();
        if status != 200 {
            let bytes = resp.bytes().await.map_err(network)?;
            return Ok((status, bytes.to_vec()));
        }
        while let Some(chunk) = resp.chunk().await.map_err(network)? {
            dest.write_all(&chunk).map_err(|e| SendError::Network {
                url: url.clone(),
                detail: format!("writing the download: {e}"),
            })?;
        }
        Ok((status, Vec::new()))
    }

    /// POSTs an envelope with this host's clock in the `annexa-agent-time`
    /// header, which the collector compares with its own and records.
    async fn post_evidence(&self, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), SendError> {
        let url = self.url(path);
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(annexa_evidence::api::AGENT_TIME_HEADER, now)
            .body(body);
        self.exchange(&url, req).await
    }

    async fn exchange(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), SendError> {
        let network = |e: reqwest::Error| SendError::Network {
            url: url.to_string(),
            detail: explain_tls(error_chain(&e), &self.pinned),
        };
        let resp = req.send().await.map_err(network)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(network)?;
        Ok((status, bytes.to_vec()))
    }
}

/// Delivers every pending envelope in ascending order; returns how many
/// were acknowledged. Stops at the first failure (later envelopes chain to
/// it, so sending them first could only be refused).
pub async fn deliver_pending(
    client: &CollectorClient,
    state: &StateDir,
) -> Result<usize, SendError> {
    let mut delivered = 0;
    deliver_until(client, state, None, &mut delivered).await?;
    Ok(delivered)
}

/// [`deliver_pending`], stopping between envelopes once `stop` is true and
/// counting acknowledged envelopes in `delivered` (kept when a later one
/// fails).
pub(crate) async fn deliver_until(
    client: &CollectorClient,
    state: &StateDir,
    stop: Option<&watch::Receiver<bool>>,
    delivered: &mut usize,
) -> Result<(), SendError> {
    let mut enrollment = state.enrollment()?.ok_or_else(|| SendError::NotEnrolled {
        path: state.enrollment_path().display().to_string(),
    })?;
    enrollment
        .collector_key()
        .map_err(|source| SendError::CollectorKey {
            path: state.enrollment_path().display().to_string(),
            source,
        })?;
    let spool = Spool::open(state.spool_dir())?;
    let url = client.url("/v1/evidence");
    loop {
        if stop.is_some_and(|s| *s.borrow()) {
            break;
        }
        // Held for the whole exchange: the producer must not drop this
        // envelope (declaring it in a gap) while the collector may be
        // accepting it.
        let _guard = state.spool_lock().lock().await;
        let Some((seq, path)) = spool.pending()?.into_iter().next() else {
            break;
        };
        let bytes = tokio::fs::read(&path).await.map_err(|source| SpoolError {
            path: path.display().to_string(),
            source,
        })?;
        let digest = annexa_evidence::sha256_hex(&bytes);
        let path = match crate::logwatch::held_size(state) {
            Some(n) => format!("/v1/evidence?log_size={n}"),
            None => "/v1/evidence".to_string(),
        };
        let (status, body) = client.post_evidence(&path, bytes).await?;
        match status {
            200 => {
                let resp: EvidenceResponse =
                    serde_json::from_slice(&body).map_err(|e| SendError::BadResponse {
                        url: url.clone(),
                        status,
                        message: format!("not an evidence response: {e}"),
                    })?;
                // Before the receipt: a rotated collector signed it with
                // a key this agent adopts only through the transitions.
                let collector =
                    crate::logwatch::adopt(state, &mut enrollment, &resp.key_transitions).map_err(
                        |message| SendError::KeyTransition {
                            sequence: seq,
                            message,
                        },
                    )?;
                let receipt = Receipt::verify(
                    &resp.receipt,
                    &collector,
                    &digest,
                    enrollment.agent_id.as_str(),
                    seq,
                )
                .map_err(|source| SendError::Receipt {
                    sequence: seq,
                    source,
                })?;
                // The receipt is on disk before the envelope goes: a crash
                // in between re-sends the envelope, which the collector
                // answers with a duplicate receipt.
                state.append_receipt(&resp.receipt)?;
                state.acknowledged(seq)?;
                spool.remove(seq)?;
                if let Some(log) = &resp.log {
                    let keys = crate::logwatch::CollectorKeys {
                        current: collector,
                        transitions: &enrollment.collector_key_transitions,
                    };
                    crate::logwatch::observe(state, log, &keys, receipt.log_index)?;
                }
                if let Some(policy) = &resp.policy
                    && state.policy().ok().flatten().as_ref() != Some(policy)
                {
                    state.write_policy(policy)?;
                    tracing::info!(
                        soa_version = policy.soa_version,
                        params = ?policy.params,
                        "the collector's Statement of Applicability sets check parameters; the next scan uses them"
                    );
                }
                *delivered += 1;
                info!(
                    sequence = seq,
                    digest = %digest,
                    duplicate = receipt.duplicate,
                    accepted_at = %receipt.accepted_at,
                    "delivered envelope {seq}{}",
                    if receipt.duplicate { " (the collector already had it)" } else { "" }
                );
            }
            409 => {
                let e = api_error(&body);
                if e.error == codes::SEQUENCE {
                    error!(
                        sequence = seq,
                        expected_sequence = ?e.expected_sequence,
                        "the collector refused envelope {seq}: it expects sequence {} next ({}). \
                         Nothing was deleted; the spool is kept as it is until this is resolved \
                         (docs/agent.md, sequence conflicts)",
                        e.expected_sequence.map(|x| x.to_string()).unwrap_or_else(|| "?".into()),
                        e.message
                    );
                    return Err(SendError::Sequence {
                        sequence: seq,
                        expected: e.expected_sequence,
                        message: e.message,
                    });
                }
                return Err(SendError::Rejected {
                    sequence: seq,
                    status,
                    code: e.error,
                    message: e.message,
                });
            }
            408 | 429 | 500..=599 => {
                return Err(SendError::Unavailable {
                    url: url.clone(),
                    status,
                    message: api_error(&body).message,
                });
            }
            400..=499 => {
                let e = api_error(&body);
                return Err(SendError::Rejected {
                    sequence: seq,
                    status,
                    code: e.error,
                    message: e.message,
                });
            }
            _ => {
                return Err(SendError::BadResponse {
                    url: url.clone(),
                    status,
                    message: api_error(&body).message,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_read_or_quoted() {
        let e = api_error(br#"{"error":"sequence","message":"expected 4","expected_sequence":4}"#);
        assert_eq!(e.error, "sequence");
        assert_eq!(e.expected_sequence, Some(4));
        let e = api_error(b"<html>Bad gateway</html>");
        assert_eq!(e.error, "");
        assert_eq!(e.message, "<html>Bad gateway</html>");
        assert_eq!(api_error(b"").message, "(empty body)");
    }

    #[test]
    fn only_network_trouble_is_transient() {
        let net = SendError::Network {
            url: "u".into(),
            detail: "refused".into(),
        };
        assert!(net.is_transient());
        let seq = SendError::Sequence {
            sequence: 3,
            expected: Some(2),
            message: "m".into(),
        };
        assert!(!seq.is_transient());
        assert_eq!(
            seq.to_string(),
            "envelope 3 refused: the collector expects sequence 2 next: m"
        );
    }
}
