// A third-party client (Node `ws`) for the bridge tests.
// Usage: node ws_client.mjs URL BYTES — sends BYTES random bytes through an echo bridge with the
// `binary` subprotocol, checks the echo byte for byte, closes with 1000, prints `ok ...`.
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const WebSocket = require("ws");

const [url, totalText] = process.argv.slice(2);
const total = Number(totalText);
const data = randomBytes(total);
const ws = new WebSocket(url, ["binary"]);
const received = [];
let length = 0;
const timer = setTimeout(() => { console.error("timeout"); process.exit(2); }, 20000);

ws.on("open", () => {
  if (ws.protocol !== "binary") throw new Error(`negotiated ${ws.protocol}`);
  for (let at = 0, i = 0; at < total; i++) {
    const size = [1, 4096, 65536, 13][i % 4];
    ws.send(data.subarray(at, at + size), { binary: true });
    at += size;
  }
});
ws.on("message", (message, isBinary) => {
  if (!isBinary) throw new Error("expected binary frames");
  received.push(message);
  length += message.length;
  if (length >= total) {
    if (!Buffer.concat(received).equals(data)) throw new Error("echo differs");
    ws.close(1000, "done");
  }
});
ws.on("close", (code) => {
  clearTimeout(timer);
  if (code !== 1000) { console.error(`close ${code}`); process.exit(3); }
  console.log(`ok protocol=${ws.protocol} bytes=${total}`);
});
ws.on("error", (error) => { console.error(error.message); process.exit(4); });
