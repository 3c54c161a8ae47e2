#!/usr/bin/env python3
"""A third-party SOCKS5 client (PySocks) for tests/egress.rs.

usage: socks_client.py tcp|udp PROXY_HOST PROXY_PORT TARGET_HOST TARGET_PORT [USER PASSWORD]

tcp: connects through the proxy (names resolved by the proxy, as socks5h), sends 64 KiB and
checks that the echo target sends the same bytes back. udp: sends three datagrams through a
UDP ASSOCIATE and checks each echo. Prints one line: `ok BYTES`, or `error CLASS: MESSAGE`.
"""
import os
import socket
import sys

import socks


def proxied(kind, proxy_host, proxy_port, user, password):
    family = socket.AF_INET6 if ":" in proxy_host else socket.AF_INET
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    sock = socks.socksocket(family, sock_type)
    sock.set_proxy(socks.SOCKS5, proxy_host, proxy_port, rdns=True,
                   username=user, password=password)
    sock.settimeout(10)
    return sock


def tcp(sock, target):
    sock.connect(target)
    data = os.urandom(64 * 1024)
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    if got != data:
        raise AssertionError(f"echo differs: {len(got)} bytes back of {len(data)}")
    return len(got)


def udp(sock, target):
    total = 0
    for size in (1, 512, 1400):
        data = os.urandom(size)
        sock.sendto(data, target)
        got, _ = sock.recvfrom(65536)
        if got != data:
            raise AssertionError(f"datagram of {size} bytes came back as {len(got)} bytes")
        total += len(got)
    return total


def main():
    kind, proxy_host, proxy_port, target_host, target_port = sys.argv[1:6]
    user, password = (sys.argv[6], sys.argv[7]) if len(sys.argv) > 7 else (None, None)
    sock = proxied(kind, proxy_host, int(proxy_port), user, password)
    try:
        moved = (tcp if kind == "tcp" else udp)(sock, (target_host, int(target_port)))
        print(f"ok {moved}")
    except Exception as error:  # the test reads the class and message
        print(f"error {type(error).__name__}: {error}")
    finally:
        sock.close()


if __name__ == "__main__":
    main()
