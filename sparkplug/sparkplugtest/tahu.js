// Decodes and encodes Sparkplug B payloads with Eclipse Tahu's own JavaScript
// codec (npm package sparkplug-payload), for the Go tests: an implementation
// nobody on this project wrote. NODE_PATH points at its node_modules.
//
//   node tahu.js decode   stdin: JSON lines {"topic","payload":base64}
//                         stdout: JSON lines {"topic","payload":decoded}
//   node tahu.js encode   stdin: one JSON payload object; stdout: base64
"use strict";
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const Long = require("long");

function plain(key, v) {
  if (Long.isLong(v)) return v.toString();
  return v;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
  const mode = process.argv[2];
  if (mode === "decode") {
    const out = [];
    for (const line of input.split("\n")) {
      if (!line.trim()) continue;
      const m = JSON.parse(line);
      const decoded = sparkplug.decodePayload(Buffer.from(m.payload, "base64"));
      out.push(JSON.stringify({ topic: m.topic, payload: decoded }, plain));
    }
    process.stdout.write(out.join("\n") + "\n");
  } else if (mode === "encode") {
    const p = JSON.parse(input);
    process.stdout.write(Buffer.from(sparkplug.encodePayload(p)).toString("base64"));
  } else {
    process.stderr.write("usage: tahu.js decode|encode\n");
    process.exit(2);
  }
});
