//! The crate's one error type.

use std::time::Duration;

/// A boxed cause, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong. No variant carries a key, a token or a private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be used; nothing was sent. The text says why. Not worth
    /// retrying.
    #[error("invalid device configuration: {0}")]
    Config(String),
    /// The connection string cannot be parsed. Not worth retrying.
    #[error("invalid device connection string")]
    ConnectionString(#[source] iothub_auth::ConnectionStringError),
    /// The shared access key is not base64 or is empty. Not worth retrying.
    #[error("invalid shared access key")]
    Key(#[source] iothub_auth::KeyError),
    /// The CA to trust or the client certificate cannot be used. Not worth retrying.
    #[error("unusable TLS settings")]
    Tls(#[source] BoxError),
    /// The hub refused the login with this CONNACK return code: 1 unacceptable protocol
    /// version, 2 identifier rejected, 3 server unavailable (throttled or down: retry later),
    /// 4 bad user name or password, 5 not authorized (unknown or disabled identity, wrong key,
    /// expired token, wrong certificate).
    #[error("the hub refused the connection (CONNACK return code {0})")]
    Refused(u8),
    /// The first connection could not be made (DNS, TCP, TLS, WebSocket upgrade, or the hub
    /// closed it before its CONNACK). Retrying may help.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// Where the device tried to connect (`host:port`, or the WebSocket URL).
        endpoint: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The hub refused to subscribe the device to one of IoT Hub's topic filters.
    #[error("the hub refused the subscription to {0}")]
    Subscribe(String),
    /// The hub answered a twin request with a status other than 2xx (400 a patch that breaks
    /// the twin rules, 429 throttled, 5xx server errors). Retry 429 and 5xx later.
    #[error("the hub answered the twin request with status {status}")]
    Status {
        /// IoT Hub's status.
        status: u16,
        /// The hub's message, or empty.
        message: String,
    },
    /// No answer within the time allowed. A telemetry message may still be stored, and a
    /// reported-properties patch may still be applied.
    #[error("timed out after {after:?} waiting for the {waiting_for}")]
    Timeout {
        /// What was expected (`PUBACK`, `twin response`, …).
        waiting_for: &'static str,
        /// How long the device waited.
        after: Duration,
    },
    /// The message is larger than IoT Hub accepts; nothing was sent.
    #[error("the message has {size} bytes, more than the {max} IoT Hub accepts")]
    TooLarge {
        /// Body and property bag, in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The connection a cloud-to-device message arrived on has closed, so it can no longer be
    /// acknowledged; IoT Hub delivers it again.
    #[error("the message arrived on an earlier connection")]
    ConnectionLost,
    /// The device was disconnected with [`SimulatedDevice::disconnect`](crate::SimulatedDevice::disconnect).
    #[error("the device is disconnected")]
    Disconnected,
    /// The hub sent something that does not follow IoT Hub's MQTT protocol.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
