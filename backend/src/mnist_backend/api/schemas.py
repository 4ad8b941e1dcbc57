"""Request and response bodies: the OpenAPI contract, and the fast JSON parsers for it."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Strict: a pixel is a JSON number; true and "0.5" are refused, not coerced.
Pixel = Annotated[float, Field(strict=True)]
PixelArray = Annotated[
    list[Pixel] | list[list[Pixel]],
    Field(
        union_mode="left_to_right",
        description="784 values, or 28 rows of 28, between 0 and 1: white digit on black (MNIST convention)",
    ),
]
Base64Image = Annotated[
    str,
    Field(description="a PNG or JPEG, base64 (a data: URL prefix is allowed); any size or colours", min_length=1),
]


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"image": [0.0] * 784}, {"image_base64": "iVBORw0KGgo...", "return_input": True}]
        },
    )

    image: PixelArray | None = None
    image_base64: Base64Image | None = None
    return_input: bool = Field(False, description="also return the 28x28 image the model saw (0..1)")

    @model_validator(mode="after")
    def _exactly_one_image(self) -> Self:
        if (self.image is None) == (self.image_base64 is None):
            raise ValueError("send exactly one of 'image' (pixel values) or 'image_base64' (a PNG/JPEG)")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[PixelArray | Base64Image] = Field(
        min_length=1, description="pixel arrays and/or base64 images; at most MAX_BATCH (default 256) per request"
    )
    return_input: bool = False


class Prediction(BaseModel):
    digit: int = Field(ge=0, le=9)
    confidence: float = Field(ge=0, le=1, description="probability of the predicted digit")
    probabilities: list[float] = Field(min_length=10, max_length=10)
    input_image: list[list[float]] | None = Field(None, description="28x28, 0..1: what the model saw")


class PredictResponse(Prediction):
    model_version: str
    inference_ms: float = Field(description="time in ONNX Runtime, milliseconds")


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


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        401: "missing or invalid X-API-Key (when keys are configured)",
        413: "body over the route's limit, more than MAX_BATCH images, or more than MAX_BATCH_PIXELS pixels",
        415: "body is not application/json",
        422: "the input is not a digit image; the detail says why",
        429: "rate limit (or failed-authentication limit) exceeded; see Retry-After",
        503: "no model loaded, or every image-decoding place is taken; the detail says why",
    }.items()
}
