"""uvicorn's httptools protocol with the limits it lacks: header size, header time, body time.

httptools (uvicorn's fast parser) buffers a request's headers without bound and waits for
them, and for the body, forever, so a 32 MiB header or a slowloris client holding connections
open costs the service memory and sockets. h11 bounds the size but is several times slower.
This subclass keeps httptools and answers 431 past ``max_header_bytes``, 408 when a request's
headers take longer than ``header_timeout_s`` (counted from connection or from the request's
first byte) and 408 when its body takes longer than ``body_timeout_s`` after the headers (the
edge bounds both, but staging and Kubernetes reach the backend without it). Idle keep-alive
connections are uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEADERS_END = b"\r\n\r\n"
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = 16 * 1024
    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._awaiting_headers = True
        self._receiving_body = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()  # a connection that never sends a byte is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            end = data.find(_HEADERS_END)
            self._header_bytes += len(data) if end < 0 else end
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, f"request line and headers are over {self.max_header_bytes} bytes")
                return
        super().data_received(data)
        # A timer only for what this read left incomplete: a request that arrives whole (nearly
        # every one) arms none, where arming and cancelling two per request cost ~10 µs of a
        # busy core. The clocks start at this read: the request's first bytes, or its headers.
        if self.transport.is_closing():
            return
        if self._awaiting_headers and self._header_bytes and self._header_timer is None:
            self._arm_header_timer()
        elif self._receiving_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_too_slow)

    def on_headers_complete(self) -> None:
        self._awaiting_headers, self._receiving_body = False, True
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving_body = False
        self._disarm_body_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._awaiting_headers, self._header_bytes = True, 0
        self._disarm_body_timer()
        super().on_response_complete()

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if cycle is not None and cycle.response_started:  # too late for a status: just let go
            self.transport.close()
            return
        self._refuse(408, f"the request body did not arrive within {self.body_timeout_s:g} s of its headers")

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self._refuse(408, f"request headers did not arrive within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._awaiting_headers = False
        self._disarm_header_timer()
        self.logger.warning("refused a connection from %s: %s", self.client[0] if self.client else "?", message)
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


def bounded_protocol(
    max_header_bytes: int, header_timeout_s: float, body_timeout_s: float = 30.0
) -> type[BoundedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, with these limits."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s},
    )
