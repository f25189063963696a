//! What api-version 2024-03-31 clients (the Azure CLI) use and rely on, against an
//! in-process emulator: both api-versions, bulk key regeneration, applyConfigurationContent,
//! leaf devices' `parentScopes`, `ARRAY_CONTAINS` in twin queries and configuration metrics.

mod common;

use common::{Hub, TestResult, token};
use reqwest::Method;
use serde_json::{Value, json};

/// Sends a request as `iothubowner` with the given api-version (or none).
async fn call_with_version(
    hub: &Hub,
    version: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> common::Resp {
    let port = hub.emu.https_port();
    let url = match version {
        Some(v) => format!("https://localhost:{port}{path}?api-version={v}"),
        None => format!("https://localhost:{port}{path}"),
    };
    hub.raw(
        Some(&token(&hub.emu, "iothubowner")),
        method,
        &url,
        body.map(|b| b.to_string()),
        &[],
    )
    .await
}

async fn call24(hub: &Hub, method: Method, path: &str, body: Option<Value>) -> common::Resp {
    call_with_version(hub, Some("2024-03-31"), method, path, body).await
}

async fn query_ids(hub: &Hub, query: &str) -> Vec<String> {
    let r = call24(
        hub,
        Method::POST,
        "/devices/query",
        Some(json!({ "query": query })),
    )
    .await;
    r.expect(200, None);
    r.body
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["deviceId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn the_hub_answers_both_api_versions() -> TestResult {
    let hub = Hub::start().await;
    let old = call_with_version(
        &hub,
        Some("2021-04-12"),
        Method::PUT,
        "/devices/v1",
        Some(json!({"deviceId": "v1"})),
    )
    .await;
    old.expect(200, None);
    let new = call24(&hub, Method::GET, "/devices/v1", None).await;
    new.expect(200, None);
    assert_eq!(old.body, new.body, "the same identity under both versions");
    let twin_old =
        call_with_version(&hub, Some("2021-04-12"), Method::GET, "/twins/v1", None).await;
    let twin_new = call24(&hub, Method::GET, "/twins/v1", None).await;
    twin_old.expect(200, None);
    assert_eq!(twin_old.body, twin_new.body);
    // Key regeneration is a 2024-03-31 operation; the hub routes it whatever the version.
    call24(
        &hub,
        Method::POST,
        "/devices/keys/regenerate",
        Some(json!({"policyKey": "both", "devices": [{"id": "v1"}]})),
    )
    .await
    .expect(200, None);
    call_with_version(&hub, None, Method::GET, "/devices/v1", None)
        .await
        .expect(400, Some("InvalidProtocolVersion"));
    Ok(())
}

fn keys(device: &Value) -> (String, String) {
    let k = &device["authentication"]["symmetricKey"];
    (
        k["primaryKey"].as_str().unwrap_or_default().to_owned(),
        k["secondaryKey"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn key_regeneration_all_partial_and_none() -> TestResult {
    let hub = Hub::start().await;
    let d1 = hub.create_device("d1").await;
    hub.create_device("d2").await;
    call24(
        &hub,
        Method::PUT,
        "/devices/d1/modules/m1",
        Some(json!({"moduleId": "m1"})),
    )
    .await
    .expect(200, None);
    call24(
        &hub,
        Method::PUT,
        "/devices/x509",
        Some(json!({"authentication": {"type": "certificateAuthority"}})),
    )
    .await
    .expect(200, None);
    let (p1, s1) = keys(&d1);

    // Partial: one device missing → 207, one rotated entry and one error.
    let r = call24(
        &hub,
        Method::POST,
        "/devices/keys/regenerate",
        Some(json!({"policyKey": "primaryKey", "devices": [{"id": "d1"}, {"id": "ghost"}]})),
    )
    .await;
    r.expect(207, None);
    assert_eq!(r.body["policyKey"], "primaryKey");
    let rotated = r.body["rotatedKeys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let errors = r.body["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(rotated.len(), 1, "{}", r.body);
    assert_eq!(errors.len(), 1, "{}", r.body);
    assert_eq!(rotated[0]["id"], "d1");
    assert_eq!(errors[0]["id"], "ghost");
    assert_eq!(errors[0]["errorCode"], "DeviceNotFound");
    assert!(
        errors[0]["errorStatus"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let got = call24(&hub, Method::GET, "/devices/d1", None).await;
    let (p2, s2) = keys(&got.body);
    assert_ne!(p2, p1, "primary key replaced");
    assert_eq!(s2, s1, "secondary key kept");
    assert_eq!(rotated[0]["primaryKey"], p2.as_str());
    assert_eq!(rotated[0]["secondaryKey"], s2.as_str());
    assert_eq!(got.body["etag"], "Mg==", "the identity's ETag moved");

    // All succeed (a device and a module, both keys) → 200 with no errors.
    let m1 = call24(&hub, Method::GET, "/devices/d1/modules/m1", None).await;
    let r = call24(
        &hub,
        Method::POST,
        "/devices/keys/regenerate",
        Some(
            json!({"policyKey": "both", "devices": [{"id": "d2"}, {"id": "d1", "moduleId": "m1"}]}),
        ),
    )
    .await;
    r.expect(200, None);
    assert_eq!(r.body["errors"], json!([]));
    assert_eq!(r.body["rotatedKeys"][1]["moduleId"], "m1");
    let m1_after = call24(&hub, Method::GET, "/devices/d1/modules/m1", None).await;
    let (mp, ms) = keys(&m1_after.body);
    assert_ne!((mp.clone(), ms.clone()), keys(&m1.body));
    assert_eq!(r.body["rotatedKeys"][1]["primaryKey"], mp.as_str());

    // None succeed → 400 with the same result shape.
    let r = call24(
        &hub,
        Method::POST,
        "/devices/keys/regenerate",
        Some(json!({"policyKey": "secondaryKey", "devices": [
            {"id": "d1", "moduleId": "nope"}, {"id": "ghost", "moduleId": "m1"}, {"id": "x509"}
        ]})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["rotatedKeys"], json!([]));
    let codes: Vec<_> = r.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["errorCode"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        codes,
        ["ModuleNotFound", "DeviceNotFound", "InvalidOperation"]
    );
    assert_eq!(r.body["errors"][0]["moduleId"], "nope");

    // Malformed requests are refused before anything changes.
    let before = call24(&hub, Method::GET, "/devices/d2", None).await;
    for (body, status, code) in [
        (
            json!({"policyKey": "tertiaryKey", "devices": [{"id": "d2"}]}),
            400,
            "InvalidPolicyKey",
        ),
        (json!({"devices": [{"id": "d2"}]}), 400, "InvalidPolicyKey"),
        (
            json!({"policyKey": "both", "devices": []}),
            400,
            "ArgumentInvalid",
        ),
        (
            json!({"policyKey": "both", "devices": [{"id": "d2"}, {"moduleId": "m1"}]}),
            400,
            "IotHubFormatError",
        ),
        (
            json!({"policyKey": "both", "devices": "d2"}),
            400,
            "IotHubFormatError",
        ),
        (
            json!({"policyKey": "both", "devices": (0..101).map(|i| json!({"id": format!("d{i}")})).collect::<Vec<_>>()}),
            413,
            "TooManyDevices",
        ),
    ] {
        call24(&hub, Method::POST, "/devices/keys/regenerate", Some(body))
            .await
            .expect(status, Some(code));
    }
    let after = call24(&hub, Method::GET, "/devices/d2", None).await;
    assert_eq!(before.body, after.body, "no partial write");

    // A device named "keys" still has its own routes.
    hub.create_device("keys").await;
    call24(
        &hub,
        Method::PUT,
        "/devices/keys/modules/m",
        Some(json!({"moduleId": "m"})),
    )
    .await
    .expect(200, None);
    Ok(())
}

#[tokio::test]
async fn leaf_devices_get_parent_scopes_in_identity_twin_and_queries() -> TestResult {
    let hub = Hub::start().await;
    let edge = call24(
        &hub,
        Method::PUT,
        "/devices/E",
        Some(json!({"deviceId": "E", "capabilities": {"iotEdge": true}})),
    )
    .await;
    edge.expect(200, None);
    let scope = edge.body["deviceScope"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!scope.is_empty());
    hub.create_device("other").await;

    let leaf = call24(
        &hub,
        Method::PUT,
        "/devices/leaf",
        Some(json!({"deviceId": "leaf", "deviceScope": scope})),
    )
    .await;
    leaf.expect(200, None);
    assert_eq!(leaf.body["parentScopes"], json!([scope]));
    assert_eq!(leaf.body["deviceScope"], scope.as_str());
    let twin = call24(&hub, Method::GET, "/twins/leaf", None).await;
    assert_eq!(twin.body["parentScopes"], json!([scope]));
    assert_eq!(twin.body["deviceScope"], scope.as_str());
    let children =
        format!("SELECT deviceId FROM devices WHERE array_contains(parentScopes, '{scope}')");
    assert_eq!(query_ids(&hub, &children).await, ["leaf"]);
    let star = "SELECT * FROM devices WHERE deviceId = 'leaf'";
    let r = call24(
        &hub,
        Method::POST,
        "/devices/query",
        Some(json!({ "query": star })),
    )
    .await;
    assert_eq!(r.body[0]["parentScopes"], json!([scope]));

    // Clearing the scope clears the parent.
    let cleared = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/leaf",
            Some(json!({"deviceId": "leaf", "deviceScope": ""})),
            &[("if-match", "*")],
        )
        .await;
    cleared.expect(200, None);
    assert_eq!(cleared.body["parentScopes"], json!([]));
    assert!(cleared.body.get("deviceScope").is_none());
    let twin = call24(&hub, Method::GET, "/twins/leaf", None).await;
    assert_eq!(twin.body["parentScopes"], json!([]));
    assert!(query_ids(&hub, &children).await.is_empty());

    // An edge child of an edge parent names its parent in parentScopes and keeps its own scope.
    let child = call24(
        &hub,
        Method::PUT,
        "/devices/E2",
        Some(json!({"capabilities": {"iotEdge": true}, "parentScopes": [scope]})),
    )
    .await;
    child.expect(200, None);
    assert_eq!(child.body["parentScopes"], json!([scope]));
    assert_ne!(child.body["deviceScope"], scope.as_str());
    assert_eq!(query_ids(&hub, &children).await, ["E2"]);

    // Functions only message routing has are refused, as IoT Hub refuses them in twin queries.
    call24(
        &hub,
        Method::POST,
        "/devices/query",
        Some(json!({"query": "SELECT * FROM devices WHERE LOWER(deviceId) = 'e'"})),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    Ok(())
}

#[tokio::test]
async fn apply_configuration_content_sets_module_twins_of_edge_devices_only() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("plain").await;
    call24(
        &hub,
        Method::PUT,
        "/devices/E",
        Some(json!({"capabilities": {"iotEdge": true}})),
    )
    .await
    .expect(200, None);
    call24(
        &hub,
        Method::PATCH,
        "/twins/E/modules/$edgeAgent",
        Some(json!({"tags": {"keep": 1}})),
    )
    .await
    .expect(200, None);
    let content = json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": {"sensor": {"type": "docker"}}}},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}},
        "sensor": {"properties.desired": {"interval": 5}}
    }});

    call24(
        &hub,
        Method::POST,
        "/devices/plain/applyConfigurationContent",
        Some(content.clone()),
    )
    .await
    .expect(400, Some("ArgumentInvalid"));
    call24(
        &hub,
        Method::POST,
        "/devices/ghost/applyConfigurationContent",
        Some(content.clone()),
    )
    .await
    .expect(404, Some("DeviceNotFound"));
    assert!(
        call24(&hub, Method::GET, "/devices/plain/modules", None)
            .await
            .body
            .as_array()
            .is_some_and(Vec::is_empty),
        "nothing was written to the non-edge device"
    );

    let r = call24(
        &hub,
        Method::POST,
        "/devices/E/applyConfigurationContent",
        Some(content),
    )
    .await;
    r.expect(204, None);
    let agent = call24(&hub, Method::GET, "/twins/E/modules/$edgeAgent", None).await;
    assert_eq!(agent.body["properties"]["desired"]["schemaVersion"], "1.1");
    assert_eq!(
        agent.body["properties"]["desired"]["modules"]["sensor"]["type"],
        "docker"
    );
    assert_eq!(
        agent.body["tags"]["keep"], 1,
        "tags are not part of the content"
    );
    let sensor = call24(&hub, Method::GET, "/twins/E/modules/sensor", None).await;
    sensor.expect(200, None);
    assert_eq!(sensor.body["properties"]["desired"]["interval"], 5);

    // A second deployment replaces the desired properties as a whole.
    call24(
        &hub,
        Method::POST,
        "/devices/E/applyConfigurationContent",
        Some(json!({"modulesContent": {"sensor": {"properties.desired": {"mode": "fast"}}}})),
    )
    .await
    .expect(204, None);
    let sensor = call24(&hub, Method::GET, "/twins/E/modules/sensor", None).await;
    assert!(
        sensor.body["properties"]["desired"]
            .get("interval")
            .is_none()
    );
    assert_eq!(sensor.body["properties"]["desired"]["mode"], "fast");

    // Malformed content changes nothing, not even the modules listed before the bad one.
    for (body, code) in [
        (json!({}), "ArgumentInvalid"),
        (json!({"modulesContent": {}}), "ArgumentInvalid"),
        (
            json!({"modulesContent": {"sensor": {"properties.desired": {"mode": "slow"}}, "bad": {"desired": {}}}}),
            "IotHubFormatError",
        ),
        (
            json!({"modulesContent": {"sensor": {"properties.desired": 3}}}),
            "IotHubFormatError",
        ),
    ] {
        call24(
            &hub,
            Method::POST,
            "/devices/E/applyConfigurationContent",
            Some(body),
        )
        .await
        .expect(400, Some(code));
    }
    let sensor = call24(&hub, Method::GET, "/twins/E/modules/sensor", None).await;
    assert_eq!(sensor.body["properties"]["desired"]["mode"], "fast");
    Ok(())
}

#[tokio::test]
async fn configurations_report_system_and_custom_metrics() -> TestResult {
    let hub = Hub::start().await;
    for (id, edge, env) in [
        ("a", false, "prod"),
        ("b", false, "prod"),
        ("c", false, "dev"),
        ("e1", true, "prod"),
    ] {
        call24(
            &hub,
            Method::PUT,
            &format!("/devices/{id}"),
            Some(json!({"capabilities": {"iotEdge": edge}})),
        )
        .await
        .expect(200, None);
        call24(
            &hub,
            Method::PATCH,
            &format!("/twins/{id}"),
            Some(json!({"tags": {"env": env}})),
        )
        .await
        .expect(200, None);
    }
    let r = call24(
        &hub,
        Method::PUT,
        "/configurations/c1",
        Some(json!({
            "id": "c1", "targetCondition": "tags.env = 'prod'",
            "content": {"deviceContent": {"properties.desired.x": 1}},
            "metrics": {"queries": {"dev": "SELECT deviceId FROM devices WHERE tags.env = 'dev'"}}
        })),
    )
    .await;
    r.expect(200, None);
    let sm = &r.body["systemMetrics"];
    assert_eq!(
        sm["queries"]["targetedCount"],
        "select deviceId from devices where tags.env = 'prod'"
    );
    assert_eq!(
        sm["queries"]["appliedCount"],
        "select deviceId from devices where configurations.[[c1]].status = 'Applied'"
    );
    assert_eq!(sm["results"]["targetedCount"], 3);
    assert_eq!(sm["results"]["appliedCount"], 0);
    assert_eq!(r.body["metrics"]["results"]["dev"], 1);

    // GET recomputes: a new matching device is counted.
    hub.create_device("d").await;
    call24(
        &hub,
        Method::PATCH,
        "/twins/d",
        Some(json!({"tags": {"env": "prod"}})),
    )
    .await
    .expect(200, None);
    let got = call24(&hub, Method::GET, "/configurations/c1", None).await;
    assert_eq!(got.body["systemMetrics"]["results"]["targetedCount"], 4);
    let list = call24(&hub, Method::GET, "/configurations", None).await;
    assert_eq!(list.body[0]["systemMetrics"]["results"]["targetedCount"], 4);

    // The metric queries run as queries, bracket syntax included.
    for q in ["appliedCount", "targetedCount"] {
        let text = got.body["systemMetrics"]["queries"][q]
            .as_str()
            .unwrap_or_default();
        call24(
            &hub,
            Method::POST,
            "/devices/query",
            Some(json!({ "query": text })),
        )
        .await
        .expect(200, None);
    }

    // An edge deployment targets edge devices only and counts $edgeAgent twins as applied.
    let r = call24(
        &hub,
        Method::PUT,
        "/configurations/deploy1",
        Some(json!({
            "targetCondition": "tags.env = 'prod'",
            "content": {"modulesContent": {"$edgeAgent": {"properties.desired": {}}}}
        })),
    )
    .await;
    r.expect(200, None);
    assert_eq!(
        r.body["systemMetrics"]["queries"]["targetedCount"],
        "select deviceId from devices where capabilities.iotEdge = true and (tags.env = 'prod')"
    );
    assert_eq!(
        r.body["systemMetrics"]["queries"]["appliedCount"],
        "select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[deploy1]].status = 'Applied'"
    );
    assert_eq!(r.body["systemMetrics"]["results"]["targetedCount"], 1);

    // A module configuration counts module twins.
    call24(&hub, Method::PUT, "/devices/a/modules/m", Some(json!({})))
        .await
        .expect(200, None);
    let r = call24(
        &hub,
        Method::PUT,
        "/configurations/mc",
        Some(json!({
            "targetCondition": "moduleId = 'm'",
            "content": {"moduleContent": {"properties.desired.y": 1}}
        })),
    )
    .await;
    r.expect(200, None);
    assert_eq!(r.body["systemMetrics"]["results"]["targetedCount"], 1);

    // Queries the hub cannot run are refused when the configuration is written.
    call24(
        &hub,
        Method::PUT,
        "/configurations/bad",
        Some(json!({"targetCondition": "tags.env = ", "content": {"deviceContent": {}}})),
    )
    .await
    .expect(400, Some("InvalidConfigurationTargetCondition"));
    call24(
        &hub,
        Method::PUT,
        "/configurations/bad",
        Some(json!({"targetCondition": "tags.env = 'x'", "metrics": {"queries": {"m": "SELECT FROM"}}})),
    )
    .await
    .expect(400, Some("InvalidConfigurationCustomMetricsQuery"));
    call24(&hub, Method::GET, "/configurations/bad", None)
        .await
        .expect(404, Some("ConfigurationNotFound"));
    Ok(())
}
