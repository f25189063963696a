//! A raw MQTT 3.1.1 client over TLS for the device-side tests: every packet is built and
//! read by hand (with the rumqtt project's codec), so a test controls what the "device"
//! acknowledges and can send what no well-behaved client sends.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use iothub_auth::SharedAccessKey;
use iothub_auth::sas::generate_sas_token;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Login, Packet, PubAck, Publish, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS stream to the hub's MQTTS port, trusting only `ca_pem`.
pub async fn tls(port: u16, ca_pem: &str) -> TlsStream<TcpStream> {
    tls_with(port, ca_pem, None).await
}

/// A TLS client certificate: the chain's PEM and the key's PEM.
pub type ClientCert = (String, String);

/// A TLS stream presenting `client` (a certificate chain and key, PEM) when given.
pub async fn tls_with(
    port: u16,
    ca_pem: &str,
    client: Option<&ClientCert>,
) -> TlsStream<TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.unwrap_or_else(|e| panic!("CA: {e}")))
            .unwrap_or_else(|e| panic!("CA: {e}"));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("tls: {e}"))
    .with_root_certificates(roots);
    let config = match client {
        None => config.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| panic!("client chain: {e}"));
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
                .unwrap_or_else(|e| panic!("client key: {e}"));
            config
                .with_client_auth_cert(chain, key)
                .unwrap_or_else(|e| panic!("client auth: {e}"))
        }
    };
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let name =
        rustls::pki_types::ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake: {e}"))
}

/// A device-scoped SAS token for `device_id` (and `module_id`) signed with `key`, expiring at
/// `expiry` (unix seconds).
pub fn device_token(
    host: &str,
    device_id: &str,
    module_id: Option<&str>,
    key: &str,
    expiry: u64,
) -> String {
    let key = SharedAccessKey::from_base64(key).unwrap_or_else(|e| panic!("key: {e}"));
    let resource = match module_id {
        Some(m) => format!("{host}/devices/{device_id}/modules/{m}"),
        None => format!("{host}/devices/{device_id}"),
    };
    generate_sas_token(&resource, &key, None, expiry)
        .expose()
        .to_owned()
}

/// One raw MQTT connection.
pub struct Raw {
    pub stream: TlsStream<TcpStream>,
    buf: BytesMut,
}

impl Raw {
    pub async fn open(port: u16, ca_pem: &str) -> Raw {
        Raw {
            stream: tls(port, ca_pem).await,
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection presenting a client certificate.
    pub async fn open_with_cert(port: u16, ca_pem: &str, cert: &ClientCert) -> Raw {
        Raw {
            stream: tls_with(port, ca_pem, Some(cert)).await,
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection and sends CONNECT as `client_id` with `password`; returns the
    /// connection and the CONNACK return code (as a number).
    pub async fn connect(
        port: u16,
        ca_pem: &str,
        host: &str,
        client_id: &str,
        password: &str,
    ) -> (Raw, u8) {
        let raw = Raw::open(port, ca_pem).await;
        let (raw, code, _) = raw.login(host, client_id, password, true).await;
        (raw, code)
    }

    /// Sends CONNECT on an open connection; returns the CONNACK's return code and session
    /// present flag.
    pub async fn login(
        mut self,
        host: &str,
        client_id: &str,
        password: &str,
        clean: bool,
    ) -> (Raw, u8, bool) {
        let raw = &mut self;
        let mut connect = Connect::new(client_id);
        connect.clean_session = clean;
        connect.keep_alive = 30;
        connect.login = Some(Login::new(
            format!("{host}/{client_id}/?api-version=2021-04-12"),
            password,
        ));
        raw.send(Packet::Connect(connect)).await;
        let (code, present) = match raw.recv().await {
            Some(Packet::ConnAck(ack)) => (ack.code as u8, ack.session_present),
            other => panic!("expected CONNACK, got {other:?}"),
        };
        (self, code, present)
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet
            .write(&mut out, usize::MAX)
            .unwrap_or_else(|e| panic!("encode: {e}"));
        let _ = self.stream.write_all(&out).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet within 5 s, or `None` when the hub closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no packet within 5 s"))
    }

    /// `Some(next packet or None on close)`, or `None` when nothing arrived in `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Option<Packet>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(p) => return Some(Some(p)),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("hub sent a malformed packet: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Whether the hub closes the connection within 5 s (packets before the close are
    /// skipped).
    pub async fn closed(&mut self) -> bool {
        loop {
            match self.recv_within(Duration::from_secs(5)).await {
                None => return false,
                Some(None) => return true,
                Some(Some(_)) => {}
            }
        }
    }

    pub async fn subscribe(&mut self, pkid: u16, filter: &str, qos: QoS) -> Vec<u8> {
        let mut s = Subscribe::new(filter, qos);
        s.pkid = pkid;
        self.send(Packet::Subscribe(s)).await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => ack
                .return_codes
                .iter()
                .map(|c| match c {
                    rumqttc::mqttbytes::v4::SubscribeReasonCode::Success(q) => *q as u8,
                    rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure => 0x80,
                })
                .collect(),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn publish(&mut self, topic: &str, qos: QoS, pkid: u16, payload: &[u8]) {
        let mut p = Publish::new(topic, qos, payload.to_vec());
        p.pkid = pkid;
        self.send(Packet::Publish(p)).await;
    }

    pub async fn puback(&mut self, pkid: u16) {
        self.send(Packet::PubAck(PubAck::new(pkid))).await;
    }

    /// The next PUBLISH from the hub (other packets are skipped).
    pub async fn next_publish(&mut self) -> Publish {
        loop {
            match self.recv().await {
                Some(Packet::Publish(p)) => return p,
                Some(_) => {}
                None => panic!("connection closed while waiting for a PUBLISH"),
            }
        }
    }
}
