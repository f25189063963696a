"""Cloud-to-device messages with IoTHubRegistryManager.send_c2d_message (uamqp, unmodified),
over AMQP (TLS) and AMQP over WebSockets; ``uamqp_loopback`` points uamqp at the emulator.

The registry manager has no purge method; the SDK's generated client, which the registry
manager holds as ``rm.protocol``, has
``cloud_to_device_messages.purge_cloud_to_device_message_queue`` (DELETE /devices/{id}/commands).
"""

import os

import uamqp_loopback  # noqa: F401 - must come first: ports and CA for uamqp

from azure.iot.hub import IoTHubRegistryManager  # noqa: E402
from azure.iot.hub.protocol.models import PurgeMessageQueueResult  # noqa: E402
from uamqp import TransportType  # noqa: E402

from conformance import Checks, assert_eq, assert_true, new_key, registry_manager  # noqa: E402

rm = registry_manager()
checks = Checks("c2d")


def create_device(device_id):
    rm.create_device_with_sas(device_id, new_key(), new_key(), "enabled")


def message_count(device_id):
    count = rm.get_device(device_id).cloud_to_device_message_count
    assert_true(isinstance(count, int), "cloud_to_device_message_count is %r" % (count,))
    return count


def purge(device_id):
    result = rm.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue(device_id)
    assert_true(isinstance(result, PurgeMessageQueueResult), "purge result %r" % (result,))
    return result


def expect_send_failure(manager, device_id, message, properties=None):
    """send_c2d_message raises when the hub rejects the transfer (uamqp reports SendFailed)."""
    try:
        manager.send_c2d_message(device_id, message, properties or {})
    except Exception as e:  # noqa: BLE001 - the SDK raises a bare Exception
        return e
    raise AssertionError("send_c2d_message(%r) succeeded, expected a rejection" % device_id)


@checks
def send_is_counted_and_purge_returns_the_count():
    create_device("pc2d-send")
    assert_eq(message_count("pc2d-send"), 0, "count before sending")
    rm.send_c2d_message("pc2d-send", "plain text")
    rm.send_c2d_message(
        "pc2d-send",
        '{"cmd":"reboot"}',
        {
            "messageId": "pc2d-m2",
            "correlationId": "corr-2",
            "contentType": "application/json",
            "contentEncoding": "utf-8",
            "expiryTimeUtc": 4102444800000,  # 2100-01-01, in milliseconds as uamqp requires
            "iothub-ack": "full",
            "priority": "high",
        },
    )
    rm.send_c2d_message("pc2d-send", b"\x00\x01\x02\xff", {"k": "v"})
    assert_eq(message_count("pc2d-send"), 3, "count after three sends")
    result = purge("pc2d-send")
    assert_eq(result.total_messages_purged, 3, "totalMessagesPurged")
    assert_eq(result.device_id, "pc2d-send", "purge result deviceId")
    assert_eq(message_count("pc2d-send"), 0, "count after the purge")
    assert_eq(purge("pc2d-send").total_messages_purged, 0, "purging an empty queue")


@checks
def send_to_a_missing_device_fails_and_the_connection_stays_usable():
    e = expect_send_failure(rm, "pc2d-no-such-device", "hello")
    assert_true("failure" in str(e).lower() or "not" in str(e).lower(), "error: %r" % e)
    create_device("pc2d-after-missing")
    rm.send_c2d_message("pc2d-after-missing", "hello")
    assert_eq(message_count("pc2d-after-missing"), 1, "count after a send that followed a rejected one")


@checks
def message_over_64kb_is_rejected():
    create_device("pc2d-large")
    expect_send_failure(rm, "pc2d-large", b"x" * (65 * 1024))
    rm.send_c2d_message("pc2d-large", b"x" * (63 * 1024))
    assert_eq(message_count("pc2d-large"), 1, "only the message within the limit is queued")


@checks
def fifty_first_message_is_rejected():
    create_device("pc2d-full")
    for i in range(50):
        rm.send_c2d_message("pc2d-full", "m%d" % i)
    assert_eq(message_count("pc2d-full"), 50, "count of a full queue")
    expect_send_failure(rm, "pc2d-full", "one too many")
    assert_eq(message_count("pc2d-full"), 50, "count after the refused message")
    assert_eq(purge("pc2d-full").total_messages_purged, 50, "purged count")


@checks
def service_policy_sends():
    manager = IoTHubRegistryManager.from_connection_string(os.environ["IOTHUB_SERVICE_CONNECTION_STRING"])
    try:
        create_device("pc2d-service")
        manager.send_c2d_message("pc2d-service", "from the service policy")
        assert_eq(message_count("pc2d-service"), 1, "count")
    finally:
        manager.amqp_svc_client.disconnect_sync()


@checks
def registry_read_policy_cannot_send():
    create_device("pc2d-read-only")
    manager = IoTHubRegistryManager.from_connection_string(os.environ["IOTHUB_REGISTRY_READ_CONNECTION_STRING"])
    try:
        expect_send_failure(manager, "pc2d-read-only", "not allowed")
    finally:
        manager.amqp_svc_client.disconnect_sync()
    assert_eq(message_count("pc2d-read-only"), 0, "count")


@checks
def send_over_websockets():
    manager = IoTHubRegistryManager.from_connection_string(
        os.environ["IOTHUB_CONNECTION_STRING"], transport_type=TransportType.AmqpOverWebsocket
    )
    try:
        create_device("pc2d-ws")
        manager.send_c2d_message("pc2d-ws", "over websockets", {"contentType": "text/plain"})
        manager.send_c2d_message("pc2d-ws", "again")
        assert_eq(message_count("pc2d-ws"), 2, "count")
    finally:
        manager.amqp_svc_client.disconnect_sync()


if __name__ == "__main__":
    try:
        checks.main()
    finally:
        rm.amqp_svc_client.disconnect_sync()
