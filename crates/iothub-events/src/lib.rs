#![doc = include_str!("../README.md")]

mod error;
mod event;
mod reader;

pub use error::Error;
pub use event::{
    Checkpoint, DeviceEvent, EventHubEndpoint, EventHubProperties, EventPosition,
    PartitionProperties,
};
/// How the reader reaches the hub: AMQP over TLS or over WebSockets.
pub use iothub_c2d::Transport;
pub use reader::{
    DEFAULT_AMQPS_PORT, DEFAULT_CONSUMER_GROUP, DEFAULT_PREFETCH, EventReader, EventReaderBuilder,
    EventStream,
};
