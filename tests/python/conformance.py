"""Shared helpers for the Python conformance scenarios.

Every scenario drives the emulator through the official ``azure-iot-hub`` SDK exactly as a
user would, so this module only reads the environment set by the Rust harness, builds ids
and keys, and reports check results. Nothing here changes or patches the SDK.

Environment:
  IOTHUB_CONNECTION_STRING  service connection string printed by the emulator
  REQUESTS_CA_BUNDLE        the emulator's CA certificate (read by requests itself)
"""

import base64
import json
import os
import secrets
import sys
import traceback

from azure.iot.hub import IoTHubRegistryManager
from msrest.exceptions import HttpOperationError

__all__ = [
    "HttpOperationError",
    "Checks",
    "registry_manager",
    "new_key",
    "new_thumbprint",
    "expect_http_error",
    "assert_eq",
    "assert_true",
]


def registry_manager():
    """An IoTHubRegistryManager built from the emulator's connection string."""
    cs = os.environ.get("IOTHUB_CONNECTION_STRING")
    if not cs:
        raise SystemExit("IOTHUB_CONNECTION_STRING is not set (run these scripts through cargo test)")
    return IoTHubRegistryManager.from_connection_string(cs)


def new_key():
    """A fresh symmetric key: base64 of 32 random bytes, as IoT Hub generates them."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_thumbprint():
    """A fresh SHA-1 style certificate thumbprint (40 upper-case hex digits)."""
    return secrets.token_hex(20).upper()


def assert_eq(actual, expected, what):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, actual))


def assert_true(cond, what):
    if not cond:
        raise AssertionError(what)


# Numeric IoT Hub error codes, for bodies that carry the number instead of the name.
ERROR_NUMBERS = {404103: "DeviceNotOnline", 404001: "DeviceNotFound", 404010: "ModuleNotFound", 504101: "GatewayTimeout"}


def message_error_code(message, status, body):
    """The error code named by an error body's ``Message``.

    Registry errors use ``"ErrorCode:<Name>;<text>"``. Direct-method errors nest a second
    JSON object in ``Message`` whose ``errorCode`` is the six-digit number (first three digits
    = HTTP status); that number is mapped back to its name.
    """
    if not isinstance(message, str):
        raise AssertionError("error body has no string Message: %r" % body)
    if message.startswith("ErrorCode:") and ";" in message:
        return message[len("ErrorCode:"):].split(";", 1)[0]
    try:
        nested = json.loads(message)
    except ValueError:
        raise AssertionError("error body Message is neither 'ErrorCode:<code>;<text>' nor JSON: %r" % body)
    number = nested.get("errorCode") if isinstance(nested, dict) else None
    if not isinstance(number, int) or number // 1000 != status:
        raise AssertionError("nested errorCode %r does not match HTTP %d: %r" % (number, status, body))
    if number not in ERROR_NUMBERS:
        raise AssertionError("nested errorCode %d is not a known code: %r" % (number, body))
    return ERROR_NUMBERS[number]


def expect_http_error(status, code, fn, *args, **kwargs):
    """Calls ``fn`` and requires it to fail with HTTP ``status``.

    When ``code`` is given, the IoT Hub error code must be named both by the
    ``iothub-errorcode`` response header and by the ``Message`` field of the JSON body
    (``"ErrorCode:<code>;<text>"``, or the nested number, see ``message_error_code``). When ``code`` is None, some code must still be named,
    consistently in both places. Returns the HttpOperationError.
    """
    try:
        result = fn(*args, **kwargs)
    except HttpOperationError as e:
        response = e.response
        got = response.status_code
        body = response.text
        if got != status:
            raise AssertionError("expected HTTP %d, got %d; body: %s" % (status, got, body))
        header = response.headers.get("iothub-errorcode")
        try:
            message = response.json().get("Message")
        except ValueError:
            raise AssertionError("HTTP %d error body is not JSON: %r" % (got, body))
        if code is not None:
            assert_eq(header, code, "iothub-errorcode header")
        else:
            assert_true(header, "iothub-errorcode header missing on HTTP %d" % got)
        assert_eq(message_error_code(message, got, body), header, "error code in body Message vs header")
        return e
    raise AssertionError(
        "expected HTTP %d %s, but the call succeeded and returned %r" % (status, code or "", result)
    )


class Checks:
    """A tiny runner: register checks with ``@checks``, then call ``checks.main()``.

    Each check runs even when an earlier one failed, every result is printed, and the
    process exits 1 when any check failed.
    """

    def __init__(self, suite):
        self.suite = suite
        self.items = []

    def __call__(self, fn):
        self.items.append(fn)
        return fn

    def main(self):
        only = set(sys.argv[1:])
        failed = []
        passed = 0
        for fn in self.items:
            if only and fn.__name__ not in only:
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - every failure is reported, then the run goes on
                failed.append(fn.__name__)
                print("FAIL %s::%s" % (self.suite, fn.__name__))
                traceback.print_exc(file=sys.stdout)
            else:
                passed += 1
                print("ok   %s::%s" % (self.suite, fn.__name__))
            sys.stdout.flush()
        print("%s: %d passed, %d failed" % (self.suite, passed, len(failed)))
        if failed:
            print("failed checks: " + ", ".join(failed))
            sys.exit(1)
