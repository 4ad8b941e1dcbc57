"""``POST /api/v1/predict``, answered beside FastAPI rather than through it.

The single prediction is the service's busiest request, and FastAPI's layers (routing, the
dependency solver, the Request object, pydantic's validation, the response class) cost about
as much as everything the hub adds around the model (``make bench``). This ASGI layer, inside
the service's edge (``service_edge.py``: request id, body limit, HTTP metrics, access log) and
around FastAPI's whole stack, answers the well-formed request itself with the route's own parts:
the same key check and rate limit (``AccessControl``), the same pixel checks
(``pixels_from_array``), and the route's ``single_answer`` (the model's call with its metrics and
drift statistics, the feedback token). A canvas-sized PNG/JPEG
is decoded here as the route decodes it (on the event loop) and an unreadable one refused as the
route's handler refuses it.
Anything else — another path, a larger image, a body that is not plainly 784 numbers, a refused
value, no model — goes to FastAPI untouched, the body it read included, so every other refusal
keeps the route's exact reply. So does a cross-origin request when CORS_ORIGINS allows other
origins (CORS's headers are added inside FastAPI's stack).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_backend.api import predict
from mnist_backend.api.errors import APIError
from mnist_backend.asgi import header_value, send_json_error
from mnist_backend.client_input import pixels_from_array
from mnist_backend.inference import decode_inline
from mnist_backend.security import AUTHORIZED
from mnist_contract.canvas import InvalidImageError

if TYPE_CHECKING:
    from mnist_backend.config import Settings

PATH = "/api/v1/predict"
# The most a body takes here: 784 numbers written in full (~20 KB), a canvas PNG in base64. Larger
# bodies are FastAPI's. It bounds what a caller without a key can make this layer read.
MAX_FAST_BODY_BYTES = 64 * 1024
# What the pixel array's text may hold: numbers, separators, white space. Pydantic refuses
# true/false/null and strings as pixels (strict floats); NumPy would convert them.
_NUMBER_TEXT = b"0123456789.,-+eE[] \t\r\n"
_KEYS = frozenset({"image", "image_base64", "return_input"})


class PredictFastPath:
    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self.settings: Settings = fastapi.state.settings
        self.max_body = min(self.settings.max_predict_body_bytes, MAX_FAST_BODY_BYTES)
        self.cors = bool(self.settings.cors_origins)
        # The route's own object, as FastAPI's router puts it on the scope.
        self.route = next(
            route
            for route in predict.router.routes
            if isinstance(route, APIRoute) and route.path == PATH and "POST" in (route.methods or ())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or not self._plain(scope):
            await self.app(scope, receive, send)
            return
        # The route's own object, as FastAPI's router sets it: metrics and the access log label
        # the request by its template, whoever answers it (or fails to).
        scope["route"] = self.route
        try:
            self.fastapi.state.access_control.authorize(
                Request(scope), self._api_key(scope) if self.settings.auth_enabled else None
            )
        except APIError as error:  # as the route's error handler answers it
            await send_json_error(send, error.status, error.detail, _encoded(error.headers))
            return
        scope[AUTHORIZED] = True
        body, more = await _read(receive, self.max_body)
        answer = None if more else self._answer(body)
        if answer is None:
            await self.app(scope, _replaying(body, more, receive), send)
            return
        if isinstance(answer, APIError):
            await send_json_error(send, answer.status, answer.detail)
            return
        payload = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _plain(self, scope: Scope) -> bool:
        """Declared as JSON, with a length this layer reads whole; cross-origin requests are
        CORS's (inside FastAPI's stack) when the service allows other origins."""
        if self.cors and header_value(scope, b"origin") is not None:
            return False
        content_type = header_value(scope, b"content-type") or b""
        if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return False
        declared = header_value(scope, b"content-length")
        return declared is not None and declared.isdigit() and int(declared) <= self.max_body

    @staticmethod
    def _api_key(scope: Scope) -> str | None:
        presented = header_value(scope, b"x-api-key")
        return None if presented is None else presented.decode("latin-1")

    def _answer(self, body: bytes) -> dict[str, Any] | APIError | None:
        """The route's answer to ``{"image": [...]}`` or ``{"image_base64": "..."}`` (with
        ``return_input``), the route's refusal of an unreadable image, or None for FastAPI."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(document) is not dict or not _KEYS.issuperset(document) or len(document.keys() - {"return_input"}) != 1:
            return None
        return_input = document.get("return_input", False)
        model = self.fastapi.state.model_holder.model
        if type(return_input) is not bool or model is None:
            return None
        pixels = self._pixels(body, document["image"]) if "image" in document else self._image(document["image_base64"])
        if not isinstance(pixels, np.ndarray):
            return pixels
        state = self.fastapi.state
        return predict.single_answer(model, pixels, state.metrics, state.feedback, return_input)

    @staticmethod
    def _pixels(body: bytes, image: object) -> np.ndarray | None:
        """784 numbers (or 28 rows of 28) in 0..1 as the route reads them; None otherwise."""
        start, end = body.find(b"["), body.rfind(b"]")
        if type(image) is not list or start < 0 or body[start : end + 1].translate(None, _NUMBER_TEXT):
            return None
        try:
            return pixels_from_array(image, "image")
        except InvalidImageError:
            return None

    def _image(self, payload: object) -> np.ndarray | APIError | None:
        """A canvas-sized PNG/JPEG decoded here, on the event loop, as the route does
        (``inference.decode_inline``); larger ones (the route's threads decode them) are the route's."""
        if type(payload) is not str or not payload:
            return None
        try:
            inline = decode_inline(payload, self.settings.max_image_pixels, self.settings.decode_inline_pixels)
        except InvalidImageError as error:  # the route's handler answers the same
            return APIError(422, str(error))
        return inline if isinstance(inline, np.ndarray) else None


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes; True when more remains (then it is FastAPI's to read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True  # a disconnect: FastAPI hears it on the next receive
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > limit:
            return b"".join(chunks), True


def _replaying(body: bytes, more: bool, receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: the bytes read first, then the rest."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _encoded(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
