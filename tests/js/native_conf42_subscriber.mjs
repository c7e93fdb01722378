// The MQTT.js side of examples/conf42: subscribes to conf42/# over WebSocket and
// prints every message, one line each ("<topic>: <payload>").
//
//   node tests/js/native_conf42_subscriber.mjs [ws://localhost:8000/mqtt] [--count N]
//
// With --count it exits after N messages (the example's test uses that).
import mqtt from "mqtt";

const args = process.argv.slice(2);
const countAt = args.indexOf("--count");
const limit = countAt >= 0 ? Number(args[countAt + 1]) : Infinity;
const url = args.find((a, i) => !a.startsWith("--") && (countAt < 0 || i !== countAt + 1))
  ?? "ws://localhost:8000/mqtt";

const client = mqtt.connect(url, {
  protocolVersion: 5,
  username: "conf42",
  password: "public",
  reconnectPeriod: limit === Infinity ? 1000 : 0,
});
let seen = 0;
client.on("connect", () => {
  client.subscribe("conf42/#", (err) => {
    if (err) {
      console.error(`subscribe failed: ${err.message}`);
      process.exit(1);
    }
    console.log(`subscribed to conf42/# at ${url}`);
  });
});
client.on("message", (topic, payload) => {
  console.log(`${topic}: ${payload.toString()}`);
  seen += 1;
  if (seen >= limit) client.end(false, {}, () => process.exit(0));
});
client.on("error", (err) => console.error(`error: ${err.message}`));
