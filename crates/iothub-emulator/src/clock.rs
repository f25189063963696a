//! Time: the injectable clock and IoT Hub's time format.
//!
//! Everything that stamps a time into the registry (twin `$metadata`, `statusUpdatedTime`,
//! generation ids) or decides by time (C2D expiry) takes it from a [`Clock`], so tests can
//! run the rules at a fixed instant.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Source of the current time. The emulator uses [`system_clock`]; tests pass a closure that
/// returns a fixed or stepped instant.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A clock stopped at `at` (for tests).
#[cfg(test)]
pub fn fixed_clock(at: DateTime<Utc>) -> Clock {
    Arc::new(move || at)
}

/// What IoT Hub shows for a time that was never set.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// Formats a time as IoT Hub does: `2024-01-02T03:04:05.6789012Z` (seven fractional digits).
pub fn format_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678901234Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(format_time(t), "2024-01-02T03:04:05.6789012Z");
        assert_eq!(
            format_time(fixed_clock(t)()),
            "2024-01-02T03:04:05.6789012Z"
        );
    }
}
