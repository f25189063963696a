"""Direct methods (invoke_device_method / invoke_device_module_method) with no device
connected: IoT Hub answers 404 DeviceNotOnline for a registered device and
404 DeviceNotFound for an unknown one."""

from azure.iot.hub.models import CloudToDeviceMethod

from conformance import (
    Checks,
    assert_true,
    expect_http_error,
    new_key,
    registry_manager,
)

rm = registry_manager()
checks = Checks("methods")


def method(payload=None):
    return CloudToDeviceMethod(
        method_name="reboot", payload=payload, response_timeout_in_seconds=5, connect_timeout_in_seconds=0
    )


@checks
def device_method_on_an_offline_device_is_404_device_not_online():
    rm.create_device_with_sas("meth-1", new_key(), new_key(), "enabled")
    e = expect_http_error(404, "DeviceNotOnline", rm.invoke_device_method, "meth-1", method({"delay": 1}))
    assert_true("meth-1" in e.response.text or "online" in e.response.text.lower(), "error text: %s" % e.response.text)
    expect_http_error(404, "DeviceNotOnline", rm.invoke_device_method, "meth-1", method())


@checks
def module_method_on_an_offline_module_is_404_device_not_online():
    rm.create_device_with_sas("meth-2", new_key(), new_key(), "enabled")
    rm.create_module_with_sas("meth-2", "mm", None, new_key(), new_key())
    expect_http_error(404, "DeviceNotOnline", rm.invoke_device_module_method, "meth-2", "mm", method("text"))


@checks
def method_on_an_unknown_device_is_404():
    expect_http_error(404, "DeviceNotFound", rm.invoke_device_method, "no-such-device", method())
    rm.create_device_with_sas("meth-3", new_key(), new_key(), "enabled")
    expect_http_error(404, None, rm.invoke_device_module_method, "meth-3", "no-such-module", method())


if __name__ == "__main__":
    checks.main()
