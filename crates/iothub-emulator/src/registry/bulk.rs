//! Bulk registry operations: up to 100 `ExportImportDevice` entries in one request.
//!
//! Requests that are wrong as a whole (empty, more than 100 devices, an id twice) are refused
//! before anything is applied. Then each entry is applied on its own, inside one SQLite
//! transaction with a savepoint per entry: what succeeds is committed, what fails leaves no
//! trace and is reported as a [`BulkFailure`]. Entries go through the same identity, scope
//! and twin rules as single-device writes.

use std::collections::HashSet;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::Value;

use super::identities::{
    PreparedDevice, create_device, create_prepared, delete_device_row, require_device,
    update_device,
};
use super::twins::twin_changed;
use super::{Ctx, Isolation, Registry, RegistryError, RegistryEventKind, check_etag, check_ids};
use crate::error::{ErrorCode, Invalid};
use crate::model::{AuthInput, CapabilitiesInput, DeviceInput, ModuleInput, ModuleRecord};
use crate::store::{self, ModuleRow, StoreError};
use crate::twin::{TwinChange, TwinState, TwinWrite};

use iothub_core::ImportMode;
use iothub_core::limits::MAX_BULK_DEVICES;

/// One entry the hub could not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFailure {
    /// The entry's `id` as sent (empty when missing).
    pub device_id: String,
    /// IoT Hub's code.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// The import mode's wire name, when the entry got that far.
    pub operation: Option<&'static str>,
}

/// `ExportImportDevice` as sent by clients.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportDevice {
    id: Option<String>,
    module_id: Option<String>,
    #[serde(rename = "eTag")]
    e_tag: Option<String>,
    import_mode: Option<String>,
    status: Option<String>,
    status_reason: Option<String>,
    authentication: Option<AuthInput>,
    #[serde(rename = "twinETag")]
    twin_e_tag: Option<String>,
    tags: Option<Value>,
    properties: Option<Value>,
    capabilities: Option<CapabilitiesInput>,
    device_scope: Option<String>,
    parent_scopes: Option<Vec<String>>,
    /// Module lines of import jobs only.
    managed_by: Option<String>,
}

/// Reads an entry's `importMode` (any ASCII case; `createOrUpdate` when absent).
fn parse_mode(text: Option<&str>) -> Result<ImportMode, Invalid> {
    let Some(text) = text else {
        return Ok(ImportMode::CreateOrUpdate);
    };
    text.parse().map_err(|_| {
        Invalid::argument(format!(
            "The importMode '{}' is not valid; use one of {}.",
            text.escape_default(),
            ImportMode::ALL
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Checks an entry's `eTag`/`twinETag` (an `*IfMatchETag` mode requires one that matches).
fn check_entry_etag(
    given: Option<&str>,
    current: &str,
    what: &'static str,
) -> Result<(), RegistryError> {
    let given = given
        .and_then(crate::model::parse_etag)
        .ok_or(RegistryError::PreconditionFailed { what })?;
    check_etag(Some(given), current, what)
}

/// The savepoint of one entry, opened only by the branches that can fail after a change
/// (through cached statements: what `Transaction::savepoint` does, without parsing the SQL
/// each time). A new device is created without one: every check comes before its one write,
/// and a store failure fails the whole request. SQLite copies each page an open savepoint
/// touches into its sub-journal; with the request's own savepoint ([`Isolation::Group`]
/// drops it too), that copying was more than a quarter of the hub's CPU in a bulk import
/// (39 µs per device with both savepoints, 28 without, at 200,000 devices).
struct EntrySavepoint<'c> {
    conn: &'c Connection,
    open: bool,
}

impl EntrySavepoint<'_> {
    fn open(&mut self) -> Result<(), StoreError> {
        if !self.open {
            self.conn
                .prepare_cached("SAVEPOINT bulk_device")?
                .execute([])?;
            self.open = true;
        }
        Ok(())
    }

    /// Releases the savepoint, rolling its changes back first when the entry failed.
    fn close(self, failed: bool) -> Result<(), StoreError> {
        if self.open {
            if failed {
                self.conn
                    .prepare_cached("ROLLBACK TO bulk_device")?
                    .execute([])?;
            }
            self.conn
                .prepare_cached("RELEASE bulk_device")?
                .execute([])?;
        }
        Ok(())
    }
}

/// The identity fields of an entry.
fn device_input(dev: &ImportDevice, id: &str) -> DeviceInput {
    DeviceInput {
        device_id: Some(id.to_owned()),
        status: dev.status.clone(),
        status_reason: dev.status_reason.clone(),
        authentication: dev.authentication.clone(),
        capabilities: dev.capabilities.clone(),
        device_scope: dev.device_scope.clone(),
        parent_scopes: dev.parent_scopes.clone(),
    }
}

/// How an entry's twin is written: `updateTwin` modes patch, the others replace what is given.
fn twin_write(mode: ImportMode) -> TwinWrite {
    match mode {
        ImportMode::UpdateTwin | ImportMode::UpdateTwinIfMatchETag => TwinWrite::Update,
        _ => TwinWrite::ReplaceGiven,
    }
}

/// An entry of a bulk registry operation or an import job, parsed before the write; for an
/// entry that may create a device without scopes, the device is built and encoded too
/// ([`PreparedDevice`]), so the registry's single writer only checks and inserts it. That
/// work runs on the request's own task, beside the writer.
struct Entry {
    /// The entry's `id` as given (for its failure report).
    raw_id: String,
    /// The entry's `moduleId` as given (for an import line's failure report).
    module_id: Option<String>,
    parsed: Result<Parsed, RegistryError>,
}

/// A parsed entry: its twin change (or why it is refused, reported where the writer checks
/// it) and, for a plain create, the device built beforehand.
struct Parsed {
    dev: ImportDevice,
    mode: ImportMode,
    change: Result<TwinChange, RegistryError>,
    new_device: Option<PreparedDevice>,
}

impl Entry {
    fn new(item: Value, ctx: &Ctx) -> Self {
        let text = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
        let raw_id = text("id").unwrap_or_default();
        let module_id = text("moduleId").filter(|m| !m.is_empty());
        let parsed = serde_json::from_value::<ImportDevice>(item)
            .map_err(|e| {
                RegistryError::from(Invalid::format(format!(
                    "The device entry is not valid: {}.",
                    crate::error::json_problem(&e)
                )))
            })
            .and_then(|dev| {
                let mode = parse_mode(dev.import_mode.as_deref())?;
                let change = TwinChange::from_import(
                    dev.tags.as_ref(),
                    dev.properties.as_ref(),
                    twin_write(mode),
                )
                .map_err(RegistryError::from);
                let new_device = prepare_new_device(ctx, &dev, mode, change.as_ref().ok());
                Ok(Parsed {
                    dev,
                    mode,
                    change,
                    new_device,
                })
            });
        Self {
            raw_id,
            module_id,
            parsed,
        }
    }
}

/// The device a plain create (no module, no scopes) of a valid entry would write, built
/// before the writer's turn (see [`PreparedDevice`]).
fn prepare_new_device(
    ctx: &Ctx,
    dev: &ImportDevice,
    mode: ImportMode,
    change: Option<&TwinChange>,
) -> Option<PreparedDevice> {
    let creates = matches!(
        mode,
        ImportMode::Create | ImportMode::CreateOrUpdate | ImportMode::CreateOrUpdateIfMatchETag
    );
    let id = dev.id.as_deref()?;
    let plain = dev.module_id.as_deref().is_none_or(str::is_empty)
        && dev.device_scope.is_none()
        && dev.parent_scopes.as_ref().is_none_or(Vec::is_empty);
    if !creates || !plain || check_ids(id, None).is_err() {
        return None;
    }
    PreparedDevice::new(ctx, id, &device_input(dev, id), Some(change?))
}

/// Applies one entry. Every branch that can fail after a change opens `savepoint` before its
/// first write; the caller rolls it back when the entry fails.
/// `import` is set for the lines of an import job, where an IoT Edge device keeps the
/// `deviceScope` an export wrote (`ms-azure-iot-edge://{id}-…`), so that its children's
/// scopes still name it in the new registry.
fn apply_one(
    conn: &Connection,
    ctx: &Ctx,
    parsed: Parsed,
    import: bool,
    savepoint: &mut EntrySavepoint<'_>,
) -> Result<(), RegistryError> {
    let Parsed {
        dev,
        mode,
        change,
        new_device,
    } = parsed;
    let dev = &dev;
    let id = dev.id.as_deref().unwrap_or_default();
    check_ids(id, None)?;
    if dev.module_id.as_deref().is_some_and(|m| !m.is_empty()) {
        return Err(Invalid::argument(
            "Module identities cannot be changed through bulk registry operations.",
        )
        .into());
    }
    let input = device_input(dev, id);
    let change = change?;
    match mode {
        ImportMode::Delete | ImportMode::DeleteIfMatchETag => {
            let row = require_device(conn, ctx, id)?;
            if mode == ImportMode::DeleteIfMatchETag {
                check_entry_etag(dev.e_tag.as_deref(), &row.record.etag(), "device")?;
            }
            savepoint.open()?;
            delete_device_row(conn, ctx, &row)?;
        }
        ImportMode::UpdateTwin | ImportMode::UpdateTwinIfMatchETag => {
            let mut row = require_device(conn, ctx, id)?;
            if mode == ImportMode::UpdateTwinIfMatchETag {
                check_entry_etag(dev.twin_e_tag.as_deref(), &row.twin.etag(), "twin")?;
            }
            if !change.is_empty() {
                savepoint.open()?;
                let before = row.twin.desired.clone();
                let version = row.twin.version;
                row.twin.apply(&change, TwinWrite::Update, &ctx.now_text)?;
                store::put_device(conn, &row)?;
                ctx.desired_changed(id, None, &before, &row.twin.desired);
                twin_changed(
                    ctx,
                    (id, None),
                    &change,
                    TwinWrite::Update,
                    version,
                    &row.twin,
                );
            }
        }
        _ => {
            let may_create = matches!(
                mode,
                ImportMode::Create
                    | ImportMode::CreateOrUpdate
                    | ImportMode::CreateOrUpdateIfMatchETag
            );
            let may_update = mode != ImportMode::Create;
            match store::get_device(conn, id)? {
                Some(_) if !may_update => {
                    return Err(RegistryError::DeviceAlreadyExists {
                        device_id: id.to_owned(),
                        hub: ctx.hub.clone(),
                    });
                }
                None if !may_create => return Err(ctx.device_not_found(id)),
                Some(mut row) => {
                    savepoint.open()?;
                    if matches!(
                        mode,
                        ImportMode::UpdateIfMatchETag | ImportMode::CreateOrUpdateIfMatchETag
                    ) {
                        check_entry_etag(dev.e_tag.as_deref(), &row.record.etag(), "device")?;
                    }
                    let before = row.twin.desired.clone();
                    let version = row.twin.version;
                    if !change.is_empty() {
                        row.twin
                            .apply(&change, TwinWrite::ReplaceGiven, &ctx.now_text)?;
                    }
                    update_device(conn, ctx, &mut row, &input)?;
                    ctx.desired_changed(id, None, &before, &row.twin.desired);
                    twin_changed(
                        ctx,
                        (id, None),
                        &change,
                        TwinWrite::ReplaceGiven,
                        version,
                        &row.twin,
                    );
                }
                None => {
                    let exported_scope = dev.device_scope.as_deref().filter(|scope| {
                        import
                            && dev
                                .capabilities
                                .as_ref()
                                .is_some_and(|c| c.iot_edge == Some(true))
                            && scope
                                .strip_prefix(super::scopes::SCOPE_PREFIX)
                                .and_then(|rest| rest.strip_prefix(id))
                                .is_some_and(|rest| rest.starts_with('-'))
                    });
                    match (exported_scope, new_device) {
                        // Fails before its write, or with a store failure (see
                        // `EntrySavepoint`).
                        (None, Some(prepared)) => {
                            create_prepared(conn, ctx, prepared)?;
                        }
                        (None, None) => {
                            create_device(conn, ctx, id, &input, Some(&change))?;
                        }
                        (Some(scope), _) => {
                            savepoint.open()?;
                            let input = DeviceInput {
                                device_scope: None,
                                ..input
                            };
                            let mut row = create_device(conn, ctx, id, &input, Some(&change))?;
                            row.record.device_scope = Some(scope.to_owned());
                            super::scopes::check(conn, &row.record)?;
                            store::put_device(conn, &row)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks the request as a whole.
fn check_request(items: &[Value]) -> Result<(), RegistryError> {
    if items.is_empty() {
        return Err(Invalid::argument("The bulk registry request holds no devices.").into());
    }
    if items.len() > MAX_BULK_DEVICES {
        return Err(RegistryError::refused(
            ErrorCode::TooManyDevices,
            format!(
                "The bulk registry request holds {} devices; at most {MAX_BULK_DEVICES} are allowed per request.",
                items.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for item in items {
        if let Some(id) = item.get("id").and_then(Value::as_str)
            && !seen.insert(id)
        {
            return Err(RegistryError::refused(
                ErrorCode::DeviceDefinedMultipleTimes,
                format!(
                    "The device '{}' appears more than once in the request.",
                    id.escape_default()
                ),
            ));
        }
    }
    Ok(())
}

/// One entry of an import job's input blob: its 1-based line number and its JSON.
#[derive(Debug, Clone)]
pub struct ImportLine {
    /// Line number in the input blob (from 1).
    pub line: u64,
    /// The `ExportImportDevice` entry.
    pub entry: Value,
}

/// A line of an import job that the hub could not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    /// Line number in the input blob (from 1).
    pub line: u64,
    /// What failed, as the bulk registry operation reports it.
    pub failure: BulkFailure,
    /// The entry's `moduleId`, for a module line.
    pub module_id: Option<String>,
}

/// Applies one entry. `Ok(None)` when it was applied; a store failure aborts the whole
/// transaction.
fn apply_entry(
    tx: &Connection,
    ctx: &Ctx,
    entry: Entry,
    with_modules: bool,
) -> Result<Option<BulkFailure>, RegistryError> {
    let Entry { raw_id, parsed, .. } = entry;
    let (mode, outcome) = match parsed {
        Err(e) => (None, Err(e)),
        Ok(parsed) => {
            let mode = parsed.mode;
            let mut savepoint = EntrySavepoint {
                conn: tx,
                open: false,
            };
            let module_id = parsed
                .dev
                .module_id
                .clone()
                .filter(|m| with_modules && !m.is_empty());
            let outcome = match module_id {
                Some(m) => {
                    savepoint.open()?;
                    apply_module(tx, ctx, parsed, &m)
                }
                None => apply_one(tx, ctx, parsed, with_modules, &mut savepoint),
            };
            savepoint.close(outcome.is_err())?;
            (Some(mode), outcome)
        }
    };
    match outcome {
        Ok(()) => Ok(None),
        Err(RegistryError::Store(e)) => Err(RegistryError::Store(e)),
        Err(e) => Ok(Some(BulkFailure {
            device_id: raw_id,
            code: e.code(),
            message: e.to_string(),
            operation: mode.map(ImportMode::as_str),
        })),
    }
}

/// Applies one module line of an import job (IoT Hub's import jobs carry module identities
/// as lines with a `moduleId`; the bulk REST operation does not take them). The import modes
/// mean what they mean for devices; `$edgeAgent`/`$edgeHub` come and go with their IoT Edge
/// device, so they are never created or deleted here, only given keys and twin changes.
fn apply_module(
    conn: &Connection,
    ctx: &Ctx,
    parsed: Parsed,
    module_id: &str,
) -> Result<(), RegistryError> {
    let Parsed {
        dev, mode, change, ..
    } = parsed;
    let dev = &dev;
    let device_id = dev.id.as_deref().unwrap_or_default();
    check_ids(device_id, Some(module_id))?;
    let system = super::is_system_module(module_id);
    let how = twin_write(mode);
    let change = change?;
    let input = ModuleInput {
        module_id: Some(module_id.to_owned()),
        device_id: Some(device_id.to_owned()),
        managed_by: dev.managed_by.clone(),
        authentication: dev.authentication.clone(),
    };
    let existing = store::get_module(conn, device_id, module_id)?;
    if existing.is_none() {
        require_device(conn, ctx, device_id)?;
    }
    let twin_only = matches!(
        mode,
        ImportMode::UpdateTwin | ImportMode::UpdateTwinIfMatchETag
    );
    match (mode, existing) {
        (ImportMode::Delete | ImportMode::DeleteIfMatchETag, None) => {
            Err(ctx.module_not_found(device_id, module_id))
        }
        (ImportMode::Delete | ImportMode::DeleteIfMatchETag, Some(row)) => {
            if system {
                return Err(RegistryError::SystemModule {
                    module_id: module_id.to_owned(),
                });
            }
            if mode == ImportMode::DeleteIfMatchETag {
                check_entry_etag(dev.e_tag.as_deref(), &row.record.etag(), "module")?;
            }
            store::delete_module(conn, device_id, module_id)?;
            ctx.emit(
                RegistryEventKind::Deleted,
                device_id,
                Some(module_id),
                || row.twin.render_module(&row.record),
            );
            Ok(())
        }
        (ImportMode::Create, Some(_)) => Err(RegistryError::ModuleAlreadyExists {
            device_id: device_id.to_owned(),
            module_id: module_id.to_owned(),
        }),
        (
            ImportMode::Update
            | ImportMode::UpdateIfMatchETag
            | ImportMode::UpdateTwin
            | ImportMode::UpdateTwinIfMatchETag,
            None,
        ) => Err(ctx.module_not_found(device_id, module_id)),
        (_, None) => {
            if module_id.starts_with('$') {
                return Err(Invalid::argument(format!(
                    "The module id '{}' starts with '$', which IoT Hub reserves for its own modules.",
                    module_id.escape_default()
                ))
                .into());
            }
            let mut row = ModuleRow {
                record: ModuleRecord::create(device_id, module_id, &input, ctx.now)?,
                twin: TwinState::new(&ctx.now_text),
            };
            if !change.is_empty() {
                row.twin
                    .apply(&change, TwinWrite::ReplaceGiven, &ctx.now_text)?;
            }
            store::put_module(conn, &row)?;
            ctx.emit(
                RegistryEventKind::Created,
                device_id,
                Some(module_id),
                || row.twin.render_module(&row.record),
            );
            Ok(())
        }
        (_, Some(mut row)) => {
            match mode {
                ImportMode::UpdateIfMatchETag | ImportMode::CreateOrUpdateIfMatchETag => {
                    check_entry_etag(dev.e_tag.as_deref(), &row.record.etag(), "module")?;
                }
                ImportMode::UpdateTwinIfMatchETag => {
                    check_entry_etag(dev.twin_e_tag.as_deref(), &row.twin.etag(), "twin")?;
                }
                _ => {}
            }
            // An IoT Edge system module takes the keys an export wrote, so a registry copied
            // through export and import keeps them.
            if !twin_only && (!system || dev.authentication.is_some()) {
                row.record.update(&input)?;
            }
            let before = row.twin.desired.clone();
            let version = row.twin.version;
            if !change.is_empty() {
                row.twin.apply(&change, how, &ctx.now_text)?;
            }
            store::put_module(conn, &row)?;
            ctx.desired_changed(device_id, Some(module_id), &before, &row.twin.desired);
            twin_changed(
                ctx,
                (device_id, Some(module_id)),
                &change,
                how,
                version,
                &row.twin,
            );
            Ok(())
        }
    }
}

impl Registry {
    /// Runs a bulk registry operation over `items` (`ExportImportDevice` JSON objects) and
    /// returns the entries that failed (empty when all succeeded).
    ///
    /// # Errors
    /// For the request as a whole, before anything is applied: `ArgumentInvalid` (empty),
    /// `TooManyDevices` (more than [`MAX_BULK_DEVICES`]), `DeviceDefinedMultipleTimes`; a
    /// store failure rolls everything back.
    pub async fn bulk(&self, items: Vec<Value>) -> Result<Vec<BulkFailure>, RegistryError> {
        check_request(&items)?;
        let ctx = self.ctx();
        let entries: Vec<Entry> = items
            .into_iter()
            .map(|item| Entry::new(item, &ctx))
            .collect();
        self.write_in(ctx, Isolation::Group, move |tx, ctx| {
            let mut failures = Vec::new();
            for entry in entries {
                failures.extend(apply_entry(tx, ctx, entry, false)?);
            }
            Ok(failures)
        })
        .await
    }

    /// Applies a batch of an import job's lines in file order, each as the bulk registry
    /// operation applies an entry, plus module lines (a `moduleId`). The same id may appear
    /// on several lines. `checkpoint` runs in the same transaction after the lines, with the
    /// number of failed lines, so a job's progress record commits together with the lines it
    /// counts (and survives `kill -9` exactly).
    ///
    /// # Errors
    /// A store failure, which rolls back the whole batch and its checkpoint.
    pub async fn import_lines<F>(
        &self,
        lines: Vec<ImportLine>,
        checkpoint: F,
    ) -> Result<Vec<ImportFailure>, RegistryError>
    where
        F: FnOnce(&Connection, u64) -> Result<(), crate::store::StoreError> + Send + 'static,
    {
        let ctx = self.ctx();
        let entries: Vec<(u64, Entry)> = lines
            .into_iter()
            .map(|ImportLine { line, entry }| (line, Entry::new(entry, &ctx)))
            .collect();
        self.write_in(ctx, Isolation::Group, move |tx, ctx| {
            let mut failures = Vec::new();
            for (line, entry) in entries {
                let module_id = entry.module_id.clone();
                if let Some(failure) = apply_entry(tx, ctx, entry, true)? {
                    failures.push(ImportFailure {
                        line,
                        failure,
                        module_id,
                    });
                }
            }
            checkpoint(tx, failures.len() as u64)?;
            Ok(failures)
        })
        .await
    }
}
