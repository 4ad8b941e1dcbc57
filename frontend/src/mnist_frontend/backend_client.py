"""Calls to the backend, with every failure turned into one short sentence for the page."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from mnist_frontend.config import FrontendSettings


class BackendError(Exception):
    """Something the person at the page should read; ``kind`` lets the page pick a style."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class BackendStatus:
    state: str  # "ready" | "not ready" | "unreachable" | "error"
    detail: str
    model_info: dict[str, Any] | None = None


@dataclass(frozen=True)
class Prediction:
    digit: int
    confidence: float
    probabilities: list[float]
    input_image: list[list[float]] | None
    model_version: str
    # Present when the backend takes corrections (FEEDBACK_DATABASE_URL).
    prediction_id: str | None = None
    feedback_token: str | None = None


# httpx's pool sizes, with idle connections given up after 3 s: the backend closes them after 5 s
# (KEEP_ALIVE_TIMEOUT_S), and a request sent on one it is closing at that instant gets no answer.
IDLE_CONNECTIONS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=3.0)


class BackendClient:
    def __init__(self, settings: FrontendSettings) -> None:
        self.base_url = settings.backend_url.rstrip("/")
        headers = {}
        key = settings.resolved_api_key()
        if key:
            headers["X-API-Key"] = key
        # httpx retries failed connection attempts with exponential backoff; requests that
        # reached the backend are never repeated.
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=settings.request_timeout_s,
            transport=httpx.HTTPTransport(retries=settings.connect_retries, limits=IDLE_CONNECTIONS),
        )
        self.timeout = settings.request_timeout_s
        self._card: tuple[str, str | None] | None = None  # (model version, its card): one per version

    def status(self) -> BackendStatus:
        """Ready (with the model's metadata), not ready (with the reason), or unreachable."""
        try:
            ready = self._request("GET", "/ready")
        except BackendError as error:
            if error.kind == "not ready":
                return BackendStatus("not ready", error.message)
            return BackendStatus("unreachable" if error.kind in ("unreachable", "timeout") else "error", error.message)
        try:
            info = self._request("GET", "/api/v1/model/info")
        except BackendError as error:
            return BackendStatus("error", error.message)
        return BackendStatus("ready", f"model {ready.get('model_version')}", info)

    def model_card(self, version: str) -> str | None:
        """The served version's model card (Markdown), fetched once per version; None when the
        version has none or the backend cannot answer now (the page shows the rest anyway)."""
        if self._card is not None and self._card[0] == version:
            return self._card[1]
        try:
            response = self._client.get("/api/v1/model/card")
        except httpx.TransportError:
            return None
        if response.status_code not in (200, 404):
            return None  # not cached: a refused key or a reload in progress may pass
        card = response.text if response.status_code == 200 else None
        self._card = (version, card)
        return card

    def predict_png(self, png: bytes) -> Prediction:
        payload = {"image_base64": base64.b64encode(png).decode(), "return_input": True}
        body = self._request("POST", "/api/v1/predict", json=payload)
        return Prediction(
            digit=body["digit"],
            confidence=body["confidence"],
            probabilities=body["probabilities"],
            input_image=body.get("input_image"),
            model_version=body["model_version"],
            prediction_id=body.get("prediction_id"),
            feedback_token=body.get("feedback_token"),
        )

    def send_feedback(self, prediction: Prediction, label: int) -> str:
        """Tell the backend which digit ``prediction`` really was; "recorded" or "updated"."""
        if prediction.prediction_id is None or prediction.feedback_token is None:
            raise BackendError("input", "This answer cannot be corrected: the backend takes no feedback.")
        payload = {"prediction_id": prediction.prediction_id, "token": prediction.feedback_token, "label": label}
        try:
            return self._request("POST", "/api/v1/feedback", json=payload)["status"]
        except BackendError as error:
            if error.kind == "not ready":  # 503 from the feedback route: its store, not the model
                raise BackendError("unavailable", "Corrections cannot be saved right now; try again later.") from None
            if error.kind == "refused":
                raise BackendError("input", f"The correction was refused: {error.message}") from None
            raise

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise BackendError("timeout", f"The backend did not answer within {self.timeout:g} s. Try again.") from None
        except httpx.TransportError:
            raise BackendError(
                "unreachable", f"The backend at {self.base_url} is unreachable. Is it running?"
            ) from None
        if response.status_code < 400:
            return response.json()
        raise error_for_response(response)


def error_for_response(response: httpx.Response) -> BackendError:
    """The backend's error replies, as the page shows them."""
    detail = _detail(response)
    status = response.status_code
    if status == 401:
        return BackendError("auth", "The backend refused the API key. Set API_KEY for this page.")
    if status == 429:
        wait = response.headers.get("retry-after", "a few")
        return BackendError("rate limited", f"Too many requests: wait {wait} s and try again.")
    if status == 503:
        # /ready explains itself in "reason", the API routes in "detail": _detail reads both.
        return BackendError("not ready", f"The model is not ready: {detail}")
    if status in (403, 410):  # a correction's token refused (forged, misplaced or expired)
        return BackendError("refused", detail)
    if status in (413, 415, 422):
        return BackendError("input", f"The backend could not read this image: {detail}")
    return BackendError("error", f"The backend failed (HTTP {status}). Try again later.")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    return str(body.get("detail") or body.get("reason") or body)[:300]
