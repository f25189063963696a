//! Every `RegistryManager` method against an in-process emulator (HTTPS on port 0, its own
//! temporary directory), with and without throttling.

use std::time::Duration;

use futures::TryStreamExt as _;
use iothub_emulator::{Emulator, OperationClass, Quota, ThrottleConfig};
use iothub_registry::{
    AuthenticationMechanism, AuthenticationType, CloudToDeviceMethod, DeviceStatus, ETag,
    ErrorCode, ExportImportDevice, ImportMode, RegistryManager, RetryPolicy, Twin, TwinPatch,
};
use serde_json::json;

struct Hub {
    rm: RegistryManager,
    emu: Emulator,
    dir: tempfile::TempDir,
}

impl Hub {
    /// Status codes of every request the emulator answered, from its journal.
    fn statuses(&self) -> Vec<u64> {
        std::fs::read_to_string(self.dir.path().join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["status"].as_u64())
            .collect()
    }

    fn throttled(&self) -> usize {
        self.statuses().iter().filter(|s| **s == 429).count()
    }
}

async fn hub(throttle: ThrottleConfig) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .amqps_port(0)
        .mqtts_port(0)
        .throttle(throttle)
        .journal(dir.path().join("journal.jsonl"))
        .start()
        .await
        .unwrap();
    let builder = RegistryManager::builder()
        .connection_string(&emu.connection_string())
        .add_root_certificate_pem(emu.ca_pem())
        .retry_policy(RetryPolicy::default().with_total_timeout(Some(Duration::from_secs(90))));
    #[cfg(feature = "c2d")]
    let builder = builder.amqps_port(emu.amqps_port());
    let rm = builder.build().unwrap();
    Hub { rm, emu, dir }
}

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

async fn device_lifecycle(rm: &RegistryManager, prefix: &str) {
    let id = format!("{prefix}-sas");
    let created = rm
        .create_device_with_sas(&id, KEY1, KEY2, DeviceStatus::Enabled)
        .status_reason("made by a test")
        .await
        .unwrap();
    assert_eq!(created.device_id, id);
    let etag = created.etag.clone();

    let read = rm.get_device(&id).await.unwrap();
    assert_eq!(read.etag, etag);
    assert_eq!(read.status, Some(DeviceStatus::Enabled));
    let auth = read.authentication.clone().unwrap();
    assert_eq!(auth.auth_type, Some(AuthenticationType::Sas));
    assert_eq!(
        auth.symmetric_key.unwrap().primary_key.as_deref(),
        Some(KEY1)
    );

    let again = rm
        .create_device_with_sas(&id, KEY1, KEY2, DeviceStatus::Enabled)
        .await
        .unwrap_err();
    assert!(again.is_already_exists(), "{again:?}");
    assert_eq!(again.code(), Some(&ErrorCode::DeviceAlreadyExists));

    let updated = rm
        .update_device_with_sas(&id, &read.etag, KEY2, KEY1, DeviceStatus::Disabled)
        .status_reason("maintenance")
        .await
        .unwrap();
    assert_eq!(updated.status, Some(DeviceStatus::Disabled));
    assert_ne!(updated.etag, read.etag);

    let stale = rm
        .update_device_with_sas(&id, &read.etag, KEY1, KEY2, DeviceStatus::Enabled)
        .await
        .unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale:?}");
    assert_eq!(stale.code().unwrap().number(), Some(412001));

    let x509 = format!("{prefix}-x509");
    let thumb1 = "A".repeat(40);
    let thumb2 = "B".repeat(40);
    let d = rm
        .create_device_with_x509(&x509, &thumb1, &thumb2, DeviceStatus::Enabled)
        .await
        .unwrap();
    assert_eq!(
        d.authentication.as_ref().unwrap().auth_type,
        Some(AuthenticationType::SelfSigned)
    );
    let d = rm
        .update_device_with_x509(&x509, &d.etag, &thumb2, &thumb1, DeviceStatus::Enabled)
        .await
        .unwrap();
    assert_eq!(
        d.authentication
            .unwrap()
            .x509_thumbprint
            .unwrap()
            .primary_thumbprint,
        Some(thumb2)
    );

    let ca = format!("{prefix}-ca");
    let d = rm
        .create_device_with_certificate_authority(&ca, DeviceStatus::Enabled)
        .iot_edge(true)
        .await
        .unwrap();
    assert_eq!(d.capabilities.unwrap().iot_edge, Some(true));
    rm.update_device_with_certificate_authority(&ca, ETag::any(), DeviceStatus::Disabled)
        .await
        .unwrap();

    let all = rm.get_devices().await.unwrap();
    for wanted in [&id, &x509, &ca] {
        assert!(
            all.iter().any(|d| &d.device_id == wanted),
            "{wanted} listed"
        );
    }

    let stale = rm.delete_device(&id).etag(&read.etag).await.unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale:?}");
    rm.delete_device(&id).etag(&updated.etag).await.unwrap();
    rm.delete_device(&x509).await.unwrap();
    rm.delete_device(&ca).await.unwrap();
    let gone = rm.get_device(&id).await.unwrap_err();
    assert!(gone.is_not_found());
    assert_eq!(gone.code(), Some(&ErrorCode::DeviceNotFound));
    assert_eq!(gone.code().unwrap().number(), Some(404001));
}

#[tokio::test]
async fn devices_create_read_update_delete() {
    let hub = hub(ThrottleConfig::off()).await;
    device_lifecycle(&hub.rm, "plain").await;
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn modules_and_module_twins() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    rm.create_device_with_sas("mdev", "", "", DeviceStatus::Enabled)
        .await
        .unwrap();
    let m1 = rm
        .create_module_with_sas("mdev", "m-sas", Some("me"), KEY1, KEY2)
        .await
        .unwrap();
    assert_eq!(
        (m1.device_id.as_str(), m1.module_id.as_str()),
        ("mdev", "m-sas")
    );
    assert_eq!(m1.managed_by.as_deref(), Some("me"));
    let thumb = "C".repeat(40);
    let m2 = rm
        .create_module_with_x509("mdev", "m-x509", None, &thumb, &thumb)
        .await
        .unwrap();
    let m3 = rm
        .create_module_with_certificate_authority("mdev", "m-ca", None)
        .await
        .unwrap();
    let dup = rm
        .create_module_with_certificate_authority("mdev", "m-ca", None)
        .await
        .unwrap_err();
    assert!(dup.is_already_exists());
    assert_eq!(dup.code(), Some(&ErrorCode::ModuleAlreadyExistsOnDevice));

    let got = rm.get_module("mdev", "m-sas").await.unwrap();
    assert_eq!(got.etag, m1.etag);
    let mut ids: Vec<_> = rm
        .get_modules("mdev")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.module_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["m-ca", "m-sas", "m-x509"]);

    let u1 = rm
        .update_module_with_sas("mdev", "m-sas", Some("me"), &m1.etag, KEY2, KEY1)
        .await
        .unwrap();
    let stale = rm
        .update_module_with_sas("mdev", "m-sas", Some("me"), &m1.etag, KEY1, KEY2)
        .await
        .unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale:?}");
    rm.update_module_with_x509("mdev", "m-x509", None, &m2.etag, &thumb, &thumb)
        .await
        .unwrap();
    rm.update_module_with_certificate_authority("mdev", "m-ca", None, &m3.etag)
        .await
        .unwrap();

    // Module twins.
    let twin = rm.get_module_twin("mdev", "m-sas").await.unwrap();
    assert_eq!(twin.module_id.as_deref(), Some("m-sas"));
    let patch = TwinPatch::new()
        .desired(json!({"level": {"deep": [1, 2, 3]}}))
        .unwrap();
    let patched = rm
        .update_module_twin("mdev", "m-sas", &patch)
        .etag(&twin.etag)
        .await
        .unwrap();
    assert_eq!(patched.desired()["level"]["deep"], json!([1, 2, 3]));
    let stale = rm
        .update_module_twin("mdev", "m-sas", &patch)
        .etag(&twin.etag)
        .await
        .unwrap_err();
    assert!(stale.is_precondition_failed());
    let replaced = rm
        .replace_module_twin(
            "mdev",
            "m-sas",
            TwinPatch::new().tags(json!({"t": 1})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.tags["t"], 1);

    let stale = rm
        .delete_module("mdev", "m-sas")
        .etag(&m1.etag)
        .await
        .unwrap_err();
    assert!(stale.is_precondition_failed());
    rm.delete_module("mdev", "m-sas")
        .etag(&u1.etag)
        .await
        .unwrap();
    let gone = rm.get_module("mdev", "m-sas").await.unwrap_err();
    assert_eq!(gone.code(), Some(&ErrorCode::ModuleNotFound));
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn device_twins_update_replace_and_stale_etag() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    rm.create_device_with_sas("tdev", "", "", DeviceStatus::Enabled)
        .await
        .unwrap();
    let twin = rm.get_twin("tdev").await.unwrap();
    assert_eq!(twin.device_id.as_deref(), Some("tdev"));
    let patch = TwinPatch::from_json(json!({
        "tags": {"site": {"building": 4, "rooms": ["a", "b"]}},
        "properties": {"desired": {"interval": 30, "nested": {"x": {"y": true}}}}
    }))
    .unwrap();
    let patched = rm
        .update_twin("tdev", &patch)
        .etag(&twin.etag)
        .await
        .unwrap();
    assert_eq!(patched.tags["site"]["rooms"], json!(["a", "b"]));
    assert_eq!(patched.desired()["nested"]["x"]["y"], true);
    assert_ne!(patched.etag, twin.etag);

    let stale = rm
        .update_twin("tdev", &patch)
        .etag(&twin.etag)
        .await
        .unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale:?}");

    let replaced = rm
        .replace_twin(
            "tdev",
            TwinPatch::new().tags(json!({"only": "this"})).unwrap(),
        )
        .etag(&patched.etag)
        .await
        .unwrap();
    assert_eq!(replaced.tags.len(), 1);
    assert_eq!(replaced.tags["only"], "this");
    let read = rm.get_twin("tdev").await.unwrap();
    assert_eq!(read.etag, replaced.etag);

    let missing = rm.get_twin("nope").await.unwrap_err();
    assert!(missing.is_not_found());
    hub.emu.shutdown().await.unwrap();
}

fn bulk_entry(id: String) -> ExportImportDevice {
    ExportImportDevice {
        id,
        import_mode: Some(ImportMode::Create),
        status: Some(DeviceStatus::Enabled),
        authentication: Some(AuthenticationMechanism::sas("", "")),
        ..Default::default()
    }
}

#[tokio::test]
async fn query_pages_and_stream() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    let mut entries: Vec<_> = (0..7).map(|i| bulk_entry(format!("q{i}"))).collect();
    for e in &mut entries[..4] {
        e.tags = json!({"site": "lab"}).as_object().unwrap().clone();
    }
    let result = rm.bulk_create_or_update_devices(&entries).await.unwrap();
    assert!(result.is_successful, "{result:?}");

    let twins: Vec<Twin> = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(3)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let mut ids: Vec<_> = twins.into_iter().filter_map(|t| t.device_id).collect();
    ids.sort();
    assert_eq!(ids, ["q0", "q1", "q2", "q3", "q4", "q5", "q6"]);

    let lab: Vec<Twin> = rm
        .query_iot_hub("SELECT * FROM devices WHERE tags.site = 'lab'")
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lab.len(), 4);

    let mut token = String::new();
    let mut pages = 0;
    let mut seen = 0;
    loop {
        let page = rm
            .query_iot_hub("SELECT * FROM devices")
            .continuation_token(&token)
            .page_size(2)
            .await
            .unwrap();
        pages += 1;
        seen += page.items.len();
        assert!(page.items.len() <= 2);
        match page.continuation_token {
            Some(t) => token = t,
            None => break,
        }
    }
    assert_eq!(seen, 7);
    assert!(pages >= 4);

    // Projections and aggregates come back as raw JSON.
    let mut sites: Vec<serde_json::Value> = rm
        .query_as("SELECT deviceId, tags.site FROM devices WHERE tags.site = 'lab'")
        .page_size(2)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    sites.sort_by_key(|v| v["deviceId"].as_str().map(str::to_owned));
    assert_eq!(sites[0], json!({"deviceId": "q0", "site": "lab"}));
    assert_eq!(sites.len(), 4);
    let counts: Vec<serde_json::Value> = rm
        .query_as("SELECT COUNT() AS n FROM devices")
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(counts, vec![json!({"n": 7})]);
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn bulk_over_100_devices_aggregates_one_result() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let outcome = rm
        .bulk_create_or_update_devices_chunked((0..250).map(|i| bulk_entry(format!("b{i:03}"))))
        .progress_channel(tx)
        .await
        .unwrap();
    assert!(outcome.is_successful(), "{outcome:?}");
    assert_eq!(outcome.requests, 3);
    assert!(outcome.result.errors.is_empty());
    let last = *rx.borrow();
    assert_eq!((last.done, last.total, last.failed), (250, 250, 0));
    let stats = rm.get_device_registry_statistics().await.unwrap();
    assert_eq!(stats.total_device_count, 250);
    assert_eq!(stats.enabled_device_count, 250);

    // A chunked run where some entries already exist reports exactly those entries.
    let outcome = rm
        .bulk_create_or_update_devices_chunked((240..400).map(|i| bulk_entry(format!("b{i:03}"))))
        .chunk_size(50)
        .await
        .unwrap();
    assert!(!outcome.is_successful());
    assert!(outcome.failed_chunks.is_empty());
    let mut failed = outcome.failed_device_ids();
    failed.sort();
    let expected: Vec<String> = (240..250).map(|i| format!("b{i:03}")).collect();
    assert_eq!(failed, expected);
    assert!(
        outcome
            .result
            .errors
            .iter()
            .all(|e| e.code() == ErrorCode::DeviceAlreadyExists)
    );
    let stats = rm.get_device_registry_statistics().await.unwrap();
    assert_eq!(stats.total_device_count, 400);

    // The single-call API sends what it is given: IoT Hub refuses more than 100 entries.
    let too_many: Vec<_> = (0..101).map(|i| bulk_entry(format!("x{i}"))).collect();
    let err = rm
        .bulk_create_or_update_devices(&too_many)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::TooManyDevices), "{err:?}");
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn statistics_and_direct_methods() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    rm.create_device_with_sas("s1", "", "", DeviceStatus::Enabled)
        .await
        .unwrap();
    rm.create_device_with_sas("s2", "", "", DeviceStatus::Disabled)
        .await
        .unwrap();
    rm.create_module_with_sas("s1", "mod", None, "", "")
        .await
        .unwrap();
    let stats = rm.get_device_registry_statistics().await.unwrap();
    assert_eq!(
        (
            stats.total_device_count,
            stats.enabled_device_count,
            stats.disabled_device_count
        ),
        (2, 1, 1)
    );
    let service = rm.get_service_statistics().await.unwrap();
    assert_eq!(service.connected_device_count, 0);

    let call = CloudToDeviceMethod::new("reboot").payload(json!({"delay": 1}));
    let err = rm.invoke_device_method("s1", &call).await.unwrap_err();
    assert!(err.is_device_not_online(), "{err:?}");
    assert!(
        !err.is_not_found(),
        "an offline device is not a missing one: {err:?}"
    );
    assert_eq!(err.code().unwrap().number(), Some(404103));
    let err = rm
        .invoke_device_module_method("s1", "mod", CloudToDeviceMethod::new("m"))
        .await
        .unwrap_err();
    assert!(err.is_device_not_online(), "{err:?}");
    let err = rm
        .invoke_device_method("missing", CloudToDeviceMethod::new("m"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert!(!err.is_device_not_online());
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_key_is_unauthorized() {
    let hub = hub(ThrottleConfig::off()).await;
    let cs = hub.emu.connection_string();
    let bad = cs
        .split(';')
        .map(|p| {
            if p.starts_with("SharedAccessKey=") {
                format!("SharedAccessKey={KEY2}")
            } else {
                p.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(";");
    let rm = RegistryManager::builder()
        .connection_string(&bad)
        .add_root_certificate_pem(hub.emu.ca_pem())
        .build()
        .unwrap();
    let err = rm.get_devices().max_number_of_devices(1).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(KEY2));
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_operation_succeeds_under_random_throttling() {
    let hub = hub(ThrottleConfig::off().with_failure_rate(0.25)).await;
    let rm = &hub.rm;
    device_lifecycle(rm, "flaky").await;
    let outcome = rm
        .bulk_create_or_update_devices_chunked((0..150).map(|i| bulk_entry(format!("f{i}"))))
        .await
        .unwrap();
    assert!(outcome.is_successful(), "{outcome:?}");
    let twins: Vec<Twin> = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(50)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(twins.len(), 150);
    let patch = TwinPatch::new().desired(json!({"v": 1})).unwrap();
    for i in 0..30 {
        rm.update_twin(format!("f{i}"), &patch).await.unwrap();
        rm.get_twin(format!("f{i}")).await.unwrap();
    }
    // About 90 requests at a 25% rate: some were throttled and retried (the chance of none
    // is 0.75^90, about 6e-12; the old "more than five" failed one run in ten).
    assert!(hub.throttled() > 0, "throttled {} times", hub.throttled());
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_operation_succeeds_under_quota_throttling() {
    let throttle = ThrottleConfig::off()
        .with_quota(OperationClass::Registry, Quota::per_second(10))
        .with_quota(OperationClass::TwinRead, Quota::per_second(5));
    let hub = hub(throttle).await;
    let rm = &hub.rm;
    // 40 creates and 20 twin reads at once: far above the quotas, so most are throttled
    // (429 with Retry-After) and retried until they fit.
    let creates = (0..40).map(|i| async move {
        rm.create_device_with_sas(format!("t{i}"), "", "", DeviceStatus::Enabled)
            .await
    });
    let devices = futures::future::try_join_all(creates).await.unwrap();
    assert_eq!(devices.len(), 40);
    let reads = (0..20).map(|i| async move { rm.get_twin(format!("t{i}")).await });
    futures::future::try_join_all(reads).await.unwrap();
    assert!(hub.throttled() >= 20, "throttled {} times", hub.throttled());
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn query_stream_over_250_twins_with_page_size_7_yields_each_once() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    let entries = (0..250).map(|i| {
        let mut e = bulk_entry(format!("p{i:03}"));
        e.tags = json!({"fleet": if i % 2 == 0 { "even" } else { "odd" }})
            .as_object()
            .unwrap()
            .clone();
        e
    });
    let outcome = rm
        .bulk_create_or_update_devices_chunked(entries)
        .await
        .unwrap();
    assert!(outcome.is_successful(), "{outcome:?}");

    let twins: Vec<Twin> = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(7)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let mut ids: Vec<String> = twins.into_iter().filter_map(|t| t.device_id).collect();
    assert_eq!(ids.len(), 250, "every twin once, none twice");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no twin twice");
    let expected: Vec<String> = (0..250).map(|i| format!("p{i:03}")).collect();
    assert_eq!(ids, expected);

    // The same query page by page: 250 / 7 rounds up to 36 pages, none larger than 7.
    let pages: Vec<_> = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(7)
        .pages()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 36);
    assert!(pages.iter().all(|p| p.items.len() <= 7));
    assert_eq!(pages.iter().map(|p| p.items.len()).sum::<usize>(), 250);
    hub.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn query_as_decodes_projections_and_aggregates_into_own_types() {
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct MyRow {
        #[serde(rename = "deviceId")]
        device_id: String,
        fleet: String,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Count {
        n: u64,
    }
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    let entries: Vec<_> = (0..5)
        .map(|i| {
            let mut e = bulk_entry(format!("r{i}"));
            e.tags = json!({"fleet": format!("f{}", i % 2)})
                .as_object()
                .unwrap()
                .clone();
            e
        })
        .collect();
    rm.bulk_create_or_update_devices(&entries).await.unwrap();

    let mut rows: Vec<MyRow> = rm
        .query_as::<MyRow>("SELECT deviceId, tags.fleet AS fleet FROM devices")
        .page_size(2)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    rows.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[3],
        MyRow {
            device_id: "r3".into(),
            fleet: "f1".into()
        }
    );
    let page = rm
        .query_as::<Count>("SELECT COUNT() AS n FROM devices WHERE tags.fleet = 'f0'")
        .await
        .unwrap();
    assert_eq!(page.items[0].n, 3);

    // A projection decoded as a twin is a typed error that names query_as.
    let err = rm
        .query_iot_hub("SELECT deviceId, tags.fleet AS fleet FROM devices")
        .await
        .unwrap_err();
    assert!(
        matches!(err, iothub_registry::Error::InvalidResponse { ref body, .. } if body.contains("query_as")),
        "{err:?}"
    );
    hub.emu.shutdown().await.unwrap();
}

#[cfg(feature = "c2d")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_c2d_message_with_python_properties() {
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    rm.create_device_with_sas("c1", "", "", DeviceStatus::Enabled)
        .await
        .unwrap();
    let props = [
        ("contentType", "application/json"),
        ("ack", "full"),
        ("messageId", "m-1"),
        ("color", "red"),
    ];
    rm.send_c2d_message("c1", br#"{"on":true}"#.to_vec(), props)
        .await
        .unwrap();
    rm.send_c2d_message("c1", "second", Vec::<(String, String)>::new())
        .await
        .unwrap();
    let device = rm.get_device("c1").await.unwrap();
    assert_eq!(device.cloud_to_device_message_count, Some(2));

    let err = rm
        .send_c2d_message("missing", "x", Vec::<(String, String)>::new())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = rm
        .send_c2d_message(
            "c1",
            vec![0u8; 64 * 1024 + 1],
            Vec::<(String, String)>::new(),
        )
        .await
        .unwrap_err();
    assert!(err.is_message_too_large(), "{err:?}");
    let err = rm
        .send_c2d_message("c1", "x", [("ack", "sometimes")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, iothub_registry::Error::InvalidRequest { .. }),
        "{err:?}"
    );

    // The journal shows the AMQP properties the hub received.
    let journal = std::fs::read_to_string(hub.dir.path().join("journal.jsonl")).unwrap();
    let first: serde_json::Value = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["protocol"] == "amqp")
        .expect("an AMQP journal line");
    assert_eq!(
        first["properties"]["to"],
        "/devices/c1/messages/devicebound"
    );
    assert_eq!(first["properties"]["messageId"], "m-1");
    assert_eq!(first["properties"]["contentType"], "application/json");
    assert_eq!(
        first["properties"]["applicationProperties"]["iothub-ack"],
        "full"
    );
    assert_eq!(first["properties"]["applicationProperties"]["color"], "red");
    assert_eq!(first["outcome"], "accepted");
}

#[tokio::test]
async fn configurations_edge_deployments_and_key_regeneration() {
    use iothub_registry::{
        Configuration, ConfigurationContent, ConfigurationQueriesTestInput, KeyRegenerationTarget,
        RegenerateKeyPolicy,
    };
    let hub = hub(ThrottleConfig::off()).await;
    let rm = &hub.rm;
    let d1 = rm
        .create_device_with_sas("k1", "", "", DeviceStatus::Enabled)
        .await
        .unwrap();
    rm.create_device_with_sas("edge", "", "", DeviceStatus::Enabled)
        .iot_edge(true)
        .await
        .unwrap();

    // Partial key regeneration is a value: one rotated, one error.
    let result = rm
        .bulk_regenerate_device_keys(
            RegenerateKeyPolicy::PrimaryKey,
            [
                KeyRegenerationTarget::device("k1"),
                KeyRegenerationTarget::device("ghost"),
            ],
        )
        .await
        .unwrap();
    assert!(!result.is_successful());
    assert_eq!(result.rotated_keys.len(), 1);
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].device_id, "ghost");
    assert_eq!(result.errors[0].error_code, "DeviceNotFound");
    let after = rm.get_device("k1").await.unwrap();
    let key = |d: &iothub_registry::Device| {
        d.authentication
            .as_ref()
            .and_then(|a| a.symmetric_key.as_ref())
            .and_then(|k| k.primary_key.clone())
    };
    let new_primary = key(&after);
    assert_ne!(new_primary, key(&d1));
    assert_eq!(result.rotated_keys[0].primary_key, new_primary);
    assert!(!format!("{result:?}").contains(new_primary.as_deref().unwrap_or("?")));
    // Every identity failing is a value too (IoT Hub's 400 with the result body).
    let none = rm
        .bulk_regenerate_device_keys(
            RegenerateKeyPolicy::Both,
            [KeyRegenerationTarget::module("k1", "nope")],
        )
        .await
        .unwrap();
    assert!(none.rotated_keys.is_empty());
    assert_eq!(none.errors[0].error_code, "ModuleNotFound");
    // An empty list is a bad request, not a result.
    let e = rm
        .bulk_regenerate_device_keys(RegenerateKeyPolicy::Both, [])
        .await
        .unwrap_err();
    assert!(e.is_bad_request(), "{e:?}");

    // Configurations: create, read with metrics, update with ETag, list, test, delete.
    rm.update_twin("k1", TwinPatch::new().tags(json!({"env": "prod"})).unwrap())
        .etag(ETag::any())
        .await
        .unwrap();
    let config = Configuration {
        id: "cfg".into(),
        target_condition: "tags.env = 'prod'".into(),
        priority: 3,
        content: ConfigurationContent {
            device_content: Some(
                json!({"properties.desired.x": 1})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = rm.create_configuration(&config).await.unwrap();
    assert_eq!(created.system_metrics.results["targetedCount"], 1);
    assert!(created.system_metrics.queries["appliedCount"].contains("[[cfg]]"));
    let etag = created.etag.clone().unwrap();
    assert!(
        rm.create_configuration(&config)
            .await
            .unwrap_err()
            .is_already_exists()
    );
    let mut changed = created.clone();
    changed.priority = 7;
    let updated = rm.update_configuration(&changed, &etag).await.unwrap();
    assert_eq!(updated.priority, 7);
    let stale = rm.update_configuration(&changed, &etag).await.unwrap_err();
    assert!(stale.is_precondition_failed(), "{stale:?}");
    assert_eq!(rm.get_configuration("cfg").await.unwrap().priority, 7);
    assert_eq!(rm.get_configurations().max_count(5).await.unwrap().len(), 1);
    let test = rm
        .test_configuration_queries(&ConfigurationQueriesTestInput {
            target_condition: "tags.env = ".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!test.target_condition_error.is_empty());
    rm.delete_configuration("cfg").await.unwrap();
    assert!(
        rm.get_configuration("cfg")
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Edge deployment applied to one device; a non-edge device is refused.
    let content: ConfigurationContent = serde_json::from_value(json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1"}}
    }}))
    .unwrap();
    rm.apply_configuration_on_edge_device("edge", &content)
        .await
        .unwrap();
    let agent = rm.get_module_twin("edge", "$edgeAgent").await.unwrap();
    assert_eq!(agent.properties.unwrap().desired["schemaVersion"], "1.1");
    let e = rm
        .apply_configuration_on_edge_device("k1", &content)
        .await
        .unwrap_err();
    assert!(e.is_bad_request(), "{e:?}");
}
