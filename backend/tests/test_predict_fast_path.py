"""The float prediction's way past FastAPI (``predict_fast_path.py``) answers exactly as the route
does: the same answers, every refusal the route's own (it hands those over, body and all), the
key asked and the rate limit counted once, the request labelled by its route template."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from mnist_backend.main import create_app
from mnist_backend.predict_fast_path import MAX_FAST_BODY_BYTES
from mnist_backend.security import require_api_key
from tests.conftest import make_settings
from tests.hostile_images import as_base64, palette_bomb_png, text_bomb_png

KEY = "fast-path-test-key-long-enough"  # pragma: allowlist secret - a test key
HEADERS = {"X-API-Key": KEY, "Content-Type": "application/json"}
PIXELS = [0.0] * 300 + [1.0] * 184 + [0.0] * 300
# Per prediction: differs from call to call, or only names the request.
VARYING = ("inference_ms", "prediction_id", "feedback_token")


def build(model_dir, tmp_path, fast: bool, **overrides: object) -> FastAPI:
    key_file = tmp_path / "feedback_key"
    key_file.write_text("fast-path-feedback-key-of-32-characters\n")  # pragma: allowlist secret
    settings = make_settings(
        model_dir,
        environment="production",
        api_keys=KEY,
        feedback_database_url=f"sqlite:///{tmp_path / ('fast' if fast else 'route')}.sqlite3",
        feedback_key_file=key_file,
        **overrides,
    )
    app = create_app(settings)
    if not fast:
        app.edge.predict_fast_path = False
    return app


@pytest.fixture
def clients(model_dir, tmp_path) -> Iterator[tuple[TestClient, TestClient]]:
    """The service as it runs, and the same service with the route answering every prediction."""
    with TestClient(build(model_dir, tmp_path, True)) as fast, TestClient(build(model_dir, tmp_path, False)) as route:
        yield fast, route


def post(client: TestClient, body: bytes | str, headers: dict[str, str] = HEADERS):
    return client.post("/api/v1/predict", content=body, headers=headers)


def comparable(reply) -> tuple[int, dict, dict]:
    document = reply.json()
    fields = {k: v for k, v in document.items() if k not in VARYING} if isinstance(document, dict) else document
    headers = {k: v for k, v in reply.headers.items() if k not in ("x-request-id", "content-length", "date")}
    return reply.status_code, fields, headers


def drawing(mode: str = "L", side: int = 280, image_format: str = "PNG", ink: bool = True) -> str:
    """A seven as a page draws it: white on black (or, RGBA, white on transparent)."""
    image = Image.new(mode, (side, side), 0)
    if ink:
        scale = side / 280
        ImageDraw.Draw(image).line(
            [(80 * scale, 70 * scale), (200 * scale, 70 * scale), (120 * scale, 230 * scale)],
            fill=(255,) * len(mode) if mode != "L" else 255,
            width=int(20 * scale),
        )
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    "body",
    [
        {"image_base64": drawing()},
        {"image_base64": drawing("RGBA"), "return_input": True},
        {"image_base64": "data:image/png;base64," + drawing()},
        {"image_base64": drawing("RGB", image_format="JPEG")},
        {"image_base64": drawing(side=1000)},  # over DECODE_INLINE_PIXELS: the route's threads
        {"image": PIXELS},
        {"image": [PIXELS[row * 28 : row * 28 + 28] for row in range(28)]},  # 28 rows of 28
        {"image": [int(p) for p in PIXELS], "return_input": True},  # integers are numbers too
        {"return_input": False, "image": PIXELS},
    ],
)
def test_the_answer_is_the_routes(clients, body):
    fast, route = clients
    fast_reply, route_reply = post(fast, json.dumps(body)), post(route, json.dumps(body))
    assert fast_reply.status_code == 200, fast_reply.text
    assert comparable(fast_reply) == comparable(route_reply)
    assert {"prediction_id", "feedback_token", "inference_ms"} <= set(fast_reply.json())


LONG_BUT_VALID = "[" + ",".join(["0." + "0" * 90] * 784) + "]"  # 72 KB of zeros


@pytest.mark.parametrize(
    ("name", "body", "headers"),
    [
        ("a true among the pixels", json.dumps({"image": [True, *PIXELS[1:]]}), HEADERS),
        ("a string among the pixels", json.dumps({"image": ["0.5", *PIXELS[1:]]}), HEADERS),
        ("a null image", json.dumps({"image": None}), HEADERS),
        ("783 values", json.dumps({"image": PIXELS[1:]}), HEADERS),
        ("a value over 1", json.dumps({"image": [1.5, *PIXELS[1:]]}), HEADERS),
        ("NaN", '{"image": [NaN' + ", 0" * 783 + "]}", HEADERS),
        ("an unknown key", json.dumps({"image": PIXELS, "colour": 1}), HEADERS),
        ("two images", json.dumps({"image": PIXELS, "image_base64": "AAAA"}), HEADERS),
        ("return_input as text", json.dumps({"image": PIXELS, "return_input": "yes"}), HEADERS),
        ("not JSON", "image=0,0,0", HEADERS),
        ("an empty body", "", HEADERS),
        ("a list", json.dumps([PIXELS]), HEADERS),
        ("no content type", json.dumps({"image": PIXELS}), {"X-API-Key": KEY}),
        ("text/plain", json.dumps({"image": PIXELS}), {"X-API-Key": KEY, "Content-Type": "text/plain"}),
        ("no key", json.dumps({"image": PIXELS}), {"Content-Type": "application/json"}),
        (
            "a wrong key",
            json.dumps({"image": PIXELS}),
            {**HEADERS, "X-API-Key": "wrong-key-of-some-length"},  # pragma: allowlist secret
        ),
        ("over the fast path's size, valid", '{"image": ' + LONG_BUT_VALID + "}", HEADERS),
        ("an empty drawing", json.dumps({"image_base64": drawing(ink=False)}), HEADERS),
        ("text, not an image", json.dumps({"image_base64": base64.b64encode(b"hello").decode()}), HEADERS),
        ("not base64", json.dumps({"image_base64": "%%%%"}), HEADERS),
        ("an empty string", json.dumps({"image_base64": ""}), HEADERS),
        ("a cut PNG", json.dumps({"image_base64": drawing()[:400]}), HEADERS),
        ("a pixel bomb", json.dumps({"image_base64": as_base64(palette_bomb_png())}), HEADERS),
        ("text chunks", json.dumps({"image_base64": as_base64(text_bomb_png(chunks=2, chunk_bytes=4096))}), HEADERS),
        ("a number as the image", json.dumps({"image_base64": 7}), HEADERS),
    ],
)
def test_what_it_does_not_answer_gets_the_routes_reply(clients, name, body, headers):
    fast, route = clients
    assert comparable(post(fast, body, headers)) == comparable(post(route, body, headers)), name


def test_a_body_over_its_size_is_read_whole_by_the_route(clients):
    body = '{"image": ' + LONG_BUT_VALID + "}"
    assert len(body) > MAX_FAST_BODY_BYTES
    fast, _ = clients
    reply = post(fast, body)
    assert reply.status_code == 200 and reply.json()["digit"] in range(10), reply.text


def test_the_rate_limit_counts_each_request_once_whichever_way_it_goes(model_dir, tmp_path):
    with TestClient(build(model_dir, tmp_path, True, rate_limit="4/minute")) as client:
        handed_over = json.dumps({"image": [1.5, *PIXELS[1:]]})  # refused by the route: 422
        answered = json.dumps({"image": PIXELS})
        statuses = [post(client, body).status_code for body in (handed_over, answered, handed_over, answered)]
        assert statuses == [422, 200, 422, 200]
        refused = post(client, answered)
        assert refused.status_code == 429 and "rate limit of 4 per 1 minute exceeded" in refused.json()["detail"]


def test_its_requests_are_labelled_by_the_route_template(clients):
    fast, _ = clients
    for body in (json.dumps({"image": PIXELS}), json.dumps({"image": [2.0, *PIXELS[1:]]})):
        post(fast, body)
    post(fast, json.dumps({"image": PIXELS}), {"Content-Type": "application/json"})
    metrics = fast.get("/metrics", headers=HEADERS).text
    for status in ("200", "422", "401"):
        pattern = rf'mnist_http_requests_total\{{method="POST",route="/api/v1/predict",status="{status}"\}} 1\.0'
        assert re.search(pattern, metrics), status


def test_floats_and_canvas_drawings_never_reach_the_route(model_dir, tmp_path):
    app = build(model_dir, tmp_path, True)

    def route_reached() -> None:
        raise AssertionError("the route answered")

    app.dependency_overrides[require_api_key] = route_reached
    with TestClient(app, raise_server_exceptions=False) as client:
        for body in ({"image": PIXELS}, {"image_base64": drawing()}, {"image_base64": drawing("RGBA")}):
            reply = post(client, json.dumps(body))
            assert reply.status_code == 200, (list(body), reply.text)
        assert post(client, json.dumps({"image_base64": drawing(side=1000)})).status_code == 500  # the route's


def test_a_failure_on_it_is_a_500_with_its_request_id_counted_and_logged(model_dir, tmp_path, monkeypatch):
    """It runs outside Starlette's error middleware: the edge answers its failures the same way."""

    def broken(*args: object) -> None:
        raise RuntimeError("the model went away")

    monkeypatch.setattr("mnist_backend.api.predict.single_answer", broken)
    with TestClient(build(model_dir, tmp_path, True), raise_server_exceptions=False) as client:
        reply = client.post("/api/v1/predict", json={"image": PIXELS}, headers={**HEADERS, "X-Request-ID": "failed-1"})
        metrics = client.get("/metrics", headers=HEADERS).text
    assert reply.status_code == 500 and reply.text == "Internal Server Error"
    assert reply.headers["x-request-id"] == "failed-1"
    assert re.search(r'mnist_http_requests_total\{method="POST",route="/api/v1/predict",status="500"\} 1\.0', metrics)


def test_a_cross_origin_prediction_is_the_routes_when_cors_allows_other_origins(model_dir, tmp_path):
    origin = "http://localhost:8501"
    app = build(model_dir, tmp_path, True, cors_origins=origin)

    def route_reached() -> None:
        raise AssertionError("the route answered")

    with TestClient(app) as client:
        reply = post(client, json.dumps({"image": PIXELS}), {**HEADERS, "Origin": origin})
        assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == origin
        app.dependency_overrides[require_api_key] = route_reached  # without an Origin: the fast path's
        assert post(client, json.dumps({"image": PIXELS})).status_code == 200
