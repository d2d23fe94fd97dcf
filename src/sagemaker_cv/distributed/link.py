"""The launchers' control link: one TCP connection from every host to the launcher on hosts[0],
carrying newline-delimited JSON (`protocol`). Only sockets here; what to send and when is the
supervisor's decision."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable

from sagemaker_cv.distributed import protocol


class Conn:
    """One connection. `host` is the peer's name once it is known (after its hello)."""

    def __init__(self, sock: socket.socket, host: str | None = None):
        sock.settimeout(5.0)  # a send to a peer that stopped reading must not block the loop forever
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.host = sock, host
        self.reader = protocol.LineReader()
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict) -> bool:
        """False once the connection is gone (the peer's loss is noticed by its silence or EOF)."""
        if self.closed:
            return False
        try:
            self.sock.sendall(protocol.encode(message))
            return True
        except OSError:
            self.closed = True
            return False

    def receive(self) -> list[dict] | None:
        """Messages now readable (possibly none: a line split across reads); None at end of stream."""
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return None
        return self.reader.feed(chunk)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def listen(port: int) -> socket.socket:
    """hosts[0]'s listening socket on every interface (raises OSError, e.g. when the port is taken)."""
    listener = socket.create_server(("", port))
    listener.setblocking(False)
    return listener


def connect(address: str, port: int, timeout: float = 2.0) -> Conn:
    """A connection to hosts[0] (raises OSError while it does not accept yet)."""
    return Conn(socket.create_connection((address, port), timeout=timeout))


def accept(listener: socket.socket) -> Conn | None:
    try:
        sock, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return None
    return Conn(sock)


def interface_address(name: str) -> str | None:
    """The IPv4 address of network interface `name` here, or None if it has none or does not
    exist (what ps-lite's GetIP would find; Linux SIOCGIFADDR)."""
    import fcntl
    import struct

    SIOCGIFADDR = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def readable(sources: Iterable, timeout: float) -> list:
    """Which of `sources` (sockets, connections, file descriptors) can be read within `timeout`."""
    sources = list(sources)
    if not sources:
        time.sleep(timeout)
        return []
    ready, _, _ = select.select(sources, [], [], timeout)
    return ready
