'use strict';
// Loaded with `node -r ./preload-port.js scenario.js`.
//
// azure-iothub passes the connection string's HostName to https.request() as `host` and
// never sets `port`, so `HostName=localhost:8443` fails with ENOTFOUND and a plain
// `HostName=localhost` would go to port 443. This wrapper splits a `host:port` host and,
// for a loopback host with no port at all, uses EMULATOR_HTTPS_PORT. Nothing else in the
// request changes; the SDK itself is not modified.
//
// The AmqpWs transport (AMQP over WebSockets) always connects to
// `wss://<HostName>:443/$iothub/websocket` (azure-iothub dist/amqp_ws.js); its `ws` library
// passes `port: 443` explicitly. For a loopback host, that port 443 is redirected to
// EMULATOR_HTTPS_PORT as well, where the emulator serves `/$iothub/websocket`.
//
// The device SDK's MqttWs transport does the same (`wss://<GatewayHostName or HostName>:443/
// $iothub/websocket`, azure-iot-device-mqtt dist/mqtt_ws.js), through the older `ws` that
// mqtt.js bundles, which calls https.get() rather than https.request(). Node's https.get()
// does not go through the exported https.request, so it is wrapped too.
const https = require('https');

const LOOPBACK = new Set(['localhost', '127.0.0.1']);
const fallbackPort = Number(process.env.EMULATOR_HTTPS_PORT) || undefined;
const originalRequest = https.request;
const originalGet = https.get;

function withPort(options) {
  if (!options || typeof options !== 'object' || options instanceof URL) return options;
  if (typeof options.host !== 'string') return options;
  if (options.port !== undefined) {
    const explicit443 = Number(options.port) === 443 && LOOPBACK.has(options.host.toLowerCase());
    return explicit443 && fallbackPort ? Object.assign({}, options, { port: fallbackPort }) : options;
  }
  const match = /^([^:[\]]+):(\d+)$/.exec(options.host);
  if (match && LOOPBACK.has(match[1].toLowerCase())) {
    return Object.assign({}, options, { host: match[1], port: Number(match[2]) });
  }
  if (LOOPBACK.has(options.host.toLowerCase()) && fallbackPort) {
    return Object.assign({}, options, { port: fallbackPort });
  }
  return options;
}

https.request = function request(options, ...rest) {
  return originalRequest.call(this, withPort(options), ...rest);
};

https.get = function get(options, ...rest) {
  return originalGet.call(this, withPort(options), ...rest);
};
