//! X.509 device authentication on the MQTTS port (IoT Hub's "Authenticate identities with
//! X.509 certificates"):
//! - the TLS handshake asks for a client certificate but does not require one (SAS devices
//!   send none); any certificate is taken at the handshake, and the client proves it holds the
//!   certificate's key (TLS CertificateVerify, checked by rustls);
//! - at CONNECT, a `selfSigned` identity's certificate must have the SHA-1 or SHA-256
//!   thumbprint (hex, any case) of its primary or secondary thumbprint;
//! - a `certificateAuthority` identity's certificate must chain to a CA the hub was told to
//!   trust (`--trusted-ca`, the builder's `trusted_ca_pem`, or PEM files in the data
//!   directory's `trusted-cas/`), be valid now, and name the device (or `deviceId/moduleId`…
//!   IoT Hub takes the device id) as its subject common name.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use sha1::Digest as _;

/// Directory under the data directory whose `*.pem` files hold trusted device CAs.
pub const TRUSTED_CA_DIR: &str = "trusted-cas";

/// Asks for a client certificate, accepts any (the identity's rules are checked at CONNECT),
/// and verifies the client's proof of possession.
#[derive(Debug)]
pub struct OptionalClientCert {
    provider: Arc<CryptoProvider>,
}

impl OptionalClientCert {
    /// A verifier using `provider`'s signature algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        OptionalClientCert { provider }
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificates a device presented (end entity first).
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Vec<CertificateDer<'static>>);

/// Upper-case hex of SHA-1 and SHA-256 of a certificate (its thumbprints).
pub fn thumbprints(cert: &CertificateDer<'_>) -> (String, String) {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();
    (
        hex(&sha1::Sha1::digest(cert.as_ref())),
        hex(&<sha2::Sha256 as sha2::Digest>::digest(cert.as_ref())),
    )
}

/// Whether `cert` has one of the identity's thumbprints.
pub fn matches_thumbprint(cert: &CertificateDer<'_>, expected: &[&str]) -> bool {
    let (sha1, sha256) = thumbprints(cert);
    expected
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&sha1) || t.eq_ignore_ascii_case(&sha256))
}

/// The trusted device CAs.
#[derive(Clone)]
pub struct TrustedCas {
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    count: usize,
}

impl std::fmt::Debug for TrustedCas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedCas")
            .field("count", &self.count)
            .finish()
    }
}

impl TrustedCas {
    /// CAs from PEM texts (each may hold several certificates).
    ///
    /// # Errors
    /// A message naming the problem (not PEM, not a usable CA).
    pub fn from_pems(pems: &[String], provider: Arc<CryptoProvider>) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for pem in pems {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("a trusted CA is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("a trusted CA is not usable: {e}"))?;
            }
        }
        let count = roots.len();
        if count == 0 {
            return Ok(TrustedCas {
                verifier: None,
                count,
            });
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("the trusted CAs cannot verify certificates: {e}"))?;
        Ok(TrustedCas {
            verifier: Some(verifier),
            count,
        })
    }

    /// Checks that `chain` (end entity first) chains to a trusted CA, is valid now, and names
    /// `device_id` as its subject common name.
    ///
    /// # Errors
    /// Why not, in a sentence.
    pub fn verify(&self, chain: &[CertificateDer<'static>], device_id: &str) -> Result<(), String> {
        let Some(verifier) = &self.verifier else {
            return Err("the hub trusts no device CA (--trusted-ca)".into());
        };
        let (end, intermediates) = chain
            .split_first()
            .ok_or("no client certificate was presented")?;
        verifier
            .verify_client_cert(end, intermediates, UnixTime::now())
            .map_err(|e| format!("the client certificate does not chain to a trusted CA: {e}"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end.as_ref())
            .map_err(|e| format!("the client certificate cannot be read: {e}"))?;
        let cn = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        if cn != device_id {
            return Err(format!(
                "the client certificate's common name '{}' is not the device id",
                cn.escape_default()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_upper_hex_of_the_der() {
        let cert = CertificateDer::from(vec![1u8, 2, 3]);
        let (sha1, sha256) = thumbprints(&cert);
        assert_eq!(sha1, "7037807198C22A7D2B0807371D763779A84FDFCF");
        assert_eq!(sha256.len(), 64);
        assert!(matches_thumbprint(
            &cert,
            &["7037807198c22a7d2b0807371d763779a84fdfcf"]
        ));
        assert!(!matches_thumbprint(&cert, &["00"]));
    }
}
