//! The string values of the identity registry: statuses, authentication types, connection
//! states and bulk import modes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownValue(pub String);

/// Defines an enum of IoT Hub string values: `serde` and `Display` use the wire spelling,
/// `FromStr` accepts it in any ASCII case.
macro_rules! string_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The value IoT Hub uses on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $wire, )* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            /// Parses the wire value, ignoring ASCII case.
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                $( if s.eq_ignore_ascii_case($wire) { return Ok($name::$variant); } )*
                Err(UnknownValue(s.to_owned()))
            }
        }
    };
}

string_enum! {
    /// Whether an identity may connect (`status` of a device, `enabled` or `disabled`).
    DeviceStatus {
        /// The identity may connect.
        Enabled = "enabled",
        /// The identity is refused.
        Disabled = "disabled",
    }
}

string_enum! {
    /// How an identity authenticates (`authentication.type`).
    AuthenticationType {
        /// Shared access keys.
        Sas = "sas",
        /// X.509 certificate with registered thumbprints.
        SelfSigned = "selfSigned",
        /// X.509 certificate signed by a registered certificate authority.
        CertificateAuthority = "certificateAuthority",
        /// No authentication (modules managed by IoT Edge).
        None = "none",
    }
}

string_enum! {
    /// Whether an identity is connected (`connectionState`). IoT Hub derives it from
    /// protocol pings, so it can lag behind by minutes; use it for diagnostics only.
    ConnectionState {
        /// The identity has a connection to the hub.
        Connected = "Connected",
        /// The identity has no connection to the hub.
        Disconnected = "Disconnected",
    }
}

string_enum! {
    /// The feedback a cloud-to-device message asks for: IoT Hub's `iothub-ack` application
    /// property (C2D messaging guide, "Message feedback"). The default is [`Ack::None`].
    Ack {
        /// No feedback (IoT Hub's default).
        None = "none",
        /// Feedback when the device completes the message (`Success`).
        Positive = "positive",
        /// Feedback when the message expires, reaches its maximum delivery count, is
        /// rejected or is purged.
        Negative = "negative",
        /// Both positive and negative feedback.
        Full = "full",
    }
}

// The enum comes from `string_enum!`, which derives no `Default`.
#[allow(clippy::derivable_impls)]
impl Default for Ack {
    fn default() -> Self {
        Ack::None
    }
}

string_enum! {
    /// What one entry of a bulk registry request (`POST /devices`) does (`importMode`).
    ///
    /// The `…IfMatchETag` modes compare the entry's `eTag` (identity) or `twinETag` (twin)
    /// with the stored one and fail the entry when they differ.
    ImportMode {
        /// Create; fails for an existing identity.
        Create = "create",
        /// Update; fails for a missing identity.
        Update = "update",
        /// Update if `eTag` matches.
        UpdateIfMatchETag = "updateIfMatchETag",
        /// Delete.
        Delete = "delete",
        /// Delete if `eTag` matches.
        DeleteIfMatchETag = "deleteIfMatchETag",
        /// Create, or update an existing identity.
        CreateOrUpdate = "createOrUpdate",
        /// Create, or update if `eTag` matches.
        CreateOrUpdateIfMatchETag = "createOrUpdateIfMatchETag",
        /// Update the twin only.
        UpdateTwin = "updateTwin",
        /// Update the twin only, if `twinETag` matches.
        UpdateTwinIfMatchETag = "updateTwinIfMatchETag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr<Err = UnknownValue>,
        T: Serialize + for<'de> Deserialize<'de>,
    {
        for &value in all {
            let wire = value.to_string();
            assert_eq!(wire.parse::<T>(), Ok(value));
            assert_eq!(wire.to_ascii_uppercase().parse::<T>(), Ok(value));
            assert_eq!(wire.to_ascii_lowercase().parse::<T>(), Ok(value));
            let json = serde_json::to_value(value).unwrap();
            assert_eq!(json, serde_json::Value::String(wire.clone()));
            assert_eq!(serde_json::from_value::<T>(json).unwrap(), value);
        }
    }

    #[test]
    fn every_value_round_trips() {
        round_trips(DeviceStatus::ALL);
        round_trips(AuthenticationType::ALL);
        round_trips(ConnectionState::ALL);
        round_trips(ImportMode::ALL);
        assert_eq!(DeviceStatus::ALL.len(), 2);
        assert_eq!(AuthenticationType::ALL.len(), 4);
        assert_eq!(ConnectionState::ALL.len(), 2);
        assert_eq!(ImportMode::ALL.len(), 9);
    }

    #[test]
    fn wire_spellings() {
        assert_eq!(DeviceStatus::Enabled.as_str(), "enabled");
        assert_eq!(AuthenticationType::SelfSigned.as_str(), "selfSigned");
        assert_eq!(
            AuthenticationType::CertificateAuthority.as_str(),
            "certificateAuthority"
        );
        assert_eq!(ConnectionState::Disconnected.as_str(), "Disconnected");
        assert_eq!(ImportMode::CreateOrUpdate.as_str(), "createOrUpdate");
        assert_eq!(
            ImportMode::CreateOrUpdateIfMatchETag.as_str(),
            "createOrUpdateIfMatchETag"
        );
        assert_eq!(
            "UPDATETWINIFMATCHETAG".parse(),
            Ok(ImportMode::UpdateTwinIfMatchETag)
        );
        assert_eq!("selfsigned".parse(), Ok(AuthenticationType::SelfSigned));
        assert_eq!("connected".parse(), Ok(ConnectionState::Connected));
    }

    #[test]
    fn unknown_values_are_refused() {
        assert_eq!(
            "sleeping".parse::<DeviceStatus>(),
            Err(UnknownValue("sleeping".into()))
        );
        assert!("".parse::<AuthenticationType>().is_err());
        assert!(" enabled".parse::<DeviceStatus>().is_err());
        assert!("upsert".parse::<ImportMode>().is_err());
        assert_eq!(UnknownValue("x".into()).to_string(), "unknown value `x`");
        // serde takes the wire spelling only.
        assert!(serde_json::from_str::<DeviceStatus>("\"Enabled\"").is_err());
    }
}
