"""The smallest correct server for the same model: what ``make bench`` prices the hub's features against.

    python benchmarks/reference_server.py --model-dir ../models --port 8100 [--fastapi]

A bare ASGI app under the same uvicorn (httptools, one worker; the benchmark pins it to the same
core as ours): the raw body, orjson, NumPy, ONNX Runtime, orjson. It does what a prediction must
and nothing a production service adds (keys, logs, metrics, drift statistics, request ids,
limits other than the body's size, error documents):

- ``POST /api/v1/predict`` ``{"image": 784 numbers or 28 rows of 28, in 0..1}`` or
  ``{"image_base64": "<PNG/JPEG>"}``: the digit, its confidence, the ten probabilities. A PNG is
  decoded and preprocessed with the hub's own code (``mnist_backend.client_input``, the contract's
  canvas preprocessing): the decoder is a cost both servers pay.
- ``POST /api/v1/predict/batch`` ``{"images": [...]}`` of pixel arrays, one model call.
- Anything it cannot read: ``422`` with a sentence (the pixel checks are the hub's own
  ``pixels_from_array``); another path: ``404``.

The model runs through the backend's own loader (``load_model_version``: the same session
settings, normalization and softmax), so the difference between the two servers is what the
hub does around the model.

``--fastapi`` serves the same two routes as the smallest FastAPI app instead (a pydantic body,
the same checks and answers, orjson replies): what the framework itself costs, with none of
the hub's features.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel

from mnist_backend.client_input import InvalidImageError, decode_base64_image, pixels_from_array, preprocess_image
from mnist_backend.model import LoadedModel, load_model_version

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_IMAGE_PIXELS = 4_000_000
Scope = dict[str, Any]


class UnreadableError(ValueError):
    """The request cannot be answered; the message is the 422's detail."""


def answer(probabilities: np.ndarray) -> dict[str, Any]:
    digit = int(probabilities.argmax())
    return {"digit": digit, "confidence": float(probabilities[digit]), "probabilities": probabilities}


def predict(model: LoadedModel, document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or ("image" in document) == ("image_base64" in document):
        raise UnreadableError("send exactly one of image and image_base64")
    if "image" in document:
        image = pixels_from_array(document["image"])
    else:
        payload = document["image_base64"]
        if not isinstance(payload, str):
            raise UnreadableError("image_base64 must be a string")
        image = preprocess_image(decode_base64_image(payload, MAX_IMAGE_PIXELS))
    return answer(model.predict_proba(image[np.newaxis])[0])


def predict_batch(model: LoadedModel, document: Any) -> dict[str, Any]:
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, list) or not images:
        raise UnreadableError("images must be a non-empty list")
    batch = np.stack([pixels_from_array(image, f"images[{index}]") for index, image in enumerate(images)])
    return {"predictions": [answer(row) for row in model.predict_proba(batch)]}


ROUTES = {b"/api/v1/predict": predict, b"/api/v1/predict/batch": predict_batch}


def create_app(model: LoadedModel):  # noqa: ANN201  (an ASGI callable)
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        route = ROUTES.get(scope["raw_path"]) if scope["method"] == "POST" else None
        if route is None:
            return await reply(send, 404, {"detail": "not found"})
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return await reply(send, 413, {"detail": "body too large"})
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            result = route(model, orjson.loads(b"".join(chunks)))
        except orjson.JSONDecodeError:
            return await reply(send, 422, {"detail": "the body is not JSON"})
        except (UnreadableError, InvalidImageError) as error:
            return await reply(send, 422, {"detail": str(error)})
        await reply(send, 200, result)

    return app


async def reply(send: Any, status: int, document: dict[str, Any]) -> None:
    body = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PredictBody(BaseModel):
    image: list[float] | list[list[float]] | None = None
    image_base64: str | None = None


class BatchBody(BaseModel):
    images: list[list[float]]


def create_fastapi_app(model: LoadedModel) -> FastAPI:
    app = FastAPI(openapi_url=None)

    def answered(route: Any, document: dict[str, Any]) -> Response:
        try:
            status, result = 200, route(model, document)
        except (UnreadableError, InvalidImageError) as error:
            status, result = 422, {"detail": str(error)}
        body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(body, status_code=status, media_type="application/json")

    # async: on the event loop, as ours (a plain def would add a thread hop per request)
    @app.post("/api/v1/predict")
    async def predict_route(body: PredictBody) -> Response:
        return answered(predict, body.model_dump(exclude_none=True))

    @app.post("/api/v1/predict/batch")
    async def batch_route(body: BatchBody) -> Response:
        return answered(predict_batch, body.model_dump())

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    # The hub's default (EVENT_LOOP): uvloop serves some connections seconds late under saturation.
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--fastapi", action="store_true", help="the smallest FastAPI app instead of bare ASGI")
    args = parser.parse_args()
    model = load_model_version(args.model_dir)
    uvicorn.run(
        create_fastapi_app(model) if args.fastapi else create_app(model),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop=args.loop,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
