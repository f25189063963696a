"""Device identities through IoTHubRegistryManager: the three authentication types,
ETags, listing, statistics and the registry's error answers."""

import base64

from conformance import (
    Checks,
    assert_eq,
    assert_true,
    expect_http_error,
    new_key,
    new_thumbprint,
    registry_manager,
)

rm = registry_manager()
checks = Checks("devices")


def assert_common_device_fields(device, device_id, status):
    assert_eq(device.device_id, device_id, "deviceId")
    assert_eq(device.status, status, "status")
    assert_true(device.etag, "device etag is empty")
    assert_true(device.generation_id, "generationId is empty")
    assert_eq(device.connection_state, "Disconnected", "connectionState")
    assert_eq(device.cloud_to_device_message_count, 0, "cloudToDeviceMessageCount")
    assert_true(device.capabilities is not None, "capabilities missing")


@checks
def sas_device_create_get_update_delete():
    pk, sk = new_key(), new_key()
    created = rm.create_device_with_sas("sas-1", pk, sk, "enabled")
    assert_common_device_fields(created, "sas-1", "enabled")
    assert_eq(created.authentication.type, "sas", "authentication.type")
    assert_eq(created.authentication.symmetric_key.primary_key, pk, "primaryKey")
    assert_eq(created.authentication.symmetric_key.secondary_key, sk, "secondaryKey")
    assert_eq(created.capabilities.iot_edge, False, "capabilities.iotEdge")

    got = rm.get_device("sas-1")
    assert_common_device_fields(got, "sas-1", "enabled")
    assert_eq(got.etag, created.etag, "etag of get vs create")
    assert_eq(got.generation_id, created.generation_id, "generationId of get vs create")
    assert_eq(got.authentication.symmetric_key.primary_key, pk, "primaryKey after get")

    pk2, sk2 = new_key(), new_key()
    updated = rm.update_device_with_sas(
        "sas-1", got.etag, pk2, sk2, "disabled", status_reason="maintenance"
    )
    assert_eq(updated.status, "disabled", "status after update")
    assert_eq(updated.status_reason, "maintenance", "statusReason after update")
    assert_eq(updated.authentication.symmetric_key.primary_key, pk2, "primaryKey after update")
    assert_eq(updated.authentication.symmetric_key.secondary_key, sk2, "secondaryKey after update")
    assert_eq(updated.generation_id, created.generation_id, "generationId must survive an update")
    assert_true(updated.etag != got.etag, "etag must change on update")

    again = rm.get_device("sas-1")
    assert_eq(again.status, "disabled", "status after update, read back")
    assert_eq(again.etag, updated.etag, "etag after update, read back")

    rm.delete_device("sas-1", updated.etag)
    expect_http_error(404, "DeviceNotFound", rm.get_device, "sas-1")


@checks
def sas_keys_are_generated_when_omitted():
    created = rm.create_device_with_sas("sas-gen", None, None, "enabled")
    key = created.authentication.symmetric_key
    assert_true(key.primary_key and key.secondary_key, "keys were not generated: %r" % key)
    assert_true(key.primary_key != key.secondary_key, "generated keys are equal")
    for k in (key.primary_key, key.secondary_key):
        raw = base64.b64decode(k, validate=True)
        assert_true(16 <= len(raw) <= 64, "generated key has %d bytes" % len(raw))


@checks
def x509_thumbprint_device_create_get_update():
    t1, t2 = new_thumbprint(), new_thumbprint()
    created = rm.create_device_with_x509("x509-1", t1, t2, "enabled")
    assert_common_device_fields(created, "x509-1", "enabled")
    assert_eq(created.authentication.type, "selfSigned", "authentication.type")
    thumbs = created.authentication.x509_thumbprint
    assert_eq(thumbs.primary_thumbprint.upper(), t1, "primaryThumbprint")
    assert_eq(thumbs.secondary_thumbprint.upper(), t2, "secondaryThumbprint")

    got = rm.get_device("x509-1")
    assert_eq(got.authentication.type, "selfSigned", "authentication.type after get")
    assert_eq(got.authentication.x509_thumbprint.primary_thumbprint.upper(), t1, "primaryThumbprint after get")

    t3 = new_thumbprint()
    updated = rm.update_device_with_x509("x509-1", got.etag, t3, t1, "enabled")
    assert_eq(updated.authentication.x509_thumbprint.primary_thumbprint.upper(), t3, "primaryThumbprint after update")
    assert_eq(updated.authentication.x509_thumbprint.secondary_thumbprint.upper(), t1, "secondaryThumbprint after update")
    assert_true(updated.etag != got.etag, "etag must change on update")
    rm.delete_device("x509-1")
    expect_http_error(404, "DeviceNotFound", rm.get_device, "x509-1")


@checks
def certificate_authority_device_create_get_update():
    created = rm.create_device_with_certificate_authority("ca-1", "enabled")
    assert_common_device_fields(created, "ca-1", "enabled")
    assert_eq(created.authentication.type, "certificateAuthority", "authentication.type")

    got = rm.get_device("ca-1")
    assert_eq(got.authentication.type, "certificateAuthority", "authentication.type after get")

    updated = rm.update_device_with_certificate_authority("ca-1", got.etag, "disabled")
    assert_eq(updated.status, "disabled", "status after update")
    assert_eq(updated.authentication.type, "certificateAuthority", "authentication.type after update")
    rm.delete_device("ca-1", updated.etag)
    expect_http_error(404, "DeviceNotFound", rm.get_device, "ca-1")


@checks
def auth_type_can_change_on_update():
    created = rm.create_device_with_sas("switch-1", new_key(), new_key(), "enabled")
    t = new_thumbprint()
    updated = rm.update_device_with_x509("switch-1", created.etag, t, new_thumbprint(), "enabled")
    assert_eq(updated.authentication.type, "selfSigned", "authentication.type after switching")
    assert_eq(rm.get_device("switch-1").authentication.type, "selfSigned", "authentication.type read back")


@checks
def edge_device_capability_and_scope():
    created = rm.create_device_with_sas("edge-1", new_key(), new_key(), "enabled", iot_edge=True)
    assert_eq(created.capabilities.iot_edge, True, "capabilities.iotEdge")
    assert_true(created.device_scope, "an edge device gets a generated deviceScope")
    got = rm.get_device("edge-1")
    assert_eq(got.capabilities.iot_edge, True, "capabilities.iotEdge after get")
    assert_eq(got.device_scope, created.device_scope, "deviceScope after get")


@checks
def stale_etag_is_rejected_on_update_and_delete():
    created = rm.create_device_with_sas("etag-1", new_key(), new_key(), "enabled")
    updated = rm.update_device_with_sas("etag-1", created.etag, new_key(), new_key(), "enabled")
    expect_http_error(
        412, "PreconditionFailed",
        rm.update_device_with_sas, "etag-1", created.etag, new_key(), new_key(), "disabled",
    )
    expect_http_error(412, "PreconditionFailed", rm.delete_device, "etag-1", created.etag)
    assert_eq(rm.get_device("etag-1").status, "enabled", "a rejected update must not change the device")
    # No etag means If-Match: "*", which always matches.
    forced = rm.update_device_with_sas("etag-1", None, new_key(), new_key(), "disabled")
    assert_eq(forced.status, "disabled", "status after an unconditional update")
    assert_true(forced.etag != updated.etag, "etag must change on update")
    rm.delete_device("etag-1", forced.etag)


@checks
def duplicate_create_is_409():
    rm.create_device_with_sas("dup-1", new_key(), new_key(), "enabled")
    expect_http_error(
        409, "DeviceAlreadyExists", rm.create_device_with_sas, "dup-1", new_key(), new_key(), "enabled"
    )
    expect_http_error(
        409, "DeviceAlreadyExists", rm.create_device_with_certificate_authority, "dup-1", "enabled"
    )


@checks
def missing_device_is_404():
    expect_http_error(404, "DeviceNotFound", rm.get_device, "no-such-device")
    expect_http_error(404, "DeviceNotFound", rm.delete_device, "no-such-device")


@checks
def invalid_device_ids_are_400():
    expect_http_error(400, None, rm.create_device_with_sas, "has space", new_key(), new_key(), "enabled")
    expect_http_error(400, None, rm.create_device_with_sas, "x" * 129, new_key(), new_key(), "enabled")
    expect_http_error(400, None, rm.create_device_with_sas, "bad<id>", new_key(), new_key(), "enabled")
    expect_http_error(400, None, rm.create_device_with_certificate_authority, "caf\u00e9", "enabled")


@checks
def longest_and_special_character_ids_are_accepted():
    longest = "L" * 128
    assert_eq(rm.create_device_with_sas(longest, new_key(), new_key(), "enabled").device_id, longest, "128-char id")
    assert_eq(rm.get_device(longest).device_id, longest, "128-char id after get")
    # Every punctuation character IoT Hub allows in an id; the SDK percent-encodes them in the URL.
    special = "a-b:c.d+e%f_g#h*i?j!k(l)m,n=o@p;q$r'"
    assert_eq(rm.create_device_with_sas(special, new_key(), new_key(), "enabled").device_id, special, "special id")
    assert_eq(rm.get_device(special).device_id, special, "special id after get")
    assert_true(special in [d.device_id for d in rm.get_devices()], "special id is listed")
    rm.delete_device(special)
    expect_http_error(404, "DeviceNotFound", rm.get_device, special)


@checks
def device_ids_are_case_sensitive():
    rm.create_device_with_sas("Case-1", new_key(), new_key(), "enabled")
    expect_http_error(404, "DeviceNotFound", rm.get_device, "case-1")
    rm.create_device_with_sas("case-1", new_key(), new_key(), "enabled")
    assert_eq(rm.get_device("case-1").device_id, "case-1", "lower-case twin of an id")


@checks
def get_devices_lists_and_honours_max():
    for i in range(3):
        rm.create_device_with_sas("list-%d" % i, new_key(), new_key(), "enabled")
    ids = [d.device_id for d in rm.get_devices()]
    for i in range(3):
        assert_true("list-%d" % i in ids, "list-%d missing from get_devices: %r" % (i, ids))
    assert_eq(len(ids), len(set(ids)), "get_devices returned duplicates")
    assert_eq(len(rm.get_devices(max_number_of_devices=2)), 2, "get_devices(max_number_of_devices=2)")


@checks
def registry_statistics_count_devices():
    before = rm.get_device_registry_statistics()
    rm.create_device_with_sas("stat-1", new_key(), new_key(), "enabled")
    rm.create_device_with_x509("stat-2", new_thumbprint(), new_thumbprint(), "enabled")
    rm.create_device_with_certificate_authority("stat-3", "disabled")
    after = rm.get_device_registry_statistics()
    assert_eq(after.total_device_count - before.total_device_count, 3, "totalDeviceCount delta")
    assert_eq(after.enabled_device_count - before.enabled_device_count, 2, "enabledDeviceCount delta")
    assert_eq(after.disabled_device_count - before.disabled_device_count, 1, "disabledDeviceCount delta")
    assert_eq(
        after.total_device_count, after.enabled_device_count + after.disabled_device_count,
        "total = enabled + disabled",
    )
    rm.delete_device("stat-3")
    final = rm.get_device_registry_statistics()
    assert_eq(final.disabled_device_count, before.disabled_device_count, "disabledDeviceCount after delete")


@checks
def service_statistics_report_no_connected_devices():
    stats = rm.get_service_statistics()
    assert_eq(stats.connected_device_count, 0, "connectedDeviceCount")


if __name__ == "__main__":
    checks.main()
