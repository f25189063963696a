//! IoT Hub's documented limits, each with the page it comes from.
//!
//! Sizes are in bytes (KB = 1024 bytes, as IoT Hub counts them), lengths of ids in
//! characters (ids are ASCII, so characters and bytes agree). Where IoT Hub publishes no
//! number and these constants record a value the iothub-rs emulator applies, the
//! constant's documentation says so.

use std::ops::RangeInclusive;
use std::time::Duration;

/// Longest device, module, message or correlation id, in characters.
///
/// Source: the identity registry guide and the REST reference for devices
/// (learn.microsoft.com/rest/api/iothub/service/devices); the cloud-to-device message
/// format applies the same rule to `message-id` and `correlation-id`.
pub const MAX_ID_LEN: usize = 128;

/// The characters allowed in ids besides ASCII letters and digits:
/// `- : . + % _ # * ? ! ( ) , = @ ; $ '`.
///
/// Source: the REST reference for devices and Event Grid's `deviceId` description. Older
/// versions of the identity registry guide leave out `:` and `;`; IoT Hub accepts them.
pub const ID_SPECIAL_CHARS: &str = "-:.+%_#*?!(),=@;$'";

/// IoT Hub's id rule for device ids, module ids, message ids and correlation ids: 1 to
/// [`MAX_ID_LEN`] characters, each an ASCII letter, digit or one of [`ID_SPECIAL_CHARS`].
/// Ids are case-sensitive.
///
/// ```
/// use iothub_core::limits::is_valid_id;
/// assert!(is_valid_id("building-7:floor_2"));
/// assert!(is_valid_id("$edgeAgent"));
/// assert!(!is_valid_id(""));
/// assert!(!is_valid_id("with space"));
/// assert!(!is_valid_id("slash/inside"));
/// ```
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || ID_SPECIAL_CHARS.as_bytes().contains(&b))
}

/// Longest `statusReason` of a device, in characters.
///
/// Source: the identity registry guide ("statusReason: … up to 128 characters").
pub const MAX_STATUS_REASON_LEN: usize = 128;

/// Most entries in one bulk registry request (`POST /devices`); more are refused with
/// TooManyDevices (413002).
///
/// Sources: an Azure IoT SDK maintainer's answer ("limited to 100 per invocation",
/// Azure/azure-iot-sdks#673) and the Java SDK's test helpers ("IoT hub only allows for bulk
/// adding of devices at up to 100 per request", Azure/azure-iot-sdk-java#987).
pub const MAX_BULK_DEVICES: usize = 100;

/// Most identities `GET /devices` returns in one call; only an export job returns them all.
///
/// Source: the identity registry guide ("List up to 1000 identities").
pub const MAX_LIST_DEVICES: usize = 1000;

/// Largest cloud-to-device message, in bytes (64 KB); a larger one is refused with
/// MessageTooLarge (413001).
///
/// Source: "IoT Hub quotas and throttling", other limits ("Cloud-to-device messaging:
/// maximum message size 64 KB").
pub const MAX_C2D_MESSAGE_BYTES: usize = 64 * 1024;

/// Most cloud-to-device messages waiting for one device; one more is refused with
/// DeviceMaximumQueueDepthExceeded (403004).
///
/// Source: "IoT Hub quotas and throttling", other limits ("Maximum pending messages for
/// delivery is 50 per device"), and the cloud-to-device messaging guide.
pub const MAX_C2D_QUEUE_DEPTH: usize = 50;

/// How long a cloud-to-device message without an expiry time stays in the queue: the
/// hub's default `defaultTtlAsIso8601`, one hour (configurable from one minute to two days).
///
/// Source: the cloud-to-device messaging guide, "Cloud-to-device configuration options".
pub const C2D_DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

/// Largest direct-method payload (request or response), in bytes (128 KB).
///
/// Source: "IoT Hub quotas and throttling", other limits, and the direct methods guide.
pub const MAX_METHOD_PAYLOAD_BYTES: usize = 128 * 1024;

/// Allowed `responseTimeoutInSeconds` of a direct-method call (default 30).
///
/// Source: the direct methods guide and the .NET SDK's `ResponseTimeout` documentation
/// ("The minimum and maximum values are 5 and 300 seconds").
pub const METHOD_RESPONSE_TIMEOUT_SECS: RangeInclusive<u32> = 5..=300;

/// Allowed `connectTimeoutInSeconds` of a direct-method call (default 0: the device must
/// already be connected).
///
/// Source: the direct methods guide and the .NET SDK's `ConnectionTimeout` documentation
/// ("The maximum value for connectTimeoutInSeconds is 300 seconds").
pub const METHOD_CONNECT_TIMEOUT_SECS: RangeInclusive<u32> = 0..=300;

/// Largest twin `tags` section, in bytes (8 KB), counted as IoT Hub counts twin sizes: the
/// UTF-8 length of every key and string value, 8 bytes per number, 4 per boolean, without
/// read-only `$` members.
///
/// Source: the device twins guide, "Device twin size", and "IoT Hub quotas and
/// throttling", other limits.
pub const MAX_TWIN_TAGS_BYTES: usize = 8 * 1024;

/// Largest twin `properties.desired` and `properties.reported` section, each, in bytes
/// (32 KB), counted as for [`MAX_TWIN_TAGS_BYTES`].
///
/// Source: the device twins guide, "Device twin size". (Older versions of the guide said
/// 8 KB.)
pub const MAX_TWIN_PROPERTIES_BYTES: usize = 32 * 1024;

/// Deepest nesting of objects in a twin section (`tags`, desired or reported properties).
///
/// Source: the device twins guide, "Tags and properties format" ("The maximum depth of
/// JSON objects … is 10"; older versions said 5).
pub const MAX_TWIN_DEPTH: usize = 10;

/// Longest key in a twin section, in UTF-8 bytes (1 KB). Keys may not contain control
/// characters (C0, C1), `.`, `$` or space.
///
/// Source: the device twins guide, "Tags and properties format".
pub const MAX_TWIN_KEY_BYTES: usize = 1024;

/// Longest string value in a twin section, in UTF-8 bytes (4 KB).
///
/// Source: the device twins guide, "Tags and properties format".
pub const MAX_TWIN_STRING_BYTES: usize = 4 * 1024;

/// Smallest integer a twin value may hold, -2^52.
///
/// Source: the device twins guide, "Tags and properties format" ("Integers can have a
/// minimum value of -4503599627370496 and a maximum value of 4503599627370495").
pub const MIN_TWIN_INTEGER: i64 = -4_503_599_627_370_496;

/// Largest integer a twin value may hold, 2^52 - 1 (see [`MIN_TWIN_INTEGER`]).
pub const MAX_TWIN_INTEGER: i64 = 4_503_599_627_370_495;

/// Longest query (`POST /devices/query`), in characters.
///
/// Microsoft's quota pages publish no number for this; 8192 is the limit the iothub-rs
/// emulator applies.
pub const MAX_QUERY_CHARS: usize = 8192;

/// Largest page of query results (`x-ms-max-item-count`).
///
/// Source: the query language guide (pages "up to 1000" items).
pub const MAX_QUERY_PAGE_SIZE: usize = 1000;

/// Most automatic device and module configurations (and IoT Edge deployments) in a paid
/// hub; one more is refused with ConfigurationCountLimitExceeded (413101).
///
/// Source: "IoT Hub quotas and throttling", other limits ("100 configurations per paid SKU
/// hub").
pub const MAX_CONFIGURATIONS: usize = 100;

/// Most automatic device and module configurations in a free hub.
///
/// Source: "IoT Hub quotas and throttling", other limits ("20 configurations per free SKU
/// hub").
pub const MAX_CONFIGURATIONS_FREE_TIER: usize = 20;

/// Most device identities plus module identities one hub may hold.
///
/// Source: "IoT Hub quotas and throttling", other limits ("capped at 1,000,000").
pub const MAX_IDENTITIES: usize = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rule() {
        assert!(is_valid_id("d"));
        assert!(is_valid_id("Device-1"));
        assert!(is_valid_id(ID_SPECIAL_CHARS));
        assert!(is_valid_id(&"a".repeat(MAX_ID_LEN)));
        assert!(!is_valid_id(&"a".repeat(MAX_ID_LEN + 1)));
        assert!(!is_valid_id(""));
        for bad in [
            " ", "/", "\\", "\"", "&", "<", "é", "\n", "a b", "[x]", "{x}",
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        for c in ID_SPECIAL_CHARS.chars() {
            assert!(is_valid_id(&format!("a{c}b")), "{c}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(MAX_C2D_MESSAGE_BYTES, 65536);
        assert_eq!(MAX_METHOD_PAYLOAD_BYTES, 131072);
        assert_eq!(MAX_TWIN_TAGS_BYTES, 8192);
        assert_eq!(MAX_TWIN_PROPERTIES_BYTES, 32768);
        assert_eq!(MIN_TWIN_INTEGER, -(1 << 52));
        assert_eq!(MAX_TWIN_INTEGER, (1 << 52) - 1);
        assert!(METHOD_RESPONSE_TIMEOUT_SECS.contains(&30));
        assert!(!METHOD_RESPONSE_TIMEOUT_SECS.contains(&4));
        assert!(METHOD_CONNECT_TIMEOUT_SECS.contains(&0));
        assert!(!METHOD_CONNECT_TIMEOUT_SECS.contains(&301));
    }
}
