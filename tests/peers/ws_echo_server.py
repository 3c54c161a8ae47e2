"""A compliant third-party WebSocket echo server (Python `websockets`), the upstream and the
baseline for the Autobahn|Testsuite conformance run (tests/autobahn.rs, scripts/autobahn).

Usage: ws_echo_server.py
Binds 127.0.0.1:0, prints `listening PORT` as its first stdout line, then echoes every message
back as it came (text as text, binary as binary) on any path until it is killed.

Autobahn's cases 9.* send messages of up to 16 MiB, so `max_size` is 64 MiB; compression is off
because the permessage-deflate cases (12.*, 13.*) are out of scope.

Against the suite alone (cases 1-10) it is OK but for: NON-STRICT in 3.2, 3.3, 4.1.3, 4.1.4,
4.2.3, 4.2.4 and 5.15 (it fails the connection on the bad frame before echoing the message
ahead of it; 3.4, 4.1.5 and 4.2.5 go either way with timing) and in 6.4.1-6.4.4 (invalid
UTF-8 is caught once the whole message is in, not at the fragment that broke it);
INFORMATIONAL in 7.1.6, 7.13.1 and 7.13.2; and FAILED in 7.1.5, where a close frame in the
middle of a fragmented message is answered with 1002 "incomplete fragmented message" instead
of 1000.
"""
import asyncio
import os
import sys

# Cases 9.3.* and 9.4.* send 4 MiB in 64-byte fragments (65,536 frames); recent `websockets`
# fails a message of more than 4,096 fragments with 1009 unless this is raised. It is read
# when `websockets` is imported, so it is set first.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(1 << 20))

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 64 * 1024 * 1024


async def echo(ws) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main() -> None:
    async with serve(
        echo,
        "127.0.0.1",
        0,
        max_size=MAX_MESSAGE,
        compression=None,
        # Autobahn's fuzzer answers pings itself; the server's own keepalive pings would only
        # add frames the baseline does not have.
        ping_interval=None,
        # Case 7.* waits on the closing handshake; 10 s is the default and plenty on loopback.
        close_timeout=10,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
