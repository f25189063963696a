//! What the device side asks of the registry: an identity's credentials, and its connection
//! state (`connectionState`, `connectionStateUpdatedTime`, `lastActivityTime`).

use super::identities::require_device;
use super::{Credentials, Registry, RegistryError, check_ids};
use crate::model::DeviceStatus;
use crate::store;

impl Registry {
    /// The credentials of a device (`module_id` `None`) or module, for authenticating a
    /// device-side connection. A module may connect while its device is enabled.
    ///
    /// # Errors
    /// `ArgumentInvalid`, `DeviceNotFound`, `ModuleNotFound`, or a store failure.
    pub async fn credentials(
        &self,
        device_id: String,
        module_id: Option<String>,
    ) -> Result<Credentials, RegistryError> {
        check_ids(&device_id, module_id.as_deref())?;
        self.read(move |c, ctx| {
            let device = require_device(c, ctx, &device_id)?;
            let enabled = device.record.status == DeviceStatus::Enabled;
            match &module_id {
                None => Ok(Credentials {
                    auth: device.record.auth,
                    enabled,
                    generation_id: device.record.generation_id,
                }),
                Some(m) => {
                    let module = store::get_module(c, &device_id, m)?
                        .ok_or_else(|| ctx.module_not_found(&device_id, m))?;
                    Ok(Credentials {
                        auth: module.record.auth,
                        enabled,
                        generation_id: module.record.generation_id,
                    })
                }
            }
        })
        .await
    }

    /// Records the connection state of identities `(device_id, module_id, connected)` in one
    /// transaction: `connectionState`, and `connectionStateUpdatedTime` and
    /// `lastActivityTime` set to now when the state changes. Identities that no longer exist
    /// are skipped. Neither the identity's ETag nor its twin version changes (IoT Hub keeps
    /// them for changes the service makes).
    ///
    /// # Errors
    /// A store failure.
    pub async fn set_connection_states(
        &self,
        states: Vec<(String, Option<String>, bool)>,
    ) -> Result<(), RegistryError> {
        self.write(move |c, ctx| {
            for (device_id, module_id, connected) in &states {
                match module_id {
                    None => {
                        if let Some(mut row) = store::get_device(c, device_id)?
                            && row.record.connected != *connected
                        {
                            row.record.connected = *connected;
                            row.record.connection_state_updated_time = Some(ctx.now_text.clone());
                            row.record.last_activity_time = Some(ctx.now_text.clone());
                            store::put_device(c, &row)?;
                            connection_changed(ctx, device_id, None, *connected);
                        }
                    }
                    Some(m) => {
                        if let Some(mut row) = store::get_module(c, device_id, m)?
                            && row.record.connected != *connected
                        {
                            row.record.connected = *connected;
                            row.record.connection_state_updated_time = Some(ctx.now_text.clone());
                            row.record.last_activity_time = Some(ctx.now_text.clone());
                            store::put_module(c, &row)?;
                            connection_changed(ctx, device_id, Some(m), *connected);
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// Records a `deviceConnected` / `deviceDisconnected` event message. Its body carries a
/// `sequenceNumber` that orders the events of one identity, as IoT Hub's does (here: the
/// time of the change in 100 ns ticks, zero-padded so it also sorts as text).
fn connection_changed(ctx: &super::Ctx, device_id: &str, module_id: Option<&str>, connected: bool) {
    let ticks = ctx.now.timestamp_nanos_opt().unwrap_or_default() / 100;
    let kind = if connected {
        super::RegistryEventKind::Connected
    } else {
        super::RegistryEventKind::Disconnected
    };
    ctx.emit(
        kind,
        device_id,
        module_id,
        || serde_json::json!({ "sequenceNumber": format!("{ticks:032}") }),
    );
}
