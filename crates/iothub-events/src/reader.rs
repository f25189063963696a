//! The reader: resolving the built-in endpoint, management requests, partition streams.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fe2o3_amqp::link::{LinkStateError, ReceiverAttachError, RecvError};
use fe2o3_amqp::types::definitions;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Message, MessageId, Properties, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Receiver, Sender};
use futures_core::Stream;
use iothub_auth::{ConnectionString, HubCredential, SharedAccessKey};
use iothub_c2d::amqp::{
    Endpoint, SERVICEBUS_PATH, condition_text, connect, reply_status, tls_config,
};
use iothub_c2d::{RetryPolicy, Transport};
use tokio::sync::{OnceCell, mpsc};

use crate::{
    Checkpoint, DeviceEvent, Error, EventHubEndpoint, EventHubProperties, EventPosition,
    PartitionProperties,
};

/// The consumer group every hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// Events a partition receiver asks for ahead of the caller (AMQP link credit).
pub const DEFAULT_PREFETCH: u32 = 300;
/// IoT Hub's AMQPS port.
pub const DEFAULT_AMQPS_PORT: u16 = 5671;
/// How long one AMQP request (redirect, management) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
const EPOCH_PROPERTY: &str = "com.microsoft:epoch";

/// Where the reader's credentials came from.
#[derive(Clone)]
enum Source_ {
    /// An IoT Hub service connection string: resolve the redirect.
    IotHub {
        host_name: String,
        policy: String,
        key: SharedAccessKey,
    },
    /// An Event Hubs-compatible connection string.
    EventHub {
        endpoint: EventHubEndpoint,
        policy: String,
        key: SharedAccessKey,
    },
}

/// Builds an [`EventReader`].
#[must_use]
pub struct EventReaderBuilder {
    source: Option<Result<Source_, Error>>,
    consumer_group: String,
    partitions: Option<Vec<String>>,
    start: EventPosition,
    checkpoints: HashMap<String, i64>,
    amqps_port: Option<u16>,
    https_port: Option<u16>,
    transport: Transport,
    root_pems: Vec<Vec<u8>>,
    root_files: Vec<PathBuf>,
    epoch: Option<i64>,
    prefetch: u32,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for EventReaderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReaderBuilder")
            .field("consumer_group", &self.consumer_group)
            .field("partitions", &self.partitions)
            .field("start", &self.start)
            .field("amqps_port", &self.amqps_port)
            .field("https_port", &self.https_port)
            .field("transport", &self.transport)
            .field("epoch", &self.epoch)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl Default for EventReaderBuilder {
    fn default() -> Self {
        EventReaderBuilder {
            source: None,
            consumer_group: DEFAULT_CONSUMER_GROUP.to_owned(),
            partitions: None,
            start: EventPosition::Earliest,
            checkpoints: HashMap::new(),
            amqps_port: None,
            https_port: None,
            transport: Transport::Amqp,
            root_pems: Vec::new(),
            root_files: Vec::new(),
            epoch: None,
            prefetch: DEFAULT_PREFETCH,
            connect_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

fn policy_and_key(cs: &ConnectionString) -> Result<(String, SharedAccessKey), Error> {
    let policy = cs.shared_access_key_name().ok_or_else(|| {
        Error::Config(
            "the connection string names no shared access policy (SharedAccessKeyName)".into(),
        )
    })?;
    let key = cs
        .shared_access_key()
        .ok_or_else(|| Error::Config("the connection string has no SharedAccessKey".into()))?;
    Ok((policy.to_owned(), key.clone()))
}

/// Reads `Endpoint=sb://host[:port]/;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`.
fn parse_eventhub_connection_string(text: &str) -> Result<Source_, Error> {
    let mut fields: HashMap<String, String> = HashMap::new();
    for part in text.trim().split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            Error::Config("an Event Hubs connection string is a list of Name=value pairs".into())
        })?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let endpoint = fields
        .get("endpoint")
        .ok_or_else(|| Error::Config("the Event Hubs connection string has no Endpoint".into()))?;
    let authority = endpoint
        .strip_prefix("sb://")
        .or_else(|| endpoint.strip_prefix("amqps://"))
        .ok_or_else(|| Error::Config("Endpoint must start with sb://".into()))?
        .trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse()
                .map_err(|_| Error::Config(format!("Endpoint has an invalid port '{p}'")))?,
        ),
        None => (authority.to_owned(), DEFAULT_AMQPS_PORT),
    };
    let entity = fields
        .get("entitypath")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::Config("the Event Hubs connection string has no EntityPath".into()))?
        .clone();
    let policy = fields
        .get("sharedaccesskeyname")
        .ok_or_else(|| Error::Config("the connection string has no SharedAccessKeyName".into()))?
        .clone();
    let key = fields
        .get("sharedaccesskey")
        .ok_or_else(|| Error::Config("the connection string has no SharedAccessKey".into()))?;
    let key = SharedAccessKey::from_base64(key)
        .map_err(|e| Error::Config(format!("the SharedAccessKey is not valid: {e}")))?;
    Ok(Source_::EventHub {
        endpoint: EventHubEndpoint { host, port, entity },
        policy,
        key,
    })
}

impl EventReaderBuilder {
    /// Reads through the IoT Hub service connection string (a policy with *service
    /// connect*, e.g. `service` or `iothubowner`): the reader asks the hub for its built-in
    /// endpoint (the `amqp:link:redirect` answer) and reads there with the same key.
    pub fn connection_string(mut self, text: &str) -> Self {
        self.source = Some(
            ConnectionString::parse(text)
                .map_err(|e| Error::Config(format!("invalid IoT Hub connection string: {e}")))
                .and_then(|cs| {
                    let (policy, key) = policy_and_key(&cs)?;
                    Ok(Source_::IotHub {
                        host_name: cs.host_name().to_owned(),
                        policy,
                        key,
                    })
                }),
        );
        self
    }

    /// Reads through the Event Hubs-compatible connection string (the portal's "Built-in
    /// endpoints" page, or the local hub's `EVENTHUB_CONNECTION_STRING`):
    /// `Endpoint=sb://host[:port]/;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`.
    pub fn eventhub_connection_string(mut self, text: &str) -> Self {
        self.source = Some(parse_eventhub_connection_string(text));
        self
    }

    /// The consumer group (default `$Default`).
    pub fn consumer_group(mut self, group: impl Into<String>) -> Self {
        self.consumer_group = group.into();
        self
    }

    /// Reads only these partitions (default: every partition the endpoint has).
    pub fn partitions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.partitions = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Where partitions without a checkpoint start (default [`EventPosition::Earliest`]).
    pub fn start(mut self, position: EventPosition) -> Self {
        self.start = position;
        self
    }

    /// Resumes after these checkpoints (one per partition; the last one given wins).
    pub fn start_after(mut self, checkpoints: impl IntoIterator<Item = Checkpoint>) -> Self {
        for c in checkpoints {
            self.checkpoints.insert(c.partition, c.sequence_number);
        }
        self
    }

    /// The IoT hub's AMQPS port (default 5671; the local hub's is
    /// `Emulator::amqps_port`). Used for the redirect request; the built-in endpoint's own
    /// port comes from the redirect or the Event Hubs connection string.
    pub fn amqps_port(mut self, port: u16) -> Self {
        self.amqps_port = Some(port);
        self
    }

    /// AMQP over TLS on the AMQPS port ([`Transport::Amqp`], the default) or over
    /// WebSockets on the HTTPS port ([`Transport::AmqpWebSockets`], for networks that only
    /// let 443 out). Over WebSockets the redirect is asked at `/$iothub/websocket` and the
    /// Event Hubs-compatible endpoint is read at `/$servicebus/websocket`, both on the HTTPS
    /// port.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The HTTPS port for [`Transport::AmqpWebSockets`] (default 443; the local hub's is
    /// `Emulator::https_port`), for both the IoT hub and its Event Hubs-compatible endpoint.
    pub fn https_port(mut self, port: u16) -> Self {
        self.https_port = Some(port);
        self
    }

    /// Trusts this CA (PEM) besides the platform's roots, e.g. the local hub's `ca.pem`.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// Like [`add_root_certificate_pem`](Self::add_root_certificate_pem), read from a file
    /// when the reader is built.
    pub fn add_root_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_files.push(path.into());
        self
    }

    /// Reads as an owner-level (epoch) reader: readers of the same partitions and consumer
    /// group with a lower epoch, or none, are disconnected (default: no epoch).
    pub fn owner_level(mut self, epoch: i64) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Events each partition receiver asks for ahead of the caller (default
    /// [`DEFAULT_PREFETCH`]; at least 1).
    pub fn prefetch(mut self, events: u32) -> Self {
        self.prefetch = events.max(1);
        self
    }

    /// Bound on one connection attempt (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connection attempts before an error is reported (default: IoT Hub's retry policy of
    /// the C2D client).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the reader. Nothing is opened until it is used.
    ///
    /// # Errors
    /// [`Error::Config`]: no or a malformed connection string, a policy without a key, an
    /// unreadable or invalid CA.
    pub fn build(self) -> Result<EventReader, Error> {
        let source = self.source.ok_or_else(|| {
            Error::Config(
                "no connection string: call connection_string(..) or eventhub_connection_string(..)"
                    .into(),
            )
        })??;
        let mut pems = self.root_pems;
        for path in &self.root_files {
            pems.push(std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read CA file {}: {e}", path.display()))
            })?);
        }
        let tls = tls_config(&pems)?;
        let template = Endpoint {
            host: String::new(),
            audience: String::new(),
            amqps_port: self.amqps_port.unwrap_or(DEFAULT_AMQPS_PORT),
            https_port: self.https_port.unwrap_or(443),
            transport: self.transport,
            websocket_path: iothub_c2d::websocket::PATH,
            tls,
            credential: HubCredential::sas_token(String::new()),
            connect_timeout: self.connect_timeout,
            retry: self.retry,
        };
        let resolved = OnceCell::new();
        if let Source_::EventHub {
            endpoint,
            policy,
            key,
        } = &source
        {
            let _ = resolved.set(eventhub_endpoint(&template, endpoint, policy, key));
        }
        Ok(EventReader {
            inner: Arc::new(Inner {
                source,
                template,
                resolved,
                consumer_group: self.consumer_group,
                partitions: self.partitions,
                start: self.start,
                checkpoints: self.checkpoints,
                epoch: self.epoch,
                prefetch: self.prefetch,
            }),
        })
    }
}

/// The connection settings for an Event Hubs-compatible endpoint: CBS tokens for
/// `sb://{host}/{entity}` signed with the policy's key.
fn eventhub_endpoint(
    template: &Endpoint,
    endpoint: &EventHubEndpoint,
    policy: &str,
    key: &SharedAccessKey,
) -> (EventHubEndpoint, Endpoint) {
    let audience = format!("sb://{}/{}", endpoint.host, endpoint.entity);
    let mut amqp = template.clone();
    amqp.host = endpoint.host.clone();
    // Over WebSockets the entity is read on the HTTPS port the reader was given (443 on
    // Azure, where the redirect names 5671).
    amqp.amqps_port = endpoint.port;
    amqp.websocket_path = SERVICEBUS_PATH;
    amqp.audience = audience.clone();
    // Event Hubs (Service Bus) signs with the key's text, not its decoded bytes.
    let text_key =
        SharedAccessKey::from_bytes(key.to_base64().into_bytes()).unwrap_or_else(|_| key.clone());
    amqp.credential = HubCredential::shared_access_key(audience, Some(policy), text_key);
    (endpoint.clone(), amqp)
}

struct Inner {
    source: Source_,
    template: Endpoint,
    resolved: OnceCell<(EventHubEndpoint, Endpoint)>,
    consumer_group: String,
    partitions: Option<Vec<String>>,
    start: EventPosition,
    checkpoints: HashMap<String, i64>,
    epoch: Option<i64>,
    prefetch: u32,
}

/// Reads device telemetry from an IoT hub's built-in Event Hubs-compatible endpoint.
/// Cheap to clone.
#[derive(Clone)]
pub struct EventReader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("consumer_group", &self.inner.consumer_group)
            .field("endpoint", &self.inner.resolved.get().map(|r| &r.0))
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// A builder.
    pub fn builder() -> EventReaderBuilder {
        EventReaderBuilder::default()
    }

    /// The built-in endpoint: from the Event Hubs connection string, or asked of the hub
    /// once (the `amqp:link:redirect` answer to a receiver on `messages/events`) and kept.
    ///
    /// # Errors
    /// [`Error::Connect`] (unreachable hub, refused token), [`Error::Redirect`] (the hub
    /// answered without a usable redirect), [`Error::Timeout`].
    pub async fn endpoint(&self) -> Result<EventHubEndpoint, Error> {
        Ok(self.resolved().await?.0.clone())
    }

    async fn resolved(&self) -> Result<&(EventHubEndpoint, Endpoint), Error> {
        self.inner
            .resolved
            .get_or_try_init(|| async {
                let Source_::IotHub {
                    host_name,
                    policy,
                    key,
                } = &self.inner.source
                else {
                    return Err(Error::Config("no endpoint".into()));
                };
                let endpoint =
                    resolve_redirect(&self.inner.template, host_name, policy, key).await?;
                Ok(eventhub_endpoint(
                    &self.inner.template,
                    &endpoint,
                    policy,
                    key,
                ))
            })
            .await
    }

    /// The Event Hubs-compatible entity's name, creation time and partition ids
    /// (`$management`, `com.microsoft:eventhub`).
    ///
    /// # Errors
    /// See [`endpoint`](Self::endpoint); [`Error::Management`] when the request is refused
    /// or the answer has no partition ids.
    pub async fn eventhub_properties(&self) -> Result<EventHubProperties, Error> {
        let (endpoint, amqp) = self.resolved().await?;
        let reply = management(amqp, &endpoint.entity, None).await?;
        let get = |k: &str| reply.get(&Value::String(k.to_owned()));
        let partition_ids = match get("partition_ids") {
            Some(Value::Array(ids)) => ids.iter().filter_map(text_of).collect(),
            Some(Value::List(ids)) => ids.iter().filter_map(text_of).collect(),
            _ => {
                return Err(Error::Management {
                    status: 500,
                    description: "the answer has no partition_ids".into(),
                });
            }
        };
        Ok(EventHubProperties {
            name: get("name")
                .and_then(text_of)
                .unwrap_or_else(|| endpoint.entity.clone()),
            created_at: match get("created_at") {
                Some(Value::Timestamp(t)) => DateTime::from_timestamp_millis(t.milliseconds()),
                _ => None,
            },
            partition_ids,
        })
    }

    /// The partition ids (`$management`, `com.microsoft:eventhub`).
    ///
    /// # Errors
    /// As [`eventhub_properties`](Self::eventhub_properties).
    pub async fn partition_ids(&self) -> Result<Vec<String>, Error> {
        Ok(self.eventhub_properties().await?.partition_ids)
    }

    /// What a partition holds (`$management`, `com.microsoft:partition`).
    ///
    /// # Errors
    /// See [`endpoint`](Self::endpoint); [`Error::Management`] (404 for an unknown
    /// partition).
    pub async fn partition_properties(&self, id: &str) -> Result<PartitionProperties, Error> {
        let (endpoint, amqp) = self.resolved().await?;
        let reply = management(amqp, &endpoint.entity, Some(id)).await?;
        let get = |k: &str| reply.get(&Value::String(k.to_owned()));
        let long = |k: &str| match get(k) {
            Some(Value::Long(n)) => *n,
            Some(Value::Int(n)) => i64::from(*n),
            _ => -1,
        };
        Ok(PartitionProperties {
            id: id.to_owned(),
            begin_sequence_number: long("begin_sequence_number"),
            last_enqueued_sequence_number: long("last_enqueued_sequence_number"),
            last_enqueued_offset: get("last_enqueued_offset")
                .and_then(text_of)
                .unwrap_or_default(),
            last_enqueued_time: match get("last_enqueued_time_utc") {
                Some(Value::Timestamp(t)) if t.milliseconds() > 0 => {
                    DateTime::from_timestamp_millis(t.milliseconds())
                }
                _ => None,
            },
            is_empty: matches!(get("is_partition_empty"), Some(Value::Bool(true))),
        })
    }

    /// Every chosen partition's events as one stream, each partition in order. Each
    /// partition starts at its checkpoint, or else at the builder's start position. A
    /// partition whose connection fails reconnects with backoff (the builder's
    /// [`RetryPolicy`]) for as long as the stream lives, and resumes right after the last
    /// event it yielded; while the endpoint stays unreachable, each run of `max_attempts`
    /// failed attempts is reported as an `Err` item with [`Error::is_transient`] true, and
    /// reading goes on. A refusal (unknown consumer group or partition, a start position
    /// past the end, a reader with a higher owner level) is yielded as an `Err` and ends that
    /// partition. Dropping the stream closes its connections.
    pub fn stream(&self) -> EventStream {
        // Room for about `prefetch` events in batches of up to `MAX_BATCH`.
        let batches =
            (usize::try_from(self.inner.prefetch).unwrap_or(MAX_BATCH) / MAX_BATCH).max(2);
        let (tx, rx) = mpsc::channel(batches);
        let reader = self.clone();
        let task = tokio::spawn(async move {
            let ids = match &reader.inner.partitions {
                Some(ids) => ids.clone(),
                None => match reader.partition_ids().await {
                    Ok(ids) => ids,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
            };
            let mut tasks = Vec::new();
            for id in ids {
                let start = match reader.inner.checkpoints.get(&id) {
                    Some(seq) => EventPosition::SequenceNumber {
                        sequence_number: *seq,
                        inclusive: false,
                    },
                    None => reader.inner.start,
                };
                tasks.push(AbortOnDrop(tokio::spawn(read_partition(
                    reader.clone(),
                    id,
                    start,
                    tx.clone(),
                ))));
            }
            drop(tx);
            for task in &mut tasks {
                let _ = (&mut task.0).await;
            }
        });
        EventStream {
            rx,
            buffered: Vec::new().into_iter(),
            _task: AbortOnDrop(task),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The events of a reader's partitions (see [`EventReader::stream`]).
pub struct EventStream {
    rx: mpsc::Receiver<Batch>,
    /// Events of the last batch not yet yielded.
    buffered: std::vec::IntoIter<DeviceEvent>,
    _task: AbortOnDrop,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Result<DeviceEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.buffered.next() {
            return Poll::Ready(Some(Ok(event)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                self.buffered = batch.into_iter();
                Poll::Ready(self.buffered.next().map(Ok))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads one partition into `tx`, reconnecting on transient failures for as long as the
/// stream lives: the backoff follows the builder's [`RetryPolicy`], the count starts again
/// after every successful attach, and each run of `max_attempts` failures in a row is
/// reported as an `Err` item (the stream goes on). Refusals end the partition.
async fn read_partition(
    reader: EventReader,
    id: String,
    start: EventPosition,
    tx: mpsc::Sender<Batch>,
) {
    let retry = reader.inner.template.retry.clone();
    let mut position = start;
    let mut failures = 0u32;
    loop {
        let mut progress = Progress::default();
        let result = read_once(&reader, &id, position, &tx, &mut progress).await;
        if let Some(seq) = progress.last {
            position = EventPosition::SequenceNumber {
                sequence_number: seq,
                inclusive: false,
            };
        }
        if progress.attached {
            failures = 0;
        }
        match result {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                failures += 1;
                let delay = retry.delay(failures.min(16));
                tracing::debug!(error = %e, partition = %id, ?delay, "partition reader reconnecting");
                if failures.is_multiple_of(retry.max_attempts().max(1))
                    && tx.send(Err(e)).await.is_err()
                {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// How far one connection got.
#[derive(Default)]
struct Progress {
    /// The receiver was attached.
    attached: bool,
    /// Sequence number of the last event handed to the stream.
    last: Option<i64>,
}

/// What a partition task hands to the stream: events in order, or a failure.
type Batch = Result<Vec<DeviceEvent>, Error>;

/// Most events handed to the stream at once.
const MAX_BATCH: usize = 64;

/// The output of `future` if it is ready without waiting; `None` otherwise (the future is
/// dropped, which is safe for fe2o3's cancel-safe `recv`).
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// One connection's worth of reading. `Ok` when the caller dropped the stream.
async fn read_once(
    reader: &EventReader,
    id: &str,
    position: EventPosition,
    tx: &mpsc::Sender<Batch>,
    progress: &mut Progress,
) -> Result<(), Error> {
    let (endpoint, amqp) = reader.resolved().await?;
    let mut session = connect(amqp).await?;
    let address = format!(
        "{}/ConsumerGroups/{}/Partitions/{id}",
        endpoint.entity, reader.inner.consumer_group
    );
    let source = Source::builder()
        .address(address)
        .add_to_filter(
            Symbol::from(SELECTOR_FILTER),
            Some(serde_amqp::described::Described {
                descriptor: serde_amqp::descriptor::Descriptor::Name(Symbol::from(SELECTOR_FILTER)),
                value: Value::String(position.selector()),
            }),
        )
        .build();
    let mut builder = Receiver::builder()
        .name(format!(
            "iothub-events-{id}-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .source(source)
        .target(format!("iothub-events-{}", uuid::Uuid::new_v4().simple()))
        .sender_settle_mode(definitions::SenderSettleMode::Settled)
        .credit_mode(fe2o3_amqp::link::receiver::CreditMode::Auto(
            reader.inner.prefetch,
        ));
    if let Some(epoch) = reader.inner.epoch {
        let mut props = definitions::Fields::new();
        props.insert(Symbol::from(EPOCH_PROPERTY), Value::Long(epoch));
        builder = builder.properties(props);
    }
    let mut receiver = match builder.attach(&mut session.session).await {
        Ok(r) => r,
        Err(e) => {
            session.close();
            return Err(attach_error(e));
        }
    };
    progress.attached = true;
    let outcome = loop {
        let delivery = tokio::select! {
            d = receiver.recv::<Body<Value>>() => d,
            () = tx.closed() => break Ok(()),
        };
        let mut next = Some(delivery);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut failed = None;
        // The first delivery, then those that have already arrived (without waiting): one
        // hand-over to the stream per batch instead of per event.
        while let Some(delivery) = next.take() {
            match delivery {
                Ok(d) => {
                    let _ = receiver.accept(&d).await;
                    batch.push(to_event(id, d.into_message()));
                }
                Err(e) => {
                    failed = Some(recv_error(e));
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = ready_now(receiver.recv::<Body<Value>>());
            }
        }
        let last = batch.last().map(|e| e.sequence_number);
        if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
            break Ok(());
        }
        if last.is_some() {
            progress.last = last;
        }
        if let Some(e) = failed {
            break Err(e);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), receiver.close()).await;
    session.close();
    outcome
}

fn refused(error: &definitions::Error) -> Error {
    Error::Refused {
        condition: condition_text(&error.condition),
        description: error.description.clone().unwrap_or_default(),
    }
}

fn attach_error(e: ReceiverAttachError) -> Error {
    match e {
        ReceiverAttachError::RemoteClosedWithError(error) => refused(&error),
        other => Error::Amqp(other.to_string()),
    }
}

fn recv_error(e: RecvError) -> Error {
    match e {
        RecvError::LinkStateError(
            LinkStateError::RemoteClosedWithError(error)
            | LinkStateError::RemoteDetachedWithError(error),
        ) => refused(&error),
        other => Error::Amqp(other.to_string()),
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        Value::Binary(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Long(n) => Some(n.to_string()),
        Value::Int(n) => Some(n.to_string()),
        Value::Uint(n) => Some(n.to_string()),
        Value::Ulong(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn simple_text(value: &SimpleValue) -> Option<String> {
    text_of(&Value::from(value.clone()))
}

fn id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner()).to_string(),
        MessageId::Binary(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// A value's text, taking it when it is already text.
fn into_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Symbol(s) => Some(s.0),
        other => text_of(&other),
    }
}

/// A message id as text, taking it when it is already text.
fn id_into_text(id: MessageId) -> String {
    match id {
        MessageId::String(s) => s,
        other => id_text(&other),
    }
}

/// A delivered message as a [`DeviceEvent`]. The message is consumed: its texts and body
/// move into the event.
fn to_event(partition: &str, message: Message<Body<Value>>) -> DeviceEvent {
    let mut system = BTreeMap::new();
    let mut sequence_number = -1;
    let mut offset = -1;
    let mut enqueued_time = DateTime::<Utc>::default();
    if let Some(annotations) = message.message_annotations {
        for (key, value) in annotations.0 {
            let fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(key) = key else {
                continue;
            };
            match (key.as_str(), value) {
                ("x-opt-sequence-number", Value::Long(n)) => sequence_number = n,
                ("x-opt-offset", v) => {
                    offset = text_of(&v).and_then(|t| t.parse().ok()).unwrap_or(-1);
                }
                ("x-opt-enqueued-time", Value::Timestamp(t)) => {
                    enqueued_time =
                        DateTime::from_timestamp_millis(t.milliseconds()).unwrap_or_default();
                }
                (k, v) if k.starts_with("iothub-") => {
                    if let Some(text) = into_text(v) {
                        system.insert(key.0, text);
                    }
                }
                _ => {}
            }
        }
    }
    let mut properties = BTreeMap::new();
    if let Some(ApplicationProperties(app)) = message.application_properties {
        for (k, v) in app {
            let text = match v {
                SimpleValue::String(s) => Some(s),
                other => simple_text(&other),
            };
            if let Some(text) = text {
                properties.insert(k, text);
            }
        }
    }
    let body: Bytes = match message.body {
        Body::Data(mut sections) if sections.len() == 1 => sections
            .pop()
            .map(|d| Bytes::from(d.0.into_vec()))
            .unwrap_or_default(),
        Body::Data(sections) => sections
            .iter()
            .flat_map(|d| d.0.iter().copied())
            .collect::<Vec<u8>>()
            .into(),
        Body::Value(v) => match v.0 {
            Value::String(s) => Bytes::from(s.into_bytes()),
            Value::Binary(b) => Bytes::from(b.into_vec()),
            _ => Bytes::new(),
        },
        _ => Bytes::new(),
    };
    let (message_id, correlation_id, content_type, content_encoding) = match message.properties {
        Some(p) => (
            p.message_id.map(id_into_text),
            p.correlation_id.map(id_into_text),
            p.content_type.map(|s| s.0),
            p.content_encoding.map(|s| s.0),
        ),
        None => (None, None, None, None),
    };
    DeviceEvent {
        partition: partition.to_owned(),
        sequence_number,
        offset,
        enqueued_time,
        device_id: system.get("iothub-connection-device-id").cloned(),
        module_id: system.get("iothub-connection-module-id").cloned(),
        message_id,
        correlation_id,
        content_type,
        content_encoding,
        system_properties: system,
        properties,
        body,
    }
}

/// Asks the hub for its built-in endpoint: a receiver on `messages/events/$management`
/// is answered with `amqp:link:redirect`, whose `address` names the entity.
async fn resolve_redirect(
    template: &Endpoint,
    host_name: &str,
    policy: &str,
    key: &SharedAccessKey,
) -> Result<EventHubEndpoint, Error> {
    let mut hub = template.clone();
    hub.host = host_name
        .rsplit_once(':')
        .filter(|(h, _)| !h.contains(':'))
        .map_or(host_name, |(h, _)| h)
        .to_owned();
    hub.audience = host_name.to_owned();
    hub.credential = HubCredential::shared_access_key(host_name, Some(policy), key.clone());
    let mut session = connect(&hub).await?;
    let ask = async {
        let attach = Receiver::builder()
            .name(format!(
                "iothub-events-redirect-{}",
                uuid::Uuid::new_v4().simple()
            ))
            .source(format!("amqps://{host_name}/messages/events/$management"))
            .target(format!("iothub-events-{}", uuid::Uuid::new_v4().simple()))
            .attach(&mut session.session)
            .await;
        match attach {
            Err(ReceiverAttachError::RemoteClosedWithError(error)) => Ok(error),
            Err(other) => Err(Error::Redirect(other.to_string())),
            Ok(mut receiver) => match receiver.recv::<Body<Value>>().await {
                Err(RecvError::LinkStateError(
                    LinkStateError::RemoteClosedWithError(error)
                    | LinkStateError::RemoteDetachedWithError(error),
                )) => Ok(error),
                Err(other) => Err(Error::Redirect(other.to_string())),
                Ok(_) => Err(Error::Redirect(
                    "the hub delivered a message instead of redirecting".into(),
                )),
            },
        }
    };
    let error = tokio::time::timeout(REQUEST_TIMEOUT, ask)
        .await
        .map_err(|_| Error::Timeout(REQUEST_TIMEOUT));
    session.close();
    let error = error??;
    parse_redirect(&error)
}

/// The Event Hubs-compatible endpoint named by an `amqp:link:redirect` error.
fn parse_redirect(error: &definitions::Error) -> Result<EventHubEndpoint, Error> {
    if condition_text(&error.condition) != "amqp:link:redirect" {
        return Err(refused(error));
    }
    let info = error
        .info
        .as_ref()
        .ok_or_else(|| Error::Redirect("the redirect carries no info".into()))?;
    let get = |k: &str| info.get(&Symbol::from(k)).and_then(text_of);
    let address =
        get("address").ok_or_else(|| Error::Redirect("the redirect names no address".into()))?;
    let rest = address
        .split_once("://")
        .map_or(address.as_str(), |(_, r)| r);
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| Error::Redirect(format!("unexpected redirect address '{address}'")))?;
    let entity = path
        .split('/')
        .next()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::Redirect(format!("unexpected redirect address '{address}'")))?
        .to_owned();
    let host = get("hostname")
        .or_else(|| authority.split(':').next().map(str::to_owned))
        .unwrap_or_default();
    let port = get("port")
        .and_then(|p| p.parse().ok())
        .or_else(|| authority.split_once(':').and_then(|(_, p)| p.parse().ok()))
        .unwrap_or(DEFAULT_AMQPS_PORT);
    Ok(EventHubEndpoint { host, port, entity })
}

/// One `READ` request to `$management`: the entity (`partition` = `None`) or a partition.
async fn management(
    amqp: &Endpoint,
    entity: &str,
    partition: Option<&str>,
) -> Result<OrderedMap<Value, Value>, Error> {
    let mut session = connect(amqp).await?;
    let reply_to = format!("iothub-events-mgmt-{}", uuid::Uuid::new_v4().simple());
    let exchange = async {
        let mut sender = Sender::builder()
            .name(format!("{reply_to}-sender"))
            .target("$management")
            .attach(&mut session.session)
            .await
            .map_err(|e| Error::Amqp(e.to_string()))?;
        let mut receiver = Receiver::builder()
            .name(format!("{reply_to}-receiver"))
            .source("$management")
            .target(reply_to.clone())
            .attach(&mut session.session)
            .await
            .map_err(attach_error)?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut app = OrderedMap::new();
        let mut put = |k: &str, v: &str| {
            app.insert(k.to_owned(), SimpleValue::String(v.to_owned()));
        };
        put("operation", "READ");
        put("name", entity);
        match partition {
            Some(p) => {
                put("type", "com.microsoft:partition");
                put("partition", p);
            }
            None => put("type", "com.microsoft:eventhub"),
        }
        let request = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::String(id.clone())),
                reply_to: Some(reply_to.clone()),
                ..Default::default()
            })
            .application_properties(ApplicationProperties(app))
            .value(Value::Null)
            .build();
        sender
            .send(request)
            .await
            .map_err(|e| Error::Amqp(e.to_string()))?;
        loop {
            let delivery = receiver.recv::<Body<Value>>().await.map_err(recv_error)?;
            let _ = receiver.accept(&delivery).await;
            let message = delivery.into_message();
            let Some((status, description)) = reply_status(&message, &id) else {
                continue;
            };
            if status != 200 {
                return Err(Error::Management {
                    status,
                    description,
                });
            }
            return match message.body {
                Body::Value(v) => match v.0 {
                    Value::Map(map) => Ok(map),
                    _ => Err(Error::Management {
                        status,
                        description: "the answer is not a map".into(),
                    }),
                },
                _ => Err(Error::Management {
                    status,
                    description: "the answer is not a map".into(),
                }),
            };
        }
    };
    let result = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| Error::Timeout(REQUEST_TIMEOUT));
    session.close();
    result?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventhub_connection_strings() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let Ok(Source_::EventHub {
            endpoint, policy, ..
        }) = parse_eventhub_connection_string(&format!(
            "Endpoint=sb://localhost:25671/;SharedAccessKeyName=service;SharedAccessKey={key};EntityPath=emulator"
        ))
        else {
            panic!("parsed");
        };
        assert_eq!(
            endpoint,
            EventHubEndpoint {
                host: "localhost".into(),
                port: 25671,
                entity: "emulator".into()
            }
        );
        assert_eq!(policy, "service");
        let Ok(Source_::EventHub { endpoint, .. }) = parse_eventhub_connection_string(&format!(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey={key};EntityPath=hub"
        )) else {
            panic!("parsed");
        };
        assert_eq!(endpoint.port, 5671);
        for bad in [
            "",
            "Endpoint=sb://x/",
            &format!("Endpoint=http://x/;SharedAccessKeyName=s;SharedAccessKey={key};EntityPath=e"),
            &format!("Endpoint=sb://x:y/;SharedAccessKeyName=s;SharedAccessKey={key};EntityPath=e"),
            "Endpoint=sb://x/;SharedAccessKeyName=s;SharedAccessKey=@@;EntityPath=e",
        ] {
            assert!(
                matches!(parse_eventhub_connection_string(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn redirects() {
        let mut info = definitions::Fields::new();
        info.insert(Symbol::from("hostname"), Value::String("localhost".into()));
        info.insert(Symbol::from("port"), Value::Int(25671));
        info.insert(
            Symbol::from("address"),
            Value::String("amqps://localhost:25671/emulator/$management".into()),
        );
        let error = definitions::Error {
            condition: definitions::ErrorCondition::LinkError(definitions::LinkError::Redirect),
            description: None,
            info: Some(Box::new(info)),
        };
        assert_eq!(
            parse_redirect(&error).expect("endpoint"),
            EventHubEndpoint {
                host: "localhost".into(),
                port: 25671,
                entity: "emulator".into()
            }
        );
        let not_found = definitions::Error {
            condition: definitions::ErrorCondition::AmqpError(definitions::AmqpError::NotFound),
            description: Some("no".into()),
            info: None,
        };
        assert!(
            parse_redirect(&not_found)
                .expect_err("refused")
                .is_not_found()
        );
    }
}
