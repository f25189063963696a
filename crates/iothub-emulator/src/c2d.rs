//! Cloud-to-device (C2D) queues and feedback: IoT Hub's rules for messages sent to
//! `/messages/devicebound`, independent of the protocol that carries them.
//!
//! Rules (IoT Hub's C2D developer guide and quotas page):
//! - each device (or module) queue holds at most [`MAX_QUEUE_DEPTH`] messages; one more is
//!   refused with `DeviceMaximumQueueDepthExceeded` (403004);
//! - a message body is at most [`MAX_MESSAGE_BYTES`]; a larger one is refused with
//!   `MessageTooLarge` (413001);
//! - a message without an absolute expiry time lives [`DEFAULT_TTL`] (the hub default);
//! - expired and purged messages produce feedback records (`Expired`, `Purged`) when the
//!   message asked for negative or full acknowledgement (`iothub-ack`);
//! - a delivered message is Invisible until the device completes, rejects or abandons it, or
//!   its lock ends; completion gives `Success` feedback (positive or full ack), rejection
//!   `Rejected`, and a message delivered [`MAX_DELIVERY_COUNT`] times that comes back once
//!   more is dead-lettered with `DeliveryCountExceeded` (negative or full ack);
//! - feedback records wait in the store until a feedback receiver accepts the batch that
//!   carries them; they are dropped with their device.
//!
//! Durability: an accepted message is committed to SQLite (`synchronous=FULL`) before
//! [`C2dQueues::enqueue`] returns. Concurrent enqueues are group-committed: one writer task
//! takes every waiting message into one transaction, so a burst of messages costs one
//! fsync, not one per message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::format_time;
use crate::error::ErrorCode;
use crate::store::{Store, StoreError};

/// Most messages a device (or module) queue holds (IoT Hub's quota).
pub const MAX_QUEUE_DEPTH: u64 = iothub_core::limits::MAX_C2D_QUEUE_DEPTH as u64;
/// Largest message accepted (body, properties and application properties), in bytes (64 KB).
pub const MAX_MESSAGE_BYTES: usize = iothub_core::limits::MAX_C2D_MESSAGE_BYTES;
/// Lifetime of a message that has no absolute expiry time (one hour).
pub const DEFAULT_TTL: Duration = iothub_core::limits::C2D_DEFAULT_TTL;
/// Most feedback records in one feedback message.
pub const FEEDBACK_BATCH_SIZE: usize = 64;
/// Content type of feedback messages.
pub const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// Most messages committed in one transaction.
const MAX_GROUP: usize = 1024;
/// How often expired messages are swept.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

pub use crate::clock::Clock;

/// The acknowledgement a message asks for (`iothub-ack`): IoT Hub's vocabulary.
pub use iothub_core::Ack;

/// Whether `ack` asks for feedback on messages that fail (expire, are purged, rejected).
fn wants_negative(ack: Ack) -> bool {
    matches!(ack, Ack::Negative | Ack::Full)
}

/// Whether `ack` asks for feedback on messages that are completed.
fn wants_positive(ack: Ack) -> bool {
    matches!(ack, Ack::Positive | Ack::Full)
}

/// Most deliveries of one message: a message abandoned (or whose lock expired) after this
/// many deliveries is dead-lettered with `DeliveryCountExceeded` feedback (IoT Hub's default
/// `maxDeliveryCount`, C2D developer guide).
pub const MAX_DELIVERY_COUNT: u32 = 10;
/// How long a message received over HTTPS stays locked before it returns to the queue when
/// it is not settled (IoT Hub's lock timeout, one minute).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// A message taken from a queue for delivery: it is Invisible until it is settled with its
/// lock token, its lock expires, or it is released.
#[derive(Debug, Clone)]
pub struct DeliveredMessage {
    /// The lock token (the `ETag` of the HTTPS device routes).
    pub lock_token: String,
    /// The message's sequence number in the hub.
    pub sequence_number: i64,
    /// How many times it has been delivered, this delivery included.
    pub delivery_count: u32,
    /// The sender's message id.
    pub message_id: Option<String>,
    /// The acknowledgement the sender asked for.
    pub ack: Ack,
    /// When it was enqueued.
    pub enqueued: DateTime<Utc>,
    /// When it expires.
    pub expiry: DateTime<Utc>,
    /// Its properties and application properties, as stored by the sender's transport:
    /// `{"to", "messageId", "correlationId", "userId", "contentType", "contentEncoding",
    /// "absoluteExpiryTime", "applicationProperties": {...}}`.
    pub properties: Value,
    /// The body.
    pub body: Vec<u8>,
}

/// How a device settles a delivered message (C2D developer guide, "message lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Completed: removed, with `Success` feedback when positive feedback was asked for.
    Complete,
    /// Rejected: removed, with `Rejected` feedback when negative feedback was asked for.
    Reject,
    /// Abandoned: back in the queue, to be delivered again.
    Abandon,
}

/// Which queue: a device's own (`module_id` empty) or a module's.
fn queue_key(device_id: &str, module_id: Option<&str>) -> (String, String) {
    (
        device_id.to_owned(),
        module_id.unwrap_or_default().to_owned(),
    )
}

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Target device.
    pub device_id: String,
    /// Target module, if the message is for a module's queue.
    pub module_id: Option<String>,
    /// The sender's message id.
    pub message_id: Option<String>,
    /// Requested acknowledgement.
    pub ack: Ack,
    /// Absolute expiry time, if the sender set one.
    pub expiry: Option<DateTime<Utc>>,
    /// The message's properties and application properties, as JSON (kept for delivery).
    pub properties: Value,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a C2D operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum C2dError {
    /// The target device is not registered.
    #[error("Device '{0}' is not registered on this IoT hub.")]
    DeviceNotFound(String),
    /// The target module is not registered.
    #[error("Module '{module_id}' is not registered on device '{device_id}'.")]
    ModuleNotFound {
        /// Device id.
        device_id: String,
        /// Module id.
        module_id: String,
    },
    /// The queue already holds [`MAX_QUEUE_DEPTH`] messages.
    #[error(
        "The queue of '{0}' already holds {MAX_QUEUE_DEPTH} messages, the maximum; receive, purge or let messages expire first."
    )]
    QueueFull(String),
    /// The body is larger than [`MAX_MESSAGE_BYTES`].
    #[error(
        "The message is {0} bytes (body and properties); the maximum is {MAX_MESSAGE_BYTES} bytes."
    )]
    TooLarge(usize),
    /// The message is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("the message store failed")]
    Store(#[from] StoreError),
    /// The transaction holding this message failed (the store error is logged once).
    #[error("the message store failed")]
    GroupFailed,
    /// The emulator is shutting down.
    #[error("the emulator is shutting down")]
    Stopped,
}

impl C2dError {
    /// IoT Hub's error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            C2dError::DeviceNotFound(_) => ErrorCode::DeviceNotFound,
            C2dError::ModuleNotFound { .. } => ErrorCode::ModuleNotFound,
            C2dError::QueueFull(_) => ErrorCode::DeviceMaximumQueueDepthExceeded,
            C2dError::TooLarge(_) => ErrorCode::MessageTooLarge,
            C2dError::Invalid(_) => ErrorCode::ArgumentInvalid,
            C2dError::Store(_) | C2dError::GroupFailed => ErrorCode::ServerError,
            C2dError::Stopped => ErrorCode::ServiceUnavailable,
        }
    }
}

/// A batch of feedback records taken for delivery.
#[derive(Debug)]
pub struct FeedbackBatch {
    /// Store sequence numbers of the records (to complete or release them).
    pub seqs: Vec<i64>,
    /// The JSON array IoT Hub sends as the body.
    pub body: Vec<u8>,
}

struct Job {
    message: OutgoingMessage,
    reply: oneshot::Sender<Result<(), C2dError>>,
}

/// The hub's C2D queues. Cheap to share (`Arc`).
pub struct C2dQueues {
    store: Arc<Store>,
    jobs: mpsc::UnboundedSender<Job>,
    clock: Clock,
    feedback_in_flight: Mutex<HashSet<i64>>,
    feedback_ready: Notify,
    waiting: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl std::fmt::Debug for C2dQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C2dQueues").finish_non_exhaustive()
    }
}

impl C2dQueues {
    /// Starts the group-commit writer and the expiry sweeper. Both stop when the returned
    /// value is dropped.
    pub fn start(store: Arc<Store>, clock: Clock) -> Arc<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let queues = Arc::new(C2dQueues {
            store,
            jobs,
            clock,
            feedback_in_flight: Mutex::new(HashSet::new()),
            feedback_ready: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
        });
        tokio::spawn(writer(Arc::downgrade(&queues), rx));
        tokio::spawn(sweeper(Arc::downgrade(&queues)));
        queues
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Enqueues a message once it is durably stored.
    ///
    /// # Errors
    /// [`C2dError::DeviceNotFound`], [`C2dError::ModuleNotFound`], [`C2dError::QueueFull`],
    /// [`C2dError::TooLarge`], [`C2dError::Store`] or [`C2dError::Stopped`].
    pub async fn enqueue(&self, message: OutgoingMessage) -> Result<(), C2dError> {
        if message.body.len() > MAX_MESSAGE_BYTES {
            return Err(C2dError::TooLarge(message.body.len()));
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { message, reply })
            .map_err(|_| C2dError::Stopped)?;
        rx.await.unwrap_or(Err(C2dError::Stopped))
    }

    /// Empties a device's own queue. Returns the number of messages removed, or `None` when
    /// the device does not exist. Messages that asked for negative or full acknowledgement
    /// produce `Purged` feedback.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn purge(&self, device_id: &str) -> Result<Option<u64>, C2dError> {
        let device_id = device_id.to_owned();
        let now = self.now();
        let purged = self
            .store
            .call(move |conn| -> Result<Option<u64>, C2dError> {
                let tx = conn.transaction().map_err(StoreError::from)?;
                if generation_of(&tx, &device_id, "")?.is_none() {
                    return Ok(None);
                }
                let removed = remove_messages(
                    &tx,
                    "DELETE FROM c2d_messages WHERE device_id = ?1 AND module_id = '' \
                     RETURNING device_id, message_id, ack, generation_id",
                    params![device_id],
                )?;
                add_feedback(
                    &tx,
                    &removed,
                    wants_negative,
                    "Purged",
                    "Message purged",
                    now,
                )?;
                tx.commit().map_err(StoreError::from)?;
                Ok(Some(removed.len() as u64))
            })
            .await?;
        self.feedback_ready.notify_waiters();
        Ok(purged)
    }

    /// Removes every expired message, producing `Expired` feedback where asked. Returns how
    /// many were removed.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn sweep_expired(&self) -> Result<usize, C2dError> {
        let now = self.now();
        let removed = self
            .store
            .call(move |conn| -> Result<usize, C2dError> {
                let tx = conn.transaction().map_err(StoreError::from)?;
                let removed = remove_messages(
                    &tx,
                    "DELETE FROM c2d_messages WHERE expiry_ms <= ?1 \
                     RETURNING device_id, message_id, ack, generation_id",
                    params![now.timestamp_millis()],
                )?;
                if removed.is_empty() {
                    return Ok(0);
                }
                add_feedback(
                    &tx,
                    &removed,
                    wants_negative,
                    "Expired",
                    "Message expired",
                    now,
                )?;
                tx.commit().map_err(StoreError::from)?;
                Ok(removed.len())
            })
            .await?;
        if removed > 0 {
            self.feedback_ready.notify_waiters();
        }
        Ok(removed)
    }

    /// Takes up to [`FEEDBACK_BATCH_SIZE`] feedback records that no other receiver holds, or
    /// `None` when there are none.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn take_feedback(&self) -> Result<Option<FeedbackBatch>, C2dError> {
        let rows: Vec<(i64, String)> = self
            .store
            .call(|conn| -> Result<_, C2dError> {
                let mut stmt = conn
                    .prepare_cached("SELECT seq, record FROM c2d_feedback ORDER BY seq LIMIT 4096")
                    .map_err(StoreError::from)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(StoreError::from)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from)?;
                Ok(rows)
            })
            .await?;
        let mut in_flight = self
            .feedback_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut seqs = Vec::new();
        let mut records = Vec::new();
        for (seq, text) in rows {
            if records.len() == FEEDBACK_BATCH_SIZE {
                break;
            }
            if in_flight.contains(&seq) {
                continue;
            }
            let record: Value =
                serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
                    what: "feedback record",
                    source,
                })?;
            seqs.push(seq);
            records.push(record);
        }
        if seqs.is_empty() {
            return Ok(None);
        }
        in_flight.extend(seqs.iter().copied());
        let body =
            serde_json::to_vec(&Value::Array(records)).map_err(|source| StoreError::Corrupt {
                what: "feedback record",
                source,
            })?;
        Ok(Some(FeedbackBatch { seqs, body }))
    }

    /// Deletes the records of a batch the receiver accepted.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn complete_feedback(&self, seqs: Vec<i64>) -> Result<(), C2dError> {
        let done = seqs.clone();
        let result = self
            .store
            .call(move |conn| -> Result<(), C2dError> {
                let tx = conn.transaction().map_err(StoreError::from)?;
                {
                    let mut stmt = tx
                        .prepare_cached("DELETE FROM c2d_feedback WHERE seq = ?1")
                        .map_err(StoreError::from)?;
                    for seq in &seqs {
                        stmt.execute(params![seq]).map_err(StoreError::from)?;
                    }
                }
                tx.commit().map_err(StoreError::from)?;
                Ok(())
            })
            .await;
        self.release_feedback(&done);
        result
    }

    /// Makes the records of a batch that was not accepted available again.
    pub fn release_feedback(&self, seqs: &[i64]) {
        let mut in_flight = self
            .feedback_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for seq in seqs {
            in_flight.remove(seq);
        }
    }

    /// Completes when new feedback may be waiting.
    pub async fn feedback_changed(&self) {
        self.feedback_ready.notified().await;
    }

    /// A notifier that is woken (one stored permit) whenever a message may have become
    /// available in the queue of `device_id` (`module_id` `None`) or a module: enqueued,
    /// abandoned or released. A delivery loop waits on it between receives.
    pub fn queue_signal(&self, device_id: &str, module_id: Option<&str>) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            waiting
                .entry(queue_key(device_id, module_id))
                .or_insert_with(|| Arc::new(Notify::new())),
        )
    }

    /// Forgets the notifier of a queue nobody waits on any more.
    pub fn drop_queue_signal(&self, device_id: &str, module_id: Option<&str>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let key = queue_key(device_id, module_id);
        if waiting.get(&key).is_some_and(|n| Arc::strong_count(n) == 1) {
            waiting.remove(&key);
        }
    }

    fn signal(&self, device_id: &str, module_id: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = waiting.get(&(device_id.to_owned(), module_id.to_owned())) {
            n.notify_one();
        }
    }

    /// Takes up to `max` messages from a queue for delivery, oldest first: each gets a new
    /// lock token and its delivery count goes up by one, durably, before it is returned.
    /// `lock_for` `None` keeps the lock until the message is settled or released (MQTT
    /// deliveries, whose lock ends with the connection); `Some(d)` lets it expire after `d`
    /// (the HTTPS device routes, [`LOCK_TIMEOUT`]). Expired and locked messages are skipped.
    /// A message already delivered [`MAX_DELIVERY_COUNT`] times is dead-lettered instead,
    /// with `DeliveryCountExceeded` feedback where negative feedback was asked for.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn receive(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        max: usize,
        lock_for: Option<Duration>,
    ) -> Result<Vec<DeliveredMessage>, C2dError> {
        let (device, module) = queue_key(device_id, module_id);
        let now = self.now();
        let locked_until = match lock_for {
            None => i64::MAX,
            Some(d) => now
                .timestamp_millis()
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        };
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let (delivered, dead) = self
            .store
            .call(move |conn| -> Result<_, C2dError> {
                let tx = conn.transaction().map_err(StoreError::from)?;
                let now_ms = now.timestamp_millis();
                let mut delivered = Vec::new();
                let mut dead = Vec::new();
                {
                    let mut select = tx
                        .prepare_cached(
                            "SELECT seq, message_id, ack, enqueued_ms, expiry_ms, properties, body, \
                             delivery_count, generation_id FROM c2d_messages \
                             WHERE device_id = ?1 AND module_id = ?2 AND expiry_ms > ?3 \
                             AND (lock_token IS NULL OR locked_until_ms <= ?3) ORDER BY seq LIMIT ?4",
                        )
                        .map_err(StoreError::from)?;
                    let rows = select
                        .query_map(params![device, module, now_ms, limit], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, Option<String>>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, i64>(4)?,
                                r.get::<_, String>(5)?,
                                r.get::<_, Vec<u8>>(6)?,
                                r.get::<_, i64>(7)?,
                                r.get::<_, String>(8)?,
                            ))
                        })
                        .map_err(StoreError::from)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(StoreError::from)?;
                    for (seq, message_id, ack, enq, exp, props, body, count, generation_id) in rows {
                        let ack: Ack = ack.parse().unwrap_or_default();
                        let count = u32::try_from(count).unwrap_or(u32::MAX);
                        if count >= MAX_DELIVERY_COUNT {
                            dead.push((seq, Removed {
                                device_id: device.clone(),
                                message_id,
                                ack,
                                generation_id,
                            }));
                            continue;
                        }
                        let properties: Value = serde_json::from_str(&props).map_err(|source| {
                            StoreError::Corrupt { what: "cloud-to-device message", source }
                        })?;
                        delivered.push(DeliveredMessage {
                            lock_token: uuid::Uuid::new_v4().to_string(),
                            sequence_number: seq,
                            delivery_count: count + 1,
                            message_id,
                            ack,
                            enqueued: from_millis(enq),
                            expiry: from_millis(exp),
                            properties,
                            body,
                        });
                    }
                }
                {
                    let mut lock = tx
                        .prepare_cached(
                            "UPDATE c2d_messages SET delivery_count = delivery_count + 1, \
                             lock_token = ?2, locked_until_ms = ?3 WHERE seq = ?1",
                        )
                        .map_err(StoreError::from)?;
                    for m in &delivered {
                        lock.execute(params![m.sequence_number, m.lock_token, locked_until])
                            .map_err(StoreError::from)?;
                    }
                    let mut delete = tx
                        .prepare_cached("DELETE FROM c2d_messages WHERE seq = ?1")
                        .map_err(StoreError::from)?;
                    for (seq, _) in &dead {
                        delete.execute(params![seq]).map_err(StoreError::from)?;
                    }
                }
                let dead: Vec<Removed> = dead.into_iter().map(|(_, r)| r).collect();
                if !dead.is_empty() {
                    add_feedback(
                        &tx,
                        &dead,
                        wants_negative,
                        "DeliveryCountExceeded",
                        "Message delivery count exceeded",
                        now,
                    )?;
                }
                tx.commit().map_err(StoreError::from)?;
                Ok((delivered, dead.len()))
            })
            .await?;
        if dead > 0 {
            self.feedback_ready.notify_waiters();
        }
        Ok(delivered)
    }

    /// Settles a delivered message by its lock token. Returns `false` when no message of this
    /// queue holds that lock (already settled, lock expired, or never delivered). Completion
    /// and rejection are durable before this returns.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn settle(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        lock_token: &str,
        how: Settlement,
    ) -> Result<bool, C2dError> {
        let (device, module) = queue_key(device_id, module_id);
        let token = lock_token.to_owned();
        let now = self.now();
        let (found, feedback) = {
            let (device, module) = (device.clone(), module.clone());
            self.store
                .call(move |conn| -> Result<(bool, bool), C2dError> {
                    let tx = conn.transaction().map_err(StoreError::from)?;
                    let now_ms = now.timestamp_millis();
                    let outcome = match how {
                        Settlement::Abandon => {
                            let n = tx
                                .prepare_cached(
                                    "UPDATE c2d_messages SET lock_token = NULL, locked_until_ms = NULL \
                                     WHERE device_id = ?1 AND module_id = ?2 AND lock_token = ?3 \
                                     AND locked_until_ms > ?4",
                                )
                                .and_then(|mut s| s.execute(params![device, module, token, now_ms]))
                                .map_err(StoreError::from)?;
                            (n > 0, false)
                        }
                        Settlement::Complete | Settlement::Reject => {
                            let removed = remove_messages(
                                &tx,
                                "DELETE FROM c2d_messages WHERE device_id = ?1 AND module_id = ?2 \
                                 AND lock_token = ?3 AND locked_until_ms > ?4 \
                                 RETURNING device_id, message_id, ack, generation_id",
                                params![device, module, token, now_ms],
                            )?;
                            let feedback = if how == Settlement::Complete {
                                add_feedback(&tx, &removed, wants_positive, "Success", "Success", now)?
                            } else {
                                add_feedback(
                                    &tx,
                                    &removed,
                                    wants_negative,
                                    "Rejected",
                                    "Message rejected",
                                    now,
                                )?
                            };
                            (!removed.is_empty(), feedback > 0)
                        }
                    };
                    tx.commit().map_err(StoreError::from)?;
                    Ok(outcome)
                })
                .await?
        };
        if feedback {
            self.feedback_ready.notify_waiters();
        }
        if found && how == Settlement::Abandon {
            self.signal(&device, &module);
        }
        Ok(found)
    }

    /// Returns the messages locked with `lock_tokens` to their queue (a connection that
    /// delivered them ended before the device acknowledged them); their delivery counts stay
    /// as they are, so the next delivery counts one more.
    ///
    /// # Errors
    /// [`C2dError::Store`].
    pub async fn release(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        lock_tokens: Vec<String>,
    ) -> Result<(), C2dError> {
        if lock_tokens.is_empty() {
            return Ok(());
        }
        let (device, module) = queue_key(device_id, module_id);
        {
            let (device, module) = (device.clone(), module.clone());
            self.store
                .call(move |conn| -> Result<(), C2dError> {
                    let tx = conn.transaction().map_err(StoreError::from)?;
                    {
                        let mut stmt = tx
                            .prepare_cached(
                                "UPDATE c2d_messages SET lock_token = NULL, locked_until_ms = NULL \
                                 WHERE device_id = ?1 AND module_id = ?2 AND lock_token = ?3",
                            )
                            .map_err(StoreError::from)?;
                        for token in &lock_tokens {
                            stmt.execute(params![device, module, token])
                                .map_err(StoreError::from)?;
                        }
                    }
                    tx.commit().map_err(StoreError::from)?;
                    Ok(())
                })
                .await?;
        }
        self.signal(&device, &module);
        Ok(())
    }
}

/// The group-commit writer: every message waiting when a transaction starts goes into it.
async fn writer(queues: std::sync::Weak<C2dQueues>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let Some(queues) = queues.upgrade() else {
            return;
        };
        let now = queues.now();
        let (messages, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.message, j.reply)).unzip();
        let outcome = queues
            .store
            .call(move |conn| commit_group(conn, messages, now))
            .await;
        match outcome {
            Ok((results, targets)) => {
                for (device, module) in targets {
                    queues.signal(&device, &module);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing cloud-to-device messages failed");
                for reply in replies {
                    let _ = reply.send(Err(C2dError::GroupFailed));
                }
            }
        }
    }
}

/// Each message's result, and the queues that received messages.
type GroupOutcome = (Vec<Result<(), C2dError>>, Vec<(String, String)>);

struct Target {
    generation_id: String,
    depth: u64,
    added: u64,
}

fn commit_group(
    conn: &mut Connection,
    messages: Vec<OutgoingMessage>,
    now: DateTime<Utc>,
) -> Result<GroupOutcome, C2dError> {
    let tx = conn.transaction().map_err(StoreError::from)?;
    let mut targets: HashMap<(String, String), Option<Target>> = HashMap::new();
    let mut results = Vec::with_capacity(messages.len());
    let default_expiry = now + chrono::Duration::from_std(DEFAULT_TTL).unwrap_or_default();
    for message in messages {
        let module = message.module_id.clone().unwrap_or_default();
        let key = (message.device_id.clone(), module.clone());
        if !targets.contains_key(&key) {
            let found = match generation_of(&tx, &message.device_id, &module)? {
                Some(generation_id) => Some(Target {
                    depth: queue_depth(&tx, &message.device_id, &module)?,
                    generation_id,
                    added: 0,
                }),
                None => None,
            };
            targets.insert(key.clone(), found);
        }
        let Some(Some(target)) = targets.get_mut(&key) else {
            let device_exists = message.module_id.is_some()
                && generation_of(&tx, &message.device_id, "")?.is_some();
            results.push(Err(match message.module_id {
                Some(module_id) if device_exists => C2dError::ModuleNotFound {
                    device_id: message.device_id,
                    module_id,
                },
                _ => C2dError::DeviceNotFound(message.device_id),
            }));
            continue;
        };
        if target.depth + target.added >= MAX_QUEUE_DEPTH {
            results.push(Err(C2dError::QueueFull(message.device_id)));
            continue;
        }
        let properties = message.properties.to_string();
        tx.prepare_cached(
            "INSERT INTO c2d_messages (device_id, module_id, message_id, ack, enqueued_ms, \
             expiry_ms, generation_id, properties, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                message.device_id,
                module,
                message.message_id,
                message.ack.as_str(),
                now.timestamp_millis(),
                message.expiry.unwrap_or(default_expiry).timestamp_millis(),
                target.generation_id,
                properties,
                message.body,
            ])
        })
        .map_err(StoreError::from)?;
        target.added += 1;
        results.push(Ok(()));
    }
    let mut filled = Vec::new();
    for ((device, module), target) in &targets {
        if let Some(target) = target
            && target.added > 0
        {
            filled.push((device.clone(), module.clone()));
        }
    }
    tx.commit().map_err(StoreError::from)?;
    Ok((results, filled))
}

async fn sweeper(queues: std::sync::Weak<C2dQueues>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(queues) = queues.upgrade() else {
            return;
        };
        if let Err(e) = queues.sweep_expired().await {
            tracing::warn!(error = %e, "sweeping expired cloud-to-device messages failed");
        }
    }
}

/// The generation id of a device (`module == ""`) or module, or `None` when it does not exist.
fn generation_of(
    conn: &Connection,
    device: &str,
    module: &str,
) -> Result<Option<String>, StoreError> {
    let found = if module.is_empty() {
        conn.prepare_cached(
            "SELECT json_extract(record, '$.generationId') FROM devices WHERE device_id = ?1",
        )?
        .query_row(params![device], |r| r.get::<_, Option<String>>(0))
        .optional()?
    } else {
        conn.prepare_cached(
            "SELECT json_extract(record, '$.generationId') FROM modules WHERE device_id = ?1 AND module_id = ?2",
        )?
        .query_row(params![device, module], |r| r.get::<_, Option<String>>(0))
        .optional()?
    };
    Ok(found.map(Option::unwrap_or_default))
}

fn queue_depth(conn: &Connection, device: &str, module: &str) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM c2d_messages WHERE device_id = ?1 AND module_id = ?2",
        )?
        .query_row(params![device, module], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

struct Removed {
    device_id: String,
    message_id: Option<String>,
    ack: Ack,
    generation_id: String,
}

fn remove_messages(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Removed>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, |r| {
        Ok(Removed {
            device_id: r.get(0)?,
            message_id: r.get(1)?,
            ack: r.get::<_, String>(2)?.parse().unwrap_or_default(),
            generation_id: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Adds a feedback record for every message in `removed` whose `ack` passes `wanted`; returns
/// how many were added.
fn add_feedback(
    conn: &Connection,
    removed: &[Removed],
    wanted: fn(Ack) -> bool,
    status: &str,
    description: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO c2d_feedback (device_id, created_ms, record) VALUES (?1, ?2, ?3)",
    )?;
    let mut added = 0;
    for message in removed.iter().filter(|m| wanted(m.ack)) {
        added += 1;
        let record = feedback_record(
            message.message_id.as_deref(),
            &message.device_id,
            &message.generation_id,
            status,
            description,
            now,
        );
        stmt.execute(params![
            message.device_id,
            now.timestamp_millis(),
            record.to_string()
        ])?;
    }
    Ok(added)
}

/// One feedback record as IoT Hub sends it.
fn feedback_record(
    original_message_id: Option<&str>,
    device_id: &str,
    generation_id: &str,
    status: &str,
    description: &str,
    now: DateTime<Utc>,
) -> Value {
    json!({
        "originalMessageId": original_message_id,
        "enqueuedTimeUtc": format_time(now),
        "statusCode": status,
        "description": description,
        "deviceId": device_id,
        "deviceGenerationId": generation_id,
    })
}

/// Milliseconds since the epoch to a UTC time (clamped to the representable range).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
