//! Authorisation: SAS validation failures and policy rights.

mod common;

use common::{Hub, TestResult, token, token_with};
use iothub_auth::SharedAccessKey;
use iothub_auth::sas::generate_sas_token;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn invalid_tokens_are_rejected() -> TestResult {
    let hub = Hub::start().await;
    let url = hub.url("/devices");
    let unauthorized = Some("IotHubUnauthorizedAccess");

    hub.raw(None, Method::GET, &url, None, &[])
        .await
        .expect(401, unauthorized);
    let expired = token_with(&hub.emu, "iothubowner", common::now() - 10);
    hub.raw(Some(&expired), Method::GET, &url, None, &[])
        .await
        .expect(401, unauthorized);

    let wrong_key = SharedAccessKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")?;
    let host = hub.emu.host_name();
    let bad_sig = generate_sas_token(&host, &wrong_key, Some("iothubowner"), common::now() + 600);
    hub.raw(Some(bad_sig.expose()), Method::GET, &url, None, &[])
        .await
        .expect(401, unauthorized);

    let good = token(&hub.emu, "iothubowner");
    let unknown_policy = good.replace("skn=iothubowner", "skn=nobody");
    hub.raw(Some(&unknown_policy), Method::GET, &url, None, &[])
        .await
        .expect(401, unauthorized);

    let key = SharedAccessKey::from_base64(iothub_emulator::WELL_KNOWN_KEY)?;
    let device_token = generate_sas_token(
        &format!("{host}/devices/d1"),
        &key,
        None,
        common::now() + 600,
    );
    hub.raw(Some(device_token.expose()), Method::GET, &url, None, &[])
        .await
        .expect(401, unauthorized);

    let other_hub = generate_sas_token(
        "myhub.azure-devices.net",
        &key,
        Some("iothubowner"),
        common::now() + 600,
    );
    hub.raw(Some(other_hub.expose()), Method::GET, &url, None, &[])
        .await
        .expect(401, unauthorized);

    let bearer = hub
        .raw(Some("Bearer eyJhbGciOi.x.y"), Method::GET, &url, None, &[])
        .await;
    bearer.expect(401, unauthorized);
    assert!(
        bearer.body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("not supported")
    );

    hub.raw(
        Some("SharedAccessSignature garbage"),
        Method::GET,
        &url,
        None,
        &[],
    )
    .await
    .expect(401, unauthorized);
    Ok(())
}

#[tokio::test]
async fn accepted_token_forms() -> TestResult {
    let hub = Hub::start().await;
    let url = hub.url("/devices");
    let key = SharedAccessKey::from_base64(iothub_emulator::WELL_KNOWN_KEY)?;
    let expiry = common::now() + 600;
    // Without the port, with 127.0.0.1, in upper case.
    for sr in ["localhost", "127.0.0.1", "LOCALHOST", &hub.emu.host_name()] {
        let t = generate_sas_token(sr, &key, Some("iothubowner"), expiry);
        hub.raw(Some(t.expose()), Method::GET, &url, None, &[])
            .await
            .expect(200, None);
    }
    // Fields in another order (as the Node SDK sends them) and a raw, unencoded `sr`.
    let t = generate_sas_token(&hub.emu.host_name(), &key, Some("iothubowner"), expiry);
    let text = t
        .expose()
        .trim_start_matches("SharedAccessSignature ")
        .to_owned();
    let mut fields: Vec<&str> = text.split('&').collect();
    fields.reverse();
    let reordered = format!("SharedAccessSignature {}", fields.join("&"));
    hub.raw(Some(&reordered), Method::GET, &url, None, &[])
        .await
        .expect(200, None);
    let raw_sr = reordered.replace("%3A", ":");
    hub.raw(Some(&raw_sr), Method::GET, &url, None, &[])
        .await
        .expect(200, None);
    // The secondary key of a policy works too.
    let service = iothub_emulator::Policies::new(&key);
    let secondary = SharedAccessKey::from_base64(
        &service
            .get("service")
            .map(|p| p.secondary_key())
            .unwrap_or_default(),
    )?;
    let t = generate_sas_token("localhost", &secondary, Some("service"), expiry);
    hub.raw(
        Some(t.expose()),
        Method::GET,
        &hub.url("/statistics/service"),
        None,
        &[],
    )
    .await
    .expect(200, None);
    Ok(())
}

#[tokio::test]
async fn policy_rights_are_enforced() -> TestResult {
    let hub = Hub::start().await;
    hub.create_device("r1").await;
    let unauthorized = Some("IotHubUnauthorizedAccess");
    let put = |id: &str| (Method::PUT, format!("/devices/{id}"), Some(json!({})));

    // registryRead: reads only.
    hub.call_as("registryRead", Method::GET, "/devices/r1", None, &[])
        .await
        .expect(200, None);
    hub.call_as(
        "registryRead",
        Method::GET,
        "/statistics/devices",
        None,
        &[],
    )
    .await
    .expect(200, None);
    let (m, p, b) = put("r2");
    hub.call_as("registryRead", m, &p, b, &[])
        .await
        .expect(401, unauthorized);
    hub.call_as("registryRead", Method::DELETE, "/devices/r1", None, &[])
        .await
        .expect(401, unauthorized);
    hub.call_as(
        "registryRead",
        Method::POST,
        "/devices",
        Some(json!([{"id": "x"}])),
        &[],
    )
    .await
    .expect(401, unauthorized);
    hub.call_as(
        "registryRead",
        Method::PATCH,
        "/twins/r1",
        Some(json!({"tags": {"a": 1}})),
        &[],
    )
    .await
    .expect(401, unauthorized);
    hub.call_as(
        "registryRead",
        Method::POST,
        "/twins/r1/methods",
        Some(json!({"methodName": "m"})),
        &[],
    )
    .await
    .expect(401, unauthorized);

    // registryReadWrite: registry writes.
    let (m, p, b) = put("r3");
    hub.call_as("registryReadWrite", m, &p, b, &[])
        .await
        .expect(200, None);

    // service: no registry, but twins, methods, purge and service statistics.
    hub.call_as("service", Method::GET, "/devices/r1", None, &[])
        .await
        .expect(401, unauthorized);
    let (m, p, b) = put("r4");
    hub.call_as("service", m, &p, b, &[])
        .await
        .expect(401, unauthorized);
    hub.call_as("service", Method::GET, "/statistics/devices", None, &[])
        .await
        .expect(401, unauthorized);
    hub.call_as("service", Method::GET, "/twins/r1", None, &[])
        .await
        .expect(200, None);
    hub.call_as(
        "service",
        Method::PATCH,
        "/twins/r1",
        Some(json!({"tags": {"a": 1}})),
        &[],
    )
    .await
    .expect(200, None);
    hub.call_as("service", Method::DELETE, "/devices/r1/commands", None, &[])
        .await
        .expect(200, None);
    hub.call_as("service", Method::GET, "/statistics/service", None, &[])
        .await
        .expect(200, None);
    let r = hub
        .call_as(
            "service",
            Method::POST,
            "/twins/r1/methods",
            Some(json!({"methodName": "m"})),
            &[],
        )
        .await;
    r.expect(404, None);
    assert_eq!(r.error_code(), Some("DeviceNotOnline"));
    Ok(())
}
