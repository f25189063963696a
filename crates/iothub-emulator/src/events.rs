//! The telemetry event log: device-to-cloud messages as IoT Hub keeps them for its built-in
//! Event Hubs-compatible endpoint (`messages/events`), independent of the transport that
//! brought them (MQTT, HTTPS) and of the one that will read them.
//!
//! Rules ("Read device-to-cloud messages from the built-in endpoint"; IoT Hub quotas):
//! - the log has [`DEFAULT_PARTITIONS`] partitions unless configured otherwise; a device's
//!   messages (and its modules') all go to one partition, chosen from the device id, so they
//!   stay in order;
//! - every message gets, in its partition, a sequence number (0, 1, 2, …), an offset (the
//!   position of its first byte in the partition, as Event Hubs counts it) and an enqueued
//!   time, and it carries IoT Hub's system properties (`iothub-connection-device-id`,
//!   `-module-id`, `-auth-method`, `-auth-generation-id`, `iothub-enqueuedtime`,
//!   `iothub-message-source`);
//! - a message is at most [`MAX_MESSAGE_BYTES`] (256 KB, body and properties);
//! - messages are kept for the retention period ([`DEFAULT_RETENTION`], one day), then
//!   removed; sequence numbers and offsets never go back.
//!
//! Durability: [`EventLog::append`] returns once the message is committed to SQLite
//! (`synchronous=FULL`). Concurrent appends are group-committed: a writer task takes every
//! message waiting when a transaction starts, so a burst costs one fsync.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::c2d::from_millis;
use crate::clock::{Clock, format_time};
use crate::registry::{RegistryEvent, RegistryEventKind};
use crate::store::{Store, StoreError};

/// Partitions of the log unless configured otherwise (IoT Hub's default for a new hub).
pub const DEFAULT_PARTITIONS: u32 = 4;
/// How long messages are kept unless configured otherwise (IoT Hub's default, one day).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest device-to-cloud message, body and properties, in bytes (256 KB, IoT Hub quotas).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// `iothub-message-source` of device telemetry.
pub const SOURCE_TELEMETRY: &str = "Telemetry";

/// Most messages committed in one transaction.
const MAX_GROUP: usize = 4096;
/// How often messages older than the retention period are removed.
const RETENTION_SWEEP: Duration = Duration::from_secs(60);

/// How the sending identity authenticated (`iothub-connection-auth-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A SAS token signed with the identity's own key.
    Sas,
    /// An X.509 certificate (thumbprint or CA).
    X509,
}

/// A device-to-cloud message as a device sent it.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Sending device.
    pub device_id: String,
    /// Sending module, if a module sent it.
    pub module_id: Option<String>,
    /// Generation id of the sending identity.
    pub generation_id: String,
    /// How it authenticated (`None`: not recorded).
    pub auth: Option<AuthMethod>,
    /// `message-id`.
    pub message_id: Option<String>,
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `user-id`.
    pub user_id: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `content-encoding`.
    pub content_encoding: Option<String>,
    /// Absolute expiry time as the device gave it.
    pub expiry: Option<String>,
    /// Output name (modules, `$.on`).
    pub output_name: Option<String>,
    /// Application properties, in the order the device sent them.
    pub application: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// `iothub-message-source`: `None` for device telemetry (`Telemetry`), else the kind of
    /// IoT Hub event message ([`EventSource::message_source`]).
    pub message_source: Option<&'static str>,
}

/// The non-telemetry event messages IoT Hub can route to the built-in endpoint (the data
/// sources of its message routes; "IoT Hub non-telemetry event schemas").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventSource {
    /// Identities created and deleted (`DeviceLifecycleEvents`).
    DeviceLifecycleEvents,
    /// Twins updated and replaced (`TwinChangeEvents`).
    TwinChangeEvents,
    /// Devices and modules connecting and disconnecting (`DeviceConnectionStateEvents`).
    DeviceConnectionStateEvents,
}

impl EventSource {
    /// Every source.
    pub const ALL: [EventSource; 3] = [
        EventSource::DeviceLifecycleEvents,
        EventSource::TwinChangeEvents,
        EventSource::DeviceConnectionStateEvents,
    ];

    /// The routing data source name (`DeviceLifecycleEvents`, …).
    pub fn name(self) -> &'static str {
        match self {
            EventSource::DeviceLifecycleEvents => "DeviceLifecycleEvents",
            EventSource::TwinChangeEvents => "TwinChangeEvents",
            EventSource::DeviceConnectionStateEvents => "DeviceConnectionStateEvents",
        }
    }

    /// `iothub-message-source` of its messages.
    pub fn message_source(self) -> &'static str {
        match self {
            EventSource::DeviceLifecycleEvents => "deviceLifecycleEvents",
            EventSource::TwinChangeEvents => "twinChangeEvents",
            EventSource::DeviceConnectionStateEvents => "deviceConnectionStateEvents",
        }
    }

    /// `iothub-message-schema` of its messages.
    pub fn message_schema(self) -> &'static str {
        match self {
            EventSource::DeviceLifecycleEvents => "deviceLifecycleNotification",
            EventSource::TwinChangeEvents => "twinChangeNotification",
            EventSource::DeviceConnectionStateEvents => "deviceConnectionStateNotification",
        }
    }

    /// The source of a registry change.
    pub fn of(kind: RegistryEventKind) -> EventSource {
        match kind {
            RegistryEventKind::Created | RegistryEventKind::Deleted => {
                EventSource::DeviceLifecycleEvents
            }
            RegistryEventKind::TwinUpdated | RegistryEventKind::TwinReplaced => {
                EventSource::TwinChangeEvents
            }
            RegistryEventKind::Connected | RegistryEventKind::Disconnected => {
                EventSource::DeviceConnectionStateEvents
            }
        }
    }
}

impl std::str::FromStr for EventSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        EventSource::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "'{}' is not an event source; use DeviceLifecycleEvents, TwinChangeEvents or DeviceConnectionStateEvents",
                    text.escape_default()
                )
            })
    }
}

/// The event message IoT Hub sends for a registry change: the body as JSON (UTF-8), IoT
/// Hub's application properties (`hubName`, `deviceId`, `moduleId`, `opType`,
/// `operationTimestamp`, `iothub-message-schema`) and system properties (content type and
/// encoding, `user-id` = the hub, a correlation id).
pub fn event_message(event: &RegistryEvent, hub_name: &str, now: DateTime<Utc>) -> Telemetry {
    let source = EventSource::of(event.kind);
    let mut application = vec![
        ("hubName".to_owned(), hub_name.to_owned()),
        ("deviceId".to_owned(), event.device_id.clone()),
    ];
    if let Some(module) = &event.module_id {
        application.push(("moduleId".to_owned(), module.clone()));
    }
    application.extend([
        (
            "opType".to_owned(),
            event.kind.op_type(event.module_id.is_some()).to_owned(),
        ),
        ("operationTimestamp".to_owned(), format_time(now)),
        (
            "iothub-message-schema".to_owned(),
            source.message_schema().to_owned(),
        ),
    ]);
    Telemetry {
        device_id: event.device_id.clone(),
        module_id: event.module_id.clone(),
        correlation_id: Some(uuid::Uuid::new_v4().simple().to_string()),
        user_id: Some(hub_name.to_owned()),
        content_type: Some("application/json".to_owned()),
        content_encoding: Some("utf-8".to_owned()),
        application,
        body: event.body.to_string().into_bytes(),
        message_source: Some(source.message_source()),
        ..Telemetry::default()
    }
}

impl Telemetry {
    /// Size counted against [`MAX_MESSAGE_BYTES`]: body, application property names and
    /// values, and system property values.
    pub fn size(&self) -> usize {
        let system = [
            &self.message_id,
            &self.correlation_id,
            &self.user_id,
            &self.content_type,
            &self.content_encoding,
            &self.expiry,
            &self.output_name,
        ]
        .iter()
        .map(|v| v.as_deref().map_or(0, str::len))
        .sum::<usize>();
        self.body.len()
            + system
            + self
                .application
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// The properties of a message in the log, each section as `(name, value)` pairs in stored
/// order. Stored as `{"system": {...}, "application": {...}}` JSON; read straight into pairs,
/// without building a JSON tree, because every delivery on the built-in endpoint reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct EventProperties {
    /// IoT Hub's system properties, by IoT Hub's names: `message-id`, `correlation-id`,
    /// `user-id`, `content-type`, `content-encoding`, `iothub-connection-device-id`,
    /// `iothub-connection-module-id`, `iothub-connection-auth-method`,
    /// `iothub-connection-auth-generation-id`, `iothub-enqueuedtime`,
    /// `iothub-message-source`, …
    #[serde(default, deserialize_with = "pairs")]
    pub system: Vec<(String, String)>,
    /// The application properties.
    #[serde(default, deserialize_with = "pairs")]
    pub application: Vec<(String, String)>,
}

#[cfg(test)]
impl EventProperties {
    /// The system property `name`.
    pub fn system(&self, name: &str) -> Option<&str> {
        find(&self.system, name)
    }

    /// The application property `name`.
    pub fn application(&self, name: &str) -> Option<&str> {
        find(&self.application, name)
    }
}

#[cfg(test)]
fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find_map(|(k, v)| (k == name).then_some(v.as_str()))
}

/// One section: a JSON object read into pairs. Values are text; any other JSON value (which
/// this hub never stores) is kept as its JSON text.
fn pairs<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, String)>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of properties")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                pairs.push((k, v));
            }
            Ok(pairs)
        }
    }
    deserializer.deserialize_map(Visit)
}

/// A message in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Partition.
    pub partition: u32,
    /// Sequence number in the partition.
    pub sequence_number: i64,
    /// Offset in the partition.
    pub offset: i64,
    /// When the hub enqueued it.
    pub enqueued: DateTime<Utc>,
    /// Sending device.
    pub device_id: String,
    /// Sending module.
    pub module_id: Option<String>,
    /// The message's system and application properties.
    pub properties: EventProperties,
    /// The body.
    pub body: Vec<u8>,
}

/// Where an appended message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPosition {
    /// Partition.
    pub partition: u32,
    /// Sequence number in the partition.
    pub sequence_number: i64,
    /// Offset in the partition.
    pub offset: i64,
}

/// What a partition holds now (the Event Hubs partition properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition.
    pub partition: u32,
    /// Sequence number of the oldest message kept (or of the next one when empty).
    pub begin_sequence_number: i64,
    /// Sequence number of the newest message (-1 when nothing was ever enqueued).
    pub last_sequence_number: i64,
    /// Offset of the newest message (-1 when nothing was ever enqueued).
    pub last_offset: i64,
    /// When the newest message was enqueued.
    pub last_enqueued: Option<DateTime<Utc>>,
    /// Whether the partition holds no message.
    pub is_empty: bool,
}

/// Why an event-log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error(
        "The message is {0} bytes (body and properties); the maximum is {MAX_MESSAGE_BYTES} bytes."
    )]
    TooLarge(usize),
    /// The partition does not exist.
    #[error("Partition {0} does not exist.")]
    NoSuchPartition(u32),
    /// A start position past the end of the partition (Event Hubs answers
    /// `com.microsoft:argument-out-of-range`).
    #[error(
        "The supplied sequence number '{asked}' is invalid. The last sequence number in the system is '{last}'."
    )]
    OutOfRange {
        /// The sequence number asked for.
        asked: i64,
        /// The partition's last sequence number (-1 when empty).
        last: i64,
    },
    /// The store failed.
    #[error("the event store failed")]
    Store(#[from] StoreError),
    /// The transaction holding this message failed (the store error is logged once).
    #[error("the event store failed")]
    GroupFailed,
    /// The emulator is shutting down.
    #[error("the emulator is shutting down")]
    Stopped,
}

struct Job {
    event: Telemetry,
    reply: oneshot::Sender<Result<EventPosition, EventError>>,
}

/// The hub's event log. Cheap to share (`Arc`).
pub struct EventLog {
    store: Arc<Store>,
    clock: Clock,
    partitions: u32,
    jobs: mpsc::UnboundedSender<Job>,
    /// Per partition, the sequence number the next message will get; readers wait on it.
    tails: Vec<watch::Sender<i64>>,
}

/// Where a reader starts in a partition: the Event Hubs event positions (the selector filter
/// of a receiver link: `amqp.annotation.x-opt-offset`, `-sequence-number` or
/// `-enqueued-time`, each inclusive or exclusive; `-1` is the start of the stream and
/// `@latest` its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest message kept.
    Start,
    /// The next message enqueued (nothing already there).
    End,
    /// The message at this offset (`inclusive`) or the one after it.
    Offset {
        /// The offset.
        offset: i64,
        /// Whether the message at `offset` itself is included.
        inclusive: bool,
    },
    /// The message with this sequence number (`inclusive`) or the one after it.
    SequenceNumber {
        /// The sequence number.
        sequence_number: i64,
        /// Whether that message itself is included.
        inclusive: bool,
    },
    /// The first message enqueued at (`inclusive`) or after this time (ms since the epoch).
    EnqueuedTime {
        /// Milliseconds since the Unix epoch.
        millis: i64,
        /// Whether a message enqueued exactly then is included.
        inclusive: bool,
    },
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Starts the group-commit writer and the retention sweeper (both stop when the log is
    /// dropped). `partitions` is at least 1.
    pub fn start(
        store: Arc<Store>,
        clock: Clock,
        partitions: u32,
        retention: Duration,
    ) -> Arc<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let partitions = partitions.max(1);
        let log = Arc::new(EventLog {
            store,
            clock,
            partitions,
            jobs,
            tails: (0..partitions).map(|_| watch::channel(-1).0).collect(),
        });
        tokio::spawn(writer(Arc::downgrade(&log), rx));
        tokio::spawn(retention_sweeper(Arc::downgrade(&log), retention));
        log
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// A watch that changes whenever messages are committed to `partition` (its value is
    /// the next sequence number, or -1 before the first commit since start-up). Readers that
    /// reached the end wait on it instead of polling.
    ///
    /// # Errors
    /// [`EventError::NoSuchPartition`].
    pub fn subscribe(&self, partition: u32) -> Result<watch::Receiver<i64>, EventError> {
        self.tails
            .get(partition as usize)
            .map(watch::Sender::subscribe)
            .ok_or(EventError::NoSuchPartition(partition))
    }

    /// The sequence number a reader starting at `position` reads first (the next one to be
    /// enqueued when nothing kept matches).
    ///
    /// # Errors
    /// [`EventError::NoSuchPartition`] or [`EventError::Store`].
    pub async fn resolve(
        &self,
        partition: u32,
        position: StartPosition,
    ) -> Result<i64, EventError> {
        if partition >= self.partitions {
            return Err(EventError::NoSuchPartition(partition));
        }
        let (column, value, inclusive) = match position {
            StartPosition::Start => return Ok(0),
            StartPosition::SequenceNumber {
                sequence_number,
                inclusive,
            } => {
                let first = if inclusive {
                    sequence_number
                } else {
                    sequence_number.saturating_add(1)
                }
                .max(0);
                // Starting right after the last event is fine; further on would skip the
                // numbers in between without a word, so it is refused, as Event Hubs does.
                let next = self
                    .store
                    .call(move |conn| Ok::<_, EventError>(next_position(conn, partition)?.0))
                    .await?;
                if first > next {
                    return Err(EventError::OutOfRange {
                        asked: sequence_number,
                        last: next - 1,
                    });
                }
                return Ok(first);
            }
            StartPosition::End => ("seq", i64::MAX, false),
            StartPosition::Offset { offset, inclusive } => ("offset", offset, inclusive),
            StartPosition::EnqueuedTime { millis, inclusive } => ("enqueued_ms", millis, inclusive),
        };
        let op = if inclusive { ">=" } else { ">" };
        let sql = format!("SELECT MIN(seq) FROM events WHERE partition = ?1 AND {column} {op} ?2");
        self.store
            .call(move |conn| -> Result<i64, EventError> {
                let found: Option<i64> = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row(params![partition, value], |r| r.get(0)))
                    .map_err(StoreError::from)?;
                match found {
                    Some(seq) => Ok(seq),
                    None => Ok(next_position(conn, partition)?.0),
                }
            })
            .await
    }

    /// The partition of a device's messages: the first four bytes of SHA-256 of the device id,
    /// modulo the number of partitions (stable across restarts and versions).
    pub fn partition_of(&self, device_id: &str) -> u32 {
        let digest = Sha256::digest(device_id.as_bytes());
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        n % self.partitions
    }

    /// Appends a message once it is durably stored.
    ///
    /// # Errors
    /// [`EventError::TooLarge`], [`EventError::Store`], [`EventError::GroupFailed`] or
    /// [`EventError::Stopped`].
    pub async fn append(&self, event: Telemetry) -> Result<EventPosition, EventError> {
        let size = event.size();
        if size > MAX_MESSAGE_BYTES {
            return Err(EventError::TooLarge(size));
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { event, reply })
            .map_err(|_| EventError::Stopped)?;
        rx.await.unwrap_or(Err(EventError::Stopped))
    }

    /// Appends a message without waiting for its commit (IoT Hub's event messages, which
    /// follow the registry write that made them): it goes into the next group commit, in
    /// the order given. A message over the size limit is dropped with a warning.
    pub fn enqueue(&self, event: Telemetry) {
        if event.size() > MAX_MESSAGE_BYTES {
            tracing::warn!(device = %event.device_id, "event message over 256 KB dropped");
            return;
        }
        let (reply, _) = oneshot::channel();
        let _ = self.jobs.send(Job { event, reply });
    }

    /// Up to `max` messages of `partition` with sequence numbers from `from_sequence` on, in
    /// order.
    ///
    /// # Errors
    /// [`EventError::NoSuchPartition`] or [`EventError::Store`].
    pub async fn read(
        &self,
        partition: u32,
        from_sequence: i64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, EventError> {
        if partition >= self.partitions {
            return Err(EventError::NoSuchPartition(partition));
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.store
            .call(move |conn| -> Result<_, EventError> {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, offset, enqueued_ms, device_id, module_id, properties, body \
                         FROM events WHERE partition = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                    )
                    .map_err(StoreError::from)?;
                let mut rows = stmt
                    .query(params![partition, from_sequence, limit])
                    .map_err(StoreError::from)?;
                let mut events = Vec::with_capacity(max.min(1024));
                while let Some(r) = rows.next().map_err(StoreError::from)? {
                    let read = |r: &rusqlite::Row<'_>| -> Result<StoredEvent, StoreError> {
                        let properties = r.get_ref(5)?.as_str().map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                5,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?;
                        let properties = serde_json::from_str(properties).map_err(|source| {
                            StoreError::Corrupt {
                                what: "event",
                                source,
                            }
                        })?;
                        let module_id: String = r.get(4)?;
                        Ok(StoredEvent {
                            partition,
                            sequence_number: r.get(0)?,
                            offset: r.get(1)?,
                            enqueued: from_millis(r.get(2)?),
                            device_id: r.get(3)?,
                            module_id: Some(module_id).filter(|m| !m.is_empty()),
                            properties,
                            body: r.get(6)?,
                        })
                    };
                    events.push(read(r)?);
                }
                Ok(events)
            })
            .await
    }

    /// What a partition holds now.
    ///
    /// # Errors
    /// [`EventError::NoSuchPartition`] or [`EventError::Store`].
    pub async fn partition_info(&self, partition: u32) -> Result<PartitionInfo, EventError> {
        if partition >= self.partitions {
            return Err(EventError::NoSuchPartition(partition));
        }
        self.store
            .call(move |conn| -> Result<_, EventError> {
                let (next_seq, _) = next_position(conn, partition)?;
                let oldest: Option<i64> = conn
                    .prepare_cached("SELECT MIN(seq) FROM events WHERE partition = ?1")
                    .and_then(|mut s| s.query_row(params![partition], |r| r.get(0)))
                    .map_err(StoreError::from)?;
                let newest: Option<(i64, i64, i64)> = conn
                    .prepare_cached(
                        "SELECT seq, offset, enqueued_ms FROM events WHERE partition = ?1 \
                         ORDER BY seq DESC LIMIT 1",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![partition], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?
                        .next()
                        .transpose()
                    })
                    .map_err(StoreError::from)?;
                Ok(PartitionInfo {
                    partition,
                    begin_sequence_number: oldest.unwrap_or(next_seq),
                    last_sequence_number: newest.map_or(next_seq - 1, |n| n.0),
                    last_offset: newest.map_or(-1, |n| n.1),
                    last_enqueued: newest.map(|n| from_millis(n.2)),
                    is_empty: newest.is_none(),
                })
            })
            .await
    }

    /// Removes messages enqueued before `now - retention`. Returns how many went.
    ///
    /// # Errors
    /// [`EventError::Store`].
    pub async fn sweep(&self, retention: Duration) -> Result<usize, EventError> {
        let cutoff = (self.clock)().timestamp_millis()
            - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.store
            .call(move |conn| -> Result<usize, EventError> {
                Ok(conn
                    .execute("DELETE FROM events WHERE enqueued_ms < ?1", params![cutoff])
                    .map_err(StoreError::from)?)
            })
            .await
    }
}

/// The next sequence number and offset of a partition.
fn next_position(conn: &Connection, partition: u32) -> Result<(i64, i64), StoreError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT next_seq, next_offset FROM event_partitions WHERE partition = ?1")?
        .query_map(params![partition], |r| Ok((r.get(0)?, r.get(1)?)))?
        .next()
        .transpose()?;
    Ok(row.unwrap_or((0, 0)))
}

/// The stored properties of a message: IoT Hub's system properties and the application
/// properties.
fn properties_of(event: &Telemetry, enqueued: DateTime<Utc>) -> Value {
    let mut system = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            system.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    };
    put("message-id", event.message_id.as_deref());
    put("correlation-id", event.correlation_id.as_deref());
    put("user-id", event.user_id.as_deref());
    put("content-type", event.content_type.as_deref());
    put("content-encoding", event.content_encoding.as_deref());
    put("absolute-expiry-time", event.expiry.as_deref());
    put("iothub-connection-device-id", Some(&event.device_id));
    put("iothub-connection-module-id", event.module_id.as_deref());
    put("iothub-outputname", event.output_name.as_deref());
    if let Some(auth) = event.auth {
        let kind = match auth {
            AuthMethod::Sas => "sas",
            AuthMethod::X509 => "x509Certificate",
        };
        let scope = if event.module_id.is_some() {
            "module"
        } else {
            "device"
        };
        put(
            "iothub-connection-auth-method",
            Some(
                &json!({"scope": scope, "type": kind, "issuer": "iothub", "acceptingIpFilterRule": null})
                    .to_string(),
            ),
        );
    }
    put(
        "iothub-connection-auth-generation-id",
        Some(event.generation_id.as_str()).filter(|g| !g.is_empty()),
    );
    put("iothub-enqueuedtime", Some(&format_time(enqueued)));
    put(
        "iothub-message-source",
        Some(event.message_source.unwrap_or(SOURCE_TELEMETRY)),
    );
    let application: BTreeMap<&str, &str> = event
        .application
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    json!({ "system": system, "application": application })
}

async fn writer(log: Weak<EventLog>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let Some(log) = log.upgrade() else {
            return;
        };
        let now = (log.clock)();
        let partitions: Vec<u32> = jobs
            .iter()
            .map(|j| log.partition_of(&j.event.device_id))
            .collect();
        let (events, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.event, j.reply)).unzip();
        let outcome = log
            .store
            .call(move |conn| commit_group(conn, events, partitions, now))
            .await;
        match outcome {
            Ok(positions) => {
                let mut next: BTreeMap<u32, i64> = BTreeMap::new();
                for position in &positions {
                    next.insert(position.partition, position.sequence_number + 1);
                }
                for (partition, seq) in next {
                    if let Some(tail) = log.tails.get(partition as usize) {
                        tail.send_replace(seq);
                    }
                }
                for (reply, position) in replies.into_iter().zip(positions) {
                    let _ = reply.send(Ok(position));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing device-to-cloud messages failed");
                for reply in replies {
                    let _ = reply.send(Err(EventError::GroupFailed));
                }
            }
        }
    }
}

fn commit_group(
    conn: &mut Connection,
    events: Vec<Telemetry>,
    partitions: Vec<u32>,
    now: DateTime<Utc>,
) -> Result<Vec<EventPosition>, StoreError> {
    let tx = conn.transaction()?;
    let mut next: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    let mut positions = Vec::with_capacity(events.len());
    let now_ms = now.timestamp_millis();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (partition, seq, offset, enqueued_ms, device_id, module_id, properties, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (event, partition) in events.into_iter().zip(partitions) {
            let slot = match next.get(&partition) {
                Some(slot) => *slot,
                None => next_position(&tx, partition)?,
            };
            let properties = properties_of(&event, now).to_string();
            let (seq, offset) = slot;
            insert.execute(params![
                partition,
                seq,
                offset,
                now_ms,
                event.device_id,
                event.module_id.unwrap_or_default(),
                properties,
                event.body,
            ])?;
            let length = i64::try_from(event.body.len() + properties.len()).unwrap_or(i64::MAX);
            next.insert(partition, (seq + 1, offset + length));
            positions.push(EventPosition {
                partition,
                sequence_number: seq,
                offset,
            });
        }
    }
    {
        let mut save = tx.prepare_cached(
            "INSERT INTO event_partitions (partition, next_seq, next_offset) VALUES (?1, ?2, ?3) \
             ON CONFLICT(partition) DO UPDATE SET next_seq = excluded.next_seq, next_offset = excluded.next_offset",
        )?;
        for (partition, (seq, offset)) in &next {
            save.execute(params![partition, seq, offset])?;
        }
    }
    tx.commit()?;
    Ok(positions)
}

async fn retention_sweeper(log: Weak<EventLog>, retention: Duration) {
    let mut tick = tokio::time::interval(RETENTION_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(log) = log.upgrade() else {
            return;
        };
        if let Err(e) = log.sweep(retention).await {
            tracing::warn!(error = %e, "removing old device-to-cloud messages failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(store: &Arc<Store>) -> Arc<EventLog> {
        EventLog::start(
            Arc::clone(store),
            crate::clock::system_clock(),
            4,
            DEFAULT_RETENTION,
        )
    }

    fn message(device: &str, body: &str) -> Telemetry {
        Telemetry {
            device_id: device.into(),
            generation_id: "g1".into(),
            auth: Some(AuthMethod::Sas),
            message_id: Some(format!("m-{body}")),
            content_type: Some("application/json".into()),
            application: vec![("k".into(), "v".into())],
            body: body.as_bytes().to_vec(),
            ..Telemetry::default()
        }
    }

    #[tokio::test]
    async fn appends_are_ordered_per_partition_and_survive_reopening()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("events.db");
        let store = Arc::new(Store::open(&path)?);
        let events = log(&store);
        let appends = (0..50).map(|i| events.append(message("d1", &i.to_string())));
        let positions = futures::future::try_join_all(appends).await?;
        let partition = events.partition_of("d1");
        assert!(positions.iter().all(|p| p.partition == partition));
        let seqs: Vec<i64> = positions.iter().map(|p| p.sequence_number).collect();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>());
        assert!(positions.windows(2).all(|w| w[0].offset < w[1].offset));
        drop(events);
        drop(store);

        let store = Arc::new(Store::open(&path)?);
        let events = log(&store);
        let read = events.read(partition, 48, 10).await?;
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].body, b"48");
        let props = &read[0].properties;
        assert_eq!(props.system("iothub-connection-device-id"), Some("d1"));
        assert_eq!(
            props.system("iothub-connection-auth-generation-id"),
            Some("g1")
        );
        assert_eq!(props.system("iothub-message-source"), Some("Telemetry"));
        assert_eq!(props.system("message-id"), Some("m-48"));
        assert_eq!(props.system("content-type"), Some("application/json"));
        assert!(
            props
                .system("iothub-connection-auth-method")
                .is_some_and(|m| m.contains("\"sas\""))
        );
        assert_eq!(props.application("k"), Some("v"));
        let next = events.append(message("d1", "after")).await?;
        assert_eq!(
            next.sequence_number, 50,
            "sequence numbers continue after a restart"
        );
        let info = events.partition_info(partition).await?;
        assert_eq!(info.begin_sequence_number, 0);
        assert_eq!(info.last_sequence_number, 50);
        assert!(!info.is_empty);
        Ok(())
    }

    #[tokio::test]
    async fn retention_removes_old_messages_but_keeps_numbering()
    -> Result<(), Box<dyn std::error::Error>> {
        use std::sync::atomic::{AtomicI64, Ordering};
        let store = Arc::new(Store::open_in_memory()?);
        // A clock the test steps by hand, so "the same millisecond" never depends on timing.
        let start = Utc::now().timestamp_millis();
        let now = Arc::new(AtomicI64::new(start));
        let clock: crate::clock::Clock = {
            let now = Arc::clone(&now);
            Arc::new(move || {
                DateTime::from_timestamp_millis(now.load(Ordering::SeqCst)).unwrap_or_default()
            })
        };
        let events = EventLog::start(Arc::clone(&store), clock, 4, DEFAULT_RETENTION);
        let first = events.append(message("d2", "a")).await?;
        assert_eq!(
            events.sweep(Duration::ZERO).await?,
            0,
            "same millisecond is kept"
        );
        now.store(start + 5, Ordering::SeqCst);
        assert_eq!(
            events.sweep(Duration::from_millis(10)).await?,
            0,
            "younger than the retention is kept"
        );
        assert_eq!(events.sweep(Duration::ZERO).await?, 1);
        let info = events.partition_info(first.partition).await?;
        assert!(info.is_empty);
        assert_eq!(info.begin_sequence_number, 1);
        let second = events.append(message("d2", "b")).await?;
        assert_eq!(second.sequence_number, 1);
        Ok(())
    }

    #[tokio::test]
    async fn oversized_messages_and_unknown_partitions_are_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = Arc::new(Store::open_in_memory()?);
        let events = log(&store);
        let mut big = message("d3", "");
        big.body = vec![0; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            events.append(big).await,
            Err(EventError::TooLarge(_))
        ));
        assert!(matches!(
            events.read(4, 0, 1).await,
            Err(EventError::NoSuchPartition(4))
        ));
        Ok(())
    }
}
