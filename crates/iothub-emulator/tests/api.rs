//! The registry REST API against an in-process emulator: devices, modules, twins, bulk,
//! statistics, methods, configurations and error shapes.

mod common;

use common::{Hub, TestResult};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn device_crud_and_etags() -> TestResult {
    let hub = Hub::start().await;
    let body = json!({
        "deviceId": "dev1", "status": "enabled",
        "authentication": {"symmetricKey": {"primaryKey": "", "secondaryKey": ""}, "type": "sas"},
        "capabilities": {"iotEdge": false}
    });
    let created = hub
        .call(Method::PUT, "/devices/dev1", Some(body.clone()))
        .await;
    created.expect(200, None);
    let d = &created.body;
    assert_eq!(d["deviceId"], "dev1");
    assert_eq!(d["etag"], "MQ==");
    assert_eq!(d["connectionState"], "Disconnected");
    assert_eq!(d["status"], "enabled");
    assert_eq!(d["statusUpdatedTime"], "0001-01-01T00:00:00Z");
    assert_eq!(d["lastActivityTime"], "0001-01-01T00:00:00Z");
    assert_eq!(d["cloudToDeviceMessageCount"], 0);
    assert_eq!(d["authentication"]["type"], "sas");
    assert_eq!(d["generationId"].as_str().map(str::len), Some(18));
    let primary = d["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(primary.len(), 44, "a 32-byte key was generated");
    assert_eq!(
        created.headers.get("etag").and_then(|v| v.to_str().ok()),
        Some("\"MQ==\"")
    );

    // Creating again without If-Match conflicts.
    hub.call(Method::PUT, "/devices/dev1", Some(body.clone()))
        .await
        .expect(409, Some("DeviceAlreadyExists"));

    // GET returns the same document.
    let got = hub.call(Method::GET, "/devices/dev1", None).await;
    got.expect(200, None);
    assert_eq!(got.body, created.body);

    // Update with a stale ETag fails, with the right one succeeds and bumps the ETag.
    let update = json!({"deviceId": "dev1", "status": "disabled", "statusReason": "maintenance"});
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/dev1",
        Some(update.clone()),
        &[("if-match", "\"Mg==\"")],
    )
    .await
    .expect(412, Some("PreconditionFailed"));
    let updated = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/dev1",
            Some(update.clone()),
            &[("if-match", "\"MQ==\"")],
        )
        .await;
    updated.expect(200, None);
    assert_eq!(updated.body["etag"], "Mg==");
    assert_eq!(updated.body["status"], "disabled");
    assert_eq!(updated.body["statusReason"], "maintenance");
    assert_ne!(updated.body["statusUpdatedTime"], "0001-01-01T00:00:00Z");
    assert_eq!(
        updated.body["authentication"]["symmetricKey"]["primaryKey"], primary,
        "empty keys keep the old ones"
    );
    // Unquoted and `*` If-Match are accepted too.
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/dev1",
        Some(update.clone()),
        &[("if-match", "Mg==")],
    )
    .await
    .expect(200, None);
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/dev1",
        Some(update.clone()),
        &[("if-match", "*")],
    )
    .await
    .expect(200, None);
    // If-Match on a missing device is 404.
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/nope",
        Some(json!({})),
        &[("if-match", "*")],
    )
    .await
    .expect(404, Some("DeviceNotFound"));

    // Delete with a wrong ETag fails; without one it succeeds; then it is gone.
    hub.call_as(
        "iothubowner",
        Method::DELETE,
        "/devices/dev1",
        None,
        &[("if-match", "\"MQ==\"")],
    )
    .await
    .expect(412, Some("PreconditionFailed"));
    hub.call(Method::DELETE, "/devices/dev1", None)
        .await
        .expect(204, None);
    hub.call(Method::GET, "/devices/dev1", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    hub.call(Method::DELETE, "/devices/dev1", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    hub.call(Method::GET, "/twins/dev1", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    Ok(())
}

#[tokio::test]
async fn device_validation() -> TestResult {
    let hub = Hub::start().await;
    // Body id must match the URL.
    hub.call(Method::PUT, "/devices/a", Some(json!({"deviceId": "b"})))
        .await
        .expect(400, Some("ArgumentInvalid"));
    // Invalid characters (space, percent-encoded in the URL) and over-long ids.
    hub.call(Method::PUT, "/devices/has%20space", Some(json!({})))
        .await
        .expect(400, Some("ArgumentInvalid"));
    let long = "x".repeat(129);
    hub.call(Method::PUT, &format!("/devices/{long}"), Some(json!({})))
        .await
        .expect(400, Some("ArgumentInvalid"));
    // Every allowed special character works (URL-encoded where needed).
    let id = "a-b:c.d+e%f_g#h*i?j!k(l)m,n=o@p;q$r's";
    let encoded: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c.to_string()
            } else {
                format!("%{:02X}", c as u8)
            }
        })
        .collect();
    let r = hub
        .call(Method::PUT, &format!("/devices/{encoded}"), Some(json!({})))
        .await;
    r.expect(200, None);
    assert_eq!(r.body["deviceId"], id);
    hub.call(Method::GET, &format!("/devices/{encoded}"), None)
        .await
        .expect(200, None);
    // Bad keys and thumbprints.
    let bad_key =
        json!({"authentication": {"type": "sas", "symmetricKey": {"primaryKey": "AAAA"}}});
    hub.call(Method::PUT, "/devices/k1", Some(bad_key))
        .await
        .expect(400, Some("ArgumentInvalid"));
    let bad_thumb = json!({"authentication": {"type": "selfSigned", "x509Thumbprint": {"primaryThumbprint": "xyz"}}});
    hub.call(Method::PUT, "/devices/k2", Some(bad_thumb))
        .await
        .expect(400, Some("ArgumentInvalid"));
    let thumb = "A".repeat(40);
    let good_thumb = json!({"authentication": {"type": "selfSigned", "x509Thumbprint": {"primaryThumbprint": thumb, "secondaryThumbprint": "b".repeat(64)}}});
    let r = hub.call(Method::PUT, "/devices/k3", Some(good_thumb)).await;
    r.expect(200, None);
    assert_eq!(r.body["authentication"]["type"], "selfSigned");
    assert_eq!(
        r.body["authentication"]["symmetricKey"]["primaryKey"],
        Value::Null
    );
    let twin = hub.call(Method::GET, "/twins/k3", None).await;
    assert_eq!(twin.body["authenticationType"], "selfSigned");
    assert_eq!(twin.body["x509Thumbprint"]["primaryThumbprint"], thumb);
    // Bad status.
    hub.call(
        Method::PUT,
        "/devices/k4",
        Some(json!({"status": "sleeping"})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    Ok(())
}

#[tokio::test]
async fn malformed_requests_get_iothub_errors() -> TestResult {
    let hub = Hub::start().await;
    let token = common::token(&hub.emu, "iothubowner");
    let url = hub.url("/devices/d1");
    // Malformed JSON and wrong types.
    hub.raw(
        Some(&token),
        Method::PUT,
        &url,
        Some("{not json".into()),
        &[],
    )
    .await
    .expect(400, Some("IotHubFormatError"));
    hub.raw(
        Some(&token),
        Method::PUT,
        &url,
        Some(r#"{"status": 5}"#.into()),
        &[],
    )
    .await
    .expect(400, Some("IotHubFormatError"));
    hub.raw(
        Some(&token),
        Method::PUT,
        &url,
        Some(r#"[1,2]"#.into()),
        &[],
    )
    .await
    .expect(400, Some("IotHubFormatError"));
    hub.raw(Some(&token), Method::PUT, &url, None, &[])
        .await
        .expect(400, Some("ArgumentNull"));
    let twin_url = hub.url("/twins/d1");
    hub.create_device("d1").await;
    hub.raw(
        Some(&token),
        Method::PATCH,
        &twin_url,
        Some(r#"{"tags": 3}"#.into()),
        &[],
    )
    .await
    .expect(400, Some("IotHubFormatError"));
    hub.raw(
        Some(&token),
        Method::PATCH,
        &twin_url,
        Some("\u{0}".into()),
        &[],
    )
    .await
    .expect(400, Some("IotHubFormatError"));
    // Missing api-version.
    let no_version = format!("https://localhost:{}/devices/d1", hub.emu.https_port());
    hub.raw(Some(&token), Method::GET, &no_version, None, &[])
        .await
        .expect(400, Some("InvalidProtocolVersion"));
    // Other api-versions are accepted.
    let other = format!(
        "https://localhost:{}/devices/d1?api-version=2020-05-31-preview",
        hub.emu.https_port()
    );
    hub.raw(Some(&token), Method::GET, &other, None, &[])
        .await
        .expect(200, None);
    // Unknown route and wrong method.
    hub.call(Method::GET, "/nothing/here", None)
        .await
        .expect(404, Some("GenericNotFound"));
    hub.call(Method::POST, "/devices/d1", Some(json!({})))
        .await
        .expect(405, Some("GenericMethodNotAllowed"));
    // Bad `top`.
    hub.call(Method::GET, "/devices?top=1001", None)
        .await
        .expect(400, Some("ArgumentInvalid"));
    hub.call(Method::GET, "/devices?top=abc", None)
        .await
        .expect(400, Some("ArgumentInvalid"));
    // The device is untouched by all that.
    let got = hub.call(Method::GET, "/devices/d1", None).await;
    assert_eq!(got.body["etag"], "MQ==");
    Ok(())
}

#[tokio::test]
async fn list_statistics_purge_and_methods() -> TestResult {
    let hub = Hub::start().await;
    for i in 0..5 {
        hub.create_device(&format!("d{i}")).await;
    }
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/d4",
        Some(json!({"status": "disabled"})),
        &[("if-match", "*")],
    )
    .await
    .expect(200, None);
    let list = hub.call(Method::GET, "/devices?top=3", None).await;
    list.expect(200, None);
    let ids: Vec<_> = list
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["deviceId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("d0"), json!("d1"), json!("d2")]);
    assert_eq!(
        hub.call(Method::GET, "/devices", None)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    // A trailing slash routes like the bare path (the Node SDK's `Registry.list` sends it).
    assert_eq!(
        hub.call(Method::GET, "/devices/", None)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(5)
    );

    let stats = hub.call(Method::GET, "/statistics/devices", None).await;
    assert_eq!(
        stats.body,
        json!({"totalDeviceCount": 5, "enabledDeviceCount": 4, "disabledDeviceCount": 1})
    );
    let service = hub.call(Method::GET, "/statistics/service", None).await;
    assert_eq!(service.body, json!({"connectedDeviceCount": 0}));

    let purge = hub.call(Method::DELETE, "/devices/d0/commands", None).await;
    purge.expect(200, None);
    assert_eq!(purge.body["totalMessagesPurged"], 0);
    assert_eq!(purge.body["deviceId"], "d0");
    hub.call(Method::DELETE, "/devices/zz/commands", None)
        .await
        .expect(404, Some("DeviceNotFound"));

    let call = json!({"methodName": "reboot", "payload": {"x": 1}, "responseTimeoutInSeconds": 30, "connectTimeoutInSeconds": 5});
    let r = hub
        .call(Method::POST, "/twins/d0/methods", Some(call.clone()))
        .await;
    r.expect(404, None);
    assert_eq!(r.error_code(), Some("DeviceNotOnline"));
    let inner: Value = serde_json::from_str(r.body["Message"].as_str().unwrap_or_default())?;
    assert_eq!(inner["errorCode"], 404103);
    assert_eq!(inner["info"]["timeout"], "00:00:05");
    hub.call(Method::POST, "/twins/zz/methods", Some(call.clone()))
        .await
        .expect(404, Some("DeviceNotFound"));
    hub.call(Method::POST, "/twins/d0/modules/m/methods", Some(call))
        .await
        .expect(404, Some("ModuleNotFound"));
    hub.call(
        Method::POST,
        "/twins/d0/methods",
        Some(json!({"payload": 1})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    hub.call(
        Method::POST,
        "/twins/d0/methods",
        Some(json!({"methodName": "m", "responseTimeoutInSeconds": 1})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    // Strings of digits are read as numbers (as IoT Hub does); other strings are refused.
    for bad in [json!("1"), json!("5s"), json!(""), json!("-5"), json!(5.5)] {
        hub.call(
            Method::POST,
            "/twins/d0/methods",
            Some(json!({"methodName": "m", "responseTimeoutInSeconds": bad})),
        )
        .await
        .expect(400, Some("ArgumentInvalid"));
    }
    Ok(())
}

#[tokio::test]
async fn modules_crud() -> TestResult {
    let hub = Hub::start().await;
    let m = json!({"moduleId": "mod1", "managedBy": "me", "deviceId": "dev1", "authentication": {"type": "sas"}});
    hub.call(Method::PUT, "/devices/dev1/modules/mod1", Some(m.clone()))
        .await
        .expect(404, Some("DeviceNotFound"));
    hub.create_device("dev1").await;
    let created = hub
        .call(Method::PUT, "/devices/dev1/modules/mod1", Some(m.clone()))
        .await;
    created.expect(200, None);
    assert_eq!(created.body["moduleId"], "mod1");
    assert_eq!(created.body["managedBy"], "me");
    assert_eq!(created.body["deviceId"], "dev1");
    assert_eq!(created.body["etag"], "MQ==");
    assert_eq!(created.body["connectionState"], "Disconnected");
    hub.call(Method::PUT, "/devices/dev1/modules/mod1", Some(m.clone()))
        .await
        .expect(409, Some("ModuleAlreadyExistsOnDevice"));
    hub.call(Method::PUT, "/devices/dev1/modules/mod2", Some(m.clone()))
        .await
        .expect(400, Some("ArgumentInvalid"));
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/dev1/modules/mod1",
        Some(m.clone()),
        &[("if-match", "\"xx\"")],
    )
    .await
    .expect(412, Some("PreconditionFailed"));
    let updated = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/dev1/modules/mod1",
            Some(m.clone()),
            &[("if-match", "\"MQ==\"")],
        )
        .await;
    assert_eq!(updated.body["etag"], "Mg==");
    hub.call(Method::GET, "/devices/dev1/modules/nope", None)
        .await
        .expect(404, Some("ModuleNotFound"));
    let list = hub.call(Method::GET, "/devices/dev1/modules", None).await;
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
    hub.call(Method::GET, "/devices/zz/modules", None)
        .await
        .expect(404, Some("DeviceNotFound"));

    // Module twin.
    let twin = hub
        .call(Method::GET, "/twins/dev1/modules/mod1", None)
        .await;
    twin.expect(200, None);
    assert_eq!(twin.body["moduleId"], "mod1");
    assert_eq!(twin.body["etag"], "AAAAAAAAAAE=");
    let patched = hub
        .call(
            Method::PATCH,
            "/twins/dev1/modules/mod1",
            Some(json!({"properties": {"desired": {"a": 1}}})),
        )
        .await;
    patched.expect(200, None);
    assert_eq!(patched.body["properties"]["desired"]["a"], 1);
    assert_eq!(patched.body["version"], 2);

    // Deleting the device deletes its modules.
    hub.call(Method::DELETE, "/devices/dev1/modules/mod1", None)
        .await
        .expect(204, None);
    hub.call(Method::DELETE, "/devices/dev1/modules/mod1", None)
        .await
        .expect(404, Some("ModuleNotFound"));
    hub.call(
        Method::PUT,
        "/devices/dev1/modules/mod3",
        Some(json!({"moduleId": "mod3"})),
    )
    .await
    .expect(200, None);
    hub.call(Method::DELETE, "/devices/dev1", None)
        .await
        .expect(204, None);
    hub.create_device("dev1").await;
    hub.call(Method::GET, "/devices/dev1/modules/mod3", None)
        .await
        .expect(404, Some("ModuleNotFound"));
    hub.call(Method::GET, "/twins/dev1/modules/mod3", None)
        .await
        .expect(404, Some("ModuleNotFound"));

    // IoT Edge devices get their system modules.
    let edge = hub
        .call(
            Method::PUT,
            "/devices/edge1",
            Some(json!({"capabilities": {"iotEdge": true}})),
        )
        .await;
    edge.expect(200, None);
    assert!(
        edge.body["deviceScope"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ms-azure-iot-edge://edge1-")
    );
    let modules = hub.call(Method::GET, "/devices/edge1/modules", None).await;
    let ids: Vec<_> = modules
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["moduleId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("$edgeAgent"), json!("$edgeHub")]);
    Ok(())
}

#[tokio::test]
async fn twin_patch_replace_and_etags() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("t1").await;
    let twin = hub.call(Method::GET, "/twins/t1", None).await;
    twin.expect(200, None);
    let t = &twin.body;
    assert_eq!(t["deviceId"], "t1");
    assert_eq!(t["etag"], "AAAAAAAAAAE=");
    assert_eq!(t["deviceEtag"], "MQ==");
    assert_eq!(t["version"], 1);
    assert_eq!(t["status"], "enabled");
    assert_eq!(t["authenticationType"], "sas");
    assert_eq!(t["properties"]["desired"]["$version"], 1);
    assert_eq!(t["properties"]["reported"]["$version"], 1);
    assert!(t["properties"]["desired"]["$metadata"]["$lastUpdated"].is_string());
    assert_eq!(t["capabilities"]["iotEdge"], false);

    let patch = json!({"tags": {"site": {"building": 4, "floor": 2}}, "properties": {"desired": {"temp": 21, "mode": {"fan": "auto"}}}});
    let r = hub
        .call_as(
            "iothubowner",
            Method::PATCH,
            "/twins/t1",
            Some(patch),
            &[("if-match", "\"AAAAAAAAAAE=\"")],
        )
        .await;
    r.expect(200, None);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["etag"], "AAAAAAAAAAI=");
    assert_eq!(r.body["tags"], json!({"site": {"building": 4, "floor": 2}}));
    assert_eq!(r.body["properties"]["desired"]["temp"], 21);
    assert_eq!(r.body["properties"]["desired"]["$version"], 2);
    assert_eq!(
        r.body["properties"]["desired"]["$metadata"]["temp"]["$lastUpdatedVersion"],
        2
    );
    assert_eq!(
        r.body["properties"]["desired"]["$metadata"]["mode"]["fan"]["$lastUpdatedVersion"],
        2
    );

    // Stale ETag.
    hub.call_as(
        "iothubowner",
        Method::PATCH,
        "/twins/t1",
        Some(json!({"tags": {"x": 1}})),
        &[("if-match", "\"AAAAAAAAAAE=\"")],
    )
    .await
    .expect(412, Some("PreconditionFailed"));

    // Null removes; nested merge.
    let r = hub
        .call(Method::PATCH, "/twins/t1", Some(json!({"tags": {"site": {"floor": null}}, "properties": {"desired": {"temp": null, "mode": {"speed": 3}}}})))
        .await;
    r.expect(200, None);
    assert_eq!(r.body["tags"], json!({"site": {"building": 4}}));
    let desired = &r.body["properties"]["desired"];
    assert!(desired.get("temp").is_none());
    assert_eq!(desired["mode"], json!({"fan": "auto", "speed": 3}));
    assert_eq!(desired["$version"], 3);
    assert!(desired["$metadata"].get("temp").is_none());

    // Reported properties are read-only from the service side.
    hub.call(
        Method::PATCH,
        "/twins/t1",
        Some(json!({"properties": {"reported": {"a": 1}}})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));

    // PUT replaces tags and desired.
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/twins/t1",
            Some(json!({"tags": {"a": 1}})),
            &[("if-match", "*")],
        )
        .await;
    r.expect(200, None);
    assert_eq!(r.body["tags"], json!({"a": 1}));
    let desired = r.body["properties"]["desired"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let keys: Vec<_> = desired.keys().cloned().collect();
    assert_eq!(keys, vec!["$metadata".to_owned(), "$version".to_owned()]);
    assert_eq!(r.body["version"], 4);

    // Device updates show up in the twin; the twin ETag stays.
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/devices/t1",
        Some(json!({"status": "disabled"})),
        &[("if-match", "*")],
    )
    .await
    .expect(200, None);
    let twin = hub.call(Method::GET, "/twins/t1", None).await;
    assert_eq!(twin.body["status"], "disabled");
    assert_eq!(twin.body["deviceEtag"], "Mg==");
    assert_eq!(twin.body["version"], 4);
    // Body id must match.
    hub.call(
        Method::PATCH,
        "/twins/t1",
        Some(json!({"deviceId": "other", "tags": {}})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    hub.call(Method::PATCH, "/twins/none", Some(json!({"tags": {}})))
        .await
        .expect(404, Some("DeviceNotFound"));
    Ok(())
}

#[tokio::test]
async fn twin_limits() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("l1").await;
    for bad in [
        json!({"tags": {"a.b": 1}}),
        json!({"tags": {"$x": 1}}),
        json!({"tags": {"with space": 1}}),
        json!({"properties": {"desired": {"k": "x".repeat(5000)}}}),
        json!({"tags": {"k": "x".repeat(4000), "k2": "y".repeat(4000), "k3": "z".repeat(400)}}),
        json!({"properties": {"desired": {"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":1}}}}}}}}}}}}}}),
    ] {
        hub.call(Method::PATCH, "/twins/l1", Some(bad))
            .await
            .expect(400, Some("ArgumentInvalid"));
    }
    // Exactly ten nested levels are fine, and so are arrays.
    let ten = json!({"one":{"two":{"three":{"four":{"five":{"six":{"seven":{"eight":{"nine":{"ten":{"property":"value"}}}}}}}}}}});
    hub.call(
        Method::PATCH,
        "/twins/l1",
        Some(json!({"properties": {"desired": ten}})),
    )
    .await
    .expect(200, None);
    hub.call(
        Method::PATCH,
        "/twins/l1",
        Some(json!({"tags": {"list": [1, 2, {"a": 3}]}})),
    )
    .await
    .expect(200, None);
    // Desired may grow to 32 KiB in several patches, not beyond.
    for i in 0..7 {
        hub.call(
            Method::PATCH,
            "/twins/l1",
            Some(json!({"properties": {"desired": {format!("p{i}"): "x".repeat(4096)}}})),
        )
        .await
        .expect(200, None);
    }
    hub.call(
        Method::PATCH,
        "/twins/l1",
        Some(json!({"properties": {"desired": {"p7": "x".repeat(4096)}}})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    let twin = hub.call(Method::GET, "/twins/l1", None).await;
    assert!(
        twin.body["properties"]["desired"].get("p7").is_none(),
        "rejected changes are not written"
    );
    Ok(())
}

#[tokio::test]
async fn bulk_modes_and_partial_failure() -> TestResult {
    let hub = Hub::start().await;
    let devices: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("b{i}"), "importMode": "create", "status": "enabled", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "", "secondaryKey": ""}}}))
        .collect();
    let r = hub
        .call(Method::POST, "/devices", Some(Value::Array(devices)))
        .await;
    r.expect(200, None);
    assert_eq!(
        r.body,
        json!({"isSuccessful": true, "errors": [], "warnings": []})
    );
    hub.call(Method::GET, "/devices/b2", None)
        .await
        .expect(200, None);

    // Partial failure: b0 exists (create fails), b9 is new (create succeeds), b1 update with
    // a wrong ETag fails, b2 is deleted, missing device delete fails.
    let ops = json!([
        {"id": "b0", "importMode": "create"},
        {"id": "b9", "importMode": "create", "tags": {"t": 1}, "properties": {"desired": {"d": 2}}},
        {"id": "b1", "importMode": "updateIfMatchETag", "eTag": "\"Nw==\"", "status": "disabled"},
        {"id": "b2", "importMode": "delete"},
        {"id": "gone", "importMode": "deleteIfMatchETag", "eTag": "*"},
        {"id": "bad id", "importMode": "create"},
        {"id": "b3", "importMode": "sideways"}
    ]);
    let r = hub.call(Method::POST, "/devices", Some(ops)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["isSuccessful"], false);
    let errors = r.body["errors"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(String, String)> = errors
        .iter()
        .map(|e| {
            (
                e["deviceId"].as_str().unwrap_or_default().to_owned(),
                e["errorCode"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("b0".into(), "DeviceAlreadyExists".into()),
            ("b1".into(), "PreconditionFailed".into()),
            ("gone".into(), "DeviceNotFound".into()),
            ("bad id".into(), "ArgumentInvalid".into()),
            ("b3".into(), "ArgumentInvalid".into()),
        ]
    );
    assert!(errors.iter().all(|e| e["errorStatus"].is_string()));
    assert_eq!(errors[0]["operation"], "create");
    // What succeeded is committed.
    let b9 = hub.call(Method::GET, "/twins/b9", None).await;
    b9.expect(200, None);
    assert_eq!(b9.body["tags"], json!({"t": 1}));
    assert_eq!(b9.body["properties"]["desired"]["d"], 2);
    hub.call(Method::GET, "/devices/b2", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    // What failed is not.
    let b1 = hub.call(Method::GET, "/devices/b1", None).await;
    assert_eq!(b1.body["status"], "enabled");

    // The remaining modes.
    let etag = b1.body["etag"].as_str().unwrap_or_default().to_owned();
    let twin_etag = hub.call(Method::GET, "/twins/b1", None).await.body["etag"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ops = json!([
        {"id": "b1", "importMode": "updateIfMatchETag", "eTag": etag, "status": "disabled"},
        {"id": "b0", "importMode": "update", "statusReason": "r"},
        {"id": "c1", "importMode": "createOrUpdate"},
        {"id": "b9", "importMode": "createOrUpdateIfMatchETag", "eTag": "MQ=="},
        {"id": "c2", "importMode": "createOrUpdateIfMatchETag"},
        {"id": "b0x", "importMode": "update"}
    ]);
    let r = hub.call(Method::POST, "/devices", Some(ops)).await;
    let codes: Vec<_> = r.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["deviceId"].clone())
        .collect();
    assert_eq!(codes, vec![json!("b0x")]);
    assert_eq!(
        hub.call(Method::GET, "/devices/b1", None).await.body["status"],
        "disabled"
    );
    hub.call(Method::GET, "/devices/c1", None)
        .await
        .expect(200, None);
    hub.call(Method::GET, "/devices/c2", None)
        .await
        .expect(200, None);

    let ops = json!([
        {"id": "b1", "importMode": "updateTwinIfMatchETag", "twinETag": twin_etag, "tags": {"x": 1}},
        {"id": "b0", "importMode": "updateTwinIfMatchETag", "twinETag": "AAAAAAAAAAk=", "tags": {"x": 1}},
        {"id": "b9", "importMode": "updateTwin", "tags": {"t": null, "u": 2}, "properties": {"desired": {"e": 3}}},
        {"id": "c1", "importMode": "deleteIfMatchETag", "eTag": "MQ=="}
    ]);
    let r = hub.call(Method::POST, "/devices", Some(ops)).await;
    let codes: Vec<_> = r.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["deviceId"].clone(), e["errorCode"].clone()))
        .collect();
    assert_eq!(codes, vec![(json!("b0"), json!("PreconditionFailed"))]);
    assert_eq!(
        hub.call(Method::GET, "/twins/b1", None).await.body["tags"],
        json!({"x": 1})
    );
    let b9 = hub.call(Method::GET, "/twins/b9", None).await;
    assert_eq!(b9.body["tags"], json!({"u": 2}));
    assert_eq!(b9.body["properties"]["desired"]["d"], 2);
    assert_eq!(b9.body["properties"]["desired"]["e"], 3);
    hub.call(Method::GET, "/devices/c1", None)
        .await
        .expect(404, Some("DeviceNotFound"));

    // Whole-request errors.
    let dup = json!([{"id": "z1", "importMode": "create"}, {"id": "z1", "importMode": "delete"}]);
    hub.call(Method::POST, "/devices", Some(dup))
        .await
        .expect(400, Some("DeviceDefinedMultipleTimes"));
    hub.call(Method::GET, "/devices/z1", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("m{i}"), "importMode": "create"}))
        .collect();
    hub.call(Method::POST, "/devices", Some(Value::Array(many)))
        .await
        .expect(413, Some("TooManyDevices"));
    hub.call(Method::GET, "/devices/m0", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    hub.call(Method::POST, "/devices", Some(json!([])))
        .await
        .expect(400, Some("ArgumentInvalid"));
    hub.call(Method::POST, "/devices", Some(json!({"id": "x"})))
        .await
        .expect(400, Some("IotHubFormatError"));
    Ok(())
}

#[tokio::test]
async fn query_pages_through_twins() -> TestResult {
    let hub = Hub::start().await;
    for i in 0..5 {
        hub.create_device(&format!("q{i}")).await;
    }
    hub.call(
        Method::PATCH,
        "/twins/q3",
        Some(json!({"tags": {"env": "prod"}})),
    )
    .await
    .expect(200, None);
    hub.call(Method::POST, "/devices/query", Some(json!({})))
        .await
        .expect(400, Some("ArgumentInvalid"));
    let all = json!({"query": "SELECT * FROM devices"});
    hub.call_as(
        "iothubowner",
        Method::POST,
        "/devices/query",
        Some(all.clone()),
        &[("x-ms-max-item-count", "zero")],
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    hub.call(
        Method::POST,
        "/devices/query",
        Some(json!({"query": "SELEKT nothing"})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));

    let mut seen = Vec::new();
    let mut continuation: Option<String> = None;
    for _ in 0..10 {
        let mut headers = vec![("x-ms-max-item-count", "2")];
        if let Some(c) = continuation.as_deref() {
            headers.push(("x-ms-continuation", c));
        }
        let r = hub
            .call_as(
                "iothubowner",
                Method::POST,
                "/devices/query",
                Some(all.clone()),
                &headers,
            )
            .await;
        r.expect(200, None);
        assert_eq!(
            r.headers
                .get("x-ms-item-type")
                .and_then(|v| v.to_str().ok()),
            Some("Twin")
        );
        let items = r.body.as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|t| t["deviceId"].clone()));
        continuation = r
            .headers
            .get("x-ms-continuation")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if continuation.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            json!("q0"),
            json!("q1"),
            json!("q2"),
            json!("q3"),
            json!("q4")
        ]
    );
    let prod = hub
        .call(
            Method::POST,
            "/devices/query",
            Some(json!({"query": "SELECT * FROM devices WHERE tags.env = 'prod'"})),
        )
        .await;
    prod.expect(200, None);
    assert_eq!(prod.body.as_array().map(Vec::len), Some(1));
    assert_eq!(prod.body[0]["deviceId"], "q3");
    assert_eq!(prod.body[0]["etag"], "AAAAAAAAAAI=");

    // A device named "query" is still reachable.
    hub.call(
        Method::PUT,
        "/devices/query",
        Some(json!({"deviceId": "query"})),
    )
    .await
    .expect(200, None);
    hub.call(Method::GET, "/devices/query", None)
        .await
        .expect(200, None);
    hub.call(Method::DELETE, "/devices/query", None)
        .await
        .expect(204, None);
    Ok(())
}

#[tokio::test]
async fn configurations_crud() -> TestResult {
    let hub = Hub::start().await;
    let config = json!({
        "id": "cfg1", "labels": {"env": "dev"}, "priority": 10, "targetCondition": "tags.env='dev'",
        "content": {"deviceContent": {"properties.desired.x": 1}},
        "metrics": {"queries": {"applied": "SELECT deviceId FROM devices"}}
    });
    let r = hub
        .call(Method::PUT, "/configurations/cfg1", Some(config.clone()))
        .await;
    r.expect(200, None);
    assert_eq!(r.body["etag"], "MQ==");
    assert_eq!(r.body["priority"], 10);
    assert_eq!(r.body["systemMetrics"]["results"]["targetedCount"], 0);
    hub.call(Method::PUT, "/configurations/cfg1", Some(config.clone()))
        .await
        .expect(409, Some("ConfigurationAlreadyExists"));
    let mut changed = config.clone();
    changed["priority"] = json!(20);
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/configurations/cfg1",
            Some(changed.clone()),
            &[("if-match", "\"MQ==\"")],
        )
        .await;
    r.expect(200, None);
    assert_eq!(r.body["priority"], 20);
    assert_eq!(r.body["etag"], "Mg==");
    changed["content"] = json!({"deviceContent": {"properties.desired.x": 2}});
    hub.call_as(
        "iothubowner",
        Method::PUT,
        "/configurations/cfg1",
        Some(changed),
        &[("if-match", "*")],
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    hub.call(Method::GET, "/configurations/cfg1", None)
        .await
        .expect(200, None);
    hub.call(Method::GET, "/configurations/nope", None)
        .await
        .expect(404, Some("ConfigurationNotFound"));
    hub.call(Method::PUT, "/configurations/UPPER", Some(json!({})))
        .await
        .expect(400, Some("ArgumentInvalid"));
    let list = hub.call(Method::GET, "/configurations?top=5", None).await;
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
    let test = hub
        .call(
            Method::POST,
            "/configurations/testQueries",
            Some(json!({"targetCondition": "tags.env = 'dev'", "customMetricQueries": {"ok": "SELECT deviceId FROM devices", "bad": "SELECT FROM"}})),
        )
        .await;
    test.expect(200, None);
    assert_eq!(test.body["targetConditionError"], "");
    assert_eq!(test.body["customMetricQueryErrors"]["ok"], "");
    assert_ne!(test.body["customMetricQueryErrors"]["bad"], "");
    // Found by schema fuzzing: a null condition was taken as "no condition".
    hub.call(
        Method::POST,
        "/configurations/testQueries",
        Some(json!({"targetCondition": null})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    hub.call(
        Method::POST,
        "/configurations/testQueries",
        Some(json!({"targetCondition": "", "customMetricQueries": null})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    hub.call(Method::POST, "/configurations/testQueries", Some(json!({})))
        .await
        .expect(200, None);
    hub.call_as(
        "iothubowner",
        Method::DELETE,
        "/configurations/cfg1",
        None,
        &[("if-match", "\"MQ==\"")],
    )
    .await
    .expect(412, Some("PreconditionFailed"));
    hub.call(Method::DELETE, "/configurations/cfg1", None)
        .await
        .expect(204, None);
    hub.call(Method::DELETE, "/configurations/cfg1", None)
        .await
        .expect(404, Some("ConfigurationNotFound"));
    Ok(())
}

#[tokio::test]
async fn tls_versions_and_hosts() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("tls").await;
    let token = common::token(&hub.emu, "iothubowner");
    let cert = reqwest::Certificate::from_pem(hub.emu.ca_pem().as_bytes())?;
    for (min, max) in [
        (
            reqwest::tls::Version::TLS_1_2,
            reqwest::tls::Version::TLS_1_2,
        ),
        (
            reqwest::tls::Version::TLS_1_3,
            reqwest::tls::Version::TLS_1_3,
        ),
    ] {
        let client = reqwest::Client::builder()
            .tls_certs_only([cert.clone()])
            .tls_version_min(min)
            .tls_version_max(max)
            .build()?;
        let r = client
            .get(hub.url("/devices/tls"))
            .header("authorization", &token)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
    }
    // 127.0.0.1 is in the certificate too.
    let url = format!(
        "https://127.0.0.1:{}/devices/tls?{}",
        hub.emu.https_port(),
        common::API
    );
    let r = hub
        .client
        .get(url)
        .header("authorization", &token)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // An untrusting client fails the handshake.
    let plain = reqwest::Client::builder().tls_certs_only([]).build()?;
    assert!(plain.get(hub.url("/devices/tls")).send().await.is_err());
    Ok(())
}
