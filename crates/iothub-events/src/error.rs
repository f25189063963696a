//! Errors of the reader.

use std::time::Duration;

/// Why reading the built-in endpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder's settings are incomplete or malformed (no connection string, a
    /// connection string without a shared access key, an unreadable CA file).
    #[error("invalid reader configuration: {0}")]
    Config(String),
    /// Connecting or authenticating failed (after the retries), or the token was refused.
    #[error("cannot connect to the endpoint: {0}")]
    Connect(#[from] iothub_c2d::Error),
    /// The hub did not answer the `messages/events` attach with the redirect to its
    /// Event Hubs-compatible endpoint.
    #[error("the hub did not redirect to its built-in endpoint: {0}")]
    Redirect(String),
    /// The endpoint refused or closed a receiver link. `condition` is the AMQP error
    /// condition: `amqp:not-found` (unknown consumer group or partition),
    /// `amqp:link:stolen` (an owner-level reader took the partition over),
    /// `amqp:resource-limit-exceeded` (five readers already), `amqp:unauthorized-access`,
    /// `com.microsoft:argument-error` (a bad start position).
    #[error("the endpoint refused the receiver ({condition}): {description}")]
    Refused {
        /// The AMQP error condition.
        condition: String,
        /// The endpoint's description.
        description: String,
    },
    /// A `$management` request was answered with an error status.
    #[error("management request failed with status {status}: {description}")]
    Management {
        /// The `status-code` (404 for an unknown partition or entity, 401 unauthorized).
        status: i32,
        /// The `status-description`.
        description: String,
    },
    /// The AMQP connection failed while reading (the stream reconnects by itself; this is
    /// reported only when it cannot).
    #[error("AMQP failure: {0}")]
    Amqp(String),
    /// An operation did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// An owner-level (epoch) reader took the partition over.
    pub fn is_stolen(&self) -> bool {
        matches!(self, Error::Refused { condition, .. } if condition == "amqp:link:stolen")
    }

    /// The consumer group, partition or entity does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Refused { condition, .. } => condition == "amqp:not-found",
            Error::Management { status, .. } => *status == 404,
            _ => false,
        }
    }

    /// The credentials were refused.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            Error::Refused { condition, .. } => condition == "amqp:unauthorized-access",
            Error::Management { status, .. } => *status == 401,
            Error::Connect(e) => e.is_unauthorized(),
            _ => false,
        }
    }

    /// Whether reconnecting may help (connection failures, timeouts); refusals are final.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Amqp(_) | Error::Timeout(_) => true,
            Error::Connect(e) => !e.is_unauthorized(),
            _ => false,
        }
    }
}
