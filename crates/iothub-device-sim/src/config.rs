//! Where and how a simulated device connects: [`DeviceConfig`], [`Transport`], [`Auth`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use iothub_auth::sas::{SasToken, generate_sas_token};
use iothub_auth::{ConnectionString, SharedAccessKey};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// IoT Hub's MQTT-over-TLS port.
pub const MQTTS_PORT: u16 = 8883;
/// IoT Hub's HTTPS port, which also carries MQTT over WebSockets.
pub const WEBSOCKET_PORT: u16 = 443;
/// Default lifetime of the SAS tokens a device signs: one hour.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default MQTT keep-alive: 60 s, as the Python device SDK.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// The `api-version` sent in the MQTT user name.
pub const API_VERSION: &str = "2021-04-12";

/// How the device reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// MQTT 3.1.1 over TLS, port 8883 by default.
    #[default]
    Mqtt,
    /// MQTT over WebSockets: `wss://{host}:{port}/$iothub/websocket` with the WebSocket
    /// sub-protocol `mqtt`. The port defaults to the one in the host name (the local hub's
    /// HTTPS port), else 443.
    MqttWebSockets,
}

/// How the device authenticates.
#[derive(Clone)]
pub enum Auth {
    /// SAS tokens signed with the identity's key (base64, as in its connection string); the
    /// token is the MQTT password.
    SharedAccessKey(String),
    /// A TLS client certificate; the MQTT password is empty. IoT Hub checks the certificate's
    /// thumbprint (self-signed identities) or its chain and common name (CA identities).
    X509 {
        /// The certificate chain in PEM, the device's certificate first.
        cert_pem: String,
        /// The certificate's private key in PEM (PKCS#8, PKCS#1 or SEC1), unencrypted.
        key_pem: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::SharedAccessKey(_) => f.write_str("SharedAccessKey(<redacted>)"),
            Auth::X509 { .. } => f.write_str("X509 { key_pem: <redacted>, .. }"),
        }
    }
}

/// Everything a simulated device needs to connect. `Debug` never shows the key.
///
/// Build one with [`DeviceConfig::new`] or [`DeviceConfig::from_connection_string`], then
/// adjust it with the `with_*` setters or by assigning fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeviceConfig {
    /// The IoT Hub host name as it appears in SAS tokens and the MQTT user name:
    /// `myhub.azure-devices.net`, or `localhost:8443` for the local hub.
    pub host_name: String,
    /// Where the socket goes instead of `host_name`, possibly with a `:port`
    /// (`GatewayHostName` of a connection string). The token and user name keep `host_name`.
    pub gateway_host_name: Option<String>,
    /// The socket's port, overriding every default (see [`DeviceConfig::socket_port`]).
    pub port: Option<u16>,
    /// MQTT over TLS (the default) or over WebSockets.
    pub transport: Transport,
    /// The CA certificates to trust, in PEM (the local hub's `ca.pem`). `None` trusts the
    /// operating system's roots, as for a hub in Azure.
    pub ca_pem: Option<String>,
    /// Device id.
    pub device_id: String,
    /// Module id, for a module identity (client id `deviceId/moduleId`).
    pub module_id: Option<String>,
    /// SAS key or X.509 certificate.
    pub auth: Auth,
    /// Lifetime of each SAS token (default one hour, at least one second). The device
    /// reconnects with a new token shortly before the current one expires.
    pub token_lifetime: Duration,
    /// MQTT keep-alive (default 60 s; zero turns pings off; otherwise at least one second).
    /// IoT Hub closes a connection that is silent for 1.5 × this.
    pub keep_alive: Duration,
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("host_name", &self.host_name)
            .field("gateway_host_name", &self.gateway_host_name)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("auth", &self.auth)
            .field("token_lifetime", &self.token_lifetime)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// Splits `host:port` when it ends in a port number.
fn split_port(host: &str) -> (&str, Option<u16>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (host, None),
        },
        _ => (host, None),
    }
}

/// Whether `id` can be put into IoT Hub's topics and client id.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(['/', '+', '#']) && !id.contains(char::is_whitespace)
}

impl DeviceConfig {
    /// A device identity on hub `host_name` with SAS key `key` (base64, as in its connection
    /// string), over MQTT/TLS on port 8883, trusting the system's roots, with the default
    /// token lifetime and keep-alive. For X.509, follow with [`DeviceConfig::with_auth`].
    pub fn new(
        host_name: impl Into<String>,
        device_id: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        DeviceConfig {
            host_name: host_name.into(),
            gateway_host_name: None,
            port: None,
            transport: Transport::Mqtt,
            ca_pem: None,
            device_id: device_id.into(),
            module_id: None,
            auth: Auth::SharedAccessKey(key.into()),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }

    /// Reads a device or module connection string:
    /// `HostName=…;DeviceId=…;[ModuleId=…;]SharedAccessKey=…[;GatewayHostName=host[:port]]`.
    ///
    /// # Errors
    /// [`Error::ConnectionString`] when it is malformed; [`Error::Config`] when it is a
    /// service (policy) connection string or has no `SharedAccessKey`.
    pub fn from_connection_string(text: &str) -> Result<Self> {
        let cs = ConnectionString::parse(text).map_err(Error::ConnectionString)?;
        let (Some(device_id), None) = (cs.device_id(), cs.shared_access_key_name()) else {
            return Err(Error::Config(
                "not a device connection string (it needs DeviceId and no SharedAccessKeyName)"
                    .into(),
            ));
        };
        let key = cs
            .shared_access_key()
            .ok_or_else(|| Error::Config("the connection string has no SharedAccessKey".into()))?;
        let mut config = DeviceConfig::new(cs.host_name(), device_id, key.to_base64());
        config.module_id = cs.module_id().map(str::to_owned);
        config.gateway_host_name = cs.gateway_host_name().map(str::to_owned);
        Ok(config)
    }

    /// Uses `transport`.
    #[must_use]
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Trusts the CA certificates in `ca_pem` instead of the system's roots.
    #[must_use]
    pub fn with_ca_pem(mut self, ca_pem: impl Into<String>) -> Self {
        self.ca_pem = Some(ca_pem.into());
        self
    }

    /// Connects the socket to `gateway` (`host` or `host:port`) instead of the hub's host.
    #[must_use]
    pub fn with_gateway(mut self, gateway: impl Into<String>) -> Self {
        self.gateway_host_name = Some(gateway.into());
        self
    }

    /// Connects the socket to `port`.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The same device, as its module `module_id`.
    #[must_use]
    pub fn with_module(mut self, module_id: impl Into<String>) -> Self {
        self.module_id = Some(module_id.into());
        self
    }

    /// Authenticates with `auth`.
    #[must_use]
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Signs tokens valid for `lifetime` (default one hour).
    #[must_use]
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Uses MQTT keep-alive `keep_alive` (default 60 s).
    #[must_use]
    pub fn with_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// The MQTT client id: `deviceId`, or `deviceId/moduleId`.
    pub fn client_id(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }

    /// The MQTT user name:
    /// `{host}/{clientId}/?api-version=2021-04-12&DeviceClientType=iothub-device-sim%2F{version}`.
    pub fn user_name(&self) -> String {
        format!(
            "{}/{}/?api-version={API_VERSION}&DeviceClientType=iothub-device-sim%2F{}",
            self.host_name,
            self.client_id(),
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The resource the device's tokens are signed for: `{host}/devices/{id}[/modules/{mid}]`
    /// (URL-encoded in the token's `sr`).
    pub fn token_resource(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/devices/{}/modules/{m}", self.host_name, self.device_id),
            None => format!("{}/devices/{}", self.host_name, self.device_id),
        }
    }

    /// The token lifetime actually used: [`DeviceConfig::token_lifetime`], at least 1 s.
    pub(crate) fn effective_token_lifetime(&self) -> Duration {
        self.token_lifetime.max(Duration::from_secs(1))
    }

    /// A SAS token valid from `now` for the token lifetime (`None` with X.509):
    /// `SharedAccessSignature sr=…&sig=…&se=…`, without `skn`.
    ///
    /// # Errors
    /// [`Error::Key`] when the key is not base64 or is empty.
    pub(crate) fn sas_token(&self, now: SystemTime) -> Result<Option<SasToken>> {
        let Auth::SharedAccessKey(key) = &self.auth else {
            return Ok(None);
        };
        let key = SharedAccessKey::from_base64(key).map_err(Error::Key)?;
        let expiry = now
            .checked_add(self.effective_token_lifetime())
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok(Some(generate_sas_token(
            &self.token_resource(),
            &key,
            None,
            expiry,
        )))
    }

    /// The host the socket connects to: the gateway's or the hub's host, without a port.
    pub fn socket_host(&self) -> &str {
        split_port(self.gateway_host_name.as_deref().unwrap_or(&self.host_name)).0
    }

    /// The port the socket connects to: [`DeviceConfig::port`] if set, else the port in
    /// `gateway_host_name`, else 8883 for MQTT, and for WebSockets the port in `host_name`
    /// or 443.
    pub fn socket_port(&self) -> u16 {
        let gateway = self
            .gateway_host_name
            .as_deref()
            .and_then(|g| split_port(g).1);
        self.port.or(gateway).unwrap_or(match self.transport {
            Transport::Mqtt => MQTTS_PORT,
            Transport::MqttWebSockets => split_port(&self.host_name).1.unwrap_or(WEBSOCKET_PORT),
        })
    }

    /// Where the device connects: `host:port`, or `wss://host:port/$iothub/websocket`.
    pub fn endpoint(&self) -> String {
        let (host, port) = (self.socket_host(), self.socket_port());
        match self.transport {
            Transport::Mqtt => format!("{host}:{port}"),
            Transport::MqttWebSockets => {
                format!("wss://{host}:{port}{}", iothub_core::websocket::PATH)
            }
        }
    }

    /// Checks what would otherwise fail later, or break topics.
    pub(crate) fn validate(&self) -> Result<()> {
        if split_port(&self.host_name).0.is_empty() || self.socket_host().is_empty() {
            return Err(Error::Config("the host name is empty".into()));
        }
        if !valid_id(&self.device_id) {
            return Err(Error::Config(format!(
                "device id {:?} is empty or has '/', '+', '#' or spaces",
                self.device_id
            )));
        }
        if let Some(m) = self.module_id.as_deref().filter(|m| !valid_id(m)) {
            return Err(Error::Config(format!(
                "module id {m:?} is empty or has '/', '+', '#' or spaces"
            )));
        }
        self.sas_token(SystemTime::now()).map(drop)
    }

    /// The TLS settings: the trusted roots and, for X.509, the client certificate.
    pub(crate) fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| Error::Tls(e.into()))?;
                    roots.add(cert).map_err(|e| Error::Tls(e.into()))?;
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        if roots.is_empty() {
            return Err(Error::Config("no CA certificate to trust".into()));
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.into()))?
        .with_root_certificates(roots);
        let config = match &self.auth {
            Auth::SharedAccessKey(_) => builder.with_no_client_auth(),
            Auth::X509 { cert_pem, key_pem } => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Tls(e.into()))?;
                if chain.is_empty() {
                    return Err(Error::Config("the client certificate PEM is empty".into()));
                }
                // The key's parse error is not kept: it could quote the key.
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|_| Error::Config("the client key is not a PEM private key".into()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Tls(e.into()))?
            }
        };
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn sas(host: &str, id: &str) -> DeviceConfig {
        DeviceConfig::new(host, id, KEY)
    }

    #[test]
    fn device_and_module_connection_strings() -> Result<()> {
        let c = DeviceConfig::from_connection_string(&format!(
            "HostName=hub.azure-devices.net;DeviceId=d1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=localhost:18883"
        ))?;
        assert_eq!(c.client_id(), "d1/m1");
        assert_eq!(c.host_name, "hub.azure-devices.net");
        assert_eq!(
            c.token_resource(),
            "hub.azure-devices.net/devices/d1/modules/m1"
        );
        assert_eq!((c.socket_host(), c.socket_port()), ("localhost", 18883));
        assert_eq!(c.endpoint(), "localhost:18883");

        let c = DeviceConfig::from_connection_string(&format!(
            "HostName=localhost:8443;DeviceId=d2;SharedAccessKey={KEY}"
        ))?;
        assert_eq!(c.module_id, None);
        assert_eq!((c.socket_host(), c.socket_port()), ("localhost", 8883));
        let ws = c.clone().with_transport(Transport::MqttWebSockets);
        assert_eq!(ws.endpoint(), "wss://localhost:8443/$iothub/websocket");
        let azure = sas("hub.azure-devices.net", "d").with_transport(Transport::MqttWebSockets);
        assert_eq!(azure.socket_port(), 443);
        assert_eq!(c.with_port(9000).socket_port(), 9000);
        let gateway = sas("hub.azure-devices.net", "d").with_gateway("edge.local");
        assert_eq!(
            (gateway.socket_host(), gateway.socket_port()),
            ("edge.local", 8883)
        );
        Ok(())
    }

    #[test]
    fn connection_strings_that_are_not_a_device_with_a_key() {
        for text in [
            format!("HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
            "HostName=h;DeviceId=d".to_owned(),
            "HostName=h;DeviceId=d;SharedAccessKey=not base64!".to_owned(),
            "DeviceId=d;SharedAccessKey=AAAA".to_owned(),
        ] {
            assert!(
                DeviceConfig::from_connection_string(&text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn user_name_and_password_as_iot_hub_expects() -> Result<()> {
        let c = sas("localhost:8443", "d1");
        assert_eq!(
            c.user_name(),
            format!(
                "localhost:8443/d1/?api-version=2021-04-12&DeviceClientType=iothub-device-sim%2F{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = c.sas_token(now)?.expect("a SAS identity has a token");
        let text = token.expose();
        assert!(
            text.starts_with("SharedAccessSignature sr=localhost%3A8443%2Fdevices%2Fd1&sig="),
            "{text}"
        );
        assert!(text.ends_with("&se=1700003600"), "{text}");
        assert!(!text.contains("skn="));
        let parsed = iothub_auth::sas::ParsedSasToken::parse(text).expect("parses");
        assert!(parsed.verify(&SharedAccessKey::from_base64(KEY).expect("key")));

        let module = c
            .with_module("m")
            .with_token_lifetime(Duration::from_secs(60));
        assert!(
            module
                .user_name()
                .starts_with("localhost:8443/d1/m/?api-version=")
        );
        let text = module.sas_token(now)?.expect("token").expose().to_owned();
        assert!(text.contains("sr=localhost%3A8443%2Fdevices%2Fd1%2Fmodules%2Fm&"));
        assert!(text.ends_with("&se=1700000060"));

        let x509 = module.with_auth(Auth::X509 {
            cert_pem: String::new(),
            key_pem: String::new(),
        });
        assert!(x509.sas_token(now)?.is_none(), "the password is empty");
        Ok(())
    }

    #[test]
    fn ids_that_would_break_topics_are_refused() {
        assert!(sas("h", "ok-1").validate().is_ok());
        for bad in ["", "a/b", "a+", "#", "a b"] {
            assert!(
                matches!(sas("h", bad).validate(), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        assert!(sas("h", "d").with_module("m/x").validate().is_err());
        assert!(sas("", "d").validate().is_err());
        assert!(matches!(
            DeviceConfig::new("h", "d", "not base64!").validate(),
            Err(Error::Key(_))
        ));
    }

    #[test]
    fn keys_never_show_in_debug() {
        let key_pem = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----";
        for config in [
            sas("h", "d"),
            sas("h", "d").with_auth(Auth::X509 {
                cert_pem: "cert".into(),
                key_pem: key_pem.into(),
            }),
        ] {
            let shown = format!("{config:?}");
            assert!(!shown.contains(KEY) && !shown.contains("secret"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let bad = DeviceConfig::from_connection_string("HostName=h;DeviceId=d;SharedAccessKey=%%%")
            .expect_err("bad key");
        assert!(!format!("{bad:?} {bad}").contains("%%%"));
    }

    #[test]
    fn tls_settings_fail_early_and_without_secrets() {
        let c = sas("h", "d").with_ca_pem("not a certificate");
        assert!(matches!(c.tls_config(), Err(Error::Config(_))));
        let c = sas("h", "d")
            .with_ca_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n");
        assert!(matches!(c.tls_config(), Err(Error::Tls(_))));
    }
}
