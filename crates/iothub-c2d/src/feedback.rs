//! Feedback on delivered, expired and purged messages: [`FeedbackReceiver`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use fe2o3_amqp::Receiver;
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value;
use futures_util::Stream;
use serde::Deserialize;

use crate::Error;
use crate::connection::{Authenticated, Endpoint, connect};

/// The address IoT Hub serves feedback on.
pub const FEEDBACK_ADDRESS: &str = "/messages/servicebound/feedback";

/// What happened to a message, as a feedback record reports it (IoT Hub's C2D guide,
/// "Message feedback").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FeedbackStatus {
    /// The device completed the message.
    Success,
    /// The message expired before the device completed it.
    Expired,
    /// The message reached its maximum delivery count.
    DeliveryCountExceeded,
    /// The device rejected the message.
    Rejected,
    /// The message was purged from the queue.
    Purged,
    /// A status this version does not know, as sent.
    Other(String),
}

impl<'de> Deserialize<'de> for FeedbackStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.as_str() {
            "Success" | "success" => FeedbackStatus::Success,
            "Expired" | "expired" => FeedbackStatus::Expired,
            "DeliveryCountExceeded" | "deliveryCountExceeded" => {
                FeedbackStatus::DeliveryCountExceeded
            }
            "Rejected" | "rejected" => FeedbackStatus::Rejected,
            "Purged" | "purged" => FeedbackStatus::Purged,
            _ => FeedbackStatus::Other(text),
        })
    }
}

/// One feedback record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FeedbackRecord {
    /// The `message-id` of the message this record is about.
    pub original_message_id: Option<String>,
    /// The device the message was for.
    pub device_id: String,
    /// The generation id of that device.
    #[serde(default)]
    pub device_generation_id: Option<String>,
    /// What happened.
    #[serde(rename = "statusCode")]
    pub status: FeedbackStatus,
    /// The hub's description of the outcome.
    #[serde(default)]
    pub description: Option<String>,
    /// When the hub recorded the outcome (UTC).
    #[serde(default)]
    pub enqueued_time_utc: Option<DateTime<Utc>>,
}

/// One feedback message: up to 64 records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedbackBatch {
    /// The records.
    pub records: Vec<FeedbackRecord>,
    /// The feedback message's `user-id` (the hub name on IoT Hub).
    pub user_id: Option<String>,
}

/// Receives feedback batches. Each batch is settled (accepted) only when the next one is
/// requested, so a batch the application has not taken yet is redelivered after a crash or
/// a lost connection. The receiver reconnects by itself.
///
/// ```no_run
/// # async fn demo(client: iothub_c2d::C2dClient) -> Result<(), iothub_c2d::Error> {
/// let mut feedback = client.feedback_receiver().await?;
/// while let Some(batch) = feedback.next_batch().await? {
///     for record in &batch.records {
///         println!("{:?}: {:?}", record.original_message_id, record.status);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct FeedbackReceiver {
    endpoint: Endpoint,
    live: Option<(Receiver, Authenticated)>,
    unsettled: Option<DeliveryInfo>,
}

impl std::fmt::Debug for FeedbackReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackReceiver")
            .field("endpoint", &self.endpoint.describe())
            .finish_non_exhaustive()
    }
}

impl FeedbackReceiver {
    pub(crate) async fn open(endpoint: Endpoint) -> Result<Self, Error> {
        let mut receiver = FeedbackReceiver {
            endpoint,
            live: None,
            unsettled: None,
        };
        receiver.live = Some(receiver.attach().await?);
        Ok(receiver)
    }

    async fn attach(&self) -> Result<(Receiver, Authenticated), Error> {
        let mut auth = connect(&self.endpoint).await?;
        let receiver = Receiver::builder()
            .name(format!("feedback-{}", uuid::Uuid::new_v4().simple()))
            .source(FEEDBACK_ADDRESS)
            .target(format!("feedback-{}", uuid::Uuid::new_v4().simple()))
            .attach(&mut auth.session)
            .await;
        match receiver {
            Ok(receiver) => Ok((receiver, auth)),
            Err(e) => {
                auth.close();
                Err(Error::amqp(e))
            }
        }
    }

    /// Accepts the previous batch, then waits for the next one, for as long as it takes: IoT
    /// Hub sends a batch when 64 records wait or its batch interval (15 s by default) has
    /// passed, and nothing at all when there is no feedback. Bound the wait with
    /// `tokio::time::timeout` where that matters. Returns `Ok(None)` only when the hub closed
    /// the feedback link for good.
    ///
    /// # Errors
    /// [`Error::Feedback`] for a batch that is not IoT Hub's JSON (it is still accepted, so
    /// it does not come back), [`Error::Connect`] when reconnecting fails.
    pub async fn next_batch(&mut self) -> Result<Option<FeedbackBatch>, Error> {
        let mut failures = 0u32;
        loop {
            if self.live.is_none() {
                self.unsettled = None;
                self.live = Some(self.attach().await?);
            }
            let Some((receiver, auth)) = self.live.as_mut() else {
                continue;
            };
            if let Some(previous) = self.unsettled.take() {
                let _ = receiver.accept(previous).await;
            }
            let dead = auth.dead();
            let received = tokio::select! {
                received = receiver.recv::<Body<Value>>() => received.map_err(Error::amqp),
                () = dead => Err(Error::Amqp("the AMQP connection closed".into())),
            };
            match received {
                Ok(delivery) => {
                    let (info, message) = delivery.into_parts();
                    self.unsettled = Some(info);
                    let user_id = message
                        .properties
                        .as_ref()
                        .and_then(|p| p.user_id.as_ref())
                        .map(|b| String::from_utf8_lossy(b).into_owned());
                    let bytes: Vec<u8> = match &message.body {
                        Body::Data(sections) => {
                            sections.iter().flat_map(|d| d.0.iter().copied()).collect()
                        }
                        Body::Value(v) => match &v.0 {
                            Value::String(s) => s.clone().into_bytes(),
                            Value::Binary(b) => b.to_vec(),
                            _ => Vec::new(),
                        },
                        _ => Vec::new(),
                    };
                    let records: Vec<FeedbackRecord> =
                        serde_json::from_slice(&bytes).map_err(Error::Feedback)?;
                    return Ok(Some(FeedbackBatch { records, user_id }));
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(error = %e, "feedback link failed; reconnecting");
                    if let Some((_, auth)) = self.live.take() {
                        auth.close();
                    }
                    if failures >= self.endpoint.retry.max_attempts() {
                        return Err(e);
                    }
                    tokio::time::sleep(self.endpoint.retry.delay(failures)).await;
                }
            }
        }
    }

    /// The batches as a stream (each one accepted when the next is polled).
    pub fn into_stream(self) -> impl Stream<Item = Result<FeedbackBatch, Error>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut receiver = state?;
            match receiver.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), Some(receiver))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// Accepts the last batch and closes the connection.
    pub async fn close(mut self) {
        if let Some((receiver, auth)) = self.live.take() {
            if let Some(previous) = self.unsettled.take() {
                let _ = receiver.accept(previous).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), receiver.close()).await;
            auth.close();
        }
    }
}
