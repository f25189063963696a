//! The CLI's error: one line for the user, with IoT Hub's error code when the hub gave one.

use std::fmt;

/// A failed command. [`fmt::Display`] is the one line printed after `error: `; it never
/// holds a key or token (the SDK errors it is made from never do).
#[derive(Debug)]
pub struct CliError {
    message: String,
    /// Exit status: 1 for a failure, 2 for a usage error, 130 for an interrupt.
    pub status: u8,
}

impl CliError {
    /// A failure with this message (exit status 1).
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            status: 1,
        }
    }

    /// The same error with another exit status.
    pub fn with_status(mut self, status: u8) -> Self {
        self.status = status;
        self
    }

    /// Adds what was being done in front of the message.
    pub fn context(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Result` with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// An error and its sources, joined with `: `, skipping a source whose text its parent
/// already repeats.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// `DeviceNotFound (404001): explanation` for an answer from IoT Hub.
fn service_line(e: &iothub_registry::ServiceError) -> String {
    let mut line = e.code.to_string();
    if !e.message.is_empty() {
        line.push_str(": ");
        line.push_str(e.message.trim());
    } else {
        line.push_str(&format!(" (HTTP {})", e.status));
    }
    line
}

impl From<iothub_registry::Error> for CliError {
    fn from(e: iothub_registry::Error) -> Self {
        if let Some(s) = e.service_error() {
            return CliError::new(service_line(s));
        }
        match e {
            iothub_registry::Error::C2d(inner) => CliError::from(inner),
            e => CliError::new(chain(&e)),
        }
    }
}

impl From<iothub_c2d::Error> for CliError {
    fn from(e: iothub_c2d::Error) -> Self {
        match &e {
            // `DeviceNotFound (404001): …`, as for REST answers.
            iothub_c2d::Error::Hub(hub) if !hub.description.trim().is_empty() => {
                CliError::new(format!("{}: {}", hub.code, hub.description.trim()))
            }
            iothub_c2d::Error::Hub(hub) => CliError::new(hub.code.to_string()),
            _ => CliError::new(chain(&e)),
        }
    }
}

impl From<iothub_events::Error> for CliError {
    fn from(e: iothub_events::Error) -> Self {
        CliError::new(chain(&e))
    }
}

impl From<iothub_device_sim::Error> for CliError {
    fn from(e: iothub_device_sim::Error) -> Self {
        CliError::new(chain(&e))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<iothub_registry::TwinPatchError> for CliError {
    fn from(e: iothub_registry::TwinPatchError) -> Self {
        CliError::new(chain(&e))
    }
}
