//! Generated types against sample IoT Hub bodies, and the request hooks against a
//! loopback HTTP server.

use iothub_auth::{HubCredential, SharedAccessKey};
use iothub_rest::{Client, ClientState, Error, types};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn decodes_never_set_timestamps_and_free_form_twins() {
    let twin: types::Twin = serde_json::from_value(json!({
        "deviceId": "d1", "etag": "AAAAAAAAAAE=", "version": 3, "status": "enabled",
        "statusUpdateTime": "0001-01-01T00:00:00", "connectionState": "Disconnected",
        "lastActivityTime": "0001-01-01T00:00:00", "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas", "tags": {"a": {"b": [1, 2]}},
        "properties": {"desired": {"x": null, "$version": 2}, "reported": {"$version": 1}},
        "capabilities": {"iotEdge": false}, "someFutureField": 1
    }))
    .unwrap();
    assert_eq!(twin.device_id.as_deref(), Some("d1"));
    assert_eq!(twin.tags["a"]["b"], json!([1, 2]));
    let props = twin.properties.unwrap();
    assert_eq!(props.desired["$version"], json!(2));
    assert!(props.desired["x"].is_null());
}

#[test]
fn decodes_both_error_shapes_and_method_payloads() {
    let a: types::ErrorDetails = serde_json::from_value(json!({
        "Message": "ErrorCode:DeviceNotFound;nope", "ExceptionMessage": "Tracking ID:abc"
    }))
    .unwrap();
    assert!(format!("{a:?}").contains("DeviceNotFound"));
    let b: types::ErrorDetails = serde_json::from_value(json!({
        "errorCode": 404103, "trackingId": "t", "timestampUtc": "2024-01-01T00:00:00Z", "info": null
    }))
    .unwrap();
    assert!(format!("{b:?}").contains("404103"));
    for payload in [json!("text"), json!(null), json!(3), json!({"k": [1]})] {
        let r: types::CloudToDeviceMethodResult =
            serde_json::from_value(json!({"status": 200, "payload": payload})).unwrap();
        assert_eq!(r.status, Some(200));
    }
    let c: types::Configuration =
        serde_json::from_value(json!({"id": "c1", "labels": null})).unwrap();
    assert_eq!(c.id.as_deref(), Some("c1"));
}

#[test]
fn job_pages_decode_in_both_shapes_and_job_uris_hide_their_tokens() {
    let array: types::JobQueryPage =
        serde_json::from_value(json!([{"jobId": "a", "status": "running"}])).unwrap();
    assert!(matches!(array, types::JobQueryPage::Array(ref jobs) if jobs.len() == 1));
    let object: types::JobQueryPage = serde_json::from_value(json!({
        "type": "jobResponse", "items": [{"jobId": "b"}], "continuationToken": "t"
    }))
    .unwrap();
    match object {
        types::JobQueryPage::JobQueryResult(page) => {
            assert_eq!(page.items[0].job_id.as_deref(), Some("b"));
            assert_eq!(page.continuation_token.as_deref(), Some("t"));
        }
        other => panic!("{other:?}"),
    }
    let job: types::JobProperties = serde_json::from_value(json!({
        "jobId": "j", "type": "export", "progress": 10,
        "outputBlobContainerUri": "https://a.blob.core.windows.net/c?sv=1&sig=c2VjcmV0",
        "endTimeUtc": "0001-01-01T00:00:00"
    }))
    .unwrap();
    let shown = format!("{job:?}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    assert!(
        shown.contains("https://a.blob.core.windows.net/c?<redacted>"),
        "{shown}"
    );
    assert_eq!(
        serde_json::to_value(&job).unwrap()["outputBlobContainerUri"],
        "https://a.blob.core.windows.net/c?sv=1&sig=c2VjcmV0"
    );
}

#[test]
fn import_modes_serialize_with_wire_names() {
    let modes = [
        (types::ImportMode::Create, "create"),
        (
            types::ImportMode::CreateOrUpdateIfMatchETag,
            "createOrUpdateIfMatchETag",
        ),
        (
            types::ImportMode::UpdateTwinIfMatchETag,
            "updateTwinIfMatchETag",
        ),
        (types::ImportMode::DeleteIfMatchETag, "deleteIfMatchETag"),
    ];
    for (mode, wire) in modes {
        assert_eq!(serde_json::to_value(mode).unwrap(), json!(wire));
    }
}

/// Serves one canned response and returns the raw request text.
async fn one_shot(status_line: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let response = format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\netag: \"MQ==\"\r\n\
         x-ms-continuation: tok\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= head_end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8(request).unwrap()
    });
    (format!("http://{addr}"), task)
}

fn credential() -> HubCredential {
    let key = SharedAccessKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
    HubCredential::shared_access_key("localhost:8443", Some("iothubowner"), key)
}

#[tokio::test]
async fn hooks_add_api_version_and_authorization() {
    let (base, server) = one_shot("200 OK", r#"[{"deviceId":"d1"}]"#).await;
    let client = Client::from_credential(&base, credential());
    let spec = types::QuerySpecification {
        query: "SELECT * FROM devices".into(),
    };
    let page = client
        .query_get_twins(None, Some("10"), &spec)
        .await
        .unwrap();
    assert_eq!(page.headers()["x-ms-continuation"], "tok");
    let item = &page.into_inner()[0];
    assert_eq!(item.json(), r#"{"deviceId":"d1"}"#);
    let twin: types::Twin = item.decode().unwrap();
    assert_eq!(twin.device_id.as_deref(), Some("d1"));
    let request = server.await.unwrap();
    let lower = request.to_ascii_lowercase();
    assert!(
        request.starts_with("POST /devices/query?api-version=2024-03-31 HTTP/1.1"),
        "{request}"
    );
    assert!(lower.contains("authorization: sharedaccesssignature sr=localhost%3a8443&sig="));
    assert!(lower.contains("x-ms-max-item-count: 10"));
    assert!(
        !lower.contains("\r\napi-version:"),
        "no api-version header: {request}"
    );
}

#[tokio::test]
async fn documented_errors_are_typed() {
    let (base, server) = one_shot(
        "404 Not Found",
        r#"{"Message":"ErrorCode:DeviceNotFound;Device d9 not found","ExceptionMessage":"Tracking ID:1"}"#,
    )
    .await;
    // Pinned to the previous api-version, which IoT Hub still serves.
    let client = Client::from_reqwest(
        &base,
        reqwest::Client::new(),
        ClientState::new(credential()).with_api_version(iothub_rest::API_VERSION_2021_04_12),
    );
    match client.devices_get_identity("d9").await {
        Err(Error::ErrorResponse(rv)) => {
            assert_eq!(rv.status().as_u16(), 404);
            assert!(format!("{:?}", rv.into_inner()).contains("DeviceNotFound"));
        }
        other => panic!("expected a typed 404, got {other:?}"),
    }
    assert!(
        server
            .await
            .unwrap()
            .starts_with("GET /devices/d9?api-version=2021-04-12")
    );
}

#[tokio::test]
async fn non_json_error_bodies_keep_status_and_headers() {
    let (base, server) = one_shot("503 Service Unavailable", "<html>gateway busy</html>").await;
    let client = Client::from_credential(&base, credential());
    match client.devices_get_twin("d1").await {
        Err(Error::ErrorResponse(rv)) => {
            assert_eq!(rv.status().as_u16(), 503);
            assert_eq!(rv.headers()["etag"], "\"MQ==\"");
            let message = rv.into_inner().message.unwrap_or_default();
            assert_eq!(
                message,
                "ErrorCode:ServiceUnavailable;<html>gateway busy</html>"
            );
        }
        other => panic!("expected a typed 503, got {other:?}"),
    }
    server.await.unwrap();
}

#[test]
fn identity_debug_output_hides_device_keys() {
    let device: types::Device = serde_json::from_value(json!({
        "deviceId": "d1",
        "authentication": {"type": "sas", "symmetricKey": {
            "primaryKey": "cHJpbWFyeS1zZWNyZXQta2V5LTAx", "secondaryKey": "c2Vjb25kYXJ5LXNlY3JldA=="}}
    }))
    .unwrap();
    let shown = format!("{device:?}");
    assert!(
        !shown.contains("cHJpbWFy") && !shown.contains("c2Vjb25k"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"));
    let back = serde_json::to_value(&device).unwrap();
    assert_eq!(
        back["authentication"]["symmetricKey"]["primaryKey"],
        "cHJpbWFyeS1zZWNyZXQta2V5LTAx"
    );
}

#[tokio::test]
async fn partial_key_regeneration_is_a_success_value_and_hides_keys() {
    let (base, server) = one_shot(
        "207 Multi-Status",
        r#"{"policyKey":"primaryKey","rotatedKeys":[{"id":"d1","primaryKey":"bmV3","secondaryKey":"b2xk"}],"errors":[{"id":"d2","errorCode":"DeviceNotFound","errorStatus":"no such device"}]}"#,
    )
    .await;
    let client = Client::from_credential(&base, credential());
    let body = types::BulkRegenerateDeviceKey {
        policy_key: Some(types::RegenerateKeyPolicy::PrimaryKey),
        devices: vec![
            types::RegenerateDeviceKey {
                id: "d1".into(),
                module_id: None,
            },
            types::RegenerateDeviceKey {
                id: "d2".into(),
                module_id: None,
            },
        ],
    };
    let result = client
        .service_bulk_regenerate_device_key(&body)
        .await
        .expect("207 is a success status");
    assert_eq!(result.status().as_u16(), 207);
    let result = result.into_inner();
    assert_eq!(result.rotated_keys.len(), 1);
    assert_eq!(result.rotated_keys[0].primary_key.as_deref(), Some("bmV3"));
    assert_eq!(
        result.errors[0].error_code.as_deref(),
        Some("DeviceNotFound")
    );
    let shown = format!("{result:?}");
    assert!(
        !shown.contains("bmV3") && !shown.contains("b2xk"),
        "{shown}"
    );
    let request = server.await.unwrap();
    assert!(
        request.starts_with("POST /devices/keys/regenerate?api-version=2024-03-31 HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.ends_with(r#"{"devices":[{"id":"d1"},{"id":"d2"}],"policyKey":"primaryKey"}"#),
        "{request}"
    );
}
