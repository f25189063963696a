"""The call sequence of the wire-fidelity test, made with the official Python SDK.

tests/tests/wire_fidelity.rs makes the same calls, in the same order and with the same
arguments, with the Rust iothub_registry::RegistryManager against a second emulator, and
compares the two emulators' request journals line by line. Keep both sequences in step:
every step here has a twin there with the same number.

Calls that IoT Hub must refuse (stale ETags, methods on offline devices, ...) are part of
the sequence; `refused` checks the status so the journals carry the same statuses.
"""

from azure.iot.hub.models import (
    AuthenticationMechanism,
    CloudToDeviceMethod,
    ExportImportDevice,
    QuerySpecification,
    SymmetricKey,
    Twin,
    TwinProperties,
)

from conformance import HttpOperationError, assert_eq, registry_manager

PK = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
SK = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
T1 = "0123456789ABCDEF0123456789ABCDEF01234567"
T2 = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"

rm = registry_manager()


def refused(status, fn, *args):
    try:
        fn(*args)
    except HttpOperationError as e:
        assert_eq(e.response.status_code, status, "status of a refused call")
        return
    raise AssertionError("expected HTTP %d" % status)


# 1-4: devices with each authentication type
rm.create_device_with_sas("wf-sas", PK, SK, "enabled")
rm.create_device_with_sas("wf-edge", "", "", "enabled", iot_edge=True, status_reason="edge")
rm.create_device_with_x509("wf-x509", T1, T2, "enabled")
rm.create_device_with_certificate_authority("wf-ca", "disabled")
# 5-10: read and update them
d = rm.get_device("wf-sas")
rm.update_device_with_sas("wf-sas", d.etag, SK, PK, "disabled", status_reason="maintenance")
refused(412, rm.update_device_with_sas, "wf-sas", d.etag, PK, SK, "enabled")
rm.update_device_with_x509("wf-x509", None, T2, T1, "enabled")
rm.update_device_with_certificate_authority("wf-ca", rm.get_device("wf-ca").etag, "enabled")
# 11: list
rm.get_devices(3)
# 12-20: modules
rm.create_module_with_sas("wf-sas", "m1", "me", PK, SK)
rm.create_module_with_x509("wf-sas", "m2", None, T1, T2)
rm.create_module_with_certificate_authority("wf-sas", "m3", "you")
m1 = rm.get_module("wf-sas", "m1")
rm.update_module_with_sas("wf-sas", "m1", "me2", m1.etag, SK, PK)
rm.update_module_with_x509("wf-sas", "m2", None, None, T2, T1)
rm.update_module_with_certificate_authority("wf-sas", "m3", "you2", rm.get_module("wf-sas", "m3").etag)
rm.get_modules("wf-sas")
rm.delete_module("wf-sas", "m3")
rm.delete_module("wf-sas", "m2", rm.get_module("wf-sas", "m2").etag)
refused(412, rm.delete_module, "wf-sas", "m1", m1.etag)
# twins
t = rm.get_twin("wf-sas")
rm.update_twin(
    "wf-sas",
    Twin(tags={"site": {"building": 4}, "n": 1.5}, properties=TwinProperties(desired={"interval": 30, "cfg": {"a": None}})),
    t.etag,
)
rm.replace_twin("wf-sas", Twin(tags={"only": True}, properties=TwinProperties(desired={"mode": "eco"})))
refused(412, rm.update_twin, "wf-sas", Twin(tags={"late": 1}), t.etag)
mt = rm.get_module_twin("wf-sas", "m1")
rm.update_module_twin("wf-sas", "m1", Twin(properties=TwinProperties(desired={"rate": 2})), mt.etag)
rm.replace_module_twin("wf-sas", "m1", Twin(tags={"role": "x"}))
refused(404, rm.get_twin, "wf-missing")
# queries: one page size that needs continuation tokens, then no page size
token = None
while True:
    page = rm.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE status = 'enabled'"), token, 2)
    token = page.continuation_token
    if not token:
        break
rm.query_iot_hub(QuerySpecification(query="SELECT * FROM devices.modules"))
# bulk: a create, a createOrUpdate, a delete and one refused create of an existing device
sas = AuthenticationMechanism(type="sas", symmetric_key=SymmetricKey(primary_key=PK, secondary_key=SK))
rm.bulk_create_or_update_devices(
    [
        ExportImportDevice(id="wf-b1", import_mode="create", status="enabled", authentication=sas),
        ExportImportDevice(
            id="wf-b2", import_mode="createOrUpdate", status="disabled",
            authentication=AuthenticationMechanism(type="certificateAuthority"),
        ),
    ]
)
rm.bulk_create_or_update_devices(
    [
        ExportImportDevice(id="wf-b1", import_mode="delete"),
        ExportImportDevice(id="wf-sas", import_mode="create", status="enabled", authentication=sas),
    ]
)
# statistics
rm.get_device_registry_statistics()
rm.get_service_statistics()
# direct methods (no device is connected)
refused(
    404,
    rm.invoke_device_method,
    "wf-sas",
    CloudToDeviceMethod(method_name="reboot", payload={"x": 1}, response_timeout_in_seconds=30, connect_timeout_in_seconds=5),
)
refused(404, rm.invoke_device_module_method, "wf-sas", "m1", CloudToDeviceMethod(method_name="m"))
# deletes
rm.delete_device("wf-edge")
rm.delete_device("wf-x509", rm.get_device("wf-x509").etag)
refused(404, rm.get_device, "wf-edge")
print("wire_calls: done")
