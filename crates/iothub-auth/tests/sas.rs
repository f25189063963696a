//! SAS tokens checked against vectors computed by Python's `hmac` (tests/fixtures).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_auth::sas::{ParsedSasToken, generate_sas_token};
use iothub_auth::{ConnectionString, HubCredential, SharedAccessKey};

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    key: String,
    resource_uri: String,
    key_name: Option<String>,
    expiry: u64,
    token: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("fixtures/sas_vectors.json")).unwrap()
}

#[test]
fn generated_tokens_match_python_hmac() {
    for v in vectors() {
        let key = SharedAccessKey::from_base64(&v.key).unwrap();
        let token = generate_sas_token(&v.resource_uri, &key, v.key_name.as_deref(), v.expiry);
        assert_eq!(token.expose(), v.token, "{}", v.name);
        assert_eq!(token.expiry_unix(), v.expiry);
    }
}

#[test]
fn parsed_tokens_verify_and_reject_wrong_keys() {
    let other = SharedAccessKey::from_base64("b3RoZXIga2V5IG90aGVyIGtleQ==").unwrap();
    for v in vectors() {
        let key = SharedAccessKey::from_base64(&v.key).unwrap();
        let parsed = ParsedSasToken::parse(&v.token).unwrap();
        assert_eq!(parsed.resource_uri, v.resource_uri, "{}", v.name);
        assert_eq!(parsed.key_name, v.key_name);
        assert_eq!(parsed.expiry, v.expiry);
        assert!(parsed.verify(&key), "{}", v.name);
        assert!(!parsed.verify(&other), "{}", v.name);
        // A tampered expiry invalidates the signature.
        let tampered = v
            .token
            .replace(&format!("se={}", v.expiry), &format!("se={}", v.expiry + 1));
        assert!(
            !ParsedSasToken::parse(&tampered).unwrap().verify(&key),
            "{}",
            v.name
        );
    }
}

#[test]
fn field_order_and_raw_resource_uri_are_accepted() {
    let key = SharedAccessKey::from_base64(&vectors()[0].key).unwrap();
    // Node orders the fields sr, sig, skn, se.
    let token = generate_sas_token("localhost:8443", &key, Some("iothubowner"), 1800000000);
    let parts: Vec<&str> = token.expose()["SharedAccessSignature ".len()..]
        .split('&')
        .collect();
    let reordered = format!(
        "SharedAccessSignature {}&{}&{}&{}",
        parts[3], parts[1], parts[0], parts[2]
    );
    assert!(ParsedSasToken::parse(&reordered).unwrap().verify(&key));
    // uamqp puts the raw host in `sr` and signs it raw.
    let raw_signed = {
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD
            .encode(key.sign(b"localhost:25671\n1800000000"));
        format!(
            "SharedAccessSignature sr=localhost:25671&sig={}&se=1800000000&skn=iothubowner",
            iothub_auth::sas::encode(&sig)
        )
    };
    let parsed = ParsedSasToken::parse(&raw_signed).unwrap();
    assert_eq!(parsed.resource_uri, "localhost:25671");
    assert!(parsed.verify(&key));
}

#[test]
fn expiry_is_checked_against_the_clock() {
    let parsed = ParsedSasToken::parse(&vectors()[0].token).unwrap();
    assert!(parsed.is_expired(UNIX_EPOCH + Duration::from_secs(1700000000)));
    assert!(!parsed.is_expired(UNIX_EPOCH + Duration::from_secs(1699999999)));
}

#[test]
fn debug_output_hides_signatures() {
    let v = &vectors()[0];
    let parsed = ParsedSasToken::parse(&v.token).unwrap();
    let key = SharedAccessKey::from_base64(&v.key).unwrap();
    let token = generate_sas_token(&v.resource_uri, &key, None, v.expiry);
    for shown in [
        format!("{parsed:?}"),
        format!("{token:?}"),
        format!("{key:?}"),
    ] {
        assert!(
            !shown.contains("sJAIZ") && !shown.contains(&v.key),
            "{shown}"
        );
    }
}

fn fixed_clock(
    start: u64,
) -> (
    Arc<AtomicU64>,
    impl Fn() -> SystemTime + Send + Sync + 'static,
) {
    let now = Arc::new(AtomicU64::new(start));
    let handle = now.clone();
    (handle, move || {
        UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst))
    })
}

#[tokio::test]
async fn credential_caches_and_renews_before_expiry() {
    let cs: ConnectionString = format!(
        "HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey={}",
        vectors()[0].key
    )
    .parse()
    .unwrap();
    let (now, clock) = fixed_clock(1799996400);
    let credential = HubCredential::from_connection_string(&cs)
        .unwrap()
        .with_clock(clock);
    let first = credential.authorization_header().await.unwrap();
    // Default TTL is one hour: 1799996400 + 3600 = 1800000000, the Python vector.
    assert_eq!(first.expose(), vectors()[1].token);
    now.store(1799996400 + 3000, Ordering::SeqCst); // 10 minutes left: still cached
    assert_eq!(
        credential.clone().authorization_header().await.unwrap(),
        first
    );
    now.store(1799996400 + 3400, Ordering::SeqCst); // under 5 minutes left: renewed
    let renewed = credential.authorization_header().await.unwrap();
    assert_ne!(renewed, first);
    assert!(renewed.expose().contains("se=1800003400"));
}

#[tokio::test]
async fn credential_and_header_debug_hide_secrets() {
    let v = &vectors()[0];
    let cs: ConnectionString = format!(
        "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={}",
        v.key
    )
    .parse()
    .unwrap();
    let signing = HubCredential::from_connection_string(&cs).unwrap();
    let header = signing.authorization_header().await.unwrap();
    let fixed = HubCredential::sas_token(header.expose());
    let fixed_header = fixed.authorization_header().await.unwrap();
    assert_eq!(format!("{header:?}"), "AuthorizationHeader(<redacted>)");
    for shown in [
        format!("{signing:?}"),
        format!("{header:?}"),
        format!("{fixed:?}"),
        format!("{fixed_header:?}"),
    ] {
        assert!(
            !shown.contains("sig=") && !shown.contains(&v.key),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn credential_ttl_is_configurable_and_device_strings_sign_device_scope() {
    let v = &vectors()[2];
    let cs: ConnectionString = format!(
        "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey={}",
        v.key
    )
    .parse()
    .unwrap();
    let (_now, clock) = fixed_clock(1700003600 - 600);
    let credential = HubCredential::from_connection_string(&cs)
        .unwrap()
        .with_sas_ttl(Duration::from_secs(600))
        .with_clock(clock);
    assert_eq!(
        credential.authorization_header().await.unwrap().expose(),
        v.token
    );
}

#[tokio::test]
async fn token_credential_is_cached_with_iothub_scope() {
    use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};

    #[derive(Debug)]
    struct Counting(AtomicU64);
    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, ["https://iothubs.azure.net/.default"]);
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                Secret::new(format!("jwt{n}")),
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }

    let source = Arc::new(Counting(AtomicU64::new(0)));
    let credential = HubCredential::token_credential(source.clone());
    assert_eq!(
        credential.authorization_header().await.unwrap().expose(),
        "Bearer jwt0"
    );
    assert_eq!(
        credential.authorization_header().await.unwrap().expose(),
        "Bearer jwt0"
    );
    assert_eq!(source.0.load(Ordering::SeqCst), 1);
    assert!(!format!("{credential:?}").contains("jwt0"));
}

#[tokio::test]
async fn ttl_applies_to_a_credential_that_was_cloned_before() {
    let key = SharedAccessKey::from_base64(&vectors()[0].key).unwrap();
    let (_now, clock) = fixed_clock(1_000_000);
    let original = HubCredential::shared_access_key("h", Some("p"), key).with_clock(clock);
    let _clone = original.clone();
    let short = original.with_sas_ttl(Duration::from_secs(60));
    let header = short.authorization_header().await.unwrap();
    assert!(header.expose().contains("se=1000060"), "{header:?}");
}
