//! Device and module twins: tags, desired and reported properties, versions, metadata and
//! the limits IoT Hub documents.
//!
//! Every write path takes its change through one validator ([`TwinChange`]): the service's
//! update (`PATCH /twins`) and replacement (`PUT /twins`), bulk registry operations, IoT Edge
//! configuration content, and a device's reported-properties update
//! ([`TwinChange::reported_patch`]). Rules enforced (all answered with 400 `ArgumentInvalid`,
//! nothing written):
//! - keys: non-empty, at most 1024 UTF-8 bytes, no `.`, `$`, `#`, space or control character
//!   (IoT Hub's twin article lists `.`, `$`, space and the C0/C1 control characters; the hub
//!   also refuses `#`);
//! - `null` removes a property in an update only; a replacement (`PUT`) holding a `null`
//!   value anywhere in tags or desired properties is refused and names the key (the hub does
//!   not read it as "remove");
//! - string values at most 4096 UTF-8 bytes; every number (integer or not, in any
//!   spelling such as `1e30`) from -2^52 to 2^52 - 1, the range of IoT Hub's twin article;
//! - depth: at most 10 levels of nested objects *below* the section root (the documented
//!   example nests `one` … `ten` under `desired` and is accepted; an eleventh level is not);
//! - size: tags ≤ 8 KiB, desired ≤ 32 KiB, reported ≤ 32 KiB, where size is the sum of UTF-8
//!   key lengths plus values (strings by UTF-8 length, numbers 8 bytes, booleans and nulls
//!   4 bytes); `$metadata` and `$version` are not counted.
//! - arrays are accepted (IoT Hub's older documents forbid them; the emulator is lenient).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::clock::NEVER;
use crate::error::Invalid;
use crate::model::{AuthenticationMechanism, DeviceRecord, ModuleRecord};

use iothub_core::limits::{
    MAX_TWIN_DEPTH as MAX_DEPTH, MAX_TWIN_INTEGER, MAX_TWIN_KEY_BYTES as MAX_KEY_BYTES,
    MAX_TWIN_PROPERTIES_BYTES as MAX_PROPERTIES_BYTES, MAX_TWIN_STRING_BYTES as MAX_STRING_BYTES,
    MAX_TWIN_TAGS_BYTES as MAX_TAGS_BYTES, MIN_TWIN_INTEGER,
};

/// Which twin section a value belongs to (for messages and limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// `tags`.
    Tags,
    /// `properties.desired`.
    Desired,
    /// `properties.reported`.
    Reported,
}

impl SectionKind {
    fn name(self) -> &'static str {
        match self {
            SectionKind::Tags => "tags",
            SectionKind::Desired => "properties.desired",
            SectionKind::Reported => "properties.reported",
        }
    }

    fn max_bytes(self) -> usize {
        match self {
            SectionKind::Tags => MAX_TAGS_BYTES,
            SectionKind::Desired | SectionKind::Reported => MAX_PROPERTIES_BYTES,
        }
    }
}

/// A property section with its `$metadata` tree and `$version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The properties (no `$` keys).
    pub values: Map<String, Value>,
    /// The `$metadata` tree.
    pub metadata: Map<String, Value>,
    /// `$version`.
    pub version: u64,
    /// Whether metadata carries `$lastUpdatedVersion` (desired does, reported doesn't).
    with_version_stamp: bool,
}

impl Section {
    fn new(with_version_stamp: bool, now: &str) -> Self {
        let mut metadata = Map::new();
        metadata.insert("$lastUpdated".into(), Value::String(now.to_owned()));
        Section {
            values: Map::new(),
            metadata,
            version: 1,
            with_version_stamp,
        }
    }

    fn stamp(&self, now: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("$lastUpdated".into(), Value::String(now.to_owned()));
        if self.with_version_stamp {
            m.insert("$lastUpdatedVersion".into(), Value::from(self.version));
        }
        m
    }

    fn from_doc(doc: Option<&Value>, with_version_stamp: bool) -> Self {
        let mut values = doc.and_then(Value::as_object).cloned().unwrap_or_default();
        let metadata = match values.remove("$metadata") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let version = values
            .remove("$version")
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        Section {
            values,
            metadata,
            version,
            with_version_stamp,
        }
    }

    fn to_doc(&self) -> Value {
        let mut doc = self.values.clone();
        doc.insert("$metadata".into(), Value::Object(self.metadata.clone()));
        doc.insert("$version".into(), Value::from(self.version));
        Value::Object(doc)
    }

    /// Merges `patch` (null removes) and bumps `$version`.
    pub fn merge(&mut self, patch: &Map<String, Value>, now: &str) {
        self.version += 1;
        let stamp = self.stamp(now);
        merge_into(&mut self.values, Some(&mut self.metadata), patch, &stamp);
        self.metadata.extend(stamp);
    }

    /// Replaces all properties and bumps `$version`.
    pub fn replace(&mut self, new_values: &Map<String, Value>, now: &str) {
        self.version += 1;
        let stamp = self.stamp(now);
        self.values = strip_nulls(new_values);
        self.metadata = metadata_for(&self.values, &stamp);
    }
}

/// The mutable state of a twin.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinState {
    /// `tags`.
    pub tags: Map<String, Value>,
    /// `properties.desired`.
    pub desired: Section,
    /// `properties.reported`.
    pub reported: Section,
    /// Twin `version`; the twin ETag is derived from it.
    pub version: u64,
}

impl TwinState {
    /// The twin of a newly created identity; `now` is IoT Hub's time format
    /// ([`crate::clock::format_time`]).
    pub fn new(now: &str) -> Self {
        TwinState {
            tags: Map::new(),
            desired: Section::new(true, now),
            reported: Section::new(false, now),
            version: 1,
        }
    }

    /// Reads the state back from a stored twin document.
    pub fn from_doc(doc: &Value) -> Self {
        let properties = doc.get("properties");
        TwinState {
            tags: doc
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            desired: Section::from_doc(properties.and_then(|p| p.get("desired")), true),
            reported: Section::from_doc(properties.and_then(|p| p.get("reported")), false),
            version: doc.get("version").and_then(Value::as_u64).unwrap_or(1),
        }
    }

    /// The twin ETag: base64 of the big-endian 8-byte version (`1` → `AAAAAAAAAAE=`).
    pub fn etag(&self) -> String {
        B64.encode(self.version.to_be_bytes())
    }

    fn insert_common(&self, doc: &mut Map<String, Value>) {
        doc.insert("version".into(), Value::from(self.version));
        if !self.tags.is_empty() {
            doc.insert("tags".into(), Value::Object(self.tags.clone()));
        }
        doc.insert(
            "properties".into(),
            json!({ "desired": self.desired.to_doc(), "reported": self.reported.to_doc() }),
        );
    }

    /// The device twin document, exactly as `GET /twins/{id}` returns it.
    pub fn render_device(&self, device: &DeviceRecord) -> Value {
        // One description of the document for both forms (see `DeviceTwinDoc`); it has only
        // string keys, so turning it into a `Value` cannot fail.
        serde_json::to_value(DeviceTwinDoc {
            twin: self,
            device,
            c2d_count: device.cloud_to_device_message_count,
        })
        .unwrap_or_default()
    }

    /// [`TwinState::render_device`] as JSON text with `cloudToDeviceMessageCount` set to
    /// `c2d_count`, written straight from the state instead of through a `Value` tree (a
    /// bulk import encodes a twin per device; the tree was a third of that work). The text is
    /// byte for byte what serializing the rendered document gives: keys in the same sorted
    /// order, the same optional fields (both come from one `Serialize` implementation).
    ///
    /// # Errors
    /// Whatever `serde_json` reports (a JSON map with non-string keys cannot occur here).
    pub fn device_json(
        &self,
        device: &DeviceRecord,
        c2d_count: u64,
    ) -> Result<String, serde_json::Error> {
        serde_json::to_string(&DeviceTwinDoc {
            twin: self,
            device,
            c2d_count,
        })
    }

    /// The module twin document, exactly as `GET /twins/{id}/modules/{mid}` returns it.
    pub fn render_module(&self, module: &ModuleRecord) -> Value {
        let mut doc = Map::new();
        doc.insert("deviceId".into(), Value::String(module.device_id.clone()));
        doc.insert("moduleId".into(), Value::String(module.module_id.clone()));
        doc.insert("etag".into(), Value::String(self.etag()));
        doc.insert("deviceEtag".into(), Value::String(module.etag()));
        doc.insert("status".into(), Value::String("enabled".into()));
        doc.insert("statusUpdateTime".into(), Value::String(NEVER.into()));
        insert_identity_fields(
            &mut doc,
            module.connected,
            module.last_activity_time.as_deref(),
            module.cloud_to_device_message_count,
            &module.auth,
            &module.model_id,
        );
        self.insert_common(&mut doc);
        Value::Object(doc)
    }

    /// Applies a change and bumps the twin version, stamping `$metadata` with `now` (IoT Hub's
    /// time format). Nothing changes when the result would break a limit.
    ///
    /// # Errors
    /// [`Invalid`] (`ArgumentInvalid`) when a section would exceed its size or depth limit.
    pub fn apply(&mut self, change: &TwinChange, how: TwinWrite, now: &str) -> Result<(), Invalid> {
        let mut next = self.clone();
        let now = now.to_owned();
        if how == TwinWrite::Replace {
            next.tags = strip_nulls(change.tags.as_ref().unwrap_or(&Map::new()));
            next.desired
                .replace(change.desired.as_ref().unwrap_or(&Map::new()), &now);
            if let Some(reported) = &change.reported {
                next.reported.replace(reported, &now);
            }
        } else if how == TwinWrite::ReplaceGiven {
            if let Some(tags) = &change.tags {
                next.tags = strip_nulls(tags);
            }
            if let Some(desired) = &change.desired {
                next.desired.replace(desired, &now);
            }
            if let Some(reported) = &change.reported {
                next.reported.replace(reported, &now);
            }
        } else {
            if let Some(tags) = &change.tags {
                merge_into(&mut next.tags, None, tags, &Map::new());
            }
            if let Some(desired) = change.desired.as_ref().filter(|d| !d.is_empty()) {
                next.desired.merge(desired, &now);
            }
            if let Some(reported) = change.reported.as_ref().filter(|d| !d.is_empty()) {
                next.reported.merge(reported, &now);
            }
        }
        check_section(SectionKind::Tags, &next.tags)?;
        check_section(SectionKind::Desired, &next.desired.values)?;
        check_section(SectionKind::Reported, &next.reported.values)?;
        next.version += 1;
        *self = next;
        Ok(())
    }
}

/// How a [`TwinChange`] is applied, in IoT Hub's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinWrite {
    /// Update: a JSON merge-patch of each given section (`PATCH /twins`, a device's reported
    /// properties); `null` removes a key.
    Update,
    /// Replace: tags and desired properties are replaced; an absent section becomes empty
    /// (`PUT /twins`).
    Replace,
    /// Only the given sections are replaced (bulk create/update with twin data).
    ReplaceGiven,
}

/// A validated change to a twin's tags and properties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwinChange {
    /// New or patched tags.
    pub tags: Option<Map<String, Value>>,
    /// New or patched desired properties.
    pub desired: Option<Map<String, Value>>,
    /// New or patched reported properties (bulk import only).
    pub reported: Option<Map<String, Value>>,
}

impl TwinChange {
    /// Reads a twin from a service request body (`PATCH`/`PUT /twins/...`), to be applied
    /// as `how`. Only `tags` and `properties.desired` may be changed from the service side;
    /// non-empty reported properties are rejected, and so is a `null` value in a replacement.
    ///
    /// # Errors
    /// [`Invalid`]: `IotHubFormatError` for a body or section that is not an object,
    /// `ArgumentInvalid` for a key or value that breaks a rule.
    pub fn from_twin_body(body: &Value, how: TwinWrite) -> Result<Self, Invalid> {
        let Some(obj) = body.as_object() else {
            return Err(Invalid::format("The twin must be a JSON object."));
        };
        let nulls = Nulls::for_write(how);
        let tags = section_from(obj.get("tags"), SectionKind::Tags, nulls)?;
        let (desired, reported) = match obj.get("properties") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(p)) => (
                section_from(p.get("desired"), SectionKind::Desired, nulls)?,
                section_from(p.get("reported"), SectionKind::Reported, nulls)?,
            ),
            Some(_) => {
                return Err(Invalid::format(
                    "The twin 'properties' must be a JSON object.",
                ));
            }
        };
        if reported.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(Invalid::argument(
                "Reported properties are read-only from the service side; only tags and properties.desired can be updated.",
            ));
        }
        Ok(TwinChange {
            tags,
            desired,
            reported: None,
        })
    }

    /// Reads the twin parts of an `ExportImportDevice` (`tags`, `properties.desired`,
    /// `properties.reported`), to be applied as `how`: the `updateTwin` modes update
    /// ([`TwinWrite::Update`], `null` removes), the create and update modes replace the
    /// sections they carry ([`TwinWrite::ReplaceGiven`], `null` refused as in `PUT`).
    ///
    /// # Errors
    /// As [`from_twin_body`](Self::from_twin_body).
    pub fn from_import(
        tags: Option<&Value>,
        properties: Option<&Value>,
        how: TwinWrite,
    ) -> Result<Self, Invalid> {
        let nulls = Nulls::for_write(how);
        let tags = section_from(tags, SectionKind::Tags, nulls)?;
        let (desired, reported) = match properties {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(p)) => (
                section_from(p.get("desired"), SectionKind::Desired, nulls)?,
                section_from(p.get("reported"), SectionKind::Reported, nulls)?,
            ),
            Some(_) => return Err(Invalid::format("'properties' must be a JSON object.")),
        };
        Ok(TwinChange {
            tags,
            desired,
            reported,
        })
    }

    /// A device's (or module's) update of its reported properties: a JSON merge-patch of
    /// `properties.reported` (`null` removes), the write path of the device side (MQTT
    /// `$iothub/twin/PATCH/properties/reported/`). Apply it with [`TwinWrite::Update`].
    ///
    /// # Errors
    /// [`Invalid`]: `IotHubFormatError` when `patch` is not an object, `ArgumentInvalid` for
    /// a key or value that breaks a rule.
    pub fn reported_patch(patch: &Value) -> Result<Self, Invalid> {
        if !patch.is_object() {
            return Err(Invalid::format(
                "A reported-properties update must be a JSON object.",
            ));
        }
        Ok(TwinChange {
            tags: None,
            desired: None,
            reported: section_from(Some(patch), SectionKind::Reported, Nulls::Remove)?,
        })
    }

    /// Whether the change touches nothing.
    pub fn is_empty(&self) -> bool {
        self.tags.is_none() && self.desired.is_none() && self.reported.is_none()
    }
}

/// Extracts one section from a body, dropping the read-only `$metadata`/`$version` keys and
/// checking every key and value.
fn section_from(
    value: Option<&Value>,
    kind: SectionKind,
    nulls: Nulls,
) -> Result<Option<Map<String, Value>>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let mut m = m.clone();
            if kind != SectionKind::Tags {
                m.remove("$metadata");
                m.remove("$version");
            }
            check_keys_and_values(kind, &m, kind.name(), nulls)?;
            Ok(Some(m))
        }
        Some(_) => Err(Invalid::format(format!(
            "'{}' must be a JSON object.",
            kind.name()
        ))),
    }
}

/// What a `null` value means in a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nulls {
    /// Removes the key (updates).
    Remove,
    /// Refused (replacements).
    Refused,
}

impl Nulls {
    /// `null` removes in an update; anything that replaces a section refuses it.
    fn for_write(how: TwinWrite) -> Self {
        if how == TwinWrite::Update {
            Nulls::Remove
        } else {
            Nulls::Refused
        }
    }
}

fn check_key(kind: SectionKind, key: &str, path: &str) -> Result<(), Invalid> {
    let bad = |why: &str| {
        Err(Invalid::argument(format!(
            "Invalid key '{}' in {} (at {path}): {why}",
            key.escape_default(),
            kind.name()
        )))
    };
    if key.is_empty() {
        return bad("keys must not be empty.");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad("keys are limited to 1024 UTF-8 bytes.");
    }
    if let Some(c) = key
        .chars()
        .find(|c| matches!(c, '.' | '$' | '#' | ' ') || c.is_control())
    {
        return bad(&format!(
            "keys cannot contain {c:?} ('.', '$', '#', space and control characters are not allowed)."
        ));
    }
    Ok(())
}

fn check_keys_and_values(
    kind: SectionKind,
    map: &Map<String, Value>,
    path: &str,
    nulls: Nulls,
) -> Result<(), Invalid> {
    for (k, v) in map {
        check_key(kind, k, path)?;
        if v.is_null() && nulls == Nulls::Refused {
            return Err(Invalid::argument(format!(
                "The value of '{}' (at {path}) in {} is null: null removes a property only in an update (PATCH), a replacement (PUT) cannot hold it.",
                k.escape_default(),
                kind.name()
            )));
        }
        check_value(kind, v, &format!("{path}.{k}"), nulls)?;
    }
    Ok(())
}

fn check_value(kind: SectionKind, v: &Value, path: &str, nulls: Nulls) -> Result<(), Invalid> {
    match v {
        Value::Object(m) => check_keys_and_values(kind, m, path, nulls),
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_value(kind, i, path, nulls)),
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(Invalid::argument(format!(
            "The string value at {path} is {} bytes; twin string values are limited to {MAX_STRING_BYTES} bytes.",
            s.len()
        ))),
        Value::Number(n) => {
            // The range applies to every number however it is spelled: `1e30` and
            // `4503599627370497.0` are refused like `4503599627370497`.
            let range = MIN_TWIN_INTEGER..=MAX_TWIN_INTEGER;
            let out_of_range = if let Some(i) = n.as_i64() {
                !range.contains(&i)
            } else if n.as_u64().is_some() {
                true // above i64::MAX
            } else {
                n.as_f64().is_none_or(|f| {
                    !f.is_finite() || f < MIN_TWIN_INTEGER as f64 || f > MAX_TWIN_INTEGER as f64
                })
            };
            if out_of_range {
                Err(Invalid::argument(format!(
                    "The number at {path} is outside the range IoT Hub accepts ({MIN_TWIN_INTEGER} to {MAX_TWIN_INTEGER})."
                )))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Checks a section's resulting size and depth.
fn check_section(kind: SectionKind, values: &Map<String, Value>) -> Result<(), Invalid> {
    let depth = values.values().map(object_depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(Invalid::argument(format!(
            "{} would nest objects {depth} levels deep; the maximum depth is {MAX_DEPTH}.",
            kind.name()
        )));
    }
    let size = map_size(values);
    if size > kind.max_bytes() {
        return Err(Invalid::argument(format!(
            "{} would be {size} bytes; the maximum size is {} bytes.",
            kind.name(),
            kind.max_bytes()
        )));
    }
    Ok(())
}

/// Levels of nested objects in `v` (a leaf is 0, `{}` or `{"a":1}` is 1).
fn object_depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(object_depth).max().unwrap_or(0),
        Value::Array(items) => items.iter().map(object_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn map_size(m: &Map<String, Value>) -> usize {
    m.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Size of a value as IoT Hub counts it.
pub fn value_size(v: &Value) -> usize {
    match v {
        Value::Object(m) => map_size(m),
        Value::Array(items) => items.iter().map(value_size).sum(),
        // IoT Hub counts strings by their UTF-8 length without the C0 and C1 control
        // characters (the twin article's size rule).
        Value::String(s) => s
            .chars()
            .filter(|c| !c.is_control())
            .map(char::len_utf8)
            .sum(),
        Value::Number(_) => 8,
        Value::Bool(_) | Value::Null => 4,
    }
}

fn strip_nulls(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) => Value::Object(strip_nulls(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn metadata_for(values: &Map<String, Value>, stamp: &Map<String, Value>) -> Map<String, Value> {
    let mut meta = stamp.clone();
    for (k, v) in values {
        let child = match v {
            Value::Object(inner) => metadata_for(inner, stamp),
            _ => stamp.clone(),
        };
        meta.insert(k.clone(), Value::Object(child));
    }
    meta
}

/// JSON merge-patch with metadata upkeep: `null` removes, objects merge, anything else replaces.
fn merge_into(
    target: &mut Map<String, Value>,
    mut meta: Option<&mut Map<String, Value>>,
    patch: &Map<String, Value>,
    stamp: &Map<String, Value>,
) {
    for (key, pv) in patch {
        if pv.is_null() {
            target.remove(key);
            if let Some(m) = meta.as_deref_mut() {
                m.remove(key);
            }
            continue;
        }
        match (target.get_mut(key), pv) {
            (Some(Value::Object(existing)), Value::Object(pobj)) => match meta.as_deref_mut() {
                Some(m) => {
                    let entry = m
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    if let Value::Object(child_meta) = entry {
                        child_meta.extend(stamp.clone());
                        merge_into(existing, Some(child_meta), pobj, stamp);
                    }
                }
                None => merge_into(existing, None, pobj, stamp),
            },
            (_, Value::Object(pobj)) => {
                let clean = strip_nulls(pobj);
                if let Some(m) = meta.as_deref_mut() {
                    m.insert(key.clone(), Value::Object(metadata_for(&clean, stamp)));
                }
                target.insert(key.clone(), Value::Object(clean));
            }
            (_, other) => {
                if let Some(m) = meta.as_deref_mut() {
                    m.insert(key.clone(), Value::Object(stamp.clone()));
                }
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The twin fields copied from a device or module identity: connection state (always
/// disconnected for now), last activity, cloud-to-device count, authentication and model id.
/// The JSON merge patch (RFC 7396) that turns `before` into `after`: changed and new keys
/// with their new values, removed keys as `null`, nested objects as nested patches. This is
/// the shape of IoT Hub's desired-property notifications.
pub fn merge_patch(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in before.keys() {
        if !after.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, new) in after {
        match (before.get(key), new) {
            (Some(old), new) if old == new => {}
            (Some(Value::Object(old)), Value::Object(new)) => {
                patch.insert(key.clone(), Value::Object(merge_patch(old, new)));
            }
            _ => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    patch
}

/// A device twin document written straight from its parts (see [`TwinState::device_json`]).
/// Keys are written in the byte order of a sorted `serde_json::Map`.
struct DeviceTwinDoc<'a> {
    twin: &'a TwinState,
    device: &'a DeviceRecord,
    c2d_count: u64,
}

impl serde::Serialize for DeviceTwinDoc<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let (twin, device) = (self.twin, self.device);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("authenticationType", device.auth.kind.as_str())?;
        map.serialize_entry("capabilities", &Capabilities(device.capabilities.iot_edge))?;
        map.serialize_entry("cloudToDeviceMessageCount", &self.c2d_count)?;
        map.serialize_entry(
            "connectionState",
            crate::model::connection_state(device.connected),
        )?;
        map.serialize_entry("deviceEtag", &device.etag())?;
        map.serialize_entry("deviceId", &device.device_id)?;
        if let Some(scope) = &device.device_scope {
            map.serialize_entry("deviceScope", scope)?;
        }
        map.serialize_entry("etag", &twin.etag())?;
        map.serialize_entry(
            "lastActivityTime",
            device.last_activity_time.as_deref().unwrap_or(NEVER),
        )?;
        map.serialize_entry("modelId", &device.model_id)?;
        map.serialize_entry("parentScopes", &device.parent_scopes)?;
        map.serialize_entry(
            "properties",
            &Properties {
                desired: &twin.desired,
                reported: &twin.reported,
            },
        )?;
        map.serialize_entry("status", device.status.as_str())?;
        if let Some(reason) = &device.status_reason {
            map.serialize_entry("statusReason", reason)?;
        }
        map.serialize_entry(
            "statusUpdateTime",
            device.status_updated_time.as_deref().unwrap_or(NEVER),
        )?;
        if !twin.tags.is_empty() {
            map.serialize_entry("tags", &twin.tags)?;
        }
        map.serialize_entry("version", &twin.version)?;
        map.serialize_entry(
            "x509Thumbprint",
            &Thumbprints {
                primary: device.auth.primary_thumbprint.as_deref(),
                secondary: device.auth.secondary_thumbprint.as_deref(),
            },
        )?;
        map.end()
    }
}

/// `capabilities`: `{"iotEdge": …}`.
struct Capabilities(bool);

impl serde::Serialize for Capabilities {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("iotEdge", &self.0)?;
        map.end()
    }
}

/// `x509Thumbprint`: both thumbprints, `null` when unset.
struct Thumbprints<'a> {
    primary: Option<&'a str>,
    secondary: Option<&'a str>,
}

impl serde::Serialize for Thumbprints<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("primaryThumbprint", &self.primary)?;
        map.serialize_entry("secondaryThumbprint", &self.secondary)?;
        map.end()
    }
}

/// `properties`: `desired` and `reported`.
struct Properties<'a> {
    desired: &'a Section,
    reported: &'a Section,
}

impl serde::Serialize for Properties<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("desired", self.desired)?;
        map.serialize_entry("reported", self.reported)?;
        map.end()
    }
}

/// A section as [`Section::to_doc`] renders it: its properties with `$metadata` and
/// `$version` among them, in sorted key order.
impl serde::Serialize for Section {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        const METADATA: &str = "$metadata";
        const VERSION: &str = "$version";
        let mut map = serializer.serialize_map(Some(self.values.len() + 2))?;
        let (mut metadata_done, mut version_done) = (false, false);
        for (key, value) in &self.values {
            if !metadata_done && METADATA < key.as_str() {
                map.serialize_entry(METADATA, &self.metadata)?;
                metadata_done = true;
            }
            if !version_done && VERSION < key.as_str() {
                map.serialize_entry(VERSION, &self.version)?;
                version_done = true;
            }
            if key == METADATA || key == VERSION {
                continue;
            }
            map.serialize_entry(key, value)?;
        }
        if !metadata_done {
            map.serialize_entry(METADATA, &self.metadata)?;
        }
        if !version_done {
            map.serialize_entry(VERSION, &self.version)?;
        }
        map.end()
    }
}

fn insert_identity_fields(
    doc: &mut Map<String, Value>,
    connected: bool,
    last_activity_time: Option<&str>,
    cloud_to_device_message_count: u64,
    auth: &AuthenticationMechanism,
    model_id: &str,
) {
    doc.insert(
        "connectionState".into(),
        Value::String(crate::model::connection_state(connected).into()),
    );
    doc.insert(
        "lastActivityTime".into(),
        Value::String(last_activity_time.unwrap_or(NEVER).into()),
    );
    doc.insert(
        "cloudToDeviceMessageCount".into(),
        Value::from(cloud_to_device_message_count),
    );
    doc.insert(
        "authenticationType".into(),
        Value::String(auth.kind.as_str().into()),
    );
    doc.insert("x509Thumbprint".into(), auth.thumbprints_wire());
    doc.insert("modelId".into(), Value::String(model_id.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_carry_changes_and_removals() {
        let before = json!({"a": 1, "b": {"c": 2, "d": 3}, "gone": true});
        let after = json!({"a": 1, "b": {"c": 5}, "new": [1]});
        let patch = merge_patch(
            before.as_object().unwrap_or(&Map::new()),
            after.as_object().unwrap_or(&Map::new()),
        );
        assert_eq!(
            Value::Object(patch),
            json!({"gone": null, "b": {"c": 5, "d": null}, "new": [1]})
        );
    }

    const NOW: &str = "2026-01-02T03:04:05.0000000Z";
    const LATER: &str = "2026-01-02T03:09:00.0000000Z";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn new_twin_etag_and_versions() {
        let t = TwinState::new(NOW);
        assert_eq!(t.etag(), "AAAAAAAAAAE=");
        assert_eq!(t.desired.version, 1);
    }

    #[test]
    fn patch_merges_and_removes() {
        let mut t = TwinState::new(NOW);
        let change = TwinChange {
            tags: Some(obj(json!({"a": {"b": 1, "c": 2}, "d": true}))),
            desired: Some(obj(json!({"temp": 21, "nested": {"x": 1}}))),
            reported: None,
        };
        assert!(t.apply(&change, TwinWrite::Update, NOW).is_ok());
        assert_eq!(t.version, 2);
        assert_eq!(t.desired.version, 2);
        let change2 = TwinChange {
            tags: Some(obj(json!({"a": {"b": null}, "d": null}))),
            desired: Some(obj(json!({"nested": {"y": 2}}))),
            reported: None,
        };
        assert!(t.apply(&change2, TwinWrite::Update, NOW).is_ok());
        assert_eq!(Value::Object(t.tags.clone()), json!({"a": {"c": 2}}));
        assert_eq!(
            Value::Object(t.desired.values.clone()),
            json!({"temp": 21, "nested": {"x": 1, "y": 2}})
        );
        assert_eq!(t.desired.version, 3);
        assert_eq!(t.desired.metadata["nested"]["y"]["$lastUpdatedVersion"], 3);
        assert_eq!(t.desired.metadata["nested"]["x"]["$lastUpdatedVersion"], 2);
        assert_eq!(t.desired.metadata["nested"]["$lastUpdatedVersion"], 3);
        assert_eq!(t.desired.metadata["$lastUpdatedVersion"], 3);
    }

    #[test]
    fn replace_sets_sections() {
        let mut t = TwinState::new(NOW);
        let change = TwinChange {
            tags: Some(obj(json!({"a": 1}))),
            desired: None,
            reported: None,
        };
        assert!(t.apply(&change, TwinWrite::Replace, NOW).is_ok());
        assert_eq!(Value::Object(t.tags.clone()), json!({"a": 1}));
        assert!(t.desired.values.is_empty());
        assert_eq!(t.desired.version, 2);
    }

    #[test]
    fn render_round_trip() {
        let mut t = TwinState::new(NOW);
        let change = TwinChange {
            tags: Some(obj(json!({"a": 1}))),
            desired: Some(obj(json!({"b": {"c": "x"}}))),
            reported: None,
        };
        assert!(t.apply(&change, TwinWrite::Update, NOW).is_ok());
        let dev = crate::model::DeviceRecord::create(
            "d",
            &crate::model::DeviceInput::default(),
            chrono::Utc::now(),
        );
        let Ok(dev) = dev else { panic!("device") };
        let doc = t.render_device(&dev);
        assert_eq!(TwinState::from_doc(&doc), t);
        assert_eq!(doc["properties"]["desired"]["$version"], 2);
    }

    /// `device_json` writes what serializing `render_device` wrote, byte for byte, for
    /// twins and identities with and without each optional part, and property names that sort
    /// before and after `$metadata` and `$version`.
    #[test]
    fn device_json_is_the_rendered_document() {
        let mut devices = Vec::new();
        let plain = crate::model::DeviceRecord::create(
            "d",
            &crate::model::DeviceInput::default(),
            chrono::Utc::now(),
        );
        let Ok(plain) = plain else { panic!("device") };
        devices.push(plain.clone());
        let mut full = plain.clone();
        full.status = crate::model::DeviceStatus::Disabled;
        full.status_reason = Some("maintenance \"quoted\"".into());
        full.status_updated_time = Some(NOW.into());
        full.last_activity_time = Some(NOW.into());
        full.connected = true;
        full.model_id = "dtmi:com:example:Thermostat;1".into();
        full.device_scope = Some("ms-azure-iot-edge://d-1".into());
        full.parent_scopes = vec!["ms-azure-iot-edge://p-2".into()];
        full.capabilities.iot_edge = true;
        full.auth.primary_thumbprint = Some("A".repeat(40));
        full.etag_counter = 7;
        devices.push(full);

        let mut twins = vec![TwinState::new(NOW)];
        let mut t = TwinState::new(NOW);
        let change = TwinChange {
            tags: Some(obj(
                json!({"fleet": "f1", "nested": {"a": [1, 2, {"b": null}]}}),
            )),
            desired: Some(obj(
                json!({"!first": 1, "#x": true, "%": "p", "zeta": {"c": 2.5}, "é": "ü"}),
            )),
            reported: Some(obj(json!({"$": 0, "a": "x", "~": [] }))),
        };
        assert!(t.apply(&change, TwinWrite::Update, NOW).is_ok());
        twins.push(t.clone());
        let more = TwinChange {
            desired: Some(obj(json!({"zeta": null, "new": {"d": 1}}))),
            ..Default::default()
        };
        assert!(
            t.apply(&more, TwinWrite::Update, "2026-12-08T01:02:03.0000000Z")
                .is_ok()
        );
        twins.push(t);

        for device in &devices {
            for twin in &twins {
                for count in [0, 3] {
                    let mut doc = twin.render_device(device);
                    doc["cloudToDeviceMessageCount"] = json!(count);
                    let expected = serde_json::to_string(&doc).expect("serializes");
                    let got = twin.device_json(device, count).expect("serializes");
                    assert_eq!(got, expected);
                }
            }
        }
    }

    #[test]
    fn depth_limit() {
        let ten = json!({"one":{"two":{"three":{"four":{"five":{"six":{"seven":{"eight":{"nine":{"ten":{"property":"value"}}}}}}}}}}});
        let mut t = TwinState::new(NOW);
        let ok = TwinChange {
            desired: Some(obj(ten)),
            ..Default::default()
        };
        assert!(t.apply(&ok, TwinWrite::Update, NOW).is_ok());
        let eleven = json!({"one":{"two":{"three":{"four":{"five":{"six":{"seven":{"eight":{"nine":{"ten":{"eleven":{"p":1}}}}}}}}}}}});
        let bad = TwinChange {
            desired: Some(obj(eleven)),
            ..Default::default()
        };
        let err = t.apply(&bad, TwinWrite::Update, NOW).err();
        assert_eq!(
            err.map(|e| e.code()),
            Some(crate::error::ErrorCode::ArgumentInvalid)
        );
    }

    #[test]
    fn size_limits() {
        let mut t = TwinState::new(NOW);
        let big = "x".repeat(4000);
        let mut tags = Map::new();
        for i in 0..3 {
            tags.insert(format!("k{i}"), Value::String(big.clone()));
        }
        let bad = TwinChange {
            tags: Some(tags),
            ..Default::default()
        };
        assert!(t.apply(&bad, TwinWrite::Update, NOW).is_err());
        assert_eq!(t.version, 1, "failed change leaves the twin untouched");
    }

    #[test]
    fn key_rules() {
        for bad in [
            json!({"a.b": 1}),
            json!({"$x": 1}),
            json!({"a b": 1}),
            json!({"a": {"\u{1}": 1}}),
            json!({"x#y": 1}),
            json!({"a": {"b#": 1}}),
        ] {
            assert!(TwinChange::from_twin_body(&json!({"tags": bad}), TwinWrite::Update).is_err());
        }
        assert!(
            TwinChange::from_twin_body(
                &json!({"properties": {"reported": {"a": 1}}}),
                TwinWrite::Update
            )
            .is_err()
        );
        let ok = TwinChange::from_twin_body(
            &json!({"properties": {"desired": {"a": 1, "$metadata": {}, "$version": 4}}}),
            TwinWrite::Update,
        );
        assert_eq!(ok.ok().and_then(|c| c.desired), Some(obj(json!({"a": 1}))));
        assert!(
            TwinChange::from_twin_body(
                &json!({"tags": {"n": 4503599627370497u64}}),
                TwinWrite::Update
            )
            .is_err()
        );
    }

    /// Null deletes only in an update; a replacement holding a null names the key, at any
    /// depth and in tags and desired properties alike.
    #[test]
    fn null_is_refused_in_a_replacement() {
        for body in [
            json!({"tags": {"my-tag": null}}),
            json!({"tags": {"a": {"b": null}}}),
            json!({"properties": {"desired": {"d": null}}}),
        ] {
            let err = TwinChange::from_twin_body(&body, TwinWrite::Replace).err();
            let err = err.unwrap_or_else(|| panic!("{body} accepted"));
            assert_eq!(err.code(), crate::error::ErrorCode::ArgumentInvalid);
            assert!(err.to_string().contains("is null"), "{err}");
            assert!(TwinChange::from_twin_body(&body, TwinWrite::Update).is_ok());
        }
        let err =
            TwinChange::from_twin_body(&json!({"tags": {"my-tag": null}}), TwinWrite::Replace)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("'my-tag'"), "{err}");
    }

    /// `$metadata` stamps come from the caller's clock, so they are exact under a fixed time.
    #[test]
    fn metadata_uses_the_given_time() {
        let mut t = TwinState::new(NOW);
        assert_eq!(t.desired.metadata["$lastUpdated"], NOW);
        let change = TwinChange::from_twin_body(
            &json!({"properties": {"desired": {"a": {"b": 1}}}}),
            TwinWrite::Update,
        )
        .unwrap_or_default();
        assert!(t.apply(&change, TwinWrite::Update, LATER).is_ok());
        assert_eq!(t.desired.metadata["$lastUpdated"], LATER);
        assert_eq!(t.desired.metadata["a"]["b"]["$lastUpdated"], LATER);
        assert_eq!(t.reported.metadata["$lastUpdated"], NOW);
    }

    /// The device side's reported-properties update goes through the same rules.
    #[test]
    fn reported_patch_uses_the_same_rules() {
        let mut t = TwinState::new(NOW);
        let change = TwinChange::reported_patch(&json!({"fw": "1.0", "gone": null}));
        let change = change.unwrap_or_default();
        assert!(t.apply(&change, TwinWrite::Update, LATER).is_ok());
        assert_eq!(
            Value::Object(t.reported.values.clone()),
            json!({"fw": "1.0"})
        );
        assert_eq!(t.reported.version, 2);
        for bad in [
            json!({"a#b": 1}),
            json!({"s": "x".repeat(5000)}),
            json!([1]),
        ] {
            assert!(TwinChange::reported_patch(&bad).is_err(), "{bad}");
        }
    }

    /// Section sizes follow the twin article: keys and strings by UTF-8 length (control
    /// characters not counted), numbers 8 bytes, booleans 4 bytes.
    #[test]
    fn sizes_count_as_the_twin_article_says() {
        assert_eq!(value_size(&json!("abc")), 3);
        assert_eq!(value_size(&json!("é")), 2);
        assert_eq!(value_size(&json!("a\u{1}b\u{85}")), 2);
        assert_eq!(value_size(&json!(12.5)), 8);
        assert_eq!(value_size(&json!(true)), 4);
        assert_eq!(value_size(&json!({"ab": {"c": 1}})), 2 + 1 + 8);
        // 8 KiB of tags exactly fits; one byte more does not.
        let mut t = TwinState::new(NOW);
        let fits = TwinChange {
            tags: Some(obj(json!({"k": "x".repeat(8 * 1024 - 1)}))),
            ..Default::default()
        };
        assert!(t.apply(&fits, TwinWrite::Update, NOW).is_ok());
        let over = TwinChange {
            tags: Some(obj(json!({"k": "x".repeat(8 * 1024)}))),
            ..Default::default()
        };
        assert!(t.apply(&over, TwinWrite::Update, NOW).is_err());
    }
}
