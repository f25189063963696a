//! Device and module identities: validation, stored records and their wire JSON.
//!
//! Wire names follow the IoT Hub REST API (api-versions 2021-04-12 and 2024-03-31), as the official SDK models
//! spell them (`deviceId`, `generationId`, `etag`, `connectionState`, ...).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::NEVER;
use crate::error::Invalid;

pub use iothub_core::limits::{MAX_ID_LEN, MAX_STATUS_REASON_LEN, is_valid_id};
pub use iothub_core::{AuthenticationType, DeviceStatus};

use iothub_core::limits::ID_SPECIAL_CHARS as ID_SPECIALS;

/// Checks a device or module id against [`is_valid_id`], saying what is wrong.
pub fn validate_id(kind: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(Invalid::argument(format!(
            "The {kind} id must not be empty."
        )));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Invalid::argument(format!(
            "The {kind} id is {} characters long; the maximum is {MAX_ID_LEN}.",
            id.chars().count()
        )));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ID_SPECIALS.contains(*c)))
    {
        return Err(Invalid::argument(format!(
            "The {kind} id '{}' contains the character {bad:?}, which is not allowed. Ids may contain ASCII letters, digits and {ID_SPECIALS}",
            id.escape_default()
        )));
    }
    Ok(())
}

/// Generates a random 32-byte key, base64-encoded, as IoT Hub does for SAS identities.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::random();
    B64.encode(bytes)
}

/// Checks a symmetric key: valid base64 decoding to 16–64 bytes.
pub fn validate_key(which: &str, key: &str) -> Result<(), Invalid> {
    let bytes = B64
        .decode(key.trim())
        .map_err(|_| Invalid::argument(format!("The {which} is not valid base64.")))?;
    if !(16..=64).contains(&bytes.len()) {
        return Err(Invalid::argument(format!(
            "The {which} decodes to {} bytes; symmetric keys must be between 16 and 64 bytes.",
            bytes.len()
        )));
    }
    Ok(())
}

/// Checks an X.509 thumbprint: 40 (SHA-1) or 64 (SHA-256) hexadecimal characters.
pub fn validate_thumbprint(which: &str, thumbprint: &str) -> Result<(), Invalid> {
    let ok = (thumbprint.len() == 40 || thumbprint.len() == 64)
        && thumbprint.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(Invalid::argument(format!(
            "The {which} must be 40 (SHA-1) or 64 (SHA-256) hexadecimal characters."
        )))
    }
}

/// A new `generationId`: an 18-digit number, unique within this process, like IoT Hub's.
pub fn new_generation_id(now: DateTime<Utc>) -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    // .NET ticks (100 ns since 0001-01-01) keep the 18-digit look of IoT Hub's ids.
    let ticks = (now.timestamp() as u64)
        .saturating_add(62_135_596_800)
        .saturating_mul(10_000_000)
        .saturating_add(u64::from(now.timestamp_subsec_nanos() / 100));
    let mut previous = LAST.load(Ordering::Relaxed);
    loop {
        let next = ticks.max(previous + 1);
        match LAST.compare_exchange(previous, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next.to_string(),
            Err(actual) => previous = actual,
        }
    }
}

/// A device or module ETag: base64 of the decimal change counter (`1` → `MQ==`).
pub fn identity_etag(counter: u64) -> String {
    B64.encode(counter.to_string())
}

/// Reads one ETag as sent in `If-Match` or a body's `eTag` (`*`, `"x"`, `W/"x"` or a bare
/// `x`); `None` when it is empty or malformed.
pub use iothub_core::etag::parse_if_match as parse_etag;

/// Whether an `If-Match` value (already read with [`parse_etag`]) matches `current`.
pub use iothub_core::etag::matches as etag_matches;

/// Parses a `status` as IoT Hub does (any ASCII case).
fn parse_status(text: &str) -> Result<DeviceStatus, Invalid> {
    text.parse().map_err(|_| {
        Invalid::argument(format!(
            "The status '{}' is not valid; use 'enabled' or 'disabled'.",
            text.escape_default()
        ))
    })
}

/// Parses an `authentication.type` as IoT Hub does (any ASCII case).
fn parse_authentication_type(text: &str) -> Result<AuthenticationType, Invalid> {
    text.parse().map_err(|_| {
        Invalid::argument(format!(
            "The authentication type '{}' is not valid; use sas, selfSigned, certificateAuthority or none.",
            text.escape_default()
        ))
    })
}

/// Stored authentication of a device or module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationMechanism {
    /// Authentication type.
    pub kind: AuthenticationType,
    /// Primary symmetric key (SAS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// Secondary symmetric key (SAS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_key: Option<String>,
    /// Primary X.509 thumbprint (selfSigned only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_thumbprint: Option<String>,
    /// Secondary X.509 thumbprint (selfSigned only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_thumbprint: Option<String>,
}

impl AuthenticationMechanism {
    /// SAS authentication with two fresh keys.
    pub fn generated_sas() -> Self {
        AuthenticationMechanism {
            kind: AuthenticationType::Sas,
            primary_key: Some(generate_key()),
            secondary_key: Some(generate_key()),
            primary_thumbprint: None,
            secondary_thumbprint: None,
        }
    }

    /// Builds the stored form from the request, generating missing SAS keys. When `previous`
    /// is given (an update) and a SAS key is left empty, the previous key is kept.
    pub fn from_input(
        input: Option<&AuthInput>,
        previous: Option<&AuthenticationMechanism>,
    ) -> Result<Self, Invalid> {
        let Some(input) = input else {
            return Ok(match previous {
                Some(p) => p.clone(),
                None => AuthenticationMechanism::generated_sas(),
            });
        };
        let kind = match input.kind.as_deref() {
            Some(t) => parse_authentication_type(t)?,
            None => AuthenticationType::Sas,
        };
        let nonempty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let keys = input.symmetric_key.as_ref();
        let primary_key = keys.and_then(|k| nonempty(&k.primary_key));
        let secondary_key = keys.and_then(|k| nonempty(&k.secondary_key));
        let thumbs = input.x509_thumbprint.as_ref();
        let primary_thumbprint = thumbs.and_then(|t| nonempty(&t.primary_thumbprint));
        let secondary_thumbprint = thumbs.and_then(|t| nonempty(&t.secondary_thumbprint));
        match kind {
            AuthenticationType::Sas => {
                if primary_thumbprint.is_some() || secondary_thumbprint.is_some() {
                    return Err(Invalid::argument(
                        "X.509 thumbprints cannot be set when the authentication type is 'sas'.",
                    ));
                }
                let keep = |which: fn(&AuthenticationMechanism) -> &Option<String>| {
                    previous
                        .filter(|p| p.kind == AuthenticationType::Sas)
                        .and_then(|p| which(p).clone())
                };
                let primary = match primary_key {
                    Some(k) => {
                        validate_key("primary key", &k)?;
                        k
                    }
                    None => keep(|a| &a.primary_key).unwrap_or_else(generate_key),
                };
                let secondary = match secondary_key {
                    Some(k) => {
                        validate_key("secondary key", &k)?;
                        k
                    }
                    None => keep(|a| &a.secondary_key).unwrap_or_else(generate_key),
                };
                Ok(AuthenticationMechanism {
                    kind,
                    primary_key: Some(primary),
                    secondary_key: Some(secondary),
                    primary_thumbprint: None,
                    secondary_thumbprint: None,
                })
            }
            AuthenticationType::SelfSigned => {
                if primary_key.is_some() || secondary_key.is_some() {
                    return Err(Invalid::argument(
                        "Symmetric keys cannot be set when the authentication type is 'selfSigned'.",
                    ));
                }
                let Some(primary) = primary_thumbprint else {
                    return Err(Invalid::argument(
                        "A primary thumbprint is required when the authentication type is 'selfSigned'.",
                    ));
                };
                validate_thumbprint("primary thumbprint", &primary)?;
                if let Some(s) = &secondary_thumbprint {
                    validate_thumbprint("secondary thumbprint", s)?;
                }
                Ok(AuthenticationMechanism {
                    kind,
                    primary_key: None,
                    secondary_key: None,
                    primary_thumbprint: Some(primary),
                    secondary_thumbprint,
                })
            }
            AuthenticationType::CertificateAuthority | AuthenticationType::None => {
                if primary_key.is_some()
                    || secondary_key.is_some()
                    || primary_thumbprint.is_some()
                    || secondary_thumbprint.is_some()
                {
                    return Err(Invalid::argument(format!(
                        "Keys and thumbprints cannot be set when the authentication type is '{}'.",
                        kind.as_str()
                    )));
                }
                Ok(AuthenticationMechanism {
                    kind,
                    primary_key: None,
                    secondary_key: None,
                    primary_thumbprint: None,
                    secondary_thumbprint: None,
                })
            }
        }
    }

    /// The `authentication` object of a device or module.
    pub fn to_wire(&self) -> Value {
        json!({
            "symmetricKey": { "primaryKey": self.primary_key, "secondaryKey": self.secondary_key },
            "x509Thumbprint": {
                "primaryThumbprint": self.primary_thumbprint,
                "secondaryThumbprint": self.secondary_thumbprint,
            },
            "type": self.kind.as_str(),
        })
    }

    /// The `x509Thumbprint` object of a twin.
    pub fn thumbprints_wire(&self) -> Value {
        json!({
            "primaryThumbprint": self.primary_thumbprint,
            "secondaryThumbprint": self.secondary_thumbprint,
        })
    }
}

/// `authentication` as sent by clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthInput {
    /// `symmetricKey`.
    pub symmetric_key: Option<SymmetricKeyInput>,
    /// `x509Thumbprint`.
    pub x509_thumbprint: Option<X509ThumbprintInput>,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `symmetricKey` as sent by clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyInput {
    /// `primaryKey`.
    pub primary_key: Option<String>,
    /// `secondaryKey`.
    pub secondary_key: Option<String>,
}

/// `x509Thumbprint` as sent by clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509ThumbprintInput {
    /// `primaryThumbprint`.
    pub primary_thumbprint: Option<String>,
    /// `secondaryThumbprint`.
    pub secondary_thumbprint: Option<String>,
}

/// `capabilities` as sent by clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesInput {
    /// `iotEdge`.
    pub iot_edge: Option<bool>,
}

/// A device as sent in `PUT /devices/{id}`. Read-only fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInput {
    /// `deviceId`; must equal the id in the URL when present.
    pub device_id: Option<String>,
    /// `status`.
    pub status: Option<String>,
    /// `statusReason`.
    pub status_reason: Option<String>,
    /// `authentication`.
    pub authentication: Option<AuthInput>,
    /// `capabilities`.
    pub capabilities: Option<CapabilitiesInput>,
    /// `deviceScope`.
    pub device_scope: Option<String>,
    /// `parentScopes`.
    pub parent_scopes: Option<Vec<String>>,
}

/// A module as sent in `PUT /devices/{id}/modules/{mid}`. Read-only fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInput {
    /// `moduleId`; must equal the id in the URL when present.
    pub module_id: Option<String>,
    /// `deviceId`; must equal the id in the URL when present.
    pub device_id: Option<String>,
    /// `managedBy`.
    pub managed_by: Option<String>,
    /// `authentication`.
    pub authentication: Option<AuthInput>,
}

/// A device's `capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCapabilities {
    /// `iotEdge`: the device is an IoT Edge device (it gets the `$edgeAgent` and `$edgeHub`
    /// system modules and a device scope of its own).
    pub iot_edge: bool,
}

/// Whether a stored flag is off (it is then left out of the stored record).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

/// A stored device identity. Stored as JSON in the `devices` table with `None`, `false`,
/// empty and default fields left out (they read back as their defaults), which keeps a
/// record of a SAS device at about 300 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    /// Device id.
    pub device_id: String,
    /// Generation id, new for every re-creation.
    pub generation_id: String,
    /// Change counter; the ETag is derived from it.
    pub etag_counter: u64,
    /// Enabled or disabled.
    pub status: DeviceStatus,
    /// Why the status was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the status last changed (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_updated_time: Option<String>,
    /// Whether the device has an open device-side connection (`connectionState`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub connected: bool,
    /// When the connection state last changed (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state_updated_time: Option<String>,
    /// Last activity (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Cloud-to-device messages waiting: counted from the queue when the identity is read,
    /// never stored (see `store`).
    #[serde(default, skip_serializing)]
    pub cloud_to_device_message_count: u64,
    /// Authentication.
    pub auth: AuthenticationMechanism,
    /// `capabilities` (stored flat, as `iotEdge`, like earlier versions of the store).
    #[serde(flatten)]
    pub capabilities: DeviceCapabilities,
    /// Device scope (edge devices and their children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_scope: Option<String>,
    /// Parent scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_scopes: Vec<String>,
    /// Plug and Play model id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_id: String,
}

impl DeviceRecord {
    /// The device ETag.
    pub fn etag(&self) -> String {
        identity_etag(self.etag_counter)
    }

    /// A new device from a validated request.
    pub fn create(
        device_id: &str,
        input: &DeviceInput,
        now: DateTime<Utc>,
    ) -> Result<Self, Invalid> {
        let generation_id = new_generation_id(now);
        let mut record = DeviceRecord {
            device_id: device_id.to_owned(),
            generation_id,
            etag_counter: 1,
            status: DeviceStatus::Enabled,
            status_reason: None,
            status_updated_time: None,
            connected: false,
            connection_state_updated_time: None,
            last_activity_time: None,
            cloud_to_device_message_count: 0,
            auth: AuthenticationMechanism::from_input(input.authentication.as_ref(), None)?,
            capabilities: DeviceCapabilities::default(),
            device_scope: None,
            parent_scopes: Vec::new(),
            model_id: String::new(),
        };
        record.apply_mutable(input)?;
        Ok(record)
    }

    /// Applies an update request to an existing device and bumps its ETag.
    pub fn update(&mut self, input: &DeviceInput, now: DateTime<Utc>) -> Result<(), Invalid> {
        self.auth =
            AuthenticationMechanism::from_input(input.authentication.as_ref(), Some(&self.auth))?;
        let old_status = self.status;
        self.apply_mutable(input)?;
        if self.status != old_status {
            self.status_updated_time = Some(crate::clock::format_time(now));
        }
        self.etag_counter += 1;
        Ok(())
    }

    fn apply_mutable(&mut self, input: &DeviceInput) -> Result<(), Invalid> {
        if let Some(s) = &input.status {
            self.status = parse_status(s)?;
        }
        if let Some(reason) = &input.status_reason
            && reason.chars().count() > MAX_STATUS_REASON_LEN
        {
            return Err(Invalid::argument(format!(
                "The statusReason is longer than {MAX_STATUS_REASON_LEN} characters."
            )));
        }
        self.status_reason = input.status_reason.clone().filter(|r| !r.is_empty());
        self.capabilities.iot_edge = input
            .capabilities
            .as_ref()
            .and_then(|c| c.iot_edge)
            .unwrap_or(false);
        let given_scope = input.device_scope.as_deref();
        if let Some(scope) = given_scope {
            self.device_scope = Some(scope.to_owned()).filter(|s| !s.is_empty());
        }
        // An IoT Edge device's scope is its own, generated from its id and generation id; it
        // is generated when missing (or when a leaf device becomes an edge device) and
        // dropped when an edge device becomes a leaf. A scope the request gives is kept for
        // the registry's scope rules to judge.
        let own_prefix = format!("ms-azure-iot-edge://{}-", self.device_id);
        let has_own = self
            .device_scope
            .as_deref()
            .and_then(|s| s.strip_prefix(&own_prefix))
            .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
        if self.capabilities.iot_edge && given_scope.is_none_or(str::is_empty) && !has_own {
            self.device_scope = Some(format!("{own_prefix}{}", self.generation_id));
        } else if !self.capabilities.iot_edge && has_own && given_scope.is_none() {
            self.device_scope = None;
        }
        if self.capabilities.iot_edge {
            // A nested edge device names its parent itself.
            if let Some(scopes) = &input.parent_scopes {
                self.parent_scopes = scopes.clone();
            }
        } else {
            // A leaf device's parent is the edge device whose scope it carries in
            // `deviceScope`; IoT Hub reports it as the only entry of `parentScopes`, and the
            // list is empty again once the scope is cleared.
            self.parent_scopes = self.device_scope.iter().cloned().collect();
        }
        Ok(())
    }

    /// The device as `GET /devices/{id}` returns it.
    pub fn to_wire(&self) -> Value {
        let mut v = json!({
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag(),
            "connectionState": connection_state(self.connected),
            "status": self.status.as_str(),
            "statusReason": self.status_reason,
            "connectionStateUpdatedTime": self.connection_state_updated_time.as_deref().unwrap_or(NEVER),
            "statusUpdatedTime": self.status_updated_time.as_deref().unwrap_or(NEVER),
            "lastActivityTime": self.last_activity_time.as_deref().unwrap_or(NEVER),
            "cloudToDeviceMessageCount": self.cloud_to_device_message_count,
            "authentication": self.auth.to_wire(),
            "capabilities": self.capabilities,
            "parentScopes": self.parent_scopes,
        });
        if let (Some(scope), Some(obj)) = (&self.device_scope, v.as_object_mut()) {
            obj.insert("deviceScope".into(), Value::String(scope.clone()));
        }
        v
    }
}

/// `connectionState` as IoT Hub spells it.
pub fn connection_state(connected: bool) -> &'static str {
    if connected {
        iothub_core::ConnectionState::Connected.as_str()
    } else {
        iothub_core::ConnectionState::Disconnected.as_str()
    }
}

/// A stored module identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleRecord {
    /// Owning device.
    pub device_id: String,
    /// Module id.
    pub module_id: String,
    /// `managedBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// Generation id.
    pub generation_id: String,
    /// Change counter; the ETag is derived from it.
    pub etag_counter: u64,
    /// Whether the module has an open device-side connection (`connectionState`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub connected: bool,
    /// When the connection state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state_updated_time: Option<String>,
    /// Last activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Cloud-to-device messages waiting: counted from the queue when the identity is read,
    /// never stored.
    #[serde(default, skip_serializing)]
    pub cloud_to_device_message_count: u64,
    /// Authentication.
    pub auth: AuthenticationMechanism,
    /// Plug and Play model id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_id: String,
}

impl ModuleRecord {
    /// The module ETag.
    pub fn etag(&self) -> String {
        identity_etag(self.etag_counter)
    }

    /// A new module from a validated request.
    pub fn create(
        device_id: &str,
        module_id: &str,
        input: &ModuleInput,
        now: DateTime<Utc>,
    ) -> Result<Self, Invalid> {
        Ok(ModuleRecord {
            device_id: device_id.to_owned(),
            module_id: module_id.to_owned(),
            managed_by: input.managed_by.clone(),
            generation_id: new_generation_id(now),
            etag_counter: 1,
            connected: false,
            connection_state_updated_time: None,
            last_activity_time: None,
            cloud_to_device_message_count: 0,
            auth: AuthenticationMechanism::from_input(input.authentication.as_ref(), None)?,
            model_id: String::new(),
        })
    }

    /// A system module (`$edgeAgent`, `$edgeHub`) created with an IoT Edge device.
    pub fn system(device_id: &str, module_id: &str, now: DateTime<Utc>) -> Self {
        ModuleRecord {
            device_id: device_id.to_owned(),
            module_id: module_id.to_owned(),
            managed_by: None,
            generation_id: new_generation_id(now),
            etag_counter: 1,
            connected: false,
            connection_state_updated_time: None,
            last_activity_time: None,
            cloud_to_device_message_count: 0,
            auth: AuthenticationMechanism::generated_sas(),
            model_id: String::new(),
        }
    }

    /// Applies an update request and bumps the ETag.
    pub fn update(&mut self, input: &ModuleInput) -> Result<(), Invalid> {
        self.auth =
            AuthenticationMechanism::from_input(input.authentication.as_ref(), Some(&self.auth))?;
        self.managed_by = input.managed_by.clone();
        self.etag_counter += 1;
        Ok(())
    }

    /// The module as `GET /devices/{id}/modules/{mid}` returns it.
    pub fn to_wire(&self) -> Value {
        json!({
            "moduleId": self.module_id,
            "managedBy": self.managed_by,
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag(),
            "connectionState": connection_state(self.connected),
            "connectionStateUpdatedTime": self.connection_state_updated_time.as_deref().unwrap_or(NEVER),
            "lastActivityTime": self.last_activity_time.as_deref().unwrap_or(NEVER),
            "cloudToDeviceMessageCount": self.cloud_to_device_message_count,
            "authentication": self.auth.to_wire(),
        })
    }
}

/// A whole number of seconds in a JSON body: a number, or a string of decimal digits. IoT Hub
/// takes both for a direct method's timeouts; Microsoft's `az iot hub invoke-device-method`
/// sends `"30"`.
pub(crate) fn seconds_value(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => v.as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("device", "a-b:c.d+e%f_g#h*i?j!k(l)m,n=o@p;q$r's").is_ok());
        assert!(validate_id("device", "").is_err());
        assert!(validate_id("device", "has space").is_err());
        assert!(validate_id("device", "slash/").is_err());
        assert!(validate_id("device", "é").is_err());
        assert!(validate_id("device", &"a".repeat(128)).is_ok());
        assert!(validate_id("device", &"a".repeat(129)).is_err());
    }

    #[test]
    fn keys_and_thumbprints() {
        assert!(validate_key("k", &generate_key()).is_ok());
        assert!(validate_key("k", "AAAA").is_err());
        assert!(validate_key("k", "not base64!").is_err());
        assert!(validate_key("k", &B64.encode([0u8; 65])).is_err());
        assert!(validate_key("k", &B64.encode([0u8; 16])).is_ok());
        assert!(validate_thumbprint("t", &"A".repeat(40)).is_ok());
        assert!(validate_thumbprint("t", &"a".repeat(64)).is_ok());
        assert!(validate_thumbprint("t", &"a".repeat(41)).is_err());
        assert!(validate_thumbprint("t", &"g".repeat(40)).is_err());
    }

    #[test]
    fn etags() {
        assert_eq!(identity_etag(1), "MQ==");
        assert_eq!(parse_etag("\"MQ==\""), Some("MQ=="));
        assert_eq!(parse_etag("W/\"MQ==\""), Some("MQ=="));
        assert_eq!(parse_etag("*"), Some("*"));
        assert!(etag_matches("*", "x"));
    }

    #[test]
    fn generation_ids_are_unique() {
        let a = new_generation_id(Utc::now());
        let b = new_generation_id(Utc::now());
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
    }

    #[test]
    fn sas_keys_generated_and_kept() {
        let auth = AuthenticationMechanism::from_input(None, None)
            .unwrap_or_else(|_| AuthenticationMechanism::generated_sas());
        assert_eq!(auth.kind, AuthenticationType::Sas);
        let empty = AuthInput {
            kind: Some("sas".into()),
            symmetric_key: Some(SymmetricKeyInput {
                primary_key: Some(String::new()),
                secondary_key: None,
            }),
            x509_thumbprint: None,
        };
        let kept = AuthenticationMechanism::from_input(Some(&empty), Some(&auth)).ok();
        assert_eq!(
            kept.as_ref().and_then(|a| a.primary_key.clone()),
            auth.primary_key
        );
    }
}
