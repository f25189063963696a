//! Conversions between the generated enums and their `iothub-core` counterparts, which
//! have the same variants and wire spellings.

use iothub_core as core;

use crate::types;

macro_rules! same_variants {
    ($name:ident { $( $variant:ident ),* $(,)? }) => {
        impl From<core::$name> for types::$name {
            fn from(v: core::$name) -> Self {
                match v { $( core::$name::$variant => types::$name::$variant, )* }
            }
        }

        impl From<types::$name> for core::$name {
            fn from(v: types::$name) -> Self {
                match v { $( types::$name::$variant => core::$name::$variant, )* }
            }
        }
    };
}

same_variants!(DeviceStatus { Enabled, Disabled });
same_variants!(AuthenticationType {
    Sas,
    SelfSigned,
    CertificateAuthority,
    None,
});
same_variants!(ImportMode {
    Create,
    Update,
    UpdateIfMatchETag,
    Delete,
    DeleteIfMatchETag,
    CreateOrUpdate,
    CreateOrUpdateIfMatchETag,
    UpdateTwin,
    UpdateTwinIfMatchETag,
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides serialize every value the same way.
    #[test]
    fn same_wire_spelling() {
        for &v in core::ImportMode::ALL {
            let generated = types::ImportMode::from(v);
            assert_eq!(generated.to_string(), v.as_str());
            assert_eq!(core::ImportMode::from(generated), v);
        }
        for &v in core::AuthenticationType::ALL {
            let generated = types::AuthenticationType::from(v);
            assert_eq!(generated.to_string(), v.as_str());
            assert_eq!(core::AuthenticationType::from(generated), v);
        }
        for &v in core::DeviceStatus::ALL {
            let generated = types::DeviceStatus::from(v);
            assert_eq!(generated.to_string(), v.as_str());
            assert_eq!(core::DeviceStatus::from(generated), v);
        }
    }
}
