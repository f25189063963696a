//! IoT Hub's rules, by kind, over HTTPS: each case is one of the small inputs that real
//! traffic showed the local hub accepting, with the answer IoT Hub documents.

mod common;

use common::{Hub, TestResult};
use reqwest::Method;
use serde_json::json;

/// Twin documents: one validator for PATCH, PUT and bulk.
#[tokio::test]
async fn twin_documents_follow_one_validator() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("d1").await;
    hub.call(
        Method::PATCH,
        "/twins/d1",
        Some(json!({"tags": {"keep": 1, "my-tag": "x"}, "properties": {"desired": {"d": 1}}})),
    )
    .await
    .expect(200, None);

    // A null in a replacement is refused, names the key, and the twin keeps every tag.
    let r = hub
        .call(
            Method::PUT,
            "/twins/d1",
            Some(json!({"tags": {"my-tag": null}})),
        )
        .await;
    r.expect(400, Some("ArgumentInvalid"));
    assert!(
        r.body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("my-tag")
    );
    let r = hub
        .call(
            Method::PUT,
            "/twins/d1",
            Some(json!({"properties": {"desired": {"d": null}}})),
        )
        .await;
    r.expect(400, Some("ArgumentInvalid"));
    let twin = hub.call(Method::GET, "/twins/d1", None).await;
    assert_eq!(twin.body["tags"], json!({"keep": 1, "my-tag": "x"}));
    assert_eq!(twin.body["properties"]["desired"]["d"], 1);
    assert_eq!(twin.body["version"], 2);

    // Forbidden key characters: control characters, '.', '$', '#' and space.
    for body in [
        json!({"properties": {"desired": {"a#b": 1}}}),
        json!({"tags": {"x#y": 1}}),
        json!({"tags": {"a.b": 1}}),
        json!({"tags": {"$a": 1}}),
        json!({"tags": {"a b": 1}}),
        json!({"tags": {"nested": {"tab\tkey": 1}}}),
    ] {
        for method in [Method::PATCH, Method::PUT] {
            hub.call(method.clone(), "/twins/d1", Some(body.clone()))
                .await
                .expect(400, Some("ArgumentInvalid"));
        }
    }
    // The same validator serves bulk twin updates.
    let r = hub
        .call(
            Method::POST,
            "/devices",
            Some(json!([{"id": "d1", "importMode": "updateTwin", "tags": {"x#y": 1}}])),
        )
        .await;
    r.expect(400, None);
    assert_eq!(r.body["errors"][0]["errorCode"], "ArgumentInvalid");
    let twin = hub.call(Method::GET, "/twins/d1", None).await;
    assert_eq!(twin.body["version"], 2, "nothing was written");
    Ok(())
}

/// `$edgeAgent` and `$edgeHub` belong to the hub.
#[tokio::test]
async fn edge_system_modules_refuse_registry_writes() -> TestResult {
    let hub = Hub::start().await;
    hub.call(
        Method::PUT,
        "/devices/edge1",
        Some(json!({"deviceId": "edge1", "capabilities": {"iotEdge": true}})),
    )
    .await
    .expect(200, None);
    for module in ["$edgeAgent", "$edgeHub"] {
        let path = format!("/twins/edge1/modules/{module}");
        for method in [Method::PATCH, Method::PUT] {
            let r = hub
                .call(
                    method,
                    &path,
                    Some(json!({"properties": {"desired": {"schemaVersion": "1.1"}}})),
                )
                .await;
            r.expect(401, Some("SystemModuleModifyUnauthorizedAccess"));
            assert!(
                r.body["Message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Unauthorized to modify reserved module")
            );
        }
        let twin = hub.call(Method::GET, &path, None).await;
        assert_eq!(twin.body["properties"]["desired"]["$version"], 1);
        let identity = format!("/devices/edge1/modules/{module}");
        hub.call_as(
            "iothubowner",
            Method::DELETE,
            &identity,
            None,
            &[("if-match", "*")],
        )
        .await
        .expect(401, Some("SystemModuleModifyUnauthorizedAccess"));
        hub.call(Method::GET, &identity, None)
            .await
            .expect(200, None);
    }
    Ok(())
}

/// Parent and child devices: a scope must name a registered IoT Edge device.
#[tokio::test]
async fn device_scopes_name_registered_edge_devices() -> TestResult {
    let hub = Hub::start().await;
    let e = hub
        .call(
            Method::PUT,
            "/devices/E",
            Some(json!({"deviceId": "E", "capabilities": {"iotEdge": true}})),
        )
        .await;
    e.expect(200, None);
    let scope = e.body["deviceScope"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(scope.starts_with("ms-azure-iot-edge://E-"), "{scope}");
    let l = hub
        .call(
            Method::PUT,
            "/devices/L",
            Some(json!({"deviceId": "L", "deviceScope": scope})),
        )
        .await;
    l.expect(200, None);
    assert_eq!(l.body["parentScopes"], json!([scope]));
    let etag = l.body["etag"].as_str().unwrap_or_default().to_owned();
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/L",
            Some(json!({"deviceId": "L", "deviceScope": "not-a-scope"})),
            &[("if-match", &format!("\"{etag}\""))],
        )
        .await;
    r.expect(400, Some("InvalidDeviceScope"));
    let after = hub.call(Method::GET, "/devices/L", None).await;
    assert_eq!(after.body["deviceScope"], scope.as_str());
    assert_eq!(after.body["etag"], etag.as_str());
    // Bulk import applies the same rule per entry.
    let r = hub
        .call(
            Method::POST,
            "/devices",
            Some(json!([{"id": "B", "importMode": "create", "deviceScope": "nope"}])),
        )
        .await;
    r.expect(400, None);
    assert_eq!(r.body["errors"][0]["errorCode"], "InvalidDeviceScope");
    // Deleting the parent leaves the child without one.
    hub.call(Method::DELETE, "/devices/E", None)
        .await
        .expect(204, None);
    let child = hub.call(Method::GET, "/devices/L", None).await;
    assert!(child.body.get("deviceScope").is_none(), "{}", child.body);
    assert_eq!(child.body["parentScopes"], json!([]));
    Ok(())
}

/// A twin number is stored and returned exactly as written (no rounding on the way).
#[tokio::test]
async fn twin_numbers_come_back_as_written() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("n1").await;
    let auth = common::token(&hub.emu, "iothubowner");
    let body =
        r#"{"tags":{"a":1125899906842623.75,"b":123.45678901234567,"c":2251799813685247.75}}"#;
    let patched = hub
        .raw(
            Some(&auth),
            Method::PATCH,
            &hub.url("/twins/n1"),
            Some(body.to_owned()),
            &[],
        )
        .await;
    patched.expect(200, None);
    let got = hub.call(Method::GET, "/twins/n1", None).await;
    // The same doubles (the text may be the shortest spelling of the same double).
    for twin in [&patched.body, &got.body] {
        assert_eq!(
            twin["tags"]["a"].as_f64(),
            Some(1_125_899_906_842_623.0 + 0.75)
        );
        assert_eq!(twin["tags"]["b"].as_f64(), Some(123.45678901234567));
        assert_eq!(
            twin["tags"]["c"].as_f64(),
            Some(2_251_799_813_685_247.0 + 0.75)
        );
    }
    Ok(())
}

/// Decoding errors name the field, never the value (a key sent in the wrong shape).
#[tokio::test]
async fn malformed_bodies_do_not_echo_their_values() -> TestResult {
    let hub = Hub::start().await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/k4",
            Some(json!({"deviceId": "k4", "authentication": {"type": "sas", "symmetricKey": "SECRETKEYVALUE"}})),
        )
        .await;
    r.expect(400, Some("IotHubFormatError"));
    assert!(!r.body.to_string().contains("SECRETKEYVALUE"), "{}", r.body);
    let r = hub
        .call(
            Method::POST,
            "/devices",
            Some(json!([{"id": "k5", "authentication": {"symmetricKey": "SECRETKEYVALUE"}}])),
        )
        .await;
    assert!(!r.body.to_string().contains("SECRETKEYVALUE"), "{}", r.body);
    Ok(())
}
