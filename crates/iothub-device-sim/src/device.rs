//! One simulated device: [`SimulatedDevice`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_auth::SharedAccessKey;
use iothub_auth::sas::generate_sas_token;
use iothub_core::mqtt::{self as topics, Topic};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, MqttOptions,
    Outgoing, Publish, QoS, TlsConfiguration,
};
use serde_json::{Map, Value};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot, watch};

use crate::config::{Auth, DeviceConfig, Transport};
use crate::{Error, MethodResponder};

/// How long a twin request or a telemetry acknowledgement is waited for.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How a simulated device behaves.
#[derive(Clone)]
pub struct DeviceOptions {
    /// How direct methods are answered (default: echo the payload with status 200).
    pub methods: MethodResponder,
    /// Report every desired property change back as reported properties (default `false`).
    pub follow_desired: bool,
    /// Acknowledge cloud-to-device messages (PUBACK) when they arrive (default `true`); with
    /// `false` the device keeps them unacknowledged, as a device that crashes before
    /// processing them.
    pub ack_c2d: bool,
    /// Subscribe to cloud-to-device messages (default `true`; ignored for modules, which IoT
    /// Hub does not send them to).
    pub receive_c2d: bool,
    /// How long twin requests and telemetry acknowledgements are waited for (default 30 s).
    pub operation_timeout: Duration,
    /// How long [`SimulatedDevice::connect`] waits for the first connection (default 30 s).
    pub connect_timeout: Duration,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            methods: MethodResponder::Echo,
            follow_desired: false,
            ack_c2d: true,
            receive_c2d: true,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for DeviceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceOptions")
            .field("methods", &self.methods)
            .field("follow_desired", &self.follow_desired)
            .field("ack_c2d", &self.ack_c2d)
            .field("receive_c2d", &self.receive_c2d)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

/// A cloud-to-device message as the device received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dMessage {
    /// The body.
    pub body: Vec<u8>,
    /// `$.mid`.
    pub message_id: Option<String>,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// Every property from the topic's property bag, decoded (system `$.…` keys and
    /// application properties, `iothub-ack` among them), in topic order.
    pub properties: Vec<(String, String)>,
    /// The topic it arrived on.
    pub topic: String,
    /// The MQTT packet id (for [`SimulatedDevice::complete`]).
    pub packet_id: u16,
}

impl C2dMessage {
    /// The value of property `name`, if present.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A device-to-cloud message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// The body.
    pub body: Vec<u8>,
    /// Message id (`$.mid`).
    pub message_id: Option<String>,
    /// Correlation id (`$.cid`).
    pub correlation_id: Option<String>,
    /// Content type (`$.ct`), e.g. `application/json`.
    pub content_type: Option<String>,
    /// Content encoding (`$.ce`), e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Application properties.
    pub properties: Vec<(String, String)>,
}

impl Telemetry {
    /// A message with `body` and nothing else.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Telemetry {
            body: body.into(),
            ..Telemetry::default()
        }
    }

    /// A JSON body with content type `application/json` and encoding `utf-8`.
    pub fn json(body: &Value) -> Self {
        Telemetry {
            body: body.to_string().into_bytes(),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            ..Telemetry::default()
        }
    }

    /// Adds an application property.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// Sets the message id.
    #[must_use]
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    fn property_bag(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (key, value) in [
            (topics::PROP_MESSAGE_ID, &self.message_id),
            (topics::PROP_CORRELATION_ID, &self.correlation_id),
            (topics::PROP_CONTENT_TYPE, &self.content_type),
            (topics::PROP_CONTENT_ENCODING, &self.content_encoding),
        ] {
            if let Some(v) = value {
                pairs.push((key, v));
            }
        }
        pairs.extend(
            self.properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        topics::encode_property_bag(&pairs)
    }
}

/// A publish waiting to go out: QoS 1 publishes wait for their PUBACK.
struct Outbound {
    acked: Option<oneshot::Sender<()>>,
}

/// State shared by the handle and its event-loop task.
struct Shared {
    client: AsyncClient,
    config: DeviceConfig,
    options: DeviceOptions,
    /// Publishes in the order they were handed to the client, until the event loop sends
    /// them (and learns their packet ids).
    outbound: Mutex<VecDeque<Outbound>>,
    /// QoS 1 publishes sent and not yet acknowledged, by packet id.
    unacked: Mutex<HashMap<u16, oneshot::Sender<()>>>,
    /// Serialises "queue the waiter, hand the publish to the client".
    publishing: AsyncMutex<()>,
    twin_requests: Mutex<HashMap<String, oneshot::Sender<TwinAnswer>>>,
    next_rid: AtomicU64,
    connected: watch::Sender<bool>,
    connections: AtomicU64,
    stopping: AtomicBool,
    reconnect: tokio::sync::Notify,
    c2d: mpsc::UnboundedSender<C2dMessage>,
    desired: mpsc::UnboundedSender<Value>,
}

struct TwinAnswer {
    status: u16,
    version: Option<u64>,
    body: Vec<u8>,
}

/// A simulated device (or module) connected to IoT Hub over MQTT. It answers direct
/// methods, records cloud-to-device messages and desired-property changes, reports
/// properties and sends telemetry, and reconnects by itself (with a fresh token) when the
/// connection drops or its token expires.
///
/// ```no_run
/// # async fn demo() -> Result<(), iothub_device_sim::Error> {
/// use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice, Telemetry};
/// let config = DeviceConfig::from_connection_string(
///     "HostName=localhost:8443;DeviceId=d1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
/// )?
/// .with_port(8883)
/// .with_ca_pem(std::fs::read_to_string("hub-data/ca.pem").unwrap_or_default());
/// let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
/// device.report(serde_json::json!({"firmware": "1.0"})).await?;
/// device.send_telemetry(Telemetry::json(&serde_json::json!({"temp": 21.5}))).await?;
/// if let Some(message) = device.next_c2d(std::time::Duration::from_secs(5)).await {
///     println!("C2D: {}", String::from_utf8_lossy(&message.body));
/// }
/// device.disconnect().await;
/// # Ok(()) }
/// ```
pub struct SimulatedDevice {
    shared: Arc<Shared>,
    c2d: AsyncMutex<mpsc::UnboundedReceiver<C2dMessage>>,
    desired: AsyncMutex<mpsc::UnboundedReceiver<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for SimulatedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedDevice")
            .field("client_id", &self.shared.config.client_id())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The MQTT password: a fresh SAS token, or empty for X.509.
fn password(config: &DeviceConfig) -> Result<String, Error> {
    match &config.auth {
        Auth::SharedAccessKey(key) => {
            let key = SharedAccessKey::from_base64(key)
                .map_err(|e| Error::Config(format!("the device key is not valid: {e}")))?;
            let expiry = unix_now() + config.token_lifetime.as_secs().max(1);
            Ok(
                generate_sas_token(&config.token_resource(), &key, None, expiry)
                    .expose()
                    .to_owned(),
            )
        }
        Auth::X509 { .. } => Ok(String::new()),
    }
}

fn tls_config(config: &DeviceConfig) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let ca = config.ca_pem.as_deref().ok_or_else(|| {
        Error::Config("a CA to trust is required (DeviceConfig::with_ca_pem)".into())
    })?;
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        let cert = cert.map_err(|e| Error::Config(format!("the CA is not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("the CA is not usable: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(e.to_string()))?
    .with_root_certificates(roots);
    let tls = match &config.auth {
        Auth::SharedAccessKey(_) => builder.with_no_client_auth(),
        Auth::X509 { cert_pem, key_pem } => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Config(format!("the client certificate is not PEM: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|_| Error::Config("the client key is not PEM".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("the client certificate is not usable: {e}")))?
        }
    };
    Ok(Arc::new(tls))
}

fn mqtt_options(config: &DeviceConfig) -> Result<MqttOptions, Error> {
    let host = config.socket_host();
    let port = config.socket_port();
    let tls = TlsConfiguration::Rustls(tls_config(config)?);
    let mut options = match config.transport {
        Transport::Mqtt => {
            let mut o = MqttOptions::new(config.client_id(), host, port);
            o.set_transport(rumqttc::Transport::Tls(tls));
            o
        }
        Transport::MqttWebSockets => {
            let url = format!("wss://{host}:{port}{}", iothub_core::websocket::PATH);
            let mut o = MqttOptions::new(config.client_id(), url, port);
            o.set_transport(rumqttc::Transport::Wss(tls));
            o
        }
    };
    options
        .set_keep_alive(config.keep_alive.max(Duration::from_secs(5)))
        // As the official SDKs: a persistent session, so the hub keeps the subscriptions.
        .set_clean_session(false)
        .set_credentials(config.user_name(), password(config)?)
        .set_max_packet_size(512 * 1024, 512 * 1024)
        .set_request_channel_capacity(1024)
        .set_inflight(64);
    Ok(options)
}

impl SimulatedDevice {
    /// Connects, subscribes to methods, twin responses, desired-property changes and (for
    /// devices) cloud-to-device messages, and returns once the hub accepted all of it.
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable configuration, [`Error::Refused`] with the CONNACK
    /// return code when the hub refuses the login, [`Error::Connect`] when the hub cannot be
    /// reached within [`DeviceOptions::connect_timeout`].
    pub async fn connect(
        config: DeviceConfig,
        options: DeviceOptions,
    ) -> Result<SimulatedDevice, Error> {
        let mut mqtt = mqtt_options(&config)?;
        mqtt.set_manual_acks(!options.ack_c2d);
        let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
        let (c2d_tx, c2d_rx) = mpsc::unbounded_channel();
        let (desired_tx, desired_rx) = mpsc::unbounded_channel();
        let (connected, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            client,
            config,
            options,
            outbound: Mutex::new(VecDeque::new()),
            unacked: Mutex::new(HashMap::new()),
            publishing: AsyncMutex::new(()),
            twin_requests: Mutex::new(HashMap::new()),
            next_rid: AtomicU64::new(1),
            connected,
            connections: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            reconnect: tokio::sync::Notify::new(),
            c2d: c2d_tx,
            desired: desired_tx,
        });
        // The first connection is made here, so a refusal is an error of `connect`.
        let deadline = tokio::time::Instant::now() + shared.options.connect_timeout;
        loop {
            let polled = tokio::time::timeout_at(deadline, eventloop.poll()).await;
            match polled {
                Err(_) => {
                    return Err(Error::Connect(format!(
                        "no connection to {}:{} within {:?}",
                        shared.config.socket_host(),
                        shared.config.socket_port(),
                        shared.options.connect_timeout
                    )));
                }
                Ok(Err(ConnectionError::ConnectionRefused(code))) => {
                    return Err(Error::Refused(refusal_code(code)));
                }
                Ok(Err(e)) => return Err(Error::Connect(e.to_string())),
                Ok(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                    if ack.code != ConnectReturnCode::Success {
                        return Err(Error::Refused(refusal_code(ack.code)));
                    }
                    break;
                }
                Ok(Ok(_)) => {}
            }
        }
        shared.connections.fetch_add(1, Ordering::Relaxed);
        shared.connected.send_replace(true);
        let mut filters = vec![
            (topics::METHODS_SUBSCRIPTION.to_owned(), QoS::AtMostOnce),
            (
                topics::TWIN_RESPONSES_SUBSCRIPTION.to_owned(),
                QoS::AtMostOnce,
            ),
            (topics::DESIRED_SUBSCRIPTION.to_owned(), QoS::AtMostOnce),
        ];
        if shared.config.module_id.is_none() && shared.options.receive_c2d {
            filters.push((
                topics::c2d_subscription(&shared.config.device_id),
                QoS::AtLeastOnce,
            ));
        }
        let count = filters.len();
        shared
            .client
            .subscribe_many(
                filters
                    .into_iter()
                    .map(|(path, qos)| rumqttc::SubscribeFilter::new(path, qos)),
            )
            .await
            .map_err(|e| Error::Connect(e.to_string()))?;
        loop {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => return Err(Error::Connect("no SUBACK from the hub".into())),
                Ok(Err(e)) => return Err(Error::Connect(e.to_string())),
                Ok(Ok(Event::Incoming(Incoming::SubAck(ack)))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        .count();
                    if refused > 0 || ack.return_codes.len() != count {
                        return Err(Error::Connect(format!(
                            "the hub refused {refused} of {count} subscriptions"
                        )));
                    }
                    break;
                }
                Ok(Ok(event)) => handle_event(&shared, event),
            }
        }
        let task = tokio::spawn(run(Arc::clone(&shared), eventloop));
        Ok(SimulatedDevice {
            shared,
            c2d: AsyncMutex::new(c2d_rx),
            desired: AsyncMutex::new(desired_rx),
            task,
        })
    }

    /// The configuration it connected with.
    pub fn config(&self) -> &DeviceConfig {
        &self.shared.config
    }

    /// Whether the device has a connection now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// How many connections it has made (1 after `connect`, one more per reconnect).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Waits until the device is connected, up to `wait`. Returns whether it is.
    pub async fn wait_connected(&self, wait: Duration) -> bool {
        let mut rx = self.shared.connected.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|c| *c))
            .await
            .is_ok()
    }

    /// Drops the connection now and reconnects with a fresh token (as after a network
    /// failure); the hub keeps the session's subscriptions.
    pub fn reconnect(&self) {
        self.shared.reconnect.notify_one();
    }

    /// The next cloud-to-device message, waiting up to `wait`.
    pub async fn next_c2d(&self, wait: Duration) -> Option<C2dMessage> {
        let mut rx = self.c2d.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// The next desired-property change (a merge patch with `$version`), waiting up to `wait`.
    pub async fn next_desired(&self, wait: Duration) -> Option<Value> {
        let mut rx = self.desired.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// Reads the twin: `{"desired": {…, "$version"}, "reported": {…, "$version"}}`.
    ///
    /// # Errors
    /// [`Error::Status`] when the hub answers with an error status, [`Error::Timeout`],
    /// [`Error::Disconnected`].
    pub async fn get_twin(&self) -> Result<Value, Error> {
        let answer = self
            .twin_request(topics::twin_get_topic, b" ".to_vec())
            .await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Protocol(format!("the twin is not JSON: {e}")))
    }

    /// Reports properties (a JSON merge patch; `null` removes) and returns the new reported
    /// version.
    ///
    /// # Errors
    /// [`Error::Status`] (400 for a patch that breaks the twin rules), [`Error::Timeout`],
    /// [`Error::Disconnected`].
    pub async fn report(&self, patch: Value) -> Result<u64, Error> {
        report(&self.shared, patch).await
    }

    async fn twin_request(
        &self,
        topic: fn(&str) -> String,
        body: Vec<u8>,
    ) -> Result<TwinAnswer, Error> {
        twin_request(&self.shared, topic, body).await
    }

    /// Sends telemetry at QoS 1 and returns once the hub acknowledged it (PUBACK: the
    /// message is stored).
    ///
    /// # Errors
    /// [`Error::Timeout`] when no PUBACK arrives within the operation timeout,
    /// [`Error::Disconnected`] when the device is shut down.
    pub async fn send_telemetry(&self, message: Telemetry) -> Result<(), Error> {
        let topic = topics::telemetry_topic(
            &self.shared.config.device_id,
            self.shared.config.module_id.as_deref(),
            &message.property_bag(),
        );
        let acked = publish(&self.shared, topic, QoS::AtLeastOnce, message.body).await?;
        match acked {
            Some(rx) => match tokio::time::timeout(self.shared.options.operation_timeout, rx).await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Error::Disconnected),
                Err(_) => Err(Error::Timeout("PUBACK of a telemetry message")),
            },
            None => Ok(()),
        }
    }

    /// Acknowledges a cloud-to-device message received with `ack_c2d: false`, completing it.
    ///
    /// # Errors
    /// [`Error::Disconnected`].
    pub async fn complete(&self, message: &C2dMessage) -> Result<(), Error> {
        let mut publish = Publish::new(
            message.topic.clone(),
            QoS::AtLeastOnce,
            message.body.clone(),
        );
        publish.pkid = message.packet_id;
        self.shared
            .client
            .ack(&publish)
            .await
            .map_err(|_| Error::Disconnected)
    }

    /// Disconnects (MQTT DISCONNECT) and stops the device.
    pub async fn disconnect(self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let _ = self.shared.client.disconnect().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.task.is_finished() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for SimulatedDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn refusal_code(code: ConnectReturnCode) -> u8 {
    code as u8
}

/// Hands a publish to the client; for QoS 1 returns the receiver of its PUBACK.
async fn publish(
    shared: &Shared,
    topic: String,
    qos: QoS,
    payload: Vec<u8>,
) -> Result<Option<oneshot::Receiver<()>>, Error> {
    let _order = shared.publishing.lock().await;
    let (tx, rx) = oneshot::channel();
    let qos1 = qos == QoS::AtLeastOnce;
    shared
        .outbound
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(Outbound {
            acked: qos1.then_some(tx),
        });
    if shared
        .client
        .publish(topic, qos, false, payload)
        .await
        .is_err()
    {
        shared
            .outbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_back();
        return Err(Error::Disconnected);
    }
    Ok(qos1.then_some(rx))
}

async fn twin_request(
    shared: &Shared,
    topic: fn(&str) -> String,
    body: Vec<u8>,
) -> Result<TwinAnswer, Error> {
    let rid = shared.next_rid.fetch_add(1, Ordering::Relaxed).to_string();
    let (tx, rx) = oneshot::channel();
    shared
        .twin_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(rid.clone(), tx);
    publish(shared, topic(&rid), QoS::AtMostOnce, body).await?;
    let answer = tokio::time::timeout(shared.options.operation_timeout, rx).await;
    shared
        .twin_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&rid);
    let answer = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => return Err(Error::Disconnected),
        Err(_) => return Err(Error::Timeout("twin response")),
    };
    if !(200..300).contains(&answer.status) {
        let message = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        return Err(Error::Status {
            status: answer.status,
            message,
        });
    }
    Ok(answer)
}

async fn report(shared: &Shared, patch: Value) -> Result<u64, Error> {
    let body = serde_json::to_vec(&patch).unwrap_or_default();
    let answer = twin_request(shared, topics::twin_reported_topic, body).await?;
    answer
        .version
        .ok_or_else(|| Error::Protocol("the reported-properties answer has no $version".into()))
}

/// The event loop: reconnects with a fresh token after every failure, until stopped.
async fn run(shared: Arc<Shared>, mut eventloop: EventLoop) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            () = shared.reconnect.notified() => {
                eventloop.network = None;
                shared.connected.send_replace(false);
                refresh_token(&shared, &mut eventloop);
                continue;
            }
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = Duration::from_millis(50);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                shared.connected.send_replace(true);
            }
            Ok(event) => handle_event(&shared, event),
            Err(e) => {
                shared.connected.send_replace(false);
                if shared.stopping.load(Ordering::Relaxed)
                    || matches!(e, ConnectionError::RequestsDone)
                {
                    return;
                }
                tracing::debug!(client = %shared.config.client_id(), error = %e, "connection lost; reconnecting");
                // Publishes that were handed to the client but not sent are resent by the
                // client itself; their waiters stay queued.
                refresh_token(&shared, &mut eventloop);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn refresh_token(shared: &Shared, eventloop: &mut EventLoop) {
    match password(&shared.config) {
        Ok(p) => {
            eventloop
                .mqtt_options
                .set_credentials(shared.config.user_name(), p);
        }
        Err(e) => tracing::warn!(error = %e, "cannot sign a new token"),
    }
}

fn handle_event(shared: &Arc<Shared>, event: Event) {
    match event {
        Event::Outgoing(Outgoing::Publish(pkid)) => {
            // A QoS 1 publish resent after a reconnect keeps its packet id and its waiter.
            if pkid != 0
                && shared
                    .unacked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(&pkid)
            {
                return;
            }
            let next = shared
                .outbound
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            if let Some(Outbound { acked: Some(tx) }) = next {
                shared
                    .unacked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(pkid, tx);
            }
        }
        Event::Incoming(Incoming::PubAck(ack)) => {
            if let Some(tx) = shared
                .unacked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ack.pkid)
            {
                let _ = tx.send(());
            }
        }
        Event::Incoming(Incoming::Publish(publish)) => on_publish(shared, publish),
        _ => {}
    }
}

fn on_publish(shared: &Arc<Shared>, publish: Publish) {
    match Topic::parse(&publish.topic) {
        Some(Topic::CloudToDevice { properties, .. }) => {
            let properties = topics::decode_property_bag(&properties);
            let find = |k: &str| {
                properties
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            let message = C2dMessage {
                body: publish.payload.to_vec(),
                message_id: find(topics::PROP_MESSAGE_ID),
                correlation_id: find(topics::PROP_CORRELATION_ID),
                topic: publish.topic.clone(),
                packet_id: publish.pkid,
                properties,
            };
            let _ = shared.c2d.send(message);
        }
        Some(Topic::MethodRequest { method, request_id }) => {
            let payload: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
            let (status, answer) = shared.options.methods.answer(&method, &payload);
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                let topic = topics::method_response_topic(i64::from(status), &request_id);
                if publish_detached(&shared, topic, body).await.is_err() {
                    tracing::debug!("could not answer a direct method");
                }
            });
        }
        Some(Topic::TwinResponse {
            status,
            request_id,
            version,
        }) => {
            let waiter = shared
                .twin_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&request_id);
            if let Some(tx) = waiter {
                let _ = tx.send(TwinAnswer {
                    status,
                    version,
                    body: publish.payload.to_vec(),
                });
            }
        }
        Some(Topic::DesiredPatch { .. }) => {
            let patch: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
            if shared.options.follow_desired {
                let mut echo: Map<String, Value> = patch.as_object().cloned().unwrap_or_default();
                echo.remove("$version");
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    if let Err(e) = report(&shared, Value::Object(echo)).await {
                        tracing::debug!(error = %e, "reporting desired properties back failed");
                    }
                });
            }
            let _ = shared.desired.send(patch);
        }
        _ => tracing::debug!(topic = %publish.topic, "unexpected publish from the hub"),
    }
}

async fn publish_detached(shared: &Shared, topic: String, body: Vec<u8>) -> Result<(), Error> {
    publish(shared, topic, QoS::AtMostOnce, body)
        .await
        .map(|_| ())
}
