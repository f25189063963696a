//! Device and module identities: create, update, delete, read and list.

use rusqlite::Connection;

use super::{
    Ctx, Registry, RegistryError, RegistryEventKind, check_etag, check_ids, is_system_module,
    scopes,
};
use crate::error::Invalid;
use crate::model::{DeviceInput, DeviceRecord, ModuleInput, ModuleRecord};
use crate::store::{self, DeviceRow, ModuleRow};
use crate::twin::TwinState;

/// Device counts for `GET /statistics/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCounts {
    /// All devices.
    pub total: u64,
    /// Enabled devices.
    pub enabled: u64,
    /// Disabled devices.
    pub disabled: u64,
}

fn check_body_id(kind: &str, field: &str, body: Option<&str>, url: &str) -> Result<(), Invalid> {
    match body {
        Some(b) if b != url => Err(Invalid::argument(format!(
            "The {kind} id '{}' in the body ({field}) does not match the id '{}' in the URL.",
            b.escape_default(),
            url.escape_default()
        ))),
        _ => Ok(()),
    }
}

/// Reads a device or fails with `DeviceNotFound`.
pub(super) fn require_device(
    conn: &Connection,
    ctx: &Ctx,
    device_id: &str,
) -> Result<DeviceRow, RegistryError> {
    store::get_device(conn, device_id)?.ok_or_else(|| ctx.device_not_found(device_id))
}

/// Reads a module or fails with `DeviceNotFound` (no such device) or `ModuleNotFound`.
pub(super) fn require_module(
    conn: &Connection,
    ctx: &Ctx,
    device_id: &str,
    module_id: &str,
) -> Result<ModuleRow, RegistryError> {
    match store::get_module(conn, device_id, module_id)? {
        Some(row) => Ok(row),
        None if store::get_device(conn, device_id)?.is_none() => {
            Err(ctx.device_not_found(device_id))
        }
        None => Err(ctx.module_not_found(device_id, module_id)),
    }
}

/// Creates a device with its twin (and, for an IoT Edge device, its system modules).
pub(super) fn create_device(
    conn: &Connection,
    ctx: &Ctx,
    device_id: &str,
    input: &DeviceInput,
    twin: Option<&crate::twin::TwinChange>,
) -> Result<DeviceRow, RegistryError> {
    let record = DeviceRecord::create(device_id, input, ctx.now)?;
    scopes::check_new(conn, &record)?;
    let mut row = DeviceRow {
        record,
        twin: TwinState::new(&ctx.now_text),
    };
    // A twin given with the identity (bulk import) is applied before the one write.
    if let Some(change) = twin.filter(|c| !c.is_empty()) {
        row.twin
            .apply(change, crate::twin::TwinWrite::ReplaceGiven, &ctx.now_text)?;
    }
    store::put_device(conn, &row)?;
    created(conn, ctx, row)
}

/// A new device built, and encoded, without the store: what [`create_device`] writes for the
/// same input, when every check that needs no store passes. A bulk create builds its new
/// devices this way before its turn at the registry's single writer, and the writer only
/// checks and inserts them ([`create_prepared`]).
#[derive(Debug)]
pub(super) struct PreparedDevice {
    row: DeviceRow,
    encoded: store::EncodedDevice,
}

impl PreparedDevice {
    /// The device `create_device(conn, ctx, device_id, input, twin)` would write, or `None`
    /// when building it fails: the writer then runs `create_device`, which reports the
    /// failure in its usual order.
    pub(super) fn new(
        ctx: &Ctx,
        device_id: &str,
        input: &DeviceInput,
        twin: Option<&crate::twin::TwinChange>,
    ) -> Option<Self> {
        let record = DeviceRecord::create(device_id, input, ctx.now).ok()?;
        let mut row = DeviceRow {
            record,
            twin: TwinState::new(&ctx.now_text),
        };
        if let Some(change) = twin.filter(|c| !c.is_empty()) {
            row.twin
                .apply(change, crate::twin::TwinWrite::ReplaceGiven, &ctx.now_text)
                .ok()?;
        }
        let encoded = store::EncodedDevice::new(&row).ok()?;
        Some(Self { row, encoded })
    }
}

/// Creates a device built by [`PreparedDevice::new`], as [`create_device`] creates it: the
/// scope rules (the only check that reads the store) and then the one write.
pub(super) fn create_prepared(
    conn: &Connection,
    ctx: &Ctx,
    prepared: PreparedDevice,
) -> Result<DeviceRow, RegistryError> {
    let PreparedDevice { row, encoded } = prepared;
    scopes::check_new(conn, &row.record)?;
    store::put_encoded_device(conn, &row, &encoded)?;
    created(conn, ctx, row)
}

/// What follows the write of a new device: an IoT Edge device's system modules, and the
/// lifecycle event.
fn created(conn: &Connection, ctx: &Ctx, row: DeviceRow) -> Result<DeviceRow, RegistryError> {
    let device_id = row.record.device_id.as_str();
    if row.record.capabilities.iot_edge {
        add_system_modules(conn, ctx, device_id)?;
    }
    ctx.emit(RegistryEventKind::Created, device_id, None, || {
        row.twin.render_device(&row.record)
    });
    Ok(row)
}

/// Registers the IoT Edge system modules of `device_id` that do not exist yet.
fn add_system_modules(conn: &Connection, ctx: &Ctx, device_id: &str) -> Result<(), RegistryError> {
    for module_id in super::EDGE_SYSTEM_MODULES {
        if store::get_module(conn, device_id, module_id)?.is_none() {
            let module = ModuleRow {
                record: ModuleRecord::system(device_id, module_id, ctx.now),
                twin: TwinState::new(&ctx.now_text),
            };
            store::put_module(conn, &module)?;
        }
    }
    Ok(())
}

/// Applies an update to a stored device (identity only) and writes it.
pub(super) fn update_device(
    conn: &Connection,
    ctx: &Ctx,
    row: &mut DeviceRow,
    input: &DeviceInput,
) -> Result<(), RegistryError> {
    let before = row.record.clone();
    row.record.update(input, ctx.now)?;
    scopes::check_update(conn, &before, &row.record)?;
    if before.capabilities.iot_edge && !row.record.capabilities.iot_edge {
        scopes::release_children(conn, ctx, &before)?;
    }
    store::put_device(conn, row)?;
    if !before.capabilities.iot_edge && row.record.capabilities.iot_edge {
        // A device that becomes an IoT Edge device gets the system modules every edge device
        // has.
        add_system_modules(conn, ctx, &row.record.device_id)?;
    }
    Ok(())
}

/// Deletes a device, its modules and queues; children of an IoT Edge device lose their
/// parent.
pub(super) fn delete_device_row(
    conn: &Connection,
    ctx: &Ctx,
    row: &DeviceRow,
) -> Result<(), RegistryError> {
    store::delete_device(conn, &row.record.device_id)?;
    if row.record.capabilities.iot_edge {
        scopes::release_children(conn, ctx, &row.record)?;
    }
    ctx.emit(
        RegistryEventKind::Deleted,
        &row.record.device_id,
        None,
        || row.twin.render_device(&row.record),
    );
    Ok(())
}

impl Registry {
    /// Reads a device identity.
    ///
    /// # Errors
    /// `ArgumentInvalid` for a malformed id, `DeviceNotFound`, or a store failure.
    pub async fn get_device(&self, device_id: String) -> Result<DeviceRecord, RegistryError> {
        check_ids(&device_id, None)?;
        self.read(move |c, ctx| Ok(require_device(c, ctx, &device_id)?.record))
            .await
    }

    /// Creates a device (no `if_match`) or updates it (`if_match` = its ETag or `*`), as
    /// `PUT /devices/{id}` does.
    ///
    /// # Errors
    /// `ArgumentInvalid` (ids, keys, thumbprints, status, a body id that differs from
    /// `device_id`), `InvalidDeviceScope`, `DeviceAlreadyExists` (create of a registered id),
    /// `DeviceNotFound` (update of a missing one), `PreconditionFailed`, or a store failure.
    pub async fn put_device(
        &self,
        device_id: String,
        input: DeviceInput,
        if_match: Option<String>,
    ) -> Result<DeviceRecord, RegistryError> {
        check_ids(&device_id, None)?;
        check_body_id("device", "deviceId", input.device_id.as_deref(), &device_id)?;
        self.write(
            move |c, ctx| match (store::get_device(c, &device_id)?, if_match) {
                (Some(_), None) => Err(RegistryError::DeviceAlreadyExists {
                    device_id,
                    hub: ctx.hub.clone(),
                }),
                (None, Some(_)) => Err(ctx.device_not_found(&device_id)),
                (None, None) => Ok(create_device(c, ctx, &device_id, &input, None)?.record),
                (Some(mut row), Some(expected)) => {
                    check_etag(Some(&expected), &row.record.etag(), "device")?;
                    update_device(c, ctx, &mut row, &input)?;
                    Ok(row.record)
                }
            },
        )
        .await
    }

    /// Deletes a device with its twin, modules, C2D queue and pending feedback. Children of
    /// an IoT Edge device keep their identity and lose their parent (`deviceScope` and
    /// `parentScopes` cleared).
    ///
    /// # Errors
    /// `ArgumentInvalid`, `DeviceNotFound`, `PreconditionFailed`, or a store failure.
    pub async fn delete_device(
        &self,
        device_id: String,
        if_match: Option<String>,
    ) -> Result<(), RegistryError> {
        check_ids(&device_id, None)?;
        self.write(move |c, ctx| {
            let row = require_device(c, ctx, &device_id)?;
            check_etag(if_match.as_deref(), &row.record.etag(), "device")?;
            delete_device_row(c, ctx, &row)
        })
        .await
    }

    /// Lists up to `top` devices in creation order.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_devices(&self, top: u32) -> Result<Vec<DeviceRecord>, RegistryError> {
        self.read(move |c, _| Ok(store::list_devices(c, top)?))
            .await
    }

    /// Total, enabled and disabled device counts.
    ///
    /// # Errors
    /// A store failure.
    pub async fn device_counts(&self) -> Result<DeviceCounts, RegistryError> {
        self.read(|c, _| {
            let (total, enabled, disabled) = store::device_counts(c)?;
            Ok(DeviceCounts {
                total,
                enabled,
                disabled,
            })
        })
        .await
    }

    /// Lists a device's modules in creation order.
    ///
    /// # Errors
    /// `ArgumentInvalid`, `DeviceNotFound`, or a store failure.
    pub async fn list_modules(
        &self,
        device_id: String,
    ) -> Result<Vec<ModuleRecord>, RegistryError> {
        check_ids(&device_id, None)?;
        self.read(move |c, ctx| {
            require_device(c, ctx, &device_id)?;
            Ok(store::list_modules(c, &device_id)?)
        })
        .await
    }

    /// Reads a module identity.
    ///
    /// # Errors
    /// `ArgumentInvalid`, `ModuleNotFound`, or a store failure.
    pub async fn get_module(
        &self,
        device_id: String,
        module_id: String,
    ) -> Result<ModuleRecord, RegistryError> {
        check_ids(&device_id, Some(&module_id))?;
        self.read(move |c, ctx| {
            store::get_module(c, &device_id, &module_id)?
                .map(|row| row.record)
                .ok_or_else(|| ctx.module_not_found(&device_id, &module_id))
        })
        .await
    }

    /// Creates (no `if_match`) or updates a module identity, as
    /// `PUT /devices/{id}/modules/{mid}` does.
    ///
    /// # Errors
    /// `ArgumentInvalid` (ids, keys, a body id that differs, a new module id starting with
    /// `$`, which IoT Hub reserves), `SystemModuleModifyUnauthorizedAccess` (`$edgeAgent`,
    /// `$edgeHub`), `DeviceNotFound`, `ModuleAlreadyExistsOnDevice`, `ModuleNotFound`,
    /// `PreconditionFailed`, or a store failure.
    pub async fn put_module(
        &self,
        device_id: String,
        module_id: String,
        input: ModuleInput,
        if_match: Option<String>,
    ) -> Result<ModuleRecord, RegistryError> {
        check_ids(&device_id, Some(&module_id))?;
        check_body_id("module", "moduleId", input.module_id.as_deref(), &module_id)?;
        check_body_id("device", "deviceId", input.device_id.as_deref(), &device_id)?;
        if is_system_module(&module_id) {
            return Err(RegistryError::SystemModule { module_id });
        }
        self.write(move |c, ctx| {
            require_device(c, ctx, &device_id)?;
            match (store::get_module(c, &device_id, &module_id)?, if_match) {
                (Some(_), None) => Err(RegistryError::ModuleAlreadyExists {
                    device_id,
                    module_id,
                }),
                (None, Some(_)) => Err(ctx.module_not_found(&device_id, &module_id)),
                (None, None) => {
                    if module_id.starts_with('$') {
                        return Err(Invalid::argument(format!(
                            "The module id '{}' starts with '$', which IoT Hub reserves for its own modules.",
                            module_id.escape_default()
                        ))
                        .into());
                    }
                    let row = ModuleRow {
                        record: ModuleRecord::create(&device_id, &module_id, &input, ctx.now)?,
                        twin: TwinState::new(&ctx.now_text),
                    };
                    store::put_module(c, &row)?;
                    ctx.emit(
                        RegistryEventKind::Created,
                        &device_id,
                        Some(&module_id),
                        || row.twin.render_module(&row.record),
                    );
                    Ok(row.record)
                }
                (Some(mut row), Some(expected)) => {
                    check_etag(Some(&expected), &row.record.etag(), "module")?;
                    row.record.update(&input)?;
                    store::put_module(c, &row)?;
                    Ok(row.record)
                }
            }
        })
        .await
    }

    /// Deletes a module with its twin and C2D queue.
    ///
    /// # Errors
    /// `ArgumentInvalid`, `SystemModuleModifyUnauthorizedAccess` (`$edgeAgent`, `$edgeHub`
    /// go only with their device), `DeviceNotFound`, `ModuleNotFound`, `PreconditionFailed`,
    /// or a store failure.
    pub async fn delete_module(
        &self,
        device_id: String,
        module_id: String,
        if_match: Option<String>,
    ) -> Result<(), RegistryError> {
        check_ids(&device_id, Some(&module_id))?;
        self.write(move |c, ctx| {
            let row = require_module(c, ctx, &device_id, &module_id)?;
            if is_system_module(&module_id) {
                return Err(RegistryError::SystemModule { module_id });
            }
            check_etag(if_match.as_deref(), &row.record.etag(), "module")?;
            store::delete_module(c, &device_id, &module_id)?;
            ctx.emit(
                RegistryEventKind::Deleted,
                &device_id,
                Some(&module_id),
                || row.twin.render_module(&row.record),
            );
            Ok(())
        })
        .await
    }

    /// Checks that a direct method's target exists.
    ///
    /// # Errors
    /// `ArgumentInvalid`, `DeviceNotFound`, `ModuleNotFound`, or a store failure.
    pub async fn require_target(
        &self,
        device_id: String,
        module_id: Option<String>,
    ) -> Result<(), RegistryError> {
        check_ids(&device_id, module_id.as_deref())?;
        self.read(move |c, ctx| {
            match &module_id {
                None => {
                    require_device(c, ctx, &device_id)?;
                }
                Some(m) => {
                    require_module(c, ctx, &device_id, m)?;
                }
            }
            Ok(())
        })
        .await
    }
}
