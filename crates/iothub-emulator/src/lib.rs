//! A local Azure IoT Hub emulator: the service-side HTTPS registry REST API (api-versions
//! 2021-04-12 and 2024-03-31) over TLS, backed by SQLite.
//!
//! Start one in-process for tests (port 0 and a temporary directory, so tests run in
//! parallel):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let emu = iothub_emulator::Emulator::builder()
//!     .data_dir(dir.path())
//!     .https_port(0)
//!     .start()
//!     .await?;
//! let cs = emu.connection_string(); // HostName=localhost:<port>;SharedAccessKeyName=iothubowner;SharedAccessKey=...
//! let ca = emu.ca_pem();            // trust this CA in the HTTPS client
//! let read_only = emu.policy_connection_string("registryRead");
//! # let _ = (cs, ca, read_only);
//! emu.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! See the crate README for the start-up contract of the `iothub-emulator` binary, the
//! well-known development key ([`WELL_KNOWN_KEY`]), the limits chosen where IoT Hub's
//! documentation is unsure, and what is not implemented yet.
//!
//! Module map: [`error`] (IoT Hub error codes and bodies), [`model`] (identities),
//! [`twin`] (twin documents and limits), [`store`] (SQLite), [`auth`] (policies and SAS
//! checks), [`throttle`], [`journal`], [`tls`], [`query`] (the query engine), [`cli`].

mod amqp;
pub mod auth;
pub mod c2d;
pub mod cli;
mod clock;
pub mod conn;
mod emulator;
pub mod error;
pub mod journal;
pub mod model;
pub mod query;
mod registry;
mod routes;
mod server;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod twin;

pub use auth::WELL_KNOWN_KEY;
pub use conn::ConnectionLimits;
pub use emulator::{
    DATABASE_FILE, DEFAULT_AMQPS_PORT, DEFAULT_HTTPS_PORT, DEFAULT_HUB_NAME, DEFAULT_MQTTS_PORT,
    Emulator, EmulatorBuilder, Error, host_name,
};
pub use throttle::{OperationClass, Quota, ThrottleConfig, ThrottleProfile};
