"""bulk_create_or_update_devices (POST /devices with ExportImportDevice[])."""

from azure.iot.hub.models import (
    AuthenticationMechanism,
    ExportImportDevice,
    SymmetricKey,
    X509Thumbprint,
)

from conformance import (
    Checks,
    HttpOperationError,
    assert_eq,
    assert_true,
    expect_http_error,
    new_key,
    new_thumbprint,
    registry_manager,
)

rm = registry_manager()
checks = Checks("bulk")


def sas(device_id, mode, status="enabled", pk=None, sk=None):
    return ExportImportDevice(
        id=device_id,
        import_mode=mode,
        status=status,
        authentication=AuthenticationMechanism(
            type="sas", symmetric_key=SymmetricKey(primary_key=pk or new_key(), secondary_key=sk or new_key())
        ),
    )


def exists(device_id):
    try:
        rm.get_device(device_id)
        return True
    except HttpOperationError as e:
        # 400: the id is not even valid, so no such device can exist.
        if e.response.status_code in (400, 404):
            return False
        raise


def errors_by_id(result):
    return {e.device_id: e for e in (result.errors or [])}


@checks
def bulk_create_several_devices():
    keys = {}
    devices = []
    for i in range(5):
        pk, sk = new_key(), new_key()
        keys["bk-%d" % i] = pk
        devices.append(sas("bk-%d" % i, "create", pk=pk, sk=sk))
    devices.append(
        ExportImportDevice(
            id="bk-x509",
            import_mode="create",
            status="disabled",
            authentication=AuthenticationMechanism(
                type="selfSigned",
                x509_thumbprint=X509Thumbprint(primary_thumbprint=new_thumbprint(), secondary_thumbprint=new_thumbprint()),
            ),
        )
    )
    devices.append(
        ExportImportDevice(
            id="bk-ca", import_mode="create", status="enabled",
            authentication=AuthenticationMechanism(type="certificateAuthority"),
        )
    )
    result = rm.bulk_create_or_update_devices(devices)
    assert_eq(result.is_successful, True, "isSuccessful")
    assert_eq(result.errors or [], [], "errors")
    for dev, pk in keys.items():
        got = rm.get_device(dev)
        assert_eq(got.status, "enabled", "status of %s" % dev)
        assert_eq(got.authentication.symmetric_key.primary_key, pk, "primaryKey of %s" % dev)
    assert_eq(rm.get_device("bk-x509").authentication.type, "selfSigned", "bk-x509 auth type")
    assert_eq(rm.get_device("bk-x509").status, "disabled", "bk-x509 status")
    assert_eq(rm.get_device("bk-ca").authentication.type, "certificateAuthority", "bk-ca auth type")


@checks
def bulk_create_of_an_existing_device_reports_an_error():
    rm.create_device_with_sas("bk-exists", new_key(), new_key(), "enabled")
    result = rm.bulk_create_or_update_devices([sas("bk-new-1", "create"), sas("bk-exists", "create")])
    assert_eq(result.is_successful, False, "isSuccessful")
    errors = errors_by_id(result)
    assert_true("bk-exists" in errors, "no error reported for the existing device: %r" % result.errors)
    assert_eq(errors["bk-exists"].error_code, "DeviceAlreadyExists", "errorCode for bk-exists")
    assert_true("bk-new-1" not in errors, "an error was reported for the new device: %r" % result.errors)


@checks
def bulk_with_an_invalid_id_is_not_successful():
    result = rm.bulk_create_or_update_devices([sas("bad id", "create")])
    assert_true(result.is_successful is not True, "a bulk create of 'bad id' succeeded")
    assert_true(not exists("bad id"), "'bad id' was created")


@checks
def bulk_with_the_same_id_twice_is_not_successful():
    result = rm.bulk_create_or_update_devices([sas("bk-twice", "create"), sas("bk-twice", "create")])
    assert_true(result.is_successful is not True, "a bulk request naming one id twice succeeded")


@checks
def bulk_update_create_or_update_and_delete():
    rm.bulk_create_or_update_devices([sas("bk-u1", "create"), sas("bk-u2", "create")])
    pk = new_key()
    result = rm.bulk_create_or_update_devices(
        [sas("bk-u1", "update", status="disabled", pk=pk), sas("bk-u3", "createOrUpdate")]
    )
    assert_eq(result.is_successful, True, "isSuccessful of update/createOrUpdate")
    u1 = rm.get_device("bk-u1")
    assert_eq(u1.status, "disabled", "status after bulk update")
    assert_eq(u1.authentication.symmetric_key.primary_key, pk, "primaryKey after bulk update")
    assert_true(exists("bk-u3"), "createOrUpdate created bk-u3")

    missing = rm.bulk_create_or_update_devices([sas("bk-never", "update")])
    assert_eq(missing.is_successful, False, "isSuccessful of updating a missing device")
    assert_eq(errors_by_id(missing).get("bk-never").error_code, "DeviceNotFound", "errorCode of updating a missing device")

    deleted = rm.bulk_create_or_update_devices(
        [ExportImportDevice(id="bk-u1", import_mode="delete"), ExportImportDevice(id="bk-u2", import_mode="delete")]
    )
    assert_eq(deleted.is_successful, True, "isSuccessful of delete")
    assert_true(not exists("bk-u1") and not exists("bk-u2"), "bulk delete left devices behind")
    assert_true(exists("bk-u3"), "bulk delete removed a device it did not name")


@checks
def bulk_etag_modes():
    created = rm.create_device_with_sas("bk-etag", new_key(), new_key(), "enabled")
    newer = rm.update_device_with_sas("bk-etag", created.etag, new_key(), new_key(), "enabled")
    stale = sas("bk-etag", "updateIfMatchETag", status="disabled")
    stale.e_tag = created.etag
    result = rm.bulk_create_or_update_devices([stale])
    assert_eq(result.is_successful, False, "isSuccessful with a stale eTag")
    assert_eq(errors_by_id(result).get("bk-etag").error_code, "PreconditionFailed", "errorCode with a stale eTag")
    assert_eq(rm.get_device("bk-etag").status, "enabled", "a stale bulk update must not apply")
    fresh = sas("bk-etag", "updateIfMatchETag", status="disabled")
    fresh.e_tag = newer.etag
    assert_eq(rm.bulk_create_or_update_devices([fresh]).is_successful, True, "isSuccessful with the current eTag")
    assert_eq(rm.get_device("bk-etag").status, "disabled", "status after a matching bulk update")


@checks
def more_than_100_devices_is_rejected():
    devices = [sas("bk-many-%03d" % i, "create") for i in range(101)]
    expect_http_error(413, "TooManyDevices", rm.bulk_create_or_update_devices, devices)
    assert_true(not exists("bk-many-000"), "a rejected bulk request created devices")


@checks
def exactly_100_devices_are_accepted():
    devices = [sas("bk-hundred-%03d" % i, "create") for i in range(100)]
    result = rm.bulk_create_or_update_devices(devices)
    assert_eq(result.is_successful, True, "isSuccessful for 100 devices")
    assert_true(exists("bk-hundred-099"), "the 100th device exists")


if __name__ == "__main__":
    checks.main()
