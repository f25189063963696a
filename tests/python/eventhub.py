"""Reading telemetry from the built-in endpoint with Microsoft's own Python clients,
unmodified:

* the IoT Hub connection string is turned into an Event Hubs connection string the way
  Microsoft's azure-eventhub sample ``iot_hub_connection_string_receive_async.py`` does it:
  uamqp's ReceiveClient logs in with SASL PLAIN (``{policy}@sas.root.{hub}`` and a SAS token)
  and attaches to ``messages/events/ConsumerGroups/$Default/Partitions/0``; the hub answers
  with ``amqp:link:redirect`` (uamqp raises ``LinkRedirect``) naming the entity whose
  connection string the hub prints as ``EVENTHUB_CONNECTION_STRING``;
* ``azure-eventhub``'s EventHubConsumerClient (its default pure-Python AMQP transport) reads
  with that string and with the printed one: telemetry from the official device SDK
  (azure-iot-device over MQTT), partition ids and properties, consumer groups;
* wrong SASL PLAIN logins are refused at SASL;
* a C2D message is sent over a SASL PLAIN login, as the ``az iot`` CLI sends them.

The clients get the local hub's port and CA the way any user points them at a private
endpoint: ``custom_endpoint_address`` with ``TransportType.Amqp`` and ``connection_verify``
for azure-eventhub; ``uamqp_loopback`` for uamqp (see that module).
"""

import os
import re
import threading
import time
from base64 import b64decode, b64encode
from hashlib import sha256
from hmac import HMAC
from urllib.parse import quote_plus, urlencode

import uamqp_loopback  # noqa: F401 - must come first: ports and CA for uamqp
import mqtt_loopback  # noqa: E402

from azure.eventhub import EventHubConsumerClient, TransportType  # noqa: E402
from azure.iot.device import IoTHubDeviceClient, Message  # noqa: E402

from uamqp import ReceiveClient, SendClient, Source  # noqa: E402
from uamqp import Message as UamqpMessage  # noqa: E402
from uamqp.message import MessageProperties  # noqa: E402
from uamqp.errors import LinkRedirect  # noqa: E402

from conformance import Checks, assert_eq, assert_true, new_key, registry_manager  # noqa: E402

rm = registry_manager()
checks = Checks("eventhub")
CS = os.environ["IOTHUB_CONNECTION_STRING"]
EH_CS = os.environ["EVENTHUB_CONNECTION_STRING"]
AMQPS_PORT = int(os.environ["EMULATOR_AMQPS_PORT"])
CA = os.environ["EMULATOR_CA_PATH"]
WAIT = 30


def parse(cs):
    fields = dict(part.split("=", 1) for part in cs.split(";") if part)
    return fields["HostName"], fields["SharedAccessKeyName"], fields["SharedAccessKey"]


def sas_token(uri, policy, key, ttl=3600):
    expiry = int(time.time() + ttl)
    signature = b64encode(HMAC(b64decode(key), ("%s\n%d" % (quote_plus(uri), expiry)).encode(), sha256).digest())
    fields = {"sr": uri, "sig": signature, "se": str(expiry)}
    if policy:
        fields["skn"] = policy
    return "SharedAccessSignature " + urlencode(fields)


def plain_uri(user, password, host, path):
    return "amqps://%s:%s@%s%s" % (quote_plus(user), quote_plus(password), host, path)


def ask_for_redirect(user=None, token=None):
    """The sample's conversion: returns the LinkRedirect, or raises what uamqp raised."""
    host, policy, key = parse(CS)
    user = user or "%s@sas.root.%s" % (policy, host.split(".")[0])
    token = token or sas_token(host, policy, key)
    client = ReceiveClient(Source(plain_uri(user, token, host, "/messages/events/ConsumerGroups/$Default/Partitions/0")))
    try:
        client.receive_message_batch(max_batch_size=1, timeout=10000)
    except LinkRedirect as redirect:
        return redirect
    finally:
        client.close()
    raise AssertionError("the hub answered without a redirect")


def converted_connection_string():
    _, policy, key = parse(CS)
    redirect = ask_for_redirect()
    hostname = redirect.hostname.decode("utf-8") if isinstance(redirect.hostname, bytes) else redirect.hostname
    address = redirect.address.decode("utf-8") if isinstance(redirect.address, bytes) else str(redirect.address)
    entity = re.search(r":\d+\/.*/ConsumerGroups", address).group(0).split("/")[1]
    return "Endpoint=sb://{}/;SharedAccessKeyName={};SharedAccessKey={};EntityPath={}".format(
        hostname, policy, key, entity
    )


def consumer(conn_str, group="$Default"):
    return EventHubConsumerClient.from_connection_string(
        conn_str,
        consumer_group=group,
        custom_endpoint_address="sb://localhost:%d" % AMQPS_PORT,
        transport_type=TransportType.Amqp,
        connection_verify=CA,
    )


def partition_of(device_id):
    """The hub's partition for a device: SHA-256 of the id, first four bytes, modulo 4."""
    return str(int.from_bytes(sha256(device_id.encode()).digest()[:4], "big") % 4)


def read(client, wanted, starting_position="-1", partition_id=None):
    """Receives until ``wanted(events)`` holds or WAIT passes; returns every event seen."""
    events = []
    done = threading.Event()
    errors = []

    def on_event(partition_context, event):
        if event is None:
            return
        events.append((partition_context.partition_id, event))
        if wanted(events):
            done.set()

    def on_error(partition_context, error):
        errors.append(error)

    thread = threading.Thread(
        target=client.receive,
        kwargs={
            "on_event": on_event,
            "on_error": on_error,
            "starting_position": starting_position,
            "max_wait_time": 1,
            **({"partition_id": partition_id} if partition_id is not None else {}),
        },
        daemon=True,
    )
    thread.start()
    done.wait(WAIT)
    client.close()
    thread.join(10)
    assert_true(done.is_set(), "only %d events arrived (errors: %r)" % (len(events), errors))
    return events


def device_sends(device_id, count):
    """Creates a device, connects the official device SDK over MQTT, sends ``count`` messages."""
    key = new_key()
    rm.create_device_with_sas(device_id, key, new_key(), "enabled")
    cs = mqtt_loopback.device_connection_string(CS, device_id, key)
    client = IoTHubDeviceClient.create_from_connection_string(
        cs, server_verification_cert=mqtt_loopback.CA_PEM, connection_retry=False
    )
    client.connect()
    for i in range(count):
        message = Message(
            '{"n": %d}' % i,
            message_id="%s-%d" % (device_id, i),
            content_encoding="utf-8",
            content_type="application/json",
        )
        message.custom_properties["seq"] = str(i)
        client.send_message(message)
    client.shutdown()


def mine(device_id):
    def select(events):
        return [e for _, e in events if e.system_properties.get(b"iothub-connection-device-id") == device_id.encode()]

    return select


@checks
def device_sdk_telemetry_is_read_through_the_converted_connection_string():
    device_sends("peh-1", 3)
    select = mine("peh-1")
    events = select(read(consumer(converted_connection_string()), lambda evs: len(select(evs)) >= 3))
    assert_eq([e.body_as_str() for e in events], ['{"n": 0}', '{"n": 1}', '{"n": 2}'], "bodies in order")
    assert_eq([e.properties[b"seq"] for e in events], [b"0", b"1", b"2"], "device properties")
    system = events[0].system_properties
    assert_eq(system[b"message-id"], b"peh-1-0", "message id")
    assert_eq(system[b"content-type"], b"application/json", "content type")
    assert_eq(system[b"iothub-message-source"], b"Telemetry", "message source")
    assert_true(b"iothub-enqueuedtime" in system, "iothub-enqueuedtime in %r" % system)
    assert_true(b"iothub-connection-auth-generation-id" in system, "generation id in %r" % system)
    assert_eq(events[0].sequence_number + 1, events[1].sequence_number, "sequence numbers")
    assert_true(int(events[0].offset) < int(events[1].offset), "offsets grow")
    assert_true(abs(time.time() - events[0].enqueued_time.timestamp()) < 120, "enqueued %r" % events[0].enqueued_time)


@checks
def the_printed_eventhub_connection_string_reads_the_same_events():
    device_sends("peh-2", 2)
    select = mine("peh-2")
    first = select(read(consumer(EH_CS), lambda evs: len(select(evs)) >= 2))
    again = select(read(consumer(EH_CS), lambda evs: len(select(evs)) >= 2))
    assert_eq([e.sequence_number for e in first], [e.sequence_number for e in again], "same events twice")
    assert_eq([e.properties[b"seq"] for e in first], [b"0", b"1"], "device properties")


@checks
def more_events_than_the_hub_keeps_in_flight_are_read():
    # azure-eventhub asks for unsettled transfers and never settles them; the hub sends
    # them pre-settled, as Event Hubs does, so a reader is never stalled by its own backlog.
    device_sends("peh-many", 1500)
    select = mine("peh-many")
    # One partition: azure-eventhub's load-balanced receive over every partition waits on
    # each idle one in turn, which is slow whatever the server.
    events = select(
        read(consumer(EH_CS), lambda evs: len(select(evs)) >= 1500, partition_id=partition_of("peh-many"))
    )
    assert_eq(len(events), 1500, "every event")
    assert_eq(
        [e.sequence_number - events[0].sequence_number for e in events], list(range(1500)), "in order, once each"
    )


@checks
def partition_ids_and_properties():
    client = consumer(EH_CS)
    try:
        ids = client.get_partition_ids()
        assert_eq(ids, ["0", "1", "2", "3"], "partition ids")
        assert_eq(client.get_eventhub_properties()["partition_ids"], ids, "hub properties")
        held = 0
        for pid in ids:
            p = client.get_partition_properties(pid)
            assert_eq(p["id"], pid, "partition id")
            if not p["is_empty"]:
                held += p["last_enqueued_sequence_number"] - p["beginning_sequence_number"] + 1
        assert_true(held >= 1, "some partition holds telemetry (%d events)" % held)
    finally:
        client.close()


@checks
def the_redirect_names_the_eventhub_compatible_endpoint():
    redirect = ask_for_redirect()
    address = redirect.address.decode("utf-8") if isinstance(redirect.address, bytes) else str(redirect.address)
    assert_true(
        re.match(r"amqps://localhost:%d/[^/]+/ConsumerGroups/\$Default/Partitions/0$" % AMQPS_PORT, address),
        "redirect address %r" % address,
    )
    assert_eq(int(redirect.port), AMQPS_PORT, "redirect port")
    entity = address.split("/")[3]
    assert_true(EH_CS.endswith(";EntityPath=" + entity), "%r names entity %r" % (EH_CS, entity))
    converted = converted_connection_string()
    assert_true(converted.startswith("Endpoint=sb://localhost/;"), converted)
    assert_true(converted.endswith(";EntityPath=" + entity), converted)


@checks
def sasl_plain_refusals_are_auth_failures_not_dropped_sockets():
    host, policy, key = parse(CS)
    for user, token, why in [
        ("%s@localhost" % policy, None, "user without @sas.root."),
        (None, sas_token(host, policy, new_key()), "wrong key"),
        (None, sas_token(host, policy, key, ttl=-60), "expired token"),
        ("%s@sas.root.otherhub" % policy, None, "another hub"),
        ("registryRead@sas.root.localhost", sas_token(host, "registryRead", parse(os.environ["IOTHUB_REGISTRY_READ_CONNECTION_STRING"])[2]), "no service connect"),
    ]:
        try:
            ask_for_redirect(user=user, token=token)
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - uamqp reports the SASL outcome as an error
            text = "%s %r" % (type(e).__name__, e)
            assert_true("LinkRedirect" not in text, "%s: %s" % (why, text))
            continue
        raise AssertionError("%s: the login was accepted" % why)


def detach_of(address, selector=None):
    """Attaches a uamqp receiver to ``address`` on the Event Hubs-compatible entity's host;
    returns the ``(condition, description)`` of the hub's detach, or fails when the hub
    delivers, drops the connection or says nothing."""
    from uamqp.address import Source as SourceAddress
    from uamqp.errors import LinkDetach

    host, policy, key = parse(CS)
    user = "%s@sas.root.%s" % (policy, host.split(".")[0])
    source = SourceAddress(plain_uri(user, sas_token(host, policy, key), host, address))
    if selector is not None:
        source.set_filter(selector.encode("utf-8"))
    client = ReceiveClient(source, timeout=10000)
    try:
        client.receive_message_batch(max_batch_size=1, timeout=10000)
    except LinkDetach as detach:
        # uamqp gives the conditions it knows as ErrorCodes members, others as bytes.
        condition = getattr(detach.condition, "value", detach.condition)
        condition = condition.decode() if isinstance(condition, bytes) else str(condition)
        return condition, str(detach.description)
    finally:
        client.close()
    raise AssertionError("%s (filter %r): the hub did not refuse the receiver" % (address, selector))


@checks
def bad_receivers_are_refused_with_event_hubs_errors():
    """An unknown entity, partition or consumer group and a malformed selector filter each get
    a detach with the condition an Event Hubs client expects, on a connection that stays up."""
    entity = EH_CS.rsplit("EntityPath=", 1)[1]
    base = "/%s/ConsumerGroups/$Default/Partitions/" % entity
    for address, selector, expected in [
        ("/no-such-entity/ConsumerGroups/$Default/Partitions/0", None, "amqp:not-found"),
        (base + "9", None, "amqp:not-found"),
        ("/%s/ConsumerGroups/no-such-group/Partitions/0" % entity, None, "amqp:not-found"),
        (base + "0", "amqp.annotation.x-opt-offset > 'twelve'", "com.microsoft:argument-error"),
        (base + "0", "amqp.annotation.x-opt-sequence-number >", "com.microsoft:argument-error"),
        (base + "0", "amqp.annotation.x-opt-colour = 'red'", "com.microsoft:argument-error"),
    ]:
        condition, description = detach_of(address, selector)
        assert_eq(condition, expected, "%s %r: %s" % (address, selector, description))

    # The management node answers a request for another entity with 404, which azure-eventhub
    # raises as an error (not a hang, not a dropped socket).
    client = consumer(EH_CS.rsplit("EntityPath=", 1)[0] + "EntityPath=no-such-entity")
    try:
        client.get_eventhub_properties()
    except Exception as e:  # noqa: BLE001 - the client's own error type for a 404
        assert_true("could not be found" in str(e), "%s %r" % (type(e).__name__, e))
    else:
        raise AssertionError("properties of an unknown entity were returned")
    finally:
        client.close()


@checks
def c2d_send_with_sasl_plain_as_the_az_cli_does():
    host, policy, key = parse(CS)
    rm.create_device_with_sas("peh-c2d", new_key(), new_key(), "enabled")
    user = "%s@sas.root.%s" % (policy, host.split(".")[0])
    target = plain_uri(user, sas_token(host, policy, key), host, "/messages/devicebound")
    client = SendClient(target)
    message = UamqpMessage(
        b"from the cli",
        properties=MessageProperties(message_id="cli-1", to="/devices/peh-c2d/messages/devicebound"),
    )
    client.queue_message(message)
    results = client.send_all_messages(close_on_done=True)
    assert_eq([str(r) for r in results], ["MessageState.SendComplete"], "send outcome")
    assert_eq(rm.get_device("peh-c2d").cloud_to_device_message_count, 1, "queued")


@checks
def monitor_events_as_the_az_cli_reads_them():
    """``az iot hub monitor-events``: uamqp's connection carries client properties with string
    keys (where the spec has symbols), and the receiver's selector uses the older name
    ``x-opt-enqueuedtimeutc`` with milliseconds; the hub takes both, as IoT Hub does."""
    from uamqp import Connection
    from uamqp.address import Source as SourceAddress
    from uamqp.authentication import SASLPlain

    host, policy, key = parse(CS)
    device_id = "peh-az-monitor"
    since = int(time.time() * 1000) - 5000
    device_sends(device_id, 2)
    redirect = ask_for_redirect()
    address = redirect.address.decode("utf-8") if isinstance(redirect.address, bytes) else str(redirect.address)
    base = address.split("/Partitions/")[0]
    source = SourceAddress("%s/Partitions/%s" % (base, partition_of(device_id)))
    source.set_filter(("amqp.annotation.x-opt-enqueuedtimeutc > %d" % since).encode("utf-8"))
    user = "%s@sas.root.%s" % (policy, host.split(".")[0])
    # uamqp takes a host name without a port here (uamqp_loopback supplies the port).
    hostname = host.split(":")[0]
    auth = SASLPlain(hostname, user, sas_token(host, policy, key))
    properties = {"product": "az.cli.check", "version": "0", "framework": "python", "platform": "linux"}
    connection = Connection(hostname, auth, properties=properties)
    client = ReceiveClient(source, auth=auth, timeout=10000)
    try:
        client.open(connection=connection)
        bodies = []
        deadline = time.time() + WAIT
        while len(bodies) < 2 and time.time() < deadline:
            for message in client.receive_message_batch(max_batch_size=10, timeout=2000):
                if message.annotations.get(b"iothub-connection-device-id") == device_id.encode():
                    bodies.append(b"".join(message.get_data()).decode("utf-8"))
    finally:
        client.close()
        connection.destroy()
    assert_eq(bodies, ['{"n": 0}', '{"n": 1}'], "events read as az reads them")


if __name__ == "__main__":
    checks.main()
