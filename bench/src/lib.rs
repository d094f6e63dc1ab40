//! Shared pieces of annexa's load generators.

use std::sync::Arc;
use std::time::Duration;

/// An HTTP/1.1 client over rustls (ring) that trusts only the CA
/// certificates in `ca_pem`, keeping up to `idle_per_host` connections.
pub fn tls_client(
    ca_pem: &[u8],
    idle_per_host: usize,
    timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
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
    annexa_tests::hardened_root(dir.path());
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
