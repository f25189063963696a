//! Bulk key regeneration (api-version 2024-03-31): the hub replaces the symmetric keys of
//! many device and module identities with keys it generates.

use super::{Registry, RegistryError};
use crate::error::ErrorCode;
use crate::model::{AuthenticationMechanism, AuthenticationType, generate_key};
use crate::store;

/// Which keys to regenerate (`policyKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// `primaryKey`.
    Primary,
    /// `secondaryKey`.
    Secondary,
    /// `both`.
    Both,
}

impl KeyPolicy {
    /// Parses the wire name (`primaryKey`, `secondaryKey`, `both`).
    pub fn from_wire(text: &str) -> Option<Self> {
        match text {
            "primaryKey" => Some(Self::Primary),
            "secondaryKey" => Some(Self::Secondary),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Primary => "primaryKey",
            Self::Secondary => "secondaryKey",
            Self::Both => "both",
        }
    }
}

/// An identity whose keys are to be regenerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTarget {
    /// Device id.
    pub device_id: String,
    /// Module id, for a module identity.
    pub module_id: Option<String>,
}

/// The new keys of one identity.
#[derive(Clone, PartialEq, Eq)]
pub struct RotatedKeys {
    /// The identity.
    pub target: KeyTarget,
    /// Its primary key now.
    pub primary_key: String,
    /// Its secondary key now.
    pub secondary_key: String,
}

impl std::fmt::Debug for RotatedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKeys")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// An identity whose keys could not be regenerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    /// The identity.
    pub target: KeyTarget,
    /// IoT Hub's code (`DeviceNotFound`, `ModuleNotFound`, `InvalidOperation`).
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

/// The outcome of a key regeneration: per identity, new keys or a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRegeneration {
    /// Identities with new keys.
    pub rotated: Vec<RotatedKeys>,
    /// Identities left unchanged.
    pub failed: Vec<KeyFailure>,
}

/// New keys for `auth` as `policy` says; `None` when the identity does not use SAS keys.
fn rotate(auth: &mut AuthenticationMechanism, policy: KeyPolicy) -> Option<(String, String)> {
    if auth.kind != AuthenticationType::Sas {
        return None;
    }
    if policy != KeyPolicy::Secondary {
        auth.primary_key = Some(generate_key());
    }
    if policy != KeyPolicy::Primary {
        auth.secondary_key = Some(generate_key());
    }
    Some((
        auth.primary_key.clone().unwrap_or_default(),
        auth.secondary_key.clone().unwrap_or_default(),
    ))
}

/// `InvalidOperation` for a key regeneration on an identity without symmetric keys.
fn no_keys() -> RegistryError {
    RegistryError::refused(
        ErrorCode::InvalidOperation,
        "The identity does not authenticate with symmetric keys, so it has none to regenerate.",
    )
}

impl Registry {
    /// Regenerates the keys of `targets` in one transaction; each identity succeeds or fails
    /// on its own (a missing identity or one without symmetric keys is a [`KeyFailure`]).
    ///
    /// # Errors
    /// `ArgumentInvalid` for a malformed id (nothing applied), or a store failure.
    pub async fn regenerate_keys(
        &self,
        policy: KeyPolicy,
        targets: Vec<KeyTarget>,
    ) -> Result<KeyRegeneration, RegistryError> {
        for t in &targets {
            super::check_ids(&t.device_id, t.module_id.as_deref())?;
        }
        self.write(move |c, ctx| {
            let mut out = KeyRegeneration::default();
            for target in targets {
                let outcome = match &target.module_id {
                    None => super::identities::require_device(c, ctx, &target.device_id).and_then(
                        |mut row| {
                            let keys = rotate(&mut row.record.auth, policy).ok_or_else(no_keys)?;
                            row.record.etag_counter += 1;
                            store::put_device(c, &row)?;
                            Ok(keys)
                        },
                    ),
                    Some(m) => super::identities::require_module(c, ctx, &target.device_id, m)
                        .and_then(|mut row| {
                            let keys = rotate(&mut row.record.auth, policy).ok_or_else(no_keys)?;
                            row.record.etag_counter += 1;
                            store::put_module(c, &row)?;
                            Ok(keys)
                        }),
                };
                match outcome {
                    Ok((primary_key, secondary_key)) => out.rotated.push(RotatedKeys {
                        target,
                        primary_key,
                        secondary_key,
                    }),
                    Err(RegistryError::Store(e)) => return Err(RegistryError::Store(e)),
                    Err(e) => out.failed.push(KeyFailure {
                        target,
                        code: e.code(),
                        message: e.to_string(),
                    }),
                }
            }
            Ok(out)
        })
        .await
    }
}
