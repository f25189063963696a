"""The cloud-to-device sequence of the C2D wire-fidelity test, made with the official Python
SDK (IoTHubRegistryManager.send_c2d_message over uamqp).

tests/tests/wire_fidelity.rs (`rust_c2d_sends_what_the_python_sdk_sends`) sends the same
messages with iothub_c2d::C2dClient to a second emulator and compares the AMQP lines of the
two journals. Keep both sequences in step, message for message.

send_c2d_message maps the property keys messageId, correlationId, contentType,
contentEncoding and expiryTimeUtc (integer milliseconds, as uamqp requires) to AMQP
properties; every other key, including iothub-ack, becomes an application property
(azure/iot/hub/iothub_amqp_client.py). It has no key for user-id.
"""

import uamqp_loopback  # noqa: F401 - must come first: ports and CA for uamqp

from conformance import new_key, registry_manager  # noqa: E402

DEVICE = "wfc-dev"
EXPIRY_MS = 4102444800000  # 2100-01-01T00:00:00Z

rm = registry_manager()
rm.create_device_with_sas(DEVICE, new_key(), new_key(), "enabled")


def refused(device_id, body, props):
    try:
        rm.send_c2d_message(device_id, body, props)
    except Exception:  # noqa: BLE001 - the SDK raises a bare Exception
        return
    raise AssertionError("send_c2d_message to %r should have been refused" % device_id)


try:
    # 1: a text body and nothing else (the SDK makes a UUID message id)
    rm.send_c2d_message(DEVICE, "hello")
    # 2: every system property the SDK maps, feedback, application properties
    rm.send_c2d_message(
        DEVICE,
        '{"cmd":"reboot","delay":5}',
        {
            "messageId": "wfc-m2",
            "correlationId": "wfc-c2",
            "contentType": "application/json",
            "contentEncoding": "utf-8",
            "expiryTimeUtc": EXPIRY_MS,
            "iothub-ack": "full",
            "priority": "high",
            "n": "5",
        },
    )
    # 3: a binary body with negative feedback
    rm.send_c2d_message(DEVICE, b"\x00\x01\x02\xff", {"messageId": "wfc-m3", "iothub-ack": "negative", "k": "v"})
    # 4: positive feedback and an empty-string property
    rm.send_c2d_message(DEVICE, "4", {"messageId": "wfc-m4", "iothub-ack": "positive", "empty": ""})
    # 5: an unknown device is refused
    refused("wfc-missing", "nobody", {"messageId": "wfc-m5"})
    # 6: still usable after the refusal
    rm.send_c2d_message(DEVICE, "after", {"messageId": "wfc-m6", "correlationId": "wfc-c6"})
finally:
    rm.amqp_svc_client.disconnect_sync()
print("wire_c2d: done")
