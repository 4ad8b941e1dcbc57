"""A real HTTP server on 127.0.0.1 that records every request and answers as the test scripts it.

Stands in for what cannot run here (Slack's webhook) or must misbehave on cue (a backend that
answers 503, answers slowly, or drops the connection as an OOM-killed process would).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: object = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class RecordingServer:
    """``reply(path, ...)`` scripts one path; others get ``default``. ``requests`` is what came."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply(404, {"detail": "Not Found"})
        self.replies: dict[str, Reply] = {}
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                outer.requests.append(
                    Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                reply = outer.replies.get(path, outer.default)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(
        self,
        path: str,
        status: int = 200,
        body: object = None,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        drop: bool = False,
    ) -> None:
        self.replies[path] = Reply(status, {} if body is None else body, headers or {}, delay_s, drop)

    def received(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
