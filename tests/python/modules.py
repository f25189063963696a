"""Module identities and module twins through IoTHubRegistryManager."""

from azure.iot.hub.models import Twin, TwinProperties

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
checks = Checks("modules")


def parent(device_id):
    rm.create_device_with_sas(device_id, new_key(), new_key(), "enabled")
    return device_id


def assert_common_module_fields(module, device_id, module_id, managed_by):
    assert_eq(module.device_id, device_id, "deviceId")
    assert_eq(module.module_id, module_id, "moduleId")
    assert_eq(module.managed_by, managed_by, "managedBy")
    assert_true(module.etag, "module etag is empty")
    assert_true(module.generation_id, "module generationId is empty")
    assert_eq(module.connection_state, "Disconnected", "connectionState")


def assert_no_modules_listed(device_id):
    """Listing the modules of an unknown device is either 404 DeviceNotFound or an empty list."""
    try:
        modules = rm.get_modules(device_id)
    except HttpOperationError:
        expect_http_error(404, "DeviceNotFound", rm.get_modules, device_id)
    else:
        assert_eq(modules, [], "modules listed for an unknown device")


@checks
def sas_module_create_get_update_delete():
    dev = parent("m-sas")
    pk, sk = new_key(), new_key()
    created = rm.create_module_with_sas(dev, "mod-a", "owner-a", pk, sk)
    assert_common_module_fields(created, dev, "mod-a", "owner-a")
    assert_eq(created.authentication.type, "sas", "authentication.type")
    assert_eq(created.authentication.symmetric_key.primary_key, pk, "primaryKey")
    assert_eq(created.authentication.symmetric_key.secondary_key, sk, "secondaryKey")

    got = rm.get_module(dev, "mod-a")
    assert_common_module_fields(got, dev, "mod-a", "owner-a")
    assert_eq(got.etag, created.etag, "etag of get vs create")

    pk2, sk2 = new_key(), new_key()
    updated = rm.update_module_with_sas(dev, "mod-a", "owner-b", got.etag, pk2, sk2)
    assert_eq(updated.managed_by, "owner-b", "managedBy after update")
    assert_eq(updated.authentication.symmetric_key.primary_key, pk2, "primaryKey after update")
    assert_eq(updated.generation_id, created.generation_id, "generationId must survive an update")
    assert_true(updated.etag != got.etag, "etag must change on update")

    expect_http_error(
        412, "PreconditionFailed", rm.update_module_with_sas, dev, "mod-a", "owner-c", got.etag, pk, sk
    )
    expect_http_error(412, "PreconditionFailed", rm.delete_module, dev, "mod-a", got.etag)
    rm.delete_module(dev, "mod-a", updated.etag)
    expect_http_error(404, "ModuleNotFound", rm.get_module, dev, "mod-a")


@checks
def sas_module_keys_are_generated_when_omitted():
    dev = parent("m-gen")
    created = rm.create_module_with_sas(dev, "mod-gen", None, None, None)
    key = created.authentication.symmetric_key
    assert_true(key.primary_key and key.secondary_key, "module keys were not generated: %r" % key)
    assert_true(key.primary_key != key.secondary_key, "generated module keys are equal")


@checks
def x509_module_create_get_update():
    dev = parent("m-x509")
    t1, t2 = new_thumbprint(), new_thumbprint()
    created = rm.create_module_with_x509(dev, "mod-x", "me", t1, t2)
    assert_common_module_fields(created, dev, "mod-x", "me")
    assert_eq(created.authentication.type, "selfSigned", "authentication.type")
    assert_eq(created.authentication.x509_thumbprint.primary_thumbprint.upper(), t1, "primaryThumbprint")
    assert_eq(created.authentication.x509_thumbprint.secondary_thumbprint.upper(), t2, "secondaryThumbprint")
    t3 = new_thumbprint()
    updated = rm.update_module_with_x509(dev, "mod-x", "me", created.etag, t3, t2)
    assert_eq(updated.authentication.x509_thumbprint.primary_thumbprint.upper(), t3, "primaryThumbprint after update")
    got = rm.get_module(dev, "mod-x")
    assert_eq(got.authentication.x509_thumbprint.primary_thumbprint.upper(), t3, "primaryThumbprint read back")


@checks
def certificate_authority_module_create_get_update():
    dev = parent("m-ca")
    created = rm.create_module_with_certificate_authority(dev, "mod-ca", "me")
    assert_common_module_fields(created, dev, "mod-ca", "me")
    assert_eq(created.authentication.type, "certificateAuthority", "authentication.type")
    updated = rm.update_module_with_certificate_authority(dev, "mod-ca", "you", created.etag)
    assert_eq(updated.managed_by, "you", "managedBy after update")
    assert_eq(updated.authentication.type, "certificateAuthority", "authentication.type after update")
    assert_eq(rm.get_module(dev, "mod-ca").managed_by, "you", "managedBy read back")


@checks
def get_modules_lists_all_modules_of_a_device():
    dev = parent("m-list")
    other = parent("m-list-other")
    rm.create_module_with_sas(dev, "one", None, new_key(), new_key())
    rm.create_module_with_x509(dev, "two", None, new_thumbprint(), new_thumbprint())
    rm.create_module_with_certificate_authority(dev, "three", None)
    rm.create_module_with_sas(other, "elsewhere", None, new_key(), new_key())
    modules = rm.get_modules(dev)
    assert_eq(sorted(m.module_id for m in modules), ["one", "three", "two"], "module ids")
    for m in modules:
        assert_eq(m.device_id, dev, "deviceId of listed module")
    assert_eq(rm.get_modules(parent("m-list-empty")), [], "modules of a device without modules")


@checks
def module_errors():
    dev = parent("m-err")
    rm.create_module_with_sas(dev, "dup", None, new_key(), new_key())
    expect_http_error(
        409, "ModuleAlreadyExistsOnDevice", rm.create_module_with_sas, dev, "dup", None, new_key(), new_key()
    )
    expect_http_error(404, "ModuleNotFound", rm.get_module, dev, "missing")
    expect_http_error(404, "ModuleNotFound", rm.delete_module, dev, "missing")
    expect_http_error(404, "DeviceNotFound", rm.create_module_with_sas, "no-such-device", "m", None, new_key(), new_key())
    assert_no_modules_listed("no-such-device")
    expect_http_error(400, None, rm.create_module_with_sas, dev, "bad id", None, new_key(), new_key())
    expect_http_error(400, None, rm.create_module_with_sas, dev, "m" * 129, None, new_key(), new_key())


@checks
def deleting_a_device_deletes_its_modules():
    dev = parent("m-cascade")
    rm.create_module_with_sas(dev, "child", None, new_key(), new_key())
    rm.delete_device(dev)
    assert_no_modules_listed(dev)
    parent(dev)
    assert_eq(rm.get_modules(dev), [], "a re-created device starts without modules")
    expect_http_error(404, "ModuleNotFound", rm.get_module, dev, "child")


@checks
def module_twin_get_update_replace():
    dev = parent("m-twin")
    rm.create_module_with_sas(dev, "tw", None, new_key(), new_key())
    twin = rm.get_module_twin(dev, "tw")
    assert_eq(twin.device_id, dev, "module twin deviceId")
    assert_eq(twin.module_id, "tw", "module twin moduleId")
    assert_true(twin.etag, "module twin etag is empty")
    assert_true(twin.properties is not None and twin.properties.desired is not None, "desired missing")

    patch = Twin(tags={"role": "sensor"}, properties=TwinProperties(desired={"rate": 5, "cfg": {"a": 1}}))
    updated = rm.update_module_twin(dev, "tw", patch, twin.etag)
    assert_eq(updated.module_id, "tw", "moduleId after update")
    assert_eq(updated.tags, {"role": "sensor"}, "tags after update")
    assert_eq(updated.properties.desired.get("rate"), 5, "desired.rate after update")
    assert_eq(updated.properties.desired.get("cfg"), {"a": 1}, "desired.cfg after update")
    assert_true(updated.etag != twin.etag, "module twin etag must change on update")

    expect_http_error(
        412, "PreconditionFailed", rm.update_module_twin, dev, "tw",
        Twin(properties=TwinProperties(desired={"rate": 6})), twin.etag,
    )

    merged = rm.update_module_twin(dev, "tw", Twin(properties=TwinProperties(desired={"cfg": {"b": 2}})), updated.etag)
    assert_eq(merged.properties.desired.get("cfg"), {"a": 1, "b": 2}, "PATCH merges nested objects")

    replaced = rm.replace_module_twin(
        dev, "tw", Twin(tags={"role": "actuator"}, properties=TwinProperties(desired={"mode": "x"})), merged.etag
    )
    assert_eq(replaced.tags, {"role": "actuator"}, "tags after replace")
    desired = {k: v for k, v in replaced.properties.desired.items() if not k.startswith("$")}
    assert_eq(desired, {"mode": "x"}, "desired after replace")
    expect_http_error(
        412, "PreconditionFailed", rm.replace_module_twin, dev, "tw", Twin(tags={"r": 1}), merged.etag
    )

    read = rm.get_module_twin(dev, "tw")
    assert_eq(read.etag, replaced.etag, "module twin etag read back")
    assert_eq(read.tags, {"role": "actuator"}, "tags read back")


@checks
def module_twin_errors():
    dev = parent("m-twin-err")
    expect_http_error(404, "ModuleNotFound", rm.get_module_twin, dev, "missing")
    expect_http_error(
        404, "ModuleNotFound", rm.update_module_twin, dev, "missing", Twin(tags={"a": 1}), None
    )
    expect_http_error(404, None, rm.get_module_twin, "no-such-device", "m")


if __name__ == "__main__":
    checks.main()
