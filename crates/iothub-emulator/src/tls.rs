//! TLS material: a local CA and a server certificate for `localhost`, `127.0.0.1` and `::1`.
//!
//! Both are created on first start and kept in the certificate directory (`ca.pem`,
//! `ca-key.pem`, `server.pem`, `server-key.pem`), so clients that trust `ca.pem` keep working
//! across restarts. Keys are ECDSA P-256; certificates are valid for ten years from creation.
//! The server speaks TLS 1.2 and 1.3 (rustls with the aws-lc-rs provider) and offers HTTP/2
//! and HTTP/1.1 through ALPN.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File name of the CA certificate.
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";

/// Why TLS material could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Certificate generation failed.
    #[error("cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
    /// A stored PEM file is not usable.
    #[error("{path} does not hold a usable certificate or key")]
    BadPem {
        /// The file.
        path: PathBuf,
    },
    /// rustls rejected the configuration.
    #[error("cannot configure TLS")]
    Rustls(#[from] rustls::Error),
}

/// The CA and server certificate in use.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// PEM of the CA certificate.
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_pem: String,
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a file atomically (temp file + rename); private keys get mode 0600 on Unix.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let io_err = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&tmp).map_err(io_err)?;
        io::Write::write_all(&mut file, contents.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    fs::rename(&tmp, path).map_err(io_err)
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "IoT Hub Emulator Local CA");
    dn.push(DnType::OrganizationName, "iothub-rs");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
}

fn server_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    Ok(params)
}

fn parse_cert(path: &Path, pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsError::BadPem {
        path: path.to_owned(),
    })
}

/// Loads the CA and server certificate from `dir`, creating whatever is missing.
pub fn load_or_create(dir: &Path) -> Result<TlsMaterial, TlsError> {
    let ca_path = dir.join(CA_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let server_path = dir.join(SERVER_FILE);
    let server_key_path = dir.join(SERVER_KEY_FILE);

    let (ca_pem, ca_key) = match (read(&ca_path)?, read(&ca_key_path)?) {
        (Some(cert), Some(key)) => {
            parse_cert(&ca_path, &cert)?;
            let key = KeyPair::from_pem(&key).map_err(|_| TlsError::BadPem {
                path: ca_key_path.clone(),
            })?;
            (cert, key)
        }
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write_file(&ca_key_path, &key.serialize_pem(), true)?;
            write_file(&ca_path, &cert.pem(), false)?;
            // A new CA invalidates any server certificate signed by an older one.
            let _ = fs::remove_file(&server_path);
            (cert.pem(), key)
        }
    };
    let ca_der = parse_cert(&ca_path, &ca_pem)?;

    let (server_pem, server_key_pem) = match (read(&server_path)?, read(&server_key_path)?) {
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            let key = KeyPair::generate()?;
            let issuer = Issuer::new(ca_params()?, ca_key);
            let cert = server_params()?.signed_by(&key, &issuer)?;
            write_file(&server_key_path, &key.serialize_pem(), true)?;
            write_file(&server_path, &cert.pem(), false)?;
            (cert.pem(), key.serialize_pem())
        }
    };
    let server_der = parse_cert(&server_path, &server_pem)?;
    PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(|_| TlsError::BadPem {
        path: server_key_path.clone(),
    })?;
    Ok(TlsMaterial {
        ca_pem,
        server_chain: vec![server_der, ca_der],
        server_key_pem,
    })
}

impl TlsMaterial {
    /// A rustls server configuration (TLS 1.2 + 1.3, aws-lc-rs, ALPN h2 and http/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|_| {
            TlsError::BadPem {
                path: PathBuf::from(SERVER_KEY_FILE),
            }
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The MQTTS listener's configuration: the same certificate, and a request for an
    /// optional client certificate (X.509 devices; see `x509`).
    pub fn device_server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|_| {
            TlsError::BadPem {
                path: PathBuf::from(SERVER_KEY_FILE),
            }
        })?;
        let verifier = Arc::new(crate::x509::OptionalClientCert::new(Arc::clone(&provider)));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), key)?;
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reuses() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = load_or_create(dir.path())?;
        let second = load_or_create(dir.path())?;
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.server_chain, second.server_chain);
        second.server_config()?;
        // Losing the server certificate re-issues it from the same CA.
        fs::remove_file(dir.path().join(SERVER_FILE))?;
        let third = load_or_create(dir.path())?;
        assert_eq!(third.ca_pem, first.ca_pem);
        assert_ne!(third.server_chain[0], first.server_chain[0]);
        Ok(())
    }
}
