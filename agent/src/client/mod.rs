//! The auditor's and CI's client of the collector API: requests made with
//! an admin or auditor API token (a bearer token), not with the agent's
//! key, over TLS that trusts only the collector's CA. One file per route
//! group: [`status`] (`/v1/conformity`), [`drift`] (`/v1/drift`),
//! [`report`] (`/v1/reports`), [`log`] (`/v1/log/export`).
//!
//! A host that enrolled lends these commands its collector URL and pinned
//! CA; anywhere else they are given (`--server`, `--ca` or
//! `--ca-fingerprint`). Every refusal names the route and the collector's
//! error code and message.

pub mod drift;
pub mod log;
pub mod report;
pub mod status;

use std::path::{Path, PathBuf};

use crate::config::{AgentConfig, ConfigError};
use crate::send::{CollectorClient, SendError};
use crate::state::StateDir;
use crate::tls::{FingerprintVerifier, TlsError, parse_certificates, pinned_client_config};

/// Why a request to the collector API could not be made or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// agent.toml.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Neither given nor configured nor enrolled.
    #[error("no collector URL: give --server https://HOST:PORT")]
    NoServer,
    /// No CA given and no enrollment to take one from.
    #[error(
        "this host is not enrolled: give --ca FILE or --ca-fingerprint SHA256:<hex> to trust the collector"
    )]
    NoCa,
    /// Neither a token file nor `ANNEXA_TOKEN`.
    #[error("no API token: give --token-file FILE or set ANNEXA_TOKEN")]
    NoToken(#[source] std::env::VarError),
    /// A file (a CA certificate) cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A token cannot be read from `from` (a file, or standard input).
    #[error("reading the token from {from}")]
    Token {
        /// Where.
        from: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CA to trust.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection or the request.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The collector answered with something other than 200.
    #[error("{server}{route}: {status} {code}: {message}")]
    Refused {
        /// The collector's URL.
        server: String,
        /// What was asked.
        route: String,
        /// HTTP status.
        status: u16,
        /// The API error code (`error` when the body names none).
        code: String,
        /// The API error message.
        message: String,
    },
    /// An answer that is not JSON at all.
    #[error("{server}{path} answered {status} with something other than JSON")]
    NotJson {
        /// The collector's URL.
        server: String,
        /// What was asked, with its query.
        path: String,
        /// HTTP status.
        status: u16,
        /// Why it is not JSON.
        source: serde_json::Error,
    },
    /// A 200 answer of `/v1/drift` that this version cannot read.
    #[error("{server}{route}: not a drift answer this annexa understands")]
    NotDrift {
        /// The collector's URL.
        server: String,
        /// The route asked.
        route: String,
        /// Why it cannot be read.
        source: serde_json::Error,
    },
}

/// Where the CA that a command trusts (or pins, at enrollment) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A certificate file, PEM or DER.
    Certificate(PathBuf),
    /// The SHA-256 of the certificate the collector presents, `SHA256:<hex>`.
    Fingerprint(String),
}

/// How to reach the collector's API, as given; what is not given comes
/// from agent.toml and then from this host's enrollment.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// The collector's URL, `https://HOST:PORT`.
    pub server: Option<String>,
    /// A file holding the API token (`-`: standard input); else
    /// `ANNEXA_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// The CA to trust; else the one this host pinned at enrollment.
    pub ca: Option<CaSource>,
    /// agent.toml (default: /etc/annexa/agent.toml, if it exists).
    pub config: Option<PathBuf>,
}

/// A collector to ask, with the token to ask it with.
pub struct Api {
    client: CollectorClient,
    token: String,
    server: String,
}

/// The token is a credential: it is never printed.
impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("server", &self.server)
            .field("token", &"(redacted)")
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Resolves the collector, the CA to trust and the token. Nothing is
    /// sent yet.
    pub fn connect(opts: &ApiOptions) -> Result<Api, ClientError> {
        let config = AgentConfig::load_or_default(opts.config.as_deref())?;
        let state = StateDir::open(&config.state_dir).ok();
        let enrolled = state.as_ref().and_then(|s| s.enrollment().ok().flatten());
        let server = opts
            .server
            .clone()
            .or(config.server.clone())
            .or(enrolled.as_ref().map(|e| e.server.clone()))
            .ok_or(ClientError::NoServer)?;
        let tls = match &opts.ca {
            Some(CaSource::Certificate(path)) => pinned_ca(path)?,
            Some(CaSource::Fingerprint(fp)) => {
                FingerprintVerifier::new(fp.parse()?).client_config()?
            }
            None => {
                let (Some(state), Some(e)) = (&state, &enrolled) else {
                    return Err(ClientError::NoCa);
                };
                pinned_ca(&state.enrolled_ca_path(e))?
            }
        };
        let token = match &opts.token_file {
            Some(path) => read_token(path)?,
            None => std::env::var("ANNEXA_TOKEN").map_err(ClientError::NoToken)?,
        };
        let client = CollectorClient::new(&server, tls)?;
        Ok(Api {
            client,
            token,
            server,
        })
    }

    /// The collector's URL, as given or found.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// GETs an API path (with its query); any status, with its body.
    pub async fn get(&self, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
        Ok(self.client.get_with_token(path, &self.token).await?)
    }

    /// Streams an API path into `dest`; anything but 200 is refused.
    pub async fn download(
        &self,
        path: &str,
        dest: &mut (dyn std::io::Write + Send),
    ) -> Result<(), ClientError> {
        let (status, body) = self
            .client
            .download_with_token(path, &self.token, dest)
            .await?;
        if status != 200 {
            return Err(self.refused(path, status, &body));
        }
        Ok(())
    }

    /// A refusal, named by route (without the query): its API error code
    /// and message, or the body itself when it is not an API error.
    fn refused(&self, path: &str, status: u16, body: &[u8]) -> ClientError {
        let e: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        ClientError::Refused {
            server: self.server.clone(),
            route: route(path).to_string(),
            status,
            code: e["error"].as_str().unwrap_or("error").to_string(),
            message: e["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        }
    }
}

/// A TLS configuration trusting only the CA certificate in `path`.
fn pinned_ca(path: &Path) -> Result<rustls::ClientConfig, ClientError> {
    let label = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ClientError::Read {
        path: label.clone(),
        source,
    })?;
    Ok(pinned_client_config(
        &label,
        &parse_certificates(&label, &bytes)?,
    )?)
}

/// A token from a file, or from standard input for `-`, trimmed.
pub fn read_token(path: &Path) -> Result<String, ClientError> {
    let token = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_line(&mut t)
            .map_err(|source| ClientError::Token {
                from: "standard input".into(),
                source,
            })?;
        t
    } else {
        std::fs::read_to_string(path).map_err(|source| ClientError::Token {
            from: path.display().to_string(),
            source,
        })?
    };
    Ok(token.trim().to_string())
}

/// An API path with its query, the user's values encoded by the URL type.
/// The base is a placeholder: [`Api`] prefixes its own server.
fn api_path(route: &str, query: &[(&str, &str)]) -> String {
    let mut url = placeholder(route);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    path_of(&url)
}

/// `route` on the placeholder base.
fn placeholder(route: &str) -> reqwest::Url {
    // A constant base and a route written in this crate: parsing cannot fail.
    reqwest::Url::parse("https://collector")
        .and_then(|base| base.join(route))
        .expect("a constant URL")
}

/// The path and query of a URL on the placeholder base.
fn path_of(url: &reqwest::Url) -> String {
    match url.query().filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// An API path without its query.
fn route(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_encoded_queries_and_refusals_name_the_route() {
        assert_eq!(api_path("/v1/drift", &[]), "/v1/drift");
        let path = api_path(
            "/v1/reports",
            &[("format", "json"), ("scope", "env=prod,role=db")],
        );
        assert_eq!(path, "/v1/reports?format=json&scope=env%3Dprod%2Crole%3Ddb");
        assert_eq!(route(&path), "/v1/reports");
        let refused = ClientError::Refused {
            server: "https://c:8443".into(),
            route: route(&path).into(),
            status: 409,
            code: "no_soa".into(),
            message: "no SoA imported".into(),
        };
        assert_eq!(
            refused.to_string(),
            "https://c:8443/v1/reports: 409 no_soa: no SoA imported"
        );
    }
}
