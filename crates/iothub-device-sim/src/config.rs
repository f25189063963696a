//! Where and how a simulated device connects: [`DeviceConfig`], [`Transport`], [`Auth`].

use std::fmt;
use std::time::Duration;

use iothub_auth::ConnectionString;

use crate::Error;

/// IoT Hub's MQTT-over-TLS port.
pub const MQTTS_PORT: u16 = 8883;
/// IoT Hub's HTTPS port, which carries MQTT over WebSockets.
pub const WEBSOCKET_PORT: u16 = 443;
/// Default lifetime of the SAS tokens the device signs (one hour, as the official SDKs).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default MQTT keep-alive (60 s, as the Python device SDK).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// How the device reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// MQTT 3.1.1 over TLS (port 8883 unless [`DeviceConfig::port`] says otherwise).
    #[default]
    Mqtt,
    /// MQTT over WebSockets: `wss://{host}:{port}/$iothub/websocket`, sub-protocol `mqtt`
    /// (port 443 unless [`DeviceConfig::port`] says otherwise).
    MqttWebSockets,
}

/// How the device authenticates.
#[derive(Clone)]
pub enum Auth {
    /// SAS tokens signed with the identity's key (base64, as in its connection string).
    SharedAccessKey(String),
    /// A TLS client certificate (PEM chain and PEM private key); the MQTT password is empty.
    X509 {
        /// The certificate chain, end entity first (PEM).
        cert_pem: String,
        /// The private key (PEM).
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

/// Everything a simulated device needs to connect.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The IoT Hub host name as it appears in tokens and the MQTT user name
    /// (`myhub.azure-devices.net`, or `localhost:8443` for the local hub).
    pub host_name: String,
    /// Where the socket goes, when not to `host_name` (`GatewayHostName`, without a port).
    pub gateway: Option<String>,
    /// The socket's port (default: 8883 for MQTT, 443 for WebSockets; a port in
    /// `GatewayHostName` sets it).
    pub port: Option<u16>,
    /// MQTT over TLS or over WebSockets.
    pub transport: Transport,
    /// A CA to trust (PEM) instead of the system's roots: the local hub's `ca.pem`.
    pub ca_pem: Option<String>,
    /// Device id.
    pub device_id: String,
    /// Module id, for a module identity.
    pub module_id: Option<String>,
    /// SAS key or X.509 certificate.
    pub auth: Auth,
    /// Lifetime of each SAS token (default one hour). The hub closes the connection when
    /// the token expires; the device then reconnects with a new one.
    pub token_lifetime: Duration,
    /// MQTT keep-alive (default 60 s).
    pub keep_alive: Duration,
}

impl DeviceConfig {
    /// A device identity with a SAS key.
    pub fn new(
        host_name: impl Into<String>,
        device_id: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        DeviceConfig {
            host_name: host_name.into(),
            gateway: None,
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
    /// [`Error::Config`] when the string is malformed, is a service connection string, or
    /// has no `DeviceId` or `SharedAccessKey`.
    pub fn from_connection_string(text: &str) -> Result<Self, Error> {
        let cs = ConnectionString::parse(text).map_err(|e| Error::Config(e.to_string()))?;
        let device_id = cs
            .device_id()
            .ok_or_else(|| Error::Config("the connection string has no DeviceId".into()))?;
        let key = cs
            .shared_access_key()
            .ok_or_else(|| Error::Config("the connection string has no SharedAccessKey".into()))?;
        let mut config = DeviceConfig::new(cs.host_name(), device_id, key.to_base64());
        config.module_id = cs.module_id().map(str::to_owned);
        if let Some(gateway) = cs.gateway_host_name() {
            match gateway.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => {
                    config.gateway = Some(host.to_owned());
                    config.port = port.parse().ok();
                }
                _ => config.gateway = Some(gateway.to_owned()),
            }
        }
        Ok(config)
    }

    /// The same identity over `transport`.
    #[must_use]
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Trusts `ca_pem` (the local hub's CA).
    #[must_use]
    pub fn with_ca_pem(mut self, ca_pem: impl Into<String>) -> Self {
        self.ca_pem = Some(ca_pem.into());
        self
    }

    /// Connects the socket to `port`.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The same device as module `module_id`.
    #[must_use]
    pub fn with_module(mut self, module_id: impl Into<String>) -> Self {
        self.module_id = Some(module_id.into());
        self
    }

    /// The MQTT client id: `deviceId` or `deviceId/moduleId`.
    pub fn client_id(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }

    /// The MQTT user name IoT Hub expects: `{host}/{clientId}/?api-version=…&DeviceClientType=…`.
    pub fn user_name(&self) -> String {
        format!(
            "{}/{}/?api-version=2021-04-12&DeviceClientType=iothub-device-sim%2F{}",
            self.host_name,
            self.client_id(),
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The resource a device token is signed for: `{host}/devices/{id}[/modules/{mid}]`.
    pub fn token_resource(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/devices/{}/modules/{m}", self.host_name, self.device_id),
            None => format!("{}/devices/{}", self.host_name, self.device_id),
        }
    }

    /// The host the socket connects to.
    pub fn socket_host(&self) -> String {
        let host = self.gateway.as_deref().unwrap_or(&self.host_name);
        // A host name with a port (`localhost:8443`) keeps only the host for the socket.
        match host.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !h.contains(':') => h.to_owned(),
            _ => host.to_owned(),
        }
    }

    /// The socket's port.
    pub fn socket_port(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            Transport::Mqtt => MQTTS_PORT,
            Transport::MqttWebSockets => WEBSOCKET_PORT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn connection_strings_with_modules_and_gateways() -> Result<(), Error> {
        let c = DeviceConfig::from_connection_string(&format!(
            "HostName=hub.azure-devices.net;DeviceId=d1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=localhost:18883"
        ))?;
        assert_eq!(c.client_id(), "d1/m1");
        assert_eq!(
            c.token_resource(),
            "hub.azure-devices.net/devices/d1/modules/m1"
        );
        assert!(
            c.user_name()
                .starts_with("hub.azure-devices.net/d1/m1/?api-version=")
        );
        assert_eq!(
            (c.socket_host().as_str(), c.socket_port()),
            ("localhost", 18883)
        );
        let local = DeviceConfig::from_connection_string(&format!(
            "HostName=localhost:8443;DeviceId=d2;SharedAccessKey={KEY}"
        ))?
        .with_transport(Transport::MqttWebSockets);
        assert_eq!(
            (local.socket_host().as_str(), local.socket_port()),
            ("localhost", 443)
        );
        assert!(
            DeviceConfig::from_connection_string(
                "HostName=h;SharedAccessKeyName=a;SharedAccessKey=AAAA"
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn keys_never_show_in_debug() {
        let c = DeviceConfig::new("h", "d", KEY);
        let shown = format!("{c:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
