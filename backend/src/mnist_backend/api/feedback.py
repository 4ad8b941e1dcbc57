"""``POST /api/v1/feedback`` (a person corrects an answer) and the admin review of corrections."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mnist_backend.api.dependencies import parse_json_body
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.schemas import ERROR_DESCRIPTIONS, ErrorResponse, documented_errors, request_body_schema
from mnist_backend.feedback.service import FeedbackService
from mnist_backend.feedback.store import api_key_hash
from mnist_backend.feedback.tokens import MAX_TOKEN_CHARS, FeedbackTokenError
from mnist_backend.security import AdminKeyRequired
from mnist_contract.feedback_snapshot import digest_of

router = APIRouter(prefix="/api/v1", tags=["feedback"])
admin_router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[AdminKeyRequired])

MAX_FEEDBACK_BODY_BYTES = 4096
MAX_REVIEW_BODY_BYTES = 256 * 1024
_DESCRIPTIONS = {
    **ERROR_DESCRIPTIONS,
    403: "the token is not one this service issued, or belongs to another prediction",
    404: "this service takes no feedback (FEEDBACK_DATABASE_URL is not set)",
    410: "the prediction is older than FEEDBACK_TOKEN_TTL_S",
    503: "the feedback store cannot be reached now, or all its places are taken; predictions are unaffected",
}


_ADMIN_DESCRIPTIONS = {
    **_DESCRIPTIONS,
    403: "not an admin key (ADMIN_API_KEYS), or admin operations are disabled",
    503: "the feedback store cannot be reached now, or all its places are taken",
}
FEEDBACK_RESPONSES = documented_errors(ErrorResponse, _DESCRIPTIONS, (401, 403, 404, 410, 413, 415, 422, 429, 503))
ADMIN_READ_RESPONSES = documented_errors(ErrorResponse, _ADMIN_DESCRIPTIONS, (401, 403, 404, 422, 429, 503))
ADMIN_WRITE_RESPONSES = documented_errors(ErrorResponse, _ADMIN_DESCRIPTIONS, (401, 403, 404, 413, 415, 422, 429, 503))


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="from the prediction answer")
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS, description="feedback_token from the same answer")
    label: int = Field(strict=True, ge=0, le=9, description="the digit it really is")


class FeedbackResponse(BaseModel):
    prediction_id: str
    status: Literal["recorded", "updated"] = Field(description="updated: this prediction's earlier correction")
    verdict: Literal["right", "wrong"]
    model_version: str


# The review queue answers the oldest pending groups, at most this many (~1.2 KB each). No query
# parameters: the OpenAPI fuzz cannot tell a dropped unknown parameter from an accepted one.
MAX_QUEUE_GROUPS = 500


# A group of pending corrections: the input's SHA-256 and the label given, "<hash>:<label>".
GroupKey = Annotated[str, Field(pattern=r"^[0-9a-f]{64}:[0-9]$")]


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    groups: list[GroupKey] = Field(min_length=1, max_length=1000, description='"<input_hash>:<label>" each')


def feedback_of(request: Request) -> FeedbackService:
    service: FeedbackService | None = request.app.state.feedback
    if service is None:
        raise APIError(404, "this service takes no feedback: FEEDBACK_DATABASE_URL is not set")
    return service


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses=FEEDBACK_RESPONSES,
    openapi_extra=request_body_schema(FeedbackRequest),
    summary="Say whether an answer was right, and which digit it really was",
)
async def give_feedback(request: Request) -> Response:
    service = feedback_of(request)
    body = await parse_json_body(request, FeedbackRequest, MAX_FEEDBACK_BODY_BYTES, 16)
    try:
        claims = service.verify(body.prediction_id, body.token)
    except FeedbackTokenError as error:
        service.metrics.feedback_refused.labels(reason=error.reason).inc()
        raise APIError(error.status, str(error)) from None
    created = await service.record(claims, body.label, api_key_hash(request.headers.get("x-api-key")))
    return json_response(
        {
            "prediction_id": claims.prediction_id,
            "status": "recorded" if created else "updated",
            "verdict": "right" if body.label == claims.predicted_digit else "wrong",
            "model_version": claims.model_version,
        }
    )


@admin_router.get(
    "/feedback",
    responses=ADMIN_READ_RESPONSES,
    summary=f"Corrections waiting for review, duplicates collapsed: the oldest {MAX_QUEUE_GROUPS} groups",
)
async def pending_feedback(request: Request) -> Response:
    counts, groups = await feedback_of(request).pending(MAX_QUEUE_GROUPS)
    return json_response(
        {
            "counts": counts,
            "groups": [
                {
                    "key": f"{group.input_hash}:{group.label}",
                    "input_hash": group.input_hash,
                    "label": group.label,
                    "predicted_digit": group.predicted_digit,
                    "count": group.count,
                    "model_versions": group.model_versions,
                    "first_received": group.first_received.isoformat(),
                    # 784 bytes, base64: what the model saw, for the reviewer to look at.
                    "pixels_base64": base64.b64encode(group.pixels.tobytes()).decode(),
                }
                for group in groups
            ],
        }
    )


@admin_router.post(
    "/feedback/review",
    responses=ADMIN_WRITE_RESPONSES,
    openapi_extra=request_body_schema(ReviewRequest),
    summary="Accept or reject groups of pending corrections (input hash + label)",
)
async def review_feedback(request: Request) -> Response:
    service = feedback_of(request)
    body = await parse_json_body(request, ReviewRequest, MAX_REVIEW_BODY_BYTES, 1000 + 8)
    pairs = [(key[:64], int(key[65])) for key in body.groups]
    changed = await service.review(pairs, accept=body.decision == "accept")
    return json_response({"decision": body.decision, "changed": changed})


@admin_router.get(
    "/feedback/snapshot",
    responses=ADMIN_READ_RESPONSES,
    summary="Every accepted correction as a feedback snapshot (.npz), digest in X-Snapshot-Digest",
    response_class=Response,
)
async def feedback_snapshot(request: Request) -> Response:
    snapshot = await feedback_of(request).snapshot()
    data = snapshot.to_bytes()
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "X-Snapshot-Digest": digest_of(data),
            "X-Snapshot-Corrections": str(len(snapshot)),
            "X-Snapshot-Held-Out": str(int(snapshot.held_out().sum())),
        },
    )
