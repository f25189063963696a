//! The device side: MQTT and the HTTPS device routes, driven with a raw MQTT client (so each
//! test decides what the device acknowledges) and reqwest.

mod common;

use std::time::Duration;

use common::mqtt::{Raw, device_token};
use common::{Hub, TestResult, now};
use iothub_c2d::{Ack, C2dClient, FeedbackStatus, Message};
use reqwest::Method;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Packet;
use serde_json::{Value, json};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn hub() -> Hub {
    Hub::start_with(|b| {
        b.amqps_port(0)
            .mqtts_port(0)
            .feedback_batch_interval(Duration::from_millis(100))
    })
    .await
}

async fn sas_device(hub: &Hub, id: &str) {
    hub.call(
        Method::PUT,
        &format!("/devices/{id}"),
        Some(json!({"deviceId": id, "authentication": {"type": "sas",
            "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}}})),
    )
    .await
    .expect(200, None);
}

async fn connect(hub: &Hub, client_id: &str) -> (Raw, u8) {
    let (device, module) = match client_id.split_once('/') {
        Some((d, m)) => (d, Some(m)),
        None => (client_id, None),
    };
    let host = hub.emu.host_name();
    let password = device_token(&host, device, module, KEY, now() + 3600);
    Raw::connect(
        hub.emu.mqtts_port(),
        &hub.emu.ca_pem(),
        &host,
        client_id,
        &password,
    )
    .await
}

async fn connected(hub: &Hub, client_id: &str) -> Raw {
    let (raw, code) = connect(hub, client_id).await;
    assert_eq!(code, 0, "CONNACK for {client_id}");
    raw
}

fn c2d(hub: &Hub) -> C2dClient {
    C2dClient::builder()
        .connection_string(&hub.emu.connection_string())
        .amqps_port(hub.emu.amqps_port())
        .add_root_certificate_pem(hub.emu.ca_pem())
        .build()
        .unwrap_or_else(|e| panic!("c2d client: {e}"))
}

/// Invokes a direct method on `device` in the background, as the `service` policy; yields
/// the status and the JSON body.
fn invoke_later(
    hub: &Hub,
    device: &str,
    body: Value,
) -> tokio::task::JoinHandle<Result<(u16, Value), reqwest::Error>> {
    let url = hub.url(&format!("/twins/{device}/methods"));
    let client = hub.client.clone();
    let auth = common::token(&hub.emu, "service");
    tokio::spawn(async move {
        let response = client
            .post(url)
            .header("authorization", auth)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        ))
    })
}

/// Takes the next method request from `raw`, answers it with `status` and `body`, and
/// returns the request.
async fn answer_method(raw: &mut Raw, status: i32, body: &[u8]) -> rumqttc::mqttbytes::v4::Publish {
    let request = raw.next_publish().await;
    let rid = request
        .topic
        .rsplit("$rid=")
        .next()
        .unwrap_or_default()
        .to_owned();
    raw.publish(
        &format!("$iothub/methods/res/{status}/?$rid={rid}"),
        QoS::AtMostOnce,
        0,
        body,
    )
    .await;
    request
}

/// Polls `f` until it returns true (5 s at most).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn connect_refusals_use_iot_hubs_return_codes() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "d1").await;
    let host = hub.emu.host_name();
    let (port, ca) = (hub.emu.mqtts_port(), hub.emu.ca_pem());
    let other_key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let wrong = device_token(&host, "d1", None, other_key, now() + 60);
    assert_eq!(
        Raw::connect(port, &ca, &host, "d1", &wrong).await.1,
        5,
        "wrong key"
    );
    let expired = device_token(&host, "d1", None, KEY, now() - 1);
    assert_eq!(
        Raw::connect(port, &ca, &host, "d1", &expired).await.1,
        5,
        "expired token"
    );
    let for_other = device_token(&host, "d2", None, KEY, now() + 60);
    assert_eq!(
        Raw::connect(port, &ca, &host, "d1", &for_other).await.1,
        4,
        "token for another device"
    );
    assert_eq!(
        Raw::connect(port, &ca, &host, "d1", "not a token").await.1,
        4,
        "malformed token"
    );
    let unknown = device_token(&host, "nobody", None, KEY, now() + 60);
    assert_eq!(
        Raw::connect(port, &ca, &host, "nobody", &unknown).await.1,
        5,
        "unknown device"
    );
    hub.call_as("iothubowner", Method::PUT, "/devices/d1", Some(json!({"deviceId": "d1", "status": "disabled",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}}})), &[("if-match", "*")])
        .await
        .expect(200, None);
    let good = device_token(&host, "d1", None, KEY, now() + 60);
    assert_eq!(
        Raw::connect(port, &ca, &host, "d1", &good).await.1,
        5,
        "disabled device"
    );
    Ok(())
}

#[tokio::test]
async fn connection_state_follows_the_connection() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "cs1").await;
    let before = hub.call(Method::GET, "/devices/cs1", None).await;
    let etag = before.body["etag"].clone();
    let raw = connected(&hub, "cs1").await;
    eventually("Connected in the identity", || async {
        hub.call(Method::GET, "/devices/cs1", None).await.body["connectionState"] == "Connected"
    })
    .await;
    let device = hub.call(Method::GET, "/devices/cs1", None).await.body;
    assert_eq!(
        device["etag"], etag,
        "a connection does not change the device ETag"
    );
    assert_ne!(device["connectionStateUpdatedTime"], "0001-01-01T00:00:00Z");
    let stats = hub
        .call(Method::GET, "/statistics/service", None)
        .await
        .body;
    assert_eq!(stats["connectedDeviceCount"], 1);
    let q = hub
        .call(Method::POST, "/devices/query",
            Some(json!({"query": "SELECT deviceId FROM devices WHERE connectionState = 'Connected'"})))
        .await
        .body;
    assert_eq!(q, json!([{"deviceId": "cs1"}]));
    drop(raw);
    eventually("Disconnected again", || async {
        hub.call(Method::GET, "/twins/cs1", None).await.body["connectionState"] == "Disconnected"
    })
    .await;
    let stats = hub
        .call(Method::GET, "/statistics/service", None)
        .await
        .body;
    assert_eq!(stats["connectedDeviceCount"], 0);
    Ok(())
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "r1").await;
    let mut first = connected(&hub, "r1").await;
    let _second = connected(&hub, "r1").await;
    assert!(first.closed().await, "the first connection is closed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let device = hub.call(Method::GET, "/devices/r1", None).await.body;
    assert_eq!(
        device["connectionState"], "Connected",
        "the replaced connection's end does not disconnect the new one"
    );
    Ok(())
}

#[tokio::test]
async fn c2d_is_delivered_in_order_completed_by_puback_and_redelivered_after_a_disconnect()
-> TestResult {
    let hub = hub().await;
    sas_device(&hub, "c1").await;
    let sender = c2d(&hub);
    for i in 0..3 {
        sender
            .send(
                "c1",
                Message::new(format!("m{i}").into_bytes())
                    .with_message_id(format!("id{i}"))
                    .with_property("k", "v w")
                    .with_ack(Ack::Full),
            )
            .await?;
    }
    let mut raw = connected(&hub, "c1").await;
    assert_eq!(
        raw.subscribe(1, "devices/c1/messages/devicebound/#", QoS::AtLeastOnce)
            .await,
        vec![1]
    );
    let first = raw.next_publish().await;
    assert_eq!(first.qos, QoS::AtLeastOnce);
    assert_eq!(&first.payload[..], b"m0");
    let bag = first
        .topic
        .strip_prefix("devices/c1/messages/devicebound/")
        .unwrap_or_default();
    let props = iothub_core::mqtt::decode_property_bag(bag);
    assert!(props.contains(&("$.mid".into(), "id0".into())), "{props:?}");
    assert!(props.contains(&("k".into(), "v w".into())), "{props:?}");
    assert!(
        props.contains(&("iothub-ack".into(), "full".into())),
        "{props:?}"
    );
    assert!(
        props.contains(&("$.to".into(), "/devices/c1/messages/devicebound".into())),
        "{props:?}"
    );
    let second = raw.next_publish().await;
    let third = raw.next_publish().await;
    assert_eq!(
        (&second.payload[..], &third.payload[..]),
        (&b"m1"[..], &b"m2"[..])
    );
    // Only the first is acknowledged before the device goes away.
    raw.puback(first.pkid).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut raw = connected(&hub, "c1").await;
    raw.subscribe(1, "devices/c1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let again = raw.next_publish().await;
    assert_eq!(
        &again.payload[..],
        b"m1",
        "the completed message is never delivered again"
    );
    assert!(again.dup, "a redelivery is marked DUP");
    let again2 = raw.next_publish().await;
    assert_eq!(&again2.payload[..], b"m2");
    raw.puback(again.pkid).await;
    raw.puback(again2.pkid).await;
    assert!(
        raw.recv_within(Duration::from_millis(300)).await.is_none(),
        "nothing else is delivered"
    );
    eventually("queue empty", || async {
        hub.call(Method::GET, "/devices/c1", None).await.body["cloudToDeviceMessageCount"] == 0
    })
    .await;

    // Success feedback for the three completions.
    let mut feedback = sender.feedback_receiver().await?;
    let mut ids = Vec::new();
    while ids.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(5), feedback.next_batch())
            .await??
            .ok_or("feedback ended")?;
        for record in batch.records {
            assert_eq!(record.status, FeedbackStatus::Success);
            ids.push(record.original_message_id.unwrap_or_default());
        }
    }
    ids.sort();
    assert_eq!(ids, ["id0", "id1", "id2"]);
    Ok(())
}

#[tokio::test]
async fn delivery_count_goes_up_on_redelivery_and_over_https() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "h1").await;
    let sender = c2d(&hub);
    sender
        .send(
            "h1",
            Message::new(b"hello".to_vec())
                .with_property("a", "1")
                .with_ack(Ack::Negative),
        )
        .await?;
    // Delivered over MQTT, never acknowledged.
    let mut raw = connected(&hub, "h1").await;
    raw.subscribe(1, "devices/h1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    raw.next_publish().await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let host = hub.emu.host_name();
    let auth = device_token(&host, "h1", None, KEY, now() + 600);
    let url = hub.url("/devices/h1/messages/deviceBound");
    let got = hub.raw(Some(&auth), Method::GET, &url, None, &[]).await;
    assert_eq!(got.status, 200);
    let header = |n: &str| {
        got.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("iothub-deliverycount"), "2");
    assert_eq!(header("iothub-app-a"), "1");
    assert_eq!(header("iothub-ack"), "negative");
    let lock = header("etag");
    let token = lock.trim_matches('"');
    // Locked: a second receive finds nothing.
    assert_eq!(
        hub.raw(Some(&auth), Method::GET, &url, None, &[])
            .await
            .status,
        204
    );
    // Abandon puts it back; reject removes it with Rejected feedback.
    let abandon = hub.url(&format!("/devices/h1/messages/devicebound/{token}/abandon"));
    assert_eq!(
        hub.raw(Some(&auth), Method::POST, &abandon, None, &[])
            .await
            .status,
        204
    );
    assert_eq!(
        hub.raw(Some(&auth), Method::POST, &abandon, None, &[])
            .await
            .status,
        412
    );
    let got = hub.raw(Some(&auth), Method::GET, &url, None, &[]).await;
    assert_eq!(
        got.headers
            .get("iothub-deliverycount")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let lock = got
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    let reject = hub.url(&format!("/devices/h1/messages/devicebound/{lock}?reject"));
    assert_eq!(
        hub.raw(Some(&auth), Method::DELETE, &reject, None, &[])
            .await
            .status,
        204
    );
    let again = hub
        .raw(Some(&auth), Method::DELETE, &reject, None, &[])
        .await;
    again.expect(412, Some("DeviceMessageLockLost"));
    let mut feedback = sender.feedback_receiver().await?;
    let batch = tokio::time::timeout(Duration::from_secs(5), feedback.next_batch())
        .await??
        .ok_or("feedback ended")?;
    assert_eq!(batch.records[0].status, FeedbackStatus::Rejected);
    // Another identity's token is refused.
    let other = device_token(&host, "h2", None, KEY, now() + 600);
    assert_eq!(
        hub.raw(Some(&other), Method::GET, &url, None, &[])
            .await
            .status,
        401
    );
    Ok(())
}

#[tokio::test]
async fn direct_methods_reach_a_subscribed_device_and_time_out() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "m1").await;
    let mut raw = connected(&hub, "m1").await;
    raw.subscribe(1, "$iothub/methods/POST/#", QoS::AtMostOnce)
        .await;
    let invoke = invoke_later(
        &hub,
        "m1",
        json!({"methodName": "reboot", "payload": {"in": 5}, "responseTimeoutInSeconds": 5}),
    );
    let request = raw.next_publish().await;
    let rid = request
        .topic
        .rsplit("$rid=")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        request
            .topic
            .starts_with("$iothub/methods/POST/reboot/?$rid="),
        "{}",
        request.topic
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&request.payload)?,
        json!({"in": 5})
    );
    raw.publish(
        &format!("$iothub/methods/res/201/?$rid={rid}"),
        QoS::AtMostOnce,
        0,
        br#"{"done":true}"#,
    )
    .await;
    assert_eq!(invoke.await??.0, 200);
    // The answer body, through a second call, whose timeouts are strings of digits as
    // Microsoft's `az iot hub invoke-device-method` sends them.
    let answered = invoke_later(
        &hub,
        "m1",
        json!({"methodName": "ping", "responseTimeoutInSeconds": "5", "connectTimeoutInSeconds": "5"}),
    );
    answer_method(&mut raw, -7, br#"[1,2]"#).await;
    assert_eq!(answered.await??.1, json!({"status": -7, "payload": [1, 2]}));
    // No answer: 504 GatewayTimeout after the response timeout.
    let r = hub
        .call_as(
            "service",
            Method::POST,
            "/twins/m1/methods",
            Some(json!({"methodName": "slow", "responseTimeoutInSeconds": 5})),
            &[],
        )
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.error_code(), Some("GatewayTimeout"));
    Ok(())
}

#[tokio::test]
async fn a_method_waits_for_a_device_that_connects_within_the_connect_timeout() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "late").await;
    let call = invoke_later(
        &hub,
        "late",
        json!({"methodName": "hi", "connectTimeoutInSeconds": 5, "responseTimeoutInSeconds": 5}),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut raw = connected(&hub, "late").await;
    raw.subscribe(1, "$iothub/methods/POST/#", QoS::AtMostOnce)
        .await;
    answer_method(&mut raw, 200, b"\"ok\"").await;
    assert_eq!(call.await??.1, json!({"status": 200, "payload": "ok"}));
    // Nothing connected and no connect timeout: 404103 at once.
    let r = hub
        .call_as(
            "service",
            Method::POST,
            "/twins/late2/methods",
            Some(json!({"methodName": "x"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    Ok(())
}

#[tokio::test]
async fn twins_over_mqtt_get_report_and_desired_pushes() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "t1").await;
    hub.call(Method::PUT, "/devices/t1/modules/m1", Some(json!({"moduleId": "m1",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": KEY, "secondaryKey": KEY}}})))
        .await
        .expect(200, None);
    for client_id in ["t1", "t1/m1"] {
        let twin_path = match client_id.split_once('/') {
            Some((d, m)) => format!("/twins/{d}/modules/{m}"),
            None => format!("/twins/{client_id}"),
        };
        let mut raw = connected(&hub, client_id).await;
        raw.subscribe(1, "$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        raw.subscribe(
            2,
            "$iothub/twin/PATCH/properties/desired/#",
            QoS::AtMostOnce,
        )
        .await;
        raw.publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=r1",
            QoS::AtMostOnce,
            0,
            br#"{"temp": 21, "nested": {"a": 1}}"#,
        )
        .await;
        let answer = raw.next_publish().await;
        assert_eq!(
            answer.topic, "$iothub/twin/res/204/?$rid=r1&$version=2",
            "{client_id}"
        );
        let twin = hub.call(Method::GET, &twin_path, None).await.body;
        assert_eq!(twin["properties"]["reported"]["temp"], 21);
        // A patch that breaks the twin rules is refused with 400 and changes nothing.
        raw.publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=r2",
            QoS::AtMostOnce,
            0,
            br#"{"bad key": 1}"#,
        )
        .await;
        assert!(
            raw.next_publish()
                .await
                .topic
                .starts_with("$iothub/twin/res/400/?$rid=r2")
        );
        raw.publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=r3",
            QoS::AtMostOnce,
            0,
            b"not json",
        )
        .await;
        assert!(
            raw.next_publish()
                .await
                .topic
                .starts_with("$iothub/twin/res/400/?$rid=r3")
        );
        // Desired changes from the service are pushed as merge patches.
        let etag = twin["etag"].as_str().unwrap_or_default().to_owned();
        hub.call_as(
            "iothubowner",
            Method::PATCH,
            &twin_path,
            Some(json!({"properties": {"desired": {"fan": true, "mode": "eco"}}})),
            &[("if-match", &format!("\"{etag}\""))],
        )
        .await
        .expect(200, None);
        let push = raw.next_publish().await;
        assert_eq!(
            push.topic,
            "$iothub/twin/PATCH/properties/desired/?$version=2"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&push.payload)?,
            json!({"fan": true, "mode": "eco", "$version": 2})
        );
        hub.call(
            Method::PUT,
            &twin_path,
            Some(json!({"properties": {"desired": {"fan": false}}})),
        )
        .await
        .expect(200, None);
        let push = raw.next_publish().await;
        assert_eq!(
            serde_json::from_slice::<Value>(&push.payload)?,
            json!({"fan": false, "mode": null, "$version": 3})
        );
        raw.publish("$iothub/twin/GET/?$rid=g1", QoS::AtMostOnce, 0, b"")
            .await;
        let got = raw.next_publish().await;
        assert_eq!(got.topic, "$iothub/twin/res/200/?$rid=g1");
        let body: Value = serde_json::from_slice(&got.payload)?;
        assert_eq!(body["desired"], json!({"fan": false, "$version": 3}));
        assert_eq!(body["reported"]["temp"], 21);
        assert_eq!(body["reported"]["$version"], 2);
    }
    Ok(())
}

#[tokio::test]
async fn telemetry_lands_in_the_event_log_with_iot_hubs_properties() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "e1").await;
    let mut raw = connected(&hub, "e1").await;
    let bag = iothub_core::mqtt::encode_property_bag(&[
        ("$.mid", "msg-1"),
        ("$.ct", "application/json"),
        ("$.ce", "utf-8"),
        ("level", "high"),
    ]);
    for i in 1..=20u16 {
        raw.publish(
            &iothub_core::mqtt::telemetry_topic("e1", None, &bag),
            QoS::AtLeastOnce,
            i,
            br#"{"t":1}"#,
        )
        .await;
    }
    let mut acked = Vec::new();
    while acked.len() < 20 {
        match raw.recv().await {
            Some(Packet::PubAck(a)) => acked.push(a.pkid),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert_eq!(acked, (1..=20).collect::<Vec<_>>(), "PUBACKs in order");
    // Over HTTPS too.
    let auth = device_token(&hub.emu.host_name(), "e1", None, KEY, now() + 600);
    let r = hub
        .raw(
            Some(&auth),
            Method::POST,
            &hub.url("/devices/e1/messages/events"),
            Some("via https".into()),
            &[("iothub-messageid", "h-1"), ("iothub-app-src", "http")],
        )
        .await;
    assert_eq!(r.status, 204);
    let log = hub.emu.telemetry();
    let stored = log.from_device("e1").await?;
    assert_eq!(stored.len(), 21);
    let first = &stored[0];
    assert_eq!(first.body, br#"{"t":1}"#);
    let sys = &first.system_properties;
    assert_eq!(sys["iothub-connection-device-id"], "e1");
    assert_eq!(sys["message-id"], "msg-1");
    assert_eq!(sys["content-type"], "application/json");
    assert_eq!(sys["content-encoding"], "utf-8");
    assert_eq!(sys["iothub-message-source"], "Telemetry");
    assert!(
        sys["iothub-connection-auth-method"]
            .as_str()
            .unwrap_or_default()
            .contains("sas")
    );
    let device = hub.call(Method::GET, "/devices/e1", None).await.body;
    assert_eq!(
        sys["iothub-connection-auth-generation-id"],
        device["generationId"]
    );
    assert_eq!(first.application_properties["level"], "high");
    assert!(
        stored
            .windows(2)
            .all(|w| w[0].sequence_number + 1 == w[1].sequence_number)
    );
    let last = &stored[20];
    assert_eq!(last.body, b"via https");
    assert_eq!(last.system_properties["message-id"], "h-1");
    assert_eq!(last.application_properties["src"], "http");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_without_affecting_other_devices() -> TestResult {
    let hub = hub().await;
    for id in ["b1", "b2", "victim"] {
        sas_device(&hub, id).await;
    }
    let mut victim = connected(&hub, "victim").await;
    victim
        .subscribe(1, "$iothub/methods/POST/#", QoS::AtMostOnce)
        .await;

    // Garbage instead of CONNECT.
    let mut garbage = Raw::open(hub.emu.mqtts_port(), &hub.emu.ca_pem()).await;
    garbage
        .send_bytes(&[0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3])
        .await;
    assert!(garbage.closed().await, "garbage closes the connection");
    // MQTT 5 is refused with return code 1.
    let mut v5 = Raw::open(hub.emu.mqtts_port(), &hub.emu.ca_pem()).await;
    v5.send_bytes(&[
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0, 0, 0,
    ])
    .await;
    match v5.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code as u8, 1),
        other => panic!("expected CONNACK 1, got {other:?}"),
    }
    // Publishing as another device closes the connection.
    let mut b1 = connected(&hub, "b1").await;
    b1.publish("devices/b2/messages/events/", QoS::AtLeastOnce, 1, b"spoof")
        .await;
    assert!(b1.closed().await);
    // Subscribing to everything is refused for that filter; the connection stays.
    let mut b1 = connected(&hub, "b1").await;
    assert_eq!(b1.subscribe(1, "#", QoS::AtLeastOnce).await, vec![0x80]);
    assert_eq!(
        b1.subscribe(2, "devices/b2/messages/devicebound/#", QoS::AtLeastOnce)
            .await,
        vec![0x80]
    );
    assert_eq!(
        b1.subscribe(3, "devices/b1/messages/devicebound/#", QoS::ExactlyOnce)
            .await,
        vec![1],
        "QoS 2 granted as 1"
    );
    // QoS 2 publish closes.
    b1.publish("devices/b1/messages/events/", QoS::ExactlyOnce, 4, b"x")
        .await;
    assert!(b1.closed().await);
    // An oversized packet closes; nothing is stored.
    let mut b2 = connected(&hub, "b2").await;
    b2.publish(
        "devices/b2/messages/events/",
        QoS::AtLeastOnce,
        1,
        &vec![b'x'; 300 * 1024],
    )
    .await;
    assert!(b2.closed().await);
    assert!(hub.emu.telemetry().from_device("b2").await?.is_empty());
    assert!(hub.emu.telemetry().from_device("b1").await?.is_empty());

    // The victim is still connected and answers a method.
    let call = invoke_later(
        &hub,
        "victim",
        json!({"methodName": "alive", "responseTimeoutInSeconds": 5}),
    );
    answer_method(&mut victim, 200, b"{}").await;
    assert_eq!(call.await??.0, 200);
    Ok(())
}

#[tokio::test]
async fn an_expired_token_ends_the_connection_and_a_reconnect_misses_nothing() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "x1").await;
    let host = hub.emu.host_name();
    let (port, ca) = (hub.emu.mqtts_port(), hub.emu.ca_pem());
    let short = device_token(&host, "x1", None, KEY, now() + 2);
    let (mut raw, code) = Raw::connect(port, &ca, &host, "x1", &short).await;
    assert_eq!(code, 0);
    raw.subscribe(1, "devices/x1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let sender = c2d(&hub);
    sender.send("x1", Message::new(b"before".to_vec())).await?;
    let got = raw.next_publish().await;
    assert_eq!(&got.payload[..], b"before");
    // Not acknowledged; the token runs out.
    let closed = tokio::time::timeout(Duration::from_secs(5), raw.closed()).await?;
    assert!(
        closed,
        "the hub closes the connection when the token expires"
    );
    sender
        .send("x1", Message::new(b"while away".to_vec()))
        .await?;
    let fresh = device_token(&host, "x1", None, KEY, now() + 600);
    let (mut raw, code) = Raw::connect(port, &ca, &host, "x1", &fresh).await;
    assert_eq!(code, 0);
    raw.subscribe(1, "devices/x1/messages/devicebound/#", QoS::AtLeastOnce)
        .await;
    let a = raw.next_publish().await;
    let b = raw.next_publish().await;
    assert_eq!(
        (&a.payload[..], &b.payload[..]),
        (&b"before"[..], &b"while away"[..])
    );
    Ok(())
}

#[tokio::test]
async fn mqtt_over_websockets_on_the_https_port() -> TestResult {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let hub = hub().await;
    sas_device(&hub, "w1").await;
    let tls = common::mqtt::tls(hub.emu.https_port(), &hub.emu.ca_pem()).await;
    let mut request = format!("wss://localhost:{}/$iothub/websocket", hub.emu.https_port())
        .into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse()?);
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls).await?;
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("mqtt")
    );
    let host = hub.emu.host_name();
    let mut connect = rumqttc::mqttbytes::v4::Connect::new("w1");
    connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
        format!("{host}/w1/?api-version=2021-04-12"),
        device_token(&host, "w1", None, KEY, now() + 600),
    ));
    let mut out = bytes::BytesMut::new();
    Packet::Connect(connect).write(&mut out, usize::MAX)?;
    ws.send(Ws::Binary(out.freeze())).await?;
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await?
        .ok_or("closed")??;
    assert_eq!(&reply.into_data()[..], &[0x20, 2, 0, 0], "CONNACK accepted");
    Ok(())
}

#[tokio::test]
async fn a_persistent_session_keeps_its_subscriptions() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "p1").await;
    let host = hub.emu.host_name();
    let token = device_token(&host, "p1", None, KEY, now() + 600);
    let (port, ca) = (hub.emu.mqtts_port(), hub.emu.ca_pem());
    let (mut raw, code, present) = Raw::open(port, &ca)
        .await
        .login(&host, "p1", &token, false)
        .await;
    assert_eq!((code, present), (0, false));
    raw.subscribe(1, "$iothub/methods/POST/#", QoS::AtMostOnce)
        .await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut raw, code, present) = Raw::open(port, &ca)
        .await
        .login(&host, "p1", &token, false)
        .await;
    assert_eq!((code, present), (0, true), "the session is present");
    let call = invoke_later(
        &hub,
        "p1",
        json!({"methodName": "kept", "responseTimeoutInSeconds": 5}),
    );
    answer_method(&mut raw, 200, b"null").await;
    assert_eq!(call.await??.0, 200);
    drop(raw);
    // A clean session forgets them.
    let (_raw, code, present) = Raw::open(port, &ca)
        .await
        .login(&host, "p1", &token, true)
        .await;
    assert_eq!((code, present), (0, false));
    Ok(())
}

/// A certificate for `cn`: self-signed, or signed by `issuer`. Returns (chain PEM, key PEM).
fn certificate(
    cn: &str,
    issuer: Option<&(rcgen::Issuer<'static, rcgen::KeyPair>, String)>,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = match issuer {
        None => params.self_signed(&key),
        Some((issuer, _)) => params.signed_by(&key, issuer),
    }
    .unwrap_or_else(|e| panic!("certificate: {e}"));
    (cert.pem(), key.serialize_pem())
}

fn test_ca() -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Device Test CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("CA: {e}"));
    let pem = cert.pem();
    (rcgen::Issuer::new(params, key), pem)
}

#[tokio::test]
async fn x509_devices_connect_with_their_certificate() -> TestResult {
    let ca = test_ca();
    let hub = Hub::start_with(|b| b.mqtts_port(0).amqps_port(0).trusted_ca_pem(ca.1.clone())).await;
    // Self-signed, registered by SHA-256 thumbprint (lower case) as the secondary one.
    let own = certificate("x-self", None);
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(own.0.as_bytes())
        .map(|d: rustls::pki_types::CertificateDer<'static>| d.to_vec())
        .unwrap_or_default();
    let sha256: String = <sha2::Sha256 as sha2::Digest>::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hub.call(Method::PUT, "/devices/x-self", Some(json!({"deviceId": "x-self", "authentication": {
        "type": "selfSigned", "x509Thumbprint": {"primaryThumbprint": "AB".repeat(20), "secondaryThumbprint": sha256}}})))
        .await
        .expect(200, None);
    hub.call(
        Method::PUT,
        "/devices/x-ca",
        Some(json!({"deviceId": "x-ca", "authentication": {"type": "certificateAuthority"}})),
    )
    .await
    .expect(200, None);
    let (port, pem) = (hub.emu.mqtts_port(), hub.emu.ca_pem());
    let host = hub.emu.host_name();
    let login = |raw: Raw, id: &'static str| {
        let host = host.clone();
        async move { raw.login(&host, id, "", true).await.1 }
    };
    assert_eq!(
        login(Raw::open_with_cert(port, &pem, &own).await, "x-self").await,
        0,
        "thumbprint match"
    );
    let stranger = certificate("x-self", None);
    assert_eq!(
        login(Raw::open_with_cert(port, &pem, &stranger).await, "x-self").await,
        5,
        "other certificate"
    );
    assert_eq!(
        login(Raw::open(port, &pem).await, "x-self").await,
        5,
        "no certificate"
    );
    let signed = certificate("x-ca", Some(&ca));
    assert_eq!(
        login(Raw::open_with_cert(port, &pem, &signed).await, "x-ca").await,
        0,
        "chained to the trusted CA"
    );
    let wrong_cn = certificate("someone-else", Some(&ca));
    assert_eq!(
        login(Raw::open_with_cert(port, &pem, &wrong_cn).await, "x-ca").await,
        5,
        "common name is not the device id"
    );
    let untrusted = certificate("x-ca", Some(&test_ca()));
    assert_eq!(
        login(Raw::open_with_cert(port, &pem, &untrusted).await, "x-ca").await,
        5,
        "untrusted CA"
    );
    // The event log records the X.509 login.
    let (mut raw, code, _) = Raw::open_with_cert(port, &pem, &signed)
        .await
        .login(&host, "x-ca", "", true)
        .await;
    assert_eq!(code, 0);
    raw.publish(
        "devices/x-ca/messages/events/",
        QoS::AtLeastOnce,
        1,
        b"cert",
    )
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::PubAck(_))));
    let stored = hub.emu.telemetry().from_device("x-ca").await?;
    assert!(
        stored[0].system_properties["iothub-connection-auth-method"]
            .as_str()
            .unwrap_or_default()
            .contains("x509Certificate")
    );
    Ok(())
}

#[tokio::test]
async fn a_message_abandoned_at_its_maximum_delivery_count_is_dead_lettered() -> TestResult {
    let hub = hub().await;
    sas_device(&hub, "dl1").await;
    let sender = c2d(&hub);
    sender
        .send(
            "dl1",
            Message::new(b"poison".to_vec())
                .with_message_id("p-1")
                .with_ack(Ack::Negative),
        )
        .await?;
    let auth = device_token(&hub.emu.host_name(), "dl1", None, KEY, now() + 600);
    let url = hub.url("/devices/dl1/messages/devicebound");
    for delivery in 1..=10 {
        let got = hub.raw(Some(&auth), Method::GET, &url, None, &[]).await;
        assert_eq!(got.status, 200, "delivery {delivery}");
        let header = |n: &str| {
            got.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("iothub-deliverycount"), delivery.to_string());
        let lock = header("etag");
        let abandon = hub.url(&format!(
            "/devices/dl1/messages/devicebound/{}/abandon",
            lock.trim_matches('"')
        ));
        assert_eq!(
            hub.raw(Some(&auth), Method::POST, &abandon, None, &[])
                .await
                .status,
            204
        );
    }
    // The eleventh delivery does not happen: the message is dead-lettered.
    assert_eq!(
        hub.raw(Some(&auth), Method::GET, &url, None, &[])
            .await
            .status,
        204
    );
    let mut feedback = sender.feedback_receiver().await?;
    let batch = tokio::time::timeout(Duration::from_secs(5), feedback.next_batch())
        .await??
        .ok_or("feedback ended")?;
    assert_eq!(
        batch.records[0].status,
        FeedbackStatus::DeliveryCountExceeded
    );
    assert_eq!(batch.records[0].original_message_id.as_deref(), Some("p-1"));
    let device = hub.call(Method::GET, "/devices/dl1", None).await.body;
    assert_eq!(device["cloudToDeviceMessageCount"], 0);
    Ok(())
}
