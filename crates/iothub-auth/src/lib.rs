//! Authentication for Azure IoT Hub service clients.
//!
//! This crate is the one place where iothub-rs handles secrets:
//!
//! - [`ConnectionString`] parses `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`
//!   (and the device forms with `DeviceId`, `ModuleId`, `GatewayHostName`).
//! - [`SharedAccessKey`] holds a decoded key; it never prints its bytes.
//! - [`sas`] builds and checks IoT Hub shared access signatures
//!   (`SharedAccessSignature sr=…&sig=…&se=…&skn=…`).
//! - [`HubCredential`] produces the `Authorization` header for each request, renewing SAS
//!   tokens before they expire or asking an Azure AD `TokenCredential` (feature
//!   `token-credential`) for a token with the IoT Hub scope.
//!
//! Keys and tokens never appear in `Debug`, `Display` or error text.
//!
//! ```
//! use iothub_auth::{ConnectionString, HubCredential};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cs: ConnectionString =
//!     "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
//!         .parse()?;
//! let credential = HubCredential::from_connection_string(&cs)?;
//! let header = credential.authorization_header().await?;
//! assert!(header.expose().starts_with("SharedAccessSignature sr=myhub.azure-devices.net&sig="));
//! # Ok(()) }
//! ```

mod connection_string;
mod credential;
mod error;
mod key;
pub mod sas;

pub use connection_string::ConnectionString;
pub use credential::{AuthorizationHeader, HubCredential, IOTHUB_AAD_SCOPE};
pub use error::{AuthError, ConnectionStringError, KeyError, SasParseError};
pub use key::SharedAccessKey;
