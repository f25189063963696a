//! Cloud-to-device (C2D) messaging for Azure IoT Hub over AMQP 1.0.
//!
//! - [`C2dClient`] sends [`Message`]s to device (and module) queues on one connection and
//!   one link, many in flight at once; each send returns when the hub has settled the
//!   message, with a typed [`Error`] carrying IoT Hub's error code when it was refused.
//! - [`FeedbackReceiver`] yields [`FeedbackBatch`]es of typed [`FeedbackRecord`]s, matched to
//!   messages by [`Message::message_id`].
//! - [`C2dClient::purge_queue`] empties a device's queue.
//!
//! Transports: AMQP over TLS (port 5671) or over WebSockets on port 443
//! ([`Transport::AmqpWebSockets`]). Authentication is claims-based security (`$cbs`
//! put-token) with a SAS token from a shared access policy, or an Azure AD token; tokens are
//! renewed on the open connection before they expire. A lost connection is reopened with
//! backoff ([`RetryPolicy`]); a message whose outcome was lost with it is reported as
//! [`Error::OutcomeUnknown`] and never resent silently.
//!
//! Against the local hub (`iothub-emulator`), pass its AMQPS port and CA:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let hub = iothub_emulator::Emulator::builder().data_dir(dir.path()).start().await?;
//! let client = iothub_c2d::C2dClient::builder()
//!     .connection_string(&hub.connection_string())
//!     .amqps_port(hub.amqps_port())
//!     .add_root_certificate_pem(hub.ca_pem())
//!     .build()?;
//! # let _ = client; Ok(()) }
//! ```

mod client;
mod connection;
/// The AMQP connection under [`C2dClient`]: TLS or WebSockets, SASL ANONYMOUS, CBS
/// put-token renewed before expiry, retries. For the SDK's other AMQP layers.
pub mod amqp {
    pub use crate::connection::{
        Authenticated, Endpoint, SERVICEBUS_PATH, connect, reply_status, tls_config,
    };
    pub use crate::error::condition_text;
}
mod error;
mod feedback;
mod message;
pub mod websocket;

pub use client::{
    C2dClient, C2dClientBuilder, DEFAULT_AMQPS_PORT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SEND_TIMEOUT,
    PurgeResult, RetryPolicy, SendRequest, Transport,
};
pub use error::{Error, ErrorCode, HubError};
pub use feedback::{
    FEEDBACK_ADDRESS, FeedbackBatch, FeedbackReceiver, FeedbackRecord, FeedbackStatus,
};
pub use message::{Ack, Message};
