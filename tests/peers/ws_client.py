"""A third-party client (Python `websockets`) for the bridge tests.

Usage: ws_client.py URL PROTOCOL BYTES
Sends BYTES random bytes in messages of varying size through an echo bridge, reads the echo,
checks it byte for byte, closes with 1000 and prints `ok protocol=P bytes=N`.
"""
import asyncio
import base64
import os
import sys

from websockets.asyncio.client import connect


async def main(url: str, protocol: str, total: int) -> None:
    data = os.urandom(total)
    async with connect(url, subprotocols=[protocol], max_size=None, open_timeout=20) as ws:
        assert ws.subprotocol == protocol, f"negotiated {ws.subprotocol!r}"

        async def send() -> None:
            sizes, at = [1, 1000, 65536, 7, 300000], 0
            for i in range(1_000_000):
                if at >= total:
                    return
                chunk = data[at:at + sizes[i % len(sizes)]]
                at += len(chunk)
                await ws.send(chunk if protocol == "binary" else base64.b64encode(chunk).decode())

        sender = asyncio.create_task(send())
        received = bytearray()
        while len(received) < total:
            message = await asyncio.wait_for(ws.recv(), 20)
            if protocol == "binary":
                assert isinstance(message, bytes), "binary mode answers in binary frames"
                received += message
            else:
                assert isinstance(message, str), "base64 mode answers in text frames"
                received += base64.b64decode(message)
        await sender
        assert bytes(received) == data, "echo differs from what was sent"
        await ws.close(1000, "done")
    print(f"ok protocol={protocol} bytes={total}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
