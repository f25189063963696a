'use strict';
// A device (or module) of Microsoft's Node device SDK (azure-iot-device, unmodified) driven over
// stdin/stdout, so that a Rust test can play the service. Run as `node -r ./preload-port.js
// device_agent.js`.
//
// Environment: DEVICE_CONNECTION_STRING (a module when it has ModuleId=), DEVICE_TRANSPORT
// (`mqtt`, the default, `mqttws` or `http`; http is device-only and has no methods or twin),
// EMULATOR_MQTTS_PORT and EMULATOR_HTTPS_PORT (device_loopback.js adds the GatewayHostName a
// transport needs), NODE_EXTRA_CA_CERTS.
//
// One JSON object per line on stdout:
//   {"event":"connected"}
//   {"event":"c2d","body":..,"properties":{..},"messageId":..,"correlationId":..,"contentType":..,"contentEncoding":..}
//       (over http the message is then completed, and `iothub-app-` is taken off property names)
//   {"event":"method","name":..,"payload":..}   answered with 200 {"echo": <payload>, "method": <name>}
//   {"event":"desired","patch":{..}}
//   {"event":"reported","ok":true} | {"event":"sent","ok":true} | {"event":"twin","ok":true,"twin":{..}}
//   (a failed command answers with "ok":false and "error")
// Commands on stdin: {"cmd":"report","patch":{..}}, {"cmd":"send","body":"..","properties":{..}}
// (optional "messageId"), {"cmd":"twin"}, {"cmd":"exit"} (end of input exits too). Diagnostics go
// to stderr. The Node SDK answers only methods it has a handler for, by name: the agent
// registers DEVICE_METHODS (comma-separated, default `echo`); any other method gets no answer,
// as from a real device, and the service call times out.
const readline = require('readline');
const { Message } = require('azure-iot-device');
const { clientFor, parse, appProperties } = require('./device_loopback');

const TRANSPORT_NAMES = { mqtt: 'mqtt', mqttws: 'mqttWs', http: 'http' };

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function c2dEvent(msg, http) {
  const properties = {};
  for (const [k, v] of Object.entries(appProperties(msg))) {
    properties[http && k.startsWith('iothub-app-') ? k.slice('iothub-app-'.length) : k] = v;
  }
  return {
    event: 'c2d',
    body: Buffer.isBuffer(msg.data) ? msg.data.toString('utf8') : String(msg.data),
    properties,
    messageId: msg.messageId,
    correlationId: msg.correlationId,
    contentType: msg.contentType,
    contentEncoding: msg.contentEncoding,
  };
}

async function main() {
  const transport = TRANSPORT_NAMES[process.env.DEVICE_TRANSPORT || 'mqtt'];
  if (!transport) throw new Error(`DEVICE_TRANSPORT must be mqtt, mqttws or http, not ${process.env.DEVICE_TRANSPORT}`);
  const cs = process.env.DEVICE_CONNECTION_STRING;
  if (!cs) throw new Error('DEVICE_CONNECTION_STRING is not set');
  const isModule = Boolean(parse(cs).ModuleId);
  const http = transport === 'http';
  const client = clientFor(cs, transport);
  client.on('error', (err) => console.error(`client error: ${err && err.stack ? err.stack : err}`));
  await client.open();

  let twin;
  if (!isModule) {
    client.on('message', (msg) => {
      emit(c2dEvent(msg, http));
      client.complete(msg).catch((err) => console.error(`complete failed: ${err}`));
    });
  }
  if (!http) {
    const names = (process.env.DEVICE_METHODS || 'echo').split(',').map((n) => n.trim()).filter(Boolean);
    for (const name of names) {
      const handler = (request, response) => {
        emit({ event: 'method', name: request.methodName, payload: request.payload === undefined ? null : request.payload });
        response.send(200, { echo: request.payload === undefined ? null : request.payload, method: request.methodName }, (err) => {
          if (err) console.error(`method response failed: ${err}`);
        });
      };
      if (isModule) client.onMethod(name, handler);
      else client.onDeviceMethod(name, handler);
    }
    twin = await client.getTwin();
    // The SDK fires this listener for patches and also, with its whole `properties.desired`
    // object, when it is added and after every twin GET; only patches are reported.
    let ready = false;
    twin.on('properties.desired', (delta) => {
      if (ready && delta !== twin.properties.desired) emit({ event: 'desired', patch: delta });
    });
    // Once this GET is answered the hub has processed every SUBSCRIBE sent before it.
    await twin.get();
    ready = true;
  }
  emit({ event: 'connected' });

  const unsupported = (what) => Promise.reject(new Error(`${what} is not available over ${transport}`));
  const commands = {
    report: (cmd) => (twin ? new Promise((resolve, reject) => {
      twin.properties.reported.update(cmd.patch || {}, (err) => (err ? reject(err) : resolve()));
    }) : unsupported('the twin')).then(() => ({ event: 'reported', ok: true })),
    send: (cmd) => {
      const msg = new Message(cmd.body === undefined ? '' : String(cmd.body));
      if (cmd.messageId) msg.messageId = cmd.messageId;
      for (const [k, v] of Object.entries(cmd.properties || {})) msg.properties.add(k, String(v));
      return client.sendEvent(msg).then(() => ({ event: 'sent', ok: true }));
    },
    twin: () => (twin ? twin.get() : unsupported('the twin')).then((t) => ({
      event: 'twin', ok: true, twin: { desired: t.properties.desired, reported: t.properties.reported },
    })),
  };
  const answers = { report: 'reported', send: 'sent', twin: 'twin' };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      console.error(`not a JSON command: ${line} (${err.message})`);
      continue;
    }
    if (cmd.cmd === 'exit') break;
    if (!commands[cmd.cmd]) {
      console.error(`unknown command ${line}`);
      continue;
    }
    try {
      emit(await commands[cmd.cmd](cmd));
    } catch (err) {
      console.error(err && err.stack ? err.stack : err);
      emit({ event: answers[cmd.cmd], ok: false, error: `${err.constructor.name}: ${err.message}` });
    }
  }
  lines.close();
  let timer;
  const closing = new Promise((resolve) => {
    timer = setTimeout(() => resolve(console.error('close did not finish within 5 s; exiting anyway')), 5000);
  });
  await Promise.race([client.close(), closing]);
  clearTimeout(timer);
  process.exit(0);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
