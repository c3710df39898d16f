"""A PACS that answers one byte at a time: a local socket server, bounded in time.

Every connection gets its reply trickled (``interval_s`` between bytes) until the client
goes away, the server is closed, or ``max_s`` passes (the server stops itself).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

MODES = {
    # multipart WADO-RS headers at once, then the body one byte at a time
    "body": (b"HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type=\"application/dicom\"; "
             b"boundary=slow\r\n\r\n", b"--slow\r\nContent-Type: application/dicom\r\n\r\n"
             + b"x" * 100_000),
    # a QIDO-RS JSON reply whose body trickles
    "json": (b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
             b"Content-Length: 100000\r\n\r\n", b"[" + b" " * 99_999),
    # the status line, then header bytes one at a time
    "headers": (b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 60_000),
}


class TricklingServer:
    """``url`` answers every request with the ``mode`` reply, one byte per ``interval_s``."""

    def __init__(self, mode: str = "body", interval_s: float = 0.5, max_s: float = 40.0
                 ) -> None:
        self.head, self.body = MODES[mode]
        self.interval_s, self.max_s = interval_s, max_s
        self.connections = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/dicom-web"

    def _over(self) -> bool:
        return self.stop.is_set() or time.monotonic() - self.started > self.max_s

    def _serve(self) -> None:
        while not self._over():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()
        self.sock.close()

    def _trickle(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            conn.settimeout(2.0)
            with contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(self.head)
                for i in range(len(self.body)):
                    if self._over():
                        return
                    conn.sendall(self.body[i:i + 1])
                    time.sleep(self.interval_s)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@contextlib.contextmanager
def trickling_server(mode: str = "body", interval_s: float = 0.5, max_s: float = 40.0
                     ) -> Iterator[TricklingServer]:
    server = TricklingServer(mode, interval_s, max_s)
    try:
        yield server
    finally:
        server.close()
