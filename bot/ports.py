"""Is a port free to listen on? Checked before a server starts, so a busy port is one clear line, not a server's
multi-line start-up failure."""

from __future__ import annotations

import errno
import socket


def port_in_use(host: str, port: int, setting: str) -> str | None:
    """One line saying that something listens on host:port already (naming `setting`), or None.

    Binds a socket to every address of `host` as asyncio's server (uvicorn's) does, and closes it again. Like the
    servers it sets SO_REUSEADDR: a port whose last server has just stopped (connections in TIME_WAIT) is free,
    one with a listener is not. Other failures (an unknown host, a privileged port) are left to the server."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"port {port} on {host} is in use: stop what runs there or set {setting}"
    return None
