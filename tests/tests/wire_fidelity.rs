//! Wire fidelity: `iothub_registry::RegistryManager` must put the same requests on the wire
//! as Microsoft's Python SDK for the same calls, and `iothub_c2d::C2dClient` the same
//! cloud-to-device messages as the SDK's `send_c2d_message` (see the C2D section below).
//!
//! `tests/python/wire_calls.py` makes a fixed sequence of `IoTHubRegistryManager` calls
//! against one emulator; [`rust_calls`] makes the same calls, in the same order with the same
//! arguments, against a second emulator. Both emulators write a request journal, and the
//! journals must match line by line in: method, path, query string, `If-Match`,
//! `x-ms-max-item-count`, `x-ms-continuation`, the media type of `Content-Type`, the JSON body
//! (compared as JSON values) and the response status.
//!
//! Normalisations, each because the difference is not the client's to control:
//! * Key values: the emulator's journal already writes every `primaryKey`/`secondaryKey` as
//!   `"***"`, so the same keys are used on both sides and only their presence is compared.
//! * `Content-Type`: only the media type is compared (`application/json`); the Python SDK adds
//!   `; charset=utf-8`, and JSON is UTF-8 either way (RFC 8259).
//!
//! Not normalised: ETags and continuation tokens. The emulator derives them from the request
//! history, so two emulators that saw the same requests hand out the same values, and a
//! client that echoes the wrong ETag or token shows up as a mismatch.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use iothub_c2d::{Ack, C2dClient, Message as C2dMessage};
use iothub_conformance::{Hub, assert_success, python, read_journal, run_script, tests_dir};
use iothub_registry::{
    AuthenticationMechanism, CloudToDeviceMethod, DeviceStatus, ETag, ExportImportDevice,
    ImportMode, RegistryManager, RetryPolicy, TwinPatch,
};
use serde_json::{Value, json};

const PK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SK: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const T1: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
const T2: &str = "89ABCDEF0123456789ABCDEF0123456789ABCDEF";

/// A twin patch from the JSON document form that the Python script passes as `Twin(...)`.
fn twin(value: Value) -> TwinPatch {
    TwinPatch::from_json(value).expect("valid twin patch JSON")
}

/// Requires `result` to be an IoT Hub error with HTTP `status`.
fn refused<T: std::fmt::Debug>(status: u16, result: iothub_registry::Result<T>) {
    let err = result.expect_err("the call should have been refused");
    let got = err.service_error().map(|e| e.status);
    assert_eq!(got, Some(status), "status of a refused call: {err:?}");
}

/// The sequence of `tests/python/wire_calls.py`, step for step.
async fn rust_calls(rm: &RegistryManager) -> iothub_registry::Result<()> {
    // 1-4: devices with each authentication type
    rm.create_device_with_sas("wf-sas", PK, SK, DeviceStatus::Enabled)
        .await?;
    rm.create_device_with_sas("wf-edge", "", "", DeviceStatus::Enabled)
        .iot_edge(true)
        .status_reason("edge")
        .await?;
    rm.create_device_with_x509("wf-x509", T1, T2, DeviceStatus::Enabled)
        .await?;
    rm.create_device_with_certificate_authority("wf-ca", DeviceStatus::Disabled)
        .await?;
    // 5-10: read and update them
    let d = rm.get_device("wf-sas").await?;
    rm.update_device_with_sas("wf-sas", &d.etag, SK, PK, DeviceStatus::Disabled)
        .status_reason("maintenance")
        .await?;
    refused(
        412,
        rm.update_device_with_sas("wf-sas", &d.etag, PK, SK, DeviceStatus::Enabled)
            .await,
    );
    rm.update_device_with_x509("wf-x509", ETag::any(), T2, T1, DeviceStatus::Enabled)
        .await?;
    let ca = rm.get_device("wf-ca").await?;
    rm.update_device_with_certificate_authority("wf-ca", &ca.etag, DeviceStatus::Enabled)
        .await?;
    // 11: list
    rm.get_devices().max_number_of_devices(3).await?;
    // 12-20: modules
    rm.create_module_with_sas("wf-sas", "m1", Some("me"), PK, SK)
        .await?;
    rm.create_module_with_x509("wf-sas", "m2", None, T1, T2)
        .await?;
    rm.create_module_with_certificate_authority("wf-sas", "m3", Some("you"))
        .await?;
    let m1 = rm.get_module("wf-sas", "m1").await?;
    rm.update_module_with_sas("wf-sas", "m1", Some("me2"), &m1.etag, SK, PK)
        .await?;
    rm.update_module_with_x509("wf-sas", "m2", None, ETag::any(), T2, T1)
        .await?;
    let m3 = rm.get_module("wf-sas", "m3").await?;
    rm.update_module_with_certificate_authority("wf-sas", "m3", Some("you2"), &m3.etag)
        .await?;
    rm.get_modules("wf-sas").await?;
    rm.delete_module("wf-sas", "m3").await?;
    let m2 = rm.get_module("wf-sas", "m2").await?;
    rm.delete_module("wf-sas", "m2").etag(&m2.etag).await?;
    refused(412, rm.delete_module("wf-sas", "m1").etag(&m1.etag).await);
    // twins
    let t = rm.get_twin("wf-sas").await?;
    let patch = twin(json!({
        "tags": {"site": {"building": 4}, "n": 1.5},
        "properties": {"desired": {"interval": 30, "cfg": {"a": null}}},
    }));
    rm.update_twin("wf-sas", &patch).etag(&t.etag).await?;
    rm.replace_twin(
        "wf-sas",
        twin(json!({"tags": {"only": true}, "properties": {"desired": {"mode": "eco"}}})),
    )
    .await?;
    refused(
        412,
        rm.update_twin("wf-sas", twin(json!({"tags": {"late": 1}})))
            .etag(&t.etag)
            .await,
    );
    let mt = rm.get_module_twin("wf-sas", "m1").await?;
    rm.update_module_twin(
        "wf-sas",
        "m1",
        twin(json!({"properties": {"desired": {"rate": 2}}})),
    )
    .etag(&mt.etag)
    .await?;
    rm.replace_module_twin("wf-sas", "m1", twin(json!({"tags": {"role": "x"}})))
        .await?;
    refused(404, rm.get_twin("wf-missing").await);
    // queries: one page size that needs continuation tokens, then no page size
    let mut token = String::new();
    loop {
        let page = rm
            .query_iot_hub("SELECT * FROM devices WHERE status = 'enabled'")
            .continuation_token(&token)
            .page_size(2)
            .await?;
        match page.continuation_token {
            Some(next) => token = next,
            None => break,
        }
    }
    rm.query_iot_hub("SELECT * FROM devices.modules").await?;
    // bulk: a create, a createOrUpdate, a delete and one refused create of an existing device
    let sas = AuthenticationMechanism::sas(PK, SK);
    rm.bulk_create_or_update_devices(&[
        ExportImportDevice {
            id: "wf-b1".into(),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(sas.clone()),
            ..Default::default()
        },
        ExportImportDevice {
            id: "wf-b2".into(),
            import_mode: Some(ImportMode::CreateOrUpdate),
            status: Some(DeviceStatus::Disabled),
            authentication: Some(AuthenticationMechanism::certificate_authority()),
            ..Default::default()
        },
    ])
    .await?;
    rm.bulk_create_or_update_devices(&[
        ExportImportDevice {
            id: "wf-b1".into(),
            import_mode: Some(ImportMode::Delete),
            ..Default::default()
        },
        ExportImportDevice {
            id: "wf-sas".into(),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(sas),
            ..Default::default()
        },
    ])
    .await?;
    // statistics
    rm.get_device_registry_statistics().await?;
    rm.get_service_statistics().await?;
    // direct methods (no device is connected)
    let reboot = CloudToDeviceMethod::new("reboot")
        .payload(json!({"x": 1}))
        .response_timeout_in_seconds(30)
        .connect_timeout_in_seconds(5);
    refused(404, rm.invoke_device_method("wf-sas", &reboot).await);
    refused(
        404,
        rm.invoke_device_module_method("wf-sas", "m1", CloudToDeviceMethod::new("m"))
            .await,
    );
    // deletes
    rm.delete_device("wf-edge").await?;
    let x = rm.get_device("wf-x509").await?;
    rm.delete_device("wf-x509").etag(&x.etag).await?;
    refused(404, rm.get_device("wf-edge").await);
    Ok(())
}

/// The part of a journal line that is compared, normalised as the module docs say.
fn comparable(line: &Value) -> Value {
    let header = |name: &str| line["headers"][name].clone();
    let media_type = match &line["headers"]["content-type"] {
        Value::String(ct) => Value::String(
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase(),
        ),
        other => other.clone(),
    };
    json!({
        "method": line["method"],
        "path": line["path"],
        "query": line["query"],
        "if-match": header("if-match"),
        "x-ms-max-item-count": header("x-ms-max-item-count"),
        "x-ms-continuation": header("x-ms-continuation"),
        "content-type": media_type,
        "body": line["body"],
        "status": line["status"],
    })
}

/// Describes every difference between two comparable lines, field by field.
fn differences(python: &Value, rust: &Value) -> Vec<String> {
    let (Value::Object(p), Value::Object(r)) = (python, rust) else {
        unreachable!()
    };
    p.iter()
        .filter(|(k, v)| r.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "  {k}:\n    python: {v}\n    rust:   {}",
                r.get(k).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

fn line_summary(line: &Value) -> String {
    format!(
        "{} {} -> {}",
        line["method"].as_str().unwrap_or("?"),
        line["path"].as_str().unwrap_or("?"),
        line["status"]
    )
}

async fn python_journal(dir: &Path) -> Vec<Value> {
    let journal = dir.join("python.jsonl");
    let hub = Hub::start_with_journal(&journal).await;
    let script = tests_dir().join("python").join("wire_calls.py");
    let out = run_script(
        &python(),
        &[script.into_os_string()],
        &tests_dir().join("python"),
        &hub.script_env(),
    )
    .await;
    hub.shutdown().await;
    assert_success("python wire_calls.py", &out);
    read_journal(&journal)
}

async fn rust_journal(dir: &Path) -> Vec<Value> {
    let journal = dir.join("rust.jsonl");
    let hub = Hub::start_with_journal(&journal).await;
    let rm = RegistryManager::builder()
        .connection_string(&hub.connection_string())
        .add_root_certificate_file(hub.ca_path())
        // One attempt per call, so the journal holds exactly the calls made.
        .retry_policy(RetryPolicy::disabled())
        .build()
        .expect("build the RegistryManager");
    let result = rust_calls(&rm).await;
    hub.shutdown().await;
    if let Err(e) = result {
        panic!("the Rust call sequence failed: {e:?}");
    }
    read_journal(&journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_registry_sends_what_the_python_sdk_sends() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (python, rust) = tokio::join!(python_journal(dir.path()), rust_journal(dir.path()));

    let mut report = Vec::new();
    for (i, (p, r)) in python.iter().zip(rust.iter()).enumerate() {
        let diffs = differences(&comparable(p), &comparable(r));
        if !diffs.is_empty() {
            report.push(format!(
                "request {} ({}):\n{}",
                i + 1,
                line_summary(p),
                diffs.join("\n")
            ));
        }
    }
    if python.len() != rust.len() {
        report.push(format!(
            "python made {} requests, rust {}; first extra: {}",
            python.len(),
            rust.len(),
            python
                .get(rust.len())
                .or(rust.get(python.len()))
                .map(line_summary)
                .unwrap_or_default()
        ));
    }
    // After a missing or extra request every later line differs too: show the first few.
    let shown = report.len().min(8);
    assert!(
        report.is_empty(),
        "the journals differ at {} of {} requests; the first {shown}:\n{}",
        report.len(),
        python.len(),
        report[..shown].join("\n")
    );
    assert!(
        python.len() >= 40,
        "the sequence is unexpectedly short: {} requests",
        python.len()
    );
}

// ---- Cloud-to-device messages over AMQP -------------------------------------------------
//
// `tests/python/wire_c2d.py` sends a fixed sequence of messages with
// `IoTHubRegistryManager.send_c2d_message` (uamqp) to one emulator; [`rust_c2d_sends`] sends
// the same messages with `iothub_c2d::C2dClient` to a second one. The journals' AMQP lines
// (one per transfer on `/messages/devicebound`) must match one for one in: link, `to`,
// message id, correlation id, user id, content type, content encoding, absolute expiry time,
// application properties (including `iothub-ack`), body size and outcome.
//
// Normalisation: a message id is replaced by `<uuid>` only when both sides generated one (a
// UUID), since each client makes a fresh one. Nothing else is normalised.

const C2D_DEVICE: &str = "wfc-dev";
/// 2100-01-01T00:00:00Z in milliseconds since the Unix epoch.
const C2D_EXPIRY_MS: u64 = 4_102_444_800_000;

/// The sequence of `tests/python/wire_c2d.py`, message for message.
async fn rust_c2d_sends(client: &C2dClient) -> Result<(), iothub_c2d::Error> {
    // 1: a text body and nothing else (the client makes a UUID message id)
    client.send(C2D_DEVICE, C2dMessage::new("hello")).await?;
    // 2: every system property the Python SDK maps, feedback, application properties
    let expiry = UNIX_EPOCH + Duration::from_millis(C2D_EXPIRY_MS);
    client
        .send(
            C2D_DEVICE,
            C2dMessage::new(r#"{"cmd":"reboot","delay":5}"#)
                .with_message_id("wfc-m2")
                .with_correlation_id("wfc-c2")
                .with_content_type("application/json")
                .with_content_encoding("utf-8")
                .with_expiry_time(expiry)
                .with_ack(Ack::Full)
                .with_property("priority", "high")
                .with_property("n", "5"),
        )
        .await?;
    // 3: a binary body with negative feedback
    client
        .send(
            C2D_DEVICE,
            C2dMessage::new(vec![0u8, 1, 2, 255])
                .with_message_id("wfc-m3")
                .with_ack(Ack::Negative)
                .with_property("k", "v"),
        )
        .await?;
    // 4: positive feedback and an empty-string property
    client
        .send(
            C2D_DEVICE,
            C2dMessage::new("4")
                .with_message_id("wfc-m4")
                .with_ack(Ack::Positive)
                .with_property("empty", ""),
        )
        .await?;
    // 5: an unknown device is refused
    let refused = client
        .send(
            "wfc-missing",
            C2dMessage::new("nobody").with_message_id("wfc-m5"),
        )
        .await;
    match refused {
        Err(e) if e.is_device_not_found() => {}
        other => panic!("a send to an unknown device should be DeviceNotFound, got {other:?}"),
    }
    // 6: still usable after the refusal
    client
        .send(
            C2D_DEVICE,
            C2dMessage::new("after")
                .with_message_id("wfc-m6")
                .with_correlation_id("wfc-c6"),
        )
        .await?;
    Ok(())
}

fn is_uuid(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
    })
}

/// The AMQP devicebound lines of a journal.
fn amqp_lines(journal: Vec<Value>) -> Vec<Value> {
    journal
        .into_iter()
        .filter(|l| l["protocol"] == "amqp")
        .collect()
}

/// The compared part of an AMQP journal line: link, every property, body size, outcome.
fn c2d_comparable(line: &Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("link".into(), line["link"].clone());
    if let Value::Object(props) = &line["properties"] {
        for (k, v) in props {
            out.insert(k.clone(), v.clone());
        }
    } else {
        out.insert("properties".into(), line["properties"].clone());
    }
    out.insert("bodyBytes".into(), line["bodyBytes"].clone());
    out.insert("outcome".into(), line["outcome"].clone());
    Value::Object(out)
}

async fn python_c2d_journal(dir: &Path) -> Vec<Value> {
    let journal = dir.join("python-c2d.jsonl");
    let hub = Hub::start_with_journal(&journal).await;
    let script = tests_dir().join("python").join("wire_c2d.py");
    let out = run_script(
        &python(),
        &[script.into_os_string()],
        &tests_dir().join("python"),
        &hub.script_env(),
    )
    .await;
    hub.shutdown().await;
    assert_success("python wire_c2d.py", &out);
    amqp_lines(read_journal(&journal))
}

async fn rust_c2d_journal(dir: &Path) -> Vec<Value> {
    let journal = dir.join("rust-c2d.jsonl");
    let hub = Hub::start_with_journal(&journal).await;
    let rm = RegistryManager::builder()
        .connection_string(&hub.connection_string())
        .add_root_certificate_file(hub.ca_path())
        .build()
        .expect("build the RegistryManager");
    rm.create_device_with_sas(C2D_DEVICE, PK, SK, DeviceStatus::Enabled)
        .await
        .expect("create the device");
    let client = C2dClient::builder()
        .connection_string(&hub.connection_string())
        .amqps_port(hub.amqps_port())
        .add_root_certificate_file(hub.ca_path())
        // One attempt per connection, so the journal holds exactly the sends made.
        .retry_policy(iothub_c2d::RetryPolicy::none())
        .build()
        .expect("build the C2dClient");
    let result = rust_c2d_sends(&client).await;
    client.close().await;
    hub.shutdown().await;
    if let Err(e) = result {
        panic!("the Rust C2D sequence failed: {e:?}");
    }
    amqp_lines(read_journal(&journal))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_c2d_sends_what_the_python_sdk_sends() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (python, rust) = tokio::join!(python_c2d_journal(dir.path()), rust_c2d_journal(dir.path()));

    let mut report = Vec::new();
    for (i, (p, r)) in python.iter().zip(rust.iter()).enumerate() {
        let (mut p, mut r) = (c2d_comparable(p), c2d_comparable(r));
        if is_uuid(&p["messageId"]) && is_uuid(&r["messageId"]) {
            p["messageId"] = json!("<uuid>");
            r["messageId"] = json!("<uuid>");
        }
        let diffs = differences(&p, &r);
        if !diffs.is_empty() {
            report.push(format!("message {}:\n{}", i + 1, diffs.join("\n")));
        }
    }
    if python.len() != rust.len() {
        report.push(format!(
            "python sent {} messages, rust {}",
            python.len(),
            rust.len()
        ));
    }
    assert!(
        report.is_empty(),
        "the AMQP journals differ:\n{}\npython: {python:#?}\nrust: {rust:#?}",
        report.join("\n")
    );
    assert_eq!(
        python.len(),
        6,
        "the sequence sends six messages: {python:#?}"
    );
    let outcomes: Vec<&str> = python
        .iter()
        .map(|l| l["outcome"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "accepted",
            "accepted",
            "accepted",
            "accepted",
            "rejected:DeviceNotFound",
            "accepted"
        ],
        "outcomes"
    );
}
