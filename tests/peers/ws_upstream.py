"""A third-party WebSocket upstream (Python `websockets`) for the proxy tests.

Usage: ws_upstream.py [--name NAME] [--subprotocols a,b]
Listens on 127.0.0.1:0 and prints `listening PORT` as its first stdout line. Exits when its
standard input closes, so it never outlives the test that started it.

Every path echoes each message as it came (text stays text, binary stays binary), up to 64 MiB,
with permessage-deflate accepted when offered. A close frame from the client is answered with
the same code and reason. Some paths do something first:
  /close/CODE  close with CODE and reason `bye from upstream`
  /headers     send one text message: JSON of the request headers (lowercase names, repeated
               headers joined with ", ") plus "path" (with the query); so does any path
               ending in /headers (`/ws/x/headers`), to show where a proxy mapped a path
  /name        send one text message: NAME
  /ticks       send `tick N` every 100 ms, 20 times, then close with 1000
  /last-close  send one text message: `CODE REASON` of the last close frame a client sent,
               once one has come since the last ask (so a test waits on the event, not a poll)
               (so a test can see what reached the upstream after that connection ended)
  /forbidden   refuse the handshake: HTTP 403, body `forbidden by upstream\n`
"""
import argparse
import asyncio
import json
import sys
import threading

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="")
    parser.add_argument("--subprotocols", default="")
    return parser.parse_args()


def select_subprotocol(supported: list[str]):
    """Picks the first protocol the client offered that we support (client's order; the
    websockets default would use the server's order and refuse with 400 when none match).
    With none in common, the handshake goes on without a subprotocol, as Node `ws` does."""

    def select(connection, offered):
        return next((protocol for protocol in offered if protocol in supported), None)

    return select


def headers_json(request) -> str:
    headers: dict[str, str] = {}
    for name, value in request.headers.raw_items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    headers["path"] = request.path
    return json.dumps(headers)


def process_request(connection, request):
    if request.path.split("?")[0] == "/forbidden":
        return connection.respond(403, "forbidden by upstream\n")
    return None


def make_handler(name: str):
    # The last close not yet asked for; set() when one comes.
    last_close = [None]
    recorded = asyncio.Event()

    async def handler(ws) -> None:
        path = ws.request.path.split("?")[0]
        try:
            if path == "/last-close":
                await recorded.wait()
                answer, last_close[0] = last_close[0], None
                recorded.clear()
                await ws.send(answer)
            if path == "/ticks":
                for n in range(20):
                    await ws.send(f"tick {n}")
                    await asyncio.sleep(0.1)
                await ws.close(1000)
                return
            if path.startswith("/close/"):
                await ws.close(int(path[len("/close/"):]), "bye from upstream")
                return
            if path.endswith("/headers"):
                await ws.send(headers_json(ws.request))
            elif path == "/name":
                await ws.send(name)
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass  # an abrupt end is the client's (or the proxy's) business, not an error here
        finally:
            received = ws.protocol.close_rcvd
            if received is not None and path != "/last-close":
                last_close[0] = f"{received.code} {received.reason}"
                recorded.set()

    return handler


def stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Future) -> None:
    def watch() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

    threading.Thread(target=watch, daemon=True).start()


async def main() -> None:
    args = parse_args()
    supported = [p for p in args.subprotocols.split(",") if p]
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    async with serve(
        make_handler(args.name),
        "127.0.0.1",
        0,
        max_size=MAX_MESSAGE_BYTES,
        subprotocols=supported or None,
        select_subprotocol=select_subprotocol(supported) if supported else None,
        process_request=process_request,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        stop_on_stdin_eof(loop, stop)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
