//! Per-request `Authorization` headers, cached and renewed.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sas::{self, SasToken};
use crate::{AuthError, ConnectionString, SharedAccessKey};

/// The Azure AD scope for IoT Hub data-plane access.
pub const IOTHUB_AAD_SCOPE: &str = "https://iothubs.azure.net/.default";

/// Default lifetime of generated SAS tokens (one hour, as the official SDKs use).
pub const DEFAULT_SAS_TTL: Duration = Duration::from_secs(3600);

/// Longest time before expiry at which a cached token is renewed.
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(300);

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The value of an `Authorization` header. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationHeader(String);

impl AuthorizationHeader {
    /// The header value to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthorizationHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationHeader(<redacted>)")
    }
}

/// Where a client gets its `Authorization` header from. Cheap to clone; clones share one cache.
///
/// - A shared access key signs SAS tokens, valid for a TTL (default one hour) and renewed
///   before they expire (at most five minutes, and at most a fifth of the TTL, before).
/// - A fixed SAS token supplied by the caller is sent as is.
/// - An Azure AD [`azure_core::credentials::TokenCredential`] (feature `token-credential`)
///   is asked for a token with scope [`IOTHUB_AAD_SCOPE`], cached until two minutes
///   before it expires, and sent as `Bearer`.
#[derive(Clone)]
pub struct HubCredential {
    inner: Arc<Inner>,
}

enum Inner {
    Key(KeySigner),
    Fixed(AuthorizationHeader),
    #[cfg(feature = "token-credential")]
    Aad(AadSource),
}

struct KeySigner {
    resource_uri: String,
    key_name: Option<String>,
    key: SharedAccessKey,
    ttl: Duration,
    clock: Clock,
    cached: Mutex<Option<SasToken>>,
}

impl HubCredential {
    /// Signs with the key of a service connection string, or of a device/module string
    /// (device-scoped tokens: `sr=<host>/devices/<id>[/modules/<mid>]`, no `skn`).
    pub fn from_connection_string(cs: &ConnectionString) -> Result<Self, AuthError> {
        let key = cs
            .shared_access_key()
            .ok_or(AuthError::NoServiceKey)?
            .clone();
        match (cs.shared_access_key_name(), cs.device_id()) {
            (Some(policy), _) => Ok(Self::shared_access_key(cs.host_name(), Some(policy), key)),
            (None, Some(device)) => {
                let mut uri = format!("{}/devices/{device}", cs.host_name());
                if let Some(module) = cs.module_id() {
                    uri.push_str(&format!("/modules/{module}"));
                }
                Ok(Self::shared_access_key(uri, None, key))
            }
            (None, None) => Err(AuthError::NoServiceKey),
        }
    }

    /// Signs tokens for `resource_uri` (usually the hub host name) with `key`.
    pub fn shared_access_key(
        resource_uri: impl Into<String>,
        key_name: Option<&str>,
        key: SharedAccessKey,
    ) -> Self {
        Self::from_inner(Inner::Key(KeySigner {
            resource_uri: resource_uri.into(),
            key_name: key_name.map(str::to_owned),
            key,
            ttl: DEFAULT_SAS_TTL,
            clock: Arc::new(SystemTime::now),
            cached: Mutex::new(None),
        }))
    }

    /// Sends a SAS token the caller made (`SharedAccessSignature …`) unchanged.
    pub fn sas_token(token: impl Into<String>) -> Self {
        Self::from_inner(Inner::Fixed(AuthorizationHeader(token.into())))
    }

    /// Uses an Azure AD token credential with the IoT Hub scope.
    #[cfg(feature = "token-credential")]
    pub fn token_credential(credential: Arc<dyn azure_core::credentials::TokenCredential>) -> Self {
        Self::from_inner(Inner::Aad(AadSource {
            credential,
            cached: Mutex::new(None),
        }))
    }

    /// Sets the lifetime of generated SAS tokens (default one hour, kept between one second
    /// and ten years). No effect on other kinds.
    #[must_use]
    pub fn with_sas_ttl(self, ttl: Duration) -> Self {
        const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
        self.map_signer(|s| s.ttl = ttl.clamp(Duration::from_secs(1), TEN_YEARS))
    }

    /// Replaces the clock used to stamp and renew SAS tokens (for tests).
    #[must_use]
    pub fn with_clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.map_signer(|s| s.clock = Arc::new(clock))
    }

    /// The `Authorization` header value for the next request.
    pub async fn authorization_header(&self) -> Result<AuthorizationHeader, AuthError> {
        match &*self.inner {
            Inner::Key(signer) => signer.header(),
            Inner::Fixed(header) => Ok(header.clone()),
            #[cfg(feature = "token-credential")]
            Inner::Aad(source) => source.header().await,
        }
    }

    /// The hub host this credential signs for, when it signs SAS tokens.
    pub fn resource_uri(&self) -> Option<&str> {
        match &*self.inner {
            Inner::Key(s) => Some(&s.resource_uri),
            _ => None,
        }
    }

    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Applies `f` to a signer of its own (a clone's cache is left alone), dropping any
    /// cached token; other kinds of credential are returned unchanged.
    fn map_signer(self, f: impl FnOnce(&mut KeySigner)) -> Self {
        let Inner::Key(signer) = &*self.inner else {
            return self;
        };
        let mut signer = KeySigner {
            resource_uri: signer.resource_uri.clone(),
            key_name: signer.key_name.clone(),
            key: signer.key.clone(),
            ttl: signer.ttl,
            clock: signer.clock.clone(),
            cached: Mutex::new(None),
        };
        f(&mut signer);
        Self::from_inner(Inner::Key(signer))
    }
}

impl KeySigner {
    fn header(&self) -> Result<AuthorizationHeader, AuthError> {
        let now = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AuthError::Clock)?;
        let margin = (self.ttl / 5).min(MAX_RENEW_MARGIN);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = cached.as_ref()
            && Duration::from_secs(token.expiry_unix()) > now + margin
        {
            return Ok(AuthorizationHeader(token.expose().to_owned()));
        }
        let expiry = (now + self.ttl).as_secs();
        let token = sas::generate_sas_token(
            &self.resource_uri,
            &self.key,
            self.key_name.as_deref(),
            expiry,
        );
        let header = AuthorizationHeader(token.expose().to_owned());
        *cached = Some(token);
        Ok(header)
    }
}

#[cfg(feature = "token-credential")]
struct AadSource {
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
    cached: Mutex<Option<(AuthorizationHeader, SystemTime)>>,
}

#[cfg(feature = "token-credential")]
impl AadSource {
    const MARGIN: Duration = Duration::from_secs(120);

    async fn header(&self) -> Result<AuthorizationHeader, AuthError> {
        let now = SystemTime::now();
        if let Some((header, expires)) = &*self.cached.lock().unwrap_or_else(|p| p.into_inner())
            && *expires > now + Self::MARGIN
        {
            return Ok(header.clone());
        }
        let token = self
            .credential
            .get_token(&[IOTHUB_AAD_SCOPE], None)
            .await
            .map_err(AuthError::TokenCredential)?;
        let header = AuthorizationHeader(format!("Bearer {}", token.token.secret()));
        let expires = UNIX_EPOCH
            + Duration::from_secs(u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0));
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((header.clone(), expires));
        Ok(header)
    }
}

impl fmt::Debug for HubCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Key(s) => f
                .debug_struct("HubCredential::SharedAccessKey")
                .field("resource_uri", &s.resource_uri)
                .field("key_name", &s.key_name)
                .field("ttl", &s.ttl)
                .finish_non_exhaustive(),
            Inner::Fixed(_) => f.write_str("HubCredential::SasToken(<redacted>)"),
            #[cfg(feature = "token-credential")]
            Inner::Aad(s) => f
                .debug_struct("HubCredential::TokenCredential")
                .field("credential", &s.credential)
                .finish_non_exhaustive(),
        }
    }
}
