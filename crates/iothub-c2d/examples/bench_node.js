// C2D sends with the official Node service SDK (azure-iothub Client over AMQP), one after
// another on one client, against a local emulator. Prints one line:
// `node sent=<n> wall_s=<s> cpu_s=<s>`.
// Usage: node bench_node.js <connection string with HostName=localhost:<amqps port>> <prefix> <devices> <messages>
'use strict';
const { Client } = require('azure-iothub');
const { Message } = require('azure-iothub/dist/common-core/message');

async function main() {
  const [cs, prefix, devicesText, messagesText] = process.argv.slice(2);
  const devices = Number(devicesText);
  const messages = Number(messagesText);
  const client = Client.fromConnectionString(cs);
  await client.open();
  const body = 'x'.repeat(100);
  const make = () => { const m = new Message(body); m.contentType = 'text/plain'; return m; };
  await client.send(`${prefix}0`, make()); // warm-up
  const startCpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < messages; i++) {
    await client.send(`${prefix}${i % devices}`, make());
  }
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(startCpu);
  console.log(`node sent=${messages} wall_s=${wall.toFixed(4)} cpu_s=${((cpu.user + cpu.system) / 1e6).toFixed(4)}`);
  await client.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
