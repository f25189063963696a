//! The registry layer's error.

use std::sync::Arc;

use crate::error::{ErrorCode, Invalid};
use crate::query::QueryError;
use crate::store::StoreError;

/// Why a registry operation was refused or failed.
///
/// Every variant but [`Store`](Self::Store) is IoT Hub's answer to the request and has an
/// [`ErrorCode`]; the display text is the message IoT Hub puts after `ErrorCode:<Name>;`. The
/// HTTP boundary builds the response from [`code`](Self::code) and the text; a store failure
/// becomes a 500 whose cause is logged, never sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// 404 `DeviceNotFound`.
    #[error("Device '{}' is not registered on IoT hub '{hub}'.", device_id.escape_default())]
    DeviceNotFound {
        /// The device id asked for.
        device_id: String,
        /// The hub's name.
        hub: Arc<str>,
    },
    /// 404 `ModuleNotFound` (the device exists).
    #[error(
        "Module '{}' is not registered on device '{}' of IoT hub '{hub}'.",
        module_id.escape_default(),
        device_id.escape_default()
    )]
    ModuleNotFound {
        /// The device id.
        device_id: String,
        /// The module id asked for.
        module_id: String,
        /// The hub's name.
        hub: Arc<str>,
    },
    /// 409 `DeviceAlreadyExists`: a create for an id that is registered.
    #[error(
        "A device with id '{}' is already registered on IoT hub '{hub}'.",
        device_id.escape_default()
    )]
    DeviceAlreadyExists {
        /// The device id.
        device_id: String,
        /// The hub's name.
        hub: Arc<str>,
    },
    /// 409 `ModuleAlreadyExistsOnDevice`.
    #[error(
        "A module with id '{}' is already registered on device '{}'.",
        module_id.escape_default(),
        device_id.escape_default()
    )]
    ModuleAlreadyExists {
        /// The device id.
        device_id: String,
        /// The module id.
        module_id: String,
    },
    /// 412 `PreconditionFailed`: the ETag given does not match the current one.
    #[error(
        "Precondition failed: the ETag in If-Match does not match the current ETag of the {what}."
    )]
    PreconditionFailed {
        /// What the ETag is for (`device`, `module`, `twin`, `module twin`).
        what: &'static str,
    },
    /// 401 `SystemModuleModifyUnauthorizedAccess`: the IoT Edge system modules' identities
    /// and desired properties belong to the hub (they change through configuration content).
    #[error(
        "Unauthorized to modify reserved module '{}': the identity and desired properties of the IoT Edge system modules are managed by IoT Hub; set them with configuration content (applyConfigurationContent or an edge deployment).",
        module_id.escape_default()
    )]
    SystemModule {
        /// `$edgeAgent` or `$edgeHub`.
        module_id: String,
    },
    /// A value breaks one of IoT Hub's rules (400, mostly `ArgumentInvalid`).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Another of IoT Hub's refusals, with its code (`InvalidDeviceScope`, `TooManyDevices`,
    /// `DeviceDefinedMultipleTimes`, `InvalidOperation`, ...).
    #[error("{message}")]
    Refused {
        /// IoT Hub's code.
        code: ErrorCode,
        /// What is wrong.
        message: String,
    },
    /// The query engine refused a query (400 `ArgumentInvalid`, `GenericBadRequest` for a
    /// continuation token that is not the engine's); its database failures count as store
    /// failures.
    #[error(transparent)]
    Query(crate::query::QueryError),
    /// The store failed; nothing of the operation was written.
    #[error("registry store failure")]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// IoT Hub's error code for this error (`ServerError` for a store failure).
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::DeviceNotFound { .. } => ErrorCode::DeviceNotFound,
            RegistryError::ModuleNotFound { .. } => ErrorCode::ModuleNotFound,
            RegistryError::DeviceAlreadyExists { .. } => ErrorCode::DeviceAlreadyExists,
            RegistryError::ModuleAlreadyExists { .. } => ErrorCode::ModuleAlreadyExistsOnDevice,
            RegistryError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            RegistryError::SystemModule { .. } => ErrorCode::SystemModuleModifyUnauthorizedAccess,
            RegistryError::Invalid(e) => e.code(),
            RegistryError::Refused { code, .. } => code.clone(),
            RegistryError::Query(QueryError::BadContinuation) => ErrorCode::GenericBadRequest,
            RegistryError::Query(QueryError::Sql(_)) => ErrorCode::ServerError,
            RegistryError::Query(_) => ErrorCode::ArgumentInvalid,
            RegistryError::Store(_) => ErrorCode::ServerError,
        }
    }

    /// A refusal with `code`.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError::Refused {
            code,
            message: message.into(),
        }
    }
}

impl From<rusqlite::Error> for RegistryError {
    fn from(e: rusqlite::Error) -> Self {
        RegistryError::Store(StoreError::from(e))
    }
}

impl From<QueryError> for RegistryError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Sql(sql) => RegistryError::Store(StoreError::from(sql)),
            other => RegistryError::Query(other),
        }
    }
}
