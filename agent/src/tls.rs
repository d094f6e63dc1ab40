//! TLS to the collector: rustls with the ring provider, trusting only the
//! collector's pinned CA (never the system's roots: a public CA must not be
//! able to impersonate the collector), and the fingerprint verifier used to
//! learn and pin that CA at enrollment.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use annexa_evidence::encoding::{b64, hex, hex_decode};

/// Errors building TLS configurations. Certificate errors name their source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// No certificate in the bytes given.
    #[error(
        "{label}: no certificate found (expected PEM `CERTIFICATE` blocks or one DER certificate)"
    )]
    NoCertificates {
        /// Where the bytes came from (a file name).
        label: String,
    },
    /// A certificate that cannot be parsed or used as a trust anchor.
    #[error("{label}: {message}")]
    BadCertificate {
        /// Where it came from.
        label: String,
        /// What is wrong.
        message: String,
    },
    /// Not `SHA256:` and 64 hex digits.
    #[error(
        "`{0}` is not a certificate fingerprint; expected SHA256:<64 hex digits> (the SHA-256 of \
         the CA certificate's DER bytes)"
    )]
    BadFingerprint(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider: ring, installed explicitly in every configuration
/// rather than through a process-wide default, so the agent never depends
/// on (or builds) aws-lc and an embedding program's own default is left
/// alone.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses certificates from PEM (every `CERTIFICATE` block) or DER (one
/// certificate). `label` names the source in errors.
pub fn parse_certificates(
    label: &str,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = if bytes
        .windows(b"-----BEGIN".len())
        .any(|w| w == b"-----BEGIN")
    {
        CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadCertificate {
                label: label.to_string(),
                message: format!("not valid PEM: {e}"),
            })?
    } else if bytes.first() == Some(&0x30) {
        // A DER certificate is an ASN.1 SEQUENCE (tag 0x30).
        vec![CertificateDer::from(bytes.to_vec())]
    } else {
        Vec::new()
    };
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            label: label.to_string(),
        });
    }
    Ok(certs)
}

/// PEM of certificates (64-column base64, as RFC 7468 asks).
pub fn certificates_to_pem(certs: &[CertificateDer<'_>]) -> String {
    let mut out = String::new();
    for c in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = b64(c.as_ref());
        for chunk in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// `SHA256:<hex>` of a certificate's DER bytes.
pub fn fingerprint_of(cert: &CertificateDer<'_>) -> Fingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Fingerprint(out)
}

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl FromStr for Fingerprint {
    type Err = TlsError;

    /// Accepts `SHA256:` (any case) or no prefix, then 64 hex digits in
    /// either case, optionally separated by colons as OpenSSL prints them.
    fn from_str(s: &str) -> Result<Fingerprint, TlsError> {
        let t = s.trim();
        let t = match t.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &t[7..],
            _ => t,
        };
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        match hex_decode(&digits) {
            Some(raw) if raw.len() == 32 => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&raw);
                Ok(Fingerprint(out))
            }
            _ => Err(TlsError::BadFingerprint(s.to_string())),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A client configuration whose only trust anchors are `roots`.
pub fn pinned_client_config(
    label: &str,
    roots: &[CertificateDer<'_>],
) -> Result<ClientConfig, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store
            .add(cert.clone().into_owned())
            .map_err(|e| TlsError::BadCertificate {
                label: label.to_string(),
                message: format!("not usable as a trust anchor: {e}"),
            })?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// Verifies a server by a CA fingerprint given out of band: among the
/// certificates the server presents (leaf and chain), the one whose SHA-256
/// equals the fingerprint becomes the only trust anchor, and the leaf must
/// then verify against it with rustls' WebPKI verifier, server name
/// included. A matching certificate is only trusted as an anchor: the
/// fingerprint pins the CA, the chain and name checks still apply.
#[derive(Debug)]
pub struct FingerprintVerifier {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<Option<PinOutcome>>,
}

/// What the verifier saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// The pinned CA, found and verified against.
    Matched(CertificateDer<'static>),
    /// No presented certificate matched; their fingerprints.
    NoMatch(Vec<Fingerprint>),
}

impl FingerprintVerifier {
    /// A verifier for one fingerprint.
    pub fn new(fingerprint: Fingerprint) -> Arc<FingerprintVerifier> {
        Arc::new(FingerprintVerifier {
            fingerprint,
            provider: provider(),
            outcome: Mutex::new(None),
        })
    }

    /// The fingerprint pinned.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// What the last handshake found, if one got that far.
    pub fn outcome(&self) -> Option<PinOutcome> {
        self.outcome.lock().map(|o| o.clone()).unwrap_or(None)
    }

    /// The CA certificate that matched the fingerprint in the last
    /// verified handshake.
    pub fn matched_ca(&self) -> Option<CertificateDer<'static>> {
        match self.outcome() {
            Some(PinOutcome::Matched(c)) => Some(c),
            _ => None,
        }
    }

    fn record(&self, o: PinOutcome) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(o);
        }
    }

    /// A client configuration that verifies servers with this verifier.
    pub fn client_config(self: &Arc<Self>) -> Result<ClientConfig, TlsError> {
        Ok(ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = || std::iter::once(end_entity).chain(intermediates.iter());
        let Some(anchor) = presented().find(|c| fingerprint_of(c) == self.fingerprint) else {
            self.record(PinOutcome::NoMatch(
                presented().map(fingerprint_of).collect(),
            ));
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified =
            inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.record(PinOutcome::Matched(anchor.clone().into_owned()));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// A CA and a leaf for `localhost` / 127.0.0.1 signed by it.
    pub(crate) struct TestPki {
        pub ca: CertificateDer<'static>,
        pub leaf: CertificateDer<'static>,
    }

    pub(crate) fn test_pki(cn: &str) -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, cn);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestPki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
        }
    }

    fn verify(
        v: &FingerprintVerifier,
        pki: &TestPki,
        name: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        v.verify_server_cert(
            &pki.leaf,
            std::slice::from_ref(&pki.ca),
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
    }

    #[test]
    fn fingerprints_parse_in_the_accepted_forms() {
        let pki = test_pki("annexa test CA");
        let fp = fingerprint_of(&pki.ca);
        let hexed = hex(&fp.0);
        for form in [
            format!("SHA256:{hexed}"),
            format!("sha256:{}", hexed.to_uppercase()),
            hexed.clone(),
            hexed
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(":"),
        ] {
            assert_eq!(form.parse::<Fingerprint>().unwrap(), fp, "{form}");
        }
        assert_eq!(fp.to_string(), format!("SHA256:{hexed}"));
        for bad in [
            "SHA256:abcd",
            "MD5:00",
            &format!("SHA256:{}", "zz".repeat(32)),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_verifier_pins_the_presented_ca_and_still_checks_chain_and_name() {
        let pki = test_pki("annexa test CA");
        let v = FingerprintVerifier::new(fingerprint_of(&pki.ca));
        verify(&v, &pki, "localhost").unwrap();
        assert_eq!(v.matched_ca(), Some(pki.ca.clone()));
        verify(&v, &pki, "127.0.0.1").unwrap();
        // The right CA but a name the leaf does not carry.
        let err = verify(&v, &pki, "collector.example").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_verifier_refuses_a_server_without_the_pinned_ca() {
        let pki = test_pki("annexa test CA");
        let other = test_pki("impostor CA");
        let v = FingerprintVerifier::new(fingerprint_of(&other.ca));
        let err = verify(&v, &pki, "localhost").unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
        assert_eq!(
            v.outcome(),
            Some(PinOutcome::NoMatch(vec![
                fingerprint_of(&pki.leaf),
                fingerprint_of(&pki.ca)
            ]))
        );
        assert_eq!(v.matched_ca(), None);
        // An impostor presenting the pinned CA's certificate without its key
        // cannot make a leaf that chains to it.
        let forged = TestPki {
            ca: pki.ca.clone(),
            leaf: other.leaf.clone(),
        };
        let v = FingerprintVerifier::new(fingerprint_of(&pki.ca));
        assert!(verify(&v, &forged, "localhost").is_err());
        assert_eq!(v.matched_ca(), None);
    }

    #[test]
    fn certificates_round_trip_through_pem_and_der() {
        let pki = test_pki("annexa test CA");
        let pem = certificates_to_pem(&[pki.ca.clone(), pki.leaf.clone()]);
        let back = parse_certificates("ca.pem", pem.as_bytes()).unwrap();
        assert_eq!(back, [pki.ca.clone(), pki.leaf.clone()]);
        let der = parse_certificates("ca.der", pki.ca.as_ref()).unwrap();
        assert_eq!(der, std::slice::from_ref(&pki.ca));
        let err = parse_certificates("x.pem", b"hello")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.pem: no certificate"), "{err}");
        pinned_client_config("ca.pem", &back[..1]).unwrap();
        let err = pinned_client_config("bad.der", &[CertificateDer::from(vec![0x30, 0])])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.der: "), "{err}");
    }
}
