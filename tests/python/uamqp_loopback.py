"""Points uamqp (the AMQP library under send_c2d_message) at the emulator. Import it before
anything connects; it changes this process only and never the installed packages.

uamqp drops the port of the connection string's HostName and connects to
``uamqp.constants.DEFAULT_AMQPS_PORT`` (5671), or ``DEFAULT_AMQP_WSS_PORT`` (443) over
WebSockets; it trusts only ``certifi.where()`` and ignores REQUESTS_CA_BUNDLE. All three are
looked up when a connection opens (uamqp/authentication/common.py), so setting them here is
enough:
  * DEFAULT_AMQPS_PORT    = EMULATOR_AMQPS_PORT
  * DEFAULT_AMQP_WSS_PORT = EMULATOR_HTTPS_PORT
  * certifi.where         -> EMULATOR_CA_PATH
"""

import os

import certifi
import uamqp.constants

CA_PATH = os.environ["EMULATOR_CA_PATH"]
uamqp.constants.DEFAULT_AMQPS_PORT = int(os.environ["EMULATOR_AMQPS_PORT"])
uamqp.constants.DEFAULT_AMQP_WSS_PORT = int(os.environ["EMULATOR_HTTPS_PORT"])
certifi.where = lambda: CA_PATH
