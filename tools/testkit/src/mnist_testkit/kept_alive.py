"""A backend stand-in that shows who closes an idle kept-alive connection first: it or its client.

A client (nginx, the page's HTTP client) that sends a request on a connection the server is
closing at that instant gets no answer, and a POST is not resent: the client side must give up
idle connections before the server does.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread


class KeptAliveBackend:
    """A backend that answers every request with ``{}`` and keeps each connection open while it
    idles for up to ``idle_limit_s`` (then closes it, as uvicorn's keep-alive timeout does).
    ``closed_by_client`` lists, per connection its client closed first, how long it had been idle."""

    def __init__(self, idle_limit_s: float) -> None:
        self.idle_limit_s = idle_limit_s
        self.closed_by_client: list[float] = []
        self.closed_here = 0
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_limit_s  # http.server closes a connection idle this long

            def setup(self) -> None:
                super().setup()
                outer.connections += 1
                self.idle_since = time.monotonic()

            def handle_one_request(self) -> None:
                self.raw_requestline = None  # stays None only when the wait timed out
                super().handle_one_request()
                if self.raw_requestline == b"":
                    outer.closed_by_client.append(time.monotonic() - self.idle_since)
                elif self.raw_requestline is None:
                    outer.closed_here += 1

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                self.idle_since = time.monotonic()

            do_GET = do_POST  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # close() does not wait for open connections
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
