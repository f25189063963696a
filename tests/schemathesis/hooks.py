"""Schemathesis hooks for fuzzing openapi/iothub.yaml against the local hub.

The spec leaves out `api-version` and authentication (the generated client adds both), so
every generated request gets `api-version=2021-04-12` and a fresh SAS token of the
`iothubowner` policy from IOTHUB_CONNECTION_STRING.
"""

import base64
import hashlib
import hmac
import os
import time
import urllib.parse

import schemathesis


def _token() -> str:
    parts = dict(
        p.split("=", 1) for p in os.environ["IOTHUB_CONNECTION_STRING"].split(";") if p
    )
    resource = urllib.parse.quote(parts["HostName"], safe="")
    expiry = str(int(time.time()) + 3600)
    key = base64.b64decode(parts["SharedAccessKey"])
    signature = base64.b64encode(
        hmac.new(key, f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    ).decode()
    return (
        f"SharedAccessSignature sr={resource}&sig={urllib.parse.quote(signature, safe='')}"
        f"&se={expiry}&skn={parts['SharedAccessKeyName']}"
    )


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    case.query = dict(case.query or {})
    case.query["api-version"] = "2021-04-12"
    case.headers = dict(case.headers or {})
    case.headers["Authorization"] = _token()
