//! Optional throttling: IoT Hub's per-operation quotas as token buckets, and random 429s.
//!
//! Off by default. A throttled request gets 429 `ThrottlingException` with IoT Hub's text
//! (`The request has been throttled. Wait 10 seconds and try again. Operation type: …`) and a
//! `Retry-After` header (seconds until the bucket has a token again; 1 for injected failures).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{ApiError, ErrorCode};

/// The operation classes IoT Hub meters separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationClass {
    /// Identity registry create/get/list/update/delete, bulk, statistics, purge.
    Registry,
    /// `POST /devices/query`.
    Query,
    /// Twin reads.
    TwinRead,
    /// Twin updates.
    TwinUpdate,
    /// Direct method invocations.
    DirectMethod,
    /// Configurations (automatic device management).
    Configuration,
    /// Cloud-to-device sends (AMQP `/messages/devicebound`).
    CloudToDeviceSend,
}

impl OperationClass {
    /// Every class.
    pub const ALL: [OperationClass; 7] = [
        OperationClass::Registry,
        OperationClass::Query,
        OperationClass::TwinRead,
        OperationClass::TwinUpdate,
        OperationClass::DirectMethod,
        OperationClass::Configuration,
        OperationClass::CloudToDeviceSend,
    ];

    /// The name used in the 429 message (`Operation type: …`).
    pub fn operation_type(self) -> &'static str {
        match self {
            OperationClass::Registry => "CRUD",
            OperationClass::Query => "Query",
            OperationClass::TwinRead => "TwinRead",
            OperationClass::TwinUpdate => "TwinUpdate",
            OperationClass::DirectMethod => "DirectMethod",
            OperationClass::Configuration => "Configuration",
            OperationClass::CloudToDeviceSend => "C2DSend",
        }
    }
}

/// A quota: `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Requests allowed per period (also the burst size).
    pub requests: u32,
    /// The period.
    pub per: Duration,
}

impl Quota {
    /// `n` requests per minute.
    pub const fn per_minute(n: u32) -> Self {
        Quota {
            requests: n,
            per: Duration::from_secs(60),
        }
    }

    /// `n` requests per second.
    pub const fn per_second(n: u32) -> Self {
        Quota {
            requests: n,
            per: Duration::from_secs(1),
        }
    }
}

/// A named set of quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottleProfile {
    /// No quotas.
    #[default]
    Off,
    /// Free, S1 and S2 (one unit): registry 100/min, queries 20/min, twin reads 100/s,
    /// twin updates 50/s, direct methods 40/s (160 KB/s metered in 4 KB), configurations 20/min,
    /// cloud-to-device sends 100/min (1.67/s).
    S1,
    /// S3 (one unit): registry 5000/min, queries 1000/min, twin reads 500/s, twin updates
    /// 250/s, direct methods 6000/s (24 MB/s in 4 KB), configurations 20/min, cloud-to-device
    /// sends 5000/min (83.33/s).
    S3,
}

impl FromStr for ThrottleProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(ThrottleProfile::Off),
            "s1" | "s2" | "free" | "f1" | "b1" | "b2" => Ok(ThrottleProfile::S1),
            "s3" | "b3" => Ok(ThrottleProfile::S3),
            other => Err(format!(
                "unknown throttle profile '{other}'; use off, s1, s2, s3 or free"
            )),
        }
    }
}

impl fmt::Display for ThrottleProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThrottleProfile::Off => "off",
            ThrottleProfile::S1 => "s1",
            ThrottleProfile::S3 => "s3",
        })
    }
}

/// Throttling settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThrottleConfig {
    quotas: HashMap<OperationClass, Quota>,
    failure_rate: f64,
}

impl ThrottleConfig {
    /// No throttling (the default).
    pub fn off() -> Self {
        Self::default()
    }

    /// The quotas of a profile.
    pub fn profile(profile: ThrottleProfile) -> Self {
        let quotas: &[(OperationClass, Quota)] = match profile {
            ThrottleProfile::Off => &[],
            ThrottleProfile::S1 => &[
                (OperationClass::Registry, Quota::per_minute(100)),
                (OperationClass::Query, Quota::per_minute(20)),
                (OperationClass::TwinRead, Quota::per_second(100)),
                (OperationClass::TwinUpdate, Quota::per_second(50)),
                (OperationClass::DirectMethod, Quota::per_second(40)),
                (OperationClass::Configuration, Quota::per_minute(20)),
                (OperationClass::CloudToDeviceSend, Quota::per_minute(100)),
            ],
            ThrottleProfile::S3 => &[
                (OperationClass::Registry, Quota::per_minute(5000)),
                (OperationClass::Query, Quota::per_minute(1000)),
                (OperationClass::TwinRead, Quota::per_second(500)),
                (OperationClass::TwinUpdate, Quota::per_second(250)),
                (OperationClass::DirectMethod, Quota::per_second(6000)),
                (OperationClass::Configuration, Quota::per_minute(20)),
                (OperationClass::CloudToDeviceSend, Quota::per_minute(5000)),
            ],
        };
        ThrottleConfig {
            quotas: quotas.iter().copied().collect(),
            failure_rate: 0.0,
        }
    }

    /// IoT Hub's S1 quotas (see [`ThrottleProfile::S1`]).
    pub fn s1() -> Self {
        Self::profile(ThrottleProfile::S1)
    }

    /// Sets (or replaces) the quota of one operation class.
    #[must_use]
    pub fn with_quota(mut self, class: OperationClass, quota: Quota) -> Self {
        self.quotas.insert(class, quota);
        self
    }

    /// Answers this fraction (0.0–1.0) of authorised requests with 429, at random.
    #[must_use]
    pub fn with_failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The quota of a class, if any.
    pub fn quota(&self, class: OperationClass) -> Option<Quota> {
        self.quotas.get(&class).copied()
    }

    /// The random failure rate.
    pub fn failure_rate(&self) -> f64 {
        self.failure_rate
    }

    /// Whether any throttling is configured.
    pub fn is_enabled(&self) -> bool {
        !self.quotas.is_empty() || self.failure_rate > 0.0
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Live throttling state.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    buckets: Mutex<HashMap<OperationClass, Bucket>>,
}

impl Throttle {
    /// State for `config`, with full buckets.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `class`, or answers why not.
    pub fn check(&self, class: OperationClass) -> Result<(), ApiError> {
        if !self.config.is_enabled() {
            return Ok(());
        }
        if let Some(quota) = self.config.quota(class) {
            let capacity = f64::from(quota.requests.max(1));
            let rate = capacity / quota.per.as_secs_f64().max(f64::MIN_POSITIVE);
            let now = Instant::now();
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let bucket = buckets.entry(class).or_insert(Bucket {
                tokens: capacity,
                updated: now,
            });
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
            } else {
                let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
                return Err(throttled(class).with_retry_after(wait));
            }
        }
        if self.config.failure_rate > 0.0 && rand::random::<f64>() < self.config.failure_rate {
            return Err(throttled(class).with_retry_after(1));
        }
        Ok(())
    }
}

fn throttled(class: OperationClass) -> ApiError {
    ApiError::new(
        ErrorCode::ThrottlingException,
        format!(
            "The request has been throttled. Wait 10 seconds and try again. Operation type: {}",
            class.operation_type()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties() {
        let t = Throttle::new(
            ThrottleConfig::off().with_quota(OperationClass::Query, Quota::per_minute(3)),
        );
        for _ in 0..3 {
            assert!(t.check(OperationClass::Query).is_ok());
        }
        let err = t.check(OperationClass::Query).err();
        assert_eq!(
            err.as_ref().map(|e| e.code().clone()),
            Some(ErrorCode::ThrottlingException)
        );
        assert!(t.check(OperationClass::Registry).is_ok());
    }

    #[test]
    fn failure_rate_one_always_fails() {
        let t = Throttle::new(ThrottleConfig::off().with_failure_rate(1.0));
        assert!(t.check(OperationClass::Registry).is_err());
        let t = Throttle::new(ThrottleConfig::off());
        assert!(t.check(OperationClass::Registry).is_ok());
    }

    #[test]
    fn profiles_parse() {
        assert_eq!("S1".parse::<ThrottleProfile>(), Ok(ThrottleProfile::S1));
        assert!("s9".parse::<ThrottleProfile>().is_err());
        assert_eq!(
            ThrottleConfig::s1().quota(OperationClass::Query),
            Some(Quota::per_minute(20))
        );
    }
}
