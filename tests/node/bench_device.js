'use strict';
// The device-side paths of the device benchmark (crates/iothub-device-sim/examples/device_bench.rs)
// through Microsoft's official Node SDKs: azure-iot-device-mqtt as the device, azure-iothub as the
// service. Prints one JSON line with the figures. Run with `node -r ./preload-port.js`.
//
//   bench_device.js methods N DEVICE_ID KEY    N direct-method round trips, one after another
//   bench_device.js telemetry N DEVICE_ID KEY  N 100-byte telemetry messages, one after another
const { Client: ServiceClient } = require('azure-iothub');
const { Message } = require('azure-iot-device');
const { deviceConnectionString, clientFor } = require('./device_loopback');

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main() {
  const [mode, nText, deviceId, key] = process.argv.slice(2);
  const n = Number(nText);
  const device = clientFor(deviceConnectionString('mqtt', deviceId, key), 'mqtt');
  await device.open();
  let out;
  let cpu0 = process.cpuUsage();
  if (mode === 'methods') {
    device.onDeviceMethod('bench', (request, response) => response.send(200, { echo: request.payload }));
    const service = ServiceClient.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING);
    const call = { methodName: 'bench', payload: { n: 1 }, responseTimeoutInSeconds: 30 };
    await service.invokeDeviceMethod(deviceId, call); // warm-up
    cpu0 = process.cpuUsage();
    const latencies = [];
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      const result = await service.invokeDeviceMethod(deviceId, call);
      latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (result.result.status !== 200) throw new Error(`status ${result.result.status}`);
    }
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    out = { rate: n / elapsed, p50_ms: percentile(latencies, 0.5), p99_ms: percentile(latencies, 0.99) };
  } else if (mode === 'telemetry') {
    const body = 'x'.repeat(100);
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await device.sendEvent(new Message(body));
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    out = { rate: n / elapsed };
  } else {
    throw new Error('mode must be methods or telemetry');
  }
  const cpu = process.cpuUsage(cpu0);
  out.client_cpu_us = (cpu.user + cpu.system) / n;
  console.log(JSON.stringify(out));
  await device.close();
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
