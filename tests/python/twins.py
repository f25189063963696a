"""Device twins through IoTHubRegistryManager: get, PATCH (update_twin), PUT
(replace_twin), ETags, merge semantics and the twin limits."""

from azure.iot.hub.models import Twin, TwinProperties

from conformance import (
    Checks,
    HttpOperationError,
    assert_eq,
    assert_true,
    expect_http_error,
    new_key,
    registry_manager,
)

rm = registry_manager()
checks = Checks("twins")


def device(device_id):
    rm.create_device_with_sas(device_id, new_key(), new_key(), "enabled")
    return device_id


def user_props(props):
    """The user properties of a desired/reported section, without `$version`/`$metadata`."""
    return {k: v for k, v in (props or {}).items() if not k.startswith("$")}


def nested(depth, leaf):
    """An object `depth` levels deep: {"l1": {"l2": ... {"l<depth>": leaf}}}."""
    value = leaf
    for level in range(depth, 0, -1):
        value = {"l%d" % level: value}
    return value


@checks
def new_twin_shape():
    dev = device("t-new")
    twin = rm.get_twin(dev)
    assert_eq(twin.device_id, dev, "deviceId")
    assert_eq(twin.module_id, None, "moduleId of a device twin")
    assert_true(twin.etag, "twin etag is empty")
    assert_true(isinstance(twin.version, int), "twin version is not a number: %r" % twin.version)
    assert_eq(twin.status, "enabled", "status")
    assert_eq(twin.connection_state, "Disconnected", "connectionState")
    assert_eq(twin.authentication_type, "sas", "authenticationType")
    desired = twin.properties.desired
    reported = twin.properties.reported
    assert_eq(user_props(desired), {}, "desired of a new twin")
    assert_eq(user_props(reported), {}, "reported of a new twin")
    assert_true(isinstance(desired.get("$version"), int), "desired.$version missing: %r" % desired)
    assert_true("$metadata" in desired, "desired.$metadata missing: %r" % desired)
    assert_true(isinstance(reported.get("$version"), int), "reported.$version missing: %r" % reported)


@checks
def update_twin_patches_tags_and_desired():
    dev = device("t-patch")
    twin = rm.get_twin(dev)
    v0 = twin.properties.desired["$version"]
    patch = Twin(
        tags={"building": "43", "floor": {"n": 1, "wing": "east"}},
        properties=TwinProperties(desired={"telemetryInterval": 30, "cfg": {"a": 1, "b": 2}}),
    )
    updated = rm.update_twin(dev, patch, twin.etag)
    assert_eq(updated.tags, {"building": "43", "floor": {"n": 1, "wing": "east"}}, "tags after PATCH")
    assert_eq(user_props(updated.properties.desired), {"telemetryInterval": 30, "cfg": {"a": 1, "b": 2}}, "desired after PATCH")
    assert_eq(updated.properties.desired["$version"], v0 + 1, "desired.$version after PATCH")
    assert_true(updated.etag != twin.etag, "twin etag must change on PATCH")
    assert_true(updated.version > twin.version, "twin version must grow on PATCH")

    # Nested objects merge, null removes a key, other keys stay.
    patch2 = Twin(
        tags={"floor": {"n": 2, "wing": None}},
        properties=TwinProperties(desired={"cfg": {"b": None, "c": 3}}),
    )
    merged = rm.update_twin(dev, patch2, updated.etag)
    assert_eq(merged.tags, {"building": "43", "floor": {"n": 2}}, "tags after merge PATCH")
    assert_eq(user_props(merged.properties.desired), {"telemetryInterval": 30, "cfg": {"a": 1, "c": 3}}, "desired after merge PATCH")

    read = rm.get_twin(dev)
    assert_eq(read.etag, merged.etag, "etag read back")
    assert_eq(read.tags, merged.tags, "tags read back")
    assert_eq(user_props(read.properties.desired), user_props(merged.properties.desired), "desired read back")


@checks
def desired_metadata_tracks_updates():
    dev = device("t-meta")
    twin = rm.update_twin(dev, Twin(properties=TwinProperties(desired={"x": {"y": 1}})), None)
    meta = twin.properties.desired["$metadata"]
    assert_true("$lastUpdated" in meta, "desired.$metadata.$lastUpdated missing: %r" % meta)
    assert_true("x" in meta and "$lastUpdated" in meta["x"], "desired.$metadata.x.$lastUpdated missing: %r" % meta)
    assert_true("y" in meta["x"], "desired.$metadata.x.y missing: %r" % meta)


@checks
def stale_etag_is_412_for_patch_and_replace():
    dev = device("t-etag")
    twin = rm.get_twin(dev)
    updated = rm.update_twin(dev, Twin(tags={"a": 1}), twin.etag)
    expect_http_error(412, "PreconditionFailed", rm.update_twin, dev, Twin(tags={"a": 2}), twin.etag)
    expect_http_error(412, "PreconditionFailed", rm.replace_twin, dev, Twin(tags={"a": 3}), twin.etag)
    assert_eq(rm.get_twin(dev).tags, {"a": 1}, "rejected writes must not change the twin")
    # Without an etag the SDK sends If-Match: "*", which always matches.
    forced = rm.update_twin(dev, Twin(tags={"a": 4}), None)
    assert_eq(forced.tags, {"a": 4}, "tags after unconditional PATCH")
    assert_true(forced.etag != updated.etag, "etag must change")


@checks
def replace_twin_replaces_tags_and_desired():
    dev = device("t-replace")
    first = rm.update_twin(
        dev, Twin(tags={"old": 1, "keep": 2}, properties=TwinProperties(desired={"old": True})), None
    )
    v = first.properties.desired["$version"]
    replaced = rm.replace_twin(
        dev, Twin(tags={"new": {"deep": 1}}, properties=TwinProperties(desired={"only": "this"})), first.etag
    )
    assert_eq(replaced.tags, {"new": {"deep": 1}}, "tags after PUT")
    assert_eq(user_props(replaced.properties.desired), {"only": "this"}, "desired after PUT")
    assert_eq(replaced.properties.desired["$version"], v + 1, "desired.$version after PUT")
    assert_true(replaced.etag != first.etag, "twin etag must change on PUT")
    read = rm.get_twin(dev)
    assert_eq(read.tags, {"new": {"deep": 1}}, "tags read back after PUT")
    assert_eq(user_props(read.properties.desired), {"only": "this"}, "desired read back after PUT")


@checks
def twin_follows_device_identity():
    dev = device("t-identity")
    d = rm.get_device(dev)
    rm.update_device_with_certificate_authority(dev, d.etag, "disabled")
    twin = rm.get_twin(dev)
    assert_eq(twin.status, "disabled", "twin status follows the device")
    assert_eq(twin.authentication_type, "certificateAuthority", "twin authenticationType follows the device")
    rm.delete_device(dev)
    expect_http_error(404, "DeviceNotFound", rm.get_twin, dev)
    device(dev)
    fresh = rm.get_twin(dev)
    assert_eq(fresh.tags or {}, {}, "a re-created device starts with an empty twin")


@checks
def missing_device_twin_is_404():
    expect_http_error(404, "DeviceNotFound", rm.get_twin, "no-such-device")
    expect_http_error(404, "DeviceNotFound", rm.update_twin, "no-such-device", Twin(tags={"a": 1}), None)
    expect_http_error(404, "DeviceNotFound", rm.replace_twin, "no-such-device", Twin(tags={"a": 1}), None)


@checks
def twin_depth_limit():
    dev = device("t-depth")
    ok = rm.update_twin(dev, Twin(properties=TwinProperties(desired=nested(8, 1))), None)
    assert_eq(user_props(ok.properties.desired), nested(8, 1), "8 levels of desired are accepted")
    ok = rm.update_twin(dev, Twin(tags=nested(8, "x")), None)
    assert_eq(ok.tags, nested(8, "x"), "8 levels of tags are accepted")

    before = rm.get_twin(dev)
    expect_http_error(400, None, rm.update_twin, dev, Twin(properties=TwinProperties(desired=nested(12, 1))), None)
    expect_http_error(400, None, rm.update_twin, dev, Twin(tags=nested(12, "x")), None)
    expect_http_error(400, None, rm.replace_twin, dev, Twin(properties=TwinProperties(desired=nested(12, 1))), None)
    after = rm.get_twin(dev)
    assert_eq(after.etag, before.etag, "rejected deep writes must not change the twin")


@checks
def reported_properties_cannot_be_written_by_the_service():
    dev = device("t-reported")
    twin = rm.get_twin(dev)
    try:
        result = rm.update_twin(dev, Twin(properties=TwinProperties(reported={"x": 1})), twin.etag)
    except HttpOperationError:
        expect_http_error(400, None, rm.update_twin, dev, Twin(properties=TwinProperties(reported={"x": 1})), None)
    else:
        assert_eq(user_props(result.properties.reported), {}, "the service wrote reported properties")


if __name__ == "__main__":
    checks.main()
