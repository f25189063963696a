"""The built-in endpoint's front door with Microsoft's own Python AMQP client (uamqp),
unmodified:

* the IoT Hub connection string is turned into an Event Hubs connection string the way
  Microsoft's azure-eventhub sample ``iot_hub_connection_string_receive_async.py`` does it:
  uamqp's ReceiveClient logs in with SASL PLAIN (``{policy}@sas.root.{hub}`` and a SAS token)
  and attaches to ``messages/events/ConsumerGroups/$Default/Partitions/0``; the hub answers
  with ``amqp:link:redirect`` (uamqp raises ``LinkRedirect``) naming the entity whose
  connection string the hub prints as ``EVENTHUB_CONNECTION_STRING``;
* wrong SASL PLAIN logins are refused at SASL;
* a C2D message is sent over a SASL PLAIN login, as the ``az iot`` CLI sends them.

uamqp gets the local hub's port and CA from ``uamqp_loopback`` (see that module).
"""

import os
import re
import time
from base64 import b64decode, b64encode
from hashlib import sha256
from hmac import HMAC
from urllib.parse import quote_plus, urlencode

import uamqp_loopback  # noqa: F401 - must come first: ports and CA for uamqp

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


if __name__ == "__main__":
    checks.main()
