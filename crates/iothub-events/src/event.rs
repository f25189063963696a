//! What the reader yields and where it starts.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Where reading a partition starts (Event Hubs' event positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventPosition {
    /// The oldest event the endpoint still keeps (IoT Hub keeps one day by default).
    #[default]
    Earliest,
    /// Only events enqueued after the reader attached.
    Latest,
    /// The event with this sequence number (`inclusive`) or the one after it. Resuming from
    /// a [`Checkpoint`] uses this.
    SequenceNumber {
        /// Sequence number in the partition.
        sequence_number: i64,
        /// Whether that event itself is read.
        inclusive: bool,
    },
    /// The event at this offset (`inclusive`) or the one after it.
    Offset {
        /// The offset, as [`DeviceEvent::offset`] gives it.
        offset: i64,
        /// Whether that event itself is read.
        inclusive: bool,
    },
    /// The first event enqueued after this time.
    EnqueuedAfter(DateTime<Utc>),
}

impl EventPosition {
    /// The `apache.org:selector-filter:string` expression for this position.
    pub fn selector(&self) -> String {
        let op = |inclusive: bool| if inclusive { ">=" } else { ">" };
        match self {
            EventPosition::Earliest => "amqp.annotation.x-opt-offset > '-1'".to_owned(),
            EventPosition::Latest => "amqp.annotation.x-opt-offset > '@latest'".to_owned(),
            EventPosition::SequenceNumber {
                sequence_number,
                inclusive,
            } => format!(
                "amqp.annotation.x-opt-sequence-number {} {sequence_number}",
                op(*inclusive)
            ),
            EventPosition::Offset { offset, inclusive } => {
                format!("amqp.annotation.x-opt-offset {} '{offset}'", op(*inclusive))
            }
            EventPosition::EnqueuedAfter(time) => format!(
                "amqp.annotation.x-opt-enqueued-time > {}",
                time.timestamp_millis()
            ),
        }
    }
}

/// Where a reader got to in one partition: keep the last one of each partition (in a file,
/// a database, a blob) and pass them to
/// [`EventReaderBuilder::start_after`](crate::EventReaderBuilder::start_after) to resume
/// after them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Partition id (`"0"`, `"1"`, …).
    pub partition: String,
    /// Sequence number of the last event processed.
    pub sequence_number: i64,
}

/// A device-to-cloud message (or an IoT Hub event message) as the built-in endpoint
/// delivers it.
#[derive(Clone, PartialEq)]
pub struct DeviceEvent {
    /// Partition id it was read from.
    pub partition: String,
    /// Sequence number in the partition (increases by one per event).
    pub sequence_number: i64,
    /// Offset in the partition.
    pub offset: i64,
    /// When the hub enqueued it.
    pub enqueued_time: DateTime<Utc>,
    /// The sending device (`iothub-connection-device-id`), when the hub stamped one.
    pub device_id: Option<String>,
    /// The sending module (`iothub-connection-module-id`).
    pub module_id: Option<String>,
    /// The device's message id.
    pub message_id: Option<String>,
    /// The device's correlation id.
    pub correlation_id: Option<String>,
    /// Content type (e.g. `application/json`).
    pub content_type: Option<String>,
    /// Content encoding (e.g. `utf-8`).
    pub content_encoding: Option<String>,
    /// IoT Hub's system properties from the message annotations (`iothub-*`, with
    /// `iothub-message-source` = `Telemetry` for device messages), as text.
    pub system_properties: BTreeMap<String, String>,
    /// The device's own properties (application properties), as text.
    pub properties: BTreeMap<String, String>,
    /// The body, as the device sent it.
    pub body: Bytes,
}

impl DeviceEvent {
    /// The checkpoint that resumes right after this event.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            partition: self.partition.clone(),
            sequence_number: self.sequence_number,
        }
    }

    /// `iothub-message-source`: `Telemetry` for device messages, or the event kind
    /// (`deviceLifecycleEvents`, `twinChangeEvents`, `deviceConnectionStateEvents`).
    pub fn message_source(&self) -> Option<&str> {
        self.system_properties
            .get("iothub-message-source")
            .map(String::as_str)
    }
}

impl std::fmt::Debug for DeviceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceEvent")
            .field("partition", &self.partition)
            .field("sequence_number", &self.sequence_number)
            .field("offset", &self.offset)
            .field("enqueued_time", &self.enqueued_time)
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("message_id", &self.message_id)
            .field("properties", &self.properties)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The Event Hubs-compatible entity (the `$management` node's hub properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHubProperties {
    /// The Event Hubs-compatible name.
    pub name: String,
    /// When the entity was created (on IoT Hub, when the hub was; on the local hub, when its
    /// data directory was first used). `None` when the answer had none.
    pub created_at: Option<DateTime<Utc>>,
    /// Partition ids, `"0"` to `"n-1"`.
    pub partition_ids: Vec<String>,
}

/// What a partition holds (the `$management` node's partition properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProperties {
    /// Partition id.
    pub id: String,
    /// Sequence number of the oldest event kept.
    pub begin_sequence_number: i64,
    /// Sequence number of the newest event (-1 when none was ever enqueued).
    pub last_enqueued_sequence_number: i64,
    /// Offset of the newest event.
    pub last_enqueued_offset: String,
    /// When the newest event was enqueued.
    pub last_enqueued_time: Option<DateTime<Utc>>,
    /// Whether the partition holds no event.
    pub is_empty: bool,
}

/// The Event Hubs-compatible endpoint a reader reads from.
#[derive(Clone, PartialEq, Eq)]
pub struct EventHubEndpoint {
    /// Host name (`localhost` for the local hub, `…servicebus.windows.net` on Azure).
    pub host: String,
    /// AMQPS port.
    pub port: u16,
    /// The Event Hubs-compatible name.
    pub entity: String,
}

impl std::fmt::Debug for EventHubEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "amqps://{}:{}/{}", self.host, self.port, self.entity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(
            EventPosition::Earliest.selector(),
            "amqp.annotation.x-opt-offset > '-1'"
        );
        assert_eq!(
            EventPosition::SequenceNumber {
                sequence_number: 7,
                inclusive: false
            }
            .selector(),
            "amqp.annotation.x-opt-sequence-number > 7"
        );
        assert_eq!(
            EventPosition::Offset {
                offset: 12,
                inclusive: true
            }
            .selector(),
            "amqp.annotation.x-opt-offset >= '12'"
        );
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default();
        assert_eq!(
            EventPosition::EnqueuedAfter(t).selector(),
            "amqp.annotation.x-opt-enqueued-time > 1700000000123"
        );
    }
}
