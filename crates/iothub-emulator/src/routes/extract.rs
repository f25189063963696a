//! Extractors that reject with IoT Hub-shaped errors: authorisation (with throttling), JSON
//! bodies, path and query parameters, and `If-Match`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::auth::{self, Rights};
use crate::error::{ApiError, ErrorCode};
use crate::throttle::OperationClass;

/// What an operation needs: rights (any of them suffices) and its throttling class.
pub trait Operation {
    /// Rights of which the caller's policy needs at least one.
    const RIGHTS: Rights;
    /// Throttling class.
    const CLASS: OperationClass;
    /// Name of the needed right, for the error message.
    const NEEDS: &'static str;
}

macro_rules! operation {
    ($(#[$doc:meta])* $name:ident, $rights:expr, $class:expr, $needs:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl Operation for $name {
            const RIGHTS: Rights = $rights;
            const CLASS: OperationClass = $class;
            const NEEDS: &'static str = $needs;
        }
    };
}

operation!(
    /// Read the identity registry.
    RegistryRead, Rights::REGISTRY_READ, OperationClass::Registry, "RegistryRead"
);
operation!(
    /// Change the identity registry.
    RegistryWrite, Rights::REGISTRY_WRITE, OperationClass::Registry, "RegistryReadWrite"
);
operation!(
    /// Read a twin.
    TwinRead,
    Rights::REGISTRY_READ.union(Rights::SERVICE_CONNECT),
    OperationClass::TwinRead,
    "ServiceConnect or RegistryRead"
);
operation!(
    /// Change a twin.
    TwinWrite,
    Rights::REGISTRY_WRITE.union(Rights::SERVICE_CONNECT),
    OperationClass::TwinUpdate,
    "ServiceConnect or RegistryReadWrite"
);
operation!(
    /// Run a query.
    QueryOp,
    Rights::REGISTRY_READ.union(Rights::SERVICE_CONNECT),
    OperationClass::Query,
    "ServiceConnect or RegistryRead"
);
operation!(
    /// Invoke a direct method.
    MethodOp, Rights::SERVICE_CONNECT, OperationClass::DirectMethod, "ServiceConnect"
);
operation!(
    /// Service-side messaging operations (purge) and service statistics.
    ServiceOp, Rights::SERVICE_CONNECT, OperationClass::Registry, "ServiceConnect"
);
operation!(
    /// Read configurations.
    ConfigRead, Rights::REGISTRY_READ, OperationClass::Configuration, "RegistryRead"
);
operation!(
    /// Change configurations.
    ConfigWrite, Rights::REGISTRY_WRITE, OperationClass::Configuration, "RegistryReadWrite"
);

operation!(
    /// Read jobs (import/export and scheduled).
    JobRead, Rights::REGISTRY_READ, OperationClass::Registry, "RegistryRead"
);
operation!(
    /// Create and cancel jobs.
    JobWrite, Rights::REGISTRY_WRITE, OperationClass::Registry, "RegistryReadWrite"
);

/// Proof that the request carries a valid token whose policy allows operation `O`, and that
/// it was not throttled.
pub struct Authorized<O>(PhantomData<O>);

impl<O: Operation> FromRequestParts<AppState> for Authorized<O> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let info = auth::RequestInfo {
            host_header: host,
            https_port: state.https_port,
            path: parts.uri.path(),
            now: SystemTime::now(),
        };
        let policy = auth::authenticate(&state.policies, header, info)?;
        if !policy.rights().intersects(O::RIGHTS) {
            return Err(ApiError::unauthorized(format!(
                "The shared access policy '{}' does not grant {}, which this operation requires.",
                policy.name(),
                O::NEEDS
            )));
        }
        state.throttle.check(O::CLASS)?;
        Ok(Authorized(PhantomData))
    }
}

/// A JSON request body; malformed JSON or wrong types give 400 `IotHubFormatError`, an empty
/// body 400 `ArgumentNull`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::MessageTooLarge, "The request body is too large.")
            } else {
                ApiError::new(
                    ErrorCode::GenericBadRequest,
                    "The request body could not be read.",
                )
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                ErrorCode::ArgumentNull,
                "The request body is required.",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::format(format!(
                "The request body is not valid: {}.",
                crate::error::json_problem(&e)
            ))
        })
    }
}

/// Path parameters; undecodable values give 400 `ArgumentInvalid`.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|e| {
                ApiError::invalid(format!("The request path is not valid: {}", e.body_text()))
            })
    }
}

/// Query-string parameters as a map.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
                .map_err(|_| ApiError::invalid("The query string is not valid."))?;
        Ok(QueryParams(pairs.into_iter().collect()))
    }
}

/// The `If-Match` header of a write, parsed by the one rule every write uses: absent →
/// `None` (create, or an unconditional delete); `*`, a quoted ETag (`"MQ=="`), a weak one
/// (`W/"MQ=="`) or a bare token (`MQ==`) → the ETag; anything else — blank, `""`, `W/""`,
/// `W/`, unbalanced quotes, spaces or lists — → 412 `PreconditionFailed`.
///
/// # Errors
/// 412 `PreconditionFailed` when the header is present but not one of the forms above.
pub fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(crate::model::parse_etag)
            .map(|etag| Some(etag.to_owned()))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::PreconditionFailed,
                    "The If-Match header is not valid: send the ETag (quoted, weak or bare) or \"*\".",
                )
            }),
    }
}

/// Parses a numeric query parameter or header, the one way every route does: ASCII digits
/// only (no sign, spaces or exponent) and within `min..=max`.
///
/// # Errors
/// 400 `ArgumentInvalid` naming the parameter and the accepted range.
pub fn parse_count(name: &str, text: &str, min: u32, max: u32) -> Result<u32, ApiError> {
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u32>().ok().filter(|n| (min..=max).contains(n))
    } else {
        None
    };
    parsed.ok_or_else(|| {
        ApiError::invalid(format!(
            "The value '{}' of {name} is not valid; use a whole number from {min} to {max}.",
            text.escape_default()
        ))
    })
}

/// Largest value of an `int32` parameter.
pub const INT32_MAX: u32 = i32::MAX as u32;

/// Parses a `top` query parameter with [`parse_count`]: 1..=`max`, default `default`.
///
/// # Errors
/// 400 `ArgumentInvalid` for anything [`parse_count`] refuses.
pub fn top_param(
    params: &HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match params.get("top") {
        None => Ok(default),
        Some(text) => parse_count("top", text, 1, max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        for ok in ["*", "\"MQ==\"", "W/\"MQ==\"", "MQ==", " \"AAAA\" "] {
            assert!(crate::model::parse_etag(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "\"\"",
            "W/\"\"",
            "W/",
            "\"a",
            "a\"",
            "\"a\", \"b\"",
            "a b",
        ] {
            assert_eq!(crate::model::parse_etag(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("top", "5", 1, 10).ok(), Some(5));
        for bad in ["", " 5 ", "+5", "-1", "0", "11", "2147483648", "1e1", "5.0"] {
            assert!(parse_count("top", bad, 1, 10).is_err(), "{bad:?}");
        }
    }
}
