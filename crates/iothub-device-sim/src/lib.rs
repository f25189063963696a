#![doc = include_str!("../README.md")]

mod config;
mod device;
mod error;
mod fleet;
mod message;
mod methods;

pub use config::{
    API_VERSION, Auth, DEFAULT_KEEP_ALIVE, DEFAULT_TOKEN_LIFETIME, DeviceConfig, MQTTS_PORT,
    Transport, WEBSOCKET_PORT,
};
pub use device::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, DeviceOptions, MAX_TELEMETRY_BYTES,
    SimulatedDevice,
};
pub use error::{BoxError, Error, Result};
pub use fleet::{Fleet, FleetOptions};
pub use message::{C2dMessage, Telemetry};
pub use methods::{MethodHandler, MethodResponder};
