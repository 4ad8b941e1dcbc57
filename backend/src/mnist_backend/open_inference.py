"""The Open Inference Protocol (KServe v2, Triton) for this service's one model: an inference
request in, model inputs out, and the reply. No HTTP here (the routes: ``api/open_inference.py``).

A request is JSON, or JSON followed by raw tensors: the binary tensor data extension, where the
``Inference-Header-Content-Length`` header says where the JSON ends and each binary input
names its byte size (``parameters.binary_data_size``). Raw little-endian floats are read with
one ``np.frombuffer``: a batch of 256 digits is 800 KB that no JSON parser touches.

The model's input ``image`` is ``FP32`` in 0..1 (white on black, as MNIST) or ``UINT8`` 0..255,
shaped ``[N, 1, 28, 28]``, ``[N, 28, 28]`` or ``[N, 784]``; its outputs are ``probabilities``
(``FP32 [N, 10]``) and ``digit`` (``INT64 [N]``). Every refusal is a ``ProtocolError`` whose
message names the field, as the protocol's ``{"error": ...}`` body carries it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mnist_contract.canvas import MNIST_SIDE

MODEL_NAME = "mnist-cnn"
INPUT_NAME = "image"
OUTPUT_DATATYPES = {"probabilities": "FP32", "digit": "INT64"}
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "inference-header-content-length"
INPUT_DATATYPES: dict[str, np.dtype] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
PIXELS = MNIST_SIDE * MNIST_SIDE
# What one image may look like after the batch axis: [1, 28, 28], [28, 28] or [784].
IMAGE_SHAPES = ((1, MNIST_SIDE, MNIST_SIDE), (MNIST_SIDE, MNIST_SIDE), (PIXELS,))


class ProtocolError(ValueError):
    """A request the protocol (or this model) cannot take; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    request_id: str | None
    pixels: np.ndarray  # float32 [N, 28, 28] in 0..1
    outputs: tuple[RequestedOutput, ...]


def parse_infer_request(body: bytes, header_length: str | None, max_batch: int, max_json_values: int) -> InferRequest:
    """The request body (and its ``Inference-Header-Content-Length``, if any) -> model inputs."""
    header, binary = _split_body(body, header_length)
    # JSON separates values with commas: bound what the parser would build before it builds it.
    values = header.count(b",") + 1
    if values > max_json_values:
        raise ProtocolError(f"the request's JSON holds about {values} values; at most {max_json_values} here", 413)
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"the request is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ProtocolError("the request must be a JSON object with 'inputs'")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ProtocolError(f"'inputs' must list exactly one tensor, '{INPUT_NAME}'")
    pixels = _read_input(inputs[0], binary, max_batch)
    outputs = _requested_outputs(document)
    return InferRequest(request_id, pixels, outputs)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length {header_length!r} must be a byte count within the body "
            f"({len(body)} bytes)"
        )
    length = int(header_length)
    return body[:length], memoryview(body)[length:]


def _read_input(tensor: object, binary: memoryview, max_batch: int) -> np.ndarray:
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be a JSON object with name, shape, datatype and data")
    name = tensor.get("name")
    if name != INPUT_NAME:
        raise ProtocolError(f"unknown input {name!r}: this model takes one input, '{INPUT_NAME}'")
    datatype = tensor.get("datatype")
    if datatype not in INPUT_DATATYPES:
        raise ProtocolError(f"input '{INPUT_NAME}' has datatype {datatype!r}; this model takes FP32 (0..1) or UINT8")
    shape = _read_shape(tensor.get("shape"), max_batch)
    count = math.prod(shape)
    dtype = INPUT_DATATYPES[datatype]
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"input '{INPUT_NAME}': 'parameters' must be an object")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if type(size) is not int or size != count * dtype.itemsize:
            raise ProtocolError(
                f"input '{INPUT_NAME}': binary_data_size {size!r} is not {count} {datatype} values "
                f"({count * dtype.itemsize} bytes) of shape {shape}"
            )
        if len(binary) != size:
            raise ProtocolError(f"the body carries {len(binary)} bytes of binary tensor data, not the {size} declared")
        values = np.frombuffer(binary, dtype=dtype)  # read-only, the request's own bytes: nothing writes to it
        if dtype != np.uint8:
            _check_range(values)
    else:
        if len(binary):
            raise ProtocolError("the body carries binary data, but no input declares binary_data_size")
        values = _json_values(tensor.get("data"), dtype, count, shape)
    images = values.reshape(shape[0], MNIST_SIDE, MNIST_SIDE)
    if dtype == np.uint8:
        return images.astype(np.float32) * np.float32(1 / 255)
    return images


def _read_shape(shape: object, max_batch: int) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"input '{INPUT_NAME}': 'shape' must be a list of non-negative integers")
    dims = tuple(shape)
    if len(dims) < 2 or dims[1:] not in IMAGE_SHAPES:
        accepted = ", ".join(f"[N, {', '.join(map(str, s))}]" for s in IMAGE_SHAPES)
        raise ProtocolError(f"input '{INPUT_NAME}' has shape {list(dims)}; this model takes {accepted}")
    if not 1 <= dims[0] <= max_batch:
        status = 413 if dims[0] > max_batch else 400
        raise ProtocolError(f"input '{INPUT_NAME}' holds {dims[0]} images; 1 to {max_batch} (MAX_BATCH)", status)
    return dims


def _json_values(data: object, dtype: np.dtype, count: int, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"input '{INPUT_NAME}': 'data' must be an array of numbers (or use binary_data_size)")
    try:
        values = np.asarray(data)
    except ValueError:  # ragged nesting
        values = np.empty(0, dtype=object)
    if values.dtype.kind not in "iuf":  # strings, booleans, objects: refused, not coerced
        raise ProtocolError(f"input '{INPUT_NAME}': 'data' must hold numbers only, flat or nested by the shape")
    if values.size != count:
        needed = f"shape {list(shape)} needs {count}"
        raise ProtocolError(f"input '{INPUT_NAME}': 'data' holds {values.size} values; {needed}")
    values = values.reshape(-1)
    if dtype == np.uint8:
        if not (values.min() >= 0 and values.max() <= 255 and np.all(values == np.round(values))):
            raise ProtocolError(f"input '{INPUT_NAME}': UINT8 values must be whole numbers from 0 to 255")
        return values.astype(np.uint8)
    # The range as sent (float64): 1.0000000000000002 is over 1 though float32 would round it to 1.
    _check_range(values)
    return values.astype(np.float32)


def _check_range(flat: np.ndarray) -> None:
    # One pass on the happy path: NaN fails both comparisons.
    if not (flat.min() >= 0 and flat.max() <= 1):
        index = int(np.flatnonzero(~((flat >= 0) & (flat <= 1)))[0])
        raise ProtocolError(
            f"input '{INPUT_NAME}': FP32 values must be between 0 and 1 (white digit on black); "
            f"value {index} is {float(flat[index])!r}"
        )


def _requested_outputs(document: dict[str, Any]) -> tuple[RequestedOutput, ...]:
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be an object")
    all_binary = parameters.get("binary_data_output") is True
    requested = document.get("outputs")
    if requested is None:
        return tuple(RequestedOutput(name, all_binary) for name in OUTPUT_DATATYPES)
    if not isinstance(requested, list) or not requested:
        raise ProtocolError("'outputs' must be a non-empty list of {\"name\": ...} objects when given")
    outputs = []
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUT_DATATYPES:
            known = ", ".join(f"'{n}'" for n in OUTPUT_DATATYPES)
            raise ProtocolError(f"unknown output {name!r}: this model gives {known}")
        options = output.get("parameters") or {}
        binary = options.get("binary_data", all_binary) if isinstance(options, dict) else all_binary
        outputs.append(RequestedOutput(name, binary is True))
    return tuple(outputs)


def encode_infer_response(
    request: InferRequest, probabilities: np.ndarray, model_version: str
) -> tuple[bytes, int | None]:
    """The reply's body, and the JSON header's length when binary outputs follow it (else None)."""
    tensors = {"probabilities": probabilities.astype("<f4", copy=False), "digit": probabilities.argmax(axis=1)}
    described, raw = [], []
    for output in request.outputs:
        tensor = tensors[output.name]
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": OUTPUT_DATATYPES[output.name],
            "shape": list(tensor.shape),
        }
        if output.binary:
            data = np.ascontiguousarray(tensor, dtype="<i8" if output.name == "digit" else "<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            entry["data"] = tensor.reshape(-1)
        described.append(entry)
    reply: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": model_version, "outputs": described}
    if request.request_id is not None:
        reply["id"] = request.request_id
    header = orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return header, None
    return header + b"".join(raw), len(header)


def model_metadata(version: str) -> dict[str, Any]:
    """``GET /v2/models/mnist-cnn``: what the model takes and gives."""
    return {
        "name": MODEL_NAME,
        "versions": [version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, 1, MNIST_SIDE, MNIST_SIDE]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "digit", "datatype": "INT64", "shape": [-1]},
        ],
    }
