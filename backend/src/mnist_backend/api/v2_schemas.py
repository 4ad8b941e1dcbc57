"""The Open Inference Protocol's bodies as this service documents them in its OpenAPI schema.

Routes parse their own bodies (``mnist_backend.open_inference``); these models only state the
contract, for clients and for the fuzzer that checks every answer against it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mnist_backend.api.schemas import documented_errors, request_body_schema

TensorData = list[Any]  # numbers, flat (row-major) or nested by the shape


class ErrorReply(BaseModel):
    error: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class BinaryParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    binary_data_size: int | None = Field(None, ge=0, description="bytes of this tensor after the JSON header")


class RequestInput(BaseModel):
    name: Literal["image"]
    shape: list[int] = Field(
        min_length=2,
        max_length=4,
        description="[N, 1, 28, 28], [N, 28, 28] or [N, 784]; N from 1 to MAX_BATCH (default 256)",
    )
    datatype: Literal["FP32", "UINT8"] = Field(description="FP32: 0..1, white digit on black; UINT8: 0..255")
    parameters: BinaryParameters | None = None
    data: TensorData | None = Field(None, description="leave out when the tensor is sent as binary data")


class RequestOutput(BaseModel):
    name: Literal["probabilities", "digit"]
    parameters: dict[str, Any] | None = Field(None, description='{"binary_data": true}: raw after the JSON header')


class InferRequestBody(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description='{"binary_data_output": true}: every output raw')
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = Field(None, min_length=1)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: TensorData | None = None


class InferReply(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


INFER_REQUEST_BODY = request_body_schema(InferRequestBody)
PROTOCOL_ERROR_DESCRIPTIONS = {
    400: "the request breaks the protocol or this model's input: the error names the field",
    401: "missing or invalid X-API-Key (when keys are configured)",
    404: "no such model or version here",
    413: "body over MAX_BODY_BYTES or more than MAX_BATCH images",
    429: "rate limit (or failed-authentication limit) exceeded; see Retry-After",
    503: "no model loaded, or every decoding place is taken",
}


def protocol_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``{"error": ...}`` replies, the protocol's."""
    return documented_errors(ErrorReply, PROTOCOL_ERROR_DESCRIPTIONS, statuses)
