//! Request shapes and error paths against a scripted HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::TryStreamExt as _;
use iothub_registry::{
    AuthenticationMechanism, CloudToDeviceMethod, DeviceStatus, ETag, ErrorCode,
    ExportImportDevice, ImportMode, RegistryManager, RetryPolicy, Twin, TwinPatch,
};
use serde_json::json;
use wiremock::matchers::{body_json, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CS: &str = "HostName=myhub.example;SharedAccessKeyName=iothubowner;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
        .with_max_attempts(4)
}

async fn setup() -> (MockServer, RegistryManager) {
    let server = MockServer::start().await;
    let rm = RegistryManager::builder()
        .connection_string(CS)
        .endpoint(server.uri())
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    (server, rm)
}

fn device_json(id: &str, etag: &str) -> serde_json::Value {
    json!({"deviceId": id, "etag": etag, "status": "enabled", "generationId": "g1",
           "connectionState": "Disconnected", "lastActivityTime": "0001-01-01T00:00:00",
           "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "AAAA", "secondaryKey": "BBBB"}},
           "capabilities": {"iotEdge": false}})
}

fn error(status: u16, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("iothub-errorcode", name)
        .set_body_json(json!({
            "Message": format!("ErrorCode:{name};something about it"),
            "ExceptionMessage": "Tracking ID:abc123-G:0-TimeStamp:01/01/2024 00:00:00"
        }))
}

/// Answers from a list in order, repeating the last one.
struct Sequence(Vec<ResponseTemplate>, AtomicUsize);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.1.fetch_add(1, Ordering::SeqCst);
        self.0[i.min(self.0.len() - 1)].clone()
    }
}

fn sequence(responses: Vec<ResponseTemplate>) -> Sequence {
    Sequence(responses, AtomicUsize::new(0))
}

#[tokio::test]
async fn create_device_sends_python_body_and_auth() {
    let (server, rm) = setup().await;
    Mock::given(method("PUT"))
        .and(path("/devices/dev1"))
        .and(query_param("api-version", "2024-03-31"))
        .and(header_exists("authorization"))
        .and(body_json(json!({
            "deviceId": "dev1", "status": "enabled",
            "authentication": {"symmetricKey": {"primaryKey": "AAAA", "secondaryKey": "BBBB"}, "type": "sas"},
            "capabilities": {"iotEdge": false}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(device_json("dev1", "MQ==")))
        .expect(1)
        .mount(&server)
        .await;
    let device = rm
        .create_device_with_sas("dev1", "AAAA", "BBBB", DeviceStatus::Enabled)
        .await
        .unwrap();
    assert_eq!(device.device_id, "dev1");
    assert_eq!(device.etag, ETag::new("MQ=="));
    assert_eq!(device.status, Some(DeviceStatus::Enabled));
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("if-match").is_none());
    let auth = requests[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(auth.starts_with("SharedAccessSignature sr=myhub.example&sig="));
}

#[tokio::test]
async fn update_and_delete_quote_if_match() {
    let (server, rm) = setup().await;
    Mock::given(method("PUT"))
        .and(path("/devices/dev1"))
        .and(header("if-match", "\"MQ==\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(device_json("dev1", "Mg==")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/devices/dev1"))
        .and(header("if-match", "\"*\""))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/devices/dev1/modules/m1"))
        .and(header("if-match", "\"Mg==\""))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let d = rm
        .update_device_with_sas(
            "dev1",
            ETag::new("MQ=="),
            "AAAA",
            "BBBB",
            DeviceStatus::Enabled,
        )
        .await
        .unwrap();
    rm.delete_device("dev1").await.unwrap();
    rm.delete_module("dev1", "m1").etag(&d.etag).await.unwrap();
}

#[tokio::test]
async fn stale_etag_is_precondition_failed_and_not_retried() {
    let (server, rm) = setup().await;
    Mock::given(method("PATCH"))
        .and(path("/twins/dev1"))
        .respond_with(error(412, "PreconditionFailed"))
        .expect(1)
        .mount(&server)
        .await;
    let patch = TwinPatch::new().desired(json!({"a": 1})).unwrap();
    let err = rm
        .update_twin("dev1", patch)
        .etag(ETag::new("old"))
        .await
        .unwrap_err();
    assert!(err.is_precondition_failed());
    let service = err.service_error().unwrap();
    assert_eq!(service.code, ErrorCode::PreconditionFailed);
    assert_eq!(service.code.number(), Some(412001));
    assert_eq!(service.tracking_id.as_deref(), Some("abc123"));
    assert_eq!(service.message, "something about it");
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/devices/dev1"))
        .respond_with(sequence(vec![
            error(429, "ThrottlingException").insert_header("retry-after-ms", "30"),
            error(429, "ThrottlingBacklogTimeout"),
            ResponseTemplate::new(200).set_body_json(device_json("dev1", "MQ==")),
        ]))
        .expect(3)
        .mount(&server)
        .await;
    let device = rm.get_device("dev1").await.unwrap();
    assert_eq!(device.device_id, "dev1");
}

#[tokio::test]
async fn gateway_errors_without_json_bodies_are_classified_and_retried() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/devices/dev1"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(503).set_body_string("<html>upstream busy</html>"),
            ResponseTemplate::new(429).insert_header("retry-after", "0"),
            ResponseTemplate::new(200).set_body_json(device_json("dev1", "MQ==")),
        ]))
        .expect(3)
        .mount(&server)
        .await;
    assert_eq!(rm.get_device("dev1").await.unwrap().device_id, "dev1");

    Mock::given(method("GET"))
        .and(path("/devices/dev2"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&server)
        .await;
    let err = rm
        .with_retry_policy(RetryPolicy::disabled())
        .get_device("dev2")
        .await
        .unwrap_err();
    let service = err
        .service_error()
        .expect("a service error with its status");
    assert_eq!(service.status, 502);
}

#[tokio::test]
async fn throttling_gives_up_after_max_attempts_with_typed_error() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/statistics/devices"))
        .respond_with(error(429, "ThrottlingException").insert_header("retry-after", "0"))
        .expect(4)
        .mount(&server)
        .await;
    let err = rm.get_device_registry_statistics().await.unwrap_err();
    assert!(err.is_throttled());
    assert_eq!(err.code(), Some(&ErrorCode::ThrottlingException));
    assert_eq!(err.code().unwrap().number(), Some(429001));
}

#[tokio::test]
async fn create_is_not_retried_on_503_but_get_is() {
    let (server, rm) = setup().await;
    Mock::given(method("PUT"))
        .and(path("/devices/dev1"))
        .respond_with(error(503, "ServiceUnavailable"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/devices/dev1"))
        .respond_with(sequence(vec![
            error(503, "ServiceUnavailable"),
            ResponseTemplate::new(200).set_body_json(device_json("dev1", "MQ==")),
        ]))
        .expect(2)
        .mount(&server)
        .await;
    let err = rm
        .create_device_with_certificate_authority("dev1", DeviceStatus::Enabled)
        .await
        .unwrap_err();
    assert_eq!(err.service_error().unwrap().status, 503);
    rm.get_device("dev1").await.unwrap();
}

#[tokio::test]
async fn disabled_retries_make_one_attempt() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/twins/dev1"))
        .respond_with(error(429, "ThrottlingException"))
        .expect(1)
        .mount(&server)
        .await;
    let err = rm
        .with_retry_policy(RetryPolicy::disabled())
        .get_twin("dev1")
        .await
        .unwrap_err();
    assert!(err.is_throttled());
}

#[tokio::test]
async fn malformed_success_body_is_invalid_response() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/devices/dev1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    let err = rm.get_device("dev1").await.unwrap_err();
    match err {
        iothub_registry::Error::InvalidResponse { body, .. } => assert_eq!(body, "not json"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn attempt_timeout_is_a_timeout_error() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/devices/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(device_json("slow", "MQ=="))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let rm = rm
        .with_attempt_timeout(Duration::from_millis(100))
        .with_retry_policy(fast_retries().with_max_attempts(2));
    let err = rm.get_device("slow").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(matches!(
        err,
        iothub_registry::Error::Timeout { attempts: 2, .. }
    ));
}

#[tokio::test]
async fn direct_method_bodies_and_device_not_online() {
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/twins/dev1/modules/mod1/methods"))
        .and(body_json(json!({"methodName": "m", "payload": ""})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": 200, "payload": {"ok": true}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let inner = json!({"errorCode": 404103, "trackingId": "t-1", "message": "Timed out waiting for device to connect.", "info": {}, "timestampUtc": "2024-01-01T00:00:00Z"});
    Mock::given(method("POST"))
        .and(path("/twins/dev1/methods"))
        .and(body_json(json!({"methodName": "reboot", "payload": {"x": 1}, "responseTimeoutInSeconds": 30, "connectTimeoutInSeconds": 5})))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"Message": inner.to_string(), "ExceptionMessage": ""})))
        .expect(1)
        .mount(&server)
        .await;
    let answer = rm
        .invoke_device_module_method("dev1", "mod1", CloudToDeviceMethod::new("m"))
        .await
        .unwrap();
    assert_eq!(answer.status, Some(200));
    let call = CloudToDeviceMethod::new("reboot")
        .payload(json!({"x": 1}))
        .response_timeout_in_seconds(30)
        .connect_timeout_in_seconds(5);
    let err = rm.invoke_device_method("dev1", &call).await.unwrap_err();
    assert!(err.is_device_not_online());
    assert_eq!(err.code().unwrap().number(), Some(404103));
    assert_eq!(
        err.service_error().unwrap().tracking_id.as_deref(),
        Some("t-1")
    );
}

#[tokio::test]
async fn query_pages_follow_continuation_and_stop_on_repeat() {
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/devices/query"))
        .and(header("x-ms-continuation", "tok1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-item-type", "Twin")
                .insert_header("x-ms-continuation", "tok1")
                .set_body_json(json!([{"deviceId": "d2", "etag": "Mg=="}])),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/devices/query"))
        .and(header("x-ms-max-item-count", "1"))
        .and(body_json(json!({"query": "SELECT * FROM devices"})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-item-type", "Twin")
                .insert_header("x-ms-continuation", "tok1")
                .set_body_json(
                    json!([{"deviceId": "d1", "etag": "MQ==", "tags": {"a": {"b": 1}}}]),
                ),
        )
        .mount(&server)
        .await;

    // Nothing is sent before the stream is polled.
    let stream = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(1)
        .into_stream();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(server.received_requests().await.unwrap().is_empty());

    let twins: Vec<Twin> = stream.try_collect().await.unwrap();
    let ids: Vec<_> = twins.iter().map(|t| t.device_id.clone().unwrap()).collect();
    assert_eq!(ids, ["d1", "d2"]);
    assert_eq!(twins[0].tags["a"]["b"], 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let page = rm
        .query_iot_hub("SELECT * FROM devices")
        .page_size(1)
        .await
        .unwrap();
    assert_eq!(page.item_type.as_deref(), Some("Twin"));
    assert_eq!(page.continuation_token.as_deref(), Some("tok1"));
}

#[tokio::test]
async fn bulk_single_call_returns_partial_failure_as_ok() {
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/devices"))
        .and(body_json(json!([{"id": "bulk1", "importMode": "create", "status": "enabled",
            "authentication": {"symmetricKey": {"primaryKey": "", "secondaryKey": ""}, "type": "sas"}}])))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "isSuccessful": false,
            "errors": [{"deviceId": "bulk1", "errorCode": "DeviceAlreadyExists", "errorStatus": "exists"}],
            "warnings": []
        })))
        .mount(&server)
        .await;
    let result = rm
        .bulk_create_or_update_devices(&[ExportImportDevice {
            id: "bulk1".into(),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(AuthenticationMechanism::sas("", "")),
            ..Default::default()
        }])
        .await
        .unwrap();
    assert!(!result.is_successful);
    assert_eq!(result.errors[0].code(), ErrorCode::DeviceAlreadyExists);
}

/// Fails entries whose id ends in "bad", throttles every third request once.
struct BulkResponder(AtomicUsize);

impl Respond for BulkResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if n % 3 == 1 {
            return error(429, "ThrottlingException").insert_header("retry-after-ms", "5");
        }
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&request.body).unwrap();
        assert!(entries.len() <= 100);
        let errors: Vec<_> = entries
            .iter()
            .filter_map(|e| e["id"].as_str())
            .filter(|id| id.ends_with("bad"))
            .map(|id| json!({"deviceId": id, "errorCode": "ArgumentInvalid", "errorStatus": "bad"}))
            .collect();
        let status = if errors.is_empty() { 200 } else { 400 };
        ResponseTemplate::new(status).set_body_json(json!({
            "isSuccessful": errors.is_empty(), "errors": errors, "warnings": []
        }))
    }
}

#[tokio::test]
async fn chunked_bulk_aggregates_and_reports_progress() {
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/devices"))
        .respond_with(BulkResponder(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    let devices = (0..250).map(|i| ExportImportDevice {
        id: if i == 7 || i == 180 {
            format!("d{i}-bad")
        } else {
            format!("d{i}")
        },
        import_mode: Some(ImportMode::Create),
        ..Default::default()
    });
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let outcome = rm
        .bulk_create_or_update_devices_chunked(devices)
        .concurrency(2)
        .on_progress(move |p| seen2.lock().unwrap().push(p))
        .await
        .unwrap();
    assert!(!outcome.is_successful());
    assert!(outcome.failed_chunks.is_empty());
    assert_eq!(outcome.requests, 3);
    let mut failed = outcome.failed_device_ids();
    failed.sort();
    assert_eq!(failed, ["d180-bad", "d7-bad"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let last = seen.iter().max_by_key(|p| p.done).unwrap();
    assert_eq!((last.done, last.total), (250, 250));
    assert_eq!(seen.iter().map(|p| p.failed).max(), Some(2));
}

#[tokio::test]
async fn a_slow_direct_method_is_not_cut_short_by_the_total_deadline() {
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/twins/dev1/methods"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": 200, "payload": {"done": true}}))
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let rm =
        rm.with_retry_policy(fast_retries().with_total_timeout(Some(Duration::from_millis(300))));
    let method_call = CloudToDeviceMethod::new("slow").response_timeout_in_seconds(5);
    let answer = rm.invoke_device_method("dev1", &method_call).await.unwrap();
    assert_eq!(answer.status, Some(200));
}

#[test]
fn custom_http_client_with_client_options_is_a_config_error() {
    let conflicting = RegistryManager::builder()
        .connection_string(CS)
        .http_client(reqwest::Client::new())
        .add_root_certificate_pem(b"not read".to_vec())
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap_err();
    match conflicting {
        iothub_registry::Error::Config(iothub_registry::ConfigError::ConflictingOptions {
            options,
        }) => {
            assert!(options.contains("root certificates"), "{options}");
            assert!(options.contains("connect_timeout"), "{options}");
        }
        other => panic!("expected ConflictingOptions, got {other:?}"),
    }
    // The HTTP client alone, with options that are not the client's, is fine.
    RegistryManager::builder()
        .connection_string(CS)
        .http_client(reqwest::Client::new())
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
}

#[tokio::test]
async fn chunked_bulk_refuses_bad_options_before_sending() {
    let (server, rm) = setup().await;
    let entry = ExportImportDevice {
        id: "d".into(),
        import_mode: Some(ImportMode::Create),
        ..Default::default()
    };
    for request in [
        rm.bulk_create_or_update_devices_chunked([entry.clone()])
            .chunk_size(0),
        rm.bulk_create_or_update_devices_chunked([entry.clone()])
            .chunk_size(101),
        rm.bulk_create_or_update_devices_chunked([entry.clone()])
            .concurrency(0),
    ] {
        let err = request.await.unwrap_err();
        assert!(
            matches!(err, iothub_registry::Error::InvalidRequest { .. }),
            "{err:?}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn chunked_bulk_where_every_chunk_failed_is_an_error() {
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/devices"))
        .respond_with(error(401, "IotHubUnauthorizedAccess"))
        .mount(&server)
        .await;
    let entries = (0..3).map(|i| ExportImportDevice {
        id: format!("d{i}"),
        import_mode: Some(ImportMode::Create),
        ..Default::default()
    });
    let err = rm
        .bulk_create_or_update_devices_chunked(entries)
        .chunk_size(1)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
}

#[tokio::test]
async fn service_statistics_decode_connected_devices() {
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/statistics/service"))
        .and(query_param("api-version", "2024-03-31"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"connectedDeviceCount": 3})))
        .expect(1)
        .mount(&server)
        .await;
    let stats = rm.get_service_statistics().await.unwrap();
    assert_eq!(stats.connected_device_count, 3);
}

#[cfg(feature = "token-credential")]
#[tokio::test]
async fn failing_token_credential_is_an_auth_error_with_its_source() {
    use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};

    #[derive(Debug)]
    struct Refusing;
    #[async_trait::async_trait]
    impl TokenCredential for Refusing {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Err(azure_core::Error::new(
                azure_core::error::ErrorKind::Credential,
                "tenant says no",
            ))
        }
    }

    let server = MockServer::start().await;
    let rm = RegistryManager::builder()
        .token_credential("myhub.example", Arc::new(Refusing))
        .endpoint(server.uri())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .unwrap();
    let err = rm.get_device("dev1").await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    let source = std::error::Error::source(&err).expect("the credential's error");
    assert!(
        source.downcast_ref::<iothub_auth::AuthError>().is_some(),
        "{source:?}"
    );
    // The chain reaches the credential's own message.
    let mut chain = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    assert!(
        chain.iter().any(|m| m.contains("tenant says no")),
        "{chain:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Ids a REST path cannot address are refused before any request: `..` would reach the
/// parent resource (a module call would land on the device).
#[tokio::test]
async fn dot_ids_are_refused_before_sending() {
    let (server, rm) = setup().await;
    for (device, module) in [("..", None), (".", None), ("", None), ("d1", Some(".."))] {
        let err = match module {
            Some(m) => rm.delete_module(device, m).await.err(),
            None => rm.get_device(device).await.err(),
        };
        assert!(
            matches!(err, Some(iothub_registry::Error::InvalidRequest { .. })),
            "{device}/{module:?}: {err:?}"
        );
    }
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

// ---- jobs ------------------------------------------------------------------------------

const IN_SAS: &str =
    "https://acct.blob.core.windows.net/in?sv=2022-11-02&sp=rl&sig=SU5QVVRTRUNSRVQ%3D";
const OUT_SAS: &str =
    "https://acct.blob.core.windows.net/out?sv=2022-11-02&sp=rwdl&sig=T1VUUFVUU0VDUkVU";

fn export_job_json(status: &str, progress: i32) -> serde_json::Value {
    json!({"jobId": "ie-1", "type": "export", "status": status, "progress": progress,
           "outputBlobContainerUri": OUT_SAS, "excludeKeysInExport": true,
           "startTimeUtc": "2024-05-06T07:08:09.1234567Z", "endTimeUtc": "0001-01-01T00:00:00"})
}

fn scheduled_job_json(status: &str, succeeded: i32, pending: i32) -> serde_json::Value {
    json!({"jobId": "sj-1", "type": "scheduleDeviceMethod", "status": status,
           "queryCondition": "tags.site = 'b4'", "createdTime": "2024-05-06T07:08:09Z",
           "startTime": "2024-05-06T07:08:09Z", "maxExecutionTimeInSeconds": 3600,
           "cloudToDeviceMethod": {"methodName": "reboot", "payload": "", "responseTimeoutInSeconds": 30},
           "deviceJobStatistics": {"deviceCount": 2, "failedCount": 0, "succeededCount": succeeded,
                                   "runningCount": 0, "pendingCount": pending}})
}

#[tokio::test]
async fn import_export_jobs_send_the_python_requests() {
    use iothub_registry::{JobProperties, JobStatus, JobType};
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/jobs/create"))
        .and(query_param("api-version", "2024-03-31"))
        .and(header_exists("authorization"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"type": "export", "outputBlobContainerUri": OUT_SAS,
                              "excludeKeysInExport": true}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(export_job_json("enqueued", 0)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/jobs/create"))
        .and(body_json(
            json!({"type": "import", "inputBlobContainerUri": IN_SAS,
                              "outputBlobContainerUri": OUT_SAS, "inputBlobName": "fleet.txt",
                              "includeConfigurations": true}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"jobId": "ie-2", "type": "import", "status": "enqueued",
                   "inputBlobContainerUri": IN_SAS, "outputBlobContainerUri": OUT_SAS}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jobs"))
        .and(query_param("api-version", "2024-03-31"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([export_job_json("completed", 100)])),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jobs/ie-1"))
        .and(query_param("api-version", "2024-03-31"))
        .respond_with(ResponseTemplate::new(200).set_body_json(export_job_json("running", 40)))
        .expect(1)
        .mount(&server)
        .await;
    // IoT Hub answers a cancel with 204, or with 200 and a body nobody reads.
    Mock::given(method("DELETE"))
        .and(path("/jobs/ie-1"))
        .and(query_param("api-version", "2024-03-31"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(204),
            ResponseTemplate::new(200).set_body_json(json!({"anything": true})),
        ]))
        .expect(2)
        .mount(&server)
        .await;

    let job = rm
        .create_import_export_job(JobProperties::export(OUT_SAS).exclude_keys_in_export(true))
        .await
        .unwrap();
    assert_eq!(job.job_id, "ie-1");
    assert_eq!(job.job_type, JobType::Export);
    assert_eq!(job.status, JobStatus::Enqueued);
    assert_eq!(job.output_blob_container_uri.as_deref(), Some(OUT_SAS));
    assert_eq!(
        job.start_time_utc.unwrap().to_rfc3339(),
        "2024-05-06T07:08:09.123456700+00:00"
    );
    assert_eq!(job.end_time_utc, None, "the never-set time is no time");

    let import = JobProperties::import(IN_SAS, OUT_SAS)
        .input_blob_name("fleet.txt")
        .include_configurations(true);
    assert_eq!(
        rm.create_import_export_job(import).await.unwrap().job_id,
        "ie-2"
    );

    let jobs = rm.get_import_export_jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Completed);
    assert_eq!(jobs[0].progress, 100);

    let job = rm.get_import_export_job("ie-1").await.unwrap();
    assert_eq!((job.status, job.progress), (JobStatus::Running, 40));

    rm.cancel_import_export_job("ie-1").await.unwrap();
    rm.cancel_import_export_job("ie-1").await.unwrap();
}

#[tokio::test]
async fn scheduled_jobs_send_the_python_requests() {
    use iothub_registry::{JobRequest, JobStatus, JobType};
    let (server, rm) = setup().await;
    Mock::given(method("PUT"))
        .and(path("/jobs/v2/sj-1"))
        .and(query_param("api-version", "2024-03-31"))
        .and(header_exists("authorization"))
        .and(body_json(json!({
            "jobId": "sj-1", "type": "scheduleDeviceMethod", "queryCondition": "tags.site = 'b4'",
            "startTime": "2030-01-02T03:04:05.000Z", "maxExecutionTimeInSeconds": 600,
            "cloudToDeviceMethod": {"methodName": "reboot", "payload": {"delay": 5},
                                    "responseTimeoutInSeconds": 30}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(scheduled_job_json("queued", 0, 2)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/jobs/v2/sj-2"))
        .and(body_json(json!({
            "jobId": "sj-2", "type": "scheduleUpdateTwin", "queryCondition": "deviceId IN ['d1']",
            "startTime": "2030-01-02T03:04:05.000Z", "maxExecutionTimeInSeconds": 3600,
            "updateTwin": {"etag": "*", "tags": {"site": "b4"},
                           "properties": {"desired": {"interval": 30}}}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "jobId": "sj-2", "type": "scheduleUpdateTwin", "status": "scheduled",
            "updateTwin": {"etag": "*", "tags": {"site": "b4"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jobs/v2/sj-1"))
        .and(query_param("api-version", "2024-03-31"))
        .respond_with(ResponseTemplate::new(200).set_body_json(scheduled_job_json("running", 1, 1)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/jobs/v2/sj-1/cancel"))
        .and(query_param("api-version", "2024-03-31"))
        .respond_with(ResponseTemplate::new(200).set_body_json(scheduled_job_json(
            "cancelled",
            1,
            1,
        )))
        .expect(1)
        .mount(&server)
        .await;

    let start = "2030-01-02T03:04:05Z".parse().unwrap();
    let call = CloudToDeviceMethod::new("reboot")
        .payload(json!({"delay": 5}))
        .response_timeout_in_seconds(30);
    let request = JobRequest::device_method("tags.site = 'b4'", call)
        .start_time(start)
        .max_execution_time(Duration::from_secs(600));
    let job = rm.create_scheduled_job("sj-1", request).await.unwrap();
    assert_eq!(job.job_type, JobType::ScheduleDeviceMethod);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.cloud_to_device_method.unwrap().method_name, "reboot");

    let patch = TwinPatch::new()
        .tags(json!({"site": "b4"}))
        .unwrap()
        .desired(json!({"interval": 30}))
        .unwrap();
    let job = rm
        .create_scheduled_job(
            "sj-2",
            JobRequest::update_twin("deviceId IN ['d1']", patch).start_time(start),
        )
        .await
        .unwrap();
    assert_eq!(job.update_twin.unwrap()["tags"]["site"], "b4");

    let job = rm.get_scheduled_job("sj-1").await.unwrap();
    let stats = job.device_job_statistics.unwrap();
    assert_eq!(
        (
            stats.device_count,
            stats.succeeded_count,
            stats.pending_count
        ),
        (2, 1, 1)
    );

    let job = rm.cancel_scheduled_job("sj-1").await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    let requests = server.received_requests().await.unwrap();
    let cancel = requests
        .iter()
        .find(|r| r.url.path().ends_with("/cancel"))
        .unwrap();
    assert!(cancel.body.is_empty(), "a cancel carries no body");
}

#[tokio::test]
async fn scheduled_job_query_filters_and_follows_continuation() {
    use iothub_registry::{JobResponse, JobStatus, JobType};
    let (server, rm) = setup().await;
    // Page 2, in the object form the Python SDK decodes, token only in the body.
    Mock::given(method("GET"))
        .and(path("/jobs/v2/query"))
        .and(header("x-ms-continuation", "tok1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "jobResponse",
            "items": [{"jobId": "b", "type": "scheduleDeviceMethod", "status": "running"}],
            "continuationToken": "tok2"
        })))
        .expect(1)
        .mount(&server)
        .await;
    // Page 3: array, last page.
    Mock::given(method("GET"))
        .and(path("/jobs/v2/query"))
        .and(header("x-ms-continuation", "tok2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"jobId": "c", "type": "scheduleDeviceMethod", "status": "running"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    // Page 1: array, token in the header (Node, .NET, Azure CLI).
    Mock::given(method("GET"))
        .and(path("/jobs/v2/query"))
        .and(query_param("api-version", "2024-03-31"))
        .and(query_param("jobType", "scheduleDeviceMethod"))
        .and(query_param("jobStatus", "running"))
        .and(header("x-ms-max-item-count", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-continuation", "tok1")
                .insert_header("x-ms-item-type", "JobResponse")
                .set_body_json(json!([{"jobId": "a", "type": "scheduleDeviceMethod",
                                       "status": "running"}])),
        )
        .mount(&server)
        .await;

    let query = || {
        rm.query_scheduled_jobs()
            .job_type(JobType::ScheduleDeviceMethod)
            .job_status(JobStatus::Running)
            .page_size(1)
    };
    let page = query().await.unwrap();
    assert_eq!(page.continuation_token.as_deref(), Some("tok1"));
    assert_eq!(page.item_type.as_deref(), Some("JobResponse"));
    let page = query().continuation_token("tok1").await.unwrap();
    assert_eq!(page.continuation_token.as_deref(), Some("tok2"));
    assert_eq!(page.item_type.as_deref(), Some("jobResponse"));

    let stream = query().into_stream();
    let jobs: Vec<JobResponse> = stream.try_collect().await.unwrap();
    let ids: Vec<_> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);

    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("x-ms-continuation").is_none());
    // Continuation is a header, never a query parameter.
    assert!(
        requests
            .iter()
            .all(|r| !r.url.query().unwrap_or("").contains("tok"))
    );

    // Without filters, no jobType / jobStatus parameters are sent.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/jobs/v2/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    let page = rm.query_scheduled_jobs().await.unwrap();
    assert!(page.items.is_empty() && page.continuation_token.is_none());
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].url.query(), Some("api-version=2024-03-31"));
}

#[tokio::test]
async fn waits_poll_until_the_job_finishes_and_report_progress() {
    use iothub_registry::JobStatus;
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/jobs/ie-1"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(200).set_body_json(export_job_json("enqueued", 0)),
            ResponseTemplate::new(200).set_body_json(export_job_json("running", 50)),
            // A throttled read is retried by the read itself; the wait goes on.
            error(429, "ThrottlingException").insert_header("retry-after-ms", "5"),
            ResponseTemplate::new(200).set_body_json(export_job_json("completed", 100)),
        ]))
        .expect(4)
        .mount(&server)
        .await;
    let mut seen = Vec::new();
    let job = rm
        .wait_for_import_export_job("ie-1")
        .poll_interval(Duration::from_millis(10))
        .on_progress(|job| seen.push((job.status.clone(), job.progress)))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(
        seen,
        [
            (JobStatus::Enqueued, 0),
            (JobStatus::Running, 50),
            (JobStatus::Completed, 100)
        ]
    );

    // A failed scheduled job is the answer, not an error.
    Mock::given(method("GET"))
        .and(path("/jobs/v2/sj-1"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(200).set_body_json(scheduled_job_json("scheduled", 0, 2)),
            ResponseTemplate::new(200).set_body_json(scheduled_job_json("running", 1, 1)),
            ResponseTemplate::new(200).set_body_json(scheduled_job_json("failed", 1, 0)),
        ]))
        .expect(3)
        .mount(&server)
        .await;
    let mut reads = 0;
    let job = rm
        .wait_for_scheduled_job("sj-1")
        .poll_interval(Duration::from_millis(10))
        .timeout(Duration::from_secs(30))
        .on_progress(|_| reads += 1)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.device_job_statistics.unwrap().succeeded_count, 1);
    assert_eq!(reads, 3);
}

#[tokio::test]
async fn a_wait_that_runs_out_of_time_is_a_typed_error() {
    use iothub_registry::JobStatus;
    let (server, rm) = setup().await;
    Mock::given(method("GET"))
        .and(path("/jobs/v2/sj-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(scheduled_job_json("running", 1, 1)))
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let err = rm
        .wait_for_scheduled_job("sj-1")
        .poll_interval(Duration::from_millis(40))
        .timeout(Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.is_timeout(), "{err:?}");
    match &err {
        iothub_registry::Error::JobWaitTimeout {
            job_id,
            status,
            waited,
        } => {
            assert_eq!(job_id, "sj-1");
            assert_eq!(*status, JobStatus::Running);
            assert!(*waited >= Duration::from_millis(150), "{waited:?}");
        }
        other => panic!("expected JobWaitTimeout, got {other:?}"),
    }
    assert!(err.to_string().contains("sj-1"), "{err}");
    // Polled a few times, the last one at the timeout.
    let reads = server.received_requests().await.unwrap().len();
    assert!((3..=6).contains(&reads), "{reads} reads");

    // A poll interval of zero is refused before anything is sent.
    server.reset().await;
    let err = rm
        .wait_for_import_export_job("ie-1")
        .poll_interval(Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, iothub_registry::Error::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn job_creates_are_not_retried_on_503_but_reads_are() {
    use iothub_registry::{JobProperties, JobRequest};
    let (server, rm) = setup().await;
    Mock::given(method("POST"))
        .and(path("/jobs/create"))
        .respond_with(error(503, "ServiceUnavailable"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/jobs/v2/sj-1"))
        .respond_with(error(503, "ServiceUnavailable"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jobs/v2/sj-1"))
        .respond_with(sequence(vec![
            error(503, "ServiceUnavailable"),
            ResponseTemplate::new(200).set_body_json(scheduled_job_json("running", 0, 2)),
        ]))
        .expect(2)
        .mount(&server)
        .await;
    let err = rm
        .create_import_export_job(JobProperties::export(OUT_SAS))
        .await
        .unwrap_err();
    assert_eq!(err.service_error().unwrap().status, 503);
    let request = JobRequest::device_method("*", CloudToDeviceMethod::new("m"));
    let err = rm.create_scheduled_job("sj-1", request).await.unwrap_err();
    assert_eq!(err.service_error().unwrap().status, 503);
    rm.get_scheduled_job("sj-1").await.unwrap();
}

#[tokio::test]
async fn job_ids_a_path_cannot_address_are_refused_before_sending() {
    let (server, rm) = setup().await;
    for id in ["", ".", ".."] {
        for err in [
            rm.get_import_export_job(id).await.err(),
            rm.cancel_import_export_job(id).await.err(),
            rm.get_scheduled_job(id).await.err(),
            rm.cancel_scheduled_job(id).await.err(),
            rm.wait_for_scheduled_job(id).await.err(),
        ] {
            assert!(
                matches!(err, Some(iothub_registry::Error::InvalidRequest { .. })),
                "{id:?}: {err:?}"
            );
        }
    }
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

/// Container URIs carry SAS tokens: they never show in `Debug` output or error text.
#[tokio::test]
async fn sas_tokens_stay_out_of_debug_output_and_errors() {
    use iothub_registry::JobProperties;
    let secrets = ["SU5QVVRTRUNSRVQ", "T1VUUFVUU0VDUkVU"];
    let assert_hidden = |shown: &str| {
        for secret in secrets {
            assert!(!shown.contains(secret), "a SAS signature leaked: {shown}");
        }
    };
    let (server, rm) = setup().await;

    let job = JobProperties::import(IN_SAS, OUT_SAS);
    let shown = format!("{job:?}");
    assert_hidden(&shown);
    assert!(
        shown.contains("https://acct.blob.core.windows.net/in?<redacted>"),
        "{shown}"
    );
    assert!(
        shown.contains("https://acct.blob.core.windows.net/out?<redacted>"),
        "{shown}"
    );
    assert_hidden(&format!("{job:#?}"));
    assert_hidden(&format!("{:?}", rm.create_import_export_job(job.clone())));

    // A job read back, with the URI in its failure reason too.
    let mut failed = export_job_json("failed", 10);
    failed["failureReason"] = json!(format!("cannot write to {OUT_SAS}: 403"));
    Mock::given(method("GET"))
        .and(path("/jobs/ie-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(failed))
        .mount(&server)
        .await;
    let read = rm.get_import_export_job("ie-1").await.unwrap();
    assert!(read.failure_reason.as_deref().unwrap().contains(secrets[1]));
    assert_hidden(&format!("{read:?}"));

    // A body that does not decode: the error keeps an excerpt of it, without the tokens.
    Mock::given(method("POST"))
        .and(path("/jobs/create"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "jobId": "ie-3", "progress": "half", "inputBlobContainerUri": IN_SAS,
            "outputBlobContainerUri": OUT_SAS
        })))
        .mount(&server)
        .await;
    let err = rm.create_import_export_job(job.clone()).await.unwrap_err();
    assert!(
        matches!(err, iothub_registry::Error::InvalidResponse { .. }),
        "{err:?}"
    );
    assert_hidden(&format!("{err:?}"));
    assert_hidden(&err.to_string());

    // An error message quoting the URI.
    Mock::given(method("GET"))
        .and(path("/jobs/ie-bad"))
        .respond_with(error(400, "ArgumentInvalid").set_body_json(json!({
            "Message": format!("ErrorCode:ArgumentInvalid;cannot reach {IN_SAS}"),
            "ExceptionMessage": "Tracking ID:abc-G:0"
        })))
        .mount(&server)
        .await;
    let err = rm.get_import_export_job("ie-bad").await.unwrap_err();
    assert!(err.is_bad_request());
    assert_hidden(&format!("{err:?}"));
    assert!(
        err.service_error()
            .unwrap()
            .message
            .contains("sig=<redacted>"),
        "{err:?}"
    );
}
