'use strict';
// Loaded with `node -r ./preload-port.js scenario.js`.
//
// azure-iothub passes the connection string's HostName to https.request() as `host` and
// never sets `port`, so `HostName=localhost:8443` fails with ENOTFOUND and a plain
// `HostName=localhost` would go to port 443. This wrapper splits a `host:port` host and,
// for a loopback host with no port at all, uses EMULATOR_HTTPS_PORT. Nothing else in the
// request changes; the SDK itself is not modified.
const https = require('https');

const LOOPBACK = new Set(['localhost', '127.0.0.1']);
const fallbackPort = Number(process.env.EMULATOR_HTTPS_PORT) || undefined;
const originalRequest = https.request;

function withPort(options) {
  if (!options || typeof options !== 'object' || options instanceof URL) return options;
  if (typeof options.host !== 'string' || options.port !== undefined) return options;
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
