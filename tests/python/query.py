"""query_iot_hub: paging with x-ms-max-item-count / x-ms-continuation and WHERE clauses.

Runs against a fresh emulator, so the registry holds only the devices made here.
"""

from azure.iot.hub.models import QuerySpecification, Twin, TwinProperties

from conformance import (
    Checks,
    assert_eq,
    assert_true,
    expect_http_error,
    new_key,
    registry_manager,
)

rm = registry_manager()
checks = Checks("query")

COUNT = 25
IDS = ["q-%02d" % i for i in range(COUNT)]


def setup():
    for i, dev in enumerate(IDS):
        rm.create_device_with_sas(dev, new_key(), new_key(), "enabled" if i % 5 else "disabled")
        rm.update_twin(
            dev,
            Twin(
                tags={"building": "b1" if i % 2 == 0 else "b2", "floor": i, "loc": {"zone": "z%d" % (i % 3)}},
                properties=TwinProperties(desired={"rate": i % 4}),
            ),
            None,
        )
    rm.create_module_with_sas("q-00", "qm-1", None, new_key(), new_key())
    rm.create_module_with_sas("q-00", "qm-2", None, new_key(), new_key())
    rm.create_module_with_sas("q-01", "qm-1", None, new_key(), new_key())


def run(sql, page_size=None):
    """Every page of a query, following continuation tokens: a list of QueryResult."""
    pages = []
    token = None
    while True:
        result = rm.query_iot_hub(QuerySpecification(query=sql), token, page_size)
        pages.append(result)
        token = result.continuation_token
        if not token:
            return pages
        assert_true(len(pages) < 50, "query never stopped returning continuation tokens")


def ids_of(pages):
    return [twin.device_id for page in pages for twin in page.items]


@checks
def paging_with_page_size_10_gives_three_pages():
    pages = run("SELECT * FROM devices", 10)
    assert_eq([len(p.items) for p in pages], [10, 10, 5], "page sizes")
    assert_true(pages[0].continuation_token and pages[1].continuation_token, "first pages need a continuation token")
    assert_eq(pages[2].continuation_token, None, "the last page has no continuation token")
    for p in pages:
        assert_eq((p.type or "").lower(), "twin", "x-ms-item-type")
    ids = ids_of(pages)
    assert_eq(len(ids), len(set(ids)), "paging returned a device twice")
    assert_eq(sorted(ids), IDS, "paging returned every device")


@checks
def items_are_full_twins():
    pages = run("SELECT * FROM devices WHERE deviceId = 'q-07'")
    items = [t for p in pages for t in p.items]
    assert_eq(len(items), 1, "items for one device id")
    twin = items[0]
    assert_eq(twin.device_id, "q-07", "deviceId")
    assert_eq(twin.tags, {"building": "b2", "floor": 7, "loc": {"zone": "z1"}}, "tags")
    assert_eq(twin.properties.desired.get("rate"), 3, "desired.rate")
    assert_true(twin.etag, "etag of a queried twin")
    assert_eq(twin.status, "enabled", "status of a queried twin")
    assert_eq(twin.etag, rm.get_twin("q-07").etag, "queried etag matches get_twin")


@checks
def without_page_size_one_page_holds_everything():
    pages = run("SELECT * FROM devices")
    assert_eq(len(pages), 1, "number of pages without x-ms-max-item-count")
    assert_eq(sorted(ids_of(pages)), IDS, "devices without paging")


@checks
def page_size_larger_than_result():
    pages = run("SELECT * FROM devices", 100)
    assert_eq(len(pages), 1, "pages")
    assert_eq(pages[0].continuation_token, None, "continuation token")
    assert_eq(len(pages[0].items), COUNT, "items")


@checks
def where_on_tags():
    b1 = sorted(ids_of(run("SELECT * FROM devices WHERE tags.building = 'b1'", 10)))
    assert_eq(b1, [d for i, d in enumerate(IDS) if i % 2 == 0], "tags.building = 'b1'")
    both = sorted(ids_of(run("SELECT * FROM devices WHERE tags.building = 'b2' AND tags.floor > 10", 3)))
    assert_eq(both, [d for i, d in enumerate(IDS) if i % 2 == 1 and i > 10], "b2 AND floor > 10")
    nested_tag = sorted(ids_of(run("SELECT * FROM devices WHERE tags.loc.zone = 'z0'")))
    assert_eq(nested_tag, [d for i, d in enumerate(IDS) if i % 3 == 0], "tags.loc.zone = 'z0'")
    either = sorted(ids_of(run("SELECT * FROM devices WHERE tags.floor < 2 OR tags.floor >= 23")))
    assert_eq(either, ["q-00", "q-01", "q-23", "q-24"], "floor < 2 OR floor >= 23")
    none = run("SELECT * FROM devices WHERE tags.building = 'nowhere'", 10)
    assert_eq(ids_of(none), [], "no match")
    assert_eq(none[-1].continuation_token, None, "no continuation token when nothing matches")


@checks
def where_on_desired_properties_status_and_functions():
    rate0 = sorted(ids_of(run("SELECT * FROM devices WHERE properties.desired.rate = 0")))
    assert_eq(rate0, [d for i, d in enumerate(IDS) if i % 4 == 0], "properties.desired.rate = 0")
    disabled = sorted(ids_of(run("SELECT * FROM devices WHERE status = 'disabled'")))
    assert_eq(disabled, [d for i, d in enumerate(IDS) if i % 5 == 0], "status = 'disabled'")
    defined = ids_of(run("SELECT * FROM devices WHERE IS_DEFINED(tags.loc)"))
    assert_eq(len(defined), COUNT, "IS_DEFINED(tags.loc)")
    undefined = ids_of(run("SELECT * FROM devices WHERE NOT IS_DEFINED(tags.nothing)"))
    assert_eq(len(undefined), COUNT, "NOT IS_DEFINED(tags.nothing)")
    in_list = sorted(ids_of(run("SELECT * FROM devices WHERE deviceId IN ['q-03', 'q-04', 'nope']")))
    assert_eq(in_list, ["q-03", "q-04"], "deviceId IN [...]")


@checks
def module_twins_query():
    pages = run("SELECT * FROM devices.modules WHERE deviceId = 'q-00'", 1)
    assert_eq(len(pages), 2, "one module per page")
    items = [t for p in pages for t in p.items]
    assert_eq(sorted(t.module_id for t in items), ["qm-1", "qm-2"], "moduleIds")
    for t in items:
        assert_eq(t.device_id, "q-00", "deviceId of a module twin")
    all_qm1 = sorted(t.device_id for p in run("SELECT * FROM devices.modules WHERE moduleId = 'qm-1'") for t in p.items)
    assert_eq(all_qm1, ["q-00", "q-01"], "moduleId = 'qm-1'")


@checks
def top_limits_results():
    pages = run("SELECT TOP 7 * FROM devices", 5)
    assert_eq(len(ids_of(pages)), 7, "SELECT TOP 7")


@checks
def invalid_queries_are_400():
    expect_http_error(400, None, rm.query_iot_hub, QuerySpecification(query="SELEKT * FROM devices"))
    expect_http_error(400, None, rm.query_iot_hub, QuerySpecification(query="SELECT * FROM devices WHERE"))
    expect_http_error(400, None, rm.query_iot_hub, QuerySpecification(query="SELECT * FROM nothing"))


if __name__ == "__main__":
    setup()
    checks.main()
