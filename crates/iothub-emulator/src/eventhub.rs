//! The built-in Event Hubs-compatible endpoint over AMQP ("Read device-to-cloud messages
//! from the built-in endpoint"; the Event Hubs AMQP guide), served on the same AMQPS port
//! and AMQP-over-WebSockets path as the service endpoints.
//!
//! - **The redirect.** A receiver that attaches to `messages/events` on the IoT Hub side
//!   (`messages/events/$management`, `messages/events/ConsumerGroups/{cg}/Partitions/{p}`,
//!   with or without `amqps://{host}/`) is detached with `amqp:link:redirect`, whose info
//!   carries `hostname`, `network-host`, `port` and `address`
//!   (`amqps://localhost:{amqps port}/{entity}/…`, the same path under the entity). The
//!   Event Hubs-compatible entity is named after the hub (`--hub-name`).
//! - **`{entity}/$management`** (and `$management`) answers `READ` requests for
//!   `com.microsoft:eventhub` (name, `created_at`: when the data directory was first used,
//!   kept across restarts; `partition_count`, `partition_ids`) and
//!   `com.microsoft:partition` (`begin_sequence_number`, `last_enqueued_sequence_number`,
//!   `last_enqueued_offset`, `last_enqueued_time_utc`, `is_partition_empty`), with
//!   `status-code` 200, or 400/404 and a `status-description`.
//! - **`{entity}/ConsumerGroups/{cg}/Partitions/{p}`** delivers the partition's events from
//!   the position in the `apache.org:selector-filter:string` source filter, in order, as
//!   link credit allows. Each message carries the annotations `x-opt-sequence-number`,
//!   `x-opt-offset`, `x-opt-enqueued-time` and IoT Hub's `iothub-*` system properties, the
//!   device's message id, correlation id, user id, content type and encoding in its
//!   properties, and the device's own properties as application properties. The link
//!   property `com.microsoft:epoch` makes it an owner-level reader. When the token that
//!   authorized the connection (CBS `put-token` or SASL PLAIN) expires without a new one,
//!   the reader is detached with `amqp:unauthorized-access`.

use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::Sender;
use fe2o3_amqp::types::definitions::{self, AmqpError, ErrorCondition, Fields, LinkError};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Message, MessageAnnotations, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{
    Array, Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value,
};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::consumers::{ConsumerError, ReaderLease};
use crate::events::{EventError, EventLog, StartPosition, StoredEvent};

/// The filter name (and descriptor) of an Event Hubs start position.
pub const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
/// The link property that makes a receiver an owner-level (epoch) reader.
pub const EPOCH_PROPERTY: &str = "com.microsoft:epoch";
/// Events read from the store at a time for one receiver.
const READ_BATCH: usize = 512;
/// Deliveries a receiver may have unsettled before the reader waits for their outcomes.
const IN_FLIGHT: usize = 1024;

/// A node of the built-in endpoint named by a link address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsNode {
    /// `messages/events…` on the IoT Hub side: answered with a redirect to the entity;
    /// `rest` is what follows `messages/events` (e.g. `/$management`).
    Redirect {
        /// The path after `messages/events`.
        rest: String,
    },
    /// The entity's management node.
    Management,
    /// A partition of a consumer group.
    Partition {
        /// Consumer group as written.
        group: String,
        /// Partition id as written.
        partition: String,
    },
}

/// The built-in endpoint node `path` names (`path` without scheme and host), if any.
pub fn events_node(path: &str, entity: &str) -> Option<EventsNode> {
    let path = path.trim_start_matches('/');
    let lower = path.to_ascii_lowercase();
    if lower == "messages/events" || lower.starts_with("messages/events/") {
        return Some(EventsNode::Redirect {
            rest: path["messages/events".len()..].to_owned(),
        });
    }
    if path == "$management" {
        return Some(EventsNode::Management);
    }
    let mut parts = path.split('/');
    let first = parts.next()?;
    if !first.eq_ignore_ascii_case(entity) {
        return None;
    }
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        ["$management"] => Some(EventsNode::Management),
        [cg, group, p, partition]
            if cg.eq_ignore_ascii_case("ConsumerGroups")
                && p.eq_ignore_ascii_case("Partitions") =>
        {
            Some(EventsNode::Partition {
                group: (*group).to_owned(),
                partition: (*partition).to_owned(),
            })
        }
        _ => None,
    }
}

/// The `amqp:link:redirect` error that sends a client from `messages/events{rest}` to the
/// Event Hubs-compatible entity on this hub's AMQPS port.
pub fn redirect_error(entity: &str, amqps_port: u16, rest: &str) -> definitions::Error {
    let address = format!("amqps://localhost:{amqps_port}/{entity}{rest}");
    let mut info = Fields::new();
    info.insert(Symbol::from("hostname"), Value::String("localhost".into()));
    info.insert(
        Symbol::from("network-host"),
        Value::String("localhost".into()),
    );
    info.insert(Symbol::from("port"), Value::Int(i32::from(amqps_port)));
    info.insert(Symbol::from("address"), Value::String(address));
    definitions::Error {
        condition: ErrorCondition::LinkError(LinkError::Redirect),
        description: Some(format!(
            "The built-in endpoint is the Event Hubs-compatible entity '{entity}'; follow the redirect."
        )),
        info: Some(Box::new(info)),
    }
}

/// The start position a receiver's source filter asks for (the start of the stream when
/// there is no filter).
///
/// # Errors
/// A message naming the filter that cannot be read.
pub fn start_position(filter: Option<&Value>) -> Result<StartPosition, String> {
    let Some(value) = filter else {
        return Ok(StartPosition::Start);
    };
    let not_text = "The selector filter is not a string (apache.org:selector-filter:string).";
    let expression = match value {
        Value::Described(d) => match &d.value {
            Value::String(s) => s.clone(),
            _ => return Err(not_text.to_owned()),
        },
        Value::String(s) => s.clone(),
        _ => return Err(not_text.to_owned()),
    };
    parse_selector(&expression)
}

/// Parses `amqp.annotation.x-opt-{offset|sequence-number|enqueued-time} {>|>=|=} value`
/// (`x-opt-enqueuedtimeutc` is taken for `x-opt-enqueued-time`).
///
/// # Errors
/// A message that quotes the expression.
pub fn parse_selector(expression: &str) -> Result<StartPosition, String> {
    let bad = || {
        format!(
            "The selector filter '{}' is not an Event Hubs start position (amqp.annotation.x-opt-offset, x-opt-sequence-number or x-opt-enqueued-time, then >, >= or =, then a value).",
            expression.escape_default()
        )
    };
    let text = expression.trim();
    let rest = text
        .strip_prefix("amqp.annotation.")
        .ok_or_else(bad)?
        .trim_start();
    let (field, rest) = rest
        .split_once(|c: char| c.is_whitespace() || c == '>' || c == '=')
        .map(|(f, _)| (f, &rest[f.len()..]))
        .ok_or_else(bad)?;
    let rest = rest.trim_start();
    let (inclusive, value) = if let Some(v) = rest.strip_prefix(">=") {
        (true, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (false, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (true, v)
    } else {
        return Err(bad());
    };
    let value = value.trim();
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    let number = || value.parse::<i64>().map_err(|_| bad());
    match field {
        "x-opt-offset" => match value {
            "-1" => Ok(StartPosition::Start),
            "@latest" => Ok(StartPosition::End),
            _ => Ok(StartPosition::Offset {
                offset: number()?,
                inclusive,
            }),
        },
        "x-opt-sequence-number" => Ok(StartPosition::SequenceNumber {
            sequence_number: number()?,
            inclusive,
        }),
        // `x-opt-enqueuedtimeutc` is the older name, which Event Hubs still takes and
        // Microsoft's `az iot hub monitor-events` sends.
        "x-opt-enqueued-time" | "x-opt-enqueuedtimeutc" => Ok(StartPosition::EnqueuedTime {
            millis: number()?,
            inclusive,
        }),
        _ => Err(bad()),
    }
}

/// The owner level in a link's properties, if any.
///
/// # Errors
/// A message when the property is not an integer.
pub fn epoch_of(properties: Option<&Fields>) -> Result<Option<i64>, String> {
    match properties.and_then(|p| p.get(&Symbol::from(EPOCH_PROPERTY))) {
        None => Ok(None),
        Some(Value::Long(v)) => Ok(Some(*v)),
        Some(Value::Int(v)) => Ok(Some(i64::from(*v))),
        Some(Value::Uint(v)) => Ok(Some(i64::from(*v))),
        Some(Value::Ulong(v)) => i64::try_from(*v)
            .map(Some)
            .map_err(|_| "The epoch is too large.".to_owned()),
        Some(other) => Err(format!(
            "The link property {EPOCH_PROPERTY} is not a long: {other:?}."
        )),
    }
}

/// The error a refused reader gets, as Event Hubs clients expect it.
pub fn consumer_error(error: &ConsumerError) -> definitions::Error {
    let condition = match error {
        ConsumerError::NoSuchGroup(_) => ErrorCondition::AmqpError(AmqpError::NotFound),
        ConsumerError::EpochTooLow { .. } => ErrorCondition::LinkError(LinkError::Stolen),
        ConsumerError::TooManyReaders { .. } => {
            ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded)
        }
    };
    plain_error(condition, &error.to_string())
}

/// An error with a condition and a description.
pub fn plain_error(condition: ErrorCondition, text: &str) -> definitions::Error {
    definitions::Error {
        condition,
        description: Some(text.to_owned()),
        info: None,
    }
}

/// The AMQP message for a stored event, as the built-in endpoint delivers it: Event Hubs'
/// `x-opt-*` annotations, IoT Hub's `iothub-*` system properties as annotations too, the
/// standard properties (message id, correlation id, user id, content type and encoding) and
/// the application properties. The event is consumed: its texts and body move into the
/// message.
pub fn event_message(event: StoredEvent) -> Message<fe2o3_amqp::types::messaging::Data> {
    let StoredEvent {
        sequence_number,
        offset,
        enqueued,
        properties,
        body,
        ..
    } = event;
    let mut annotations = OrderedMap::new();
    let mut annotate = |key: &str, value: Value| {
        annotations.insert(
            fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(Symbol::from(key)),
            value,
        );
    };
    annotate("x-opt-sequence-number", Value::Long(sequence_number));
    annotate("x-opt-offset", Value::String(offset.to_string()));
    annotate(
        "x-opt-enqueued-time",
        Value::Timestamp(Timestamp::from_milliseconds(enqueued.timestamp_millis())),
    );
    let mut message_properties = Properties::default();
    for (key, value) in properties.system {
        match key.as_str() {
            "message-id" => message_properties.message_id = Some(MessageId::String(value)),
            "correlation-id" => {
                message_properties.correlation_id = Some(MessageId::String(value));
            }
            "user-id" => message_properties.user_id = Some(Binary::from(value.into_bytes())),
            "content-type" => message_properties.content_type = Some(Symbol::from(value)),
            "content-encoding" => {
                message_properties.content_encoding = Some(Symbol::from(value));
            }
            k if k.starts_with("iothub-") => {
                annotations.insert(
                    fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(Symbol::from(key)),
                    Value::String(value),
                );
            }
            _ => {}
        }
    }
    let mut app = OrderedMap::new();
    for (key, value) in properties.application {
        app.insert(key, SimpleValue::String(value));
    }
    Message::builder()
        .properties(message_properties)
        .message_annotations(MessageAnnotations(annotations))
        .application_properties(ApplicationProperties(app))
        .data(Binary::from(body))
        .build()
}

/// When a connection's authorization ends: the expiry of its CBS or SASL PLAIN token, read
/// again each time (a later `put-token` moves it). `None` when it is not authorized.
pub type AuthorizedUntil = Box<dyn Fn() -> Option<SystemTime> + Send + Sync>;

/// The instant the authorization in `until` ends, or `None` when it already has.
fn authorized_deadline(until: &AuthorizedUntil) -> Option<tokio::time::Instant> {
    let left = until()?.duration_since(SystemTime::now()).ok()?;
    (!left.is_zero()).then(|| tokio::time::Instant::now() + left)
}

/// The detach of a reader whose token expired without a new one, as Event Hubs detaches it.
fn token_expired() -> definitions::Error {
    plain_error(
        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
        "The token that authorized this link has expired; put a new one on $cbs before it expires.",
    )
}

/// Delivers `partition` from sequence number `next` on, until the client detaches, another
/// reader takes the partition over, the connection's token expires without a new one
/// (detached with `amqp:unauthorized-access`), or the emulator stops.
pub async fn deliver(
    mut sender: Sender,
    events: Arc<EventLog>,
    partition: u32,
    mut next: i64,
    mut lease: ReaderLease,
    authorized_until: AuthorizedUntil,
) {
    let mut tail = match events.subscribe(partition) {
        Ok(tail) => tail,
        Err(e) => {
            let _ = sender
                .close_with_error(plain_error(
                    ErrorCondition::AmqpError(AmqpError::NotFound),
                    &e.to_string(),
                ))
                .await;
            return;
        }
    };
    let mut pending = FuturesUnordered::new();
    loop {
        let taken_by = *lease.stolen.borrow();
        if let Some(epoch) = taken_by {
            let _ = sender.close_with_error(stolen(epoch)).await;
            return;
        }
        let Some(deadline) = authorized_deadline(&authorized_until) else {
            let _ = sender.close_with_error(token_expired()).await;
            return;
        };
        // One timer for the whole pass, not one per event sent.
        let expiry = tokio::time::sleep_until(deadline);
        tokio::pin!(expiry);
        tail.borrow_and_update();
        let batch = match events.read(partition, next, READ_BATCH).await {
            Ok(batch) => batch,
            Err(EventError::Stopped) => return,
            Err(e) => {
                tracing::warn!(error = %e, partition, "reading the event log failed");
                let _ = sender
                    .close_with_error(plain_error(
                        ErrorCondition::AmqpError(AmqpError::InternalError),
                        "The hub could not read the partition.",
                    ))
                    .await;
                return;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                changed = tail.changed() => if changed.is_err() { return },
                _ = lease.stolen.changed() => {}
                () = &mut expiry => {}
                _ = sender.on_detach() => return,
                Some(_) = pending.next(), if !pending.is_empty() => {}
            }
            continue;
        }
        for event in batch {
            let sequence_number = event.sequence_number;
            let message = event_message(event);
            let sent = tokio::select! {
                sent = sender.send_batchable(message) => sent,
                _ = lease.stolen.changed() => break,
                // The loop checks again: a renewed token goes on from this event.
                () = &mut expiry => break,
            };
            match sent {
                Ok(fut) => pending.push(fut),
                Err(_) => return,
            }
            next = sequence_number + 1;
            while pending.len() >= IN_FLIGHT {
                if pending.next().await.is_none() {
                    break;
                }
            }
        }
    }
}

fn stolen(epoch: i64) -> definitions::Error {
    plain_error(
        ErrorCondition::LinkError(LinkError::Stolen),
        &format!(
            "New receiver with higher epoch of '{epoch}' is created hence current receiver is getting disconnected."
        ),
    )
}

/// What a management request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagementRequest {
    /// Hub properties.
    Hub {
        /// The entity name asked for.
        name: String,
    },
    /// Partition properties.
    Partition {
        /// The entity name asked for.
        name: String,
        /// The partition id as written.
        partition: String,
    },
}

/// Reads a management request from its application properties.
///
/// # Errors
/// `(status, description)` for a request the node does not serve.
pub fn management_request(
    get: impl Fn(&str) -> Option<String>,
) -> Result<ManagementRequest, (i32, String)> {
    if get("operation").as_deref() != Some("READ") {
        return Err((
            400,
            "Only the READ operation is supported on $management.".to_owned(),
        ));
    }
    let name = get("name").unwrap_or_default();
    match get("type").as_deref() {
        Some("com.microsoft:eventhub") => Ok(ManagementRequest::Hub { name }),
        Some("com.microsoft:partition") => match get("partition") {
            Some(partition) => Ok(ManagementRequest::Partition { name, partition }),
            None => Err((
                400,
                "A partition request needs the application property 'partition'.".to_owned(),
            )),
        },
        other => Err((
            400,
            format!(
                "The management request type '{}' is not supported.",
                other.unwrap_or_default().escape_default()
            ),
        )),
    }
}

/// Answers a management request: the reply body, or `(status, description)`.
pub async fn answer_management(
    request: &ManagementRequest,
    entity: &str,
    created_at_ms: i64,
    events: &EventLog,
) -> Result<Value, (i32, String)> {
    let name = match request {
        ManagementRequest::Hub { name } | ManagementRequest::Partition { name, .. } => name,
    };
    if !name.eq_ignore_ascii_case(entity) {
        return Err((
            404,
            format!(
                "The messaging entity '{}' could not be found; this hub's is '{entity}'.",
                name.escape_default()
            ),
        ));
    }
    let mut map: OrderedMap<Value, Value> = OrderedMap::new();
    let mut put = |k: &str, v: Value| {
        map.insert(Value::String(k.to_owned()), v);
    };
    match request {
        ManagementRequest::Hub { .. } => {
            put("name", Value::String(entity.to_owned()));
            put(
                "created_at",
                Value::Timestamp(Timestamp::from_milliseconds(created_at_ms)),
            );
            put(
                "partition_count",
                Value::Int(i32::try_from(events.partitions()).unwrap_or(i32::MAX)),
            );
            put(
                "partition_ids",
                Value::Array(Array::from(
                    (0..events.partitions())
                        .map(|p| Value::String(p.to_string()))
                        .collect::<Vec<_>>(),
                )),
            );
        }
        ManagementRequest::Partition { partition, .. } => {
            let unknown = || {
                (
                    404,
                    format!(
                        "Partition '{}' does not exist; the partitions are 0 to {}.",
                        partition.escape_default(),
                        events.partitions().saturating_sub(1)
                    ),
                )
            };
            let id: u32 = partition.parse().map_err(|_| unknown())?;
            let info = events.partition_info(id).await.map_err(|e| match e {
                EventError::NoSuchPartition(_) => unknown(),
                other => (500, other.to_string()),
            })?;
            put("name", Value::String(entity.to_owned()));
            put("partition", Value::String(id.to_string()));
            put(
                "begin_sequence_number",
                Value::Long(info.begin_sequence_number),
            );
            put(
                "last_enqueued_sequence_number",
                Value::Long(info.last_sequence_number),
            );
            put(
                "last_enqueued_offset",
                Value::String(info.last_offset.to_string()),
            );
            put(
                "last_enqueued_time_utc",
                Value::Timestamp(Timestamp::from_milliseconds(
                    info.last_enqueued.map_or(0, |t| t.timestamp_millis()),
                )),
            );
            put("is_partition_empty", Value::Bool(info.is_empty));
        }
    }
    Ok(Value::Map(map))
}

/// The reply message of a management request.
pub fn management_reply(
    request: &Message<fe2o3_amqp::types::messaging::Body<Value>>,
    outcome: Result<Value, (i32, String)>,
) -> Message<AmqpValue<Value>> {
    let props = request.properties.as_ref();
    let (status, description, body) = match outcome {
        Ok(body) => (200, "OK".to_owned(), body),
        Err((status, description)) => (status, description, Value::Null),
    };
    let mut app = OrderedMap::new();
    app.insert("status-code".to_owned(), SimpleValue::Int(status));
    app.insert(
        "status-description".to_owned(),
        SimpleValue::String(description),
    );
    Message::builder()
        .properties(Properties {
            correlation_id: props.and_then(|p| p.message_id.clone()),
            to: props.and_then(|p| p.reply_to.clone()),
            ..Default::default()
        })
        .application_properties(ApplicationProperties(app))
        .value(body)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_by_address() {
        assert_eq!(
            events_node("/messages/events/$management", "hub"),
            Some(EventsNode::Redirect {
                rest: "/$management".into()
            })
        );
        assert_eq!(
            events_node(
                "messages/events/ConsumerGroups/$Default/Partitions/0",
                "hub"
            ),
            Some(EventsNode::Redirect {
                rest: "/ConsumerGroups/$Default/Partitions/0".into()
            })
        );
        assert_eq!(
            events_node("hub/ConsumerGroups/$Default/Partitions/3", "HUB"),
            Some(EventsNode::Partition {
                group: "$Default".into(),
                partition: "3".into()
            })
        );
        assert_eq!(
            events_node("/hub/$management", "hub"),
            Some(EventsNode::Management)
        );
        assert_eq!(
            events_node("$management", "hub"),
            Some(EventsNode::Management)
        );
        assert_eq!(events_node("other/$management", "hub"), None);
        assert_eq!(events_node("hub/ConsumerGroups/x", "hub"), None);
        assert_eq!(events_node("/messages/devicebound", "hub"), None);
    }

    #[test]
    fn selector_filters() {
        let ok = |s: &str| parse_selector(s).expect(s);
        assert_eq!(
            ok("amqp.annotation.x-opt-offset > '-1'"),
            StartPosition::Start
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-offset > '@latest'"),
            StartPosition::End
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-offset >= '120'"),
            StartPosition::Offset {
                offset: 120,
                inclusive: true
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-sequence-number > 5"),
            StartPosition::SequenceNumber {
                sequence_number: 5,
                inclusive: false
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-enqueued-time>1700000000000"),
            StartPosition::EnqueuedTime {
                millis: 1_700_000_000_000,
                inclusive: false
            }
        );
        // The older name, as `az iot hub monitor-events` writes it.
        assert_eq!(
            ok("amqp.annotation.x-opt-enqueuedtimeutc > 1796660488747"),
            StartPosition::EnqueuedTime {
                millis: 1_796_660_488_747,
                inclusive: false
            }
        );
        for bad in [
            "",
            "x-opt-offset > 1",
            "amqp.annotation.x-opt-offset < '1'",
            "amqp.annotation.x-opt-offset > 'abc'",
            "amqp.annotation.x-opt-partition > 1",
            "amqp.annotation.x-opt-sequence-number >",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_info() {
        let e = redirect_error("emulator", 25671, "/$management");
        assert_eq!(e.condition, ErrorCondition::LinkError(LinkError::Redirect));
        let info = e.info.expect("info");
        assert_eq!(
            info.get(&Symbol::from("address")),
            Some(&Value::String(
                "amqps://localhost:25671/emulator/$management".into()
            ))
        );
        assert_eq!(info.get(&Symbol::from("port")), Some(&Value::Int(25671)));
    }

    #[test]
    fn management_requests() {
        let props = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            management_request(props(&[
                ("operation", "READ"),
                ("type", "com.microsoft:eventhub"),
                ("name", "hub")
            ])),
            Ok(ManagementRequest::Hub { name: "hub".into() })
        );
        assert!(management_request(props(&[("operation", "WRITE")])).is_err());
        assert!(
            management_request(props(&[
                ("operation", "READ"),
                ("type", "com.microsoft:partition")
            ]))
            .is_err()
        );
    }
}
