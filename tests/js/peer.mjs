// An MQTT.js client driven by JSON lines on stdin; reports events as JSON lines
// on stdout. Used by tests/broker (pytest) through tests/broker/mqtt_peers.py.
//
// Commands: {"op":"connect","url":"mqtt://h:p" | "ws://h:p/mqtt","options":{...}}
//           {"op":"subscribe","id":N,"topic":T,"options":{qos,nl,rap,rh,properties}}
//           {"op":"unsubscribe","id":N,"topic":T}
//           {"op":"publish","id":N,"topic":T,"payload":BYTES,"options":{qos,retain,properties}}
//           {"op":"end"}   clean DISCONNECT      {"op":"drop"}  close the socket abruptly
//           {"op":"exit"}
// Events:   connect, suback, unsuback, puback, message, disconnect, error, close, ended
// Bytes (payloads, correlation data) travel as {"$b64": "..."} both ways.
import mqtt from "mqtt";
import readline from "node:readline";

function encode(value) {
  return JSON.stringify(value, (key, v) => {
    if (v && v.type === "Buffer" && Array.isArray(v.data)) {
      return { $b64: Buffer.from(v.data).toString("base64") };
    }
    return v;
  });
}

function decode(line) {
  return JSON.parse(line, (key, v) =>
    v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "$b64" in v
      ? Buffer.from(v.$b64, "base64")
      : v,
  );
}

const emit = (event) => process.stdout.write(encode(event) + "\n");
let client = null;

function onCommand(cmd) {
  switch (cmd.op) {
    case "connect": {
      client = mqtt.connect(cmd.url, cmd.options);
      client.on("connect", (connack) =>
        emit({
          ev: "connect",
          sessionPresent: connack.sessionPresent,
          reasonCode: connack.reasonCode ?? connack.returnCode ?? 0,
          properties: connack.properties ?? {},
        }),
      );
      client.on("message", (topic, payload, packet) =>
        emit({
          ev: "message",
          topic,
          payload,
          qos: packet.qos,
          retain: packet.retain,
          dup: packet.dup,
          properties: packet.properties ?? {},
        }),
      );
      client.on("disconnect", (packet) =>
        emit({ ev: "disconnect", reasonCode: packet.reasonCode, properties: packet.properties ?? {} }),
      );
      client.on("error", (err) => emit({ ev: "error", message: String(err.message), code: err.code }));
      client.on("close", () => emit({ ev: "close" }));
      break;
    }
    case "subscribe":
      client.subscribe(cmd.topic, cmd.options ?? {}, (err, granted) =>
        emit({ ev: "suback", id: cmd.id, error: err ? String(err.message) : null, granted: granted ?? [] }),
      );
      break;
    case "unsubscribe":
      client.unsubscribe(cmd.topic, (err, packet) =>
        emit({ ev: "unsuback", id: cmd.id, error: err ? String(err.message) : null }),
      );
      break;
    case "publish":
      client.publish(cmd.topic, cmd.payload ?? Buffer.alloc(0), cmd.options ?? {}, (err, packet) =>
        emit({
          ev: "puback",
          id: cmd.id,
          error: err ? String(err.message) : null,
          reasonCode: packet?.reasonCode ?? null,
        }),
      );
      break;
    case "end":
      client.end(false, {}, () => emit({ ev: "ended" }));
      break;
    case "drop":
      client.stream.destroy();
      break;
    case "exit":
      if (client) client.end(true);
      process.exit(0);
      break;
    default:
      emit({ ev: "error", message: `unknown op ${cmd.op}` });
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim()) {
    try {
      onCommand(decode(line));
    } catch (err) {
      emit({ ev: "error", message: `command failed: ${err.stack}` });
    }
  }
});
rl.on("close", () => process.exit(0));
