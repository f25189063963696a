//! One simulated device: [`SimulatedDevice`] and its [`DeviceOptions`].
//!
//! Each device has two tasks. The connection task drives rumqttc's event loop: it signs in
//! with a fresh token before every connection, subscribes after every CONNACK (the session is
//! clean), answers method requests, routes twin responses, and renews the token by
//! reconnecting before it expires. The outbox task hands publishes to rumqttc in order, so
//! that each QoS 1 publish can be matched with its packet id, and so with its PUBACK.
//!
//! With a clean session rumqttc forgets, at the next CONNACK, the publishes of the previous
//! connection that were not acknowledged. The connection task keeps them when a connection
//! ends and hands them back after the next CONNACK, QoS 1 publishes that were already sent
//! keeping their packet ids: telemetry is delivered at least once across reconnections.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::FutureExt as _;
use iothub_core::mqtt::{self as topics, Topic};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, NetworkOptions,
    Outgoing, Publish, QoS, Request, Subscribe, SubscribeFilter, SubscribeReasonCode,
    TlsConfiguration,
};
use serde_json::{Map, Value};
use tokio::sync::{Mutex as AsyncMutex, Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{DeviceConfig, Transport};
use crate::{C2dMessage, Error, MethodResponder, Result, Telemetry};

/// Default time allowed for a twin answer or a telemetry PUBACK: 30 s.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for [`SimulatedDevice::connect`]: 30 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// IoT Hub's limit for a device-to-cloud message (body and property bag): 256 KiB.
pub const MAX_TELEMETRY_BYTES: usize = 256 * 1024;

/// Largest MQTT packet accepted from or sent to the hub.
const MAX_PACKET_BYTES: usize = 1024 * 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a simulated device behaves.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// How direct methods are answered (default: [`MethodResponder::Echo`]).
    pub methods: MethodResponder,
    /// Report every desired-property change back as reported properties, without the
    /// `$version` (default `false`). The hub's answers to these reports are not checked.
    pub follow_desired: bool,
    /// Acknowledge cloud-to-device messages (PUBACK, which completes them) as they arrive
    /// (default `true`). With `false` they stay unacknowledged until
    /// [`SimulatedDevice::complete`], as on a device that fails before processing them.
    pub ack_c2d: bool,
    /// Time allowed for a twin answer or a telemetry PUBACK (default 30 s).
    pub operation_timeout: Duration,
    /// Time allowed for [`SimulatedDevice::connect`] to get its CONNACK and SUBACK
    /// (default 30 s).
    pub connect_timeout: Duration,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            methods: MethodResponder::Echo,
            follow_desired: false,
            ack_c2d: true,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl DeviceOptions {
    /// Answers direct methods with `methods`.
    #[must_use]
    pub fn with_methods(mut self, methods: MethodResponder) -> Self {
        self.methods = methods;
        self
    }

    /// Reports desired-property changes back (see [`DeviceOptions::follow_desired`]).
    #[must_use]
    pub fn with_follow_desired(mut self, follow: bool) -> Self {
        self.follow_desired = follow;
        self
    }

    /// Acknowledges cloud-to-device messages as they arrive, or not
    /// (see [`DeviceOptions::ack_c2d`]).
    #[must_use]
    pub fn with_ack_c2d(mut self, ack: bool) -> Self {
        self.ack_c2d = ack;
        self
    }

    /// Allows `timeout` for twin answers and telemetry PUBACKs.
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Allows `timeout` for [`SimulatedDevice::connect`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waiters of QoS 1 publishes.
#[derive(Default)]
struct Acks {
    /// Handed to rumqttc and not yet sent, in the order they were handed over.
    queued: VecDeque<oneshot::Sender<()>>,
    /// Sent and not yet acknowledged, by packet id.
    sent: HashMap<u16, oneshot::Sender<()>>,
}

/// A publish for the outbox; QoS 1 when it has a waiter.
struct Out {
    topic: String,
    payload: Vec<u8>,
    acked: Option<oneshot::Sender<()>>,
}

struct TwinAnswer {
    status: u16,
    version: Option<u64>,
    body: Vec<u8>,
}

/// State shared by the handle and the connection task.
struct Shared {
    client: AsyncClient,
    config: DeviceConfig,
    options: DeviceOptions,
    acks: Arc<Mutex<Acks>>,
    outbox: mpsc::UnboundedSender<Out>,
    twin: Mutex<HashMap<String, oneshot::Sender<TwinAnswer>>>,
    next_rid: AtomicU64,
    connected: watch::Sender<bool>,
    connections: AtomicU64,
    stopping: AtomicBool,
    stop: Notify,
    reconnect: Notify,
    c2d: mpsc::UnboundedSender<C2dMessage>,
    desired: mpsc::UnboundedSender<Value>,
}

/// A simulated device (or module) connected to IoT Hub over MQTT 3.1.1.
///
/// It answers direct methods with its [`MethodResponder`], records cloud-to-device messages
/// ([`next_c2d`](Self::next_c2d)) and desired-property changes
/// ([`next_desired`](Self::next_desired)), reads its twin, reports properties and sends
/// telemetry. When the connection drops it reconnects by itself, with backoff (100 ms
/// doubling to 5 s) and a fresh token, and subscribes again; it also reconnects shortly
/// before its token expires. Dropping it closes the connection without an MQTT DISCONNECT;
/// [`disconnect`](Self::disconnect) sends one.
///
/// ```no_run
/// # async fn demo() -> iothub_device_sim::Result<()> {
/// use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice, Telemetry};
/// let config = DeviceConfig::from_connection_string(
///     "HostName=localhost:8443;DeviceId=d1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
/// )?
/// .with_port(8883)
/// .with_ca_pem(std::fs::read_to_string("hub-data/ca.pem").unwrap_or_default());
/// let device = SimulatedDevice::connect(config, DeviceOptions::default()).await?;
/// let version = device.report(serde_json::json!({"firmware": "1.0"})).await?;
/// device.send_telemetry(Telemetry::json(&serde_json::json!({"temp": 21.5}))).await?;
/// if let Some(message) = device.next_c2d(std::time::Duration::from_secs(5)).await {
///     println!("C2D {:?}: {}", message.message_id, String::from_utf8_lossy(&message.body));
/// }
/// device.disconnect().await;
/// # let _ = version; Ok(()) }
/// ```
pub struct SimulatedDevice {
    shared: Arc<Shared>,
    c2d: AsyncMutex<mpsc::UnboundedReceiver<C2dMessage>>,
    desired: AsyncMutex<mpsc::UnboundedReceiver<Value>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SimulatedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedDevice")
            .field("client_id", &self.shared.config.client_id())
            .field("endpoint", &self.shared.config.endpoint())
            .field("connected", &self.is_connected())
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl SimulatedDevice {
    /// Connects and subscribes to method requests, twin responses, desired-property changes
    /// and, for a device (not a module), cloud-to-device messages; returns once the hub has
    /// sent its CONNACK and the SUBACK.
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Tls`] for unusable settings; [`Error::Refused`] with the
    /// CONNACK return code when the hub refuses the login; [`Error::Connect`] when the hub
    /// cannot be reached; [`Error::Subscribe`] when it refuses a subscription;
    /// [`Error::Timeout`] after [`DeviceOptions::connect_timeout`].
    pub async fn connect(config: DeviceConfig, options: DeviceOptions) -> Result<SimulatedDevice> {
        config.validate()?;
        let mqtt = mqtt_options(&config, &options)?;
        let (client, mut eventloop) = AsyncClient::new(mqtt, 0);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(options.connect_timeout.as_secs().max(1));
        eventloop.set_network_options(network);

        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        let (c2d_tx, c2d_rx) = mpsc::unbounded_channel();
        let (desired_tx, desired_rx) = mpsc::unbounded_channel();
        let acks = Arc::new(Mutex::new(Acks::default()));
        let connect_timeout = options.connect_timeout;
        let shared = Arc::new(Shared {
            client: client.clone(),
            config,
            options,
            acks: Arc::clone(&acks),
            outbox: outbox_tx,
            twin: Mutex::new(HashMap::new()),
            next_rid: AtomicU64::new(1),
            connected: watch::channel(false).0,
            connections: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            reconnect: Notify::new(),
            c2d: c2d_tx,
            desired: desired_tx,
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(run(Arc::clone(&shared), eventloop, ready_tx));
        tokio::spawn(outbox(client, acks, outbox_rx));
        let device = SimulatedDevice {
            shared,
            c2d: AsyncMutex::new(c2d_rx),
            desired: AsyncMutex::new(desired_rx),
            task: Mutex::new(Some(task)),
        };
        match tokio::time::timeout(connect_timeout, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(device),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => Err(Error::Timeout {
                waiting_for: "CONNACK and SUBACK",
                after: connect_timeout,
            }),
        }
    }

    /// The configuration it connects with.
    pub fn config(&self) -> &DeviceConfig {
        &self.shared.config
    }

    /// Whether it is connected and subscribed now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// How many connections it has made: 1 after [`connect`](Self::connect), one more for
    /// each reconnection.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Waits up to `wait` until it is connected and subscribed; returns whether it is.
    pub async fn wait_connected(&self, wait: Duration) -> bool {
        let mut rx = self.shared.connected.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Drops the connection now, as a network failure would, and reconnects at once with a
    /// fresh token. Returns without waiting; see [`wait_connected`](Self::wait_connected).
    pub fn reconnect(&self) {
        self.shared.reconnect.notify_one();
    }

    /// The next cloud-to-device message, waiting up to `wait`; `None` if none came.
    pub async fn next_c2d(&self, wait: Duration) -> Option<C2dMessage> {
        let mut rx = self.c2d.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// The next desired-property change, waiting up to `wait`: the hub's merge patch with
    /// its `$version`, e.g. `{"interval": 5, "$version": 3}`.
    pub async fn next_desired(&self, wait: Duration) -> Option<Value> {
        let mut rx = self.desired.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// Reads the twin: `{"desired": {…, "$version": n}, "reported": {…, "$version": m}}`.
    ///
    /// # Errors
    /// [`Error::Status`] when the hub answers with another status than 2xx;
    /// [`Error::Timeout`] (also when the connection dropped after the request went out);
    /// [`Error::Protocol`] when the answer is not JSON; [`Error::Disconnected`].
    pub async fn get_twin(&self) -> Result<Value> {
        let answer = self
            .twin_request(topics::twin_get_topic, Vec::new())
            .await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Protocol(format!("the twin is not JSON: {e}")))
    }

    /// Reports properties (a JSON merge patch: `null` removes a property) and returns the
    /// new version of the reported properties.
    ///
    /// # Errors
    /// [`Error::Status`] (400 for a patch that breaks the twin rules, 429 when throttled);
    /// [`Error::Timeout`] (the patch may still be applied); [`Error::Protocol`] when the
    /// answer has no `$version`; [`Error::Disconnected`].
    pub async fn report(&self, patch: Value) -> Result<u64> {
        let answer = self
            .twin_request(topics::twin_reported_topic, patch.to_string().into_bytes())
            .await?;
        answer
            .version
            .ok_or_else(|| Error::Protocol("the reported-properties answer has no $version".into()))
    }

    /// Sends telemetry at QoS 1 and returns once the hub acknowledged it (PUBACK: the hub
    /// has stored it). If the connection drops first, the message is sent again on the next
    /// connection.
    ///
    /// # Errors
    /// [`Error::TooLarge`] over IoT Hub's 256 KiB (nothing is sent); [`Error::Timeout`]
    /// when no PUBACK came within [`DeviceOptions::operation_timeout`] (it may still be
    /// stored); [`Error::Disconnected`].
    pub async fn send_telemetry(&self, message: Telemetry) -> Result<()> {
        let config = &self.shared.config;
        let bag = message.property_bag();
        let topic = topics::telemetry_topic(&config.device_id, config.module_id.as_deref(), &bag);
        let size = message.body.len() + bag.len();
        if size > MAX_TELEMETRY_BYTES {
            return Err(Error::TooLarge {
                size,
                max: MAX_TELEMETRY_BYTES,
            });
        }
        let acked = self.shared.publish_acked(topic, message.body)?;
        let after = self.shared.options.operation_timeout;
        match tokio::time::timeout(after, acked).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => Err(Error::Timeout {
                waiting_for: "PUBACK",
                after,
            }),
        }
    }

    /// Acknowledges a cloud-to-device message received with
    /// [`DeviceOptions::ack_c2d`] `false`, which completes it. Does nothing when the device
    /// acknowledges messages by itself.
    ///
    /// # Errors
    /// [`Error::ConnectionLost`] when the message arrived on an earlier connection (the hub
    /// delivers it again); [`Error::Timeout`] when the connection did not take the PUBACK
    /// within [`DeviceOptions::operation_timeout`]; [`Error::Disconnected`].
    pub async fn complete(&self, message: &C2dMessage) -> Result<()> {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return Err(Error::Disconnected);
        }
        if self.shared.options.ack_c2d {
            return Ok(());
        }
        if message.connection != self.connections() || !self.is_connected() {
            return Err(Error::ConnectionLost);
        }
        let mut publish = Publish::new(message.topic.as_str(), QoS::AtLeastOnce, Vec::new());
        publish.pkid = message.packet_id;
        let after = self.shared.options.operation_timeout;
        match tokio::time::timeout(after, self.shared.client.ack(&publish)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => Err(Error::Timeout {
                waiting_for: "the connection to take the PUBACK",
                after,
            }),
        }
    }

    /// Sends an MQTT DISCONNECT (waiting at most 2 s for it to go out) and stops the device;
    /// later calls fail with [`Error::Disconnected`]. Calling it again does nothing.
    pub async fn disconnect(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.stop.notify_one();
        let task = lock(&self.task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    async fn twin_request(&self, topic: fn(&str) -> String, body: Vec<u8>) -> Result<TwinAnswer> {
        let shared = &self.shared;
        let rid = shared.request_id();
        let (tx, rx) = oneshot::channel();
        lock(&shared.twin).insert(rid.clone(), tx);
        let after = shared.options.operation_timeout;
        let answer = match shared.publish(topic(&rid), body) {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(after, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(Error::Disconnected),
                Err(_) => Err(Error::Timeout {
                    waiting_for: "twin response",
                    after,
                }),
            },
        };
        lock(&shared.twin).remove(&rid);
        let answer = answer?;
        if !(200..300).contains(&answer.status) {
            let message = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    ["message", "Message"]
                        .iter()
                        .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
                })
                .unwrap_or_default();
            return Err(Error::Status {
                status: answer.status,
                message,
            });
        }
        Ok(answer)
    }
}

impl Drop for SimulatedDevice {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

/// rumqttc's options: client id, transport, credentials (set before each connection),
/// clean session, keep-alive, packet sizes, acknowledgement mode.
fn mqtt_options(config: &DeviceConfig, options: &DeviceOptions) -> Result<MqttOptions> {
    let tls = TlsConfiguration::Rustls(config.tls_config()?);
    let port = config.socket_port();
    let mut mqtt = match config.transport {
        Transport::Mqtt => {
            let mut o = MqttOptions::new(config.client_id(), config.socket_host(), port);
            o.set_transport(rumqttc::Transport::Tls(tls));
            o
        }
        Transport::MqttWebSockets => {
            let mut o = MqttOptions::new(config.client_id(), config.endpoint(), port);
            o.set_transport(rumqttc::Transport::Wss(tls));
            o
        }
    };
    let keep_alive = match config.keep_alive {
        Duration::ZERO => Duration::ZERO,
        k => k.clamp(Duration::from_secs(1), Duration::from_secs(u16::MAX.into())),
    };
    mqtt.set_keep_alive(keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_manual_acks(!options.ack_c2d);
    Ok(mqtt)
}

impl Shared {
    fn request_id(&self) -> String {
        self.next_rid.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Queues a QoS 0 publish.
    fn publish(&self, topic: String, payload: Vec<u8>) -> Result<()> {
        self.enqueue(Out {
            topic,
            payload,
            acked: None,
        })
    }

    /// Queues a QoS 1 publish; the receiver completes at its PUBACK.
    fn publish_acked(&self, topic: String, payload: Vec<u8>) -> Result<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Out {
            topic,
            payload,
            acked: Some(tx),
        })?;
        Ok(rx)
    }

    fn enqueue(&self, out: Out) -> Result<()> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(Error::Disconnected);
        }
        self.outbox.send(out).map_err(|_| Error::Disconnected)
    }

    /// The topic filters, subscribed after every CONNACK.
    fn filters(&self) -> Vec<SubscribeFilter> {
        let mut filters = vec![
            SubscribeFilter::new(topics::METHODS_SUBSCRIPTION.into(), QoS::AtMostOnce),
            SubscribeFilter::new(topics::TWIN_RESPONSES_SUBSCRIPTION.into(), QoS::AtMostOnce),
            SubscribeFilter::new(topics::DESIRED_SUBSCRIPTION.into(), QoS::AtMostOnce),
        ];
        if self.config.module_id.is_none() {
            filters.push(SubscribeFilter::new(
                topics::c2d_subscription(&self.config.device_id),
                QoS::AtLeastOnce,
            ));
        }
        filters
    }

    /// Sets the credentials for the next connection; returns when to renew its token.
    fn sign_in(&self, eventloop: &mut EventLoop) -> Option<Instant> {
        let now = SystemTime::now();
        let user_name = self.config.user_name();
        // The key was checked by `connect`.
        let Ok(Some(token)) = self.config.sas_token(now) else {
            eventloop.mqtt_options.set_credentials(user_name, "");
            return None;
        };
        eventloop
            .mqtt_options
            .set_credentials(user_name, token.expose());
        let valid = token.expires_at().duration_since(now).unwrap_or_default();
        let margin = (valid / 5).min(Duration::from_secs(120));
        Some(Instant::now() + valid.saturating_sub(margin))
    }

    fn handle(&self, event: Event) {
        match event {
            // QoS 0 publishes have packet id 0 and no waiter.
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                let mut acks = lock(&self.acks);
                // A publish sent again after a reconnection keeps its packet id and waiter.
                if !acks.sent.contains_key(&pkid)
                    && let Some(tx) = acks.queued.pop_front()
                {
                    acks.sent.insert(pkid, tx);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(tx) = lock(&self.acks).sent.remove(&ack.pkid) {
                    let _ = tx.send(());
                }
            }
            Event::Incoming(Incoming::Publish(publish)) => self.on_publish(&publish),
            _ => {}
        }
    }

    fn on_publish(&self, publish: &Publish) {
        match Topic::parse(&publish.topic) {
            Some(Topic::CloudToDevice { .. }) => {
                let connection = self.connections.load(Ordering::Relaxed);
                if let Some(message) =
                    C2dMessage::decode(&publish.topic, &publish.payload, publish.pkid, connection)
                {
                    let _ = self.c2d.send(message);
                }
            }
            Some(Topic::MethodRequest { method, request_id }) => {
                let payload = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                let (status, answer) = self.options.methods.answer(&method, payload);
                let topic = topics::method_response_topic(status.into(), &request_id);
                let _ = self.publish(topic, answer.to_string().into_bytes());
            }
            Some(Topic::TwinResponse {
                status,
                request_id,
                version,
            }) => {
                if let Some(tx) = lock(&self.twin).remove(&request_id) {
                    let body = publish.payload.to_vec();
                    let _ = tx.send(TwinAnswer {
                        status,
                        version,
                        body,
                    });
                }
            }
            Some(Topic::DesiredPatch { .. }) => {
                let patch = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                if self.options.follow_desired
                    && let Some(echo) = follow(&patch)
                {
                    let topic = topics::twin_reported_topic(&self.request_id());
                    let _ = self.publish(topic, echo.to_string().into_bytes());
                }
                let _ = self.desired.send(patch);
            }
            _ => tracing::debug!(topic = %publish.topic, "unexpected PUBLISH from the hub"),
        }
    }
}

/// The reported patch that follows a desired patch: its properties without `$version` (or
/// other `$` keys), or `None` when nothing is left.
fn follow(desired: &Value) -> Option<Value> {
    let echo: Map<String, Value> = desired
        .as_object()?
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!echo.is_empty()).then_some(Value::Object(echo))
}

/// Hands publishes to rumqttc one at a time, registering each QoS 1 waiter just before its
/// publish, so waiters are queued in the order rumqttc sends the publishes.
async fn outbox(client: AsyncClient, acks: Arc<Mutex<Acks>>, mut rx: mpsc::UnboundedReceiver<Out>) {
    while let Some(out) = rx.recv().await {
        let qos = match out.acked {
            Some(tx) => {
                lock(&acks).queued.push_back(tx);
                QoS::AtLeastOnce
            }
            None => QoS::AtMostOnce,
        };
        if client
            .publish(out.topic, qos, false, out.payload)
            .await
            .is_err()
        {
            // The connection task has ended.
            if qos == QoS::AtLeastOnce {
                lock(&acks).queued.pop_back();
            }
            return;
        }
    }
}

/// Keeps what rumqttc would lose with the connection: events not yet seen, and the requests
/// not yet sent or not acknowledged.
fn drop_connection(shared: &Shared, eventloop: &mut EventLoop, kept: &mut Vec<Request>) {
    for event in std::mem::take(&mut eventloop.state.events) {
        shared.handle(event);
    }
    eventloop.clean();
    kept.extend(eventloop.pending.drain(..));
    shared.connected.send_replace(false);
}

/// After a CONNACK: subscribe first, then what the last connection left.
fn resume(shared: &Shared, eventloop: &mut EventLoop, kept: &mut Vec<Request>) {
    eventloop
        .pending
        .push_back(Request::Subscribe(Subscribe::new_many(shared.filters())));
    eventloop.pending.extend(carry_over(std::mem::take(kept)));
}

/// The requests a connection left that the next one sends: not its subscription or its
/// acknowledgements (packet ids of that connection), and publishes that keep their packet
/// id before new ones, so that rumqttc notices packet-id collisions.
fn carry_over(kept: Vec<Request>) -> impl Iterator<Item = Request> {
    let (resent, rest): (Vec<_>, Vec<_>) = kept
        .into_iter()
        .filter(|r| !matches!(r, Request::Subscribe(_) | Request::PubAck(_)))
        .partition(|r| matches!(r, Request::Publish(p) if p.pkid != 0));
    resent.into_iter().chain(rest)
}

fn first_error(config: &DeviceConfig, error: ConnectionError) -> Error {
    match error {
        ConnectionError::ConnectionRefused(code) => Error::Refused(code as u8),
        e => Error::Connect {
            endpoint: config.endpoint(),
            source: Box::new(e),
        },
    }
}

/// The connection task.
async fn run(shared: Arc<Shared>, mut eventloop: EventLoop, ready: oneshot::Sender<Result<()>>) {
    let mut ready = Some(ready);
    let mut kept = Vec::new();
    let mut subscription = None;
    let mut renew_at = None;
    let mut backoff = MIN_BACKOFF;
    let client_id = shared.config.client_id();
    loop {
        if eventloop.network.is_none() {
            renew_at = shared.sign_in(&mut eventloop);
        }
        let online = eventloop.network.is_some();
        let renewal = renew_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        let event = tokio::select! {
            biased;
            () = shared.stop.notified() => break,
            () = shared.reconnect.notified() => {
                tracing::debug!(client = %client_id, "reconnecting on request");
                drop_connection(&shared, &mut eventloop, &mut kept);
                continue;
            }
            () = tokio::time::sleep_until(renewal), if online && renew_at.is_some() => {
                tracing::debug!(client = %client_id, "reconnecting to renew the token");
                drop_connection(&shared, &mut eventloop, &mut kept);
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                subscription = None;
                resume(&shared, &mut eventloop, &mut kept);
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => subscription = Some(pkid),
            Ok(Event::Incoming(Incoming::SubAck(ack))) if Some(ack.pkid) == subscription => {
                let refused = ack
                    .return_codes
                    .iter()
                    .position(|c| matches!(c, SubscribeReasonCode::Failure))
                    .and_then(|i| shared.filters().get(i).map(|f| f.path.clone()));
                if let Some(filter) = refused {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(Error::Subscribe(filter)));
                        break;
                    }
                    tracing::warn!(client = %client_id, %filter, "the hub refused a subscription");
                }
                backoff = MIN_BACKOFF;
                shared.connected.send_replace(true);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(event) => shared.handle(event),
            Err(error) => {
                drop_connection(&shared, &mut eventloop, &mut kept);
                if shared.stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(first_error(&shared.config, error)));
                    break;
                }
                tracing::debug!(client = %client_id, %error, ?backoff, "connection lost; reconnecting");
                tokio::select! {
                    () = shared.stop.notified() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    if shared.stopping.load(Ordering::Relaxed) && eventloop.network.is_some() {
        // What the handle already passed on (an acknowledgement whose `complete` returned)
        // goes out before the DISCONNECT.
        for _ in 0..64 {
            if !matches!(eventloop.poll().now_or_never(), Some(Ok(_))) {
                break;
            }
        }
        eventloop
            .pending
            .push_back(Request::Disconnect(rumqttc::Disconnect));
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if event == Event::Outgoing(Outgoing::Disconnect) {
                    break;
                }
            }
        })
        .await;
    }
    shared.connected.send_replace(false);
    let mut acks = lock(&shared.acks);
    acks.queued.clear();
    acks.sent.clear();
    drop(acks);
    lock(&shared.twin).clear();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn following_desired_properties_drops_the_version() {
        assert_eq!(
            follow(&json!({"a": 1, "b": null, "$version": 4})),
            Some(json!({"a": 1, "b": null}))
        );
        assert_eq!(follow(&json!({"$version": 4})), None);
        assert_eq!(follow(&json!(3)), None);
    }

    #[test]
    fn options_and_defaults() {
        let o = DeviceOptions::default()
            .with_ack_c2d(false)
            .with_follow_desired(true)
            .with_operation_timeout(Duration::from_secs(3));
        assert!(!o.ack_c2d && o.follow_desired);
        assert_eq!(o.operation_timeout, Duration::from_secs(3));
        assert_eq!(o.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(format!("{:?}", o.methods), "Echo");
    }

    #[test]
    fn a_new_connection_resends_before_new_publishes() {
        let topic = "devices/d/messages/events/";
        let new = Publish::new(topic, QoS::AtLeastOnce, "new");
        let mut old = Publish::new(topic, QoS::AtLeastOnce, "old");
        old.pkid = 9;
        let method = Publish::new("$iothub/methods/res/200/?$rid=1", QoS::AtMostOnce, "{}");
        let kept = vec![
            Request::Publish(new.clone()),
            Request::Subscribe(Subscribe::new_many([])),
            Request::PubAck(rumqttc::PubAck::new(3)),
            Request::Publish(method.clone()),
            Request::Publish(old.clone()),
        ];
        assert_eq!(
            carry_over(kept).collect::<Vec<_>>(),
            vec![
                Request::Publish(old),
                Request::Publish(new),
                Request::Publish(method)
            ]
        );
    }
}
