'use strict';
// How the official device SDK's transports reach the emulator; the SDK is not modified.
//   Mqtt   - `mqtts://<GatewayHostName || HostName>`, and mqtt.js takes a port from it, so
//            GatewayHostName=localhost:<EMULATOR_MQTTS_PORT>. HostName (with the HTTPS port)
//            stays in the MQTT user name and the SAS `sr`, as with a real gateway.
//   MqttWs - always `wss://<GatewayHostName || HostName>:443/$iothub/websocket`, so
//            GatewayHostName=localhost, and preload-port.js sends loopback port 443 to
//            EMULATOR_HTTPS_PORT.
//   Http   - https.request({ host: HostName }); preload-port.js splits `localhost:<port>`.
// Trust comes from NODE_EXTRA_CA_CERTS.
const { Client, ModuleClient } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { Http } = require('azure-iot-device-http');

const TRANSPORTS = { mqtt: Mqtt, mqttWs: MqttWs, http: Http };

function parse(cs) {
  const parts = {};
  for (const part of cs.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) parts[part.slice(0, i)] = part.slice(i + 1);
  }
  return parts;
}

function serialize(parts) {
  return Object.entries(parts).map(([k, v]) => `${k}=${v}`).join(';');
}

// `cs` with the GatewayHostName that `transport` needs, unless it names one already.
function forTransport(cs, transport) {
  if (!TRANSPORTS[transport]) throw new Error(`unknown transport ${transport}; use one of ${Object.keys(TRANSPORTS).join(', ')}`);
  const parts = parse(cs);
  if (parts.GatewayHostName || transport === 'http') return cs;
  const host = parts.HostName.replace(/:\d+$/, '');
  if (transport === 'mqtt') {
    const port = process.env.EMULATOR_MQTTS_PORT;
    if (!port) throw new Error('EMULATOR_MQTTS_PORT is not set (run these scripts through cargo test)');
    parts.GatewayHostName = `${host}:${port}`;
  } else {
    parts.GatewayHostName = host;
  }
  return serialize(parts);
}

// A device (or module) connection string on the hub of IOTHUB_CONNECTION_STRING, for `transport`.
function deviceConnectionString(transport, deviceId, key, moduleId) {
  const parts = { HostName: parse(process.env.IOTHUB_CONNECTION_STRING).HostName, DeviceId: deviceId };
  if (moduleId) parts.ModuleId = moduleId;
  parts.SharedAccessKey = key;
  return forTransport(serialize(parts), transport);
}

// A device Client, or a ModuleClient when the connection string has ModuleId.
function clientFor(cs, transport) {
  const adapted = forTransport(cs, transport);
  const Factory = parse(adapted).ModuleId ? ModuleClient : Client;
  return Factory.fromConnectionString(adapted, TRANSPORTS[transport]);
}

// A message's application properties as a plain object.
function appProperties(msg) {
  const out = {};
  for (const { key, value } of msg.properties.propertyList) out[key] = value;
  return out;
}

// Rejects when `promise` has not settled within `ms` (the SDK's own operation timeout is
// four minutes, longer than a whole scenario may run).
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

module.exports = { TRANSPORTS, parse, forTransport, deviceConnectionString, clientFor, appProperties, withTimeout };
