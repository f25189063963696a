//! IoT Hub jobs end to end with our SDK (`iothub-registry`): registry export and import
//! through Azurite, scheduled twin updates and direct methods, cancellation, and `kill -9` of
//! the local hub while jobs run. The official SDKs' job suites are `python_jobs` and
//! `node_jobs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use iothub_conformance::Hub;
use iothub_conformance::azurite::Azurite;
use iothub_conformance::process::HubProcess;
use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice};
use iothub_registry::{
    AuthenticationMechanism, CloudToDeviceMethod, DeviceStatus, ExportImportDevice, ImportMode,
    JobProperties, JobRequest, JobStatus, RegistryManager, TwinPatch,
};
use serde_json::{Value, json};

const POLL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(240);

fn registry_for(cs: &str, ca_pem: &str) -> RegistryManager {
    RegistryManager::builder()
        .connection_string(cs)
        .add_root_certificate_pem(ca_pem)
        .build()
        .expect("registry manager")
}

fn registry(hub: &Hub) -> RegistryManager {
    registry_for(&hub.connection_string(), &hub.emulator().ca_pem())
}

fn key(i: usize, which: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([which; 16].map(|b| b ^ (i as u8)))
}

/// `n` devices: SAS with known keys (every 7th X.509, every 5th disabled with a reason),
/// tags and desired properties on every 3rd.
fn fleet(prefix: &str, n: usize) -> Vec<ExportImportDevice> {
    (0..n)
        .map(|i| {
            let mut entry: ExportImportDevice = serde_json::from_value(json!({
                "id": format!("{prefix}-{i:05}"),
                "importMode": "create",
                "status": if i.is_multiple_of(5) { "disabled" } else { "enabled" },
            }))
            .expect("entry");
            if i.is_multiple_of(5) {
                entry.status_reason = Some(format!("reason {i}"));
            }
            entry.authentication = Some(if i.is_multiple_of(7) {
                AuthenticationMechanism::x509(format!("{:040X}", i), format!("{:040X}", i + 1))
            } else {
                AuthenticationMechanism::sas(key(i, 1), key(i, 2))
            });
            if i.is_multiple_of(3) {
                entry.tags = json!({ "site": format!("s{}", i % 4), "n": i })
                    .as_object()
                    .cloned()
                    .expect("object");
                entry.properties = Some(
                    serde_json::from_value(json!({ "desired": { "interval": i, "mode": "eco" } }))
                        .expect("properties"),
                );
            }
            entry
        })
        .collect()
}

async fn create_fleet(rm: &RegistryManager, entries: Vec<ExportImportDevice>) {
    let outcome = rm
        .bulk_create_or_update_devices_chunked(entries)
        .await
        .expect("bulk create");
    assert!(outcome.is_successful(), "bulk create failed: {outcome:?}");
}

/// Everything an export/import round trip must keep, per device and module, by id.
async fn registry_snapshot(rm: &RegistryManager) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut pages = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(1000)
        .pages();
    let mut ids = Vec::new();
    while let Some(page) = pages.next().await {
        for twin in page.expect("query page").items {
            ids.push(twin.device_id.clone().expect("deviceId"));
        }
    }
    for id in ids {
        let device = rm.get_device(&id).await.expect("get device");
        let twin = rm.get_twin(&id).await.expect("get twin");
        let desired = twin
            .properties
            .as_ref()
            .map(|p| {
                let mut d = p.desired.clone();
                d.remove("$metadata");
                d.remove("$version");
                d
            })
            .unwrap_or_default();
        out.insert(
            id.clone(),
            json!({
                "status": device.status.as_ref().map(|s| s.as_str().to_owned()),
                "statusReason": device.status_reason,
                "authentication": device.authentication,
                "tags": twin.tags,
                "desired": desired,
                "capabilities": device.capabilities,
                "deviceScope": device.device_scope,
            }),
        );
        for module in rm.get_modules(&id).await.expect("modules") {
            out.insert(
                format!("{id}/{}", module.module_id),
                json!({ "authentication": module.authentication, "managedBy": module.managed_by }),
            );
        }
    }
    out
}

async fn wait_import_export(rm: &RegistryManager, job_id: &str) -> iothub_registry::JobProperties {
    rm.wait_for_import_export_job(job_id)
        .poll_interval(POLL)
        .timeout(WAIT)
        .await
        .expect("wait for the job")
}

async fn wait_scheduled(rm: &RegistryManager, job_id: &str) -> iothub_registry::JobResponse {
    rm.wait_for_scheduled_job(job_id)
        .poll_interval(POLL)
        .timeout(WAIT)
        .await
        .expect("wait for the job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_hub_keeps_the_registry() {
    let storage = Azurite::start().await;
    let source = Hub::start().await;
    let rm = registry(&source);
    create_fleet(&rm, fleet("rt", 1500)).await;
    for i in (0..1500).step_by(100) {
        let id = format!("rt-{i:05}");
        rm.create_module_with_sas(&id, "telemetry", Some("ops"), key(i, 3), key(i, 4))
            .await
            .expect("module");
        rm.create_module_with_x509(&id, "camera", None, "A".repeat(40), "B".repeat(40))
            .await
            .expect("module");
    }
    // An IoT Edge device and a child that sorts before it: the child's scope names the
    // parent, which the import meets later.
    let edge = rm
        .create_device_with_sas("zz-edge", key(1, 5), key(1, 6), DeviceStatus::Enabled)
        .iot_edge(true)
        .await
        .expect("edge device");
    let scope = edge.device_scope.clone().expect("edge scope");
    rm.create_device_with_sas("aa-child", key(2, 5), key(2, 6), DeviceStatus::Enabled)
        .device_scope(scope.clone())
        .await
        .expect("child device");
    let exports = storage.container("exports").await;
    let job = rm
        .create_import_export_job(JobProperties::export(&exports).exclude_keys_in_export(false))
        .await
        .expect("create export job");
    let mut seen_progress = Vec::new();
    let done = rm
        .wait_for_import_export_job(&job.job_id)
        .poll_interval(POLL)
        .timeout(WAIT)
        .on_progress(|j| seen_progress.push(j.progress))
        .await
        .expect("export");
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.progress, 100);
    assert!(!seen_progress.is_empty());
    // The job never echoes the SAS.
    assert!(done.output_blob_container_uri.is_none(), "{done:?}");

    let target = Hub::start().await;
    let rm2 = registry(&target);
    let logs = storage.container("import-logs").await;
    let job = rm2
        .create_import_export_job(JobProperties::import(&exports, &logs))
        .await
        .expect("create import job");
    let done = wait_import_export(&rm2, &job.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    let log = storage_text(&storage, &logs, "importErrors.log").await;
    assert_eq!(log, "", "the round trip's import failed lines");

    let (a, b) = (registry_snapshot(&rm).await, registry_snapshot(&rm2).await);
    assert_eq!(a.len(), 1500 + 30 + 2 + 2);
    let differ: Vec<(&String, Option<&Value>, Option<&Value>)> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k, a.get(k), b.get(k)))
        .take(3)
        .collect();
    assert!(
        differ.is_empty(),
        "the imported registry differs: {differ:?}"
    );
    assert_eq!(b["aa-child"]["deviceScope"], json!(scope));
    assert!(
        b.contains_key("zz-edge/$edgeAgent"),
        "{:?}",
        b.keys().rev().take(5).collect::<Vec<_>>()
    );
    source.shutdown().await;
    target.shutdown().await;
    storage.stop().await;
}

/// Asks for an export job into `container` and checks that it is refused with IoT Hub's
/// error `code` (by name); returns the error.
async fn export_refused(
    rm: &RegistryManager,
    container: &str,
    code: &str,
) -> iothub_registry::Error {
    let e = rm
        .create_import_export_job(JobProperties::export(container))
        .await
        .unwrap_err();
    assert_eq!(
        e.code().map(|c| c.name().to_owned()).as_deref(),
        Some(code),
        "{e}"
    );
    e
}

/// The SAS URL with its expiry (`se=`) moved to 2001.
fn regex_replace_se(url: &str) -> String {
    let (base, query) = url.split_once('?').expect("a SAS");
    let query: Vec<String> = query
        .split('&')
        .map(|p| {
            if p.starts_with("se=") {
                "se=2001-01-01T00%3A00%3A00Z".to_owned()
            } else {
                p.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

async fn storage_text(storage: &Azurite, container: &str, blob: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("blob");
    storage.get(container, blob, &file).await;
    std::fs::read_to_string(&file).expect("read blob")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_applies_lines_in_order_and_logs_each_bad_one() {
    let storage = Azurite::start().await;
    let hub = Hub::start().await;
    let rm = registry(&hub);
    rm.create_device_with_sas("taken", key(0, 1), key(0, 2), DeviceStatus::Enabled)
        .await
        .expect("device");
    let lines = [
        format!(
            "\u{feff}{}",
            json!({"id": "a", "importMode": "create", "tags": {"v": 1}})
        ),
        json!({"id": "a", "importMode": "update", "tags": {"v": 2}}).to_string(),
        "{not json".to_owned(),
        json!({"id": "taken", "importMode": "create"}).to_string(),
        String::new(),
        json!({"id": "bad id", "importMode": "create"}).to_string(),
        json!({"id": "a", "moduleId": "m", "importMode": "create",
               "authentication": {"symmetricKey": {"primaryKey": key(1, 1), "secondaryKey": key(1, 2)}}})
        .to_string(),
        json!({"id": "ghost", "moduleId": "m", "importMode": "create"}).to_string(),
        json!({"id": "a", "importMode": "frobnicate"}).to_string(),
        "[1, 2]".to_owned(),
        json!({"id": "b", "importMode": "createOrUpdate", "status": "disabled"}).to_string(),
        json!({"id": "taken", "importMode": "delete"}).to_string(),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("devices.txt");
    // Line 13 is not UTF-8; line 14 applies after it.
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\n{\"id\": \"caf\xe9\"}\n");
    bytes.extend_from_slice(
        json!({"id": "c", "importMode": "create"})
            .to_string()
            .as_bytes(),
    );
    std::fs::write(&file, bytes).expect("write input");
    let input = storage.container("input").await;
    let output = storage.container("output").await;
    storage.put(&input, "devices.txt", &file).await;
    let job = rm
        .create_import_export_job(JobProperties::import(&input, &output))
        .await
        .expect("import job");
    let done = wait_import_export(&rm, &job.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");

    // Good lines applied in file order: `a` created then updated, its module, `b`, and
    // `taken` deleted.
    let twin = rm.get_twin("a").await.expect("a");
    assert_eq!(twin.tags.get("v"), Some(&json!(2)));
    let module = rm.get_module("a", "m").await.expect("module a/m");
    assert_eq!(
        module
            .authentication
            .and_then(|a| a.symmetric_key)
            .and_then(|k| k.primary_key),
        Some(key(1, 1))
    );
    rm.get_device("c")
        .await
        .expect("c, after the line that is not UTF-8");
    let b = rm.get_device("b").await.expect("b");
    assert_eq!(b.status, Some(DeviceStatus::Disabled));
    assert!(rm.get_device("taken").await.unwrap_err().is_not_found());

    let log = storage_text(&storage, &output, "importErrors.log").await;
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("error record is JSON"))
        .collect();
    let by_line: BTreeMap<u64, (i64, String)> = records
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                (
                    r["errorCode"].as_i64().expect("errorCode"),
                    r["errorStatus"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    let codes: Vec<(u64, i64)> = by_line.iter().map(|(l, (c, _))| (*l, *c)).collect();
    assert_eq!(
        codes,
        vec![
            (3, 400012),  // not JSON
            (4, 409001),  // DeviceAlreadyExists
            (6, 400004),  // ArgumentInvalid (id)
            (8, 404001),  // DeviceNotFound (module of a missing device)
            (9, 400004),  // ArgumentInvalid (import mode)
            (10, 400012), // not an object
            (13, 400012), // not UTF-8
        ],
        "{log}"
    );
    assert!(by_line[&4].1.starts_with("DeviceAlreadyExists"), "{log}");
    hub.shutdown().await;
    storage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_requests_that_cannot_work_are_refused_with_iot_hub_codes() {
    let storage = Azurite::start().await;
    let hub = Hub::start().await;
    let rm = registry(&hub);
    let out = storage.container("output").await;
    // A SAS that cannot write.
    let read_only = out.replace("sp=racwdl", "sp=rl");
    assert_ne!(read_only, out, "the SAS's permissions are racwdl: {out}");
    export_refused(&rm, &read_only, "BlobContainerValidationError").await;
    // No SAS at all.
    let bare = out.split('?').next().expect("url").to_owned();
    let e = export_refused(&rm, &bare, "ArgumentInvalid").await;
    assert!(!e.to_string().contains("sig="), "{e}");
    // An expired SAS, and a URI without a container.
    let expired = regex_replace_se(&out);
    export_refused(&rm, &expired, "BlobContainerValidationError").await;
    let no_container = out.replacen("/output?", "?", 1);
    assert_ne!(no_container, out);
    export_refused(&rm, &no_container, "ArgumentInvalid").await;
    // A second import/export job while one is active.
    create_fleet(&rm, fleet("q", 3000)).await;
    let first = rm
        .create_import_export_job(JobProperties::export(&out))
        .await
        .expect("first export");
    let second = rm
        .create_import_export_job(JobProperties::export(&out))
        .await;
    let status = rm
        .get_import_export_job(&first.job_id)
        .await
        .expect("first job")
        .status;
    if !status.is_terminal() {
        let e = second.unwrap_err();
        assert_eq!(
            e.code().map(|c| c.name().to_owned()).as_deref(),
            Some("JobQuotaExceeded"),
            "{e}"
        );
    }
    wait_import_export(&rm, &first.job_id).await;
    // Unknown jobs.
    let e = rm.get_import_export_job("nope").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // An absurd execution time is no limit, and a job that selects nothing completes.
    let patch = TwinPatch::new().tags(json!({"x": 1})).expect("patch");
    rm.create_scheduled_job(
        "nobody",
        JobRequest::update_twin("deviceId = 'nobody'", patch)
            .max_execution_time(Duration::from_secs(i64::MAX as u64 / 2)),
    )
    .await
    .expect("create job");
    let done = wait_scheduled(&rm, "nobody").await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(
        done.device_job_statistics.expect("statistics").device_count,
        0
    );
    hub.shutdown().await;
    storage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_twin_update_over_ten_thousand_devices() {
    let hub = Hub::start().await;
    let rm = registry(&hub);
    let entries: Vec<ExportImportDevice> = (0..10_100)
        .map(|i| {
            let mut e: ExportImportDevice = serde_json::from_value(json!({
                "id": format!("t-{i:05}"),
                "importMode": "create",
                "tags": { "fleet": if i < 10_000 { "north" } else { "south" } },
            }))
            .expect("entry");
            e.import_mode = Some(ImportMode::Create);
            e
        })
        .collect();
    create_fleet(&rm, entries).await;
    let patch = TwinPatch::new()
        .desired(json!({ "firmware": "2.1.0" }))
        .expect("patch")
        .tags(json!({ "rollout": "wave-1" }))
        .expect("patch");
    rm.create_scheduled_job(
        "firmware-wave-1",
        JobRequest::update_twin("tags.fleet = 'north'", patch),
    )
    .await
    .expect("create job");
    let done = wait_scheduled(&rm, "firmware-wave-1").await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    let stats = done.device_job_statistics.expect("statistics");
    assert_eq!(
        (
            stats.device_count,
            stats.succeeded_count,
            stats.failed_count,
            stats.running_count,
            stats.pending_count
        ),
        (10_000, 10_000, 0, 0, 0)
    );
    for id in ["t-00000", "t-04999", "t-09999"] {
        let twin = rm.get_twin(id).await.expect("twin");
        assert_eq!(twin.tags.get("rollout"), Some(&json!("wave-1")), "{id}");
        let desired = twin.properties.expect("properties").desired;
        assert_eq!(desired.get("firmware"), Some(&json!("2.1.0")), "{id}");
    }
    let untouched = rm.get_twin("t-10050").await.expect("twin");
    assert_eq!(untouched.tags.get("rollout"), None);
    hub.shutdown().await;
}

async fn connect_device(hub: &Hub, rm: &RegistryManager, id: &str) -> SimulatedDevice {
    rm.create_device_with_sas(id, key(7, 1), key(7, 2), DeviceStatus::Enabled)
        .await
        .expect("device");
    let config = DeviceConfig::new(hub.emulator().host_name(), id, key(7, 1))
        .with_port(hub.emulator().mqtts_port())
        .with_ca_pem(hub.emulator().ca_pem());
    SimulatedDevice::connect(config, DeviceOptions::default())
        .await
        .expect("connect the simulated device")
}

/// The rows of `devices.jobs` for `job_id`, by device id.
async fn device_job_rows(rm: &RegistryManager, job_id: &str) -> BTreeMap<String, Value> {
    let page = rm
        .query_as::<Value>(format!(
            "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{job_id}'"
        ))
        .page_size(1000)
        .await
        .expect("devices.jobs query");
    page.items
        .into_iter()
        .map(|r| (r["deviceId"].as_str().expect("deviceId").to_owned(), r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_method_job_reaches_connected_devices_and_records_answers() {
    let hub = Hub::start().await;
    let rm = registry(&hub);
    let mut devices = Vec::new();
    for i in 0..3 {
        devices.push(connect_device(&hub, &rm, &format!("pump-{i}")).await);
    }
    rm.create_device_with_sas("pump-offline", key(8, 1), key(8, 2), DeviceStatus::Enabled)
        .await
        .expect("device");
    let method = CloudToDeviceMethod::new("reboot")
        .payload(json!({ "delay": 5 }))
        .response_timeout_in_seconds(10);
    rm.create_scheduled_job(
        "reboot-pumps",
        JobRequest::device_method("STARTSWITH(deviceId, 'pump-')", method),
    )
    .await
    .expect("create job");
    let done = wait_scheduled(&rm, "reboot-pumps").await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    let stats = done.device_job_statistics.expect("statistics");
    assert_eq!(
        (
            stats.device_count,
            stats.succeeded_count,
            stats.failed_count
        ),
        (4, 3, 1)
    );
    let rows = device_job_rows(&rm, "reboot-pumps").await;
    assert_eq!(rows.len(), 4);
    for i in 0..3 {
        let row = &rows[&format!("pump-{i}")];
        assert_eq!(row["status"], "completed", "{row}");
        assert_eq!(row["jobType"], "scheduleDeviceMethod");
        assert_eq!(
            row["outcome"]["deviceMethodResponse"]["status"], 200,
            "{row}"
        );
        assert_eq!(
            row["outcome"]["deviceMethodResponse"]["payload"],
            json!({ "delay": 5 }),
            "{row}"
        );
    }
    let offline = &rows["pump-offline"];
    assert_eq!(offline["status"], "failed");
    assert_eq!(offline["error"]["code"], "DeviceNotOnline", "{offline}");
    for d in devices {
        d.disconnect().await;
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_with_the_counts_so_far() {
    let hub = Hub::start().await;
    let rm = registry(&hub);
    let mut devices = Vec::new();
    for i in 0..3 {
        devices.push(connect_device(&hub, &rm, &format!("a-online-{i}")).await);
    }
    let offline: Vec<ExportImportDevice> = (0..40)
        .map(|i| {
            serde_json::from_value(
                json!({ "id": format!("b-offline-{i:02}"), "importMode": "create" }),
            )
            .expect("entry")
        })
        .collect();
    create_fleet(&rm, offline).await;
    // Offline devices are waited for up to 60 s each: the job runs until cancelled.
    let method = CloudToDeviceMethod::new("ping").connect_timeout_in_seconds(60);
    rm.create_scheduled_job(
        "ping-all",
        JobRequest::device_method("*", method), // `*`: every device, as the Azure CLI documents
    )
    .await
    .expect("create job");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = rm.get_scheduled_job("ping-all").await.expect("job");
        let stats = job.device_job_statistics.unwrap_or_default();
        if stats.succeeded_count == 3 && job.status == JobStatus::Running {
            assert_eq!(stats.device_count, 43);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the online devices never answered: {job:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let cancelled = rm.cancel_scheduled_job("ping-all").await.expect("cancel");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let stats = cancelled.device_job_statistics.expect("statistics");
    assert_eq!(
        (
            stats.device_count,
            stats.succeeded_count,
            stats.failed_count,
            stats.pending_count
        ),
        (43, 3, 0, 40)
    );
    // It stays stopped: nothing moves afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = rm.get_scheduled_job("ping-all").await.expect("job");
    assert_eq!(later.status, JobStatus::Cancelled);
    assert_eq!(later.device_job_statistics.expect("statistics"), stats);
    for d in devices {
        d.disconnect().await;
    }
    hub.shutdown().await;
}

async fn spawn_hub(data_dir: &Path) -> HubProcess {
    HubProcess::start(Path::new(env!("CARGO_BIN_EXE_local-hub")), data_dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_jobs_leaves_each_failed_or_resumed_and_saying_which() {
    let storage = Azurite::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("hub");
    let hub = spawn_hub(&data).await;
    let ca = hub.ca_pem();
    let rm = registry_for(hub.connection_string(), &ca);

    // An import of 60,000 lines, each a new device tagged `batch = 'k9'`.
    let file = dir.path().join("devices.txt");
    let text: String = (0..60_000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": format!("k9-{i:06}"), "importMode": "create", "tags": {"batch": "k9"}})
            )
        })
        .collect();
    std::fs::write(&file, text).expect("write input");
    let input = storage.container("input").await;
    let output = storage.container("output").await;
    storage.put(&input, "devices.txt", &file).await;
    // A method job that is running (its devices are offline and waited for) and one that
    // starts later.
    let offline: Vec<ExportImportDevice> = (0..20)
        .map(|i| {
            serde_json::from_value(json!({ "id": format!("off-{i:02}"), "importMode": "create" }))
                .expect("entry")
        })
        .collect();
    create_fleet(&rm, offline).await;
    rm.create_scheduled_job(
        "running-at-kill",
        JobRequest::device_method(
            "STARTSWITH(deviceId, 'off-')",
            CloudToDeviceMethod::new("ping").connect_timeout_in_seconds(120),
        ),
    )
    .await
    .expect("method job");
    let later = chrono::Utc::now() + chrono::Duration::seconds(8);
    rm.create_scheduled_job(
        "starts-after-restart",
        JobRequest::update_twin(
            "STARTSWITH(deviceId, 'off-')",
            TwinPatch::new()
                .tags(json!({"resumed": true}))
                .expect("patch"),
        )
        .start_time(later),
    )
    .await
    .expect("future job");
    let import = rm
        .create_import_export_job(JobProperties::import(&input, &output))
        .await
        .expect("import job");
    // Kill once the import has applied some lines but not all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = rm.get_import_export_job(&import.job_id).await.expect("job");
        assert!(
            !job.status.is_terminal(),
            "the import finished before the kill: {job:?}"
        );
        if job.progress >= 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.kill_9().await;

    let hub = spawn_hub(&data).await;
    let rm = registry_for(hub.connection_string(), &ca);
    let job = rm.get_import_export_job(&import.job_id).await.expect("job");
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let reason = job.failure_reason.clone().expect("failure reason");
    let applied: usize = reason
        .split("The first ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the reason gives no count: {reason}"));
    assert!(applied > 0 && applied < 60_000, "{reason}");
    // Exactly the lines it names are in the registry: nothing half-applied silently.
    let count = rm
        .query_as::<Value>("SELECT COUNT() AS n FROM devices WHERE tags.batch = 'k9'")
        .await
        .expect("count");
    assert_eq!(count.items[0]["n"], json!(applied), "{reason}");

    let running = rm.get_scheduled_job("running-at-kill").await.expect("job");
    assert_eq!(running.status, JobStatus::Failed, "{running:?}");
    assert!(
        running
            .failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("stopped while this job was running")),
        "{running:?}"
    );
    let resumed = wait_scheduled(&rm, "starts-after-restart").await;
    assert_eq!(resumed.status, JobStatus::Completed, "{resumed:?}");
    assert!(
        resumed
            .status_message
            .as_deref()
            .is_some_and(|m| m.contains("Resumed")),
        "{resumed:?}"
    );
    assert_eq!(
        resumed
            .device_job_statistics
            .expect("stats")
            .succeeded_count,
        20
    );
    drop(hub);
    storage.stop().await;
}
