"""Schemathesis hooks for fuzzing openapi/iothub.yaml against the local hub.

* The spec leaves out `api-version` and authentication (the generated client adds both), so
  every generated request gets `api-version=2021-04-12` and a fresh SAS token of the
  `iothubowner` policy from IOTHUB_CONNECTION_STRING.
* Schemathesis reads a `%` in a generated path value as the start of an escape before it
  encodes the value (`a%d7` is sent as `a` + U+FFFD, `a%2F` as `a/`), so an id that matches the
  spec's pattern can reach the hub as one that does not. In positive cases every character of
  a path id that the pattern does not allow is replaced by `%` (itself allowed), so the id on
  the wire is valid again and still exercises `%`.
* IoT Hub requires an id in the body to equal the one in the URL (`deviceId`, `moduleId`,
  and a configuration's `id`), a rule a schema cannot state. Positive cases get the URL's ids
  in the body where the body names them; negative cases are left alone.
"""

import base64
import hashlib
import hmac
import os
import re
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


# Characters of a device or module id, and of a configuration id (lower case only).
_ID_CHARS = re.compile(r"[A-Za-z0-9:.+%_#*?!(),=@;$'-]")
_CONFIGURATION_ID_CHARS = re.compile(r"[a-z0-9:+%_#*?!(),=@$'-]")


def _repair_path_ids(case) -> None:
    chars = _CONFIGURATION_ID_CHARS if case.operation.path.startswith("/configurations/") else _ID_CHARS
    params = dict(case.path_parameters or {})
    for name, value in params.items():
        if name not in ("id", "mid") or not isinstance(value, str):
            continue
        decoded = urllib.parse.unquote(value)
        repaired = "".join(c if chars.fullmatch(c) else "%" for c in decoded)
        if repaired != decoded:
            params[name] = urllib.parse.quote(repaired, safe="")
    case.path_parameters = params


# Body keys that must equal a path parameter, by operation path.
_BODY_IDS = {
    "/devices/{id}/modules/{mid}": {"deviceId": "id", "moduleId": "mid"},
    "/twins/{id}/modules/{mid}": {"deviceId": "id", "moduleId": "mid"},
    "/devices/{id}": {"deviceId": "id"},
    "/twins/{id}": {"deviceId": "id"},
    "/configurations/{id}": {"id": "id"},
}


def _is_negative(case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_negative


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    case.query = dict(case.query or {})
    case.query["api-version"] = "2021-04-12"
    case.headers = dict(case.headers or {})
    case.headers["Authorization"] = _token()
    # A direct method to an offline device waits connectTimeoutInSeconds (up to 300 s) for it
    # to connect, as IoT Hub does; no device connects during fuzzing, so a long valid wait
    # would only outlast the client's read timeout. It is cut to 2 s.
    if case.operation.path.endswith("/methods") and isinstance(case.body, dict):
        wait = case.body.get("connectTimeoutInSeconds")
        if isinstance(wait, int) and not isinstance(wait, bool) and wait > 2:
            case.body["connectTimeoutInSeconds"] = 2
    if _is_negative(case):
        return
    _repair_path_ids(case)
    keys = _BODY_IDS.get(case.operation.path)
    if keys and isinstance(case.body, dict):
        for body_key, path_key in keys.items():
            value = (case.path_parameters or {}).get(path_key)
            if isinstance(case.body.get(body_key), str) and isinstance(value, str):
                case.body[body_key] = urllib.parse.unquote(value)
