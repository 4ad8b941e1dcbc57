"""Request and response bodies: the OpenAPI contract, and the fast JSON parsers for it."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

# Strict: a pixel is a JSON number; true and "0.5" are refused, not coerced. Lengths and the
# 0..1 range are checked by pixels_from_array (its 422s name the bad value); the documented
# schema states them all, so clients and fuzzers know exactly what is valid.
Pixel = Annotated[float, Field(strict=True)]
_PIXEL_SCHEMA = {"type": "number", "minimum": 0, "maximum": 1}
_ROW_SCHEMA = {"type": "array", "items": _PIXEL_SCHEMA, "minItems": 28, "maxItems": 28}
PixelArray = Annotated[
    list[Pixel] | list[list[Pixel]],
    Field(union_mode="left_to_right"),
    WithJsonSchema(
        {
            "description": "784 values, or 28 rows of 28, between 0 and 1: white digit on black (MNIST convention)",
            "oneOf": [
                {"type": "array", "items": _PIXEL_SCHEMA, "minItems": 784, "maxItems": 784},
                {"type": "array", "items": _ROW_SCHEMA, "minItems": 28, "maxItems": 28},
            ],
        }
    ),
]
# Strict base64 (RFC 4648 alphabet, padded to whole quads), after an optional data: URL prefix:
# what the decoder accepts, so a schema-valid value is never "not valid base64".
BASE64_PATTERN = (
    r"^(data:[^,]*,)?(([A-Za-z0-9+/]{4})+([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"
)
Base64Image = Annotated[
    str,
    Field(description="a PNG or JPEG, base64 (a data: URL prefix is allowed); any size or colours", min_length=1),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": "image/png",
            "pattern": BASE64_PATTERN,
            "description": "a PNG or JPEG, base64 (a data: URL prefix is allowed); any size or colours",
        }
    ),
]


# A real 28x28 PNG of a "1" (a vertical stroke), so the documented example is a valid request.
EXAMPLE_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAHUlEQVR42mNgoD9gROH9RxVgwqdzVHJUkghJ"
    + "GgEA7SsBKkgRMQcAAAAASUVORK5CYII="
)


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"image": [0.0] * 784}, {"image_base64": EXAMPLE_PNG_BASE64, "return_input": True}],
            # Exactly one image: both subschemas match when both keys are sent, so oneOf refuses it.
            "oneOf": [{"required": ["image"]}, {"required": ["image_base64"]}],
        },
    )

    # Optional in Python, never null on the wire: the schema documents the two real shapes only.
    image: PixelArray | SkipJsonSchema[None] = None
    image_base64: Base64Image | SkipJsonSchema[None] = None
    return_input: bool = Field(False, strict=True, description="also return the 28x28 image the model saw (0..1)")

    @field_validator("image", "image_base64", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Only an explicit null gets here (defaults are not validated): leave the field out instead.
        if value is None:
            raise ValueError("must be left out, not null")
        return value

    @model_validator(mode="after")
    def _exactly_one_image(self) -> Self:
        if (self.image is None) == (self.image_base64 is None):
            raise ValueError("send exactly one of 'image' (pixel values) or 'image_base64' (a PNG/JPEG)")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[PixelArray | Base64Image] = Field(
        min_length=1,
        # The served schema states MAX_BATCH's value (openapi_contract.py).
        description="pixel arrays and/or base64 images; at most MAX_BATCH per request",
    )
    return_input: bool = Field(False, strict=True)


class Prediction(BaseModel):
    digit: int = Field(ge=0, le=9)
    confidence: float = Field(ge=0, le=1, description="probability of the predicted digit")
    probabilities: list[float] = Field(min_length=10, max_length=10)
    input_image: list[list[float]] | None = Field(None, description="28x28, 0..1: what the model saw")


class PredictResponse(Prediction):
    model_version: str
    inference_ms: float = Field(description="time in ONNX Runtime, milliseconds")
    # Optional in Python, absent (never null) on the wire when the service takes no feedback.
    prediction_id: str | SkipJsonSchema[None] = Field(
        None, description="this answer's id, for POST /api/v1/feedback (when the service takes feedback)"
    )
    feedback_token: str | SkipJsonSchema[None] = Field(
        None, description="signed proof of this answer, for POST /api/v1/feedback; expires (FEEDBACK_TOKEN_TTL_S)"
    )


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str
    inference_ms: float


class ErrorResponse(BaseModel):
    detail: str


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for routes that parse their own body (documented, but not re-parsed)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    }


ERROR_DESCRIPTIONS = {
    401: "missing or invalid X-API-Key (when keys are configured)",
    404: "the served model version has no model card (MODEL_CARD.md)",
    413: "body over the route's limit, more than MAX_BATCH images, or more than MAX_BATCH_PIXELS pixels",
    415: "body is not application/json",
    422: "the input is not a digit image; the detail says why",
    429: "rate limit (or failed-authentication limit) exceeded; see Retry-After",
    503: "no model loaded, or every image-decoding place is taken; the detail says why",
}


def documented_errors(
    model: type[BaseModel], descriptions: dict[int, str], statuses: tuple[int, ...]
) -> dict[int | str, dict[str, Any]]:
    """The documented error replies of a route: only the statuses it can answer, in ``model``'s shape."""
    return {status: {"model": model, "description": descriptions[status]} for status in statuses}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``{"detail": ...}`` replies, this service's own API."""
    return documented_errors(ErrorResponse, ERROR_DESCRIPTIONS, statuses)


ERROR_RESPONSES = error_responses(401, 413, 415, 422, 429, 503)  # what the predict routes can answer
