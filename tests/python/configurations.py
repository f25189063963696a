"""Configurations and IoT Edge deployments through IoTHubConfigurationManager, and the edge
rules the Azure CLI relies on (leaf parentScopes, array_contains) through the registry manager.

The configuration manager sends If-Match exactly as given (unquoted, and "*" on delete), unlike
the registry manager, so these checks also cover unquoted ETags.
"""

import os

from azure.iot.hub import IoTHubConfigurationManager
from azure.iot.hub.models import (
    Configuration,
    ConfigurationContent,
    ConfigurationMetrics,
    ConfigurationQueriesTestInput,
    QuerySpecification,
    Twin,
)

from conformance import Checks, assert_eq, assert_true, expect_http_error, new_key, registry_manager

rm = registry_manager()
cm = IoTHubConfigurationManager.from_connection_string(os.environ["IOTHUB_CONNECTION_STRING"])
checks = Checks("configurations")


def tagged_device(device_id, env, edge=False):
    rm.create_device_with_sas(device_id, new_key(), new_key(), "enabled", iot_edge=edge)
    rm.update_twin(device_id, Twin(tags={"env": env}), "*")


@checks
def configuration_create_get_update_list_delete():
    tagged_device("pc-a", "pc-prod")
    tagged_device("pc-b", "pc-prod")
    tagged_device("pc-c", "pc-dev")
    config = Configuration(
        id="pc-cfg",
        schema_version="1.0",
        labels={"team": "a"},
        content=ConfigurationContent(device_content={"properties.desired.interval": 30}),
        target_condition="tags.env = 'pc-prod'",
        priority=5,
        metrics=ConfigurationMetrics(queries={"dev": "SELECT deviceId FROM devices WHERE tags.env = 'pc-dev'"}),
    )
    created = cm.create_configuration(config)
    assert_eq(created.id, "pc-cfg", "id")
    assert_true(created.etag, "etag")
    assert_eq(created.system_metrics.results.get("targetedCount"), 2, "targetedCount")
    assert_eq(created.system_metrics.results.get("appliedCount"), 0, "appliedCount")
    assert_true("[[pc-cfg]]" in created.system_metrics.queries["appliedCount"], "bracket syntax in appliedCount")
    assert_eq(created.metrics.results.get("dev"), 1, "custom metric result")
    expect_http_error(409, "ConfigurationAlreadyExists", cm.create_configuration, config)

    got = cm.get_configuration("pc-cfg")
    assert_eq(got.priority, 5, "priority")
    assert_eq(got.labels, {"team": "a"}, "labels")

    config.priority = 9
    updated = cm.update_configuration(config, created.etag)
    assert_eq(updated.priority, 9, "updated priority")
    assert_true(updated.etag != created.etag, "etag moved")
    expect_http_error(412, "PreconditionFailed", cm.update_configuration, config, created.etag)

    listed = cm.get_configurations(5)
    assert_eq([c.id for c in listed], ["pc-cfg"], "listed ids")

    expect_http_error(412, "PreconditionFailed", cm.delete_configuration, "pc-cfg", created.etag)
    cm.delete_configuration("pc-cfg")
    expect_http_error(404, "ConfigurationNotFound", cm.get_configuration, "pc-cfg")


@checks
def test_queries_reports_errors_as_values():
    result = cm.test_configuration_queries(
        ConfigurationQueriesTestInput(
            target_condition="tags.env = ",
            custom_metric_queries={"ok": "SELECT deviceId FROM devices", "bad": "SELECT FROM"},
        )
    )
    assert_true(result.target_condition_error, "target condition error")
    assert_eq(result.custom_metric_query_errors["ok"], "", "valid metric query")
    assert_true(result.custom_metric_query_errors["bad"], "invalid metric query")


@checks
def apply_configuration_on_edge_device_sets_module_twins():
    tagged_device("pc-edge", "pc-x", edge=True)
    tagged_device("pc-leafy", "pc-x")
    content = ConfigurationContent(
        modules_content={
            "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": {}}},
            "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}},
            "pc-sensor": {"properties.desired": {"interval": 7}},
        }
    )
    # The 2021-04-12 client accepts only 204 here.
    cm.apply_configuration_on_edge_device("pc-edge", content)
    agent = rm.get_module_twin("pc-edge", "$edgeAgent")
    assert_eq(agent.properties.desired.get("schemaVersion"), "1.1", "$edgeAgent desired")
    sensor = rm.get_module_twin("pc-edge", "pc-sensor")
    assert_eq(sensor.properties.desired.get("interval"), 7, "custom module desired")
    expect_http_error(400, "ArgumentInvalid", cm.apply_configuration_on_edge_device, "pc-leafy", content)
    expect_http_error(404, "DeviceNotFound", cm.apply_configuration_on_edge_device, "pc-nobody", content)


@checks
def leaf_device_parent_scopes_and_array_contains():
    edge = rm.create_device_with_sas("pc-parent", new_key(), new_key(), "enabled", iot_edge=True)
    scope = edge.device_scope
    assert_true(scope, "edge deviceScope")
    leaf = rm.create_device_with_sas("pc-child", new_key(), new_key(), "enabled")
    leaf.device_scope = scope
    updated = rm.protocol.devices.create_or_update_identity("pc-child", leaf, "*")
    assert_eq(updated.parent_scopes, [scope], "parentScopes of the leaf")
    assert_eq(rm.get_twin("pc-child").parent_scopes, [scope], "parentScopes in the twin")
    q = "SELECT deviceId FROM devices WHERE array_contains(parentScopes, '%s')" % scope
    items = rm.query_iot_hub(QuerySpecification(query=q)).items
    assert_eq([i.device_id for i in items], ["pc-child"], "children of the edge device")


if __name__ == "__main__":
    checks.main()
