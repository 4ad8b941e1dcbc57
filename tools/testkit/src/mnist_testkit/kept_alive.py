"""A backend stand-in that shows who closes an idle kept-alive connection first: it or its client.

A client (nginx, the page's HTTP client) that sends a request on a connection the server is
closing at that instant gets no answer, and a POST is not resent: the client side must give up
idle connections before the server does.
"""

from __future__ import annotations

import socket
import threading
import time


class KeptAliveBackend:
    """A backend that answers every request on a connection and keeps it open while it idles for up
    to ``idle_limit_s`` (then closes it, as uvicorn's keep-alive timeout does). ``closed_by_client``
    lists, per connection its client closed first, how long it had been idle."""

    def __init__(self, idle_limit_s: float) -> None:
        self.idle_limit_s = idle_limit_s
        self.closed_by_client: list[float] = []
        self.closed_here = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            buffered = b""
            idle_since = time.monotonic()
            while True:
                connection.settimeout(max(0.0, idle_since + self.idle_limit_s - time.monotonic()))
                try:
                    chunk = connection.recv(65536)
                except TimeoutError:
                    self.closed_here += 1
                    return
                if not chunk:
                    self.closed_by_client.append(time.monotonic() - idle_since)
                    return
                buffered += chunk
                while b"\r\n\r\n" in buffered:
                    head, _, rest = buffered.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":", 1)[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    if len(rest) < length:
                        break
                    buffered = rest[length:]
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    )
                    idle_since = time.monotonic()

    def close(self) -> None:
        self.listener.close()
