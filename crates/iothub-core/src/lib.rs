//! The vocabulary of Azure IoT Hub's service API, shared by the iothub-rs clients and the
//! local emulator. Nothing here does I/O: no sockets, no files, no clock, no async runtime.
//!
//! - [`ErrorCode`]: IoT Hub's error codes, each with its name (the `iothub-errorcode`
//!   header and the `ErrorCode:<Name>;` message prefix), its six-digit number and the HTTP
//!   status those digits start with.
//! - [`DeviceStatus`], [`AuthenticationType`], [`ConnectionState`], [`ImportMode`]: the
//!   string values of the identity registry, with their wire spelling in `serde` and
//!   `Display`, parsed without regard to ASCII case as IoT Hub does ([`UnknownValue`] when a
//!   value is not one of them).
//! - [`ETag`] and the [`etag`] functions: quoting an ETag for `If-Match`, reading an
//!   `If-Match` value, comparing it with the stored one.
//! - [`Ack`]: the feedback a cloud-to-device message asks for (`iothub-ack`).
//! - [`mqtt`]: the MQTT topics of devices and the hub, and the property bag in them;
//!   [`websocket`]: the WebSocket path and sub-protocols of AMQP and MQTT over port 443.
//! - [`limits`]: IoT Hub's documented limits (id rule, bulk size, C2D queue and message size,
//!   direct-method payload, twin sizes and depth, …), each naming its source.
//! - [`redact`]: `Debug` output for optional secrets.
//!
//! ```
//! use iothub_core::{DeviceStatus, ErrorCode, ETag, ImportMode};
//!
//! let code = ErrorCode::from_name("DeviceNotFound");
//! assert_eq!(code.number(), Some(404001));
//! assert_eq!(code.status(), Some(404));
//! assert_eq!(ErrorCode::from_number(403004), ErrorCode::DeviceMaximumQueueDepthExceeded);
//!
//! assert_eq!("Disabled".parse::<DeviceStatus>(), Ok(DeviceStatus::Disabled));
//! assert_eq!(ImportMode::UpdateTwinIfMatchETag.as_str(), "updateTwinIfMatchETag");
//!
//! assert_eq!(ETag::new("AAAAAAAAAAE=").header_value(), "\"AAAAAAAAAAE=\"");
//! assert!(iothub_core::etag::matches("*", "AAAAAAAAAAE="));
//! ```

#![deny(missing_docs)]

mod error_code;
pub mod etag;
mod identity;
pub mod limits;
pub mod mqtt;
pub mod redact;
pub mod websocket;

pub use error_code::ErrorCode;
pub use etag::ETag;
pub use identity::{
    Ack, AuthenticationType, ConnectionState, DeviceStatus, ImportMode, UnknownValue,
};
