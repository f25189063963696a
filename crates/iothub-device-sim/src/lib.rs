//! Simulated Azure IoT Hub devices over MQTT, for tests, demos and load.
//!
//! A [`SimulatedDevice`] is a real MQTT 3.1.1 client (rumqttc, TLS through rustls, or MQTT
//! over WebSockets) that logs in as IoT Hub expects (client id, user name, SAS token or X.509
//! client certificate), then:
//! - answers direct methods with a [`MethodResponder`] (a fixed answer, an echo, or a
//!   callback);
//! - records cloud-to-device messages ([`SimulatedDevice::next_c2d`]) and acknowledges them
//!   (or not, to simulate a device that fails before it processes one);
//! - reads its twin, reports properties, records desired-property changes and can follow
//!   them (report each back);
//! - sends telemetry and waits for the hub's acknowledgement;
//! - reconnects with a fresh token when the connection drops or the token expires.
//!
//! A [`Fleet`] runs many of them in one process, for load tests: connect N devices with
//! bounded concurrency, count how many are connected, make them all reconnect at once.
//!
//! It works against a real IoT hub and against the local hub (`iothub-emulator`), where the
//! configuration needs the hub's CA ([`DeviceConfig::with_ca_pem`]) and its MQTT port
//! ([`DeviceConfig::with_port`]). The topics and property encoding come from
//! `iothub_core::mqtt` (IoT Hub's "Communicate with an IoT hub using the MQTT protocol").

mod config;
mod device;
mod fleet;

use std::fmt;
use std::sync::Arc;

use serde_json::{Value, json};

pub use config::{
    Auth, DEFAULT_KEEP_ALIVE, DEFAULT_TOKEN_LIFETIME, DeviceConfig, MQTTS_PORT, Transport,
    WEBSOCKET_PORT,
};
pub use device::{
    C2dMessage, DEFAULT_OPERATION_TIMEOUT, DeviceOptions, SimulatedDevice, Telemetry,
};
pub use fleet::{Fleet, FleetOptions};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be used (the message says why).
    #[error("invalid device configuration: {0}")]
    Config(String),
    /// The hub refused the login with this CONNACK return code (1 protocol version, 2 client
    /// id, 3 server unavailable, 4 bad user name or password, 5 not authorized).
    #[error("the hub refused the connection (CONNACK return code {0})")]
    Refused(u8),
    /// The hub could not be reached, or the connection failed before it was ready.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The hub answered a twin request with an error status (IoT Hub's HTTP-like statuses:
    /// 400 malformed, 429 throttled, 5xx server errors).
    #[error("the hub answered {status}: {message}")]
    Status {
        /// The status.
        status: u16,
        /// The hub's message, if any.
        message: String,
    },
    /// No answer in time.
    #[error("timed out waiting for the {0}")]
    Timeout(&'static str),
    /// The device was shut down.
    #[error("the device is disconnected")]
    Disconnected,
    /// The hub sent something that is not IoT Hub's protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A direct-method callback: method name and JSON payload in, status and JSON payload out.
pub type MethodHandler = Arc<dyn Fn(&str, &Value) -> (i32, Value) + Send + Sync>;

/// How a simulated device answers direct methods.
#[derive(Clone, Default)]
pub enum MethodResponder {
    /// Status 200 with `{"method": name, "echo": payload}` (the default).
    #[default]
    Echo,
    /// The same status and payload for every method.
    Fixed {
        /// The status.
        status: i32,
        /// The payload.
        payload: Value,
    },
    /// Whatever the callback returns.
    Callback(MethodHandler),
}

impl MethodResponder {
    /// A responder from a callback.
    pub fn callback(f: impl Fn(&str, &Value) -> (i32, Value) + Send + Sync + 'static) -> Self {
        MethodResponder::Callback(Arc::new(f))
    }

    /// The answer to `method` with `payload`.
    pub fn answer(&self, method: &str, payload: &Value) -> (i32, Value) {
        match self {
            MethodResponder::Echo => (200, json!({"method": method, "echo": payload})),
            MethodResponder::Fixed { status, payload } => (*status, payload.clone()),
            MethodResponder::Callback(f) => f(method, payload),
        }
    }
}

impl fmt::Debug for MethodResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodResponder::Echo => f.write_str("Echo"),
            MethodResponder::Fixed { status, .. } => write!(f, "Fixed({status})"),
            MethodResponder::Callback(_) => f.write_str("Callback"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responders() {
        assert_eq!(
            MethodResponder::Echo.answer("m", &json!(1)),
            (200, json!({"method": "m", "echo": 1}))
        );
        let fixed = MethodResponder::Fixed {
            status: 404,
            payload: json!("no"),
        };
        assert_eq!(fixed.answer("m", &Value::Null), (404, json!("no")));
        let cb = MethodResponder::callback(|m, p| (201, json!([m, p])));
        assert_eq!(cb.answer("x", &json!(2)), (201, json!(["x", 2])));
    }
}
