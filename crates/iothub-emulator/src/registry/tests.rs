//! The registry's rules, driven directly (no HTTP) with a fixed clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Registry, RegistryError};
use crate::clock::fixed_clock;
use crate::error::ErrorCode;
use crate::model::{CapabilitiesInput, DeviceInput};
use crate::store::Store;
use crate::twin::TwinWrite;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-04T05:06:07.1234567Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn registry() -> Result<Registry, Box<dyn std::error::Error>> {
    let store = Arc::new(Store::open_in_memory()?);
    Ok(Registry::new(store, fixed_clock(at()), "testhub"))
}

fn edge() -> DeviceInput {
    DeviceInput {
        capabilities: Some(CapabilitiesInput {
            iot_edge: Some(true),
        }),
        ..DeviceInput::default()
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

#[tokio::test]
async fn twin_metadata_and_status_time_come_from_the_clock() -> TestResult {
    let reg = registry()?;
    reg.put_device("d1".into(), DeviceInput::default(), None)
        .await?;
    let twin = reg
        .write_twin(
            "d1".into(),
            None,
            json!({"properties": {"desired": {"a": 1}}}),
            TwinWrite::Update,
            None,
        )
        .await?;
    let stamp = "2026-03-04T05:06:07.1234567Z";
    assert_eq!(
        twin.doc["properties"]["desired"]["$metadata"]["a"]["$lastUpdated"],
        stamp
    );
    assert_eq!(
        twin.doc["properties"]["reported"]["$metadata"]["$lastUpdated"],
        stamp
    );
    let disabled = DeviceInput {
        status: Some("disabled".into()),
        ..DeviceInput::default()
    };
    let record = reg
        .put_device("d1".into(), disabled, Some("*".into()))
        .await?;
    assert_eq!(record.status_updated_time.as_deref(), Some(stamp));
    Ok(())
}

/// `PUT /twins/d1` with `{"tags":{"my-tag":null}}` is refused and the twin keeps its tags.
#[tokio::test]
async fn a_null_in_a_replacement_is_refused_and_writes_nothing() -> TestResult {
    let reg = registry()?;
    reg.put_device("d1".into(), DeviceInput::default(), None)
        .await?;
    reg.write_twin(
        "d1".into(),
        None,
        json!({"tags": {"keep": 1, "my-tag": "x"}}),
        TwinWrite::Update,
        None,
    )
    .await?;
    let refused = reg
        .write_twin(
            "d1".into(),
            None,
            json!({"tags": {"my-tag": null}}),
            TwinWrite::Replace,
            None,
        )
        .await;
    let message = refused
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(code(refused), Some(ErrorCode::ArgumentInvalid));
    assert!(message.contains("my-tag"), "{message}");
    let twin = reg.get_twin("d1".into(), None).await?;
    assert_eq!(twin.doc["tags"], json!({"keep": 1, "my-tag": "x"}));
    assert_eq!(twin.doc["version"], 2);
    Ok(())
}

#[tokio::test]
async fn forbidden_key_characters_are_refused_on_every_write_path() -> TestResult {
    let reg = registry()?;
    reg.put_device("d1".into(), DeviceInput::default(), None)
        .await?;
    for body in [
        json!({"properties": {"desired": {"a#b": 1}}}),
        json!({"tags": {"x#y": 1}}),
        json!({"tags": {"a.b": 1}}),
        json!({"tags": {"a b": 1}}),
        json!({"tags": {"$a": 1}}),
        json!({"tags": {"a\u{7}": 1}}),
    ] {
        for how in [TwinWrite::Update, TwinWrite::Replace] {
            let r = reg
                .write_twin("d1".into(), None, body.clone(), how, None)
                .await;
            assert_eq!(code(r), Some(ErrorCode::ArgumentInvalid), "{body} {how:?}");
        }
    }
    let bulk = reg
        .bulk(vec![
            json!({"id": "d1", "importMode": "updateTwin", "tags": {"x#y": 1}}),
        ])
        .await?;
    assert_eq!(bulk.len(), 1);
    assert_eq!(bulk[0].code, ErrorCode::ArgumentInvalid);
    let reported = reg
        .update_reported_properties("d1".into(), None, json!({"fw#1": "x"}))
        .await;
    assert_eq!(code(reported), Some(ErrorCode::ArgumentInvalid));
    let twin = reg.get_twin("d1".into(), None).await?;
    assert_eq!(twin.doc["version"], 1, "nothing was written");
    Ok(())
}

#[tokio::test]
async fn reported_properties_update_through_the_registry() -> TestResult {
    let reg = registry()?;
    reg.put_device("d1".into(), DeviceInput::default(), None)
        .await?;
    let twin = reg
        .update_reported_properties("d1".into(), None, json!({"fw": "1.2", "temp": 20}))
        .await?;
    assert_eq!(twin.doc["properties"]["reported"]["fw"], "1.2");
    assert_eq!(twin.doc["properties"]["reported"]["$version"], 2);
    let twin = reg
        .update_reported_properties("d1".into(), None, json!({"temp": null}))
        .await?;
    assert!(twin.doc["properties"]["reported"].get("temp").is_none());
    let missing = reg
        .update_reported_properties("nope".into(), None, json!({"a": 1}))
        .await;
    assert_eq!(code(missing), Some(ErrorCode::DeviceNotFound));
    Ok(())
}

#[tokio::test]
async fn edge_system_modules_are_reserved() -> TestResult {
    let reg = registry()?;
    reg.put_device("E".into(), edge(), None).await?;
    for module in ["$edgeAgent", "$edgeHub"] {
        for how in [TwinWrite::Update, TwinWrite::Replace] {
            let r = reg
                .write_twin(
                    "E".into(),
                    Some(module.into()),
                    json!({"properties": {"desired": {"schemaVersion": "9"}}}),
                    how,
                    None,
                )
                .await;
            let message = r
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert_eq!(
                code(r),
                Some(ErrorCode::SystemModuleModifyUnauthorizedAccess),
                "{module} {how:?}"
            );
            assert!(message.contains("Unauthorized to modify reserved module"));
        }
        // Tags are not managed by the hub.
        reg.write_twin(
            "E".into(),
            Some(module.into()),
            json!({"tags": {"site": "a"}}),
            TwinWrite::Update,
            None,
        )
        .await?;
        let twin = reg.get_twin("E".into(), Some(module.into())).await?;
        assert_eq!(twin.doc["properties"]["desired"]["$version"], 1);
        let r = reg.delete_module("E".into(), module.into(), None).await;
        assert_eq!(
            code(r),
            Some(ErrorCode::SystemModuleModifyUnauthorizedAccess)
        );
        let r = reg
            .put_module(
                "E".into(),
                module.into(),
                Default::default(),
                Some("*".into()),
            )
            .await;
        assert_eq!(
            code(r),
            Some(ErrorCode::SystemModuleModifyUnauthorizedAccess)
        );
    }
    // Other `$` module ids are IoT Hub's too.
    let r = reg
        .put_module("E".into(), "$custom".into(), Default::default(), None)
        .await;
    assert_eq!(code(r), Some(ErrorCode::ArgumentInvalid));
    // Configuration content is the path that sets them.
    reg.apply_configuration_content(
        "E".into(),
        json!({"modulesContent": {"$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}}}}),
    )
    .await?;
    let twin = reg.get_twin("E".into(), Some("$edgeAgent".into())).await?;
    assert_eq!(twin.doc["properties"]["desired"]["schemaVersion"], "1.1");
    Ok(())
}

fn scope_of(v: &crate::model::DeviceRecord) -> String {
    v.device_scope.clone().unwrap_or_default()
}

#[tokio::test]
async fn device_scopes_must_name_a_registered_edge_device() -> TestResult {
    let reg = registry()?;
    let e = reg.put_device("E".into(), edge(), None).await?;
    let scope = scope_of(&e);
    assert!(scope.starts_with("ms-azure-iot-edge://E-"), "{scope}");
    let leaf = DeviceInput {
        device_scope: Some(scope.clone()),
        ..DeviceInput::default()
    };
    let l = reg.put_device("L".into(), leaf, None).await?;
    assert_eq!(l.parent_scopes, vec![scope.clone()]);
    // The case: the leaf updated (with its ETag) to a scope no edge device has.
    let bogus = DeviceInput {
        device_scope: Some("arbitrary-string".into()),
        ..DeviceInput::default()
    };
    let r = reg
        .put_device("L".into(), bogus.clone(), Some(l.etag()))
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    assert_eq!(
        reg.get_device("L".into()).await?.device_scope,
        Some(scope.clone())
    );
    // The same on create, for a well-formed scope of a device that is not an edge device,
    // and through a bulk registry operation.
    let r = reg.put_device("L2".into(), bogus.clone(), None).await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    let of_leaf = DeviceInput {
        device_scope: Some(format!("ms-azure-iot-edge://L-{}", l.generation_id)),
        ..DeviceInput::default()
    };
    let r = reg.put_device("L3".into(), of_leaf, None).await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    let failures = reg
        .bulk(vec![
            json!({"id": "B1", "importMode": "create", "deviceScope": "nope"}),
            json!({"id": "B2", "importMode": "create", "deviceScope": scope}),
        ])
        .await?;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].device_id, "B1");
    assert_eq!(failures[0].code, ErrorCode::InvalidDeviceScope);
    assert!(matches!(
        reg.get_device("B1".into()).await,
        Err(RegistryError::DeviceNotFound { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn an_edge_device_keeps_its_own_scope_and_one_acyclic_parent() -> TestResult {
    let reg = registry()?;
    let e1 = reg.put_device("E1".into(), edge(), None).await?;
    let e2 = reg.put_device("E2".into(), edge(), None).await?;
    // Its own scope cannot change.
    let moved = DeviceInput {
        device_scope: Some(scope_of(&e2)),
        ..edge()
    };
    let r = reg.put_device("E1".into(), moved, Some("*".into())).await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    // A nested edge device names one registered edge parent.
    let child_of = |scopes: Vec<String>| DeviceInput {
        parent_scopes: Some(scopes),
        ..edge()
    };
    let e2 = reg
        .put_device("E2".into(), child_of(vec![scope_of(&e1)]), Some("*".into()))
        .await?;
    assert_eq!(e2.parent_scopes, vec![scope_of(&e1)]);
    let r = reg
        .put_device(
            "E3".into(),
            child_of(vec![scope_of(&e1), scope_of(&e2)]),
            None,
        )
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    let r = reg
        .put_device(
            "E3".into(),
            child_of(vec!["ms-azure-iot-edge://X-1".into()]),
            None,
        )
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    // E1 under E2 would be a loop (E2 is under E1).
    let r = reg
        .put_device("E1".into(), child_of(vec![scope_of(&e2)]), Some("*".into()))
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    let r = reg
        .put_device("E1".into(), child_of(vec![scope_of(&e1)]), Some("*".into()))
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    Ok(())
}

#[tokio::test]
async fn deleting_a_parent_releases_its_children() -> TestResult {
    let reg = registry()?;
    let e = reg.put_device("E".into(), edge(), None).await?;
    let leaf = DeviceInput {
        device_scope: Some(scope_of(&e)),
        ..DeviceInput::default()
    };
    let l = reg.put_device("L".into(), leaf, None).await?;
    let nested = DeviceInput {
        parent_scopes: Some(vec![scope_of(&e)]),
        ..edge()
    };
    reg.put_device("N".into(), nested, None).await?;
    // A device whose id merely starts like the parent's is untouched.
    reg.put_device("E-2".into(), DeviceInput::default(), None)
        .await?;
    reg.delete_device("E".into(), None).await?;
    let l2 = reg.get_device("L".into()).await?;
    assert_eq!(l2.device_scope, None);
    assert!(l2.parent_scopes.is_empty());
    assert_ne!(l2.etag(), l.etag());
    let n = reg.get_device("N".into()).await?;
    assert!(n.parent_scopes.is_empty());
    assert!(
        n.device_scope
            .is_some_and(|s| s.starts_with("ms-azure-iot-edge://N-"))
    );
    // The old scope names nothing now.
    let again = DeviceInput {
        device_scope: Some(scope_of(&e)),
        ..DeviceInput::default()
    };
    let r = reg.put_device("L".into(), again, Some("*".into())).await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    Ok(())
}

#[tokio::test]
async fn not_found_and_etag_rules_are_one_each() -> TestResult {
    let reg = registry()?;
    assert_eq!(
        code(reg.get_device("x".into()).await),
        Some(ErrorCode::DeviceNotFound)
    );
    assert_eq!(
        code(reg.get_twin("x".into(), Some("m".into())).await),
        Some(ErrorCode::DeviceNotFound)
    );
    reg.put_device("d".into(), DeviceInput::default(), None)
        .await?;
    assert_eq!(
        code(reg.get_twin("d".into(), Some("m".into())).await),
        Some(ErrorCode::ModuleNotFound)
    );
    let r = reg
        .write_twin(
            "d".into(),
            None,
            json!({"tags": {"a": 1}}),
            TwinWrite::Update,
            Some("AAAA".into()),
        )
        .await;
    assert_eq!(code(r), Some(ErrorCode::PreconditionFailed));
    let r = reg.delete_device("d".into(), Some("bm9wZQ==".into())).await;
    assert_eq!(code(r), Some(ErrorCode::PreconditionFailed));
    let r = reg
        .put_device("d".into(), DeviceInput::default(), None)
        .await;
    let message = r
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(code(r), Some(ErrorCode::DeviceAlreadyExists));
    assert!(message.contains("testhub"), "{message}");
    let _: Value = reg.get_twin("d".into(), None).await?.doc;
    Ok(())
}

/// Bulk create/update and configuration content replace the sections they carry, so a null
/// is refused there as in `PUT`; `updateTwin` updates, so a null removes.
#[tokio::test]
async fn nulls_follow_the_write_kind_in_bulk_and_configuration_content() -> TestResult {
    let reg = registry()?;
    let failures = reg
        .bulk(vec![
            json!({"id": "b1", "importMode": "create", "tags": {"a": null}}),
            json!({"id": "b2", "importMode": "create", "properties": {"desired": {"a": {"b": null}}}}),
            json!({"id": "b3", "importMode": "create", "tags": {"a": 1, "b": 2}}),
        ])
        .await?;
    let failed: Vec<_> = failures
        .iter()
        .map(|f| (f.device_id.as_str(), f.code.clone()))
        .collect();
    assert_eq!(
        failed,
        vec![
            ("b1", ErrorCode::ArgumentInvalid),
            ("b2", ErrorCode::ArgumentInvalid)
        ]
    );
    let failures = reg
        .bulk(vec![
            json!({"id": "b3", "importMode": "updateTwin", "tags": {"a": null}}),
        ])
        .await?;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        reg.get_twin("b3".into(), None).await?.doc["tags"],
        json!({"b": 2})
    );

    reg.put_device("E".into(), edge(), None).await?;
    let r = reg
        .apply_configuration_content(
            "E".into(),
            json!({"modulesContent": {"$edgeAgent": {"properties.desired": {"a": null}}}}),
        )
        .await;
    assert_eq!(code(r), Some(ErrorCode::ArgumentInvalid));
    let r = reg
        .apply_configuration_content(
            "E".into(),
            json!({"modulesContent": {"$other": {"properties.desired": {"a": 1}}}}),
        )
        .await;
    assert_eq!(code(r), Some(ErrorCode::ArgumentInvalid));
    assert_eq!(
        code(reg.get_module("E".into(), "$other".into()).await),
        Some(ErrorCode::ModuleNotFound)
    );
    Ok(())
}

#[tokio::test]
async fn edge_scopes_cannot_be_chosen_kept_as_a_leaf_or_looped() -> TestResult {
    let reg = registry()?;
    // A new edge device does not choose its scope.
    let chosen = DeviceInput {
        device_scope: Some("ms-azure-iot-edge://E5-1".into()),
        ..edge()
    };
    assert_eq!(
        code(reg.put_device("E5".into(), chosen, None).await),
        Some(ErrorCode::InvalidDeviceScope)
    );
    // Turning iotEdge off while sending the old own scope would make the device its own
    // parent.
    let f = reg.put_device("F".into(), edge(), None).await?;
    let leaf_keeping_scope = DeviceInput {
        device_scope: f.device_scope.clone(),
        ..DeviceInput::default()
    };
    let r = reg
        .put_device("F".into(), leaf_keeping_scope, Some("*".into()))
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    assert!(reg.get_device("F".into()).await?.capabilities.iot_edge);
    // A chain of 20 nested edge devices cannot be closed into a loop.
    let mut scopes = Vec::new();
    for i in 0..20 {
        let input = DeviceInput {
            parent_scopes: scopes.last().map(|s: &String| vec![s.clone()]),
            ..edge()
        };
        let d = reg.put_device(format!("CH{i}"), input, None).await?;
        scopes.push(scope_of(&d));
    }
    let closing = DeviceInput {
        parent_scopes: Some(vec![scopes[19].clone()]),
        ..edge()
    };
    let r = reg
        .put_device("CH0".into(), closing, Some("*".into()))
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidDeviceScope));
    Ok(())
}

#[tokio::test]
async fn a_device_that_becomes_an_edge_device_gets_the_system_modules() -> TestResult {
    let reg = registry()?;
    reg.put_device("P".into(), DeviceInput::default(), None)
        .await?;
    assert!(reg.list_modules("P".into()).await?.is_empty());
    let p = reg.put_device("P".into(), edge(), Some("*".into())).await?;
    assert!(scope_of(&p).starts_with("ms-azure-iot-edge://P-"));
    let ids: Vec<String> = reg
        .list_modules("P".into())
        .await?
        .into_iter()
        .map(|m| m.module_id)
        .collect();
    assert_eq!(ids, vec!["$edgeAgent".to_owned(), "$edgeHub".to_owned()]);
    // Updating it again as an edge device adds nothing.
    reg.put_device("P".into(), edge(), Some("*".into())).await?;
    assert_eq!(reg.list_modules("P".into()).await?.len(), 2);
    Ok(())
}

/// Twin change events come from every write that changes a twin, not only the twin API:
/// bulk registry operations (`updateTwin` and `createOrUpdate` with a twin), module lines
/// of an import, and configuration content applied to an IoT Edge device. An identity
/// update that does not touch the twin makes none.
#[tokio::test]
async fn bulk_import_and_configuration_writes_make_twin_change_events() -> TestResult {
    use super::RegistryEventKind as Kind;
    let seen: Arc<std::sync::Mutex<Vec<super::RegistryEvent>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let store = Arc::new(Store::open_in_memory()?);
    let reg = Registry::new(store, fixed_clock(at()), "testhub").with_event_listener(Arc::new(
        move |events| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(events)
        },
    ));
    let take = || std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    reg.put_device("d1".into(), DeviceInput::default(), None)
        .await?;
    reg.put_device("e1".into(), edge(), None).await?;
    reg.put_module("d1".into(), "m1".into(), Default::default(), None)
        .await?;
    take();

    let failures = reg
        .bulk(vec![
            json!({"id": "d1", "importMode": "updateTwin", "tags": {"site": "a"}}),
            json!({"id": "e1", "importMode": "createOrUpdate", "capabilities": {"iotEdge": true},
                   "properties": {"desired": {"fan": "on"}}}),
        ])
        .await?;
    assert!(failures.is_empty(), "{failures:?}");
    let events = take();
    let kinds: Vec<(&str, Kind)> = events
        .iter()
        .map(|e| (e.device_id.as_str(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [("d1", Kind::TwinUpdated), ("e1", Kind::TwinReplaced)]
    );
    assert_eq!(events[0].body["tags"]["site"], "a");
    assert_eq!(events[1].body["properties"]["desired"]["fan"], "on");

    // An entry without a twin leaves the twin's version alone: no event.
    reg.bulk(vec![json!({"id": "d1", "importMode": "createOrUpdate"})])
        .await?;
    assert_eq!(take(), []);

    // A module line of an import.
    let failures = reg
        .import_lines(
            vec![super::ImportLine {
                line: 1,
                entry: json!({"id": "d1", "moduleId": "m1", "importMode": "updateTwin",
                              "properties": {"desired": {"rate": 5}}}),
            }],
            |_, _| Ok(()),
        )
        .await?;
    assert!(failures.is_empty());
    let events = take();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].module_id.as_deref(), events[0].kind),
        (Some("m1"), Kind::TwinUpdated)
    );
    assert_eq!(events[0].body["properties"]["desired"]["rate"], 5);

    // Configuration content on an IoT Edge device writes its modules' twins.
    reg.apply_configuration_content(
        "e1".into(),
        json!({"modulesContent": {
            "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}},
            "$edgeHub": {"properties.desired": {"schemaVersion": "1.1"}}
        }}),
    )
    .await?;
    let mut modules: Vec<Option<String>> = take().into_iter().map(|e| e.module_id).collect();
    modules.sort();
    assert_eq!(
        modules,
        [Some("$edgeAgent".to_owned()), Some("$edgeHub".to_owned())]
    );
    Ok(())
}

/// Bulk registry operations and import lines run in their group's transaction without a
/// savepoint (`Isolation::Group`): an entry that fails is refused before it writes anything,
/// and a store failure rolls the whole group back. Either way, a write that was answered Ok
/// is stored and one that was not is absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_without_savepoints_are_all_or_nothing() -> TestResult {
    let store = Arc::new(Store::open_in_memory()?);
    let reg = Registry::new(Arc::clone(&store), fixed_clock(at()), "testhub");
    reg.put_device("taken".into(), DeviceInput::default(), None)
        .await?;
    let etag = reg.get_device("taken".into()).await?.etag();

    // Entries refused on their own leave no trace, and the others are written.
    let failures = reg
        .bulk(vec![
            json!({"id": "fresh-1", "importMode": "create"}),
            json!({"id": "taken", "importMode": "create", "tags": {"a": 1}}),
            json!({"id": "bad id!", "importMode": "create"}),
            json!({"id": "scoped", "importMode": "create",
                   "deviceScope": "ms-azure-iot-edge://taken-1"}),
            json!({"id": "nulls", "importMode": "create", "tags": {"a": null}}),
            json!({"id": "fresh-2", "importMode": "createOrUpdate"}),
        ])
        .await?;
    let failed: Vec<&str> = failures.iter().map(|f| f.device_id.as_str()).collect();
    assert_eq!(
        failed,
        ["taken", "bad id!", "scoped", "nulls"],
        "{failures:?}"
    );
    for id in ["fresh-1", "fresh-2"] {
        reg.get_device(id.into()).await?;
    }
    for id in ["scoped", "nulls"] {
        assert_eq!(
            code(reg.get_device(id.into()).await),
            Some(ErrorCode::DeviceNotFound),
            "{id}"
        );
    }
    assert_eq!(reg.get_device("taken".into()).await?.etag(), etag);

    // A store failure (a trigger refuses one insert) in a bulk operation, racing with
    // savepoint writes and other bulk operations that share its group commit.
    store
        .call(|conn| {
            conn.execute_batch(
                "CREATE TEMP TRIGGER refuse_doomed BEFORE INSERT ON devices
                 WHEN NEW.device_id = 'doomed' BEGIN SELECT RAISE(ABORT, 'injected'); END;",
            )
            .map_err(crate::store::StoreError::from)
        })
        .await?;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8 {
        let r = reg.clone();
        calls.spawn(async move {
            let id = format!("solo-{i}");
            let ok = r
                .put_device(id.clone(), DeviceInput::default(), None)
                .await
                .is_ok();
            (vec![id], ok)
        });
        let r = reg.clone();
        calls.spawn(async move {
            let mut ids = vec![format!("bulk-{i}-a"), format!("bulk-{i}-b")];
            if i == 3 {
                ids.insert(1, "doomed".to_owned());
            }
            let items = ids
                .iter()
                .map(|id| json!({"id": id, "importMode": "create"}))
                .collect();
            let outcome = r.bulk(items).await;
            if i == 3 {
                assert!(
                    matches!(outcome, Err(RegistryError::Store(_))),
                    "{outcome:?}"
                );
            }
            (ids, outcome.is_ok_and(|f| f.is_empty()))
        });
    }
    let mut answered = 0;
    while let Some(joined) = calls.join_next().await {
        let (ids, ok) = joined?;
        answered += usize::from(ok);
        for id in ids {
            let stored = reg.get_device(id.clone()).await.is_ok();
            assert_eq!(stored, ok, "{id}: stored {stored}, answered Ok {ok}");
        }
    }
    assert!(answered >= 1, "every write failed");

    // The connection is usable afterwards.
    reg.put_device("after".into(), DeviceInput::default(), None)
        .await?;
    reg.get_device("after".into()).await?;
    Ok(())
}

/// A doomed job rolls its group back: the jobs before it are answered with the failure, and
/// the jobs after it are handed back unrun for the next group, where they commit.
#[test]
fn a_doomed_group_hands_back_the_writes_it_did_not_run() -> TestResult {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut conn = rusqlite::Connection::open_in_memory()?;
    conn.execute_batch("CREATE TABLE t (v TEXT)")?;
    let answers = Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let ran = Arc::new(AtomicUsize::new(0));
    let job = |name: &'static str, doomed: bool| -> super::Job {
        let (answers, ran) = (Arc::clone(&answers), Arc::clone(&ran));
        Box::new(move |conn: &rusqlite::Connection| {
            ran.fetch_add(1, Ordering::SeqCst);
            let _ = conn.execute("INSERT INTO t (v) VALUES (?1)", [name]);
            let finish: super::Finish = Box::new(move |outcome: Result<(), String>| {
                answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((name.to_owned(), outcome.is_ok()));
            });
            (finish, doomed)
        })
    };
    let (finishes, outcome, not_run) = super::commit_group(
        &mut conn,
        vec![
            job("before", false),
            job("doomed", true),
            job("after", false),
        ],
    );
    assert!(outcome.is_err());
    assert_eq!((finishes.len(), not_run.len()), (2, 1));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "the job after the doomed one ran"
    );
    for finish in finishes {
        finish(outcome.clone());
    }
    let (finishes, outcome, rest) = super::commit_group(&mut conn, not_run);
    assert!(outcome.is_ok() && rest.is_empty());
    for finish in finishes {
        finish(outcome.clone());
    }
    let stored: Vec<String> = conn
        .prepare("SELECT v FROM t")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(stored, ["after"], "the doomed group was rolled back whole");
    let answers = answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(
        answers,
        [
            ("before".to_owned(), false),
            ("doomed".to_owned(), false),
            ("after".to_owned(), true)
        ]
    );
    Ok(())
}
