// A third-party WebSocket upstream (Node `ws`) for the proxy tests; the twin of ws_upstream.py.
// Usage: node ws_upstream.mjs [--name NAME] [--subprotocols a,b]
// Listens on 127.0.0.1:0, prints `listening PORT` as its first stdout line, and exits when its
// standard input closes, so it never outlives the test that started it.
//
// Every path echoes each message as it came (text stays text, binary stays binary), up to
// 64 MiB, with permessage-deflate accepted when offered. `ws` answers a client's close frame
// with the same code and reason. Some paths do something first:
//   /close/CODE  close with CODE and reason `bye from upstream`
//   /ticks       send `tick N` every 100 ms, 20 times, then close with 1000
//   /last-close  send one text message: `CODE REASON` of the last close frame a client sent,
//                once one has come since the last ask (so a test waits on the event, not a poll)
//   /headers     send one text message: JSON of the request headers (lowercase names, repeated
//                headers joined with ", ") plus "path" (with the query); so does any path
//                ending in /headers (`/ws/x/headers`), to show where a proxy mapped a path
//   /name        send one text message: NAME
//   /forbidden   refuse the handshake: HTTP 403, body `forbidden by upstream\n`
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { WebSocketServer } = require("ws");

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function parseArgs(argv) {
  const args = { name: "", subprotocols: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ""];
    if (flag === "--name") args.name = value;
    else if (flag === "--subprotocols") args.subprotocols = value.split(",").filter(Boolean);
    else throw new Error(`unknown argument ${flag}`);
  }
  return args;
}

// Built from rawHeaders, not req.headers: Node drops repeats of some headers (host,
// user-agent, …) and joins cookies with "; ", and these tests want every value, joined by ", ".
function headersJson(req) {
  const headers = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  headers.path = req.url;
  return JSON.stringify(headers);
}

function refuse(socket, status, reason, body) {
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
      body,
  );
}

const args = parseArgs(process.argv.slice(2));
const wss = new WebSocketServer({
  noServer: true,
  maxPayload: MAX_MESSAGE_BYTES,
  perMessageDeflate: true,
  // `offered` is a Set in the client's order: pick the first we support, else no subprotocol.
  handleProtocols: (offered) => [...offered].find((p) => args.subprotocols.includes(p)) ?? false,
});

// The last close not yet asked for, and the /last-close askers waiting for one.
let lastClose = null;
let askers = [];

function recordClose(text) {
  lastClose = text;
  const waiting = askers;
  askers = [];
  waiting.forEach((answer) => answer());
}

wss.on("connection", (ws, req) => {
  const path = req.url.split("?")[0];
  ws.on("error", () => {}); // an abrupt end is the client's (or the proxy's) business
  if (path === "/ticks") {
    let n = 0;
    const timer = setInterval(() => {
      if (n === 20) {
        clearInterval(timer);
        ws.close(1000);
      } else {
        ws.send(`tick ${n++}`);
      }
    }, 100);
    ws.on("close", () => clearInterval(timer));
    return;
  }
  if (path === "/last-close") {
    const answer = () => {
      ws.send(lastClose);
      lastClose = null;
    };
    if (lastClose !== null) answer();
    else askers.push(answer);
  } else {
    ws.on("close", (code, reason) => {
      if (code !== 1005 && code !== 1006) recordClose(`${code} ${reason.toString()}`);
    });
  }
  if (path.startsWith("/close/")) {
    try {
      ws.close(Number(path.slice("/close/".length)), "bye from upstream");
    } catch {
      ws.terminate(); // not a code `ws` may send (e.g. 1005); a throw here would end the server
    }
    return;
  }
  if (path.endsWith("/headers")) ws.send(headersJson(req));
  else if (path === "/name") ws.send(args.name);
  ws.on("message", (message, isBinary) => ws.send(message, { binary: isBinary }));
});

const server = createServer((req, res) => {
  // As websockets answers a request that is not an upgrade.
  res.writeHead(426, {
    "Content-Type": "text/plain; charset=utf-8",
    Upgrade: "websocket",
    Connection: "close",
  });
  res.end("a WebSocket upstream: send an upgrade request\n");
});
server.on("upgrade", (req, socket, head) => {
  socket.on("error", () => {});
  if (req.url.split("?")[0] === "/forbidden") {
    refuse(socket, 403, "Forbidden", "forbidden by upstream\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

process.stdin.on("data", () => {});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
