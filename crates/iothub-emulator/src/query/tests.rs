//! End-to-end tests of [`execute`] against an in-memory database.

use rusqlite::Connection;
use serde_json::{Value, json};

use super::*;

/// An empty database with the store's schema (tables and query indexes).
fn db() -> Connection {
    let conn = Connection::open_in_memory().expect("open in-memory db");
    conn.execute_batch(crate::store::SCHEMA)
        .expect("create tables");
    conn
}

/// A twin shaped like the ones IoT Hub returns.
fn twin(id: &str, module: Option<&str>, tags: Value, desired: Value, reported: Value) -> Value {
    let mut desired = desired;
    let mut reported = reported;
    for (section, version) in [(&mut desired, 2), (&mut reported, 1)] {
        if let Some(obj) = section.as_object_mut() {
            obj.insert(
                "$metadata".into(),
                json!({"$lastUpdated": "2024-01-01T00:00:00.000Z"}),
            );
            obj.insert("$version".into(), json!(version));
        }
    }
    let mut t = json!({
        "deviceId": id,
        "etag": "AAAAAAAAAAE=",
        "deviceEtag": "MQ==",
        "status": "enabled",
        "statusUpdateTime": "0001-01-01T00:00:00Z",
        "connectionState": "Disconnected",
        "lastActivityTime": "0001-01-01T00:00:00Z",
        "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
        "modelId": "",
        "version": 2,
        "tags": tags,
        "properties": {"desired": desired, "reported": reported},
        "capabilities": {"iotEdge": false},
    });
    if let (Some(m), Some(obj)) = (module, t.as_object_mut()) {
        obj.insert("moduleId".into(), json!(m));
    }
    t
}

fn add_device(conn: &Connection, twin: &Value) {
    let id = twin["deviceId"].as_str().expect("deviceId");
    conn.execute(
        "INSERT INTO devices(device_id, status, record, twin, connection_state)
         VALUES (?1, ?2, '{}', ?3, ?4)",
        (
            id,
            twin["status"].as_str().unwrap_or("enabled"),
            twin.to_string(),
            twin["connectionState"].as_str().unwrap_or("Disconnected"),
        ),
    )
    .expect("insert device");
}

fn add_module(conn: &Connection, twin: &Value) {
    conn.execute(
        "INSERT INTO modules(device_id, module_id, record, twin) VALUES (?1, ?2, '{}', ?3)",
        (
            twin["deviceId"].as_str().expect("deviceId"),
            twin["moduleId"].as_str().expect("moduleId"),
            twin.to_string(),
        ),
    )
    .expect("insert module");
}

/// Five devices with varied tags and properties.
fn fleet() -> Connection {
    let conn = db();
    let devices = [
        twin(
            "d1",
            None,
            json!({"location": {"region": "US", "plant": "Redmond43"}, "floor": 1, "name": "Alpha", "flag": true}),
            json!({"t": 1}),
            json!({"temp": 20.5, "connectivity": {"type": "wifi"}, "fw": "1.2.0"}),
        ),
        twin(
            "d2",
            None,
            json!({"location": {"region": "EU"}, "floor": 2, "name": "beta", "flag": false}),
            json!({"t": 2}),
            json!({"temp": 30, "connectivity": {"type": "cellular"}, "fw": "1.3.0"}),
        ),
        twin(
            "d3",
            None,
            json!({"location": {"region": "US"}, "floor": "3", "name": "Gamma's \"q\"", "n": null}),
            json!({}),
            json!({"temp": 25, "connectivity": {"type": "wifi"}}),
        ),
        twin(
            "d4",
            None,
            json!({"floor": 4, "name": "delta"}),
            json!({}),
            json!({"temp": "hot", "connectivity": {"type": "wired"}}),
        ),
        twin("d5", None, json!({}), json!({}), json!({})),
    ];
    for d in &devices {
        add_device(&conn, d);
    }
    conn
}

fn run(conn: &Connection, q: &str) -> QueryPage {
    execute(conn, q, None, None).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn ids(page: &QueryPage) -> Vec<String> {
    page.items
        .iter()
        .map(|t| {
            let d = t["deviceId"].as_str().unwrap_or("?");
            match t.get("moduleId").and_then(Value::as_str) {
                Some(m) => format!("{d}/{m}"),
                None => d.to_owned(),
            }
        })
        .collect()
}

fn where_ids(conn: &Connection, cond: &str) -> Vec<String> {
    ids(&run(conn, &format!("SELECT * FROM devices WHERE {cond}")))
}

fn fails(conn: &Connection, q: &str) -> QueryError {
    match execute(conn, q, None, None) {
        Ok(p) => panic!("{q} succeeded: {p:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- SELECT *

#[test]
fn select_star_returns_twins_in_order() {
    let conn = fleet();
    let page = run(&conn, "select * from devices");
    assert_eq!(page.item_type, "Twin");
    assert_eq!(ids(&page), ["d1", "d2", "d3", "d4", "d5"]);
    assert_eq!(page.continuation, None);
    assert_eq!(page.items[0]["tags"]["location"]["region"], "US");
    assert_eq!(page.items[0]["properties"]["desired"]["$version"], 2);
}

#[test]
fn select_star_empty_table() {
    let conn = db();
    let page = run(&conn, "SELECT * FROM devices");
    assert!(page.items.is_empty());
    assert_eq!(page.continuation, None);
}

#[test]
fn module_twins() {
    let conn = fleet();
    for (d, m, status) in [
        ("d1", "$edgeAgent", "running"),
        ("d1", "sensor", "scanning"),
        ("d2", "sensor", "idle"),
        ("d3", "sensor", "scanning"),
    ] {
        add_module(
            &conn,
            &twin(d, Some(m), json!({}), json!({}), json!({"status": status})),
        );
    }
    let page = run(&conn, "SELECT * FROM devices.modules");
    assert_eq!(page.item_type, "Twin");
    assert_eq!(
        ids(&page),
        ["d1/$edgeAgent", "d1/sensor", "d2/sensor", "d3/sensor"]
    );
    let page = run(
        &conn,
        "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['d1', 'd2']",
    );
    assert_eq!(ids(&page), ["d1/sensor"]);
    let page = run(
        &conn,
        "SELECT * FROM devices.modules WHERE devices.modules.moduleId = '$edgeAgent'",
    );
    assert_eq!(ids(&page), ["d1/$edgeAgent"]);
    let page = run(
        &conn,
        "SELECT deviceId, moduleId FROM devices.modules WHERE moduleId != '$edgeAgent'",
    );
    assert_eq!(page.item_type, "Raw");
    assert_eq!(
        page.items,
        vec![
            json!({"deviceId": "d1", "moduleId": "sensor"}),
            json!({"deviceId": "d2", "moduleId": "sensor"}),
            json!({"deviceId": "d3", "moduleId": "sensor"}),
        ]
    );
    let page = run(
        &conn,
        "SELECT COUNT() AS n FROM devices.modules WHERE moduleId = 'sensor'",
    );
    assert_eq!(page.items, vec![json!({"n": 3})]);
}

// ------------------------------------------------------------- projections

#[test]
fn projection_names_and_missing_properties() {
    let conn = fleet();
    let page = run(&conn, "SELECT deviceId, tags.location.region FROM devices");
    assert_eq!(page.item_type, "Raw");
    assert_eq!(
        page.items,
        vec![
            json!({"deviceId": "d1", "region": "US"}),
            json!({"deviceId": "d2", "region": "EU"}),
            json!({"deviceId": "d3", "region": "US"}),
            json!({"deviceId": "d4"}),
            json!({"deviceId": "d5"}),
        ]
    );
}

#[test]
fn projection_aliases_types_and_case() {
    let conn = fleet();
    let page = run(
        &conn,
        "SELECT DeviceId, LastActivityTime, tags.flag AS f, tags.n, properties.reported.connectivity AS c, tags.location \
         FROM devices WHERE deviceId IN ['d1', 'd3']",
    );
    assert_eq!(
        page.items,
        vec![
            json!({
                "deviceId": "d1",
                "lastActivityTime": "0001-01-01T00:00:00Z",
                "f": true,
                "c": {"type": "wifi"},
                "location": {"region": "US", "plant": "Redmond43"},
            }),
            json!({
                "deviceId": "d3",
                "lastActivityTime": "0001-01-01T00:00:00Z",
                "n": null,
                "c": {"type": "wifi"},
                "location": {"region": "US"},
            }),
        ]
    );
}

#[test]
fn projection_with_brackets() {
    let conn = db();
    add_device(
        &conn,
        &twin(
            "x",
            None,
            json!({"a b": {"c": 1}, "list": [10, 20]}),
            json!({}),
            json!({}),
        ),
    );
    let page = run(
        &conn,
        "SELECT tags['a b'].c, tags.list[1], tags.[[a b]] AS ab FROM devices",
    );
    assert_eq!(page.items, vec![json!({"c": 1, "$1": 20, "ab": {"c": 1}})]);
}

// -------------------------------------------------------------- aggregates

#[test]
fn count_aliases() {
    let conn = fleet();
    let page = run(&conn, "SELECT COUNT() AS numberOfDevices FROM devices");
    assert_eq!(page.item_type, "Raw");
    assert_eq!(page.items, vec![json!({"numberOfDevices": 5})]);
    assert_eq!(
        run(
            &conn,
            "SELECT COUNT() FROM devices WHERE tags.location.region = 'US'"
        )
        .items,
        vec![json!({"$1": 2})]
    );
    assert_eq!(
        run(
            &conn,
            "SELECT count(*) AS n FROM devices WHERE tags.none = 1"
        )
        .items,
        vec![json!({"n": 0})]
    );
    assert_eq!(
        run(&db(), "SELECT COUNT() AS n FROM devices").items,
        vec![json!({"n": 0})]
    );
}

#[test]
fn numeric_aggregates_ignore_other_types() {
    let conn = fleet();
    let page = run(
        &conn,
        "SELECT SUM(properties.reported.temp) AS s, AVG(properties.reported.temp) AS a, \
         MIN(properties.reported.temp) AS lo, MAX(tags.floor) AS hi, MAX(properties.reported.temp), COUNT() FROM devices",
    );
    // temps: 20.5, 30, 25, "hot", missing; floors: 1, 2, "3", 4.
    assert_eq!(
        page.items,
        vec![json!({"s": 75.5, "a": 75.5 / 3.0, "lo": 20.5, "hi": "3", "$1": "hot", "$2": 5})]
    );
    let page = run(
        &conn,
        "SELECT SUM(tags.none) AS s, AVG(tags.none) AS a, MIN(tags.none) AS lo FROM devices",
    );
    assert_eq!(page.items, vec![json!({"s": 0})]);
    let page = run(&conn, "SELECT SUM(tags.floor) AS s FROM devices");
    assert_eq!(page.items, vec![json!({"s": 7})]);
}

#[test]
fn group_by_with_counts() {
    let conn = fleet();
    let page = run(
        &conn,
        "SELECT properties.reported.connectivity.type AS type, COUNT() AS numberOfDevices \
         FROM devices GROUP BY properties.reported.connectivity.type",
    );
    assert_eq!(page.item_type, "Raw");
    assert_eq!(
        page.items,
        vec![
            json!({"numberOfDevices": 1}),
            json!({"type": "cellular", "numberOfDevices": 1}),
            json!({"type": "wifi", "numberOfDevices": 2}),
            json!({"type": "wired", "numberOfDevices": 1}),
        ]
    );
    // With a filter, default names and several group keys.
    let page = run(
        &conn,
        "SELECT tags.location.region, properties.reported.connectivity.type, COUNT(), AVG(properties.reported.temp) \
         FROM devices WHERE is_defined(tags.location) \
         GROUP BY tags.location.region, properties.reported.connectivity.type",
    );
    assert_eq!(
        page.items,
        vec![
            json!({"region": "EU", "type": "cellular", "$1": 1, "$2": 30.0}),
            json!({"region": "US", "type": "wifi", "$1": 2, "$2": 22.75}),
        ]
    );
    // GROUP BY without aggregates lists distinct values.
    let page = run(
        &conn,
        "SELECT tags.location.region AS r FROM devices WHERE IS_DEFINED(tags.location.region) GROUP BY tags.location.region",
    );
    assert_eq!(page.items, vec![json!({"r": "EU"}), json!({"r": "US"})]);
}

#[test]
fn group_by_pages_and_top() {
    let conn = db();
    for i in 0..25 {
        add_device(
            &conn,
            &twin(
                &format!("g{i:02}"),
                None,
                json!({"bucket": i % 7}),
                json!({}),
                json!({}),
            ),
        );
    }
    let q = "SELECT TOP 6 tags.bucket AS b, COUNT() AS n FROM devices GROUP BY tags.bucket";
    let p1 = execute(&conn, q, Some(4), None).expect("page 1");
    assert_eq!(p1.items.len(), 4);
    assert_eq!(p1.items[0], json!({"b": 0, "n": 4}));
    let token = p1.continuation.clone().expect("more groups");
    let p2 = execute(&conn, q, Some(4), Some(&token)).expect("page 2");
    assert_eq!(
        p2.items,
        vec![json!({"b": 4, "n": 3}), json!({"b": 5, "n": 3})]
    );
    assert_eq!(p2.continuation, None);
    // A grouped token is not valid for a keyset query and vice versa.
    assert!(matches!(
        execute(&conn, "SELECT * FROM devices", None, Some(&token)),
        Err(QueryError::BadContinuation)
    ));
}

// --------------------------------------------------------------- conditions

#[test]
fn comparison_operators() {
    let conn = fleet();
    assert_eq!(
        where_ids(&conn, "tags.location.region = 'US'"),
        ["d1", "d3"]
    );
    assert_eq!(where_ids(&conn, "tags.location.region != 'US'"), ["d2"]);
    assert_eq!(where_ids(&conn, "tags.location.region <> 'US'"), ["d2"]);
    assert_eq!(where_ids(&conn, "properties.reported.temp > 25"), ["d2"]);
    assert_eq!(
        where_ids(&conn, "properties.reported.temp >= 25"),
        ["d2", "d3"]
    );
    assert_eq!(where_ids(&conn, "properties.reported.temp < 25"), ["d1"]);
    assert_eq!(
        where_ids(&conn, "properties.reported.temp <= 25"),
        ["d1", "d3"]
    );
    assert_eq!(where_ids(&conn, "properties.reported.temp = 20.5"), ["d1"]);
    assert_eq!(where_ids(&conn, "tags.floor = 2.0"), ["d2"]);
    assert_eq!(where_ids(&conn, "tags.name > 'a'"), ["d2", "d4"]);
    assert_eq!(where_ids(&conn, "tags.flag = true"), ["d1"]);
    assert_eq!(where_ids(&conn, "tags.flag = false"), ["d2"]);
    assert_eq!(where_ids(&conn, "tags.flag < true"), ["d2"]);
    assert_eq!(where_ids(&conn, "tags.n = null"), ["d3"]);
    assert_eq!(
        where_ids(&conn, "status = 'enabled'"),
        ["d1", "d2", "d3", "d4", "d5"]
    );
    assert_eq!(where_ids(&conn, "devices.tags.floor = 4"), ["d4"]);
    assert_eq!(
        where_ids(&conn, "properties.desired.$version = 2"),
        ["d1", "d2", "d3", "d4", "d5"]
    );
    assert_eq!(
        where_ids(&conn, "tags.floor = tags.floor"),
        ["d1", "d2", "d3", "d4"]
    );
    assert_eq!(
        where_ids(&conn, "properties.desired.t <= tags.floor"),
        ["d1", "d2"]
    );
    assert_eq!(
        where_ids(&conn, "properties.desired.t < tags.floor"),
        Vec::<String>::new()
    );
    assert_eq!(where_ids(&conn, "2 > 1"), ["d1", "d2", "d3", "d4", "d5"]);
}

#[test]
fn type_mismatches_and_missing_properties_are_never_true() {
    let conn = fleet();
    // floor is "3" (a string) on d3: it never equals the number 3.
    assert_eq!(where_ids(&conn, "tags.floor = 3"), Vec::<String>::new());
    assert_eq!(where_ids(&conn, "tags.floor = '3'"), ["d3"]);
    // Different types are undefined for != too, and so is a missing property.
    assert_eq!(where_ids(&conn, "tags.floor != 1"), ["d2", "d4"]);
    assert_eq!(where_ids(&conn, "NOT (tags.floor = 1)"), ["d2", "d4"]);
    assert_eq!(
        where_ids(&conn, "tags.missing != 'x'"),
        Vec::<String>::new()
    );
    // Objects and nulls never compare with strings.
    assert_eq!(
        where_ids(&conn, "tags.location = 'US'"),
        Vec::<String>::new()
    );
    assert_eq!(
        where_ids(&conn, "tags.location = tags.location"),
        Vec::<String>::new()
    );
    assert_eq!(where_ids(&conn, "tags.n != 'x'"), Vec::<String>::new());
    // Only a boolean true satisfies a bare condition.
    assert_eq!(where_ids(&conn, "tags.flag"), ["d1"]);
    assert_eq!(where_ids(&conn, "tags.floor"), Vec::<String>::new());
    assert_eq!(where_ids(&conn, "'yes'"), Vec::<String>::new());
    assert_eq!(
        where_ids(&conn, "undefined = undefined"),
        Vec::<String>::new()
    );
}

#[test]
fn string_comparison_is_case_sensitive() {
    let conn = fleet();
    assert_eq!(
        where_ids(&conn, "tags.name = 'alpha'"),
        Vec::<String>::new()
    );
    assert_eq!(where_ids(&conn, "tags.name = 'Alpha'"), ["d1"]);
    assert_eq!(
        where_ids(&conn, "tags.Name = 'Alpha'"),
        Vec::<String>::new()
    );
}

#[test]
fn logical_operators_use_three_valued_logic() {
    let conn = fleet();
    assert_eq!(
        where_ids(
            &conn,
            "tags.location.region = 'US' AND properties.reported.temp > 21"
        ),
        ["d3"]
    );
    assert_eq!(
        where_ids(&conn, "tags.location.region = 'EU' OR tags.floor = 4"),
        ["d2", "d4"]
    );
    assert_eq!(where_ids(&conn, "NOT tags.location.region = 'US'"), ["d2"]);
    assert_eq!(
        where_ids(
            &conn,
            "(tags.floor = 1 OR tags.floor = 2) AND NOT (tags.flag = false)"
        ),
        ["d1"]
    );
    // false AND undefined = false, so NOT(...) is true for d2; for d4 and d5
    // both sides are undefined, and so is NOT(...).
    assert_eq!(
        where_ids(
            &conn,
            "NOT (tags.location.region = 'US' AND tags.missing = 1)"
        ),
        ["d2"]
    );
    // true OR undefined = true.
    assert_eq!(
        where_ids(&conn, "tags.floor = 4 OR tags.missing = 1"),
        ["d4"]
    );
    assert_eq!(
        where_ids(
            &conn,
            "a = 1 and b = 2 Or NOT tags.floor = 3 AND tags.floor = 4"
        ),
        ["d4"]
    );
}

#[test]
fn in_and_nin() {
    let conn = fleet();
    assert_eq!(
        where_ids(
            &conn,
            "properties.reported.connectivity.type IN ['wired', 'wifi']"
        ),
        ["d1", "d3", "d4"]
    );
    assert_eq!(
        where_ids(
            &conn,
            "properties.reported.connectivity.type NIN ['wired', 'wifi']"
        ),
        ["d2"]
    );
    assert_eq!(
        where_ids(
            &conn,
            "properties.reported.connectivity.type NOT IN ['wifi']"
        ),
        ["d2", "d4"]
    );
    assert_eq!(
        where_ids(&conn, "tags.floor IN [1, '3', 4.0]"),
        ["d1", "d3", "d4"]
    );
    assert_eq!(where_ids(&conn, "tags.flag IN [true]"), ["d1"]);
    assert_eq!(where_ids(&conn, "tags.n IN [null]"), ["d3"]);
    assert_eq!(where_ids(&conn, "tags.floor IN []"), Vec::<String>::new());
    // A missing property is undefined for NIN as well.
    assert_eq!(
        where_ids(&conn, "tags.location.region NIN ['EU']"),
        ["d1", "d3"]
    );
    // Objects are not primitives.
    assert_eq!(
        where_ids(&conn, "tags.location NIN ['x']"),
        Vec::<String>::new()
    );
}

#[test]
fn is_defined() {
    let conn = fleet();
    assert_eq!(
        where_ids(&conn, "IS_DEFINED(tags.location)"),
        ["d1", "d2", "d3"]
    );
    assert_eq!(where_ids(&conn, "is_defined(tags.n)"), ["d3"]);
    assert_eq!(
        where_ids(&conn, "NOT IS_DEFINED(tags.location)"),
        ["d4", "d5"]
    );
    assert_eq!(
        where_ids(&conn, "IS_DEFINED(tags.floor + 1)"),
        ["d1", "d2", "d4"]
    );
    assert_eq!(
        where_ids(&conn, "IS_DEFINED(undefined)"),
        Vec::<String>::new()
    );
    assert_eq!(
        where_ids(
            &conn,
            "IS_DEFINED('x') AND IS_DEFINED(null) AND IS_DEFINED([1])"
        )
        .len(),
        5
    );
}

#[test]
fn string_functions() {
    let conn = fleet();
    assert_eq!(
        where_ids(&conn, "STARTSWITH(properties.reported.fw, '1.')"),
        ["d1", "d2"]
    );
    assert_eq!(
        where_ids(&conn, "startswith(properties.reported.fw, '1.3')"),
        ["d2"]
    );
    assert_eq!(where_ids(&conn, "ENDSWITH(tags.name, 'ta')"), ["d2", "d4"]);
    assert_eq!(where_ids(&conn, "EndsWith(tags.name, '')").len(), 4);
    assert_eq!(
        where_ids(&conn, "ENDSWITH(tags.name, 'much longer than the name')"),
        Vec::<String>::new()
    );
    assert_eq!(
        where_ids(&conn, "STARTSWITH(tags.name, 'ALPHA')"),
        Vec::<String>::new()
    );
    assert_eq!(where_ids(&conn, "STARTSWITH(tags.floor, '3')"), ["d3"]);
    // Non-strings are undefined.
    assert_eq!(
        where_ids(&conn, "STARTSWITH(tags.floor, 1)"),
        Vec::<String>::new()
    );
    assert_eq!(
        where_ids(&conn, "NOT ENDSWITH(tags.location, 'U')"),
        Vec::<String>::new()
    );
}

/// Only the functions IoT Hub accepts in twin queries: `IS_DEFINED` (documented),
/// `STARTSWITH`/`ENDSWITH` (what the hub accepts; `STARTS_WITH` is refused as an invalid
/// query), `ARRAY_CONTAINS` (sent by Microsoft's CLI). The type checks and string functions
/// of message routing are invalid.
#[test]
fn functions_outside_twin_queries_are_invalid() {
    let conn = fleet();
    for accepted in [
        "IS_DEFINED(tags.x)",
        "STARTSWITH(deviceId, 'd')",
        "ENDSWITH(deviceId, '1')",
        "ARRAY_CONTAINS(tags.list, 1)",
    ] {
        run(&conn, &format!("SELECT * FROM devices WHERE {accepted}"));
    }
    for refused in [
        "STARTS_WITH(deviceId, 'x')",
        "ENDS_WITH(deviceId, 'x')",
        "CONTAINS(deviceId, 'x')",
        "IS_NULL(tags.n)",
        "IS_BOOL(tags.flag)",
        "IS_NUMBER(tags.floor)",
        "IS_STRING(tags.floor)",
        "IS_OBJECT(tags.location)",
        "IS_ARRAY(tags.list)",
        "IS_PRIMITIVE(tags.n)",
        "LOWER(tags.name) = 'alpha'",
        "LENGTH(deviceId) = 2",
        "ABS(tags.floor) = 1",
        "AS_NUMBER(tags.floor) = 3",
        "NO_SUCH_FUNCTION(deviceId)",
    ] {
        let q = format!("SELECT * FROM devices WHERE {refused}");
        let e = fails(&conn, &q);
        assert!(matches!(e, QueryError::Syntax { .. }), "{q}: {e:?}");
        let name = refused.split('(').next().unwrap_or_default();
        assert!(
            e.to_string().contains(&format!("near '{name}'")),
            "{q}: {e}"
        );
    }
    let e = fails(
        &conn,
        "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'x')",
    );
    assert!(e.to_string().contains("use STARTSWITH"), "{e}");
}

#[test]
fn arithmetic() {
    let conn = fleet();
    assert_eq!(where_ids(&conn, "tags.floor + 1 = 3"), ["d2"]);
    assert_eq!(where_ids(&conn, "tags.floor * 2 - 1 >= 7"), ["d4"]);
    assert_eq!(where_ids(&conn, "tags.floor / 2 = 0.5"), ["d1"]);
    assert_eq!(where_ids(&conn, "tags.floor % 2 = 0"), ["d2", "d4"]);
    assert_eq!(
        where_ids(&conn, "properties.reported.temp % 2 = 0.5"),
        ["d1"]
    );
    assert_eq!(where_ids(&conn, "-tags.floor = -4"), ["d4"]);
    assert_eq!(where_ids(&conn, "+tags.floor = 4"), ["d4"]);
    assert_eq!(where_ids(&conn, "tags.floor / 0 = 1"), Vec::<String>::new());
    assert_eq!(where_ids(&conn, "tags.floor % 0 = 1"), Vec::<String>::new());
    // Strings are not numbers: "3" + 1 is undefined.
    assert_eq!(where_ids(&conn, "tags.floor + 1 = 4"), Vec::<String>::new());
    assert_eq!(where_ids(&conn, "tags.floor = 0x4"), ["d4"]);
    assert_eq!(where_ids(&conn, "tags.floor = 4e0"), ["d4"]);
    assert_eq!(
        where_ids(&conn, "properties.desired.t * 10 = tags.floor * 10"),
        ["d1", "d2"]
    );
    assert_eq!(where_ids(&conn, "9223372036854775807 + 1 > 0").len(), 5);
}

#[test]
fn string_literal_escapes() {
    let conn = fleet();
    assert_eq!(where_ids(&conn, r#"tags.name = 'Gamma\'s "q"'"#), ["d3"]);
    assert_eq!(where_ids(&conn, r#"tags.name = "Gamma's \"q\"""#), ["d3"]);
    assert_eq!(
        where_ids(&conn, r#"tags.name = 'Gamma\u0027s \u0022q\u0022'"#),
        ["d3"]
    );
    let conn = db();
    add_device(
        &conn,
        &twin(
            "u",
            None,
            json!({"s": "back\\slash é😀"}),
            json!({}),
            json!({}),
        ),
    );
    assert_eq!(
        where_ids(&conn, r"tags.s = 'back\\slash \u00e9\uD83D\uDE00'"),
        ["u"]
    );
}

#[test]
fn unusual_property_names() {
    let conn = db();
    add_device(
        &conn,
        &twin(
            "w",
            None,
            json!({"a\"b": 1, "quo'te": 2, "sp ace": 3, "dot.ted": 4, "back\\slash": 5}),
            json!({}),
            json!({}),
        ),
    );
    for (cond, expect) in [
        (r#"tags['a"b'] = 1"#, 1),
        (r"tags['quo\'te'] = 2", 1),
        ("tags.[[sp ace]] = 3", 1),
        ("tags['dot.ted'] = 4", 1),
        ("tags.[[dot.ted]] = 4", 1),
        (r"tags['back\\slash'] = 5", 1),
        ("tags.dot.ted = 4", 0),
    ] {
        assert_eq!(where_ids(&conn, cond).len(), expect, "{cond}");
    }
}

// ------------------------------------------------------------------- paging

fn many(conn: &Connection, n: usize) {
    let tx = conn.unchecked_transaction().expect("tx");
    for i in 0..n {
        add_device(
            conn,
            &twin(
                &format!("dev{i:05}"),
                None,
                json!({"location": {"region": if i % 2 == 0 { "US" } else { "EU" }}, "i": i}),
                json!({}),
                json!({"temp": i % 40}),
            ),
        );
    }
    tx.commit().expect("commit");
}

#[test]
fn pages_with_top_across_three_pages() {
    let conn = db();
    many(&conn, 40);
    // 20 US devices: the filter ends the results before TOP does.
    let q = "SELECT TOP 23 deviceId FROM devices WHERE tags.location.region = 'US'";
    let p1 = execute(&conn, q, Some(10), None).expect("page 1");
    assert_eq!(p1.items.len(), 10);
    assert_eq!(p1.items[0], json!({"deviceId": "dev00000"}));
    let t1 = p1.continuation.expect("page 2 follows");
    let p2 = execute(&conn, q, Some(10), Some(&t1)).expect("page 2");
    assert_eq!(p2.items.len(), 10);
    assert_eq!(p2.items[0], json!({"deviceId": "dev00020"}));
    assert_eq!(p2.continuation, None);

    // 35 matching devices: TOP 23 gives pages of 10, 10 and 3.
    let q = "SELECT TOP 23 deviceId, tags.i FROM devices WHERE tags.i >= 5";
    let p1 = execute(&conn, q, Some(10), None).expect("page 1");
    assert_eq!(p1.items[0], json!({"deviceId": "dev00005", "i": 5}));
    let t1 = p1.continuation.expect("page 2 follows");
    let p2 = execute(&conn, q, Some(10), Some(&t1)).expect("page 2");
    assert_eq!(p2.items[0], json!({"deviceId": "dev00015", "i": 15}));
    let t2 = p2.continuation.expect("page 3 follows");
    let p3 = execute(&conn, q, Some(10), Some(&t2)).expect("page 3");
    assert_eq!(
        p3.items,
        vec![
            json!({"deviceId": "dev00025", "i": 25}),
            json!({"deviceId": "dev00026", "i": 26}),
            json!({"deviceId": "dev00027", "i": 27}),
        ]
    );
    assert_eq!(p3.continuation, None);
    // Asking for a bigger page at the end does not go past TOP.
    let p3b = execute(&conn, q, Some(1000), Some(&t2)).expect("page 3 again");
    assert_eq!(p3b.items.len(), 3);

    // TOP ends the last page early and stops the continuation.
    let q = "SELECT TOP 23 * FROM devices";
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let page = execute(&conn, q, Some(10), token.as_deref()).expect("page");
        sizes.push(page.items.len());
        all.extend(ids(&page));
        match page.continuation {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 3]);
    assert_eq!(all.len(), 23);
    assert_eq!(all[22], "dev00022");
}

#[test]
fn exact_multiple_of_page_size_has_no_empty_trailing_page() {
    let conn = db();
    many(&conn, 20);
    let p1 = execute(&conn, "SELECT * FROM devices", Some(10), None).expect("page 1");
    let t = p1.continuation.expect("second page");
    let p2 = execute(&conn, "SELECT * FROM devices", Some(10), Some(&t)).expect("page 2");
    assert_eq!(p2.items.len(), 10);
    assert_eq!(p2.continuation, None);
}

#[test]
fn page_size_defaults_and_clamping() {
    let conn = db();
    many(&conn, 1205);
    let q = "SELECT deviceId FROM devices";
    assert_eq!(
        execute(&conn, q, None, None).expect("default").items.len(),
        100
    );
    assert_eq!(
        execute(&conn, q, Some(0), None).expect("zero").items.len(),
        100
    );
    assert_eq!(
        execute(&conn, q, Some(7), None).expect("seven").items.len(),
        7
    );
    let big = execute(&conn, q, Some(5000), None).expect("clamped");
    assert_eq!(big.items.len(), 1000);
    let rest = execute(&conn, q, Some(u32::MAX), big.continuation.as_deref()).expect("rest");
    assert_eq!(rest.items.len(), 205);
    assert_eq!(rest.continuation, None);
    assert_eq!(
        execute(&conn, "SELECT TOP 0 * FROM devices", None, None)
            .expect("top 0")
            .items
            .len(),
        0
    );
}

#[test]
fn module_paging_uses_both_keys() {
    let conn = db();
    for d in ["a", "b", "c"] {
        for m in ["m1", "m2", "m3"] {
            add_module(&conn, &twin(d, Some(m), json!({}), json!({}), json!({})));
        }
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = execute(
            &conn,
            "SELECT * FROM devices.modules",
            Some(2),
            token.as_deref(),
        )
        .expect("page");
        seen.extend(ids(&page));
        match page.continuation {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "a/m1", "a/m2", "a/m3", "b/m1", "b/m2", "b/m3", "c/m1", "c/m2", "c/m3"
        ]
    );
}

#[test]
fn paging_is_stable_under_concurrent_changes() {
    let conn = db();
    many(&conn, 10);
    let q = "SELECT deviceId FROM devices";
    let p1 = execute(&conn, q, Some(4), None).expect("page 1");
    let t1 = p1.continuation.clone().expect("more");
    // Insert before and after the cursor, delete one not yet returned.
    add_device(
        &conn,
        &twin("dev00001a", None, json!({}), json!({}), json!({})),
    );
    add_device(&conn, &twin("aaa", None, json!({}), json!({}), json!({})));
    add_device(&conn, &twin("zzz", None, json!({}), json!({}), json!({})));
    conn.execute("DELETE FROM devices WHERE device_id = 'dev00005'", [])
        .expect("delete");
    let mut rest = Vec::new();
    let mut token = Some(t1);
    while let Some(t) = token {
        let page = execute(&conn, q, Some(4), Some(&t)).expect("page");
        rest.extend(ids(&page));
        token = page.continuation;
    }
    assert_eq!(
        rest,
        [
            "dev00004", "dev00006", "dev00007", "dev00008", "dev00009", "zzz"
        ]
    );
}

#[test]
fn bad_continuation_tokens() {
    let conn = db();
    many(&conn, 5);
    let q = "SELECT * FROM devices";
    let token = execute(&conn, q, Some(2), None)
        .expect("page")
        .continuation
        .expect("token");
    assert!(execute(&conn, q, Some(2), Some(&token)).is_ok());
    let forged = |doc: Value| URL_SAFE_NO_PAD.encode(doc.to_string());
    let fp = fingerprint(q);
    for bad in [
        "garbage!".to_owned(),
        "bm90IGpzb24".to_owned(), // "not json"
        URL_SAFE_NO_PAD.encode("[1,2]"),
        format!("{token}x"),
        token[..token.len() - 3].to_owned(),
        forged(json!({"v": 1, "q": fp, "n": 2})),
        forged(json!({"v": 1, "q": fp, "n": 2, "k": []})),
        forged(json!({"v": 1, "q": fp, "n": 2, "k": [1]})),
        forged(json!({"v": 1, "q": fp, "n": 2, "k": ["a", "b"]})),
        forged(json!({"v": 1, "q": fp, "n": -1, "k": ["a"]})),
        forged(json!({"v": 2, "q": fp, "n": 2, "k": ["a"]})),
        forged(json!({"v": 1, "q": "0000", "n": 2, "k": ["a"]})),
    ] {
        assert!(
            matches!(
                execute(&conn, q, Some(2), Some(&bad)),
                Err(QueryError::BadContinuation)
            ),
            "{bad}"
        );
    }
    // A token from another query (even one differing only in case) is rejected.
    for other in [
        "select * from devices",
        "SELECT * FROM devices WHERE 1 = 1",
        "SELECT * FROM devices.modules",
    ] {
        assert!(
            matches!(
                execute(&conn, other, Some(2), Some(&token)),
                Err(QueryError::BadContinuation)
            ),
            "{other}"
        );
    }
    // Blank tokens mean "first page".
    assert_eq!(
        execute(&conn, q, Some(2), Some("  "))
            .expect("blank")
            .items
            .len(),
        2
    );
    assert!(
        QueryError::BadContinuation
            .to_string()
            .contains("continuation token")
    );
}

// ------------------------------------------------------------------- errors

#[test]
fn errors_point_at_the_problem() {
    let conn = fleet();
    let e = fails(&conn, "SELECT * FORM devices");
    assert!(matches!(e, QueryError::Syntax { .. }));
    assert_eq!(
        e.to_string(),
        "Syntax error at position 10 near 'FORM': expected FROM"
    );
    let e = fails(
        &conn,
        "SELECT deviceId, tags.location.region FROM devices WHERE tags.x = 'a",
    );
    assert_eq!(
        e.to_string(),
        "Syntax error at position 67 near ''a': unterminated string literal"
    );
    let e = fails(&conn, "SELECT * FROM devices.jobs");
    assert!(matches!(e, QueryError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("devices.jobs"));
    let e = fails(
        &conn,
        "SELECT * FROM devices WHERE LOWER(tags.name) = 'alpha'",
    );
    assert!(matches!(e, QueryError::Syntax { .. }), "{e:?}");
    let long = format!("SELECT * FROM devices WHERE {}", "a = 1 OR ".repeat(1000));
    let e = fails(&conn, &long);
    assert!(e.to_string().contains("too long"), "{e}");
    let e = fails(&conn, "");
    assert_eq!(
        e.to_string(),
        "Syntax error at position 1 (end of query): expected SELECT"
    );
}

#[test]
fn long_or_chain_within_length_limit_runs() {
    let conn = fleet();
    let cond = (0..380)
        .map(|i| format!("tags.floor = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let q = format!("SELECT deviceId FROM devices WHERE {cond}");
    assert!(q.chars().count() <= MAX_QUERY_CHARS);
    let page = run(&conn, &q);
    assert_eq!(page.items.len(), 3);
    let list = (0..1500)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let page = run(
        &conn,
        &format!("SELECT deviceId FROM devices WHERE tags.floor IN [{list}]"),
    );
    assert_eq!(page.items.len(), 3);
}

#[test]
fn database_errors_are_reported() {
    let conn = Connection::open_in_memory().expect("db");
    let e = fails(&conn, "SELECT * FROM devices");
    assert!(matches!(e, QueryError::Sql(_)), "{e:?}");
    // The store's query index needs JSON, so the schema refuses a corrupt twin...
    let conn = db();
    assert!(
        conn.execute(
            "INSERT INTO devices(device_id, status, record, twin) VALUES ('bad', 'enabled', '{}', 'not json')",
            [],
        )
        .is_err()
    );
    // ...and a database without the indexes cannot run the queries that need them.
    let conn = Connection::open_in_memory().expect("db");
    conn.execute_batch(
        "CREATE TABLE devices(device_id TEXT PRIMARY KEY, status TEXT, record TEXT, twin TEXT);
         INSERT INTO devices VALUES ('bad', 'enabled', '{}', 'not json');",
    )
    .expect("table");
    assert!(matches!(
        fails(&conn, "SELECT * FROM devices"),
        QueryError::Sql(_)
    ));
    assert!(matches!(
        fails(&conn, "SELECT * FROM devices WHERE tags.x = 1"),
        QueryError::Sql(_)
    ));
}

// --------------------------------------------------------------------- fuzz

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

#[test]
fn garbled_queries_never_panic_or_produce_invalid_sql() {
    let conn = fleet();
    let seeds = [
        "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.temp >= 20.5",
        "SELECT TOP 3 deviceId, tags.location.region AS r FROM devices WHERE tags.floor IN [1, 2, '3'] OR NOT IS_DEFINED(tags.n)",
        "SELECT properties.reported.connectivity.type AS type, COUNT() AS n, AVG(properties.reported.temp) FROM devices GROUP BY properties.reported.connectivity.type",
        "SELECT * FROM devices.modules WHERE devices.modules.moduleId != '$edgeAgent' AND STARTSWITH(deviceId, \"d\\u0031\")",
        "select deviceId from devices where (tags.floor + 2) * 3 % 4 / 1 > -0x1F and tags['a b'].[[c d]] nin [true, null, undefined]",
    ];
    let fragments = [
        "SELECT",
        "*",
        "FROM",
        "devices",
        ".",
        "modules",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        "[",
        "]",
        "[[",
        "]]",
        ",",
        "'",
        "\"",
        "\\",
        "\\u",
        "=",
        "!=",
        "<>",
        "<",
        ">=",
        "+",
        "-",
        "/",
        "%",
        "IN",
        "NIN",
        "GROUP BY",
        "TOP",
        "AS",
        "COUNT()",
        "IS_DEFINED(",
        "tags.x",
        "0x",
        "1e",
        "null",
        "true",
        "é",
        "\u{0}",
        " ",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed_ok = 0;
    for round in 0..4000 {
        let seed = seeds[round % seeds.len()];
        let mut chars: Vec<char> = seed.chars().collect();
        let query: String = match rng.below(4) {
            0 => chars[..rng.below(chars.len() + 1)].iter().collect(),
            1 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(chars.len());
                    chars.remove(i);
                }
                chars.into_iter().collect()
            }
            2 => {
                let mut s: String = chars.into_iter().collect();
                for _ in 0..=rng.below(3) {
                    let mut at = rng.below(s.len() + 1);
                    while !s.is_char_boundary(at) {
                        at -= 1;
                    }
                    s.insert_str(at, fragments[rng.below(fragments.len())]);
                }
                s
            }
            _ => (0..rng.below(12))
                .map(|_| fragments[rng.below(fragments.len())])
                .collect::<Vec<_>>()
                .join(" "),
        };
        match execute(&conn, &query, Some(1 + (round % 3) as u32), None) {
            Ok(page) => {
                parsed_ok += 1;
                if let Some(t) = page.continuation {
                    execute(&conn, &query, Some(2), Some(&t))
                        .unwrap_or_else(|e| panic!("second page of {query:?}: {e}"));
                }
            }
            Err(QueryError::Sql(e)) => panic!("{query:?} produced invalid SQL: {e}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty(), "{query:?}");
            }
        }
    }
    assert!(
        parsed_ok > 100,
        "only {parsed_ok} mutated queries were valid"
    );
}

// ------------------------------------------------------------ larger tables
// Correctness on larger tables only: timings belong in benchmarks, not tests.

#[test]
fn tag_filter_over_ten_thousand_devices() {
    let conn = db();
    many(&conn, 10_000);
    let q =
        "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.temp > 30";
    let page = execute(&conn, q, Some(1000), None).expect("query");
    assert_eq!(page.items.len(), 1000);
    let count = execute(
        &conn,
        "SELECT COUNT() AS n FROM devices WHERE tags.location.region = 'US'",
        None,
        None,
    )
    .expect("count");
    assert_eq!(count.items, vec![json!({"n": 5000})]);
}

#[test]
fn count_over_many_devices_is_one_aggregate() {
    let conn = db();
    let tx = conn.unchecked_transaction().expect("tx");
    {
        let mut stmt = conn
            .prepare(
                "INSERT INTO devices(device_id, status, record, twin) VALUES (?1, 'enabled', '{}', ?2)",
            )
            .expect("prepare");
        for i in 0..20_000 {
            let id = format!("c{i:06}");
            stmt.execute((&id, format!(r#"{{"deviceId":"{id}","tags":{{}}}}"#)))
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    let page = run(&conn, "SELECT COUNT() AS numberOfDevices FROM devices");
    assert_eq!(page.items, vec![json!({"numberOfDevices": 20_000})]);
}

// ------------------------------------------------- differential evaluation

/// A value under IoT Hub (Cosmos DB) expression semantics.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Object,
    Array,
}

fn ev_of_json(v: Option<&Value>) -> Ev {
    match v {
        None => Ev::Undef,
        Some(Value::Null) => Ev::Null,
        Some(Value::Bool(b)) => Ev::Bool(*b),
        Some(Value::Number(n)) => n.as_f64().map_or(Ev::Undef, Ev::Num),
        Some(Value::String(s)) => Ev::Str(s.clone()),
        Some(Value::Object(_)) => Ev::Object,
        Some(Value::Array(_)) => Ev::Array,
    }
}

fn ev_of_literal(l: &parser::Literal) -> Ev {
    match l {
        parser::Literal::Undefined => Ev::Undef,
        parser::Literal::Null => Ev::Null,
        parser::Literal::Bool(b) => Ev::Bool(*b),
        parser::Literal::Number(lexer::Number::Int(i)) => Ev::Num(*i as f64),
        parser::Literal::Number(lexer::Number::Float(f)) => Ev::Num(*f),
        parser::Literal::Str(s) => Ev::Str(s.clone()),
    }
}

fn ev_bool(v: &Ev) -> Option<bool> {
    match v {
        Ev::Bool(b) => Some(*b),
        _ => None,
    }
}

fn ev_from(b: Option<bool>) -> Ev {
    b.map_or(Ev::Undef, Ev::Bool)
}

fn ev_cmp(op: parser::CmpOp, l: &Ev, r: &Ev) -> Ev {
    use parser::CmpOp;
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Ev::Str(a), Ev::Str(b)) => a.cmp(b),
        (Ev::Num(a), Ev::Num(b)) => match a.partial_cmp(b) {
            Some(o) => o,
            None => return Ev::Undef,
        },
        (Ev::Bool(a), Ev::Bool(b)) => a.cmp(b),
        (Ev::Null, Ev::Null) => Ordering::Equal,
        _ => return Ev::Undef,
    };
    Ev::Bool(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

fn json_at<'a>(twin: &'a Value, p: &parser::Path) -> Option<&'a Value> {
    let mut cur = Some(twin);
    for seg in &p.segments {
        cur = match seg {
            parser::Segment::Name { name, .. } => cur.and_then(|c| c.get(name)),
            parser::Segment::Index(i) => cur.and_then(|c| c.get(*i as usize)),
        };
    }
    cur
}

fn ev_path(twin: &Value, p: &parser::Path) -> Ev {
    ev_of_json(json_at(twin, p))
}

/// Reference evaluator used to cross-check the SQL translation.
fn eval(twin: &Value, e: &parser::Expr) -> Ev {
    use parser::{ArithOp, ExprKind, Func};
    match &e.kind {
        ExprKind::Literal(l) => ev_of_literal(l),
        ExprKind::Array(_) => Ev::Array,
        ExprKind::Path(p) => ev_path(twin, p),
        ExprKind::Neg(x) => match eval(twin, x) {
            Ev::Num(n) => Ev::Num(-n),
            _ => Ev::Undef,
        },
        ExprKind::Arith(op, l, r) => match (eval(twin, l), eval(twin, r)) {
            (Ev::Num(a), Ev::Num(b)) => match op {
                ArithOp::Add => Ev::Num(a + b),
                ArithOp::Sub => Ev::Num(a - b),
                ArithOp::Mul => Ev::Num(a * b),
                ArithOp::Div if b == 0.0 => Ev::Undef,
                ArithOp::Div => Ev::Num(a / b),
                ArithOp::Rem if b == 0.0 => Ev::Undef,
                ArithOp::Rem => Ev::Num(a - b * (a / b).trunc()),
            },
            _ => Ev::Undef,
        },
        ExprKind::Cmp(op, l, r) => ev_cmp(*op, &eval(twin, l), &eval(twin, r)),
        ExprKind::In {
            expr,
            list,
            negated,
        } => {
            let v = eval(twin, expr);
            let hit = match v {
                Ev::Null | Ev::Bool(_) | Ev::Num(_) | Ev::Str(_) => {
                    Some(list.iter().any(|l| {
                        ev_cmp(parser::CmpOp::Eq, &v, &ev_of_literal(l)) == Ev::Bool(true)
                    }))
                }
                _ => None,
            };
            ev_from(hit.map(|h| h != *negated))
        }
        ExprKind::And(parts) => {
            let vals: Vec<Option<bool>> = parts.iter().map(|p| ev_bool(&eval(twin, p))).collect();
            if vals.contains(&Some(false)) {
                Ev::Bool(false)
            } else if vals.iter().all(|v| *v == Some(true)) {
                Ev::Bool(true)
            } else {
                Ev::Undef
            }
        }
        ExprKind::Or(parts) => {
            let vals: Vec<Option<bool>> = parts.iter().map(|p| ev_bool(&eval(twin, p))).collect();
            if vals.contains(&Some(true)) {
                Ev::Bool(true)
            } else if vals.iter().all(|v| *v == Some(false)) {
                Ev::Bool(false)
            } else {
                Ev::Undef
            }
        }
        ExprKind::Not(x) => ev_from(ev_bool(&eval(twin, x)).map(|b| !b)),
        ExprKind::Call(Func::ArrayContains, args) => {
            let array = match &args[0].kind {
                ExprKind::Path(p) => json_at(twin, p),
                _ => None,
            };
            let Some(Value::Array(items)) = array else {
                return Ev::Undef;
            };
            let value = eval(twin, &args[1]);
            Ev::Bool(
                items.iter().any(|i| {
                    ev_cmp(parser::CmpOp::Eq, &ev_of_json(Some(i)), &value) == Ev::Bool(true)
                }),
            )
        }
        ExprKind::Call(f, args) => {
            let a: Vec<Ev> = args.iter().map(|x| eval(twin, x)).collect();
            let is = |pred: fn(&Ev) -> bool| Ev::Bool(pred(&a[0]));
            match f {
                Func::IsDefined => is(|v| *v != Ev::Undef),
                Func::StartsWith | Func::EndsWith => match (&a[0], &a[1]) {
                    (Ev::Str(s), Ev::Str(x)) => Ev::Bool(if *f == Func::StartsWith {
                        s.starts_with(x.as_str())
                    } else {
                        s.ends_with(x.as_str())
                    }),
                    _ => Ev::Undef,
                },
                Func::ArrayContains => unreachable!("handled above"),
            }
        }
    }
}

/// Property paths the generated conditions use.
const PATHS: &[&str] = &[
    "tags.floor",
    "tags.name",
    "tags.flag",
    "tags.n",
    "tags.location",
    "tags.location.region",
    "tags.missing",
    "properties.reported.temp",
    "properties.reported.fw",
    "properties.desired.t",
    "deviceId",
    "tags.list[1]",
    "tags.j",
    "status",
    "connectionState",
    "etag",
    "version",
    "properties.reported.$metadata.$lastUpdated",
    "properties.desired.$version",
    "properties.reported",
];

fn gen_operand(rng: &mut Rng) -> String {
    const LITERALS: &[&str] = &[
        "1",
        "2",
        "3",
        "0",
        "-1",
        "2.5",
        "0x2",
        "'3'",
        "'US'",
        "'Alpha'",
        "'a'",
        "''",
        "'1.'",
        "true",
        "false",
        "null",
        "undefined",
        "'d3'",
        "'enabled'",
        "'disabled'",
        "'Disconnected'",
        "'{\"a\":1}'",
        "'[1]'",
        "'2024-01-01T00:00:00.000Z'",
    ];
    if rng.below(3) == 0 {
        LITERALS[rng.below(LITERALS.len())].to_owned()
    } else {
        PATHS[rng.below(PATHS.len())].to_owned()
    }
}

fn gen_value(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 || rng.below(3) > 0 {
        return gen_operand(rng);
    }
    match rng.below(3) {
        0 => {
            let op = ["+", "-", "*", "/", "%"][rng.below(5)];
            format!(
                "({} {op} {})",
                gen_value(rng, depth - 1),
                gen_value(rng, depth - 1)
            )
        }
        1 => format!("-{}", gen_operand(rng)),
        _ => format!("({})", gen_cond(rng, depth - 1)),
    }
}

fn gen_cond(rng: &mut Rng, depth: u32) -> String {
    let leaf = depth == 0 || rng.below(3) == 0;
    if leaf {
        return match rng.below(6) {
            0..=2 => {
                let op = ["=", "!=", "<>", "<", "<=", ">", ">="][rng.below(7)];
                format!("{} {op} {}", gen_value(rng, 1), gen_value(rng, 1))
            }
            3 => {
                let items: Vec<String> = (0..rng.below(4))
                    .map(|_| gen_operand(rng))
                    .filter(|s| !PATHS.contains(&s.as_str()))
                    .collect();
                let op = ["IN", "NIN", "NOT IN"][rng.below(3)];
                format!("{} {op} [{}]", gen_value(rng, 1), items.join(", "))
            }
            4 => format!("IS_DEFINED({})", gen_value(rng, 1)),
            _ if rng.below(4) == 0 => {
                let array =
                    ["tags.list", "tags.location", "tags.name", "tags.missing"][rng.below(4)];
                format!("ARRAY_CONTAINS({array}, {})", gen_value(rng, 1))
            }
            _ => {
                let f = ["STARTSWITH", "ENDSWITH"][rng.below(2)];
                format!("{f}({}, {})", gen_operand(rng), gen_operand(rng))
            }
        };
    }
    match rng.below(4) {
        0 => format!("NOT {}", gen_cond(rng, depth - 1)),
        1 => format!(
            "({} AND {})",
            gen_cond(rng, depth - 1),
            gen_cond(rng, depth - 1)
        ),
        2 => format!(
            "({} OR {} OR {})",
            gen_cond(rng, depth - 1),
            gen_cond(rng, depth - 1),
            gen_cond(rng, depth - 1)
        ),
        _ => gen_value(rng, depth),
    }
}

#[test]
fn sql_translation_matches_reference_semantics() {
    let conn = fleet();
    let mut d6 = twin(
        "d6",
        None,
        json!({"floor": 2.5, "name": "", "flag": true, "list": [1, "x"], "location": "US", "j": {"a": 1}}),
        json!({"t": -1}),
        json!({"temp": 0, "fw": "1."}),
    );
    d6["status"] = json!("disabled");
    d6["version"] = json!(7);
    add_device(&conn, &d6);
    // A string that reads like an object, and one like an array.
    add_device(
        &conn,
        &twin(
            "d7",
            None,
            json!({"j": "{\"a\":1}", "list": "[1]"}),
            json!({}),
            json!({}),
        ),
    );
    let twins = run(&conn, "SELECT * FROM devices").items;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut non_trivial = 0;
    for _ in 0..4000 {
        let cond = gen_cond(&mut rng, 4);
        let q = format!("SELECT deviceId FROM devices WHERE {cond}");
        let ast = match parser::parse(&q) {
            Ok(a) => a,
            Err(e) => panic!("{q}: {e}"),
        };
        let filter = ast.filter.as_ref().expect("has WHERE");
        let expected: Vec<Value> = twins
            .iter()
            .filter(|t| eval(t, filter) == Ev::Bool(true))
            .map(|t| json!({"deviceId": t["deviceId"]}))
            .collect();
        let got = execute(&conn, &q, None, None).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(got.items, expected, "{q}");
        if !expected.is_empty() && expected.len() < twins.len() {
            non_trivial += 1;
        }
    }
    assert!(non_trivial > 300, "only {non_trivial} selective conditions");
}

#[test]
fn array_contains_matches_top_level_elements_by_type_and_value() {
    let conn = db();
    let mut leaf = twin(
        "leaf",
        None,
        json!({"list": [1, "2", true, null, [5]]}),
        json!({}),
        json!({}),
    );
    leaf["parentScopes"] = json!(["ms-azure-iot-edge://edge-1"]);
    add_device(&conn, &leaf);
    let mut other = twin(
        "other",
        None,
        json!({"list": "not an array"}),
        json!({}),
        json!({}),
    );
    other["parentScopes"] = json!([]);
    add_device(&conn, &other);
    add_device(&conn, &twin("plain", None, json!({}), json!({}), json!({})));

    let q = "array_contains(parentScopes, 'ms-azure-iot-edge://edge-1')";
    assert_eq!(where_ids(&conn, q), ["leaf"]);
    assert_eq!(
        ids(&run(
            &conn,
            "SELECT deviceId FROM devices WHERE ARRAY_CONTAINS(parentScopes, 'ms-azure-iot-edge://edge-1')"
        )),
        ["leaf"]
    );
    assert_eq!(where_ids(&conn, "ARRAY_CONTAINS(tags.list, 1)"), ["leaf"]);
    // Same value, other type: no match.
    assert!(where_ids(&conn, "ARRAY_CONTAINS(tags.list, '1')").is_empty());
    assert_eq!(where_ids(&conn, "ARRAY_CONTAINS(tags.list, '2')"), ["leaf"]);
    assert_eq!(
        where_ids(&conn, "ARRAY_CONTAINS(tags.list, true)"),
        ["leaf"]
    );
    assert_eq!(
        where_ids(&conn, "ARRAY_CONTAINS(tags.list, null)"),
        ["leaf"]
    );
    // Nested arrays are not searched.
    assert!(where_ids(&conn, "ARRAY_CONTAINS(tags.list, 5)").is_empty());
    // Not an array (or missing): undefined, so NOT does not select it either.
    assert_eq!(
        where_ids(&conn, "NOT ARRAY_CONTAINS(tags.list, 7)"),
        ["leaf"]
    );
    assert_eq!(
        where_ids(&conn, "NOT ARRAY_CONTAINS(parentScopes, 'x')"),
        ["leaf", "other"]
    );
    // A property as the value.
    assert_eq!(
        where_ids(&conn, "ARRAY_CONTAINS(parentScopes, parentScopes[0])"),
        ["leaf"]
    );
}

#[test]
fn array_contains_arity_and_routing_only_functions_are_refused() {
    let conn = fleet();
    let e = fails(&conn, "SELECT * FROM devices WHERE ARRAY_CONTAINS(tags.a)");
    assert!(matches!(e, QueryError::Syntax { .. }), "{e:?}");
    for f in [
        "UPPER(deviceId) = 'A'",
        "LENGTH(deviceId) = 1",
        "ABS(tags.n) = 1",
    ] {
        let e = fails(&conn, &format!("SELECT * FROM devices WHERE {f}"));
        assert!(matches!(e, QueryError::Syntax { .. }), "{f}: {e:?}");
        assert!(e.to_string().contains("message routing function"), "{e}");
    }
}

#[test]
fn count_walks_every_page() {
    let conn = db();
    for i in 0..2500 {
        add_device(
            &conn,
            &twin(
                &format!("d{i:05}"),
                None,
                json!({"n": i % 2}),
                json!({}),
                json!({}),
            ),
        );
    }
    assert_eq!(
        count(&conn, "SELECT deviceId FROM devices WHERE tags.n = 1").unwrap(),
        1250
    );
    assert_eq!(count(&conn, "SELECT * FROM devices").unwrap(), 2500);
}

// ------------------------------------------- paging under concurrent writes

/// Writes device twins the way the emulator does (`store::put_device`, an upsert that keeps
/// the row) and deletes them with `store::delete_device`.
struct Writer<'a> {
    conn: &'a Connection,
}

impl Writer<'_> {
    fn put(&self, id: &str, tags: Value, disabled: bool) {
        use crate::model::{DeviceInput, DeviceRecord, DeviceStatus};
        use crate::twin::{TwinChange, TwinState, TwinWrite};
        let now = chrono::Utc::now();
        let mut record = DeviceRecord::create(id, &DeviceInput::default(), now).expect("record");
        if disabled {
            record.status = DeviceStatus::Disabled;
        }
        let stamp = crate::clock::format_time(now);
        let mut twin = TwinState::new(&stamp);
        let change = TwinChange {
            tags: tags.as_object().cloned(),
            desired: None,
            reported: None,
        };
        twin.apply(&change, TwinWrite::Update, &stamp)
            .expect("tags");
        crate::store::put_device(self.conn, &crate::store::DeviceRow { record, twin })
            .expect("put device");
    }

    fn delete(&self, id: &str) {
        crate::store::delete_device(self.conn, id).expect("delete device");
    }
}

/// Pages through `query` with pages of `k`, calling `between` after every page, and returns
/// the ids of all items in order.
fn page_through(
    conn: &Connection,
    query: &str,
    k: u32,
    mut between: impl FnMut(usize),
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for page_no in 0.. {
        let page = execute(conn, query, Some(k), token.as_deref())
            .unwrap_or_else(|e| panic!("{query} page {page_no}: {e}"));
        seen.extend(ids(&page));
        match page.continuation {
            Some(t) => token = Some(t),
            None => break,
        }
        between(page_no);
    }
    seen
}

#[test]
fn paging_never_skips_or_repeats_twins_under_concurrent_writes() {
    let conn = db();
    let w = Writer { conn: &conn };
    const N: usize = 240;
    let id = |i: usize| format!("p{i:04}");
    for i in 0..N {
        w.put(&id(i), json!({"keep": true, "n": 0}), i % 3 == 0);
    }
    // Devices deleted along the way (ahead of the cursor and behind it), and status flips.
    let doomed: Vec<usize> = (0..N).filter(|i| i % 17 == 5).collect();
    let flipped: Vec<usize> = (0..N).filter(|i| i % 11 == 4).collect();
    for (query, k) in [
        ("SELECT * FROM devices", 7),
        (
            "SELECT deviceId, tags.n FROM devices WHERE tags.keep = true",
            9,
        ),
        ("SELECT * FROM devices WHERE status = 'enabled'", 5),
        (
            "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'p0') AND tags.keep = true",
            8,
        ),
    ] {
        // Start from the same devices for every query.
        for i in 0..N {
            w.put(&id(i), json!({"keep": true, "n": 0}), i % 3 == 0);
        }
        for extra in ["a-new", "p0001x", "zz-new", "p9999"] {
            w.delete(extra);
        }
        let mut next_doomed = doomed.iter();
        let seen = page_through(&conn, query, k, |page| {
            // Rewrite many twins (every one of them moves nothing in the order), create
            // devices before and after the cursor, delete one, and flip a status.
            for i in (page % 5..N).step_by(5) {
                w.put(
                    &id(i),
                    json!({"keep": true, "n": page + 1}),
                    i % 3 == 0 && !flipped.contains(&i),
                );
            }
            let fresh = ["a-new", "p0001x", "zz-new", "p9999"][page % 4];
            w.put(fresh, json!({"keep": true}), false);
            if let Some(&d) = next_doomed.next() {
                w.delete(&id(d));
            }
            if let Some(&f) = flipped.get(page % flipped.len()) {
                w.put(&id(f), json!({"keep": true}), page % 2 == 0);
            }
        });
        let mut counts = std::collections::HashMap::new();
        for s in &seen {
            *counts.entry(s.as_str()).or_insert(0) += 1;
        }
        assert!(
            counts.values().all(|&c| c == 1),
            "{query}: repeated twins in {seen:?}"
        );
        // Every twin that existed and matched throughout appears exactly once.
        let wanted_status = query.contains("status");
        for i in 0..N {
            let matched_throughout =
                !doomed.contains(&i) && (!wanted_status || (i % 3 != 0 && !flipped.contains(&i)));
            if matched_throughout {
                assert_eq!(
                    counts.get(id(i).as_str()),
                    Some(&1),
                    "{query}: {} missing",
                    id(i)
                );
            }
        }
        // Keys come out in order.
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "{query}");
    }
}

#[test]
fn group_pages_never_skip_or_repeat_groups_under_concurrent_writes() {
    let conn = db();
    let w = Writer { conn: &conn };
    for i in 0..60 {
        w.put(
            &format!("g{i:03}"),
            json!({"g": format!("k{:02}", i % 12)}),
            false,
        );
    }
    // One device without the grouped tag: its group has no key.
    w.put("g-none", json!({}), false);
    let q = "SELECT tags.g AS g, COUNT() AS n FROM devices GROUP BY tags.g";
    let mut token: Option<String> = None;
    let mut groups: Vec<Value> = Vec::new();
    for page_no in 0.. {
        let page = execute(&conn, q, Some(3), token.as_deref()).expect("page");
        groups.extend(
            page.items
                .iter()
                .map(|i| i.get("g").cloned().unwrap_or(Value::Null)),
        );
        let Some(t) = page.continuation else { break };
        token = Some(t);
        // A new group before the cursor, one after it, and a group that disappears.
        w.put(
            &format!("h{page_no:03}"),
            json!({"g": format!("a{page_no}")}),
            false,
        );
        w.put(
            &format!("i{page_no:03}"),
            json!({"g": format!("z{page_no}")}),
            false,
        );
        if page_no == 0 {
            for i in (11..60).step_by(12) {
                w.delete(&format!("g{i:03}"));
            }
        }
    }
    let mut expected: Vec<Value> = vec![Value::Null];
    expected.extend((0..11).map(|k| json!(format!("k{k:02}"))));
    let groups_of_k: Vec<Value> = groups
        .iter()
        .filter(|g| g.is_null() || g.as_str().is_some_and(|s| s.starts_with('k')))
        .cloned()
        .collect();
    assert_eq!(groups_of_k, expected);
    let mut unique = groups.clone();
    unique.dedup();
    assert_eq!(unique, groups, "a group came twice");
    // Groups created after the cursor are seen; those before it are not.
    assert!(groups.contains(&json!("z0")));
    assert!(!groups.contains(&json!("a1")));
}

// -------------------------------------------- what the query index leaves out

#[test]
fn stripped_fields_and_metadata_read_the_stored_twin() {
    let conn = fleet();
    // Fields left out of the query document still filter and project.
    assert_eq!(where_ids(&conn, "etag = 'AAAAAAAAAAE='").len(), 5);
    assert_eq!(where_ids(&conn, "deviceEtag = 'MQ=='").len(), 5);
    assert_eq!(where_ids(&conn, "version = 2").len(), 5);
    assert_eq!(where_ids(&conn, "Version >= 3").len(), 0);
    assert_eq!(where_ids(&conn, "authenticationType = 'sas'").len(), 5);
    assert_eq!(where_ids(&conn, "IS_DEFINED(x509Thumbprint)").len(), 5);
    assert_eq!(
        where_ids(&conn, "x509Thumbprint.primaryThumbprint = null").len(),
        5
    );
    assert_eq!(where_ids(&conn, "cloudToDeviceMessageCount = 0").len(), 5);
    assert_eq!(where_ids(&conn, "statusUpdateTime < '1970'").len(), 5);
    assert_eq!(
        where_ids(
            &conn,
            "properties.reported.$metadata.$lastUpdated = '2024-01-01T00:00:00.000Z' AND IS_DEFINED(properties.reported.temp)"
        ),
        ["d1", "d2", "d3", "d4"]
    );
    assert_eq!(
        where_ids(&conn, "NOT IS_DEFINED(properties.desired.$metadata)"),
        Vec::<String>::new()
    );
    // The objects holding $metadata are returned whole.
    let page = run(
        &conn,
        "SELECT properties.reported AS r, properties.desired.$metadata AS m, etag, tags.floor FROM devices WHERE deviceId = 'd2'",
    );
    assert_eq!(
        page.items,
        vec![json!({
            "r": {"temp": 30, "connectivity": {"type": "cellular"}, "fw": "1.3.0",
                  "$metadata": {"$lastUpdated": "2024-01-01T00:00:00.000Z"}, "$version": 1},
            "m": {"$lastUpdated": "2024-01-01T00:00:00.000Z"},
            "etag": "AAAAAAAAAAE=",
            "floor": 2,
        })]
    );
    let page = run(
        &conn,
        "SELECT properties.desired.$version AS v, COUNT() AS n FROM devices GROUP BY properties.desired.$version",
    );
    assert_eq!(page.items, vec![json!({"v": 2, "n": 5})]);
    let page = run(
        &conn,
        "SELECT version, COUNT() AS n FROM devices WHERE tags.floor >= 2 GROUP BY version",
    );
    assert_eq!(page.items, vec![json!({"version": 2, "n": 2})]);
    // Conditions on objects that hold metadata see an object either way.
    assert_eq!(where_ids(&conn, "IS_DEFINED(properties.reported)").len(), 5);
    assert_eq!(
        where_ids(&conn, "properties.reported = properties.reported").len(),
        0
    );
}

// ------------------------------------------------------ key ranges and indexes

#[test]
fn startswith_on_ids_matches_the_exact_prefix() {
    let conn = db();
    for id in [
        "Dev-1", "dev-1", "dev-10", "dev-2", "dev", "de", "dev~", "dew", "x",
    ] {
        add_device(&conn, &twin(id, None, json!({}), json!({}), json!({})));
    }
    for (prefix, expected) in [
        ("dev", vec!["dev", "dev-1", "dev-10", "dev-2", "dev~"]),
        ("dev-1", vec!["dev-1", "dev-10"]),
        ("Dev", vec!["Dev-1"]),
        ("DEV", vec![]),
        ("dev~", vec!["dev~"]),
        (
            "",
            vec![
                "Dev-1", "de", "dev", "dev-1", "dev-10", "dev-2", "dev~", "dew", "x",
            ],
        ),
        ("\u{10FFFF}", vec![]),
        ("dev\u{10FFFF}", vec![]),
        ("x", vec!["x"]),
        ("xy", vec![]),
    ] {
        let q = format!("SELECT * FROM devices WHERE STARTSWITH(deviceId, '{prefix}')");
        assert_eq!(ids(&run(&conn, &q)), expected, "{q}");
        // The same answer under NOT, OR and in pages of one.
        let q = format!(
            "SELECT * FROM devices WHERE NOT (NOT STARTSWITH(deviceId, '{prefix}') OR deviceId = 'nope')"
        );
        assert_eq!(ids(&run(&conn, &q)), expected, "{q}");
        let q =
            format!("SELECT deviceId FROM devices WHERE STARTSWITH(devices.deviceId, '{prefix}')");
        let paged = page_through(&conn, &q, 1, |_| {});
        assert_eq!(paged, expected, "{q}");
    }
    // Module ids.
    for (d, m) in [("d", "m1"), ("d", "m10"), ("d", "n1"), ("e", "m1")] {
        add_module(&conn, &twin(d, Some(m), json!({}), json!({}), json!({})));
    }
    assert_eq!(
        ids(&run(
            &conn,
            "SELECT * FROM devices.modules WHERE STARTSWITH(moduleId, 'm1')"
        )),
        ["d/m1", "d/m10", "e/m1"]
    );
    assert_eq!(
        ids(&run(
            &conn,
            "SELECT * FROM devices.modules WHERE deviceId = 'd' AND STARTSWITH(moduleId, 'm')"
        )),
        ["d/m1", "d/m10"]
    );
}

#[test]
fn status_and_connection_state_searches_agree_with_the_general_form() {
    let conn = db();
    let w = Writer { conn: &conn };
    for i in 0..50 {
        w.put(&format!("s{i:02}"), json!({"i": i}), i % 7 == 0);
    }
    for (indexed, general) in [
        ("status = 'disabled'", "NOT NOT (status = 'disabled')"),
        ("'enabled' = status", "NOT NOT ('enabled' = status)"),
        ("status = 'Disabled'", "NOT NOT (status = 'Disabled')"),
        (
            "connectionState = 'Disconnected' AND tags.i < 10",
            "NOT NOT (connectionState = 'Disconnected') AND tags.i < 10",
        ),
        (
            "connectionState = 'Connected'",
            "NOT NOT (connectionState = 'Connected')",
        ),
    ] {
        let a = where_ids(&conn, indexed);
        assert_eq!(a, where_ids(&conn, general), "{indexed}");
        let paged = page_through(
            &conn,
            &format!("SELECT * FROM devices WHERE {indexed}"),
            3,
            |_| {},
        );
        assert_eq!(paged, a, "{indexed}");
    }
    assert_eq!(where_ids(&conn, "status = 'disabled'").len(), 8);
    assert_eq!(
        run(
            &conn,
            "SELECT COUNT() AS n FROM devices WHERE status = 'disabled'"
        )
        .items,
        vec![json!({"n": 8})]
    );
}

// -------------------------------------------------------------- migration

/// A database written by the previous schema (version 2: no query indexes) is upgraded in
/// place when the store opens it, and keeps its twins.
#[test]
fn version_2_databases_get_the_query_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        let old = Connection::open(&path).expect("open");
        old.execute_batch(
            "CREATE TABLE devices (device_id TEXT PRIMARY KEY, status TEXT NOT NULL,
                                   record TEXT NOT NULL, twin TEXT NOT NULL);
             CREATE TABLE modules (device_id TEXT NOT NULL, module_id TEXT NOT NULL,
                                   record TEXT NOT NULL, twin TEXT NOT NULL,
                                   PRIMARY KEY (device_id, module_id));
             PRAGMA user_version = 2;",
        )
        .expect("v2 schema");
        let mut doc = twin("old-1", None, json!({"fleet": "f1"}), json!({}), json!({}));
        // A queue depth of its time, which version 7 no longer stores.
        doc["cloudToDeviceMessageCount"] = json!(3);
        old.execute(
            "INSERT INTO devices(device_id, status, record, twin) VALUES ('old-1', 'enabled', '{}', ?1)",
            [doc.to_string()],
        )
        .expect("insert v2 device");
    }
    drop(crate::store::Store::open(&path).expect("store opens a v2 database"));
    let conn = Connection::open(&path).expect("reopen");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 7);
    let stored: i64 = conn
        .query_row(
            "SELECT twin ->> '$.cloudToDeviceMessageCount' FROM devices WHERE device_id = 'old-1'",
            [],
            |r| r.get(0),
        )
        .expect("stored count");
    assert_eq!(stored, 0);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("indexes")
        .collect::<Result<_, _>>()
        .expect("names");
    for expected in [
        "devices_by_connection_state",
        "devices_by_status",
        "devices_query",
        "modules_query",
        "jobs_by_family",
    ] {
        assert!(indexes.iter().any(|i| i == expected), "{indexes:?}");
    }
    assert_eq!(where_ids(&conn, "tags.fleet = 'f1'"), ["old-1"]);
}

/// Every page of `q` read through `run`, following continuation tokens.
fn all_pages(
    conn: &Connection,
    q: &str,
    page_size: u64,
    run: fn(&Connection, &Plan, &Position, u64) -> Result<PageRows, QueryError>,
) -> Vec<PageRows> {
    let plan = sql::plan(q, &parser::parse(q).expect("parse")).expect("plan");
    let mut position = Position::default();
    let mut pages = Vec::new();
    loop {
        let page = run(conn, &plan, &position, page_size).expect("page");
        let (more, last) = (page.2, page.1.clone());
        pages.push(page);
        if !more {
            return pages;
        }
        position = Position {
            returned: 0,
            after: last,
        };
    }
}

#[test]
fn counted_groups_equal_sqlite_groups() {
    let conn = db();
    // Values of every JSON type, equal texts of different types, nested objects and arrays,
    // and twins where one or both grouped properties are missing.
    let values = [
        json!("a"),
        json!("b"),
        json!("1"),
        json!(1),
        json!(1.5),
        json!(-2),
        json!(true),
        json!(false),
        json!(null),
        json!({"x": 1}),
        json!([1, "a"]),
        json!(""),
        json!("é"),
        json!("Z"),
    ];
    for i in 0..300usize {
        let mut tags = serde_json::Map::new();
        if i % 7 != 0 {
            tags.insert("g".into(), values[i % values.len()].clone());
        }
        if i % 5 != 0 {
            tags.insert("h".into(), values[(i / 3) % values.len()].clone());
        }
        tags.insert("n".into(), json!(i % 10));
        add_device(
            &conn,
            &twin(
                &format!("d{i:03}"),
                None,
                Value::Object(tags),
                json!({"v": i % 4}),
                json!({}),
            ),
        );
    }
    let fast = |conn: &Connection, plan: &Plan, position: &Position, limit: u64| {
        Ok(count_groups(conn, plan, position, limit)?.expect("counted in memory"))
    };
    for q in [
        "SELECT tags.g, COUNT() AS n FROM devices GROUP BY tags.g",
        "SELECT tags.g AS g, tags.h AS h, COUNT() FROM devices GROUP BY tags.g, tags.h",
        "SELECT COUNT() AS n, tags.h FROM devices WHERE tags.n > 3 GROUP BY tags.h",
        "SELECT tags.g FROM devices GROUP BY tags.g",
        "SELECT COUNT() AS a, COUNT() AS b FROM devices GROUP BY properties.desired.v",
        "SELECT tags.h, COUNT() AS n FROM devices WHERE tags.n = 99 GROUP BY tags.h",
    ] {
        for page_size in [1, 4, 1000] {
            let expected = all_pages(&conn, q, page_size, sql_aggregate);
            assert!(!expected.is_empty(), "{q}");
            assert_eq!(
                all_pages(&conn, q, page_size, fast),
                expected,
                "{q}, pages of {page_size}"
            );
        }
    }
}

#[test]
fn other_aggregates_are_not_counted_in_memory() {
    let conn = db();
    add_device(
        &conn,
        &twin("d1", None, json!({"g": 1}), json!({}), json!({})),
    );
    for q in [
        "SELECT tags.g, MAX(tags.g) AS m FROM devices GROUP BY tags.g",
        "SELECT COUNT() AS n FROM devices",
    ] {
        let plan = sql::plan(q, &parser::parse(q).expect("parse")).expect("plan");
        assert!(
            count_groups(&conn, &plan, &Position::default(), 10)
                .expect("scan")
                .is_none(),
            "{q}"
        );
    }
}

#[test]
fn raw_pages_hold_the_same_twins_with_their_queue_depths() {
    let conn = db();
    for i in 0..5 {
        add_device(
            &conn,
            &twin(
                &format!("r{i}"),
                None,
                json!({"i": i}),
                json!({}),
                json!({}),
            ),
        );
    }
    // Two messages wait for r3.
    for _ in 0..2 {
        conn.execute(
            "INSERT INTO c2d_messages (device_id, module_id, ack, enqueued_ms, expiry_ms,
                 generation_id, properties, body) VALUES ('r3', '', 'none', 0, 1, 'g', '{}', x'')",
            [],
        )
        .expect("queue a message");
    }
    for q in [
        "SELECT * FROM devices",
        "SELECT deviceId, cloudToDeviceMessageCount FROM devices",
    ] {
        let raw = execute_raw(&conn, q, Some(2), None).expect("raw page");
        let parsed = execute(&conn, q, Some(2), None).expect("page");
        assert_eq!(raw.continuation, parsed.continuation, "{q}");
        let reparsed: Vec<Value> = raw
            .items
            .iter()
            .map(|i| serde_json::from_str(i.get()).expect("JSON"))
            .collect();
        assert_eq!(reparsed, parsed.items, "{q}");
    }
    let all = execute(&conn, "SELECT * FROM devices", None, None).expect("page");
    let depths: Vec<(Value, Value)> = all
        .items
        .iter()
        .map(|t| {
            (
                t["deviceId"].clone(),
                t["cloudToDeviceMessageCount"].clone(),
            )
        })
        .collect();
    assert_eq!(
        depths,
        [
            (json!("r0"), json!(0)),
            (json!("r1"), json!(0)),
            (json!("r2"), json!(0)),
            (json!("r3"), json!(2)),
            (json!("r4"), json!(0)),
        ]
    );
}
